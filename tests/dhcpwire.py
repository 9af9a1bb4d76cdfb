"""A DHCP client's side of the wire, for tests: a request to send, a server's reply read back.

The server itself only parses requests and builds replies (``wvpclab.runtime.dhcp.message``);
these are the other two directions, built on the same codec (``wvpclab.wire``). Standard library
only: lab tests import it from a node's own ``python3``.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from wvpclab.wire import BOOTREQUEST, MessageType, Option, build_bootp, parse_bootp


def build_request(mtype: MessageType, chaddr: bytes, xid: int = 1, *, ciaddr: str = "0.0.0.0",
                  giaddr: str = "0.0.0.0", flags: int = 0, requested_ip: str | None = None,
                  server_id: str | None = None, client_id: bytes | None = None,
                  hostname: str | None = None) -> bytes:
    """A client message of type `mtype` from hardware address `chaddr` (6 bytes)."""
    options = [(Option.MESSAGE_TYPE, bytes((mtype,)))]
    if requested_ip:
        options.append((Option.REQUESTED_IP, IPv4Address(requested_ip).packed))
    if server_id:
        options.append((Option.SERVER_ID, IPv4Address(server_id).packed))
    if client_id is not None:
        options.append((Option.CLIENT_ID, client_id))
    if hostname is not None:
        options.append((Option.HOSTNAME, hostname.encode()))
    return build_bootp(BOOTREQUEST, xid, flags, chaddr, options,
                       ciaddr=IPv4Address(ciaddr).packed, giaddr=IPv4Address(giaddr).packed)


def parse_reply(data: bytes) -> dict:
    """A server message as a dict: op, xid, flags, ciaddr, yiaddr, giaddr (text), chaddr (6 bytes),
    type (a MessageType) and options (code -> value); raises wvpclab.wire.Malformed when it is not
    well formed."""
    msg = parse_bootp(data)
    opts = msg.options or {}
    return {"op": msg.op, "xid": msg.xid, "flags": msg.flags,
            "ciaddr": str(IPv4Address(msg.ciaddr)), "yiaddr": str(IPv4Address(msg.yiaddr)),
            "giaddr": str(IPv4Address(msg.giaddr)), "chaddr": msg.chaddr[:6],
            "type": MessageType(opts[Option.MESSAGE_TYPE][0]), "options": opts}
