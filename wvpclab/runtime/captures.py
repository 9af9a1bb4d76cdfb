"""Packet captures of guest NICs (tcpdump in the VM, immediate mode, so what was sent just before
``stop`` is in the file)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mininet.node import Node

from wvpclab.errors import LabError, UsageError


class Captures:
    """The captures running in a lab, by (VM, NIC index)."""

    def __init__(self) -> None:
        self.running: dict[tuple[str, int], tuple[subprocess.Popen, Path]] = {}
        #: How to stop a capture on another server (there, so that it ends its file whole).
        self.remote_stop: dict[tuple[str, int], Callable[[], object]] = {}

    def start(self, node: Node, vm: str, index: int, path: str | Path | None = None) -> Path:
        """Starts a pcap of a NIC (both directions, as the guest sees them); returns the file."""
        if (vm, index) in self.running:
            raise UsageError(f"{vm} eth{index} is already being captured to "
                             f"{self.running[(vm, index)][1]}")
        out = (Path(path) if path else Path.cwd() / f"capture-{vm}-eth{index}.pcap").resolve()
        remote = getattr(node, "remote", None) is not None
        tcpdump = ["tcpdump", "-i", f"eth{index}", "-U", "--immediate-mode", "-n", "-w",
                   "-" if remote else str(out)]
        if remote:  # on another server: the pcap streams back here; its PID, to stop it there
            sink = out.open("wb")
            try:
                proc = node.popen(["sh", "-c", 'echo "tcpdump-pid=$$" >&2; exec "$@"', "sh",
                                   *tcpdump], stdout=sink, stderr=subprocess.PIPE, bufsize=0)
            finally:
                sink.close()
        else:
            proc = node.popen(tcpdump, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              bufsize=0)
        seen = b""
        deadline = time.monotonic() + 10
        fd = proc.stderr.fileno()
        while b"listening on" not in seen:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait(5)
                proc.stderr.close()
                raise LabError(f"tcpdump on {vm} eth{index} did not start: "
                               f"{seen.decode(errors='replace').strip()}")
            if select.select([fd], [], [], 0.2)[0]:
                seen += os.read(fd, 4096)
        self.running[(vm, index)] = (proc, out)
        if remote:
            pid = seen.decode(errors="replace").split("tcpdump-pid=", 1)[1].split()[0]
            self.remote_stop[(vm, index)] = lambda: node.cmd(f"kill -INT {int(pid)}")
        return out

    def stop(self, vm: str, index: int) -> Path:
        """Ends one capture (tcpdump flushes its file); returns the file."""
        if (vm, index) not in self.running:
            raise UsageError(f"{vm} eth{index} is not being captured")
        proc, out = self.running.pop((vm, index))
        there = self.remote_stop.pop((vm, index), None)
        if there is not None and proc.poll() is None:
            with contextlib.suppress(Exception):  # its server gone: ended here instead
                there()
                proc.wait(10)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr:
            proc.stderr.close()
        return out

    def stop_all(self) -> list[tuple[str, Path]]:
        """Ends every capture (tcpdump flushes its file); returns (NIC, file) pairs."""
        return [(f"{vm} eth{index}", self.stop(vm, index)) for vm, index in list(self.running)]


class LabCaptures:
    """A lab's captures, for ``Lab``: of the NICs it has, each started and ended between its
    changes (under the lock a change holds)."""

    captures: Captures
    changes: Any  # (its lock)
    node: Callable[[str], Node]
    _nic: Callable[[str, int], dict]

    def capture(self, vm: str, index: int, path: str | Path | None = None) -> Path:
        """Starts a pcap of a NIC (both directions, as the guest sees them); returns the file."""
        self._nic(vm, index)
        with self.changes.lock:
            return self.captures.start(self.node(vm), vm, index, path)

    def stop_captures(self) -> list[tuple[str, Path]]:
        """Ends every capture (tcpdump flushes its file); returns (NIC, file) pairs."""
        with self.changes.lock:
            return self.captures.stop_all()

    def stop_capture(self, vm: str, index: int) -> Path:
        """Ends the capture of one NIC; returns its file."""
        with self.changes.lock:
            return self.captures.stop(vm, index)

    def captures_running(self) -> list[tuple[str, int]]:
        """The NICs being captured, as (VM, index)."""
        return sorted(self.captures.running.copy())
