"""Saving a lab as a topology file (wvpclab.model.save): the file starts the same lab (VMs, NIC
numbers, modes, cables, addresses, MACs), and the file the lab came from keeps its comments,
order and styles, changed only where the lab changed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import yaml

from tests.conftest import TOPOLOGIES
from wvpclab.model import edits, modes, save, topology

FILES = sorted(TOPOLOGIES.glob("*.yaml"))
NIC_ATTRS = ("index", "mode", "target", "mac", "ip", "speed", "allow_mac_spoofing", "forward",
             "cable")


def reload(text: str, tmp_path: Path | None = None) -> nx.Graph:
    """The lab a saved text starts (through the file loader when a folder is given)."""
    if tmp_path is None:
        return topology.from_document(yaml.safe_load(text))
    path = tmp_path / "saved.yaml"
    path.write_text(text)
    return topology.load(path)


def nics(graph: nx.Graph) -> dict[str, dict[str, Any]]:
    return {key: {a: d.get(a) for a in NIC_ATTRS} for key, d in graph.nodes(data=True)
            if d.get("kind") == "nic"}


def macs(graph: nx.Graph) -> dict[str, str]:
    return {key: d["mac"] for key, d in graph.nodes(data=True) if d.get("mac")}


def summary(graph: nx.Graph) -> list[str]:
    """A lab's summary, less its PCs' internal networks: a network its last NIC left stays in a
    running lab, and is declared in the file, but a PC has its node only while a NIC uses it."""
    lines = topology.summary(graph).splitlines()
    return [re.sub(r" \d+ internal networks?,", "", lines[0]),
            *(line for line in lines[1:] if not line.startswith("internal "))]


def declared(graph: nx.Graph) -> dict[str, bool]:
    """A lab's internal networks: declared in its file, or typed afresh (a node of a PC)."""
    nets = {k: d["dhcp"] for k, d in graph.graph["internal"].items()}
    nets.update({d["name"]: d["dhcp"] for _, d in graph.nodes(data=True)
                 if d.get("kind") == "internal"})
    return nets


def assert_same_lab(saved: nx.Graph, lab: nx.Graph) -> None:
    assert summary(saved) == summary(lab)
    assert declared(saved) == declared(lab)
    assert nics(saved) == nics(lab)
    assert macs(saved) == macs(lab)
    assert {n: {k: v for k, v in d.items() if k != "kind"} for n, d in lab.nodes(data=True)
            if d.get("kind") == "vm"} == {
        n: {k: v for k, v in d.items() if k != "kind"} for n, d in saved.nodes(data=True)
        if d.get("kind") == "vm"}


def comments(text: str) -> list[str]:
    """The comment lines of a file, and the comments at the ends of its lines."""
    out = []
    for line in text.splitlines():
        if "#" in line and not line.lstrip().startswith("#"):
            out.append(line[line.index("#"):].strip())
        elif line.lstrip().startswith("#"):
            out.append(line.strip())
    return out


def add_vm(graph: nx.Graph, name: str, body: dict) -> None:
    """Adds a VM to a lab graph as the loader reads it from a file (an internal network it names
    afresh is declared, as a NIC moved into one declares it)."""
    doc, problems = topology.to_document(graph)
    assert not problems
    doc["vms"][name] = body
    for nic in body.get("nics", []):
        if isinstance(nic, dict) and "internal" in nic:
            doc["internal"].setdefault(nic["internal"], {"dhcp": True})
    built = topology.from_document(doc, graph.graph["name"])
    new = [name, *(k for k, d in built.nodes(data=True) if d.get("vm") == name)]
    new += [k for k in built if k not in graph and k not in new]  # an internal network's node
    for key in new:
        graph.add_node(key, **built.nodes[key])
    for a, b, data in built.edges(data=True):
        if a in new or b in new:
            graph.add_edge(a, b, **data)
    graph.graph["internal"] = built.graph["internal"]


def remove_vm(graph: nx.Graph, name: str) -> None:
    graph.remove_nodes_from([name, *(k for k, d in graph.nodes(data=True)
                                     if d.get("kind") == "nic" and d["vm"] == name)])


# --------------------------------------------------------------------------------------------------
# Written afresh


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_saved_lab_reloads_as_itself(path: Path, tmp_path: Path) -> None:
    lab = topology.load(path)
    text = save.render(lab)
    assert text.splitlines()[0] == save.SCHEMA_LINE
    assert_same_lab(reload(text, tmp_path), lab)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_file_written_afresh_leaves_defaults_out(path: Path) -> None:
    text = save.render(topology.load(path))
    for default in ("speed: 100", "dhcp_client: udhcpc", "cable: true", "ipv6: true",
                    "type: wired", "ip: dhcp", "user: root", "allow_mac_spoofing"):
        assert default not in text
    data = yaml.safe_load(text)
    assert list(data) == [s for s in save.SECTIONS if s in data]


def test_a_file_written_afresh_looks_like_the_examples() -> None:
    text = save.render(topology.load(TOPOLOGIES / "four_modes.yaml"))
    assert text == (
        f"{save.SCHEMA_LINE}\n"
        "name: office-lab\n"
        "pcs:\n"
        "  pc:\n"
        "    adapters:\n"
        '      eth0: {mac: "00:1a:2b:3c:4d:5e", lan: office}\n'
        '      wlan0: {type: wireless, mac: "00:1a:2b:3c:4d:5f", lan: cafe}\n'
        "lans:\n"
        "  office:\n"
        "    subnet: 192.168.50.0/24\n"
        "    servers: {web: 192.168.50.80}\n"
        "  cafe:\n"
        "    subnet: 192.168.60.0/24\n"
        "internal:\n"
        "  lab: {dhcp: true}\n"
        "vms:\n"
        "  xp:\n"
        "    nics:\n"
        "      - shared\n"
        "      - {bridge: eth0}\n"
        "      - {internal: lab}\n"
        "      - none\n"
        "  lab1:\n"
        '    nics: [{internal: lab, ip: 169.254.1.10/16, mac: "00:03:ff:00:00:10"}]\n')


def test_a_vm_without_nics_is_written_with_an_empty_list() -> None:
    lab = topology.load(TOPOLOGIES / "bridge.yaml")
    add_vm(lab, "bare", {"nics": []})
    text = save.render(lab)
    assert "  bare:\n    nics: []\n" in text
    assert not [k for k, d in reload(text).nodes(data=True) if d.get("vm") == "bare"]


def test_the_lab_name_is_written_as_it_is() -> None:
    lab = topology.load(TOPOLOGIES / "bridge.yaml")
    lab.graph["name"] = "t-renamed.2"
    assert reload(save.render(lab)).graph["name"] == "t-renamed.2"
    original = (TOPOLOGIES / "bridge.yaml").read_text()
    edited = save.render(lab, original)
    assert "name: t-renamed.2\n" in edited and reload(edited).graph["name"] == "t-renamed.2"
    nameless = original.replace("name: bridge\n", "")
    lab.graph["name"] = "bridge"
    edited = save.render(lab, nameless)
    assert reload(edited).graph["name"] == "bridge"
    assert edited.splitlines()[0] == save.SCHEMA_LINE


def test_names_yaml_reads_as_other_values_are_quoted() -> None:
    lab = topology.from_document({"name": "t", "pcs": {"pc": {}}, "internal": {"on": {}},
                                  "vms": {"yes": {"nics": [{"internal": "on"}]},
                                          "no": {"nics": ["shared"]}}})
    text = save.render(lab)
    assert_same_lab(reload(text), lab)
    assert '"yes":' in text and '{internal: "on"}' in text


# --------------------------------------------------------------------------------------------------
# MACs


def test_a_derived_mac_the_file_would_derive_otherwise_is_written() -> None:
    lab = topology.load(TOPOLOGIES / "default.yaml")
    assert lab.nodes["xp/1"]["mac_source"] == "derived"
    lab.nodes["xp/1"]["mac"] = "00:03:ff:12:34:56"  # as a lab deriving against its own MACs may
    for text in (save.render(lab), save.render(lab, (TOPOLOGIES / "default.yaml").read_text())):
        assert text.count('"00:03:ff:12:34:56"') == 1
        assert macs(reload(text)) == macs(lab)
        assert text.count("00:03:ff") == 1  # the other derived MACs stay derived


def test_explicit_macs_are_kept() -> None:
    lab = topology.load(TOPOLOGIES / "four_modes.yaml")
    text = save.render(lab)
    assert '"00:03:ff:00:00:10"' in text and '"00:1a:2b:3c:4d:5f"' in text
    assert reload(text).nodes["lab1/0"]["mac_source"] == "explicit"


# --------------------------------------------------------------------------------------------------
# The original file kept


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_an_unchanged_lab_gives_its_file_back_byte_for_byte(path: Path) -> None:
    original = path.read_text()
    assert save.render(topology.load(path), original) == original


def move_nic(lab: nx.Graph) -> str:
    key, nic = next((k, d) for k, d in lab.nodes(data=True) if d.get("kind") == "nic")
    modes.move(lab, nic["vm"], nic["index"], "none" if nic["mode"] == "shared" else "shared", None)
    return key


def pull_cable(lab: nx.Graph) -> str:
    key = next(k for k, d in lab.nodes(data=True)
               if d.get("kind") == "nic" and d["mode"] != "none")
    modes.set_cable(lab, lab.nodes[key]["vm"], lab.nodes[key]["index"], False)
    return key


def drop_vm(lab: nx.Graph) -> str:
    vm = min(k for k, d in lab.nodes(data=True) if d.get("kind") == "vm")
    remove_vm(lab, vm)
    return vm


def drop_middle_nic(lab: nx.Graph) -> str:
    vm = next((k for k, d in lab.nodes(data=True) if d.get("kind") == "vm"
               and f"{k}/2" in lab), None)
    if vm is None:  # no VM with three NICs: give one a third, then take its second
        vm = next(k for k, d in lab.nodes(data=True) if d.get("kind") == "vm")
        add_vm(lab, "t-third", {"pc": lab.nodes[vm]["pc"], "nics": ["none", "shared", "none"]})
        vm = "t-third"
    lab.remove_node(f"{vm}/1")
    return vm


def new_vm(lab: nx.Graph) -> str:
    pc = min(k for k, d in lab.nodes(data=True) if d.get("kind") == "pc")
    add_vm(lab, "added", {"pc": pc, "nics": ["shared", {"internal": "fresh"}]})
    return "added"


EDITS = [move_nic, pull_cable, drop_vm, drop_middle_nic, new_vm]


def _has_vms(path: Path) -> bool:
    return bool(topology.nodes_of(topology.load(path), "vm"))


#: Every edit on every example; a lab with no VMs yet (empty_pc.yaml) only gains one.
CASES = [pytest.param(path, edit, id=f"{path.name}-{edit.__name__}")
         for path in FILES for edit in EDITS if edit is new_vm or _has_vms(path)]


@pytest.mark.parametrize(("path", "edit"), CASES)
def test_an_edited_lab_is_saved_in_its_file(path: Path, edit: Any, tmp_path: Path) -> None:
    original = path.read_text()
    lab = topology.load(path)
    what = edit(lab)
    text = save.render(lab, original)
    assert_same_lab(reload(text, tmp_path), lab)
    assert text.splitlines()[0] == save.SCHEMA_LINE
    kept = original
    if edit is drop_vm:  # the VM's lines go, with their comments
        start = original.index(f"  {what}:")
        end = re.compile(r"^ {0,2}\S", re.MULTILINE).search(original, start + 3)
        kept = original[:start] + (original[end.start():] if end else "")
    assert comments(text) == comments(kept)
    changed = [line for line in text.splitlines() if line not in original.splitlines()]
    assert len(changed) <= 6, changed  # the rest of the file as it was
    if edit is drop_vm:
        assert f"{what}:" not in text.replace(f"pc: {what}", "")


def test_a_moved_nic_is_rewritten_in_its_style() -> None:
    original = (TOPOLOGIES / "default.yaml").read_text()
    lab = topology.load(TOPOLOGIES / "default.yaml")
    modes.move(lab, "xp", 1, "bridge", "eth0")
    assert save.render(lab, original) == original.replace(
        "      - internal: lab\n      - none\n", "      - internal: lab\n      - bridge: eth0\n")
    modes.move(lab, "lab1", 0, "internal", "other")  # a network typed afresh is declared
    text = save.render(lab, original)
    assert "  lab: {dhcp: true}\n  other: {dhcp: true}\nvms:\n" in text
    assert "      - {internal: other, ip: 169.254.1.20/16}\n" in text
    assert_same_lab(reload(text), lab)


def test_a_nic_taken_from_the_middle_keeps_the_others_numbers() -> None:
    original = (TOPOLOGIES / "four_modes.yaml").read_text()
    lab = topology.load(TOPOLOGIES / "four_modes.yaml")
    lab.remove_node("xp/1")
    text = save.render(lab, original)
    assert "      - shared\n      - internal: lab\n        index: 2\n      - none\n" in text
    assert sorted(d["index"] for d in nics(reload(text)).values() if d) == [0, 0, 2, 3]
    lab.remove_node("xp/0")
    text = save.render(lab, original)
    assert "    nics:\n      - internal: lab\n        index: 2\n      - none\n" in text


def test_meaning_not_spelling_decides_what_is_rewritten() -> None:
    original = (TOPOLOGIES / "four_modes.yaml").read_text().replace(
        "      - shared\n", "      - {shared: true, speed: 100, cable: true}\n").replace(
        "      - none\n", "      - none: {}\n")
    lab = topology.from_document(yaml.safe_load(original))
    assert save.render(lab, original) == original
    modes.move(lab, "xp", 2, "none", None)
    text = save.render(lab, original)
    assert text == original.replace("      - internal: lab\n", "      - none\n")


COMMENTED = """\
# yaml-language-server: $schema=../wvpclab/model/topology.schema.json
# A lab with comments everywhere.
name: t-notes
pcs:
  pc:
    adapters:
      eth0: {lan: office}
lans:
  office:
    subnet: 192.168.50.0/24
internal:
  lab: {}
vms:
  # the first guest
  xp:
    nics:
      - shared      # NAT
      # the next is bridged
      - bridge: eth0   # host
      - {internal: lab}  # int
    # after xp

  # before lab1
  lab1:
    nics: [shared]   # one
  # before lab2
  lab2: {nics: [none]}  # flow vm
  # the end
"""


def test_a_removed_vm_goes_with_its_comments() -> None:
    lab = topology.from_document(yaml.safe_load(COMMENTED))
    remove_vm(lab, "xp")
    text = save.render(lab, COMMENTED)
    assert text == COMMENTED.replace(COMMENTED[COMMENTED.index("  # the first"):
                                              COMMENTED.index("  # before lab1")], "")
    lab = topology.from_document(yaml.safe_load(COMMENTED))
    remove_vm(lab, "lab1")
    assert save.render(lab, COMMENTED) == COMMENTED.replace(
        "  # before lab1\n  lab1:\n    nics: [shared]   # one\n", "")
    remove_vm(lab, "lab2")
    text = save.render(lab, COMMENTED)
    assert text.endswith("    # after xp\n\n  # the end\n")
    assert_same_lab(reload(text), lab)


def test_a_rewritten_nic_loses_its_own_comment_only() -> None:
    lab = topology.from_document(yaml.safe_load(COMMENTED))
    modes.move(lab, "xp", 0, "none", None)
    assert save.render(lab, COMMENTED) == COMMENTED.replace("      - shared      # NAT\n",
                                                            "      - none\n")
    lab.remove_node("xp/1")
    text = save.render(lab, COMMENTED)
    assert "      - none\n      - {internal: lab, index: 2} # int\n    # after xp\n" in text
    assert "# the next is bridged" not in text
    assert_same_lab(reload(text), lab)


def test_an_added_vm_takes_its_neighbours_style() -> None:
    original = (TOPOLOGIES / "internet.yaml").read_text()
    lab = topology.load(TOPOLOGIES / "internet.yaml")
    add_vm(lab, "work-new", {"pc": "work", "nics": ["shared", {"bridge": "eth0"}]})
    text = save.render(lab, original)
    assert text == original + "  work-new: {pc: work, nics: [shared, {bridge: eth0}]}\n"
    lab = topology.from_document(yaml.safe_load(COMMENTED))
    add_vm(lab, "lab3", {"nics": [{"internal": "lab", "ip": "169.254.1.3/16"}]})
    text = save.render(lab, COMMENTED)
    assert text.endswith("  lab2: {nics: [none]}  # flow vm\n"
                         "  lab3: {nics: [{internal: lab, ip: 169.254.1.3/16}]}\n"
                         "  # the end\n")


def test_a_vm_the_wizard_equipped_stays_without_nics() -> None:
    original = COMMENTED.replace("  lab1:\n    nics: [shared]   # one\n", "  lab1: {}\n")
    lab = topology.from_document(yaml.safe_load(original))
    assert nics(lab)["lab1/0"]["target"] == "eth0"  # the wizard's: bridged to the wired adapter
    modes.move(lab, "xp", 0, "none", None)
    text = save.render(lab, original)
    assert "  lab1: {}\n" in text
    modes.move(lab, "lab1", 0, "shared", None)
    text = save.render(lab, original)
    assert "  lab1:\n    nics: [shared]\n  # before lab2\n" in text
    assert_same_lab(reload(text), lab)


def test_a_pulled_cable_is_kept() -> None:
    original = (TOPOLOGIES / "xp_mode.yaml").read_text()
    lab = topology.load(TOPOLOGIES / "xp_mode.yaml")
    modes.set_cable(lab, "xp", 0, False)
    text = save.render(lab, original)
    assert "    nics: [{shared: true, cable: false}]\n" in text
    assert reload(text).nodes["xp/0"]["cable"] is False
    assert "ipv6: false                         # as Windows XP installs itself" in text


# --------------------------------------------------------------------------------------------------
# Originals that cannot be kept


def test_a_json_original_gives_yaml_saying_so() -> None:
    lab = topology.load(TOPOLOGIES / "bridge.yaml")
    original = json.dumps(yaml.safe_load((TOPOLOGIES / "bridge.yaml").read_text()))
    text = save.render(lab, original, source="bridge.json")
    first, second = text.splitlines()[:2]
    assert first == save.SCHEMA_LINE
    assert second.startswith("# Saved from the running lab bridge") and "JSON" in second
    assert text.split("\n", 2)[2] == save.render(lab).split("\n", 1)[1]
    assert_same_lab(reload(text), lab)


def test_a_python_original_gives_yaml_saying_so() -> None:
    lab = topology.load(TOPOLOGIES / "move_nic.py")
    text = save.render(lab, (TOPOLOGIES / "move_nic.py").read_text())
    assert text.splitlines()[0] == save.SCHEMA_LINE
    assert text.splitlines()[1].startswith("# Saved from the running lab")
    assert_same_lab(reload(text), lab)


def test_json_out() -> None:
    lab = topology.load(TOPOLOGIES / "four_modes.yaml")
    text = save.render(lab, fmt="json")
    data = json.loads(text)
    assert data["$schema"].endswith("topology.schema.json")
    assert_same_lab(topology.from_document(data), lab)
    with pytest.raises(save.SaveError, match="toml"):
        save.render(lab, fmt="toml")


def test_a_graph_that_is_no_lab_is_refused() -> None:
    lab = topology.load(TOPOLOGIES / "bridge.yaml")
    lab.remove_node("g1")  # its NIC left behind, naming no VM
    with pytest.raises(save.SaveError, match="g1"):
        save.render(lab)


def test_a_bridged_nic_in_place_of_a_commented_one_keeps_the_next_ones_comment() -> None:
    lab = topology.from_document(yaml.safe_load(COMMENTED))
    modes.move(lab, "xp", 0, "bridge", "eth0")
    assert save.render(lab, COMMENTED) == COMMENTED.replace(
        "      - shared      # NAT\n", "      - bridge: eth0\n")


def test_a_network_typed_afresh_is_declared_as_its_neighbours_are() -> None:
    original = (TOPOLOGIES / "internet.yaml").read_text()
    lab = topology.load(TOPOLOGIES / "internet.yaml")
    modes.move(lab, "work-nat", 0, "internal", "other")
    assert save.render(lab, original) == original.replace(
        "  lab: {}\n", "  lab: {}\n  other: {}\n").replace(
        "work-nat: {pc: work, nics: [shared]}", "work-nat: {pc: work, nics: [{internal: other}]}")


# --------------------------------------------------------------------------------------------------
# The edits a running lab makes (wvpclab.model.edits), one after another


def test_the_labs_own_edits_are_saved(tmp_path: Path) -> None:
    original = (TOPOLOGIES / "default.yaml").read_text()
    lab = topology.load(TOPOLOGIES / "default.yaml")
    edits.add_vm(lab, "t-new")[0](lab)  # the wizard's NICs
    edits.add_vm(lab, "t-two", nics=["internal:fresh", "none"])[0](lab)
    edits.add_nic(lab, "xp", "shared")[0](lab)
    edits.remove_nic(lab, "xp", 0)(lab)
    edits.remove_vm(lab, "lab1")(lab)
    edits.add_nic(lab, "t-two")[0](lab)
    edits.remove_nic(lab, "t-two", 1)(lab)
    modes.set_cable(lab, "t-two", 0, False)
    for text in (save.render(lab, original), save.render(lab)):
        saved = reload(text, tmp_path)
        assert_same_lab(saved, lab)
        assert sorted(k for k, d in saved.nodes(data=True) if d.get("kind") == "nic") == [
            "t-new/0", "t-two/0", "t-two/2", "xp/1", "xp/2"]
    text = save.render(lab, original)
    assert comments(text) == comments(original)
    assert "  lab: {dhcp: true}\n  fresh: {dhcp: true}\nvms:\n" in text
    assert "      - {none: true, index: 1}\n      - shared\n" in text
    assert "      - {internal: fresh, cable: false}\n      - {none: true, index: 2}\n" in text


# --------------------------------------------------------------------------------------------------
# Originals written otherwise


FOUR_SPACES = """\
name: t-wide
pcs:
    pc:
        adapters:
            eth0: {lan: office}
lans:
    office:
        subnet: 10.0.0.0/24
vms:
    xp:
        nics:
        - shared
        - none
    v2:
"""


def test_an_original_indented_otherwise_keeps_its_indentation() -> None:
    lab = topology.from_document(yaml.safe_load(FOUR_SPACES))
    assert save.render(lab, FOUR_SPACES) == FOUR_SPACES
    modes.move(lab, "xp", 1, "bridge", "eth0")
    assert save.render(lab, FOUR_SPACES) == FOUR_SPACES.replace(
        "        - none\n", "        - {bridge: eth0}\n")


def test_a_vm_written_with_nothing_stays_so_until_it_changes() -> None:
    lab = topology.from_document(yaml.safe_load(FOUR_SPACES))
    assert nics(lab)["v2/0"]["target"] == "eth0"  # the wizard's
    modes.move(lab, "v2", 0, "shared", None)
    text = save.render(lab, FOUR_SPACES)
    assert text == FOUR_SPACES + "        nics:\n        - shared\n"
    assert_same_lab(reload(text), lab)


def test_windows_line_ends_are_kept() -> None:
    original = (TOPOLOGIES / "xp_mode.yaml").read_text().replace("\n", "\r\n")
    lab = topology.load(TOPOLOGIES / "xp_mode.yaml")
    assert save.render(lab, original) == original
    modes.move(lab, "xp", 0, "none", None)
    assert save.render(lab, original) == original.replace("nics: [shared]", "nics: [none]")


def test_an_original_whose_vms_share_an_alias_is_written_afresh() -> None:
    original = "name: t-alias\npcs:\n  pc: {}\nvms:\n  a: &v {nics: [shared]}\n  b: *v\n"
    lab = topology.from_document(yaml.safe_load(original))
    assert save.render(lab, original) == original
    modes.move(lab, "a", 0, "none", None)  # b's NIC, the same lines, stays shared
    text = save.render(lab, original)
    assert text.splitlines()[1].startswith("# Saved from the running lab t-alias")
    assert_same_lab(reload(text), lab)


def test_saving_leaves_the_lab_as_it_was() -> None:
    original = (TOPOLOGIES / "four_modes.yaml").read_text()
    lab = topology.load(TOPOLOGIES / "four_modes.yaml")
    lab.nodes["xp/3"]["mac"] = "00:03:ff:12:34:56"
    lab.remove_node("xp/1")
    before = json.dumps(nx.node_link_data(lab, edges="links"), sort_keys=True)
    for text in (save.render(lab), save.render(lab, original), save.render(lab, fmt="json")):
        assert_same_lab(reload(text), lab)
    assert json.dumps(nx.node_link_data(lab, edges="links"), sort_keys=True) == before
