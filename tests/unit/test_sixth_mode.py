"""A NIC mode is one file: a throw-away sixth mode, defined here alone and registered in
``modes.MODES`` for these tests, is known to ``wvpclab check`` and the topology file's syntax, the
plan, the picture, verify's expectations, the web page's Settings dialog and the usage lines, with
no other change (issue 28, part 1).

The mode, ``hub``: a plain hub of its own per PC and name, without DHCP (its guests have static
addresses), isolated from everything else. Its lab is a topology file like any other, with NICs
written ``hub: x`` or ``hub:y``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import networkx as nx
import pytest

from wvpclab.analysis import draw, verify
from wvpclab.model import modes, topology
from wvpclab.model.items import Bridge, DhcpClient, Nat, Port
from wvpclab.model.modes.base import Box, Builder, Mode, Nic, Place, Verdict
from wvpclab.model.plan import GUEST_PORT_BASE, diff, plan
from wvpclab.ui import cli
from wvpclab.ui.web.state import settings

KIND = "hub"  # the graph nodes of hubs: PC/hub.NAME


class Hub(Mode):
    name = "hub"
    style = ("#7a3db8", "#eadcf7", "hub — a plain hub of its own")
    takes_target = True
    target_word = "NAME"
    dialog_rank = 25  # after Shared Networking, before the internal networks
    legend = "hub fed from the PC's stack"
    roles: ClassVar[Mapping[str, str]] = {"hubmon": "wvpclab.runtime.nodes.LanServer"}

    def attachment(self, graph: nx.Graph, nic: Nic) -> str:
        return f"{graph.nodes[nic['vm']]['pc']}/hub.{nic['target']}"

    def where(self, graph: nx.Graph, nic: Nic) -> Place:
        return KIND, self.attachment(graph, nic)

    def isolation(self, graph: nx.Graph, here: Place, there: Place) -> Verdict:
        return (True, "same hub") if here == there else (False, "a hub reaches only itself")

    def dns(self, graph: nx.Graph, nic: Nic) -> tuple[str | None, str]:
        return None, "a hub: no DNS"

    def prepare(self, graph: nx.Graph, pc: str, target: str | None) -> None:
        key = f"{pc}/hub.{target}"
        if key not in graph:
            graph.add_node(key, kind=KIND, name=target, pc=pc)
            graph.add_edge(pc, key, rel=KIND)

    def plan_lab(self, b: Builder) -> None:
        for n, (key, _) in enumerate(topology.nodes_of(b.graph, KIND)):
            b.add(Bridge(key, b.root_name("u", n), b.dpid(0x6, n), "internal"))

    def plan_done(self, b: Builder) -> None:
        """Once every NIC is planned: a monitor port on each hub with guests."""
        hubs = sorted({p.bridge for p in b.of(Port).values()
                       if p.role == "guest" and p.bridge.split("/", 1)[-1].startswith("hub.")})
        for n, hub in enumerate(hubs):
            b.port(hub, b.root_name("m", n), None, None, label="monitor")

    def boxes(self, graph: nx.Graph, pc: str) -> list[Box]:
        used = {f"{pc}/hub.{nic['target']}" for _, nic in self.nics_on(graph, pc)}
        return [Box(key, key, lines=(("hub", "small"),), switch=f"hub {key}: its rules",
                    from_stack=key in used)
                for key, hub in topology.nodes_of(graph, KIND) if hub["pc"] == pc]

    def drawn_missing(self, attach: str) -> tuple[str, str]:
        return attach.split("/", 1)[0], "hub not in the topology"

    def choices(self, graph: nx.Graph, pc: str) -> list[dict[str, str]]:
        out = [{"value": f"hub:{hub['name']}", "label": f"Hub {hub['name']}"}
               for _, hub in topology.nodes_of(graph, KIND) if hub["pc"] == pc]
        return [*out, {"value": "hub:", "label": "New hub...", "ask": "Name of the hub:",
                       "names": "hub"}]

    def switches(self, graph: nx.Graph) -> list[dict[str, Any]]:
        return [{"key": key, "kind": "hub", "rules": True, "leases": False}
                for key, _ in topology.nodes_of(graph, KIND)]

    def counts(self, graph: nx.Graph) -> list[tuple[int, str]]:
        return [(len(topology.nodes_of(graph, KIND)), "hub")]


HUB = Hub()

DOC = {
    "name": "sixth",
    "pcs": {"pc": {"adapters": {"eth0": {"lan": "office"}}}},
    "lans": {"office": {"subnet": "192.168.50.0/24", "servers": {"web": "192.168.50.80"}}},
    "internal": {"lab": None},
    "vms": {"a": {"pc": "pc", "nics": ["none", "shared"]},
            "b": {"pc": "pc", "nics": ["none", "internal:lab"]},
            "c": {"pc": "pc", "nics": ["none"]}},
}


@pytest.fixture
def hub_mode() -> Iterator[Hub]:
    """The sixth mode in the registry for one test, and out of it after."""
    modes.MODES[HUB.name] = HUB
    try:
        yield HUB
    finally:
        del modes.MODES[HUB.name]


#: The lab around the hubs, with its NICs on them: a topology file as a user writes it.
HUB_FILE = """\
name: sixth
pcs:
  pc: {adapters: {eth0: {lan: office}}}
lans:
  office: {subnet: 192.168.50.0/24, servers: {web: 192.168.50.80}}
internal: {lab: null}
vms:
  a: {pc: pc, nics: [{hub: x, ip: 10.66.0.1/24}, shared]}
  b: {pc: pc, nics: [{hub: x, ip: 10.66.0.2/24}, "internal:lab"]}
  c: {pc: pc, nics: ["hub:y"]}
"""


def on_hub(graph: nx.Graph, vm: str, index: int, name: str, ip: str | None) -> None:
    """NIC ``index`` of ``vm`` on hub ``name``, as topology builds a NIC node: its ``mode`` and
    ``target``, an ``attach`` edge (with the mode) to the node it plugs into, which the graph
    has."""
    key, pc = f"{vm}/{index}", graph.nodes[vm]["pc"]
    hub = f"{pc}/hub.{name}"
    if hub not in graph:
        graph.add_node(hub, kind=KIND, name=name, pc=pc)
        graph.add_edge(pc, hub, rel=KIND)
    graph.nodes[key].update(mode="hub", target=name, ip=ip)
    graph.add_edge(key, hub, rel="attach", mode="hub")


@pytest.fixture
def hub_file(hub_mode: Hub, tmp_path: Path) -> Path:
    path = tmp_path / "sixth.yaml"
    path.write_text(HUB_FILE)
    return path


@pytest.fixture
def graph(hub_file: Path) -> nx.Graph:
    return topology.load(hub_file)


def test_check_reads_it_from_a_topology_file(hub_file: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(hub_file)]) == 0
    out = capsys.readouterr().out
    assert "1 internal network, 2 hubs, 3 VMs, 5 NICs" in out, out  # what the modes bring
    assert "hub x " in out and "hub y " in out, out


def test_the_file_gives_the_graph_topology_would_build(graph: nx.Graph, hub_mode: Hub) -> None:
    by_hand = topology.from_document(DOC)  # the same lab, its hub NICs added as topology does
    on_hub(by_hand, "a", 0, "x", "10.66.0.1/24")
    on_hub(by_hand, "b", 0, "x", "10.66.0.2/24")
    on_hub(by_hand, "c", 0, "y", None)
    assert dict(graph.nodes(data=True)) == dict(by_hand.nodes(data=True))
    assert {frozenset((u, v)): d for u, v, d in graph.edges(data=True)} == \
        {frozenset((u, v)): d for u, v, d in by_hand.edges(data=True)}


def test_check_refuses_a_hub_without_a_name(hub_file: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    hub_file.write_text(HUB_FILE.replace('"hub:y"', "hub"))
    assert cli.main(["check", str(hub_file)]) == 2
    err = capsys.readouterr().err
    assert "vms.c.nics[0]" in err and "hub" in err, err


def ep(graph: nx.Graph, label: str) -> verify.Endpoint:
    return next(e for e in verify.endpoints(graph) if e.label == label)


def test_the_registry_knows_it(hub_mode: Hub, graph: nx.Graph) -> None:
    assert modes.of(graph.nodes["a/0"]) is hub_mode
    assert modes.label(graph.nodes["a/0"]) == "hub x"
    assert modes.parse("hub x") == ("hub", "x")
    assert modes.usage().endswith("|hub NAME")
    assert "hub:NAME" in modes.usage(":", ", ")
    assert modes.counts(graph) == [(1, "internal network"), (2, "hub")]


def test_without_the_fixture_the_mode_is_gone() -> None:
    assert "hub" not in modes.MODES
    with pytest.raises(ValueError, match="is not a NIC mode"):
        modes.parse("hub x")


def test_the_plan_has_its_switches_and_cables(graph: nx.Graph) -> None:
    p = plan(graph, "wvabc")
    hubs = {k: b for k, b in p.of(Bridge).items() if k.startswith("pc/hub.")}
    assert sorted(hubs) == ["pc/hub.x", "pc/hub.y"]
    assert {b.name for b in hubs.values()} == {"wvabc-u0", "wvabc-u1"}
    guests = {(port.bridge, port.label) for port in p.of(Port).values() if port.role == "guest"
              and port.bridge in hubs}
    assert guests == {("pc/hub.x", "guest a/eth0"), ("pc/hub.x", "guest b/eth0"),
                      ("pc/hub.y", "guest c/eth0")}
    assert all(port.number >= GUEST_PORT_BASE for port in p.of(Port).values()
               if port.bridge in hubs and port.role == "guest")
    # no DHCP there: c's client has no network to lease from, and still has a carrier
    client = p.get(DhcpClient, ("c", "eth0"))
    assert client.attached == "pc/hub.y" and client.lease_net is None and client.carrier
    # once every NIC is planned (plan_done), each hub with guests has its monitor port
    monitors = {(port.bridge, port.ifname) for port in p.of(Port).values()
                if port.label == "monitor"}
    assert monitors == {("pc/hub.x", "wvabc-m0"), ("pc/hub.y", "wvabc-m1")}
    # the four modes' part of the plan is what it was
    assert "pc/lab" in p.of(Bridge) and "pc/eth0" in p.of(Bridge)


def test_a_nic_moves_onto_a_hub_and_off_again(hub_mode: Hub, graph: nx.Graph) -> None:
    before = plan(graph, "wvabc")
    assert any(n.vm == "a" for n in before.of(Nat).values())
    modes.move(graph, "a", 1, "hub", "z")  # the shared NIC onto a hub typed afresh
    assert graph.nodes["pc/hub.z"]["kind"] == KIND
    moved = plan(graph, "wvabc", before)
    assert "pc/hub.z" in moved.of(Bridge)
    assert not any(n.vm == "a" for n in moved.of(Nat).values())
    delta = diff(before, moved)
    assert [b.key for b in delta.add(Bridge)] == ["pc/hub.z"]
    modes.move(graph, "a", 1, "shared", None)
    again = plan(graph, "wvabc", moved)
    assert any(n.vm == "a" for n in again.of(Nat).values())


@pytest.mark.parametrize("a, b, reaches, why", [
    ("a/eth0", "b/eth0", True, "same hub"),
    ("b/eth0", "a/eth0", True, "same hub"),
    ("a/eth0", "web", False, "a hub reaches only itself"),
    ("web", "a/eth0", False, "a hub reaches only itself"),
    ("a/eth0", "b/eth1", False, "a hub reaches only itself"),
    ("b/eth1", "a/eth0", False, "internal networks are isolated"),  # each end says why
    ("a/eth0", "a/eth1", None, None),  # same node: not a pair
    ("b/eth0", "a/eth1", False, "NAT: inbound blocked"),  # the NAT engine speaks first
    ("c/eth0", "a/eth0", False, "no address (no DHCP server there)"),
])
def test_verify_expects_what_the_mode_says(graph: nx.Graph, a: str, b: str,
                                           reaches: bool | None, why: str | None) -> None:
    ea, eb = ep(graph, a), ep(graph, b)
    if reaches is None:
        assert (ea, eb) not in verify.pairs(graph)
        return
    assert verify.expect(graph, ea, eb) == (reaches, why)


def test_verify_s_dns_and_a_pulled_cable(graph: nx.Graph) -> None:
    assert verify.expect_dns(graph, ep(graph, "a/eth0")) == (None, "a hub: no DNS")
    modes.set_cable(graph, "b", 0, False)
    assert verify.expect(graph, ep(graph, "a/eth0"), ep(graph, "b/eth0")) == \
        (False, "not connected")


def test_the_picture_draws_it(graph: nx.Graph, tmp_path: Path) -> None:
    assert [key for key, _ in HUB.nics_on(graph, "pc")] == ["a/0", "b/0", "c/0"]
    source = draw.dot_source(graph)
    assert "hub — a plain hub of its own" in source  # in the legend, a fifth swatch
    assert "hub fed from the PC&#x27;s stack" in source  # its boxes fed from the stack: a line
    assert source.count('style=dotted') >= 2 + 1  # the two hubs' and the shared NIC's engine
    assert source.count('BGCOLOR="#eadcf7"') >= 3 + 1  # three NICs and the legend's swatch
    assert 'color="#7a3db8"' in source  # its cables
    texts = [t for t in source.split("<B>") if t.startswith("pc/hub.")]
    assert len(texts) == 2  # each hub a box in its PC
    live = draw.dot_source(graph, live=True)
    assert draw.live_id("switch", "pc/hub.x") in live
    svg = draw.render(graph, tmp_path / "lab.svg").read_text()
    assert "hub → x" in svg and "pc/hub.y" in svg and "hub — a plain hub of its own" in svg


def test_the_page_offers_it(graph: nx.Graph) -> None:
    page = settings(graph)
    json.dumps(page)
    values = [c["value"] for c in page["choices"]["pc"]]
    assert values == ["none", "bridge:eth0", "shared", "hub:x", "hub:y", "hub:",
                      "internal:lab", "internal:"]
    new = next(c for c in page["choices"]["pc"] if c["value"] == "hub:")
    assert new["ask"] == "Name of the hub:" and new["names"] == "hub"
    a = next(v for v in page["vms"] if v["name"] == "a")
    assert a["nics"][0] == {"index": 0, "mac": graph.nodes["a/0"]["mac"], "mode": "hub",
                            "value": "hub:x", "label": "hub x", "cable": True,
                            "pluggable": True, "static": "10.66.0.1/24"}
    assert {(s["key"], s["kind"]) for s in page["switches"]} >= {("pc/hub.x", "hub"),
                                                                 ("pc/hub.y", "hub")}


def test_a_hub_the_graph_lacks_is_drawn_as_the_mode_says(graph: nx.Graph) -> None:
    graph.remove_node("pc/hub.y")  # c's NIC still names it: a stale graph
    source = draw.dot_source(graph)
    assert "hub not in the topology" in source


def test_the_runtime_starts_its_nodes_as_it_names_them(hub_mode: Hub) -> None:
    from wvpclab.runtime import nodes

    try:
        assert nodes.ROLES["hubmon"] is nodes.LanServer
        assert nodes.ROLES["nat"] is nodes.NatEngine  # the four modes' own, named by them
        assert nodes.ROLES["dhcp"] is nodes.DhcpResponderNode
    finally:
        nodes.ROLES.pop("hubmon", None)
