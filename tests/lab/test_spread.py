"""A lab over two machines (this one and a fake server with its own sshd and Open vSwitch), as
root: a PC on each, sharing one LAN here through an ssh Ethernet tunnel; every mode on the remote
PC; what a lost or unreachable server does; and nothing left on either machine."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fakeserver import FakeServer
from tests.lab.helpers import leftovers, read_pcap, wait_for
from wvpclab import Lab
from wvpclab.analysis.verify import matrix
from wvpclab.errors import LabError
from wvpclab.model import topology
from wvpclab.model.items import Bridge
from wvpclab.runtime import cgroups, cleanup, procs, rundir
from wvpclab.runtime.net import UplinkTunnel

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]

TOPO = {
    "name": "t-spread",
    "servers": {"far": {"host": "198.18.0.2"}},
    "lans": {"office": {"subnet": "192.168.50.0/24", "servers": {"web": "192.168.50.80"}}},
    "internal": {"lab": {}},
    "pcs": {"pc1": {"adapters": {"eth0": {"lan": "office"}}},
            "pc2": {"server": "far", "adapters": {"eth0": {"lan": "office"}}}},
    "vms": {"xp": {"pc": "pc1", "nics": [{"bridge": "eth0"},
                                          {"internal": "lab", "ip": "169.254.100.1/16"}]},
            "lab2": {"pc": "pc2", "nics": [{"bridge": "eth0"}, "shared",
                                           {"internal": "lab", "ip": "169.254.100.2/16"},
                                           "none"]}},
}


def ipv4(node, dev: str) -> str | None:
    out = node.cmd(f"ip -4 -o addr show dev {dev}")
    found = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    return found.group(1) if found else None


def remote_leftovers(server: FakeServer, prefix: str | None = None) -> list[str]:
    """What labs left on the fake server (only the lab with ``prefix``, if given): interfaces,
    bridges, run dirs, processes other than the server's own."""
    mark = prefix or ""
    left = [line.split()[0] for line in server.inside("ip", "-br", "link").stdout.splitlines()
            if line.split()[0].split("@")[0] not in ("lo", server.dev) and mark in line]
    left += [f"bridge {b}" for b in server.inside("ovs-vsctl", "list-br").stdout.split()
             if mark in b]
    run = server.inside("ls", "/run/wvpclab").stdout.split()
    left += [f"run dir {d}" for d in run if mark in d]
    procs = server.inside("ps", "-eo", "args").stdout.splitlines()[1:]
    left += [f"process {p}" for p in procs if mark in p
             and not p.startswith(("bash -c", "ovsdb-server", "ovs-vswitchd", "sleep 3600",
                                   "ps -eo", "sshd: /usr/sbin/sshd"))]
    return left


def local_ssh(address: str = "198.18.0.") -> list[str]:
    """ssh clients to the fake servers (to ``address``) still running here."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            line = procs.cmdline(int(entry))
            if line.startswith("ssh ") and f" {address}" in line:
                found.append(f"{entry}: {line}")
    return found


@pytest.fixture(scope="module")
def far() -> Iterator[FakeServer]:
    with FakeServer("far", 0) as server:
        os.environ["WVPCLAB_SSH_CONFIG"] = str(server.ssh_config)
        try:
            yield server
        finally:
            os.environ.pop("WVPCLAB_SSH_CONFIG", None)


@pytest.fixture(scope="module")
def lab(far: FakeServer) -> Iterator[Lab]:
    with Lab(topology.from_document(TOPO), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []
    assert remote_leftovers(far) == []
    assert local_ssh() == []


def test_the_plan_puts_pc2_and_its_own_on_far(lab: Lab) -> None:
    assert local_ssh("198.18.0.2")  # (what the fixture's check looks for, once the lab is down)
    assert lab.node("lab2").server == "far" and lab.node("pc2").server == "far"
    assert lab.node("nat.lab2.1").server == "far"
    assert not hasattr(lab.node("xp"), "server")
    assert lab.node("lab2").cmd("hostname").strip() == "far"  # its commands run there
    assert lab.node("xp").cmd("hostname").strip() != "far"


def test_mininet_sees_the_remote_part_whole(lab: Lab) -> None:
    """Remote nodes have their interfaces, remote switches their ports and flows, and the uplink
    between the machines is a link of its own."""
    net = lab.net
    lab2 = lab.vm("lab2")  # a VirtualPC, there
    assert [i.name for i in lab2.nics()] == ["eth0", "eth1", "eth2", "eth3"]
    assert lab2.nic(0).carrier() and not lab2.nic(3).carrier()
    filter_there = lab.plan.of(Bridge)["pc2/eth0"]
    switch = net.get(filter_there.name)
    assert switch.server == "far"
    assert "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00" in switch.dpctl("dump-flows")
    uplinks = [link for link in net.links if isinstance(link, UplinkTunnel)]
    office = lab.plan.of(Bridge)["office"].name
    far_end = f"{filter_there.name}:{filter_there.name}-x2"
    assert [str(link) for link in uplinks] == [f"{far_end}<->{office}:{office}-x4"]
    assert uplinks[0].intf1.status() == uplinks[0].intf2.status() == "OK"
    tables = lab.leases()
    assert {"office", "pc1/lab", "pc2/lab", "nat:lab2/1"} <= set(tables)
    assert [row["hostname"] for row in tables["nat:lab2/1"]] == ["lab2"]


def test_bridged_guests_of_both_pcs_share_the_lan_here(lab: Lab) -> None:
    xp, lab2 = lab.node("xp"), lab.node("lab2")
    a, b = ipv4(xp, "eth0"), ipv4(lab2, "eth0")
    assert a and a.startswith("192.168.50.") and b and b.startswith("192.168.50.")
    assert " 0% packet loss" in lab2.cmd(f"ping -c 2 -W 2 {a}")
    assert " 0% packet loss" in xp.cmd(f"ping -c 2 -W 2 {b}")
    page = lab2.cmd("curl -s -m 5 http://192.168.50.80/").strip()
    assert page == f"web: hello from web; you are {b}"


def test_the_remote_pc_and_its_nat_guest_reach_the_lan_as_the_pc(lab: Lab) -> None:
    pc2 = ipv4(lab.node("pc2"), "eth0")
    assert pc2 and pc2.startswith("192.168.50.")
    lab2 = lab.node("lab2")
    assert ipv4(lab2, "eth1") == "192.168.131.1"  # from its NAT engine, there
    page = lab2.cmd("curl -s -m 5 --interface eth1 http://192.168.50.80/").strip()
    assert page == f"web: hello from web; you are {pc2}"


def test_internal_networks_of_the_two_pcs_stay_apart(lab: Lab) -> None:
    """Same name, two PCs: two networks (a guest's own address answers; the other PC's not)."""
    xp, lab2 = lab.node("xp"), lab.node("lab2")
    assert " 0% packet loss" in lab2.cmd("ping -c 1 -W 1 169.254.100.2")
    assert " 100% packet loss" in xp.cmd("ping -c 2 -W 1 169.254.100.2")
    assert " 100% packet loss" in lab2.cmd("ping -c 2 -W 1 169.254.100.1")


def test_a_not_connected_nic_there_has_no_carrier(lab: Lab) -> None:
    assert "NO-CARRIER" in lab.node("lab2").cmd("ip link show eth3")


def test_a_capture_there_comes_back_here_and_shows_what_the_filter_passes(
        lab: Lab, tmp_path: Path) -> None:
    """The pcap of a remote guest's NIC is written here. A ping from web to that guest is in it;
    web's pings to the local guest are not (the uplink's other unicast goes to no guest)."""
    lab2, xp, web = lab.node("lab2"), lab.node("xp"), lab.node("web")
    mine, other = ipv4(lab2, "eth0"), ipv4(xp, "eth0")
    path = lab.capture("lab2", 0, tmp_path / "lab2.pcap")
    try:
        assert path == (tmp_path / "lab2.pcap").resolve()
        assert " 0% packet loss" in web.cmd(f"ping -c 2 -W 2 {mine}")
        assert " 0% packet loss" in web.cmd(f"ping -c 2 -W 2 {other}")
    finally:
        stopped = lab.stop_captures()
    assert stopped == [("lab2 eth0", path)]
    frames = read_pcap(path)
    echoes = [f for f in frames if f.haslayer("ICMP") and f["ICMP"].type == 8]
    assert {f["IP"].dst for f in echoes} == {mine}
    assert len(echoes) == 2


def test_verify_probes_every_pair_across_the_machines(lab: Lab) -> None:
    rows, wrong = matrix(lab)
    assert wrong == []
    assert any(r.get("from", "").startswith("lab2") and r["probed"] for r in rows)


def test_a_nic_there_moves_between_modes_while_its_vm_runs(lab: Lab) -> None:
    """WVPC's Settings dialog on the remote VM: its NIC 3 from Not connected onto the host
    adapter (a lease from the LAN here, through the uplink), then back."""
    lab2 = lab.node("lab2")
    assert lab.set_nic("lab2", 3, "bridge:eth0")
    address = ipv4(lab2, "eth3")
    assert address and address.startswith("192.168.50.")
    assert " 0% packet loss" in lab.node("web").cmd(f"ping -c 1 -W 2 {address}")
    assert lab.set_nic("lab2", 3, "none")
    assert "NO-CARRIER" in lab2.cmd("ip link show eth3")
    assert " 100% packet loss" in lab.node("web").cmd(f"ping -c 1 -W 1 {address}")


def test_a_cable_there_is_pulled_and_plugged(lab: Lab) -> None:
    lab2, web = lab.node("lab2"), lab.node("web")
    address = ipv4(lab2, "eth0")
    assert lab.cable("lab2", 0, False)
    assert "NO-CARRIER" in lab2.cmd("ip link show eth0")
    assert " 100% packet loss" in web.cmd(f"ping -c 1 -W 1 {address}")
    assert lab.cable("lab2", 0, True)
    address = ipv4(lab2, "eth0")
    assert " 0% packet loss" in web.cmd(f"ping -c 1 -W 2 {address}")


def test_an_unreachable_server_is_named_before_anything_is_built(far: FakeServer) -> None:
    doc = {**TOPO, "name": "t-spread-gone",
           "servers": {"far": {"host": "198.18.0.2"}, "gone": {"host": "198.18.0.6"}},
           "pcs": {**TOPO["pcs"], "pc3": {"server": "gone",
                                          "adapters": {"eth0": {"lan": "office"}}}}}
    with FakeServer("gone", 1) as gone:
        gone.cut()
        config = far.ssh_config.read_text() + gone.ssh_config.read_text()
        both = far.dir / "both_config"
        both.write_text(config)
        os.environ["WVPCLAB_SSH_CONFIG"] = str(both)
        try:
            lab = Lab(topology.from_document(doc), quiet=True)
            with pytest.raises(LabError) as err:
                lab.start()
        finally:
            os.environ["WVPCLAB_SSH_CONFIG"] = str(far.ssh_config)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("server gone (198.18.0.6) cannot be reached over ssh as root: ")
    assert message.endswith("; nothing was built")
    assert leftovers(lab.prefix) == []
    assert remote_leftovers(far, lab.prefix) == []
    assert local_ssh("198.18.0.6") == []


def spread_doc(name: str, server: FakeServer) -> dict:
    """A small lab: a LAN here, a PC with a bridged guest on ``server``."""
    return {"name": name, "servers": {server.name: server.entry()},
            "lans": {"office": {"subnet": "192.168.50.0/24",
                                "servers": {"web": "192.168.50.80"}}},
            "pcs": {"pc9": {"server": server.name, "adapters": {"eth0": {"lan": "office"}}}},
            "vms": {"vm9": {"pc": "pc9", "nics": [{"bridge": "eth0"}]}}}


def test_a_server_lost_while_the_lab_runs_is_named_and_the_rest_stops(
        far: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer("lost", 2) as lost:
        os.environ["WVPCLAB_SSH_CONFIG"] = str(lost.ssh_config)
        try:
            lab = Lab(topology.from_document(spread_doc("t-spread-lost", lost)))
            lab.start()
            try:
                assert " 0% packet loss" in lab.node("web").cmd(
                    f"ping -c 1 -W 2 {ipv4(lab.node('vm9'), 'eth0')}")
                lost.cut()
                said: list[str] = []
                wait_for(lambda: said.append(capsys.readouterr().err) or "was lost" in
                         "".join(said), timeout=45, what="the lost server to be named")
                assert "warning: server lost (198.18.0.10) was lost: its session ended" in \
                    "".join(said)
            finally:
                t0 = time.monotonic()
                lab.stop()
                took = time.monotonic() - t0
            err = capsys.readouterr().err
            assert "wvpclab: lab t-spread-lost is down" in err
            assert took < 60
            assert local_ssh("198.18.0.10") == []
            assert not cleanup.lab_bridges(lab.prefix) and not cleanup.lab_links(lab.prefix)
            # back on the network, the server's agent finds its lab gone and tears its part down
            lost.uncut()
            wait_for(lambda: remote_leftovers(lost) == [], timeout=120,
                     what="the lost server to tear its part down")
            assert leftovers(lab.prefix) == []  # (it sees the fake server's processes too)
        finally:
            os.environ["WVPCLAB_SSH_CONFIG"] = str(far.ssh_config)


def test_clean_after_kill_9_cleans_every_server(far: FakeServer, tmp_path: Path) -> None:
    path = tmp_path / "t-spread-kill.yaml"
    path.write_text(yaml.safe_dump(spread_doc("t-spread-kill", far)))
    prefix = rundir.prefix_for("t-spread-kill")
    proc = subprocess.Popen([sys.executable, "-m", "wvpclab.ui.cli", "run", str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        state = wait_for(lambda: (rundir.read_state(prefix) or {}).get("bridges")
                         and rundir.read_state(prefix), timeout=60, what="the lab to be up")
        assert set(state["servers"]) == {"far"} and state["ssh"]
        # its ssh sessions (the agent's, begun before the lab had its group, and the tunnel's)
        # are in the lab's cgroup, as every process of the lab
        group = cgroups.Group(Path(state["cgroup"]))
        assert set(state["ssh"]) <= set(group.pids()), (state["ssh"], group.pids())
        assert remote_leftovers(far, prefix)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    res = subprocess.run([sys.executable, "-m", "wvpclab.ui.cli", "clean", "t-spread-kill"],
                         capture_output=True,
                         text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert f"{prefix}: server far: " in res.stdout
    assert leftovers(prefix) == []
    assert [pid for pid in state["ssh"] if procs.cmdline(int(pid))] == []
    wait_for(lambda: remote_leftovers(far, prefix) == [], timeout=30,
             what="nothing of the lab on far")


EXAMPLES = sorted(p.name for p in (ROOT / "topologies").iterdir() if p.suffix == ".yaml")


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_lab_runs_unchanged_with_its_pcs_on_a_server(
        far: FakeServer, tmp_path: Path, example: str) -> None:
    """The example with a `servers:` section added and every PC on it (the LANs stay here):
    `wvpclab verify` finds every pair as the model says, and nothing is left anywhere."""
    doc = yaml.safe_load((ROOT / "topologies" / example).read_text())
    doc["name"] = f"t-spread-{Path(example).stem}"
    doc["servers"] = {"far": far.entry()}
    for pc in doc["pcs"].values():
        pc["server"] = "far"
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = subprocess.run([sys.executable, "-m", "wvpclab.ui.cli", "verify", str(path)],
                         capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "MISMATCH" not in res.stdout and "behave as the model says" in res.stderr
    prefix = rundir.prefix_for(doc["name"])
    assert leftovers(prefix) == []
    wait_for(lambda: remote_leftovers(far, prefix) == [], timeout=10, what="nothing left on far")


def test_an_uplink_between_two_servers_is_joined_here(far: FakeServer) -> None:
    """The LAN on one server, a PC on another, neither on this machine: a tunnel to each, joined
    here; the guest there reaches the LAN's server."""
    with FakeServer("near", 3) as near:
        both = far.dir / "far_near_config"
        both.write_text(far.ssh_config.read_text() + near.ssh_config.read_text())
        os.environ["WVPCLAB_SSH_CONFIG"] = str(both)
        try:
            doc = spread_doc("t-spread-relay", far)
            doc["servers"]["near"] = near.entry()
            doc["lans"]["office"]["server"] = "near"
            lab = Lab(topology.from_document(doc), quiet=True)
            with lab:
                assert lab.node("web").server == "near" and lab.node("vm9").server == "far"
                vm9 = lab.node("vm9")
                assert (ipv4(vm9, "eth0") or "").startswith("192.168.50.")
                page = vm9.cmd("curl -s -m 5 http://192.168.50.80/").strip()
                assert page == f"web: hello from web; you are {ipv4(vm9, 'eth0')}"
                assert cleanup.lab_bridges(lab.prefix) == [f"{lab.prefix}-r0"]
            assert leftovers(lab.prefix) == []
            assert local_ssh("198.18.0.14") == []
            wait_for(lambda: remote_leftovers(near) == [] and
                     remote_leftovers(far, lab.prefix) == [], timeout=10,
                     what="nothing left on either server")
        finally:
            os.environ["WVPCLAB_SSH_CONFIG"] = str(far.ssh_config)
