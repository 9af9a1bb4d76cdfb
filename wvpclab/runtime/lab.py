"""The running lab: its topology graph, the changes made to it, and its parts on one machine or
several.

``with Lab.load(path) as lab:`` builds it and tears it down on exit, also after an error or Ctrl-C.
Everything goes through one path: the topology graph is planned (``wvpclab.model.plan``), the
plan is diffed against the running one, and each machine carries out its part of the difference:
this one's (``wvpclab.runtime.machine``), the other servers' through their agents
(``wvpclab.cluster.spread``). Start is the difference from nothing, a runtime change (WVPC's
Settings dialog: ``set_nic``, ``cable``) the difference between two plans, stop the difference to
nothing. Beside it in ``wvpclab.runtime``: ``views`` (what a user asks of the lab), ``captures``,
``changes`` (what other threads see of them) and ``signals`` (held while a change or a stop runs).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from wvpclab.errors import LabError, UsageError
from wvpclab.model import edits, modes, topology
from wvpclab.model.items import Bridge, Server
from wvpclab.model.plan import LabPlan, plan
from wvpclab.runtime.captures import Captures, LabCaptures
from wvpclab.runtime.changes import Changes
from wvpclab.runtime.machine import Machine, preflight
from wvpclab.runtime.net import NicCable
from wvpclab.runtime.signals import signals_deferred
from wvpclab.runtime.views import LabViews, in_words, words

if TYPE_CHECKING:  # typing.Self is Python 3.11+
    from typing import Self


def _here(attr: str, doc: str) -> Any:
    """A read-only attribute of this machine's part, as the lab's own."""
    return property(lambda self: getattr(self.machine, attr), doc=doc)


class Lab(LabViews, LabCaptures):
    """A running Windows Virtual PC lab built from a validated topology graph."""

    plan = _here("plan", "The plan in force (the whole lab's, over every machine).")
    net = _here("net", "This machine's Mininet network (with the servers' nodes seen here).")
    controller = _here("controller", "This machine's OpenFlow controller.")
    realizer = _here("realizer", "What builds and tears down this machine's part.")
    group = _here("group", "The lab's cgroup on this machine (None without cgroup2).")

    def __init__(self, graph: nx.Graph, quiet: bool = False,
                 source: str | Path | None = None) -> None:
        """``source``: the topology file ``graph`` was read from (``save`` keeps its comments
        and order)."""
        graph = topology.checked(graph)  # a no-op for the graph topology.load built
        self.graph = graph
        #: The topology file the lab was read from, and its text then (None: built in code).
        self.source: Path | None = Path(source) if source is not None else None
        self.source_text: str | None = None
        if self.source is not None:
            try:
                self.source_text = self.source.read_text(encoding="utf-8")
            except (OSError, UnicodeError):
                self.source_text = None
        self.name: str = graph.graph["name"]
        self.quiet = quiet
        #: This machine's part of the lab; the other servers' (``Spread``) while they run one.
        self.machine = Machine(self.name, quiet=quiet, annex=self._servers_state)
        self.spread: Any = None
        self.prefix, self.run_dir = self.machine.prefix, self.machine.run_dir
        self._say = self.machine.say
        #: One change at a time (``changes.lock``, a stop too), and what other threads see of
        #: them: ``changing`` (NIC -> what, in words), ``generation``, ``wait_change``.
        self.changes = Changes(graph)
        self.changing = self.changes.changing
        self.captures = Captures()  # (packet captures of its NICs)
        #: The lab's web page while it is served (``web_page``).
        self.web: Any = None

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> Lab:
        """A lab for a topology file (validated; nothing started until ``start`` or ``with``)."""
        return cls(topology.load(path), source=path, **kwargs)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _servers_state(self) -> dict[str, Any]:
        return self.spread.state() if self.spread is not None else {}

    # -- start and stop ---------------------------------------------------------------------------
    def start(self) -> None:
        """Builds and starts the lab; returns when every switch's flows are in force and the DHCP
        clients hold leases. On any failure it tears down what it built and raises the first cause.
        """
        if self.machine.running:
            raise LabError(f"lab {self.name} is already started")
        preflight()
        target = plan(self.graph, self.prefix)
        if target.of(Server):
            from wvpclab.cluster.spread import Spread

            spread = Spread(self.machine, target)  # every server answers before anything is built
            spread.connect(self.graph)
            self.spread = spread
        t0 = time.monotonic()
        try:
            self.machine.open(self)
        except BaseException:
            spread, self.spread = self.spread, None
            if spread is not None:
                spread.stop()
            raise
        atexit.register(self.stop)  # a lab left running by a script is torn down at exit
        if self.spread is not None and self.group is not None:
            self.spread.adopt(self.group)  # its agents' ssh sessions began before the group
        try:
            self._say(f"building lab {self.name}: {in_words(self.graph)}"
                      + (f", over {words(len(target.of(Server)) + 1, 'machine')}"
                         if target.of(Server) else ""))
            self._apply(target)
            self.machine.watch(self._servers_lost)
            vms, nics = (len(topology.nodes_of(self.graph, kind)) for kind in ("vm", "nic"))
            self._say(f"lab {self.name} is up: {words(vms, 'VM')}, {words(nics, 'NIC')}, "
                      f"{words(len(self.plan.of(Bridge)), 'switch', 'switches')}, in "
                      f"{time.monotonic() - t0:.2f} s")
            from wvpclab.runtime.control import ControlChannel  # a second terminal's way in

            self.control = ControlChannel.serve(self)
        except BaseException:
            self.machine.plan = target  # whatever of it exists goes
            try:
                self.stop()
            except Exception as err:  # noqa: BLE001 - the start's own error is the one to raise
                self._say(f"warning: tearing down after the failed start: {err}")
            raise

    def _servers_lost(self) -> list[str]:
        """The servers of the lab whose session ended since it was last asked, once each."""
        spread = self.spread
        return [f"warning: {line}" for line in spread.check()] if spread is not None else []

    def _apply(self, target: LabPlan, timeout: float = 30.0, repair: bool = False,
               graph: nx.Graph | None = None, start: LabPlan | None = None) -> None:
        """Carries out the difference between the plan in force (or ``start``: what a failed
        change left) and ``target``: this machine's part of it, and through their agents the
        other servers' (which plan ``graph``, the graph of ``target``)."""
        if self.spread is None:
            self.machine.apply(target, timeout, start=start, repair=repair)
            return
        self.spread.apply(self.plan if start is None else start, target, timeout,
                          self.graph if graph is None else graph, repair)
        self.machine.save_state()  # (with the servers' tunnels as they are now)

    def stop(self) -> None:
        """Tears everything down: the difference to nothing (node processes by namespace, bridges,
        interfaces), then the controller; anything a failed start left is swept by name."""
        with signals_deferred():
            control, self.control = getattr(self, "control", None), None
            if control is not None:  # first: a command it runs finishes, then no one comes in
                control.stop()
            web, self.web = self.web, None
            if web is not None:  # first: a change it is making finishes, then nothing new comes
                web.stop()
            with self.changes.lock:
                self._stop()

    def _stop(self) -> None:
        if not self.machine.running:
            return
        atexit.unregister(self.stop)
        with signals_deferred() as pending:  # a second signal must not cut the teardown short
            self.captures.stop_all()
            spread, self.spread = self.spread, None
            if spread is not None:  # the servers go at the same time as this machine's part
                spread.end_proxies()
            self.machine.stop(beside=spread.stop if spread is not None else None)
            self._say(f"lab {self.name} is down")
            if pending:
                names = ", ".join(sorted({signal.Signals(s).name for s in pending}))
                self._say(f"({names} arrived while stopping: the teardown finished first)")
            pending.clear()  # the lab is down: nothing left for them to interrupt

    # -- the web page ---------------------------------------------------------------------------
    def web_page(self, port: int | None = None, sock: Any = None) -> Any:
        """Serves the lab's web page on 127.0.0.1 (``port``, or the default one or the next
        free; or on the listening socket ``sock``) until the lab stops, and returns it (``.url``
        has the run's token). A second call returns the page already served."""
        if not self.machine.running:
            raise LabError(f"lab {self.name} is not running")
        if self.web is None:
            from wvpclab.ui.web.server import WebServer

            web = WebServer(self, port, sock=sock)
            try:
                web.start()
            except BaseException:  # (Ctrl-C while it starts): no page left serving
                web.stop()
                raise
            self.web = web
        return self.web

    # -- WVPC's Settings dialog while the VM runs ----------------------------------------------
    def set_nic(self, vm: str, index: int, spec: str, target: str | None = None,
                timeout: float = 30.0) -> bool:
        """Moves NIC ``index`` of ``vm`` to another mode, as WVPC's Settings dialog does while the
        VM runs: ``none``, ``shared``, ``bridge:ADAPTER`` or ``internal:NAME``. The guest keeps its
        interface and MAC (only carrier flaps); its DHCP client releases the old lease and gets one
        on the new network before this returns; a static address stays. Returns False when the NIC
        already was in that mode (nothing changed)."""
        if not isinstance(spec, str) or not isinstance(target, (str, type(None))):
            raise UsageError(f"set_nic: the mode is a string ({modes.usage(':', ', ')}), "
                             f"not {spec!r}")
        try:
            mode, target = modes.parse(spec, target)
        except ValueError as err:
            raise UsageError(str(err)) from None
        self._nic(vm, index)  # (a wrong NIC is said before anything is marked as changing)
        what = f"to {modes.label({'mode': mode, 'target': target})}"
        with self.changes.of_nic(vm, index, what), self.changes.lock:
            # checked under the lock: the NIC is as the change before this one left it
            nic = self._nic(vm, index)
            problem = modes.by_name(mode).check_target(self.graph, self.graph.nodes[vm]["pc"],
                                                       target)
            if problem:
                raise UsageError(problem)
            if (nic["mode"], nic["target"]) == (mode, target):
                return False
            self._change(lambda g: modes.move(g, vm, index, mode, target), timeout)
        return True

    def cable(self, vm: str, index: int, plugged: bool, timeout: float = 30.0) -> bool:
        """Pulls (False) or plugs (True) the NIC's cable: only the switch side goes down, the guest
        sees no carrier; on plugging, its DHCP client renews, as Windows does on media connect.
        Returns False when the cable already was so (nothing changed); a Not connected NIC has
        nothing to plug into (UsageError)."""
        if not isinstance(plugged, bool):
            raise UsageError(f"cable: plugged is True or False, not {plugged!r}")
        self._nic(vm, index)  # (a wrong NIC is said before anything is marked as changing)
        with self.changes.of_nic(vm, index, "plugging the cable in" if plugged else
                                 "pulling the cable out"), self.changes.lock:
            nic = self._nic(vm, index)  # as the change before this one left it
            if modes.of(nic).attachment_kind() is None:
                raise UsageError(f"{vm} NIC {index} is Not connected: there is nothing to plug "
                                 f"its cable into (give it a mode first: nic {vm} {index} MODE)")
            if nic.get("cable", True) == plugged:
                return False
            self._change(lambda g: modes.set_cable(g, vm, index, plugged), timeout)
        return True

    # -- WVPC's Create Virtual Machine wizard, and the Settings dialog's number of adapters -------
    def add_vm(self, name: str, pc: str | None = None, nics: list[str] | None = None,
               timeout: float = 30.0) -> None:
        """Creates VM ``name`` on ``pc`` (the lab's only PC when None) and starts it, as Virtual
        PC's Create Virtual Machine wizard does: with ``nics`` (modes as ``set_nic`` takes them)
        or, when None, the wizard's NICs (bridged to the PC's first wired and first wireless
        adapter; shared networking on a PC with no adapter); ``[]``: none. Returns when its DHCP
        clients hold leases. All or nothing."""
        with self.changes.of(str(name), "being created"), self.changes.lock:
            edit, _ = self._edit(edits.add_vm, self.graph, name, pc, nics)
            self._change(edit, timeout)

    def remove_vm(self, name: str, timeout: float = 30.0) -> None:
        """Stops VM ``name`` and removes it with its NICs: its leases are released, its names
        leave the lab's DNS. All or nothing."""
        self.vm(name)  # (a wrong name is said before anything is marked as changing)
        with self.changes.of(name, "being removed"), self.changes.lock:
            edit = self._edit(edits.remove_vm, self.graph, name)
            self._change(edit, timeout)

    def add_nic(self, vm: str, mode: str | None = None, timeout: float = 30.0) -> int:
        """Adds a NIC to ``vm`` (the lowest free number of 0-3), as raising the Settings dialog's
        number of network adapters does: Not connected unless ``mode`` says otherwise (as
        ``set_nic`` takes it). Returns its number."""
        self.vm(vm)
        with self.changes.lock:
            edit, index = self._edit(edits.add_nic, self.graph, vm, mode)
            with self.changes.of_nic(vm, index, "being added"):
                self._change(edit, timeout)
        return index

    def remove_nic(self, vm: str, index: int, timeout: float = 30.0) -> None:
        """Removes NIC ``index`` of ``vm``; its lease is released, and the VM's other NICs keep
        their numbers."""
        self._nic(vm, index)
        with self.changes.of_nic(vm, index, "being removed"), self.changes.lock:
            edit = self._edit(edits.remove_nic, self.graph, vm, index)
            self._change(edit, timeout)

    # -- the lab as it is now, as a topology file ----------------------------------------------
    def saved_text(self, fmt: str = "yaml") -> str:
        """The text of a topology file that starts this lab as it is now: its VMs, their NICs
        (numbers, modes, cables, static addresses, MACs), the internal networks made at runtime.
        The file the lab was read from keeps its comments and order where it was YAML."""
        from wvpclab.model import save

        with self.changes.lock:  # not half-way through a change
            graph = self.graph_snapshot()
        try:
            return save.render(graph, self.source_text, fmt,
                               source=str(self.source) if self.source else None)
        except save.SaveError as err:
            raise LabError(f"cannot save lab {self.name}: {err}") from None

    def save(self, path: str | Path) -> Path:
        """Writes the lab as it is now to the topology file ``path`` (JSON when it ends in
        ``.json``, else YAML; ``saved_text``), whole or not at all; returns its path."""
        target = Path(path).expanduser().absolute()
        text = self.saved_text("json" if target.suffix.lower() == ".json" else "yaml")
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise LabError(f"cannot write {target}: {err.strerror or err}") from None
        return target

    @staticmethod
    def _edit(make: Any, *args: Any) -> Any:
        """An edit of ``wvpclab.model.edits``; its one-line refusal as a UsageError."""
        try:
            return make(*args)
        except ValueError as err:
            raise UsageError(str(err)) from None

    def set_link(self, link: Any, up: bool) -> None:
        """Takes a link (of ``lab.net.links``) down or up: a VM NIC's cable as ``cable`` does (the
        lab keeps it so); any other as a broken wire would be (until the link is set up again)."""
        if isinstance(link, NicCable):
            self.cable(link.intf1.node.name, link.intf1.index, up)
        else:
            self.machine.set_link(link, up)

    def _change(self, edit: Any, timeout: float) -> None:
        """Plans the graph as ``edit`` leaves it, carries out the difference, then keeps the edit.
        All or nothing: signals wait until the change is done (then arrive), and a change that
        fails part way is undone, the lab's record and the network as they were before."""
        with self.changes.lock:
            if not self.machine.running:
                raise LabError(f"lab {self.name} is not running")
            self.machine.room_for_a_change()
            edited = self.graph.copy()
            edit(edited)
            before, target = self.plan, plan(edited, self.prefix, previous=self.plan)
            with signals_deferred():
                try:
                    self._apply(target, timeout, graph=edited)
                except Exception as err:
                    try:
                        self._apply(before, timeout, repair=True, graph=self.graph, start=target)
                    except Exception as again:  # noqa: BLE001 - both causes are reported
                        self.machine.save_state()
                        raise LabError(f"{err}; undoing the change failed too ({again}): stop "
                                       "the lab and start it again") from err
                    raise LabError(f"{err} (nothing was changed)") from err
                self.changes.keep(edit)

    # -- the graph, read from other threads -------------------------------------------------------
    @property
    def generation(self) -> int:
        """How many changes the graph has had (``wait_change``)."""
        return self.changes.generation

    def wait_change(self, since: int, timeout: float) -> int:
        """Waits until the lab's graph has changed since ``generation`` was ``since`` (at most
        ``timeout`` seconds); returns the generation now."""
        return self.changes.wait(since, timeout)

    def graph_snapshot(self) -> nx.Graph:
        """A copy of the lab's graph as it is now (safe from another thread while a change
        runs: the change edits ``graph`` only at its end, under the same lock)."""
        return self.changes.snapshot()


__all__ = ["Lab", "LabError", "preflight"]
