"""Every forwarding rule of docs/architecture.md §2 checked on a fake flow table (no root, no
switch).

Filter switch rows, spoof guard, 802.1D drop, internal switching, DHCP steering, diff(), the
two-table layout and how the flow count grows with the ports.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from controllers.flowrules import (
    PRIO_TABLE_MISS,
    TABLE_ADMISSION,
    TABLE_FORWARDING,
    Flow,
    Port,
    Switch,
    baseline_flows,
    describe,
    diff,
    explain,
    flows_for,
    is_group_mac,
    make_flow,
)
from tests.unit.fakeflowtable import AmbiguousMatch, FakeFlowTable, Frame

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
    assert lines[0] == ("table=0 priority=1000 eth_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0 "
                        "actions=drop")
    assert lines[-1] == "table=1 priority=0 actions=drop"
    assert "table=0 priority=0 actions=drop" in lines
    assert f"table=0 priority=500 in_port=1(a) eth_src={A_MAC} actions=goto_table:1" in lines
    assert "table=0 priority=500 in_port=3 actions=goto_table:1" in lines  # spoofing allowed
    assert "table=0 priority=100 in_port=1(a) actions=drop" in lines
    assert ("table=1 priority=800 in_port=1(a) eth_type=0x0800 ip_proto=17 udp_dst=67 "
            "actions=output:4(dhcp)") in lines
    assert f"table=1 priority=600 eth_dst={B_MAC} actions=output:2" in lines
    assert ("table=1 priority=400 eth_dst=01:00:00:00:00:00/01:00:00:00:00:00 "
            "actions=output:1(a),2,3,4(dhcp)") in lines
    assert "table=1 priority=200 actions=output:3" in lines
    tables = [int(line.split()[0].removeprefix("table=")) for line in lines]
    assert tables == sorted(tables)


# ---- the two-table layout ---------------------------------------------------------------------


def reference_outputs(switch: Switch, in_port: int, eth_src: str, eth_dst: str,
                      udp_dst: int | None) -> set[int]:
    """Where docs/architecture.md §2 says a frame goes, written out directly from the rule table."""
    src = switch.port(in_port)
    if src is None or (src.guarded and eth_src != src.mac):
        return set()  # unregistered port, or spoof guard
    if eth_dst.startswith("01:80:c2:00:00:0"):
        return set()  # 802.1D reserved group
    dhcp = switch.role_port("dhcp")
    if (switch.dhcp_steering and dhcp is not None and src.role == "guest"
            and udp_dst == 67):
        return {dhcp.number}
    others = {p.number for p in switch.ports if p is not src}
    if is_group_mac(eth_dst):
        return others
    owner = next((p for p in switch.ports if p.mac == eth_dst), None)
    if owner is not None:
        return {owner.number} - {in_port}
    if switch.kind == "filter":
        uplink = switch.role_port("uplink")
        if src.role == "uplink" or uplink is None:
            return set()
        return {uplink.number}
    return {p.number for p in switch.ports if p.allow_spoofing} - {in_port}


SWITCHES = {
    "filter": filter_switch(),
    "filter, g1 may spoof": filter_switch(spoof_g1=True),
    "filter, no uplink": Switch(0x11, "filter", (Port(H, "host", HOST_MAC),
                                                 Port(G1, "guest", G1_MAC),
                                                 Port(G2, "guest", G2_MAC, True))),
    "filter, uplink only": Switch(0x12, "filter", (Port(U, "uplink", None),)),
    "internal, steering": internal_switch(steering=True),
    "internal, no steering": internal_switch(steering=False),
    "internal, steering, no responder": internal_switch(steering=True, with_dhcp=False),
    "internal, two spoofers": Switch(0x22, "internal", (
        Port(A, "guest", A_MAC, True), Port(B, "guest", B_MAC, True), Port(C, "guest", C_MAC),
        Port(D, "dhcp", D_MAC)), dhcp_steering=True),
}


@pytest.mark.parametrize("name", SWITCHES)
def test_every_frame_goes_where_the_rule_table_says(name):
    switch = SWITCHES[name]
    table = FakeFlowTable(flows_for(switch))
    numbers = [p.number for p in switch.ports] + [9]
    macs = sorted({p.mac for p in switch.ports if p.mac} | {SPOOFED, LAN_MAC})
    dsts = macs + [BCAST, MCAST_V4, MCAST_V6, STP, LLDP, "01:80:c2:00:00:10"]
    udp = [(IPV4, None, None), (IPV4, 17, 67), (IPV4, 17, 68), (ARP, None, None)]
    for in_port, src, dst, (eth_type, proto, port) in itertools.product(numbers, macs, dsts, udp):
        got = table.outputs(in_port, src, dst, eth_type, proto, port)
        assert len(got) == len(set(got)), (in_port, src, dst, got)
        assert set(got) == reference_outputs(switch, in_port, src, dst, port), \
            (name, in_port, src, dst, port, table.trace(Frame(in_port, src, dst, eth_type,
                                                               proto, port)))


@pytest.mark.parametrize("steering", [False, True])
def test_flow_count_grows_linearly(steering):
    def internal(n: int) -> Switch:
        guests = tuple(Port(i, "guest", f"00:03:ff:00:{i >> 8:02x}:{i & 0xff:02x}")
                       for i in range(1, n + 1))
        return Switch(0x30, "internal", guests + (Port(n + 1, "dhcp", D_MAC),),
                      dhcp_steering=steering)

    counts = {n: len(flows_for(internal(n))) for n in (10, 100, 200)}
    # 200 guests: admission, spoof drop, known unicast (and steering and the DHCP guard) per port,
    # plus a constant.
    per_port = 5 if steering else 3
    assert counts[200] <= per_port * 201 + 6
    assert counts[200] / 201 < per_port + 1
    # Each guest adds the same few flows, however many there are already.
    assert counts[200] - counts[100] == 100 * per_port
    assert counts[100] - counts[10] == 90 * per_port


def test_one_port_more_is_a_few_flow_mods():
    ports = tuple(Port(i, "guest", f"00:03:ff:00:00:{i:02x}") for i in range(1, 101))
    before = Switch(0x31, "internal", ports + (Port(101, "dhcp", D_MAC),), dhcp_steering=True)
    after = before.with_port(Port(102, "guest", "00:03:ff:00:01:02"))
    to_delete, to_add = diff(flows_for(before), flows_for(after))
    assert not to_delete
    # admission, spoof drop, known unicast, steering, DHCP guard; the group flow gains an output.
    assert len(to_add) == 6
    to_delete, to_add = diff(flows_for(after), flows_for(before))
    assert len(to_delete) == 5 and len(to_add) == 1


def test_tables_hold_what_they_should():
    flows = flows_for(internal_switch(steering=True))
    assert {f.table for f in flows} == {TABLE_ADMISSION, TABLE_FORWARDING}
    for flow in flows:
        if flow.table == TABLE_ADMISSION:
            assert not flow.actions  # admission only drops or goes on
            assert flow.goto in (None, TABLE_FORWARDING)
        else:
            assert flow.goto is None
    admitted = [f for f in flows if f.goto == TABLE_FORWARDING and f.meter is None]
    assert sorted(f.match_dict()["in_port"] for f in admitted) == [A, B, C, D]


def test_flow_is_output_or_goto_not_both():
    with pytest.raises(ValueError, match="not both"):
        Flow(5, (), (1,), 0, 1)
    with pytest.raises(ValueError, match="later table"):
        Flow(5, (), (), 1, 1)
    with pytest.raises(ValueError, match="later table"):
        make_flow(5, table=1, goto=0)
    with pytest.raises(ValueError, match="table must be"):
        Flow(5, (), (), 255)
    assert make_flow(5, goto=1, in_port=2) == Flow(5, (("in_port", 2),), (), 0, 1)


def test_fake_table_follows_goto_skips_in_port_and_drops_on_miss():
    flows = [
        make_flow(10, goto=1, in_port=1),
        make_flow(10, goto=2, in_port=2),
        make_flow(10, (1, 2, 3), table=1, eth_dst=BCAST),
        make_flow(10, (3,), table=2),
    ]
    table = FakeFlowTable(flows)
    assert table.outputs(1, A_MAC, BCAST) == (2, 3)  # output to in_port 1 skipped
    assert table.outputs(1, A_MAC, B_MAC) == ()  # miss in table 1
    assert table.outputs(2, B_MAC, B_MAC) == (3,)  # table 1 skipped altogether
    assert table.outputs(3, C_MAC, BCAST) == ()  # miss in table 0
    assert [f.table for f in table.trace(Frame(1, A_MAC, BCAST))] == [0, 1]
    # A goto and an output at one priority disagree.
    with pytest.raises(AmbiguousMatch):
        FakeFlowTable([make_flow(5, goto=1, in_port=2),
                       make_flow(5, (3,), eth_dst=BCAST)]).outputs(2, A_MAC, BCAST)
    # The same match in two tables is no overlap.
    assert FakeFlowTable([make_flow(5, goto=1), make_flow(5, (4,), table=1)]).outputs(
        2, A_MAC, BCAST) == (4,)


def test_diff_keys_include_the_table():
    old = {make_flow(5, (1,), table=1, eth_dst=BCAST)}
    new = {make_flow(5, (1,), table=0, eth_dst=BCAST)}
    to_delete, to_add = diff(old, new)
    assert to_delete == frozenset(old) and to_add == frozenset(new)
    # Same key, a goto instead of outputs: replaced by the add alone.
    to_delete, to_add = diff({make_flow(5, (1,), in_port=2)}, {make_flow(5, goto=1, in_port=2)})
    assert not to_delete and len(to_add) == 1


def test_explain_says_every_flow_in_words() -> None:
    from controllers.flowrules import explain

    sw = Switch(1, "filter", (Port(1, "host", "00:1a:2b:3c:4d:5e"),
                              Port(2, "guest", "00:03:ff:00:00:01"), Port(3, "uplink", None)))
    flows = flows_for(sw)
    lines = explain(flows, {1: "host stack", 2: "guest xp/eth1", 3: "uplink"})
    assert len(lines) == len(flows)
    assert "to 00:1a:2b:3c:4d:5e: host stack only" in lines
    assert "from guest xp/eth1 with source 00:03:ff:00:00:01: admitted" in lines
    assert "from guest xp/eth1, any other source MAC: dropped (spoof guard)" in lines
    assert any(l.startswith("any other unicast: uplink") for l in lines)
    assert "802.1D reserved groups (01:80:c2:00:00:0x): dropped everywhere" in lines


# ---- set-field and controller actions (wireless adapters) -------------------------------------


def test_flow_set_fields_and_controller():
    flow = make_flow(5, (2,), table=1, set_fields={"eth_src": HOST_MAC}, set_outputs=(1,),
                     to_controller=True, in_port=3)
    assert flow.set_fields == (("eth_src", HOST_MAC),) and flow.set_outputs == (1,)
    assert describe([flow]) == [(f"table=1 priority=5 in_port=3 actions=CONTROLLER,output:2,"
                                 f"set_field:eth_src={HOST_MAC},output:1")]
    with pytest.raises(ValueError, match="go together"):
        make_flow(5, set_fields={"eth_src": HOST_MAC})
    with pytest.raises(ValueError, match="cannot rewrite"):
        make_flow(5, set_fields={"vlan_vid": 3}, set_outputs=(1,))
    with pytest.raises(ValueError, match="not both"):
        make_flow(5, goto=1, to_controller=True)
    assert make_flow(5).drops and not flow.drops


def test_fake_table_applies_set_fields_in_order():
    from tests.unit.fakeflowtable import CONTROLLER

    flow = make_flow(5, (2,), set_fields={"eth_src": HOST_MAC}, set_outputs=(1, 3),
                     to_controller=True, in_port=3)
    got = FakeFlowTable([flow]).deliveries(3, G1_MAC, BCAST)
    assert [(p, f.eth_src) for p, f in got] == [(CONTROLLER, G1_MAC), (2, G1_MAC), (1, HOST_MAC)]
    with pytest.raises(ValueError, match="sets arp_tha"):
        FakeFlowTable([make_flow(5, set_fields={"arp_tha": HOST_MAC}, set_outputs=(1,))])


def test_diff_replaces_when_only_rewrites_change():
    old = make_flow(5, table=1, set_fields={"eth_dst": G1_MAC}, set_outputs=(3,), in_port=1)
    new = make_flow(5, table=1, set_fields={"eth_dst": G2_MAC}, set_outputs=(4,), in_port=1)
    to_delete, to_add = diff({old}, {new})
    assert not to_delete and to_add == {new}


def test_wired_kinds_unchanged_by_new_kinds():
    # No wired flow rewrites or goes to the controller.
    for sw in (filter_switch(), internal_switch(True)):
        assert not any(f.set_fields or f.to_controller for f in flows_for(sw))


def test_dhcp_guard_drops_server_messages_from_guests_while_the_server_is_on():
    guarded = FakeFlowTable(flows_for(internal_switch(steering=True)))
    # a guest answering as a DHCP server (UDP 67 -> 68), broadcast or to another guest: dropped
    assert set(guarded.outputs(B, B_MAC, BCAST, IPV4, 17, 68, udp_src=67)) == set()
    assert set(guarded.outputs(B, B_MAC, A_MAC, IPV4, 17, 68, udp_src=67)) == set()
    # the network's own server still answers, and a guest's other UDP from port 67 is its own
    assert set(guarded.outputs(D, D_MAC, BCAST, IPV4, 17, 68, udp_src=67)) == {A, B, C}
    assert set(guarded.outputs(B, B_MAC, A_MAC, IPV4, 17, 53, udp_src=68)) == {A}
    # with the server off (a guest may serve), nothing is guarded
    open_net = FakeFlowTable(flows_for(internal_switch(steering=False)))
    assert set(open_net.outputs(B, B_MAC, BCAST, IPV4, 17, 68, udp_src=67)) == {A, C, D}


def test_dhcp_guard_on_a_filter_switch_whose_lan_serves_dhcp():
    guarded = FakeFlowTable(flows_for(replace(filter_switch(), dhcp_guard=True)))
    # a bridged guest answering as a DHCP server: reaches neither the LAN, the host nor a guest
    assert set(guarded.outputs(G2, G2_MAC, BCAST, IPV4, 17, 68, udp_src=67)) == set()
    assert set(guarded.outputs(G2, G2_MAC, G3_MAC, IPV4, 17, 68, udp_src=67)) == set()
    # the LAN's server (through the uplink) and the PC itself still answer; guests' clients ask
    assert set(guarded.outputs(U, LAN_MAC, BCAST, IPV4, 17, 68, udp_src=67)) == {H, G1, G2, G3}
    assert set(guarded.outputs(H, HOST_MAC, BCAST, IPV4, 17, 68, udp_src=67)) == {U, G1, G2, G3}
    assert set(guarded.outputs(G2, G2_MAC, BCAST, IPV4, 17, 67, udp_src=68)) == {U, H, G1, G3}
    # a LAN without DHCP: a bridged guest may serve it, as in WVPC
    open_lan = FakeFlowTable(flows_for(filter_switch()))
    assert set(open_lan.outputs(G2, G2_MAC, BCAST, IPV4, 17, 68, udp_src=67)) == {U, H, G1, G3}
    with pytest.raises(ValueError, match="dhcp_guard applies to filter and wireless"):
        Switch(1, "internal", dhcp_guard=True)


def test_a_spoofing_guests_dhcp_requests_pass_a_meter_where_dhcp_is_served():
    def metered(switch: Switch) -> dict[int, int]:
        return {f.match_dict()["in_port"]: f.meter for f in flows_for(switch) if f.meter}

    assert metered(internal_switch(steering=True)) == {C: C}  # only the spoofing-allowed guest
    assert metered(internal_switch(steering=False)) == {}  # no server: nothing to protect
    assert metered(replace(filter_switch(spoof_g1=True), dhcp_guard=True)) == {G1: G1}
    assert metered(filter_switch(spoof_g1=True)) == {}
    flows = flows_for(internal_switch(steering=True))
    meter = next(f for f in flows if f.meter)
    assert meter.match_dict()["udp_dst"] == 67 and meter.goto == TABLE_FORWARDING
    # the metered requests still reach the server alone
    assert dhcp_discover(FakeFlowTable(flows), C) == {D}
    assert any("guest 3" in line and "at most 10 a second" in line
               for line in explain(flows, {C: "guest 3"}))
