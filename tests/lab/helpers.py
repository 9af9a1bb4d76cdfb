"""Helpers for lab tests: tcpdump captures, frames sent with scapy, bounded waits, leftovers."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from wvpclab.runtime import cgroups, cleanup, procs, rundir


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Polls until ``condition()`` is truthy; returns it, or fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def read_pty(fd: int, until: str, timeout: float) -> str:
    """What a terminal (a pty's master ``fd``) shows until ``until`` appears (or ``timeout``
    seconds pass)."""
    out, deadline = b"", time.monotonic() + timeout
    while until.encode() not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace").replace("\r", "")


class Capture:
    """tcpdump into a pcap on one interface of a node (of the root namespace when node is None)."""

    def __init__(self, node: Any, iface: str, path: Path, bpf: str = "",
                 inbound: bool = False) -> None:
        self.path = path
        cmd = ["tcpdump", "-i", iface, "-U", "--immediate-mode", "-n", "-w", str(path)]
        cmd += ["-Q", "in"] if inbound else []
        cmd += bpf.split() if bpf else []
        if node is None:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         bufsize=0, start_new_session=True)
        else:
            self.proc = node.popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   bufsize=0)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        seen = b""
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                seen += chunk
                if b"listening on" in seen:
                    return
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"tcpdump exited: {seen.decode(errors='replace')}")
        raise AssertionError(f"tcpdump did not start listening in {timeout} s: {seen}")

    def stop(self) -> list:
        """Stops tcpdump and returns the frames it captured (scapy packets)."""
        import scapy.layers.all  # noqa: F401 - dissect Ethernet, IP, ARP ...
        from scapy.utils import rdpcap

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT) if self._own_group() else self.proc.send_signal(
                signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        if not self.path.exists() or self.path.stat().st_size == 0:
            return []
        return list(rdpcap(str(self.path)))

    def _own_group(self) -> bool:
        try:
            return os.getpgid(self.proc.pid) == self.proc.pid
        except ProcessLookupError:
            return False


def read_pcap(path: Path) -> list:
    """The frames in a pcap that tcpdump may still be writing (a partial last record is ignored)."""
    import scapy.layers.all  # noqa: F401 - dissect Ethernet, IP, ARP ...
    from scapy.utils import PcapReader

    frames = []
    # An error (a record cut short while tcpdump writes it) ends the reading; the frames before it
    # are kept, which list(reader) would lose.
    with contextlib.suppress(Exception), PcapReader(str(path)) as reader:
        for frame in reader:
            frames.append(frame)  # noqa: PERF402 - see above
    return frames


def address(lab: Any, node: str, dev: str = "eth0") -> str:
    """A node's IPv4 address on an interface, as ``ip`` shows it (static or leased)."""
    out = lab.node(node).cmd(f"ip -4 -o addr show dev {dev} scope global").split()
    return out[out.index("inet") + 1].split("/")[0]


def send_frames(node: Any, iface: str, frames_py: str) -> None:
    """Sends frames with scapy from inside a node; ``frames_py`` is a Python expression for them."""
    code = (f"from scapy.all import *; conf.verb = 0; sendp({frames_py}, iface={iface!r})")
    proc = node.popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def marker_frames(frames: list, marker: bytes) -> list:
    return [f for f in frames if marker in bytes(f)]


def leftovers(prefix: str) -> list[str]:
    """What a lab with this prefix left on the machine (empty when clean)."""
    left = [f"bridge {b}" for b in cleanup.lab_bridges(prefix)]
    left += [f"interface {n}" for n in cleanup.lab_links(prefix)]
    state = rundir.run_dir(prefix)
    if state.exists():
        left.append(f"run dir {state}")
    if rundir.dns_dir(prefix).exists():
        left.append(f"name files {rundir.dns_dir(prefix)}")
    if rundir.openflow_socket(prefix).exists():
        left.append(f"socket {rundir.openflow_socket(prefix)}")
    left += [f"cgroup {path}" for path in cgroups.lab_groups(prefix)]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            line = procs.cmdline(int(entry))
            if f"--control {rundir.run_dir(prefix)}" in line:
                left.append(f"controller process {entry}")
    return left


def end_run(proc: subprocess.Popen, name: str) -> None:
    """After a test of ``wvpclab run`` (lab ``name``): if the run still goes (the test failed before
    it ended), kill -9 it and clean what it leaves, so that no later test finds that lab up."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=10)
        cleanup.clean(name)


def shells_alive(pids: list[int]) -> list[int]:
    return [p for p in pids if "mininet:" in procs.cmdline(p)]


UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(float(sys.argv[4]))
s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
try:
    print(s.recvfrom(4096)[0].decode())
except OSError:
    print("no answer")
"""


def udp_exchange(node: Any, host: str, port: int, payload: str, timeout: float = 2.0) -> str:
    """Sends one UDP datagram from a node and returns the answer, or 'no answer'."""
    proc = node.popen([sys.executable, "-c", UDP_CLIENT, host, str(port), payload, str(timeout)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=timeout + 10)
    return out.strip()


def example_as(tmp_path: Path, example: str, name: str) -> Path:
    """A copy of an example topology (``topologies/EXAMPLE``) under another lab name, so that it has
    a prefix of its own and may run beside another copy."""
    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "topologies" / example).read_text())
    doc["name"] = name
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def example_graph(example: str, name: str) -> Any:
    """An example topology's graph (``topologies/EXAMPLE``) under a lab name of the suite's
    (``t-…``): a teacher's lab of the example's own name may run beside the suite."""
    from wvpclab.model import topology
    graph = topology.load(Path(__file__).resolve().parents[2] / "topologies" / example)
    graph.graph["name"] = name
    return graph


def flows(bridge: str) -> dict[str, float]:
    """The bridge's flows (without counters) and how long each has been on the switch."""
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge], check=True,
                         capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        age = re.search(r"duration=([\d.]+)s", line)
        if age:
            key = re.sub(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?\s*", "",
                         line.strip())
            found[key] = float(age.group(1))
    return found
