"""Runs last: after every lab test, nothing of the suite's labs remains on the machine. Other labs
(a teacher's running beside the suite, or what one left before it began) are not the suite's."""

from __future__ import annotations

import os

import pytest

from wvpclab.runtime import cleanup, procs, rundir

pytestmark = pytest.mark.lab


def test_no_lab_left_anything_behind(stale_before: set[str]) -> None:
    assert sorted(set(cleanup.stale()) - stale_before) == []
    running = []
    if rundir.RUN_ROOT.is_dir():
        for entry in rundir.RUN_ROOT.iterdir():
            state = rundir.read_state(entry.name) or {}
            if str(state.get("name", "")).startswith("t-"):
                running.append(state["name"])
    assert running == [], "test labs still registered as running"


def test_no_test_controller_or_node_shell_remains() -> None:
    mine = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            line = procs.cmdline(int(entry))
            if "controllers.main" in line and f"{rundir.RUN_ROOT}/" in line:
                state = rundir.read_state(line.split(f"{rundir.RUN_ROOT}/")[1].split("/")[0])
                if state is None or str(state.get("name", "")).startswith("t-"):
                    mine.append(line)
    assert mine == []
