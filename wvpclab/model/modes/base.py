"""The one small interface every NIC mode answers (``wvpclab.model.modes``), and the graph
look-ups modes share.

A NIC is a graph node's attribute dict (``wvpclab.model.topology``): ``vm``, ``index``, ``mode``,
``target``, ``ip``, ``mac``, ``speed``, ``allow_mac_spoofing``, ``forward``, and at runtime
``cable``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import networkx as nx

if TYPE_CHECKING:
    from wvpclab.model.plan import Builder

Nic = Mapping[str, Any]


def pc_of(graph: nx.Graph, nic: Nic) -> str:
    """The physical PC the NIC's VM runs on."""
    return graph.nodes[nic["vm"]]["pc"]


def lan_router(graph: nx.Graph, lan: str | None) -> str | None:
    """A LAN's gateway address (no length), or None for no LAN."""
    if not lan:
        return None
    return graph.nodes[lan]["gateway"].split("/")[0]


class Mode:
    """A NIC mode: where the NIC's cable goes and what follows from it. Subclasses answer once what
    the rest of the lab asks; nothing outside a mode's module compares mode names."""

    name: ClassVar[str]
    #: Colours and legend in pictures: (strong colour, light fill, legend text).
    style: ClassVar[tuple[str, str, str]]
    #: Whether the mode names what it plugs into (``bridge eth0``, ``internal lab``).
    takes_target: ClassVar[bool] = False
    #: The kind of graph node a NIC in this mode attaches to (None: nothing).
    attaches_to: ClassVar[str | None] = None

    def label(self, nic: Nic) -> str:
        """``none``, ``shared``, ``bridge eth0``, ``internal lab``."""
        return f"{self.name} {nic['target']}" if nic.get("target") else self.name

    def describe(self, nic: Nic) -> str:
        """The NIC's mode in a picture: ``bridge → eth0``."""
        return f"{self.name} → {nic['target']}" if nic.get("target") else self.name

    def attachment(self, graph: nx.Graph, nic: Nic) -> str | None:
        """The key of what the NIC's cable plugs into: a switch, or a shared NIC's NAT network
        (``nat:VM/N``, whose engine ``cable_into`` names); None: Not connected."""
        return None

    def cable_into(self, nic: Nic) -> tuple[str, str, str] | None:
        """Where the NIC's cable goes straight into a node, with no switch between (node, its
        interface's name and MAC); None: into the switch ``attachment`` names, or nowhere."""
        return None

    def graph_attach(self, graph: nx.Graph, nic: Nic) -> str | None:
        """The graph node the NIC's ``attach`` edge goes to (None: no edge)."""
        return self.attachment(graph, nic)

    def network(self, graph: nx.Graph, nic: Nic) -> str | None:
        """The subnet the NIC's address comes from (None: none known)."""
        return None

    def server(self, graph: nx.Graph, nic: Nic) -> str | None:
        """The key of the DHCP server the lab runs on the NIC's network (None: none there)."""
        return None

    def gateway(self, graph: nx.Graph, nic: Nic) -> str | None:
        """The router a NIC with a static address uses, as DHCP would have told it."""
        return None

    def nameserver(self, graph: nx.Graph, nic: Nic) -> str | None:
        """The DNS server a NIC with a static address uses, as DHCP would have told it."""
        return None

    def where(self, graph: nx.Graph, nic: Nic) -> tuple[str, Any]:
        """Where the NIC sits, for reachability (``wvpclab.analysis.verify``): ("lan", LAN),
        ("segment", PC/ADAPTER), ("island", PC/NAME) for an internal network, ("nat", PC) or
        ("unplugged", None)."""
        return "unplugged", None

    def carrier(self, nic: Nic) -> bool:
        """Whether the guest sees a carrier: plugged into something, cable in."""
        return self.attachment_kind() is not None and nic.get("cable", True)

    def attachment_kind(self) -> str | None:
        """Whether this mode plugs the cable into anything (None: Not connected)."""
        return "switch"

    def engine(self, nic: Nic) -> str | None:
        """The node that stands between the NIC and the PC (a NAT engine), if any."""
        return None

    def check_target(self, graph: nx.Graph, pc: str, target: str | None) -> str | None:
        """Why ``target`` cannot be this mode's target on ``pc`` (None: it can)."""
        return None

    def prepare(self, graph: nx.Graph, pc: str, target: str | None) -> None:
        """Adds to the graph what a NIC moving into this mode needs there (default nothing)."""

    def plan_nic(self, b: Builder, nic: Nic, ordinal: int) -> None:
        """Adds what this mode needs for one NIC beyond its cable (a NAT engine); default none."""
