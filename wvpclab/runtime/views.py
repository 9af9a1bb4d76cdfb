"""What a user asks of a running lab, by the topology's names: its nodes, switches and cables,
its DHCP servers, clients and leases, and the rules in force in words. Read only: nothing here
changes the lab."""

from __future__ import annotations

import ipaddress
import subprocess
from typing import Any

import networkx as nx
from mininet.node import Node

from controllers.flowrules import Learned, Port, Switch, explain, flows_for
from wvpclab.errors import ControllerError, LabError, UsageError
from wvpclab.model import modes, topology
from wvpclab.model.items import Bridge, DhcpClient, Nat, Veth
from wvpclab.model.plan import LabPlan
from wvpclab.runtime.controller import Controller
from wvpclab.runtime.dhcp.service import Client, Responder
from wvpclab.runtime.nodes import PhysicalPC, VirtualPC
from wvpclab.runtime.realize import Realizer


def words(count: int, word: str, plural: str = "") -> str:
    """``count`` and ``word``, in the plural unless one."""
    return f"{count} {word if count == 1 else plural or word + 's'}"


def in_words(graph: nx.Graph) -> str:
    """What a lab has, in one line (its start says it): PCs, VMs with their NICs, LANs with their
    servers, internal networks, the internet with its servers."""
    n = {k: len(topology.nodes_of(graph, k)) for k in ("pc", "vm", "nic", "lan", "server")}
    inet = [s for _, s in topology.nodes_of(graph, "server") if s["lan"] == topology.INTERNET]
    n["lan"] -= topology.has_internet(graph)
    n["server"] -= len(inet)
    return (f"{words(n['pc'], 'PC')}, {words(n['vm'], 'VM')} with {words(n['nic'], 'NIC')}, "
            f"{words(n['lan'], 'LAN')} with {words(n['server'], 'server')}"
            + "".join(f", {words(count, what)}" for count, what in modes.counts(graph))
            + (f", an internet with {words(len(inet), 'server')}"
               if topology.has_internet(graph) else ""))


class LabViews:
    """The lab's views, for ``Lab``: they read its graph, its plan in force, this machine's
    realizer and controller, and the other servers' part (``spread``)."""

    name: str
    graph: nx.Graph
    spread: Any
    plan: LabPlan
    realizer: Realizer | None
    controller: Controller | None

    @property
    def nodes(self) -> dict[str, Node]:
        """Every node of the lab, those on other servers too (their ``cmd`` runs there)."""
        nodes: dict[str, Node] = dict(self.realizer.nodes) if self.realizer else {}
        if self.spread is not None:
            nodes.update(self.spread.proxies)
        return nodes

    def node(self, name: str) -> Node:
        """Any node by its topology name (VMs, PCs, servers, gateways, NAT engines)."""
        try:
            return self.nodes[name]
        except KeyError:
            raise UsageError(f"no node {name!r} in lab {self.name} (nodes: "
                             f"{', '.join(sorted(self.nodes)) or 'none'})") from None

    def vm(self, name: str) -> VirtualPC:
        node = self.node(name)
        if not isinstance(node, VirtualPC):
            raise UsageError(f"{name!r} is not a VM")
        return node

    def pc(self, name: str) -> PhysicalPC:
        node = self.node(name)
        if not isinstance(node, PhysicalPC):
            raise UsageError(f"{name!r} is not a PC")
        return node

    def _nic(self, vm: str, index: int) -> dict:
        """The topology's data of a VM's NIC (UsageError: no such VM or NIC)."""
        self.vm(vm)
        if isinstance(index, bool) or not isinstance(index, int):
            raise UsageError(f"{vm}: NIC number {index!r} is not 0..3")
        data = self.graph.nodes.get(f"{vm}/{index}")
        if data is None or data.get("kind") != "nic":
            raise UsageError(f"{vm} has no NIC {index}")
        return data

    @property
    def bridges(self) -> dict[str, Bridge]:
        """Every switch of the lab by key (``LAN``, ``PC/ADAPTER``, ``PC/NAME``, ``ap:PC/ADAPTER``;
        a shared NIC has none: its cable goes straight into its NAT engine)."""
        return dict(self.plan.of(Bridge))

    @property
    def cables(self) -> dict[tuple[str, int], str]:
        """Each guest NIC's root-namespace end (its switch port), by (VM, index); a shared NIC's
        cable goes straight into its NAT engine and has none."""
        return {(v.node, int(v.dev[3:])): v.root for v in self.plan.of(Veth).values()
                if isinstance(self.nodes.get(v.node), VirtualPC) and not v.into}

    @property
    def nats(self) -> dict[tuple[str, int], Nat]:
        return dict(self.plan.of(Nat))

    @property
    def responders(self) -> dict[str, Responder]:
        return dict(self.realizer.responders) if self.realizer else {}

    @property
    def services(self) -> dict[str, subprocess.Popen]:
        return dict(self.realizer.services) if self.realizer else {}

    @property
    def clients(self) -> dict[tuple[str, int], Client]:
        """DHCP clients by (VM, NIC index) or (PC, adapter index)."""
        if not self.realizer:
            return {}
        running = self.realizer.clients.copy()  # (a change in another thread may edit it)
        return {(c.node, c.index): running[c.key]
                for c in self.plan.of(DhcpClient).values() if c.key in running}

    def bridge_of(self, pc: str, network: str) -> Bridge:
        """The bridge of internal network ``network`` on ``pc``."""
        try:
            return self.bridges[f"{pc}/{network}"]
        except KeyError:
            raise UsageError(f"no internal network {network!r} on {pc}") from None

    def cable_end(self, vm: str, index: int) -> str:
        """The root-namespace end of a NIC's veth (the switch port)."""
        try:
            return self.cables[(vm, index)]
        except KeyError:
            veth = self.plan.get(Veth, (vm, f"eth{index}"))
            if veth is not None and veth.into:
                raise UsageError(f"{vm} NIC {index}'s cable goes straight into {veth.into[0]} "
                                 f"(as {veth.into[1]}), not into a switch") from None
            raise UsageError(f"{vm} has no NIC {index}") from None

    def responder(self, network: str) -> Responder:
        """The DHCP server of a network (``PC/NAME``, a LAN, ``nat:VM/N``)."""
        try:
            return self.responders[network]
        except KeyError:
            raise UsageError(f"no DHCP responder for {network!r} (networks with one: "
                             f"{', '.join(sorted(self.responders)) or 'none'})") from None

    def leases(self, network: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """The lease tables of one network (``PC/NAME``) or of every network with a responder
        (those on other servers asked of their agents)."""
        asked_here = network is not None and network in self.responders
        there = self.spread.leases() if self.spread is not None and not asked_here else {}
        if network is not None and network in there:
            return {network: there[network]}
        if network is not None and network not in self.responders:
            raise UsageError(f"no DHCP responder for {network!r} (networks with one: "
                             f"{', '.join(sorted([*self.responders, *there])) or 'none'})")
        keys = [network] if network else sorted(self.responders)
        tables = {key: self.responder(key).leases() for key in keys}
        if network is None:
            tables.update(there)
        return dict(sorted(tables.items()))

    def dhcp_client(self, vm: str, index: int) -> Client:
        """The DHCP client of a guest NIC (NICs with a static address have none)."""
        try:
            return self.clients[(vm, index)]
        except KeyError:
            raise UsageError(f"{vm} eth{index} runs no DHCP client (static address or no such "
                             "NIC)") from None

    def network_of(self, vm: str, index: int) -> ipaddress.IPv4Network | None:
        """The subnet a guest NIC's address comes from in its current mode (None: none)."""
        nic = self._nic(vm, index)
        net = modes.of(nic).network(self.graph, nic)
        return ipaddress.IPv4Network(net) if net else None

    def filter_rules(self, key: str) -> list[str]:
        """The rules of a filter switch (``PC/ADAPTER``) or internal switch (``PC/NAME``) in words,
        from the same code that builds its flows."""
        br = self.plan.get(Bridge, key)
        if br is None or not br.controlled:
            have = sorted(k for k, b in self.plan.of(Bridge).items() if b.controlled)
            raise UsageError(f"no filter or internal switch {key!r} (switches: "
                             f"{', '.join(have) or 'none'})")
        ports = tuple(Port(p["port"], p["role"], p["mac"], p["allow_spoofing"])
                      for p in self.plan.registration(key))
        learned: tuple = ()
        if br.kind == "wireless" and self.controller is not None:
            # what the controller learned from the guests' ARP and DHCP (it lives there only)
            try:
                entries = self.controller.dump(br.dpid).get("learned", [])
            except ControllerError as err:
                raise LabError(f"switch {br.name}: {err}") from None
            learned = tuple(Learned(e["ip"], e["port"], e["mac"], e["how"]) for e in entries)
        switch = Switch(br.dpid, br.kind, ports, br.steering, learned=learned,
                        dhcp_guard=br.guard)
        labels = {p.number: p.label for p in self.plan.ports_of(key)}
        return explain(flows_for(switch), labels, learned)

    def nat_rules(self, vm: str, index: int) -> dict[str, str]:
        """The firewall and NAT rules in force for a shared NIC: its NAT engine's and its PC's, as
        ``iptables-save`` prints them in their namespaces; the engine's then its ingress filter on
        the guest's cable, as ``nft`` lists it."""
        nat = self.plan.get(Nat, (vm, index))
        if nat is None:
            raise UsageError(f"{vm} NIC {index} is not in shared networking (NAT) mode")
        ingress = {nat.node: "; nft list table netdev wvpclab 2>&1"}
        return {who: self.node(who).cmd(f"iptables-save | grep -v '^#'{ingress.get(who, '')}")
                .replace("\r\n", "\n") for who in (nat.node, nat.pc)}


__all__ = ["LabViews", "in_words", "words"]
