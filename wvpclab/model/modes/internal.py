"""Internal network: one isolated switch per (PC, network name), with WVPC's built-in DHCP server
(169.254.0.16-169.254.10.254) unless the network says ``dhcp: false``."""

from __future__ import annotations

import difflib
import ipaddress
from typing import TYPE_CHECKING, Any

import networkx as nx

from wvpclab.model import macs
from wvpclab.model.addresses import INTERNAL_NETWORK, INTERNAL_POOL, INTERNAL_SERVER
from wvpclab.model.items import Address, Bridge, DhcpServer, Host, Port, Veth
from wvpclab.model.modes.base import Mode, Nic, pc_of
from wvpclab.model.names import NAME_RE

if TYPE_CHECKING:
    from wvpclab.model.plan import Builder


class Internal(Mode):
    name = "internal"
    style = ("#23913a", "#d3f0d8", "internal — internal network")
    attaches_to = "internal"
    takes_target = True
    summary = ("Internal network: the NIC plugs into the named network's isolated switch on its "
               "PC (declared under `internal`), where only that PC's guests on the same network "
               "meet; a built-in DHCP server leases 169.254.0.16-169.254.10.254 unless `dhcp: "
               "false`.")
    target_what = "a network"

    def check_declared(self, graph: nx.Graph, pc: str, target: str | None) -> str | None:
        declared = graph.graph.get("internal", {})
        if target not in declared:
            close = difflib.get_close_matches(str(target), list(declared), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return (f"internal network {target!r} is not declared under internal (declared: "
                    f"{', '.join(sorted(declared)) or 'none'}){hint}")
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

    def attachment(self, graph: nx.Graph, nic: Nic) -> str:
        return f"{pc_of(graph, nic)}/{nic['target']}"

    def network(self, graph: nx.Graph, nic: Nic) -> str:
        return str(INTERNAL_NETWORK)

    def server(self, graph: nx.Graph, nic: Nic) -> str | None:
        key = self.attachment(graph, nic)
        return key if key in graph and graph.nodes[key].get("dhcp") else None

    def where(self, graph: nx.Graph, nic: Nic) -> tuple[str, Any]:
        return "island", self.attachment(graph, nic)

    def check_target(self, graph: nx.Graph, pc: str, target: str | None) -> str | None:
        key = f"{pc}/{target}"
        if not NAME_RE.match(target or ""):
            return f"{target!r} is not a valid internal network name"
        if key in graph and graph.nodes[key].get("kind") != "internal":
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
    b.add(Host(node, "dhcp", net["pc"]))
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
        graph.add_node(key, kind="internal", name=name, pc=pc, dhcp=dhcp)
        graph.add_edge(pc, key, rel="internal")
    return key
