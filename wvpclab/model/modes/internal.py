"""Internal network: one isolated switch per (PC, network name), with WVPC's built-in DHCP server
(169.254.0.16-169.254.10.254) unless the network says ``dhcp: false``.

What the mode does, everywhere (each a member of ``Internal`` below): the graph's internal network
nodes (``KIND``; one typed afresh is declared: ``prepare``, ``declare``); the plan of every
network's switch and DHCP server (``plan_lab``, ``plan_network``); addresses from 169.254/16
(``network``, ``server``), no router, no DNS; reachability: an island of its own (``where``) that
reaches itself only (``isolation``), no DNS (``dns``), its DHCP server a static guest for Mininet's
ping tests (``stand_ins``); green in the picture, each network's switch a box in its PC
(``style``, ``boxes``); on the page, the PC's networks and "New internal network..." (which asks
for a name) and the switches' rules and leases (``choices``, ``switches``); ``internal NAME`` on
the command line (``usage``), and a count in summaries (``counts``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, ClassVar

import networkx as nx

from wvpclab.model import macs
from wvpclab.model.addresses import INTERNAL_NETWORK, INTERNAL_POOL, INTERNAL_SERVER
from wvpclab.model.items import Address, Bridge, DhcpServer, Host, Port, Veth
from wvpclab.model.lookups import nodes_of
from wvpclab.model.modes.base import Box, Builder, Mode, Nic, Place, Verdict, pc_of
from wvpclab.model.names import NAME_RE, did_you_mean

#: The graph nodes of internal networks (``PC/NAME``: ``kind``, ``name``, ``pc``, ``dhcp``), and
#: where an internal NIC sits for reachability: on its island (("island", PC/NAME)).
KIND = "internal"
PLACE = "island"
#: The plan role of an internal network's DHCP server's node.
ROLE = "dhcp"


class Internal(Mode):
    name = "internal"
    style = ("#23913a", "#d3f0d8", "internal — internal network")
    takes_target = True
    summary = ("Internal network: the NIC plugs into the named network's isolated switch on its "
               "PC (declared under `internal`), where only that PC's guests on the same network "
               "meet; a built-in DHCP server leases 169.254.0.16-169.254.10.254 unless `dhcp: "
               "false`.")
    target_what = "a network"

    def check_declared(self, graph: nx.Graph, pc: str, target: str | None) -> str | None:
        declared = graph.graph.get("internal", {})
        if target not in declared:
            return (f"internal network {target!r} is not declared under internal (declared: "
                    f"{', '.join(sorted(declared)) or 'none'}){did_you_mean(target, declared)}")
        key = f"{pc}/{target}"
        if key in graph and graph.nodes[key].get("kind") == "adapter":
            return f"internal network {target!r} has the name of adapter {key}; rename one of them"
        return self.check_target(graph, pc, target)

    def check_address(self, graph: nx.Graph, nic: Nic,
                      iface: ipaddress.IPv4Interface) -> str | None:
        net = graph.nodes.get(self.attachment(graph, nic), {})
        if net.get("dhcp") and iface.ip == INTERNAL_SERVER.ip:
            return f"{iface.ip} is the internal network's DHCP responder address"
        return None

    def address_domain(self, graph: nx.Graph, nic: Nic) -> str | None:
        return f"internal:{self.attachment(graph, nic)}"
    target_word = "NAME"
    dialog_rank = 30
    roles: ClassVar[Mapping[str, str]] = {ROLE: "wvpclab.runtime.nodes.DhcpResponderNode"}

    def attachment(self, graph: nx.Graph, nic: Nic) -> str:
        return f"{pc_of(graph, nic)}/{nic['target']}"

    def network(self, graph: nx.Graph, nic: Nic) -> str:
        return str(INTERNAL_NETWORK)

    def server(self, graph: nx.Graph, nic: Nic) -> str | None:
        key = self.attachment(graph, nic)
        return key if key in graph and graph.nodes[key].get("dhcp") else None

    def where(self, graph: nx.Graph, nic: Nic) -> Place:
        return PLACE, self.attachment(graph, nic)

    def isolation(self, graph: nx.Graph, here: Place, there: Place) -> Verdict:
        """An internal network reaches itself only."""
        if there == here:
            return True, "same internal network"
        if there[0] == PLACE:
            return False, "different internal networks"
        return False, "internal networks are isolated"

    def dns(self, graph: nx.Graph, nic: Nic) -> tuple[str | None, str]:
        return None, "internal network: no DNS (as WVPC's)"

    def stand_ins(self, graph: nx.Graph) -> None:
        """Each internal network's DHCP server, as a guest with a static address there."""
        for _, net in nodes_of(graph, KIND):
            if not net.get("dhcp"):
                continue
            node = responder_name(net)
            graph.add_node(node, kind="vm", name=node, pc=net["pc"], dhcp_client="udhcpc")
            graph.add_node(f"{node}/0", kind="nic", vm=node, index=0, mode=self.name,
                           target=net["name"], ip=str(INTERNAL_SERVER), mac=None, speed=100,
                           allow_mac_spoofing=False, forward=[])

    def counts(self, graph: nx.Graph) -> list[tuple[int, str]]:
        return [(len(nodes_of(graph, KIND)), "internal network")]

    def plan_lab(self, b: Builder) -> None:
        """Every internal network of the graph (declared, or typed afresh at runtime)."""
        for key, net in nodes_of(b.graph, KIND):
            plan_network(b, key, net)

    def boxes(self, graph: nx.Graph, pc: str) -> list[Box]:
        """The PC's internal networks' switches (one a NIC names that the graph lacks, too: a
        stale or hand-made graph), each with its DHCP server."""
        nets = {key: net for key, net in nodes_of(graph, KIND) if net.get("pc") == pc}
        for _, nic in self.nics_on(graph, pc):
            key = f"{pc}/{nic.get('target')}"
            if nic.get("target") and key not in graph:
                nets[key] = {"name": nic["target"], "pc": pc, "dhcp": True}
        return [Box(key, key, lines=(("internal network switch", "small"),
                                     (f"DHCP on ({INTERNAL_SERVER.ip})" if net.get("dhcp")
                                      else "DHCP off", "small")),
                    switch=f"internal network {key}: its rules and leases", rounded=True)
                for key, net in sorted(nets.items())]

    def choices(self, graph: nx.Graph, pc: str) -> list[dict[str, str]]:
        """The PC's internal networks, then "New internal network..." (WVPC's dialog asks for
        its name)."""
        out = []
        for _, net in nodes_of(graph, KIND):
            if net["pc"] == pc:
                dhcp = "" if net.get("dhcp", True) else ", DHCP off"
                out.append({"value": f"{self.name}:{net['name']}",
                            "label": f"Internal Network {net['name']}{dhcp}"})
        out.append({"value": f"{self.name}:", "label": "New internal network...",
                    "ask": "Name of the new internal network (letters, digits, - and _):",
                    "names": "internal network"})
        return out

    def switches(self, graph: nx.Graph) -> list[dict[str, Any]]:
        """Each internal network's switch: its rules and, with its DHCP server, its leases."""
        return [{"key": key, "kind": KIND, "rules": True, "leases": bool(net.get("dhcp", True))}
                for key, net in nodes_of(graph, KIND)]

    def check_target(self, graph: nx.Graph, pc: str, target: str | None) -> str | None:
        key = f"{pc}/{target}"
        if not NAME_RE.match(target or ""):
            return f"{target!r} is not a valid internal network name"
        if key in graph and graph.nodes[key].get("kind") != KIND:
            return f"internal network {target!r} has the name of {key}; pick another"
        return None

    def prepare(self, graph: nx.Graph, pc: str, target: str | None) -> None:
        declare(graph, pc, target)


MODE = Internal()


def responder_name(net: dict) -> str:
    """The node of an internal network's DHCP server: ``dhcp.PC.NAME``."""
    return f"dhcp.{net['pc']}.{net['name']}"


def plan_network(b: Builder, key: str, net: dict) -> None:
    """An internal network: its switch and, unless ``dhcp: false``, its DHCP server's node."""
    slot = b.internal_slot(key)
    b.add(Bridge(key, b.root_name("i", slot), b.dpid(0x0, slot), "internal", bool(net["dhcp"])))
    if not net["dhcp"]:
        return
    node = responder_name(net)
    root = b.root_name("d", slot)
    mac = macs.derive_adapter(net["pc"], f"dhcp/{net['name']}")
    b.add(Host(node, ROLE, net["pc"]))
    b.add(Veth(node, "eth0", mac, root=root))
    b.add(Port(key, root, 1, "dhcp", mac, label="DHCP responder"))
    b.add(Address(node, "eth0", str(INTERNAL_SERVER)))
    b.server(DhcpServer(key, node, "eth0", str(INTERNAL_NETWORK), str(INTERNAL_SERVER.ip),
                        INTERNAL_POOL, files=f"dhcp+internal+{net['pc']}+{net['name']}"))


def declare(graph: nx.Graph, pc: str, name: str) -> str:
    """Adds internal network ``name`` to ``pc`` in the graph if it is not there (WVPC's dialog lets
    a user type a new name); its DHCP server follows the topology's declaration, else on."""
    key = f"{pc}/{name}"
    if key not in graph:
        dhcp = graph.graph.get("internal", {}).get(name, {}).get("dhcp", True)
        graph.add_node(key, kind=KIND, name=name, pc=pc, dhcp=dhcp)
        graph.add_edge(pc, key, rel=KIND)
    return key
