"""Shared networking (NAT): each shared NIC has a NAT engine of its own (``nat.VM.N``) at the other
end of its cable (no switch between them: the engine is the only thing on the guest's private
network, at .254 its gateway, DHCP server and DNS option), MASQUERADE and a stateful firewall onto a
/30 transit link into the PC, which masquerades again out of its adapters.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

import networkx as nx

from wvpclab.model import macs
from wvpclab.model.addresses import host, nat_address, nat_pool
from wvpclab.model.items import Address, DhcpServer, Firewall, Host, Nat, Route, Veth
from wvpclab.model.modes.base import Mode, Nic, pc_of
from wvpclab.model.nat import INSIDE, OUTSIDE, engine_ingress, engine_rules

if TYPE_CHECKING:
    from wvpclab.model.plan import Builder


class Shared(Mode):
    name = "shared"
    style = ("#d96c00", "#fde2c4", "shared — NAT engine in the PC")
    attaches_to = "pc"
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

    def where(self, graph: nx.Graph, nic: Nic) -> tuple[str, Any]:
        return "nat", pc_of(graph, nic)

    def plan_nic(self, b: Builder, nic: Nic, ordinal: int) -> None:
        """The NIC's NAT engine: node (the NIC's cable ends in it), transit link into the PC,
        rules, DHCP."""
        nat = nat_of(b.graph, nic, ordinal)
        key = self.attachment(b.graph, nic)
        inside = str(nat.inside.ip)
        b.add(nat)
        b.add(Host(nat.node, "nat", nat.pc))
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


MODE = Shared()


def nat_of(graph: nx.Graph, nic: Nic, ordinal: int) -> Nat:
    """The NAT of a shared NIC; ``ordinal`` (the NIC's place lab-wide) numbers its transit link."""
    pc = pc_of(graph, nic)
    subnet = graph.nodes[pc]["nat_subnet"]
    guest = host(nic["ip"]) if nic["ip"] else nat_pool(subnet)[0]
    return Nat(nic["vm"], nic["index"], ordinal, pc, subnet, guest, tuple(nic["forward"]))
