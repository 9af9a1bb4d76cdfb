"""Shared networking (NAT), as root: per-NIC NAT engines with DHCP, the stateful firewall, WVPC's
limitations (TCP/UDP/ICMP only, no ALG), port forwarding, and rules that live only in lab
namespaces."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import Capture, leftovers, read_pcap, send_frames, udp_exchange, wait_for
from wvpclab import Lab
from wvpclab.model import topology
from wvpclab.runtime.procs import wait_ready
from wvpclab.runtime.services import READY_LINE

pytestmark = pytest.mark.lab

TOPO = {
    "name": "t-nat",
    "pcs": {"pc": {"adapters": {"eth0": {"mac": "00:1a:2b:3c:4d:5e", "lan": "office"}}}},
    "lans": {"office": {"subnet": "192.168.50.0/24",
                        "servers": {"web": "192.168.50.80", "peer": "192.168.50.81"}}},
    "vms": {
        "xp": {"nics": [{"shared": True, "forward": ["tcp:8080:80"]}]},
        "xp2": {"nics": [{"shared": True, "ip": "192.168.131.50/24"}]},
    },
}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(topology.from_document(TOPO), quiet=True) as running:
        guest_services = running.vm("xp").popen(
            [sys.executable, "-m", "wvpclab.runtime.services", "--name", "xp"],
            stdout=subprocess.PIPE)
        wait_ready(guest_services, READY_LINE, 20, "the guest's services")
        yield running
    assert leftovers(running.prefix) == []
    root_rules = subprocess.run(["iptables-save"], capture_output=True, text=True,
                                check=False).stdout
    assert "MASQUERADE" not in root_rules and "DNAT" not in root_rules


def pc_ip(lab: Lab) -> str:
    return lab.dhcp_client("pc", 0).lease()["ip"]


def test_guest_gets_its_address_from_the_nat_by_dhcp(lab: Lab) -> None:
    lease = lab.dhcp_client("xp", 0).lease()
    assert lease["ip"] == "192.168.131.1" and lease["mask"] == "255.255.255.0"
    assert lease["router"] == "192.168.131.254"
    assert "default via 192.168.131.254 dev eth0" in lab.vm("xp").cmd("ip route")


def test_guest_reaches_lan_servers_with_tcp_udp_and_ping_as_the_pc(lab: Lab) -> None:
    xp = lab.vm("xp")
    assert xp.cmd("curl -s -m 5 http://192.168.50.80/").strip() == \
        f"web: hello from web; you are {pc_ip(lab)}"
    assert udp_exchange(xp, "192.168.50.80", 7, "wvpclab-udp") == "wvpclab-udp"
    assert "1 received" in xp.cmd("ping -n -c1 -W2 192.168.50.80")
    log = (lab.run_dir / "server-web.log").read_text()
    assert pc_ip(lab) in log and "192.168.131." not in log


def test_nothing_gets_in_unsolicited_even_with_a_route(lab: Lab, tmp_path: Path) -> None:
    peer = lab.node("peer")
    peer.cmd(f"ip route replace 192.168.131.0/24 via {pc_ip(lab)}")
    try:
        cap = Capture(lab.vm("xp"), "eth0", tmp_path / "xp.pcap", "not arp", inbound=True)
        assert peer.cmd("curl -s -m 3 http://192.168.131.1/ ; echo rc=$?").strip().endswith("rc=28")
        assert udp_exchange(peer, "192.168.131.1", 7, "x") == "no answer"
        assert "0 received" in peer.cmd("ping -n -c1 -W1 192.168.131.1")
        assert not [f for f in cap.stop() if f.haslayer("IP") and f["IP"].src == "192.168.50.81"]
    finally:
        peer.cmd("ip route del 192.168.131.0/24")


def test_only_tcp_udp_icmp_leave(lab: Lab, tmp_path: Path) -> None:
    cap = Capture(lab.node("web"), "eth0", tmp_path / "web.pcap", inbound=True)
    tags = {"gre": b"wvpclab-gre", "esp": b"wvpclab-esp", "non-ip": b"wvpclab-nonip",
            "udp": b"wvpclab-udp-ok"}
    gw = "00:00:00:00:00:00"  # replaced below by the NAT engine's MAC
    gw = lab.vm("xp").cmd("ip neigh show 192.168.131.254").split("lladdr")[1].split()[0] \
        if "lladdr" in lab.vm("xp").cmd("ip neigh show 192.168.131.254") else None
    if gw is None:
        lab.vm("xp").cmd("ping -n -c1 -W1 192.168.131.254")
        gw = lab.vm("xp").cmd("ip neigh show 192.168.131.254").split("lladdr")[1].split()[0]
    src = lab.graph.nodes["xp/0"]["mac"]
    send_frames(lab.vm("xp"), "eth0", "[" + ", ".join([
        (f"Ether(src='{src}', dst='{gw}')/IP(src='192.168.131.1', dst='192.168.50.80', proto=47)"
         f"/Raw({tags['gre']!r})"),
        (f"Ether(src='{src}', dst='{gw}')/IP(src='192.168.131.1', dst='192.168.50.80', proto=50)"
         f"/Raw({tags['esp']!r})"),
        f"Ether(src='{src}', dst='ff:ff:ff:ff:ff:ff', type=0x88b5)/Raw({tags['non-ip']!r})",
        (f"Ether(src='{src}', dst='{gw}')/IP(src='192.168.131.1', dst='192.168.50.80')"
         f"/UDP(sport=4000, dport=9)/Raw({tags['udp']!r})")]) + "]")
    wait_for(lambda: any(tags["udp"] in bytes(f) for f in read_pcap(tmp_path / "web.pcap")),
             what="the UDP control at web")
    frames = cap.stop()
    got = {name: any(tag in bytes(f) for f in frames) for name, tag in tags.items()}
    assert got == {"gre": False, "esp": False, "non-ip": False, "udp": True}


REPLY_TO_SERVER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
while True:
    data, addr = s.recvfrom(2048)
    words = data.decode().split()
    if words[:1] == ["REPLY-TO"]:   # the address in the payload, as active FTP's PORT command
        s.sendto(b"hello " + data, (words[1], int(words[2])))
    else:
        s.sendto(b"hello " + data, addr)
"""


def test_a_protocol_carrying_the_guest_address_breaks_while_a_plain_one_works(lab: Lab) -> None:
    server = lab.node("web").popen([sys.executable, "-c", REPLY_TO_SERVER])
    try:
        wait_for(lambda: ":9999" in lab.node("web").cmd("ss -lun"), what="the reply-to server")
        client = ("import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
                  "s.bind(('0.0.0.0',5555)); s.settimeout(2); s.sendto(sys.argv[1].encode(), "
                  "('192.168.50.80',9999));\ntry: print(s.recvfrom(2048)[0].decode())\n"
                  "except OSError: print('no answer')")
        xp = lab.vm("xp")
        plain = xp.popen([sys.executable, "-c", client, "plain"], stdout=subprocess.PIPE, text=True)
        assert plain.communicate(timeout=10)[0].strip() == "hello plain"
        payload = xp.popen([sys.executable, "-c", client, "REPLY-TO 192.168.131.1 5555"],
                           stdout=subprocess.PIPE, text=True)
        assert payload.communicate(timeout=10)[0].strip() == "no answer"
    finally:
        server.kill()
        server.wait(5)


def test_port_forwarding_reaches_the_guest_and_nothing_else(lab: Lab) -> None:
    web = lab.node("web")
    page = web.cmd(f"curl -s -m 5 http://{pc_ip(lab)}:8080/").strip()
    assert page == "xp: hello from xp; you are 192.168.50.80"
    assert web.cmd(f"curl -s -m 3 http://{pc_ip(lab)}:8081/ ; echo rc=$?").strip().endswith(
        ("rc=7", "rc=28"))
    assert web.cmd(f"curl -s -m 3 http://{pc_ip(lab)}:80/ ; echo rc=$?").strip().endswith(
        ("rc=7", "rc=28"))
    assert "x" not in web.cmd(f"echo x | busybox nc -w 2 {pc_ip(lab)} 7")


def test_a_port_forward_answers_only_at_the_pcs_own_address(lab: Lab) -> None:
    web = lab.node("web")
    # a LAN host that routes another network through the PC asks there: the PC does not forward
    web.cmd(f"ip route replace 198.18.7.0/24 via {pc_ip(lab)}")
    try:
        out = web.cmd("curl -s -m 3 http://198.18.7.1:8080/ ; echo rc=$?").strip()
        assert out.endswith(("rc=7", "rc=28")), out
    finally:
        web.cmd("ip route del 198.18.7.0/24")
    assert web.cmd(f"curl -s -m 5 http://{pc_ip(lab)}:8080/").strip().startswith("xp: hello")


def test_guests_behind_different_nats_cannot_reach_each_other(lab: Lab) -> None:
    assert "0 received" in lab.vm("xp").cmd("ping -n -c1 -W1 192.168.131.50")
    assert "0 received" in lab.vm("xp2").cmd("ping -n -c1 -W1 192.168.131.1")
    assert "1 received" in lab.vm("xp2").cmd("ping -n -c1 -W2 192.168.50.80")


def test_rules_are_visible(lab: Lab) -> None:
    rules = lab.nat_rules("xp", 0)
    engine = rules["nat.xp.0"]
    assert ":FORWARD DROP" in engine and "-A POSTROUTING -o wan0 -j MASQUERADE" in engine
    assert "--to-destination 192.168.131.1:80" in engine
    assert ":FORWARD DROP" in rules["pc"] and "MASQUERADE" in rules["pc"]
    assert "hook ingress device \"eth0\"" in engine and "table netdev" not in rules["pc"]


def test_a_frame_from_another_mac_goes_nowhere(lab: Lab) -> None:
    """The guest's cable goes straight into its NAT engine, which drops whatever arrives from
    another source MAC (as the NAT network's own switch did): no ARP, no routing, no DHCP."""
    xp2, mac = lab.vm("xp2"), lab.vm("xp2").nic(0).MAC()
    assert f"ether saddr != {mac} drop" in lab.nat_rules("xp2", 0)["nat.xp2.0"]
    assert "1 received" in xp2.cmd("ping -n -c1 -W2 192.168.50.80")
    xp2.cmd("ip link set eth0 address 02:00:00:00:00:99; ip neigh flush dev eth0")
    try:
        assert "0 received" in xp2.cmd("ping -n -c2 -W1 192.168.131.254")
        assert "0 received" in xp2.cmd("ping -n -c1 -W1 192.168.50.80")
    finally:
        xp2.cmd(f"ip link set eth0 address {mac}")
    assert "1 received" in xp2.cmd("ping -n -c1 -W2 192.168.50.80")
