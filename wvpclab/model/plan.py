"""A lab as a plan: everything it consists of, computed from the topology graph alone, and the
difference between two plans.

``plan(graph, prefix)`` is pure (no root, nothing touched): nodes, veths, bridges and their ports
with roles and MACs, addresses, routes, shapers, firewalls, NAT engines, DHCP servers and clients,
services.
``diff(old, new)`` says what to add, remove and change in place; ``wvpclab.runtime.realize``
carries it out.
Start is ``diff(EMPTY, plan)``, a runtime change ``diff(plan, plan')``, stop ``diff(plan, EMPTY)``.
Names are stable: the same graph gives the same names, and an object that stays keeps its name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from wvpclab.model import macs, modes, topology
from wvpclab.model.addresses import RULE_BASE, TABLE_BASE, host, in_pool, lan_pool
from wvpclab.model.items import (
    KINDS,
    Address,
    Bridge,
    DhcpClient,
    DhcpServer,
    Dns,
    Firewall,
    Host,
    Item,
    Port,
    Resolver,
    Route,
    Rule,
    Server,
    Service,
    Shaper,
    Uplink,
    Veth,
)
from wvpclab.model.nat import LAN_SIDE, WAN_SIDE, gateway_rules

#: A guest NIC's port number on whatever switch it plugs into: GUEST_PORT_BASE + the NIC's place in
#: the lab (stable across moves; the switches' own ports are numbered from 1).
GUEST_PORT_BASE = 100


@dataclass(frozen=True)
class LabPlan:
    """Everything a lab consists of, by item type and key."""

    name: str = ""
    prefix: str = ""
    items: Mapping[type, Mapping[Any, Item]] = field(default_factory=dict)

    def of(self, kind: type) -> Mapping[Any, Any]:
        """The items of one type, by key."""
        return self.items.get(kind, {})

    def get(self, kind: type, key: Any) -> Any:
        return self.of(kind).get(key)

    def ports_of(self, bridge: str) -> list[Port]:
        """A bridge's ports by number."""
        return sorted((p for p in self.of(Port).values() if p.bridge == bridge),
                      key=lambda p: p.number)

    def server_of(self, item: Item) -> str | None:
        """The server an item is on (None: the machine running the lab); an uplink is on both
        its ends' servers and answers for its ``a`` end."""
        if isinstance(item, (Host, Bridge)):
            return item.server
        if isinstance(item, Port):
            return self.of(Bridge)[item.bridge].server
        if isinstance(item, Uplink):
            return item.a
        if isinstance(item, Server):
            return item.name
        node = getattr(item, "node", None)
        return self.of(Host)[node].server if node in self.of(Host) else None

    def part(self, server: str | None) -> LabPlan:
        """The items one machine realizes (None: the machine running the lab). Servers and the
        uplinks between them are the lab's own: an uplink joins two machines."""
        items: dict[type, dict[Any, Item]] = {}
        for kind, table in self.items.items():
            if kind in (Server, Uplink):
                continue
            mine = {k: i for k, i in table.items() if self.server_of(i) == server}
            if mine:
                items[kind] = mine
        return LabPlan(self.name, self.prefix, items)

    def servers(self) -> list[str | None]:
        """Every machine the lab uses: None (the machine running it) first, then its servers."""
        used = {h.server for h in self.of(Host).values()} | \
            {b.server for b in self.of(Bridge).values()}
        return [None, *sorted(s for s in used if s is not None)] if used else []

    def placement(self) -> str:
        """What runs where, one line a machine (``wvpclab plan``)."""
        lines = []
        for server in self.servers():
            hosts = [h for h in self.of(Host).values() if h.server == server]
            pcs = sorted(h.name for h in hosts if h.role == "pc")
            lans = sorted(b.key for b in self.of(Bridge).values()
                          if b.server == server and b.kind == "lan")
            where = "local" if server is None else \
                f"{server} ({self.of(Server)[server].user}@{self.of(Server)[server].host})"
            lines.append(f"  {where}: {len(hosts)} nodes, "
                         f"{sum(b.server == server for b in self.of(Bridge).values())} switches; "
                         f"PCs {', '.join(pcs) or '-'}; LANs {', '.join(lans) or '-'}")
        tunnels = len(self.of(Uplink))
        if tunnels:
            lines.append(f"  {tunnels} uplink{'s' if tunnels != 1 else ''} between servers")
        return "\n".join(lines)

    def registration(self, bridge: str) -> list[dict[str, Any]]:
        """What the controller is told about a bridge's ports (those with a role)."""
        return [p.registration() for p in self.ports_of(bridge) if p.role is not None]

    def text(self) -> str:
        """The plan for people, one item a line, grouped by type (``wvpclab plan``)."""
        lines = [f"plan of lab {self.name} (prefix {self.prefix})"]
        if self.of(Server):
            lines += ["placement:", self.placement()]
        for kind in KINDS:
            items = self.of(kind)
            if not items:
                continue
            title = kind.__name__.lower()
            title = getattr(kind, "TITLE", "") or f"{title}{'es' if title.endswith('s') else 's'}"
            lines.append(f"{title} ({len(items)}):")
            lines += [f"  {item.line()}" for item in sorted(items.values(), key=lambda i: i.order)]
        return "\n".join(lines) + "\n"


EMPTY = LabPlan()


class Builder:
    """Collects a plan's items; the modes add theirs through it (what they use of it is
    ``wvpclab.model.modes.base.Builder``)."""

    def __init__(self, graph: nx.Graph, prefix: str, previous: LabPlan | None) -> None:
        self.graph = graph
        self.prefix = prefix
        self.previous = previous or EMPTY
        self.items: dict[type, dict[Any, Item]] = {kind: {} for kind in KINDS}
        self._statics: dict[str, list[str]] = {}
        self._servers: list[DhcpServer] = []
        self._slots: dict[str, int] = {}
        self._nic_taken: set[int] | None = None
        self._nic_next = 0

    def add(self, item: Item) -> None:
        if isinstance(item, (Host, Bridge)) and item.server is None:
            item = replace(item, server=self.server_of(item))
        table = self.items[type(item)]
        if item.key in table:
            raise ValueError(f"the plan has {type(item).__name__} {item.key!r} twice")
        table[item.key] = item

    def of(self, kind: type) -> dict[Any, Any]:
        return self.items[kind]

    def server_of(self, item: Host | Bridge) -> str | None:
        """Where a node or switch runs: a PC's own (its VMs, filter switches, access points, NAT
        engines, internal networks and their DHCP servers) on the PC's server, a LAN's switch,
        gateway and servers on the LAN's (None: the machine running the lab)."""
        g = self.graph
        if isinstance(item, Host):
            if item.pc is not None:
                return g.nodes[item.pc].get("server")
            if item.role == "gateway":
                return g.nodes[item.name.removeprefix("gw.")].get("server")
            if item.role == "server":
                return g.nodes[g.nodes[item.name]["lan"]].get("server")
            return g.nodes[item.name].get("server")
        if item.kind == "lan":
            return g.nodes[item.key].get("server")
        key = item.key.split(":", 1)[-1]  # ap:PC/ADAPTER, PC/ADAPTER, PC/NAME
        return g.nodes[key.split("/", 1)[0]].get("server")

    def root_name(self, letter: str, number: int) -> str:
        """A root-namespace interface or bridge name: ``wvXXX-`` + letter + number (<= 15 chars)."""
        name = f"{self.prefix}-{letter}{number}"
        if len(name) > 15:
            raise ValueError(f"interface name {name} is longer than 15 characters")
        return name

    def dpid(self, kind: int, index: int) -> int:
        """A datapath id: the lab's prefix, the switch kind and its number."""
        lab = int(self.prefix[2:], 16)  # noqa: FURB166 - the prefix is "wv" + 3 hex digits
        return (0x5776 << 48) | (kind << 40) | (lab << 20) | index

    def internal_slot(self, key: str) -> int:
        """The number of an internal network's switch: kept from the previous plan, else the
        lowest one no other network has (networks can be added while the lab runs)."""
        if key not in self._slots:
            old = self.previous.get(Bridge, key)
            mark = f"{self.prefix}-i"
            taken = {int(b.name[len(mark):]) for b in self.previous.of(Bridge).values()
                     if b.name.startswith(mark)}
            taken |= set(self._slots.values())
            if old is not None:
                self._slots[key] = int(old.name[len(mark):])
            else:
                self._slots[key] = next(i for i in range(len(taken) + 1) if i not in taken)
        return self._slots[key]

    def nic_slot(self, vm: str, index: int) -> int:
        """The number of a guest NIC (its cable's name, switch port and NAT transit link): kept
        from the previous plan, else the lowest one no NIC of it had (VMs and NICs come and go
        while the lab runs; a fresh lab numbers its NICs in order)."""
        mark = f"{self.prefix}-n"
        if self._nic_taken is None:
            self._nic_taken = {int(v.root[len(mark):]) for v in self.previous.of(Veth).values()
                               if v.root and v.root.startswith(mark)}
        old = self.previous.get(Veth, (vm, f"eth{index}"))
        if old is not None and old.root and old.root.startswith(mark):
            return int(old.root[len(mark):])
        while self._nic_next in self._nic_taken:  # (slots are only taken: the lowest free rises)
            self._nic_next += 1
        self._nic_taken.add(self._nic_next)
        return self._nic_next

    def port(self, bridge: str, ifname: str, role: str | None, mac: str | None,
             number: int | None = None, allow_spoofing: bool = False, patch: str | None = None,
             label: str = "") -> Port:
        """Adds a port; without ``number``, the lowest one the bridge does not use."""
        if number is None:
            number = self._free_number(bridge)
        port = Port(bridge, ifname, number, role, mac, allow_spoofing, patch, label)
        self.add(port)
        return port

    def patch(self, a: str, role_a: str | None, mac_a: str | None, label_a: str, b: str,
              role_b: str | None, mac_b: str | None, label_b: str, number_a: int | None = None,
              number_b: int | None = None) -> None:
        """A patch cable between two bridges (no kernel interface: one datapath pass). Labels say
        what each side leads to."""
        name_a = self._patch_name(a, number_a)
        name_b = self._patch_name(b, number_b)
        on_a, on_b = self.items[Bridge][a].server, self.items[Bridge][b].server
        if on_a != on_b:  # two machines: a tunnel, whose ends are ports as a patch's sides are
            self.port(a, name_a, role_a, mac_a, number_a, label=f"{label_a} @{on_b or 'local'}")
            self.port(b, name_b, role_b, mac_b, number_b, label=f"{label_b} @{on_a or 'local'}")
            self.add(Uplink(on_a, name_a, on_b, name_b))
            return
        self.port(a, name_a, role_a, mac_a, number_a, patch=name_b, label=label_a)
        self.port(b, name_b, role_b, mac_b, number_b, patch=name_a, label=label_b)

    def _patch_name(self, bridge: str, number: int | None) -> str:
        return f"{self.items[Bridge][bridge].name}-x{number or self._free_number(bridge)}"

    def _free_number(self, bridge: str) -> int:
        """The lowest OpenFlow port number a bridge does not use yet."""
        used = {p.number for p in self.items[Port].values() if p.bridge == bridge}
        return next(n for n in range(1, len(used) + 2) if n not in used)

    def static(self, server: str | None, cidr: str) -> None:
        """A static address on the network whose DHCP server is ``server`` (never handed out)."""
        if server:
            self._statics.setdefault(server, []).append(cidr)

    def server(self, server: DhcpServer) -> None:
        """A DHCP server; its exclusions are filled in once every static address is known."""
        self._servers.append(server)

    def finish(self) -> LabPlan:
        networks = _networks(self.items)
        for server in self._servers:
            exclude = in_pool(server.pool, self._statics.get(server.key, []))
            ports = networks.get((server.node, server.dev), [])
            known = sorted({p.mac for p in ports if p.role in ("guest", "host") and p.mac}
                           | {v.mac for v in self.items[Veth].values()
                              if v.into and v.into[:2] == (server.node, server.dev) and v.mac})
            translators = sorted({p.mac for p in ports if p.role == "host" and p.mac
                                  and self.items[Bridge][p.bridge].kind == "wireless"})
            self.add(replace(server, exclude=exclude, known=tuple(known),
                             translators=tuple(translators)))
        name = self.graph.graph.get("name", "")
        return LabPlan(name, self.prefix, {k: dict(v) for k, v in self.items.items() if v})


def network_of(bridges: Iterable[str], ports: Iterable[Port],
               uplinks: Iterable[Uplink] = ()) -> dict[str, str]:
    """Each bridge's network: the key of one bridge standing for all those joined to it by patch
    cables and uplinks between servers."""
    parent = {key: key for key in bridges}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    ports = list(ports)
    bridge_of = {p.ifname: p.bridge for p in ports}
    for p in ports:
        if p.patch and p.patch in bridge_of:
            parent[find(p.bridge)] = find(bridge_of[p.patch])
    for u in uplinks:
        if u.a_dev in bridge_of and u.b_dev in bridge_of:
            parent[find(bridge_of[u.a_dev])] = find(bridge_of[u.b_dev])
    return {key: find(key) for key in parent}


def _networks(items: dict[type, dict[Any, Any]]) -> dict[tuple[str, str], list[Port]]:
    """For each node interface plugged into a switch, every port of its network (the switches
    joined by patch cables)."""
    ports = list(items[Port].values())
    net = network_of(items[Bridge], ports, items[Uplink].values())
    bridge_of = {p.ifname: p.bridge for p in ports}
    members: dict[str, list[Port]] = {}
    for p in ports:
        members.setdefault(net[p.bridge], []).append(p)
    return {(v.node, v.dev): members[net[bridge_of[v.root]]]
            for v in items[Veth].values() if v.root and v.root in bridge_of}


def plan(graph: nx.Graph, prefix: str, previous: LabPlan | None = None) -> LabPlan:
    """Everything the lab of a validated ``graph`` consists of. ``previous`` (the running plan)
    keeps the names of internal networks added at runtime."""
    b = Builder(graph, prefix, previous)
    for name, server in sorted(graph.graph.get("servers", {}).items()):
        b.add(Server(name, server["host"], server["user"]))
    for key, _ in topology.nodes_of(graph, "pc"):
        b.add(Host(key, "pc"))
    for key, vm in topology.nodes_of(graph, "vm"):
        b.add(Host(key, "vm", vm["pc"], ipv6=vm.get("ipv6", True)))
    _plan_lans(b)
    for mode in modes.MODES.values():  # what each mode brings once (adapters, internal networks)
        mode.plan_lab(b)
    for _, nic in topology.nodes_of(graph, "nic"):
        _plan_nic(b, nic, b.nic_slot(nic["vm"], nic["index"]))
    _plan_names(b)
    for mode in modes.MODES.values():  # what follows from every NIC (the PCs' NAT rules)
        mode.plan_done(b)
    return b.finish()


def has_dns(graph: nx.Graph, lan: str | None) -> bool:
    """Whether a LAN's gateway runs a DNS server (every LAN's does)."""
    return bool(lan) and bool(graph.nodes[lan].get("dns", True))


def lab_names(graph: nx.Graph) -> tuple[tuple[str, str], ...]:
    """Every name of the lab a LAN's DNS answers for, with its address: the servers, the
    gateways (``gw.LAN``) and the PCs' static adapters."""
    out = [(key, host(s["ip"])) for key, s in topology.nodes_of(graph, "server") if s["ip"]]
    out += [(f"gw.{key}", host(lan["gateway"])) for key, lan in topology.nodes_of(graph, "lan")
            if lan["gateway"]]
    out += [(a["pc"], host(a["ip"])) for _, a in topology.nodes_of(graph, "adapter")
            if a["ip"] and a["ip"] != "dhcp"]
    return tuple(sorted(set(out)))


def static_nameservers(graph: nx.Graph) -> dict[str, tuple[str, ...]]:
    """The nameservers each node has from its static settings (a DHCP lease adds its own): the
    LAN gateway of a server, a gateway itself and a PC's static adapter; a guest's static NIC the
    DNS server its mode would have leased it (its LAN's gateway, its NAT engine; none on an
    internal network)."""
    out: dict[str, list[str]] = {}

    def add(node: str, server: str | None) -> None:
        if server and server not in out.setdefault(node, []):
            out[node].append(server)

    for key, lan in topology.nodes_of(graph, "lan"):
        if has_dns(graph, key):
            add(f"gw.{key}", host(lan["gateway"]))
    for key, s in topology.nodes_of(graph, "server"):
        if has_dns(graph, s["lan"]):
            add(key, host(graph.nodes[s["lan"]]["gateway"]))
    for _, a in topology.nodes_of(graph, "adapter"):
        if a["ip"] and a["ip"] != "dhcp" and has_dns(graph, a["lan"]):
            add(a["pc"], host(graph.nodes[a["lan"]]["gateway"]))
    for _, nic in sorted(topology.nodes_of(graph, "nic"), key=lambda kv: kv[1]["index"]):
        if nic["ip"]:
            add(nic["vm"], modes.of(nic).nameserver(graph, nic))
    return {node: tuple(servers) for node, servers in out.items()}


def _plan_names(b: Builder) -> None:
    """DNS: each LAN gateway's server, every node's own resolver files (a mode adds its own
    servers: ``Mode.plan_done``)."""
    g = b.graph
    names = lab_names(g)
    for key, lan in topology.nodes_of(g, "lan"):
        if has_dns(g, key):
            b.add(Dns(f"gw.{key}", listen=host(lan["gateway"]), names=names))
    statics = static_nameservers(g)
    own: dict[str, tuple[str, ...]] = {}
    for name, ip in names:
        own[name] = (*own.get(name, ()), ip)
    for name in list(b.of(Host)):
        b.add(Resolver(name, statics.get(name, ()), own.get(name, ())))


def _plan_lans(b: Builder) -> None:
    """The emulated external LANs: a learning switch, a gateway (router + DHCP), the servers."""
    g = b.graph
    for ordinal, (key, lan) in enumerate(topology.nodes_of(g, "lan")):
        b.add(Bridge(key, b.root_name("l", ordinal), b.dpid(0x1, ordinal), "lan"))
        gw = f"gw.{key}"
        root = b.root_name("g", ordinal)
        b.add(Host(gw, "gateway"))
        b.add(Veth(gw, "eth0", macs.derive_adapter(gw, "eth0"), root=root))
        b.port(key, root, None, None, label=f"gateway {gw}")
        b.add(Address(gw, "eth0", lan["gateway"]))
        if lan["dhcp"]:
            router = host(lan["gateway"])
            b.server(DhcpServer(key, gw, "eth0", lan["subnet"], router, lan_pool(lan["subnet"]),
                                files=f"dhcp+lan+{key}", router=router,
                                dns=(router,) if has_dns(g, key) else (),
                                hostnames=has_dns(g, key)))
        if lan.get("wan"):  # the gateway's uplink to the internet
            uplink = b.root_name("w", ordinal)
            b.add(Veth(gw, WAN_SIDE, macs.derive_adapter(gw, WAN_SIDE), root=uplink))
            b.port(topology.INTERNET, uplink, None, None, label=f"uplink of {gw}")
            b.add(Address(gw, WAN_SIDE, lan["wan"]))
            b.add(Route(gw, WAN_SIDE, via=host(g.nodes[topology.INTERNET]["gateway"])))
            b.add(Firewall(gw, gateway_rules(lan["nat"])))
            if not lan["nat"] and lan["subnet"]:  # the core router routes a routed LAN's subnet
                b.add(Route(f"gw.{topology.INTERNET}", LAN_SIDE, dest=lan["subnet"],
                            via=host(lan["wan"])))
    for ordinal, (key, server) in enumerate(topology.nodes_of(g, "server")):
        lan = g.nodes[server["lan"]]
        root = b.root_name("s", ordinal)
        b.add(Host(key, "server"))
        b.add(Veth(key, "eth0", macs.derive_adapter(key, "eth0"), root=root))
        b.port(server["lan"], root, None, None, label=f"server {key}")
        b.add(Address(key, "eth0", server["ip"]))
        b.add(Route(key, "eth0", via=host(lan["gateway"])))
        b.add(Service(key))
        b.static(server["lan"] if lan["dhcp"] else None, server["ip"])


def _plan_nic(b: Builder, nic: dict, ordinal: int) -> None:
    """A guest NIC: its cable (up when plugged into something), its speed, where it plugs in, its
    static address and source routing or its DHCP client, and what its mode adds."""
    g = b.graph
    mode = modes.of(nic)
    vm, index = nic["vm"], nic["index"]
    dev = f"eth{index}"
    root = b.root_name("n", ordinal)
    attach = mode.attachment(g, nic)
    into = mode.cable_into(nic)
    b.add(Veth(vm, dev, nic["mac"], root=root, up=mode.carrier(nic), into=into))
    if nic["speed"] != "unlimited":
        b.add(Shaper(vm, dev, int(nic["speed"])))
    if attach and not into:
        b.port(attach, root, "guest", nic["mac"], GUEST_PORT_BASE + ordinal,
               nic["allow_mac_spoofing"], label=f"guest {vm}/{dev}")
    server = mode.server(g, nic)
    if nic["ip"]:
        b.add(Address(vm, dev, nic["ip"]))
        b.static(server, nic["ip"])
        _source_routing(b, vm, dev, index, nic["ip"], mode.gateway(g, nic))
    else:
        client = g.nodes[vm]["dhcp_client"]
        b.add(DhcpClient(vm, index, dev, client, True, attach,
                         mode.network(g, nic) if server else None, mode.carrier(nic)))
    mode.plan_nic(b, nic, ordinal)


def _source_routing(b: Builder, vm: str, dev: str, index: int, cidr: str,
                    gateway: str | None) -> None:
    """Traffic from a static address leaves by its own NIC (strong host); the NIC's router, if any
    and if the address can reach it (a static address of another network cannot), is a default
    route (metric by NIC) and the default of the NIC's own table."""
    iface = ipaddress.IPv4Interface(cidr)
    table = TABLE_BASE + index
    b.add(Rule(vm, str(iface.ip), table, RULE_BASE + index))
    b.add(Route(vm, dev, dest=str(iface.network), src=str(iface.ip), table=table))
    if gateway and ipaddress.IPv4Address(gateway) in iface.network:
        b.add(Route(vm, dev, via=gateway, table=table))
        b.add(Route(vm, dev, via=gateway, metric=100 + index))


@dataclass
class Delta:
    """What turns one plan into another: items to add, to remove, and to change in place."""

    old: LabPlan
    new: LabPlan
    added: dict[type, list[Any]] = field(default_factory=dict)
    removed: dict[type, list[Any]] = field(default_factory=dict)
    changed: dict[type, list[tuple[Any, Any]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.added.values()) or any(self.removed.values()) or \
            any(self.changed.values())

    def add(self, kind: type) -> list[Any]:
        return self.added.get(kind, [])

    def remove(self, kind: type) -> list[Any]:
        return self.removed.get(kind, [])

    def change(self, kind: type) -> list[tuple[Any, Any]]:
        return self.changed.get(kind, [])

    def text(self) -> str:
        """The change for people: ``+`` added, ``-`` removed, ``~`` changed in place."""
        lines = []
        for kind in KINDS:
            lines += [f"- {i.line()}" for i in sorted(self.remove(kind), key=lambda i: i.order)]
            lines += [f"+ {i.line()}" for i in sorted(self.add(kind), key=lambda i: i.order)]
            lines += [f"~ {b.line()}" for _, b in sorted(self.change(kind),
                                                         key=lambda p: p[1].order)]
        return "\n".join(lines) + ("\n" if lines else "")


def diff(old: LabPlan, new: LabPlan) -> Delta:
    """What to add, remove and change to turn ``old`` into ``new``. An item whose fixed fields
    differ is removed and added again; one that differs in ``MUTABLE`` fields only is changed in
    place."""
    delta = Delta(old, new)
    for kind in KINDS:
        before, after = old.of(kind), new.of(kind)
        added = [after[k] for k in after if k not in before]
        removed = [before[k] for k in before if k not in after]
        changed = []
        for k in before.keys() & after.keys():
            a, b = before[k], after[k]
            if a == b:
                continue
            if a.same_but_mutable(b):
                changed.append((a, b))
            else:
                removed.append(a)
                added.append(b)
        if kind is Port:  # a switch made anew gets all its ports anew
            remade = {b.key for b in delta.remove(Bridge)} & {b.key for b in delta.add(Bridge)}
            for k in before.keys() & after.keys():
                if before[k].bridge in remade and before[k] == after[k]:
                    removed.append(before[k])
                    added.append(after[k])
        for table, items in ((delta.added, added), (delta.removed, removed),
                             (delta.changed, changed)):
            if items:
                table[kind] = items
    return delta


__all__ = ["EMPTY", "GUEST_PORT_BASE", "Builder", "Delta", "LabPlan", "diff", "plan"]
