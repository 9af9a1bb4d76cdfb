"""Every module of the project imports under the running Python (the unit suite runs under each
supported CPython, 3.10 to 3.13: a name one of them lacks fails here, not in a user's lab)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for package in ("wvpclab", "controllers") for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)
