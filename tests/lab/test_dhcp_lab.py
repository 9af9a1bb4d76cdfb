"""DHCP on internal networks, as root, with real clients (busybox udhcpc, ISC dhclient), the real
responder process, steering by the controller, and durable leases (restart and kill -9)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import Capture, leftovers, wait_for
from wvpclab import Lab
from wvpclab.model import topology
from wvpclab.runtime.dhcp.server import READY_LINE
from wvpclab.runtime.procs import wait_ready

pytestmark = pytest.mark.lab

POOL = (ipaddress.IPv4Address("169.254.0.16"), ipaddress.IPv4Address("169.254.10.254"))
TOPO = {
    "name": "t-dhcp",
    "pcs": {"pc": {}},
    "internal": {"lab": None, "quiet": {"dhcp": False}, "other": None},
    "vms": {
        "u1": {"nics": ["internal:lab"]},
        "u2": {"nics": ["internal:lab"]},
        "d1": {"dhcp_client": "dhclient", "nics": ["internal:lab"]},
        "rogue": {"nics": [{"internal": "lab", "ip": "169.254.0.16/16"}]},
        "q1": {"nics": [{"internal": "quiet", "ip": "169.254.20.1/16"}]},
        "q2": {"nics": ["internal:quiet"]},
        "o1": {"nics": ["internal:other"]},
    },
}
CLIENTS = ("u1", "u2", "d1")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(topology.from_document(TOPO), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def address(lab: Lab, vm: str) -> str:
    lease = lab.dhcp_client(vm, 0).lease()
    assert lease, f"{vm} has no lease"
    return lease["ip"]


def test_real_clients_get_addresses_in_the_pool_with_a_16_and_no_router(lab: Lab) -> None:
    seen = set()
    for vm in CLIENTS:
        ip = address(lab, vm)
        assert POOL[0] <= ipaddress.IPv4Address(ip) <= POOL[1]
        assert ip != "169.254.0.16"  # the static address of rogue is never handed out
        addrs = json.loads(lab.vm(vm).cmd("ip -j -4 addr show dev eth0"))
        assert [(a["local"], a["prefixlen"]) for a in addrs[0]["addr_info"]] == [(ip, 16)]
        assert "default" not in lab.vm(vm).cmd("ip route show table all")
        seen.add(ip)
    assert len(seen) == 3


def test_guests_with_leases_reach_each_other(lab: Lab) -> None:
    for a, b in (("u1", "d1"), ("d1", "u2")):
        assert "1 received" in lab.vm(a).cmd(f"ping -n -c1 -W2 {address(lab, b)}")


def test_lease_table_names_the_clients(lab: Lab) -> None:
    rows = lab.leases("pc/lab")["pc/lab"]
    assert {r["hostname"] for r in rows if r["state"] == "bound"} >= set(CLIENTS)
    assert {r["ip"] for r in rows} >= {address(lab, vm) for vm in CLIENTS}


def renew_all_and_check_same_addresses(lab: Lab) -> None:
    before = {vm: address(lab, vm) for vm in CLIENTS}
    expiry = {r["ip"]: r["expires"] for r in lab.leases("pc/lab")["pc/lab"]}
    for vm in CLIENTS:
        lab.dhcp_client(vm, 0).renew()

    def renewed() -> bool:
        rows = {r["ip"]: r for r in lab.leases("pc/lab")["pc/lab"]}
        return all(ip in rows and rows[ip]["expires"] > expiry[ip] for ip in before.values())

    wait_for(renewed, timeout=30, what="every client to renew with the responder")
    wait_for(lambda: all(lab.dhcp_client(vm, 0).lease() for vm in CLIENTS), timeout=30,
             what="every client to hold a lease again")
    assert {vm: address(lab, vm) for vm in CLIENTS} == before


def test_restart_of_the_responder_keeps_every_lease(lab: Lab) -> None:
    responder = lab.responder("pc/lab")
    old = responder.pid
    responder.restart()
    assert responder.pid and responder.pid != old
    renew_all_and_check_same_addresses(lab)


def test_kill_9_of_the_responder_keeps_every_lease(lab: Lab) -> None:
    responder = lab.responder("pc/lab")
    responder.restart(kill=True)
    renew_all_and_check_same_addresses(lab)


def test_while_the_responder_is_on_a_guest_server_sees_no_discover(
        lab: Lab, tmp_path: Path) -> None:
    bpf = "udp dst port 67"
    at_rogue = Capture(lab.vm("rogue"), "eth0", tmp_path / "rogue.pcap", bpf)
    at_responder = Capture(lab.node("dhcp.pc.lab"), "eth0", tmp_path / "resp.pcap", bpf)
    out = lab.vm("u2").cmd("busybox udhcpc -q -n -f -i eth0 -s /bin/true -t 3 -T 1 2>&1")
    assert "obtained" in out or "lease of" in out, out
    wait_for(lambda: (tmp_path / "resp.pcap").stat().st_size > 24,
             what="the DISCOVER at the responder")
    assert at_responder.stop()
    assert at_rogue.stop() == []


def test_dhcp_off_gives_no_offer_and_a_guest_server_then_serves(lab: Lab, tmp_path: Path) -> None:
    assert "dhcp.pc.quiet" not in lab.nodes
    assert lab.dhcp_client("q2", 0).lease() is None
    server = lab.vm("q1").popen(
        [sys.executable, "-m", "wvpclab.runtime.dhcp.server", "--iface", "eth0", "--network",
         "169.254.0.0/16", "--server", "169.254.20.1", "--pool", "169.254.30.16-169.254.30.50",
         "--leases", str(tmp_path / "q1.json"), "--log", str(tmp_path / "q1.log")],
        stdout=subprocess.PIPE)
    try:
        wait_ready(server, READY_LINE, 20, "the guest's DHCP server")
        lease = wait_for(lambda: lab.dhcp_client("q2", 0).lease(), timeout=30,
                         what="q2's lease from the guest server")
        assert ipaddress.IPv4Address("169.254.30.16") <= ipaddress.IPv4Address(lease["ip"]) \
            <= ipaddress.IPv4Address("169.254.30.50")
        assert "1 received" in lab.vm("q2").cmd("ping -n -c1 -W2 169.254.20.1")
    finally:
        server.kill()
        server.wait(5)


def test_internal_dhcp_is_captured_nowhere_else(lab: Lab, tmp_path: Path) -> None:
    mac = lab.graph.nodes["u1/0"]["mac"]
    bpf = f"ether host {mac}"
    elsewhere = {
        "o1 (other network)": Capture(lab.vm("o1"), "eth0", tmp_path / "o1.pcap", bpf),
        "the PC": Capture(lab.pc("pc"), "any", tmp_path / "pc.pcap", "udp port 67 or udp port 68"),
        "dhcp.pc.other": Capture(lab.node("dhcp.pc.other"), "eth0", tmp_path / "do.pcap", bpf),
    }
    control = Capture(lab.node("dhcp.pc.lab"), "eth0", tmp_path / "ctl.pcap", bpf)
    out = lab.vm("u1").cmd("busybox udhcpc -q -n -f -i eth0 -s /bin/true -t 3 -T 1 2>&1")
    assert "lease" in out or "obtained" in out, out
    wait_for(lambda: (tmp_path / "ctl.pcap").stat().st_size > 24, what="u1's DHCP at its responder")
    assert control.stop()
    assert {k: len(c.stop()) for k, c in elsewhere.items()} == {k: 0 for k in elsewhere}


def test_malformed_packets_are_counted_and_the_server_keeps_serving(lab: Lab) -> None:
    from tests.dhcpwire import build_request
    from wvpclab.wire import MessageType

    good = build_request(MessageType.DISCOVER, bytes.fromhex("0003ff0000aa"))
    bad = {
        "truncated": good[:100],
        "not a BOOTREQUEST": b"\x02" + good[1:],
        "option overload": good[:240] + bytes([52, 1, 3, 53, 1, 1, 255]),
        "bad option length": good[:240] + bytes([53, 40, 1]),
    }
    payloads = ", ".join(
        f"Ether(src='{lab.graph.nodes['u1/0']['mac']}', dst='ff:ff:ff:ff:ff:ff')/"
        f"IP(src='0.0.0.0', dst='255.255.255.255')/UDP(sport=68, dport=67)/Raw({p!r})"
        for p in bad.values())
    from tests.lab.helpers import send_frames

    send_frames(lab.vm("u1"), "eth0", f"[{payloads}]")
    responder = lab.responder("pc/lab")

    def counted() -> bool:
        stats = responder.stats()
        return all(stats.get(f"dropped: {reason}", 0) >= 1 for reason in bad)

    wait_for(counted, timeout=15, what=f"the drops counted: {responder.stats()}")
    assert responder.pid is not None
    out = lab.vm("u2").cmd("busybox udhcpc -q -n -f -i eth0 -s /bin/true -t 3 -T 1 2>&1")
    assert "lease of" in out or "obtained" in out, out
