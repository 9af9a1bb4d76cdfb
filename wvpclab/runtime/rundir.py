"""Where a lab is on this machine, by its prefix: the names of its bridges and interfaces, its run
directory with its record, its name files and its controller's socket.

Every lab names its bridges and root-namespace interfaces ``wvXXX-…`` (XXX from the lab's name),
keeps its files in ``/run/wvpclab/wvXXX/`` (its record: ``state.json``; made as
``.wvXXX.PID`` and renamed once whole) and ``/run/wvpclab/wvXXX.dns/``, and its switches reach its
controller at ``wvXXX.openflow`` in Open vSwitch's run directory. ``wvpclab.runtime.cleanup``
finds a lab's leftovers from these.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from wvpclab.runtime.ovs import OVS_RUNDIR

RUN_ROOT = Path("/run/wvpclab")
#: Names the lab gives to bridges and root-namespace interfaces.
NAME_RE = re.compile(r"^wv[0-9a-f]{3}-")
#: A lab's entries under RUN_ROOT: its run directory, and its name files (``.dns``).
ENTRY_RE = re.compile(r"^(wv[0-9a-f]{3})(\.dns)?$")
#: A run directory being made by a lab's process PID (``.wvXXX.PID``; renamed once whole).
MAKING_RE = re.compile(r"^\.(wv[0-9a-f]{3})\.(\d+)$")


def prefix_for(lab_name: str) -> str:
    """``wv`` and three hex digits from the lab's name, e.g. ``wv3fa``."""
    return "wv" + hashlib.sha256(lab_name.encode()).hexdigest()[:3]


def run_dir(prefix: str) -> Path:
    return RUN_ROOT / prefix


def dns_dir(prefix: str) -> Path:
    """Where a lab's name files are (``wvpclab.runtime.dns``): readable by all, unlike its run
    directory."""
    return RUN_ROOT / f"{prefix}.dns"


def openflow_socket(prefix: str) -> Path:
    """Where a lab's switches reach its controller (Open vSwitch connects to a Unix-socket
    controller only in its own run directory)."""
    return OVS_RUNDIR / f"{prefix}.openflow"


def read_state(prefix: str) -> dict[str, Any] | None:
    """A lab's record, or None when it has none (or one that cannot be read)."""
    try:
        return json.loads((run_dir(prefix) / "state.json").read_text())
    except (OSError, ValueError):
        return None


def write_state(prefix: str, state: dict[str, Any]) -> None:
    path = run_dir(prefix) / "state.json"
    # one temporary file per writer (the lab's watch records a restarted controller meanwhile)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)  # never a half-written record left behind
        raise
