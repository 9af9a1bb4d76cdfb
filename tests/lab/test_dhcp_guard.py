"""DHCP servers that survive (as root): a DISCOVER whose client identifier is split over two options
(RFC 3396) is answered, not fatal; a DHCP server killed with SIGKILL is started again and leases,
and one restarted on purpose is never started a second time beside itself;
while a network's server is on, a guest cannot answer as a DHCP server (DHCP guard)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import (
    Capture,
    example_graph,
    leftovers,
    marker_frames,
    read_pcap,
    send_frames,
    wait_for,
)
from wvpclab import Lab
from wvpclab.runtime.procs import cmdline

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
SPLIT_DISCOVER = (
    "import socket; from tests.dhcpwire import build_request; "
    "from wvpclab.wire import MessageType; "
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1); "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'eth2'); "
    "s.sendto(build_request(MessageType.DISCOVER, bytes.fromhex('{chaddr}'), 7, "
    "client_id=b'\\xff' + bytes(range(256)) * 2), ('255.255.255.255', 67))")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(example_graph("four_modes.yaml", "t-dhcp-guard"), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def renewed(lab: Lab, vm: str, index: int, network: str) -> bool:
    lab.cable(vm, index, False)
    lab.cable(vm, index, True)  # media connect: the client renews, the lab waits for the lease
    lease = lab.dhcp_client(vm, index).lease()
    return bool(lease) and lease["ip"].startswith(network)


def test_a_split_client_identifier_is_answered_not_fatal(lab: Lab) -> None:
    responder = lab.responder("pc/lab")
    pid = responder.proc.pid
    wait_for(lambda: responder.stats(), what="the server's first stats")
    offers = responder.stats().get("out OFFER", 0)
    chaddr = lab.graph.nodes["xp/2"]["mac"].replace(":", "")  # the server answers only its own
    out = lab.vm("xp").cmd(f"python3 -c \"{SPLIT_DISCOVER.format(chaddr=chaddr)}\" && echo sent")
    assert "sent" in out, out
    wait_for(lambda: responder.stats().get("out OFFER", 0) > offers,
             what="the server's OFFER to the split DISCOVER")
    assert not [k for k in responder.stats() if "not built" in k or "failed to answer" in k]
    assert responder.proc.pid == pid and responder.proc.poll() is None  # the same server lives
    assert renewed(lab, "xp", 2, "169.254.")


@pytest.mark.parametrize(("key", "vm", "index", "network"), [
    ("pc/lab", "xp", 2, "169.254."),            # an internal network's server
    ("office", "xp", 1, "192.168.50."),          # a LAN gateway's
    ("nat:xp/0", "xp", 0, "192.168.131."),       # a NAT engine's
])
def test_a_killed_dhcp_server_is_started_again(lab: Lab, key: str, vm: str, index: int,
                                               network: str) -> None:
    old = lab.responder(key).proc
    os.kill(old.pid, signal.SIGKILL)
    wait_for(lambda: lab.responder(key).proc is not old and lab.responder(key).pid is not None,
             timeout=20, what=f"the DHCP server of {key} to be started again")
    assert renewed(lab, vm, index, network)


def test_a_pulled_cable_does_not_end_the_nat_engines_dhcp_server(lab: Lab) -> None:
    """A shared NIC's cable ends in its NAT engine: pulling it takes the engine's interface down
    under its DHCP server, which waits for the cable (the same process serves after)."""
    responder = lab.responder("nat:xp/0")
    pid = responder.pid
    assert pid is not None
    assert renewed(lab, "xp", 0, "192.168.131.")  # cable out and in, then a new lease
    wait_for(lambda: responder.stats().get("receive failed: ENETDOWN", 0) >= 1,
             what="the server to see its interface go down")
    assert responder.pid == pid, responder.log_path.read_text()[-2000:]


def servers_of(leases: Path) -> list[int]:
    """The PIDs of the DHCP server processes that serve this lease file."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit()
            and "wvpclab.runtime.dhcp.server" in (line := cmdline(int(e)))
            and f"--leases {leases} " in line]


def test_a_restart_beside_the_lab_s_watch_leaves_one_server(lab: Lab) -> None:
    """The lab's watch starts again a server whose process ended; a restart (the API's) ends the
    process too, for a moment. Watch and restarts race here for 20 rounds: one server remains,
    and it is the one the responder holds."""
    responder, stop = lab.responder("pc/lab"), threading.Event()
    revived: list[str] = []

    def watch() -> None:
        while not stop.is_set():
            revived.extend(lab.realizer.revive_servers())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(20):
            responder.restart()
    finally:
        stop.set()
        watcher.join()
    assert servers_of(responder.leases_path) == [responder.pid], revived
    assert revived == []  # nothing ended behind the responder's back
    assert renewed(lab, "xp", 2, "169.254.")


def test_a_guest_cannot_answer_as_the_dhcp_server(lab: Lab, tmp_path: Path) -> None:
    mac = lab.graph.nodes["lab1/0"]["mac"]
    cap = Capture(lab.vm("xp"), "eth2", tmp_path / "xp2.pcap", "udp")
    frames = ", ".join(
        f"Ether(src='{mac}', dst='ff:ff:ff:ff:ff:ff')/IP(src='169.254.1.10', "
        f"dst='255.255.255.255')/UDP(sport={sport}, dport=68)/Raw(b'{tag}')"
        for sport, tag in ((67, "rogue-offer"), (1067, "plain-udp")))
    send_frames(lab.vm("lab1"), "eth0", f"[{frames}]")
    wait_for(lambda: marker_frames(read_pcap(tmp_path / "xp2.pcap"), b"plain-udp"),
             what="the plain UDP broadcast at xp")  # the path works ...
    seen = cap.stop()
    assert marker_frames(seen, b"plain-udp")
    assert not marker_frames(seen, b"rogue-offer")  # ... and the rogue server message is dropped
    assert any("DHCP server messages from guest lab1/eth0: dropped" in line
               for line in lab.filter_rules("pc/lab"))


def test_a_bridged_guest_cannot_answer_as_its_lans_dhcp_server(lab: Lab, tmp_path: Path) -> None:
    mac = lab.graph.nodes["xp/1"]["mac"]  # xp's NIC 1: bridged to pc's eth0, LAN office (DHCP on)
    cap = Capture(lab.node("web"), "eth0", tmp_path / "web.pcap", "udp")
    frames = ", ".join(
        f"Ether(src='{mac}', dst='ff:ff:ff:ff:ff:ff')/IP(src='192.168.50.66', "
        f"dst='255.255.255.255')/UDP(sport={sport}, dport=68)/Raw(b'{tag}')"
        for sport, tag in ((67, "rogue-offer"), (1067, "plain-udp")))
    send_frames(lab.vm("xp"), "eth1", f"[{frames}]")
    wait_for(lambda: marker_frames(read_pcap(tmp_path / "web.pcap"), b"plain-udp"),
             what="the plain UDP broadcast on the LAN")
    seen = cap.stop()
    assert not marker_frames(seen, b"rogue-offer")
    assert any("DHCP server messages from guest xp/eth1: dropped" in line
               for line in lab.filter_rules("pc/eth0"))
    assert renewed(lab, "xp", 1, "192.168.50.")  # the LAN's own server still leases
