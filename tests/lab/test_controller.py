"""The controller process driving a real userspace OVS bridge with namespaces on it (root).

Registration, forwarding with real frames, spoof guard, flows in OVS (two tables), no frame back to
its sender, kill -9 and restart.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controllers.app import COOKIE, COOKIE_MASK

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(not IS_ROOT, reason="needs root (Open vSwitch, network namespaces)"),
]

EXPERIMENTAL_ETHERTYPE = 0x88B5  # IEEE "local experimental": a non-IP ethertype
BCAST = "ff:ff:ff:ff:ff:ff"


def run(*cmd: str, check: bool = True, timeout: float = 15) -> subprocess.CompletedProcess:
    """Run a command (argument list, no shell) and return the finished process."""
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> object:
    """Poll `predicate` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def write_sysctl(key: str, value: str) -> None:
    Path("/proc/sys", *key.split(".")).write_text(value)


def harden_root_interface(name: str) -> None:
    """What the lab does to every interface it creates in the root namespace (docs/architecture.md
    §5)."""
    write_sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "1")
    write_sysctl(f"net.ipv4.conf.{name}.arp_ignore", "8")
    write_sysctl(f"net.ipv4.conf.{name}.rp_filter", "1")


# ---- the controller process and its control channel ------------------------------------------


class Controller:
    """The controller as a child process, ended by its PID."""

    def __init__(self, openflow: str, control: str, log: str) -> None:
        self.openflow, self.control, self.log = openflow, control, log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controllers.main", "--openflow", self.openflow,
             "--control", self.control, "--log", self.log],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline().decode()
                if line.strip() == "wvpclab-controller ready":
                    return
                if not line:
                    break
        self.stop()
        raise AssertionError(f"controller did not get ready; log: {self.read_log()}")

    def read_log(self) -> str:
        try:
            return Path(self.log).read_text()
        except FileNotFoundError:
            return "(no log)"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        """End the process by its PID (SIGTERM, then SIGKILL); return its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return self.proc.returncode


class Client:
    """A control-channel client: JSON lines, one request at a time."""

    def __init__(self, path: str, timeout: float = 20) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.rfile = self.sock.makefile("rb")
        self.next_id = 0

    def send_raw(self, line: bytes) -> dict:
        self.sock.sendall(line + b"\n")
        reply = self.rfile.readline()
        assert reply, "controller closed the control connection"
        return json.loads(reply)

    def request(self, op: str, **fields: object) -> dict:
        self.next_id += 1
        reply = self.send_raw(json.dumps({"id": self.next_id, "op": op, **fields}).encode())
        assert reply["id"] == self.next_id
        return reply

    def ok(self, op: str, **fields: object) -> dict:
        reply = self.request(op, **fields)
        assert reply["ok"] is True, reply
        return reply

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


# ---- the network: one bridge, namespaces on veths ---------------------------------------------


@dataclass
class Guest:
    """A namespace with one veth (eth0 inside) plugged into the bridge."""

    ns: str
    root_if: str
    port: int
    mac: str
    ip: str


@dataclass
class Net:
    bridge: str
    dpid: int
    controller: Controller
    guests: dict[str, Guest] = field(default_factory=dict)
    client: Client | None = None

    def register(self, client: Client, names: str = "abc") -> None:
        client.ok("add_switch", dpid=self.dpid, kind="internal", name="lab",
                  dhcp_steering=False, timeout=15)
        for name in names:
            guest = self.guests[name]
            client.ok("add_port", dpid=self.dpid, port=guest.port, role="guest", mac=guest.mac,
                      allow_spoofing=False, timeout=15)
        client.ok("sync", dpid=self.dpid, timeout=15)


def ofctl_flows(bridge: str) -> list[str]:
    """The bridge's flows as ovs-ofctl prints them, without counters and durations."""
    out = run("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge).stdout
    flows = []
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("cookie="):
            continue
        line = re.sub(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?\s*", "", line)
        flows.append(line)
    return sorted(flows)


def table_miss_packets(bridge: str) -> int:
    """Packets counted by table 0's lowest drop (what no registered port admitted)."""
    out = run("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge).stdout
    for line in out.splitlines():
        if re.search(r"\btable=0,", line) and re.search(r"\bpriority=0 actions=drop", line):
            return int(re.search(r"n_packets=(\d+)", line).group(1))
    raise AssertionError(f"no table-miss drop in table 0 of {bridge}:\n{out}")


def ovs_connected(bridge: str) -> bool:
    """Whether Open vSwitch says the bridge's controller connection is up (it refreshes this in
    its database every few seconds)."""
    uuid = run("ovs-vsctl", "get", "Bridge", bridge, "controller").stdout.strip()[1:-1]
    return run("ovs-vsctl", "get", "Controller", uuid, "is_connected").stdout.strip() == "true"


def ping(src: Guest, dst: Guest) -> bool:
    res = run("ip", "netns", "exec", src.ns, "ping", "-n", "-c", "1", "-W", "1", dst.ip,
              check=False)
    return res.returncode == 0


def assert_ping(src: Guest, dst: Guest) -> None:
    wait_until(lambda: ping(src, dst), 10, f"ping {src.ns} -> {dst.ip}")


SENDER = r"""
import socket, sys
ethertype = int(sys.argv[1], 0)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for spec in sys.argv[2:]:
    src, dst, marker = spec.split(",")
    mac = lambda m: bytes.fromhex(m.replace(":", ""))
    payload = marker.encode().ljust(46, b"\0")
    s.send(mac(dst) + mac(src) + ethertype.to_bytes(2, "big") + payload)
"""

RECEIVER = r"""
import socket, sys, time
ethertype, stop, timeout = int(sys.argv[1], 0), sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
s.bind(("eth0", 0))
s.settimeout(0.1)
print("ready", flush=True)
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        data, addr = s.recvfrom(2048)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    marker = data[14:].split(b"\0")[0].decode(errors="replace")
    print(marker + " " + data[6:12].hex(":"), flush=True)
    if marker == stop:
        sys.exit(0)
sys.exit(3)
"""


def send_frames(guest: Guest, *frames: tuple[str, str, str]) -> None:
    """Send raw frames (src MAC, dst MAC, marker) of the experimental ethertype from `guest`."""
    specs = [",".join(f) for f in frames]
    run("ip", "netns", "exec", guest.ns, sys.executable, "-c", SENDER,
        hex(EXPERIMENTAL_ETHERTYPE), *specs)


class Receiver:
    """A raw-socket listener in a namespace, printing the markers of the frames it gets."""

    def __init__(self, guest: Guest, stop_marker: str, timeout: float = 10) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", guest.ns, sys.executable, "-c", RECEIVER,
             hex(EXPERIMENTAL_ETHERTYPE), stop_marker, str(timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        assert ready and self.proc.stdout.readline().strip() == "ready", "receiver not ready"

    def finish(self, timeout: float = 15) -> list[str]:
        """Wait for the stop marker; return every marker received (with its source MAC)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        assert self.proc.returncode == 0, f"stop marker never arrived: {out!r} {err!r}"
        return out.split("\n")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


# ---- fixtures --------------------------------------------------------------------------------


def _delete_network(bridge: str, guests: list[Guest]) -> None:
    run("ovs-vsctl", "--timeout=10", "--if-exists", "del-br", bridge, check=False)
    for guest in guests:
        run("ip", "link", "del", guest.root_if, check=False)
        run("ip", "netns", "del", guest.ns, check=False)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    if shutil.which("ovs-vsctl") is None:
        pytest.fail("Open vSwitch is not installed")
    tag = f"wvtc{secrets.token_hex(2)}"  # bridge name; namespaces and veths extend it (<=15)
    dpid = int.from_bytes(secrets.token_bytes(8), "big") | 1
    tmp = tempfile.mkdtemp(prefix="wvtc-")
    controller = Controller(f"/var/run/openvswitch/{tag}.openflow",
                            os.path.join(tmp, "control.sock"),
                            os.path.join(tmp, "controller.log"))
    guests: list[Guest] = []
    result = Net(tag, dpid, controller)
    try:
        controller.start()
        run("ovs-vsctl", "--timeout=10",
            "--", "add-br", tag,
            "--", "set", "Bridge", tag, "datapath_type=netdev", "fail_mode=secure",
            "protocols=OpenFlow13", f"other-config:datapath-id={dpid:016x}",
            "other-config:disable-in-band=true",
            "--", "--id=@c", "create", "Controller",
            f"target=\"unix:{controller.openflow}\"", "max_backoff=1000",
            "--", "set", "Bridge", tag, "controller=@c")
        wait_until(lambda: Path(f"/proc/sys/net/ipv4/conf/{tag}").exists(), 10,
                   f"the internal port of {tag}")
        harden_root_interface(tag)  # and it stays down
        for number, name in enumerate("abcd", start=1):
            guest = Guest(ns=f"{tag}{name}", root_if=f"{tag}{name}0", port=number,
                          mac=f"00:03:ff:77:00:{number:02x}", ip=f"169.254.77.{number}")
            guests.append(guest)
            result.guests[name] = guest
            peer = f"{tag}{name}1"
            run("ip", "netns", "add", guest.ns)
            run("ip", "link", "add", guest.root_if, "type", "veth", "peer", "name", peer)
            harden_root_interface(guest.root_if)
            run("ip", "link", "set", peer, "netns", guest.ns)
            ns = ("ip", "netns", "exec", guest.ns)
            run(*ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
            run(*ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")
            run(*ns, "ip", "link", "set", peer, "name", "eth0")
            run(*ns, "ip", "link", "set", "eth0", "address", guest.mac)
            run(*ns, "ip", "addr", "add", f"{guest.ip}/16", "dev", "eth0")
            run(*ns, "ip", "link", "set", "eth0", "up")
            run("ip", "link", "set", guest.root_if, "up")
            run("ovs-vsctl", "--timeout=10", "add-port", tag, guest.root_if, "--", "set",
                "Interface", guest.root_if, f"ofport_request={number}")
        for guest in guests:
            ofport = run("ovs-vsctl", "get", "Interface", guest.root_if, "ofport").stdout
            assert ofport.strip() == str(guest.port)
        client = Client(controller.control)
        result.client = client
        result.register(client, "abc")  # d stays unregistered
        yield result
    finally:
        if result.client is not None:
            result.client.close()
        status = controller.stop()
        Path(controller.openflow).unlink(missing_ok=True)  # left by a controller killed with -9
        _delete_network(tag, guests)
        shutil.rmtree(tmp, ignore_errors=True)
        assert status in (0, None, -signal.SIGKILL), f"controller exit status {status}"


# ---- tests -----------------------------------------------------------------------------------


def test_listens_on_root_only_unix_sockets_and_no_tcp_port(net: Net) -> None:
    out = run("ss", "-Hltunp").stdout
    assert [line for line in out.splitlines() if f"pid={net.controller.pid}," in line] == []
    for path in (net.controller.openflow, net.controller.control):
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode) and st.st_uid == 0, path
        assert oct(st.st_mode & 0o777) == "0o600", path


def test_bridge_connected_in_secure_mode(net: Net) -> None:
    assert run("ovs-vsctl", "get-fail-mode", net.bridge).stdout.strip() == "secure"
    reply = net.client.ok("dump", dpid=net.dpid)
    assert reply["connected"] and reply["in_force"]
    assert [p["port"] for p in reply["ports"]] == [1, 2, 3]
    assert run("ip", "-br", "link", "show", net.bridge).stdout.split()[1] == "DOWN"


def test_control_channel_errors_keep_the_controller_running(net: Net) -> None:
    client = Client(net.controller.control)
    try:
        bad = client.send_raw(b"{not json")
        assert bad["ok"] is False and "malformed JSON" in bad["error"] and bad["id"] is None
        reply = client.request("fly")
        assert not reply["ok"] and "unknown op" in reply["error"]
        reply = client.request("add_port", dpid=net.dpid, port="one", role="guest",
                               mac="00:03:ff:00:00:99")
        assert not reply["ok"] and "'port'" in reply["error"]
        reply = client.request("add_port", dpid=net.dpid, port=9, role="guest", mac="nonsense")
        assert not reply["ok"] and "not a MAC" in reply["error"]
        reply = client.request("add_port", dpid=net.dpid, port=9, role="uplink", mac=None)
        assert not reply["ok"] and "internal switch has no uplink" in reply["error"]
        reply = client.request("add_port", dpid=net.dpid, port=9, role="guest",
                               mac=net.guests["a"].mac)
        assert not reply["ok"] and "registered on both" in reply["error"]
        reply = client.request("sync", dpid=12345)
        assert not reply["ok"] and "no switch" in reply["error"]
        reply = client.request("add_switch", dpid=net.dpid, kind="filter", name="x")
        assert not reply["ok"] and "already registered" in reply["error"]
        assert client.ok("ping")["pid"] == net.controller.pid
        # the failed requests changed nothing
        assert [p["port"] for p in client.ok("dump", dpid=net.dpid)["ports"]] == [1, 2, 3]
    finally:
        client.close()


def test_registered_guests_ping(net: Net) -> None:
    a, b, c = net.guests["a"], net.guests["b"], net.guests["c"]
    assert_ping(a, b)
    assert_ping(c, a)


def test_spoofed_source_is_not_delivered_and_non_ip_passes(net: Net) -> None:
    a, b = net.guests["a"], net.guests["b"]
    receiver = Receiver(b, stop_marker="LEGIT")
    try:
        # Same port, same path: the legitimate frame is switched after the spoofed ones.
        send_frames(a, ("00:03:ff:de:ad:01", BCAST, "SPOOF-BCAST"),
                    ("00:03:ff:de:ad:01", b.mac, "SPOOF-UNICAST"),
                    (net.guests["c"].mac, b.mac, "SPOOF-AS-C"),
                    (a.mac, b.mac, "LEGIT"))
        got = receiver.finish()
    finally:
        receiver.close()
    assert f"LEGIT {a.mac}" in got
    assert not [line for line in got if line.startswith("SPOOF")], got


def test_flows_visible_in_ovs(net: Net) -> None:
    flows = ofctl_flows(net.bridge)
    described = net.client.ok("dump", dpid=net.dpid)["flows"]
    assert len(flows) == len(described)
    cookies = [int(re.search(r"cookie=(0x[0-9a-f]+)", line).group(1), 16) for line in flows]
    assert all(c & COOKIE_MASK == COOKIE for c in cookies), flows  # ours, each fingerprinted
    assert len(set(cookies)) == len(cookies), flows
    assert {re.search(r"\btable=(\d+),", line).group(1) for line in flows} == {"0", "1"}
    assert any("table=0, priority=1000,dl_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0 actions=drop"
               in line for line in flows), flows
    a, b = net.guests["a"], net.guests["b"]
    assert any(f"table=0, priority=500,in_port={a.port},dl_src={a.mac} actions=goto_table:1"
               in line for line in flows), flows
    assert any(f"table=0, priority=100,in_port={a.port} actions=drop" in line
               for line in flows), flows
    assert any(f"table=1, priority=600,dl_dst={b.mac} actions=output:{b.port}" in line
               for line in flows), flows
    assert any("table=1, priority=400,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 "
               "actions=output:1,output:2,output:3" in line for line in flows), flows
    # Linear: admission, spoof drop and known unicast per guest, plus a constant.
    assert len(flows) == 3 * 3 + 4


def test_no_frame_goes_back_to_its_sender(net: Net) -> None:
    # One group flow lists every port and one flow per MAC outputs to its owner: the switch
    # itself must skip the in_port (OpenFlow 1.3), or a guest would hear its own frames.
    a, b = net.guests["a"], net.guests["b"]
    receiver = Receiver(a, stop_marker="STOP")
    try:
        send_frames(a, (a.mac, BCAST, "SELF-BCAST"), (a.mac, "01:00:5e:00:00:fb", "SELF-MCAST"),
                    (a.mac, a.mac, "SELF-UNICAST"))
        send_frames(b, (b.mac, a.mac, "STOP"))
        got = receiver.finish()
    finally:
        receiver.close()
    assert f"STOP {b.mac}" in got
    assert not [line for line in got if line.startswith("SELF")], got


def test_change_is_in_force_when_acknowledged(net: Net) -> None:
    b = net.guests["b"]
    net.client.ok("remove_port", dpid=net.dpid, port=b.port)
    # No polling: the ack came after the barrier, so OVS shows the change already.
    assert not any(f"in_port={b.port}" in line or f"output:{b.port}" in line
                   for line in ofctl_flows(net.bridge))
    net.client.ok("add_port", dpid=net.dpid, port=b.port, role="guest", mac=b.mac)
    assert any(f"in_port={b.port}," in line for line in ofctl_flows(net.bridge))
    assert_ping(net.guests["a"], b)


def test_concurrent_clients_and_dhcp_steering_accepted_by_ovs(net: Net) -> None:
    errors: list[str] = []

    def worker(first: int) -> None:
        client = Client(net.controller.control)
        try:
            for number in range(first, first + 6):
                reply = client.request("add_port", dpid=net.dpid, port=number, role="guest",
                                       mac=f"00:03:ff:55:00:{number:02x}")
                if not reply["ok"]:
                    errors.append(reply["error"])
            for number in range(first, first + 6, 2):
                reply = client.request("remove_port", dpid=net.dpid, port=number)
                if not reply["ok"]:
                    errors.append(reply["error"])
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(first,)) for first in (10, 20, 30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    extra = [n for first in (10, 20, 30) for n in range(first + 1, first + 6, 2)]
    dump = net.client.ok("dump", dpid=net.dpid)
    assert [p["port"] for p in dump["ports"]] == [1, 2, 3] + extra
    flows = ofctl_flows(net.bridge)
    assert len(flows) == len(dump["flows"])
    in_ports = {int(m) for line in flows for m in re.findall(r"in_port=(\d+)", line)}
    assert in_ports == {1, 2, 3, *extra}

    # The DHCP steering flow (eth_type, ip_proto, udp_dst prerequisites) is accepted by OVS.
    net.client.ok("add_port", dpid=net.dpid, port=40, role="dhcp", mac="00:03:ff:55:00:40")
    net.client.ok("set_steering", dpid=net.dpid, on=True)
    steer = [line for line in ofctl_flows(net.bridge) if "priority=800" in line]
    assert len(steer) == 3 + len(extra)
    assert all("udp," in line and "tp_dst=67" in line and line.endswith("actions=output:40")
               for line in steer), steer
    net.client.ok("set_steering", dpid=net.dpid, on=False)
    for number in [40, *extra]:
        net.client.ok("remove_port", dpid=net.dpid, port=number)
    assert not [line for line in ofctl_flows(net.bridge) if "priority=800" in line]
    assert_ping(net.guests["a"], net.guests["b"])


def test_killed_controller_keeps_flows_leaks_nothing_and_restart_restores(net: Net) -> None:
    a, b, d = net.guests["a"], net.guests["b"], net.guests["d"]
    before = ofctl_flows(net.bridge)

    def unregistered_d_is_dropped() -> None:
        misses = table_miss_packets(net.bridge)
        receiver = Receiver(a, stop_marker="STOP")
        try:
            send_frames(d, (d.mac, BCAST, "LEAK-BCAST"), (d.mac, a.mac, "LEAK-UNICAST"))
            wait_until(lambda: table_miss_packets(net.bridge) >= misses + 2, 10,
                       "the table-miss drop to count d's frames")
            send_frames(b, (b.mac, a.mac, "STOP"))
            got = receiver.finish()
        finally:
            receiver.close()
        assert not [line for line in got if line.startswith("LEAK")], got

    unregistered_d_is_dropped()

    net.client.close()
    net.client = None
    net.controller.kill9()
    # OVS notices the dead controller; in secure mode it keeps every flow and adds none.
    wait_until(lambda: not ovs_connected(net.bridge), 15,
               "OVS to see the dead controller's connection closed")
    assert ofctl_flows(net.bridge) == before
    assert_ping(a, b)
    unregistered_d_is_dropped()
    assert ofctl_flows(net.bridge) == before

    net.controller.start()
    net.client = Client(net.controller.control)
    net.register(net.client, "abc")  # sync returns once OVS reconnected and flows are in
    assert ofctl_flows(net.bridge) == before  # table 0 cleared and rebuilt, same flows
    assert_ping(a, b)
    net.client.ok("add_port", dpid=net.dpid, port=d.port, role="guest", mac=d.mac)
    assert any(f"in_port={d.port}," in line for line in ofctl_flows(net.bridge))
    assert_ping(d, a)


def test_sigterm_exits_cleanly_and_a_live_socket_is_not_taken_over(
        net: Net, tmp_path: Path) -> None:
    second = Controller(f"/var/run/openvswitch/{net.bridge}2.openflow", net.controller.control,
                        str(tmp_path / "second.log"))
    try:
        with pytest.raises(AssertionError, match="did not get ready"):
            second.start()  # the path belongs to the running controller
        assert second.proc.returncode == 1
        assert os.path.exists(net.controller.control)
    finally:
        second.stop()  # (when the test fails, the second controller must not outlive it)
        Path(second.openflow).unlink(missing_ok=True)

    third = Controller(f"/var/run/openvswitch/{net.bridge}3.openflow", str(tmp_path / "c.sock"),
                       str(tmp_path / "third.log"))
    third.start()
    try:
        client = Client(third.control)
        assert client.ok("ping")["pid"] == third.pid
        client.close()
    finally:
        assert third.stop() == 0
    assert not os.path.exists(third.control)
