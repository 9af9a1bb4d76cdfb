"""The Mininet CLI, extended for a wvpclab lab: node command results on stdout, piped input works.

Mininet's own CLI forwards standard input into a running node command (fine on a terminal, but with
commands piped in it feeds the next commands to the node) and prints results through its logger on
stderr. This subclass fixes both; lab-specific commands are added here.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from mininet.cli import CLI
from mininet.log import LEVELS, lg


class _SplitHandler(logging.StreamHandler):
    """Mininet's ``output()`` (results) to stdout; its info, warnings and errors to stderr."""

    terminator = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout if record.levelno == LEVELS["output"] else sys.stderr
        super().emit(record)


def route_mininet_output() -> None:
    """Installs the split handler on Mininet's logger (once)."""
    if not any(isinstance(h, _SplitHandler) for h in lg.handlers):
        level = lg.handlers[0].level if lg.handlers else LEVELS["output"]
        for handler in list(lg.handlers):
            lg.removeHandler(handler)
        handler = _SplitHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.setLevel(level)
        lg.addHandler(handler)


class LabCLI(CLI):
    """``wvpclab> `` prompt; every Mininet command, plus the lab's."""

    prompt = "wvpclab> "

    def __init__(self, lab: Any, stdin: TextIO = sys.stdin, **kwargs: Any) -> None:
        self.lab = lab
        route_mininet_output()
        super().__init__(lab.net, stdin=stdin, **kwargs)

    def waitForNode(self, node: Any) -> None:  # noqa: N802 - Mininet's name
        """Prints a node command's output (stdout) until it finishes; forwards keys only on a tty."""
        if self.isatty():
            super().waitForNode(node)
            return
        while node.waiting:
            try:
                data = node.monitor(timeoutms=200)
            except KeyboardInterrupt:
                node.sendInt()
                continue
            if data:
                sys.stdout.write(data)
                sys.stdout.flush()

    def do_EOF(self, line: str) -> str:  # noqa: N802 - cmd.Cmd's name
        """Exit (end of input)."""
        if self.isatty():
            sys.stdout.write("\n")
        return "exited"
