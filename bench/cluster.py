#!/usr/bin/env python3
"""A lab over two machines beside the same lab on one: start, reach, stop and throughput.

Setups, measured in turns (the order rotates each repetition, so machine noise hits both alike):

* **one machine** (the baseline): N PCs, each with 4 VMs of 4 NICs (bridged, shared, internal,
  bridged), all on one LAN with a server ``web``, every NIC on DHCP; everything on this machine.
* **two machines** (the subject): the same lab with every second PC on a fake server (a namespace
  with its own sshd and Open vSwitch on this machine, ``tests/fakeserver.py``), the LAN here: each
  remote PC's adapter reaches the LAN through an ssh Ethernet tunnel.

Measured per setup: start (``Lab.start``: every switch's flows in force, every DHCP client with its
lease), reach (from then until every VM's first NIC answers a ping from ``web``), stop; and TCP
throughput (iperf3, ``-t T``) from a bridged guest of a remote PC to ``web`` beside the same from a
local PC, once with the NIC at its 21140A's 100 Mbit/s and once unshaped (the tunnel's own limit).

It is a measurement, not a test: it never fails on a slow result. Run as root from the checkout:
``.venv/bin/python bench/cluster.py [--pcs 2,4] [--repeat R] [--seconds T]``. Figures to stdout,
progress to stderr, the machine's load beside them. Labs are named ``bench-cluster-*``; the fake
server is torn down however the run ends.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from tests.fakeserver import FakeServer
from wvpclab import Lab
from wvpclab.model import topology

log = common.logger("cluster")


def document(name: str, pcs: int, far: FakeServer | None, speed: object = 100) -> dict:
    doc: dict = {"name": name, "lans": {"office": {"subnet": "192.168.48.0/21",
                                                     "servers": {"web": "192.168.48.80"}}},
                 "internal": {"lab": {}}, "pcs": {}, "vms": {}}
    if far is not None:
        doc["servers"] = {far.name: far.entry()}
    for p in range(pcs):
        pc = {"adapters": {"eth0": {"lan": "office"}}}
        if far is not None and p % 2 == 1:
            pc["server"] = far.name
        doc["pcs"][f"pc{p}"] = pc
        for v in range(4):
            doc["vms"][f"vm{p}x{v}"] = {"pc": f"pc{p}", "nics": [
                {"bridge": "eth0", "speed": speed}, "shared", {"internal": "lab"},
                {"bridge": "eth0"}]}
    return doc


def reach(lab: Lab, vms: list[str], timeout: float = 60) -> float:
    """Seconds until every VM's first NIC answers a ping from ``web`` (its address from the LAN's
    lease table, by its MAC: nothing is asked of the VMs themselves)."""
    t0 = common.now()
    web = lab.node("web")
    by_mac = {row["mac"]: row["ip"] for row in lab.leases("office")["office"]}
    left = {vm: by_mac.get(lab.graph.nodes[f"{vm}/0"]["mac"], "") for vm in vms}
    while left and common.now() - t0 < timeout:
        for vm, ip in list(left.items()):
            if ip and " 0% packet loss" in web.cmd(f"ping -n -c 1 -W 1 {ip}"):
                del left[vm]
    if left:
        log(f"not reached in {timeout:.0f} s: {', '.join(sorted(left))}")
    return common.now() - t0


def iperf(lab: Lab, vm: str, seconds: int) -> float:
    """Mbit/s from ``vm``'s first NIC to ``web`` (TCP, one stream)."""
    web = lab.node("web")
    server = web.popen(["iperf3", "-s", "-1"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)  # (iperf3 -s has no ready line; the client retries below anyway)
        for _ in range(5):
            out = lab.node(vm).cmd(f"iperf3 -c 192.168.48.80 -t {seconds} -J")
            try:
                return json.loads(out[out.index("{"):])["end"]["sum_received"]["bits_per_second"] \
                    / 1e6
            except (ValueError, KeyError):
                time.sleep(0.5)
        return float("nan")
    finally:
        common.stop_proc(server)


def one_run(pcs: int, far: FakeServer | None, seconds: int) -> dict[str, float]:
    name = f"bench-cluster-{'two' if far else 'one'}"
    out: dict[str, float] = {}
    t0 = common.now()
    lab = Lab(topology.from_document(document(name, pcs, far)), quiet=True)
    lab.start()
    try:
        out["start"] = common.now() - t0
        out["reach"] = reach(lab, sorted(v for v in lab.graph if str(v).startswith("vm")
                                         and lab.graph.nodes[v]["kind"] == "vm"))
        remote = "vm1x0" if pcs > 1 else "vm0x0"
        out["tcp100"] = iperf(lab, remote, seconds)
    finally:
        t1 = common.now()
        lab.stop()
        out["stop"] = common.now() - t1
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pcs", default="2,4", help="PC counts, comma-separated (default 2,4)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=3, help="iperf3 seconds (default 3)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/cluster.py needs root", file=sys.stderr)
        return 1
    sizes = [int(n) for n in args.pcs.split(",")]
    far = FakeServer("bench", 5)
    far.up()
    os.environ["WVPCLAB_SSH_CONFIG"] = str(far.ssh_config)
    print(common.header(__file__) + f", load {common.loadavg()}]")
    try:
        for pcs in sizes:
            results: dict[str, list[dict[str, float]]] = {"one": [], "two": []}
            for r in range(args.repeat):
                order = ["one", "two"] if r % 2 == 0 else ["two", "one"]
                for setup in order:
                    log(f"{pcs} PCs, {setup} machine(s), run {r + 1}")
                    results[setup].append(one_run(pcs, far if setup == "two" else None,
                                                  args.seconds))
            med = {s: {k: statistics.median(x[k] for x in runs) for k in runs[0]}
                   for s, runs in results.items()}
            print(f"\n{pcs} PCs x 4 VMs x 4 NICs ({pcs * 16} NICs), medians of {args.repeat}, "
                  f"load {common.loadavg()}")
            print(f"{'':>22} {'one machine':>12} {'two machines':>13} {'ratio':>6}")
            for key, label in (("start", "start (s)"), ("reach", "then reach (s)"),
                               ("stop", "stop (s)"), ("tcp100", "TCP, 100 Mbit NIC")):
                a, b = med["one"][key], med["two"][key]
                ratio = b / a if a else float("nan")
                print(f"{label:>22} {a:12.2f} {b:13.2f} {ratio:6.2f}x")
            ok = med["two"]["tcp100"] >= 0.9 * 100 * 0.95
            print(f"goal: a bridged guest across servers carries its 100 Mbit/s NIC at line rate: "
                  f"{'met' if ok else 'missed'} ({med['two']['tcp100']:.1f} Mbit/s)")
    finally:
        os.environ.pop("WVPCLAB_SSH_CONFIG", None)
        far.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
