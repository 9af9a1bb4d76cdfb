"""Helpers shared by the benchmarks in ``bench/`` (startup, bridge, nat, dhcp).

Imported as a sibling module (``import common``): each script puts its own directory on ``sys.path``
first, so this works for ``python bench/x.py`` and ``python -m bench.x`` alike. Where the project
already has the helper (``wvpclab.runtime.cleanup``, ``rundir``, ``ovs``, ``procs``,
``wvpclab.runtime.lab``), it is used. The benchmarks need the project's own dependencies only, not
its test extra (``scripts/install.sh`` without ``--test`` is enough; ``tests/unit/test_imports.py``
checks that every script imports without it).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from wvpclab.runtime import cleanup, procs, rundir
from wvpclab.runtime.ovs import vsctl
from wvpclab.runtime.procs import cmdline, wait_ready  # noqa: F401 - re-exported for the scripts

#: Child processes running right now, by PID: stopped by PID if we are interrupted.
LIVE: dict[int, subprocess.Popen] = {}


def logger(tag: str) -> Callable[[str], None]:
    """``log(message)`` printing ``[tag] message`` to stderr."""
    def log(message: str) -> None:
        print(f"[{tag}] {message}", file=sys.stderr, flush=True)

    return log


def now() -> float:
    return time.perf_counter()


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


def header(script: str) -> str:
    """``# <command line>   [<date>, <host>, Linux <release>, <N> cores`` (the caller closes it)."""
    line = shlex.join([sys.executable, os.path.relpath(script)] + sys.argv[1:])
    return (f"# {line}   [{datetime.datetime.now().isoformat(timespec='seconds')}, "
            f"{platform.node()}, Linux {platform.release()}, {os.cpu_count()} cores")


# -- commands --------------------------------------------------------------------------------------
def run(cmd: list[str], stdin: str | None = None, timeout: float = 120, check: bool = True) -> str:
    res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                         check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd[:5])} failed ({res.returncode}): "
                           f"{res.stderr.strip()[:400]}")
    return res.stdout


def ip_batch(lines: list[str], force: bool = False, check: bool = True) -> None:
    if lines:
        run(["ip"] + (["-force"] if force else []) + ["-batch", "-"], "\n".join(lines) + "\n",
            check=check)


ovs = vsctl  # ovs-vsctl --timeout=10 ..., bounded


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    return procs.wait_until(condition, timeout, interval)


def harden(name: str) -> None:
    """No ARP answers, strict rp_filter, no IPv6 on a root-namespace interface we created."""
    from wvpclab.runtime.realize import harden_root_interface  # lazy: Mininet only when needed

    harden_root_interface(name)


# -- what exists -----------------------------------------------------------------------------------
def links_matching(rx: str | re.Pattern) -> list[str]:
    rx = re.compile(rx)
    return [n for n in os.listdir("/sys/class/net") if rx.match(n)]


def netns_matching(rx: str | re.Pattern) -> list[str]:
    rx = re.compile(rx)
    try:
        return [n for n in os.listdir("/run/netns") if rx.match(n)]
    except FileNotFoundError:
        return []


def ovs_bridges() -> list[str]:
    try:
        return ovs("list-br").split()
    except (RuntimeError, subprocess.TimeoutExpired, FileNotFoundError):
        return []


def remove_ovs_ours(rx: re.Pattern, skip_link: Callable[[str], bool]) -> dict[str, list[str]]:
    """Removes our namespaces, OVS bridges and veths (names matching ``rx``; links for which
    ``skip_link`` is true go with their bridge); returns what was found."""
    found = {"netns": netns_matching(rx), "ovs bridges": [b for b in ovs_bridges() if rx.match(b)],
             "links": links_matching(rx)}
    if found["ovs bridges"]:
        args: list[str] = []
        for br in found["ovs bridges"]:
            args += ["--", "--if-exists", "del-br", br]
        ovs(*args[1:], check=False)
    lines = [f"netns del {x}" for x in found["netns"]]
    lines += [f"link del {x}" for x in links_matching(rx) if not skip_link(x)]
    if lines:
        run(["ip", "-force", "-batch", "-"], "\n".join(lines) + "\n", check=False)
    wait_until(lambda: not links_matching(rx), 20)
    return found


def still_there(rx: re.Pattern, prefix: str | None) -> list[str]:
    """OVS bridges, links and namespaces named like ``rx`` or the lab prefix ``prefix-``."""
    return [x for x in ovs_bridges() + os.listdir("/sys/class/net") + netns_matching(".")
            if rx.match(x) or (prefix and x.startswith(prefix + "-"))]


# -- processes -------------------------------------------------------------------------------------
def stop_proc(proc: subprocess.Popen, sig: int = signal.SIGTERM,
              term_wait: float = 5.0) -> int | None:
    """Stops one process we started, by its PID: ``sig``, then SIGKILL after ``term_wait`` s; reaps
    it, closes its pipes and returns its exit status."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(term_wait)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
    for f in (proc.stdout, proc.stderr, proc.stdin):
        if f:
            f.close()
    LIVE.pop(proc.pid, None)
    return proc.returncode


def kill_live(sig: int = signal.SIGTERM) -> None:
    """Stops every process in LIVE (by PID)."""
    for proc in list(LIVE.values()):
        stop_proc(proc, sig)


# -- guest/server setups (bridge, nat) -------------------------------------------------------------
class Setup:
    """Where to run the guest's and the server's commands, and the server's address."""

    label = ""
    server_ip = ""
    shown_args: int | None = None  # how much of a failed command the error shows (None: all)

    def popen(self, where: str, argv: list[str], **kw: Any) -> subprocess.Popen:
        raise NotImplementedError

    def start(self, where: str, argv: list[str], **kw: Any) -> subprocess.Popen:
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        proc = self.popen(where, argv, **kw)
        LIVE[proc.pid] = proc
        return proc

    def output(self, where: str, argv: list[str], timeout: float) -> str:
        proc = self.start(where, argv)
        shown = shlex.join(argv[:self.shown_args])
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_proc(proc, signal.SIGKILL)
            raise RuntimeError(f"{self.label}: {shown} took over {timeout:.0f} s") from None
        LIVE.pop(proc.pid, None)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.label}: {shown} failed ({proc.returncode}): "
                               f"{(err or out).decode(errors='replace').strip()[:400]}")
        return out.decode(errors="replace")


class NetnsSetup(Setup):
    """Guest and server in iproute2 namespaces."""

    #: The namespace of each role ("guest", "server"): each subclass sets it.
    where: dict[str, str]

    def popen(self, where: str, argv: list[str], **kw: Any) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.where[where]] + argv, **kw)


def iperf(setup: Setup, seconds: int, streams: int, key: str = "gbps") -> dict[str, float]:
    """iperf3 TCP guest -> server (``-t seconds -O 1 -J``).

    Returns:
        ``{key: Gbit/s, "retr": retransmits}``.
    """
    argv = ["iperf3", "-c", setup.server_ip, "-t", str(seconds), "-O", "1", "-J"]
    if streams > 1:
        argv += ["-P", str(streams)]
    data = json.loads(setup.output("guest", argv, seconds + 30))
    if "error" in data:
        raise RuntimeError(f"{setup.label}: iperf3: {data['error']}")
    end = data["end"]
    return {key: end["sum_received"]["bits_per_second"] / 1e9,
            "retr": end["sum_sent"].get("retransmits", 0)}


# -- lab name --------------------------------------------------------------------------------------
def known_test_prefixes() -> set[str]:
    """Prefixes of the lab names the project's tests use (another engineer may be running them)."""
    names: set[str] = set()
    for path in (REPO / "tests").rglob("*.py"):
        try:
            names.update(re.findall(r"""["'](t-[A-Za-z0-9_.-]+)["']""", path.read_text()))
        except OSError:
            pass
    return {rundir.prefix_for(n) for n in names}


def lab_name(base: str) -> str:
    """``base`` (or a variant) whose prefix no running lab, leftover or test lab uses."""
    taken = known_test_prefixes()
    if rundir.RUN_ROOT.is_dir():
        taken |= {p.name for p in rundir.RUN_ROOT.iterdir()}
    taken |= {rundir.NAME_RE.match(x).group(0)[:-1]  # type: ignore[union-attr]
              for x in cleanup.lab_bridges() + cleanup.lab_links()}
    for suffix in [""] + [f"-{c}" for c in "abcdefghijklmnopqrstuvwxyz"]:
        if rundir.prefix_for(base + suffix) not in taken:
            return base + suffix
    raise RuntimeError("no lab name with a free prefix")


# -- report ----------------------------------------------------------------------------------------
def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
