"""Shared networking (NAT): each shared NIC has a NAT engine of its own (``nat.VM.N``) at the other
end of its cable (no switch between them: the engine is the only thing on the guest's private
network, at .254 its gateway, DHCP server and DNS option), MASQUERADE and a stateful firewall onto a
/30 transit link into the PC, which masquerades again out of its adapters and relays DNS.

The whole story, where each part lives:

- the syntax and its checks: ``shared`` on a NIC (``summary``; read by ``modes.parse``), a static
  address in the PC's subnet and not the engine's (``check_address``), forwarded ports allowed
  (``takes_forwards``); the ``forward`` rules and the PC's ``nat.subnet`` (default
  ``addresses.DEFAULT_NAT_SUBNET``) are declared in ``wvpclab.model.schema`` and checked by
  ``wvpclab.model.topology`` (the graph's ``nat_subnet`` on the PC, ``forward`` on the NIC);
- the plan (``Shared`` below): per NIC (``plan_nic``) a ``Nat`` item (``items.Nat``, made by
  ``nat_of``), the engine's node (role ``ROLE``), the transit link into the PC (a ``Veth`` between
  two nodes), the engine's firewall and ingress filter, its DHCP server; the guest's cable goes
  straight into the engine (``cable_into``, ``engine``); once every NIC is planned
  (``plan_done``), each PC's own firewall and, on a PC with engines, its DNS relay (a ``Dns``
  item with ``relay``);
- the rulesets: ``wvpclab.model.nat`` (``engine_rules``, ``engine_ingress``, ``pc_rules``: pure
  ``iptables-restore`` and ``nft`` text) and the addresses: ``wvpclab.model.addresses``
  (``nat_address``, ``nat_pool``, the transit links' ``TRANSIT_NET``);
- addresses for guests: the PC's ``nat_subnet`` (``network``), the engine's .254 as router, DHCP
  server and DNS server (``server``, ``gateway``, ``nameserver``); a static address keeps these;
- the runtime: the engine runs as ``wvpclab.runtime.nodes.NatEngine`` (``roles``: a router), its
  transit link is a ``wvpclab.runtime.net.TransitLink``, the PC a ``PhysicalPC`` (it forwards; its
  firewall drops what the rules do not let through); the firewalls, the DHCP server and the relay
  (``wvpclab.runtime.dns``) are realized as any item of their kind;
- reachability (``wvpclab.analysis.verify``, ``reach``): the NIC sits behind its PC's NAT
  (``where``: ("nat", PC)); nothing comes in (``inbound``); out, it reaches its PC, the LANs of
  the PC's addressed adapters and, over the internet, LANs open to it (``outbound``); its DNS is
  the engine's, relayed by the PC (``dns``); in Mininet's ping tests the engine is reached by its
  guest only, reaches its guest and PC, and sends as its guest (``reached``, ``sends_as``);
- the picture (``wvpclab.analysis.draw``): orange (``style``), "shared (NAT)" on the NIC
  (``describe``), each engine a box in its PC fed from the PC's IP stack, with its legend line,
  the PC's title its subnet (``boxes``, ``legend``, ``pc_notes``; a PC the graph lacks is drawn:
  ``drawn_missing``);
- the web page: "Shared Networking (NAT)" after the host adapters (``dialog_label``,
  ``dialog_rank``);
- the command line: ``shared`` (``usage``); ``nat VM N`` (``wvpclab.ui.labcli``, ``do_nat``)
  prints the rules in force in the engine's and the PC's namespaces (``Lab.nat_rules``, from
  ``wvpclab.runtime.views``, which finds the NIC's ``Nat`` item in the running plan).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, ClassVar

import networkx as nx

from wvpclab.model import macs
from wvpclab.model.addresses import DEFAULT_NAT_SUBNET, host, nat_address, nat_pool
from wvpclab.model.items import Address, DhcpServer, Dns, Firewall, Host, Nat, Route, Veth
from wvpclab.model.lookups import has_internet, nodes_of
from wvpclab.model.modes.base import (
    Box,
    Builder,
    Endpoint,
    Mode,
    Nic,
    Place,
    Verdict,
    adapter_addressed,
    open_to_the_internet,
    pc_of,
)
from wvpclab.model.nat import INSIDE, OUTSIDE, engine_ingress, engine_rules, pc_rules

#: Where a shared NIC sits for reachability: behind its PC's NAT (("nat", PC)).
PLACE = "nat"
#: The plan role of a NAT engine's node.
ROLE = "nat"


class Shared(Mode):
    name = "shared"
    style = ("#d96c00", "#fde2c4", "shared — NAT engine in the PC")
    summary = ("Shared networking (NAT): the NIC sits behind a NAT engine of its own in the PC, "
               "which leases it an address from the PC's shared-networking subnet (`nat.subnet`, "
               "default 192.168.131.0/24; the engine is .254) and may forward ports to it.")
    takes_forwards = True

    def check_address(self, graph: nx.Graph, nic: Nic,
                      iface: ipaddress.IPv4Interface) -> str | None:
        subnet = ipaddress.IPv4Network(self.network(graph, nic))
        if iface.network != subnet:
            return f"{iface} is not in the PC's shared-networking subnet {subnet}"
        if iface.ip == nat_address(str(subnet)).ip:
            return f"{iface.ip} is the NAT engine's own address"
        return None
    dialog_rank = 20
    dialog_label = "Shared Networking (NAT)"
    legend = "NAT routed through the host's IP stack"
    roles: ClassVar[Mapping[str, str]] = {ROLE: "wvpclab.runtime.nodes.NatEngine"}

    def describe(self, nic: Nic) -> str:
        return "shared (NAT)"

    def engine(self, nic: Nic) -> str:
        return f"nat.{nic['vm']}.{nic['index']}"

    def attachment(self, graph: nx.Graph, nic: Nic) -> str:
        return f"nat:{nic['vm']}/{nic['index']}"

    def cable_into(self, nic: Nic) -> tuple[str, str, str]:
        engine = self.engine(nic)
        return engine, INSIDE, macs.derive_adapter(engine, INSIDE)

    def graph_attach(self, graph: nx.Graph, nic: Nic) -> str:
        return pc_of(graph, nic)

    def network(self, graph: nx.Graph, nic: Nic) -> str:
        return graph.nodes[pc_of(graph, nic)]["nat_subnet"]

    def server(self, graph: nx.Graph, nic: Nic) -> str:
        return self.attachment(graph, nic)

    def gateway(self, graph: nx.Graph, nic: Nic) -> str:
        return str(nat_of(graph, nic, 0).inside.ip)

    def nameserver(self, graph: nx.Graph, nic: Nic) -> str:
        return self.gateway(graph, nic)  # the engine relays DNS to its PC's resolver

    def where(self, graph: nx.Graph, nic: Nic) -> Place:
        return PLACE, pc_of(graph, nic)

    def inbound(self, graph: nx.Graph, here: Place, there: Place) -> Verdict:
        return False, "NAT: inbound blocked"

    def outbound(self, graph: nx.Graph, here: Place, to: Endpoint, there: Place) -> Verdict:
        """Out as the PC: to the PC itself, onto the LANs its adapters with an address are on,
        and over the internet into a LAN open to it."""
        pc = here[1]
        if to.kind == "adapter" and graph.nodes[to.key]["pc"] == pc:
            return True, "NAT: to its own PC"
        lans = {d["lan"] for key, d in nodes_of(graph, "adapter")
                if d["pc"] == pc and d["lan"] and adapter_addressed(graph, key)}
        kind, lan = there
        if kind == "lan" and lan in lans:
            return True, "NAT: outbound, as the PC"
        if (kind == "lan" and lans and has_internet(graph)
                and open_to_the_internet(graph, lan)):
            return True, "NAT: outbound, as the PC, over the internet"
        return False, "NAT: no route from the PC"

    def dns(self, graph: nx.Graph, nic: Nic) -> tuple[str | None, str]:
        return str(self.nameserver(graph, nic)), "its NAT engine, relayed by its PC"

    def reached(self, plan: Any, src: str, dst: str) -> Verdict | None:
        """A NAT engine is a firewall its guest alone reaches; it reaches its guest and its PC."""
        engines = _engines(plan)
        if dst in engines:
            return src == engines[dst].vm, "NAT engine: a firewall, reached by its guest only"
        if src in engines and dst in (engines[src].vm, engines[src].pc):
            return True, "NAT engine: its guest and its PC"
        return None

    def sends_as(self, plan: Any, node: str) -> tuple[str, str] | None:
        """What leaves a NAT engine leaves as its guest's traffic."""
        nat = _engines(plan).get(node)
        return (nat.vm, f"eth{nat.index}") if nat is not None else None

    def pc_notes(self, pc: Mapping[str, Any]) -> list[str]:
        return [f"shared networking {pc.get('nat_subnet', '?')}"]

    def boxes(self, graph: nx.Graph, pc: str) -> list[Box]:
        """Each shared NIC's NAT engine on ``pc``: its address, what it serves, its forwards."""
        out = []
        subnet = graph.nodes[pc].get("nat_subnet") if pc in graph else None
        for key, nic in self.nics_on(graph, pc):
            lines = [(str(nat_address(subnet or DEFAULT_NAT_SUBNET)), "mono"),
                     ("DHCP · DNS · firewall", "small")]
            for rule in nic.get("forward") or ():
                proto, hport, gport = str(rule).split(":")
                lines.append((f"{proto} {hport} → guest {gport}", "small"))
            out.append(Box(self.engine(nic), "NAT engine", f"for {key}", tuple(lines),
                           from_stack=True))
        return out

    def drawn_missing(self, attach: str) -> tuple[str, str | None]:
        """A shared NIC's cable plugs into its PC (its engine's box): a PC the graph lacks is
        drawn."""
        return attach, None

    def plan_nic(self, b: Builder, nic: Nic, ordinal: int) -> None:
        """The NIC's NAT engine: node (the NIC's cable ends in it), transit link into the PC,
        rules, DHCP."""
        nat = nat_of(b.graph, nic, ordinal)
        key = self.attachment(b.graph, nic)
        inside = str(nat.inside.ip)
        b.add(nat)
        b.add(Host(nat.node, ROLE, nat.pc))
        b.add(Address(nat.node, INSIDE, str(nat.inside)))
        b.add(Veth(nat.node, OUTSIDE, peer=nat.pc, peer_dev=nat.pc_dev))
        b.add(Address(nat.node, OUTSIDE, str(nat.nat_side)))
        b.add(Address(nat.pc, nat.pc_dev, str(nat.pc_side)))
        b.add(Route(nat.node, OUTSIDE, via=str(nat.pc_side.ip)))
        b.add(Firewall(nat.node, engine_rules(nat),
                       engine_ingress(nic["mac"], nic["allow_mac_spoofing"])))
        b.server(DhcpServer(key, nat.node, INSIDE, nat.subnet, inside, nat_pool(nat.subnet),
                            files=f"dhcp+nat+{nic['vm']}+{nic['index']}", router=inside,
                            dns=(inside,)))

    def plan_done(self, b: Builder) -> None:
        """Each PC's own firewall (``nat.pc_rules``: MASQUERADE out of its adapters for its
        engines' transit links, the forwarded ports, FORWARD policy DROP; a PC without engines has
        it too), then the DNS relay of each PC with engines."""
        engines = sorted(b.of(Nat).values(), key=lambda n: n.number)
        for key, _ in nodes_of(b.graph, "pc"):
            adapters = [d["name"] for _, d in nodes_of(b.graph, "adapter")
                        if d["pc"] == key and d["lan"]]
            b.add(Firewall(key, pc_rules([n for n in engines if n.pc == key], adapters)))
        for pc in sorted({n.pc for n in engines}):
            b.add(Dns(pc, relay=True))


MODE = Shared()


def _engines(plan: Any) -> dict[str, Nat]:
    """A plan's NAT engines by node."""
    return {n.node: n for n in plan.of(Nat).values()}


def nat_of(graph: nx.Graph, nic: Nic, ordinal: int) -> Nat:
    """The NAT of a shared NIC; ``ordinal`` (the NIC's place lab-wide) numbers its transit link."""
    pc = pc_of(graph, nic)
    subnet = graph.nodes[pc]["nat_subnet"]
    guest = host(nic["ip"]) if nic["ip"] else nat_pool(subnet)[0]
    return Nat(nic["vm"], nic["index"], ordinal, pc, subnet, guest, tuple(nic["forward"]))
