"""What a guest can do to a LAN's names and to the lab's logs (as root, with real clients: busybox
udhcpc in the guests, dig, a UDP query flood from a guest's own namespace to its LAN's gateway).

- One name, one holder: a guest that leases under a PC's name or another guest's name gets its
  address but not the name; a name a guest leased first stays with it while its lease lives; each
  refusal is counted in the LAN's DHCP server's stats.
- Every log is bounded: ten seconds of queries from a guest leave the gateway's DNS log under its
  cap (one older file kept) and dnsmasq answering.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.lab.helpers import address, leftovers, wait_for
from wvpclab import Lab
from wvpclab.model import topology
from wvpclab.runtime import logs
from wvpclab.runtime.dhcp import leases as L

pytestmark = pytest.mark.lab

GW = "192.168.50.1"
WEB = "192.168.50.80"
TOPOLOGY = {
    "name": "t-names-logs",
    "pcs": {"pc": {"adapters": {"eth0": {"type": "wired", "lan": "office"}}}},
    "lans": {"office": {"subnet": "192.168.50.0/24", "servers": {"web": WEB}}},
    "vms": {"g1": {"pc": "pc", "nics": [{"bridge": "eth0"}]},
            "g2": {"pc": "pc", "nics": [{"bridge": "eth0"}]}},
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = tmp_path_factory.mktemp("topo") / "t-names-logs.yaml"
    path.write_text(yaml.safe_dump(TOPOLOGY))
    with Lab(topology.load(path), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def dig(lab: Lab, node: str, name: str) -> list[str]:
    """What the office's DNS server answers for ``name`` (asked from ``node``)."""
    return lab.node(node).cmd(f"dig +short +tries=2 +time=2 @{GW} {name}").split()


def lease_as(lab: Lab, vm: str, hostname: str) -> str:
    """A second, real DHCP client in the guest (its NIC, its hardware address) asks for its lease
    under ``hostname``; returns udhcpc's words."""
    out = lab.vm(vm).cmd(f"busybox udhcpc -q -n -f -i eth0 -s /bin/true -t 3 -T 1 "
                         f"-x hostname:{hostname} 2>&1")
    assert "obtained" in out, out
    return out


def refusals(lab: Lab, why: str) -> int:
    return lab.responder("office").stats().get(why, 0)


def test_a_guest_takes_neither_a_pcs_name_nor_another_guests(lab: Lab) -> None:
    pc, g1 = address(lab, "pc", "eth0"), address(lab, "g1", "eth0")
    wait_for(lambda: dig(lab, "web", "pc") == [pc] and dig(lab, "web", "g1") == [g1],
             timeout=20, what="pc's and g1's names on the office LAN")
    before = refusals(lab, L.NAME_OF_A_NODE)

    lease_as(lab, "g2", "pc")  # g2 leases (it renews its own address) under the PC's name ...
    wait_for(lambda: refusals(lab, L.NAME_OF_A_NODE) == before + 1, what="the refusal counted")
    lease_as(lab, "g2", "g1")  # ... and under g1's
    wait_for(lambda: refusals(lab, L.NAME_OF_A_NODE) == before + 2, what="the refusal counted")
    for node in ("web", "pc", "g1", "g2"):  # ... neither name moved, seen from anywhere on the LAN
        assert dig(lab, node, "pc") == [pc], node
        assert dig(lab, node, "g1") == [g1], node
    assert lab.node("web").cmd("ping -n -c1 -W2 pc | head -1").split()[2] == f"({pc})"
    lease_as(lab, "g2", "g1")  # the same again: a renewal, not a new refusal
    lab_names = refusals(lab, L.NAME_OF_THE_LAB)
    lease_as(lab, "g2", "web")  # (a refusal the server counts after it has seen that renewal)
    wait_for(lambda: refusals(lab, L.NAME_OF_THE_LAB) == lab_names + 1, what="the refusal")
    assert refusals(lab, L.NAME_OF_A_NODE) == before + 2
    log = lab.responder("office").log_path.read_text()
    assert log.count("asked for the name 'g1': refused") == 1, log[-2000:]

    client = lab.dhcp_client("g2", 0)
    client.renew()  # g2's own client: its own name again
    wait_for(lambda: dig(lab, "web", "g2") == [address(lab, "g2", "eth0")], timeout=20,
             what="g2's name back")


def test_a_name_a_guest_leased_first_stays_its_own(lab: Lab) -> None:
    before = refusals(lab, L.NAME_HELD)
    g1, g2 = address(lab, "g1", "eth0"), address(lab, "g2", "eth0")
    lease_as(lab, "g1", "printer")  # g1 is "printer" first ...
    wait_for(lambda: dig(lab, "web", "printer") == [g1], what="g1 as printer")
    lease_as(lab, "g2", "printer")  # ... g2 asks for it after
    wait_for(lambda: refusals(lab, L.NAME_HELD) == before + 1, what="the refusal counted")
    assert dig(lab, "web", "printer") == [g1]
    lease_as(lab, "g1", "printer")  # g1 renews: it keeps it
    lease_as(lab, "g2", "printer")
    assert dig(lab, "web", "printer") == [g1] and g2 != g1
    for vm in ("g1", "g2"):
        lab.dhcp_client(vm, 0).renew()
        wait_for(lambda vm=vm: dig(lab, "web", vm) == [address(lab, vm, "eth0")], timeout=20,
                 what=f"{vm}'s name back")
    wait_for(lambda: dig(lab, "web", "printer") == [], what="printer to go with its lease")


#: A guest's query flood: UDP DNS queries for names nobody has, to its gateway alone, for a
#: bounded time (the socket is connected: nothing else is ever sent to).
FLOOD = """
import os, socket, struct, sys, time
gw, seconds = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
s.connect((gw, 53))
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    name = b"".join(bytes((len(p),)) + p for p in (b"flood%08d" % n, b"office")) + b"\\0"
    try:
        s.send(struct.pack(">HHHHHH", n & 0xFFFF, 0x0100, 1, 0, 0, 0) + name + b"\\0\\1\\0\\1")
        n += 1
    except BlockingIOError:
        time.sleep(0.0005)
    try:
        while s.recv(2048):
            pass
    except (BlockingIOError, ConnectionRefusedError):
        pass
print(n)
"""


def test_a_guests_query_flood_leaves_the_dns_log_under_its_cap(lab: Lab) -> None:
    log = lab.run_dir / "dns+gw.office.log"
    flood = lab.vm("g2").popen([sys.executable, "-c", FLOOD, GW, "10"], stdout=-1, stderr=-1,
                               text=True)
    biggest, answered, started = 0, 0, time.monotonic()
    try:
        while flood.poll() is None and time.monotonic() - started < 30:
            for path in (log, logs.older(log)):
                try:
                    biggest = max(biggest, path.stat().st_size)
                except FileNotFoundError:
                    pass
            if dig(lab, "pc", "web") == [WEB]:  # dnsmasq answers others while it is flooded
                answered += 1
    finally:
        if flood.poll() is None:
            flood.kill()
        out, err = flood.communicate(timeout=10)
    sent = int(out.strip() or 0)
    assert flood.returncode == 0, err
    assert sent > 50_000, sent  # a flood: its lines alone would be several times the cap
    assert biggest <= logs.CAP, biggest
    assert log.stat().st_size <= logs.CAP and logs.older(log).stat().st_size <= logs.CAP
    assert sorted(p.name for p in lab.run_dir.glob("dns+gw.office.log*")) == [
        "dns+gw.office.log", "dns+gw.office.log.1"]
    assert answered > 0
    # after it, dnsmasq answers at once and its log goes on
    name = f"after-{time.monotonic_ns()}"
    assert lab.node("pc").cmd(f"dig +tries=1 +time=2 @{GW} {name}").count("NXDOMAIN") == 1
    wait_for(lambda: f"query[A] {name} from {address(lab, 'pc', 'eth0')}" in log.read_text(),
             what="the query after the flood in the log")
    assert "flood" in logs.older(log).read_text() + log.read_text()
