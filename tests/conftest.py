"""Shared test set-up: lab tests (marked ``lab``) need root; in CI they must run, never skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    lab = [item for item in items if item.get_closest_marker("lab")]
    if lab and os.environ.get("CI"):
        raise pytest.UsageError(f"CI must run as root: {len(lab)} lab tests would be skipped")
    for item in lab:
        item.add_marker(pytest.mark.skip(reason="lab test: needs root"))


#: What other labs had left on this machine when the session began (a teacher's crashed lab, say):
#: not the suite's to count, nor to clean.
STALE_BEFORE = pytest.StashKey[set]()


def pytest_sessionstart(session: pytest.Session) -> None:
    stale: set[str] = set()
    if os.geteuid() == 0:
        from wvpclab.runtime import cleanup
        stale = set(cleanup.stale())
    session.config.stash[STALE_BEFORE] = stale


@pytest.fixture
def stale_before(request: pytest.FixtureRequest) -> set[str]:
    return request.config.stash.get(STALE_BEFORE, set())
