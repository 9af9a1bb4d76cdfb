"""The example labs and scripts in topologies/, run as a user would (root)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]


def test_move_nic_script_drives_a_lab_end_to_end() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "topologies" / "move_nic.py")],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    lines = dict(l.split(None, 1) for l in res.stdout.splitlines())
    assert lines["shared"].startswith("address 192.168.131.1 ")
    assert "web: hello from web; you are 192.168.50." in lines["shared"]
    bridged = lines["bridge:eth0"].split()
    assert bridged[1].startswith("192.168.50.") and bridged[-1] == bridged[1]  # its own address
    assert lines["internal:lab"].endswith("1 received")
    assert lines["none"].endswith("carrier no")
