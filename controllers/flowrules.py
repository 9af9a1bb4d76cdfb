"""The complete flow set wanted on a filter switch or an internal switch, computed from plain data.

No os-ken here: a switch description goes in, a frozenset of `Flow` comes out
(docs/architecture.md §2).

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from wvpclab.wire import (
    DHCP_CLIENT_PORT,
    DHCP_SERVER_PORT,
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    IPPROTO_UDP,
)

ROLE_GUEST = "guest"
ROLE_UPLINK = "uplink"
ROLE_HOST = "host"
ROLE_DHCP = "dhcp"
ROLE_STATION = "station"  # ap: the patch towards the PC's wireless adapter (its MAC)
ROLE_LAN = "lan"  # ap: towards the LAN switch
ROLES = (ROLE_GUEST, ROLE_UPLINK, ROLE_HOST, ROLE_DHCP, ROLE_STATION, ROLE_LAN)

KIND_INTERNAL = "internal"
KIND_FILTER = "filter"
KIND_WIRELESS = "wireless"  # the filter switch of an 802.11 host adapter (MAC translation)
KIND_AP = "ap"  # the access point between a wireless adapter and its LAN
KINDS = (KIND_INTERNAL, KIND_FILTER, KIND_WIRELESS, KIND_AP)

#: Roles each kind of switch accepts.
ROLES_BY_KIND: dict[str, tuple[str, ...]] = {
    KIND_FILTER: (ROLE_GUEST, ROLE_UPLINK, ROLE_HOST),
    KIND_INTERNAL: (ROLE_GUEST, ROLE_DHCP),
    KIND_WIRELESS: (ROLE_GUEST, ROLE_UPLINK, ROLE_HOST),
    KIND_AP: (ROLE_STATION, ROLE_LAN),
}
#: Roles that must carry a registered MAC.
ROLES_WITH_MAC = (ROLE_GUEST, ROLE_HOST, ROLE_DHCP, ROLE_STATION)
#: Roles of which a switch holds at most one port.
SINGLE_ROLES = (ROLE_UPLINK, ROLE_HOST, ROLE_DHCP, ROLE_STATION, ROLE_LAN)
#: How a learned IP -> guest entry of a wireless switch was learned.
LEARNED_HOW = ("arp", "dhcp")
#: At most this many learned IPs per guest port (the oldest is forgotten first): a guest
#: claiming addresses by the thousand cannot grow the flow table without bound.
MAX_LEARNED_PER_PORT = 16

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
PRIO_DHCP_METER = 550  # a spoofing-allowed guest's DHCP client messages: rate-limited, then on
#: What a guest that may send other source MACs may ask a DHCP server (its meter, in packets a
#: second and burst): enough for any real client, far too little to empty a pool in minutes.
DHCP_METER_RATE, DHCP_METER_BURST = 10, 20
PRIO_SPOOF_DROP = 100  # whatever a guarded guest sent that its admission flow did not take
# Table 1 (forwarding):
PRIO_DHCP_GUARD = 810  # DHCP server messages (UDP 67 ->) from a guest: dropped (DHCP guard)
PRIO_DHCP_STEER = 800  # guest DHCP client messages to the responder only
PRIO_KNOWN_UNICAST = 600  # destination is a registered MAC
PRIO_MULTICAST = 400  # group bit set (broadcast included)
PRIO_OTHER_UNICAST = 200  # any other destination
# Table 1 of a wireless switch (docs/architecture.md §2, wireless host adapters), besides the above:
PRIO_W_DHCP_SERVER = 820  # from the uplink, UDP 67 -> 68: to the controller (deliver by chaddr)
PRIO_W_LEARNED = 700  # from the uplink to the adapter's MAC, for a learned guest IP
PRIO_W_UPLINK_TO_GUEST = 650  # from the uplink to a guest's own MAC: dropped (not on the LAN)
PRIO_W_GUEST_CONTROLLER = 560  # a guest's ARP and DHCP client messages: to the controller
PRIO_W_GUEST_GROUP_IPV4 = 540  # a guest's IPv4 group frame: local ports, uplink translated
PRIO_W_GUEST_GROUP = 530  # a guest's other group frame: local ports only
PRIO_W_GUEST_IPV4 = 520  # a guest's IPv4 to another unicast MAC: uplink, translated
PRIO_W_GUEST_DROP = 510  # a guest's anything else towards the uplink: dropped
# Both tables:
PRIO_TABLE_MISS = 0  # the explicit drop at the bottom

RESERVED_GROUP = ("01:80:c2:00:00:00", "ff:ff:ff:ff:ff:f0")
MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
ETH_TYPE_IPV6 = 0x86DD

OFPP_MAX = 0xFFFFFF00  # highest number of a physical/logical OpenFlow 1.3 port
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# Canonical order of match fields in a Flow (also the order describe() prints them in).
_FIELD_ORDER = ("in_port", "eth_src", "eth_dst", "eth_type", "ip_proto", "udp_src", "udp_dst",
                "ipv4_dst", "arp_tpa")
#: Fields a flow may rewrite (OFPActionSetField keywords).
SET_FIELDS = ("eth_src", "eth_dst", "arp_sha", "arp_tha")


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


def normalize_ipv4(ip: str) -> str:
    """Return `ip` as a dotted-quad IPv4 address.

    Raises:
        ValueError: when `ip` is not an IPv4 address.
    """
    import ipaddress

    if not isinstance(ip, str):
        raise TypeError(f"IPv4 address must be a string, got {ip!r}")
    return str(ipaddress.IPv4Address(ip))


def learnable_ipv4(ip: str) -> bool:
    """Tell whether a guest may be reached at `ip` (a unicast address, not 0.0.0.0, loopback...)."""
    import ipaddress

    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    return not (addr.is_unspecified or addr.is_multicast or addr.is_loopback
                or addr == ipaddress.IPv4Address("255.255.255.255"))


@dataclass(frozen=True)
class Learned:
    """One entry of a wireless switch's IP -> guest table, learned from a guest's frames.

    Attributes:
        ip: The guest's IPv4 address (from ARP's sender address or a DHCPACK's yiaddr).
        port: The guest's port.
        mac: The guest's MAC (what frames for `ip` get as destination).
        how: ``arp`` or ``dhcp``.
    """

    ip: str
    port: int
    mac: str
    how: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "ip", normalize_ipv4(self.ip))
        object.__setattr__(self, "mac", normalize_mac(self.mac))
        if not learnable_ipv4(self.ip):
            raise ValueError(f"{self.ip} cannot be a guest's address")
        if self.how not in LEARNED_HOW:
            raise ValueError(f"learned how? {self.how!r} (one of {', '.join(LEARNED_HOW)})")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise TypeError(f"port must be an integer, got {self.port!r}")

    def as_dict(self) -> dict[str, object]:
        """The entry as JSON-ready data."""
        return {"ip": self.ip, "port": self.port, "mac": self.mac, "how": self.how}


def merge_learned(table: Iterable[Learned], new: Iterable[Learned]) -> tuple[Learned, ...]:
    """Return `table` with `new` entries added, oldest first.

    An entry for an IP already there replaces it (the latest claim wins; a guest that moved
    keeps being reachable) and becomes the newest; a port holding more than
    `MAX_LEARNED_PER_PORT` IPs forgets its oldest.
    """
    entries = list(table)
    for entry in new:
        same = [i for i, e in enumerate(entries)
                if (e.ip, e.port, e.mac) == (entry.ip, entry.port, entry.mac)]
        if same:  # known already: keep its place (and the flows), note how it was seen last
            entries[same[0]] = entry
            continue
        entries = [e for e in entries if e.ip != entry.ip] + [entry]
        mine = [e for e in entries if e.port == entry.port]
        while len(mine) > MAX_LEARNED_PER_PORT:
            oldest = mine.pop(0)
            entries.remove(oldest)
    return tuple(entries)


@dataclass(frozen=True)
class Switch:
    """A switch the lab registered: its datapath id, kind and ports.

    Attributes:
        dpid: The OpenFlow datapath id.
        kind: ``internal`` or ``filter``.
        ports: The registered ports (any order; numbers and MACs unique).
        dhcp_steering: Internal kind only: send guests' DHCP client messages to the ``dhcp`` port
            alone.
        dhcp_guard: Filter and wireless kinds: the adapter's LAN runs a DHCP server, so a
            guest's DHCP server messages (UDP from port 67) are dropped. An internal switch is
            guarded while it steers (its server is on).
        learned: Wireless kind only: the IP -> guest table learned from the guests' ARP and the
            server's DHCPACKs, oldest first. Entries of a port that is no longer a guest (or whose
            registered MAC changed, unless it may spoof) are forgotten.
    """

    dpid: int
    kind: str
    ports: tuple[Port, ...] = field(default=())
    dhcp_steering: bool = False
    learned: tuple[Learned, ...] = field(default=())
    dhcp_guard: bool = False

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
        if not isinstance(self.dhcp_guard, bool):
            raise TypeError(f"switch {self.dpid:#x}: dhcp_guard must be true or false")
        if self.dhcp_guard and self.kind not in (KIND_FILTER, KIND_WIRELESS):
            raise ValueError(f"switch {self.dpid:#x}: dhcp_guard applies to filter and wireless "
                             "switches (an internal switch is guarded while it steers)")
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
        learned = tuple(self.learned)
        for entry in learned:
            if not isinstance(entry, Learned):
                raise TypeError(f"switch {self.dpid:#x}: not a Learned entry: {entry!r}")
        if learned and self.kind != KIND_WIRELESS:
            raise ValueError(f"switch {self.dpid:#x}: only a wireless switch learns addresses")
        guests = {p.number: p for p in ports if p.role == ROLE_GUEST}

        def current(entry: Learned) -> bool:
            port = guests.get(entry.port)
            return port is not None and (port.allow_spoofing or port.mac == entry.mac)

        object.__setattr__(self, "learned", merge_learned((), filter(current, learned)))

    def port(self, number: int) -> Port | None:
        """Return the port with this number, or None."""
        for port in self.ports:
            if port.number == number:
                return port
        return None

    def with_port(self, port: Port) -> Switch:
        """Return a copy with `port` added, replacing any port of the same number."""
        others = tuple(p for p in self.ports if p.number != port.number)
        return replace(self, ports=others + (port,))

    def without_port(self, number: int) -> Switch:
        """Return a copy without the port of this number."""
        others = tuple(p for p in self.ports if p.number != number)
        return replace(self, ports=others)

    def with_steering(self, on: bool) -> Switch:
        """Return a copy with DHCP steering switched on or off."""
        return replace(self, dhcp_steering=on)

    def with_learned(self, entries: Iterable[Learned]) -> Switch:
        """Return a copy with `entries` merged into the learned table (see `merge_learned`)."""
        return replace(self, learned=merge_learned(self.learned, entries))

    def guest_by_mac(self, mac: str) -> Port | None:
        """Return the guest port registered with `mac`, or None."""
        for port in self.ports:
            if port.role == ROLE_GUEST and port.mac == mac:
                return port
        return None

    def role_port(self, role: str) -> Port | None:
        """Return the (single) port of `role`, or None."""
        for port in self.ports:
            if port.role == role:
                return port
        return None


@dataclass(frozen=True)
class Flow:
    """One flow entry of one table.

    A flow either acts on the frame (a copy to the controller, outputs, rewrites), or sends it on
    to a later table (``goto``), or does neither, which drops the frame. The actions run in this
    order: the copy to the controller (``to_controller``), the outputs of the frame as it came
    (``actions``), the rewrites (``set_fields``), the outputs of the rewritten frame
    (``set_outputs``). Every output skips the frame's in_port.

    Attributes:
        priority: OpenFlow priority (higher wins).
        match: ``(field, value)`` pairs named as OpenFlow 1.3 OXM fields / os-ken ``OFPMatch``
            keywords, in a canonical order; a masked field's value is ``(value, mask)``.
        actions: Output port numbers in order; a port equal to the frame's in_port is skipped
            (as a switch does). Empty (and no ``goto``) means drop.
        table: The table the entry lives in.
        goto: The table to continue in (a goto-table instruction), or None.
        set_fields: ``(field, value)`` rewrites (OXM set-field), applied after ``actions``.
        set_outputs: Output ports of the rewritten frame.
        to_controller: Send the frame to the controller (packet-in, whole frame) first.
        meter: The meter the frame passes first (it may drop it: a rate limit), or None.

    Raises:
        ValueError: when a flow has both actions and a goto, or a goto that does not lead to a
            later table, or rewrites without outputs (or the reverse).
    """

    priority: int
    match: tuple[tuple[str, object], ...]
    actions: tuple[int, ...]
    table: int = 0
    goto: int | None = None
    set_fields: tuple[tuple[str, object], ...] = ()
    set_outputs: tuple[int, ...] = ()
    to_controller: bool = False
    meter: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.table, bool) or not isinstance(self.table, int) \
                or not 0 <= self.table < 0xFF:
            raise ValueError(f"table must be an integer 0..254, got {self.table!r}")
        if bool(self.set_fields) != bool(self.set_outputs):
            raise ValueError("set_fields and set_outputs go together")
        for name, _ in self.set_fields:
            if name not in SET_FIELDS:
                raise ValueError(f"cannot rewrite {name!r} (one of {', '.join(SET_FIELDS)})")
        if self.goto is not None:
            if self.actions or self.set_outputs or self.to_controller:
                raise ValueError("a flow either outputs or goes to another table, not both")
            if isinstance(self.goto, bool) or not isinstance(self.goto, int) \
                    or not self.table < self.goto < 0xFF:
                raise ValueError(f"goto must name a later table than {self.table}, "
                                 f"got {self.goto!r}")

    @property
    def drops(self) -> bool:
        """True when the flow neither acts on the frame nor sends it on."""
        return (self.goto is None and not self.actions and not self.set_outputs
                and not self.to_controller)

    @property
    def key(self) -> tuple[int, int, tuple[tuple[str, object], ...]]:
        """What identifies the entry on a switch: table, priority and match (not instructions)."""
        return (self.table, self.priority, self.match)

    def match_dict(self) -> dict[str, object]:
        """Return the match as keyword arguments for os-ken's ``OFPMatch``."""
        return dict(self.match)


def make_flow(priority: int, actions: Iterable[int] = (), *, table: int = TABLE_ADMISSION,
              goto: int | None = None, set_fields: Mapping[str, object] | None = None,
              set_outputs: Iterable[int] = (), to_controller: bool = False,
              meter: int | None = None, **fields: object) -> Flow:
    """Build a `Flow`, putting the match fields in canonical order.

    Args:
        priority: OpenFlow priority.
        actions: Output ports; nothing (and no `goto`) means drop.
        table: The table the flow goes into.
        goto: The table matching frames continue in (instead of outputs).
        set_fields: Rewrites applied after `actions` (in `SET_FIELDS` order).
        set_outputs: Outputs of the rewritten frame.
        to_controller: Send the frame to the controller first.
        meter: A meter (rate limit) the frame passes before anything else.
        **fields: Match fields (``in_port``, ``eth_src``, ``eth_dst``...).

    Raises:
        ValueError: for a field this module does not know, or outputs together with a goto.
    """
    unknown = set(fields) - set(_FIELD_ORDER)
    if unknown:
        raise ValueError(f"unknown match field(s): {', '.join(sorted(unknown))}")
    match = tuple((name, fields[name]) for name in _FIELD_ORDER if name in fields)
    sets = dict(set_fields or {})
    unknown = set(sets) - set(SET_FIELDS)
    if unknown:
        raise ValueError(f"cannot rewrite: {', '.join(sorted(unknown))}")
    rewrites = tuple((name, sets[name]) for name in SET_FIELDS if name in sets)
    return Flow(priority, match, tuple(actions), table, goto, rewrites, tuple(set_outputs),
                to_controller, meter)


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


def _port_flows(switch: Switch) -> set[Flow]:
    """What every controlled switch has per port: admission (by port, and by registered source MAC
    for a guarded guest) and the spoof-guard drop in table 0, and in table 1 known unicast to a
    registered MAC, which is the same from any source."""
    flows = set()
    metered = _serves_dhcp(switch)
    for port in switch.ports:
        flows.add(make_flow(PRIO_ADMIT, table=TABLE_ADMISSION, goto=TABLE_FORWARDING,
                            **_source_match(port)))
        if metered and port.role == ROLE_GUEST and port.allow_spoofing:
            # it can ask for any number of hardware addresses: its requests pass a meter
            flows.add(make_flow(PRIO_DHCP_METER, table=TABLE_ADMISSION, goto=TABLE_FORWARDING,
                                meter=port.number, in_port=port.number, eth_type=ETH_TYPE_IPV4,
                                ip_proto=IPPROTO_UDP, udp_dst=DHCP_SERVER_PORT))
        if port.guarded:
            flows.add(make_flow(PRIO_SPOOF_DROP, (), table=TABLE_ADMISSION, in_port=port.number))
        if port.mac is not None and port.role in ROLES_WITH_MAC:
            flows.add(make_flow(PRIO_KNOWN_UNICAST, (port.number,), table=TABLE_FORWARDING,
                                eth_dst=port.mac))
    return flows


def _serves_dhcp(switch: Switch) -> bool:
    """Whether the network behind `switch` has the lab's (or its LAN's) DHCP server on."""
    if switch.kind == KIND_INTERNAL:
        return switch.dhcp_steering and switch.role_port(ROLE_DHCP) is not None
    return switch.dhcp_guard


def meters_of(flows: Iterable[Flow]) -> frozenset[int]:
    """The meters `flows` use (each a DHCP rate limit, see DHCP_METER_RATE)."""
    return frozenset(f.meter for f in flows if f.meter is not None)


def flows_for(switch: Switch) -> frozenset[Flow]:
    """Return every flow `switch` should have, in both tables.

    The rules look at MACs only (any ethertype passes alike), except DHCP steering. Table 0 admits
    each registered port's frames (a guarded guest's only with its registered source MAC) to
    table 1 and drops the rest. In table 1 a frame to a registered MAC goes to that port only
    (dropped if it is the source itself: a switch never outputs to the in_port); a group frame goes
    to every port but the source; any other unicast goes to the uplink (filter; dropped when it
    came from the uplink) or to the spoofing-allowed ports (internal). The set grows linearly with
    the ports: at most five flows per port plus a constant.

    Args:
        switch: The registered switch.

    Returns:
        The complete flow set, including the 802.1D drop and both tables' lowest-priority drops.
    """
    if switch.kind == KIND_AP:
        return _ap_flows(switch)
    if switch.kind == KIND_WIRELESS:
        return _wireless_flows(switch)
    flows = set(baseline_flows())
    dhcp = switch.role_port(ROLE_DHCP)
    steering = switch.kind == KIND_INTERNAL and switch.dhcp_steering and dhcp is not None
    fwd = TABLE_FORWARDING
    flows |= _port_flows(switch)
    for port in switch.ports:
        # Table 1: DHCP steering and guard (per guest): while the network's server is on, a guest's
        # client messages reach it alone, and a guest cannot answer as a server (a rogue OFFER/ACK)
        if steering and port.role == ROLE_GUEST:
            flows.add(make_flow(PRIO_DHCP_STEER, (dhcp.number,), table=fwd, in_port=port.number,
                                eth_type=ETH_TYPE_IPV4, ip_proto=IPPROTO_UDP,
                                udp_dst=DHCP_SERVER_PORT))
            flows.add(_dhcp_guard(port))
        if switch.dhcp_guard and port.role == ROLE_GUEST:
            flows.add(_dhcp_guard(port))
    if switch.ports:
        every = tuple(p.number for p in switch.ports)
        flows.add(make_flow(PRIO_MULTICAST, every, table=fwd, eth_dst=MULTICAST))
    other = _other_unicast_outputs(switch)
    if other:  # otherwise the table miss drops it
        flows.add(make_flow(PRIO_OTHER_UNICAST, other, table=fwd))
    return frozenset(flows)


def _dhcp_guard(port: Port) -> Flow:
    """A guest's DHCP server messages (UDP from port 67, a rogue OFFER/ACK): dropped."""
    return make_flow(PRIO_DHCP_GUARD, (), table=TABLE_FORWARDING, in_port=port.number,
                     eth_type=ETH_TYPE_IPV4, ip_proto=IPPROTO_UDP, udp_src=DHCP_SERVER_PORT)


def _ap_flows(switch: Switch) -> frozenset[Flow]:
    """The access point: the station's own frames to the LAN, the LAN's for the station back.

    Table 0 admits the station port's frames only with the station's MAC as source (an 802.11
    AP accepts nothing else from an associated station) and the LAN port's frames. Table 1 sends
    frames for the station's MAC or a group address to the station, and whatever the station sent
    to the LAN; any other unicast from the LAN is dropped (the output would be its in_port).
    """
    flows = set(baseline_flows())
    fwd = TABLE_FORWARDING
    station = switch.role_port(ROLE_STATION)
    lan = switch.role_port(ROLE_LAN)
    if station is not None:
        flows.add(make_flow(PRIO_ADMIT, goto=fwd, in_port=station.number, eth_src=station.mac))
        flows.add(make_flow(PRIO_SPOOF_DROP, (), in_port=station.number))
        flows.add(make_flow(PRIO_KNOWN_UNICAST, (station.number,), table=fwd,
                            eth_dst=station.mac))
    if lan is not None:
        flows.add(make_flow(PRIO_ADMIT, goto=fwd, in_port=lan.number))
        flows.add(make_flow(PRIO_OTHER_UNICAST, (lan.number,), table=fwd))
    if switch.ports:
        flows.add(make_flow(PRIO_MULTICAST, tuple(p.number for p in switch.ports), table=fwd,
                            eth_dst=MULTICAST))
    return frozenset(flows)


def _wireless_flows(switch: Switch) -> frozenset[Flow]:
    """The filter switch of a wireless adapter: the wired rules plus MAC translation.

    Between guests and the host stack, and from the host stack anywhere, it is the wired filter
    (same admission, known unicast, group and other-unicast flows). A guest's frames towards the
    uplink differ: IPv4 leaves with the adapter's MAC as source; ARP and DHCP client messages go
    to the controller (it learns the guest's IP, rewrites and sends them on); IPv6 and other
    ethertypes do not leave (a group frame still reaches the host stack and the other guests).
    IPv6 is refused rather than translated: neighbour discovery carries link-layer addresses in
    ICMPv6 options under a checksum, guests pick their own addresses (SLAAC, privacy addresses)
    that no ARP or DHCP exchange reveals, and duplicate address detection would see the adapter's
    MAC answer for every guest; half-translated ND would be worse than none.
    From the uplink: DHCP server messages go to the controller (delivered by chaddr, DHCPACKs
    learned), frames for the adapter's MAC carrying a learned guest IP (IPv4 destination, ARP
    target) go to that guest with its MAC put back, frames for a guest's own MAC are dropped (no
    such station on the LAN), the rest as on the wired filter.
    """
    flows = set(baseline_flows())
    fwd = TABLE_FORWARDING
    uplink = switch.role_port(ROLE_UPLINK)
    host = switch.role_port(ROLE_HOST)
    guests = [p for p in switch.ports if p.role == ROLE_GUEST]
    adapter = host.mac if host is not None else None
    local = tuple(p.number for p in switch.ports if p.role != ROLE_UPLINK)  # host and guests
    flows |= _port_flows(switch)
    for guest in guests:
        g = guest.number
        flows.add(make_flow(PRIO_W_GUEST_CONTROLLER, to_controller=True, table=fwd, in_port=g,
                            eth_type=ETH_TYPE_ARP))
        flows.add(make_flow(PRIO_W_GUEST_CONTROLLER, to_controller=True, table=fwd, in_port=g,
                            eth_type=ETH_TYPE_IPV4, ip_proto=IPPROTO_UDP,
                            udp_dst=DHCP_SERVER_PORT))
        translate = uplink is not None and adapter is not None
        flows.add(make_flow(PRIO_W_GUEST_GROUP_IPV4, local, table=fwd,
                            set_fields={"eth_src": adapter} if translate else None,
                            set_outputs=(uplink.number,) if translate else (),
                            in_port=g, eth_dst=MULTICAST, eth_type=ETH_TYPE_IPV4))
        flows.add(make_flow(PRIO_W_GUEST_GROUP, local, table=fwd, in_port=g, eth_dst=MULTICAST))
        if translate:
            flows.add(make_flow(PRIO_W_GUEST_IPV4, (), table=fwd,
                                set_fields={"eth_src": adapter}, set_outputs=(uplink.number,),
                                in_port=g, eth_type=ETH_TYPE_IPV4))
        flows.add(make_flow(PRIO_W_GUEST_DROP, (), table=fwd, in_port=g))
        if switch.dhcp_guard:
            flows.add(_dhcp_guard(guest))
        if uplink is not None:
            flows.add(make_flow(PRIO_W_UPLINK_TO_GUEST, (), table=fwd, in_port=uplink.number,
                                eth_dst=guest.mac))
    if uplink is not None:
        u = uplink.number
        flows.add(make_flow(PRIO_W_DHCP_SERVER, to_controller=True, table=fwd, in_port=u,
                            eth_type=ETH_TYPE_IPV4, ip_proto=IPPROTO_UDP,
                            udp_src=DHCP_SERVER_PORT, udp_dst=DHCP_CLIENT_PORT))
        if adapter is not None:
            for entry in switch.learned:
                flows.add(make_flow(PRIO_W_LEARNED, (), table=fwd,
                                    set_fields={"eth_dst": entry.mac},
                                    set_outputs=(entry.port,), in_port=u, eth_dst=adapter,
                                    eth_type=ETH_TYPE_IPV4, ipv4_dst=entry.ip))
                flows.add(make_flow(PRIO_W_LEARNED, (), table=fwd,
                                    set_fields={"eth_dst": entry.mac, "arp_tha": entry.mac},
                                    set_outputs=(entry.port,), in_port=u, eth_dst=adapter,
                                    eth_type=ETH_TYPE_ARP, arp_tpa=entry.ip))
        flows.add(make_flow(PRIO_OTHER_UNICAST, (u,), table=fwd))
    if switch.ports:
        flows.add(make_flow(PRIO_MULTICAST, tuple(p.number for p in switch.ports), table=fwd,
                            eth_dst=MULTICAST))
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
            flow.actions, -1 if flow.goto is None else flow.goto,
            [(n, str(v)) for n, v in flow.set_fields], flow.set_outputs, flow.to_controller)


def _action_text(flow: Flow, port: Callable[[int], str]) -> str:
    """The actions of a non-goto flow, e.g. ``output:2,3,set_field:eth_src=...,output:1``."""
    parts = []
    if flow.to_controller:
        parts.append("CONTROLLER")
    if flow.actions:
        parts.append("output:" + ",".join(port(p) for p in flow.actions))
    for name, value in flow.set_fields:
        parts.append(f"set_field:{name}={value}")
    if flow.set_outputs:
        parts.append("output:" + ",".join(port(p) for p in flow.set_outputs))
    return ",".join(parts) if parts else "drop"


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
            meter = f"meter:{flow.meter}," if flow.meter is not None else ""
            parts.append(f"actions={meter}goto_table:{flow.goto}")
        else:
            parts.append("actions=" + _action_text(flow, port))
        lines.append(" ".join(parts))
    return lines


def explain(flows: Iterable[Flow], labels: Mapping[int, str],
            learned: Iterable[Learned] = ()) -> list[str]:
    """The flows in words, for people, from the same flow set that goes on the switch.

    Args:
        flows: Usually ``flows_for(switch)``.
        labels: A name for every port number, e.g.
            ``{1: "host stack (pc eth0)", 2: "guest xp/eth1"}``.
        learned: A wireless switch's learned table, told after the flows (one line an entry).

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
            elif flow.meter is not None:
                lines.append(f"DHCP client messages from {name(m['in_port'])} (it may send any "
                             f"source MAC): at most {DHCP_METER_RATE} a second (bursts of "
                             f"{DHCP_METER_BURST}), the rest dropped")
            elif flow.goto is not None:
                lines.append(f"from {name(m['in_port'])}{src}: admitted")
            elif "in_port" in m:
                lines.append(f"from {name(m['in_port'])}, any other source MAC: dropped "
                             "(spoof guard)")
            else:
                lines.append("anything else entering: dropped")
            continue
        rewritten = ""
        if flow.set_fields:
            sets = ", ".join(f"{n} {v}" for n, v in flow.set_fields)
            rewritten = f"{outputs(flow.set_outputs)} with {sets}"
        if flow.priority == PRIO_W_DHCP_SERVER:
            lines.append(f"DHCP server messages from {name(m['in_port'])}: to the controller, "
                         "which delivers each to the guest named by its chaddr (and learns a "
                         "DHCPACK's address)")
        elif flow.priority == PRIO_W_LEARNED:
            what = (f"IPv4 to {m['ipv4_dst']}" if "ipv4_dst" in m
                    else f"ARP for {m['arp_tpa']}")
            lines.append(f"from {name(m['in_port'])} to {m['eth_dst']}, {what} (learned): "
                         f"{rewritten} only")
        elif flow.priority == PRIO_W_UPLINK_TO_GUEST:
            lines.append(f"from {name(m['in_port'])} to guest MAC {m['eth_dst']}: dropped "
                         "(a guest's own MAC is not on the wireless LAN)")
        elif flow.priority == PRIO_W_GUEST_CONTROLLER:
            what = "ARP" if m.get("eth_type") == ETH_TYPE_ARP else "DHCP client messages"
            lines.append(f"{what} from {name(m['in_port'])} (not to a registered MAC): to the "
                         "controller, which learns the guest's address and sends it on, "
                         "translated to the uplink")
        elif flow.priority == PRIO_W_GUEST_GROUP_IPV4:
            text = f"IPv4 broadcast and multicast from {name(m['in_port'])}: " \
                   f"{outputs(flow.actions)} as sent"
            if rewritten:
                text += f", {rewritten}"
            lines.append(text)
        elif flow.priority == PRIO_W_GUEST_GROUP:
            lines.append(f"other broadcast and multicast from {name(m['in_port'])}: "
                         f"{outputs(flow.actions)} only (IPv6 and non-IP never leave a wireless "
                         "adapter)")
        elif flow.priority == PRIO_W_GUEST_IPV4:
            lines.append(f"IPv4 from {name(m['in_port'])} to any other unicast: {rewritten}")
        elif flow.priority == PRIO_W_GUEST_DROP:
            lines.append(f"anything else from {name(m['in_port'])} towards the uplink: dropped "
                         "(IPv6 and non-IP cannot be translated)")
        elif flow.priority == PRIO_DHCP_GUARD:
            lines.append(f"DHCP server messages from {name(m['in_port'])}: dropped (DHCP guard: "
                         "the network has its own server)")
        elif flow.priority == PRIO_DHCP_STEER:
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
    for entry in learned:
        lines.append(f"learned: {entry.ip} is {labels.get(entry.port, f'port {entry.port}')} "
                     f"({entry.mac}), from its {entry.how.upper()}")
    return lines
