"""The manual's transcripts (README.md and docs/*.md), run on real labs (root), as the examples'
"Try in the CLI:" lines are.

The convention (docs/tutorial.md says it to readers too):

- A fenced block whose info string is ``console`` is a transcript; every other block (``sh``,
  ``text``, ``yaml``, ``python``) is left alone.
- ``$ COMMAND`` is a shell line, run from the repository's root. ``sudo `` in front is dropped (the
  suite runs as root) and ``.venv/bin/`` means the directory of the interpreter running the suite.
- ``$ ... wvpclab run FILE`` (without ``--no-cli``) opens a session: every ``wvpclab> COMMAND``
  line after it, in this block and the following ``console`` blocks, is typed at that lab's prompt,
  until the next ``$`` line or the end of the page, where input ends (and the lab with it).
- The lines under a command, up to the next ``$`` or ``wvpclab>`` line or the end of the block,
  are its output (stdout and stderr together, as on a terminal), compared line by line with what
  the command really printed (trailing spaces aside). ``…`` in a line stands for any text within
  that line (times, counters, interface numbers); a line that is only ``…`` stands for any number
  of lines, none included. The output a ``wvpclab run`` line shows is what it prints before its
  first prompt.
- A lab runs under a name of the suite's (``t-doc-NAME``, where NAME is the file's lab name or the
  line's ``--name``: a teacher's lab of the same example may run beside the suite); its output is
  compared after the suite's name and prefix are put back to the ones the reader's run would have.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from wvpclab.runtime import rundir

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PROMPT = "wvpclab> "
ANY = "…"
MARK = "@@wvpclab-docs@@"


@dataclass
class Step:
    """One command of a transcript and the output the page shows for it."""

    command: str
    expected: list[str]
    line: int  # where the command is in the page (1-based)


@dataclass
class Session:
    """A ``$ wvpclab run FILE`` line and the prompt commands typed into its lab; or (``commands``
    empty, ``run`` False) a plain shell line."""

    start: Step
    run: bool
    commands: list[Step] = field(default_factory=list)


def console_blocks(text: str) -> list[tuple[int, list[str]]]:
    """Each ``console`` block of a page: the line number of its first line, and its lines."""
    blocks: list[tuple[int, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = lines[i].strip()
        if fence.startswith("```"):
            info = fence[3:].strip()
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if info == "console":
                blocks.append((i + 2, lines[i + 1:j]))
            i = j + 1
            continue
        i += 1
    return blocks


def opens_session(command: str) -> bool:
    """Whether a shell line opens the lab's prompt (``wvpclab run`` without ``--no-cli``)."""
    words = shlex.split(command) if "|" not in command else []
    return (any(w.endswith("wvpclab") for w in words) and "run" in words
            and "--no-cli" not in words)


def parse(text: str) -> list[Session]:
    """A page's transcripts: its sessions and shell lines, in order."""
    sessions: list[Session] = []
    current: Step | None = None
    for first, block in console_blocks(text):
        current = None
        for offset, raw in enumerate(block):
            number = first + offset
            if raw.startswith("$ "):
                command = raw[2:].strip()
                current = Step(command, [], number)
                sessions.append(Session(current, opens_session(command)))
            elif raw.startswith(PROMPT):
                if not sessions or not sessions[-1].run:
                    raise ValueError(f"line {number}: a prompt line with no `wvpclab run` before")
                current = Step(raw[len(PROMPT):].strip(), [], number)
                sessions[-1].commands.append(current)
            elif current is None:
                raise ValueError(f"line {number}: output before any command")
            else:
                current.expected.append(raw.rstrip())
    return sessions


def pattern(expected: list[str]) -> re.Pattern[str]:
    """The regular expression an output must match in full (see the module's docstring); a run of
    spaces or tabs matches any such run (columns shift with what ``…`` stands for)."""
    parts = []
    for line in expected:
        if line.strip() == ANY:
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        for token in re.split(rf"({ANY}|[ \t]+)", line):
            if token == ANY:
                parts.append(r"[^\n]*?")
            elif token and not token.strip():
                parts.append(r"[ \t]+")
            else:
                parts.append(re.escape(token))
        parts.append(r"\n")
    return re.compile("".join(parts))


def matches(expected: list[str], actual: str) -> bool:
    text = "".join(l.rstrip() + "\n" for l in actual.splitlines())
    return pattern(expected).fullmatch(text) is not None


def shell_command(command: str) -> str:
    """A page's shell line as the suite runs it: no sudo; .venv/bin/ is this interpreter's."""
    bin_dir = str(Path(sys.executable).parent) + "/"
    command = command.removeprefix("sudo ")
    return command.replace(".venv/bin/", bin_dir)


def builds_a_lab(command: str) -> bool:
    """Whether a shell line is a ``wvpclab run`` or ``wvpclab verify`` (which take ``--name``)."""
    words = shlex.split(command) if "|" not in command else []
    return any(w.endswith("wvpclab") for w in words) and bool({"run", "verify"} & set(words))


def lab_name(command: str) -> str:
    """The name a ``wvpclab run`` (or ``verify``) line's lab has for the reader: its ``--name``,
    else its file's."""
    words = shlex.split(command)
    if "--name" in words:
        return words[words.index("--name") + 1]
    sub = next(i for i, w in enumerate(words) if w in ("run", "verify"))
    topo = next(w for w in words[sub + 1:] if not w.startswith("-"))
    return yaml.safe_load((ROOT / topo).read_text())["name"]


def suite_command(command: str, name: str, suite: str) -> str:
    words = shlex.split(shell_command(command))
    if "--name" in words:
        words[words.index("--name") + 1] = suite
    else:
        words += ["--name", suite]
    return shlex.join(words)


def as_reader(output: str, name: str, suite: str) -> str:
    """The suite's lab name and prefix put back to the reader's."""
    output = output.replace(rundir.prefix_for(suite), rundir.prefix_for(name))
    return re.sub(rf"\b{re.escape(suite)}\b", name, output)


def environment() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="100")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def run_session(session: Session, timeout: float = 600) -> list[str]:
    """Runs a session's lab with its commands piped in; each command's output, the run's own
    first (what it printed before the first prompt) and what it printed at the end last."""
    name = lab_name(session.start.command)
    suite = "t-doc-" + name
    lines = [f'py print("{MARK}")']
    for step in session.commands:
        lines += [step.command, f'py print("{MARK}")']
    res = subprocess.run(suite_command(session.start.command, name, suite), shell=True, cwd=ROOT,
                         input="\n".join(lines) + "\n", stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=timeout, env=environment(),
                         check=False)
    out = as_reader(res.stdout, name, suite)
    assert res.returncode == 0, out
    chunks = out.split(MARK + "\n")
    assert len(chunks) == len(session.commands) + 2, out
    # the CLI writes its prompt before it reads each line, piped input too: the prompt before a
    # command and the one before the next marker are not the command's output
    return [c.removeprefix(PROMPT).removesuffix(PROMPT) for c in chunks]


def run_line(command: str) -> str:
    """Runs a shell line of a page (not a session); what it printed, as the reader's run would."""
    if not builds_a_lab(command):
        return subprocess.run(shell_command(command), shell=True, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=300, env=environment(), check=False).stdout
    name = lab_name(command)
    res = subprocess.run(suite_command(command, name, "t-doc-" + name), shell=True, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=600, env=environment(), check=False)
    return as_reader(res.stdout, name, "t-doc-" + name)


def transcripts() -> list[tuple[str, Session]]:
    found = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        found += [(page.name, s) for s in parse(page.read_text())]
    return found


TRANSCRIPTS = transcripts()


@pytest.fixture(autouse=True)
def _files_the_pages_write() -> Iterator[None]:
    """Removes what the pages' commands write under /tmp (captures, pictures) after each test."""
    yield
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for name in set(re.findall(r"/tmp/[\w.-]+\.(?:pcap|svg|png)\b", page.read_text())):
            Path(name).unlink(missing_ok=True)


@pytest.mark.parametrize(("page", "session"), TRANSCRIPTS,
                         ids=[f"{p}:{s.start.line}" for p, s in TRANSCRIPTS])
def test_every_transcript_of_the_manual_prints_what_the_page_shows(page: str,
                                                                  session: Session) -> None:
    if not session.run:
        out = run_line(session.start.command)
        assert matches(session.start.expected, out), (
            f"{page}:{session.start.line}: $ {session.start.command}\n--- the page shows:\n"
            + "\n".join(session.start.expected) + "\n--- it printed:\n" + out)
        return
    chunks = run_session(session)
    wrong = []
    for step, actual in zip([session.start, *session.commands], chunks, strict=False):
        if not matches(step.expected, actual):
            wrong.append(f"{page}:{step.line}: {step.command}\n--- the page shows:\n"
                         + "\n".join(step.expected) + "\n--- it printed:\n" + actual)
    assert not wrong, "\n\n".join(wrong)
    if "--quiet" not in session.start.command:
        assert f"lab {lab_name(session.start.command)} is down" in chunks[-1], chunks[-1]



def test_the_python_example_of_the_cli_page_runs() -> None:
    """docs/cli.md's ``python`` block, run as it is, on its lab under a name of the suite's."""
    from tests.lab.helpers import example_graph

    text = (DOCS / "cli.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    load = 'Lab.load("topologies/default.yaml")'
    assert load in code
    code = code.replace(load, 'Lab(example_graph("default.yaml", "t-doc-api"), quiet=True)')
    scope = {"example_graph": example_graph, "print": lambda *a, **k: None}
    exec(compile(code, "docs/cli.md", "exec"), scope)  # noqa: S102 - the page's own example
    assert leftovers_of("t-doc-api") == []


def leftovers_of(name: str) -> list[str]:
    from tests.lab.helpers import leftovers

    return leftovers(rundir.prefix_for(name))
