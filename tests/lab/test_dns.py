"""Names in the lab (as root), with real clients (getent, dig, busybox udhcpc): each LAN's gateway
answers (dnsmasq) for the lab's names and for its DHCP clients' hostnames; a NAT guest's queries go
to its engine, on to its PC's relay, and reach the gateway from the PC's address; an internal
network has no DNS; every node resolves with its own files, and the machine's are left as they
were."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import address, example_as, leftovers, wait_for
from wvpclab import Lab
from wvpclab.model import topology

pytestmark = pytest.mark.lab

MACHINE = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    before = {p: Path(p).read_bytes() for p in MACHINE if Path(p).exists()}
    path = example_as(tmp_path_factory.mktemp("topo"), "four_modes.yaml", "t-dns")
    with Lab(topology.load(path), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []
    assert {p: Path(p).read_bytes() for p in before} == before  # the machine's own, untouched


def nameservers(lab: Lab, node: str) -> list[str]:
    """What a user reads in the node's /etc/resolv.conf."""
    return [line.split()[1] for line in lab.node(node).cmd("cat /etc/resolv.conf").splitlines()
            if line.startswith("nameserver")]


def resolve(lab: Lab, node: str, name: str) -> list[str]:
    """The IPv4 addresses a name resolves to in a node (glibc, as curl or ping would)."""
    out = lab.node(node).cmd(f"getent ahostsv4 {name}")
    return sorted({line.split()[0] for line in out.splitlines() if "STREAM" in line})


def test_every_node_resolves_with_its_own_resolver(lab: Lab) -> None:
    assert nameservers(lab, "xp") == ["192.168.131.254", "192.168.50.1"]  # NAT engine, office
    assert nameservers(lab, "pc") == ["192.168.50.1", "192.168.60.1"]  # its two adapters' leases
    assert nameservers(lab, "web") == ["192.168.50.1"]  # a server: its LAN's gateway
    assert nameservers(lab, "gw.cafe") == ["192.168.60.1"]  # a gateway: itself
    assert nameservers(lab, "lab1") == []  # a static guest on an internal network: no DNS there
    machine = Path("/etc/resolv.conf").read_text()
    for node in ("xp", "pc", "web", "gw.cafe"):
        assert resolve(lab, node, "web") == ["192.168.50.80"], node
        assert resolve(lab, node, "gw.cafe") == ["192.168.60.1"], node
        assert lab.node(node).cmd("cat /etc/resolv.conf") != machine
    assert resolve(lab, "lab1", "web") == []


def test_the_internal_network_offers_no_dns(lab: Lab) -> None:
    lease = lab.dhcp_client("xp", 2).lease()
    assert lease and lease["ip"].startswith("169.254.")  # xp leased there ...
    assert not [s for s in nameservers(lab, "xp") if s.startswith("169.254.")]  # ... no DNS
    out = lab.vm("xp").cmd(f"dig +short +tries=1 +time=2 -b {lease['ip']} "
                           "@169.254.0.1 web; echo rc=$?")
    assert "rc=9" in out, out  # no server answers on the internal network


def test_a_nat_guests_query_reaches_the_lan_from_its_pc(lab: Lab) -> None:
    name = f"probe-{uuid.uuid4().hex[:8]}"  # a name only this query asks
    out = lab.vm("xp").cmd(f"dig +tries=1 +time=3 @192.168.131.254 {name}")
    assert "status: NXDOMAIN" in out, out  # answered, through the engine and the PC's relay
    assert lab.vm("xp").cmd("dig +short +tries=1 +time=3 @192.168.131.254 web").split() == \
        ["192.168.50.80"]
    # the PC's relay asks the PC's resolvers: the gateways of its LANs (office, and cafe over
    # Wi-Fi); each saw the question from the PC's own address on its LAN, never from the guest's
    pc = {"office": address(lab, "pc", "eth0"), "cafe": address(lab, "pc", "wlan0")}

    def asked() -> dict[str, list[str]]:
        return {lan: [line for line in (lab.run_dir / f"dns+gw.{lan}.log").read_text()
                      .splitlines() if f"query[A] {name} from" in line] for lan in pc}

    wait_for(lambda: any(asked().values()), what="a LAN's DNS to log the question")
    for lan, lines in asked().items():
        assert all(line.endswith(f"from {pc[lan]}") for line in lines), (lan, lines)


def test_a_lease_hostname_resolves_on_its_lan_until_released(lab: Lab) -> None:
    client = lab.dhcp_client("xp", 1)  # bridged to pc's eth0: the office LAN
    ip = client.lease()["ip"]
    wait_for(lambda: resolve(lab, "web", "xp") == [ip], what="xp's name on the office LAN")
    assert resolve(lab, "gw.cafe", "xp") == []  # the cafe's DNS has no lease of xp
    assert resolve(lab, "web", "pc") == [address(lab, "pc", "eth0")]  # the PC's own lease
    client.release()
    wait_for(lambda: resolve(lab, "web", "xp") == [], what="xp's name to go with its lease")
    client.renew()
    wait_for(lambda: client.lease() is not None and resolve(lab, "web", "xp") == [
        client.lease()["ip"]], timeout=20, what="xp's name back with a new lease")


def test_a_guest_cannot_take_a_name_of_the_lab(lab: Lab) -> None:
    out = lab.vm("xp").cmd("busybox udhcpc -q -n -f -i eth1 -s /bin/true -t 3 -T 1 "
                           "-x hostname:web 2>&1")
    assert "obtained" in out, out  # it leases, under the name "web" ...
    wait_for(lambda: resolve(lab, "pc", "xp") == [], what="xp's lease to drop its old name")
    answer = lab.node("pc").cmd("dig +short +tries=1 +time=2 @192.168.50.1 web").split()
    assert answer == ["192.168.50.80"]  # ... but "web" is still the server alone
    client = lab.dhcp_client("xp", 1)
    client.renew()  # the real client renews under its own name
    wait_for(lambda: resolve(lab, "pc", "xp") == [client.lease()["ip"]], timeout=20,
             what="xp's name back")


def test_a_killed_dns_server_is_started_again(lab: Lab) -> None:
    server = lab.realizer.dns_servers["gw.office"]
    old = server.proc
    os.kill(old.pid, signal.SIGKILL)
    wait_for(lambda: server.proc is not old and server.pid is not None, timeout=20,
             what="the office's DNS server to be started again")
    assert resolve(lab, "pc", "web") == ["192.168.50.80"]


def test_xp_modes_guest_opens_web_by_name(tmp_path: Path) -> None:
    path = example_as(tmp_path, "xp_mode.yaml", "t-dns-xp")
    with Lab(topology.load(path), quiet=True) as xp_mode:
        page = xp_mode.vm("xp").cmd("curl -s -m 5 http://web/")
        assert f"you are {address(xp_mode, 'pc', 'eth0')}" in page, page  # NAT, DNS relayed
    assert leftovers(xp_mode.prefix) == []
