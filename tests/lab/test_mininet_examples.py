"""Mininet's built-in commands on every example lab (as root): pingall agrees with the model and
every link is there. (A module of its own: each example lab runs alone, without another lab of its
name.)"""

from __future__ import annotations

import re

import pytest

from tests.lab.test_examples import suite_name
from tests.lab.test_mininet import ROOT, cli

pytestmark = pytest.mark.lab


EXAMPLES = sorted(p.name for p in (ROOT / "topologies").iterdir() if p.suffix in (".yaml", ".py"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_mininet_builtins_tell_the_truth_on_every_example_lab(name: str) -> None:
    res = cli(ROOT / "topologies" / name, ["pingall", "links", "net", "dump"],
              name=suite_name(name))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    model = re.search(r"\*\*\* Model: .*; (\d+) unexpected drops, (\d+) unexpected replies",
                      res.stdout)
    assert model and model.groups() == ("0", "0"), res.stdout
    links = [l for l in res.stdout.replace("wvpclab> ", "").splitlines() if "<->" in l]
    assert links and all(l.rstrip().endswith("(OK OK)") for l in links), links
