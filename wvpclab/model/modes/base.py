"""The one small interface every NIC mode answers (``wvpclab.model.modes``), and the graph
look-ups modes share.

A NIC is a graph node's attribute dict (``wvpclab.model.topology``): ``vm``, ``index``, ``mode``,
``target``, ``ip``, ``mac``, ``speed``, ``allow_mac_spoofing``, ``forward``, and at runtime
``cable``."""

from __future__ import annotations

import ipaddress
import json
import re
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

    # -- syntax: how a topology file, a graph, the CLI and the API name the mode -------------------
    #: What the mode is, in a sentence (the topology reference and the JSON Schema show it).
    summary: ClassVar[str] = ""
    #: What the target names, in words (``an adapter``); for modes that take one.
    target_what: ClassVar[str] = ""
    #: The target's placeholder in the forms users read (``bridge: ADAPTER``).
    target_word: ClassVar[str] = "NAME"
    #: Whether a NIC in this mode may forward ports (``forward: ["tcp:8080:80"]``).
    takes_forwards: ClassVar[bool] = False

    def form(self, sep: str = ": ") -> str:
        """How the mode is written, for messages: ``none``, ``bridge: ADAPTER`` (``sep`` between
        the name and the target: ``" "`` for the CLI)."""
        return f"{self.name}{sep}{self.target_word}" if self.takes_target else self.name

    def format(self, target: str | None) -> str:
        """The NIC entry's one-word form in a file (and the CLI's): ``shared``, ``bridge:eth0``."""
        return f"{self.name}:{target}" if self.takes_target else self.name

    def entry(self, target: str | None) -> dict[str, Any]:
        """The NIC mapping's mode key and value: ``{"shared": True}``, ``{"bridge": "eth0"}``."""
        return {self.name: target if self.takes_target else True}

    def pattern(self) -> str:
        """A regular expression for the one-word form (``format``, or ``bridge eth0``)."""
        name = re.escape(self.name)
        return rf"{name}\s*[: ]\s*[^\s:]+" if self.takes_target else name

    def parse_value(self, value: Any) -> str | None:
        """The value of the mode's key in a NIC mapping (``bridge: eth0``, ``shared: true``) ->
        the target (None for a mode without one); ValueError saying what is expected."""
        if self.takes_target:
            if isinstance(value, str) and value.strip():
                return value.strip()
            raise ValueError(f"{_quote(value)}: expected the name of {self.target_what}")
        if value is None or value is True or (isinstance(value, dict) and not value):
            return None
        raise ValueError(f"{_quote(value)}: {self.name} takes no value (write '{self.name}: "
                         "true' or the plain word)")

    # -- validation: what a NIC in this mode may be given ---------------------------------------
    def check_declared(self, graph: nx.Graph, pc: str, target: str | None) -> str | None:
        """Why a topology cannot give a NIC on ``pc`` this target (None: it can). ``graph`` is the
        topology's graph as far as it is built (PCs, adapters, LANs; declared internal networks in
        ``graph.graph["internal"]``). By default what a running lab accepts (``check_target``)."""
        return self.check_target(graph, pc, target)

    def address_prefix(self, graph: nx.Graph, nic: Nic) -> ipaddress.IPv4Network | None:
        """The network a static address written without a prefix length is taken in (None: the
        address must be written in CIDR form)."""
        return None

    def check_address(self, graph: nx.Graph, nic: Nic,
                      iface: ipaddress.IPv4Interface) -> str | None:
        """Why ``iface`` cannot be the NIC's static address (None: it can)."""
        return None

    def address_domain(self, graph: nx.Graph, nic: Nic) -> str | None:
        """The broadcast domain in which the NIC's static address must be unique (None: none
        shared with other NICs)."""
        return None

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


def _quote(value: Any) -> str:
    """A value quoted in a message as a topology file writes it, cut short."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text):,} characters)"
