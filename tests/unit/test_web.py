"""The web page's pure parts: who may read and change (the guard), each VM's Settings dialog as
JSON, the live readings' parsers, and the live picture's anchors; the page's bounds (limits: its
pure parts, then uvicorn with the bounded protocol on a real loopback port, with short limits).
(The page on a running lab, in a real browser: tests/lab/test_web.py; under a flood:
tests/lab/test_web_limits.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import TOPOLOGIES
from wvpclab.analysis import draw
from wvpclab.errors import UsageError
from wvpclab.model import modes, topology
from wvpclab.ui.web import guard, limits, server
from wvpclab.ui.web.limits import Gate, Guarded, Limits, Tally
from wvpclab.ui.web.state import nic_live, parse_counters, parse_links, settings

#: The drop-down's entry that asks for a new internal network's name.
NEW_INTERNAL = "internal:"

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


#: Every change the page makes: a NIC's mode and cable, a new VM, a VM removed, its adapters.
CHANGES = ["/api/nic", "/api/cable", "/api/vm/add", "/api/vm/remove", "/api/adapters"]


@pytest.mark.parametrize("path", CHANGES)
def test_a_change_from_the_page_itself_is_served(path: str) -> None:
    assert guard.refusal("POST", path, CHANGE, None, TOKEN) is None
    no_origin = {k: v for k, v in CHANGE.items() if k != "origin"}  # curl, a script
    assert guard.refusal("POST", path, no_origin, None, TOKEN) is None
    charset = {**CHANGE, "content-type": "application/json; charset=utf-8"}
    assert guard.refusal("POST", path, charset, None, TOKEN) is None


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
@pytest.mark.parametrize("path", CHANGES)
def test_a_change_without_the_header_token_from_another_site_or_not_json_is_refused(
        change: dict, status: int, words: str, path: str) -> None:
    headers = {k: v for k, v in {**CHANGE, **change}.items() if v is not None}
    # the address's token does not count for a change
    refused = guard.refusal("POST", path, headers, TOKEN, TOKEN)
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
        {"value": NEW_INTERNAL, "label": "New internal network...",
         "ask": "Name of the new internal network (letters, digits, - and _):",
         "names": "internal network"}]
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


def test_each_pc_lists_the_nics_the_wizard_gives_a_new_vm_there() -> None:
    graph = topology.from_document({
        "name": "t", "pcs": {"pc": {"adapters": {"eth0": {"type": "wired", "lan": "office"},
                                                 "wlan0": {"type": "wireless", "lan": "cafe"}}},
                             "bare": {}, "wired": {"adapters": {"eth1": {"type": "wired",
                                                                         "lan": "office"}}}},
        "lans": {"office": {"subnet": "192.168.50.0/24"}, "cafe": {"subnet": "192.168.60.0/24"}},
        "vms": {"a": {"pc": "pc", "nics": []}}})
    page = settings(graph)
    json.dumps(page)
    wizards = {p["name"]: p["wizard"] for p in page["pcs"]}
    assert list(wizards) == ["bare", "pc", "wired"]  # every PC, with a VM or not
    assert page["max_nics"] == 4  # the Number of network adapters box: 1 to 4
    assert wizards["pc"] == [
        {"value": "bridge:eth0", "label": "bridge eth0",
         "choice": "eth0 (wired adapter, LAN office)"},
        {"value": "bridge:wlan0", "label": "bridge wlan0",
         "choice": "wlan0 (wireless adapter, LAN cafe)"}]
    assert [w["label"] for w in wizards["wired"]] == ["bridge eth1"]
    assert wizards["bare"] == [{"value": "shared", "label": "shared",
                                "choice": "Shared Networking (NAT)"}]
    # what the wizard shows is what modes.wizard gives, in the lab's words
    for pc, shown in wizards.items():
        assert [w["label"] for w in shown] == [modes.label({"mode": m, "target": t})
                                               for m, t in modes.wizard(graph, pc)]
    # a new VM's drop-down on a PC without VMs yet
    assert set(page["choices"]) == {"bare", "pc", "wired"}


def test_a_vm_s_nics_keep_their_numbers_after_one_is_removed() -> None:
    graph = topology.from_document({
        "name": "t", "pcs": {"pc": {}},
        "vms": {"a": {"nics": ["shared", {"none": None, "index": 2}]}}})
    nics = settings(graph)["vms"][0]["nics"]
    assert [(n["index"], n["value"]) for n in nics] == [(0, "shared"), (2, "none")]


# -- the new endpoints' input ---------------------------------------------------------------------
def test_a_new_vm_request_names_the_vm_and_may_name_its_pc_and_nics() -> None:
    assert server.new_vm_request({"name": "win7"}) == ("win7", None, None)
    assert server.new_vm_request({"name": " win7 ", "pc": "pc", "nics": []}) == \
        ("win7", "pc", [])
    assert server.new_vm_request({"name": "w", "pc": "", "nics": ["shared", "bridge:eth0"]}) \
        == ("w", None, ["shared", "bridge:eth0"])


@pytest.mark.parametrize("body, words", [
    ({}, "give it a name"), ({"name": ""}, "give it a name"), ({"name": "  "}, "give it a name"),
    ({"name": 7}, "give it a name"), ({"name": "w", "pc": 3}, "the PC is a name, not 3"),
    ({"name": "w", "nics": "shared"}, "the NICs are a list of modes"),
    ({"name": "w", "nics": [1]}, "the NICs are a list of modes")])
def test_a_wrong_new_vm_request_is_refused_in_one_line(body: dict, words: str) -> None:
    with pytest.raises(UsageError) as err:
        server.new_vm_request(body)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_number_of_network_adapters_is_1_to_4() -> None:
    assert server.vm_request({"vm": "xp"}) == "xp"
    assert [server.adapters_request({"vm": "xp", "count": n}) for n in (1, 4)] == \
        [("xp", 1), ("xp", 4)]
    for count in (0, 5, -1, True, "2", 2.0, None):
        with pytest.raises(UsageError) as err:
            server.adapters_request({"vm": "xp", "count": count})
        assert str(err.value) == f"xp: the number of network adapters is 1 to 4, not {count!r}"
    for body in ({}, {"vm": ""}, {"vm": 3}, {"count": 2}):
        with pytest.raises(UsageError, match="name the VM"):
            server.adapters_request(body)


@pytest.mark.parametrize("numbers, count, steps", [
    ([0], 3, (2, [])), ([0, 1, 2], 1, (0, [2, 1])), ([0, 2], 1, (0, [2])),
    ([0, 2], 3, (1, [])), ([1, 3], 1, (0, [3])), ([], 1, (1, [])), ([0, 1], 2, (0, [])),
    ([0, 1, 2, 3], 1, (0, [3, 2, 1]))])
def test_the_adapters_come_and_go_as_wvpc_s_settings_do(numbers: list[int], count: int,
                                                       steps: tuple[int, list[int]]) -> None:
    """Up: NICs added (the lab gives each the lowest free number); down: the highest-numbered
    removed first, so NIC 0 stays."""
    assert server.adapter_steps(numbers, count) == steps


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


# -- the page's bounds: pure parts ----------------------------------------------------------------
ME = ("uid", os.geteuid())
NOBODY = ("uid", 65534)


def test_a_user_holds_at_most_its_cap_and_gets_room_back_when_one_closes() -> None:
    gate = Gate(total=100, per_user=3, owners={0})
    assert [gate.admit(NOBODY) for _ in range(4)] == [None, None, None, "user"]
    gate.release(NOBODY)
    assert gate.admit(NOBODY) is None and gate.count == 3


def test_other_users_share_what_the_lab_s_own_users_do_not_keep() -> None:
    gate = Gate(total=10, per_user=3, owners={0, 1000})  # 6 kept for uid 0 and 1000; 4 shared
    users = [("uid", 2000 + i) for i in range(5)] + [("addr", "127.0.0.2")]
    admitted = [who for who in users for _ in range(3) if gate.admit(who) is None]
    assert len(admitted) == 4 and gate.admit(("uid", 3000)) == "total"
    # root's browser and the sudo user's still get in, each up to its own cap
    assert [gate.admit(("uid", 0)) for _ in range(4)] == [None, None, None, "user"]
    assert [gate.admit(("uid", 1000)) for _ in range(3)] == [None] * 3
    assert gate.count == 10  # never over the total
    gate.release(users[0])
    assert gate.admit(("uid", 3000)) is None
    gate.release(("uid", 4242))  # never held: nothing changes
    assert gate.count == 10 and gate.others == 4


def test_the_page_s_connections_and_backlog_stay_within_a_quarter_of_the_file_limit() -> None:
    for soft in (64, 256, 1024, 4096, 8192, 20000, 1 << 20):
        lim = Limits.for_nofile(soft)
        assert lim.total + 4 * lim.backlog <= max(soft // 4, 32), soft
        assert 2 <= lim.per_user <= lim.total // 2 and lim.backlog >= 4, (soft, lim)
    assert Limits.for_nofile(8192) == Limits()  # 256 connections, 32 per user, backlog 16
    assert Limits.for_nofile(1024).total == 192


def test_the_soft_file_limit_is_raised_toward_the_target_never_above_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        new = limits.raise_nofile(soft + 1)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == new
        assert new == (soft + 1 if hard == resource.RLIM_INFINITY or soft < hard else soft)
        assert limits.raise_nofile(16) == new  # never lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_refusals_are_said_as_counts_in_one_line_then_start_again() -> None:
    tally = Tally(Limits())
    for _ in range(2968):
        tally.add("user", NOBODY)
    tally.add("head", NOBODY, 32)
    tally.add("large", ("uid", 0))
    tally.add("accept", "EMFILE", 7)
    line = tally.summary(10)
    assert line is not None and "\n" not in line
    assert line.startswith("wvpclab: the page's limits in the last 10 s: ")
    assert "2,968 connections refused (over its user's 32 open) [uid 65534" in line
    assert "32 connections closed without a whole request head in 5 s" in line
    assert "1 body over 64 KiB refused (413) [uid 0" in line
    assert "7 accepts failed [EMFILE: 7]" in line
    tally.add("lookup", "Protocol not supported")
    assert "1 connection counted by address, not by user" in (tally.summary() or "")
    assert tally.summary(10) is None and tally.totals["user"] == 2968


def test_the_owner_of_a_loopback_peer_s_socket_comes_from_the_kernel() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as client:
        conn, peer = server.accept()
        with conn:
            peers = limits.PeerUsers()
            assert peers.who(conn.getsockname(), peer) == ME
            assert peer == client.getsockname()
            # a socket the kernel does not know: the peer's address stands in
            assert peers.who(conn.getsockname(), (peer[0], 1)) == ("addr", "127.0.0.1")
            peers.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_another_user_s_connection_is_counted_under_its_own_uid() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        code = ("import socket, sys; s = socket.socket();"
                " s.connect(('127.0.0.1', int(sys.argv[1]))); sys.stdin.read()")
        proc = subprocess.Popen(["/usr/bin/python3", "-c", code, str(server.getsockname()[1])],
                                user=65534, group=65534, stdin=subprocess.PIPE)
        try:
            server.settimeout(10)
            conn, peer = server.accept()
            with conn:
                assert limits.PeerUsers().who(conn.getsockname(), peer) == NOBODY
        finally:
            proc.communicate(timeout=10)


# -- the page's bounds: uvicorn with the bounded protocol, on a real port -------------------------
QUICK = Limits(head_seconds=0.6, body_seconds=0.6, max_body=1024, per_user=3, total=8,
               backlog=8, report_seconds=3600)


class Served:
    """uvicorn serving a small ASGI app through ``Guarded``'s protocol on 127.0.0.1."""

    def __init__(self, lim: Limits, owner_uids: set[int]) -> None:
        import uvicorn

        self.guarded = Guarded(lim, owner_uids)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        config = self.guarded.uvicorn_config(self.app, log_level="warning", lifespan="off",
                                             access_log=False, interface="asgi3",
                                             proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self.thread.start()
        wait(lambda: self.server.started, 10)

    async def _serve(self) -> None:
        asyncio.get_running_loop().set_exception_handler(self.guarded.exception_handler)
        self.guarded.log_filter.thread = threading.get_ident()
        await self.server.serve([self.sock])

    async def app(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # as the page's app does
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, body = 200, b"ok"
        if scope["method"] == "POST":
            cap = self.guarded.limits.max_body
            got = None if limits.declared_too_large(headers, cap) else \
                await limits.read_body(receive, cap)
            if got is None:
                self.guarded.tally.add("large", scope["state"]["wvpclab.who"])
                status, body = 413, b"too large"
            else:
                body = b"%d bytes" % len(got)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", b"%d" % len(body))]
                    + ([(b"connection", b"close")] if status == 413 else [])})
        await send({"type": "http.response.body", "body": body})

    def connect(self) -> socket.socket:
        return socket.create_connection(self.address, timeout=5)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
        self.guarded.close()


@contextlib.contextmanager
def served(lim: Limits = QUICK, owner_uids: set[int] | None = None) -> Iterator[Served]:
    page = Served(lim, {os.geteuid()} if owner_uids is None else owner_uids)
    try:
        yield page
    finally:
        page.stop()


def wait(condition: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def closed_within(sock: socket.socket, seconds: float) -> float:
    """How long until the server closed ``sock`` (EOF or reset); fails after ``seconds``."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection over {seconds} s") from None
    return time.monotonic() - start


def ask(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith((b"ok", b"bytes", b"large")):
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def trickle(sock: socket.socket, every: float, limit: float) -> float:
    """Sends a header line every ``every`` s until the server closes ``sock``; how long that
    took (fails after ``limit`` s)."""
    import select

    start, line = time.monotonic(), 0
    sock.sendall(b"GET / HTTP/1.1\r\n")
    while not select.select([sock], [], [], every)[0]:  # readable: EOF or reset
        assert time.monotonic() - start < limit, f"the server kept the connection {limit} s"
        try:
            sock.sendall(b"X-%d: y\r\n" % line)
        except OSError:
            break
        line += 1
    took = time.monotonic() - start
    closed_within(sock, 1)
    return took


def test_a_connection_sending_a_header_line_now_and_then_is_closed_at_its_head_s_deadline() -> None:
    with served() as page, page.connect() as slow:
        took = trickle(slow, 0.1, 10)
        assert 0.55 <= took < 3, took
        assert page.guarded.tally.totals["head"] == 1
        with page.connect() as ok:  # a whole request is answered; so is the next, kept alive
            assert ask(ok, GET).startswith(b"HTTP/1.1 200")
            assert ask(ok, GET).startswith(b"HTTP/1.1 200")
            took = closed_within(ok, 10)  # idle after its answers: closed too
            assert took < 3, took


CAPPED = Limits(head_seconds=30, body_seconds=30, max_body=1024, per_user=3, total=8, backlog=8,
                report_seconds=3600)


def test_a_user_over_its_cap_is_closed_at_once_and_the_lab_s_users_keep_their_room() -> None:
    with served(CAPPED, owner_uids={12345}) as page:  # this process's user is one of "others"
        held = [page.connect() for _ in range(3)]
        try:
            for sock in held:
                sock.sendall(b"GET / HTTP/1.1\r\n")  # holding, not done
            wait(lambda: page.guarded.gate.count == 3, 5)
            with page.connect() as fourth:  # (long before its head's deadline)
                assert closed_within(fourth, 5) < 2
            assert page.guarded.tally.totals["user"] == 1
        finally:
            for sock in held:
                sock.close()
        wait(lambda: page.guarded.gate.count == 0, 5)
    lim = Limits(head_seconds=30, body_seconds=30, max_body=1024, per_user=3, total=4, backlog=8)
    with served(lim, owner_uids={12345}) as page, page.connect() as first, \
            page.connect() as second:  # others share 4 - 3 = 1
        first.sendall(b"GET / HTTP/1.1\r\n")
        assert closed_within(second, 5) < 2
        assert page.guarded.tally.totals["total"] == 1
    with served(lim) as page:  # this user is the lab's own: its 3 are kept for it
        socks = [page.connect() for _ in range(3)]
        try:
            assert all(ask(s, GET).startswith(b"HTTP/1.1 200") for s in socks)
        finally:
            for sock in socks:
                sock.close()


def test_a_body_over_the_cap_is_refused_with_413_before_it_is_read() -> None:
    with served() as page:
        with page.connect() as sock:  # declared: refused on its head alone
            sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 300000000\r\n"
                         b"\r\n" + b"x" * 4096)
            assert ask(sock, b"").startswith(b"HTTP/1.1 413")
            closed_within(sock, 2)
        with page.connect() as sock:  # chunked: refused as soon as it passes the cap
            head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            answer = ask(sock, head + b"400\r\n" + b"x" * 1024 + b"\r\n" + b"1\r\nx\r\n")
            assert answer.startswith(b"HTTP/1.1 413"), answer
        with page.connect() as sock:  # within the cap: served
            answer = ask(sock, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1024\r\n"
                               b"\r\n" + b"x" * 1024)
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"1024 bytes")
        assert page.guarded.tally.totals["large"] == 2


def test_a_body_that_does_not_come_whole_in_time_ends_its_connection() -> None:
    with served() as page, page.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nxx")
        assert 0.5 < closed_within(sock, 10) < 3
        assert page.guarded.tally.totals["body"] == 1


def test_requests_that_are_not_http_are_counted_not_logged_one_line_each(capfd) -> None:
    with served() as page:
        for _ in range(20):
            with page.connect() as sock:
                assert ask(sock, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
        wait(lambda: page.guarded.tally.totals["bad"] == 20, 5)
    assert "Invalid HTTP request" not in capfd.readouterr().err
    assert "20 requests not HTTP (400)" in (page.guarded.tally.summary() or "")


def test_an_upgrade_is_answered_as_http_and_gives_its_connection_back(capfd) -> None:
    upgrade = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
               b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    with served(CAPPED, owner_uids={12345}) as page:  # 3 a user: a leak shows at the 4th
        for _ in range(10):
            with page.connect() as sock:
                assert ask(sock, upgrade).startswith(b"HTTP/1.1 200")
            wait(lambda: page.guarded.gate.count == 0, 5)
    assert capfd.readouterr().err == ""
    assert "10 upgrades refused (the page speaks HTTP alone)" in (page.guarded.tally.summary()
                                                                  or "")


def test_an_accept_out_of_files_is_counted_not_a_traceback_each(capfd) -> None:
    guarded = Guarded(QUICK, set())
    loop = asyncio.new_event_loop()
    try:
        for _ in range(50):
            guarded.exception_handler(loop, {"message": "socket.accept() out of system resource",
                                             "exception": OSError(24, "Too many open files")})
    finally:
        loop.close()
        guarded.close()
    assert capfd.readouterr().err == ""
    assert "50 accepts failed [EMFILE: 50]" in (guarded.tally.summary() or "")
