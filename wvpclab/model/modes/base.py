"""The one small interface every NIC mode answers (``wvpclab.model.modes``), and the graph
look-ups modes share.

A NIC is a graph node's attribute dict (``wvpclab.model.topology``): ``vm``, ``index``, ``mode``,
``target``, ``ip``, ``mac``, ``speed``, ``allow_mac_spoofing``, ``forward``, and at runtime
``cable``.

Everything a mode decides is a member of its class: its plan (``plan_lab``, ``plan_nic``,
``plan_done``), where it puts a NIC for reachability and what it says of traffic there (``where``,
``inbound``, ``isolation``, ``outbound``, ``dns``, ``reached``, ``sends_as``, ``stand_ins``: read
by ``wvpclab.analysis``), its picture (``style``, ``describe``, ``boxes``, ``legend``), its choices
on the web page (``choices``, ``switches``), its words on the command line (``target_word``) and
the runtime's classes of the nodes it adds (``roles``). The modes depend on nothing of the plan's
but the ``Builder`` interface below; ``wvpclab.model.plan`` calls them.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import networkx as nx

Nic = Mapping[str, Any]
#: Where an endpoint sits, for reachability: (kind, key). Kinds every lab has: ("lan", LAN),
#: ("segment", PC/ADAPTER) for a filter switch without a LAN, ("unplugged", None); a mode may put
#: its NICs in a kind of its own (``Mode.where``) and then says what follows (``inbound``...).
Place = tuple[str, Any]
#: What the model says of a ping from one endpoint to another: (reaches, why).
Verdict = tuple[bool, str]


class Builder(Protocol):
    """What a mode's plan adds items through (``wvpclab.model.plan.Builder`` is the one there is):
    the graph, and the plan's ways to add items, name interfaces and switches, and number ports."""

    graph: nx.Graph
    previous: Any  # the running plan (a LabPlan), for names kept across changes

    def add(self, item: Any) -> None: ...

    def of(self, kind: type) -> dict[Any, Any]: ...

    def root_name(self, letter: str, number: int) -> str: ...

    def dpid(self, kind: int, index: int) -> int: ...

    def internal_slot(self, key: str) -> int: ...

    def port(self, bridge: str, ifname: str, role: str | None, mac: str | None,
             number: int | None = None, allow_spoofing: bool = False, patch: str | None = None,
             label: str = "") -> Any: ...

    def patch(self, a: str, role_a: str | None, mac_a: str | None, label_a: str, b: str,
              role_b: str | None, mac_b: str | None, label_b: str, number_a: int | None = None,
              number_b: int | None = None) -> None: ...

    def static(self, server: str | None, cidr: str) -> None: ...

    def server(self, server: Any) -> None: ...


class Endpoint(Protocol):
    """What a mode reads of an endpoint (``wvpclab.analysis.verify.Endpoint``): its kind
    (``nic``, ``adapter``, ``server``) and its graph node."""

    kind: str
    key: str


@dataclass(frozen=True)
class Box:
    """Something a mode draws inside its PC in the lab's picture (``wvpclab.analysis.draw``): an
    internal network's switch, a NAT engine. Plain text; the picture escapes and lays it out."""

    key: str  # the picture's node (a NIC's cable may end in it: ``attachment``, ``engine``)
    title: str  # in bold
    note: str = ""  # small, after the title
    lines: tuple[tuple[str, str], ...] = ()  # (text, "small" or "mono"), one a row
    switch: str | None = None  # a switch the web page shows live: its tooltip
    rounded: bool = False
    from_stack: bool = False  # a dotted line from the PC's IP stack (traffic routed through it)


def pc_of(graph: nx.Graph, nic: Nic) -> str:
    """The physical PC the NIC's VM runs on."""
    return graph.nodes[nic["vm"]]["pc"]


def lan_router(graph: nx.Graph, lan: str | None) -> str | None:
    """A LAN's gateway address (no length), or None for no LAN."""
    if not lan:
        return None
    return graph.nodes[lan]["gateway"].split("/")[0]


def open_to_the_internet(graph: nx.Graph, lan: str) -> bool:
    """Whether the internet reaches into a LAN: the internet itself, or a routed LAN."""
    data = graph.nodes[lan]
    return bool(data.get("internet")) or data.get("nat") is False


def adapter_addressed(graph: nx.Graph, key: str) -> bool:
    """Whether a PC's host adapter has an address: static, or a DHCP server on its LAN."""
    data = graph.nodes[key]
    return data["ip"] != "dhcp" or bool(data["lan"] and graph.nodes[data["lan"]]["dhcp"])


class Mode:
    """A NIC mode: where the NIC's cable goes and what follows from it. Subclasses answer once what
    the rest of the lab asks; nothing outside a mode's module compares mode names."""

    name: ClassVar[str]
    #: Colours and legend in pictures: (strong colour, light fill, legend text).
    style: ClassVar[tuple[str, str, str]]
    #: Whether the mode names what it plugs into (``bridge eth0``, ``internal lab``).
    takes_target: ClassVar[bool] = False
    #: What the target is called in a usage line (``bridge ADAPTER``), for a mode that takes one.
    target_word: ClassVar[str] = "TARGET"
    #: The picture's legend for the dotted line from a PC's IP stack to one of the mode's boxes
    #: (``Box.from_stack``), shown when the picture has one.
    legend: ClassVar[str] = ""
    #: Where the mode's choices stand in the Settings dialog's drop-down (WVPC's order: Not
    #: connected, the host's adapters, Shared Networking, internal networks); lower first.
    dialog_rank: ClassVar[int] = 100
    #: The drop-down's entry of a mode that takes no target (``Shared Networking (NAT)``).
    dialog_label: ClassVar[str] = ""
    #: The nodes the mode adds to the plan, by role (``Host.role``: ``nat``), each with the
    #: runtime's Mininet class that starts it, as ``module.Class`` (the model imports no Mininet;
    #: ``wvpclab.runtime.nodes.ROLES`` imports it when a node of the role starts).
    roles: ClassVar[Mapping[str, str]] = {}

    # -- syntax: how a topology file, a graph, the CLI and the API name the mode -------------------
    #: What the mode is, in a sentence (the topology reference and the JSON Schema show it).
    summary: ClassVar[str] = ""
    #: What the target names, in words (``an adapter``); for modes that take one.
    target_what: ClassVar[str] = ""
    #: Whether a NIC in this mode may forward ports (``forward: ["tcp:8080:80"]``).
    takes_forwards: ClassVar[bool] = False

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

    def usage(self, sep: str = " ") -> str:
        """The mode in a usage line: ``shared``, ``bridge ADAPTER`` (``sep`` ``:``: the page's
        and the API's ``bridge:ADAPTER``)."""
        return f"{self.name}{sep}{self.target_word}" if self.takes_target else self.name

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

    def counts(self, graph: nx.Graph) -> list[tuple[int, str]]:
        """What the mode brings to a lab, counted for a summary line (``[(2, "internal
        network")]``); default nothing."""
        return []

    # -- the plan (``wvpclab.model.plan``) -----------------------------------------------------

    def plan_lab(self, b: Builder) -> None:
        """Adds what the mode brings to a lab once, whether or not a NIC uses it (the PCs' host
        adapters and their filter switches, the declared internal networks); default none."""

    def plan_nic(self, b: Builder, nic: Nic, ordinal: int) -> None:
        """Adds what this mode needs for one NIC beyond its cable (a NAT engine); default none."""

    def plan_done(self, b: Builder) -> None:
        """Adds what follows from every NIC's plan, once all are planned (each PC's own NAT rules
        for its engines and its DNS relay); default none."""

    # -- reachability (``wvpclab.analysis.verify`` and ``reach``) --------------------------------

    def where(self, graph: nx.Graph, nic: Nic) -> Place:
        """Where a NIC with a carrier sits, for reachability: a place every lab has (("lan", LAN),
        ("segment", PC/ADAPTER)) or one of the mode's own, which its ``inbound``, ``isolation``
        and ``outbound`` then explain. Default: nowhere."""
        return "unplugged", None

    def inbound(self, graph: nx.Graph, here: Place, there: Place) -> Verdict | None:
        """What the model says of a ping to a NIC in this mode (at ``here``) from ``there``,
        asked first once both ends have an address (a NAT engine lets nothing in); None: the
        mode has nothing to say."""
        return None

    def isolation(self, graph: nx.Graph, here: Place, there: Place) -> Verdict | None:
        """What the model says of a ping between a NIC in this mode (at ``here``) and ``there``
        either way (an internal network reaches only itself), asked after ``inbound``; None:
        nothing to say."""
        return None

    def outbound(self, graph: nx.Graph, here: Place, to: Endpoint, there: Place) -> Verdict | None:
        """What the model says of a ping from a NIC in this mode to ``to`` at ``there`` (NAT
        rules), asked after ``isolation``; None: the places every lab has decide."""
        return None

    def dns(self, graph: nx.Graph, nic: Nic) -> tuple[str | None, str] | None:
        """The DNS server a NIC with an address here is told of, and why; None: its place
        decides (a LAN's gateway)."""
        return None

    def stand_ins(self, graph: nx.Graph) -> None:
        """Adds to a copy of the lab's graph the lab's own nodes of this mode that the model can
        place as if they were guests (an internal network's DHCP server), so that Mininet's ping
        tests can say what the model expects of them; default none."""

    def reached(self, plan: Any, src: str, dst: str) -> Verdict | None:
        """What the model says of a ping between two nodes of the running lab's ``plan`` when one
        is a node the mode adds (a NAT engine); None: not the mode's."""
        return None

    def sends_as(self, plan: Any, node: str) -> tuple[str, str] | None:
        """The guest's (node, interface) whose traffic a node the mode adds sends as (a NAT
        engine's leaves as its guest's); None: not the mode's."""
        return None

    # -- the picture (``wvpclab.analysis.draw``) ------------------------------------------------

    def pc_notes(self, pc: Mapping[str, Any]) -> list[str]:
        """What the mode adds to a PC's title in the picture (its shared networking subnet);
        default nothing."""
        return []

    def boxes(self, graph: nx.Graph, pc: str) -> list[Box]:
        """What the mode draws inside PC ``pc`` (its internal networks' switches, its NICs' NAT
        engines); default nothing."""
        return []

    def drawn_missing(self, attach: str) -> tuple[str, str | None] | None:
        """What the picture draws for ``attach``, the node a NIC's cable plugs into, when the graph
        lacks it (a stale or hand-made graph): (PC, why) the node inside PC ``PC``, marked with
        ``why``; (PC, None) the PC itself (``attach`` is one); None nothing (the mode's ``boxes``
        draw it). Default None."""
        return None

    def nics_on(self, graph: nx.Graph, pc: str) -> list[tuple[str, Nic]]:
        """The NICs in this mode of the VMs on PC ``pc``, by key (a hand-made graph's too: a NIC
        whose VM the graph lacks is on no PC)."""
        return sorted((key, nic) for key, nic in graph.nodes(data=True)
                      if nic.get("kind") == "nic" and nic.get("mode") == self.name
                      and nic.get("vm") in graph and graph.nodes[nic["vm"]].get("pc") == pc)

    # -- the web page's Settings dialog (``wvpclab.ui.web.state``) -------------------------------

    def choices(self, graph: nx.Graph, pc: str) -> list[dict[str, str]]:
        """The mode's entries in the drop-down of a NIC on ``pc``: ``value`` (the mode as the page
        sends it, ``mode`` or ``mode:target``) and ``label``; an entry whose value ends in ``:``
        asks for a name (``ask``: the question, ``names``: what the name is of) and sends it
        after the colon. Default: the mode itself, for a mode that takes no target."""
        if self.takes_target:
            return []
        return [{"value": self.name, "label": self.dialog_label or self.name}]

    def switches(self, graph: nx.Graph) -> list[dict[str, Any]]:
        """The switches the mode brings whose rules or leases the page can show: ``key``,
        ``kind`` (words), ``rules`` and ``leases`` (whether it has them); default none."""
        return []


def _quote(value: Any) -> str:
    """A value quoted in a message as a topology file writes it, cut short."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text):,} characters)"
