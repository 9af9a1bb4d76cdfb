"""What a lab consists of, as plain values: the items of a plan (``wvpclab.model.plan``).

Each item is a frozen dataclass with a ``key`` (its identity across plans) and ``MUTABLE`` fields
(those that a running lab changes in place; a change to any other field replaces the item).
``line()`` says the item in one line for ``wvpclab plan``. Pure: nothing here touches the system.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from wvpclab.model.addresses import nat_address, transit


@dataclass(frozen=True)
class Item:
    """The common shape of plan items."""

    MUTABLE: ClassVar[tuple[str, ...]] = ()

    @property
    def key(self) -> Any:
        raise NotImplementedError

    def line(self) -> str:
        raise NotImplementedError

    @property
    def order(self) -> str:
        """Where the item stands in a listing."""
        return repr(self.key)

    def same_but_mutable(self, other: Item) -> bool:
        """True when ``other`` differs from this item in ``MUTABLE`` fields only."""
        return all(getattr(self, f.name) == getattr(other, f.name)
                   for f in fields(self) if f.name not in self.MUTABLE)


def _at(server: str | None) -> str:
    return f" @{server}" if server else ""


@dataclass(frozen=True)
class Server(Item):
    """Another machine the lab spreads over (none: the lab runs on one): its name, the address
    ssh reaches it at, and the user."""

    name: str
    host: str
    user: str = "root"

    @property
    def key(self) -> str:
        return self.name

    def line(self) -> str:
        return f"server {self.name} {self.user}@{self.host}"


@dataclass(frozen=True)
class Host(Item):
    """A Mininet node: its name and role (``vm``, ``pc``, ``gateway``, ``server``, ``nat``,
    ``dhcp``), the server it runs on (None: the machine running the lab), and whether it runs IPv6
    beside IPv4 (a VM's setting; the rest always do)."""

    name: str
    role: str
    pc: str | None = None
    server: str | None = None
    ipv6: bool = True

    @property
    def key(self) -> str:
        return self.name

    def line(self) -> str:
        return f"{self.role} {self.name}" + (f" (on {self.pc})" if self.pc else "") + \
            ("" if self.ipv6 else " no IPv6") + _at(self.server)


@dataclass(frozen=True)
class Veth(Item):
    """A veth pair: ``dev`` in ``node`` (with ``mac``), the other end in the root namespace as
    ``root`` (a switch port: ``up`` is its carrier), or, for a transit link, ``peer_dev`` in node
    ``peer``. A NIC's cable that goes straight into a node (a shared NIC's NAT engine: no switch
    between them) has ``into`` = (node, dev, mac): its far end lives there under that name and
    address, and moves back to the root namespace as ``root`` when the NIC leaves that mode."""

    node: str
    dev: str
    mac: str | None = None
    root: str | None = None
    peer: str | None = None
    peer_dev: str | None = None
    up: bool = True
    into: tuple[str, str, str] | None = None
    MUTABLE: ClassVar[tuple[str, ...]] = ("up", "into")

    @property
    def key(self) -> tuple[str, str]:
        return (self.node, self.dev)

    def line(self) -> str:
        state = "up" if self.up else "down"
        other = f"{self.peer}:{self.peer_dev}" if self.peer else f"{self.root} (root, {state})"
        if self.into:
            other = f"{self.into[0]}:{self.into[1]} {self.into[2]} (straight, {state})"
        return (f"veth {self.node}:{self.dev}" + (f" {self.mac}" if self.mac else "")
                + f" <-> {other}")


@dataclass(frozen=True)
class Bridge(Item):
    """An Open vSwitch bridge: ``key`` (``LAN``, ``PC/ADAPTER``, ``PC/NAME``, ``ap:PC/ADAPTER``),
    its name in the root namespace, datapath id and kind (``lan`` is a standalone
    learning switch; the others are secure under the controller)."""

    key_: str
    name: str
    dpid: int
    kind: str
    steering: bool = False  # DHCP client messages go to the network's responder only
    guard: bool = False  # an adapter's LAN has a DHCP server: guests may not answer as one
    server: str | None = None  # where it runs (None: the machine running the lab)

    @property
    def key(self) -> str:
        return self.key_

    @property
    def controlled(self) -> bool:
        return self.kind != "lan"

    def line(self) -> str:
        extra = (" dhcp-steering" if self.steering else "") + (" dhcp-guard" if self.guard else "")
        return (f"bridge {self.key_} {self.name} {self.kind} dpid {self.dpid:016x}{extra}"
                f"{_at(self.server)}")


@dataclass(frozen=True)
class Port(Item):
    """A port of a bridge: an interface (or, with ``patch``, one side of a patch cable whose other
    side is named ``patch``), its OpenFlow number, and what the controller is told: role and MAC."""

    bridge: str
    ifname: str
    number: int
    role: str | None = None
    mac: str | None = None
    allow_spoofing: bool = False
    patch: str | None = None
    label: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.bridge, self.ifname)

    @property
    def order(self) -> str:
        return f"{self.bridge} {self.number:08d}"

    def registration(self) -> dict[str, Any]:
        """The port as the controller is told it."""
        return {"port": self.number, "role": self.role, "mac": self.mac,
                "allow_spoofing": self.allow_spoofing}

    def line(self) -> str:
        what = f" {self.role}" if self.role else ""
        what += f" {self.mac}" if self.mac else ""
        what += " spoofing-allowed" if self.allow_spoofing else ""
        patch = f" patch<->{self.patch}" if self.patch else ""
        return f"port {self.bridge}#{self.number} {self.ifname}{patch}{what}  ({self.label})"


@dataclass(frozen=True)
class Address(Item):
    """A static address on a node's interface."""

    node: str
    dev: str
    cidr: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.node, self.dev, self.cidr)

    def line(self) -> str:
        return f"address {self.node}:{self.dev} {self.cidr}"


@dataclass(frozen=True)
class Route(Item):
    """A static route in a node (``table`` None: the main table)."""

    node: str
    dev: str
    dest: str = "default"
    via: str | None = None
    src: str | None = None
    table: int | None = None
    metric: int | None = None

    @property
    def key(self) -> tuple:
        return (self.node, self.dev, self.dest, self.via, self.src, self.table, self.metric)

    def spec(self) -> str:
        """The route as ``ip route`` words after ``replace``/``del``."""
        words = [self.dest]
        if self.via:
            words.append(f"via {self.via}")
        words.append(f"dev {self.dev}")
        if self.src:
            words.append(f"src {self.src}")
        if self.table is not None:
            words.append(f"table {self.table}")
        if self.metric is not None:
            words.append(f"metric {self.metric}")
        return " ".join(words)

    def line(self) -> str:
        return f"route {self.node}: {self.spec()}"


@dataclass(frozen=True)
class Rule(Item):
    """A policy routing rule: traffic from ``src`` uses ``table`` (a guest's per-NIC source
    routing)."""

    node: str
    src: str
    table: int
    priority: int

    @property
    def key(self) -> tuple:
        return (self.node, self.src, self.table, self.priority)

    def spec(self) -> str:
        return f"from {self.src} table {self.table} priority {self.priority}"

    def line(self) -> str:
        return f"rule {self.node}: {self.spec()}"


@dataclass(frozen=True)
class Shaper(Item):
    """A NIC held to its speed both ways (htb out, an IFB for what comes in)."""

    node: str
    dev: str
    speed: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.node, self.dev)

    def line(self) -> str:
        return f"shaper {self.node}:{self.dev} {self.speed} Mbit/s both ways"


@dataclass(frozen=True)
class Firewall(Item):
    """A node's whole iptables ruleset (``iptables-restore`` input), replaced as one; ``ingress``:
    an nftables ruleset of netdev ingress filters (frames dropped or rate-limited as they arrive,
    before anything in the node reads them), loaded with it."""

    node: str
    rules: str
    ingress: str = ""
    MUTABLE: ClassVar[tuple[str, ...]] = ("rules", "ingress")

    @property
    def key(self) -> str:
        return self.node

    def line(self) -> str:
        rules = [r for r in self.rules.splitlines() if r.startswith("-A")]
        skip = ("table", "delete", "chain", "type", "}")
        rules += [f"ingress: {r.strip()}" for r in self.ingress.splitlines()
                  if r.strip() and not r.strip().startswith(skip)]
        return f"firewall {self.node}: {len(rules)} rules\n" + "\n".join(f"    {r}" for r in rules)


@dataclass(frozen=True)
class DhcpServer(Item):
    """A network's DHCP server in its node; ``exclude`` holds the network's static addresses (a
    change restarts the server, which keeps its leases). ``known``: the hardware addresses plugged
    into its network (guest NICs, PC adapters), which may use the whole pool (the others not its
    reserve); ``translators``: wireless adapters on its LAN, whose bridge sends their guests'
    requests with the adapter's MAC (the server answers them for other hardware addresses)."""

    key_: str
    node: str
    dev: str
    network: str
    server_ip: str
    pool: tuple[str, str]
    files: str
    router: str | None = None
    dns: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    known: tuple[str, ...] = ()
    translators: tuple[str, ...] = ()
    hostnames: bool = False  # its clients' hostnames go to its node's DNS server (a LAN's)
    MUTABLE: ClassVar[tuple[str, ...]] = ("exclude", "known", "translators")

    @property
    def key(self) -> str:
        return self.key_

    def line(self) -> str:
        extra = f" router {self.router}" if self.router else ""
        extra += f" dns {','.join(self.dns)}" if self.dns else ""
        extra += f" excluding {','.join(self.exclude)}" if self.exclude else ""
        extra += f" knows {len(self.known)}" if self.known else ""
        extra += f" translators {','.join(self.translators)}" if self.translators else ""
        return (f"dhcp-server {self.key_} in {self.node}:{self.dev} {self.server_ip} "
                f"pool {self.pool[0]}-{self.pool[1]}{extra}")


@dataclass(frozen=True)
class Service(Item):
    """A LAN server's services (TCP/UDP echo on 7, HTTP on 80)."""

    node: str

    @property
    def key(self) -> str:
        return self.node

    def line(self) -> str:
        return f"services {self.node}: echo tcp/udp 7, http 80"


@dataclass(frozen=True)
class Dns(Item):
    """A node's DNS server (dnsmasq). A LAN gateway's (``relay`` False) answers on ``listen`` for
    the lab's ``names`` (name, address) and for the hostnames its LAN's DHCP clients sent with
    their leases, and nothing else (NXDOMAIN). A PC's (``relay`` True) is WVPC's DNS relay for its
    shared NICs: it answers on its NAT engines' transit links and asks the PC's own resolver."""

    node: str
    listen: str = ""
    names: tuple[tuple[str, str], ...] = ()
    relay: bool = False
    MUTABLE: ClassVar[tuple[str, ...]] = ("names",)
    TITLE: ClassVar[str] = "dns servers"

    @property
    def key(self) -> str:
        return self.node

    def line(self) -> str:
        if self.relay:
            return f"dns {self.node}: relays its NAT engines' queries to its own resolver"
        return (f"dns {self.node} at {self.listen}: {len(self.names)} lab names and its LAN's "
                "DHCP hostnames")


@dataclass(frozen=True)
class Resolver(Item):
    """A node's own ``/etc/resolv.conf`` and ``/etc/hosts`` (the machine's are never read nor
    written): ``nameservers`` from its static settings, to which each lease of its DHCP clients
    adds the DNS servers it offered; ``own``: its static addresses, its own name's in its hosts
    file."""

    node: str
    nameservers: tuple[str, ...] = ()
    own: tuple[str, ...] = ()  # the node's name stands for these addresses (else 127.0.1.1)
    MUTABLE: ClassVar[tuple[str, ...]] = ("nameservers", "own")

    @property
    def key(self) -> str:
        return self.node

    def line(self) -> str:
        return (f"resolver {self.node}: "
                + (f"nameserver {', '.join(self.nameservers)}" if self.nameservers
                   else "no static nameserver")
                + (f"; {self.node} is {', '.join(self.own)}" if self.own else ""))


@dataclass(frozen=True)
class DhcpClient(Item):
    """A DHCP client on a guest NIC or a PC adapter. ``attached`` (the switch its cable plugs into),
    ``lease_net`` (where a lease must come from; None if no server there) and ``carrier`` change at
    runtime: a move releases the lease first; a new network or a carrier back renews."""

    node: str
    index: int
    dev: str
    kind: str
    source_routing: bool = True
    attached: str | None = None
    lease_net: str | None = None
    carrier: bool = True
    MUTABLE: ClassVar[tuple[str, ...]] = ("attached", "lease_net", "carrier")

    @property
    def key(self) -> tuple[str, str]:
        return (self.node, self.dev)

    def line(self) -> str:
        where = f"lease from {self.lease_net}" if self.lease_net else "no server"
        return f"dhcp-client {self.node}:{self.dev} {self.kind} ({where}" + \
            ("" if self.carrier else ", no carrier") + ")"


@dataclass(frozen=True)
class Nat(Item):
    """One shared NIC's NAT: its engine node, transit link number and what it forwards."""

    vm: str
    index: int
    number: int
    pc: str
    subnet: str
    guest_ip: str
    forward: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, int]:
        return (self.vm, self.index)

    @property
    def node(self) -> str:
        return f"nat.{self.vm}.{self.index}"

    @property
    def pc_dev(self) -> str:
        return f"nat{self.number}"

    @property
    def pc_side(self) -> ipaddress.IPv4Interface:
        return transit(self.number)[0]

    @property
    def nat_side(self) -> ipaddress.IPv4Interface:
        return transit(self.number)[1]

    @property
    def inside(self) -> ipaddress.IPv4Interface:
        """The engine's own address on the guest's network (.254 of a /24): gateway, DHCP, DNS."""
        return nat_address(self.subnet)

    def forwards(self) -> list[tuple[str, int, int]]:
        """The forwarded ports as (protocol, PC port, guest port)."""
        out = []
        for rule in self.forward:
            proto, host, guest = rule.split(":")
            out.append((proto, int(host), int(guest)))
        return out

    def line(self) -> str:
        fwd = f" forwarding {','.join(self.forward)}" if self.forward else ""
        return (f"nat {self.vm}/{self.index}: {self.node} on {self.subnet} "
                f"via {self.pc}:{self.pc_dev}{fwd}")


@dataclass(frozen=True)
class Uplink(Item):
    """A LAN uplink between two servers (where a patch cable cannot go): an Ethernet tunnel whose
    end ``a_dev`` on server ``a`` and ``b_dev`` on server ``b`` (None: the machine running the lab)
    are ports of their bridges, as the two sides of a patch cable would be."""

    a: str | None
    a_dev: str
    b: str | None
    b_dev: str

    @property
    def key(self) -> str:
        return self.a_dev

    def line(self) -> str:
        how = "ssh Ethernet tunnels joined on the machine running the lab" if self.a and self.b \
            else "ssh Ethernet tunnel"
        return f"uplink {self.a_dev}{_at(self.a) or ' @local'} <-> {self.b_dev}" \
               f"{_at(self.b) or ' @local'} ({how})"


#: Every item type, in the order a plan lists them.
KINDS: tuple[type[Item], ...] = (Server, Host, Bridge, Veth, Port, Uplink, Address, Route, Rule,
                                 Shaper, Firewall, Nat, DhcpServer, Service, Dns, Resolver,
                                 DhcpClient)
