#!/usr/bin/env python3
"""Start-up benchmark: how long until 4N interfaces are up and every node reaches a neighbour.

For each N (``--sizes``, default 10,50,100) three ways of standing up 4N interfaces are timed:

1. **wvpclab**: N VMs x 4 NICs, NIC i of every VM on internal network ``n{i}``, static addresses,
   built with ``wvpclab.Lab``; every VM pings its neighbour (j+1 mod N) on ``n0``.
2. **plain Mininet**: 4N hosts on one ``OVSBridge(datapath='user', batch=True)``; every host pings
   its neighbour.
3. **iproute2 floor**: 4N named namespaces, veths made with ``ip -batch``, Linux bridges (at most
   1,000 ports each, chained by veths) in the
   root namespace (hardened); every namespace pings its neighbour via ``ip netns exec``.

Each is timed as build+start, then "reach" (pings in waves of at most 50 at once; failures are asked
again until all succeeded or a bounded time passed), then stop. Figures go to stdout, progress to
stderr. It is a measurement, not a test: it prints figures and never fails on a slow result.

Run as root from the checkout: ``.venv/bin/python bench/startup.py [--quick] [--repeat R]``.
``--no-ipv6`` starts every VM with ``ipv6: false`` and the floor's namespaces without link-local
addresses: at start each IPv6 interface sends router solicitations and listener reports, which a
switch floods to every port (in userspace, a copy and a system call per port).

Everything it creates is named ``bnch…`` (namespaces ``bnchf*``, Linux bridge ``bnchbr0``, veths
``bnchv*``, OVS bridge ``bnchs1`` and its ports, Mininet hosts ``bnchh*``) or belongs to a wvpclab
lab named ``bench-startup-N`` (which cleans itself up). It never runs ``mn -c``, ``killall`` or
``pkill``: processes are stopped by the PIDs it started, namespaces and links by their names.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

BENCH = str(Path(__file__).resolve().parent)
if BENCH not in sys.path:  # `import common` also under `python -m bench.startup`
    sys.path.insert(0, BENCH)

from common import (
    LIVE,
    harden,
    header,
    ip_batch,
    kill_live,
    links_matching,
    logger,
    netns_matching,
    now,
    ovs_bridges,
    run,
    wait_until,
)
from common import lab_name as free_lab_name

#: Concurrent pings at most (docs/architecture.md §5, The stack: hundreds at once through one bridge
#: stall).
WAVE = 50
REACH_TIMEOUT = 60.0  # seconds of retries before a size's "reach" is given up
PING = ["ping", "-n", "-q", "-c1", "-W1"]

FLOOR_BRIDGE = "bnchbr0"
FLOOR_PORTS = 1000  # namespaces per Linux bridge (a bridge takes at most 1,024 ports)
MN_SWITCH = "bnchs1"
OURS_RE = re.compile(r"^bnch")
METHODS = ("wvpclab", "mininet", "floor")
LABELS = {"wvpclab": "wvpclab", "mininet": "plain Mininet", "floor": "iproute2 floor"}

log = logger("startup")


# -- reachability ----------------------------------------------------------------------------------
def reach(count: int, start: Callable[[int], subprocess.Popen]) -> tuple[float, list[int], int]:
    """Starts ``start(k)`` (a ping) for k in range(count) in waves of at most WAVE at once; asks the
    failed ones again until all succeeded or REACH_TIMEOUT passed. Returns (seconds until all
    succeeded or it gave up, keys that never succeeded, rounds)."""
    t0 = now()
    pending = list(range(count))
    rounds = 0
    while pending:
        rounds += 1
        failed: list[int] = []
        for i in range(0, len(pending), WAVE):
            wave: list[tuple[int, subprocess.Popen]] = []
            try:
                for k in pending[i:i + WAVE]:
                    proc = start(k)
                    LIVE[proc.pid] = proc
                    wave.append((k, proc))
                for k, proc in wave:
                    try:
                        rc = proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)
                        rc = -1
                    LIVE.pop(proc.pid, None)
                    if rc != 0:
                        failed.append(k)
            finally:
                kill_live(signal.SIGKILL)
        pending = failed
        if pending:
            if now() - t0 > REACH_TIMEOUT:
                break
            time.sleep(0.05)
    return now() - t0, pending, rounds


# -- 1. wvpclab ------------------------------------------------------------------------------------
def vm_address(nic: int, j: int) -> str:
    """VM j's NIC ``nic``: 169.254.{nic+1}.{j+10} for j < 200, then further third octets."""
    return f"169.254.{nic + 1 + 4 * (j // 200)}.{10 + j % 200}"


def lab_name(n: int) -> str:
    """``bench-startup-N`` (or a variant) whose prefix no running lab, leftover or test lab uses."""
    return free_lab_name(f"bench-startup-{n}")


def run_wvpclab(n: int, speed: Any, profile: cProfile.Profile | None,
                ipv6: bool = True) -> dict[str, Any]:
    from wvpclab import Lab
    from wvpclab.model import topology
    name = lab_name(n)
    nic_opts = {} if speed is None else {"speed": speed}

    def nics(j: int) -> list[dict[str, Any]]:
        return [{"internal": f"n{i}", "ip": f"{vm_address(i, j)}/16", **nic_opts}
                for i in range(4)]

    doc = {
        "name": name,
        "pcs": {"pc": {}},
        "internal": {f"n{i}": {"dhcp": False} for i in range(4)},
        "vms": {f"vm{j}": {"nics": nics(j), **({} if ipv6 else {"ipv6": False})}
                for j in range(n)},
    }
    graph = topology.from_document(doc)
    log(f"wvpclab N={n}: lab {name}, {n} VMs x 4 NICs, starting")
    before = memory_now()
    t0 = now()
    if profile:
        profile.enable()
    try:
        with Lab(graph, quiet=True) as lab:
            if profile:
                profile.disable()
            t1 = now()
            memory = lab_memory(lab, before)
            log(f"wvpclab N={n}: up in {t1 - t0:.2f} s, {memory['pss'] / 2**20:.0f} MiB in "
                f"its processes, pinging")

            def ping(j: int) -> subprocess.Popen:
                return lab.vm(f"vm{j}").popen(
                    PING + ["-I", vm_address(0, j), vm_address(0, (j + 1) % n)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            secs, failed, rounds = reach(n, ping)
            log(f"wvpclab N={n}: reach {secs:.2f} s in {rounds} round(s), {len(failed)} failed; "
                "stopping")
            t2 = now()
    finally:
        if profile:
            profile.disable()
        kill_live(signal.SIGKILL)
    t3 = now()
    return {"start": t1 - t0, "reach": secs, "stop": t3 - t2, "failed": len(failed), "pings": n,
            "rounds": rounds, **memory}


# -- memory ----------------------------------------------------------------------------------------
def pss(pid: int) -> int:
    """A process's proportional set size in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def ovs_pids() -> list[int]:
    out = []
    for name in ("ovs-vswitchd", "ovsdb-server"):
        try:
            out.append(int(Path(f"/run/openvswitch/{name}.pid").read_text().strip()))
        except (OSError, ValueError):
            pass
    return out


def memory_now() -> dict[str, int]:
    with open("/proc/meminfo", encoding="ascii") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return {"available": info["MemAvailable"], "ovs": sum(pss(p) for p in ovs_pids())}


def lab_memory(lab: Any, before: dict[str, int]) -> dict[str, int]:
    """What a running lab takes: the PSS of every process in its namespaces and of its
    controller (``pss``); Open vSwitch's PSS, all of it (``ovs``: it keeps what it grew to, so
    its growth depends on what ran before); and how much the machine's available memory fell
    since just before the start (``machine``: kernel objects too: namespaces, veths, sockets)."""
    from wvpclab.runtime import cleanup, rundir
    state = rundir.read_state(lab.prefix) or {}
    pids = set(cleanup.pids_in_netns(int(i) for i in state.get("netns", [])))
    if lab.controller and lab.controller.pid:
        pids.add(lab.controller.pid)
    now_ = memory_now()
    return {"pss": sum(pss(p) for p in pids), "ovs": now_["ovs"],
            "machine": max(0, before["available"] - now_["available"])}


# -- 2. plain Mininet ------------------------------------------------------------------------------
def run_mininet(n: int) -> dict[str, Any]:
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.node import OVSBridge

    setLogLevel("warning")
    Mininet.inited = True  # skip Mininet.init(): it raises machine-wide limits and sysctls
    m = 4 * n
    net = None
    stopped = False
    log(f"mininet N={n}: {m} hosts on one userspace OVSBridge, building")
    t0 = now()
    try:
        net = Mininet(topo=None, build=False, controller=None,
                      switch=partial(OVSBridge, datapath="user", batch=True), autoSetMacs=True,
                      waitConnected=False, ipBase="172.31.0.0/16")
        sw = net.addSwitch(MN_SWITCH, dpid="0000626e63680001")
        hosts = [net.addHost(f"bnchh{k + 1}") for k in range(m)]
        for h in hosts:
            net.addLink(h, sw)
        net.build()
        for intf in sw.intfNames():  # the root-namespace ends of the veths
            if intf.startswith(MN_SWITCH + "-"):
                harden(intf)
        net.start()
        # The bridge's own (internal) port: OVS makes it shortly after; left down, but hardened.
        if wait_until(lambda: os.path.exists(f"/sys/class/net/{MN_SWITCH}"), 10):
            harden(MN_SWITCH)
        t1 = now()
        log(f"mininet N={n}: up in {t1 - t0:.2f} s, pinging")
        addrs = [h.IP() for h in hosts]

        def ping(k: int) -> subprocess.Popen:
            return hosts[k].popen(PING + [addrs[(k + 1) % m]], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        secs, failed, rounds = reach(m, ping)
        log(f"mininet N={n}: reach {secs:.2f} s in {rounds} round(s), {len(failed)} failed; "
            f"stopping")
        t2 = now()
        net.stop()
        stopped = True
        t3 = now()
    finally:
        kill_live(signal.SIGKILL)
        if net is not None and not stopped:
            mininet_fallback_cleanup(net)
    return {"start": t1 - t0, "reach": secs, "stop": t3 - t2, "failed": len(failed), "pings": m,
            "rounds": rounds}


def mininet_fallback_cleanup(net: Any) -> None:
    """After an error: net.stop(), and if that fails, our bridge, links and node shells by PID."""
    try:
        net.stop()
        return
    except BaseException as err:  # noqa: BLE001 - fall back to removing things by name and PID
        log(f"mininet: net.stop() failed ({err!r}); removing by name and PID")
    run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", MN_SWITCH], check=False)
    for node in list(net.hosts) + list(net.switches):
        shell = getattr(node, "shell", None)
        if shell is not None and shell.poll() is None:
            try:
                os.kill(shell.pid, signal.SIGKILL)
                shell.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
    ip_batch([f"link del {x}" for x in links_matching(r"^bnch[hs]")], force=True, check=False)


# -- 3. iproute2 floor -----------------------------------------------------------------------------
def floor_address(k: int) -> str:
    return f"172.31.{k // 250}.{k % 250 + 1}"


def run_floor(n: int, ipv6: bool = True) -> dict[str, Any]:
    m = 4 * n
    names = [f"bnchf{k}" for k in range(m)]
    # A Linux bridge takes at most 1,024 ports: one bridge per FLOOR_PORTS namespaces, each
    # joined to the next by a veth.
    bridges = [f"{FLOOR_BRIDGE[:-1]}{b}" for b in range((m + FLOOR_PORTS - 1) // FLOOR_PORTS)]
    joins = [(f"bnchl{b}a", f"bnchl{b}b") for b in range(len(bridges) - 1)]
    log(f"floor N={n}: {m} namespaces on {len(bridges)} Linux bridge(s) {', '.join(bridges)}, "
        "building")
    done = False
    t0 = now()
    try:
        # Namespaces, the bridges, and each veth with its inner end made directly in its namespace.
        ip_batch([f"netns add {x}" for x in names] +
                 [f"link add {br} type bridge" for br in bridges] +
                 [f"link add {a} type veth peer name {b}" for a, b in joins] +
                 [f"link add bnchv{k} type veth peer name eth0 netns {names[k]}" for k in range(m)])
        for name in [*bridges, *(x for pair in joins for x in pair)]:
            harden(name)
        for k in range(m):
            harden(f"bnchv{k}")
        ip_batch([f"link set {br} up" for br in bridges] +
                 [line for i, (a, b) in enumerate(joins)
                  for line in (f"link set {a} master {bridges[i]} up",
                               f"link set {b} master {bridges[i + 1]} up")] +
                 [f"link set bnchv{k} master {bridges[k // FLOOR_PORTS]} up" for k in range(m)])
        # Inside each namespace: one `ip -n NS -batch` (address, link up), all from one shell.
        # (without IPv6: no link-local address, so no DAD, router solicitation or report)
        quiet = "" if ipv6 else "link set eth0 addrgenmode none\n"
        script = "".join(f"ip -n {names[k]} -batch - <<EOF\n"
                         f"address add {floor_address(k)}/16 dev eth0\n"
                         f"{quiet}link set eth0 up\nEOF\n" for k in range(m))
        with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="bnch-") as f:
            f.write("set -e\n" + script)
            f.flush()
            run(["sh", f.name])
        t1 = now()
        log(f"floor N={n}: up in {t1 - t0:.2f} s, pinging")

        def ping(k: int) -> subprocess.Popen:
            return subprocess.Popen(["ip", "netns", "exec", names[k]] + PING +
                                    [floor_address((k + 1) % m)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        secs, failed, rounds = reach(m, ping)
        log(f"floor N={n}: reach {secs:.2f} s in {rounds} round(s), {len(failed)} failed; stopping")
        t2 = now()
        ip_batch([f"netns del {x}" for x in names] + [f"link del {br}" for br in bridges] +
                 [f"link del {a}" for a, _ in joins])
        # The veths go with their namespaces, asynchronously: stop ends when the last is gone.
        wait_until(lambda: not links_matching(r"^bnchv\d"), 30)
        t3 = now()
        done = True
    finally:
        kill_live(signal.SIGKILL)
        if not done:
            floor_cleanup(names)
    return {"start": t1 - t0, "reach": secs, "stop": t3 - t2, "failed": len(failed), "pings": m,
            "rounds": rounds}


def floor_cleanup(names: list[str]) -> None:
    ns = [x for x in names if os.path.exists(f"/run/netns/{x}")]
    lines = [f"netns del {x}" for x in ns]
    links = links_matching(r"^bnchv\d") + links_matching(r"^bnchbr\d+$") + \
        links_matching(r"^bnchl\d+a$")
    ip_batch(lines + [f"link del {x}" for x in links], force=True, check=False)
    wait_until(lambda: not links_matching(r"^bnchv\d"), 30)


# -- leftovers -------------------------------------------------------------------------------------
def our_leftovers(prefixes: set[str]) -> dict[str, list[str]]:
    def mine(name: str) -> bool:
        return bool(OURS_RE.match(name)) or any(name.startswith(p + "-") for p in prefixes)

    return {"netns": [x for x in netns_matching(r".") if mine(x)],
            "ovs bridges": [x for x in ovs_bridges() if mine(x)],
            "links": [x for x in os.listdir("/sys/class/net") if mine(x)]}


def preclean() -> None:
    """Removes what an earlier, killed run of this benchmark left (only ``bnch…`` names)."""
    found = our_leftovers(set())
    if not any(found.values()):
        return
    log(f"removing leftovers of an earlier run: {found}")
    if MN_SWITCH in found["ovs bridges"]:
        run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", MN_SWITCH], check=False)
    ip_batch([f"netns del {x}" for x in found["netns"]], force=True, check=False)
    ip_batch([f"link del {x}" for x in links_matching(r"^bnch")], force=True, check=False)
    wait_until(lambda: not links_matching(r"^bnch"), 30)


# -- report ----------------------------------------------------------------------------------------
def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(sizes: list[int], methods: list[str], results: dict, repeat: int) -> None:
    head = (f"{'N':>4}  {'setup':<15} {'ifaces':>6}  {'build+start':>11}  {'reach':>7}  "
            f"{'start+reach':>11}  {'stop':>7}  note")
    print(head)
    print("-" * len(head))
    for n in sizes:
        totals, stops = {}, {}
        for method in methods:
            runs = results[(n, method)]
            if not runs:
                print(f"{n:>4}  {LABELS[method]:<15} {4 * n:>6}  (no run completed)")
                continue
            # A run in which some node never reached its neighbour counts as unreached (inf).
            def reached(r: dict[str, Any], value: float) -> float:
                return float("inf") if r["failed"] else value

            start, stop = (median_of(runs, k) for k in ("start", "stop"))
            reach_s = statistics.median(reached(r, r["reach"]) for r in runs)
            total = statistics.median(reached(r, r["start"] + r["reach"]) for r in runs)
            if total != float("inf"):
                totals[method] = total
            stops[method] = stop
            notes = []
            for i, r in enumerate(runs, 1):
                which = f"run {i}/{len(runs)}: " if len(runs) > 1 else ""
                if r["failed"]:
                    notes.append(f"{which}{r['failed']}/{r['pings']} pings never succeeded "
                                 f"(gave up after {r['reach']:.1f} s, {r['rounds']} rounds)")
                elif r["rounds"] > 1:
                    notes.append(f"{which}{r['rounds']} ping rounds")
            if len(runs) > 1:
                notes.append(f"median of {len(runs)}")
            if method == "wvpclab" and "pss" in runs[0]:
                notes.insert(0, f"memory: {median_of(runs, 'pss') / 2**20:.0f} MiB in its "
                                f"processes, Open vSwitch at "
                                f"{median_of(runs, 'ovs') / 2**20:.0f} MiB, the machine's "
                                f"available memory {median_of(runs, 'machine') / 2**20:.0f} "
                                "MiB less")
            print(f"{n:>4}  {LABELS[method]:<15} {4 * n:>6}  {start:>11.3f}  {reach_s:>7.3f}  "
                  f"{total:>11.3f}  {stop:>7.3f}  {'; '.join(notes)}")
        ratios = []
        if "wvpclab" in totals:
            for other in ("mininet", "floor"):
                if totals.get(other):
                    ratio = totals["wvpclab"] / totals[other]
                    ratios.append(f"wvpclab/{LABELS[other]} = {ratio:.2f}x")
        if ratios:
            print(f"{'':>4}  time to full reachability (start+reach): " + ", ".join(ratios))
        stop_ratios = [f"wvpclab/{LABELS[other]} = {stops['wvpclab'] / stops[other]:.2f}x"
                       for other in ("mininet", "floor") if stops.get(other) and "wvpclab" in stops]
        if stop_ratios:
            print(f"{'':>4}  stop: " + ", ".join(stop_ratios))
        if "wvpclab" in stops and stops.get("floor"):
            ours, floor = totals.get("wvpclab", math.inf), totals.get("floor", math.inf)
            if math.isinf(floor) and math.isinf(ours):
                reached = "not measured (neither reached every node)"
            elif math.isinf(floor):
                reached = f"met (wvpclab reached every node in {ours:.1f} s, the floor never did)"
            else:
                whole = ours / floor
                reached = f"{'met' if whole <= 1.5 else 'missed'} ({whole:.2f}x)"
            halt = stops["wvpclab"] / stops["floor"]
            print(f"{'':>4}  goals: start+reach <= 1.5x the floor: {reached}; stop <= 2x the "
                  f"floor: {'met' if halt <= 2 else 'missed'} ({halt:.2f}x)")
    print("(seconds; start = build+start; reach = until every node's ping to its neighbour "
          f"succeeded, waves of <= {WAVE}; {repeat} run(s) per cell)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,50,100",
                        help="comma-separated N (VMs; 4N interfaces)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is shown")
    parser.add_argument("--quick", action="store_true", help="N=10 only")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--speed", default=None, choices=["10", "100", "unlimited"],
                        help="wvpclab NIC speed (default: the topology default, 100 Mbit/s shaped)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile wvpclab's start at the largest N (top entries on stderr)")
    parser.add_argument("--no-ipv6", action="store_true",
                        help="VMs (wvpclab: ipv6: false) and the floor's namespaces without IPv6: "
                             "no link-local chatter flooded to every port at start")
    args = parser.parse_args(argv)
    sizes = [10] if args.quick else [int(x) for x in args.sizes.split(",") if x.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not sizes or args.repeat < 1 or any(n < 2 for n in sizes):
        parser.error(f"bad --methods {bad}, --sizes or --repeat")
    speed: str | int | None
    if args.speed is None or args.speed == "unlimited":
        speed = args.speed
    else:
        speed = int(args.speed)
    if os.geteuid() != 0:
        print("startup.py needs root (namespaces, Open vSwitch)", file=sys.stderr)
        return 2

    # A SIGTERM unwinds like Ctrl-C, so every `finally` runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(header(__file__) + f", "
          f"sizes {','.join(map(str, sizes))}, repeat {args.repeat}, "
          f"wvpclab speed {args.speed or 'default'}, IPv6 {'off' if args.no_ipv6 else 'on'}]",
          flush=True)

    from wvpclab.runtime import rundir
    used_prefixes: set[str] = set()
    results: dict[tuple[int, str], list[dict[str, Any]]] = {
        (n, m): [] for n in sizes for m in methods}
    profile = cProfile.Profile() if args.profile else None
    rc = 0
    failed_size = ""
    n, method = 0, ""
    try:
        preclean()
        for rep in range(args.repeat):
            for n in sizes:
                for method in methods:
                    if method == "wvpclab":
                        used_prefixes.add(rundir.prefix_for(lab_name(n)))
                        prof = profile if (profile and rep == 0 and n == max(sizes)) else None
                        res = run_wvpclab(n, speed, prof, ipv6=not args.no_ipv6)
                    elif method == "mininet":
                        res = run_mininet(n)
                    else:
                        res = run_floor(n, ipv6=not args.no_ipv6)
                    results[(n, method)].append(res)
    except KeyboardInterrupt:
        log("interrupted: cleaned up; figures so far follow")
        rc = 130
    except Exception as err:  # noqa: BLE001 - report the figures we have, then the error
        log(f"error: {err!r}")
        failed_size = f"N={n} ({4 * n} interfaces), {method}: {err}"
        rc = 1
    finally:
        kill_live(signal.SIGKILL)
        left = our_leftovers(used_prefixes)
        if any(left.values()):
            log(f"leftovers found, removing: {left}")
            preclean()
            left = our_leftovers(used_prefixes)
        log("leftover check (ip netns list / ovs-vsctl list-br / ip link, bnch* and our labs' "
            f"prefixes {sorted(used_prefixes)}): " +
            ("nothing left" if not any(left.values()) else f"STILL THERE: {left}"))

    report(sizes, methods, results, args.repeat)
    unreached = [f"N={n} {method} ({r['failed']}/{r['pings']} pings never succeeded)"
                 for (n, method), runs in sorted(results.items()) for r in runs if r["failed"]]
    if failed_size:
        print(f"first size that failed: {failed_size}")
    if unreached:
        print("started but never fully reached: " + "; ".join(unreached))
    if not failed_size and not unreached and rc == 0:
        print(f"every size started and was fully reached, up to {max(sizes)} VMs "
              f"({4 * max(sizes)} interfaces)")
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(30)
        print(f"--- cProfile of wvpclab's start at N={max(sizes)} (cumulative) ---",
              file=sys.stderr)
        print(out.getvalue(), file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
