"""Drawing a lab (wvpclab.analysis.draw): SVG and PNG through Graphviz, without root."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest

from tests.conftest import TOPOLOGIES
from wvpclab.analysis import draw
from wvpclab.model import topology

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LABS = ["four_modes.yaml", "xp_mode.yaml"]


def svg_texts(path: Path) -> list[str]:
    """Every text node of an SVG file (labels and Graphviz's <title>s), stripped."""
    root = ET.parse(path).getroot()
    return [e.text.strip() for e in root.iter() if e.text and e.text.strip()]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    length, chunk = struct.unpack(">I4s", data[8:16])
    assert chunk == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def names_in(graph: nx.Graph) -> list[str]:
    """Texts the drawing must have, exactly, for each node of the graph."""
    wanted = []
    for key, data in graph.nodes(data=True):
        kind = data["kind"]
        if kind == "pc":
            wanted.append(f"{key} — Windows Virtual PC host")
        elif kind in ("lan", "server", "internal", "vm"):
            wanted.append(key)
        elif kind == "adapter":
            wanted += [data["name"], data["mac"]]
        elif kind == "nic":
            wanted += [data["mac"], f"NIC {data['index']}"]
    return wanted


@pytest.mark.parametrize("lab", LABS)
def test_svg_names_every_node(lab: str, tmp_path: Path) -> None:
    graph = topology.load(TOPOLOGIES / lab)
    out = draw.render(graph, tmp_path / "lab.svg")
    assert out == tmp_path / "lab.svg"
    texts = svg_texts(out)
    for name in names_in(graph):
        assert name in texts, name
    # each LAN shows its subnet and .1 gateway
    for _, lan in topology.nodes_of(graph, "lan"):
        assert lan["subnet"] in texts
        gateway = lan["gateway"].split("/")[0]
        assert any(gateway in t for t in texts)
    # the legend names the four modes
    for mode in topology.MODES:
        assert any(t.startswith(f"{mode} — ") for t in texts), mode


def test_svg_shows_modes_addresses_and_nat(tmp_path: Path) -> None:
    graph = topology.load(TOPOLOGIES / "four_modes.yaml")
    texts = svg_texts(draw.render(graph, tmp_path / "lab.svg"))
    assert "shared (NAT)" in texts
    assert "bridge → eth0" in texts
    assert texts.count("internal → lab") == 2  # xp/2 and lab1/0
    assert "not connected" in texts  # xp/3
    assert "169.254.1.10/16" in texts  # lab1's static address
    assert texts.count("dhcp") >= 4  # xp's four NICs
    # one NAT engine, for the one shared NIC, at the PC's .254
    assert texts.count("NAT engine") == 1
    assert "nat.xp.0" in texts and "192.168.131.254/24" in texts
    assert "DHCP on (169.254.0.1)" in texts  # the internal network's responder
    # a cable from each connected NIC to what it plugs into; none from the Not connected one
    assert "nat.xp.0:e->xp:w" in texts
    assert "pc/eth0:e->xp:w" in texts
    assert texts.count("pc/lab:e->xp:w") == 1
    assert "pc/lab:e->lab1:w" in texts
    assert "office->pc/eth0" in texts and "cafe->pc/wlan0" in texts


def test_dot_source_cables() -> None:
    graph = topology.load(TOPOLOGIES / "four_modes.yaml")
    src = draw.dot_source(graph)
    assert '"nat.xp.0":e -> xp:n0:w' in src
    assert '"pc/eth0":e -> xp:n1:w' in src
    assert '"pc/lab":e -> xp:n2:w' in src
    assert "xp:n3" not in src  # Not connected: no cable
    assert '"pc/lab":e -> lab1:n0:w' in src


@pytest.mark.parametrize("lab", LABS)
def test_png(lab: str, tmp_path: Path) -> None:
    graph = topology.load(TOPOLOGIES / lab)
    out = draw.render(graph, str(tmp_path / "lab.png"))
    width, height = png_size(out)
    assert width > 400 and height > 150
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize("name", ["lab.pdf", "lab", "lab.svg.txt", "lab.dot"])
def test_bad_suffix(name: str, tmp_path: Path) -> None:
    graph = topology.load(TOPOLOGIES / "xp_mode.yaml")
    with pytest.raises(ValueError, match=r"\.svg or \.png"):
        draw.render(graph, tmp_path / name)
    assert not (tmp_path / name).exists()


def test_suffix_case_insensitive(tmp_path: Path) -> None:
    graph = topology.load(TOPOLOGIES / "xp_mode.yaml")
    assert png_size(draw.render(graph, tmp_path / "LAB.PNG"))[0] > 0


def test_mode_change_changes_the_drawing(tmp_path: Path) -> None:
    graph = topology.load(TOPOLOGIES / "four_modes.yaml")
    before = svg_texts(draw.render(graph, tmp_path / "before.svg"))
    # what the running lab does on `nic xp 3 internal lab`
    graph.nodes["xp/3"]["mode"] = "internal"
    graph.nodes["xp/3"]["target"] = "lab"
    graph.add_edge("xp/3", "pc/lab", rel="attach", mode="internal")
    after = svg_texts(draw.render(graph, tmp_path / "after.svg"))
    assert before != after
    assert "not connected" in before and "not connected" not in after
    assert after.count("internal → lab") == before.count("internal → lab") + 1
    assert after.count("pc/lab:e->xp:w") == 2
    assert '"pc/lab":e -> xp:n3:w' in draw.dot_source(graph)


def test_shared_to_bridge_drops_the_nat_engine(tmp_path: Path) -> None:
    graph = topology.load(TOPOLOGIES / "xp_mode.yaml")
    graph.remove_edge("xp/0", "pc")
    graph.nodes["xp/0"].update(mode="bridge", target="eth0")
    graph.add_edge("xp/0", "pc/eth0", rel="attach", mode="bridge")
    texts = svg_texts(draw.render(graph, tmp_path / "lab.svg"))
    assert "NAT engine" not in texts
    assert "bridge → eth0" in texts and "pc/eth0:e->xp:w" in texts


def test_internal_network_new_at_runtime(tmp_path: Path) -> None:
    """A NIC moved onto an internal network the graph has no node for yet is still drawn to it."""
    graph = topology.load(TOPOLOGIES / "xp_mode.yaml")
    graph.nodes["xp/0"].update(mode="internal", target="fresh")
    texts = svg_texts(draw.render(graph, tmp_path / "lab.svg"))
    assert "pc/fresh" in texts and "pc/fresh:e->xp:w" in texts


def test_static_address_and_forwarding_shown(tmp_path: Path) -> None:
    doc = {"name": "fw", "pcs": {"pc": {"adapters": {"eth0": {"type": "wired", "lan": "office"}}}},
           "lans": {"office": {"subnet": "192.168.50.0/24", "dhcp": False}},
           "internal": {"quiet": {"dhcp": False}},
           "vms": {"xp": {"nics": [{"shared": True, "ip": "192.168.131.7/24",
                                    "forward": ["tcp:8080:80"]},
                                   {"internal": "quiet", "ip": "10.0.0.2/24"}]}}}
    graph = topology.from_document(doc)
    texts = svg_texts(draw.render(graph, tmp_path / "fw.svg"))
    assert "192.168.131.7/24" in texts and "10.0.0.2/24" in texts
    assert "tcp 8080 → guest 80" in texts
    assert "DHCP off" in texts
    assert any("DHCP off" in t for t in texts if t.startswith("gateway 192.168.50.1"))


def test_ten_vms(tmp_path: Path) -> None:
    vms = {f"v{i}": {"nics": [["shared", {"bridge": "eth0"}, {"internal": "lab"}, "none"][i % 4]]}
           for i in range(10)}
    doc = {"name": "ten", "pcs": {"pc": {"adapters": {"eth0": {"type": "wired", "lan": "office"}}}},
           "lans": {"office": {"subnet": "192.168.50.0/24"}}, "internal": {"lab": {}}, "vms": vms}
    graph = topology.from_document(doc)
    texts = svg_texts(draw.render(graph, tmp_path / "ten.svg"))
    for name in names_in(graph):
        assert name in texts, name
    assert texts.count("NAT engine") == 3  # v0, v4, v8
    width, height = png_size(draw.render(graph, tmp_path / "ten.png"))
    assert width < 4000 and height < 4000


def test_missing_dot_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = topology.load(TOPOLOGIES / "xp_mode.yaml")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeError, match="Debian package 'graphviz'"):
        draw.render(graph, tmp_path / "lab.svg")


def test_a_lab_over_servers_is_drawn_grouped_by_machine() -> None:
    from tests.unit.test_servers import DOC

    source = draw.dot_source(topology.from_document(DOC))
    assert "subgraph cluster_server_here" in source and "this machine" in source
    assert "subgraph cluster_server_far" in source and "10.250.0.2" in source
    far = source[source.index("subgraph cluster_server_far"):]
    assert "cluster_pc_pc2" in far and "cluster_lan_cafe" in far and "lab2 [" in far
    here = source[source.index("subgraph cluster_server_here"):source.index(
        "subgraph cluster_server_far")]
    assert "cluster_pc_pc1" in here and "cluster_lan_office" in here and "xp [" in here
    assert source.count("ssh tunnel") == 1  # pc2's eth0 to office; its wlan0's cafe is with it
    one = draw.dot_source(topology.from_document(
        {k: v for k, v in DOC.items() if k != "servers"} | {
            "pcs": {"pc1": DOC["pcs"]["pc1"], "pc2": {"adapters": DOC["pcs"]["pc2"]["adapters"]}},
            "lans": {"office": DOC["lans"]["office"], "cafe": {"subnet": "192.168.60.0/24"}}}))
    assert "cluster_server" not in one and "ssh tunnel" not in one
