"""A change is all or nothing (as root): a NIC move interrupted at any step of its realization
leaves the NIC, its switches, flows, NAT engine and the lab's record exactly as they were, and the
next change works; a second signal never cuts a teardown short."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import end_run, example_as, example_graph, leftovers, wait_for
from wvpclab import Lab, LabError
from wvpclab.model import topology
from wvpclab.model.items import Bridge
from wvpclab.model.plan import plan
from wvpclab.runtime import cleanup, rundir

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["release", "carrier off", "stop processes", "unregister", "cables out",
         "remove ports and switches",
         "remove nodes", "add nodes", "add veths", "add switches and ports", "configure nodes",
         "carrier on", "register", "start processes", "start clients"]
NETWORK = {"shared": "192.168.131.", "bridge:eth0": "192.168.50."}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(example_graph("xp_mode.yaml", "t-changes"), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def ovs_ports(lab: Lab) -> dict[str, list[str]]:
    out = {}
    for bridge in sorted(b.name for b in lab.bridges.values()):
        res = subprocess.run(["ovs-vsctl", "list-ports", bridge], capture_output=True, text=True,
                             check=False)
        out[bridge] = sorted(res.stdout.split())
    res = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True, check=False)
    out["bridges"] = sorted(b for b in res.stdout.split() if b.startswith(lab.prefix))
    return out


def snapshot(lab: Lab) -> dict:
    nic = lab.graph.nodes["xp/0"]
    lease = lab.dhcp_client("xp", 0).lease() or {}
    return {"nic": (nic["mode"], nic["target"], nic.get("cable", True)),
            "carrier": lab.vm("xp").nic(0).carrier(),
            "network": lease.get("ip", "")[:12],
            "plan": lab.plan, "nodes": sorted(lab.nodes), "ovs": ovs_ports(lab),
            "registered": {dpid: sorted(sw["ports"]) for dpid, sw in
                           lab.controller.switches.items()},
            "links": sorted(str(link) for link in lab.net.links),
            "nat rules": lab.pc("pc").cmd("iptables-save -t nat | grep -c MASQUERADE").strip()}


def mode_now(lab: Lab) -> str:
    nic = lab.graph.nodes["xp/0"]
    return f"{nic['mode']}:{nic['target']}" if nic["target"] else nic["mode"]


@pytest.mark.parametrize("step", STEPS)
def test_a_move_interrupted_at_any_step_changes_nothing(lab: Lab, step: str) -> None:
    for _ in range(2):  # shared -> bridge, then bridge -> shared
        old = mode_now(lab)
        new = "bridge:eth0" if old == "shared" else "shared"
        before = snapshot(lab)
        assert before["network"].startswith(NETWORK[old][:10])

        def fault(name: str) -> None:
            if name == step:
                raise LabError(f"injected fault at {name}")

        lab.realizer.fault = fault
        try:
            with pytest.raises(LabError, match=f"injected fault at {step} .nothing was changed"):
                lab.set_nic("xp", 0, new)
        finally:
            lab.realizer.fault = None
        assert snapshot(lab) == before
        lab.set_nic("xp", 0, new)  # the next change works
        assert mode_now(lab) == new
        assert lab.dhcp_client("xp", 0).lease()["ip"].startswith(NETWORK[new])
        page = lab.vm("xp").cmd("curl -s -m 5 http://192.168.50.80/")
        assert page.startswith("web: hello from web")


@pytest.mark.parametrize("step", ["unregister", "register"])
def test_a_controller_killed_during_a_change_is_restarted_and_the_change_completes(
        lab: Lab, step: str) -> None:
    old = mode_now(lab)
    new = "bridge:eth0" if old == "shared" else "shared"
    restarts = lab.controller.restarts

    def kill_controller(name: str) -> None:
        if name == step:
            os.kill(lab.controller.pid, signal.SIGKILL)
            lab.controller.proc.wait(10)

    lab.realizer.fault = kill_controller
    try:
        lab.set_nic("xp", 0, new)  # the lab restarts it at once, tells it everything, goes on
    finally:
        lab.realizer.fault = None
    assert lab.controller.restarts > restarts
    assert mode_now(lab) == new
    assert lab.dhcp_client("xp", 0).lease()["ip"].startswith(NETWORK[new])
    page = lab.vm("xp").cmd("curl -s -m 5 http://192.168.50.80/")
    assert page.startswith("web: hello from web")
    lab.set_nic("xp", 0, old)  # and the next change works
    assert lab.dhcp_client("xp", 0).lease()["ip"].startswith(NETWORK[old])


def test_cable_and_set_nic_say_what_they_did(lab: Lab) -> None:
    from wvpclab.errors import UsageError

    assert mode_now(lab) == "shared"
    assert lab.cable("xp", 0, False) is True
    assert lab.cable("xp", 0, False) is False  # already pulled: nothing changed
    assert not lab.vm("xp").nic(0).carrier()
    assert lab.cable("xp", 0, True) is True and lab.vm("xp").nic(0).carrier()
    assert lab.set_nic("xp", 0, "shared") is False
    with pytest.raises(UsageError, match="plugged is True or False, not 'off'"):
        lab.cable("xp", 0, "off")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="NIC number '0' is not 0..3"):
        lab.set_nic("xp", "0", "none")  # type: ignore[arg-type]
    assert lab.vm("xp").nic(0).carrier()
    lab.set_nic("xp", 0, "none")
    with pytest.raises(UsageError, match="Not connected: there is nothing to plug its cable into"):
        lab.cable("xp", 0, True)
    lab.set_nic("xp", 0, "shared")
    assert lab.dhcp_client("xp", 0).lease()["ip"].startswith("192.168.131.")


def test_a_second_signal_does_not_cut_the_teardown_short(tmp_path: Path) -> None:
    path = example_as(tmp_path, "four_modes.yaml", "t-two-signals")
    switches = len(plan(topology.load(path), rundir.prefix_for("t-two-signals")).of(Bridge))
    for first, second in ((signal.SIGHUP, signal.SIGHUP), (signal.SIGTERM, signal.SIGTERM),
                          (signal.SIGTERM, signal.SIGINT)):
        proc = subprocess.Popen([str(Path(sys.executable).parent / "wvpclab"), "run", str(path)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            wait_for(lambda: rundir.read_state(rundir.prefix_for("t-two-signals")) is not None
                     and len(cleanup.lab_bridges(rundir.prefix_for("t-two-signals"))) == switches,
                     timeout=60, what="the lab up")
            os.kill(proc.pid, first)
            time.sleep(0.15)
            os.kill(proc.pid, second)
            _, err = proc.communicate(timeout=60)
        finally:
            end_run(proc, "t-two-signals")
        assert "is down" in err, err
        assert leftovers(rundir.prefix_for("t-two-signals")) == [], err


def test_ctrl_c_ends_a_lab_reading_piped_commands(tmp_path: Path) -> None:
    path = example_as(tmp_path, "xp_mode.yaml", "t-piped-int")
    prefix = rundir.prefix_for("t-piped-int")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "wvpclab"), "run", str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for(lambda: (rundir.read_state(prefix) or {}).get("bridges"), timeout=60,
                 what="the lab up")
        os.kill(proc.pid, signal.SIGINT)  # stdin stays open: only the signal can end it
        _, err = proc.communicate(timeout=60)
    finally:
        end_run(proc, "t-piped-int")
    assert "interrupted" in err and "is down" in err, err
    assert leftovers(prefix) == []
