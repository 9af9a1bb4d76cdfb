"""Every forwarding rule of DESIGN.md §2 checked on a fake flow table (no root, no switch).

Filter switch rows, spoof guard, 802.1D drop, internal switching, DHCP steering and diff().
"""

from __future__ import annotations

import pytest

from controllers.fakeflowtable import AmbiguousMatch, FakeFlowTable
from controllers.flowrules import (
    PRIO_TABLE_MISS,
    Flow,
    Port,
    Switch,
    baseline_flows,
    describe,
    diff,
    flows_for,
    make_flow,
)

# Filter switch: U=1, H=2, guests g1=3, g2=4, g3=5.
U, H, G1, G2, G3 = 1, 2, 3, 4, 5
HOST_MAC = "00:1a:2b:3c:4d:5e"
G1_MAC, G2_MAC, G3_MAC = "00:03:ff:00:00:01", "00:03:ff:00:00:02", "00:03:ff:00:00:03"
LAN_MAC = "00:50:56:aa:bb:cc"  # a machine on the external LAN (unregistered)
OTHER_MAC = "00:50:56:11:22:33"  # another unregistered unicast MAC
BCAST = "ff:ff:ff:ff:ff:ff"
MCAST_V4 = "01:00:5e:00:00:fb"
MCAST_V6 = "33:33:00:00:00:01"
STP = "01:80:c2:00:00:00"
LLDP = "01:80:c2:00:00:0e"
SPOOFED = "00:03:ff:de:ad:01"

ARP, IPV4, IPV6, LOCAL_EXP = 0x0806, 0x0800, 0x86DD, 0x88B5


def filter_switch(spoof_g1: bool = False) -> Switch:
    return Switch(0x10, "filter", (
        Port(U, "uplink", None),
        Port(H, "host", HOST_MAC),
        Port(G1, "guest", G1_MAC, allow_spoofing=spoof_g1),
        Port(G2, "guest", G2_MAC),
        Port(G3, "guest", G3_MAC),
    ))


def src_of(port: int) -> str:
    return {U: LAN_MAC, H: HOST_MAC, G1: G1_MAC, G2: G2_MAC, G3: G3_MAC}[port]


@pytest.fixture(scope="module")
def filter_table() -> FakeFlowTable:
    return FakeFlowTable(flows_for(filter_switch()))


# (in_port, destination MAC, expected output ports) — one line per row of the §2 table.
FILTER_ROWS = [
    pytest.param(G1, HOST_MAC, {H}, id="guest->host MAC: H only"),
    pytest.param(G1, G2_MAC, {G2}, id="guest->other guest MAC: that guest only"),
    pytest.param(G3, G1_MAC, {G1}, id="guest3->guest1 MAC: that guest only"),
    pytest.param(G1, BCAST, {H, U, G2, G3}, id="guest broadcast: H, U, other guests"),
    pytest.param(G2, MCAST_V4, {H, U, G1, G3}, id="guest IPv4 multicast: H, U, other guests"),
    pytest.param(G2, MCAST_V6, {H, U, G1, G3}, id="guest IPv6 multicast: H, U, other guests"),
    pytest.param(G1, LAN_MAC, {U}, id="guest other unicast: U only"),
    pytest.param(U, G2_MAC, {G2}, id="U->guest MAC: that guest only"),
    pytest.param(U, HOST_MAC, {H}, id="U->host MAC: H only"),
    pytest.param(U, BCAST, {H, G1, G2, G3}, id="U broadcast: H and every guest"),
    pytest.param(U, MCAST_V6, {H, G1, G2, G3}, id="U multicast: H and every guest"),
    pytest.param(U, OTHER_MAC, set(), id="U other unicast: dropped"),
    pytest.param(H, G3_MAC, {G3}, id="H->guest MAC: that guest"),
    pytest.param(H, BCAST, {U, G1, G2, G3}, id="H broadcast: U and every guest"),
    pytest.param(H, MCAST_V4, {U, G1, G2, G3}, id="H multicast: U and every guest"),
    pytest.param(H, LAN_MAC, {U}, id="H other unicast: U only"),
    pytest.param(G1, G1_MAC, set(), id="guest to its own MAC: not back to in_port"),
    pytest.param(H, HOST_MAC, set(), id="H to its own MAC: not back to in_port"),
]


@pytest.mark.parametrize("eth_type", [ARP, IPV4, IPV6, LOCAL_EXP], ids=hex)
@pytest.mark.parametrize(("in_port", "dst", "expected"), FILTER_ROWS)
def test_filter_table_rows(filter_table, in_port, dst, expected, eth_type):
    out = filter_table.outputs(in_port, src_of(in_port), dst, eth_type)
    assert set(out) == expected
    assert len(out) == len(set(out)), "a port listed twice"
    assert in_port not in out


@pytest.mark.parametrize("in_port", [U, H, G1, G2, G3])
@pytest.mark.parametrize("dst", [STP, LLDP, "01:80:c2:00:00:03", "01:80:c2:00:00:0f"])
def test_8021d_reserved_groups_never_forwarded(filter_table, in_port, dst):
    assert filter_table.outputs(in_port, src_of(in_port), dst) == ()


def test_8021d_mask_covers_only_the_reserved_block(filter_table):
    # 01:80:c2:00:00:10 is outside the block: an ordinary multicast.
    assert set(filter_table.outputs(U, LAN_MAC, "01:80:c2:00:00:10")) == {H, G1, G2, G3}


@pytest.mark.parametrize("dst", [HOST_MAC, G2_MAC, BCAST, LAN_MAC])
def test_spoof_guard_drops_foreign_source(filter_table, dst):
    assert filter_table.outputs(G1, SPOOFED, dst) == ()
    # A guest may not borrow another guest's or the host's MAC either.
    assert filter_table.outputs(G1, G2_MAC, dst) == ()
    assert filter_table.outputs(G1, HOST_MAC, dst) == ()


@pytest.mark.parametrize(("dst", "expected"), [
    (HOST_MAC, {H}), (G2_MAC, {G2}), (BCAST, {H, U, G2, G3}), (LAN_MAC, {U}),
])
def test_spoof_guard_off_lets_any_source_through(dst, expected):
    table = FakeFlowTable(flows_for(filter_switch(spoof_g1=True)))
    assert set(table.outputs(G1, SPOOFED, dst)) == expected
    assert set(table.outputs(G1, G1_MAC, dst)) == expected
    # The others stay guarded.
    assert table.outputs(G2, SPOOFED, dst) == ()


def test_uplink_and_host_sources_are_not_spoof_guarded(filter_table):
    assert set(filter_table.outputs(U, OTHER_MAC, BCAST)) == {H, G1, G2, G3}
    assert set(filter_table.outputs(H, OTHER_MAC, LAN_MAC)) == {U}


def test_filter_without_uplink_drops_other_unicast():
    switch = Switch(0x11, "filter", (Port(H, "host", HOST_MAC), Port(G1, "guest", G1_MAC)))
    table = FakeFlowTable(flows_for(switch))
    assert table.outputs(G1, G1_MAC, LAN_MAC) == ()
    assert table.outputs(G1, G1_MAC, BCAST) == (H,)
    assert table.outputs(H, HOST_MAC, G1_MAC) == (G1,)


def test_unregistered_port_is_dropped(filter_table):
    assert filter_table.outputs(9, OTHER_MAC, BCAST) == ()
    assert filter_table.outputs(9, OTHER_MAC, G1_MAC) == ()


# Internal switch: guests a=1, b=2, c=3 (c allows spoofing), dhcp responder d=4.
A, B, C, D = 1, 2, 3, 4
A_MAC, B_MAC, C_MAC, D_MAC = (f"00:03:ff:00:01:0{i}" for i in range(1, 5))


def internal_switch(steering: bool, with_dhcp: bool = True) -> Switch:
    ports = [Port(A, "guest", A_MAC), Port(B, "guest", B_MAC),
             Port(C, "guest", C_MAC, allow_spoofing=True)]
    if with_dhcp:
        ports.append(Port(D, "dhcp", D_MAC))
    return Switch(0x20, "internal", tuple(ports), dhcp_steering=steering)


INTERNAL_MACS = {A: A_MAC, B: B_MAC, C: C_MAC, D: D_MAC}


@pytest.mark.parametrize("eth_type", [ARP, IPV4, IPV6, LOCAL_EXP], ids=hex)
@pytest.mark.parametrize(("in_port", "dst", "expected"), [
    (A, B_MAC, {B}), (B, A_MAC, {A}), (A, C_MAC, {C}), (A, D_MAC, {D}), (D, B_MAC, {B}),
    (A, BCAST, {B, C, D}), (D, BCAST, {A, B, C}), (C, MCAST_V6, {A, B, D}),
    (A, OTHER_MAC, {C}),  # unknown unicast: only a port that may own other MACs
    (C, OTHER_MAC, set()),  # ... but never back to in_port
    (D, OTHER_MAC, {C}),
    (A, A_MAC, set()),
    (A, STP, set()), (D, LLDP, set()),
])
def test_internal_switching(in_port, dst, expected, eth_type):
    table = FakeFlowTable(flows_for(internal_switch(steering=False)))
    out = table.outputs(in_port, INTERNAL_MACS[in_port], dst, eth_type)
    assert set(out) == expected
    assert in_port not in out


def test_internal_unknown_unicast_dropped_without_spoofing_ports():
    switch = Switch(0x21, "internal", (Port(A, "guest", A_MAC), Port(B, "guest", B_MAC)))
    table = FakeFlowTable(flows_for(switch))
    assert table.outputs(A, A_MAC, OTHER_MAC) == ()
    assert table.outputs(A, A_MAC, B_MAC) == (B,)


def test_internal_spoof_guard():
    table = FakeFlowTable(flows_for(internal_switch(steering=True)))
    assert table.outputs(A, SPOOFED, BCAST) == ()
    assert table.outputs(A, SPOOFED, B_MAC, IPV4, 17, 67) == ()
    assert set(table.outputs(C, SPOOFED, BCAST)) == {A, B, D}


def dhcp_discover(table: FakeFlowTable, in_port: int, dst: str = BCAST) -> set[int]:
    return set(table.outputs(in_port, INTERNAL_MACS[in_port], dst, IPV4, 17, 67))


@pytest.mark.parametrize("in_port", [A, B, C])
@pytest.mark.parametrize("dst", [BCAST, B_MAC, D_MAC, OTHER_MAC])
def test_dhcp_steering_on_reaches_only_the_responder(in_port, dst):
    table = FakeFlowTable(flows_for(internal_switch(steering=True)))
    assert dhcp_discover(table, in_port, dst) == {D}


def test_dhcp_steering_leaves_other_udp_and_server_replies_alone():
    table = FakeFlowTable(flows_for(internal_switch(steering=True)))
    # Other UDP traffic, and traffic to port 68, is switched as usual.
    assert set(table.outputs(A, A_MAC, BCAST, IPV4, 17, 68)) == {B, C, D}
    assert set(table.outputs(A, A_MAC, BCAST, IPV4, 17, 53)) == {B, C, D}
    # The responder's replies, broadcast or unicast, reach guests.
    assert set(table.outputs(D, D_MAC, BCAST, IPV4, 17, 68)) == {A, B, C}
    assert set(table.outputs(D, D_MAC, A_MAC, IPV4, 17, 68)) == {A}
    # A (rogue) server reply from a guest is not steered.
    assert set(table.outputs(B, B_MAC, BCAST, IPV4, 17, 68)) == {A, C, D}


def test_dhcp_steering_off_broadcasts_dhcp():
    table = FakeFlowTable(flows_for(internal_switch(steering=False)))
    assert dhcp_discover(table, A) == {B, C, D}
    assert dhcp_discover(table, A, B_MAC) == {B}


def test_dhcp_steering_without_responder_port_broadcasts_dhcp():
    table = FakeFlowTable(flows_for(internal_switch(steering=True, with_dhcp=False)))
    assert dhcp_discover(table, A) == {B, C}


def test_every_flow_set_has_reserved_and_lowest_drop():
    for switch in (filter_switch(), internal_switch(True), Switch(1, "internal")):
        flows = flows_for(switch)
        assert baseline_flows() <= flows
        lowest = min(flows, key=lambda f: f.priority)
        assert lowest.priority == PRIO_TABLE_MISS and lowest.match == () and lowest.actions == ()


def test_empty_switch_is_just_the_drops():
    assert flows_for(Switch(1, "filter")) == baseline_flows()


def test_flows_are_hashable_and_match_dict_feeds_ofpmatch():
    flows = flows_for(filter_switch())
    assert len({f for f in flows}) == len(flows)
    reserved = next(f for f in flows if f.priority == 1000)
    assert reserved.match_dict() == {"eth_dst": ("01:80:c2:00:00:00", "ff:ff:ff:ff:ff:f0")}


def test_mac_normalised():
    port = Port(3, "guest", "00:03:FF:0A:0B:0C")
    assert port.mac == "00:03:ff:0a:0b:0c"
    table = FakeFlowTable(flows_for(Switch(1, "internal", (port, Port(4, "guest", B_MAC)))))
    assert table.outputs(4, B_MAC, "00:03:FF:0A:0B:0C") == (3,)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Port(0, "guest", A_MAC), "out of range"),
    (lambda: Port(1, "router", A_MAC), "unknown role"),
    (lambda: Port(1, "guest", None), "needs a MAC"),
    (lambda: Port(1, "guest", "zz:03:ff:00:00:01"), "not a MAC"),
    (lambda: Port(1, "guest", BCAST), "not a unicast MAC"),
    (lambda: Switch(1, "hub"), "unknown kind"),
    (lambda: Switch(1, "filter", (Port(1, "dhcp", D_MAC),)), "no dhcp port"),
    (lambda: Switch(1, "internal", (Port(1, "uplink", None),)), "no uplink port"),
    (lambda: Switch(1, "filter", (Port(1, "uplink", None), Port(2, "uplink", None))),
     "more than one uplink"),
    (lambda: Switch(1, "internal", (Port(1, "guest", A_MAC), Port(2, "guest", A_MAC))),
     "registered on both"),
    (lambda: Switch(1, "internal", (Port(1, "guest", A_MAC), Port(1, "guest", B_MAC))),
     "given twice"),
    (lambda: Switch(1, "filter", dhcp_steering=True), "internal switches only"),
])
def test_invalid_descriptions_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_with_port_replaces_same_number():
    switch = internal_switch(False).with_port(Port(A, "guest", "00:03:ff:00:09:09"))
    assert switch.port(A).mac == "00:03:ff:00:09:09"
    assert len(switch.ports) == 4


def test_diff_add_remove_and_replace():
    old = flows_for(internal_switch(steering=False))
    new = flows_for(internal_switch(steering=False).without_port(B))
    to_delete, to_add = diff(old, new)
    # B's own flows go; flows that changed only their actions are re-added, not deleted.
    assert to_delete and all(f.match_dict().get("in_port") == B or
                             f.match_dict().get("eth_dst") == B_MAC for f in to_delete)
    changed = {f.key for f in to_add}
    assert not changed & {f.key for f in to_delete}
    assert all(f.key in {g.key for g in old} for f in to_add)  # only action changes here
    assert (old - to_delete - {f for f in old if f.key in changed}) | to_add == new


def test_diff_of_equal_sets_is_empty():
    flows = flows_for(filter_switch())
    assert diff(flows, set(flows)) == (frozenset(), frozenset())


def test_diff_applied_gives_new_set():
    for old_sw, new_sw in [
        (internal_switch(False), internal_switch(True)),
        (filter_switch(), filter_switch(spoof_g1=True)),
        (Switch(0x10, "filter"), filter_switch()),
        (filter_switch(), Switch(0x10, "filter")),
    ]:
        old, new = flows_for(old_sw), flows_for(new_sw)
        to_delete, to_add = diff(old, new)
        table = {f.key: f for f in old}
        for f in to_delete:
            del table[f.key]
        for f in to_add:
            table[f.key] = f  # an OpenFlow ADD replaces the same priority and match
        assert frozenset(table.values()) == new


def test_fake_table_flags_overlaps_and_bad_prerequisites():
    overlapping = [make_flow(5, (1,), in_port=2), make_flow(5, (3,), eth_dst=BCAST)]
    with pytest.raises(AmbiguousMatch):
        FakeFlowTable(overlapping).outputs(2, A_MAC, BCAST)
    with pytest.raises(ValueError, match="udp_dst"):
        FakeFlowTable([Flow(5, (("udp_dst", 67),), ())])


def test_describe_lines():
    lines = describe(flows_for(internal_switch(True)), labels={A: "a", D: "dhcp"})
    assert lines[0] == ("priority=1000 eth_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0 "
                        "actions=drop")
    assert lines[-1] == "priority=0 actions=drop"
    assert (f"priority=800 in_port=1(a) eth_src={A_MAC} eth_type=0x0800 ip_proto=17 "
            f"udp_dst=67 actions=output:4(dhcp)") in lines
    assert ("priority=400 in_port=4(dhcp) eth_dst=01:00:00:00:00:00/01:00:00:00:00:00 "
            "actions=output:1(a),2,3") in lines
