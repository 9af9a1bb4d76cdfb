"""A tiny model of an OpenFlow 1.3 pipeline, for checking flow sets without a switch.

`FakeFlowTable.outputs()` answers: given an in_port and a frame, where does it end up? Matching
starts in table 0 and follows goto-table instructions; in each table the highest-priority match
wins and a miss drops. As on a real switch, output to the port the frame came in on is skipped.
`FakeFlowTable.deliveries()` also gives the frame as it leaves each port (set-field actions
applied); a copy to the controller shows as port `CONTROLLER`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from controllers.flowrules import Flow, normalize_mac

#: The pseudo-port a packet-in goes to (OFPP_CONTROLLER).
CONTROLLER = 0xFFFFFFFD

_MAC_FIELDS = ("eth_src", "eth_dst", "arp_sha", "arp_tha")
# OXM prerequisites (OpenFlow 1.3 §7.2.3.8): a field may only be matched when these hold too.
_PREREQUISITES: dict[str, tuple[str, tuple[object, ...]]] = {
    "ip_proto": ("eth_type", (0x0800, 0x86DD)),
    "udp_dst": ("ip_proto", (17,)),
    "udp_src": ("ip_proto", (17,)),
    "tcp_dst": ("ip_proto", (6,)),
    "tcp_src": ("ip_proto", (6,)),
    "ipv4_dst": ("eth_type", (0x0800,)),
    "ipv4_src": ("eth_type", (0x0800,)),
    "arp_tpa": ("eth_type", (0x0806,)),
    "arp_spa": ("eth_type", (0x0806,)),
    "arp_sha": ("eth_type", (0x0806,)),
    "arp_tha": ("eth_type", (0x0806,)),
}


class AmbiguousMatch(AssertionError):
    """Two flows of the same priority match one frame and disagree on what to do."""


@dataclass(frozen=True)
class Frame:
    """The header fields of a frame entering a switch (None: the frame has no such field)."""

    in_port: int
    eth_src: str
    eth_dst: str
    eth_type: int = 0x0800
    ip_proto: int | None = None
    udp_dst: int | None = None
    udp_src: int | None = None
    ipv4_dst: str | None = None
    arp_tpa: str | None = None
    arp_sha: str | None = None
    arp_tha: str | None = None

    def value(self, name: str) -> object:
        """Return the frame's value for match field `name`."""
        return getattr(self, name, None)

    def rewritten(self, set_fields: Iterable[tuple[str, object]]) -> Frame:
        """Return the frame with set-field actions applied.

        Raises:
            ValueError: when a field is set that the frame does not have (OpenFlow refuses a
                set-field without its prerequisite; the flows must not try).
        """
        changes = {}
        for name, value in set_fields:
            if self.value(name) is None:
                raise ValueError(f"set_field {name} on a frame without it: {self}")
            changes[name] = value
        return dataclasses.replace(self, **changes)


def frame_from_bytes(in_port: int, data: bytes) -> Frame:
    """Build the `Frame` of a raw Ethernet frame (the fields the flows match on and rewrite)."""
    from wvpclab import wire

    try:
        eth = wire.parse_ethernet(data)
    except wire.Malformed:
        raise ValueError("not an Ethernet frame") from None
    fields: dict[str, object] = {}
    try:  # the fields of the headers that are whole (a flow matching on another never matches)
        if eth.ethertype == wire.ETH_TYPE_ARP:
            arp = wire.parse_arp(eth.payload)
            fields.update(arp_tpa=arp.tpa, arp_sha=arp.sha, arp_tha=arp.tha)
        elif eth.ethertype == wire.ETH_TYPE_IPV4:
            ip = wire.parse_ipv4(eth.payload)
            fields.update(ip_proto=ip.proto, ipv4_dst=ip.dst)
            udp = wire.parse_udp(ip)
            fields.update(udp_src=udp.sport, udp_dst=udp.dport)
    except wire.Malformed:
        pass
    return Frame(in_port, eth.src, eth.dst, eth.ethertype, **fields)


def _mac_int(mac: str) -> int:
    return int(normalize_mac(mac).replace(":", ""), 16)


def _field_matches(name: str, wanted: object, have: object) -> bool:
    if have is None:
        return False
    if name in _MAC_FIELDS:
        if isinstance(wanted, tuple):
            value, mask = (_mac_int(x) for x in wanted)
            return _mac_int(have) & mask == value & mask
        return _mac_int(have) == _mac_int(wanted)
    return have == wanted


def _what(flow: Flow) -> tuple:
    return (flow.actions, flow.goto, flow.set_fields, flow.set_outputs, flow.to_controller)


class FakeFlowTable:
    """The flow tables of one switch: highest priority match wins, a miss drops.

    Args:
        flows: The flows, of any tables (each `Flow` names its own).

    Raises:
        ValueError: when a flow matches a field without its OXM prerequisite, or goes to a table
            that is not later than its own (a real switch would refuse either).
    """

    def __init__(self, flows: Iterable[Flow]) -> None:
        self.flows = tuple(flows)
        for flow in self.flows:
            fields = flow.match_dict()
            for name, (needed, values) in _PREREQUISITES.items():
                if name in fields and fields.get(needed) not in values:
                    raise ValueError(f"flow {flow} matches {name} without {needed} in {values}")
            for name, _ in flow.set_fields:
                if name in _PREREQUISITES:
                    needed, values = _PREREQUISITES[name]
                    if fields.get(needed) not in values:
                        raise ValueError(f"flow {flow} sets {name} without {needed} in {values}")
            if flow.goto is not None and flow.goto <= flow.table:
                raise ValueError(f"flow {flow} goes back to table {flow.goto}")

    def winner(self, frame: Frame, table: int = 0) -> Flow | None:
        """Return the flow of `table` that takes `frame`, or None on a table miss.

        Raises:
            AmbiguousMatch: when several flows of the top priority match and disagree on what to
                do with the frame.
        """
        hits = [f for f in self.flows if f.table == table
                and all(_field_matches(n, v, frame.value(n)) for n, v in f.match)]
        if not hits:
            return None
        top = max(f.priority for f in hits)
        best = [f for f in hits if f.priority == top]
        if len({_what(f) for f in best}) > 1:
            raise AmbiguousMatch(f"{frame}: flows overlap in table {table} at priority {top}: "
                                 f"{best}")
        return best[0]

    def trace(self, frame: Frame) -> list[Flow]:
        """Return the flows `frame` goes through, table by table (ends early on a miss)."""
        path: list[Flow] = []
        table = 0
        while True:
            flow = self.winner(frame, table)
            if flow is None:
                return path
            path.append(flow)
            if flow.goto is None:
                return path
            table = flow.goto

    def deliver(self, frame: Frame) -> list[tuple[int, Frame]]:
        """Return ``(port, frame as sent)`` for every copy of `frame` the switch sends out."""
        path = self.trace(frame)
        if not path or path[-1].goto is not None:
            return []
        flow = path[-1]
        out: list[tuple[int, Frame]] = []
        if flow.to_controller:
            out.append((CONTROLLER, frame))
        out += [(port, frame) for port in flow.actions if port != frame.in_port]
        if flow.set_fields:
            changed = frame.rewritten(flow.set_fields)
            out += [(port, changed) for port in flow.set_outputs if port != frame.in_port]
        return out

    def deliveries(self, in_port: int, eth_src: str, eth_dst: str, eth_type: int = 0x0800,
                   **fields: object) -> list[tuple[int, Frame]]:
        """`deliver()` for a frame given by its fields."""
        return self.deliver(Frame(in_port, eth_src, eth_dst, eth_type, **fields))

    def outputs(self, in_port: int, eth_src: str, eth_dst: str, eth_type: int = 0x0800,
                ip_proto: int | None = None, udp_dst: int | None = None,
                **fields: object) -> tuple[int, ...]:
        """Return the ports a frame is sent to (empty: dropped; `CONTROLLER` for a packet-in).

        Args:
            in_port: The port the frame enters on.
            eth_src: Source MAC.
            eth_dst: Destination MAC.
            eth_type: Ethertype (IPv4 unless told).
            ip_proto: IP protocol number, for IP frames.
            udp_dst: UDP destination port, for UDP frames.
            **fields: Other `Frame` fields (``udp_src``, ``ipv4_dst``, ``arp_tpa``...).
        """
        frame = Frame(in_port, eth_src, eth_dst, eth_type, ip_proto, udp_dst, **fields)
        return tuple(port for port, _ in self.deliver(frame))
