"""A full /run (as root, in a private mount namespace with a small tmpfs over /run/wvpclab): a lab
that cannot keep its files does not start and says why in one line; a lab whose disk fills while it
runs goes on (its DHCP servers serve from memory) and refuses a change it could not make whole."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.helpers import example_as, leftovers
from wvpclab.runtime import rundir

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
WVPCLAB = str(Path(sys.executable).parent / "wvpclab")
FILL = "dd if=/dev/zero of=/run/wvpclab/fill bs=64k >/dev/null 2>&1"


def in_small_run(args: list[str], fill_first: bool, stdin: str = "",
                 size: str = "16m") -> subprocess.CompletedProcess[str]:
    rundir.RUN_ROOT.mkdir(parents=True, exist_ok=True)
    script = f"mount -t tmpfs -o size={size} wvpclab-test {rundir.RUN_ROOT} && "
    script += (FILL + "; " if fill_first else "") + " ".join(shlex.quote(a) for a in args)
    return subprocess.run(["unshare", "-m", "sh", "-c", script], input=stdin,
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_lab_that_cannot_keep_its_files_does_not_start(tmp_path: Path) -> None:
    path = example_as(tmp_path, "four_modes.yaml", "t-full-start")
    res = in_small_run([WVPCLAB, "run", str(path), "--no-cli", "--cmd", "xp true"], True)
    assert res.returncode == 1, res.stderr
    assert "cannot keep the lab's files in /run/wvpclab: No space left on device" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.splitlines()) <= 3, res.stderr
    assert leftovers(rundir.prefix_for("t-full-start")) == []


def test_a_lab_whose_disk_fills_goes_on(tmp_path: Path) -> None:
    path = example_as(tmp_path, "four_modes.yaml", "t-full-later")
    lease = "busybox udhcpc -q -n -t 3 -T 1 -i eth1 -s /bin/true"
    lines = [f"sh {FILL}", "sh df -h /run/wvpclab | tail -1", f"xp {lease}", f"xp {lease}",
             "xp ping -n -c1 -W2 web", "nic xp 3 internal lab", "nics xp"]
    res = in_small_run([WVPCLAB, "run", str(path)], False, "\n".join(lines) + "\n")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    assert " 100% " in res.stdout  # the disk is full
    # the LAN's DHCP server answered twice although it cannot write its lease file
    assert res.stdout.count("lease of 192.168.50.") == 2, res.stdout
    assert "1 received" in res.stdout
    # a change that could not be made whole (nor undone) is refused before it starts, naming where
    assert ("no room for the change: /run/wvpclab has 0 KiB free, and a change writes the lab's "
            "files there (free some space there); nothing was changed") in res.stderr, res.stderr
    assert "undoing the change failed" not in res.stderr
    assert res.stdout.count("internal lab ") == 1, res.stdout  # xp's NIC 2 only: 3 stayed none
    assert "lab t-full-later is down" in res.stderr
    assert leftovers(rundir.prefix_for("t-full-later")) == []
