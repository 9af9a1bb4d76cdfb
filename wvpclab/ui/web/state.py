"""What the web page shows, as JSON: each VM's Settings dialog (pure, from the topology graph) and
the lab's live values (carrier, addresses, leases, switch counters), read without touching any
node's Mininet shell (the CLI may be using it): this machine's VMs from inside their namespaces
(``wvpclab.ui.web.netns``), another server's VMs and every switch with a process of their own.

The pure parts (``settings``, ``parse_links``, ``parse_counters``, ``nic_live``) are unit-tested;
``Sampler`` reads a running lab.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

import networkx as nx

from wvpclab.model import modes, topology
from wvpclab.model.schema import MAX_NICS
from wvpclab.ui.web.netns import NetnsReader


def choices(graph: nx.Graph, pc: str) -> list[dict[str, str]]:
    """A NIC's drop-down on ``pc``: each mode's entries (``Mode.choices``), in WVPC's order (the
    modes' ``dialog_rank``): Not connected, the host's adapters by name and type, Shared
    Networking (NAT), the PC's internal networks, and "New internal network..."."""
    ranked = sorted(modes.MODES.values(), key=lambda m: m.dialog_rank)
    return [choice for mode in ranked for choice in mode.choices(graph, pc)]


def spec(nic: Mapping[str, Any]) -> str:
    """A NIC's mode as the drop-down's value: ``none``, ``shared``, ``bridge:eth0``,
    ``internal:lab``."""
    return modes.format(nic["mode"], nic.get("target"))


def wizard(graph: nx.Graph, pc: str) -> list[dict[str, str]]:
    """The NICs the Create Virtual Machine wizard would give a new VM on ``pc`` (shown in the
    page's "New virtual machine..." dialog before it is made): each one's value (as the
    drop-down's), its label (``bridge eth0``, as the lab says it) and its drop-down entry's
    words (``eth0 (wired adapter, LAN office)``)."""
    entries = {c["value"]: c["label"] for c in choices(graph, pc)}
    out = []
    for mode, target in modes.wizard(graph, pc):
        value = modes.format(mode, target)
        label = modes.label({"mode": mode, "target": target})
        out.append({"value": value, "label": label, "choice": entries.get(value, label)})
    return out


def settings(graph: nx.Graph) -> dict[str, Any]:
    """Every VM's Settings dialog (its NICs by number, each with its mode and cable; the
    drop-down's choices once per PC), every PC with the NICs the wizard gives a new VM there, and
    the switches the page can ask about, from the topology graph alone."""
    vms = []
    pcs = [key for key, _ in topology.nodes_of(graph, "pc")]
    for key, vm in topology.nodes_of(graph, "vm"):
        nics = []
        for nic in topology.nics_of(graph, key):
            mode = modes.of(nic)
            nics.append({"index": nic["index"], "mac": nic["mac"], "mode": nic["mode"],
                         "value": spec(nic), "label": modes.label(nic),
                         "cable": bool(nic.get("cable", True)),
                         "pluggable": mode.attachment_kind() is not None,
                         "static": nic.get("ip")})
        vms.append({"name": key, "pc": vm["pc"], "nics": nics})
    switches = []
    for key, lan in topology.nodes_of(graph, "lan"):
        switches.append({"key": key, "kind": "internet" if lan.get("internet") else "lan",
                         "rules": False, "leases": bool(lan.get("dhcp"))})
    for mode in modes.MODES.values():  # the filter switches, the internal networks
        switches += mode.switches(graph)
    return {"lab": graph.graph["name"], "vms": vms, "switches": switches, "max_nics": MAX_NICS,
            "pcs": [{"name": pc, "wizard": wizard(graph, pc)} for pc in pcs],
            "choices": {pc: choices(graph, pc) for pc in pcs}}


def parse_links(text: str) -> dict[str, dict[str, Any]]:
    """``ip -j addr show`` -> per interface: carrier (bool) and IPv4 addresses (``a.b.c.d/n``)."""
    try:
        rows = json.loads(text or "[]")
    except ValueError:
        return {}
    out = {}
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or "ifname" not in row:
            continue
        flags = row.get("flags") or []
        out[row["ifname"]] = {
            "carrier": "LOWER_UP" in flags and "NO-CARRIER" not in flags,
            "addresses": [f"{a['local']}/{a['prefixlen']}" for a in row.get("addr_info") or []
                          if a.get("family") == "inet" and "local" in a]}
    return out


#: One port's statistics in ``ovs-ofctl dump-ports``: its number (or LOCAL), rx and tx packets.
_PORT_STATS = re.compile(r"port\s+(\w+):\s*rx pkts=(\d+|\?).*?tx pkts=(\d+|\?)", re.DOTALL)


def parse_counters(text: str) -> dict[str, int] | None:
    """``ovs-ofctl dump-ports BRIDGE`` -> the packets its ports received (``rx``) and sent
    (``tx``), its own LOCAL port left out; None when the text is no port statistics."""
    if "OFPST_PORT reply" not in (text or ""):
        return None
    ports = [(rx, tx) for port, rx, tx in _PORT_STATS.findall(text) if port != "LOCAL"]
    return {"rx": sum(int(rx) for rx, _ in ports if rx.isdigit()),
            "tx": sum(int(tx) for _, tx in ports if tx.isdigit())}


def nic_live(link: Mapping[str, Any] | None, lease: Mapping[str, Any] | None,
             now: float) -> dict[str, Any]:
    """One NIC's live values: carrier, address and the seconds its lease has left (None: no
    lease)."""
    left = None
    if lease and str(lease.get("lease") or "").isdigit() and lease.get("time"):
        left = max(0, int(lease["lease"]) - int(now - float(lease["time"])))
    addresses = (link or {}).get("addresses") or []
    return {"carrier": bool((link or {}).get("carrier")),
            "address": addresses[0] if addresses else None, "lease_left": left}


class Sampler:
    """The lab's live values, read at most every ``ttl`` seconds however many pages ask."""

    def __init__(self, lab: Any, ttl: float = 0.4) -> None:
        self.lab = lab
        self.ttl = self._ttl = ttl
        self._lock = threading.Lock()
        self._at = 0.0
        self._last: dict[str, Any] = {"nics": {}, "switches_live": {}}
        self._pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="wvpclab-web")
        self._netns = NetnsReader()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._netns.close()

    def sample(self) -> dict[str, Any]:
        """The live values, read again if the last reading is older than ``ttl`` seconds (more
        for a big lab: at most a quarter of the time is spent reading). A reading a change cut
        short keeps the last one."""
        with self._lock:
            if time.monotonic() - self._at >= self._ttl:
                t0 = time.monotonic()
                with contextlib.suppress(Exception):  # a node or client went mid-reading
                    self._last = self._read()
                self._at = time.monotonic()
                # at most a quarter of the time reading, however big the lab
                self._ttl = max(self.ttl, 4 * (self._at - t0))
            return self._last

    def _links(self, name: str) -> dict[str, dict[str, Any]]:
        try:
            node = self.lab.node(name)
            proc = node.popen(["ip", "-j", "addr", "show"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
        except Exception:  # noqa: BLE001 - a node going away mid-change: no reading this time
            return {}
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return {}
        return parse_links(out)

    def _read(self) -> dict[str, Any]:
        graph = self.lab.graph_snapshot()
        vms = [k for k, _ in topology.nodes_of(graph, "vm")]
        counters = self._pool.submit(self._counters)
        links: dict[str, dict[str, dict[str, Any]]] = {}
        here = {}  # this machine's VMs: read in their namespaces from a thread, no process
        for vm in vms:
            node = self.lab.nodes.get(vm)
            if node is not None and getattr(node, "remote", None) is None and node.pid:
                here[vm] = node.pid
        if here and not self._netns.broken:
            with contextlib.suppress(OSError, concurrent.futures.TimeoutError):
                links = self._netns.read(here, [f"eth{i}" for i in range(4)])
        rest = [vm for vm in vms if vm not in links]  # on other servers: a process there
        links.update(zip(rest, self._pool.map(self._links, rest)))
        clients = self.lab.clients
        now = time.time()
        nics = {}
        for vm in vms:
            for nic in topology.nics_of(graph, vm):
                client = clients.get((vm, nic["index"]))
                lease = client.lease() if client is not None else None
                nics[f"{vm}/{nic['index']}"] = nic_live(links[vm].get(f"eth{nic['index']}"),
                                                        lease, now)
        return {"nics": nics, "switches_live": counters.result()}

    def _counters(self) -> dict[str, dict[str, int]]:
        names = {key: b.name for key, b in self.lab.bridges.items()}
        return {key: c for key, c in zip(names, self._pool.map(self._dump_ports, names.values()))
                if c is not None}

    @staticmethod
    def _dump_ports(bridge: str) -> dict[str, int] | None:
        try:
            res = subprocess.run(["ovs-ofctl", "--timeout=5", "dump-ports", bridge],
                                 capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return parse_counters(res.stdout)
