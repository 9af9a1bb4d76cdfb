"""The web page's pure parts: who may read and change (the guard), each VM's Settings dialog as
JSON, the live readings' parsers, and the live picture's anchors. (The page on a running lab, in a
real browser: tests/lab/test_web.py.)"""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import TOPOLOGIES
from wvpclab import draw, modes, topology
from wvpclab.web import guard
from wvpclab.web.state import NEW_INTERNAL, nic_live, parse_counters, parse_links, settings

TOKEN = "s3cret-token"
HOST = {"host": "127.0.0.1:8470"}
CHANGE = {**HOST, "x-wvpclab-token": TOKEN, "content-type": "application/json",
          "origin": "http://127.0.0.1:8470"}


# -- the guard ----------------------------------------------------------------------------------
API = {**HOST, "x-wvpclab-token": TOKEN}


@pytest.mark.parametrize("path", ["/", "/app.js", "/app.css"])
def test_the_page_and_its_files_are_read_with_the_token_in_the_address(path: str) -> None:
    assert guard.refusal("GET", path, HOST, TOKEN, TOKEN) is None
    assert guard.refusal("HEAD", path, HOST, TOKEN, TOKEN) is None


@pytest.mark.parametrize("query", [None, "", "wrong", TOKEN[:-1]])
def test_the_page_without_the_right_token_is_refused_saying_what_to_open(query) -> None:
    status, why = guard.refusal("GET", "/", HOST, query, TOKEN)
    assert status == 403 and "needs its token" in why and "`web`" in why
    # a header does not open the page: what an address bar cannot carry does not count there
    assert guard.refusal("GET", "/", API, query, TOKEN)[0] == 403


def test_the_script_s_reads_need_the_token_header_not_the_address() -> None:
    assert guard.refusal("GET", "/api/state", API, None, TOKEN) is None
    status, why = guard.refusal("GET", "/api/state", HOST, TOKEN, TOKEN)  # a link with ?token=
    assert status == 403 and "X-Wvpclab-Token" in why
    wrong = {**HOST, "x-wvpclab-token": "wrong"}
    assert guard.refusal("GET", "/api/picture.svg", wrong, None, TOKEN)[0] == 403


@pytest.mark.parametrize("host", ["127.0.0.1:8470", "localhost:9000", "[::1]:8470", "LOCALHOST",
                                  "127.0.0.1"])
def test_loopback_names_are_served(host: str) -> None:
    assert guard.refusal("GET", "/", {"host": host}, TOKEN, TOKEN) is None


@pytest.mark.parametrize("host", ["evil.example:8470", "127.0.0.1.evil.example", "",
                                  "10.0.2.15:8470", "[::2]:8470", "[::1].evil.test",
                                  "[::1].evil.test:8470", "[::1]evil.test", "localhost.",
                                  "localhost.evil.test", "127.0.0.1:", "127.0.0.1:80a",
                                  "127.0.0.1:80:80", "localhost:123456", " localhost",
                                  "localhost ", "127.0.0.1@evil.test", "[::1]:8470]"])
def test_other_host_names_are_refused_whatever_the_token(host: str) -> None:
    status, why = guard.refusal("GET", "/api/state", {"host": host, "x-wvpclab-token": TOKEN},
                                TOKEN, TOKEN)
    assert status == 403 and "127.0.0.1 and localhost only" in why


def test_a_change_from_the_page_itself_is_served() -> None:
    assert guard.refusal("POST", "/api/nic", CHANGE, None, TOKEN) is None
    no_origin = {k: v for k, v in CHANGE.items() if k != "origin"}  # curl, a script
    assert guard.refusal("POST", "/api/nic", no_origin, None, TOKEN) is None
    charset = {**CHANGE, "content-type": "application/json; charset=utf-8"}
    assert guard.refusal("POST", "/api/nic", charset, None, TOKEN) is None


@pytest.mark.parametrize("change, status, words", [
    ({"x-wvpclab-token": None}, 403, "token is wrong or missing"),
    ({"x-wvpclab-token": "wrong"}, 403, "token is wrong or missing"),
    ({"origin": "http://evil.example"}, 403, "cross-site request refused"),
    ({"origin": "null"}, 403, "cross-site request refused"),
    ({"origin": "http://127.0.0.1:9999"}, 403, "cross-site request refused"),
    ({"content-type": "application/x-www-form-urlencoded"}, 415, "JSON body"),
    ({"content-type": "text/plain"}, 415, "JSON body"),
    ({"content-type": None}, 415, "JSON body"),
])
def test_a_change_without_the_header_token_from_another_site_or_not_json_is_refused(
        change: dict, status: int, words: str) -> None:
    headers = {k: v for k, v in {**CHANGE, **change}.items() if v is not None}
    # the address's token does not count for a change
    refused = guard.refusal("POST", "/api/nic", headers, TOKEN, TOKEN)
    assert refused is not None and refused[0] == status and words in refused[1], refused


def test_a_post_to_the_page_itself_is_not_a_change() -> None:
    assert guard.refusal("POST", "/", CHANGE, TOKEN, TOKEN)[0] == 405


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_not_served(method: str) -> None:
    status, why = guard.refusal(method, "/api/nic", CHANGE, TOKEN, TOKEN)
    assert status == 405 and method in why


# -- the dialog's JSON --------------------------------------------------------------------------
def test_settings_list_each_vm_s_nics_with_wvpc_s_choices_in_order() -> None:
    graph = topology.load(TOPOLOGIES / "four_modes.yaml")
    page = settings(graph)
    json.dumps(page)  # what the page gets is JSON
    assert page["lab"] == "office-lab"
    assert [v["name"] for v in page["vms"]] == ["lab1", "xp"]
    xp = page["vms"][1]
    assert xp["pc"] == "pc"
    assert [(n["index"], n["value"], n["cable"], n["pluggable"]) for n in xp["nics"]] == [
        (0, "shared", True, True), (1, "bridge:eth0", True, True),
        (2, "internal:lab", True, True), (3, "none", True, False)]
    assert list(page["choices"]) == ["pc"]
    assert page["choices"]["pc"] == [
        {"value": "none", "label": "Not connected"},
        {"value": "bridge:eth0", "label": "eth0 (wired adapter, LAN office)"},
        {"value": "bridge:wlan0", "label": "wlan0 (wireless adapter, LAN cafe)"},
        {"value": "shared", "label": "Shared Networking (NAT)"},
        {"value": "internal:lab", "label": "Internal Network lab"},
        {"value": NEW_INTERNAL, "label": "New internal network..."}]
    # every choice but the last is a mode the lab takes
    for choice in page["choices"]["pc"][:-1]:
        mode, target = modes.parse(choice["value"])
        assert modes.by_name(mode).check_target(graph, "pc", target) is None
    assert page["vms"][0]["nics"][0]["static"] == "169.254.1.10/16"
    assert {(s["key"], s["kind"], s["rules"], s["leases"]) for s in page["switches"]} == {
        ("office", "lan", False, True), ("cafe", "lan", False, True),
        ("pc/eth0", "wired filter", True, False), ("pc/wlan0", "wireless filter", True, False),
        ("pc/lab", "internal", True, True)}


def test_settings_follow_a_moved_nic_and_a_new_internal_network() -> None:
    graph = topology.load(TOPOLOGIES / "four_modes.yaml")
    modes.move(graph, "xp", 3, "internal", "lab2")
    modes.set_cable(graph, "xp", 1, False)
    page = settings(graph)
    xp = page["vms"][1]
    assert xp["nics"][3]["value"] == "internal:lab2" and xp["nics"][3]["pluggable"]
    assert xp["nics"][1]["cable"] is False
    values = [c["value"] for c in page["choices"]["pc"]]
    assert values[-3:] == ["internal:lab", "internal:lab2", NEW_INTERNAL]


def test_a_pc_without_adapters_offers_nat_internal_and_not_connected() -> None:
    graph = topology.from_document({"name": "t", "pcs": {"pc": {}},
                                    "vms": {"a": {"nics": ["none"]}}})
    values = [c["value"] for c in settings(graph)["choices"]["pc"]]
    assert values == ["none", "shared", NEW_INTERNAL]


# -- live readings ------------------------------------------------------------------------------
IP_JSON = json.dumps([
    {"ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"],
     "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "eth0", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
     "addr_info": [{"family": "inet", "local": "192.168.131.1", "prefixlen": 24},
                   {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]},
    {"ifname": "eth3", "flags": ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"], "addr_info": []},
])


def test_parse_links_reads_carrier_and_ipv4_addresses() -> None:
    links = parse_links(IP_JSON)
    assert links["eth0"] == {"carrier": True, "addresses": ["192.168.131.1/24"]}
    assert links["eth3"] == {"carrier": False, "addresses": []}
    assert parse_links("") == {} and parse_links("not json") == {} and parse_links("{}") == {}


DUMP_PORTS = """OFPST_PORT reply (xid=0x2): 4 ports
  port LOCAL: rx pkts=5, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=7, bytes=0, drop=44, errs=0, coll=0
  port  1: rx pkts=14, bytes=2678, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=36, bytes=4496, drop=0, errs=0, coll=0
  port  2: rx pkts=8, bytes=656, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=35, bytes=4406, drop=1, errs=0, coll=0
  port  3: rx pkts=28, bytes=3840, drop=?, errs=?, frame=?, over=?, crc=?
           tx pkts=?, bytes=3334, drop=?, errs=?, coll=?
"""


def test_parse_counters_adds_up_the_ports_but_the_bridge_s_own() -> None:
    assert parse_counters(DUMP_PORTS) == {"rx": 14 + 8 + 28, "tx": 36 + 35}
    assert parse_counters("ovs-ofctl: br0 is not a bridge or a socket") is None
    assert parse_counters("") is None


def test_nic_live_counts_the_lease_down() -> None:
    link = {"carrier": True, "addresses": ["192.168.50.101/24"]}
    lease = {"ip": "192.168.50.101", "lease": "3600", "time": 1000}
    assert nic_live(link, lease, 1600.5) == {"carrier": True, "address": "192.168.50.101/24",
                                             "lease_left": 3000}
    assert nic_live(link, lease, 99999)["lease_left"] == 0
    assert nic_live(None, None, 0) == {"carrier": False, "address": None, "lease_left": None}
    assert nic_live(link, {"ip": "x", "lease": "", "time": 5}, 6)["lease_left"] is None


# -- the live picture ---------------------------------------------------------------------------
def test_the_live_picture_anchors_every_nic_and_switch_and_the_static_one_none() -> None:
    graph = topology.load(TOPOLOGIES / "four_modes.yaml")
    live = draw.dot_source(graph, live=True)
    ids = set(re.findall(r'ID="([^"]+)"', live))
    nics = {draw.live_id("nic", k) for k, _ in topology.nodes_of(graph, "nic")}
    switches = {draw.live_id("switch", k) for kind in ("lan", "adapter", "internal")
                for k, _ in topology.nodes_of(graph, kind)}
    assert ids == nics | switches
    assert live.count(f">{draw.LIVE_NIC}<") == len(nics)
    assert live.count(f">{draw.LIVE_SWITCH}<") == len(switches)
    static = draw.dot_source(graph)
    assert "ID=" not in static and "HREF=" not in static and draw.LIVE_NIC not in static
