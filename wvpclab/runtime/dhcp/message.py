"""DHCP messages on the wire (RFC 2131/2132): a builder, and a strict parser of what a server needs;
and the Ethernet/IPv4/UDP frames around them, read and written by the server itself.

Pure functions over bytes. Parsing reads only the fixed header and the options the server uses,
which keeps it fast; anything malformed raises ``Malformed`` with a short reason that the server
counts.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

BOOTREQUEST = 1
BOOTREPLY = 2
HTYPE_ETHERNET = 1
HLEN_ETHERNET = 6
MAGIC_COOKIE = b"\x63\x82\x53\x63"
FLAG_BROADCAST = 0x8000
SERVER_PORT = 67
CLIENT_PORT = 68

#: op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr(16), sname(64),
#: file(128)
_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
HEADER_LEN = _HEADER.size  # 236
MIN_LEN = HEADER_LEN + len(MAGIC_COOKIE)
MAX_LEN = 1500 - 28  # a DHCP message in one Ethernet frame (IP + UDP headers off)

ETH_P_IP = 0x0800
IPPROTO_UDP = 17
_ETH = struct.Struct("!6s6sH")  # destination, source, ethertype
_IP = struct.Struct("!BBHHHBBH4s4s")  # version+IHL, TOS, length, id, flags+offset, TTL, proto, sum
_UDP = struct.Struct("!HHHH")  # source port, destination port, length, checksum
FRAME_MIN = _ETH.size + _IP.size + _UDP.size


class MessageType(enum.IntEnum):
    """Option 53 values (RFC 2132 §9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Option(enum.IntEnum):
    """The option codes this server reads or writes (RFC 2132)."""

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
    """A packet that is not a well-formed DHCP request; ``str()`` is the reason that is counted."""


IPv4 = ipaddress.IPv4Address
ZERO = IPv4("0.0.0.0")


@dataclass(frozen=True)
class Request:
    """What the server needs of a client message."""

    mtype: MessageType
    xid: int
    secs: int
    flags: int
    ciaddr: IPv4
    giaddr: IPv4
    chaddr: bytes  # 6 bytes
    hops: int = 0
    requested_ip: IPv4 | None = None
    server_id: IPv4 | None = None
    client_id: bytes | None = None
    hostname: str | None = None

    @property
    def mac(self) -> str:
        return self.chaddr.hex(":")

    @property
    def client_key(self) -> str:
        """The client's identity: option 61 if present, else chaddr; ``01:<chaddr>`` is chaddr's."""
        cid = self.client_id
        if cid is None or (len(cid) == 7 and cid[0] == HTYPE_ETHERNET and cid[1:] == self.chaddr):
            return f"mac:{self.mac}"
        return "id:" + cid.hex()

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)


def _ip(raw: bytes) -> IPv4:
    return IPv4(raw)


def parse(data: bytes) -> Request:
    """Parses a client message; raises Malformed naming what is wrong."""
    if len(data) < MIN_LEN:
        raise Malformed("truncated")
    if len(data) > MAX_LEN:
        raise Malformed("too long")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, _yiaddr, _siaddr, giaddr, chaddr,
     _sname, _file) = _HEADER.unpack_from(data)
    if op != BOOTREQUEST:
        raise Malformed("not a BOOTREQUEST")
    if htype != HTYPE_ETHERNET or hlen != HLEN_ETHERNET:
        raise Malformed("not Ethernet")
    if data[HEADER_LEN:MIN_LEN] != MAGIC_COOKIE:
        raise Malformed("no magic cookie")
    opts: dict[int, bytes] = {}
    i, end = MIN_LEN, len(data)
    while i < end:
        code = data[i]
        if code == Option.PAD:
            i += 1
            continue
        if code == Option.END:
            break
        if i + 1 >= end:
            raise Malformed("bad option length")
        length = data[i + 1]
        if i + 2 + length > end:
            raise Malformed("bad option length")
        value = data[i + 2:i + 2 + length]
        opts[code] = opts.get(code, b"") + value  # RFC 3396: split options concatenate
        i += 2 + length
    else:
        raise Malformed("no end option")
    if Option.OVERLOAD in opts:
        raise Malformed("option overload")
    mt = opts.get(Option.MESSAGE_TYPE)
    if mt is None:
        raise Malformed("no message type")
    if len(mt) != 1:
        raise Malformed("bad message type")
    try:
        mtype = MessageType(mt[0])
    except ValueError:
        raise Malformed("bad message type") from None
    if mtype in (MessageType.OFFER, MessageType.ACK, MessageType.NAK):
        raise Malformed("a server message")

    def addr(code: int) -> IPv4 | None:
        raw = opts.get(code)
        if raw is None:
            return None
        if len(raw) != 4:
            raise Malformed(f"bad option {code} length")
        return _ip(raw)

    cid = opts.get(Option.CLIENT_ID)
    if cid is not None and len(cid) < 2:
        raise Malformed("bad client identifier")
    host = opts.get(Option.HOSTNAME)
    return Request(mtype=mtype, xid=xid, secs=secs, flags=flags, ciaddr=_ip(ciaddr),
                   giaddr=_ip(giaddr), chaddr=chaddr[:HLEN_ETHERNET], hops=hops,
                   requested_ip=addr(Option.REQUESTED_IP), server_id=addr(Option.SERVER_ID),
                   client_id=cid, hostname=host.decode("ascii", "replace") if host else None)


@dataclass(frozen=True)
class Reply:
    """A server message, ready to build."""

    mtype: MessageType
    request: Request
    yiaddr: IPv4 = ZERO
    server_id: IPv4 = ZERO
    options: tuple[tuple[int, bytes], ...] = field(default=())

    def build(self) -> bytes:
        """The message on the wire (RFC 2131 §4.3.1 table 3 fields)."""
        req = self.request
        ciaddr = req.ciaddr if self.mtype in (MessageType.ACK, MessageType.OFFER) and \
            req.mtype in (MessageType.REQUEST, MessageType.INFORM) else ZERO
        if self.mtype == MessageType.NAK:
            ciaddr = ZERO
        header = _HEADER.pack(BOOTREPLY, HTYPE_ETHERNET, HLEN_ETHERNET, 0, req.xid, 0,
                              req.flags & FLAG_BROADCAST, ciaddr.packed, self.yiaddr.packed,
                              ZERO.packed, req.giaddr.packed, req.chaddr.ljust(16, b"\0"),
                              b"", b"")
        out = [header, MAGIC_COOKIE, bytes((Option.MESSAGE_TYPE, 1, self.mtype)),
               bytes((Option.SERVER_ID, 4)) + self.server_id.packed]
        for code, value in self.options:
            out.append(encode_option(code, value))
        if req.client_id is not None:  # RFC 6842: echo the client identifier
            out.append(encode_option(Option.CLIENT_ID, req.client_id))
        out.append(bytes((Option.END,)))
        return b"".join(out)


def encode_option(code: int, value: bytes) -> bytes:
    """One option on the wire; a value over 255 bytes is split into several instances of the
    option, which the receiver concatenates (RFC 3396)."""
    if not value:
        return bytes((code, 0))
    return b"".join(bytes((code, len(value[i:i + 255]))) + value[i:i + 255]
                    for i in range(0, len(value), 255))


# ---- the frame around a message ------------------------------------------------------------------

class Datagram(NamedTuple):
    """A UDP datagram read from an Ethernet frame: who sent it, to where, and its payload (a named
    tuple: the server makes one per frame)."""

    src_mac: bytes
    src_ip: IPv4
    dst_ip: IPv4
    src_port: int
    payload: bytes


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the one's complement of the one's complement sum of the
    16-bit words. Over a header that carries its own checksum, the result is 0 when it is right."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def parse_frame(frame: bytes) -> Datagram:
    """The UDP datagram to the server port in an Ethernet frame; raises Malformed naming what is
    wrong. The UDP checksum is not checked: a veth's checksum offload leaves it unfinished on
    frames from the same machine (the kernel's own UDP does not check those either)."""
    if len(frame) < FRAME_MIN:
        raise Malformed("truncated frame")
    _dst, src, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_P_IP:
        raise Malformed("not IPv4")
    ip_at = _ETH.size
    vihl, _tos, total, _id, frag, _ttl, proto, _sum, saddr, daddr = _IP.unpack_from(frame, ip_at)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < _IP.size:
        raise Malformed("bad IP header")
    if total < ihl + _UDP.size or ip_at + total > len(frame):  # a short frame is padded: use total
        raise Malformed("bad IP length")
    if frag & 0x3FFF:  # more fragments, or not the first: not a whole datagram
        raise Malformed("IP fragment")
    if proto != IPPROTO_UDP:
        raise Malformed("not UDP")
    if checksum(frame[ip_at:ip_at + ihl]):
        raise Malformed("bad IP checksum")
    sport, dport, length, _ = _UDP.unpack_from(frame, ip_at + ihl)
    if dport != SERVER_PORT:
        raise Malformed("not to port 67")
    if length < _UDP.size or ihl + length > total:
        raise Malformed("bad UDP length")
    start = ip_at + ihl + _UDP.size
    return Datagram(src, IPv4(saddr), IPv4(daddr), sport, frame[start:start + length - _UDP.size])


def build_frame(dst_mac: bytes, src_mac: bytes, src: IPv4, dst: IPv4, sport: int, dport: int,
                payload: bytes) -> bytes:
    """An Ethernet frame holding one UDP datagram, both checksums computed."""
    length = _UDP.size + len(payload)
    pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, IPPROTO_UDP, length)
    udp_sum = checksum(pseudo + _UDP.pack(sport, dport, length, 0) + payload) or 0xFFFF
    ip = _IP.pack(0x45, 0, _IP.size + length, 0, 0, 64, IPPROTO_UDP, 0, src.packed, dst.packed)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"".join((_ETH.pack(dst_mac, src_mac, ETH_P_IP), ip,
                     _UDP.pack(sport, dport, length, udp_sum), payload))


def u32(value: int) -> bytes:
    return struct.pack("!I", value)


def build_request(mtype: MessageType, chaddr: bytes, xid: int = 1, *, ciaddr: str = "0.0.0.0",
                  giaddr: str = "0.0.0.0", flags: int = 0, requested_ip: str | None = None,
                  server_id: str | None = None, client_id: bytes | None = None,
                  hostname: str | None = None) -> bytes:
    """A client message (for tests and the benchmark's own probes)."""
    header = _HEADER.pack(BOOTREQUEST, HTYPE_ETHERNET, HLEN_ETHERNET, 0, xid, 0, flags,
                          IPv4(ciaddr).packed, ZERO.packed, ZERO.packed, IPv4(giaddr).packed,
                          chaddr.ljust(16, b"\0"), b"", b"")
    out = [header, MAGIC_COOKIE, bytes((Option.MESSAGE_TYPE, 1, mtype))]
    if requested_ip:
        out.append(bytes((Option.REQUESTED_IP, 4)) + IPv4(requested_ip).packed)
    if server_id:
        out.append(bytes((Option.SERVER_ID, 4)) + IPv4(server_id).packed)
    if client_id is not None:
        out.append(encode_option(Option.CLIENT_ID, client_id))
    if hostname is not None:
        out.append(encode_option(Option.HOSTNAME, hostname.encode()))
    out.append(bytes((Option.END,)))
    return b"".join(out)


def parse_reply(data: bytes) -> dict:
    """A server message as a dict (for tests): type, yiaddr, ciaddr, giaddr, flags, options."""
    (op, _h, _l, _hops, xid, _secs, flags, ciaddr, yiaddr, _siaddr, giaddr, chaddr, _s,
     _f) = _HEADER.unpack_from(data)
    opts: dict[int, bytes] = {}
    i = MIN_LEN
    while i < len(data) and data[i] != Option.END:
        if data[i] == Option.PAD:
            i += 1
            continue
        opts[data[i]] = data[i + 2:i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    return {"op": op, "xid": xid, "flags": flags, "ciaddr": str(_ip(ciaddr)),
            "yiaddr": str(_ip(yiaddr)), "giaddr": str(_ip(giaddr)), "chaddr": chaddr[:6],
            "type": MessageType(opts[Option.MESSAGE_TYPE][0]), "options": opts}
