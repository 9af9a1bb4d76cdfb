"""Bridging onto a wireless host adapter, as root: an access point that passes only the adapter's
own MAC, MAC translation by the controller (ARP and DHCP learned from the frames), two guests with
their own IPs on the LAN, non-IP and IPv6 not translated."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import Capture, flows, leftovers, read_pcap, send_frames, wait_for
from wvpclab import Lab
from wvpclab.model import topology

pytestmark = pytest.mark.lab

WLAN = "00:1a:2b:3c:4d:5f"
TOPO = {
    "name": "t-wireless",
    "pcs": {"pc": {"adapters": {"wlan0": {"type": "wireless", "mac": WLAN, "lan": "cafe"}}}},
    "lans": {"cafe": {"subnet": "192.168.60.0/24", "servers": {"web": "192.168.60.80"}}},
    "vms": {"w1": {"nics": ["bridge:wlan0"]}, "w2": {"nics": ["bridge:wlan0"]}},
}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(topology.from_document(TOPO), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def ip_of(lab: Lab, vm: str) -> str:
    lease = lab.dhcp_client(vm, 0).lease()
    assert lease, f"{vm} has no lease"
    return lease["ip"]


def test_two_guests_get_their_own_leases_on_the_lan(lab: Lab) -> None:
    a, b = ip_of(lab, "w1"), ip_of(lab, "w2")
    assert a != b and a.startswith("192.168.60.") and b.startswith("192.168.60.")
    rows = lab.leases("cafe")["cafe"]
    assert {r["hostname"] for r in rows} >= {"w1", "w2", "pc"}


def test_guests_reach_the_server_with_their_own_ip_and_the_adapters_mac(lab: Lab,
                                                                        tmp_path: Path) -> None:
    cap = Capture(lab.node("web"), "eth0", tmp_path / "web.pcap", "tcp port 80", inbound=True)
    for vm in ("w1", "w2"):
        page = lab.vm(vm).cmd("curl -s -m 5 http://192.168.60.80/").strip()
        assert page == f"web: hello from web; you are {ip_of(lab, vm)}"
    wait_for(lambda: len(read_pcap(tmp_path / "web.pcap")) >= 6, what="the guests' TCP at web")
    frames = cap.stop()
    assert {f.src for f in frames} == {WLAN}  # every frame carries the adapter's MAC
    assert {f["IP"].src for f in frames} == {ip_of(lab, "w1"), ip_of(lab, "w2")}


def test_guests_reach_each_other_and_the_pc(lab: Lab) -> None:
    assert "1 received" in lab.vm("w1").cmd(f"ping -n -c1 -W2 {ip_of(lab, 'w2')}")
    pc = lab.dhcp_client("pc", 0).lease()["ip"]
    assert "1 received" in lab.vm("w2").cmd(f"ping -n -c1 -W2 {pc}")


def test_non_ip_and_ipv6_are_not_translated(lab: Lab, tmp_path: Path) -> None:
    cap = Capture(lab.node("web"), "eth0", tmp_path / "web.pcap", inbound=True)
    mac = lab.graph.nodes["w1/0"]["mac"]
    send_frames(lab.vm("w1"), "eth0", "[" + ", ".join([
        f"Ether(src='{mac}', dst='ff:ff:ff:ff:ff:ff', type=0x88b5)/Raw(b'wvpclab-nonip')",
        (f"Ether(src='{mac}', dst='33:33:00:00:00:01')/IPv6(dst='ff02::1')/UDP(dport=9)"
         "/Raw(b'wvpclab-v6')"),
        (f"Ether(src='{mac}', dst='ff:ff:ff:ff:ff:ff')/IP(src='{ip_of(lab, 'w1')}', "
         "dst='192.168.60.255')/UDP(dport=9)/Raw(b'wvpclab-control')")]) + "]")
    wait_for(lambda: any(b"wvpclab-control" in bytes(f) for f in read_pcap(tmp_path / "web.pcap")),
             what="the IPv4 control frame at web")
    frames = cap.stop()
    assert not [f for f in frames if b"wvpclab-nonip" in bytes(f) or b"wvpclab-v6" in bytes(f)]
    control = [f for f in frames if b"wvpclab-control" in bytes(f)]
    assert control and all(f.src == WLAN for f in control)


def test_the_access_point_drops_any_other_source_mac(lab: Lab, tmp_path: Path) -> None:
    cap = Capture(lab.node("web"), "eth0", tmp_path / "web.pcap", "ether proto 0x88b6",
                  inbound=True)
    send_frames(lab.pc("pc"), "wlan0", "[Ether(src='02:00:00:00:00:99', dst='ff:ff:ff:ff:ff:ff', "
                "type=0x88b6)/Raw(b'spoofed'), Ether(src='" + WLAN + "', dst='ff:ff:ff:ff:ff:ff', "
                "type=0x88b6)/Raw(b'adapter')]")
    wait_for(lambda: any(b"adapter" in bytes(f) for f in read_pcap(tmp_path / "web.pcap")),
             what="the adapter's own frame at web")
    frames = cap.stop()
    assert not [f for f in frames if b"spoofed" in bytes(f)]


def test_rules_show_the_learned_table(lab: Lab) -> None:
    lines = lab.filter_rules("pc/wlan0")
    text = "\n".join(lines)
    for vm in ("w1", "w2"):
        assert ip_of(lab, vm) in text


def test_host_separation_and_guest_switching_hold_on_wireless(lab: Lab, tmp_path: Path) -> None:
    pc_ip = lab.dhcp_client("pc", 0).lease()["ip"]
    w1_mac, w2_mac = (lab.graph.nodes[f"{vm}/0"]["mac"] for vm in ("w1", "w2"))
    web_mac = json.loads(lab.node("web").cmd("ip -j link show eth0"))[0]["address"]
    places = {"pc": (lab.pc("pc"), "wlan0"), "w1": (lab.vm("w1"), "eth0"),
              "w2": (lab.vm("w2"), "eth0"), "web": (lab.node("web"), "eth0")}
    caps = {k: Capture(n, d, tmp_path / f"{k}.pcap", inbound=True) for k, (n, d) in places.items()}
    send_frames(lab.node("web"), "eth0", "[" + ", ".join([
        (f"Ether(src='{web_mac}', dst='{WLAN}')/IP(src='192.168.60.80', dst='{pc_ip}')"
         "/UDP(dport=9)/Raw(b'wv-to-host')"),
        (f"Ether(src='{web_mac}', dst='{WLAN}')/IP(src='192.168.60.80', "
         f"dst='{ip_of(lab, 'w1')}')/UDP(dport=9)/Raw(b'wv-to-w1')")]) + "]")
    send_frames(lab.vm("w1"), "eth0",
                f"Ether(src='{w1_mac}', dst='{w2_mac}', type=0x88b5)/Raw(b'wv-w1-w2')")
    expected = {"wv-to-host": {"pc"}, "wv-to-w1": {"w1"}, "wv-w1-w2": {"w2"}}

    def arrived() -> bool:
        return all(any(tag.encode() in bytes(f) for f in read_pcap(tmp_path / f"{where}.pcap"))
                   for tag, wheres in expected.items() for where in wheres)

    wait_for(arrived, what="every frame at its destination")
    got = {k: c.stop() for k, c in caps.items()}
    senders = {"wv-to-host": "web", "wv-to-w1": "web", "wv-w1-w2": "w1"}
    seen = {tag: {k for k, frames in got.items() if k != senders[tag]
                  and any(tag.encode() in bytes(f) for f in frames)} for tag in expected}
    assert seen == expected
    to_w1 = [f for f in got["w1"] if b"wv-to-w1" in bytes(f)]
    assert all(f.dst == w1_mac for f in to_w1)  # delivered by its learned IP, MAC put back


def test_a_restarted_controller_keeps_what_it_learned(lab: Lab) -> None:
    """The learned table lives in the controller only: after a kill -9 it is read back from the
    switch's flows, which stay as they were (nothing on the wire changes)."""
    bridge = lab.bridges["pc/wlan0"]
    before = lab.controller.dump(bridge.dpid)["learned"]
    assert {e["ip"] for e in before} >= {ip_of(lab, "w1"), ip_of(lab, "w2")}
    had = flows(bridge.name)
    killed = time.monotonic()
    restarts = lab.controller.restarts
    os.kill(lab.controller.pid, signal.SIGKILL)
    wait_for(lambda: lab.controller.restarts > restarts, timeout=20,
             what="the controller to be started again")
    lab.controller.request("sync", dpid=bridge.dpid)
    after = lab.controller.dump(bridge.dpid)["learned"]
    assert [(e["ip"], e["port"], e["mac"]) for e in after] == \
        [(e["ip"], e["port"], e["mac"]) for e in before]
    now = flows(bridge.name)
    assert set(now) == set(had)
    since = time.monotonic() - killed
    assert not [f for f, age in now.items() if age + 1 < since], "flows were put in again"
    assert "1 received" in lab.node("web").cmd(f"ping -n -c1 -W2 {ip_of(lab, 'w1')}")
