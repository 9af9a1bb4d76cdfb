"""Names in a lab, the pure parts: which hostnames a LAN's DNS learns from leases, what each node's
resolver holds by its static settings, the lab's own names, dnsmasq's command line and the nodes'
nsswitch.conf."""

from __future__ import annotations

from pathlib import Path

from wvpclab import dns, topology
from wvpclab.dhcp import leases as L
from wvpclab.items import Dns, Host, Resolver
from wvpclab.plan import lab_names, plan, static_nameservers

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


def test_two_clients_with_one_name_the_later_lease_wins() -> None:
    t = table(lease("mac:a", "192.168.50.101", "pc", expires=T0 + 100),
              lease("mac:b", "192.168.50.102", "pc", expires=T0 + 900))
    assert L.lease_names(t, T0) == {"pc": L.IPv4("192.168.50.102")}


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
