"""Labs are neighbours (as root): a lab running beside others keeps its names, its files and its
processes whatever `wvpclab clean` is asked, and a crashed lab's processes, restarted ones too, are
ended by `clean NAME` through its cgroup."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.lab.helpers import end_run, example_as, leftovers, wait_for
from wvpclab import Lab
from wvpclab.errors import LabError
from wvpclab.model import modes, topology
from wvpclab.runtime import cgroups, cleanup, procs, rundir

pytestmark = pytest.mark.lab

WVPCLAB = str(Path(sys.executable).parent / "wvpclab")


def clean(*name: str) -> str:
    res = subprocess.run([WVPCLAB, "clean", *name], capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout


def resolve(lab: Lab, node: str, name: str) -> list[str]:
    out = lab.node(node).cmd(f"getent ahostsv4 {name}")
    return sorted({line.split()[0] for line in out.splitlines() if "STREAM" in line})


def small_lab(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "pcs": {"pc": {}}, "internal": {"lab": None},
        "vms": {"a": {"nics": [{"internal": "lab"}]},
                "b": {"nics": [{"internal": "lab", "ip": "169.254.5.2/16"}]}}}))
    return path


def start_run(path: Path) -> tuple[subprocess.Popen, dict]:
    """`wvpclab run` with its CLI on a pipe, up: the process and its record."""
    prefix = rundir.prefix_for(yaml.safe_load(path.read_text())["name"])
    proc = subprocess.Popen([WVPCLAB, "run", str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state = wait_for(lambda: (rundir.read_state(prefix) or {}).get("bridges")
                     and rundir.read_state(prefix), timeout=60, what="the lab to be up")
    return proc, state


def lab_processes(prefix: str) -> list[int]:
    """Every process on the machine that names the lab's run directory or is in its cgroup."""
    mark = f"{rundir.run_dir(prefix)}/"
    found = {int(p) for p in os.listdir("/proc") if p.isdigit() and mark in procs.cmdline(int(p))}
    for path in cgroups.lab_groups(prefix):
        found |= set(cgroups.Group(path).pids())
    return sorted(p for p in found if procs.process_alive(p))


@pytest.fixture(scope="module")
def neighbour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = example_as(tmp_path_factory.mktemp("topo"), "four_modes.yaml", "t-neighbour")
    with Lab(topology.load(path), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def still_whole(lab: Lab) -> None:
    """What a user of the lab would check: its names resolve, its files are there, a NIC moves to
    shared networking (a new NAT engine writes its name file) and back."""
    assert rundir.dns_dir(lab.prefix).is_dir() and rundir.run_dir(lab.prefix).is_dir()
    assert resolve(lab, "xp", "web") == ["192.168.50.80"]
    assert resolve(lab, "pc", "gw.cafe") == ["192.168.60.1"]
    assert lab.set_nic("xp", 3, "shared")
    try:
        wait_for(lambda: (lab.dhcp_client("xp", 3).lease() or {}).get("ip"), 20,
                 what="xp's NIC 3 to lease behind its NAT engine")
    finally:
        assert lab.set_nic("xp", 3, "none")


def test_clean_beside_a_running_lab_leaves_it_whole(neighbour: Lab, tmp_path: Path) -> None:
    # a lab that crashed beside it: cleaned by its name, the neighbour untouched
    dead, _ = start_run(small_lab(tmp_path, "t-neighbour-dead"))
    try:
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait(10)
        dead_prefix = rundir.prefix_for("t-neighbour-dead")
        out = clean("t-neighbour-dead")
        assert f"{dead_prefix}: " in out and neighbour.prefix not in out
        assert leftovers(dead_prefix) == []
    finally:
        end_run(dead, "t-neighbour-dead")
        dead.communicate(timeout=10)
    still_whole(neighbour)
    # the neighbour named: left alone, whatever is asked
    out = clean("t-neighbour")
    assert f"{neighbour.prefix}: lab t-neighbour is running" in out
    still_whole(neighbour)
    # a nameless clean (`make clean`) acts on dead labs only; before, it took the running lab's
    # name files for a dead lab's and deleted them: every name NXDOMAIN, NIC moves failing. The
    # suite runs one only where it would clean nothing but its own: what another lab left (a
    # teacher's crashed lab) is not the suite's to remove. There, what a nameless clean would act
    # on (`stale`) must still leave the neighbour out.
    others = cleanup.stale()
    assert neighbour.prefix not in others
    if not others:
        out = clean()
        assert f"{neighbour.prefix}: lab t-neighbour is running" in out
        assert f"{neighbour.prefix}.dns" not in out
    still_whole(neighbour)


def test_clean_ends_every_process_of_a_crashed_lab_even_restarted_ones(tmp_path: Path) -> None:
    name = "t-neighbour-crash"
    prefix = rundir.prefix_for(name)
    proc, state = start_run(small_lab(tmp_path, name))
    try:
        groups = cgroups.lab_groups(prefix)
        assert groups == [Path(state["cgroup"])], "the lab runs in a cgroup of its own"
        first = int(state["controller_pid"])
        os.kill(first, signal.SIGKILL)  # the lab's watch restarts it (a new PID)
        restarted = wait_for(lambda: (rundir.read_state(prefix) or {}).get("controller_pid")
                             not in (None, first) and rundir.read_state(prefix)["controller_pid"],
                             timeout=30, what="the controller to be restarted")
        wait_for(lambda: "controllers.main" in procs.cmdline(int(restarted)), 10)
        # a daemon a user started in a VM, which leaves its shell
        assert proc.stdin is not None
        proc.stdin.write("a setsid sleep 300 >/dev/null 2>&1 < /dev/null &\n")
        proc.stdin.flush()
        daemon = wait_for(lambda: [p for p in cgroups.Group(groups[0]).pids()
                                   if procs.cmdline(p).startswith("sleep 300")],
                          what="the daemon in VM a, in the lab's cgroup")
        before = lab_processes(prefix)
        assert int(restarted) in before and daemon[0] in before
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    out = clean(name)
    assert f"{prefix}: ended " in out and "processes of the lab (its cgroup)" in out, out
    wait_for(lambda: lab_processes(prefix) == [], 10, what="every process of the lab to end")
    assert not procs.cmdline(int(restarted)) and not procs.cmdline(daemon[0])
    assert leftovers(prefix) == []


def test_a_change_without_files_to_spare_is_refused_before_it_starts(neighbour: Lab) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    used = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + 100, hard))  # as if a client took the rest
    try:
        with pytest.raises(LabError, match=r"no room for the change: this lab's process has \d+ "
                                           r"of its \d+ files open.*nothing was changed"):
            neighbour.set_nic("xp", 3, "shared")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert modes.label(neighbour.graph.nodes["xp/3"]) == "none"
    still_whole(neighbour)
