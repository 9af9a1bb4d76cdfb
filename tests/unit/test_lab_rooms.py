"""The rooms of a running lab, without root: what other threads see of its changes (``Changes``),
one machine's part before it claims anything (``Machine``), the agent's refusals, and the rule that
the lab's modules use each other's public names only."""

from __future__ import annotations

import ast
import io
import sys
import threading
from pathlib import Path

import networkx as nx
import pytest

from wvpclab.cluster.agent import Agent
from wvpclab.errors import WvpcError
from wvpclab.model.plan import EMPTY
from wvpclab.runtime import rundir
from wvpclab.runtime.changes import Changes
from wvpclab.runtime.machine import Machine

ROOT = Path(__file__).resolve().parents[2]


def test_a_nic_is_marked_changing_until_the_last_of_its_changes_ends() -> None:
    changes = Changes(nx.Graph())
    with changes.of_nic("xp", 0, "to shared"):
        with changes.of_nic("xp", 0, "pulling the cable out"):
            assert changes.changing == {"xp/0": "pulling the cable out"}
        assert changes.changing == {"xp/0": "pulling the cable out"}  # the newest words show
    assert changes.changing == {}
    with pytest.raises(RuntimeError), changes.of_nic("xp", 1, "to none"):
        raise RuntimeError("the change failed")
    assert changes.changing == {}


def test_a_kept_change_wakes_a_waiter_and_a_snapshot_is_a_copy() -> None:
    graph = nx.Graph(name="t-rooms")
    changes = Changes(graph)
    seen: list[int] = []
    waiter = threading.Thread(target=lambda: seen.append(changes.wait(0, 30)))
    waiter.start()
    snapshot = changes.snapshot()
    changes.keep(lambda g: g.add_node("xp"))
    waiter.join(30)
    assert seen == [1] and changes.generation == 1
    assert "xp" in graph and "xp" not in snapshot
    assert changes.wait(1, 0.05) == 1  # nothing new: back when the time is up


def test_a_part_claims_nothing_until_it_opens() -> None:
    part = Machine("t-rooms", server="far")
    assert part.prefix == rundir.prefix_for("t-rooms")
    assert part.run_dir == rundir.run_dir(part.prefix) and not part.run_dir.exists()
    assert not part.running and part.plan is EMPTY
    part.stop()  # nothing to tear down: nothing happens
    assert not part.run_dir.exists()


def test_saying_goes_on_when_nobody_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = io.StringIO()
    dead.close()  # a closed terminal: writing raises ValueError (a dead pipe: OSError)
    monkeypatch.setattr(sys, "stderr", dead)
    Machine("t-rooms").say("lab t-rooms is down")


def test_the_agent_answers_nothing_before_it_starts() -> None:
    agent = Agent()
    with pytest.raises(WvpcError, match="'apply' before start"):
        agent.handle({"op": "apply", "graph": {}})
    agent.stop()  # nothing started: nothing to stop


OWN = ["wvpclab/runtime/lab.py", "wvpclab/runtime/machine.py", "wvpclab/runtime/views.py",
       "wvpclab/runtime/changes.py", "wvpclab/runtime/signals.py", "wvpclab/runtime/captures.py",
       "wvpclab/cluster/agent.py", "wvpclab/cluster/spread.py"]


@pytest.mark.parametrize("path", OWN)
def test_no_module_reaches_another_objects_private_names(path: str) -> None:
    reached = [f"{path}:{node.lineno}: .{node.attr}"
               for node in ast.walk(ast.parse((ROOT / path).read_text()))
               if isinstance(node, ast.Attribute) and node.attr.startswith("_")
               and not node.attr.startswith("__")
               and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))]
    assert reached == []
