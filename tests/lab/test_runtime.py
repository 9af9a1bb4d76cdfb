"""Changing a NIC while the lab runs (WVPC's Settings dialog), as root: every ordered pair of modes,
cable pull/plug, static addresses; each change checked with the address, reachability, and frames
that must not take the old path any more."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import Capture, example_graph, leftovers, read_pcap, send_frames, wait_for
from wvpclab import Lab
from wvpclab.model import topology

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
# Every ordered pair of the four modes exactly once (an Euler circuit of the complete digraph).
MODES = {"N": "none", "S": "shared", "B": "bridge:eth0", "I": "internal:lab"}
CIRCUIT = "SNBISBNIBSINS"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(example_graph("four_modes.yaml", "t-runtime"), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def link(lab: Lab) -> dict:
    return json.loads(lab.vm("xp").cmd("ip -j link show eth0"))[0]


def check_in_mode(lab: Lab, mode: str) -> None:
    xp = lab.vm("xp")
    lease = lab.dhcp_client("xp", 0).lease()
    if mode == "none":
        assert not xp.nic(0).carrier()
        assert lab.nats.get(("xp", 0)) is None
        return
    assert xp.nic(0).carrier()
    assert lease, f"no lease in mode {mode}"
    if mode == "shared":
        assert lease["ip"].startswith("192.168.131.")
        pc = lab.dhcp_client("pc", 0).lease()["ip"]
        page = xp.cmd("curl -s -m 5 --interface eth0 http://192.168.50.80/").strip()
        assert page == f"web: hello from web; you are {pc}"
    elif mode == "bridge:eth0":
        assert lease["ip"].startswith("192.168.50.") and lease["router"] == "192.168.50.1"
        page = xp.cmd("curl -s -m 5 --interface eth0 http://192.168.50.80/").strip()
        assert page == f"web: hello from web; you are {lease['ip']}"
    else:
        assert lease["ip"].startswith("169.254.")
        assert "1 received" in xp.cmd("ping -n -c1 -W2 -I eth0 169.254.1.10")


def observers(lab: Lab, mode: str) -> list[tuple]:
    """Where a broadcast from xp eth0 shows up in a mode: (name, node, interface)."""
    if mode == "bridge:eth0":
        return [("web", lab.node("web"), "eth0"), ("pc", lab.pc("pc"), "eth0")]
    if mode == "internal:lab":
        return [("lab1", lab.vm("lab1"), "eth0")]
    if mode == "shared":
        return [("nat engine", lab.node("nat.xp.0"), "eth0")]
    return []


@pytest.mark.parametrize("step", range(len(CIRCUIT) - 1))
def test_every_pair_of_modes(lab: Lab, step: int, tmp_path: Path) -> None:
    old, new = MODES[CIRCUIT[step]], MODES[CIRCUIT[step + 1]]
    if step == 0:
        lab.set_nic("xp", 0, old)
    assert lab.graph.nodes["xp/0"]["mode"] == old.split(":")[0]
    before = link(lab)
    old_watch = observers(lab, old) if old != "shared" else []  # its NAT engine goes entirely
    old_nat = lab.nats.get(("xp", 0))
    lab.set_nic("xp", 0, new)
    after = link(lab)
    assert after["ifindex"] == before["ifindex"] and after["address"] == before["address"]
    check_in_mode(lab, new)
    # no stale path: a frame sent now reaches the new network only
    tag = f"wvpclab-move-{step}".encode()
    caps = [(name, Capture(node, dev, tmp_path / f"old-{i}.pcap", "ether proto 0x88b5"))
            for i, (name, node, dev) in enumerate(o for o in old_watch
                                                  if o[0] not in [n for n, _, _ in
                                                                  observers(lab, new)])]
    fresh = [(name, Capture(node, dev, tmp_path / f"new-{i}.pcap", "ether proto 0x88b5"))
             for i, (name, node, dev) in enumerate(observers(lab, new))]
    mac = lab.graph.nodes["xp/0"]["mac"]
    send_frames(lab.vm("xp"), "eth0",
                f"Ether(src='{mac}', dst='ff:ff:ff:ff:ff:ff', type=0x88b5)/Raw({tag!r})")
    for i, _ in enumerate(fresh):
        wait_for(lambda i=i: any(tag in bytes(f) for f in read_pcap(tmp_path / f"new-{i}.pcap")),
                 what=f"the frame on the new network ({new})")
    for _, cap in fresh:
        cap.stop()
    stale = [name for name, cap in caps if any(tag in bytes(f) for f in cap.stop())]
    assert stale == [], f"after {old} -> {new} the frame still reached {stale}"
    if old == "shared":
        assert "nat.xp.0" not in lab.nodes and not lab.nats
        assert old_nat.pc_dev not in lab.pc("pc").cmd("iptables-save")


def test_cable_pull_and_plug(lab: Lab) -> None:
    lab.set_nic("xp", 0, "internal:lab")
    xp = lab.vm("xp")
    lab.cable("xp", 0, False)
    links = json.loads(xp.cmd("ip -j link show eth0"))[0]
    assert "NO-CARRIER" in links["flags"] and "UP" in links["flags"]
    assert "0 received" in xp.cmd("ping -n -c1 -W1 -I eth0 169.254.1.10")
    expiry = {r["mac"]: r["expires"] for r in lab.leases("pc/lab")["pc/lab"]}
    lab.cable("xp", 0, True)
    assert xp.nic(0).carrier()
    mac = lab.graph.nodes["xp/0"]["mac"]
    wait_for(lambda: any(r["mac"] == mac and r["expires"] > expiry[mac]
                         for r in lab.leases("pc/lab")["pc/lab"]),
             what="the renewal on media connect")
    assert "1 received" in xp.cmd("ping -n -c1 -W2 -I eth0 169.254.1.10")


def test_a_static_address_stays_when_the_nic_moves(lab: Lab) -> None:
    lab1 = lab.vm("lab1")
    lab.set_nic("lab1", 0, "bridge:eth0")
    assert "169.254.1.10/16" in lab1.cmd("ip -br addr show eth0")
    lab.set_nic("xp", 0, "internal:lab")
    assert "0 received" in lab.vm("xp").cmd("ping -n -c1 -W1 -I eth0 169.254.1.10")
    lab.set_nic("lab1", 0, "internal:lab")
    assert "1 received" in lab.vm("xp").cmd("ping -n -c1 -W2 -I eth0 169.254.1.10")


def test_a_new_internal_network_is_made_on_first_use(lab: Lab) -> None:
    lab.set_nic("xp", 2, "internal:fresh")
    lab.set_nic("lab1", 0, "internal:fresh")
    lease = lab.dhcp_client("xp", 2).lease()
    assert lease and lease["ip"].startswith("169.254.")
    assert "1 received" in lab.vm("xp").cmd("ping -n -c1 -W2 -I eth2 169.254.1.10")
    assert "pc/fresh" in lab.bridges and "pc/fresh" in lab.leases()


def test_moving_onto_the_wireless_adapter(lab: Lab) -> None:
    lab.set_nic("xp", 2, "bridge:wlan0")
    lease = lab.dhcp_client("xp", 2).lease()
    assert lease and lease["ip"].startswith("192.168.60.")
    assert "1 received" in lab.vm("xp").cmd("ping -n -c1 -W2 -I eth2 192.168.60.1")
    lab.set_nic("xp", 2, "internal:lab")


def test_bad_changes_are_refused_and_change_nothing(lab: Lab) -> None:
    from wvpclab import LabError
    state = dict(lab.graph.nodes["xp/1"])
    for spec, message in [("bridge:eth9", "no adapter 'eth9' on pc pc"),
                          ("warp", "is not a NIC mode"), ("internal:9bad", "not a valid")]:
        with pytest.raises(LabError, match=message):
            lab.set_nic("xp", 1, spec)
    with pytest.raises(LabError, match="xp has no NIC 7"):
        lab.set_nic("xp", 7, "none")
    assert lab.graph.nodes["xp/1"] == state


def test_runtime_internal_networks_follow_their_declaration_and_never_clash() -> None:
    doc = {"name": "t-rt-decl", "pcs": {"pc": {"adapters": {"eth0": {"lan": "office"}}}},
           "lans": {"office": {"subnet": "192.168.50.0/24"}},
           "internal": {"x": None, "quiet": {"dhcp": False}},
           "vms": {"v": {"nics": ["shared", "none", "none"]}}}
    with Lab(topology.from_document(doc), quiet=True) as lab:
        lab.set_nic("v", 1, "internal:x")
        lab.set_nic("v", 0, "none")           # its NAT engine and switch go
        lab.set_nic("v", 2, "internal:quiet")  # a new switch: its own name and datapath id
        names = [b.name for b in lab.bridges.values()]
        dpids = [b.dpid for b in lab.bridges.values()]
        assert len(set(names)) == len(names) and len(set(dpids)) == len(dpids)
        assert "pc/quiet" not in lab.responders  # declared dhcp: false, used only at runtime
        assert "pc/x" in lab.responders
    assert leftovers(lab.prefix) == []


def test_a_second_lab_with_the_same_prefix_is_refused_and_the_first_keeps_running() -> None:
    from wvpclab import LabError
    doc = {"name": "t-rt-twice", "pcs": {"pc": {}}, "internal": {"n": None},
           "vms": {"a": {"nics": [{"internal": "n", "ip": "169.254.9.1/16"}]},
                   "b": {"nics": [{"internal": "n", "ip": "169.254.9.2/16"}]}}}
    with Lab(topology.from_document(doc), quiet=True) as first:
        with pytest.raises(LabError, match="already running"):
            Lab(topology.from_document(doc), quiet=True).start()
        assert "1 received" in first.vm("a").cmd("ping -n -c1 -W2 169.254.9.2")
