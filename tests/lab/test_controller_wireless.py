"""A wireless host adapter with the real controller on real userspace OVS bridges (root).

Topology: guest and host-stack namespaces on the wireless filter bridge, patched to an ``ap``
bridge, whose LAN port is a veth into a "LAN" namespace. Shows ARP and ping between the guest
and the LAN host with the LAN seeing the adapter's MAC and the guest's IP, the learned table,
host separation, IPv6/non-IP kept off the LAN, and the AP dropping a guest's MAC.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.lab.test_controller import (
    Client,
    Controller,
    harden_root_interface,
    ofctl_flows,
    run,
    wait_until,
)
from wvpclab import wire

IS_ROOT = os.geteuid() == 0
pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(not IS_ROOT, reason="needs root (Open vSwitch, network namespaces)"),
]

ADAPTER = "00:1a:2b:77:00:02"
GUEST = "00:03:ff:77:00:03"
LAN_MAC = "00:50:56:77:00:01"
LAN_IP, HOST_IP, GUEST_IP = "10.77.0.1", "10.77.0.2", "10.77.0.10"
W_UPLINK, W_HOST, W_GUEST = 1, 2, 3
AP_STATION, AP_LAN = 1, 2
EXPERIMENTAL = 0x88B5

CAPTURE = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
s.settimeout(0.1)
print("ready", flush=True)
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    try:
        data, addr = s.recvfrom(4096)
    except socket.timeout:
        continue
    if addr[2] != socket.PACKET_OUTGOING:
        print(data.hex(), flush=True)
"""

SEND = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for frame in sys.argv[1:]:
    s.send(bytes.fromhex(frame))
"""


def frame(src: str, dst: str, ethertype: int, marker: str) -> bytes:
    return (wire.mac_bytes(dst) + wire.mac_bytes(src) + ethertype.to_bytes(2, "big")
            + marker.encode().ljust(46, b"\0"))


class Capture:
    """Every frame a namespace's eth0 receives for a while (raw bytes)."""

    def __init__(self, ns: str, seconds: float) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", CAPTURE,
                                      str(seconds)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def frames(self) -> list[bytes]:
        out, _ = self.proc.communicate(timeout=30)
        return [bytes.fromhex(line) for line in out.split()]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def markers(frames: list[bytes]) -> list[str]:
    return [f[14:].split(b"\0")[0].decode(errors="replace") for f in frames
            if f[12:14] == EXPERIMENTAL.to_bytes(2, "big")]


@dataclass
class WNet:
    tag: str
    wbr: str
    abr: str
    wdpid: int
    adpid: int
    controller: Controller
    client: Client | None = None
    ns: dict[str, str] = field(default_factory=dict)

    def sh(self, who: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.ns[who], *cmd, check=check)

    def ping(self, who: str, ip: str) -> bool:
        return self.sh(who, "ping", "-n", "-c", "1", "-W", "1", ip, check=False).returncode == 0

    def send(self, who: str, *frames: bytes) -> None:
        self.sh(who, sys.executable, "-c", SEND, *(f.hex() for f in frames))


def _ns_end(tag: str, who: str, mac: str, ip: str) -> tuple[str, str]:
    ns, root_if, peer = f"{tag}{who}", f"{tag}{who}0", f"{tag}{who}1"
    run("ip", "netns", "add", ns)
    run("ip", "link", "add", root_if, "type", "veth", "peer", "name", peer)
    harden_root_interface(root_if)
    run("ip", "link", "set", peer, "netns", ns)
    inside = ("ip", "netns", "exec", ns)
    run(*inside, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
    run(*inside, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")
    run(*inside, "ip", "link", "set", peer, "name", "eth0")
    run(*inside, "ip", "link", "set", "eth0", "address", mac)
    run(*inside, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
    run(*inside, "ip", "link", "set", "eth0", "up")
    run("ip", "link", "set", root_if, "up")
    return ns, root_if


def _bridge(name: str, dpid: int, openflow: str) -> None:
    run("ovs-vsctl", "--timeout=10",
        "--", "add-br", name,
        "--", "set", "Bridge", name, "datapath_type=netdev", "fail_mode=secure",
        "protocols=OpenFlow13", f"other-config:datapath-id={dpid:016x}",
        "other-config:disable-in-band=true",
        "--", "--id=@c", "create", "Controller",
        f"target=\"unix:{openflow}\"", "max_backoff=1000",
        "--", "set", "Bridge", name, "controller=@c")
    wait_until(lambda: Path(f"/proc/sys/net/ipv4/conf/{name}").exists(), 10,
               f"the internal port of {name}")
    harden_root_interface(name)


def _add_port(bridge: str, name: str, ofport: int, *iface: str) -> None:
    run("ovs-vsctl", "--timeout=10", "add-port", bridge, name, "--", "set", "Interface", name,
        f"ofport_request={ofport}", *iface)


@pytest.fixture(scope="module")
def wnet() -> Iterator[WNet]:
    if shutil.which("ovs-vsctl") is None:
        pytest.fail("Open vSwitch is not installed")
    tag = f"wvtw{secrets.token_hex(2)}"
    tmp = tempfile.mkdtemp(prefix="wvtw-")
    controller = Controller(f"/var/run/openvswitch/{tag}.openflow",
                            os.path.join(tmp, "control.sock"),
                            os.path.join(tmp, "controller.log"))
    net = WNet(tag, f"{tag}w", f"{tag}a", int.from_bytes(secrets.token_bytes(8), "big") | 1,
               int.from_bytes(secrets.token_bytes(8), "big") | 2, controller)
    root_ifs: list[str] = []
    try:
        controller.start()
        _bridge(net.wbr, net.wdpid, controller.openflow)
        _bridge(net.abr, net.adpid, controller.openflow)
        _add_port(net.wbr, f"{tag}pw", W_UPLINK, "type=patch", f"options:peer={tag}pa")
        _add_port(net.abr, f"{tag}pa", AP_STATION, "type=patch", f"options:peer={tag}pw")
        for who, mac, ip, bridge, ofport in (("h", ADAPTER, HOST_IP, net.wbr, W_HOST),
                                             ("g", GUEST, GUEST_IP, net.wbr, W_GUEST),
                                             ("l", LAN_MAC, LAN_IP, net.abr, AP_LAN)):
            ns, root_if = _ns_end(tag, who, mac, ip)
            net.ns[who] = ns
            root_ifs.append(root_if)
            _add_port(bridge, root_if, ofport)
        client = Client(controller.control)
        net.client = client
        client.ok("add_switch", dpid=net.wdpid, kind="wireless", name="pc wlan0", timeout=15)
        client.ok("set_ports", dpid=net.wdpid, timeout=15, ports=[
            {"port": W_UPLINK, "role": "uplink", "mac": None, "allow_spoofing": False},
            {"port": W_HOST, "role": "host", "mac": ADAPTER, "allow_spoofing": False},
            {"port": W_GUEST, "role": "guest", "mac": GUEST, "allow_spoofing": False}])
        client.ok("add_switch", dpid=net.adpid, kind="ap", name="ap wlan0", timeout=15)
        client.ok("set_ports", dpid=net.adpid, timeout=15, ports=[
            {"port": AP_STATION, "role": "station", "mac": ADAPTER},
            {"port": AP_LAN, "role": "lan", "mac": None}])
        client.ok("sync", dpid=net.wdpid, timeout=15)
        client.ok("sync", dpid=net.adpid, timeout=15)
        yield net
    finally:
        if net.client is not None:
            net.client.close()
        status = controller.stop()
        Path(controller.openflow).unlink(missing_ok=True)
        for bridge in (net.wbr, net.abr):
            run("ovs-vsctl", "--timeout=10", "--if-exists", "del-br", bridge, check=False)
        for root_if in root_ifs:
            run("ip", "link", "del", root_if, check=False)
        for ns in net.ns.values():
            run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        assert status in (0, None, -signal.SIGKILL), f"controller exit status {status}"


def test_registered_and_nothing_learned_yet(wnet: WNet) -> None:
    dump = wnet.client.ok("dump", dpid=wnet.wdpid)
    assert dump["kind"] == "wireless" and dump["connected"] and dump["in_force"]
    assert dump["learned"] == []
    ap = wnet.client.ok("dump", dpid=wnet.adpid)
    assert ap["kind"] == "ap" and [p["role"] for p in ap["ports"]] == ["station", "lan"]
    assert len(ofctl_flows(wnet.abr)) == len(ap["flows"])
    assert len(ofctl_flows(wnet.wbr)) == len(dump["flows"])
    assert run("ovs-vsctl", "get-fail-mode", wnet.wbr).stdout.strip() == "secure"


def test_guest_arp_and_ping_to_the_lan_with_the_adapter_mac(wnet: WNet) -> None:
    cap = Capture(wnet.ns["l"], 4)
    try:
        wait_until(lambda: wnet.ping("g", LAN_IP), 10, "ping guest -> LAN host")
        frames = cap.frames()
    finally:
        cap.close()
    # The LAN host knows the guest's IP at the adapter's MAC (ARP rewritten).
    neigh = wnet.sh("l", "ip", "neigh", "show", GUEST_IP).stdout
    assert ADAPTER in neigh, neigh
    seen = []
    for raw in frames:
        eth = wire.parse_ethernet(raw)
        if eth.ethertype == wire.ETH_TYPE_ARP:
            arp = wire.parse_arp(eth.payload)
            if arp.spa == GUEST_IP:
                seen.append(("arp", eth.src, arp.sha))
        elif eth.ethertype == wire.ETH_TYPE_IPV4:
            ip = wire.parse_ipv4(eth.payload)
            if ip.src == GUEST_IP:
                seen.append(("ipv4", eth.src, ip.src))
    assert ("arp", ADAPTER, ADAPTER) in seen, seen
    assert ("ipv4", ADAPTER, GUEST_IP) in seen, seen
    assert all(src == ADAPTER for _, src, _ in seen), seen
    assert not any(GUEST in (wire.parse_ethernet(f).src,) for f in frames)
    learned = wnet.client.ok("dump", dpid=wnet.wdpid)["learned"]
    assert {"ip": GUEST_IP, "port": W_GUEST, "mac": GUEST, "how": "arp"} in learned
    flows = ofctl_flows(wnet.wbr)
    assert any(f"nw_dst={GUEST_IP}" in f and f"set_field:{GUEST}->eth_dst" in f
               for f in flows), flows
    # And the LAN reaches the guest by its IP (per-IP flow).
    wait_until(lambda: wnet.ping("l", GUEST_IP), 10, "ping LAN host -> guest")


def test_host_stack_separate_and_reachable(wnet: WNet) -> None:
    wait_until(lambda: wnet.ping("g", HOST_IP), 10, "ping guest -> host stack")
    wait_until(lambda: wnet.ping("h", LAN_IP), 10, "ping host stack -> LAN")
    neigh = wnet.sh("g", "ip", "neigh", "show", HOST_IP).stdout
    assert ADAPTER in neigh, neigh  # the host's own MAC, guest->host unchanged
    wait_until(lambda: wnet.ping("l", HOST_IP), 10, "ping LAN -> host stack")


def test_non_ip_and_ipv6_from_the_guest_stay_off_the_lan(wnet: WNet) -> None:
    lan, host = Capture(wnet.ns["l"], 2), Capture(wnet.ns["h"], 2)
    try:
        time.sleep(0.2)
        wnet.send("g", frame(GUEST, "ff:ff:ff:ff:ff:ff", EXPERIMENTAL, "NONIP-BCAST"),
                  frame(GUEST, LAN_MAC, EXPERIMENTAL, "NONIP-UNICAST"),
                  frame(GUEST, LAN_MAC, 0x86DD, "IPV6"))
        on_lan, on_host = lan.frames(), host.frames()
    finally:
        lan.close()
        host.close()
    assert markers(on_host) == ["NONIP-BCAST"]  # locally a broadcast still reaches the host
    assert not [f for f in on_lan if f[12:14] in (b"\x88\xb5", b"\x86\xdd")], on_lan


def test_guest_mac_straight_at_the_ap_is_dropped(wnet: WNet) -> None:
    cap = Capture(wnet.ns["l"], 3)
    try:
        time.sleep(0.2)
        for src, marker in ((GUEST, "GUEST-MAC"), (ADAPTER, "ADAPTER-MAC")):
            data = frame(src, "ff:ff:ff:ff:ff:ff", EXPERIMENTAL, marker).hex()
            run("ovs-ofctl", "-O", "OpenFlow13", "packet-out", wnet.abr,
                f"in_port={AP_STATION} packet={data} actions=table")
        got = markers(cap.frames())
    finally:
        cap.close()
    assert got == ["ADAPTER-MAC"], got
