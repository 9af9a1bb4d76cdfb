"""Servers of a lab spread over several machines, on this machine's fake servers (namespaces with
their own sshd and Open vSwitch): the preflight (``wvpclab servers FILE``) says per server that it
is ready or what to fix, and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fakeserver import FakeServer

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FakeServer]]:
    """``far`` (ready), ``notun`` (sshd refuses tunnels), ``notso`` (Open vSwitch without
    userspace TSO), ``cut`` (drops everything), and one ssh config for all of them."""
    made: dict[str, FakeServer] = {}
    try:
        for index, name in enumerate(("far", "notun", "notso", "cut")):
            made[name] = FakeServer(name, index, tunnels=name != "notun").up()
        made["notso"].inside("ovs-vsctl", "set", "Open_vSwitch", ".",
                             "other_config:userspace-tso-enable=false")
        made["cut"].cut()
        config = tmp_path_factory.mktemp("ssh") / "config"
        config.write_text("".join(s.ssh_config.read_text() for s in made.values()))
        os.environ["WVPCLAB_SSH_CONFIG"] = str(config)
        yield made
    finally:
        os.environ.pop("WVPCLAB_SSH_CONFIG", None)
        for server in made.values():
            server.down()


def topology_on(path: Path, servers: dict[str, FakeServer], names: list[str]) -> Path:
    """A lab with one PC on each of the named servers, all on one LAN here."""
    doc = {"name": "t-spread", "servers": {n: servers[n].entry() for n in names},
           "lans": {"office": {"subnet": "192.168.50.0/24"}},
           "pcs": {f"pc-{n}": {"server": n, "adapters": {"eth0": {"lan": "office"}}}
                   for n in names}}
    path.write_text(yaml.safe_dump(doc))
    return path


def wvpclab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wvpclab.ui.cli", *args], capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=ROOT)


def test_a_ready_server_is_said_ready(servers: dict[str, FakeServer], tmp_path: Path) -> None:
    res = wvpclab("servers", str(topology_on(tmp_path / "t.yaml", servers, ["far"])))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("server far (root@198.18.0.2): ready (wvpclab ")
    ours = wvpclab("--version").stdout.split()[1]
    assert f"wvpclab {ours}" in res.stdout


def test_each_server_that_is_not_ready_is_named_with_what_to_fix(
        servers: dict[str, FakeServer], tmp_path: Path) -> None:
    path = topology_on(tmp_path / "t.yaml", servers, ["far", "notun", "notso", "cut"])
    res = wvpclab("servers", str(path))
    assert res.returncode == 1
    out = res.stdout
    assert "server far (root@198.18.0.2): ready" in out
    assert "server notun (root@198.18.0.6): 1 to fix\n  - sshd refuses Ethernet tunnels" in out
    assert "set `PermitTunnel yes`" in out
    assert "server notso (root@198.18.0.10): 1 to fix\n  - Open vSwitch runs without userspace " \
           "TSO" in out
    assert "server cut (root@198.18.0.14): 1 to fix\n  - server cut (198.18.0.14) cannot be " \
           "reached over ssh as root" in out
    assert res.stderr.strip() == "wvpclab: 3 of 4 servers not ready: cut, notso, notun"


def test_a_different_wvpclab_there_is_found(servers: dict[str, FakeServer],
                                            tmp_path: Path) -> None:
    """The server's `wvpclab` is another checkout (here: one whose code differs)."""
    other = tmp_path / "wvpclab"
    other.write_text("#!/bin/sh\necho 'wvpclab 0.0.9+000000000000'\n")
    other.chmod(0o755)
    far = servers["far"]
    assert far.inside("ln", "-sfn", str(other), "/usr/local/sbin/wvpclab").returncode == 0
    try:
        res = wvpclab("servers", str(topology_on(tmp_path / "t.yaml", servers, ["far"])))
    finally:
        ours = Path(sys.executable).with_name("wvpclab")
        far.inside("ln", "-sfn", str(ours), "/usr/local/sbin/wvpclab")
    assert res.returncode == 1
    assert "  - wvpclab 0.0.9+000000000000 there, 0.1.0+" in res.stdout
    assert "install this checkout there and run scripts/install.sh" in res.stdout


def test_a_file_without_servers_needs_no_check(tmp_path: Path) -> None:
    res = wvpclab("servers", str(ROOT / "topologies" / "xp_mode.yaml"))
    assert res.returncode == 0
    assert res.stdout == "lab xp-mode runs on this machine alone: it names no servers\n"
