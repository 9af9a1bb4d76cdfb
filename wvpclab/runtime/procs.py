"""Processes the lab starts: waiting for their ready line (or any condition), and reading /proc
about a PID."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Callable

from wvpclab.errors import LabError


def wait_ready(proc: subprocess.Popen, line: str, timeout: float, what: str) -> None:
    """Reads ``proc``'s stdout until ``line`` appears; raises LabError if it exits or the time
    runs out (reading the raw descriptor, so nothing sits unseen in a Python buffer)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 4096)
            seen += chunk
            if line.encode() in seen:
                return
            if not chunk:
                proc.wait(5)
                raise LabError(f"{what} exited with code {proc.returncode} while starting")
        elif proc.poll() is not None:
            raise LabError(f"{what} exited with code {proc.returncode} while starting")
    raise LabError(f"{what} did not get ready in {timeout:.0f} s")


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Polls ``condition()`` until it is true or ``timeout`` runs out; returns whether it became
    true."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    """True if a process with this PID exists (and is not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> str:
    """The command line of a process, or '' if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def end(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """Ends a child we started, by its PID: ``sig``, then SIGKILL after ``grace`` seconds; reaps it
    and closes its stdout pipe."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout:
        proc.stdout.close()
