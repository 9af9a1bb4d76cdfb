"""Which address of a node another node would use, and Mininet's ping tests made truthful.

A node's name on the command line stands for its address as the source would reach it: the address
of the destination's interface on a network (a switch, or switches joined by patch cables, or a
transit link) the two share, else the destination's main address (its first interface with one).
Pings go out of the interface the source's own routing picks, in parallel waves, and each answer is
set beside what the model (``wvpclab.analysis.verify``) expects for that pair."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wvpclab.analysis import verify
from wvpclab.model import modes, topology
from wvpclab.model.items import Bridge, Port, Uplink, Veth
from wvpclab.model.nat import WAN_SIDE
from wvpclab.model.plan import LabPlan, network_of


def segments(plan: LabPlan) -> dict[str, list[tuple[str, str | None]]]:
    """Each node's interfaces in order (its switch ports' ends first, transit links last) with the
    network each is on: the switches joined by patch cables are one network, a transit link another,
    a cable straight into a node (a NAT engine) another; None for a cable plugged into nothing."""
    ports = list(plan.of(Port).values())
    net = network_of(plan.of(Bridge), ports, plan.of(Uplink).values())
    bridge_of = {p.ifname: p.bridge for p in ports}
    out: dict[str, list[tuple[str, str | None]]] = {}
    for v in sorted(plan.of(Veth).values(), key=lambda v: (v.root is None, v.dev)):
        if v.into:  # a cable straight into a node: the two ends are a network of their own
            seg = f"cable {v.node}:{v.dev}"
            out.setdefault(v.node, []).append((v.dev, seg))
            out.setdefault(v.into[0], []).append((v.into[1], seg))
        elif v.root:
            seg = net[bridge_of[v.root]] if v.root in bridge_of else None
            out.setdefault(v.node, []).append((v.dev, seg))
        else:
            seg = f"transit {v.node}"
            out.setdefault(v.node, []).append((v.dev, seg))
            out.setdefault(v.peer, []).append((v.peer_dev, seg))
    return out


def addresses(node: Any) -> dict[str, str]:
    """A node's interfaces' current IPv4 addresses (static or leased), read in one round trip."""
    out = {}
    for line in node.cmd("ip -4 -o addr show scope global").splitlines():
        fields = line.split()
        if "inet" in fields:
            out.setdefault(fields[1].split("@")[0], fields[fields.index("inet") + 1].split("/")[0])
    return out


@dataclass(frozen=True)
class Target:
    """Where a source reaches a destination: the address, the destination's interface, and the
    source's interface on a shared network (None: the source's routing decides)."""

    ip: str
    dev: str
    via: str | None


class Resolver:
    """Resolves node names to addresses for one moment of a running lab (addresses are read once
    per node and kept for the resolver's life)."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab
        self.where = segments(lab.plan)
        self._addresses: dict[str, dict[str, str]] = {}

    def addresses(self, name: str) -> dict[str, str]:
        if name not in self._addresses:
            self._addresses[name] = addresses(self.lab.node(name))
        return self._addresses[name]

    def target(self, src: str, dst: str) -> Target | None:
        """``dst``'s address as ``src`` would reach it, or None when it has none (or ``src`` has
        no address to send from)."""
        if not self.addresses(src):
            return None
        mine = {seg: dev for dev, seg in self.where.get(src, []) if seg is not None
                and dev in self.addresses(src)}
        theirs = [(dev, seg) for dev, seg in self.where.get(dst, [])
                  if dev in self.addresses(dst)]
        for dev, seg in theirs:
            if seg in mine:
                return Target(self.addresses(dst)[dev], dev, mine[seg])
        if theirs:
            dev = theirs[0][0]
            return Target(self.addresses(dst)[dev], dev, None)
        return None

    def substitute(self, src: str, words: Iterable[str]) -> list[str]:
        """Words of a command in ``src`` with node names replaced by their addresses."""
        out = []
        for word in words:
            if word in self.lab.nodes and word != src:
                target = self.target(src, word)
                out.append(target.ip if target else word)
            else:
                out.append(word)
        return out


def _endpoint(lab: Any, graph: Any, node: str, dev: str) -> verify.Endpoint | None:
    """The model's endpoint for a node's interface: VM NICs, PC adapters, LAN servers, and the lab's
    LAN gateways and the modes' stand-ins (``_with_infrastructure``). None outside the model."""
    if node in graph and graph.nodes[node].get("kind") == "server":
        if dev == WAN_SIDE and f"{node}/wan" in graph:  # a LAN gateway's side on the internet
            return verify.Endpoint(node, node, dev, "server", f"{node}/wan")
        return verify.Endpoint(node, node, "eth0", "server", node)
    if node in graph and graph.nodes[node].get("kind") == "vm" and node not in lab.graph:
        return verify.Endpoint(f"{node}/eth0", node, "eth0", "nic", f"{node}/0")  # a stand-in
    for ep in verify.endpoints(lab.graph):
        if ep.node == node and ep.dev == dev:
            return ep
    return None


@dataclass
class Probe:
    """One ping: from a node to another's address, what it got and what the model expects."""

    src: str
    dst: str
    target: Target | None
    received: bool = False
    expected: bool | None = None  # None: outside the model
    why: str = ""


def probe(lab: Any, pairs: list[tuple[str, str]], count: int = 1, timeout: float = 1.0,
          wave: int = 50) -> list[Probe]:
    """Pings every pair (in parallel waves) from the interface the source's routing picks."""
    res = Resolver(lab)
    probes = [Probe(a, b, res.target(a, b)) for a, b in pairs]
    runnable = [p for p in probes if p.target is not None]
    routes = _routes(lab, runnable)
    holders: dict[str, set[str]] = {}
    for name in lab.nodes:  # every node: a third one may hold the address too
        for address in res.addresses(name).values():
            holders.setdefault(address, set()).add(name)
    # an address two nodes hold (isolated networks alike) counts only if the destination answered
    ambiguous = [p for p in runnable if p.target and len(holders.get(p.target.ip, ())) > 1]
    plain = [p for p in runnable if p not in ambiguous]

    def ping(p: Probe) -> subprocess.Popen:
        assert p.target is not None
        dev = p.target.via or routes.get((p.src, p.target.ip))
        cmd = ["ping", "-n", "-c", str(count), "-W", f"{timeout:g}", "-i", "0.2"]
        if dev:
            cmd += ["-I", dev]
        return lab.node(p.src).popen(cmd + [p.target.ip], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)

    for start in range(0, len(plain), wave):
        batch = [(p, ping(p)) for p in plain[start:start + wave]]
        for p, proc in batch:
            out, _ = proc.communicate(timeout=30 + count * timeout)
            p.received = verify.received(out)
    for p in ambiguous:
        before = verify.echo_requests(lab.node(p.dst))
        out, _ = ping(p).communicate(timeout=30 + count * timeout)
        p.received = verify.received(out) and verify.echo_requests(lab.node(p.dst)) > before
    for p in probes:
        _expect(lab, res, p, routes)
    return probes


def _routes(lab: Any, probes: list[Probe]) -> dict[tuple[str, str], str]:
    """The interface each source's routing picks for each destination (one round trip a source)."""
    wanted: dict[str, set[str]] = {}
    for p in probes:
        if p.target is not None and p.target.via is None:
            wanted.setdefault(p.src, set()).add(p.target.ip)
    out = {}
    for src, ips in wanted.items():
        text = lab.node(src).cmd("; ".join(f"ip -o -4 route get {ip}" for ip in sorted(ips)))
        for line in text.splitlines():
            fields = line.split()
            if "dev" in fields and fields and fields[0] in ips:
                out[(src, fields[0])] = fields[fields.index("dev") + 1]
    return out


def _expect(lab: Any, res: Resolver, p: Probe, routes: dict) -> None:
    """What the model says of a probe: the source's interface the routing picked (or, with no
    route, any of its interfaces) to the destination's addressed interface."""
    if p.target is None:
        p.expected, p.why = False, "no address"
        return
    for mode in modes.MODES.values():  # a node a mode adds (a NAT engine) is the mode's to judge
        said = mode.reached(lab.plan, p.src, p.dst)
        if said:
            p.expected, p.why = said
            return
    sender = next((s for m in modes.MODES.values() if (s := m.sends_as(lab.plan, p.src))), None)
    if sender is not None:  # what leaves it leaves as a guest's traffic
        src, devs = sender[0], [sender[1]]
    else:
        dev = p.target.via or routes.get((p.src, p.target.ip))
        src, devs = p.src, [dev] if dev else [d for d, _ in res.where.get(p.src, [])]
    graph = _with_infrastructure(lab)
    b = _endpoint(lab, graph, p.dst, p.target.dev)
    answers = [verify.expect(graph, a, b) for a in (_endpoint(lab, graph, src, d) for d in devs)
               if a is not None and b is not None]
    if not answers:
        p.expected, p.why = None, "outside the model"
        return
    p.expected, p.why = next((x for x in answers if x[0]), answers[0])


def _with_infrastructure(lab: Any) -> Any:
    """The topology graph with the lab's own nodes the model can place: each LAN's gateway (a
    server on its LAN, and one on the internet for its uplink) and what each mode stands in as a
    guest (``Mode.stand_ins``: an internal network's DHCP server)."""
    g = lab.graph.copy()
    for key, data in list(lab.graph.nodes(data=True)):
        if data.get("kind") == "lan":
            g.add_node(f"gw.{key}", kind="server", lan=key, name=f"gw.{key}", ip=data["gateway"])
            if data.get("wan"):  # and its address on the internet: a server there
                g.add_node(f"gw.{key}/wan", kind="server", lan=topology.INTERNET,
                           name=f"gw.{key}", ip=data["wan"])
    for mode in modes.MODES.values():
        mode.stand_ins(g)
    return g


def summary(probes: list[Probe]) -> list[str]:
    """Mininet's results line, then what the model says of the drops."""
    tried = [p for p in probes if p.target is not None]
    lost = [p for p in tried if not p.received]
    got = len(tried) - len(lost)
    pct = 100.0 * len(lost) / len(tried) if tried else 0.0
    lines = [f"*** Results: {pct:.0f}% dropped ({got}/{len(tried)} received)"]
    expected = [p for p in lost if p.expected is False]
    reasons: dict[str, int] = {}
    for p in expected:
        reasons[p.why] = reasons.get(p.why, 0) + 1
    surprising = [p for p in lost if p.expected is True]
    leaks = [p for p in tried if p.received and p.expected is False]
    outside = [p for p in tried if p.expected is None]
    why = ", ".join(f"{why}: {n}" for why, n in sorted(reasons.items()))
    lines.append(f"*** Model: {len(expected)} of the {len(lost)} drops are expected"
                 + (f" ({why})" if why else "") + f"; {len(surprising)} unexpected drops, "
                 f"{len(leaks)} unexpected replies"
                 + (f"; {len(outside)} pairs outside the model" if outside else ""))
    for p in surprising:
        lines.append(f"*** unexpected drop: {p.src} -> {p.dst} ({p.target.ip}): {p.why}")
    for p in leaks:
        lines.append(f"*** unexpected reply: {p.src} -> {p.dst} ({p.target.ip}): {p.why}")
    names = {p.src for p in probes} | {p.dst for p in probes}
    unaddressed = sorted(n for n in names
                         if all(p.target is None for p in probes if n in (p.src, p.dst)))
    if unaddressed:
        lines.append(f"*** no address (not probed): {' '.join(unaddressed)}")
    return lines


__all__ = ["Probe", "Resolver", "Target", "addresses", "probe", "segments", "summary"]
