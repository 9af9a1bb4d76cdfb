"""The complete flow set wanted on a filter switch or an internal switch, computed from plain data.

No os-ken here: a switch description goes in, a frozenset of `Flow` comes out (DESIGN.md §2).

Two tables keep the set linear in the number of ports. Table 0 (admission) decides whether a
frame may enter at all: 802.1D reserved groups are dropped, each registered port's legitimate
frames (a guarded guest's only with its registered source MAC) go on to table 1, anything else is
dropped. Table 1 (forwarding) then needs no source check: known unicast goes to the owner of the
destination MAC, group frames to every port, other unicast by the switch kind's rule, and guests'
DHCP client messages to the responder when steering is on. A switch never sends a frame back out
of the port it came in on (OpenFlow 1.3 §4.5: only ``OFPP_IN_PORT`` does that), so "every other
port" and "not back to the source" need no flow per source port.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ROLE_GUEST = "guest"
ROLE_UPLINK = "uplink"
ROLE_HOST = "host"
ROLE_DHCP = "dhcp"
ROLES = (ROLE_GUEST, ROLE_UPLINK, ROLE_HOST, ROLE_DHCP)

KIND_INTERNAL = "internal"
KIND_FILTER = "filter"
KINDS = (KIND_INTERNAL, KIND_FILTER)

#: Roles each kind of switch accepts.
ROLES_BY_KIND: dict[str, tuple[str, ...]] = {
    KIND_FILTER: (ROLE_GUEST, ROLE_UPLINK, ROLE_HOST),
    KIND_INTERNAL: (ROLE_GUEST, ROLE_DHCP),
}
#: Roles that must carry a registered MAC.
ROLES_WITH_MAC = (ROLE_GUEST, ROLE_HOST, ROLE_DHCP)
#: Roles of which a switch holds at most one port.
SINGLE_ROLES = (ROLE_UPLINK, ROLE_HOST, ROLE_DHCP)

#: Table 0: what may enter (802.1D drop, per-port admission, spoof guard).
TABLE_ADMISSION = 0
#: Table 1: where an admitted frame goes (by destination; DHCP steering by source).
TABLE_FORWARDING = 1
TABLES = (TABLE_ADMISSION, TABLE_FORWARDING)

# Priorities, highest first, per table. Flows of one table at one priority never overlap
# (checked by the fake table).
# Table 0 (admission):
PRIO_RESERVED = 1000  # IEEE 802.1D reserved groups: dropped before anything else
PRIO_ADMIT = 500  # a frame that legitimately entered on a registered port: on to table 1
PRIO_SPOOF_DROP = 100  # whatever a guarded guest sent that its admission flow did not take
# Table 1 (forwarding):
PRIO_DHCP_STEER = 800  # guest DHCP client messages to the responder only
PRIO_KNOWN_UNICAST = 600  # destination is a registered MAC
PRIO_MULTICAST = 400  # group bit set (broadcast included)
PRIO_OTHER_UNICAST = 200  # any other destination
# Both tables:
PRIO_TABLE_MISS = 0  # the explicit drop at the bottom

RESERVED_GROUP = ("01:80:c2:00:00:00", "ff:ff:ff:ff:ff:f0")
MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
ETH_TYPE_IPV4 = 0x0800
IP_PROTO_UDP = 17
DHCP_SERVER_PORT = 67

OFPP_MAX = 0xFFFFFF00  # highest number of a physical/logical OpenFlow 1.3 port
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# Canonical order of match fields in a Flow (also the order describe() prints them in).
_FIELD_ORDER = ("in_port", "eth_src", "eth_dst", "eth_type", "ip_proto", "udp_dst")


def normalize_mac(mac: str) -> str:
    """Return `mac` as six lower-case colon-separated octets.

    Args:
        mac: A MAC address such as ``00:03:FF:0a:0b:0c``.

    Raises:
        TypeError: when `mac` is not a string.
        ValueError: when `mac` is not a MAC address.
    """
    if not isinstance(mac, str):
        raise TypeError(f"MAC address must be a string, got {mac!r}")
    low = mac.strip().lower().replace("-", ":")
    if not _MAC_RE.match(low):
        raise ValueError(f"not a MAC address: {mac!r}")
    return low


def is_group_mac(mac: str) -> bool:
    """Tell whether `mac` has the group (multicast/broadcast) bit set."""
    return bool(int(mac[:2], 16) & 1)


@dataclass(frozen=True)
class Port:
    """One port of a switch as the lab registered it.

    Attributes:
        number: The OpenFlow port number (the bridge's ofport).
        role: ``guest`` (a VM NIC), ``uplink`` (the wire to the external LAN), ``host`` (the PC's
            own stack) or ``dhcp`` (an internal network's DHCP responder).
        mac: The MAC registered for the port (required for guest, host and dhcp; lower-cased).
        allow_spoofing: For a guest: accept frames whatever their source MAC.
    """

    number: int
    role: str
    mac: str | None
    allow_spoofing: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.number, bool) or not isinstance(self.number, int):
            raise TypeError(f"port number must be an integer, got {self.number!r}")
        if not 1 <= self.number <= OFPP_MAX:
            raise ValueError(f"port number {self.number} out of range 1..{OFPP_MAX}")
        if self.role not in ROLES:
            raise ValueError(f"port {self.number}: unknown role {self.role!r} "
                             f"(one of {', '.join(ROLES)})")
        if not isinstance(self.allow_spoofing, bool):
            raise TypeError(f"port {self.number}: allow_spoofing must be true or false, "
                             f"got {self.allow_spoofing!r}")
        if self.mac is None:
            if self.role in ROLES_WITH_MAC:
                raise ValueError(f"port {self.number}: a {self.role} port needs a MAC")
            return
        mac = normalize_mac(self.mac)
        if is_group_mac(mac) or mac == "00:00:00:00:00:00":
            raise ValueError(f"port {self.number}: {mac} is not a unicast MAC")
        object.__setattr__(self, "mac", mac)

    @property
    def guarded(self) -> bool:
        """True when frames from this port must carry its registered source MAC."""
        return self.role == ROLE_GUEST and not self.allow_spoofing


@dataclass(frozen=True)
class Switch:
    """A switch the lab registered: its datapath id, kind and ports.

    Attributes:
        dpid: The OpenFlow datapath id.
        kind: ``internal`` or ``filter``.
        ports: The registered ports (any order; numbers and MACs unique).
        dhcp_steering: Internal kind only: send guests' DHCP client messages to the ``dhcp`` port
            alone.
    """

    dpid: int
    kind: str
    ports: tuple[Port, ...] = field(default=())
    dhcp_steering: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.dpid, bool) or not isinstance(self.dpid, int):
            raise TypeError(f"dpid must be an integer, got {self.dpid!r}")
        if not 0 <= self.dpid < 2**64:
            raise ValueError(f"dpid {self.dpid} out of range (64 bits)")
        if self.kind not in KINDS:
            raise ValueError(f"switch {self.dpid:#x}: unknown kind {self.kind!r} "
                             f"(one of {', '.join(KINDS)})")
        if not isinstance(self.dhcp_steering, bool):
            raise TypeError(f"switch {self.dpid:#x}: dhcp_steering must be true or false")
        if self.dhcp_steering and self.kind != KIND_INTERNAL:
            raise ValueError(f"switch {self.dpid:#x}: dhcp_steering applies to internal "
                             f"switches only")
        ports = tuple(sorted(self.ports, key=lambda p: p.number))
        object.__setattr__(self, "ports", ports)
        seen_numbers: set[int] = set()
        seen_macs: dict[str, int] = {}
        for port in ports:
            if not isinstance(port, Port):
                raise TypeError(f"switch {self.dpid:#x}: not a Port: {port!r}")
            if port.number in seen_numbers:
                raise ValueError(f"switch {self.dpid:#x}: port {port.number} given twice")
            seen_numbers.add(port.number)
            if port.role not in ROLES_BY_KIND[self.kind]:
                raise ValueError(f"switch {self.dpid:#x}: a {self.kind} switch has no "
                                 f"{port.role} port (port {port.number})")
            if port.mac is not None and port.role in ROLES_WITH_MAC:
                if port.mac in seen_macs:
                    raise ValueError(f"switch {self.dpid:#x}: MAC {port.mac} registered on "
                                     f"both port {seen_macs[port.mac]} and port {port.number}")
                seen_macs[port.mac] = port.number
        for role in SINGLE_ROLES:
            numbers = [p.number for p in ports if p.role == role]
            if len(numbers) > 1:
                raise ValueError(f"switch {self.dpid:#x}: more than one {role} port "
                                 f"({', '.join(map(str, numbers))})")

    def port(self, number: int) -> Port | None:
        """Return the port with this number, or None."""
        for port in self.ports:
            if port.number == number:
                return port
        return None

    def with_port(self, port: Port) -> Switch:
        """Return a copy with `port` added, replacing any port of the same number."""
        others = tuple(p for p in self.ports if p.number != port.number)
        return Switch(self.dpid, self.kind, others + (port,), self.dhcp_steering)

    def without_port(self, number: int) -> Switch:
        """Return a copy without the port of this number."""
        others = tuple(p for p in self.ports if p.number != number)
        return Switch(self.dpid, self.kind, others, self.dhcp_steering)

    def with_steering(self, on: bool) -> Switch:
        """Return a copy with DHCP steering switched on or off."""
        return Switch(self.dpid, self.kind, self.ports, on)

    def role_port(self, role: str) -> Port | None:
        """Return the (single) port of `role`, or None."""
        for port in self.ports:
            if port.role == role:
                return port
        return None


@dataclass(frozen=True)
class Flow:
    """One flow entry of one table.

    A flow either outputs (``actions``), or sends the frame on to a later table (``goto``), or
    does neither, which drops the frame.

    Attributes:
        priority: OpenFlow priority (higher wins).
        match: ``(field, value)`` pairs named as OpenFlow 1.3 OXM fields / os-ken ``OFPMatch``
            keywords, in a canonical order; a masked field's value is ``(value, mask)``.
        actions: Output port numbers in order; a port equal to the frame's in_port is skipped
            (as a switch does). Empty (and no ``goto``) means drop.
        table: The table the entry lives in.
        goto: The table to continue in (a goto-table instruction), or None.

    Raises:
        ValueError: when a flow has both outputs and a goto, or a goto that does not lead to a
            later table.
    """

    priority: int
    match: tuple[tuple[str, object], ...]
    actions: tuple[int, ...]
    table: int = 0
    goto: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.table, bool) or not isinstance(self.table, int) \
                or not 0 <= self.table < 0xFF:
            raise ValueError(f"table must be an integer 0..254, got {self.table!r}")
        if self.goto is not None:
            if self.actions:
                raise ValueError("a flow either outputs or goes to another table, not both")
            if isinstance(self.goto, bool) or not isinstance(self.goto, int) \
                    or not self.table < self.goto < 0xFF:
                raise ValueError(f"goto must name a later table than {self.table}, "
                                 f"got {self.goto!r}")

    @property
    def key(self) -> tuple[int, int, tuple[tuple[str, object], ...]]:
        """What identifies the entry on a switch: table, priority and match (not instructions)."""
        return (self.table, self.priority, self.match)

    def match_dict(self) -> dict[str, object]:
        """Return the match as keyword arguments for os-ken's ``OFPMatch``."""
        return dict(self.match)


def make_flow(priority: int, actions: Iterable[int] = (), *, table: int = TABLE_ADMISSION,
              goto: int | None = None, **fields: object) -> Flow:
    """Build a `Flow`, putting the match fields in canonical order.

    Args:
        priority: OpenFlow priority.
        actions: Output ports; nothing (and no `goto`) means drop.
        table: The table the flow goes into.
        goto: The table matching frames continue in (instead of outputs).
        **fields: Match fields (``in_port``, ``eth_src``, ``eth_dst``...).

    Raises:
        ValueError: for a field this module does not know, or outputs together with a goto.
    """
    unknown = set(fields) - set(_FIELD_ORDER)
    if unknown:
        raise ValueError(f"unknown match field(s): {', '.join(sorted(unknown))}")
    match = tuple((name, fields[name]) for name in _FIELD_ORDER if name in fields)
    return Flow(priority, match, tuple(actions), table, goto)


def baseline_flows() -> frozenset[Flow]:
    """The flows every switch carries, registered or not: the 802.1D drop and each table's miss."""
    return frozenset({
        make_flow(PRIO_RESERVED, (), table=TABLE_ADMISSION, eth_dst=RESERVED_GROUP),
        make_flow(PRIO_TABLE_MISS, (), table=TABLE_ADMISSION),
        make_flow(PRIO_TABLE_MISS, (), table=TABLE_FORWARDING),
    })


def _source_match(port: Port) -> dict[str, object]:
    """Match fields selecting frames that legitimately entered on `port`."""
    fields: dict[str, object] = {"in_port": port.number}
    if port.guarded:
        fields["eth_src"] = port.mac
    return fields


def _other_unicast_outputs(switch: Switch) -> tuple[int, ...]:
    """Where a frame to an unregistered unicast MAC goes, whatever port it came in on.

    The source port itself is left out by the switch, which is what the per-source rules need:
    on a filter switch the uplink's own such frames are dropped (a promiscuous NIC gets them,
    the driver discards them); on an internal switch a spoofing-allowed port's frames reach the
    other spoofing-allowed ports only.
    """
    if switch.kind == KIND_FILTER:
        uplink = switch.role_port(ROLE_UPLINK)
        return (uplink.number,) if uplink is not None else ()
    # internal: only a port that may carry other MACs can be the owner
    return tuple(p.number for p in switch.ports if p.allow_spoofing)


def flows_for(switch: Switch) -> frozenset[Flow]:
    """Return every flow `switch` should have, in both tables.

    The rules look at MACs only (any ethertype passes alike), except DHCP steering. Table 0 admits
    each registered port's frames (a guarded guest's only with its registered source MAC) to
    table 1 and drops the rest. In table 1 a frame to a registered MAC goes to that port only
    (dropped if it is the source itself: a switch never outputs to the in_port); a group frame goes
    to every port but the source; any other unicast goes to the uplink (filter; dropped when it
    came from the uplink) or to the spoofing-allowed ports (internal). The set grows linearly with
    the ports: at most four flows per port plus a constant.

    Args:
        switch: The registered switch.

    Returns:
        The complete flow set, including the 802.1D drop and both tables' lowest-priority drops.
    """
    flows = set(baseline_flows())
    dhcp = switch.role_port(ROLE_DHCP)
    steering = switch.kind == KIND_INTERNAL and switch.dhcp_steering and dhcp is not None
    fwd = TABLE_FORWARDING
    for port in switch.ports:
        # Table 0: admission and spoof guard.
        flows.add(make_flow(PRIO_ADMIT, table=TABLE_ADMISSION, goto=fwd, **_source_match(port)))
        if port.guarded:
            flows.add(make_flow(PRIO_SPOOF_DROP, (), table=TABLE_ADMISSION, in_port=port.number))
        # Table 1: known unicast (source-independent) and DHCP steering (per guest).
        if port.mac is not None and port.role in ROLES_WITH_MAC:
            flows.add(make_flow(PRIO_KNOWN_UNICAST, (port.number,), table=fwd, eth_dst=port.mac))
        if steering and port.role == ROLE_GUEST:
            flows.add(make_flow(PRIO_DHCP_STEER, (dhcp.number,), table=fwd, in_port=port.number,
                                eth_type=ETH_TYPE_IPV4, ip_proto=IP_PROTO_UDP,
                                udp_dst=DHCP_SERVER_PORT))
    if switch.ports:
        every = tuple(p.number for p in switch.ports)
        flows.add(make_flow(PRIO_MULTICAST, every, table=fwd, eth_dst=MULTICAST))
    other = _other_unicast_outputs(switch)
    if other:  # otherwise the table miss drops it
        flows.add(make_flow(PRIO_OTHER_UNICAST, other, table=fwd))
    return frozenset(flows)


def diff(old: Iterable[Flow], new: Iterable[Flow]) -> tuple[frozenset[Flow], frozenset[Flow]]:
    """Return what to send to turn flow set `old` into `new`.

    A flow whose table, priority and match stay but whose actions or goto change is only in
    `to_add`: an OpenFlow ADD with the same table, priority and match replaces the entry, and a
    strict delete of the old one would remove the replacement.

    Args:
        old: The flows on the switch.
        new: The flows wanted.

    Returns:
        ``(to_delete, to_add)``: flows to remove with a strict delete, flows to add.
    """
    old_set, new_set = frozenset(old), frozenset(new)
    new_keys = {f.key for f in new_set}
    to_delete = frozenset(f for f in old_set if f.key not in new_keys)
    return to_delete, new_set - old_set


def _format_value(name: str, value: object) -> str:
    if isinstance(value, tuple):
        return f"{value[0]}/{value[1]}"
    if name == "eth_type" and isinstance(value, int):
        return f"0x{value:04x}"
    return str(value)


def sort_key(flow: Flow) -> tuple:
    """Order flows as a switch evaluates them: table, then priority (high to low), then match."""
    return (flow.table, -flow.priority, [(n, _format_value(n, v)) for n, v in flow.match],
            flow.actions, -1 if flow.goto is None else flow.goto)


def describe(flows: Iterable[Flow], labels: Mapping[int, str] | None = None) -> list[str]:
    """Render flows as readable lines, by table, highest priority first.

    Args:
        flows: The flows to show.
        labels: Optional names for port numbers, shown as ``3(xp)``.

    Returns:
        One line per flow, e.g. ``table=1 priority=400 eth_dst=01:00:00:00:00:00/...
        actions=output:1,2,3`` or ``table=0 priority=500 in_port=1 actions=goto_table:1``.
    """
    labels = labels or {}

    def port(number: int) -> str:
        return f"{number}({labels[number]})" if number in labels else str(number)

    lines = []
    for flow in sorted(flows, key=sort_key):
        parts = [f"table={flow.table}", f"priority={flow.priority}"]
        for name, value in flow.match:
            text = port(value) if name == "in_port" else _format_value(name, value)
            parts.append(f"{name}={text}")
        if flow.goto is not None:
            parts.append(f"actions=goto_table:{flow.goto}")
        elif flow.actions:
            parts.append("actions=output:" + ",".join(port(p) for p in flow.actions))
        else:
            parts.append("actions=drop")
        lines.append(" ".join(parts))
    return lines


def explain(flows: Iterable[Flow], labels: Mapping[int, str]) -> list[str]:
    """The flows in words, for people, from the same flow set that goes on the switch.

    Args:
        flows: Usually ``flows_for(switch)``.
        labels: A name for every port number, e.g. ``{1: "host stack (pc eth0)", 2: "guest xp/eth1"}``.

    Returns:
        One sentence per flow, admission rules first, e.g. ``to 00:1a:2b:3c:4d:5e: host stack (pc
        eth0) only`` or ``from guest xp/eth1 with source 00:03:ff:12:34:56: admitted``.
    """
    def name(number: int) -> str:
        return labels.get(number, f"port {number}")

    def outputs(actions: tuple[int, ...]) -> str:
        return ", ".join(name(p) for p in actions)

    lines = []
    for flow in sorted(flows, key=sort_key):
        m = flow.match_dict()
        src = f" with source {m['eth_src']}" if "eth_src" in m else ""
        if flow.table == TABLE_ADMISSION:
            if flow.priority == PRIO_RESERVED:
                lines.append("802.1D reserved groups (01:80:c2:00:00:0x): dropped everywhere")
            elif flow.goto is not None:
                lines.append(f"from {name(m['in_port'])}{src}: admitted")
            elif "in_port" in m:
                lines.append(f"from {name(m['in_port'])}, any other source MAC: dropped "
                             "(spoof guard)")
            else:
                lines.append("anything else entering: dropped")
            continue
        if flow.priority == PRIO_DHCP_STEER:
            lines.append(f"DHCP client messages from {name(m['in_port'])}{src}: "
                         f"{outputs(flow.actions)} only")
        elif flow.priority == PRIO_KNOWN_UNICAST:
            lines.append(f"to {m['eth_dst']}: {outputs(flow.actions)} only")
        elif flow.priority == PRIO_MULTICAST:
            lines.append(f"broadcast and multicast: {outputs(flow.actions)}, never back where it "
                         "came from")
        elif flow.priority == PRIO_OTHER_UNICAST:
            lines.append(f"any other unicast: {outputs(flow.actions)}, never back where it came "
                         "from (so from there: dropped)")
        else:
            lines.append("anything else: dropped")
    return lines
