"""The reachability model (wvpclab.analysis.verify.expect) on small graphs, without root."""

from __future__ import annotations

import pytest

from wvpclab.analysis.verify import endpoints, expect, expect_dns, pairs
from wvpclab.model import topology

DOC = {
    "pcs": {"pc": {"adapters": {"eth0": {"lan": "office"}, "eth1": {}}},
            "pc2": {"adapters": {"eth0": {"lan": "office", "mac": "00:1a:00:00:00:01"}}}},
    "lans": {"office": {"subnet": "192.168.50.0/24", "servers": {"web": "192.168.50.80"}},
             "far": {"subnet": "192.168.60.0/24", "servers": {"db": "192.168.60.5"},
                     "dhcp": False}},
    "internal": {"lab": None, "quiet": {"dhcp": False}},
    "vms": {
        "a": {"pc": "pc", "nics": ["internal:lab", "bridge:eth0", "shared", "none"]},
        "b": {"pc": "pc", "nics": ["internal:lab", "internal:quiet"]},
        "c": {"pc": "pc2", "nics": ["internal:lab", "shared", "bridge:eth0"]},
        "d": {"pc": "pc", "nics": ["bridge:eth1", {"bridge": "eth1", "ip": "10.9.0.2/24"}]},
    },
}


@pytest.fixture(scope="module")
def graph():
    return topology.from_document(DOC)


def ep(graph, label: str):
    return next(e for e in endpoints(graph) if e.label == label)


@pytest.mark.parametrize("a, b, reaches, why", [
    ("a/eth0", "b/eth0", True, "same internal network"),
    ("a/eth0", "c/eth0", False, "different internal networks"),  # lab on pc2 is another network
    ("a/eth0", "web", False, "internal networks are isolated"),
    ("web", "a/eth0", False, "internal networks are isolated"),
    ("b/eth1", "a/eth0", False, "no address (no DHCP server there)"),
    ("a/eth1", "web", True, "same LAN"),
    ("web", "a/eth1", True, "same LAN"),
    ("a/eth1", "pc/eth0", True, "same LAN"),
    ("pc/eth0", "a/eth1", True, "same LAN"),
    ("a/eth1", "c/eth2", True, "same LAN"),  # guests of two PCs bridged onto one LAN
    ("a/eth1", "db", False, "different LANs (no route between them)"),
    ("a/eth2", "web", True, "NAT: outbound, as the PC"),
    ("a/eth2", "pc/eth0", True, "NAT: to its own PC"),
    ("a/eth2", "pc2/eth0", True, "NAT: outbound, as the PC"),
    ("a/eth2", "db", False, "NAT: no route from the PC"),
    ("web", "a/eth2", False, "NAT: inbound blocked"),
    ("c/eth1", "a/eth2", False, "NAT: inbound blocked"),
    ("web", "a/eth3", False, "not connected"),
    ("a/eth3", "web", False, "not connected"),
    ("d/eth1", "d/eth0", None, None),  # same node: not a pair
    ("d/eth1", "pc/eth1", False, "no address (no DHCP server there)"),
])
def test_expectations(graph, a: str, b: str, reaches: bool | None, why: str | None) -> None:
    ea, eb = ep(graph, a), ep(graph, b)
    if reaches is None:
        assert (ea, eb) not in pairs(graph)
        return
    assert expect(graph, ea, eb) == (reaches, why)


def test_endpoints_cover_nics_adapters_and_servers(graph) -> None:
    labels = {e.label for e in endpoints(graph)}
    assert {"a/eth0", "a/eth3", "pc/eth0", "pc/eth1", "pc2/eth0", "web", "db"} <= labels
    assert len(pairs(graph)) == sum(1 for a in endpoints(graph) for b in endpoints(graph)
                                    if a.node != b.node)


def test_a_pulled_cable_and_a_static_address_off_its_network_reach_nothing() -> None:
    from wvpclab.model import modes
    g = topology.from_document(DOC)
    assert expect(g, ep(g, "a/eth1"), ep(g, "web")) == (True, "same LAN")
    modes.set_cable(g, "a", 1, False)
    assert expect(g, ep(g, "a/eth1"), ep(g, "web")) == (False, "not connected")
    assert expect(g, ep(g, "web"), ep(g, "a/eth1")) == (False, "not connected")
    g.nodes["b/0"]["ip"] = "10.1.0.5/24"  # a static address that is not 169.254.0.0/16
    assert expect(g, ep(g, "b/eth0"), ep(g, "a/eth0")) == \
        (False, "a static address off its network (no route)")


INTERNET_DOC = {**DOC, "internet": {"servers": {"site": "100.64.0.80"}},
                "lans": {"office": {**DOC["lans"]["office"]},
                         "far": {**DOC["lans"]["far"], "nat": False}}}


@pytest.mark.parametrize("a, b, reaches, why", [
    ("a/eth1", "site", True, "over the internet"),  # office is NATed by its gateway
    ("a/eth1", "db", True, "over the internet (routed LAN)"),
    ("db", "a/eth1", False, "over the internet: a NATed LAN, inbound blocked"),
    ("site", "db", True, "over the internet (routed LAN)"),
    ("site", "web", False, "over the internet: a NATed LAN, inbound blocked"),
    ("a/eth2", "site", True, "NAT: outbound, as the PC, over the internet"),
    ("a/eth2", "db", True, "NAT: outbound, as the PC, over the internet"),
    ("site", "a/eth2", False, "NAT: inbound blocked"),
    ("a/eth0", "site", False, "internal networks are isolated"),
    ("d/eth0", "site", False, "no address (no DHCP server there)"),  # a PC adapter without LAN
])
def test_expectations_with_an_internet(a: str, b: str, reaches: bool, why: str) -> None:
    graph = topology.from_document(INTERNET_DOC)
    assert expect(graph, ep(graph, a), ep(graph, b)) == (reaches, why)


@pytest.mark.parametrize("label, server, why", [
    ("a/eth0", None, "internal network: no DNS (as WVPC's)"),
    ("a/eth1", "192.168.50.1", "its LAN's gateway"),
    ("a/eth2", "192.168.131.254", "its NAT engine, relayed by its PC"),
    ("a/eth3", None, "not connected"),
    ("pc/eth0", "192.168.50.1", "its LAN's gateway"),
    ("db", "192.168.60.1", "its LAN's gateway"),
    ("site", None, "the internet has no DNS server of its own"),
    ("d/eth1", None, "a filter switch without a LAN: no DNS"),
])
def test_the_dns_server_each_endpoint_has(label: str, server: str | None, why: str) -> None:
    graph = topology.from_document(INTERNET_DOC)
    assert expect_dns(graph, ep(graph, label)) == (server, why)
