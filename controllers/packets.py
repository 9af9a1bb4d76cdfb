"""Just enough frame parsing and rewriting for the wireless controller: Ethernet, ARP, IPv4, UDP,
BOOTP/DHCP. Plain `struct`; every parser returns None for anything malformed or unsupported
(VLAN tags, IP fragments, truncated headers), never raises on bad input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

ETH_HEADER = 14
ETH_TYPE_IPV4, ETH_TYPE_ARP = 0x0800, 0x0806
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # 28 bytes
_IPV4 = struct.Struct("!BBHHHBBH4s4s")  # 20 bytes
_UDP = struct.Struct("!HHHH")
_BOOTP = struct.Struct("!BBBBIHH4s4s4s4s16s")  # op..chaddr: 44 bytes; then sname, file, cookie
BOOTP_FIXED = 236
BOOTP_FLAGS_OFFSET = 10  # within the BOOTP message
BOOTP_BROADCAST = 0x8000
DHCP_COOKIE = b"\x63\x82\x53\x63"
DHCPACK = 5


def mac_text(raw: bytes) -> str:
    return raw.hex(":")


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def ip_text(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


@dataclass(frozen=True)
class Ethernet:
    dst: str
    src: str
    ethertype: int
    payload: bytes


@dataclass(frozen=True)
class Arp:
    op: int
    sha: str
    spa: str
    tha: str
    tpa: str


@dataclass(frozen=True)
class IPv4:
    header_len: int
    proto: int
    src: str
    dst: str
    data: bytes  # the IP payload, cut to the total length (Ethernet padding removed)
    raw_src: bytes
    raw_dst: bytes


@dataclass(frozen=True)
class Udp:
    sport: int
    dport: int
    length: int
    checksum: int


@dataclass(frozen=True)
class Bootp:
    op: int
    flags: int
    yiaddr: str
    chaddr: str | None  # None unless htype 1 / hlen 6
    message_type: int | None  # DHCP option 53


def parse_ethernet(data: bytes) -> Ethernet | None:
    if not isinstance(data, (bytes, bytearray)) or len(data) < ETH_HEADER:
        return None
    dst, src, ethertype = data[0:6], data[6:12], int.from_bytes(data[12:14], "big")
    return Ethernet(mac_text(dst), mac_text(src), ethertype, bytes(data[14:]))


def parse_arp(payload: bytes) -> Arp | None:
    if len(payload) < _ARP.size:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(payload)
    if (htype, ptype, hlen, plen) != (1, ETH_TYPE_IPV4, 6, 4) or op not in (1, 2):
        return None
    return Arp(op, mac_text(sha), ip_text(spa), mac_text(tha), ip_text(tpa))


def parse_ipv4(payload: bytes) -> IPv4 | None:
    if len(payload) < _IPV4.size:
        return None
    vihl, _tos, total, _ident, frag, _ttl, proto, _csum, src, dst = _IPV4.unpack_from(payload)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or total < ihl or total > len(payload):
        return None
    if frag & 0x3FFF:  # more fragments, or an offset: not a whole datagram
        return None
    return IPv4(ihl, proto, ip_text(src), ip_text(dst), bytes(payload[ihl:total]), src, dst)


def parse_udp(ip: IPv4) -> Udp | None:
    if ip.proto != 17 or len(ip.data) < _UDP.size:
        return None
    sport, dport, length, csum = _UDP.unpack_from(ip.data)
    if length < _UDP.size or length > len(ip.data):
        return None
    return Udp(sport, dport, length, csum)


def parse_bootp(udp_payload: bytes) -> Bootp | None:
    if len(udp_payload) < BOOTP_FIXED:
        return None
    op, htype, hlen, _hops, _xid, _secs, flags, _ci, yi, _si, _gi, chaddr = \
        _BOOTP.unpack_from(udp_payload)
    if op not in (1, 2):
        return None
    mac = mac_text(chaddr[:6]) if (htype, hlen) == (1, 6) else None
    message_type = None
    if udp_payload[BOOTP_FIXED:BOOTP_FIXED + 4] == DHCP_COOKIE:
        message_type = _option(udp_payload[BOOTP_FIXED + 4:], 53)
    return Bootp(op, flags, ip_text(yi), mac, message_type)


def _option(options: bytes, code: int) -> int | None:
    """The first byte of DHCP option `code`, or None (malformed options end the search)."""
    i = 0
    while i < len(options):
        tag = options[i]
        if tag == 255:
            return None
        if tag == 0:
            i += 1
            continue
        if i + 1 >= len(options):
            return None
        length = options[i + 1]
        value = options[i + 2:i + 2 + length]
        if len(value) < length:
            return None
        if tag == code:
            return value[0] if value else None
        i += 2 + length
    return None


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def udp_checksum(raw_src: bytes, raw_dst: bytes, segment: bytes) -> int:
    """The UDP checksum of `segment` (header with checksum 0, and data) over IPv4."""
    pseudo = raw_src + raw_dst + struct.pack("!BBH", 0, 17, len(segment))
    value = 0xFFFF - _sum16(pseudo + segment)
    return value or 0xFFFF  # 0 means "no checksum" in UDP over IPv4


def udp_checksum_ok(raw_src: bytes, raw_dst: bytes, segment: bytes) -> bool:
    """Tell whether a UDP segment's checksum is right (0: none given, accepted)."""
    if segment[6:8] == b"\0\0":
        return True
    pseudo = raw_src + raw_dst + struct.pack("!BBH", 0, 17, len(segment))
    return _sum16(pseudo + segment) == 0xFFFF


def set_eth(frame: bytes, *, src: str | None = None, dst: str | None = None) -> bytes:
    out = bytearray(frame)
    if dst is not None:
        out[0:6] = mac_bytes(dst)
    if src is not None:
        out[6:12] = mac_bytes(src)
    return bytes(out)


def set_arp(frame: bytes, *, sha: str | None = None, tha: str | None = None) -> bytes:
    """Rewrite the sender/target hardware address of an (untagged) ARP frame."""
    out = bytearray(frame)
    if sha is not None:
        out[ETH_HEADER + 8:ETH_HEADER + 14] = mac_bytes(sha)
    if tha is not None:
        out[ETH_HEADER + 18:ETH_HEADER + 24] = mac_bytes(tha)
    return bytes(out)


def set_bootp_broadcast(frame: bytes, ip: IPv4, udp: Udp) -> bytes:
    """Set the BOOTP broadcast flag of a DHCP frame and recompute its UDP checksum."""
    out = bytearray(frame)
    udp_at = ETH_HEADER + ip.header_len
    flags_at = udp_at + _UDP.size + BOOTP_FLAGS_OFFSET
    flags = int.from_bytes(out[flags_at:flags_at + 2], "big") | BOOTP_BROADCAST
    out[flags_at:flags_at + 2] = flags.to_bytes(2, "big")
    out[udp_at + 6:udp_at + 8] = b"\0\0"
    segment = bytes(out[udp_at:udp_at + udp.length])
    out[udp_at + 6:udp_at + 8] = udp_checksum(ip.raw_src, ip.raw_dst, segment).to_bytes(2, "big")
    return bytes(out)


def with_udp_checksum(frame: bytes, ip: IPv4, udp: Udp) -> bytes:
    """The frame with its UDP checksum computed afresh.

    Frames that reach the controller from a userspace datapath may carry a checksum the sender left
    to offload (veths do); once the frame is sent out again as a packet-out, nothing finishes it, so
    a receiver that checks (busybox udhcpc does) would drop it. Every DHCP frame the controller
    sends goes through here.
    """
    out = bytearray(frame)
    udp_at = ETH_HEADER + ip.header_len
    out[udp_at + 6:udp_at + 8] = b"\0\0"
    segment = bytes(out[udp_at:udp_at + udp.length])
    out[udp_at + 6:udp_at + 8] = udp_checksum(ip.raw_src, ip.raw_dst, segment).to_bytes(2, "big")
    return bytes(out)
