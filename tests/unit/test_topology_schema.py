"""The topology schema declared once (wvpclab.model.schema): its JSON Schema, the reference written
from it, its errors in the project's words, a mode registered later, graphs built by hand, and a
lab validated once per start."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import networkx as nx
import pytest
import yaml

from tests.conftest import TOPOLOGIES
from wvpclab.model import modes, schema, schema_doc, topology
from wvpclab.model.modes.base import Mode, Nic
from wvpclab.model.topology import TopologyError
from wvpclab.ui import cli

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "wvpclab" / "model" / "topology.schema.json"
REFERENCE = ROOT / "docs" / "topology.md"
HEADER = "# yaml-language-server: $schema=../wvpclab/model/topology.schema.json"
EXAMPLES = sorted(TOPOLOGIES.glob("*.yaml"))

GOOD: dict[str, Any] = {
    "name": "t",
    "pcs": {"host1": {"adapters": {"eth0": {"lan": "office"}}}},
    "lans": {"office": {"subnet": "192.168.50.0/24"}},
    "internal": {"lab": {}},
    "vms": {"xp": {"nics": ["shared", {"bridge": "eth0"}, {"internal": "lab"}, "none"]}},
}


def schema_errors(doc: Any) -> list[str]:
    """What the checked-in JSON Schema (an editor) says of a document."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    return [e.message for e in validator.iter_errors(doc)]


def errors_of(doc: Any) -> list[str]:
    return [str(e) for e in topology.check_document(doc)]


def with_(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        *keys, last = dotted.split("__")
        target = d
        for k in keys:
            target = target[int(k)] if isinstance(target, list) else target[k]
        target[last] = value
    return d


# -- the JSON Schema -------------------------------------------------------------------------------

def test_the_checked_in_schema_is_what_the_models_declare() -> None:
    assert SCHEMA_FILE.read_text() == schema.json_schema_text(), (
        "wvpclab/model/topology.schema.json is out of date: "
        "python -m wvpclab schema > wvpclab/model/topology.schema.json")


def test_wvpclab_schema_prints_it() -> None:
    res = subprocess.run([sys.executable, "-m", "wvpclab", "schema"], capture_output=True,
                         text=True, timeout=60, check=False, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    printed = json.loads(res.stdout)
    assert printed == json.loads(SCHEMA_FILE.read_text())
    assert printed["$schema"].startswith("https://json-schema.org/")
    assert printed["title"] == "wvpclab topology"
    jsonschema.Draft202012Validator.check_schema(printed)
    assert printed["$defs"]["Lan"]["properties"]["subnet"]["description"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_names_the_schema_and_passes_it(path: Path) -> None:
    assert path.read_text().splitlines()[0] == HEADER
    assert (path.parent / HEADER.split("=", 1)[1]).resolve() == SCHEMA_FILE
    assert schema_errors(yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize(("changes", "ours"), [
    ({"colour": "red"}, "colour: unknown key 'colour'"),
    ({"lans__office__subnett": "10.0.0.0/24"}, "lans.office.subnett: unknown key 'subnett'"),
    ({"lans__office": {"dhcp": True}}, "lans.office.subnet: missing"),
    ({"lans__office__dhcp": "on"}, "lans.office.dhcp: expected true or false, got 'on'"),
    ({"pcs": ["host1"]}, "pcs: expected a mapping, got list"),
    ({"vms__xp__nics": ["none"] * 5}, "vms.xp.nics: 5 NICs, a VM has at most 4"),
    ({"vms__xp__nics": ["warp"]}, "vms.xp.nics[0]: 'warp' is not a NIC mode"),
    ({"vms__xp__nics": [{"internal": "lab", "bridge": "eth0"}]},
     "vms.xp.nics[0]: a NIC needs exactly one mode key"),
    ({"vms__xp__nics": [{"shared": True, "speed": 1000}]}, "vms.xp.nics[0].speed: 1000 is not"),
    ({"vms__xp__dhcp_client": "dhcpcd"}, "vms.xp.dhcp_client: 'dhcpcd' is not a DHCP client"),
    ({"pcs__host1__adapters__eth0__type": "fiber"},
     "pcs.host1.adapters.eth0.type: 'fiber' is not an adapter type (wired or wireless)"),
    ({"vms__xp__nics": [{"shared": True, "forward": "tcp:80:80"}]},
     "vms.xp.nics[0].forward: expected a list like"),
    ({"vms__xp__ipv6": 1}, "vms.xp.ipv6: expected true or false, got 1"),
    # names and addresses: an editor is told of them too
    ({"vms": {"bad name!": {"nics": ["none"]}}}, "vms.bad name!: "),
    ({"pcs__host1__adapters": {"eth 0": {}}}, "pcs.host1.adapters.eth 0: "),
    ({"lans__office__servers": {"web": "web.example"}}, "lans.office.servers.web: "),
    ({"vms__xp__nics": [{"bridge": "eth0", "ip": "lots"}]}, "vms.xp.nics[0].ip: "),
])
def test_a_bad_file_is_refused_by_the_json_schema_and_by_check(changes: dict[str, Any],
                                                               ours: str) -> None:
    doc = with_(**changes)
    assert schema_errors(doc), "the JSON Schema accepts it"
    errs = errors_of(doc)
    assert any(e.startswith(ours) for e in errs), errs


@pytest.mark.parametrize("changes", [
    {"internal__lab": None},  # internal: {lab: }
    {"pcs__host1__adapters__eth0": None, "vms__xp__nics": ["shared", "none"]},  # eth0:
    {"vms__xp__nics": None},  # nics:
    {"lans__office__servers": {"web": "192.168.50.80"}, "pcs__host1__adapters__eth0__ip": "dhcp"},
    {"vms__xp__nics": [{"bridge": "eth0", "ip": "192.168.50.20"}]},
])
def test_what_check_accepts_the_json_schema_accepts(changes: dict[str, Any]) -> None:
    """An editor must not mark what ``wvpclab check`` takes: an entry with nothing after its name
    (every default), addresses bare or CIDR."""
    doc = with_(**changes)
    assert errors_of(doc) == []
    assert schema_errors(doc) == []


def test_errors_speak_the_projects_words_not_pydantics() -> None:
    doc = {"name": 5, "servers": {"far": {"host": 7, "port": 1}}, "pcs": {"pc": 3},
           "lans": {"x": {"subnet": ["a"], "servers": {"s": 1}}}, "internal": [],
           "vms": {"v": {"nics": [3, {"shared": "yes"}, {"none": 1}, {"bridge": ""}], "pc": []}},
           "internet": "big"}
    errs = errors_of(doc)
    assert len(errs) >= 10, errs
    for e in errs:
        assert "Input should" not in e and "type=" not in e and "pydantic" not in e, e
        assert "\n" not in e and ": " in e, e


@pytest.mark.parametrize(("changes", "expected"), [
    ({"lans__office__subnett": "10.0.0.0/24"}, "did you mean 'subnet'?"),
    ({"vms__xp__nicks": []}, "did you mean 'nics'?"),
    ({"vms__xp__pc": "host"}, "vms.xp.pc: no PC 'host' (declared: host1); did you mean 'host1'?"),
    ({"vms__xp__nics": [{"bridge": "eth1"}]}, "did you mean 'eth0'?"),
    ({"vms__xp__nics": [{"internal": "labb"}]}, "did you mean 'lab'?"),
    ({"pcs__host1__adapters__eth0__lan": "ofice"}, "did you mean 'office'?"),
])
def test_did_you_mean(changes: dict[str, Any], expected: str) -> None:
    errs = errors_of(with_(**changes))
    assert any(expected in e for e in errs), errs


def test_an_entry_in_error_causes_no_errors_of_its_own_elsewhere() -> None:
    errs = errors_of(with_(lans__office={"dhcp": False}))  # no subnet: the LAN is left out
    assert errs == ["lans.office.subnet: missing (the LAN's IPv4 network, e.g. 192.168.50.0/24)"]


# -- the reference ---------------------------------------------------------------------------------

def test_the_reference_is_what_the_schema_says() -> None:
    assert REFERENCE.read_text() == schema_doc.markdown(), (
        "docs/topology.md is out of date: python -m wvpclab schema --markdown > docs/topology.md")


def test_the_references_example_is_a_valid_topology() -> None:
    assert errors_of(yaml.safe_load(schema_doc.EXAMPLE)) == []


def test_the_reference_names_every_key() -> None:
    text = REFERENCE.read_text()
    for name in ("Server", "Pc", "Adapter", "Nat", "Lan", "Internet", "InternalNetwork", "Vm"):
        for key in getattr(schema, name).model_fields:
            assert f"| `{key}` |" in text, (name, key)
    for mode in modes.MODES:
        assert f"| `{mode}` |" in text


# -- a mode registered later -----------------------------------------------------------------------

class Wire(Mode):
    """A throw-away sixth mode: the NIC's cable goes straight into a LAN's switch."""

    name = "wire"
    style = ("#000000", "#ffffff", "wire — straight into a LAN")
    attaches_to = "lan"
    takes_target = True
    summary = "A test's mode: the NIC plugs straight into a LAN."
    target_what = "a LAN"
    target_word = "LAN"

    def check_declared(self, graph: nx.Graph, pc: str, target: str | None) -> str | None:
        if graph.nodes.get(target, {}).get("kind") == "lan":
            return None
        return f"no LAN {target!r}"

    def attachment(self, graph: nx.Graph, nic: Nic) -> str:
        return nic["target"]


@pytest.fixture
def sixth_mode() -> Any:
    modes.MODES["wire"] = Wire()
    try:
        yield modes.MODES["wire"]
    finally:
        del modes.MODES["wire"]


def test_a_mode_registered_later_is_a_mode_like_the_others(sixth_mode: Mode, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    doc = with_(vms__xp__nics=[{"wire": "office", "speed": 10}, "wire:office", "shared"])
    g = topology.from_document(doc)
    assert g.nodes["xp/0"]["mode"] == "wire" and g.nodes["xp/0"]["target"] == "office"
    assert g.nodes["xp/0"]["speed"] == 10 and g.nodes["xp/1"]["mode"] == "wire"
    assert g.edges["xp/0", "office"] == {"rel": "attach", "mode": "wire"}
    assert topology.validate(g) == []  # and back through the document
    path = tmp_path / "wire.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert cli.main(["check", str(path)]) == 0
    assert "wire office" in capsys.readouterr().out
    assert any(e.startswith("vms.xp.nics[0].wire: no LAN 'cafe'")
               for e in errors_of(with_(vms__xp__nics=[{"wire": "cafe"}])))
    forwarding = with_(vms__xp__nics=[{"wire": "office", "forward": ["tcp:1:1"]}])
    assert any("port forwarding is for shared (NAT) NICs, this NIC is wire" in e
               for e in errors_of(forwarding))
    props = schema.json_schema()["$defs"]["Nic"]["anyOf"][1]["properties"]
    assert "wire" in props and "wire" in schema.json_schema()["$defs"]["Nic"]["anyOf"][0]["pattern"]


def test_without_it_the_mode_is_unknown() -> None:
    errs = errors_of(with_(vms__xp__nics=[{"wire": "office"}]))
    assert any("a NIC needs exactly one mode key" in e for e in errs), errs


# -- graphs built by hand --------------------------------------------------------------------------

def _graph_errors(graph: nx.Graph) -> list[str]:
    with pytest.raises(TopologyError) as info:
        topology.from_graph(graph)
    return [str(e) for e in info.value.errors]


def _one_pc_vm() -> nx.Graph:
    g = nx.Graph(name="hand")
    g.add_node("pc", kind="pc", name="pc")
    g.add_node("pc/eth0", kind="adapter", name="eth0", pc="pc")
    g.add_node("v", kind="vm", name="v", pc="pc")
    g.add_node("v/0", kind="nic", vm="v", index=0, mode="shared")
    g.add_edge("pc", "pc/eth0", rel="adapter")
    g.add_edge("v", "pc", rel="host")
    g.add_edge("v", "v/0", rel="nic")
    return g


def test_a_graph_built_by_hand_is_read() -> None:
    g = topology.from_graph(_one_pc_vm())
    assert g.nodes["v/0"]["mac"].startswith("00:03:ff:")
    assert g.edges["v/0", "pc"]["mode"] == "shared"


def _internal_list() -> nx.Graph:
    return nx.Graph(internal=["priv"])


def _edge_without_rel() -> nx.Graph:
    g = _one_pc_vm()
    g.edges["v", "v/0"].pop("rel")
    return g


def _unknown_attribute() -> nx.Graph:
    g = _one_pc_vm()
    g.add_node("office", kind="lan", subnet="10.1.0.0/24", dchp=False)
    return g


def _second_pc_of_a_name() -> nx.Graph:
    g = _one_pc_vm()
    g.add_node("PC", kind="pc", name="pc")
    return g


def _wrong_mode() -> nx.Graph:
    g = _one_pc_vm()
    g.nodes["v/0"]["mode"] = "bridged"
    return g


def _wrong_kind() -> nx.Graph:
    g = _one_pc_vm()
    g.add_node("r", kind="router")
    return g


def _edge_against_its_rel() -> nx.Graph:
    g = _one_pc_vm()
    g.add_node("pc2", kind="pc", name="pc2")
    g.add_edge("pc2", "pc/eth0", rel="adapter")
    return g


@pytest.mark.parametrize(("build", "expected"), [
    (_internal_list, "graph['internal']: expected a mapping of internal network names"),
    (_edge_without_rel, "edges['v', 'v/0']: no rel"),
    (_unknown_attribute, "nodes['office'].dchp: unknown attribute of a lan node"),
    (_second_pc_of_a_name, "nodes['PC']: a second pc node named 'pc' (the first is nodes['pc'])"),
    (_wrong_mode, "nodes['v/0'].mode: 'bridged' is not a NIC mode"),
    (_wrong_kind, "nodes['r']: kind 'router' is not one of pc, adapter"),
    (_edge_against_its_rel, ("edges['pc/eth0', 'pc2']: rel 'adapter' joins 'pc2' and 'pc/eth0', "
                             "but nodes['pc/eth0'].pc is 'pc'")),
])
def test_a_graph_built_by_hand_gets_one_error_line_in_graph_words(build: Any,
                                                                  expected: str) -> None:
    errs = _graph_errors(build())
    assert len(errs) == 1 and errs[0].startswith(expected), errs
    assert "did you mean 'dhcp'?" in errs[0] if build is _unknown_attribute else True


def test_check_says_so_for_a_python_file_too(tmp_path: Path) -> None:
    path = tmp_path / "lab.py"
    path.write_text("import networkx as nx\n"
                    "def topology():\n    return nx.Graph(internal=['priv'])\n")
    exe = Path(sys.executable).parent / "wvpclab"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "wvpclab"]
    res = subprocess.run([*cmd, "check", str(path)], capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "graph['internal']: expected a mapping" in res.stderr


# -- validated once per start ----------------------------------------------------------------------

def test_checked_takes_the_loaders_graph_as_it_is_and_checks_any_other() -> None:
    g = topology.load(TOPOLOGIES / "four_modes.yaml")
    assert topology.checked(g) is g
    hand = _one_pc_vm()
    assert topology.checked(hand) is hand  # valid: checked once, then remembered
    g.nodes["xp/1"]["target"] = "eth9"  # changed after loading: checked again
    with pytest.raises(TopologyError, match=r"nodes\['xp/1'\].target: no adapter 'eth9'"):
        topology.checked(g)
    with pytest.raises(TopologyError, match="no rel"):
        topology.checked(_edge_without_rel())


def test_too_many_nics_and_the_first_four_are_still_checked() -> None:
    errs = errors_of(with_(vms__xp__nics=[1, "none", "none", {"bridge": "eth9"}, "none"]))
    assert errs == ["vms.xp.nics: 5 NICs, a VM has at most 4",
                    "vms.xp.nics[0]: expected a NIC mode or a mapping, got int 1",
                    ("vms.xp.nics[3].bridge: no adapter 'eth9' on pc host1 (it has: eth0); "
                     "did you mean 'eth0'?")], errs


def test_a_lab_takes_the_loaders_graph_and_refuses_a_bad_one_in_graph_words() -> None:
    from wvpclab.runtime.lab import Lab  # constructing one starts nothing

    g = topology.load(TOPOLOGIES / "four_modes.yaml")
    assert Lab(g, quiet=True).graph is g
    with pytest.raises(TopologyError, match=r"edges\['v', 'v/0'\]: no rel"):
        Lab(_edge_without_rel(), quiet=True)


def test_a_json_topology_may_name_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    path.write_text(json.dumps({"$schema": "../wvpclab/model/topology.schema.json", **GOOD}))
    assert topology.load(path).nodes["xp/1"]["mode"] == "bridge"


def test_an_entry_refused_for_its_name_brings_no_false_errors_after_it() -> None:
    """A PC whose name a LAN server already took is one error, not also 'no PC to run on' for
    every VM; a LAN refused for its name is not 'no LAN' for the adapters plugged into it."""
    doc = with_(lans__office__servers={"host1": "192.168.50.80"},
                vms__xp__nics=["shared"])
    assert errors_of(doc) == [("pcs.host1: name 'host1' is already used at "
                               "lans.office.servers.host1 (names are unique across PCs, VMs, "
                               "LANs and servers)")]
    doc = with_(lans={"x": {"subnet": "192.168.60.0/24"}},
                pcs__host1__adapters__eth0__lan="x", vms__xp__nics=["shared"])
    assert errors_of(doc) == [("lans.x: 'x' is a CLI command; a LAN so named could not be "
                               "addressed in the CLI")]


def test_what_the_topology_finds_in_a_graph_is_told_in_graph_words() -> None:
    """Past the graph's own problems, a hand-built graph's errors name its nodes and attributes,
    not the key paths of a document the user never wrote."""
    g = topology.from_document(GOOD)
    g.nodes["host1"]["nat_subnet"] = "10.0.0.0/33"
    g.nodes["xp/0"]["speed"] = 1000
    g.nodes["xp"]["ipv6"] = "yes"
    g.nodes["xp/1"]["target"] = "eth9"
    errs = [str(e) for e in topology.validate(g)]
    assert sorted(e.split(":", 1)[0] for e in errs) == [
        "nodes['host1'].nat_subnet", "nodes['xp'].ipv6", "nodes['xp/0'].speed",
        "nodes['xp/1'].target"], errs
    with pytest.raises(TopologyError) as caught:
        topology.from_graph(g)
    assert [str(e) for e in caught.value.errors] == errs
