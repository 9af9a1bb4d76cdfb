"""The manual holds together (no root): every relative link of README.md and docs/*.md resolves
to a file, and an anchor to a heading of it; the README stays short; the tutorial's transcripts
(run on real labs by tests/lab/test_docs.py) parse and walk through the four modes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.lab.test_docs import parse

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """A page without its fenced blocks (a `# comment` in a yaml block is no heading)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*|_(?=\w)", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in prose(page.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def test_every_relative_link_of_the_manual_resolves() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(prose(page.read_text())):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_the_links_are_checked_at_all() -> None:
    readme = prose((ROOT / "README.md").read_text())
    assert len(LINK.findall(readme)) >= 8
    assert slug("1. The physical picture we emulate") == "1-the-physical-picture-we-emulate"
    assert slug("`wvpclab run`: a lab") == "wvpclab-run-a-lab"


def test_the_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 200
    assert "make lab" in "\n".join(lines) and "make test" in "\n".join(lines)
    assert "docs/web.png" in "\n".join(lines)


def test_the_architecture_keeps_the_section_numbers_the_code_cites() -> None:
    headings = [l for l in (ROOT / "docs" / "architecture.md").read_text().splitlines()
                if l.startswith("## ")]
    for n in range(1, 6):
        assert any(h.startswith(f"## {n}. ") for h in headings), n


def test_the_tutorial_walks_through_the_four_modes_on_the_example_labs() -> None:
    sessions = [s for s in parse((ROOT / "docs" / "tutorial.md").read_text()) if s.run]
    typed = [c.command for s in sessions for c in s.commands]
    for mode in ("none", "shared", "bridge eth0", "internal lab"):
        assert any(c.startswith("nic ") and c.endswith(f" {mode}") for c in typed), mode
    files = {w for s in sessions for w in shlex.split(s.start.command) if w.endswith(".yaml")}
    assert {"topologies/default.yaml", "topologies/xp_mode.yaml",
            "topologies/four_modes.yaml"} <= files
    assert all(step.expected for s in sessions for step in s.commands), "a command shows nothing"
