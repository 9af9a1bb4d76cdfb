"""Open vSwitch's command line, as the lab uses it: ``ovs-vsctl`` with a timeout that grows with
the transaction, and where Open vSwitch keeps its sockets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from wvpclab.errors import CommandError

#: Open vSwitch connects to a Unix-socket controller only in its own run directory (root's alone).
OVS_RUNDIR = Path(os.environ.get("OVS_RUNDIR", "/var/run/openvswitch"))
#: What one ``ovs-vsctl`` transaction may take: a base, and more for each bridge or port it adds
#: or removes (ovs-vswitchd opens each port; 2,000 ports took longer than the 10 s once allowed).
OVS_TIMEOUT = 10.0
OVS_TIMEOUT_PER_OP = 0.02


def vsctl(*args: str, check: bool = True) -> str:
    """Runs ``ovs-vsctl`` with a timeout that grows with the transaction; returns its output.

    Raises:
        CommandError: when it fails and ``check`` is true.
    """
    ops = sum(a in ("add-port", "del-port", "add-br", "del-br") for a in args)
    limit = OVS_TIMEOUT + OVS_TIMEOUT_PER_OP * ops
    res = subprocess.run(["ovs-vsctl", f"--timeout={limit:.0f}", *args], check=False,
                         capture_output=True, text=True, timeout=limit + 20,
                         start_new_session=True)  # Ctrl-C is not its own
    if check and res.returncode != 0:
        raise CommandError(f"ovs-vsctl {' '.join(args[:3])}…", res.stderr)
    return res.stdout
