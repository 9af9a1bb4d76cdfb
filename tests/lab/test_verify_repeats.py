"""verify and matrix tell the truth where addresses repeat in isolated networks (as root): a probe
counts only when the destination itself answered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.lab.helpers import example_as

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
WVPCLAB = str(Path(sys.executable).parent / "wvpclab")
LABS = {
    # two guests behind their own NAT engines: both leased 192.168.131.1
    "t-rep-nat": {"pcs": {"pc": {"adapters": {"eth0": {"lan": "office"}}}},
                  "lans": {"office": {"subnet": "192.168.50.0/24"}},
                  "vms": {"a": {"nics": ["shared"]}, "b": {"nics": ["shared"]}}},
    # two PCs' internal networks of one name: both guests leased 169.254.0.16
    "t-rep-int": {"pcs": {"pc1": {}, "pc2": {}}, "internal": {"lab": {}},
                  "vms": {"a": {"pc": "pc1", "nics": [{"internal": "lab"}]},
                          "b": {"pc": "pc2", "nics": [{"internal": "lab"}]}}},
}


@pytest.mark.parametrize("name", sorted(LABS))
def test_verify_with_repeated_addresses(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **LABS[name]}))
    res = subprocess.run([WVPCLAB, "verify", str(path)], capture_output=True, text=True,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "MISMATCH" not in res.stdout
    rows = {tuple(r.split()[:2]): r.split()[2:4] for r in res.stdout.splitlines()[1:]}
    assert rows[("a/eth0", "b/eth0")] == ["blocked", "blocked"]
    assert rows[("b/eth0", "a/eth0")] == ["blocked", "blocked"]


def test_matrix_after_a_static_nic_moves_to_another_network(tmp_path: Path) -> None:
    path = example_as(tmp_path, "four_modes.yaml", "t-rep-static")
    lines = ["nic lab1 0 shared", "matrix", "nic lab1 0 bridge eth0", "matrix"]
    res = subprocess.run([WVPCLAB, "run", str(path), "--quiet"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("FROM") == 2 and "MISMATCH" not in res.stdout, res.stdout
    assert "lab1/eth0  web        blocked   blocked   a static address off its network" \
        in res.stdout
