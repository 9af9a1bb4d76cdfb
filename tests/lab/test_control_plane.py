"""The control plane is the lab's alone (as root): the switches reach the controller over a Unix
socket no other local user can open or take; a fake switch claiming a connected datapath id is
refused; a controller killed 20 times changes nothing on the wire (no flow re-added, no ping lost,
no forbidden frame let through)."""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import (
    Capture,
    example_as,
    flows,
    leftovers,
    marker_frames,
    read_pcap,
    wait_for,
)
from wvpclab import Lab
from wvpclab.model import topology
from wvpclab.model.items import Bridge

pytestmark = pytest.mark.lab

#: The system's Python as user nobody (the tests' own may be under /root, which nobody cannot read)
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c"]
OFPT_HELLO, OFPT_FEATURES_REQUEST, OFPT_FEATURES_REPLY, OFPT_FLOW_MOD = 0, 5, 6, 14


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = example_as(tmp_path_factory.mktemp("ctl"), "four_modes.yaml", "ctlplane")
    with Lab(topology.load(path), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def controlled(lab: Lab) -> list[Bridge]:
    return [b for b in lab.bridges.values() if b.controlled]


def as_nobody(lab: Lab, code: str) -> str:
    res = subprocess.run([*NOBODY, code], check=False, capture_output=True, text=True,
                         timeout=20)
    return (res.stdout + res.stderr).strip()


def test_no_other_user_can_connect_to_or_take_the_openflow_socket(lab: Lab) -> None:
    path = lab.controller.openflow_path
    connect = (f"import socket; s = socket.socket(socket.AF_UNIX); "
               f"s.connect({str(path)!r}); print('connected')")
    assert "PermissionError" in as_nobody(lab, connect)
    # while the controller is dead and its socket gone, nobody else can put one there
    lab.controller.supervised = False
    try:
        os.kill(lab.controller.pid, signal.SIGKILL)
        lab.controller.proc.wait(10)
        path.unlink(missing_ok=True)
        bind = (f"import socket; s = socket.socket(socket.AF_UNIX); s.bind({str(path)!r}); "
                "s.listen(); print('bound')")
        assert "PermissionError" in as_nobody(lab, bind)
    finally:
        lab.controller.supervised = True
    wait_for(lambda: lab.controller.request("switches")["switches"], timeout=20,
             what="the controller to be started again")
    assert all(s["connected"] for s in wait_for(
        lambda: [s for s in lab.controller.request("switches")["switches"] if s["connected"]]
        == lab.controller.request("switches")["switches"]
        and lab.controller.request("switches")["switches"], timeout=20,
        what="every switch to reconnect"))


def _of(kind: int, xid: int, body: bytes = b"") -> bytes:
    return struct.pack("!BBHI", 4, kind, 8 + len(body), xid) + body


def _read_messages(sock: socket.socket, seconds: float) -> tuple[list[int], bool]:
    """The OpenFlow message types received within `seconds`, and whether the peer closed."""
    kinds, buf, deadline = [], b"", time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return kinds, True
        buf += chunk
        while len(buf) >= 8:
            _, kind, length, xid = struct.unpack("!BBHI", buf[:8])
            if len(buf) < length:
                break
            kinds.append(kind)
            if kind == OFPT_FEATURES_REQUEST:
                dpid = sock.dpid  # type: ignore[attr-defined]
                sock.sendall(_of(OFPT_FEATURES_REPLY, xid,
                                 struct.pack("!QIBB2xII", dpid, 0, 254, 0, 0, 0)))
            buf = buf[length:]
    return kinds, False


class _FakeSwitch(socket.socket):
    dpid = 0


def test_a_fake_switch_with_a_live_datapath_id_is_refused(lab: Lab) -> None:
    victim = next(b for b in controlled(lab) if b.key == "pc/lab")
    before = flows(victim.name)
    fake = _FakeSwitch(socket.AF_UNIX, socket.SOCK_STREAM)
    fake.dpid = victim.dpid
    try:
        fake.connect(str(lab.controller.openflow_path))
        fake.sendall(_of(OFPT_HELLO, 1))
        kinds, closed = _read_messages(fake, 10)
    finally:
        fake.close()
    assert OFPT_FEATURES_REQUEST in kinds and OFPT_FLOW_MOD not in kinds, kinds
    assert closed, "the controller kept the second connection"
    log = (lab.run_dir / "controller.log").read_text()
    assert f"switch {victim.dpid:016x}: a second connection claims" in log
    # the real switch is still the one the lab drives: a change goes through at once
    started = time.monotonic()
    lab.cable("lab1", 0, False)
    lab.cable("lab1", 0, True)
    assert time.monotonic() - started < 10
    dump = lab.controller.dump(victim.dpid)
    assert dump["connected"] and dump["in_force"]
    assert set(flows(victim.name)) == set(before)


def test_twenty_controller_kills_change_nothing_on_the_wire(lab: Lab, tmp_path: Path) -> None:
    xp, lab1 = lab.vm("xp"), lab.vm("lab1")
    lease = lab.dhcp_client("xp", 2).lease()
    assert lease, "xp has no lease on the internal network"
    xp_internal = lab.graph.nodes["xp/2"]["mac"]
    bridges = [b.name for b in controlled(lab)]
    before = {name: flows(name) for name in bridges}
    started = time.monotonic()
    # pings every 10 ms from lab1 to xp (internal network) and from xp to web (bridged, LAN)
    pings = [lab1.popen(["ping", "-n", "-i", "0.01", "-W", "1", lease["ip"]],
                        stdout=subprocess.PIPE, text=True),
             xp.popen(["ping", "-n", "-i", "0.01", "-W", "1", "192.168.50.80"],
                      stdout=subprocess.PIPE, text=True)]
    # lab1 keeps forging xp's source MAC (and the PC's) towards xp's internal NIC's neighbours
    forged = ", ".join(f"Ether(src='{mac}', dst='ff:ff:ff:ff:ff:ff')/Raw(b'SPOOF-{who}')"
                       for who, mac in (("GUEST", xp_internal), ("PC", "00:1a:2b:3c:4d:5e")))
    code = f"from scapy.all import *; sendp([{forged}], iface='eth0', inter=0.005, loop=1)"
    spoof = lab1.popen([sys.executable, "-c", code],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cap = Capture(xp, "eth2", tmp_path / "xp2.pcap", "not ip")
    try:
        for _ in range(20):
            restarts = lab.controller.restarts
            os.kill(lab.controller.pid, signal.SIGKILL)
            wait_for(lambda r=restarts: lab.controller.restarts > r, timeout=20,
                     what="the controller to be started again")
            for b in controlled(lab):
                lab.controller.request("sync", dpid=b.dpid)
    finally:
        spoof.kill()
        spoof.wait(5)
        for p in pings:
            p.send_signal(signal.SIGINT)
        outs = [p.communicate(timeout=10)[0] for p in pings]
        cap.stop()
    elapsed = time.monotonic() - started
    for out in outs:
        sent, got = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())
        assert sent > 1000 and got == sent, out.splitlines()[-2:]
    frames = read_pcap(tmp_path / "xp2.pcap")
    assert not marker_frames(frames, b"SPOOF-"), "a forged frame reached xp"
    for name in bridges:
        after = flows(name)
        assert set(after) == set(before[name]), name
        young = [f for f, age in after.items() if age + 1 < elapsed]
        assert not young, f"{name}: flows put in again: {young[:3]}"


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE).group(1))


def _ovs(*args: str) -> None:
    subprocess.run(["ovs-vsctl", "--timeout=10", *args], check=True, capture_output=True)


def test_a_switch_that_reconnects_is_taken_back_and_leaves_nothing_behind(lab: Lab) -> None:
    """A switch whose connection ends (Open vSwitch restarted, its controller set again) is its
    own next time: the controller noticed the end, takes the new connection, and keeps no thread
    of the old one."""
    bridge = next(b for b in controlled(lab) if b.key == "pc/lab")
    target = f"unix:{lab.controller.openflow_path}"
    before, threads = flows(bridge.name), _threads(lab.controller.pid)
    for _ in range(5):
        _ovs("del-controller", bridge.name)
        wait_for(lambda: not lab.controller.dump(bridge.dpid)["connected"], timeout=3,
                 what="the controller to see the connection end at once")
        _ovs("--", "--id=@c", "create", "Controller", f'target="{target}"', "max_backoff=1000",
             "--", "set", "Bridge", bridge.name, "controller=@c")
        wait_for(lambda: lab.controller.dump(bridge.dpid)["in_force"], timeout=15,
                 what="the switch to be connected and in force again")
    assert _threads(lab.controller.pid) <= threads + 2
    assert set(flows(bridge.name)) == set(before)
    lab.cable("lab1", 0, False)  # and it is driven as before
    lab.cable("lab1", 0, True)
    assert "1 received" in lab.vm("lab1").cmd(
        f"ping -n -c1 -W2 {lab.dhcp_client('xp', 2).lease()['ip']}")
