"""What user-given names may look like (VMs, PCs, LANs, servers, internal networks, adapters, labs).

A module of its own so that both the topology loader and the modes can use it without importing
each other."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

#: What a user-given name (VM, PC, LAN, server, internal network) may look like.
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
#: The same in words, for error messages.
NAME_RULE = "a letter, then letters, digits, '-' or '_'; at most 32"
#: A host adapter's name: an interface name.
ADAPTER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
ADAPTER_RULE = "an interface name: a letter, then letters, digits, '.', '-', '_'; at most 15"
#: Interface names the lab gives a PC itself (``natN`` for shared networking).
RESERVED_IFACE_RE = re.compile(r"^nat[0-9]+$")
#: A lab's name (it prefixes bridges, files and processes).
LAB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LAB_NAME_RULE = "letters, digits, '.', '-', '_'; at most 64"
#: A server's address: an IPv4 or IPv6 address or a DNS name (what ssh is given).
HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                         r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
#: A user name on a server.
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

#: Words the Mininet CLI (and ours) takes as commands: a node so named could not be addressed there.
RESERVED_NAMES = frozenset({
    # Mininet's CLI
    "EOF", "dpctl", "dump", "exit", "gterm", "help", "intfs", "iperf", "iperfudp", "link", "links",
    "net", "nodes", "noecho", "pingall", "pingallfull", "pingpair", "pingpairfull", "ports", "px",
    "py", "quit", "sh", "source", "switch", "time", "wait", "x", "xterm",
    # ours
    "vms", "nics", "nic", "cable", "leases", "rules", "nat", "capture", "matrix", "draw", "vm",
    "save",
})


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """``; did you mean 'subnet'?`` when ``word`` is close to one of ``choices``, else ``""``."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
