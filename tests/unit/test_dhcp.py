"""DHCP server logic without root: the wire format and the frames around it, every RFC 2131 case of
the lease decisions, expiry, exhaustion, DECLINE, client identity and who may act for a lease (one
guest, one identity), the pool's reserve, reply routing, the server's sender check and socket
filter, and fuzzing of the parser."""

from __future__ import annotations

import ipaddress
import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.dhcpwire import build_request, parse_reply
from wvpclab.runtime.dhcp import leases as L
from wvpclab.runtime.dhcp.message import IPv4, parse, parse_frame
from wvpclab.runtime.dhcp.server import load, save
from wvpclab.wire import (
    FLAG_BROADCAST,
    Malformed,
    MessageType,
    Option,
    build_udp_frame,
    checksum,
)

MT = MessageType
MAC_A = bytes.fromhex("0003ff000001")
MAC_B = bytes.fromhex("0003ff000002")
SERVER = "169.254.0.1"
T0 = 1_000_000.0


def cfg(**kw) -> L.PoolConfig:
    base = {"network": ipaddress.IPv4Network("169.254.0.0/16"), "start": IPv4("169.254.0.16"),
            "end": IPv4("169.254.10.254"), "server": IPv4(SERVER), "lease_time": 600}
    base.update(kw)
    return L.PoolConfig(**base)


def req(mtype: MessageType, mac: bytes = MAC_A, **kw) -> object:
    return parse(build_request(mtype, mac, **kw))


def decide(table: L.LeaseTable, c: L.PoolConfig, mtype: MessageType, now: float = T0,
           mac: bytes = MAC_A, **kw) -> L.Decision:
    return L.decide(table, c, req(mtype, mac, **kw), now)


def reply_of(d: L.Decision) -> dict:
    assert d.reply is not None
    return parse_reply(d.reply.build())


def dora(table: L.LeaseTable, c: L.PoolConfig, mac: bytes = MAC_A, now: float = T0,
         **kw) -> str:
    offer = reply_of(decide(table, c, MT.DISCOVER, now, mac, **kw))
    assert offer["type"] == MT.OFFER
    ack = reply_of(decide(table, c, MT.REQUEST, now, mac, requested_ip=offer["yiaddr"],
                          server_id=SERVER, **kw))
    assert ack["type"] == MT.ACK and ack["yiaddr"] == offer["yiaddr"]
    return ack["yiaddr"]


# ---- wire format ---------------------------------------------------------------------------------

def test_parse_reads_the_fields_the_server_needs() -> None:
    r = req(MT.REQUEST, requested_ip="169.254.0.20", server_id=SERVER, client_id=b"\x01" + MAC_A,
            flags=FLAG_BROADCAST, xid=0x1234)
    assert r.mtype == MT.REQUEST and r.xid == 0x1234 and r.broadcast
    assert str(r.requested_ip) == "169.254.0.20" and str(r.server_id) == SERVER
    assert r.mac == "00:03:ff:00:00:01"


@pytest.mark.parametrize("client_id, key", [
    (None, "mac:00:03:ff:00:00:01"),
    (b"\x01" + MAC_A, "mac:00:03:ff:00:00:01"),  # busybox: 01:<chaddr> is chaddr's client
    (b"\x01" + MAC_B, "id:01" + MAC_B.hex()),
    (b"\xffany-duid", "id:" + b"\xffany-duid".hex()),
])
def test_client_identity(client_id: bytes | None, key: str) -> None:
    assert req(MT.DISCOVER, client_id=client_id).client_key == key


def good() -> bytes:
    return build_request(MT.DISCOVER, MAC_A)


@pytest.mark.parametrize("data, reason", [
    (good()[:200], "truncated"),
    (good()[:-1], "no end option"),
    (good() + b"\0" * 1500, "too long"),
    (b"\x02" + good()[1:], "not a BOOTREQUEST"),
    (good()[:1] + b"\x06" + good()[2:], "not Ethernet"),
    (good()[:236] + b"\0\0\0\0" + good()[240:], "no magic cookie"),
    (good()[:240] + bytes([Option.MESSAGE_TYPE, 9, 1]), "bad option length"),
    (good()[:240] + bytes([Option.OVERLOAD, 1, 3, Option.MESSAGE_TYPE, 1, 1, 255]),
     "option overload"),
    (good()[:240] + bytes([255]), "no message type"),
    (good()[:240] + bytes([Option.MESSAGE_TYPE, 1, 99, 255]), "bad message type"),
    (good()[:240] + bytes([Option.MESSAGE_TYPE, 1, MT.OFFER, 255]), "a server message"),
    (good()[:240] + bytes([Option.MESSAGE_TYPE, 1, 1, Option.REQUESTED_IP, 3, 1, 2, 3, 255]),
     "bad option 50 length"),
    (good()[:240] + bytes([Option.MESSAGE_TYPE, 1, 1, Option.CLIENT_ID, 1, 1, 255]),
     "bad client identifier"),
])
def test_malformed_packets_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(Malformed, match=reason):
        parse(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=700))
def test_fuzz_random_bytes_never_crash(data: bytes) -> None:
    try:
        r = parse(data)
    except Malformed:
        return
    L.decide(L.LeaseTable(), cfg(), r, T0)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300), st.integers(0, 400))
def test_fuzz_options_after_a_valid_header(tail: bytes, cut: int) -> None:
    data = good()[:240] + tail
    try:
        r = parse(data[: 240 + cut])
    except Malformed:
        return
    d = L.decide(L.LeaseTable(), cfg(), r, T0)
    if d.reply is not None:
        parse_reply(d.reply.build())


# ---- decisions -----------------------------------------------------------------------------------

def test_dora_gives_the_first_pool_address_with_mask_lease_t1_t2_and_no_router() -> None:
    t, c = L.LeaseTable(), cfg()
    offer = reply_of(decide(t, c, MT.DISCOVER))
    assert offer["yiaddr"] == "169.254.0.16"
    opts = offer["options"]
    assert opts[Option.SUBNET_MASK] == bytes([255, 255, 0, 0])
    assert struct.unpack("!I", opts[Option.LEASE_TIME])[0] == 600
    assert struct.unpack("!I", opts[Option.RENEWAL_T1])[0] == 300
    assert struct.unpack("!I", opts[Option.REBINDING_T2])[0] == 525
    assert opts[Option.SERVER_ID] == IPv4(SERVER).packed
    assert Option.ROUTER not in opts and Option.DNS not in opts
    assert t.by_client["mac:00:03:ff:00:00:01"].state == L.OFFERED
    d = decide(t, c, MT.REQUEST, requested_ip="169.254.0.16", server_id=SERVER)
    assert reply_of(d)["type"] == MT.ACK and d.persist
    assert t.by_client["mac:00:03:ff:00:00:01"].state == L.BOUND


def test_router_and_dns_only_where_the_network_has_them() -> None:
    c = cfg(router=IPv4("169.254.0.1"), dns=(IPv4("169.254.0.1"),))
    opts = reply_of(decide(L.LeaseTable(), c, MT.DISCOVER))["options"]
    assert opts[Option.ROUTER] == IPv4("169.254.0.1").packed
    assert opts[Option.DNS] == IPv4("169.254.0.1").packed


def test_two_clients_get_different_addresses() -> None:
    t, c = L.LeaseTable(), cfg()
    assert dora(t, c, MAC_A) != dora(t, c, MAC_B)


def test_static_addresses_and_the_server_are_never_handed_out() -> None:
    t, c = L.LeaseTable(), cfg(excluded=frozenset({IPv4("169.254.0.16"), IPv4("169.254.0.17")}))
    assert dora(t, c) == "169.254.0.18"
    t2 = L.LeaseTable()
    offer = reply_of(decide(t2, c, MT.DISCOVER, requested_ip="169.254.0.17"))
    assert offer["yiaddr"] == "169.254.0.18"


def test_discover_honours_a_free_requested_address() -> None:
    offer = reply_of(decide(L.LeaseTable(), cfg(), MT.DISCOVER, requested_ip="169.254.3.3"))
    assert offer["yiaddr"] == "169.254.3.3"


def test_a_known_client_gets_its_address_back_while_free() -> None:
    t, c = L.LeaseTable(), cfg()
    first = dora(t, c)
    decide(t, c, MT.RELEASE, ciaddr=first)
    assert t.by_client["mac:00:03:ff:00:00:01"].state == L.RELEASED
    dora(t, c, MAC_B)
    assert dora(t, c, MAC_A, now=T0 + 5) == first


def test_client_id_identifies_across_mac_changes_once_the_old_nic_gave_it_up() -> None:
    t, c = L.LeaseTable(), cfg()
    first = dora(t, c, MAC_A, client_id=b"\xffguest-7")
    d = decide(t, c, MT.DISCOVER, T0 + 1, MAC_B, client_id=b"\xffguest-7")
    assert d.reply is None and d.count == L.NOT_ITS_OWN  # A's lease is in force: not B's
    decide(t, c, MT.RELEASE, T0 + 2, MAC_A, ciaddr=first, client_id=b"\xffguest-7")
    assert dora(t, c, MAC_B, now=T0 + 3, client_id=b"\xffguest-7") == first
    assert t.by_client["id:" + b"\xffguest-7".hex()].mac == "00:03:ff:00:00:02"


def test_selecting_another_server_drops_our_offer_silently() -> None:
    t, c = L.LeaseTable(), cfg()
    decide(t, c, MT.DISCOVER)
    d = decide(t, c, MT.REQUEST, requested_ip="169.254.0.16", server_id="169.254.0.2")
    assert d.reply is None
    assert "mac:00:03:ff:00:00:01" not in t.by_client


def test_selecting_an_address_not_offered_is_nakked() -> None:
    t, c = L.LeaseTable(), cfg()
    decide(t, c, MT.DISCOVER)
    r = reply_of(decide(t, c, MT.REQUEST, requested_ip="169.254.0.99", server_id=SERVER))
    assert r["type"] == MT.NAK and r["yiaddr"] == "0.0.0.0"


def test_init_reboot_cases() -> None:
    t, c = L.LeaseTable(), cfg()
    ip = dora(t, c)
    assert reply_of(decide(t, c, MT.REQUEST, T0 + 10, requested_ip=ip))["type"] == MT.ACK
    assert reply_of(decide(t, c, MT.REQUEST, T0 + 10, requested_ip="10.1.2.3"))["type"] == MT.NAK
    nak = reply_of(decide(t, c, MT.REQUEST, T0 + 10, requested_ip="169.254.0.40"))
    assert nak["type"] == MT.NAK
    # no record of this client: silent (RFC 2131 §4.3.2)
    assert decide(t, c, MT.REQUEST, T0 + 10, mac=MAC_B, requested_ip="169.254.0.41").reply is None


def test_init_reboot_into_an_address_someone_else_holds_is_nakked() -> None:
    t, c = L.LeaseTable(), cfg()
    a = dora(t, c, MAC_A)
    b = dora(t, c, MAC_B)
    assert reply_of(decide(t, c, MT.REQUEST, T0, MAC_B, requested_ip=a))["type"] == MT.NAK
    assert t.by_client["mac:00:03:ff:00:00:02"].ip == IPv4(b)


def test_renewing_and_rebinding_extend_the_lease() -> None:
    t, c = L.LeaseTable(), cfg()
    ip = dora(t, c)
    d = decide(t, c, MT.REQUEST, T0 + 300, ciaddr=ip)  # RENEWING (unicast, ciaddr)
    assert reply_of(d)["type"] == MT.ACK and reply_of(d)["ciaddr"] == ip
    assert t.by_client["mac:00:03:ff:00:00:01"].expires == T0 + 300 + 600
    assert L.destination(d.reply.request, d.reply) == (None, IPv4(ip), 68)
    d = decide(t, c, MT.REQUEST, T0 + 560, ciaddr=ip, flags=FLAG_BROADCAST)  # REBINDING
    assert reply_of(d)["type"] == MT.ACK


def test_renewing_from_another_network_or_anothers_address_is_nakked() -> None:
    t, c = L.LeaseTable(), cfg()
    a = dora(t, c, MAC_A)
    dora(t, c, MAC_B)
    assert reply_of(decide(t, c, MT.REQUEST, T0, MAC_B, ciaddr=a))["type"] == MT.NAK
    assert reply_of(decide(t, c, MT.REQUEST, T0, ciaddr="10.0.0.5"))["type"] == MT.NAK


def test_a_lost_client_renewing_a_free_address_keeps_it() -> None:
    t, c = L.LeaseTable(), cfg()
    assert reply_of(decide(t, c, MT.REQUEST, ciaddr="169.254.4.4"))["type"] == MT.ACK
    assert t.by_ip[IPv4("169.254.4.4")].client == "mac:00:03:ff:00:00:01"


def test_leases_expire_and_the_address_can_go_to_another_client() -> None:
    c = cfg(start=IPv4("169.254.0.16"), end=IPv4("169.254.0.16"))
    t = L.LeaseTable()
    ip = dora(t, c, MAC_A)
    assert decide(t, c, MT.DISCOVER, T0 + 100, MAC_B).reply is None  # still A's
    assert dora(t, c, MAC_B, now=T0 + 601) == ip  # expired
    assert "mac:00:03:ff:00:00:01" not in t.by_client


def test_offers_are_held_briefly() -> None:
    c = cfg(start=IPv4("169.254.0.16"), end=IPv4("169.254.0.16"))
    t = L.LeaseTable()
    decide(t, c, MT.DISCOVER, T0, MAC_A)
    assert decide(t, c, MT.DISCOVER, T0 + 1, MAC_B).reply is None
    assert reply_of(decide(t, c, MT.DISCOVER, T0 + c.offer_hold + 1, MAC_B))["type"] == MT.OFFER


def test_pool_exhausted_no_offer_but_renewals_still_served() -> None:
    c = cfg(start=IPv4("169.254.0.16"), end=IPv4("169.254.0.17"))
    t = L.LeaseTable()
    a = dora(t, c, MAC_A)
    dora(t, c, MAC_B)
    d = decide(t, c, MT.DISCOVER, mac=bytes.fromhex("0003ff000003"))
    assert d.reply is None and "exhausted" in (d.note or "")
    assert reply_of(decide(t, c, MT.REQUEST, T0 + 100, ciaddr=a))["type"] == MT.ACK


def test_decline_sets_the_address_aside() -> None:
    t, c = L.LeaseTable(), cfg()
    ip = dora(t, c)
    d = decide(t, c, MT.DECLINE, requested_ip=ip, server_id=SERVER)
    assert d.reply is None and d.persist
    assert IPv4(ip) in t.declined
    assert dora(t, c, MAC_A, now=T0 + 1) != ip
    assert dora(t, c, MAC_B, now=T0 + 2) != ip


def test_inform_acks_without_a_lease() -> None:
    t, c = L.LeaseTable(), cfg()
    d = decide(t, c, MT.INFORM, ciaddr="169.254.7.7")
    r = reply_of(d)
    assert r["type"] == MT.ACK and r["yiaddr"] == "0.0.0.0"
    assert Option.LEASE_TIME not in r["options"] and Option.SUBNET_MASK in r["options"]
    assert L.destination(d.reply.request, d.reply) == (None, IPv4("169.254.7.7"), 68)
    assert not t.by_client


def test_relayed_requests_are_answered_to_the_relay_on_port_67() -> None:
    t, c = L.LeaseTable(), cfg()
    d = decide(t, c, MT.DISCOVER, giaddr="169.254.0.5")
    assert reply_of(d)["giaddr"] == "169.254.0.5"
    assert L.destination(d.reply.request, d.reply) == (None, IPv4("169.254.0.5"), 67)
    assert decide(t, c, MT.DISCOVER, mac=MAC_B, giaddr="10.9.9.9").reply is None


def test_replies_to_clients_without_an_address_go_to_their_mac_unless_they_ask_broadcast() -> None:
    t, c = L.LeaseTable(), cfg()
    d = decide(t, c, MT.DISCOVER)
    assert L.destination(d.reply.request, d.reply) == ("00:03:ff:00:00:01",
                                                       IPv4("169.254.0.16"), 68)
    d = decide(t, c, MT.REQUEST, requested_ip="169.254.0.16", server_id=SERVER)
    assert L.destination(d.reply.request, d.reply) == ("00:03:ff:00:00:01",
                                                       IPv4("169.254.0.16"), 68)
    d = decide(t, c, MT.DISCOVER, mac=MAC_B, flags=FLAG_BROADCAST)  # RFC 2131 §4.1
    assert L.destination(d.reply.request, d.reply) == (L.BROADCAST_MAC, L.BROADCAST, 68)


def test_naks_are_always_broadcast_but_to_a_relay() -> None:
    t, c = L.LeaseTable(), cfg()
    for kw in ({"ciaddr": "10.0.0.5"}, {"requested_ip": "10.0.0.5"}):
        d = decide(t, c, MT.REQUEST, **kw)
        assert d.reply.mtype == MT.NAK
        assert L.destination(d.reply.request, d.reply) == (L.BROADCAST_MAC, L.BROADCAST, 68)
    d = decide(t, c, MT.REQUEST, ciaddr="10.0.0.5", giaddr="169.254.0.5")
    assert L.destination(d.reply.request, d.reply) == (None, IPv4("169.254.0.5"), 67)


def test_client_id_is_echoed() -> None:
    r = reply_of(decide(L.LeaseTable(), cfg(), MT.DISCOVER, client_id=b"\x01" + MAC_A))
    assert r["options"][Option.CLIENT_ID] == b"\x01" + MAC_A


def test_internal_pool_has_2799_addresses() -> None:
    assert cfg().size == 2799


def test_lease_file_round_trip_and_atomic_write(tmp_path: Path) -> None:
    t, c = L.LeaseTable(), cfg()
    a, b = dora(t, c, MAC_A), dora(t, c, MAC_B)
    decide(t, c, MT.DECLINE, mac=MAC_B, requested_ip=b, server_id=SERVER)
    path = tmp_path / "leases.json"
    save(path, t.to_json())
    assert not (tmp_path / "leases.json.tmp").exists()
    again = load(path, print)
    assert again.by_client["mac:00:03:ff:00:00:01"].ip == IPv4(a)
    assert IPv4(b) in again.declined
    assert reply_of(decide(again, c, MT.REQUEST, T0 + 100, ciaddr=a))["type"] == MT.ACK


def test_a_corrupt_lease_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "leases.json"
    path.write_text("{not json")
    notes: list[str] = []
    assert load(path, notes.append).by_client == {}
    assert (tmp_path / "leases.json.corrupt").exists() and "unreadable" in notes[0]


def test_snapshot_for_people() -> None:
    t, c = L.LeaseTable(), cfg()
    dora(t, c, MAC_A)
    rows = t.snapshot(T0 + 10)
    assert rows[0]["ip"] == "169.254.0.16" and rows[0]["remaining"] == 590
    assert rows[0]["state"] == "bound"
    assert t.snapshot(T0 + 700)[0]["state"] == "expired"
    json.dumps(rows)


def write_journal(path: Path, records: list[dict]) -> None:
    from wvpclab.runtime.dhcp.server import journal_path

    with open(journal_path(path), "a", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def test_snapshot_plus_journal_is_the_table(tmp_path: Path) -> None:
    from wvpclab.runtime.dhcp.server import read_table

    path = tmp_path / "leases.json"
    t, c = L.LeaseTable(), cfg()
    a = dora(t, c, MAC_A)
    save(path, t.to_json())
    t.journal.clear()
    b = dora(t, c, MAC_B, now=T0 + 1)                      # bound after the snapshot
    decide(t, c, MT.RELEASE, T0 + 2, MAC_A, ciaddr=a)       # released after it
    decide(t, c, MT.DECLINE, T0 + 3, MAC_B, requested_ip=b, server_id=SERVER)
    assert {next(iter(r)) for r in t.journal} == {"set", "drop", "decline"}
    write_journal(path, t.journal)
    again = read_table(path)
    assert {k: (v.ip, v.state) for k, v in again.by_client.items()} == \
        {k: (v.ip, v.state) for k, v in t.by_client.items() if v.state != L.OFFERED}
    assert again.declined == t.declined
    # replaying the journal over a snapshot that already holds it changes nothing
    save(path, again.to_json())
    assert read_table(path).to_json() == again.to_json()


def test_a_journal_line_cut_short_by_a_crash_is_ignored(tmp_path: Path) -> None:
    from wvpclab.runtime.dhcp.server import journal_path, read_table

    path = tmp_path / "leases.json"
    t, c = L.LeaseTable(), cfg()
    ip = dora(t, c, MAC_A)
    write_journal(path, t.journal)
    with open(journal_path(path), "a", encoding="utf-8") as f:
        f.write('{"set": {"client": "mac:00:03:ff:00:00:09", "ip": "169.2')
    again = read_table(path)
    assert list(again.by_client) == ["mac:00:03:ff:00:00:01"]
    assert str(again.by_client["mac:00:03:ff:00:00:01"].ip) == ip


def test_offers_are_not_journaled() -> None:
    t, c = L.LeaseTable(), cfg()
    decide(t, c, MT.DISCOVER)
    assert t.journal == []


def test_a_client_identifier_split_over_options_is_read_and_echoed_split() -> None:
    """RFC 3396: an option over 255 bytes arrives as several instances and is sent back so."""
    from wvpclab.runtime.dhcp.message import Reply
    from wvpclab.wire import encode_option

    cid = b"\xff" + bytes(range(256)) * 2
    req = parse(build_request(MessageType.DISCOVER, bytes.fromhex("0203ff000001"), 7,
                              client_id=cid))
    assert req.client_id == cid
    wire = Reply(MessageType.OFFER, req).build()
    assert parse_reply(wire)  # well formed
    assert wire.count(bytes((61, 255))) == 2 and bytes((61, len(cid) - 510)) in wire
    assert encode_option(61, b"") == bytes((61, 0))


# ---- one guest, one identity ---------------------------------------------------------------------

MAC_C = bytes.fromhex("0003ff000003")
RELAY = "169.254.0.5"


def state(t: L.LeaseTable, mac: bytes = MAC_A) -> tuple[str, str] | None:
    lease = t.by_client.get("mac:" + mac.hex(":"))
    return (str(lease.ip), lease.state) if lease else None


def test_a_decline_from_anyone_but_the_holder_changes_nothing() -> None:
    t, c = L.LeaseTable(), cfg()
    ip = dora(t, c, MAC_A)
    forged = [
        {"mac": MAC_B},                                   # another guest, its own identity
        {"mac": MAC_B, "client_id": b"\x01" + MAC_A},     # another guest naming A's client id
        {"mac": MAC_A, "giaddr": RELAY},                  # A's chaddr, through a "relay"
    ]
    for kw in forged:
        d = decide(t, c, MT.DECLINE, T0 + 1, requested_ip=ip, server_id=SERVER, **kw)
        assert d.reply is None and not d.persist and d.count == L.DECLINE_IGNORED, kw
    assert not t.declined and not t.journal[1:]
    assert state(t) == (ip, L.BOUND)
    # and nobody can set aside an address nobody holds
    assert decide(t, c, MT.DECLINE, mac=MAC_B, requested_ip="169.254.5.5").count == \
        L.DECLINE_IGNORED
    assert not t.declined


def test_the_holder_may_decline_an_offered_or_bound_address() -> None:
    t, c = L.LeaseTable(), cfg()
    offered = reply_of(decide(t, c, MT.DISCOVER))["yiaddr"]
    assert decide(t, c, MT.DECLINE, requested_ip=offered).persist
    bound = dora(t, c, MAC_B)
    assert decide(t, c, MT.DECLINE, T0 + 1, MAC_B, requested_ip=bound).persist
    assert set(t.declined) == {IPv4(offered), IPv4(bound)}
    assert t.decliners == {IPv4(offered): "00:03:ff:00:00:01", IPv4(bound): "00:03:ff:00:00:02"}


def test_a_hardware_address_sets_aside_at_most_a_few_addresses() -> None:
    t, c = L.LeaseTable(), cfg()
    for n in range(c.max_per_mac + 2):
        ip = reply_of(decide(t, c, MT.DISCOVER, T0 + n))["yiaddr"]
        d = decide(t, c, MT.DECLINE, T0 + n, requested_ip=ip)
        assert d.persist and state(t) is None  # the client lets the address go either way
        assert d.count == (L.DECLINES_CAPPED if n >= c.max_per_mac else None)
    assert len(t.declined) == c.max_per_mac
    # once the first ones are no longer set aside, it may decline again
    later = T0 + c.decline_hold + 1
    ip = reply_of(decide(t, c, MT.DISCOVER, later))["yiaddr"]
    assert decide(t, c, MT.DECLINE, later, requested_ip=ip).count is None


def test_a_release_from_anyone_but_the_holder_changes_nothing() -> None:
    t, c = L.LeaseTable(), cfg()
    ip = dora(t, c, MAC_A)
    for kw in ({"mac": MAC_B, "client_id": b"\x01" + MAC_A}, {"mac": MAC_B},
               {"mac": MAC_A, "giaddr": RELAY}):
        d = decide(t, c, MT.RELEASE, T0 + 1, ciaddr=ip, **kw)
        assert d.reply is None and not d.persist and d.count == L.RELEASE_IGNORED, kw
    assert state(t) == (ip, L.BOUND)
    assert decide(t, c, MT.RELEASE, T0 + 1, ciaddr=ip).persist
    assert state(t) == (ip, L.RELEASED)


def test_a_relayed_client_releases_through_its_relay_or_directly() -> None:
    t, c = L.LeaseTable(), cfg()
    ip = dora(t, c, MAC_A, giaddr=RELAY)
    assert t.by_client["mac:00:03:ff:00:00:01"].relay == IPv4(RELAY)
    assert L.LeaseTable.from_json(t.to_json()).by_client["mac:00:03:ff:00:00:01"].relay == \
        IPv4(RELAY)
    assert decide(t, c, MT.RELEASE, T0 + 1, ciaddr=ip, giaddr="169.254.0.6").count == \
        L.RELEASE_IGNORED
    assert decide(t, c, MT.RELEASE, T0 + 1, ciaddr=ip, giaddr=RELAY).persist
    ip2 = dora(t, c, MAC_B, giaddr=RELAY)
    assert decide(t, c, MT.RELEASE, T0 + 1, MAC_B, ciaddr=ip2).persist  # unicast, no relay


@pytest.mark.parametrize("kw", [
    {"requested_ip": "IP", "server_id": SERVER},  # SELECTING
    {"requested_ip": "IP"},                       # INIT-REBOOT
    {"ciaddr": "IP"},                             # RENEWING
    {"ciaddr": "IP", "flags": FLAG_BROADCAST},    # REBINDING
])
def test_a_request_for_a_lease_of_another_hardware_address_is_nakked(kw: dict) -> None:
    t, c = L.LeaseTable(), cfg()
    ip = dora(t, c, MAC_A, client_id=b"\xffvictim")
    before = dict(t.by_client["id:" + b"\xffvictim".hex()].as_dict())
    kw = {k: ip if v == "IP" else v for k, v in kw.items()}
    for mac, extra in ((MAC_B, {}), (MAC_A, {"giaddr": RELAY})):
        d = decide(t, c, MT.REQUEST, T0 + 100, mac, client_id=b"\xffvictim", **kw, **extra)
        assert reply_of(d)["type"] == MT.NAK and d.count == L.NOT_ITS_OWN
    assert t.by_client["id:" + b"\xffvictim".hex()].as_dict() == before


def test_a_hardware_address_holds_at_most_a_few_leases() -> None:
    t, c = L.LeaseTable(), cfg()
    for n in range(c.max_per_mac):
        dora(t, c, MAC_A, client_id=b"\xffos-%d" % n)
    d = decide(t, c, MT.DISCOVER, client_id=b"\xffos-new")
    assert d.reply is None and d.count == L.TOO_MANY and "00:03:ff:00:00:01" in d.note
    # nor by renewing an address it never had (a "client we lost track of")
    d = decide(t, c, MT.REQUEST, client_id=b"\xffos-new", ciaddr="169.254.9.9")
    assert reply_of(d)["type"] == MT.NAK and d.count == L.TOO_MANY
    assert IPv4("169.254.9.9") not in t.by_ip
    # a client that holds one renews and is offered its own; other hardware addresses go on
    assert reply_of(decide(t, c, MT.DISCOVER, client_id=b"\xffos-0"))["type"] == MT.OFFER
    assert reply_of(decide(t, c, MT.REQUEST, T0 + 9, client_id=b"\xffos-1",
                           ciaddr="169.254.0.17"))["type"] == MT.ACK
    assert dora(t, c, MAC_B)
    # a lease that ends frees a place
    decide(t, c, MT.RELEASE, T0 + 10, ciaddr="169.254.0.16", client_id=b"\xffos-0")
    assert dora(t, c, MAC_A, now=T0 + 11, client_id=b"\xffos-new")
    assert t.held_by("00:03:ff:00:00:01", T0 + 11) == c.max_per_mac


def test_the_mac_index_follows_every_change() -> None:
    t, c = L.LeaseTable(), cfg(start=IPv4("169.254.0.16"), end=IPv4("169.254.0.17"))
    dora(t, c, MAC_A)
    dora(t, c, MAC_B, client_id=b"\xffx")
    assert t.by_mac == {"00:03:ff:00:00:01": {"mac:00:03:ff:00:00:01"},
                        "00:03:ff:00:00:02": {"id:" + b"\xffx".hex()}}
    # A's lease ends; C takes its address: A's record (and index entry) goes
    dora(t, c, MAC_C, now=T0 + 700)
    assert "00:03:ff:00:00:01" not in t.by_mac
    assert t.by_mac["00:03:ff:00:00:03"] == {"mac:00:03:ff:00:00:03"}
    t.drop("id:" + b"\xffx".hex())
    assert set(t.by_mac) == {"00:03:ff:00:00:03"}
    again = L.LeaseTable.from_json(t.to_json())
    assert again.by_mac == t.by_mac


# ---- the pool's reserve --------------------------------------------------------------------------

def small(**kw) -> L.PoolConfig:
    """20 addresses, .16-.35; the reserve is 8 by default."""
    return cfg(start=IPv4("169.254.0.16"), end=IPv4("169.254.0.35"), **kw)


def unknown_mac(n: int) -> bytes:
    return bytes.fromhex("0a0000000000")[:-2] + n.to_bytes(2, "big")


def test_reserve_arithmetic() -> None:
    assert cfg().reserve == 2799 // 10 == 279
    assert small().reserve == 8  # max(8, 2)
    assert small(reserve=3).reserve == 3
    with pytest.raises(ValueError, match="negative"):
        small(reserve=-1)
    assert small().usable == 20
    assert small(excluded=frozenset({IPv4("169.254.0.20"), IPv4("169.254.1.1")}),
                 server=IPv4("169.254.0.35")).usable == 18
    assert small().is_known("anything") and not small(known=frozenset()).is_known("a")


def test_unknown_hardware_addresses_leave_the_reserve_to_known_ones() -> None:
    c = small(known=frozenset({"00:03:ff:00:00:01", "00:03:ff:00:00:02"}))
    t = L.LeaseTable()
    for n in range(20 - 8):  # 12 unknown clients take all but the reserve
        dora(t, c, unknown_mac(n))
    d = decide(t, c, MT.DISCOVER, mac=unknown_mac(99))
    assert d.reply is None and d.count == L.RESERVED and "reserve of 8" in d.note
    assert reply_of(decide(t, c, MT.REQUEST, mac=unknown_mac(99),
                           ciaddr="169.254.0.30"))["type"] == MT.NAK
    assert dora(t, c, MAC_A) and dora(t, c, MAC_B)  # known ones still lease
    # an unknown client that holds a lease keeps renewing it
    assert reply_of(decide(t, c, MT.REQUEST, T0 + 100, unknown_mac(0),
                           ciaddr="169.254.0.16"))["type"] == MT.ACK
    # leases that end and addresses set aside count as they are at the time
    later = T0 + 601  # every lease but the renewed one has ended
    assert reply_of(decide(t, c, MT.DISCOVER, later, unknown_mac(99)))["type"] == MT.OFFER


def test_without_a_known_list_everyone_may_use_the_whole_pool() -> None:
    t, c = L.LeaseTable(), small()
    for n in range(20):
        dora(t, c, unknown_mac(n))
    assert decide(t, c, MT.DISCOVER, mac=unknown_mac(99)).count == L.EXHAUSTED


def test_free_count_is_exact_near_the_end_of_the_pool() -> None:
    c = small(known=frozenset())
    t = L.LeaseTable()
    for n in range(11):
        dora(t, c, unknown_mac(n))
    assert t.free_more_than(c, 8, T0)         # 9 free
    t.decline(IPv4("169.254.0.34"), T0 + 50)  # 8 free: only the reserve
    assert not t.free_more_than(c, 8, T0)
    assert t.free_more_than(c, 8, T0 + 51)    # no longer set aside
    assert t.free_more_than(c, 18, T0 + 601)  # the leases ended


# ---- frames --------------------------------------------------------------------------------------

SERVER_MAC = bytes.fromhex("0203ff0000fe")


def frame(payload: bytes, src: bytes = MAC_A, dst_ip: str = "255.255.255.255",
          src_ip: str = "0.0.0.0", sport: int = 68) -> bytes:
    return build_udp_frame(b"\xff" * 6, src, IPv4(src_ip).packed, IPv4(dst_ip).packed, sport, 67,
                           payload)


def test_a_built_frame_is_what_scapy_reads_with_correct_checksums() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    payload = build_request(MT.DISCOVER, MAC_A, 7)
    wire = build_udp_frame(MAC_A, SERVER_MAC, IPv4(SERVER).packed, IPv4("169.254.0.16").packed, 67,
                           68, payload)
    pkt = Ether(wire)
    assert (pkt.dst, pkt.src) == ("00:03:ff:00:00:01", "02:03:ff:00:00:fe")
    assert (pkt[IP].src, pkt[IP].dst, pkt[IP].ttl) == (SERVER, "169.254.0.16", 64)
    assert (pkt[UDP].sport, pkt[UDP].dport) == (67, 68)
    assert bytes(pkt[UDP].payload) == payload
    ip_sum, udp_sum = pkt[IP].chksum, pkt[UDP].chksum
    del pkt[IP].chksum, pkt[UDP].chksum  # scapy computes them again on build
    again = Ether(bytes(pkt))
    assert (again[IP].chksum, again[UDP].chksum) == (ip_sum, udp_sum) and udp_sum != 0


def test_a_frame_from_scapy_parses_padding_and_all() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    payload = b"x" * 4  # short: Ethernet pads the frame
    wire = bytes(Ether(src="00:03:ff:00:00:01", dst="ff:ff:ff:ff:ff:ff")
                 / IP(src="169.254.3.3", dst=SERVER) / UDP(sport=68, dport=67) / payload)
    sent = parse_frame(wire + b"\0" * 20)
    assert (sent.src_mac, str(sent.src_ip), str(sent.dst_ip), sent.src_port, sent.payload) == \
        (MAC_A, "169.254.3.3", SERVER, 68, payload)


def test_checksum_of_a_header_with_its_checksum_is_zero() -> None:
    wire = frame(b"hello")
    assert checksum(wire[14:34]) == 0
    assert checksum(b"\x01") == ~0x0100 & 0xFFFF


def _patch(wire: bytes, at: int, value: bytes, fix_ip_sum: bool = True) -> bytes:
    out = bytearray(wire)
    out[at:at + len(value)] = value
    if fix_ip_sum:
        out[24:26] = b"\0\0"
        out[24:26] = struct.pack("!H", checksum(bytes(out[14:34])))
    return bytes(out)


GOOD = frame(build_request(MT.DISCOVER, MAC_A))


@pytest.mark.parametrize("wire, reason", [
    (GOOD[:41], "truncated frame"),
    (_patch(GOOD, 12, b"\x86\xdd"), "not IPv4"),
    (_patch(GOOD, 14, b"\x65"), "bad IP header"),
    (_patch(GOOD, 14, b"\x44"), "bad IP header"),
    (_patch(GOOD, 16, b"\x10\x00"), "bad IP length"),
    (_patch(GOOD, 16, b"\x00\x1b"), "bad IP length"),
    (_patch(GOOD, 20, b"\x20\x00"), "IP fragment"),
    (_patch(GOOD, 20, b"\x00\x10"), "IP fragment"),
    (_patch(GOOD, 23, b"\x06"), "not UDP"),
    (_patch(GOOD, 22, b"\x01", fix_ip_sum=False), "bad IP checksum"),
    (_patch(GOOD, 36, b"\x00\x44"), "not to port 67"),
    (_patch(GOOD, 38, b"\x00\x07"), "bad UDP length"),
    (_patch(GOOD, 38, b"\xff\xff"), "bad UDP length"),
])
def test_malformed_frames_are_refused_with_a_reason(wire: bytes, reason: str) -> None:
    with pytest.raises(Malformed, match=reason):
        parse_frame(wire)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=400), st.integers(0, 400))
def test_fuzz_frames_never_crash(junk: bytes, cut: int) -> None:
    for wire in (junk, GOOD[:cut] + junk, GOOD[:14] + junk):
        try:
            parse(parse_frame(wire).payload)
        except Malformed:
            pass


# ---- the server's reading of frames (no sockets: Server.open() is not called) --------------------

def server(tmp_path: Path, **kw) -> object:
    from wvpclab.runtime.dhcp.server import Server

    return Server(cfg(), "eth0", tmp_path / "leases.json", tmp_path / "log", **kw)


def test_the_server_drops_a_request_whose_hardware_address_is_not_the_senders(
        tmp_path: Path) -> None:
    from wvpclab.runtime.dhcp.server import NOT_A_RELAY, NOT_THE_SENDER

    s = server(tmp_path)
    reply, _ = s.handle(frame(build_request(MT.DISCOVER, MAC_B), src=MAC_A), T0)
    assert reply is None and s.stats[NOT_THE_SENDER] == 1 and not s.table.by_client
    reply, _ = s.handle(frame(build_request(MT.DISCOVER, MAC_A), src=MAC_A), T0)
    assert reply.mtype == MT.OFFER
    # a relay sends for others, from port 67: its requests are not checked so (ownership still
    # is); a "relay" sending from elsewhere is no relay
    relayed = build_request(MT.DISCOVER, MAC_C, giaddr=RELAY)
    reply, _ = s.handle(frame(relayed, src=MAC_A, src_ip=RELAY, dst_ip=SERVER, sport=67), T0)
    assert reply.mtype == MT.OFFER and s.stats[NOT_THE_SENDER] == 1
    reply, _ = s.handle(frame(relayed, src=MAC_A, src_ip=RELAY, dst_ip=SERVER), T0)
    assert reply is None and s.stats[NOT_A_RELAY] == 1


def test_translators_and_any_sender(tmp_path: Path) -> None:
    from wvpclab.runtime.dhcp.server import NOT_THE_SENDER

    s = server(tmp_path, translators=frozenset({"00:03:ff:00:00:02"}))
    assert s.handle(frame(build_request(MT.DISCOVER, MAC_C), src=MAC_B), T0)[0] is not None
    assert s.handle(frame(build_request(MT.DISCOVER, MAC_C), src=MAC_A), T0)[0] is None
    assert s.stats[NOT_THE_SENDER] == 1
    s = server(tmp_path, check_sender=False)
    assert s.handle(frame(build_request(MT.DISCOVER, MAC_C), src=MAC_A), T0)[0] is not None


def test_the_server_counts_frames_not_for_it(tmp_path: Path) -> None:
    from wvpclab.runtime.dhcp.server import NOT_FOR_US

    s = server(tmp_path)
    discover = build_request(MT.DISCOVER, MAC_A)
    assert s.handle(frame(discover, dst_ip="169.254.0.99"), T0)[0] is None
    assert s.handle(frame(discover, dst_ip="169.254.1.255"), T0)[0] is None
    assert s.handle(GOOD[:30], T0)[0] is None
    assert s.handle(frame(b"\x02" + discover[1:]), T0)[0] is None
    for dst in (SERVER, "255.255.255.255", "169.254.255.255"):
        assert s.handle(frame(discover, dst_ip=dst), T0)[0] is not None
    assert s.stats[NOT_FOR_US] == 2 and s.stats["dropped: truncated frame"] == 1
    assert s.stats["dropped: not a BOOTREQUEST"] == 1 and s.stats["received"] == 7


def test_refusals_are_counted_under_their_names(tmp_path: Path) -> None:
    s = server(tmp_path)
    for n in range(6):
        s.handle(frame(build_request(MT.DISCOVER, MAC_A, client_id=b"\xff%d" % n)), T0)
    s.handle(frame(build_request(MT.DECLINE, MAC_B, requested_ip="169.254.0.16"), MAC_B), T0)
    assert s.stats[L.TOO_MANY] == 2 and s.stats[L.DECLINE_IGNORED] == 1
    assert s.stats["in DISCOVER"] == 6


def test_known_file_is_read_and_read_again(tmp_path: Path) -> None:
    from wvpclab.runtime.dhcp.server import read_known

    path = tmp_path / "known"
    path.write_text("# guests\n00:03:FF:00:00:01\n\n00:03:ff:00:00:02  # xp\n")
    assert read_known(path) == {"00:03:ff:00:00:01", "00:03:ff:00:00:02"}
    s = server(tmp_path, known_path=path)
    assert s.cfg.known == {"00:03:ff:00:00:01", "00:03:ff:00:00:02"}
    path.write_text("00:03:ff:00:00:03\n")
    s.hangup()
    s.reload_known()
    assert s.cfg.known == {"00:03:ff:00:00:03"} and s.stats["known file read"] == 2
    path.write_text("00:03:ff:00:00:03\nnot-a-mac\n")
    s.reload_known()  # the old list stays in force
    assert s.cfg.known == {"00:03:ff:00:00:03"} and s.stats["known file unreadable"] == 1
    with pytest.raises(ValueError, match="known:2: not a MAC address"):
        read_known(path)


def test_the_socket_filter_passes_only_udp_to_port_67() -> None:
    """The hand-written BPF program, run by the kernel on a Unix datagram socket (no root)."""
    import socket

    from wvpclab.runtime.dhcp.server import TO_SERVER_PORT, attach_filter

    for i, (code, jt, jf, _k) in enumerate(TO_SERVER_PORT):  # every jump lands on "drop"
        if code in (0x15, 0x45):
            assert {i + 1 + jt, i + 1 + jf} <= {i + 1, len(TO_SERVER_PORT) - 1}
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        attach_filter(b, TO_SERVER_PORT)
        b.setblocking(False)
        tcp = _patch(GOOD, 23, b"\x06")
        later_fragment = _patch(GOOD, 20, b"\x00\x10")
        to_68 = _patch(GOOD, 36, b"\x00\x44")
        options = _patch(GOOD[:34] + b"\0" * 4 + GOOD[34:], 14, b"\x46")  # a 24-byte IP header
        for wire in (tcp, later_fragment, to_68, _patch(GOOD, 12, b"\x86\xdd"), GOOD,
                     options, _patch(GOOD, 20, b"\x40\x00")):  # DF is fine
            a.send(wire)
        got = []
        while True:
            try:
                got.append(b.recv(4096))
            except BlockingIOError:
                break
    assert got == [GOOD, options, _patch(GOOD, 20, b"\x40\x00")]
