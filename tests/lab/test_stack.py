"""The install step's result, as root: Open vSwitch up with userspace TSO, tools present."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.lab


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          timeout=30).stdout.strip()


def test_ovs_is_up_with_userspace_tso() -> None:
    assert run("ovs-vsctl", "--timeout=5", "get", "Open_vSwitch", ".",
               "other_config:userspace-tso-enable") == '"true"'
    assert "ovs_version" in run("ovs-vsctl", "--timeout=5", "show")
    assert run("ovs-appctl", "--timeout=5", "version").startswith("ovs-vswitchd")


@pytest.mark.parametrize("tool", ["mnexec", "ip", "tcpdump", "iperf3", "busybox", "dhclient",
                                  "ping"])
def test_lab_tools_installed(tool: str) -> None:
    assert shutil.which(tool), f"{tool} is not installed"


def test_install_is_idempotent_and_quick() -> None:
    res = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh")], capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", f"a second install run should have nothing to do: {res.stderr}"


def test_install_refuses_an_unsupported_python_and_keeps_the_venv(tmp_path: Path) -> None:
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 3.9\n")  # what `python3 -c ...version...` says on 3.9
    fake.chmod(0o755)
    kept = (ROOT / ".venv" / ".wvpclab-python").read_text()
    res = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh")], capture_output=True,
                         text=True, timeout=120, check=False,
                         env={**os.environ, "WVPCLAB_PYTHON": str(fake)})
    assert res.returncode == 1
    said = (f"install: {fake} is Python 3.9; wvpclab runs on Python 3.10, 3.11, 3.12, 3.13 "
            "(set WVPCLAB_PYTHON to one of those)")
    assert res.stderr.strip().splitlines() == [said]
    assert (ROOT / ".venv" / ".wvpclab-python").read_text() == kept


def test_vagrantfile_syntax() -> None:
    res = subprocess.run(["ruby", "-c", str(ROOT / "Vagrantfile")], capture_output=True, text=True,
                         timeout=30, check=False)
    assert res.returncode == 0 and "Syntax OK" in res.stdout, res.stderr
