"""The running lab: its lifecycle and what a user asks of it.

``with Lab.load(path) as lab:`` builds it and tears it down on exit, also after an error or Ctrl-C.
Everything goes through one path: the topology graph is planned (``wvpclab.model.plan``), the
plan is diffed against the running one, and the realizer (``wvpclab.runtime.realize``) carries
the difference out.
Start is the difference from nothing, a runtime change (WVPC's Settings dialog: ``set_nic``,
``cable``) the difference between two plans, stop the difference to nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
from mininet.net import Mininet
from mininet.node import Node

from controllers.flowrules import Learned, Port, Switch, explain, flows_for
from wvpclab.errors import ControllerError, LabError, UsageError
from wvpclab.model import modes, topology
from wvpclab.model.items import Bridge, DhcpClient, Nat, Server, Veth
from wvpclab.model.plan import EMPTY, Delta, LabPlan, diff, plan
from wvpclab.runtime import cgroups, cleanup, realize, rundir
from wvpclab.runtime.captures import Captures
from wvpclab.runtime.controller import Controller
from wvpclab.runtime.dhcp.service import Client, Responder
from wvpclab.runtime.net import LabNet, NicCable, PatchCable, TransitLink
from wvpclab.runtime.nodes import PhysicalPC, VirtualPC
from wvpclab.runtime.realize import Realizer, harden_root_interface

if TYPE_CHECKING:  # typing.Self is Python 3.11+
    from typing import Self

#: Prefixes of the labs this process has started and not stopped.
_STARTED: set[str] = set()
#: What a change must find free before it starts: room for the lab's files, and file descriptors
#: in this process (a change starts processes, each with its pipes; its undo as many again).
ROOM_DISK = 256 * 1024
ROOM_FILES = 256


def preflight() -> None:
    """Root, mnexec and a running Open vSwitch with userspace TSO; else one line saying what to
    run."""
    if os.geteuid() != 0:
        raise LabError("a lab needs root (namespaces, Open vSwitch): run it with sudo, or "
                       "`make lab`")
    for tool in ("mnexec", "ovs-vsctl", "ip", "tc", "nft", "dnsmasq"):
        if not shutil.which(tool):
            raise LabError(f"{tool} is not installed: run `make install` (scripts/install.sh)")
    res = subprocess.run(["ovs-vsctl", "--timeout=5", "get", "Open_vSwitch", ".",
                          "other_config:userspace-tso-enable"], capture_output=True, text=True,
                         timeout=15, check=False)
    if res.returncode != 0:
        raise LabError("Open vSwitch is not running: run `make install` (scripts/install.sh) to "
                       "start it")
    if res.stdout.strip() != '"true"':
        raise LabError("Open vSwitch runs without userspace TSO (TCP would hang): run "
                       "`make install` (scripts/install.sh), which enables it and restarts "
                       "ovs-vswitchd")


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP are noted, not acted on; afterwards the
    first one still listed is raised again (its usual handler runs then). Only in the main
    thread (elsewhere signals cannot be handled anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    pending: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {s: signal.getsignal(s) for s in kinds}
    for s in kinds:
        signal.signal(s, lambda signum, frame: pending.append(signum))
    try:
        yield pending
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


def _words(count: int, word: str, plural: str = "") -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


class Lab:
    """A running Windows Virtual PC lab built from a validated topology graph."""

    def __init__(self, graph: nx.Graph, quiet: bool = False, machine: str | None = None) -> None:
        """``machine``: the server whose part of the lab this object realizes, when it runs there
        as the agent of a lab spread over several servers (``wvpclab agent``); None for the lab
        itself, which realizes this machine's part and drives the other servers' agents."""
        graph = topology.checked(graph)  # a no-op for the graph topology.load built
        self.graph = graph
        self.machine = machine
        #: The other servers' agents (a lab spread over several servers).
        self.spread: Any = None
        self.name: str = graph.graph["name"]
        self.prefix = rundir.prefix_for(self.name)
        self.run_dir = rundir.run_dir(self.prefix)
        self.quiet = quiet
        self.plan: LabPlan = EMPTY
        self.net: LabNet | None = None
        self.controller: Controller | None = None
        self.realizer: Realizer | None = None
        #: The lab's cgroup, which every process it starts joins (None without cgroup2).
        self.group: cgroups.Group | None = None
        self._captures = Captures()
        self._started = False
        self._state_unsaved = False
        self._watching = threading.Event()  # set: the server watch ends
        self._watch: threading.Thread | None = None
        #: Held by a change (and a stop) from start to end: the CLI, the web page and the API
        #: change the lab one at a time, and a stop waits for a change in flight.
        self._lock = threading.RLock()
        #: The changes under way (or waiting for the one under way), by NIC ``VM/N``: what each
        #: is, in words (the web page shows them, whoever made them).
        self.changing: dict[str, str] = {}
        self._waiting: dict[str, int] = {}
        #: The lab's web page while it is served (``web_page``).
        self.web: Any = None
        #: Held while ``graph`` itself is edited (briefly): ``graph_snapshot`` reads under it.
        #: Each edit adds one to ``generation`` and wakes ``wait_change``.
        self._graph_lock = threading.Condition(threading.Lock())
        self.generation = 0

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> Lab:
        """A lab for a topology file (validated; nothing started until ``start`` or ``with``)."""
        return cls(topology.load(path), **kwargs)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _say(self, message: str) -> None:
        if not self.quiet:
            try:
                print(f"wvpclab: {message}", file=sys.stderr, flush=True)
            except (OSError, ValueError):  # nobody reads it any more (a closed terminal, a dead
                pass  # pipe): the lab goes on, and a stop finishes

    # -- start and stop ---------------------------------------------------------------------------
    def start(self) -> None:
        """Builds and starts the lab; returns when every switch's flows are in force and the DHCP
        clients hold leases. On any failure it tears down what it built and raises the first cause.
        """
        if self._started:
            raise LabError(f"lab {self.name} is already started")
        preflight()
        target = plan(self.graph, self.prefix)
        if target.of(Server):
            from wvpclab.cluster.spread import Spread

            spread = Spread(self, target)  # every server answers before anything is built
            spread.connect()
            self.spread = spread
        t0 = time.monotonic()
        try:
            self._open()
        except BaseException:
            if self.spread is not None:
                self.spread.stop()
                self.spread = None
            raise
        if self.spread is not None and self.group is not None:
            self.spread.adopt(self.group)  # its agents' ssh sessions began before the group
        try:
            g = self.graph
            counts = {k: len(topology.nodes_of(g, k)) for k in ("pc", "vm", "nic", "lan", "server",
                                                                 "internal")}
            inet = [s for _, s in topology.nodes_of(g, "server") if s["lan"] == topology.INTERNET]
            counts["lan"] -= topology.has_internet(g)
            counts["server"] -= len(inet)
            self._say(f"building lab {self.name}: {_words(counts['pc'], 'PC')}, "
                      f"{_words(counts['vm'], 'VM')} with {_words(counts['nic'], 'NIC')}, "
                      f"{_words(counts['lan'], 'LAN')} with {_words(counts['server'], 'server')}, "
                      f"{_words(counts['internal'], 'internal network')}"
                      + (f", an internet with {_words(len(inet), 'server')}"
                         if topology.has_internet(g) else "")
                      + (f", over {_words(len(target.of(Server)) + 1, 'machine')}"
                         if target.of(Server) else ""))
            self._apply(target)
            self._watching.clear()
            self._watch = threading.Thread(target=self._watch_servers, name="wvpclab-dhcp-watch",
                                           daemon=True)
            self._watch.start()
            self._say(f"lab {self.name} is up: {_words(counts['vm'], 'VM')}, "
                      f"{_words(counts['nic'], 'NIC')}, "
                      f"{_words(len(self.plan.of(Bridge)), 'switch', 'switches')}, in "
                      f"{time.monotonic() - t0:.2f} s")
        except BaseException:
            self.plan = target  # whatever of it exists goes
            try:
                self.stop()
            except Exception as err:  # noqa: BLE001 - the start's own error is the one to raise
                self._say(f"warning: tearing down after the failed start: {err}")
            raise

    def _open(self) -> None:
        """Claims the lab's name on this machine and starts its controller, its Mininet network
        and its realizer (nothing of the lab is built yet). A failure leaves nothing."""
        self._claim()
        self._started = True
        atexit.register(self.stop)  # a lab left running by a script is torn down at exit
        try:
            self.controller = Controller(self.run_dir, rundir.openflow_socket(self.prefix),
                                         group=self.group, on_spawn=self._save_state)
            self.controller.start()
            Mininet.inited = True  # skip Mininet.init(): it raises limits and sysctls machine-wide
            self.net = LabNet(build=False, controller=None, autoSetMacs=False,
                              waitConnected=False, ipBase="172.30.0.0/16")
            self.net.lab = self
            self.realizer = Realizer(self.name, self.run_dir, self.net, self.controller, self._say,
                                     self._save_state)
            self._save_state()
        except BaseException:
            self.stop()
            raise

    def _watch_servers(self) -> None:
        """While the lab runs: every DHCP or DNS server that ends is started again (within a
        second), as the controller is; each restart is said on stderr. A server of the lab whose
        session ends (its ssh gave up on it) is named once."""
        while not self._watching.wait(0.5):
            if self.realizer is None:
                continue
            for line in self.realizer.revive_servers():
                self._say(line)
            spread = self.spread
            if spread is not None:
                for line in spread.check():
                    self._say(f"warning: {line}")

    def _apply(self, target: LabPlan, timeout: float = 30.0, clients: bool = True,
               repair: bool = False, graph: nx.Graph | None = None,
               start: LabPlan | None = None) -> Delta:
        """Carries out the difference between the running plan (or ``start``: what a failed
        change left) and ``target``: this machine's part of it, and through their agents the
        other servers' (which plan ``graph``, the graph of ``target``). Returns this machine's
        part of the difference."""
        assert self.realizer is not None
        old = self.plan if start is None else start
        delta = self._delta(old, target)
        if self.spread is not None:
            self.spread.apply(old, target, delta, timeout, self.graph if graph is None else graph,
                              repair)
        else:
            self.realizer.apply(delta, timeout, repair=repair, clients=clients)
        self.plan = target
        self._save_state()
        return delta

    def _delta(self, old: LabPlan, new: LabPlan) -> Delta:
        """This machine's part of the difference between two plans."""
        if not old.of(Server) and not new.of(Server):
            return diff(old, new)
        return diff(old.part(self.machine), new.part(self.machine))

    def _claim(self) -> None:
        state = rundir.read_state(self.prefix)
        owner = cleanup.owner_running(state)
        other = (state or {}).get("name")
        if self.prefix in _STARTED or (owner and owner != os.getpid()):
            if other and other != self.name:
                raise LabError(f"lab {self.name} shares the prefix {self.prefix} with running lab "
                               f"{other}: rename one of them")
            raise LabError(f"lab {self.name} is already running (pid {owner or os.getpid()}): "
                           "stop it there first (exit at its prompt)")
        _STARTED.add(self.prefix)
        if cleanup.labs_present(self.prefix):
            for line in cleanup.clean_prefix(self.prefix, state):
                self._say(f"stale leftovers of an earlier run of {self.name}: {line}")
        # The group, then the run directory, which appears whole with its record in it (a
        # `wvpclab clean` beside this start never sees a lab's directory without its owner).
        new = self.run_dir.with_name(f".{self.prefix}.{os.getpid()}")
        try:
            self.group = cgroups.Group.create(cgroups.group_path(self.prefix, self.machine))
            shutil.rmtree(new, ignore_errors=True)
            new.mkdir(parents=True, mode=0o700)
            new.chmod(0o700)  # sockets, leases and logs: root's alone
            record = {"name": self.name, "owner_pid": os.getpid(),
                      "owner_start": cleanup.start_ticks(os.getpid()),
                      "cgroup": str(self.group.path) if self.group else None}
            (new / "state.json").write_text(json.dumps(record))
            new.rename(self.run_dir)
        except OSError as err:
            _STARTED.discard(self.prefix)
            if self.group is not None:
                self.group.remove()
                self.group = None
            shutil.rmtree(new, ignore_errors=True)
            shutil.rmtree(self.run_dir, ignore_errors=True)
            raise LabError(f"cannot keep the lab's files in {self.run_dir.parent}: "
                           f"{err.strerror or err} (free some space there)") from None

    def _save_state(self) -> None:
        """Records what a crash would leave (for ``wvpclab clean``); a full disk is said once and
        the lab goes on."""
        try:
            self._write_state()
        except OSError as err:
            if not self._state_unsaved:
                self._say(f"warning: cannot record the lab's state in {self.run_dir} "
                          f"({err.strerror or err}); if this process dies, `wvpclab clean` may "
                          "miss some of it")
            self._state_unsaved = True
        else:
            self._state_unsaved = False

    def _write_state(self) -> None:
        # a copy: the controller's watch records a restart while a change may add nodes
        nodes = dict(self.realizer.nodes) if self.realizer else {}
        shells = [n.pid for n in nodes.values() if n.pid and n.shell]
        netns = [cleanup.netns_inode(pid) for pid in shells]
        rundir.write_state(self.prefix, {
            "name": self.name, "owner_pid": os.getpid(), "nodes": sorted(nodes),
            "owner_start": cleanup.start_ticks(os.getpid()), "shells": shells,
            "netns": [i for i in netns if i is not None],
            "controller_pid": self.controller.pid if self.controller else None,
            "cgroup": str(self.group.path) if self.group else None,
            "bridges": sorted(b.name for b in self.plan.of(Bridge).values()),
            **(self.spread.state() if self.spread is not None else {})})

    def stop(self) -> None:
        """Tears everything down: the difference to nothing (node processes by namespace, bridges,
        interfaces), then the controller; anything a failed start left is swept by name."""
        with signals_deferred():
            web, self.web = self.web, None
            if web is not None:  # first: a change it is making finishes, then nothing new comes
                web.stop()
            with self._lock:
                self._stop()

    def _stop(self) -> None:
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.stop)
        with signals_deferred() as pending:  # a second signal must not cut the teardown short
            self._watching.set()
            watch, self._watch = self._watch, None
            if watch is not None:  # no server revived behind the teardown's back
                watch.join(30)
            self._captures.stop_all()
            if self.controller:
                self.controller._stopping.set()  # no restarts while tearing down
            spread, self.spread = self.spread, None
            if spread is not None:
                spread.end_proxies()
            servers = threading.Thread(target=spread.stop, name="wvpclab-stop-servers") \
                if spread is not None else None
            if servers is not None:  # the servers go at the same time as this machine's part
                servers.start()
            try:
                if self.realizer is not None:
                    self.realizer.apply(self._delta(self.plan, EMPTY))
            except Exception as err:  # noqa: BLE001 - a stop always finishes: what is left goes
                self._say(f"warning: part of the teardown failed ({err}); removing the rest by "
                          "name")
                if self.realizer is not None:
                    self.realizer.remove_every_node()
            finally:
                if servers is not None:
                    servers.join()
                cleanup.remove_bridges_and_links(self.prefix)
                if self.controller:
                    self.controller.stop()
                if self.group is not None:  # whatever a node or a user started that is left
                    if not self.group.remove():  # (it ends them first)
                        self._say(f"warning: could not remove the lab's cgroup {self.group.path}")
                    self.group = None
                shutil.rmtree(self.run_dir, ignore_errors=True)
                shutil.rmtree(rundir.dns_dir(self.prefix), ignore_errors=True)
                _STARTED.discard(self.prefix)
                self.plan = EMPTY
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
        if not self._started:
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
            raise UsageError(f"set_nic: the mode is a string such as 'shared' or 'bridge:eth0', "
                             f"not {spec!r}")
        try:
            mode, target = modes.parse(spec, target)
        except ValueError as err:
            raise UsageError(str(err)) from None
        self._nic(vm, index)  # (a wrong NIC is said before anything is marked as changing)
        what = f"to {modes.label({'mode': mode, 'target': target})}"
        with self._changing(vm, index, what), self._lock:
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
        with self._changing(vm, index, "plugging the cable in" if plugged else
                            "pulling the cable out"), self._lock:
            nic = self._nic(vm, index)  # as the change before this one left it
            if modes.of(nic).attachment_kind() is None:
                raise UsageError(f"{vm} NIC {index} is Not connected: there is nothing to plug "
                                 f"its cable into (give it a mode first: nic {vm} {index} MODE)")
            if nic.get("cable", True) == plugged:
                return False
            self._change(lambda g: modes.set_cable(g, vm, index, plugged), timeout)
        return True

    @contextlib.contextmanager
    def _changing(self, vm: str, index: int, what: str) -> Iterator[None]:
        """Marks a change of a NIC as under way (``changing``) while it waits and runs; the
        newest one's words show; the mark goes with the last of them."""
        key = f"{vm}/{index}"
        with self._graph_lock:
            self._waiting[key] = self._waiting.get(key, 0) + 1
            self.changing[key] = what
        try:
            yield
        finally:
            with self._graph_lock:
                self._waiting[key] -= 1
                if not self._waiting[key]:
                    del self._waiting[key]
                    self.changing.pop(key, None)

    def set_link(self, link: Any, up: bool) -> None:
        """Takes a link (of ``lab.net.links``) down or up: a VM NIC's cable as ``cable`` does (the
        lab keeps it so); another veth's switch end, both ends of a NAT transit link, or both ports
        of a patch cable, as a broken wire would be (until the link is set up again)."""
        if isinstance(link, NicCable):
            self.cable(link.intf1.node.name, link.intf1.index, up)
            return
        state = "up" if up else "down"
        if isinstance(link, PatchCable):
            for intf in (link.intf1, link.intf2):
                intf.node.dpctl("mod-port", intf.name, state)
            return
        if isinstance(link, TransitLink):
            for intf in (link.intf1, link.intf2):
                intf.node.cmd(f"ip link set dev {intf.name} {state}")
            return
        realize.ip_batch([f"link set {link.intf2.name} {state}"])

    def _change(self, edit: Any, timeout: float) -> None:
        """Plans the graph as ``edit`` leaves it, carries out the difference, then keeps the edit.
        All or nothing: signals wait until the change is done (then arrive), and a change that
        fails part way is undone, the lab's record and the network as they were before."""
        with self._lock:
            self._change_now(edit, timeout)

    def _change_now(self, edit: Any, timeout: float) -> None:
        if not self._started:
            raise LabError(f"lab {self.name} is not running")
        assert self.realizer is not None
        self._room_for_a_change()
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
                    self._save_state()
                    raise LabError(f"{err}; undoing the change failed too ({again}): stop the lab "
                                   "and start it again") from err
                raise LabError(f"{err} (nothing was changed)") from err
            with self._graph_lock:
                edit(self.graph)
                self.generation += 1
                self._graph_lock.notify_all()

    def _room_for_a_change(self) -> None:
        """Refuses a change, before it starts, that could not be made whole and undone: one that
        would find no room for the lab's files, or no file descriptor free in this process (a
        client of the web page, say, holding them)."""
        try:
            disk = os.statvfs(self.run_dir)
        except OSError:
            disk = None
        if disk is not None and disk.f_bavail * disk.f_frsize < ROOM_DISK:
            raise LabError(f"no room for the change: {self.run_dir.parent} has "
                           f"{disk.f_bavail * disk.f_frsize // 1024} KiB free, and a change "
                           "writes the lab's files there (free some space there); nothing was "
                           "changed")
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if limit != resource.RLIM_INFINITY:
            used = len(os.listdir("/proc/self/fd"))
            if limit - used < ROOM_FILES:
                raise LabError(f"no room for the change: this lab's process has {used} of its "
                               f"{limit} files open, and a change needs {ROOM_FILES} free; "
                               "nothing was changed")

    def _nic(self, vm: str, index: int) -> dict:
        self.vm(vm)
        if isinstance(index, bool) or not isinstance(index, int):
            raise UsageError(f"{vm}: NIC number {index!r} is not 0..3")
        data = self.graph.nodes.get(f"{vm}/{index}")
        if data is None or data.get("kind") != "nic":
            raise UsageError(f"{vm} has no NIC {index}")
        return data

    # -- captures ----------------------------------------------------------------------------------
    def capture(self, vm: str, index: int, path: str | Path | None = None) -> Path:
        """Starts a pcap of a NIC (both directions, as the guest sees them); returns the file."""
        self._nic(vm, index)
        with self._lock:
            return self._captures.start(self.node(vm), vm, index, path)

    def stop_captures(self) -> list[tuple[str, Path]]:
        """Ends every capture (tcpdump flushes its file); returns (NIC, file) pairs."""
        with self._lock:
            return self._captures.stop_all()

    def stop_capture(self, vm: str, index: int) -> Path:
        """Ends the capture of one NIC; returns its file."""
        with self._lock:
            return self._captures.stop(vm, index)

    def captures_running(self) -> list[tuple[str, int]]:
        """The NICs being captured, as (VM, index)."""
        return sorted(self._captures.running.copy())

    def wait_change(self, since: int, timeout: float) -> int:
        """Waits until the lab's graph has changed since ``generation`` was ``since`` (at most
        ``timeout`` seconds); returns the generation now."""
        with self._graph_lock:
            self._graph_lock.wait_for(lambda: self.generation != since, timeout)
            return self.generation

    def graph_snapshot(self) -> nx.Graph:
        """A copy of the lab's graph as it is now (safe from another thread while a change
        runs: the change edits ``graph`` only at its end, under the same lock)."""
        with self._graph_lock:
            return self.graph.copy()

    # -- access -----------------------------------------------------------------------------------
    @property
    def nodes(self) -> dict[str, Node]:
        """Every node of the lab, those on other servers too (their ``cmd`` runs there)."""
        nodes: dict[str, Node] = dict(self.realizer.nodes) if self.realizer else {}
        if self.spread is not None:
            nodes.update(self.spread.proxies)
        return nodes

    def node(self, name: str) -> Node:
        """Any node by its topology name (VMs, PCs, servers, gateways, NAT engines)."""
        try:
            return self.nodes[name]
        except KeyError:
            raise UsageError(f"no node {name!r} in lab {self.name} (nodes: "
                             f"{', '.join(sorted(self.nodes)) or 'none'})") from None

    def vm(self, name: str) -> VirtualPC:
        node = self.node(name)
        if not isinstance(node, VirtualPC):
            raise UsageError(f"{name!r} is not a VM")
        return node

    def pc(self, name: str) -> PhysicalPC:
        node = self.node(name)
        if not isinstance(node, PhysicalPC):
            raise UsageError(f"{name!r} is not a PC")
        return node

    @property
    def bridges(self) -> dict[str, Bridge]:
        """Every switch of the lab by key (``LAN``, ``PC/ADAPTER``, ``PC/NAME``, ``ap:PC/ADAPTER``;
        a shared NIC has none: its cable goes straight into its NAT engine)."""
        return dict(self.plan.of(Bridge))

    @property
    def cables(self) -> dict[tuple[str, int], str]:
        """Each guest NIC's root-namespace end (its switch port), by (VM, index); a shared NIC's
        cable goes straight into its NAT engine and has none."""
        return {(v.node, int(v.dev[3:])): v.root for v in self.plan.of(Veth).values()
                if isinstance(self.nodes.get(v.node), VirtualPC) and not v.into}

    @property
    def nats(self) -> dict[tuple[str, int], Nat]:
        return dict(self.plan.of(Nat))

    @property
    def responders(self) -> dict[str, Responder]:
        return dict(self.realizer.responders) if self.realizer else {}

    @property
    def services(self) -> dict[str, subprocess.Popen]:
        return dict(self.realizer.services) if self.realizer else {}

    @property
    def clients(self) -> dict[tuple[str, int], Client]:
        """DHCP clients by (VM, NIC index) or (PC, adapter index)."""
        if not self.realizer:
            return {}
        running = self.realizer.clients.copy()  # (a change in another thread may edit it)
        return {(c.node, c.index): running[c.key]
                for c in self.plan.of(DhcpClient).values() if c.key in running}

    def bridge_of(self, pc: str, network: str) -> Bridge:
        """The bridge of internal network ``network`` on ``pc``."""
        try:
            return self.bridges[f"{pc}/{network}"]
        except KeyError:
            raise UsageError(f"no internal network {network!r} on {pc}") from None

    def cable_end(self, vm: str, index: int) -> str:
        """The root-namespace end of a NIC's veth (the switch port)."""
        try:
            return self.cables[(vm, index)]
        except KeyError:
            veth = self.plan.get(Veth, (vm, f"eth{index}"))
            if veth is not None and veth.into:
                raise UsageError(f"{vm} NIC {index}'s cable goes straight into {veth.into[0]} "
                                 f"(as {veth.into[1]}), not into a switch") from None
            raise UsageError(f"{vm} has no NIC {index}") from None

    def responder(self, network: str) -> Responder:
        """The DHCP server of a network (``PC/NAME``, a LAN, ``nat:VM/N``)."""
        try:
            return self.responders[network]
        except KeyError:
            raise UsageError(f"no DHCP responder for {network!r} (networks with one: "
                             f"{', '.join(sorted(self.responders)) or 'none'})") from None

    def leases(self, network: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """The lease tables of one network (``PC/NAME``) or of every network with a responder
        (those on other servers asked of their agents)."""
        asked_here = network is not None and network in self.responders
        there = self.spread.leases() if self.spread is not None and not asked_here else {}
        if network is not None and network in there:
            return {network: there[network]}
        if network is not None and network not in self.responders:
            raise UsageError(f"no DHCP responder for {network!r} (networks with one: "
                             f"{', '.join(sorted([*self.responders, *there])) or 'none'})")
        keys = [network] if network else sorted(self.responders)
        tables = {key: self.responder(key).leases() for key in keys}
        if network is None:
            tables.update(there)
        return dict(sorted(tables.items()))

    def dhcp_client(self, vm: str, index: int) -> Client:
        """The DHCP client of a guest NIC (NICs with a static address have none)."""
        try:
            return self.clients[(vm, index)]
        except KeyError:
            raise UsageError(f"{vm} eth{index} runs no DHCP client (static address or no such "
                             "NIC)") from None

    def expects_lease(self, node: str, index: int) -> bool:
        """True when NIC ``index`` of VM ``node`` (or adapter ``index`` of PC ``node``) uses DHCP on
        a network whose DHCP server the lab runs."""
        return any(c.node == node and c.index == index and c.lease_net is not None
                   for c in self.plan.of(DhcpClient).values())

    def network_of(self, vm: str, index: int) -> ipaddress.IPv4Network | None:
        """The subnet a guest NIC's address comes from in its current mode (None: none)."""
        nic = self._nic(vm, index)
        net = modes.of(nic).network(self.graph, nic)
        return ipaddress.IPv4Network(net) if net else None

    def filter_rules(self, key: str) -> list[str]:
        """The rules of a filter switch (``PC/ADAPTER``) or internal switch (``PC/NAME``) in words,
        from the same code that builds its flows."""
        br = self.plan.get(Bridge, key)
        if br is None or not br.controlled:
            have = sorted(k for k, b in self.plan.of(Bridge).items() if b.controlled)
            raise UsageError(f"no filter or internal switch {key!r} (switches: "
                             f"{', '.join(have) or 'none'})")
        ports = tuple(Port(p["port"], p["role"], p["mac"], p["allow_spoofing"])
                      for p in self.plan.registration(key))
        learned: tuple = ()
        if br.kind == "wireless" and self.controller is not None:
            # what the controller learned from the guests' ARP and DHCP (it lives there only)
            try:
                entries = self.controller.dump(br.dpid).get("learned", [])
            except ControllerError as err:
                raise LabError(f"switch {br.name}: {err}") from None
            learned = tuple(Learned(e["ip"], e["port"], e["mac"], e["how"]) for e in entries)
        switch = Switch(br.dpid, br.kind, ports, br.steering, learned=learned,
                        dhcp_guard=br.guard)
        labels = {p.number: p.label for p in self.plan.ports_of(key)}
        return explain(flows_for(switch), labels, learned)

    def nat_rules(self, vm: str, index: int) -> dict[str, str]:
        """The firewall and NAT rules in force for a shared NIC: its NAT engine's and its PC's, as
        ``iptables-save`` prints them in their namespaces; the engine's then its ingress filter on
        the guest's cable, as ``nft`` lists it."""
        nat = self.plan.get(Nat, (vm, index))
        if nat is None:
            raise UsageError(f"{vm} NIC {index} is not in shared networking (NAT) mode")
        ingress = {nat.node: "; nft list table netdev wvpclab 2>&1"}
        return {who: self.node(who).cmd(f"iptables-save | grep -v '^#'{ingress.get(who, '')}")
                .replace("\r\n", "\n") for who in (nat.node, nat.pc)}


__all__ = ["Lab", "LabError", "harden_root_interface", "preflight"]
