"""Frames on the wire: Ethernet, ARP, IPv4, UDP and BOOTP/DHCP, read and written with `struct`.

The project's one packet codec: the DHCP server (``wvpclab.runtime.dhcp``) and the controller's
wireless part (``controllers.wireless``) both use it. Pure functions over bytes; it imports
nothing else of wvpclab, so the controller process (``python -m controllers.main``) loads it alone.

Parsing is strict and layered (``parse_ethernet`` -> ``parse_ipv4`` -> ``parse_udp`` ->
``parse_bootp``): anything malformed or unsupported (VLAN tags, IP fragments, truncated headers,
lengths that disagree, options that overrun) raises ``Malformed``, whose ``str()`` is a short
reason (the DHCP server counts its drops by it, the controller logs it); bad input raises nothing
else. Checksums are not checked by the parsers: a frame from a veth may carry a UDP checksum left to
offload (see ``with_udp_checksum``); the DHCP server checks the IP header's itself.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from typing import NamedTuple

ETH_HEADER = 14
ETH_TYPE_IPV4, ETH_TYPE_ARP = 0x0800, 0x0806
IPPROTO_UDP = 17
DHCP_SERVER_PORT, DHCP_CLIENT_PORT = 67, 68

_ETH = struct.Struct("!6s6sH")  # destination, source, ethertype
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # 28 bytes
#: version+IHL, TOS, total length, id, flags+fragment offset, TTL, protocol, checksum, addresses
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")  # source port, destination port, length, checksum

BOOTREQUEST, BOOTREPLY = 1, 2
HTYPE_ETHERNET, HLEN_ETHERNET = 1, 6
MAGIC_COOKIE = b"\x63\x82\x53\x63"
FLAG_BROADCAST = 0x8000
#: op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr(16), sname(64),
#: file(128)
_BOOTP = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
BOOTP_LEN = _BOOTP.size  # 236
_FLAGS_AT = 10  # the flags' offset in a BOOTP message


class MessageType(enum.IntEnum):
    """DHCP option 53 values (RFC 2132 §9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Option(enum.IntEnum):
    """The DHCP option codes the project reads or writes (RFC 2132)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS = 6
    HOSTNAME = 12
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_LIST = 55
    MESSAGE = 56
    RENEWAL_T1 = 58
    REBINDING_T2 = 59
    CLIENT_ID = 61
    END = 255


class Malformed(ValueError):
    """Bytes that are not a well-formed packet of the kind asked for; ``str()`` is the reason."""


def mac_text(raw: bytes) -> str:
    return raw.hex(":")


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def ip_text(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the one's complement of the one's complement sum of the
    16-bit words. Over data that carries its own checksum, the result is 0 when it is right."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_checksum(raw_src: bytes, raw_dst: bytes, segment: bytes) -> int:
    """The UDP checksum of `segment` (its header with checksum 0, and data) over IPv4."""
    pseudo = raw_src + raw_dst + struct.pack("!BBH", 0, IPPROTO_UDP, len(segment))
    return checksum(pseudo + segment) or 0xFFFF  # 0 means "no checksum" in UDP over IPv4


# ---- reading ---------------------------------------------------------------------------------


class Ethernet(NamedTuple):
    raw_dst: bytes
    raw_src: bytes
    ethertype: int
    payload: bytes

    @property
    def dst(self) -> str:
        return mac_text(self.raw_dst)

    @property
    def src(self) -> str:
        return mac_text(self.raw_src)


class Arp(NamedTuple):
    op: int
    sha: str
    spa: str
    tha: str
    tpa: str


class IPv4Datagram(NamedTuple):
    header_len: int
    proto: int
    data: bytes  # the IP payload, cut to the total length (Ethernet padding removed)
    raw_src: bytes
    raw_dst: bytes

    @property
    def src(self) -> str:
        return ip_text(self.raw_src)

    @property
    def dst(self) -> str:
        return ip_text(self.raw_dst)


class Udp(NamedTuple):
    sport: int
    dport: int
    length: int
    checksum: int
    payload: bytes  # cut to the UDP length


class Bootp(NamedTuple):
    """A BOOTP message's fixed header (addresses as 4 raw bytes) and its DHCP options: a dict of
    code -> value (instances of one code concatenated, RFC 3396), or None without the DHCP magic
    cookie (plain BOOTP)."""

    op: int
    htype: int
    hlen: int
    hops: int
    xid: int
    secs: int
    flags: int
    ciaddr: bytes
    yiaddr: bytes
    siaddr: bytes
    giaddr: bytes
    chaddr: bytes  # all 16 bytes
    options: dict[int, bytes] | None

    @property
    def mac(self) -> str | None:
        """The client's hardware address as text, None unless it is Ethernet's."""
        if (self.htype, self.hlen) != (HTYPE_ETHERNET, HLEN_ETHERNET):
            return None
        return mac_text(self.chaddr[:HLEN_ETHERNET])

    @property
    def message_type(self) -> int | None:
        """Option 53's value (None when absent or not one byte)."""
        value = (self.options or {}).get(Option.MESSAGE_TYPE)
        return value[0] if value is not None and len(value) == 1 else None


def parse_ethernet(frame: bytes) -> Ethernet:
    if not isinstance(frame, (bytes, bytearray)) or len(frame) < ETH_HEADER:
        raise Malformed("truncated frame")
    dst, src, ethertype = _ETH.unpack_from(frame)
    return Ethernet(dst, src, ethertype, bytes(frame[ETH_HEADER:]))


def parse_arp(payload: bytes) -> Arp:
    if len(payload) < _ARP.size:
        raise Malformed("truncated ARP")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(payload)
    if (htype, ptype, hlen, plen) != (1, ETH_TYPE_IPV4, 6, 4):
        raise Malformed("not Ethernet/IPv4 ARP")
    if op not in (1, 2):
        raise Malformed("bad ARP operation")
    return Arp(op, mac_text(sha), ip_text(spa), mac_text(tha), ip_text(tpa))


def parse_ipv4(payload: bytes) -> IPv4Datagram:
    """An IPv4 datagram, whole (not a fragment); its header checksum is not checked."""
    if len(payload) < _IPV4.size:
        raise Malformed("truncated IP header")
    vihl, _tos, total, _ident, frag, _ttl, proto, _sum, src, dst = _IPV4.unpack_from(payload)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < _IPV4.size:
        raise Malformed("bad IP header")
    if total < ihl or total > len(payload):  # a short frame is padded: the total length counts
        raise Malformed("bad IP length")
    if frag & 0x3FFF:  # more fragments, or not the first: not a whole datagram
        raise Malformed("IP fragment")
    return IPv4Datagram(ihl, proto, bytes(payload[ihl:total]), src, dst)


def parse_udp(ip: IPv4Datagram) -> Udp:
    """The UDP datagram in `ip`; its checksum is not checked (see the module's docstring)."""
    if ip.proto != IPPROTO_UDP:
        raise Malformed("not UDP")
    if len(ip.data) < _UDP.size:
        raise Malformed("bad IP length")  # too short to hold a UDP header
    sport, dport, length, csum = _UDP.unpack_from(ip.data)
    if length < _UDP.size or length > len(ip.data):
        raise Malformed("bad UDP length")
    return Udp(sport, dport, length, csum, ip.data[_UDP.size:length])


def parse_bootp(data: bytes) -> Bootp:
    """A BOOTP message and, after the magic cookie, its DHCP options up to the end option.

    Whether the message is a request or a reply is left to the reader (``op``)."""
    if len(data) < BOOTP_LEN:
        raise Malformed("truncated")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, _sname,
     _file) = _BOOTP.unpack_from(data)
    options = None
    if data[BOOTP_LEN:BOOTP_LEN + len(MAGIC_COOKIE)] == MAGIC_COOKIE:
        options = _options(data, BOOTP_LEN + len(MAGIC_COOKIE))
    return Bootp(op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr,
                 options)


def _options(data: bytes, i: int) -> dict[int, bytes]:
    opts: dict[int, bytes] = {}
    end = len(data)
    while i < end:
        code = data[i]
        if code == Option.PAD:
            i += 1
            continue
        if code == Option.END:
            return opts
        if i + 1 >= end:
            raise Malformed("bad option length")
        length = data[i + 1]
        if i + 2 + length > end:
            raise Malformed("bad option length")
        opts[code] = opts.get(code, b"") + data[i + 2:i + 2 + length]  # RFC 3396: concatenated
        i += 2 + length
    raise Malformed("no end option")


# ---- writing ---------------------------------------------------------------------------------


def encode_option(code: int, value: bytes) -> bytes:
    """One option on the wire; a value over 255 bytes is split into several instances of the
    option, which the receiver concatenates (RFC 3396)."""
    if not value:
        return bytes((code, 0))
    return b"".join(bytes((code, len(value[i:i + 255]))) + value[i:i + 255]
                    for i in range(0, len(value), 255))


def build_bootp(op: int, xid: int, flags: int, chaddr: bytes, options: Iterable[tuple[int, bytes]],
                *, ciaddr: bytes = bytes(4), yiaddr: bytes = bytes(4), siaddr: bytes = bytes(4),
                giaddr: bytes = bytes(4), hops: int = 0, secs: int = 0) -> bytes:
    """A DHCP message (Ethernet hardware addresses): the header, the magic cookie, `options` in
    order and the end option."""
    header = _BOOTP.pack(op, HTYPE_ETHERNET, HLEN_ETHERNET, hops, xid, secs, flags, ciaddr, yiaddr,
                         siaddr, giaddr, chaddr.ljust(16, b"\0"), b"", b"")
    return b"".join((header, MAGIC_COOKIE, *(encode_option(c, v) for c, v in options),
                     bytes((Option.END,))))


def build_udp_frame(dst_mac: bytes, src_mac: bytes, src: bytes, dst: bytes, sport: int,
                    dport: int, payload: bytes) -> bytes:
    """An Ethernet frame holding one UDP datagram (addresses raw: 6 and 4 bytes), both checksums
    computed."""
    length = _UDP.size + len(payload)
    udp_sum = udp_checksum(src, dst, _UDP.pack(sport, dport, length, 0) + payload)
    ip = _IPV4.pack(0x45, 0, _IPV4.size + length, 0, 0, 64, IPPROTO_UDP, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"".join((_ETH.pack(dst_mac, src_mac, ETH_TYPE_IPV4), ip,
                     _UDP.pack(sport, dport, length, udp_sum), payload))


def set_eth(frame: bytes, *, src: str | None = None, dst: str | None = None) -> bytes:
    out = bytearray(frame)
    if dst is not None:
        out[0:6] = mac_bytes(dst)
    if src is not None:
        out[6:12] = mac_bytes(src)
    return bytes(out)


def set_arp(frame: bytes, *, sha: str) -> bytes:
    """Rewrite the sender hardware address of an (untagged) ARP frame."""
    out = bytearray(frame)
    out[ETH_HEADER + 8:ETH_HEADER + 14] = mac_bytes(sha)
    return bytes(out)


def set_bootp_broadcast(frame: bytes, ip: IPv4Datagram, udp: Udp) -> bytes:
    """Set the BOOTP broadcast flag of a DHCP frame and recompute its UDP checksum."""
    out = bytearray(frame)
    flags_at = ETH_HEADER + ip.header_len + _UDP.size + _FLAGS_AT
    flags = int.from_bytes(out[flags_at:flags_at + 2], "big") | FLAG_BROADCAST
    out[flags_at:flags_at + 2] = flags.to_bytes(2, "big")
    return with_udp_checksum(bytes(out), ip, udp)


def with_udp_checksum(frame: bytes, ip: IPv4Datagram, udp: Udp) -> bytes:
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
