"""Every module of the project imports under the running Python (the unit suite runs under each
supported CPython, 3.10 to 3.13: a name one of them lacks fails here, not in a user's lab)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for package in ("wvpclab", "controllers") for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)


#: What only the test extra installs (pyproject.toml): the lab and the benchmarks run without it.
TEST_ONLY = ("scapy", "pytest", "hypothesis", "selenium", "websocket", "_pytest")
BLOCK = f"""
import importlib, importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {TEST_ONLY!r}:
            raise ImportError(f'{{name}} is in the test extra only')
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, {str(ROOT / "bench")!r})
for name in sys.argv[1:]:
    importlib.import_module(name)
"""


def test_the_lab_and_the_benchmarks_import_without_the_test_extra() -> None:
    bench = sorted(p.stem for p in (ROOT / "bench").glob("*.py"))
    res = subprocess.run([sys.executable, "-c", BLOCK, *MODULES, *bench], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.parametrize("name", [m for m in MODULES if m.startswith("wvpclab.model")])
def test_a_model_module_imports_first(name: str) -> None:
    """Each module of the model imports on its own, first in a fresh interpreter (an import cycle
    shows only then: ``wvpclab.model.schema`` once failed unless ``topology`` came before it)."""
    res = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, check=False)
    assert res.returncode == 0, res.stderr
