"""Mininet's CLI and API on a running lab, as root: every node, switch and link is a Mininet object,
node names stand for addresses, the test commands tell the truth, and nothing typed ends the lab."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import example_as, example_graph, leftovers
from wvpclab import Lab
from wvpclab.model.items import Bridge, Host, Port, Veth
from wvpclab.runtime import rundir
from wvpclab.runtime.net import (
    AccessPoint,
    FilterSwitch,
    InternalSwitch,
    LanSwitch,
    NicCable,
    PatchCable,
)

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
WVPCLAB = str(Path(sys.executable).parent / "wvpclab")
MARK = "still-answering-after-that"


def cli(path: Path, lines: list[str], timeout: float = 240,
        name: str | None = None) -> subprocess.CompletedProcess[str]:
    """The lab of ``path`` run with its CLI fed ``lines`` (under ``name``, if given)."""
    return subprocess.run([WVPCLAB, "run", str(path), "--quiet",
                           *(["--name", name] if name else [])], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=timeout, check=False)


# Every Mininet built-in (and the lab's names) with each kind of argument, wrong ones included.
COMMANDS = [
    "net", "nodes", "links", "dump", "intfs", "ports", "dpctl dump-flows", "dpctl nonsense",
    "pingpair", "pingpairfull", "iperf", "iperf nobody xp", "iperf xp", "iperfudp", "iperfudp x",
    "link", "link xp web down", "link nobody xp up", "link xp web sideways",
    "xp", "nobody ping web", "gw.office", "nat.xp.0 ip -br addr", "dhcp.pc.lab ip -br addr",
    "source /nonexistent", "source /tmp", "x xp", "xterm xp", "gterm xp", "py 1/0",
    "py net.switches[0].nosuch", "py net.hosts", "sh true", "time nodes", "px", "wait", "help",
    "switch", "switch nobody start", "noecho", "nosuchcommand at all", "!!", "\x01\x02",
]


def test_no_cli_input_ends_the_lab_and_every_builtin_answers(tmp_path: Path) -> None:
    path = example_as(tmp_path, "four_modes.yaml", "t-mn-cli")
    lines = []
    for command in COMMANDS:
        lines += [command, f"xp echo {MARK}"]
    res = cli(path, lines)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res.stderr[-3000:]
    assert res.stdout.count(MARK) == len(COMMANDS), res.stdout[-3000:]
    assert "lab t-mn-cli is down" not in res.stdout  # only at the end of input
    assert "*** xterm: no X display here" in res.stderr
    assert "*** source: /tmp is not a readable file" in res.stderr
    assert "*** link: xp and web are not linked (see `links`)" in res.stderr
    assert leftovers(rundir.prefix_for("t-mn-cli")) == []


def test_node_names_stand_for_the_address_the_source_would_reach(tmp_path: Path) -> None:
    path = example_as(tmp_path, "four_modes.yaml", "t-mn-names")
    pings = ["xp ping -n -c1 -W2 web", "web ping -n -c1 -W2 pc", "xp ping -n -c1 -W2 gw.office",
             "lab1 ping -n -c1 -W2 xp", "xp ping -n -c1 -W2 dhcp.pc.lab",
             "xp ping -n -c1 -W2 pc", "gw.office ping -n -c1 -W2 web",
             "nat.xp.0 ping -n -c1 -W2 xp"]
    res = cli(path, [*pings, "gw.office ip -br addr", "nat.xp.0 ip -br addr"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(" 1 received") == len(pings), res.stdout
    # lab1 (internal network lab only) reaches xp at xp's address there, not at NIC 0's
    assert re.search(r"PING 169\.254\.\d+\.\d+ .*\n.*from 169\.254\.", res.stdout)
    assert "192.168.50.1/24" in res.stdout and "192.168.131.254/24" in res.stdout


def test_pingall_agrees_with_the_model_and_iperf_crosses_the_nat(tmp_path: Path) -> None:
    path = example_as(tmp_path, "four_modes.yaml", "t-mn-pingall")
    res = cli(path, ["pingall", "iperf xp web", "pingallfull"])
    assert res.returncode == 0, res.stderr
    assert "*** Ping: testing ping reachability" in res.stdout
    results = re.findall(r"\*\*\* Results: (\d+)% dropped \((\d+)/(\d+) received\)", res.stdout)
    assert results and int(results[0][1]) > 0 and int(results[0][2]) == 8 * 7
    models = re.findall(r"\*\*\* Model: .*; (\d+) unexpected drops, (\d+) unexpected replies",
                        res.stdout)
    assert models and all(m == ("0", "0") for m in models), res.stdout
    speeds = re.findall(r"\*\*\* Results: \['([\d.]+) Mbits/sec', '([\d.]+) Mbits/sec'\]",
                        res.stdout)
    assert speeds and all(50 < float(s) < 110 for s in speeds[0]), res.stdout


# -- the Python API -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(example_graph("four_modes.yaml", "t-mininet"), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def test_every_switch_and_link_is_a_mininet_object(lab: Lab) -> None:
    net = lab.net
    kinds = {sw.key: type(sw) for sw in net.switches}
    assert kinds["pc/eth0"] is FilterSwitch and kinds["office"] is LanSwitch
    assert kinds["pc/lab"] is InternalSwitch and kinds["ap:pc/wlan0"] is AccessPoint
    assert {sw.name for sw in net.switches} == {b.name for b in lab.plan.of(Bridge).values()}
    assert {h.name for h in net.hosts} == set(lab.nodes)
    plugged = [v for v in lab.plan.of(Veth).values()
               if v.peer or v.into or v.root in {p.ifname for p in lab.plan.of(Port).values()}]
    patches = [p for p in lab.plan.of(Port).values() if p.patch]
    assert len(net.links) == len(plugged) + len(patches) // 2
    assert all(link.status() == "(OK OK)" for link in net.links)
    assert sum(isinstance(link, PatchCable) for link in net.links) == len(patches) // 2
    assert net["web"].IP() == "192.168.50.80"
    assert net["xp"].intf("eth1").IP().startswith("192.168.50.")
    flows = net[lab.bridges["pc/eth0"].name].dpctl("dump-flows")
    assert "priority=1000,dl_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0 actions=drop" in flows


def test_links_follow_a_nic_that_moves(lab: Lab) -> None:
    def cable_of(vm: str, dev: str):
        return lab.net[vm].intf(dev).link

    lab.set_nic("xp", 3, "internal:lab")
    link = cable_of("xp", "eth3")
    assert isinstance(link, NicCable) and link.intf2.node.key == "pc/lab"
    lab.set_nic("xp", 3, "shared")  # straight into its NAT engine, no switch between
    link = cable_of("xp", "eth3")
    assert isinstance(link, NicCable) and (link.intf2.node.name, link.intf2.name) == \
        ("nat.xp.3", "eth0")
    assert "nat.xp.3" in lab.net and lab.net["nat.xp.3"].intf("wan0").link is not None
    assert link.status() == "(OK OK)" and lab.net["xp"].intf("eth3").carrier()
    lab.set_nic("xp", 3, "bridge:eth0")  # and back out, into a switch
    link = cable_of("xp", "eth3")
    assert link.intf2.node.key == "pc/eth0" and link.status() == "(OK OK)"
    assert "nat.xp.3" not in lab.net and lab.net["xp"].intf("eth3").carrier()
    lab.set_nic("xp", 3, "shared")
    lab.set_nic("xp", 3, "none")
    assert cable_of("xp", "eth3") is None and "nat.xp.3" not in lab.net
    assert not [h for h in lab.net["pc"].intfList() if h.name == "nat4"]
    assert all(link.status() == "(OK OK)" for link in lab.net.links)


def test_mininet_api_ping_iperf_and_link_status(lab: Lab) -> None:
    net = lab.net
    dropped = net.pingAll()
    assert 0 < dropped < 100
    speeds = net.iperf((net["xp"], net["web"]), seconds=2)
    assert len(speeds) == 2 and all(s.endswith("Mbits/sec") for s in speeds)
    # iperf's default hosts are the topology's own, by their role in the plan (not by name)
    own = {h.name for h in net.own_hosts()}
    assert {"xp", "web", "pc"} <= own
    assert not any(lab.plan.get(Host, name).role not in ("vm", "pc", "server") for name in own)
    assert not own & {"gw.office", "nat.xp.0", "dhcp.pc.lab"}
    switch = lab.bridges["pc/lab"].name
    net.configLinkStatus("lab1", switch, "down")
    assert not lab.vm("lab1").nic(0).carrier()
    assert lab.graph.nodes["lab1/0"]["cable"] is False  # the lab's record: the same as `cable`
    net.configLinkStatus("lab1", switch, "up")
    assert lab.vm("lab1").nic(0).carrier()

