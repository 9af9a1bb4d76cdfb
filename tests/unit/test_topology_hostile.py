"""Topology files cannot hurt the tool (no root): each hostile or broken file is a clean exit 2 from
`wvpclab check` within seconds, with a short message naming the problem."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

WVPCLAB = str(Path(sys.executable).parent / "wvpclab")
BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"]
                 + [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
                    for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
                 + ["vms: *i"]) + "\n"


def check(path: Path | str, timeout: float = 30) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    res = subprocess.run([WVPCLAB, "check", str(path)], capture_output=True, text=True,
                         timeout=timeout, check=False)
    return res, time.monotonic() - t0


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("bomb.yaml", BOMB, "aliases expanded, are more than 1,000,000"),
    ("deep.yaml", "vms: " + "[" * 1000 + "]" * 1000 + "\n", "nest"),
    ("deep.json", '{"vms": ' + "[" * 100000 + "]" * 100000 + "}", "nested too deep"),
    ("bigint.yaml", "name: lab\nvms: {v: {nics: [{internal: " + "9" * 5000 + "}]}}\n",
     "a value cannot be read"),
    ("self.yaml", "vms: &v {x: *v}\n", "contains itself"),
    ("huge.yaml", "name: " + "x" * (10 * 2**20) + "\n", "… (10,485,760 characters)"),
    ("exit.py", "import sys\nsys.exit(3)\n", "importing it exited (code 3)"),
    ("hardexit.py", "import os\nos._exit(0)\n", "running it ended with code 0 and no topology"),
    ("exitlater.py", "import sys\ndef topology():\n    sys.exit(4)\n",
     "topology(): exited (code 4)"),
])
def test_hostile_files_are_a_clean_error(tmp_path: Path, name: str, text: str,
                                         expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    res, took = check(path)
    assert res.returncode == 2, res.stderr[-500:]
    assert expected in res.stderr, res.stderr[-500:]
    assert "Traceback" not in res.stderr
    assert len(res.stderr) < 2000 and took < 20


def test_devices_fifos_and_oversized_files_are_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "lab.yaml"
    os.mkfifo(fifo)
    res, took = check(fifo, timeout=20)
    assert res.returncode == 2 and "is not a regular file" in res.stderr and took < 10
    res, _ = check("/dev/zero")
    assert res.returncode == 2 and "is not a regular file" in res.stderr
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(17 * 2**20)
    res, _ = check(big)
    assert res.returncode == 2 and "a topology file may be at most 16 MiB" in res.stderr


def test_validation_is_linear_in_the_size_of_the_file(tmp_path: Path) -> None:
    times = {}
    for n in (5000, 20000):
        doc = {"name": "big", "pcs": {"pc": {}}, "internal": {"lab": None},
               "vms": {f"v{i}": {"nics": [{"internal": "lab"}]} for i in range(n)}}
        path = tmp_path / f"vms{n}.yaml"
        path.write_text(yaml.safe_dump(doc))
        res, times[n] = check(path, timeout=60)
        assert res.returncode == 0, res.stderr[-500:]
    assert times[20000] < 10
    assert times[20000] < 6 * times[5000]  # 4x the VMs, well under 16x the time
