"""What can reach what, and why: the model's expectation for every pair of endpoints, and real
probes.

``expect`` is a pure function of the topology graph (unit-tested without root); ``probe`` pings
every pair in a running lab, from the source's own interface, in parallel waves; ``matrix`` puts
them side by side.
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import networkx as nx

from wvpclab.model import modes, topology
from wvpclab.model.modes.base import Place, Verdict, adapter_addressed, open_to_the_internet


@dataclass(frozen=True)
class Endpoint:
    """Something that has an address: a VM's NIC, a PC's adapter (its own stack), a LAN server."""

    label: str  # "xp/eth0", "pc/eth0", "web"
    node: str  # the Mininet node
    dev: str  # its interface there
    kind: str  # "nic", "adapter", "server"
    key: str  # the graph node


def endpoints(graph: nx.Graph) -> list[Endpoint]:
    out = []
    for key, nic in topology.nodes_of(graph, "nic"):
        out.append(Endpoint(f"{nic['vm']}/eth{nic['index']}", nic["vm"], f"eth{nic['index']}",
                            "nic", key))
    for key, adapter in topology.nodes_of(graph, "adapter"):
        out.append(Endpoint(f"{adapter['pc']}/{adapter['name']}", adapter["pc"], adapter["name"],
                            "adapter", key))
    for key, _ in topology.nodes_of(graph, "server"):
        out.append(Endpoint(key, key, "eth0", "server", key))
    return out


def _where(graph: nx.Graph, ep: Endpoint) -> Place:
    """Where an endpoint sits: ("lan", LAN), ("segment", PC/ADAPTER) for a filter switch without a
    LAN, ("unplugged", None), or a place of a NIC's mode (``modes.base.Mode.where``)."""
    data = graph.nodes[ep.key]
    if ep.kind == "server":
        return "lan", data["lan"]
    if ep.kind == "adapter":
        if data["lan"] is not None:
            return "lan", data["lan"]
        # a wired adapter without a LAN still has its filter switch (host and bridged guests)
        return ("segment", ep.key) if data["type"] == "wired" else ("unplugged", None)
    mode = modes.of(data)
    if not mode.carrier(data):  # Not connected, or its cable pulled
        return "unplugged", None
    return mode.where(graph, data)


def _mode(graph: nx.Graph, ep: Endpoint) -> modes.Mode | None:
    """The mode of a NIC with a carrier (its place is the mode's to explain); None otherwise."""
    if ep.kind != "nic":
        return None
    data = graph.nodes[ep.key]
    mode = modes.of(data)
    return mode if mode.carrier(data) else None


def has_address(graph: nx.Graph, ep: Endpoint) -> bool:
    """Whether the model gives this endpoint an address (static, or a DHCP server on its
    network)."""
    data = graph.nodes[ep.key]
    if ep.kind == "server":
        return True
    if ep.kind == "adapter":
        return adapter_addressed(graph, ep.key)
    mode = modes.of(data)
    if data["ip"]:
        return mode.attachment_kind() is not None
    return mode.server(graph, data) is not None


def _static(graph: nx.Graph, ep: Endpoint) -> ipaddress.IPv4Interface | None:
    data = graph.nodes[ep.key]
    ip = data.get("ip")
    return ipaddress.IPv4Interface(ip) if ip and ip != "dhcp" else None


def off_network(graph: nx.Graph, ep: Endpoint) -> bool:
    """A guest NIC whose static address is not in the network its mode puts it on (a static NIC
    moved to another network): it cannot use that network's router."""
    if ep.kind != "nic":
        return False
    static = _static(graph, ep)
    data = graph.nodes[ep.key]
    network = modes.of(data).network(graph, data)
    return static is not None and network is not None and \
        static.ip not in ipaddress.IPv4Network(network)


def on_link(graph: nx.Graph, a: Endpoint, b: Endpoint) -> bool:
    """Two endpoints on one segment that are each in the other's subnet (static addresses known)."""
    sa, sb = _static(graph, a), _static(graph, b)
    return sa is not None and sb is not None and sb.ip in sa.network and sa.ip in sb.network


def expect(graph: nx.Graph, a: Endpoint, b: Endpoint) -> Verdict:
    """Does ``a`` reach ``b`` (a ping from a's interface to b's address), and why, by the model.
    A NIC's mode speaks for its own places (``inbound``, ``isolation``, ``outbound``); LANs and
    filter switches are every lab's."""
    wa, xa = _where(graph, a)
    wb, xb = _where(graph, b)
    if wa == "unplugged" or wb == "unplugged":
        return False, "not connected"
    if not has_address(graph, a) or not has_address(graph, b):
        return False, "no address (no DHCP server there)"
    ma, mb = _mode(graph, a), _mode(graph, b)
    said = mb.inbound(graph, (wb, xb), (wa, xa)) if mb else None
    if said:
        return said
    if (off_network(graph, a) or off_network(graph, b)) and not (
            (wa, xa) == (wb, xb) and on_link(graph, a, b)):
        return False, "a static address off its network (no route)"
    said = (ma.isolation(graph, (wa, xa), (wb, xb)) if ma else None) or \
        (mb.isolation(graph, (wb, xb), (wa, xa)) if mb else None)
    if said:
        return said
    said = ma.outbound(graph, (wa, xa), b, (wb, xb)) if ma else None
    if said:
        return said
    if wa == wb and xa == xb:
        return True, "same LAN" if wa == "lan" else "same filter switch"
    if wa == wb == "lan" and topology.has_internet(graph):
        if open_to_the_internet(graph, xb):
            return True, "over the internet" + ("" if xb == topology.INTERNET else " (routed LAN)")
        return False, "over the internet: a NATed LAN, inbound blocked"
    return False, "different LANs (no route between them)"


def pairs(graph: nx.Graph) -> list[tuple[Endpoint, Endpoint]]:
    """Every ordered pair of endpoints on different nodes."""
    eps = endpoints(graph)
    return [(a, b) for a in eps for b in eps if a.node != b.node]


def address_of(lab: Any, ep: Endpoint) -> str | None:
    """The endpoint's current IPv4 address in the running lab."""
    out = lab.node(ep.node).cmd(f"ip -4 -o addr show dev {ep.dev} scope global")
    fields = out.split()
    return fields[fields.index("inet") + 1].split("/")[0] if "inet" in fields else None


def probe(lab: Any, todo: list[tuple[Endpoint, Endpoint]], wave: int = 50) -> dict:
    """Pings every pair from the source's interface; returns {(a.label, b.label): reached}. A
    destination address that more than one node holds (the same NAT or internal address in two
    isolated networks) counts only when the destination itself answered: those pairs are pinged
    one at a time, after the others, and the destination's count of echo requests must grow."""
    everyone = {ep.label: ep for pair in todo for ep in pair}
    addresses = {label: address_of(lab, ep) for label, ep in everyone.items()}
    holders: dict[str, set[str]] = {}
    for label, address in addresses.items():
        if address:
            holders.setdefault(address, set()).add(everyone[label].node)
    results: dict[tuple[str, str], bool] = {}
    runnable, ambiguous = [], []
    for a, b in todo:
        address = addresses[b.label]
        if addresses[a.label] is None or address is None:
            results[(a.label, b.label)] = False
        elif len(holders[address]) > 1:
            ambiguous.append((a, b))
        else:
            runnable.append((a, b))
    for start in range(0, len(runnable), wave):
        procs = [((a, b), _ping(lab, a, addresses[b.label]))
                 for a, b in runnable[start:start + wave]]
        for (a, b), proc in procs:
            out, _ = proc.communicate(timeout=30)
            results[(a.label, b.label)] = received(out)
    for a, b in ambiguous:
        dst = lab.node(b.node)
        before = echo_requests(dst)
        out, _ = _ping(lab, a, addresses[b.label]).communicate(timeout=30)
        results[(a.label, b.label)] = received(out) and echo_requests(dst) > before
    return results


def _ping(lab: Any, a: Endpoint, address: str) -> subprocess.Popen:
    cmd = ["ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-I", a.dev, address]
    return lab.node(a.node).popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)


def received(out: str) -> bool:
    """Whether ping's summary says at least one reply came."""
    return " 0 received" not in out and "received" in out


def echo_requests(node: Any) -> int:
    """How many ICMP echo requests a node's stack has received (its namespace's /proc/net/snmp)."""
    rows = [line.split() for line in node.cmd("cat /proc/net/snmp").splitlines()
            if line.startswith("Icmp:")]
    if len(rows) < 2:
        return 0
    values = dict(zip(rows[0][1:], rows[1][1:], strict=False))
    return int(values.get("InEchos", 0))


def expect_dns(graph: nx.Graph, ep: Endpoint) -> tuple[str | None, str]:
    """The DNS server an endpoint's address comes with (its lease's or, static, what its lease
    would have said), and why; None: it has none."""
    data = graph.nodes[ep.key]
    where, what = _where(graph, ep)
    if where == "unplugged":
        return None, "not connected"
    if not has_address(graph, ep):
        return None, "no address"
    mode = _mode(graph, ep)
    said = mode.dns(graph, data) if mode else None
    if said:
        return said
    if where == "lan" and graph.nodes[what].get("dns", True):
        return str(ipaddress.IPv4Interface(graph.nodes[what]["gateway"]).ip), "its LAN's gateway"
    if where == "lan":
        return None, "the internet has no DNS server of its own"
    return None, "a filter switch without a LAN: no DNS"


def probe_dns(lab: Any, ep: Endpoint, name: str, want: str | None) -> str | None:
    """The DNS server that answers a lab name for this endpoint, asked from its own address: the
    one its lease offered (its interface's part of the node's resolv.conf), or, for a static
    address, the expected one if the node's resolv.conf lists it."""
    src = address_of(lab, ep)
    if src is None:
        return None
    part = lab.realizer.dns_base / ep.node / ep.dev
    if part.exists():
        servers = part.read_text().split()[1::2]
    else:
        listed = [line.split()[1] for line in lab.node(ep.node).cmd(
            "cat /etc/resolv.conf").splitlines() if line.startswith("nameserver")]
        servers = [want] if want in listed else []
    for server in servers:
        out = lab.node(ep.node).cmd(f"dig +short +tries=1 +time=2 -b {src} @{server} {name}")
        if out.split():
            return server
    return None


def matrix(lab: Any) -> tuple[list[dict], list[str]]:
    """Expectation and probe for every pair of the running lab: rows, and the mismatches."""
    t0 = time.monotonic()
    todo = pairs(lab.graph)
    probed = probe(lab, todo)
    rows, wrong = [], []
    for a, b in todo:
        ok, why = expect(lab.graph, a, b)
        got = probed[(a.label, b.label)]
        rows.append({"from": a.label, "to": b.label, "expected": ok, "probed": got, "why": why})
        if ok != got:
            wrong.append(f"{a.label} -> {b.label}: expected {'reaches' if ok else 'blocked'} "
                         f"({why}), probed {'reaches' if got else 'blocked'}")
    name = _a_lab_name(lab.graph)
    for ep in endpoints(lab.graph):
        want, why = expect_dns(lab.graph, ep)
        got = probe_dns(lab, ep, name, want) if name else None
        rows.append({"endpoint": ep.label, "dns": want, "answered": got, "why": why})
        if want != got:
            wrong.append(f"{ep.label}: DNS expected {want or 'none'} ({why}), probed "
                         f"{got or 'none'}")
    rows.append({"seconds": round(time.monotonic() - t0, 2)})
    return rows, wrong


def _a_lab_name(graph: nx.Graph) -> str | None:
    """A name every LAN's DNS answers (a gateway's, there is one with any LAN)."""
    lans = sorted(k for k, _ in topology.nodes_of(graph, "lan"))
    return f"gw.{lans[0]}" if lans else None


def format_matrix(rows: list[dict]) -> str:
    width = max([len(r["from"]) for r in rows if "from" in r] + [4])
    to_w = max([len(r["to"]) for r in rows if "to" in r] + [2])
    lines = [f"{'FROM':<{width}}  {'TO':<{to_w}}  {'EXPECTED':<9} {'PROBED':<9} WHY"]
    for r in rows:
        if "from" not in r:
            continue
        mark = "" if r["expected"] == r["probed"] else "   <-- MISMATCH"
        lines.append(f"{r['from']:<{width}}  {r['to']:<{to_w}}  "
                     f"{'reaches' if r['expected'] else 'blocked':<9} "
                     f"{'reaches' if r['probed'] else 'blocked':<9} {r['why']}{mark}")
    dns = [r for r in rows if "endpoint" in r]
    if dns:
        ew = max(len(r["endpoint"]) for r in dns + [{"endpoint": "ENDPOINT"}])
        lines += ["", f"{'ENDPOINT':<{ew}}  {'DNS':<16} {'ANSWERED':<16} WHY"]
        for r in dns:
            mark = "" if r["dns"] == r["answered"] else "   <-- MISMATCH"
            lines.append(f"{r['endpoint']:<{ew}}  {r['dns'] or 'none':<16} "
                         f"{r['answered'] or 'none':<16} {r['why']}{mark}")
    return "\n".join(lines) + "\n"
