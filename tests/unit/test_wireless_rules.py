"""Wireless host adapters (docs/architecture.md §2): the access point's flows, the wireless filter's
flows and the controller's pure packet-in decisions, checked with real frames (scapy) on the fake
table."""

from __future__ import annotations

from dataclasses import replace

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether

from controllers.flowrules import (
    MAX_LEARNED_PER_PORT,
    Learned,
    Port,
    Switch,
    describe,
    explain,
    flows_for,
)
from controllers.wireless import packet_in
from tests.unit.fakeflowtable import CONTROLLER, FakeFlowTable, Frame, frame_from_bytes
from wvpclab import wire

U, H, G1, G2 = 1, 2, 3, 4
ADAPTER = "00:1a:2b:3c:4d:5e"
G1_MAC, G2_MAC = "00:03:ff:00:00:01", "00:03:ff:00:00:02"
LAN_MAC = "00:50:56:aa:bb:cc"
SERVER_MAC = "00:50:56:00:00:fe"
BCAST = "ff:ff:ff:ff:ff:ff"
G1_IP, G2_IP, LAN_IP, SERVER_IP = "192.168.1.50", "192.168.1.51", "192.168.1.10", "192.168.1.1"

STATION, LAN = 1, 2


def wireless(learned: tuple[Learned, ...] = (), spoof_g1: bool = False) -> Switch:
    return Switch(0x40, "wireless", (
        Port(U, "uplink", None), Port(H, "host", ADAPTER),
        Port(G1, "guest", G1_MAC, allow_spoofing=spoof_g1), Port(G2, "guest", G2_MAC),
    ), learned=learned)


def ap() -> Switch:
    return Switch(0x41, "ap", (Port(STATION, "station", ADAPTER), Port(LAN, "lan", None)))


def through(switch: Switch, in_port: int, frame: bytes) -> list[tuple[int, Frame]]:
    return FakeFlowTable(flows_for(switch)).deliver(frame_from_bytes(in_port, frame))


def ports(deliveries) -> set[int]:
    return {p for p, _ in deliveries}


def arp_request(src_mac=G1_MAC, spa=G1_IP, tpa=LAN_IP) -> bytes:
    return bytes(Ether(src=src_mac, dst=BCAST) / ARP(op=1, hwsrc=src_mac, psrc=spa, pdst=tpa))


def dhcp(op: str, chaddr: str, src_mac: str, dst_mac: str, flags: int = 0,
         yiaddr: str = "0.0.0.0") -> bytes:
    client = op in ("discover", "request")
    ip = IP(src="0.0.0.0" if client else SERVER_IP,
            dst="255.255.255.255" if (client or flags) else yiaddr)
    udp = UDP(sport=68, dport=67) if client else UDP(sport=67, dport=68)
    bootp = BOOTP(op=1 if client else 2, chaddr=wire.mac_bytes(chaddr) + b"\0" * 10,
                  xid=0x1234, flags=flags, yiaddr=yiaddr)
    return bytes(Ether(src=src_mac, dst=dst_mac) / ip / udp / bootp
                 / DHCP(options=[("message-type", op), "end"]))


# ---- the access point --------------------------------------------------------------------------


@pytest.mark.parametrize("in_port,src,dst,expected", [
    (STATION, ADAPTER, LAN_MAC, {LAN}),
    (STATION, ADAPTER, BCAST, {LAN}),
    (STATION, G1_MAC, LAN_MAC, set()),  # a guest's MAC straight at the AP
    (STATION, G1_MAC, BCAST, set()),
    (STATION, ADAPTER, "01:80:c2:00:00:00", set()),
    (LAN, LAN_MAC, ADAPTER, {STATION}),
    (LAN, LAN_MAC, BCAST, {STATION}),
    (LAN, LAN_MAC, "33:33:00:00:00:01", {STATION}),
    (LAN, LAN_MAC, G1_MAC, set()),  # not the station's MAC
    (LAN, LAN_MAC, "01:80:c2:00:00:0e", set()),
    (9, LAN_MAC, ADAPTER, set()),  # unregistered port
])
def test_ap_rules(in_port, src, dst, expected):
    table = FakeFlowTable(flows_for(ap()))
    for eth_type in (0x0800, 0x0806, 0x86DD, 0x88B5):
        assert set(table.outputs(in_port, src, dst, eth_type)) == expected


def test_ap_roles_checked_and_no_packet_in():
    with pytest.raises(ValueError, match="needs a MAC"):
        Port(1, "station", None)
    with pytest.raises(ValueError, match="ap switch has no guest"):
        Switch(1, "ap", (Port(1, "guest", G1_MAC),))
    with pytest.raises(ValueError, match="more than one station"):
        Switch(1, "ap", (Port(1, "station", ADAPTER), Port(2, "station", G1_MAC)))
    assert not any(f.to_controller or f.set_fields for f in flows_for(ap()))


# ---- wireless filter: flows ------------------------------------------------------------------


@pytest.mark.parametrize("in_port,dst,expected", [
    (G1, G2_MAC, {G2}), (G1, ADAPTER, {H}), (H, G1_MAC, {G1}), (G2, G1_MAC, {G1}),
])
def test_guest_guest_and_host_by_mac_unchanged(in_port, dst, expected):
    table = FakeFlowTable(flows_for(wireless()))
    src = {G1: G1_MAC, G2: G2_MAC, H: ADAPTER}[in_port]
    for eth_type in (0x0800, 0x86DD, 0x88B5, 0x0806):
        got = table.deliveries(in_port, src, dst, eth_type, arp_tpa=G1_IP, arp_sha=src,
                               arp_tha=dst)
        assert ports(got) == expected
        assert all(f.eth_src == src and f.eth_dst == dst for _, f in got)  # not rewritten


def test_host_separation_and_host_to_uplink_as_wired():
    table = FakeFlowTable(flows_for(wireless()))
    assert set(table.outputs(H, ADAPTER, LAN_MAC)) == {U}
    assert set(table.outputs(H, ADAPTER, BCAST, 0x86DD)) == {U, G1, G2}
    assert set(table.outputs(U, LAN_MAC, ADAPTER, 0x86DD)) == {H}
    assert set(table.outputs(U, LAN_MAC, ADAPTER, ipv4_dst="192.168.1.2")) == {H}
    assert set(table.outputs(U, LAN_MAC, "00:50:56:11:22:33")) == set()
    assert set(table.outputs(U, LAN_MAC, BCAST, 0x88B5)) == {H, G1, G2}
    assert set(table.outputs(U, LAN_MAC, G1_MAC)) == set()  # a guest MAC is not on the LAN
    assert set(table.outputs(G1, "00:03:ff:de:ad:01", ADAPTER)) == set()  # spoof guard


def test_guest_ipv4_leaves_with_the_adapter_mac():
    frame = bytes(Ether(src=G1_MAC, dst=LAN_MAC) / IP(src=G1_IP, dst=LAN_IP) / ICMP())
    got = through(wireless(), G1, frame)
    assert [(p, f.eth_src, f.eth_dst) for p, f in got] == [(U, ADAPTER, LAN_MAC)]
    bcast = bytes(Ether(src=G1_MAC, dst=BCAST) / IP(src=G1_IP, dst="192.168.1.255")
                  / UDP(dport=137))
    got = through(wireless(), G1, bcast)
    assert {(p, f.eth_src) for p, f in got} == {(H, G1_MAC), (G2, G1_MAC), (U, ADAPTER)}


@pytest.mark.parametrize("frame", [
    bytes(Ether(src=G1_MAC, dst=LAN_MAC) / IPv6(src="fe80::1", dst="fe80::2") / ICMP()),
    bytes(Ether(src=G1_MAC, dst="33:33:ff:00:00:02") / IPv6(src="fe80::1", dst="ff02::1:ff00:2")
          / ICMPv6ND_NS(tgt="fe80::2")),
    bytes(Ether(src=G1_MAC, dst=LAN_MAC, type=0x88B5) / (b"x" * 46)),
    bytes(Ether(src=G1_MAC, dst=BCAST, type=0x88B5) / (b"x" * 46)),
], ids=["ipv6 unicast", "ipv6 neighbour solicitation", "non-ip unicast", "non-ip broadcast"])
def test_guest_ipv6_and_non_ip_never_reach_the_uplink(frame):
    got = through(wireless(), G1, frame)
    assert U not in ports(got) and CONTROLLER not in ports(got)
    eth = wire.parse_ethernet(frame)
    expected = {H, G2} if eth.dst.startswith(("33:33", "ff:")) else set()
    assert ports(got) == expected  # locally, group frames still reach host and guests
    assert packet_in(wireless(), (), G1, frame).packets == ()  # even if it got there


def test_arp_request_out_rewritten_and_learned():
    frame = arp_request()
    assert ports(through(wireless(), G1, frame)) == {CONTROLLER}
    decision = packet_in(wireless(), (), G1, frame)
    assert decision.learned == (Learned(G1_IP, G1, G1_MAC, "arp"),)
    out = dict(decision.packets)
    assert set(out) == {U, H, G2}
    assert out[H] == frame and out[G2] == frame  # unchanged locally
    sent = Ether(out[U])
    assert sent.src == ADAPTER and sent[ARP].hwsrc == ADAPTER and sent[ARP].psrc == G1_IP
    assert sent[ARP].pdst == LAN_IP and sent.dst == BCAST


def test_arp_reply_in_delivered_to_the_right_guest_after_learning():
    reply = bytes(Ether(src=LAN_MAC, dst=ADAPTER)
                  / ARP(op=2, hwsrc=LAN_MAC, psrc=LAN_IP, hwdst=ADAPTER, pdst=G1_IP))
    assert ports(through(wireless(), U, reply)) == {H}  # nothing learned: the host's
    learned = packet_in(wireless(), (), G1, arp_request()).learned
    learned += packet_in(wireless(), (), G2, arp_request(G2_MAC, G2_IP)).learned
    sw = wireless().with_learned(learned)
    got = through(sw, U, reply)
    assert [(p, f.eth_dst, f.arp_tha) for p, f in got] == [(G1, G1_MAC, G1_MAC)]
    reply2 = bytes(Ether(src=LAN_MAC, dst=ADAPTER)
                   / ARP(op=2, hwsrc=LAN_MAC, psrc=LAN_IP, hwdst=ADAPTER, pdst=G2_IP))
    assert [(p, f.eth_dst) for p, f in through(sw, U, reply2)] == [(G2, G2_MAC)]


def test_arp_reply_from_guest_rewritten():
    reply = bytes(Ether(src=G1_MAC, dst=LAN_MAC)
                  / ARP(op=2, hwsrc=G1_MAC, psrc=G1_IP, hwdst=LAN_MAC, pdst=LAN_IP))
    decision = packet_in(wireless(), (), G1, reply)
    assert [p for p, _ in decision.packets] == [U]
    sent = Ether(decision.packets[0][1])
    assert (sent.src, sent[ARP].hwsrc, sent.dst) == (ADAPTER, ADAPTER, LAN_MAC)
    # ARP to a registered MAC: only there, unchanged (the flow does it; the function agrees)
    local = bytes(Ether(src=G1_MAC, dst=G2_MAC) / ARP(op=2, hwsrc=G1_MAC, psrc=G1_IP))
    assert ports(through(wireless(), G1, local)) == {G2}
    assert packet_in(wireless(), (), G1, local).packets == ((G2, local),)


def test_ipv4_in_by_learned_ip():
    sw = wireless((Learned(G1_IP, G1, G1_MAC, "arp"), Learned(G2_IP, G2, G2_MAC, "dhcp")))
    for ip, port, mac in ((G1_IP, G1, G1_MAC), (G2_IP, G2, G2_MAC)):
        frame = bytes(Ether(src=LAN_MAC, dst=ADAPTER) / IP(src=LAN_IP, dst=ip) / ICMP())
        assert [(p, f.eth_dst) for p, f in through(sw, U, frame)] == [(port, mac)]
    other = bytes(Ether(src=LAN_MAC, dst=ADAPTER) / IP(src=LAN_IP, dst="192.168.1.2") / ICMP())
    assert [(p, f.eth_dst) for p, f in through(sw, U, other)] == [(H, ADAPTER)]
    # From the host stack, to the adapter MAC with a guest's IP: not the uplink rule.
    assert ports(FakeFlowTable(flows_for(sw)).deliveries(G2, G2_MAC, ADAPTER,
                                                         ipv4_dst=G1_IP)) == {H}


def test_dhcp_out_with_broadcast_flag_and_valid_checksum():
    frame = dhcp("discover", G1_MAC, G1_MAC, BCAST)
    assert ports(through(wireless(), G1, frame)) == {CONTROLLER}
    decision = packet_in(wireless(), (), G1, frame)
    out = dict(decision.packets)
    assert set(out) == {U, H, G2} and out[H] == frame and out[G2] == frame
    assert decision.learned == ()
    sent = Ether(out[U])
    assert sent.src == ADAPTER and sent[BOOTP].flags & 0x8000
    assert sent[BOOTP].chaddr[:6] == wire.mac_bytes(G1_MAC)
    check = sent[UDP].chksum
    del sent[UDP].chksum
    assert Ether(bytes(sent))[UDP].chksum == check != 0
    # A renewal unicast to the server: to the uplink only, translated, flag set.
    renew = dhcp("request", G1_MAC, G1_MAC, SERVER_MAC)
    decision = packet_in(wireless(), (), G1, renew)
    assert [p for p, _ in decision.packets] == [U]
    assert Ether(decision.packets[0][1])[BOOTP].flags & 0x8000


def test_dhcp_ack_in_delivered_by_chaddr_and_learned():
    offer = dhcp("offer", G2_MAC, SERVER_MAC, BCAST, flags=0x8000, yiaddr=G2_IP)
    assert ports(through(wireless(), U, offer)) == {CONTROLLER}
    decision = packet_in(wireless(), (), U, offer)
    assert [p for p, _ in decision.packets] == [G2] and decision.learned == ()
    assert Ether(decision.packets[0][1]).dst == G2_MAC
    ack = dhcp("ack", G2_MAC, SERVER_MAC, BCAST, flags=0x8000, yiaddr=G2_IP)
    decision = packet_in(wireless(), (), U, ack)
    assert [p for p, _ in decision.packets] == [G2]
    assert decision.learned == (Learned(G2_IP, G2, G2_MAC, "dhcp"),)
    sw = wireless().with_learned(decision.learned)
    data = bytes(Ether(src=LAN_MAC, dst=ADAPTER) / IP(src=LAN_IP, dst=G2_IP) / ICMP())
    assert [(p, f.eth_dst) for p, f in through(sw, U, data)] == [(G2, G2_MAC)]
    # unicast renewal ACK to the adapter's MAC: same
    ack2 = dhcp("ack", G2_MAC, SERVER_MAC, ADAPTER, yiaddr=G2_IP)
    assert [p for p, _ in packet_in(sw, sw.learned, U, ack2).packets] == [G2]
    # The host stack's own DHCP: as wired.
    own = dhcp("ack", ADAPTER, SERVER_MAC, ADAPTER, yiaddr="192.168.1.2")
    decision = packet_in(sw, sw.learned, U, own)
    assert decision.packets == ((H, own),) and decision.learned == ()
    own_b = dhcp("offer", ADAPTER, SERVER_MAC, BCAST, flags=0x8000, yiaddr="192.168.1.2")
    assert {p for p, _ in packet_in(sw, (), U, own_b).packets} == {H, G1, G2}
    # For some other unicast MAC: dropped.
    assert packet_in(sw, (), U, dhcp("ack", G1_MAC, SERVER_MAC, G1_MAC)).packets == ()


@pytest.mark.parametrize("frame", [
    b"", b"\x00" * 13, arp_request()[:30],
    bytes(Ether(src=G1_MAC, dst=BCAST) / ARP(hwlen=8)),
    dhcp("discover", G1_MAC, G1_MAC, BCAST)[:200],
    bytes(Ether(src=G1_MAC, dst=BCAST) / IP(dst="255.255.255.255", flags="MF")
          / UDP(sport=68, dport=67) / b"x"),
    bytes(Ether(src=G1_MAC, dst=BCAST) / IP(dst="255.255.255.255") / UDP(sport=68, dport=67)
          / (b"\x09" * 300)),
])
def test_malformed_frames_dropped_never_raise(frame):
    for port in (U, H, G1, 99):
        assert packet_in(wireless(), (), port, frame).packets == ()


def test_a_checksum_left_to_offload_is_completed_and_spoofed_guest_dropped():
    # frames read from a veth by the userspace datapath may carry an unfinished UDP checksum:
    # every DHCP frame the controller sends out gets a correct one (udhcpc checks it)
    bad = bytearray(dhcp("discover", G1_MAC, G1_MAC, BCAST))
    bad[14 + 20 + 6] ^= 0xFF
    sent = packet_in(wireless(), (), G1, bytes(bad)).packets
    assert sent
    for _, data in sent:
        frame = Ether(data)
        claimed = frame[UDP].chksum
        del frame[UDP].chksum
        assert Ether(bytes(frame))[UDP].chksum == claimed
    assert packet_in(wireless(), (), G1, arp_request(src_mac="00:03:ff:de:ad:01")).packets == ()
    assert packet_in(wireless(), (), G1, arp_request(spa="0.0.0.0")).learned == ()  # probe


def test_learned_table_state():
    sw = wireless().with_learned([Learned(G1_IP, G1, G1_MAC, "arp")])
    # The same IP claimed by another guest: the latest wins.
    sw2 = sw.with_learned([Learned(G1_IP, G2, G2_MAC, "arp")])
    assert sw2.learned == (Learned(G1_IP, G2, G2_MAC, "arp"),)
    # Forgotten with the port; kept across set_ports-like replacement.
    assert sw.without_port(G1).learned == ()
    assert sw.with_port(Port(G2, "guest", "00:03:ff:00:00:99")).learned == sw.learned
    assert sw.with_port(Port(G1, "guest", "00:03:ff:00:00:99")).learned == ()
    # Bounded per port.
    many = [Learned(f"10.0.0.{i}", G1, G1_MAC, "arp") for i in range(1, 40)]
    big = wireless().with_learned(many)
    assert len(big.learned) == MAX_LEARNED_PER_PORT
    assert big.learned[-1].ip == "10.0.0.39"
    with pytest.raises(ValueError, match="only a wireless"):
        Switch(1, "filter", (Port(3, "guest", G1_MAC),),
               learned=(Learned(G1_IP, 3, G1_MAC, "arp"),))
    with pytest.raises(ValueError):
        Learned("0.0.0.0", 3, G1_MAC, "arp")


def test_flows_describe_and_explain():
    sw = wireless((Learned(G1_IP, G1, G1_MAC, "dhcp"),))
    flows = flows_for(sw)
    lines = describe(flows, {U: "uplink", H: "host"})
    assert (f"table=1 priority=700 in_port=1(uplink) eth_dst={ADAPTER} eth_type=0x0800 "
            f"ipv4_dst={G1_IP} actions=set_field:eth_dst={G1_MAC},output:3") in lines
    assert (f"table=1 priority=700 in_port=1(uplink) eth_dst={ADAPTER} eth_type=0x0806 "
            f"arp_tpa={G1_IP} actions=set_field:eth_dst={G1_MAC},set_field:arp_tha={G1_MAC},"
            "output:3") in lines
    assert "table=1 priority=560 in_port=3 eth_type=0x0806 actions=CONTROLLER" in lines
    assert (f"table=1 priority=540 in_port=3 eth_dst=01:00:00:00:00:00/01:00:00:00:00:00 "
            f"eth_type=0x0800 actions=output:2(host),3,4,set_field:eth_src={ADAPTER},"
            "output:1(uplink)") in lines
    words = explain(flows, {U: "uplink", H: "host stack", G1: "guest xp", G2: "guest w7"},
                    sw.learned)
    assert len(words) == len(flows) + 1
    assert f"learned: {G1_IP} is guest xp ({G1_MAC}), from its DHCP" in words
    assert any("IPv6 and non-IP cannot be translated" in w for w in words)
    assert any(w.startswith(f"IPv4 from guest xp to any other unicast: uplink with eth_src "
                            f"{ADAPTER}") for w in words)


def test_flow_count_linear_in_guests_and_learned():
    def sw(n: int, learned: int = 0) -> Switch:
        guests = tuple(Port(10 + i, "guest", f"00:03:ff:00:{i >> 8:02x}:{i & 0xff:02x}")
                       for i in range(n))
        entries = tuple(Learned(f"10.1.0.{i + 1}", 10 + i, guests[i].mac, "arp")
                        for i in range(learned))
        return Switch(5, "wireless", (Port(1, "uplink", None), Port(2, "host", ADAPTER))
                      + guests, learned=entries)
    assert len(flows_for(sw(100))) - len(flows_for(sw(50))) == 50 * 10
    assert len(flows_for(sw(50, 50))) - len(flows_for(sw(50))) == 100


def test_dhcp_guard_on_a_wireless_adapter_whose_lan_serves_dhcp():
    rogue = dhcp("offer", G2_MAC, G1_MAC, BCAST, flags=0x8000)
    assert ports(through(replace(wireless(), dhcp_guard=True), G1, rogue)) == set()
    assert H in ports(through(wireless(), G1, rogue))  # unguarded: it reaches the PC
