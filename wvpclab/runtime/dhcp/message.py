"""What the DHCP server reads and writes (RFC 2131/2132): a client's request, strictly checked, and
the server's reply; and the UDP datagram to port 67 in a frame. The bytes themselves are
``wvpclab.wire``'s (the project's one packet codec).

Pure functions over bytes. A request is read only as far as the server needs, which keeps it fast;
anything malformed raises ``Malformed`` with a short reason that the server counts.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from wvpclab.wire import (
    BOOTP_LEN,
    BOOTREPLY,
    BOOTREQUEST,
    DHCP_SERVER_PORT,
    ETH_HEADER,
    ETH_TYPE_IPV4,
    FLAG_BROADCAST,
    HLEN_ETHERNET,
    HTYPE_ETHERNET,
    IPPROTO_UDP,
    MAGIC_COOKIE,
    Malformed,
    MessageType,
    Option,
    build_bootp,
    checksum,
    parse_bootp,
    parse_ethernet,
    parse_ipv4,
    parse_udp,
)

MIN_LEN = BOOTP_LEN + len(MAGIC_COOKIE)  # a DHCP message: the BOOTP header and the cookie
MAX_LEN = 1500 - 28  # a DHCP message in one Ethernet frame (IP + UDP headers off)
FRAME_MIN = ETH_HEADER + 20 + 8  # Ethernet, IPv4 and UDP headers

IPv4 = ipaddress.IPv4Address
ZERO = IPv4("0.0.0.0")


@dataclass(frozen=True)
class Request:
    """What the server needs of a client message."""

    mtype: MessageType
    xid: int
    flags: int
    ciaddr: IPv4
    giaddr: IPv4
    chaddr: bytes  # 6 bytes
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
    msg = parse_bootp(data)
    if msg.op != BOOTREQUEST:
        raise Malformed("not a BOOTREQUEST")
    if msg.htype != HTYPE_ETHERNET or msg.hlen != HLEN_ETHERNET:
        raise Malformed("not Ethernet")
    opts = msg.options
    if opts is None:
        raise Malformed("no magic cookie")
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
    return Request(mtype=mtype, xid=msg.xid, flags=msg.flags, ciaddr=_ip(msg.ciaddr),
                   giaddr=_ip(msg.giaddr), chaddr=msg.chaddr[:HLEN_ETHERNET],
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
        options = [(Option.MESSAGE_TYPE, bytes((self.mtype,))),
                   (Option.SERVER_ID, self.server_id.packed), *self.options]
        if req.client_id is not None:  # RFC 6842: echo the client identifier
            options.append((Option.CLIENT_ID, req.client_id))
        return build_bootp(BOOTREPLY, req.xid, req.flags & FLAG_BROADCAST, req.chaddr, options,
                           ciaddr=ciaddr.packed, yiaddr=self.yiaddr.packed,
                           giaddr=req.giaddr.packed)


# ---- the frame around a message ------------------------------------------------------------------

class Datagram(NamedTuple):
    """A UDP datagram read from an Ethernet frame: who sent it, to where, and its payload (a named
    tuple: the server makes one per frame)."""

    src_mac: bytes
    src_ip: IPv4
    dst_ip: IPv4
    src_port: int
    payload: bytes


def parse_frame(frame: bytes) -> Datagram:
    """The UDP datagram to the server port in an Ethernet frame; raises Malformed naming what is
    wrong. The IP header's checksum is checked, the UDP checksum is not: a veth's checksum offload
    leaves it unfinished on frames from the same machine (the kernel's own UDP does not check those
    either)."""
    if len(frame) < FRAME_MIN:
        raise Malformed("truncated frame")
    eth = parse_ethernet(frame)
    if eth.ethertype != ETH_TYPE_IPV4:
        raise Malformed("not IPv4")
    ip = parse_ipv4(eth.payload)
    if ip.proto != IPPROTO_UDP:
        raise Malformed("not UDP")
    if checksum(eth.payload[:ip.header_len]):
        raise Malformed("bad IP checksum")
    udp = parse_udp(ip)
    if udp.dport != DHCP_SERVER_PORT:
        raise Malformed("not to port 67")
    return Datagram(eth.raw_src, IPv4(ip.raw_src), IPv4(ip.raw_dst), udp.sport, udp.payload)


def u32(value: int) -> bytes:
    return struct.pack("!I", value)
