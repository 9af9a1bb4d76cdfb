#!/usr/bin/env python3
"""The web page's cost: what an open page costs the lab, beside the same lab with no page.

For each N (``--sizes``, default 10,100): a lab of N VMs on one PC, each with NIC 0 on internal
network ``lab`` (DHCP) and NIC 1 Not connected. Then, side by side:

1. **a look**: one ``/api/state`` with fresh live values (every VM's carrier and addresses, every
   lease, every switch's counters), beside the baseline the CLI already has: ``nics``, which asks
   the same of every VM through its Mininet shell (``lab.vm(v).nic(i)`` addresses and carrier).
2. **a change with a page open**: ``set_nic`` moving one NIC to Not connected and back, while a
   "page" (a thread looking at ``/api/state?since=`` as the page does) is open, beside the same
   changes with no page: does an open page slow the lab's changes?
3. **seen after**: from ``set_nic`` returning to the page's look returning the lab's new state.
4. **standing cost**: the CPU time per second of the lab's process and the readings' processes
   (``ip``, ``ovs-ofctl``) with the page open and looked at, beside the same lab idle (its DHCP
   watch alone). Open vSwitch answering the readings is not counted.

Medians of ``--repeat`` (default 5); ratios are "with the page" / "without". Figures go to stdout
(with the load average beside them), progress to stderr. A measurement, not a test: it never fails
on a slow figure. Run as root from the checkout: ``.venv/bin/python bench/web.py [--quick]``.
Everything it builds is the lab ``bench-web-N``, which cleans itself up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

log = common.logger("web")


def topology_doc(name: str, n: int) -> dict[str, Any]:
    return {"name": name, "pcs": {"pc": {}}, "internal": {"lab": {"dhcp": True}},
            "vms": {f"v{i:03d}": {"nics": [{"internal": "lab"}, "none"], "ipv6": False}
                    for i in range(n)}}


class Page:
    """What an open page does: looks at the lab again as soon as the last look returned."""

    def __init__(self, web: Any) -> None:
        self.base = f"http://127.0.0.1:{web.port}"
        self.token = web.token
        self.generation = -1
        self.seen = threading.Condition()
        self._stop = threading.Event()
        self.looks = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def look(self, since: int | None = None) -> dict[str, Any]:
        query = f"?since={since}" if since is not None else ""
        req = urllib.request.Request(f"{self.base}/api/state{query}",
                                     headers={"X-Wvpclab-Token": self.token})
        with urllib.request.urlopen(req, timeout=30) as res:
            return json.loads(res.read())

    def _loop(self) -> None:
        while not self._stop.is_set():
            state = self.look(self.generation if self.generation >= 0 else None)
            with self.seen:
                self.generation = state["generation"]
                self.looks += 1
                self.seen.notify_all()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(30)

    def wait_generation(self, at_least: int, timeout: float = 10) -> float:
        """Seconds until the page has seen generation ``at_least``."""
        t0 = common.now()
        with self.seen:
            self.seen.wait_for(lambda: self.generation >= at_least, timeout)
        return common.now() - t0


def cpu_seconds() -> float:
    """CPU seconds of this process and of the children it waited for (the readings' ``ip`` and
    ``ovs-ofctl``)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def nics_the_cli_way(vms: list[Any]) -> None:
    """What the CLI's ``nics`` asks of every VM (through its shell): addresses and carrier."""
    for vm in vms:
        for index in (0, 1):
            intf = vm.nic(index)
            intf.updateIP()
            intf.carrier()


def measure(n: int, repeat: int) -> dict[str, list[float]]:
    from wvpclab.model import topology
    from wvpclab.runtime.lab import Lab

    out: dict[str, list[float]] = {k: [] for k in (
        "look", "nics", "change_page", "change_alone", "seen", "cpu_page", "cpu_idle")}
    name = f"bench-web-{n}"
    with Lab(topology.from_document(topology_doc(name, n)), quiet=True) as lab:
        vms = [lab.vm(k) for k, _ in topology.nodes_of(lab.graph, "vm")]
        web = lab.web_page()
        page = Page(web)
        log(f"{name}: up, page {web.port}")
        for _ in range(repeat):
            time.sleep(web.sampler._ttl)  # the next look reads afresh
            t0 = common.now()
            page.look()
            out["look"].append(common.now() - t0)
            t0 = common.now()
            nics_the_cli_way(vms)
            out["nics"].append(common.now() - t0)
        # a change with no page open, then with one
        for key, with_page in (("change_alone", False), ("change_page", True)):
            if with_page:
                page.start()
            for r in range(repeat):
                for spec in ("none", "internal:lab"):
                    t0 = common.now()
                    lab.set_nic("v000", 0, spec)
                    out[key].append(common.now() - t0)
                    if with_page:
                        out["seen"].append(page.wait_generation(lab.generation))
            log(f"{name}: {key} done")
        # the standing cost: CPU per second with the page looking, then idle
        for key in ("cpu_page", "cpu_idle"):
            if key == "cpu_idle":
                page.stop()
            for _ in range(repeat):
                c0, t0 = cpu_seconds(), common.now()
                time.sleep(2)
                out[key].append((cpu_seconds() - c0) / (common.now() - t0))
        log(f"{name}: {page.looks} looks by the page")
    return out


def row(n: int, what: str, a: float, b: float | None, unit: str = "ms",
        scale: float = 1e3) -> None:
    base = f"{b * scale:>10.1f}{unit:>2}" if b is not None else f"{'-':>12}"
    ratio = f"{a / b:>7.2f}x" if b else f"{'':>8}"
    print(f"{n:>5}  {what:<44}{a * scale:>10.1f}{unit:>2}{base}{ratio}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100", help="VM counts (default 10,100)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (default 5)")
    parser.add_argument("--quick", action="store_true", help="--sizes 10 --repeat 3")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat = "10", 3
    if os.geteuid() != 0:
        print("bench/web.py needs root (it builds labs)", file=sys.stderr)
        return 1
    print(common.header(__file__) + f", load {common.loadavg()}]")
    print(f"{'VMs':>5}  {'figure':<44}{'with page':>12}{'without':>12}{'ratio':>8}")
    for n in (int(x) for x in args.sizes.split(",")):
        results = measure(n, args.repeat)
        med = {k: statistics.median(v) for k, v in results.items() if v}

        row(n, "a look (/api/state) vs the CLI's nics", med["look"], med["nics"])
        row(n, "set_nic (a move), page open vs none", med["change_page"],
            med["change_alone"])
        row(n, "seen by the page after set_nic returned", med["seen"], None)
        row(n, "lab process + readings CPU, open vs idle", med["cpu_page"], med["cpu_idle"],
            "%", 100)
    print(f"# load after: {common.loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
