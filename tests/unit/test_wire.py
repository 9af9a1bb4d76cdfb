"""The one packet codec (wvpclab.wire), shared by the DHCP server and the controller: on any bytes
its parsers either read the packet or raise Malformed, nothing else; what one side builds the
other reads."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tests.dhcpwire import build_request
from wvpclab import wire

MAC = bytes.fromhex("0003ff000001")


def _read_all(frame: bytes) -> None:
    eth = wire.parse_ethernet(frame)
    if eth.ethertype == wire.ETH_TYPE_ARP:
        wire.parse_arp(eth.payload)
        return
    wire.parse_bootp(wire.parse_udp(wire.parse_ipv4(eth.payload)).payload)


def dhcp_frame() -> bytes:
    return wire.build_udp_frame(b"\xff" * 6, MAC, bytes(4), b"\xff" * 4, 68, 67,
                                build_request(wire.MessageType.REQUEST, MAC, 9, hostname="xp"))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=400), st.integers(0, 400))
def test_parsers_read_or_raise_malformed(junk: bytes, cut: int) -> None:
    good = dhcp_frame()
    for frame in (junk, good[:cut] + junk, good[:14] + junk, good[:42] + junk):
        try:
            _read_all(frame)
        except wire.Malformed as err:
            assert str(err)


def test_a_request_reads_back_through_every_layer() -> None:
    frame = dhcp_frame()
    ip = wire.parse_ipv4(wire.parse_ethernet(frame).payload)
    udp = wire.parse_udp(ip)
    assert (ip.src, ip.dst, udp.sport, udp.dport) == ("0.0.0.0", "255.255.255.255", 68, 67)
    assert wire.checksum(frame[14:34]) == 0
    assert wire.udp_checksum(ip.raw_src, ip.raw_dst, ip.data[:6] + b"\0\0" + ip.data[8:]) == \
        udp.checksum
    msg = wire.parse_bootp(udp.payload)
    assert (msg.op, msg.xid, msg.mac, msg.message_type) == (1, 9, "00:03:ff:00:00:01", 3)
    assert msg.options[wire.Option.HOSTNAME] == b"xp"


def test_scapy_agrees_on_what_is_set_and_recomputed() -> None:
    frame = bytes(Ether(src="00:03:ff:00:00:01", dst="ff:ff:ff:ff:ff:ff")
                  / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
                  / BOOTP(op=1, chaddr=MAC) / DHCP(options=[("message-type", "discover"), "end"]))
    ip = wire.parse_ipv4(wire.parse_ethernet(frame).payload)
    out = Ether(wire.set_bootp_broadcast(frame, ip, wire.parse_udp(ip)))
    assert out[BOOTP].flags == 0x8000
    claimed = out[UDP].chksum
    del out[UDP].chksum
    assert Ether(bytes(out))[UDP].chksum == claimed


@pytest.mark.parametrize("data, reason", [
    (b"\0" * 13, "truncated frame"),
    (bytes(20), "bad IP header"),
    (bytes([0x44]) + bytes(19), "bad IP header"),
    (bytes([0x45, 0, 0, 60]) + bytes(16), "bad IP length"),
    (bytes([0x45, 0, 0, 20, 0, 0, 0x20, 0]) + bytes(12), "IP fragment"),
])
def test_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(wire.Malformed, match=reason):
        wire.parse_ipv4(data) if len(data) >= 14 else wire.parse_ethernet(data)
