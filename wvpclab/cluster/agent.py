"""``wvpclab agent``: a lab's part on one of its servers, driven by the lab over ssh.

The lab (on the machine where the user runs it) starts ``wvpclab agent`` on each server over ssh
and speaks to it in JSON lines on the agent's stdin and stdout, one request and one reply at a
time. The agent runs the server's part of the lab (a ``wvpclab.runtime.machine.Machine``, as the
lab runs its own): its own run directory, controller (on a Unix socket: nothing listens on the
network), Mininet network and realizer, and the same teardown. It computes the plan from the
topology graph it is sent (the preflight made sure both machines run the same code), so both sides
name everything alike.

Requests (``op``): ``start`` (graph, machine) claims the lab's name there and starts its controller;
``apply`` (graph, timeout) builds the difference to that graph's plan, without DHCP clients;
``clients`` (timeout) starts those; ``stop`` tears everything down. Replies carry ``ok`` and either
``error`` (one line) or what was asked (``nodes``: each node's name, shell PID, role and PC).
Whatever else ends the session (the lab's ssh gone, SIGHUP, SIGTERM, end of input) tears the
server's part down too: a lab that dies leaves nothing running on its servers."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import IO, Any

import networkx as nx

from wvpclab.cluster.remote import code_version
from wvpclab.errors import WvpcError
from wvpclab.model.items import Host
from wvpclab.model.plan import Delta, LabPlan, plan
from wvpclab.runtime.machine import Machine
from wvpclab.runtime.signals import signals_deferred


def _graph(data: Any) -> nx.Graph:
    """The lab's graph as it was sent: validated there already, and carrying the runtime state
    (a pulled cable) that a topology document does not."""
    return nx.node_link_graph(data, edges="links")


class Agent:
    """The server side: this machine's part of the lab."""

    def __init__(self) -> None:
        self.part: Machine | None = None
        #: The last change's part here, whose DHCP clients start on ``clients``.
        self.pending: Delta | None = None
        #: The plan of a change that failed part way here (an undo starts from it).
        self.attempted: LabPlan | None = None

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "start":
            if self.part is not None:
                raise WvpcError("already started")
            part = Machine(_graph(request["graph"]).graph["name"], server=request["machine"],
                           quiet=bool(request.get("quiet")))
            part.open()
            self.part = part
            return {"version": code_version()}
        if self.part is None:
            raise WvpcError(f"{op!r} before start")
        if op == "apply":
            repair = bool(request.get("repair"))
            target = plan(_graph(request["graph"]), self.part.prefix, previous=self.part.plan)
            start = self.attempted if repair else None  # undoing: from what a failure left
            try:
                self.pending = self.part.apply(target, float(request.get("timeout", 30)),
                                               start=start, repair=repair, clients=False)
            except BaseException:
                self.attempted = target
                raise
            self.attempted = None
            return {"nodes": self.nodes()}
        if op == "clients":
            if self.pending is not None:
                self.part.start_clients(self.pending, float(request.get("timeout", 30)))
            self.pending = None
            return {}
        if op == "stop":
            self.stop()
            return {}
        if op == "leases":
            return {"leases": self.part.leases()}
        if op == "ping":
            return {}
        raise WvpcError(f"unknown request {op!r}")

    def nodes(self) -> dict[str, list[Any]]:
        """Each node of this part: its shell's PID, role and PC (the lab makes its proxies)."""
        part = self.part
        nodes = part.realizer.nodes if part is not None and part.realizer else {}
        hosts = part.plan.of(Host) if part is not None else {}
        return {name: [node.pid, hosts[name].role, hosts[name].pc]
                for name, node in nodes.items() if name in hosts}

    def stop(self) -> None:
        """Tears the part down; a signal waits until it is done."""
        part, self.part = self.part, None
        if part is not None:
            with signals_deferred():
                part.stop()


def _leave(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(stdin: IO[str] | None = None) -> int:
    """Answers requests until ``stop`` or the end of input; tears down whatever is left."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)  # replies only: anything else printed
    os.dup2(2, 1)  # (Mininet's log, a stray print) goes to stderr, which the lab shows
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _leave)
    agent = Agent()
    stdin = stdin or sys.stdin
    try:
        for line in stdin:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError as err:
                request = f"not JSON ({err})"
            if not isinstance(request, dict):
                channel.write(json.dumps({"ok": False, "error": f"bad request: {request}"})
                              + "\n")
                continue
            try:
                reply = {"ok": True, **agent.handle(request)}
            except WvpcError as err:
                reply = {"ok": False, "error": str(err)}
            except Exception as err:  # noqa: BLE001 - said to the lab, which decides
                reply = {"ok": False, "error": f"{type(err).__name__}: {err}"}
            channel.write(json.dumps(reply) + "\n")
            if request.get("op") == "stop":
                return 0
        return 0
    finally:
        agent.stop()


__all__ = ["Agent", "serve"]
