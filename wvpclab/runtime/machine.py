"""One machine's part of a lab: its claim on the lab's name here (the prefix, the run directory
and the cgroup), its record (``state.json``, what ``wvpclab clean`` reads after a crash), its
controller, its Mininet network and its realizer.

The lab runs the part on the machine where the user runs it (``wvpclab.runtime.lab``); on each
other server of a lab spread over several, ``wvpclab agent`` runs that server's part
(``wvpclab.cluster.agent``). Both plan the whole lab and carry out their own part of it.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from mininet.net import Mininet

from wvpclab.errors import LabError
from wvpclab.model.items import Bridge, Server
from wvpclab.model.plan import EMPTY, Delta, LabPlan, diff
from wvpclab.runtime import cgroups, cleanup, rundir
from wvpclab.runtime.controller import Controller
from wvpclab.runtime.net import LabNet, PatchCable, TransitLink
from wvpclab.runtime.realize import Realizer, ip_batch

#: Prefixes of the parts this process has claimed and not stopped.
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


class Machine:
    """This machine's part of lab ``name``: ``server`` names it in a lab spread over several
    servers (None: the machine the lab runs on). Nothing is claimed until ``open``."""

    def __init__(self, name: str, server: str | None = None, quiet: bool = False,
                 annex: Callable[[], dict[str, Any]] | None = None) -> None:
        """``annex``: more for the record (the other servers and the ssh sessions to them)."""
        self.name = name
        self.server = server
        self.quiet = quiet
        self.annex = annex
        self.prefix = rundir.prefix_for(name)
        self.run_dir = rundir.run_dir(self.prefix)
        #: The plan in force: the whole lab's, of which this machine carries out its part.
        self.plan: LabPlan = EMPTY
        self.net: LabNet | None = None
        self.controller: Controller | None = None
        self.realizer: Realizer | None = None
        #: The lab's cgroup here, which every process it starts joins (None without cgroup2).
        self.group: cgroups.Group | None = None
        #: True from the claim until the part is torn down.
        self.running = False
        self._unsaved = False
        self._watching = threading.Event()  # set: the watch ends
        self._watch: threading.Thread | None = None

    def say(self, message: str) -> None:
        """One line on stderr (unless quiet). Nobody reading it any more (a closed terminal, a
        dead pipe) is no reason to stop: the lab goes on, and a stop finishes."""
        if not self.quiet:
            try:
                print(f"wvpclab: {message}", file=sys.stderr, flush=True)
            except (OSError, ValueError):
                pass

    # -- the claim --------------------------------------------------------------------------------
    def open(self, lab: Any = None) -> None:
        """Claims the lab's name on this machine and starts its controller, its Mininet network
        and its realizer (nothing of the lab is built yet). A failure leaves nothing. ``lab``:
        what the network's commands (ping, link) act through; this part where None."""
        self._claim()
        self.running = True
        atexit.register(self.stop)  # a part left running by a script is torn down at exit
        try:
            self.controller = Controller(self.run_dir, rundir.openflow_socket(self.prefix),
                                         group=self.group, on_spawn=self.save_state)
            self.controller.start()
            Mininet.inited = True  # skip Mininet.init(): it raises limits and sysctls machine-wide
            self.net = LabNet(build=False, controller=None, autoSetMacs=False,
                              waitConnected=False, ipBase="172.30.0.0/16")
            self.net.lab = self if lab is None else lab
            self.realizer = Realizer(self.name, self.run_dir, self.net, self.controller, self.say,
                                     self.save_state)
            self.save_state()
        except BaseException:
            self.stop()
            raise

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
                self.say(f"stale leftovers of an earlier run of {self.name}: {line}")
        # The group, then the run directory, which appears whole with its record in it (a
        # `wvpclab clean` beside this start never sees a lab's directory without its owner).
        new = self.run_dir.with_name(f".{self.prefix}.{os.getpid()}")
        try:
            self.group = cgroups.Group.create(cgroups.group_path(self.prefix, self.server))
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

    # -- the record -------------------------------------------------------------------------------
    def save_state(self) -> None:
        """Records what a crash would leave (for ``wvpclab clean``); a full disk is said once and
        the lab goes on."""
        try:
            self._write_state()
        except OSError as err:
            if not self._unsaved:
                self.say(f"warning: cannot record the lab's state in {self.run_dir} "
                         f"({err.strerror or err}); if this process dies, `wvpclab clean` may "
                         "miss some of it")
            self._unsaved = True
        else:
            self._unsaved = False

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
            **(self.annex() if self.annex is not None else {})})

    # -- changes ----------------------------------------------------------------------------------
    def delta(self, old: LabPlan, new: LabPlan) -> Delta:
        """This machine's part of the difference between two plans."""
        if not old.of(Server) and not new.of(Server):
            return diff(old, new)
        return diff(old.part(self.server), new.part(self.server))

    def apply(self, target: LabPlan, timeout: float = 30.0, start: LabPlan | None = None,
              repair: bool = False, clients: bool = True) -> Delta:
        """Carries out this machine's part of the difference between the plan in force (or
        ``start``: what a failed change left) and ``target``, which is then in force; with
        ``repair``, undoing a change that failed part way. Returns that part."""
        if self.realizer is None:
            raise LabError(f"lab {self.name} is not running here")
        delta = self.delta(self.plan if start is None else start, target)
        self.realizer.apply(delta, timeout, repair=repair, clients=clients)
        self.plan = target
        self.save_state()
        return delta

    def start_clients(self, delta: Delta, timeout: float = 30.0) -> None:
        """Starts the DHCP clients that ``delta`` (applied without them) adds."""
        if self.realizer is not None:
            self.realizer.start_clients(delta, timeout)

    def room_for_a_change(self) -> None:
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

    def leases(self) -> dict[str, list[dict[str, Any]]]:
        """The lease tables of this machine's DHCP servers, by network."""
        responders = self.realizer.responders if self.realizer else {}
        return {key: responders[key].leases() for key in sorted(responders)}

    def watch(self, also: Callable[[], list[str]] | None = None) -> None:
        """Until the part stops: every DHCP or DNS server that ends is started again (within a
        second), as the controller is; each restart is said on stderr, as what ``also`` (asked as
        often) returns."""
        self._watching.clear()
        self._watch = threading.Thread(target=self._watch_servers, args=(also,),
                                       name="wvpclab-dhcp-watch", daemon=True)
        self._watch.start()

    def _watch_servers(self, also: Callable[[], list[str]] | None) -> None:
        while not self._watching.wait(0.5):
            if self.realizer is None:
                continue
            for line in [*self.realizer.revive_servers(), *(also() if also else [])]:
                self.say(line)

    def set_link(self, link: Any, up: bool) -> None:
        """Takes a link of the network down or up as a broken wire would be: a veth's switch end,
        both ends of a NAT transit link, or both ports of a patch cable."""
        state = "up" if up else "down"
        if isinstance(link, PatchCable):
            for intf in (link.intf1, link.intf2):
                intf.node.dpctl("mod-port", intf.name, state)
        elif isinstance(link, TransitLink):
            for intf in (link.intf1, link.intf2):
                intf.node.cmd(f"ip link set dev {intf.name} {state}")
        else:
            ip_batch([f"link set {link.intf2.name} {state}"])

    # -- the teardown -----------------------------------------------------------------------------
    def stop(self, beside: Callable[[], None] | None = None) -> None:
        """Tears the part down: the difference to nothing (node processes by namespace, bridges,
        interfaces), then the controller, the cgroup and the run directory; anything a failed
        start left is swept by name. ``beside`` (the other servers' teardown) runs meanwhile in a
        thread, and ends before the sweep. It always finishes: a step that fails is said."""
        if not self.running:
            return
        self.running = False
        atexit.unregister(self.stop)
        self._watching.set()
        watch, self._watch = self._watch, None
        if watch is not None:  # no server revived behind the teardown's back
            watch.join(30)
        if self.controller:
            self.controller.hold()  # no restarts while tearing down
        others = threading.Thread(target=beside, name="wvpclab-stop-servers") if beside else None
        if others is not None:  # the servers go at the same time as this machine's part
            others.start()
        try:
            if self.realizer is not None:
                self.realizer.apply(self.delta(self.plan, EMPTY))
        except Exception as err:  # noqa: BLE001 - a stop always finishes: what is left goes
            self.say(f"warning: part of the teardown failed ({err}); removing the rest by name")
            if self.realizer is not None:
                self.realizer.remove_every_node()
        finally:
            if others is not None:
                others.join()
            cleanup.remove_bridges_and_links(self.prefix)
            if self.controller:
                self.controller.stop()
            if self.group is not None:  # whatever a node or a user started that is left
                if not self.group.remove():  # (it ends them first)
                    self.say(f"warning: could not remove the lab's cgroup {self.group.path}")
                self.group = None
            shutil.rmtree(self.run_dir, ignore_errors=True)
            shutil.rmtree(rundir.dns_dir(self.prefix), ignore_errors=True)
            _STARTED.discard(self.prefix)
            self.plan = EMPTY


__all__ = ["ROOM_DISK", "ROOM_FILES", "Machine", "preflight"]
