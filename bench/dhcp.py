#!/usr/bin/env python3
"""DHCP benchmark: wvpclab's DHCP server beside dnsmasq and Kea, on the same emulated network.

Three servers, one after the other, each restarted with an empty lease file before every
measurement:

* **wvpclab**: ``python -m wvpclab.runtime.dhcp.server`` (JSON lease file, fsync per batch
before ACKs);
* **dnsmasq**: ``dnsmasq -k --no-ping --port=0 --quiet-dhcp`` with a private lease file;
* **Kea**: ``kea-dhcp4`` with a memfile lease database (persist true), raw sockets, default
  threading.

Two measurements:

1. **Leases per second at the knee (full DORA).** Namespaces ``bnchd-srv`` (server, 169.254.0.1/16)
   and ``bnchd-cli`` (169.254.0.2/16) joined by one veth pair, nothing in the root namespace. Kea's
   ``perfdhcp -4 -g single`` acts as a relay (giaddr 169.254.0.2, port 67) and asks for RATE DORA
   exchanges a second for a few seconds, RATE doubling (then bisected) until fewer than 95 % of
   the exchanges complete. The knee is the highest RATE at which >= 95 % completed. For this test
   every server gets the pool 169.254.16.0-169.254.255.254 (61,439 addresses) so the pool never
   limits it.
2. **A burst of 200 real clients.** 200 namespaces ``bnchd-c0``..``bnchd-c199``, each with a veth
   onto the Linux bridge ``bnchdbr0`` in the root namespace, with the server namespace on the same
   bridge (every root-namespace interface hardened: arp_ignore=8, rp_filter=1, no IPv6, no address).
   Every client gets a fresh random MAC, then ``busybox udhcpc -q -n -f -t 5 -T 1 -s /bin/true``
   starts in all 200 at once (released together through a FIFO, just after a whole second of
   CLOCK_MONOTONIC: udhcpc counts its -T wait in whole seconds). Measured: clients that got no
   lease, and the time until all that succeeded hold one (median of 3 bursts). The internal pool
   169.254.0.16-169.254.10.254 is used here.

Figures go to stdout, progress to stderr. It is a measurement, not a test: it never fails on a slow
result. Run as root from the checkout: ``.venv/bin/python bench/dhcp.py [--quick]
[--servers wvpclab,dnsmasq,kea] [--keep] [--profile]``.

Everything it creates is named ``bnchd…`` (namespaces ``bnchd-*``, bridge ``bnchdbr0``, veths
``bnchdv*``) or lives in its own temporary directory (lease, pid, log and config files). Processes
are stopped by the PIDs it started; it never runs ``pkill``, ``killall`` or ``mn -c``. All DHCP
traffic stays inside these namespaces and the bridge.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import json
import math
import os
import pstats
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = str(Path(__file__).resolve().parent)
if BENCH not in sys.path:  # `import common` also under `python -m bench.dhcp`
    sys.path.insert(0, BENCH)

from common import (
    LIVE,
    REPO,
    cmdline,
    harden,
    header,
    ip_batch,
    links_matching,
    logger,
    netns_matching,
    now,
    run,
    stop_proc,
    wait_until,
)

# -- names and addresses ---------------------------------------------------------------------------
SRV_NS = "bnchd-srv"
CLI_NS = "bnchd-cli"
BRIDGE = "bnchdbr0"
SRV_PORT = "bnchdvs"  # the server namespace's port on the bridge (root-namespace end)
IFACE = "eth0"  # the interface name inside every namespace
OURS_NS = re.compile(r"^bnchd-")
OURS_LINK = re.compile(r"^bnchd")
NETWORK = "169.254.0.0/16"
MASK = "255.255.0.0"
SERVER_IP = "169.254.0.1"
RELAY_IP = "169.254.0.2"
INTERNAL_POOL = ("169.254.0.16", "169.254.10.254")
RATE_POOL = ("169.254.16.0", "169.254.255.254")
LEASE_TIME = 3600

# -- the measurements ------------------------------------------------------------------------------
SERVERS = ("wvpclab", "dnsmasq", "kea")
LABELS = {"wvpclab": "wvpclab", "dnsmasq": "dnsmasq", "kea": "Kea"}
KNEE_COMPLETION = 0.95
FULL_RATES = [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600]
QUICK_RATES = [200, 800, 3200, 12800]
PERFDHCP_CLIENTS = 50000  # -R: fewer than the rate pool, so no step can exhaust it
PERFDHCP_WAIT_US = 1_000_000  # -W: after the period, wait this long for answers still on their way
BURST_CLIENTS = 200
UDHCPC = ["busybox", "udhcpc", "-q", "-n", "-f", "-i", IFACE, "-s", "/bin/true",
          "-t", "5", "-T", "1"]
RELEASE_PHASE = 0.02  # release the burst this long after a whole second of CLOCK_MONOTONIC
BURST_TIMEOUT = 40.0  # udhcpc gives up by itself after ~5-6 s; this only guards against a hang

#: tool -> Debian package that provides it
TOOLS = {"ip": "iproute2", "perfdhcp": "kea-admin", "busybox": "busybox",
         "dnsmasq": "dnsmasq-base", "kea-dhcp4": "kea-dhcp4-server"}

log = logger("dhcp")


def ns_script(per_ns: dict[str, list[str]]) -> None:
    """Runs ``ip -n NS -batch`` for every namespace, all from one shell."""
    script = "".join(f"ip -n {ns} -batch - <<'EOF'\n" + "\n".join(lines) + "\nEOF\n"
                     for ns, lines in per_ns.items())
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="bnchd-") as f:
        f.write("set -e\n" + script)
        f.flush()
        run(["sh", f.name])


def our_links() -> list[str]:
    return sorted(links_matching(OURS_LINK))


def our_netns() -> list[str]:
    return sorted(netns_matching(OURS_NS))


def stop_live() -> None:
    """Stops every process we started and have not reaped: clients at once, servers gently first."""
    procs = list(LIVE.values())
    for proc in procs:
        if proc.poll() is None and getattr(proc, "bnchd_kind", "") != "server":
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for proc in procs:
        stop_proc(proc, term_wait=5 if getattr(proc, "bnchd_kind", "") == "server" else 1)


def spawn(cmd: list[str], kind: str, **kw: Any) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **kw)
    proc.bnchd_kind = kind  # type: ignore[attr-defined]
    LIVE[proc.pid] = proc
    return proc


def udp_port_bound(pid: int, port: int) -> bool:
    """True once some socket in ``pid``'s network namespace listens on UDP ``port``."""
    try:
        with open(f"/proc/{pid}/net/udp", encoding="ascii") as f:
            next(f)
            return any(line.split()[1].endswith(f":{port:04X}") for line in f)
    except (OSError, StopIteration, IndexError):
        return False


def udp_counters(pid: int) -> dict[str, int]:
    """The UDP counters (``Udp:`` of /proc/net/snmp) of ``pid``'s network namespace."""
    try:
        lines = [x.split() for x in Path(f"/proc/{pid}/net/snmp").read_text().splitlines()
                 if x.startswith("Udp:")]
        return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:])}
    except (OSError, IndexError, ValueError):
        return {}


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def backlog_drops() -> int:
    """Frames the kernel dropped because a CPU's input backlog was full (netdev_max_backlog), summed
    over CPUs (/proc/net/softnet_stat, 2nd column). Machine-wide: other traffic counts too."""
    try:
        return sum(int(line.split()[1], 16)
                   for line in Path("/proc/net/softnet_stat").read_text().splitlines())
    except (OSError, IndexError, ValueError):
        return 0


# -- tools -----------------------------------------------------------------------------------------
def server_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def check_tools(servers: list[str]) -> list[str]:
    """Names the missing pieces (and the Debian packages that bring them); empty if all there."""
    need = ["ip", "perfdhcp", "busybox"] + [s if s != "kea" else "kea-dhcp4"
                                            for s in servers if s != "wvpclab"]
    missing = [t for t in need if shutil.which(t) is None]
    problems = []
    if missing:
        pkgs = sorted({TOOLS[t] for t in missing})
        problems.append(f"missing {', '.join(missing)}: apt-get install -y --no-install-recommends "
                        f"{' '.join(pkgs)}   (perfdhcp comes with kea-admin on Debian 12)")
    if "busybox" not in missing:
        res = subprocess.run(["busybox", "--list"], capture_output=True, text=True, check=False)
        if "udhcpc" not in res.stdout.split():
            problems.append("busybox has no udhcpc applet: apt-get install -y busybox")
    if "wvpclab" in servers:
        res = subprocess.run([server_python(), "-c", "import wvpclab.runtime.dhcp.server"],
                             capture_output=True, text=True, cwd=REPO, check=False)
        if res.returncode != 0:
            problems.append(f"{server_python()} cannot import wvpclab.runtime.dhcp.server "
                            "(run `make install` in the checkout): " + res.stderr.strip()[-200:])
    return problems


def versions(servers: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}

    def first(cmd: list[str]) -> str:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
            return (res.stdout or res.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    out["perfdhcp"] = first(["perfdhcp", "-v"]).replace("VERSION: ", "")
    out["wvpclab"] = "python " + first([server_python(), "-c",
                                        "import platform; print(platform.python_version())"])
    if "dnsmasq" in servers:
        out["dnsmasq"] = first(["dnsmasq", "--version"]).split("  ")[0].replace(
            "Dnsmasq version ", "")
    if "kea" in servers:
        out["kea"] = first(["kea-dhcp4", "-v"])
    return out


# -- servers ---------------------------------------------------------------------------------------
class Server:
    """One server process in ``bnchd-srv``, started afresh (empty lease file) each time."""

    def __init__(self, kind: str, workdir: Path, profile: bool = False) -> None:
        self.kind = kind
        self.workdir = workdir
        self.profile = profile
        self.proc: subprocess.Popen | None = None
        self.dir: Path | None = None
        self.udp_before: dict[str, int] = {}
        self.crash: str | None = None

    def command(self, d: Path, pool: tuple[str, str]) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        if self.kind == "wvpclab":
            cmd = [server_python()]
            if self.profile:
                cmd += ["-m", "cProfile", "-o", str(d / "server.prof")]
            cmd += ["-m", "wvpclab.runtime.dhcp.server", "--iface", IFACE, "--network", NETWORK,
                    "--server", SERVER_IP, "--pool", f"{pool[0]}-{pool[1]}",
                    "--lease-time", str(LEASE_TIME), "--leases", str(d / "leases.json"),
                    "--log", str(d / "server.log"), "--stats", str(d / "stats.json")]
            env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
            return cmd, env
        if self.kind == "dnsmasq":
            return ["dnsmasq", "-k", "--port=0", "--conf-file=/dev/null", "--no-ping",
                    "--quiet-dhcp",
                    f"--dhcp-leasefile={d / 'dnsmasq.leases'}",
                    f"--dhcp-range={pool[0]},{pool[1]},{MASK},{LEASE_TIME}",
                    "--bind-interfaces", f"--interface={IFACE}", "--dhcp-lease-max=1000000",
                    f"--pid-file={d / 'dnsmasq.pid'}", f"--log-facility={d / 'dnsmasq.log'}"], env
        conf = {"Dhcp4": {
            "interfaces-config": {"interfaces": [IFACE], "dhcp-socket-type": "raw"},
            "lease-database": {"type": "memfile", "persist": True, "lfc-interval": 0,
                               "name": str(d / "kea-leases4.csv")},
            "valid-lifetime": LEASE_TIME, "renew-timer": LEASE_TIME // 2,
            "rebind-timer": LEASE_TIME * 7 // 8,
            "subnet4": [{"id": 1, "subnet": NETWORK,
                         "pools": [{"pool": f"{pool[0]} - {pool[1]}"}]}],
            "loggers": [{"name": "kea-dhcp4", "severity": "WARN",
                         "output_options": [{"output": str(d / "kea.log")}]}]}}
        (d / "kea-dhcp4.json").write_text(json.dumps(conf, indent=1))
        env["KEA_PIDFILE_DIR"] = str(d)
        env["KEA_LOCKFILE_DIR"] = str(d)
        return ["kea-dhcp4", "-c", str(d / "kea-dhcp4.json")], env

    def start(self, tag: str, pool: tuple[str, str], timeout: float = 20) -> None:
        d = self.workdir / f"{self.kind}-{tag}"
        d.mkdir(parents=True)
        self.dir = d
        self.crash = None
        cmd, env = self.command(d, pool)
        out = open(d / "stdout.txt", "wb")  # noqa: SIM115
        err = open(d / "stderr.txt", "wb")  # noqa: SIM115
        try:
            self.proc = spawn(["ip", "netns", "exec", SRV_NS] + cmd, "server", stdout=out,
                              stderr=err, env=env, cwd=d)
        finally:
            out.close()
            err.close()
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                return True
            if self.kind == "wvpclab" and \
                    b"wvpclab-dhcp ready" not in (d / "stdout.txt").read_bytes():
                return False
            return udp_port_bound(proc.pid, 67)

        if not wait_until(ready, timeout, 0.01) or proc.poll() is not None:
            stop_proc(proc, term_wait=10)
            raise RuntimeError(f"{self.kind} did not start (exit {proc.returncode}): "
                               f"{self.tail(600)}")
        time.sleep(0.1)  # the last steps after binding (Kea: its raw socket)
        self.udp_before = udp_counters(proc.pid)

    def tail(self, chars: int) -> str:
        assert self.dir is not None
        text = ""
        for name in ("stderr.txt", "server.log", "dnsmasq.log", "kea.log"):
            p = self.dir / name
            if p.exists():
                text += p.read_text(errors="replace")
        return text[-chars:].strip()

    def stop(self) -> dict[str, Any]:
        """Stops the server; returns what it says of itself (wvpclab: its stats and log notes)."""
        assert self.proc is not None and self.dir is not None
        info: dict[str, Any] = {}
        if self.proc.poll() is not None:
            self.crash = f"exited by itself with status {self.proc.returncode}: {self.tail(800)}"
            info["crash"] = self.crash
        else:
            info["cpu"] = proc_cpu(self.proc.pid)
            udp = udp_counters(self.proc.pid)
            if udp and self.udp_before:
                info["rcvbuf_errors"] = (udp.get("RcvbufErrors", 0)
                                         - self.udp_before.get("RcvbufErrors", 0))
        rc = stop_proc(self.proc, term_wait=10)
        if rc not in (0, None, -signal.SIGTERM) and "crash" not in info and self.kind == "wvpclab":
            info["crash"] = f"exit status {rc} at SIGTERM: {self.tail(800)}"
        if self.kind == "wvpclab":
            try:
                info["stats"] = json.loads((self.dir / "stats.json").read_text())
            except (OSError, ValueError):
                info["stats"] = {}
            try:
                lines = (self.dir / "server.log").read_text(errors="replace").splitlines()
            except OSError:
                lines = []
            info["notes"] = [x for x in lines if not re.match(r"^\S+ (serving |stopped$)", x)]
        return info


# -- 1. the rate test ------------------------------------------------------------------------------
def build_pair() -> None:
    log(f"building {SRV_NS} <-> {CLI_NS} (one veth pair, both ends in namespaces)")
    ip_batch([f"netns add {SRV_NS}", f"netns add {CLI_NS}"])
    run(["ip", "-n", SRV_NS, "link", "add", IFACE, "type", "veth", "peer", "name", IFACE,
         "netns", CLI_NS])
    ns_script({SRV_NS: [f"address add {SERVER_IP}/16 dev {IFACE}", f"link set {IFACE} up",
                        "link set lo up"],
               CLI_NS: [f"address add {RELAY_IP}/16 dev {IFACE}", f"link set {IFACE} up",
                        "link set lo up"]})


PERF_SECTION = re.compile(r"\*\*\*Statistics for: (\S+)\*\*\*")


def parse_perfdhcp(text: str) -> dict[str, dict[str, float]]:
    """{'DISCOVER-OFFER': {'sent', 'received', 'drops', 'orphans', 'avg_ms'}, 'REQUEST-ACK': ...}"""
    out: dict[str, dict[str, float]] = {}
    section: dict[str, float] | None = None
    for line in text.splitlines():
        m = PERF_SECTION.search(line)
        if m:
            section = out.setdefault(m.group(1), {})
            continue
        if section is None:
            continue
        m = re.match(r"^(sent packets|received packets|drops|orphans|avg delay):\s*([\d.]+)", line)
        if m:
            key = {"sent packets": "sent", "received packets": "received", "drops": "drops",
                   "orphans": "orphans", "avg delay": "avg_ms"}[m.group(1)]
            section[key] = float(m.group(2))
    return out


def perf_step(server: Server, rate: int, period: float) -> dict[str, Any]:
    server.start(f"rate{rate}", RATE_POOL)
    cmd = ["ip", "netns", "exec", CLI_NS, "perfdhcp", "-4", "-g", "single", "-r", str(rate),
           "-R", str(PERFDHCP_CLIENTS), "-l", IFACE, "-p", f"{period:g}",
           "-W", str(PERFDHCP_WAIT_US), SERVER_IP]
    try:
        proc = spawn(cmd, "client", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            text, _ = proc.communicate(timeout=period + 60)
        finally:
            stop_proc(proc, signal.SIGKILL, 1)
    finally:
        info = server.stop()
    assert server.dir is not None
    (server.dir / "perfdhcp.txt").write_text(shlex.join(cmd) + "\n" + (text or ""))
    stats = parse_perfdhcp(text or "")
    do, ra = stats.get("DISCOVER-OFFER", {}), stats.get("REQUEST-ACK", {})
    if not do or "sent" not in do:
        raise RuntimeError(f"perfdhcp gave no statistics (exit {proc.returncode}): "
                           f"{(text or '')[-600:]}")
    sent, done = int(do.get("sent", 0)), int(ra.get("received", 0))
    res = {"rate": rate, "period": period, "discovers": sent, "offers": int(do.get("received", 0)),
           "requests": int(ra.get("sent", 0)), "acks": done,
           "completion": done / sent if sent else 0.0, "achieved": done / period,
           "sent_rate": sent / period, "do_ms": do.get("avg_ms"), "ra_ms": ra.get("avg_ms"),
           "orphans": int(do.get("orphans", 0) + ra.get("orphans", 0)), "server": info,
           "client_limited": sent < 0.95 * rate * period}
    return res


def rate_test(server: Server, rates: list[int], period: float, refine: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    fail: dict[str, Any] | None = None
    note = ""

    def do(rate: int) -> dict[str, Any]:
        res = perf_step(server, rate, period)
        steps.append(res)
        flag = "ok" if res["completion"] >= KNEE_COMPLETION else "below 95%"
        log(f"{LABELS[server.kind]}: rate {rate}/s: {res['discovers']} DISCOVERs, "
            f"{res['acks']} ACKs ({100 * res['completion']:.1f}%), {res['achieved']:.0f} leases/s, "
            f"avg DO {res['do_ms'] or 0:.1f} ms / RA {res['ra_ms'] or 0:.1f} ms  [{flag}]")
        if server.crash:
            log(f"{LABELS[server.kind]}: SERVER DIED during this step: {server.crash[:300]}")
        return res

    for rate in rates:
        res = do(rate)
        if res["client_limited"]:
            note = (f"perfdhcp could not send {rate}/s (sent {res['sent_rate']:.0f}/s): "
                    "client-limited")
            if res["completion"] >= KNEE_COMPLETION:
                best = res
            else:
                fail = res
            break
        if res["completion"] >= KNEE_COMPLETION:
            best = res
        else:
            fail = res
            break
    # Bisect (geometrically) between the last rate that passed and the first that did not.
    for _ in range(refine):
        if best is None or fail is None or fail["rate"] / best["rate"] < 1.15:
            break
        mid = int(round(math.sqrt(best["rate"] * fail["rate"]), -1))
        res = do(mid)
        if res["completion"] >= KNEE_COMPLETION and not res["client_limited"]:
            best = res
        else:
            fail = res
    if fail is None and best is not None and not note:
        note = f"no knee up to {best['rate']}/s"
    return {"steps": steps, "knee": best, "first_fail": fail,
            "peak": max(steps, key=lambda r: r["achieved"]) if steps else None, "note": note}


# -- 2. the burst ----------------------------------------------------------------------------------
def client_ns(i: int) -> str:
    return f"bnchd-c{i}"


def build_bridge(n: int) -> None:
    log(f"building the burst network: {n} client namespaces and {SRV_NS} on bridge {BRIDGE}")
    if os.path.exists(f"/run/netns/{CLI_NS}"):
        ip_batch([f"netns del {CLI_NS}"])  # takes the rate test's veth pair with it
    wait_until(lambda: not os.path.exists(f"/run/netns/{CLI_NS}"), 10)
    wait_until(lambda: IFACE not in run(["ip", "-n", SRV_NS, "-br", "link"], check=False), 10)
    ip_batch([f"link add {BRIDGE} type bridge"] +
             [f"netns add {client_ns(i)}" for i in range(n)])
    harden(BRIDGE)
    ip_batch([f"link add {SRV_PORT} type veth peer name {IFACE} netns {SRV_NS}"] +
             [f"link add bnchdv{i} type veth peer name {IFACE} netns {client_ns(i)}"
              for i in range(n)])
    for name in [SRV_PORT] + [f"bnchdv{i}" for i in range(n)]:
        harden(name)
    ip_batch([f"link set {BRIDGE} up", f"link set {SRV_PORT} master {BRIDGE} up"] +
             [f"link set bnchdv{i} master {BRIDGE} up" for i in range(n)])
    ns_script({SRV_NS: [f"address add {SERVER_IP}/16 dev {IFACE}", f"link set {IFACE} up"],
               **{client_ns(i): ["link set lo up", f"link set {IFACE} up"] for i in range(n)}})


def fresh_macs(n: int) -> None:
    """A new random (locally administered, unicast) MAC on every client: new to the server."""
    def mac() -> str:
        return "02:" + ":".join(f"{random.randrange(256):02x}" for _ in range(5))

    ns_script({client_ns(i): [f"link set {IFACE} down", f"link set {IFACE} address {mac()}",
                              f"link set {IFACE} up"] for i in range(n)})


def blocked_on_fifo(pid: int) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return False
    return comm in ("sh", "dash") and ("fifo" in wchan or "partner" in wchan or "pipe" in wchan)


def burst_test(server: Server, n: int, tag: str) -> dict[str, Any]:
    fresh_macs(n)
    server.start(tag, INTERNAL_POOL)
    assert server.dir is not None
    d = server.dir / "clients"
    d.mkdir()
    fifo = d / "go"
    os.mkfifo(fifo)
    procs: list[subprocess.Popen] = []
    done: dict[int, float] = {}
    client_cpu = 0.0
    try:
        # Each client waits in `read < fifo` (open blocks until a writer opens it); one open
        # releases them all together.
        inner = 'read _ < "$0"; exec "$@"'
        for i in range(n):
            with open(d / f"c{i}.txt", "wb") as out:
                procs.append(spawn(["ip", "netns", "exec", client_ns(i), "sh", "-c", inner,
                                    str(fifo)] + UDHCPC, "client", stdout=out,
                                   stderr=subprocess.STDOUT))
        if not wait_until(lambda: all(blocked_on_fifo(p.pid) for p in procs), 20, 0.02):
            log("not every client shows as waiting on the FIFO; releasing anyway after 0.5 s")
            time.sleep(0.5)
        # udhcpc counts its -T wait in whole seconds of CLOCK_MONOTONIC and, once other clients'
        # frames reach it, resends at the next whole second: release right after a tick, so every
        # server gets the same ~0.98 s before the first resends.
        time.sleep(1.0 - (time.monotonic() % 1.0) + RELEASE_PHASE)
        log(f"{LABELS[server.kind]}: releasing {n} udhcpc clients at once")
        drops0 = backlog_drops()
        fd = os.open(fifo, os.O_WRONLY)
        t0 = now()
        os.close(fd)
        # Anyone who was not yet in open() when we released: release again (non-blocking).
        pending = {p.pid: p for p in procs}
        deadline = t0 + BURST_TIMEOUT
        last_release = t0
        while pending and now() < deadline:
            for pid in list(pending):
                try:
                    wpid, status, usage = os.wait4(pid, os.WNOHANG)
                except ChildProcessError:  # reaped elsewhere: count it as failed
                    wpid, status, usage = pid, 1 << 8, None
                if wpid:
                    if usage is not None:
                        client_cpu += usage.ru_utime + usage.ru_stime
                    t = now() - t0
                    p = pending.pop(pid)
                    p.returncode = os.waitstatus_to_exitcode(status)
                    LIVE.pop(pid, None)
                    done[pid] = t
            if pending and now() - last_release > 1.0:
                last_release = now()
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass
            time.sleep(0.002)
        hung = len(pending)
        drops = backlog_drops() - drops0
        for p in list(pending.values()):
            stop_proc(p, signal.SIGKILL, 1)
    finally:
        for p in procs:
            if p.poll() is None:
                stop_proc(p, signal.SIGKILL, 1)
        info = server.stop()
    ok = [p for p in procs if p.returncode == 0]
    times = sorted(done[p.pid] for p in ok)
    leases: dict[str, list[int]] = {}
    for i, p in enumerate(procs):
        text = (d / f"c{i}.txt").read_text(errors="replace")
        m = re.search(r"lease of (\S+) obtained", text)
        if p.returncode == 0 and m:
            leases.setdefault(m.group(1), []).append(i)
    dups = {ip: who for ip, who in leases.items() if len(who) > 1}
    outside = [ip for ip in leases
               if not (ipaddress.IPv4Address(INTERNAL_POOL[0]) <= ipaddress.IPv4Address(ip)
                       <= ipaddress.IPv4Address(INTERNAL_POOL[1]))]
    res = {"clients": n, "ok": len(ok), "failed": n - len(ok), "hung": hung,
           "all_leased": times[-1] if times else None,
           "median": statistics.median(times) if times else None,
           "p90": times[int(0.9 * (len(times) - 1))] if times else None,
           "duplicates": dups, "outside_pool": outside, "server": info,
           "retried": sum(1 for t in times if t > 0.9), "backlog_drops": drops,
           "client_cpu": client_cpu,
           "failed_clients": [i for i, p in enumerate(procs) if p.returncode != 0][:20]}
    log(f"{LABELS[server.kind]}: burst: {res['failed']}/{n} failed, all leased after "
        f"{fmt(res['all_leased'], 2)} s (median {fmt(res['median'], 3)} s)"
        + (f"; DUPLICATE addresses: {dups}" if dups else ""))
    return res


def summarize_bursts(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run's figures (failed clients and times: medians over runs) and every run's."""
    def med(key: str) -> float | None:
        vals = [r[key] for r in runs if r[key] is not None]
        return statistics.median(vals) if vals else None

    return {"runs": runs, "failed": med("failed"), "all_leased": med("all_leased"),
            "median": med("median"), "failed_total": sum(r["failed"] for r in runs),
            "clients_total": sum(r["clients"] for r in runs)}


# -- cleanup ---------------------------------------------------------------------------------------
def kill_ns_pids(names: list[str]) -> None:
    """Processes left in our own namespaces by an earlier, killed run of this benchmark (by PID)."""
    for ns in names:
        pids = run(["ip", "netns", "pids", ns], check=False).split()
        for pid in pids:
            try:
                log(f"stopping PID {pid} left in namespace {ns}: "
                    f"{cmdline(int(pid))[:120]}")
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass


def remove_ours(kill_leftover_pids: bool = False) -> None:
    ns = our_netns()
    if kill_leftover_pids:
        kill_ns_pids(ns)
    ip_batch([f"netns del {x}" for x in ns], force=True, check=False)
    links = our_links()
    ip_batch([f"link del {x}" for x in links], force=True, check=False)
    # The veths go with their namespaces, asynchronously.
    wait_until(lambda: not our_links() and not our_netns(), 30)


def leftovers() -> dict[str, list[str]]:
    return {"netns": our_netns(), "links": our_links(),
            "processes": [str(p) for p, proc in LIVE.items() if proc.poll() is None]}


# -- report ----------------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def report(servers: list[str], rates: dict[str, dict], bursts: dict[str, dict]) -> None:
    def knee(s: str) -> float | None:
        r = rates.get(s)
        return float(r["knee"]["rate"]) if r and r["knee"] else None

    def peak(s: str) -> float | None:
        r = rates.get(s)
        return r["peak"]["achieved"] if r and r["peak"] else None

    def knee_done(s: str) -> float | None:
        r = rates.get(s)
        return 100 * r["knee"]["completion"] if r and r["knee"] else None

    def knee_ra(s: str) -> float | None:
        r = rates.get(s)
        return r["knee"]["ra_ms"] if r and r["knee"] else None

    def b(key: str) -> Callable[[str], float | None]:
        def get(s: str) -> float | None:
            r = bursts.get(s)
            return None if r is None else r.get(key)
        return get

    rows: list[tuple[str, Callable[[str], float | None], int, str]] = [
        ("knee: leases/s with >= 95% DORA done", knee, 0, "higher"),
        ("peak completed DORA/s (any step)", peak, 0, "higher"),
        ("  DORA done at the knee, %", knee_done, 1, ""),
        ("  REQUEST-ACK avg delay at knee, ms", knee_ra, 2, "lower"),
        ("burst: clients without a lease (median)", b("failed"), 0, "lower"),
        ("burst: s until all that succeeded hold one", b("all_leased"), 2, "lower"),
        ("burst: median s to lease (median of runs)", b("median"), 3, "lower"),
    ]
    cols = [LABELS[s] for s in servers]
    others = [s for s in ("dnsmasq", "kea") if s in servers] if "wvpclab" in servers else []
    head = f"{'figure':<44}" + "".join(f"{c:>10}" for c in cols) + \
        "".join(f"{'wvpclab/' + LABELS[o]:>17}" for o in others) + "  better"
    print(head)
    print("-" * len(head))
    for label, get, digits, better in rows:
        line = f"{label:<44}" + "".join(f"{fmt(get(s), digits):>10}" for s in servers)
        for o in others:
            line += f"{ratio(get('wvpclab'), get(o)) if better else '':>17}"
        print(line + (f"  {better}" if better else ""))
    notes = [f"{LABELS[s]}: {rates[s]['note']}" for s in servers if rates.get(s, {}).get("note")]
    if notes:
        print("notes: " + "; ".join(notes))
    if "wvpclab" in servers and "kea" in servers:  # the goals, against Kea in the same run
        goals = []
        failed = b("failed")("wvpclab")
        goals.append(f"0 clients without a lease: {'met' if failed == 0 else 'missed'} "
                     f"({fmt(failed, 0)})")
        for label, get, want in (("median time to lease", b("median"), "<="),
                                 ("time until all hold one", b("all_leased"), "<="),
                                 ("knee", knee, ">=")):
            ours, theirs = get("wvpclab"), get("kea")
            if ours is None or not theirs:
                goals.append(f"{label}: not measured")
                continue
            x = ours / theirs
            ok = x <= 1.0 if want == "<=" else x >= 1.0
            goals.append(f"{label} {want} 1.0x Kea's: {'met' if ok else 'missed'} ({x:.2f}x)")
        print("goals: " + "; ".join(goals))

    print()
    print("rate steps (RATE requested/s: DISCOVERs sent -> ACKs received, % done, leases/s "
          "achieved, avg DO / RA ms, server CPU s):")
    for s in servers:
        r = rates.get(s)
        if not r:
            continue
        parts = [f"{x['rate']}: {x['discovers']}->{x['acks']} {100 * x['completion']:.1f}% "
                 f"{x['achieved']:.0f}/s {x['do_ms'] or 0:.1f}/{x['ra_ms'] or 0:.1f} "
                 f"cpu {fmt(x['server'].get('cpu'), 1)}"
                 + (" [server died]" if x["server"].get("crash") else "")
                 for x in sorted(r["steps"], key=lambda x: x["rate"])]
        print(f"  {LABELS[s]:<8} " + " | ".join(parts))

    if "wvpclab" in servers:
        print()
        print("wvpclab server, what it reported (stats file, log notes, kernel UDP counters):")
        for x in sorted(rates.get("wvpclab", {}).get("steps", []), key=lambda x: x["rate"]):
            print(f"  rate {x['rate']}: " + describe(x["server"]))
        for k, br in enumerate(bursts.get("wvpclab", {}).get("runs", []), 1):
            print(f"  burst {k}: {describe(br['server'])}{burst_problems(br)}")
    if bursts:
        print()
        print("burst runs (clients without a lease; s until all that succeeded hold one; median s; "
              "leases that took > 0.9 s, i.e. likely a retry; frames the kernel dropped "
              "machine-wide for a full input backlog (netdev_max_backlog) during the burst; CPU "
              "seconds used by the server process and by the 200 clients together):")
        for s in servers:
            runs = bursts.get(s, {}).get("runs", [])
            if runs:
                print(f"  {LABELS[s]:<8} " + " | ".join(
                    f"{r['failed']} failed, {fmt(r['all_leased'], 2)} s, {fmt(r['median'], 3)} s, "
                    f"{r['retried']} > 0.9 s, {r['backlog_drops']} backlog drops, CPU s server "
                    f"{fmt(r['server'].get('cpu'), 2)} / clients {r['client_cpu']:.2f}"
                    f"{burst_problems(r)}"
                    for r in runs))


def burst_problems(br: dict[str, Any]) -> str:
    extra = ""
    if br["failed"]:
        extra += f"; failed clients (first 20): {br['failed_clients']}"
    if br["hung"]:
        extra += f"; {br['hung']} clients still running after {BURST_TIMEOUT:.0f} s (killed)"
    if br["duplicates"]:
        extra += f"; DUPLICATE addresses: {br['duplicates']}"
    if br["outside_pool"]:
        extra += f"; addresses outside the pool: {br['outside_pool']}"
    return extra


def describe(info: dict[str, Any]) -> str:
    st = dict(info.get("stats", {}))
    keys = ["received", "in DISCOVER", "out OFFER", "in REQUEST", "out ACK", "out NAK"]
    parts = [f"{k} {st.pop(k)}" for k in keys if k in st]
    parts += [f"{k} {v}" for k, v in sorted(st.items())]
    if info.get("rcvbuf_errors"):
        parts.append(f"kernel dropped {info['rcvbuf_errors']} datagrams (receive buffer full)")
    notes = info.get("notes", [])
    if notes:
        parts.append(f"{len(notes)} log notes, e.g. {notes[:3]}")
    if info.get("crash"):
        parts.append(f"CRASH: {info['crash'][:500]}")
    return ", ".join(parts) or "(nothing)"


# -- main ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer, shorter rate steps (2 s; 200,800,3200,12800/s), no bisection")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--period", type=float, default=None,
                        help="seconds per rate step (default 5)")
    parser.add_argument("--burst-repeat", type=int, default=None,
                        help="bursts per server, the median is shown (default 3; 1 with --quick)")
    parser.add_argument("--skip", choices=["rate", "burst"], help="leave one measurement out")
    parser.add_argument("--keep", action="store_true",
                        help="keep the working directory (lease files, logs, perfdhcp output)")
    parser.add_argument("--profile", action="store_true",
                        help="run wvpclab's server under cProfile (its figures drop); top entries "
                             "on stderr; implies --keep")
    args = parser.parse_args(argv)
    servers = [s.strip().lower() for s in args.servers.split(",") if s.strip()]
    bad = [s for s in servers if s not in SERVERS]
    if bad or not servers:
        parser.error(f"unknown server(s) {bad}; choose from {','.join(SERVERS)}")
    servers = [s for s in SERVERS if s in servers]
    rates_list = QUICK_RATES if args.quick else FULL_RATES
    period = args.period or (2.0 if args.quick else 5.0)
    refine = 0 if args.quick else 2
    burst_repeat = args.burst_repeat or (1 if args.quick else 3)
    if os.geteuid() != 0:
        print("bench/dhcp.py needs root (network namespaces, a bridge)", file=sys.stderr)
        return 2
    problems = check_tools(servers)
    if problems:
        for p in problems:
            print(f"bench/dhcp.py: {p}", file=sys.stderr)
        return 2

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))

    ver = versions(servers)
    first_ip, last_ip = (int(ipaddress.IPv4Address(x)) for x in RATE_POOL)
    pool_size = last_ip - first_ip + 1
    desc = {"wvpclab": f"wvpclab ({ver['wvpclab']}, JSON lease file fsynced per batch"
                       + (", UNDER cProfile" if args.profile else "") + ")",
            "dnsmasq": f"dnsmasq {ver.get('dnsmasq', '?')} (-k --no-ping --quiet-dhcp, lease file)",
            "kea": f"Kea {ver.get('kea', '?')} (memfile persist=true, raw sockets, "
                   "default threading)"}
    print(header(__file__) + "] "
          f"servers: {'; '.join(desc[s] for s in servers)}. "
          + ("" if args.skip == "rate" else
             f"Rate: perfdhcp {ver['perfdhcp']} -4 -g single as a relay ({RELAY_IP} -> "
             f"{SERVER_IP}, veth between namespaces), -R {PERFDHCP_CLIENTS}, {period:g} s per "
             "step (+1 s -W), "
             f"rates {','.join(map(str, rates_list))}"
             + (f" then {refine} bisection steps" if refine else "")
             + f", knee = highest rate with >= {KNEE_COMPLETION:.0%} of DORAs done; pool "
             f"{RATE_POOL[0]}-{RATE_POOL[1]} ({pool_size:,} addresses) for every server, bigger "
             "than the internal one so it never limits. ")
          + ("" if args.skip == "burst" else
             f"Burst: {BURST_CLIENTS} busybox udhcpc (-t 5 -T 1) with fresh MACs released at once "
             f"{RELEASE_PHASE * 1000:.0f} ms after a whole second of CLOCK_MONOTONIC (udhcpc's -T "
             f"ticks), median of {burst_repeat} bursts, "
             f"namespaces on Linux bridge {BRIDGE}, internal pool {INTERNAL_POOL[0]}-"
             f"{INTERNAL_POOL[1]}. ")
          + "Every server restarted with an empty lease file before each step and burst.",
          flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="bnchd-"))
    keep = args.keep or args.profile
    rates: dict[str, dict] = {}
    runs_by_server: dict[str, list[dict]] = {}
    rc = 0
    t_start = now()
    try:
        if our_netns() or our_links():
            log(f"removing leftovers of an earlier run: {our_netns() + our_links()}")
            remove_ours(kill_leftover_pids=True)
        build_pair()
        if args.skip != "rate":
            for s in servers:
                log(f"rate test: {LABELS[s]}")
                rates[s] = rate_test(Server(s, workdir, args.profile and s == "wvpclab"),
                                     rates_list, period, refine)
        if args.skip != "burst":
            build_bridge(BURST_CLIENTS)
            for rep in range(burst_repeat):
                for s in servers:
                    log(f"burst test {rep + 1}/{burst_repeat}: {LABELS[s]}")
                    runs_by_server.setdefault(s, []).append(
                        burst_test(Server(s, workdir, args.profile and s == "wvpclab"),
                                   BURST_CLIENTS, f"burst{rep + 1}"))
    except KeyboardInterrupt:
        log("interrupted: cleaning up; figures so far follow")
        rc = 130
    except SystemExit as err:
        log(f"stopped by a signal ({err.code}): cleaning up")
        rc = int(err.code) if isinstance(err.code, int) else 1
    except Exception as err:  # noqa: BLE001 - report the figures we have, then the error
        log(f"error: {err!r}")
        rc = 1
    finally:
        stop_live()
        remove_ours()
        left = leftovers()
        if any(left.values()):
            log(f"leftovers found, removing again: {left}")
            remove_ours(kill_leftover_pids=True)
            left = leftovers()
        log("leftover check (ip netns list / ip link bnchd*, our PIDs): " +
            ("nothing left" if not any(left.values()) else f"STILL THERE: {left}"))
        log(f"total time {now() - t_start:.0f} s")

    bursts = {s: summarize_bursts(r) for s, r in runs_by_server.items() if r}
    report(servers, rates, bursts)
    if args.profile:
        for prof in sorted(workdir.glob("wvpclab-*/server.prof"), key=os.path.getmtime)[-1:] + \
                sorted(workdir.glob("wvpclab-rate*/server.prof"),
                       key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))[-1:]:
            out = io.StringIO()
            pstats.Stats(str(prof), stream=out).sort_stats("tottime").print_stats(25)
            print(f"--- cProfile of wvpclab's server, {prof.parent.name} (tottime) ---",
                  file=sys.stderr)
            print(out.getvalue(), file=sys.stderr)
    if keep:
        log(f"working directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
