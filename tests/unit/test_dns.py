"""Names in a lab, the pure parts: which hostnames a LAN's DNS learns from leases, what each node's
resolver holds by its static settings, the lab's own names, dnsmasq's command line and the nodes'
nsswitch.conf."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from tests.dhcpwire import build_request
from wvpclab.model import topology
from wvpclab.model.items import Dns, Host, Resolver
from wvpclab.model.plan import lab_names, plan, static_nameservers
from wvpclab.runtime import dns
from wvpclab.runtime.dhcp import leases as L
from wvpclab.runtime.dhcp.message import parse
from wvpclab.runtime.dhcp.server import Server
from wvpclab.wire import MessageType

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_000_000.0


def table(*leases: L.Lease) -> L.LeaseTable:
    t = L.LeaseTable()
    for lease in leases:
        t.set(lease)
    return t


def lease(client: str, ip: str, hostname: str | None, state: str = L.BOUND,
          expires: float = T0 + 600) -> L.Lease:
    return L.Lease(client, L.IPv4(ip), expires, state, "00:03:ff:00:00:01", hostname)


def test_bound_leases_give_their_hostnames_in_lower_case() -> None:
    t = table(lease("mac:a", "192.168.50.101", "XP"), lease("mac:b", "192.168.50.102", "win7"))
    assert L.lease_names(t, T0) == {"win7": L.IPv4("192.168.50.102"),
                                    "xp": L.IPv4("192.168.50.101")}


def test_offered_expired_released_and_nameless_leases_give_no_name() -> None:
    t = table(lease("mac:a", "192.168.50.101", "offered", state=L.OFFERED),
              lease("mac:b", "192.168.50.102", "gone", expires=T0 - 1),
              lease("mac:c", "192.168.50.103", "left", state=L.RELEASED),
              lease("mac:d", "192.168.50.104", None))
    assert L.lease_names(t, T0) == {}


def test_a_lab_name_or_a_bad_label_is_never_taken_by_a_lease() -> None:
    t = table(lease("mac:a", "192.168.50.101", "web"), lease("mac:b", "192.168.50.102", "a b"),
              lease("mac:c", "192.168.50.103", "-x"), lease("mac:d", "192.168.50.104", "x" * 64),
              lease("mac:e", "192.168.50.105", "gw.office"))
    assert L.lease_names(t, T0, frozenset({"web"})) == {}


def named(client: str, ip: str, hostname: str, since: float, mac: str = "00:03:ff:00:00:01",
          expires: float = T0 + 600) -> L.Lease:
    return L.Lease(client, L.IPv4(ip), expires, L.BOUND, mac, hostname, since=since)


def test_two_clients_with_one_name_the_first_holder_keeps_it() -> None:
    first = named("mac:a", "192.168.50.101", "box", since=T0 - 300, expires=T0 + 100)
    later = named("mac:b", "192.168.50.102", "BOX", since=T0 - 10, expires=T0 + 900)
    names, refused = L.hold_names(table(later, first), T0)
    assert names == {"box": L.IPv4("192.168.50.101")}  # not the lease that lasts longer
    assert [(r.client, r.name, r.why) for r in refused] == [("mac:b", "box", L.NAME_HELD)]
    # once the first holder's lease is gone, the name is the other's
    assert L.lease_names(table(later, first), T0 + 200) == {"box": L.IPv4("192.168.50.102")}


def test_a_nodes_name_is_its_own_nics_alone() -> None:
    owners = {"pc": frozenset({"00:1a:2b:3c:4d:5e"}), "g1": frozenset({"00:03:ff:00:00:11"}),
              "lab1": frozenset()}
    guest = "00:03:ff:00:00:22"
    t = table(named("mac:g2", "192.168.50.120", "pc", since=T0 - 500, mac=guest),
              named("mac:g2b", "192.168.50.121", "G1", since=T0 - 500, mac=guest),
              named("mac:g2c", "192.168.50.122", "lab1", since=T0 - 500, mac=guest))
    # even before (or without) the PC and g1 leasing, a guest never takes their names
    names, refused = L.hold_names(t, T0, frozenset(), owners)
    assert names == {}
    assert sorted((r.name, r.why) for r in refused) == [
        ("g1", L.NAME_OF_A_NODE), ("lab1", L.NAME_OF_A_NODE), ("pc", L.NAME_OF_A_NODE)]
    t.set(named("mac:pc", "192.168.50.101", "pc", since=T0, mac="00:1a:2b:3c:4d:5e"))
    assert L.lease_names(t, T0, frozenset(), owners) == {"pc": L.IPv4("192.168.50.101")}


def test_a_lab_name_asked_for_is_a_counted_refusal() -> None:
    names, refused = L.hold_names(table(named("mac:a", "192.168.50.101", "web", T0)), T0,
                                  frozenset({"web"}))
    assert names == {} and [(r.name, r.why) for r in refused] == [("web", L.NAME_OF_THE_LAB)]


def test_a_renewal_keeps_its_holders_name_and_a_later_client_never_takes_it() -> None:
    c = L.PoolConfig(network=ipaddress.IPv4Network("192.168.50.0/24"),
                     start=L.IPv4("192.168.50.100"), end=L.IPv4("192.168.50.200"),
                     server=L.IPv4("192.168.50.1"), lease_time=600)
    t = L.LeaseTable()
    first = bind(t, c, MAC_1, "box", T0)
    second = bind(t, c, MAC_2, "box", T0 + 5)
    assert L.lease_names(t, T0 + 6) == {"box": first}
    for now in (T0 + 300, T0 + 600, T0 + 900):  # both renew, the later one last
        bind(t, c, MAC_1, "box", now, ciaddr=str(first))
        bind(t, c, MAC_2, "box", now + 1, ciaddr=str(second))
        assert L.lease_names(t, now + 2) == {"box": first}
    # a client that changes its hostname starts anew: it comes after the one that kept it
    bind(t, c, MAC_1, "other", T0 + 1000, ciaddr=str(first))
    bind(t, c, MAC_1, "box", T0 + 1001, ciaddr=str(first))
    assert L.lease_names(t, T0 + 1002) == {"box": second}
    # the holder's "since" is on disk: a restarted server agrees
    assert L.lease_names(L.LeaseTable.from_json(t.to_json()), T0 + 1002) == {"box": second}


MAC_1, MAC_2 = bytes.fromhex("0003ff000011"), bytes.fromhex("0003ff000022")


def bind(t: L.LeaseTable, c: L.PoolConfig, mac: bytes, hostname: str, now: float,
         ciaddr: str = "0.0.0.0") -> L.IPv4:
    """A DISCOVER and REQUEST (or a renewing REQUEST from ``ciaddr``) under ``hostname``."""
    if ciaddr == "0.0.0.0":
        offer = L.decide(t, c, parse(build_request(MessageType.DISCOVER, mac, hostname=hostname)),
                         now)
        ip = str(offer.reply.yiaddr)
        request = build_request(MessageType.REQUEST, mac, requested_ip=ip, server_id=str(c.server),
                                hostname=hostname)
    else:
        request = build_request(MessageType.REQUEST, mac, ciaddr=ciaddr, hostname=hostname)
    ack = L.decide(t, c, parse(request), now)
    assert ack.reply is not None and ack.reply.mtype == MessageType.ACK, ack.note
    return ack.reply.yiaddr


def lan_server(tmp_path: Path, holders: str) -> Server:
    """A LAN's DHCP server as the lab runs it (its files, its DNS directory), not listening."""
    names = tmp_path / "names+gw.office"
    names.mkdir()
    (names / "lab").write_text("192.168.50.80\tweb\n192.168.50.1\tgw.office\n")
    (tmp_path / "holders").write_text(holders)
    c = L.PoolConfig(network=ipaddress.IPv4Network("192.168.50.0/24"),
                     start=L.IPv4("192.168.50.100"), end=L.IPv4("192.168.50.200"),
                     server=L.IPv4("192.168.50.1"), lease_time=600)
    return Server(c, "eth0", tmp_path / "leases.json", tmp_path / "dhcp.log",
                  tmp_path / "stats.json", names_dir=names, holders_path=tmp_path / "holders")


def test_the_server_counts_and_logs_each_refusal_once_not_once_a_renewal(tmp_path: Path) -> None:
    server = lan_server(tmp_path, "pc 00:1a:2b:3c:4d:5e\ng1 00:03:ff:00:00:11\n"
                                  "g2 00:03:ff:00:00:22\n")
    pc, g1, g2 = bytes.fromhex("001a2b3c4d5e"), MAC_1, MAC_2
    at = {"pc": bind(server.table, server.cfg, pc, "pc", T0),
          "g1": bind(server.table, server.cfg, g1, "g1", T0)}
    server.write_names(T0, True)
    taker = bind(server.table, server.cfg, g2, "pc", T0 + 1)  # g2 as "pc" ...
    other = bind(server.table, server.cfg, bytes.fromhex("0003ff000033"), "g1", T0 + 1)  # ... "g1"
    squatter = bind(server.table, server.cfg, bytes.fromhex("0003ff000044"), "web", T0 + 1)
    for now in (T0 + 1, T0 + 300, T0 + 301, T0 + 590):  # renewals: still one refusal each
        for mac, name, ip in ((pc, "pc", at["pc"]), (g1, "g1", at["g1"]), (g2, "pc", taker),
                              (bytes.fromhex("0003ff000033"), "g1", other),
                              (bytes.fromhex("0003ff000044"), "web", squatter)):
            bind(server.table, server.cfg, mac, name, now, ciaddr=str(ip))
        server.write_names(now, True)
    leases = (tmp_path / "names+gw.office" / "leases").read_text()
    assert leases == f"{at['g1']}\tg1\n{at['pc']}\tpc\n"  # the first holders, alone
    assert server.stats[L.NAME_OF_A_NODE] == 2 and server.stats[L.NAME_OF_THE_LAB] == 1
    log = (tmp_path / "dhcp.log").read_text()
    assert log.count("asked for the name 'pc': refused") == 1, log
    assert log.count("asked for the name 'g1': refused") == 1, log
    # a refusal that ends (the lease went) and starts again is counted again
    bind(server.table, server.cfg, g2, "g2", T0 + 700, ciaddr=str(taker))
    server.write_names(T0 + 700, True)
    bind(server.table, server.cfg, g2, "pc", T0 + 701, ciaddr=str(taker))
    server.write_names(T0 + 701, True)
    assert server.stats[L.NAME_OF_A_NODE] == 3


def test_the_holders_are_each_nodes_own_leasing_nics() -> None:
    p = plan(topology.load(ROOT / "topologies" / "four_modes.yaml"), "wvabc")
    nodes = dns.holders(p)
    assert nodes["pc"] == {"00:1a:2b:3c:4d:5e", "00:1a:2b:3c:4d:5f"}  # eth0 and wlan0 lease
    assert len(nodes["xp"]) == 4 and nodes["lab1"] == frozenset()  # lab1: static, leases none
    assert nodes["web"] == frozenset()
    assert dns.read_holders(write(dns.holders_text(nodes))) == nodes


def write(text: str) -> Path:
    import tempfile

    f = tempfile.NamedTemporaryFile("w", suffix=".holders", delete=False)  # noqa: SIM115
    f.write(text)
    f.close()
    return Path(f.name)


def test_the_labs_names_are_its_servers_gateways_and_static_adapters() -> None:
    g = topology.load(ROOT / "topologies" / "four_modes.yaml")
    assert lab_names(g) == (("gw.cafe", "192.168.60.1"), ("gw.office", "192.168.50.1"),
                            ("web", "192.168.50.80"))


def test_static_settings_give_the_dns_server_dhcp_would_have() -> None:
    g = topology.load(ROOT / "topologies" / "four_modes.yaml")
    assert static_nameservers(g) == {"gw.office": ("192.168.50.1",), "gw.cafe": ("192.168.60.1",),
                                     "web": ("192.168.50.1",)}  # lab1's internal NIC: none
    g.nodes["xp/0"]["ip"] = "192.168.131.7/24"  # a static shared NIC: its engine
    g.nodes["xp/1"]["ip"] = "192.168.50.9/24"  # a static bridged NIC: its LAN's gateway
    assert static_nameservers(g)["xp"] == ("192.168.131.254", "192.168.50.1")


def test_the_plan_has_a_dns_per_lan_a_relay_per_pc_with_nat_and_a_resolver_per_node() -> None:
    p = plan(topology.load(ROOT / "topologies" / "four_modes.yaml"), "wvabc")
    assert set(p.of(Dns)) == {"gw.office", "gw.cafe", "pc"}
    assert p.get(Dns, "pc").relay and not p.get(Dns, "gw.office").relay
    assert set(p.of(Resolver)) == set(p.of(Host))  # every node resolves with files of its own
    assert p.get(Resolver, "web").own == ("192.168.50.80",)


def test_dnsmasq_reads_no_file_of_the_machine_and_drops_root() -> None:
    base, run = Path("/run/wvpclab/wvabc.dns"), Path("/run/wvpclab/wvabc")
    gw = dns.command("gw.office", "192.168.50.1", False, base, run)
    relay = dns.command("pc", "", True, base, run, relay_to=str(base / "pc.resolv.conf"))
    for cmd in (gw, relay):
        assert "--conf-file=/dev/null" in cmd and "--no-hosts" in cmd and "--user=nobody" in cmd
    assert "--no-resolv" in gw and "--local=/#/" in gw  # only the lab's names: others NXDOMAIN
    assert f"--hostsdir={base}/names+gw.office" in gw
    assert f"--resolv-file={base}/pc.resolv.conf" in relay and "--interface=nat*" in relay


def test_dnsmasq_logs_to_a_pipe_it_never_waits_on() -> None:
    base, run = Path("/run/wvpclab/wvabc.dns"), Path("/run/wvpclab/wvabc")
    for cmd in (dns.command("gw.office", "192.168.50.1", False, base, run),
                dns.command("pc", "", True, base, run, relay_to=str(base / "pc.resolv.conf"))):
        assert "--log-facility=-" in cmd and f"--log-async={dns.LOG_QUEUE}" in cmd
        assert not [a for a in cmd if a.startswith("--log-facility=/")]  # never a file of its own


def test_nodes_look_names_up_in_files_then_dns_only() -> None:
    machine = "passwd: files systemd\nhosts: files resolve [!UNAVAIL=return] dns myhostname\n"
    text = dns.nsswitch_text(machine)
    assert "passwd: files systemd" in text
    assert [line for line in text.splitlines() if line.startswith("hosts:")] == [
        "hosts:          files dns"]
    assert dns.nsswitch_text("passwd: files\nhosts:    files   dns\n") is None  # Debian's: as is


def test_a_nodes_hosts_file_names_it_by_its_static_addresses() -> None:
    assert "192.168.50.80\tweb\n" in dns.hosts_text("web", ("192.168.50.80",))
    assert "127.0.1.1\txp\n" in dns.hosts_text("xp", ())
