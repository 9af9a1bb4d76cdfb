"""What the controller does with a wireless switch's packet-ins: pure, no os-ken
(docs/architecture.md §2).

`packet_in()` takes the switch description, its learned table, the port a frame came in on and
the frame's bytes, and returns the frames to send (port, bytes) and the IP -> guest entries to
learn. Only ARP and DHCP come here (the flows send nothing else); anything malformed or
unexpected is dropped with a reason, never raised.

- ARP from a guest: learn ``arp_spa`` -> (guest port, source MAC); to the uplink with the source
  MAC and ``arp_sha`` rewritten to the adapter's; if it was a group frame, also unchanged to the
  host stack and the other guests; to a registered MAC: unchanged to that port only.
- DHCP client message from a guest (UDP to 67): BOOTP broadcast flag set (so the server's answer
  is a broadcast the access point passes, not a unicast to the guest's MAC, which is not on the
  LAN), UDP checksum recomputed, source MAC the adapter's, to the uplink; group: also unchanged
  to the host stack and the other guests.
- DHCP server message from the uplink (UDP 67 -> 68), for the adapter's MAC or a group address:
  to the guest whose MAC is the BOOTP chaddr, with that MAC as destination; a DHCPACK teaches
  ``yiaddr`` -> that guest. When chaddr is no guest's, delivered as the wired rules say (host
  stack for the adapter's MAC; host stack and every guest for a group address).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controllers.flowrules import (
    KIND_WIRELESS,
    ROLE_GUEST,
    ROLE_HOST,
    ROLE_UPLINK,
    Learned,
    Switch,
    is_group_mac,
    learnable_ipv4,
)
from wvpclab import wire
from wvpclab.wire import DHCP_CLIENT_PORT, DHCP_SERVER_PORT


@dataclass(frozen=True)
class Decision:
    """What to do with one packet-in.

    Attributes:
        packets: ``(port, frame bytes)`` to send, in order.
        learned: Entries to add to the switch's learned table.
        reason: A short note for the log.
    """

    packets: tuple[tuple[int, bytes], ...] = ()
    learned: tuple[Learned, ...] = ()
    reason: str = ""


def _drop(reason: str) -> Decision:
    return Decision((), (), f"dropped: {reason}")


def _local_ports(switch: Switch, exclude: int) -> list[int]:
    """The host stack and every guest, but `exclude`."""
    return [p.number for p in switch.ports
            if p.role in (ROLE_HOST, ROLE_GUEST) and p.number != exclude]


def _registered(switch: Switch, mac: str) -> int | None:
    for port in switch.ports:
        if port.role in (ROLE_HOST, ROLE_GUEST) and port.mac == mac:
            return port.number
    return None


def packet_in(switch: Switch, learned: Iterable[Learned], in_port: int, frame: bytes) -> Decision:
    """Decide what a wireless switch's packet-in becomes.

    Args:
        switch: The registered switch (kind ``wireless``).
        learned: Its learned IP -> guest table.
        in_port: The port the frame entered on.
        frame: The whole Ethernet frame.

    Returns:
        The frames to send and the entries to learn (nothing, when the frame is dropped).
    """
    try:
        return _decide(switch, tuple(learned), in_port, bytes(frame))
    except Exception as exc:  # noqa: BLE001 - a bug must not kill the controller: drop the frame
        return _drop(f"internal error {exc!r}")


def _decide(switch: Switch, learned: tuple[Learned, ...], in_port: int, frame: bytes) -> Decision:
    if switch.kind != KIND_WIRELESS:
        return _drop(f"a {switch.kind} switch sends no packet-ins")
    port = switch.port(in_port)
    if port is None:
        return _drop(f"port {in_port} is not registered")
    try:
        eth = wire.parse_ethernet(frame)
    except wire.Malformed as exc:
        return _drop(f"not an Ethernet frame ({exc})")
    if port.guarded and eth.src != port.mac:
        return _drop("spoofed source MAC")
    if eth.dst.startswith("01:80:c2:00:00:0"):
        return _drop("802.1D reserved group")
    host = switch.role_port(ROLE_HOST)
    uplink = switch.role_port(ROLE_UPLINK)
    adapter = host.mac if host is not None else None
    if port.role == ROLE_GUEST:
        if eth.ethertype == wire.ETH_TYPE_ARP:
            return _guest_arp(switch, port.number, eth, frame, adapter, uplink)
        if eth.ethertype == wire.ETH_TYPE_IPV4:
            return _guest_dhcp(switch, port.number, eth, frame, adapter, uplink)
        return _drop(f"ethertype {eth.ethertype:#06x} from a guest is not translated")
    if port.role == ROLE_UPLINK:
        if eth.ethertype == wire.ETH_TYPE_IPV4:
            return _server_dhcp(switch, port.number, eth, frame, adapter)
        return _drop(f"ethertype {eth.ethertype:#06x} from the uplink is not ours")
    return _drop(f"no packet-in expected from a {port.role} port")


def _guest_outputs(switch: Switch, in_port: int, eth: wire.Ethernet, frame: bytes,
                   translated: bytes | None, uplink_port: int | None) -> list[tuple[int, bytes]]:
    """Where a guest's frame (ARP or DHCP) goes: by destination, translated to the uplink."""
    owner = _registered(switch, eth.dst)
    if owner is not None:  # to the host stack or a guest: as on the wired filter
        return [] if owner == in_port else [(owner, frame)]
    out: list[tuple[int, bytes]] = []
    if is_group_mac(eth.dst):
        out += [(p, frame) for p in _local_ports(switch, in_port)]
    if translated is not None and uplink_port is not None:
        out.append((uplink_port, translated))
    return out


def _guest_arp(switch: Switch, in_port: int, eth: wire.Ethernet, frame: bytes,
               adapter: str | None, uplink) -> Decision:
    try:
        arp = wire.parse_arp(eth.payload)
    except wire.Malformed as exc:
        return _drop(f"malformed ARP ({exc})")
    learn: tuple[Learned, ...] = ()
    if learnable_ipv4(arp.spa) and not is_group_mac(eth.src):
        learn = (Learned(arp.spa, in_port, eth.src, "arp"),)
    translated = None
    if adapter is not None:
        translated = wire.set_arp(wire.set_eth(frame, src=adapter), sha=adapter)
    out = _guest_outputs(switch, in_port, eth, frame, translated,
                         uplink.number if uplink is not None else None)
    return Decision(tuple(out), learn, f"guest ARP op {arp.op} {arp.spa} -> {arp.tpa}")


def _dhcp_message(eth: wire.Ethernet,
                  from_client: bool) -> tuple[wire.IPv4Datagram, wire.Udp, wire.Bootp] | Decision:
    """A DHCP message's IPv4, UDP and BOOTP parts, read whole, or the Decision to drop it: a
    client's must go to port 67 and be a request, a server's from 67 to 68 and be a reply."""
    side = "client" if from_client else "server"
    try:
        ip = wire.parse_ipv4(eth.payload)
        udp = wire.parse_udp(ip)
    except wire.Malformed as exc:
        return _drop(f"not a whole DHCP {side} message ({exc})")
    if from_client and udp.dport != DHCP_SERVER_PORT:
        return _drop("not a whole DHCP client message (not to port 67)")
    if not from_client and (udp.sport, udp.dport) != (DHCP_SERVER_PORT, DHCP_CLIENT_PORT):
        return _drop("not a whole DHCP server message (not from port 67 to 68)")
    # no checksum check: a frame from a veth may carry one left to offload (see with_udp_checksum)
    what, op = ("request", wire.BOOTREQUEST) if from_client else ("reply", wire.BOOTREPLY)
    try:
        bootp = wire.parse_bootp(udp.payload)
    except wire.Malformed as exc:
        return _drop(f"malformed BOOTP {what} ({exc})")
    if bootp.op != op:
        return _drop(f"malformed BOOTP {what} (not a {what})")
    return ip, udp, bootp


def _guest_dhcp(switch: Switch, in_port: int, eth: wire.Ethernet, frame: bytes,
                adapter: str | None, uplink) -> Decision:
    parts = _dhcp_message(eth, from_client=True)
    if isinstance(parts, Decision):
        return parts
    ip, udp, bootp = parts
    frame = wire.with_udp_checksum(frame, ip, udp)
    translated = None
    if adapter is not None:
        translated = wire.set_eth(wire.set_bootp_broadcast(frame, ip, udp), src=adapter)
    out = _guest_outputs(switch, in_port, eth, frame, translated,
                         uplink.number if uplink is not None else None)
    return Decision(tuple(out), (), f"guest DHCP type {bootp.message_type}")


def _server_dhcp(switch: Switch, in_port: int, eth: wire.Ethernet, frame: bytes,
                 adapter: str | None) -> Decision:
    group = is_group_mac(eth.dst)
    if not group and eth.dst != adapter:
        return _drop(f"DHCP from the uplink for {eth.dst}, not the adapter")
    parts = _dhcp_message(eth, from_client=False)
    if isinstance(parts, Decision):
        return parts
    ip, udp, bootp = parts
    frame = wire.with_udp_checksum(frame, ip, udp)
    client = bootp.mac
    guest = switch.guest_by_mac(client) if client else None
    if guest is None:  # the host stack's own DHCP (or a stranger's): the wired rules
        if group:
            targets = _local_ports(switch, in_port)
        else:
            host = switch.role_port(ROLE_HOST)
            targets = [host.number] if host is not None else []
        return Decision(tuple((p, frame) for p in targets), (),
                        f"DHCP for {client}: not a guest's")
    learn: tuple[Learned, ...] = ()
    yiaddr = wire.ip_text(bootp.yiaddr)
    if bootp.message_type == wire.MessageType.ACK and learnable_ipv4(yiaddr):
        learn = (Learned(yiaddr, guest.number, guest.mac, "dhcp"),)
    out = wire.set_eth(frame, dst=guest.mac)
    return Decision(((guest.number, out),), learn,
                    f"DHCP type {bootp.message_type} for guest port {guest.number}")
