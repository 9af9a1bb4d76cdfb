"""Packet captures of guest NICs (tcpdump in the VM, immediate mode, so what was sent just before
``stop`` is in the file)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

from mininet.node import Node

from wvpclab.errors import LabError, UsageError


class Captures:
    """The captures running in a lab, by (VM, NIC index)."""

    def __init__(self) -> None:
        self.running: dict[tuple[str, int], tuple[subprocess.Popen, Path]] = {}

    def start(self, node: Node, vm: str, index: int, path: str | Path | None = None) -> Path:
        """Starts a pcap of a NIC (both directions, as the guest sees them); returns the file."""
        if (vm, index) in self.running:
            raise UsageError(f"{vm} eth{index} is already being captured to "
                             f"{self.running[(vm, index)][1]}")
        out = (Path(path) if path else Path.cwd() / f"capture-{vm}-eth{index}.pcap").resolve()
        proc = node.popen(["tcpdump", "-i", f"eth{index}", "-U", "--immediate-mode", "-n", "-w",
                           str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0)
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
        return out

    def stop_all(self) -> list[tuple[str, Path]]:
        """Ends every capture (tcpdump flushes its file); returns (NIC, file) pairs."""
        done = []
        for (vm, index), (proc, out) in list(self.running.items()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if proc.stderr:
                proc.stderr.close()
            done.append((f"{vm} eth{index}", out))
            del self.running[(vm, index)]
        return done
