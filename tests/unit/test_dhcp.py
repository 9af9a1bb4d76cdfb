"""DHCP server logic without root: the wire format, every RFC 2131 case of the lease decisions,
expiry, exhaustion, DECLINE, client identity, reply routing, and fuzzing of the parser."""

from __future__ import annotations

import ipaddress
import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wvpclab.dhcp import leases as L
from wvpclab.dhcp.message import (
    FLAG_BROADCAST,
    IPv4,
    Malformed,
    MessageType,
    Option,
    build_request,
    parse,
    parse_reply,
)
from wvpclab.dhcp.server import load, save

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


def test_client_id_identifies_across_mac_changes() -> None:
    t, c = L.LeaseTable(), cfg()
    first = dora(t, c, MAC_A, client_id=b"\xffguest-7")
    assert dora(t, c, MAC_B, client_id=b"\xffguest-7") == first


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
    assert L.destination(d.reply.request, d.reply) == (IPv4(ip), 68)
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
    assert L.destination(d.reply.request, d.reply) == (IPv4("169.254.7.7"), 68)
    assert not t.by_client


def test_relayed_requests_are_answered_to_the_relay_on_port_67() -> None:
    t, c = L.LeaseTable(), cfg()
    d = decide(t, c, MT.DISCOVER, giaddr="169.254.0.5")
    assert reply_of(d)["giaddr"] == "169.254.0.5"
    assert L.destination(d.reply.request, d.reply) == (IPv4("169.254.0.5"), 67)
    assert decide(t, c, MT.DISCOVER, mac=MAC_B, giaddr="10.9.9.9").reply is None


def test_replies_to_clients_without_an_address_are_broadcast_and_naks_always() -> None:
    t, c = L.LeaseTable(), cfg()
    d = decide(t, c, MT.DISCOVER)
    assert L.destination(d.reply.request, d.reply) == (L.BROADCAST, 68)
    d = decide(t, c, MT.REQUEST, ciaddr="10.0.0.5")
    assert L.destination(d.reply.request, d.reply) == (L.BROADCAST, 68)


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
    from wvpclab.dhcp.server import journal_path

    with open(journal_path(path), "a", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def test_snapshot_plus_journal_is_the_table(tmp_path: Path) -> None:
    from wvpclab.dhcp.server import read_table

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
    from wvpclab.dhcp.server import journal_path, read_table

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
    from wvpclab.dhcp.message import (
        MessageType,
        Reply,
        build_request,
        encode_option,
        parse,
        parse_reply,
    )

    cid = b"\xff" + bytes(range(256)) * 2
    req = parse(build_request(MessageType.DISCOVER, bytes.fromhex("0203ff000001"), 7,
                              client_id=cid))
    assert req.client_id == cid
    wire = Reply(MessageType.OFFER, req).build()
    assert parse_reply(wire)  # well formed
    assert wire.count(bytes((61, 255))) == 2 and bytes((61, len(cid) - 510)) in wire
    assert encode_option(61, b"") == bytes((61, 0))
