"""Host adapter (bridge): the NIC plugs into its host adapter's filter switch (the Virtual PC
Network Filter). A wired adapter's filter switch has a patch cable to its LAN; a wireless adapter's
reaches the LAN through an access point that passes only the adapter's own MAC (the controller
translates).

What the mode does, everywhere (each a member of ``HostAdapter`` below): the plan of every PC's
host adapters, used or not: the PC's own interface, the filter switch, the way to the LAN
(``plan_lab``, ``plan_adapter``); where a NIC plugs in (``attachment``: ``PC/ADAPTER``) and the
LAN's addresses, DHCP, router and DNS (``network``, ``server``, ``gateway``, ``nameserver``);
reachability: on the adapter's LAN, or its filter switch without one (``where``), which every lab
has, so verify's LAN rules decide; blue in the picture (``style``); the PC's adapters in the
page's drop-down and their filter switches' rules (``choices``, ``switches``); ``bridge ADAPTER``
on the command line (``usage``).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import networkx as nx

from wvpclab.model.items import Address, Bridge, DhcpClient, Route, Veth
from wvpclab.model.lookups import nodes_of
from wvpclab.model.modes.base import Builder, Mode, Nic, Place, lan_router, pc_of
from wvpclab.model.names import did_you_mean


class HostAdapter(Mode):
    name = "bridge"
    style = ("#1f68c9", "#d3e4fa", "bridge — onto a host adapter")
    takes_target = True
    summary = ("Host adapter (bridge): the NIC plugs into the filter switch of one of the PC's "
               "adapters, named here, and appears on that adapter's LAN with its own MAC.")
    target_what = "an adapter"
    target_word = "ADAPTER"
    dialog_rank = 10

    def attachment(self, graph: nx.Graph, nic: Nic) -> str:
        return f"{pc_of(graph, nic)}/{nic['target']}"

    def _lan(self, graph: nx.Graph, nic: Nic) -> str | None:
        return graph.nodes[self.attachment(graph, nic)]["lan"]

    def network(self, graph: nx.Graph, nic: Nic) -> str | None:
        lan = self._lan(graph, nic)
        return graph.nodes[lan]["subnet"] if lan else None

    def server(self, graph: nx.Graph, nic: Nic) -> str | None:
        lan = self._lan(graph, nic)
        return lan if lan and graph.nodes[lan]["dhcp"] else None

    def gateway(self, graph: nx.Graph, nic: Nic) -> str | None:
        return lan_router(graph, self._lan(graph, nic))

    def nameserver(self, graph: nx.Graph, nic: Nic) -> str | None:
        lan = self._lan(graph, nic)
        return lan_router(graph, lan) if lan and graph.nodes[lan].get("dns", True) else None

    def drawn_missing(self, attach: str) -> tuple[str, str]:
        """An adapter the graph lacks is drawn in its PC, marked."""
        return attach.split("/", 1)[0], "adapter not in the topology"

    def check_target(self, graph: nx.Graph, pc: str, target: str | None) -> str | None:
        adapter = graph.nodes.get(f"{pc}/{target}")
        if adapter and adapter.get("kind") == "adapter":
            return None
        have = sorted(d["name"] for _, d in graph.nodes(data=True)
                      if d.get("kind") == "adapter" and d["pc"] == pc)
        return (f"no adapter {target!r} on pc {pc} (it has: {', '.join(have) or 'none'})"
                f"{did_you_mean(target, have)}")

    def address_prefix(self, graph: nx.Graph, nic: Nic) -> ipaddress.IPv4Network | None:
        subnet = self.network(graph, nic)
        return ipaddress.IPv4Network(subnet) if subnet else None

    def check_address(self, graph: nx.Graph, nic: Nic,
                      iface: ipaddress.IPv4Interface) -> str | None:
        subnet = self.address_prefix(graph, nic)
        if subnet is None:
            return None
        if iface.ip not in subnet:
            return f"{iface.ip} is outside the LAN's network {subnet}"
        if iface.network != subnet:
            return f"{iface} has prefix /{iface.network.prefixlen}; the LAN is {subnet}"
        return None

    def address_domain(self, graph: nx.Graph, nic: Nic) -> str | None:
        lan = self._lan(graph, nic)
        return f"lan:{lan}" if lan else None

    def where(self, graph: nx.Graph, nic: Nic) -> Place:
        lan = self._lan(graph, nic)
        return ("lan", lan) if lan else ("segment", self.attachment(graph, nic))

    def plan_lab(self, b: Builder) -> None:
        """Every PC's host adapters: ``ordinal`` counts them lab-wide, ``index`` on their PC."""
        per_pc: dict[str, int] = {}
        for ordinal, (key, adapter) in enumerate(nodes_of(b.graph, "adapter")):
            index = per_pc.get(adapter["pc"], 0)
            per_pc[adapter["pc"]] = index + 1
            plan_adapter(b, key, adapter, ordinal, index)

    def choices(self, graph: nx.Graph, pc: str) -> list[dict[str, str]]:
        """The PC's host adapters by name and type, and the LAN each is on."""
        out = []
        for _, adapter in nodes_of(graph, "adapter"):
            if adapter["pc"] != pc:
                continue
            where = f"LAN {adapter['lan']}" if adapter.get("lan") else "no LAN"
            out.append({"value": f"{self.name}:{adapter['name']}",
                        "label": f"{adapter['name']} ({adapter['type']} adapter, {where})"})
        return out

    def switches(self, graph: nx.Graph) -> list[dict[str, Any]]:
        """Each host adapter's filter switch: its rules."""
        return [{"key": key, "kind": f"{adapter['type']} filter", "rules": True, "leases": False}
                for key, adapter in nodes_of(graph, "adapter")]


MODE = HostAdapter()


def plan_adapter(b: Builder, key: str, adapter: dict, ordinal: int, index: int) -> None:
    """A host adapter: the PC's own interface on it, its filter switch and the way out to its LAN.
    ``ordinal`` counts adapters lab-wide (names, datapath ids); ``index`` counts them on their PC.
    """
    g = b.graph
    pc, name, lan, mac = adapter["pc"], adapter["name"], adapter["lan"], adapter["mac"]
    wired = adapter["type"] == "wired"
    bridge = Bridge(key, b.root_name("f" if wired else "w", ordinal),
                    b.dpid(0x2 if wired else 0x4, ordinal), "filter" if wired else "wireless",
                    guard=bool(lan and g.nodes[lan]["dhcp"]))
    b.add(bridge)
    root = b.root_name("h", ordinal)
    b.add(Veth(pc, name, mac, root=root))
    b.port(key, root, "host", mac, number=1, label=f"host stack ({pc} {name})")
    if adapter["ip"] != "dhcp":
        b.add(Address(pc, name, adapter["ip"]))
        b.static(lan if lan and g.nodes[lan]["dhcp"] else None, adapter["ip"])
        router = lan_router(g, lan)
        if router:
            b.add(Route(pc, name, via=router))
    elif lan or wired:
        b.add(DhcpClient(pc, index, name, "udhcpc", source_routing=False, attached=key,
                         lease_net=g.nodes[lan]["subnet"] if lan and g.nodes[lan]["dhcp"]
                         else None))
    if not lan:
        return
    if wired:
        b.patch(key, "uplink", None, f"uplink (LAN {lan})", lan, None, None, f"LAN {key}",
                number_a=2)
        return
    ap = f"ap:{key}"
    b.add(Bridge(ap, b.root_name("p", ordinal), b.dpid(0x5, ordinal), "ap"))
    b.patch(key, "uplink", None, "uplink (access point)", ap, "station", mac,
            f"station ({pc} {name})", number_a=2, number_b=1)
    b.patch(ap, "lan", None, f"uplink (LAN {lan})", lan, None, None, f"LAN {ap}", number_a=2)
