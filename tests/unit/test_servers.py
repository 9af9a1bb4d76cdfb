"""A lab over several servers, before anything runs (no root): the ``servers`` section of a
topology file, and where the plan puts each of its items."""

from __future__ import annotations

import copy
from typing import Any

import networkx as nx
import pytest

from wvpclab.analysis.reach import segments
from wvpclab.model import topology
from wvpclab.model.items import Bridge, DhcpServer, Host, Port, Server, Uplink, Veth
from wvpclab.model.plan import plan

PREFIX = "wvabc"

#: Two PCs on one LAN, the second PC and a second LAN on server ``far``; every mode on far's VM.
DOC: dict[str, Any] = {
    "name": "spread",
    "servers": {"far": {"host": "10.250.0.2", "user": "root"}},
    "lans": {"office": {"subnet": "192.168.50.0/24", "servers": {"web": "192.168.50.10"}},
             "cafe": {"subnet": "192.168.60.0/24", "server": "far"}},
    "internal": {"lab": {}},
    "pcs": {"pc1": {"adapters": {"eth0": {"lan": "office"}}},
            "pc2": {"server": "far", "adapters": {"eth0": {"lan": "office"},
                                                  "wlan0": {"type": "wireless", "lan": "cafe"}}}},
    "vms": {"xp": {"pc": "pc1", "nics": [{"bridge": "eth0"}, {"internal": "lab"}]},
            "lab2": {"pc": "pc2", "nics": [{"bridge": "eth0"}, "shared", {"internal": "lab"},
                                           {"bridge": "wlan0"}]}},
}


def errors_of(doc: dict[str, Any]) -> list[str]:
    return [str(e) for e in topology.check_document(doc)]


def changed(**edits: Any) -> dict[str, Any]:
    """DOC with ``a__b=value`` edits (None deletes the key)."""
    doc = copy.deepcopy(DOC)
    for path, value in edits.items():
        *parents, last = path.split("__")
        target = doc
        for key in parents:
            target = target[key]
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return doc


def test_the_section_reaches_the_graph_and_its_summary() -> None:
    g = topology.from_document(DOC)
    assert g.graph["servers"] == {"far": {"host": "10.250.0.2", "user": "root"}}
    assert g.nodes["pc2"]["server"] == "far" and g.nodes["pc1"]["server"] is None
    assert g.nodes["cafe"]["server"] == "far" and g.nodes["office"]["server"] is None
    text = topology.summary(g)
    assert "server far  root@10.250.0.2" in text
    assert "pc pc2  (shared networking 192.168.131.0/24)  on server far" in text
    assert "on server" not in next(line for line in text.splitlines() if line.startswith("pc pc1"))


def test_a_file_without_servers_is_one_machine() -> None:
    g = topology.from_document(changed(servers=None, pcs__pc2__server=None,
                                       lans__cafe__server=None))
    assert g.graph["servers"] == {}
    p = plan(g, PREFIX)
    assert not p.of(Server) and not p.of(Uplink)
    assert {h.server for h in p.of(Host).values()} == {None}
    assert "placement" not in p.text()


def test_the_graph_keeps_placement_through_node_link_json() -> None:
    g = topology.from_document(DOC)
    back = topology.from_graph(nx.node_link_graph(topology.to_node_link(g), edges="links"))
    assert back.graph["servers"] == g.graph["servers"]
    assert {k: d.get("server") for k, d in back.nodes(data=True)} == \
        {k: d.get("server") for k, d in g.nodes(data=True)}
    assert plan(back, PREFIX) == plan(g, PREFIX)


@pytest.mark.parametrize(("edits", "expected"), [
    ({"pcs__pc2__server": "farr"},
     "pcs.pc2.server: no server 'farr' (declared in `servers`: far)"),
    ({"lans__cafe__server": 7}, "lans.cafe.server: no server 7"),
    ({"servers__near": {"host": "10.250.0.2"}},
     "servers.near.host: 10.250.0.2 is already the address of servers.far"),
    ({"servers__near": {"host": "10.250.0.6"}},
     "servers.near: server near is named but no PC or LAN is placed on it"),
    ({"servers__local": {"host": "10.250.0.6"}},
     "servers.local: 'local' stands for the machine that runs the lab"),
    ({"servers__far": {"host": "no such host!"}},
     "servers.far.host: 'no such host!' is not an IP address or a DNS name"),
    ({"servers__far": {"host": "10.250.0.2", "user": "Robert'); DROP"}},
     "servers.far.user: \"Robert'); DROP\" is not a user name"),
    ({"servers__far": {"user": "root"}}, "servers.far.host: missing"),
    ({"servers__far": {"host": "10.250.0.2", "port": 22}},
     "servers.far.port: unknown key 'port' (expected one of: host, user)"),
    ({"servers__far": "10.250.0.2"}, "servers.far: expected a mapping, got str"),
    ({"servers__9far": {"host": "10.250.0.9"}}, "servers.9far: '9far' is not a valid server name"),
    ({"servers": ["far"]}, "servers: expected a mapping, got list"),
])
def test_bad_servers_are_named_by_key_path(edits: dict[str, Any], expected: str) -> None:
    errors = errors_of(changed(**edits))
    assert any(e.startswith(expected) for e in errors), errors


def test_addresses_are_compared_in_one_spelling() -> None:
    doc = changed(servers__near={"host": "FAR.example"}, servers__far={"host": "far.example"},
                  lans__office__server="near")
    assert any("servers.near.host: far.example is already the address of servers.far" in e
               for e in errors_of(doc))
    ipv6 = changed(servers__far={"host": "[2001:db8::0002]"})
    assert topology.from_document(ipv6).graph["servers"]["far"]["host"] == "2001:db8::2"


def test_every_item_of_a_pc_goes_with_it_and_a_lans_with_the_lan() -> None:
    p = plan(topology.from_document(DOC), PREFIX)
    on = {h.name: h.server for h in p.of(Host).values()}
    assert on == {"pc1": None, "xp": None, "dhcp.pc1.lab": None, "gw.office": None, "web": None,
                  "pc2": "far", "lab2": "far", "nat.lab2.1": "far", "dhcp.pc2.lab": "far",
                  "gw.cafe": "far"}
    bridges = {b.key: b.server for b in p.of(Bridge).values()}
    assert bridges == {"office": None, "pc1/eth0": None, "pc1/lab": None, "cafe": "far",
                       "pc2/eth0": "far", "pc2/lab": "far", "ap:pc2/wlan0": "far",
                       "pc2/wlan0": "far"}
    for kind in (Veth, Port, DhcpServer):  # the rest follows its node or switch
        for item in p.of(kind).values():
            node = item.bridge if kind is Port else item.node
            owner = p.of(Bridge)[node] if kind is Port else p.of(Host)[node]
            assert p.server_of(item) == owner.server


def test_only_a_lan_uplink_crosses_servers_and_it_joins_one_network() -> None:
    p = plan(topology.from_document(DOC), PREFIX)
    assert list(p.of(Uplink).values()) == [Uplink("far", "wvabc-f1-x2", None, "wvabc-l1-x4")]
    ports = {p_.ifname: p_ for p_ in p.of(Port).values()}
    far_end, local_end = ports["wvabc-f1-x2"], ports["wvabc-l1-x4"]
    assert (far_end.bridge, far_end.role, far_end.patch) == ("pc2/eth0", "uplink", None)
    assert (local_end.bridge, local_end.patch) == ("office", None)
    for port in p.of(Port).values():  # every patch cable stays on one machine
        if port.patch:
            other = ports[port.patch]
            assert p.server_of(port) == p.server_of(other)
    # one broadcast domain: office's DHCP server knows far's guest and far's PC adapter
    office = p.of(DhcpServer)["office"]
    macs = {n["mac"] for n in (topology.from_document(DOC).nodes[k]
                               for k in ("lab2/0", "pc2/eth0"))}
    assert macs <= set(office.known)
    segs = segments(p)
    assert dict(segs["lab2"])["eth0"] == dict(segs["xp"])["eth0"]
    # internal networks stay per PC even with the same name
    assert dict(segs["lab2"])["eth2"] != dict(segs["xp"])["eth1"]


def test_the_plan_says_what_runs_where() -> None:
    text = plan(topology.from_document(DOC), PREFIX).text()
    assert "  local: 5 nodes, 3 switches; PCs pc1; LANs office" in text
    assert "  far (root@10.250.0.2): 5 nodes, 5 switches; PCs pc2; LANs cafe" in text
    assert "  1 uplink between servers" in text
    assert "  uplink wvabc-f1-x2 @far <-> wvabc-l1-x4 @local (ssh Ethernet tunnel)" in text
