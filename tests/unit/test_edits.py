"""Building a lab's topology while it runs (no root): the wizard's NICs, VMs and NICs added and
removed, NICs keeping their numbers, and every wrong input refused in one line."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
import yaml

from wvpclab.model import edits, modes, topology
from wvpclab.model.plan import plan

ROOT = Path(__file__).resolve().parents[2]


def graph_of(doc: dict) -> nx.Graph:
    return topology.from_document(doc)


def lab(adapters: dict | None = None, vms: dict | None = None) -> nx.Graph:
    return graph_of({"name": "t", "pcs": {"pc": {"adapters": adapters or {}}},
                     "lans": {"office": {"subnet": "192.168.50.0/24"},
                              "cafe": {"subnet": "192.168.60.0/24"},
                              "lab2": {"subnet": "192.168.70.0/24"}},
                     "internal": {"lab": {"dhcp": True}}, "vms": vms or {}})


WIRED = {"type": "wired", "lan": "office"}
WIRELESS = {"type": "wireless", "lan": "cafe"}
WIRED2 = {"type": "wired", "lan": "lab2"}


def nics(graph: nx.Graph, vm: str) -> list[tuple[int, str]]:
    return [(d["index"], modes.label(d)) for _, d in sorted(topology.nodes_of(graph, "nic"),
                                                             key=lambda kv: kv[1]["index"])
            if d["vm"] == vm]


@pytest.mark.parametrize(("adapters", "expected"), [
    ({"eth0": WIRED, "wlan0": WIRELESS}, ["bridge eth0", "bridge wlan0"]),
    ({"wlan0": WIRELESS, "eth0": WIRED, "eth1": WIRED2}, ["bridge eth0", "bridge wlan0"]),
    ({"eth0": WIRED, "eth1": WIRED2}, ["bridge eth0"]),
    ({"wlan0": WIRELESS}, ["bridge wlan0"]),
    ({}, ["shared"]),
])
def test_a_vm_written_without_nics_gets_the_wizards(adapters: dict, expected: list[str]) -> None:
    g = lab(adapters, {"new": {}, "none": {"nics": []}, "nulled": {"nics": None}})
    assert [label for _, label in nics(g, "new")] == expected
    assert [label for _, label in nics(g, "nulled")] == expected
    assert nics(g, "none") == []
    assert all(d["mac"].startswith("00:03:ff:") for _, d in topology.nodes_of(g, "nic"))


def test_nics_keep_their_numbers_in_the_file() -> None:
    g = lab({"eth0": WIRED}, {"v": {"nics": ["shared", {"none": True, "index": 2},
                                            {"bridge": "eth0", "index": 3}]}})
    assert nics(g, "v") == [(0, "shared"), (2, "none"), (3, "bridge eth0")]
    doc, problems = topology.to_document(g)
    assert problems == []
    assert doc["vms"]["v"]["nics"][1]["index"] == 2 and "index" not in doc["vms"]["v"]["nics"][0]
    assert nics(graph_of(doc), "v") == nics(g, "v")
    for bad, message in ((["shared", {"none": True, "index": 0}], "NIC 0 comes after NIC 0"),
                         ([{"none": True, "index": 3}, "shared"], "numbered 0-3"),
                         ([{"none": True, "index": 4}], "4 is out of range: at most 3")):
        with pytest.raises(topology.TopologyError, match=message):
            lab({"eth0": WIRED}, {"v": {"nics": bad}})


def test_a_pulled_cable_is_written_and_read() -> None:
    g = lab({"eth0": WIRED}, {"v": {"nics": [{"bridge": "eth0", "cable": False}]}})
    assert g.nodes["v/0"]["cable"] is False
    assert topology.to_document(g)[0]["vms"]["v"]["nics"][0]["cable"] is False
    with pytest.raises(topology.TopologyError, match="a none NIC has no cable to pull"):
        lab({}, {"v": {"nics": [{"none": True, "cable": False}]}})


def test_a_vm_added_gets_the_wizards_nics_and_the_same_macs_a_file_gives() -> None:
    g = lab({"eth0": WIRED, "wlan0": WIRELESS}, {"xp": {"nics": ["shared"]}})
    edit, new = edits.add_vm(g, "w7")
    assert [modes.label(n) for n in new] == ["bridge eth0", "bridge wlan0"]
    before = nx.Graph(g)
    assert "w7" not in g  # nothing changes until the edit is made
    edit(g)
    assert nics(g, "w7") == [(0, "bridge eth0"), (1, "bridge wlan0")]
    assert [g.nodes[f"w7/{i}"]["mac"] for i in (0, 1)] == [n["mac"] for n in new]
    assert g.nodes["xp/0"] == before.nodes["xp/0"]  # the others stay as they were
    again = graph_of(topology.to_document(g)[0])  # as a file would start it
    assert {k: d["mac"] for k, d in topology.nodes_of(again, "nic")} == {
        k: d["mac"] for k, d in topology.nodes_of(g, "nic")}
    assert topology.validate(g) == []
    assert g.has_edge("w7", "pc") and g.has_edge("w7/0", "pc/eth0")


def test_a_vm_added_with_its_own_nics_and_a_new_internal_network() -> None:
    g = lab({"eth0": WIRED}, {})
    edit, _ = edits.add_vm(g, "a", nics=["shared", "internal:new", "bridge eth0", "none"])
    edit(g)
    assert nics(g, "a") == [(0, "shared"), (1, "internal new"), (2, "bridge eth0"), (3, "none")]
    assert "new" in g.graph["internal"] and "pc/new" in g
    assert topology.validate(g) == []
    edits.add_vm(g, "b", nics=[])[0](g)
    assert nics(g, "b") == []


@pytest.mark.parametrize(("call", "message"), [
    (lambda g: edits.add_vm(g, "xp"), "name 'xp' is already used by a vm"),
    (lambda g: edits.add_vm(g, "office"), "name 'office' is already used by a lan"),
    (lambda g: edits.add_vm(g, "9x"), "'9x' is not a valid VM name"),
    (lambda g: edits.add_vm(g, "nic"), "'nic' is a CLI command"),
    (lambda g: edits.add_vm(g, "a", pc="pcc"), "no PC 'pcc' in lab t .PCs: pc.; did you mean"),
    (lambda g: edits.add_vm(g, "a", nics=["bridge eth9"]), "no adapter 'eth9' on pc pc"),
    (lambda g: edits.add_vm(g, "a", nics=["bridged"]), "bridged"),
    (lambda g: edits.add_vm(g, "a", nics=["none"] * 5), "5 NICs: a Virtual PC VM has at most 4"),
    (lambda g: edits.add_vm(g, "a", nics="shared"), "a list of modes"),
    (lambda g: edits.add_vm(g, "a", nics=[{"ip": "1"}]), "a NIC's mode is a string"),
    (lambda g: edits.add_nic(g, "xpp"), "no VM 'xpp' in lab t .VMs: xp.; did you mean 'xp'"),
    (lambda g: edits.add_nic(g, "xp", "internal:9x"), "'9x' is not a valid internal network"),
    (lambda g: edits.remove_nic(g, "xp", 3), r"xp has no NIC 3 \(its NICs: 0\)"),
    (lambda g: edits.remove_nic(g, "xp", "0"), "xp has no NIC '0'"),
    (lambda g: edits.remove_vm(g, "pc"), "no VM 'pc'"),
])
def test_wrong_edits_are_refused_in_one_line(call, message: str) -> None:
    g = lab({"eth0": WIRED}, {"xp": {"nics": ["shared"]}})
    before = (list(g.nodes(data=True)), list(g.edges(data=True)), repr(g.graph))
    with pytest.raises(ValueError, match=message) as err:
        call(g)
    assert "\n" not in str(err.value)
    assert (list(g.nodes(data=True)), list(g.edges(data=True)), repr(g.graph)) == before


def test_nics_come_and_go_keeping_their_numbers() -> None:
    g = lab({"eth0": WIRED}, {"xp": {"nics": ["shared"]}})
    added = []
    for _ in range(3):
        edit, index = edits.add_nic(g, "xp")
        edit(g)
        added.append(index)
    assert added == [1, 2, 3]
    assert nics(g, "xp") == [(0, "shared"), (1, "none"), (2, "none"), (3, "none")]
    with pytest.raises(ValueError, match="xp has 4 NICs already, the most a Virtual PC VM has"):
        edits.add_nic(g, "xp")
    edits.remove_nic(g, "xp", 1)(g)
    assert nics(g, "xp") == [(0, "shared"), (2, "none"), (3, "none")]
    assert topology.to_document(g)[0]["vms"]["xp"]["nics"][1] == {"none": True, "speed": 100,
                                                                  "index": 2}
    edit, index = edits.add_nic(g, "xp", "bridge:eth0")
    edit(g)
    assert index == 1 and nics(g, "xp")[1] == (1, "bridge eth0")
    edits.remove_vm(g, "xp")(g)
    assert not [k for k in g if str(k).startswith("xp")]
    assert topology.validate(g) == []


def test_the_plan_keeps_every_other_nics_cable_when_vms_come_and_go() -> None:
    g = topology.load(ROOT / "topologies" / "four_modes.yaml")
    first = plan(g, "wv999")
    edits.remove_vm(g, "lab1")(g)  # the NIC numbered first goes
    edits.add_vm(g, "w7")[0](g)
    second = plan(g, "wv999", previous=first)
    from wvpclab.model.items import Nat, Veth

    kept = {k: v for k, v in first.of(Veth).items() if k[0] == "xp"}
    assert {k: second.of(Veth)[k] for k in kept} == kept
    assert second.of(Nat) == first.of(Nat)
    roots = [v.root for v in second.of(Veth).values() if v.root]
    assert len(roots) == len(set(roots))
    fresh = plan(g, "wv999")  # a lab started anew numbers its NICs in order
    assert sorted(v.root for k, v in fresh.of(Veth).items() if k[0] in ("xp", "w7")) == [
        f"wv999-n{i}" for i in range(6)]


def test_the_default_examples_load_with_the_wizard(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "topologies" / "four_modes.yaml").read_text())
    doc["vms"]["lab2"] = {}
    g = graph_of(doc)
    assert [label for _, label in nics(g, "lab2")] == ["bridge eth0", "bridge wlan0"]
