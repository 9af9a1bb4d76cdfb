#!/usr/bin/env python3
"""Shared-networking (NAT) benchmark: a NAT guest to a LAN server, beside plain routed paths.

Setups, all up at once; every measurement alternates between them (the order rotates each
repetition) so machine noise hits all alike:

* **wvpclab NAT** (the subject): a wvpclab lab ``bench-nat`` like ``topologies/xp_mode.yaml`` with
  the guest's NIC at ``{shared: true, speed: unlimited}``: guest ``xp`` (192.168.131.1 from its NAT
  engine's DHCP) -> its cable, straight into its NAT engine (MASQUERADE, stateful firewall) ->
  transit veth -> the PC (MASQUERADE again) -> filter switch ->
  patch -> LAN switch -> server ``web`` (192.168.50.80).
* **PC's own stack** (the baseline the goals are measured against: what NAT itself costs): the
  lab's PC ``pc`` to the same server, over the same remaining hops (filter switch, patch, LAN
  switch); the goal is a NAT guest at >= 0.9x its throughput and new connections per second.
* **routed** (for comparison): three iproute2 namespaces joined by
  veths, nothing in the root namespace: ``bnchn-g`` (172.31.200.2/24) -> ``bnchn-r`` (ip_forward=1
  in ITS namespace, 172.31.200.1 / 172.31.201.1, no NAT, no rules) -> ``bnchn-s`` (172.31.201.2/24).
* **routed, same hops** (to show where time goes; on by default, ``--no-same-hops`` skips it): the
  lab's path without NAT or controller: ``bnchn-mg`` -> OVS userspace bridge ``bnchn-b1`` (NORMAL)
  -> router ``bnchn-mr1`` -> veth -> router ``bnchn-mr2`` -> OVS userspace bridge ``bnchn-b2``
  (NORMAL) -> ``bnchn-ms``; addresses in 172.31.210.0/24, 172.31.211.0/30, 172.31.212.0/24. The
  root-namespace ends of its veths are hardened (arp_ignore=8, rp_filter=1, no IPv6, no address);
  the bridges' internal ports stay down.

Every server runs ``python -m wvpclab.runtime.services`` (TCP echo on 7, HTTP on 80; the lab's
LAN servers
do already; the others get ``--name base --log FILE``, as the lab logs to a file too) and
``iperf3 -s``. Measured per repetition from the guest: iperf3 TCP throughput (``-t T -O 1``, 1
stream and ``-P 2``); new TCP connections per second (a Python client with W threads for S seconds;
each connection: connect, send 1 byte to port 7, read the echo, close); and 50 pings at 0.05 s
(median RTT, for information). Every guest gets ``ip_local_port_range=1024 65535`` and
``tcp_tw_reuse=1`` in its own namespace (the client closes first, so its ports sit in TIME_WAIT).
Medians over the repetitions.

Figures go to stdout, progress to stderr. It is a measurement, not a test: it never fails on a slow
result. Run as root from the checkout: ``.venv/bin/python bench/nat.py [--quick] [--repeat R]``.

Everything it creates is named ``bnchn-…`` (namespaces, veths, OVS bridges; log files in a temporary
directory ``/run/bnchn-…``) or belongs to the wvpclab lab ``bench-nat`` (or a variant whose prefix
nobody uses), which cleans itself up. Processes are stopped by the PIDs it started; it never runs
``pkill``, ``killall`` or ``mn -c``; forwarding is turned on only inside its router namespaces.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = str(Path(__file__).resolve().parent)
if BENCH not in sys.path:  # `import common` also under `python -m bench.nat`
    sys.path.insert(0, BENCH)

from common import NetnsSetup as _NetnsSetup
from common import (
    Setup,
    harden,
    header,
    iperf,
    kill_live,
    lab_name,
    loadavg,
    logger,
    med,
    now,
    ovs,
    remove_ovs_ours,
    run,
    still_there,
    stop_proc,
    wait_ready,
    wait_until,
)

OURS_RE = re.compile(r"^bnchn-")
LAB_BASE = "bench-nat"
LAB_SERVER = "192.168.50.80"
GUEST_SYSCTLS = "net.ipv4.ip_local_port_range='1024 65535' net.ipv4.tcp_tw_reuse=1"

log = logger("nat")

CONNECT = r"""
import json, socket, sys, threading, time
host, port, secs, workers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
counts, errors = [0] * workers, [0] * workers
go = threading.Event()
def work(i):
    go.wait()
    n = e = 0
    while time.monotonic() < stop:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect((host, port))
            s.sendall(b"x")
            if s.recv(1) == b"x":
                n += 1
            else:
                e += 1
        except OSError:
            e += 1
        finally:
            s.close()
    counts[i], errors[i] = n, e
threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
for t in threads:
    t.start()
t0 = time.monotonic()
stop = t0 + secs
go.set()
for t in threads:
    t.join()
elapsed = time.monotonic() - t0
print(json.dumps({"connections": sum(counts), "errors": sum(errors), "seconds": elapsed}))
"""


# -- setups ----------------------------------------------------------------------------------------
class LabSetup(Setup):
    label = "wvpclab NAT"
    server_ip = LAB_SERVER
    shown_args = 4

    def __init__(self, lab: Any) -> None:
        self.nodes = {"guest": lab.vm("xp"), "server": lab.node("web")}
        out = self.nodes["guest"].cmd(f"sysctl -qw {GUEST_SYSCTLS}; echo rc=$?")
        if "rc=0" not in out:
            raise RuntimeError(f"sysctl in xp failed: {out.strip()}")

    def popen(self, where: str, argv: list[str], **kw: Any) -> subprocess.Popen:
        return self.nodes[where].popen(argv, **kw)


class PcSetup(LabSetup):
    """The PC's own stack to the same server: the hops a NAT guest's traffic has left once it is
    the PC's (filter switch, patch, LAN switch), without the NAT (the issue's goal's baseline)."""

    label = "PC's own stack"

    def __init__(self, lab: Any) -> None:
        self.nodes = {"guest": lab.node("pc"), "server": lab.node("web")}
        out = self.nodes["guest"].cmd(f"sysctl -qw {GUEST_SYSCTLS}; echo rc=$?")
        if "rc=0" not in out:
            raise RuntimeError(f"sysctl in pc failed: {out.strip()}")


class NetnsSetup(_NetnsSetup):
    """A routed path of iproute2 namespaces (no NAT, no rules)."""

    shown_args = 4

    def __init__(self, label: str, guest: str, server: str, server_ip: str) -> None:
        self.label, self.server_ip = label, server_ip
        self.where = {"guest": guest, "server": server}


def ns_script(ns: str, lines: list[str], sysctls: str = "") -> None:
    if sysctls:
        run(["ip", "netns", "exec", ns, "sh", "-c", f"sysctl -qw {sysctls}"])
    run(["ip", "-n", ns, "-batch", "-"], "\n".join(["link set lo up"] + lines) + "\n")


def build_routed() -> NetnsSetup:
    """bnchn-g -- bnchn-r -- bnchn-s, veths only, every end in a namespace."""
    run(["ip", "-batch", "-"],
        "netns add bnchn-g\nnetns add bnchn-r\nnetns add bnchn-s\n"
        "link add name eth0 netns bnchn-g mtu 1500 type veth"
        " peer name eth0 netns bnchn-r mtu 1500\n"
        "link add name eth1 netns bnchn-r mtu 1500 type veth"
        " peer name eth0 netns bnchn-s mtu 1500\n")
    ns_script("bnchn-g", ["link set eth0 up", "address add 172.31.200.2/24 dev eth0",
                          "route add default via 172.31.200.1"], GUEST_SYSCTLS)
    ns_script("bnchn-r", ["link set eth0 up", "link set eth1 up",
                          "address add 172.31.200.1/24 dev eth0",
                          "address add 172.31.201.1/24 dev eth1"], "net.ipv4.ip_forward=1")
    ns_script("bnchn-s", ["link set eth0 up", "address add 172.31.201.2/24 dev eth0",
                          "route add default via 172.31.201.1"])
    log("routed: bnchn-g -- bnchn-r (ip_forward=1 in its namespace) -- bnchn-s")
    return NetnsSetup("routed", "bnchn-g", "bnchn-s", "172.31.201.2")


def build_same_hops() -> NetnsSetup:
    """bnchn-mg -- OVS bnchn-b1 -- bnchn-mr1 -- bnchn-mr2 -- OVS bnchn-b2 -- bnchn-ms."""
    lines = [f"netns add {ns}" for ns in ("bnchn-mg", "bnchn-mr1", "bnchn-mr2", "bnchn-ms")]
    ends = (("bnchn-v1", "bnchn-mg", "eth0"), ("bnchn-v2", "bnchn-mr1", "eth0"),
            ("bnchn-v3", "bnchn-mr2", "eth1"), ("bnchn-v4", "bnchn-ms", "eth0"))
    lines += [f"link add name {peer} mtu 1500 type veth peer name {dev} netns {ns} mtu 1500"
              for peer, ns, dev in ends]
    lines.append("link add name eth1 netns bnchn-mr1 mtu 1500 type veth peer name eth0 "
                 "netns bnchn-mr2 mtu 1500")
    run(["ip", "-batch", "-"], "\n".join(lines) + "\n")
    for peer, _ns, _dev in ends:
        harden(peer)
    args: list[str] = []
    for br, ports in (("bnchn-b1", ("bnchn-v1", "bnchn-v2")),
                      ("bnchn-b2", ("bnchn-v3", "bnchn-v4"))):
        args += ["--", "add-br", br, "--", "set", "Bridge", br, "datapath_type=netdev",
                 "fail_mode=standalone", "other-config:disable-in-band=true"]
        for p in ports:
            args += ["--", "add-port", br, p]
    ovs(*args[1:])
    for br in ("bnchn-b1", "bnchn-b2"):
        if wait_until(lambda b=br: os.path.exists(f"/sys/class/net/{b}"), 10):
            harden(br)  # the bridge's own port: left down, hardened anyway
    run(["ip", "-batch", "-"], "".join(f"link set {peer} up\n" for peer, _n, _d in ends))
    ns_script("bnchn-mg", ["link set eth0 up", "address add 172.31.210.2/24 dev eth0",
                           "route add default via 172.31.210.1"], GUEST_SYSCTLS)
    ns_script("bnchn-mr1", ["link set eth0 up", "link set eth1 up",
                            "address add 172.31.210.1/24 dev eth0",
                            "address add 172.31.211.1/30 dev eth1",
                            "route add default via 172.31.211.2"], "net.ipv4.ip_forward=1")
    ns_script("bnchn-mr2", ["link set eth0 up", "link set eth1 up",
                            "address add 172.31.211.2/30 dev eth0",
                            "address add 172.31.212.1/24 dev eth1",
                            "route add 172.31.210.0/24 via 172.31.211.1"], "net.ipv4.ip_forward=1")
    ns_script("bnchn-ms", ["link set eth0 up", "address add 172.31.212.2/24 dev eth0",
                           "route add default via 172.31.212.1"])
    log("same hops: bnchn-mg -- OVS bnchn-b1 -- bnchn-mr1 -- bnchn-mr2 -- OVS bnchn-b2 -- bnchn-ms")
    return NetnsSetup("routed, same hops", "bnchn-mg", "bnchn-ms", "172.31.212.2")


def remove_ours() -> dict[str, list[str]]:
    """Removes our namespaces, bridges and veths (by name); returns what was found."""
    return remove_ovs_ours(OURS_RE, lambda x: x.startswith("bnchn-b"))


# -- measurements ----------------------------------------------------------------------------------
def start_servers(setup: Setup, logdir: Path | None) -> list[subprocess.Popen]:
    """iperf3 -s (and, for our own namespaces, the lab's echo/HTTP services) on the server."""
    from wvpclab.runtime.services import READY_LINE

    procs = []
    if logdir is not None:
        argv = [sys.executable, "-m", "wvpclab.runtime.services", "--name", "base", "--log",
                str(logdir / f"server-{setup.where['server']}.log")]  # type: ignore[attr-defined]
        svc = setup.start("server", argv, stderr=subprocess.DEVNULL)
        procs.append(svc)
        wait_ready(svc, READY_LINE, 20, f"{setup.label}: wvpclab.runtime.services")
    procs.append(setup.start("server", ["iperf3", "-s", "-B", setup.server_ip],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def listening() -> bool:
        out = setup.output("server", ["ss", "-Hltn"], 10)
        return all(f":{p} " in out for p in (7, 80, 5201))

    if not wait_until(listening, 15, 0.1):
        raise RuntimeError(f"{setup.label}: the server does not listen on 7, 80 and 5201")
    return procs


def connections(setup: Setup, seconds: float, workers: int) -> dict[str, float]:
    out = setup.output("guest", [sys.executable, "-c", CONNECT, setup.server_ip, "7", str(seconds),
                                 str(workers)], seconds + 60)
    r = json.loads(out.strip().splitlines()[-1])
    return {"value": r["connections"] / r["seconds"], "errors": r["errors"]}


def ping(setup: Setup, count: int) -> dict[str, float]:
    setup.output("guest", ["ping", "-n", "-q", "-c", "1", "-W", "2", setup.server_ip], 10)
    out = setup.output("guest", ["ping", "-n", "-c", str(count), "-i", "0.05", "-W", "2",
                                 setup.server_ip], count * 0.05 + 30)
    rtts = sorted(float(x) for x in re.findall(r"time=([\d.]+) ms", out))
    if not rtts:
        raise RuntimeError(f"{setup.label}: no ping answers")
    return {"value": statistics.median(rtts), "loss": 1 - len(rtts) / count}


def measure(setups: list[Setup], args: argparse.Namespace,
            results: dict[str, dict[str, list[float]]]) -> None:
    tests: list[tuple[str, Callable[[Setup], dict[str, float]]]] = [
        ("tcp1", lambda s: iperf(s, args.seconds, 1, "value")),
        ("tcp2", lambda s: iperf(s, args.seconds, 2, "value")),
        ("conn", lambda s: connections(s, args.conn_seconds, args.workers)),
        ("rtt", lambda s: ping(s, args.pings)),
    ]
    for rep in range(args.repeat):
        k = rep % len(setups)
        order = setups[k:] + setups[:k]
        for name, test in tests:
            for setup in order:
                r = test(setup)
                cell = results[setup.label]
                cell[name].append(r["value"])
                extra = ""
                if "retr" in r:
                    cell[name + "_retr"].append(r["retr"])
                    extra = f", {r['retr']} retransmits"
                if "errors" in r:
                    cell["conn_err"].append(r["errors"])
                    extra = f", {r['errors']} failed"
                if "loss" in r:
                    cell["loss"].append(r["loss"])
                    extra = f", loss {r['loss']:.0%}"
                unit = {"tcp1": "Gbit/s", "tcp2": "Gbit/s", "conn": "conn/s", "rtt": "ms"}[name]
                log(f"rep {rep + 1}/{args.repeat} {setup.label:<18} {name}: {r['value']:.3f} "
                    f"{unit}{extra}")


# -- lab name --------------------------------------------------------------------------------------
def topology_doc(name: str) -> dict[str, Any]:
    """topologies/xp_mode.yaml with the guest's NIC unshaped."""
    return {
        "name": name,
        "pcs": {"pc": {"adapters": {"eth0": {"type": "wired", "mac": "00:1a:2b:3c:4d:5e",
                                             "lan": "office"}}}},
        "lans": {"office": {"subnet": "192.168.50.0/24", "servers": {"web": LAB_SERVER}}},
        "vms": {"xp": {"nics": [{"shared": True, "speed": "unlimited"}]}},
    }


# -- report ----------------------------------------------------------------------------------------
def report(labels: list[str], results: dict[str, dict[str, list[float]]],
           args: argparse.Namespace) -> None:
    subject, base = labels[0], labels[1]
    rows = [("iperf3 TCP, 1 stream", "tcp1", "Gbit/s", "{:.2f}", 0.9),
            ("iperf3 TCP, -P 2", "tcp2", "Gbit/s", "{:.2f}", 0.9),
            ("new TCP connections", "conn", "conn/s", "{:.0f}", 0.9),
            ("ping RTT median", "rtt", "ms", "{:.3f}", None)]
    head = (f"{'measure':<21} {'unit':<7} " + " ".join(f"{x:>18}" for x in labels) +
            f"  {'ratio':>6}  goal")
    print(head)
    print("-" * len(head))
    for label, key, unit, fmt, goal in rows:
        vals = [med(results[x][key]) for x in labels]
        ratio = vals[0] / vals[1] if vals[1] else float("nan")
        verdict = (f">= {goal}x {'ok' if ratio >= goal else 'MISSED'}" if goal else "(info)")
        print(f"{label:<21} {unit:<7} " + " ".join(f"{fmt.format(v):>18}" for v in vals) +
              f"  {ratio:>6.3f}  {verdict}")
    print(f"ratio = {subject} / {base} (the goal: what NAT itself costs).")
    for other in labels[2:]:
        parts = []
        for key, name in (("tcp1", "1 stream"), ("tcp2", "-P 2"), ("conn", "conn/s"),
                          ("rtt", "RTT")):
            b = med(results[other][key])
            parts.append(f"{name} {med(results[subject][key]) / b:.3f}" if b else f"{name} n/a")
        print(f"{subject} / {other}: " + ", ".join(parts))
    print("runs (in order):")
    for x in labels:
        r = results[x]
        print(f"  {x:<18} tcp1 {[round(v, 2) for v in r['tcp1']]}"
              f" tcp2 {[round(v, 2) for v in r['tcp2']]}"
              f" conn/s {[round(v) for v in r['conn']]} rtt {[round(v, 3) for v in r['rtt']]};"
              f" retransmits {r['tcp1_retr']}/{r['tcp2_retr']}; failed connects {r['conn_err']};"
              f" ping loss {max(r['loss'] or [0]):.0%}")
    print(f"(medians of {args.repeat} alternating runs; iperf3 -t {args.seconds} -O 1; "
          f"connections: {args.workers} threads x {args.conn_seconds:g} s of connect + 1-byte echo"
          f" + close to port 7; {args.pings} pings at 0.05 s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per measurement")
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 -t")
    parser.add_argument("--conn-seconds", type=float, default=5, help="seconds of new connections")
    parser.add_argument("--workers", type=int, default=4, help="client threads for new connections")
    parser.add_argument("--pings", type=int, default=50, help="pings per run (0.05 s apart)")
    parser.add_argument("--no-same-hops", action="store_true",
                        help="skip the 'routed, same hops' setup (OVS bridges + 2 routers, no NAT)")
    parser.add_argument("--quick", action="store_true", help="1 run, 2 s per measurement, 20 pings")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.seconds, args.conn_seconds, args.pings = 1, 2, 2, 20
    if args.repeat < 1 or args.seconds < 2 or args.conn_seconds <= 0 or args.workers < 1:
        parser.error("bad --repeat, --seconds, --conn-seconds or --workers")
    if os.geteuid() != 0:
        print("nat.py needs root (namespaces, Open vSwitch)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(header(__file__) + f", "
          f"load average at start {loadavg()}, repeat {args.repeat}, iperf3 -t {args.seconds}, "
          f"connections {args.workers} threads x {args.conn_seconds:g} s]", flush=True)

    from wvpclab import Lab
    from wvpclab.model import topology
    from wvpclab.runtime import rundir
    labels = ["wvpclab NAT", "PC's own stack", "routed"] + \
        ([] if args.no_same_hops else ["routed, same hops"])
    keys = ("tcp1", "tcp2", "tcp1_retr", "tcp2_retr", "conn", "conn_err", "rtt", "loss")
    results: dict[str, dict[str, list[float]]] = {x: {k: [] for k in keys} for x in labels}
    prefix = None
    logdir: Path | None = None
    servers: list[subprocess.Popen] = []
    rc = 0
    try:
        left = remove_ours()
        if any(left.values()):
            log(f"removed leftovers of an earlier run: {left}")
        run_dir = "/run" if os.path.isdir("/run") else None
        logdir = Path(tempfile.mkdtemp(prefix="bnchn-", dir=run_dir))
        name = lab_name(LAB_BASE)
        prefix = rundir.prefix_for(name)
        log(f"starting lab {name} (prefix {prefix})")
        t0 = now()
        with Lab(topology.from_document(topology_doc(name)), quiet=True) as lab:
            lease = lab.dhcp_client("xp", 0).lease() or {}
            log(f"lab up in {now() - t0:.2f} s; xp has {lease.get('ip')}; building the baselines")
            setups: list[Setup] = [LabSetup(lab), PcSetup(lab), build_routed()]
            if not args.no_same_hops:
                setups.append(build_same_hops())
            for s in setups:
                if isinstance(s, PcSetup):
                    continue  # (the same server as the NAT guest's: started once)
                servers += start_servers(s, None if isinstance(s, LabSetup) else logdir)
            measure(setups, args, results)
            for proc in servers:
                stop_proc(proc)
            servers.clear()
            log("stopping the lab")
    except KeyboardInterrupt:
        log("interrupted: cleaned up; figures so far follow")
        rc = 130
    except Exception as err:  # noqa: BLE001 - report the figures we have, then the error
        log(f"error: {err!r}")
        rc = 1
    finally:
        for proc in servers:
            stop_proc(proc)
        kill_live()
        remove_ours()
        if logdir is not None:
            shutil.rmtree(logdir, ignore_errors=True)
        mine = still_there(OURS_RE, prefix)
        log(f"leftover check (ip netns list / ovs-vsctl list-br / ip link; bnchn-* and lab prefix "
            f"{prefix}): " + ("nothing left" if not mine else f"STILL THERE: {mine}"))
    print(f"# load average at end: {loadavg()}")
    report(labels, results, args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
