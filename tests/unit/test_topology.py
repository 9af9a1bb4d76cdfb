"""Topology loading and validation (docs/architecture.md §4): every rule, table-driven, without
root."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import TOPOLOGIES
from wvpclab.model import topology
from wvpclab.model.topology import TopologyError

BASE: dict[str, Any] = {
    "name": "t",
    "pcs": {"host1": {"adapters": {
        "eth0": {"type": "wired", "mac": "00:1a:2b:3c:4d:5e", "lan": "office"},
        "wlan0": {"type": "wireless", "mac": "00:1a:2b:3c:4d:5f", "lan": "cafe"}}}},
    "lans": {"office": {"subnet": "192.168.50.0/24", "servers": {"web": "192.168.50.80"}},
             "cafe": {"subnet": "192.168.60.0/24"}},
    "internal": {"lab": {"dhcp": True}, "quiet": {"dhcp": False}},
    "vms": {
        "xp": {"nics": ["shared", {"bridge": "eth0"}, {"internal": "lab"}, "none"]},
        "v2": {"nics": [{"internal": "lab", "ip": "169.254.1.10/16"}]},
    },
}


def doc(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-path changes applied; a value of DELETE removes the key."""
    d = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        keys = dotted.split("__")
        target = d
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target.setdefault(k, {})
        last = keys[-1]
        if value is DELETE:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return d


DELETE = object()


def errors_of(d: Any) -> list[str]:
    return [str(e) for e in topology.check_document(d)]


def test_base_is_valid_and_graph_has_the_schema() -> None:
    g = topology.from_document(doc())
    kinds = {k: d["kind"] for k, d in g.nodes(data=True)}
    assert kinds["host1"] == "pc"
    assert kinds["host1/eth0"] == "adapter"
    assert kinds["office"] == "lan"
    assert kinds["web"] == "server"
    assert kinds["host1/lab"] == "internal"
    assert kinds["xp"] == "vm"
    assert kinds["xp/0"] == "nic"
    assert "host1/quiet" not in g  # declared, used by no NIC on this PC
    nic = g.nodes["xp/1"]
    assert nic["index"] == 1 and nic["mode"] == "bridge" and nic["target"] == "eth0"
    assert nic["mac"].startswith("00:03:ff:") and nic["speed"] == 100 and nic["ip"] is None
    assert g.edges["xp/1", "host1/eth0"] == {"rel": "attach", "mode": "bridge"}
    assert g.edges["xp/0", "host1"]["mode"] == "shared"
    assert g.edges["xp/2", "host1/lab"]["mode"] == "internal"
    assert not [e for e in g.edges("xp/3") if g.edges[e]["rel"] == "attach"]
    assert g.nodes["web"]["ip"] == "192.168.50.80/24"
    assert g.nodes["office"]["gateway"] == "192.168.50.1/24"
    assert g.nodes["host1"]["nat_subnet"] == "192.168.131.0/24"
    assert g.nodes["v2/0"]["ip"] == "169.254.1.10/16"


def test_internal_networks_are_per_pc() -> None:
    d = doc()
    d["pcs"]["host2"] = {}
    d["vms"]["v3"] = {"pc": "host2", "nics": [{"internal": "lab"}]}
    d["vms"]["xp"]["pc"] = "host1"
    d["vms"]["v2"]["pc"] = "host1"
    g = topology.from_document(d)
    assert g.nodes["host1/lab"]["kind"] == g.nodes["host2/lab"]["kind"] == "internal"
    assert g.edges["v3/0", "host2/lab"]["mode"] == "internal"


def test_nic_forms_are_equivalent() -> None:
    a = topology.from_document(doc(vms__v2__nics=["internal:lab", "bridge:eth0", "shared", "none"]))
    b = topology.from_document(doc(vms__v2__nics=[{"internal": "lab"}, {"bridge": "eth0"},
                                                   {"shared": True}, {"none": None}]))
    for i in range(4):
        assert a.nodes[f"v2/{i}"] == b.nodes[f"v2/{i}"]


@pytest.mark.parametrize("changes, expected", [
    ({"vms__v2__nics": ["none"] * 5}, "vms.v2.nics: 5 NICs, a VM has at most 4"),
    ({"vms__v2__nics": ["warp"]}, "vms.v2.nics[0]: 'warp' is not a NIC mode"),
    ({"vms__v2__nics": [{"bridge": "eth9"}]},
     "vms.v2.nics[0].bridge: no adapter 'eth9' on pc host1"),
    ({"vms__v2__nics": [{"internal": "nope"}]},
     "vms.v2.nics[0].internal: internal network 'nope' is not declared"),
    ({"vms__v2__nics": [{"internal": "lab", "bridge": "eth0"}]},
     "vms.v2.nics[0]: a NIC needs exactly one mode key"),
    ({"vms__v2__nics": [{"ip": "169.254.1.1/16"}]},
     "vms.v2.nics[0]: a NIC needs exactly one mode key"),
    ({"vms__v2__nics": [{"internal": "lab", "colour": 1}]}, "vms.v2.nics[0].colour: unknown key"),
    ({"vms__v2__nics": [{"internal": "lab", "mac": "01:00:5e:00:00:01"}]},
     "vms.v2.nics[0].mac: 01:00:5e:00:00:01 is a multicast"),
    ({"vms__v2__nics": [{"internal": "lab", "mac": "00:03:ff:00:00"}]},
     "vms.v2.nics[0].mac: '00:03:ff:00:00' is not a MAC"),
    ({"vms__v2__nics": [{"internal": "lab", "mac": "00:1a:2b:3c:4d:5e"}]},
     "is already used by pcs.host1.adapters.eth0"),
    ({"vms__v2__nics": [{"internal": "lab", "ip": "169.254.1.300/16"}]},
     "vms.v2.nics[0].ip: '169.254.1.300/16' is not an IPv4 address"),
    ({"vms__v2__nics": [{"internal": "lab", "ip": "169.254.1.10"}]},
     "vms.v2.nics[0].ip: '169.254.1.10' is not an address in CIDR form"),
    ({"vms__v2__nics": [{"internal": "lab", "ip": "169.254.255.255/16"}]},
     "is the broadcast address"),
    ({"vms__v2__nics": [{"internal": "lab", "ip": "169.254.0.1/16"}]}, "DHCP responder address"),
    ({"vms__v2__nics": [{"bridge": "eth0", "ip": "192.168.9.3/24"}]},
     "vms.v2.nics[0].ip: 192.168.9.3 is outside the LAN's network 192.168.50.0/24"),
    ({"vms__v2__nics": [{"bridge": "eth0", "ip": "192.168.50.80/24"}]},
     "address 192.168.50.80 is already used at lans.office.servers.web"),
    ({"vms__v2__nics": [{"bridge": "eth0", "ip": "192.168.50.1/24"}]},
     "already used at lans.office (its gateway)"),
    ({"vms__v2__nics": [{"shared": True, "ip": "10.1.1.1/24"}]},
     "not in the PC's shared-networking subnet"),
    ({"vms__v2__nics": [{"shared": True, "ip": "192.168.131.254/24"}]},
     "is the NAT engine's own address"),
    ({"vms__v2__nics": [{"internal": "lab", "speed": 1000}]},
     "vms.v2.nics[0].speed: 1000 is not a speed"),
    ({"vms__v2__nics": [{"internal": "lab", "allow_mac_spoofing": "yes"}]},
     "allow_mac_spoofing: expected true or false"),
    ({"vms__v2__nics": [{"internal": "lab", "forward": ["tcp:80:80"]}]},
     "port forwarding is for shared (NAT) NICs"),
    ({"vms__v2__nics": [{"shared": True, "forward": ["icmp:1:1"]}]},
     "forward[0]: 'icmp:1:1' is not PROTO:HOSTPORT:GUESTPORT"),
    ({"vms__v2__nics": [{"shared": True, "forward": ["tcp:70000:80"]}]}, "ports are 1 to 65535"),
    ({"vms__v2__nics": [{"shared": True, "forward": ["tcp:80:80"]},
                        {"shared": True, "forward": ["tcp:80:81"]}]},
     "vms.v2.nics[1].forward[0]: tcp port 80 of pc host1 is already forwarded"),
    ({"vms__v2__nics": "shared"}, "vms.v2.nics: expected a list of NICs"),
    ({"vms__v2__pc": "nohost"}, "vms.v2.pc: no PC 'nohost'"),
    ({"vms__v2__ram": 512}, "vms.v2.ram: unknown key 'ram'"),
    ({"vms__web": {}}, "vms.web: name 'web' is already used at lans.office.servers.web"),
    ({"vms__host1": {}}, "vms.host1: name 'host1' is already used at pcs.host1"),
    ({"vms__nodes": {}}, "vms.nodes: 'nodes' is a CLI command"),
    ({"vms__9lives": {}}, "vms.9lives: '9lives' is not a valid VM name"),
    ({"pcs__host1__adapters__eth0__mac": "ff:ff:ff:ff:ff:ff"},
     "pcs.host1.adapters.eth0.mac: ff:ff:ff:ff:ff:ff is a multicast"),
    ({"pcs__host1__adapters__eth1": {"mac": "00:1a:2b:3c:4d:5e"}},
     ("pcs.host1.adapters.eth1.mac: MAC 00:1a:2b:3c:4d:5e is already used by "
      "pcs.host1.adapters.eth0")),
    ({"pcs__host1__adapters__eth0__type": "fiber"},
     "pcs.host1.adapters.eth0.type: 'fiber' is not an adapter type"),
    ({"pcs__host1__adapters__eth0__lan": "nowhere"},
     "pcs.host1.adapters.eth0.lan: no LAN 'nowhere'"),
    ({"pcs__host1__adapters__eth0__ip": "192.168.51.2/24"},
     "pcs.host1.adapters.eth0.ip: 192.168.51.2 is outside the LAN's network"),
    ({"pcs__host1__adapters__eth0__ip": "192.168.50.2/16"},
     "has prefix /16; the LAN is 192.168.50.0/24"),
    ({"pcs__host1__adapters__eth0__speed": 10}, "pcs.host1.adapters.eth0.speed: unknown key"),
    ({"pcs__host1__adapters__this-name-is-too-long": {}}, "is not a valid adapter name"),
    ({"pcs__host1__nat": {"subnet": "192.168.131.0/31"}},
     "pcs.host1.nat.subnet: 192.168.131.0/31 is too small"),
    ({"pcs__host1__nat": {"subnet": "192.168.131.1/24"}},
     "has host bits set; the network is 192.168.131.0/24"),
    ({"pcs__host1__nat": {"subnet": "192.168.50.0/24"}},
     "LAN office (192.168.50.0/24) overlaps its NAT subnet"),
    ({"pcs__host1__nat": {"subnet": "fe80::/64"}},
     "pcs.host1.nat.subnet: 'fe80::/64' is not an IPv4 network"),
    ({"lans__cafe__subnet": "192.168.50.0/25"},
     "pcs.host1.adapters.wlan0.lan: LAN cafe (192.168.50.0/25) overlaps adapter eth0's LAN"),
    ({"lans__cafe__subnet": DELETE}, "lans.cafe.subnet: missing"),
    ({"lans__cafe__subnet": "bogus"}, "lans.cafe.subnet: 'bogus' is not a network in CIDR form"),
    ({"lans__cafe__dhcp": "on"}, "lans.cafe.dhcp: expected true or false, got 'on'"),
    ({"lans__office__servers": {"db": "192.168.50.300"}},
     "lans.office.servers.db: '192.168.50.300' is not an IPv4 address"),
    ({"lans__office__servers": {"db": "192.168.51.3"}},
     "lans.office.servers.db: 192.168.51.3 is outside the LAN's network"),
    ({"lans__office__servers": {"db": "192.168.50.255"}},
     "is the broadcast address of 192.168.50.0/24"),
    ({"lans__office__vlan": 3}, "lans.office.vlan: unknown key 'vlan'"),
    ({"internal__lab__dhcp": "maybe"}, "internal.lab.dhcp: expected true or false, got 'maybe'"),
    ({"internal__eth0": {}, "vms__v2__nics": ["internal:eth0"]},
     "has the name of adapter host1/eth0"),
    ({"colour": "red"},
     ("colour: unknown key 'colour' (expected one of: name, servers, pcs, lans, internal, vms, "
      "internet)")),
    ({"name": "bad name!"}, "name: 'bad name!' is not a valid lab name"),
    ({"pcs": ["host1"]}, "pcs: expected a mapping, got list"),
    ({"pcs__host1__adapters__nat0": {}}, "pcs.host1.adapters.nat0: 'nat0' is a name the lab gives"),
    ({"pcs__host1__adapters__lo": {}}, "pcs.host1.adapters.lo: 'lo' is a name the lab gives"),
    ({"lans__cafe__subnet": "172.31.0.0/24"},
     "lans.cafe.subnet: 172.31.0.0/24 overlaps 172.31.0.0/16"),
    ({"pcs__host1__nat": {"subnet": "172.31.5.0/24"}},
     "pcs.host1.nat.subnet: 172.31.5.0/24 overlaps"),
])
def test_bad_input_is_named(changes: dict[str, Any], expected: str) -> None:
    errs = errors_of(doc(**changes))
    assert any(expected in e for e in errs), errs


def test_a_vm_needs_its_pc_named_when_there_are_several() -> None:
    d = doc()
    d["pcs"]["host2"] = {}
    assert any(e.startswith("vms.xp.pc: required when the lab has several PCs (host1, host2)")
               for e in errors_of(d))


def test_a_vm_without_any_pc_is_refused() -> None:
    assert "vms.a.pc: no PC to run on: declare one under pcs" in errors_of({"vms": {"a": {}}})


def test_every_error_is_reported_at_once() -> None:
    errs = errors_of(doc(vms__v2__nics=[{"bridge": "eth9"}, {"internal": "nope"}, "warp"],
                         lans__cafe__dhcp="on", colour=1))
    assert len(errs) == 5, errs


@pytest.mark.parametrize("document, expected", [
    (None, "the topology is empty"),
    ([1, 2], "a topology is a mapping"),
    ("text", "a topology is a mapping"),
])
def test_not_a_mapping(document: Any, expected: str) -> None:
    assert any(expected in e for e in errors_of(document))


def test_minimal_pc_without_adapters() -> None:
    g = topology.from_document({"pcs": {"pc": None}, "internal": {"lab": None},
                                "vms": {"a": {"nics": ["internal:lab"]}}})
    assert g.nodes["a/0"]["mac"].startswith("00:03:ff:")
    assert g.nodes["pc/lab"]["dhcp"] is True


def test_explicit_mac_honoured_and_normalized() -> None:
    g = topology.from_document(doc(vms__v2__nics=[{"internal": "lab", "mac": "00-03-FF-00-00-10"}]))
    assert g.nodes["v2/0"]["mac"] == "00:03:ff:00:00:10"
    assert g.nodes["v2/0"]["mac_source"] == "explicit"


def test_duplicate_explicit_nic_macs() -> None:
    errs = errors_of(doc(vms__v2__nics=[{"internal": "lab", "mac": "00:03:ff:00:00:10"},
                                        {"internal": "lab", "mac": "00:03:ff:00:00:10"}]))
    assert any(e.startswith("vms.v2.nics[1].mac: MAC 00:03:ff:00:00:10 is already used by "
                            "vms.v2.nics[0]") for e in errs), errs


def test_derived_mac_avoids_an_explicit_one() -> None:
    derived = topology.from_document(doc()).nodes["xp/0"]["mac"]
    g = topology.from_document(doc(vms__v2__nics=[{"internal": "lab", "mac": derived}]))
    assert g.nodes["v2/0"]["mac"] == derived
    assert g.nodes["xp/0"]["mac"] != derived and g.nodes["xp/0"]["mac"].startswith("00:03:ff:")


def test_mac_is_independent_of_mode_and_stable() -> None:
    a = topology.from_document(doc())
    b = topology.from_document(doc(vms__xp__nics=["none", "none", "none", "shared"]))
    assert [a.nodes[f"xp/{i}"]["mac"] for i in range(4)] == [b.nodes[f"xp/{i}"]["mac"]
                                                             for i in range(4)]


def test_mac_depends_on_the_pcs_first_adapter() -> None:
    a = topology.from_document(doc())
    b = topology.from_document(doc(pcs__host1__adapters__eth0__mac="00:1a:2b:3c:4d:60"))
    assert a.nodes["xp/0"]["mac"] != b.nodes["xp/0"]["mac"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=30))
def test_any_valid_topology_has_unique_wvpc_macs_stable_across_loads(nic_counts: list[int]) -> None:
    d = {"pcs": {"pc": {"adapters": {"eth0": {"mac": "00:1a:2b:3c:4d:5e"}}}},
         "internal": {"lab": None},
         "vms": {f"vm{i}": {"nics": ["internal:lab"] * n} for i, n in enumerate(nic_counts)}}
    g1, g2 = topology.from_document(d), topology.from_document(copy.deepcopy(d))
    m1 = [d["mac"] for _, d in topology.nodes_of(g1, "nic")]
    assert len(m1) == len(set(m1)) == sum(nic_counts)
    assert all(m.startswith("00:03:ff:") for m in m1)
    assert m1 == [d["mac"] for _, d in topology.nodes_of(g2, "nic")]


# ---- files ---------------------------------------------------------------------------------------

def test_load_yaml_files_shipped(tmp_path: Path) -> None:
    for path in sorted(TOPOLOGIES.glob("*.yaml")) + sorted(TOPOLOGIES.glob("*.py")):
        g = topology.load(path)
        assert topology.validate(g) == []


def test_node_link_json_round_trip(tmp_path: Path) -> None:
    g = topology.from_document(doc())
    path = tmp_path / "lab.json"
    path.write_text(json.dumps(topology.to_node_link(g)))
    again = topology.load(path)
    assert dict(again.nodes(data=True)) == dict(g.nodes(data=True))
    assert {frozenset(e) for e in again.edges} == {frozenset(e) for e in g.edges}


def test_yaml_document_as_json(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    path.write_text(json.dumps(doc()))
    assert topology.load(path).nodes["xp/1"]["mode"] == "bridge"


def test_graph_validation_names_the_graph_s_nodes_and_attributes() -> None:
    g = topology.from_document(doc())
    g.nodes["v2/0"]["mode"] = "bridge"
    g.nodes["v2/0"]["target"] = "eth9"
    errs = [str(e) for e in topology.validate(g)]
    assert any(e.startswith("nodes['v2/0'].target: no adapter 'eth9' on pc host1") for e in errs)


def test_graph_structural_errors() -> None:
    g = nx.Graph()
    g.add_node("a", kind="router")
    g.add_node("b/0", kind="nic", vm="b", index=0, mode="none")
    errs = [str(e) for e in topology.validate(g)]
    assert any("nodes['a']: kind 'router'" in e for e in errs)
    assert any("nodes['b/0'].vm: no VM node 'b'" in e for e in errs)


def test_python_topology(tmp_path: Path) -> None:
    path = tmp_path / "lab.py"
    path.write_text(
        "from wvpclab import topology as t\n"
        "def topology():\n"
        "    return t.from_document({'pcs': {'pc': {}}, 'internal': {'lab': {}},\n"
        "        'vms': {f'v{i}': {'nics': ['internal:lab']} for i in range(3)}})\n")
    g = topology.load(path)
    assert len(topology.nodes_of(g, "vm")) == 3


@pytest.mark.parametrize("text, expected", [
    ("def topology():\n    raise RuntimeError('boom')\n", "topology(): raised RuntimeError: boom"),
    ("import nonexistent_module_xyz\n", "importing it raised ModuleNotFoundError"),
    ("x = 1\n", "defines no topology() function"),
    ("def topology():\n    return 42\n", "topology(): returned int, expected a networkx graph"),
])
def test_python_topology_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "lab.py"
    path.write_text(text)
    with pytest.raises(TopologyError) as info:
        topology.load(path)
    assert any(expected in str(e) for e in info.value.errors), info.value.errors


@pytest.mark.parametrize("text, expected", [
    ("", "the file is empty"),
    ("vms: [\n", "line 2, column 1: YAML:"),
    ("vms:\n  a: {}\n  a: {}\n", "key 'a' appears twice (first on line 2)"),
    ("- 1\n- 2\n", "a topology is a mapping"),
])
def test_file_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as info:
        topology.load(path)
    assert any(expected in str(e) for e in info.value.errors), info.value.errors
    assert str(path) in str(info.value)


def test_missing_file() -> None:
    with pytest.raises(TopologyError, match="no such file"):
        topology.load("/nonexistent/lab.yaml")


def test_unreadable_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(TopologyError, match="cannot read"):
        topology.load(path)


def test_json_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    path.write_text('{"pcs": }')
    with pytest.raises(TopologyError, match="line 1, column 9: JSON"):
        topology.load(path)


# ---- the command line ----------------------------------------------------------------------------

def wvpclab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Runs the installed console script (as a user would), from an unrelated directory."""
    exe = Path(sys.executable).parent / "wvpclab"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "wvpclab.ui.cli"]
    return subprocess.run([*cmd, *args], check=False, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_check_prints_summary_on_stdout(tmp_path: Path) -> None:
    res = wvpclab("check", str(TOPOLOGIES / "four_modes.yaml"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    g = topology.load(TOPOLOGIES / "four_modes.yaml")
    for mode, nic in zip(["shared", "bridge eth0", "internal lab", "none"],
                         topology.nics_of(g, "xp")):
        start = f"nic {nic['index']}  {nic['mac']}"
        line = next(l for l in res.stdout.splitlines() if l.strip().startswith(start))
        assert mode in line
        assert line.count("00:03:ff") == 1
    for word in ("pc pc", "adapter eth0", "adapter wlan0", "lan office", "server web",
                 "internal pc/lab", "vm xp", "vm lab1"):
        assert word in res.stdout
    assert res.stderr == ""


def test_check_reports_every_error_on_stderr_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pcs: {host1: {adapters: {eth0: {lan: office}}}}\n"
                   "lans: {office: {subnet: 192.168.50.0/24}}\n"
                   "vms:\n  v1: {nics: [none, none, none, none, none]}\n"
                   "  v2: {nics: [{bridge: eth9}]}\n")
    res = wvpclab("check", str(bad), cwd=tmp_path)
    assert res.returncode == 2
    assert res.stdout == ""
    assert "vms.v2.nics[0].bridge: no adapter 'eth9' on pc host1" in res.stderr
    assert "vms.v1.nics: 5 NICs, a VM has at most 4" in res.stderr
    assert "2 errors" in res.stderr


def test_check_graph_json_output_loads_back(tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    res = wvpclab("check", str(TOPOLOGIES / "four_modes.yaml"), "--graph-json", str(out),
                  cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res2 = wvpclab("check", str(out), cwd=tmp_path)
    assert res2.returncode == 0, res2.stderr
    assert res2.stdout.splitlines()[1:] == res.stdout.splitlines()[1:]


def test_a_vm_may_go_without_ipv6() -> None:
    g = topology.from_document(doc(vms__xp__ipv6=False))
    assert g.nodes["xp"]["ipv6"] is False and g.nodes["v2"]["ipv6"] is True
    document, issues = topology.to_document(g)
    assert not issues and document["vms"]["xp"]["ipv6"] is False
    assert "ipv6" not in document["vms"]["v2"]  # the default is not written
    assert topology.from_document(document).nodes["xp"]["ipv6"] is False
    assert "vm xp  (pc host1, dhcp client udhcpc, no IPv6)" in topology.summary(g)
    assert any(e.startswith("vms.xp.ipv6: expected true or false, got 'no'")
               for e in errors_of(doc(vms__xp__ipv6="no")))


# -- the internet ----------------------------------------------------------------------------------
def test_an_internet_gives_its_core_router_and_each_lans_gateway_an_address() -> None:
    g = topology.from_document(doc(internet={"servers": {"site": "100.64.0.80"}},
                                   lans__office__nat=False))
    inet = g.nodes[topology.INTERNET]
    assert (inet["subnet"], inet["gateway"], inet["dhcp"]) == ("100.64.0.0/24", "100.64.0.1/24",
                                                              False)
    assert g.nodes["site"]["lan"] == topology.INTERNET
    assert {k: (g.nodes[k]["wan"], g.nodes[k]["nat"]) for k in ("office", "cafe")} == {
        "office": ("100.64.0.254/24", False), "cafe": ("100.64.0.253/24", True)}
    again = topology.from_document(topology.to_document(g)[0])  # the document round trip
    assert again.nodes[topology.INTERNET] == inet and again.nodes["office"]["nat"] is False


@pytest.mark.parametrize(("changes", "expected"), [
    ({"internet": {"subnet": "8.8.8.0/24"}}, "internet.subnet: 8.8.8.0/24 is a public range"),
    ({"internet": {"subnet": "100.64.0.0/29"}}, "internet.subnet: 100.64.0.0/29 is too small"),
    ({"internet": {"servers": {"site": "100.65.0.1"}}},
     "internet.servers.site: 100.65.0.1 is outside"),
    ({"internet": {"servers": {"web": "100.64.0.9"}}}, "name 'web' is already used"),
    ({"internet": {"servers": {"core": "100.64.0.1"}}}, "address 100.64.0.1 is already used"),
    ({"internet": {"colour": 1}}, "internet.colour: unknown key 'colour'"),
    ({"lans__office__nat": False}, "lans.office.nat: the lab has no internet: section"),
    ({"internet": {"subnet": "192.168.0.0/16"}},
     "lans.office.subnet: 192.168.50.0/24 overlaps the internet"),
    ({"internet": {}, "lans__office__nat": False, "lans__cafe__nat": False,
      "lans__cafe__subnet": "192.168.50.0/25"}, "overlaps LAN office"),
    ({"internet": {}, "lans__internet": {"subnet": "10.1.0.0/24"}},
     "lans.internet: name 'internet' is already used"),
    ({"internet": {}, "servers": {"far": {"host": "192.0.2.10"}}, "lans__office__server": "far"},
     "lans.office.server: with an internet, a LAN runs on the machine running the lab"),
])
def test_a_bad_internet_is_named(changes: dict[str, Any], expected: str) -> None:
    errs = errors_of(doc(**changes))
    assert any(expected in e for e in errs), errs


def test_a_bad_internet_section_is_the_only_error_it_causes() -> None:
    errs = errors_of(doc(internet={"subnet": "8.8.8.0/24"}, lans__office__nat=False))
    assert len(errs) == 1 and "is a public range" in errs[0], errs
