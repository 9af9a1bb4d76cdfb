"""A lab over several servers, from the machine that runs it: each server's agent (``wvpclab
agent`` over ssh), the Ethernet tunnels that carry the LAN uplinks between servers, and a Mininet
node here for every node there (its ``cmd`` and ``popen`` run there).

Start: every server's agent answers (or the one that does not is named) before anything is built;
then the uplinks' tunnels, then every machine builds its part at the same time, then the DHCP
clients start everywhere (their servers may be on another machine). Stop: every machine tears its
part down at the same time, then the tunnels close. A server lost on the way is named; the others
still stop."""

from __future__ import annotations

import concurrent.futures
import json
import os
import select
import shlex
import signal
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from mininet.node import Host as MininetHost

from wvpclab.cluster.remote import Remote, ServerError, code_version
from wvpclab.errors import LabError
from wvpclab.model import topology
from wvpclab.model.items import Bridge, Port, Server, Uplink, Veth
from wvpclab.model.plan import Delta, LabPlan
from wvpclab.runtime import ovs
from wvpclab.runtime.machine import Machine
from wvpclab.runtime.net import SWITCHES, LabSwitch, UplinkTunnel
from wvpclab.runtime.nic import MTU, LabIntf
from wvpclab.runtime.nodes import ROLES, cmd_apart, shell_is_mine
from wvpclab.runtime.procs import wait_ready, wait_until
from wvpclab.runtime.realize import (
    ROOT_SYSCTLS,
    harden_root_interface,
    ip_batch,
    port_intf,
    show_switches,
    show_veths,
)

#: How long an agent may take to start, and to build or tear down its part.
START_TIMEOUT = 60.0
APPLY_TIMEOUT = 600.0
STOP_TIMEOUT = 120.0
#: How long an uplink's tunnel may take to open.
TUNNEL_TIMEOUT = 20.0


class AgentClient:
    """One server's agent, seen from here: requests and their replies, one at a time."""

    def __init__(self, remote: Remote, say: Callable[[str], None]) -> None:
        self.remote = remote
        self.say = say
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self._buffer = b""
        self.lost: str | None = None

    @property
    def name(self) -> str:
        return self.remote.name

    def connect(self, graph: dict, quiet: bool) -> None:
        self.proc = subprocess.Popen(self.remote.argv("wvpclab agent"), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self._stderr: list[str] = []
        self._speaking = False  # before the agent answers, ssh's words go into the error only
        self._relayer = threading.Thread(target=self._relay, name=f"wvpclab-agent-{self.name}",
                                         daemon=True)
        self._relayer.start()
        try:
            reply = self.request("start", START_TIMEOUT, graph=graph, machine=self.name,
                                 quiet=quiet)
        except ServerError:
            code = self.proc.poll()
            server = self.remote.server
            if code == 255:  # ssh's own failure: never reached
                raise ServerError(f"server {self.name} ({server.host}) cannot be reached over "
                                  f"ssh as {server.user}: {self._last_words()}") from None
            if code == 127:
                raise ServerError(f"server {self.name} ({server.host}) has no `wvpclab` on "
                                  f"{server.user}'s PATH: put this checkout there and run "
                                  "scripts/install.sh") from None
            raise
        self._speaking = True
        theirs, ours = reply.get("version"), code_version()
        if theirs != ours:  # both sides plan the lab: they must run the same code
            self.close()
            raise ServerError(f"server {self.name} runs wvpclab {theirs}, this machine {ours}: "
                              "install this checkout there (`wvpclab servers FILE` checks it)")

    def _last_words(self) -> str:
        """The last of what the session said on stderr (once it has ended)."""
        self._relayer.join(2)
        words = " / ".join(line for line in self._stderr[-2:] if line) or "(nothing said)"
        return words.rstrip(".")

    def _relay(self) -> None:
        """The agent's messages (its stderr), said here with the server's name."""
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._stderr = (self._stderr + [line])[-20:]
            if line and self._speaking:
                self.say(f"[{self.name}] {line.removeprefix('wvpclab: ')}")

    def request(self, op: str, wait: float, **fields: Any) -> dict[str, Any]:
        """Sends a request and waits for its reply; ServerError naming the server when it fails,
        the connection is gone or no reply comes within ``wait`` seconds."""
        with self.lock:
            if self.lost:
                raise ServerError(self.lost)
            assert self.proc is not None and self.proc.stdin is not None
            try:
                self.proc.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
                self.proc.stdin.flush()
            except OSError:
                self._lose("the connection closed")
            line = self._readline(wait, op)
        try:
            reply = json.loads(line)
        except ValueError:
            raise ServerError(f"server {self.name}: its agent answered {line[:200]!r}") from None
        if not reply.get("ok"):
            raise ServerError(f"server {self.name}: {reply.get('error', 'failed')}")
        return reply

    def _readline(self, timeout: float, op: str) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self._lose(f"no answer to {op!r} in {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(5)
                    self._lose(f"the connection closed (ssh exit {self.proc.returncode}: "
                               f"{self._last_words()})")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode(errors="replace")

    def _lose(self, why: str) -> None:
        self.lost = f"server {self.name} ({self.remote.server.host}) was lost: {why}"
        raise ServerError(self.lost)

    def close(self) -> None:
        """Asks the agent to tear its part down and waits (bounded); then ends the session."""
        try:
            if self.proc is not None and self.proc.poll() is None and not self.lost:
                self.request("stop", STOP_TIMEOUT)
        except ServerError as err:
            self.say(f"warning: {err}")
        finally:
            self.end()

    def end(self) -> None:
        """Ends the session (bounded), without a word to the agent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for stream in (proc.stdin,):
            try:
                stream.close()
            except OSError:
                pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def tap_number(dev: str, taken: set[int]) -> int:
    """The tunnel device number for an uplink end: from its name (so each lab's ends differ),
    the next free one where ``taken``."""
    number = 1000 + zlib.crc32(dev.encode()) % 900_000
    while number in taken:
        number += 1
    return number


class Tunnel:
    """An Ethernet tunnel between this machine and a server (``ssh -w``), whose ends are renamed
    ``local_dev`` here and ``remote_dev`` there, hardened, MTU 1500 and up."""

    def __init__(self, remote: Remote, local_dev: str, remote_dev: str) -> None:
        self.remote = remote
        self.local_dev = local_dev
        self.remote_dev = remote_dev
        self.proc: subprocess.Popen | None = None

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []

    def open(self, taken: set[int]) -> None:
        local = tap_number(self.local_dev, taken)
        taken.add(local)
        while os.path.exists(f"/sys/class/net/tap{local}"):
            local = tap_number(self.local_dev, taken | {local})
            taken.add(local)
        there = tap_number(self.remote_dev, set())
        harden = " ".join(f"net.{family}.conf.{self.remote_dev}.{key}={value}"
                          for family, key, value in ROOT_SYSCTLS)
        script = (f"for i in $(seq 400); do [ -e /sys/class/net/tap{there} ] && break; "
                  f"sleep 0.05; done; ip link set tap{there} name {self.remote_dev} && "
                  f"sysctl -qw {harden} && ip link set {self.remote_dev} mtu {MTU} up && "
                  "echo tunnel-up && exec cat >/dev/null")  # until this end's ssh goes
        self.proc = subprocess.Popen(
            self.remote.argv(script, "-o", "Tunnel=ethernet", "-w", f"{local}:{there}",
                             "-o", "ExitOnForwardFailure=yes"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)  # its stdin closes when the lab's process ends, however
        try:
            wait_ready(self.proc, "tunnel-up", TUNNEL_TIMEOUT, "the tunnel")
        except LabError:
            err = ""
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace").strip() \
                    if self.proc.stderr else ""
            self.close()
            raise ServerError(f"server {self.remote.name}: the uplink {self.local_dev} <-> "
                              f"{self.remote_dev} did not open: {err or 'no answer'}")
        if not wait_until(lambda: os.path.exists(f"/sys/class/net/tap{local}"), 10):
            self.close()
            raise ServerError(f"the uplink to {self.remote.name}: tap{local} never appeared")
        ip_batch([f"link set tap{local} name {self.local_dev}"])
        harden_root_interface(self.local_dev)
        ip_batch([f"link set {self.local_dev} mtu {MTU} up"])

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()
        ip_batch([f"link del {self.local_dev}"], force=True)  # (gone with ssh, normally)


def uplink_tunnel(uplink: Uplink, remotes: dict[str, Remote], prefix: str,
                  number: int) -> Tunnel | Relay:
    """What carries an uplink: one tunnel if it has an end here, else two joined here."""
    if uplink.a is None or uplink.b is None:
        here_a = uplink.a is None
        server = uplink.b if here_a else uplink.a
        assert server is not None
        return Tunnel(remotes[server], uplink.a_dev if here_a else uplink.b_dev,
                      uplink.b_dev if here_a else uplink.a_dev)
    return Relay(uplink, remotes[uplink.a], remotes[uplink.b], f"{prefix}-r{number}")


class Relay:
    """An uplink between two servers, neither of them this machine: a tunnel to each, joined
    here by a two-port learning switch (``PREFIX-rN``, userspace datapath) that is the wire
    between them. It needs no ssh between the servers, only from here (as everything else)."""

    def __init__(self, uplink: Uplink, a: Remote, b: Remote, bridge: str) -> None:
        self.bridge = bridge
        self.tunnels = (Tunnel(a, f"{bridge}a", uplink.a_dev), Tunnel(b, f"{bridge}b",
                                                                      uplink.b_dev))

    @property
    def pids(self) -> list[int]:
        return [pid for t in self.tunnels for pid in t.pids]

    def open(self, taken: set[int]) -> None:
        try:
            for tunnel in self.tunnels:
                tunnel.open(taken)
            ends = [t.local_dev for t in self.tunnels]
            ovs.vsctl("add-br", self.bridge, "--", "set", "Bridge", self.bridge,
                      "datapath_type=netdev", "fail_mode=standalone",
                      "other-config:disable-in-band=true", "--", "add-port", self.bridge,
                      ends[0], "--", "add-port", self.bridge, ends[1])
            if not wait_until(lambda: os.path.exists(f"/sys/class/net/{self.bridge}"), 10):
                raise LabError(f"Open vSwitch did not create {self.bridge} in 10 s")
            harden_root_interface(self.bridge)  # its own port stays down
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        ovs.vsctl("--if-exists", "del-br", self.bridge, check=False)
        for tunnel in self.tunnels:
            tunnel.close()


class RemoteNode(MininetHost):
    """A node that runs on another server, as Mininet sees it here: its shell is bash in the
    node's namespaces there (``mnexec -a``), over ssh; ``cmd`` and ``popen`` run there. Made
    with the class of its role (``remote_node``), so a remote VM is a ``VirtualPC`` too."""

    def __init__(self, name: str, remote: Remote, remote_pid: int, role: str,
                 pc: str | None = None) -> None:
        self.remote = remote
        self.remote_pid = remote_pid
        self.role = role
        self.server = remote.name
        super().__init__(name, pc=pc, inNamespace=False)

    def startShell(self, mnopts: Any = None) -> None:
        """The shell opens on first use (``cmd``, ``sendCmd``): an ssh session per node only for
        the nodes someone talks to, not one per node of a big lab."""
        self.pid = self.remote_pid

    def _open_shell(self) -> None:
        self._shell_starting = True
        try:
            super().startShell(mnopts=f"-a{self.remote_pid}")
        finally:
            self._shell_starting = False
        self.pid = self.remote_pid

    def sendCmd(self, *args: Any, **kwargs: Any) -> None:
        if self.shell is None:
            self._open_shell()
        super().sendCmd(*args, **kwargs)

    def cmd(self, *args: Any, **kwargs: Any) -> str:
        if not shell_is_mine():  # (a change from the web page: the shell may be the CLI's)
            return cmd_apart(self, args)
        if self.shell is None:
            self._open_shell()
        return super().cmd(*args, **kwargs)

    def sendInt(self, intr: str = chr(3)) -> None:
        if self.shell is not None:  # (no shell yet: nothing runs to interrupt)
            super().sendInt(intr)

    def _popen(self, cmd: list[str], **params: Any) -> subprocess.Popen:
        """Runs ``cmd`` there over ssh (the shell with a terminal there, as Mininet's needs)."""
        options = ("-tt",) if getattr(self, "_shell_starting", False) else ()
        params.setdefault("start_new_session", True)
        return subprocess.Popen(self.remote.argv(shlex.join(cmd), *options), **params)

    def terminate(self) -> None:
        """Ends the shell here (and with it the one there); the node itself is its agent's."""
        if self.shell and self.shell.poll() is None:
            try:
                os.killpg(self.shell.pid, signal.SIGHUP)
            except ProcessLookupError:
                pass
        self.cleanup()

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {self.name} on {self.server} pid={self.remote_pid}>"


class RemoteSwitch(LabSwitch):
    """A switch on another server, as Mininet sees it here: its commands (``dpctl``, a port's
    status) run there."""

    def __init__(self, name: str, remote: Remote, **params: Any) -> None:
        self.remote = remote
        self.server = remote.name
        super().__init__(name, **params)

    def pexec(self, *args: Any, **kwargs: Any) -> tuple[str, str, int]:
        line = " ".join(str(a) for a in args)
        try:
            res = self.remote.run(line, timeout=30, check=False)
        except ServerError as err:
            return "", str(err), 255
        return res.stdout, res.stderr, res.returncode

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f" on {self.server}>"


_REMOTE_CLASSES: dict[str, type] = {}
_REMOTE_SWITCHES: dict[str, type] = {}


def remote_switch(b: Any, remote: Remote) -> RemoteSwitch:
    """The switch here for bridge ``b`` there."""
    cls = _REMOTE_SWITCHES.get(b.kind)
    if cls is None:
        base = SWITCHES[b.kind]
        cls = _REMOTE_SWITCHES[b.kind] = type(f"Remote{base.__name__}", (RemoteSwitch, base), {})
    return cls(b.name, remote, key=b.key, dpid=b.dpid,
               fail_mode="secure" if b.controlled else "standalone")


def remote_node(name: str, remote: Remote, remote_pid: int, role: str,
                pc: str | None = None) -> RemoteNode:
    """The node here for node ``name`` of role ``role`` there."""
    cls = _REMOTE_CLASSES.get(role)
    if cls is None:
        base = ROLES[role]
        cls = _REMOTE_CLASSES[role] = type(f"Remote{base.__name__}", (RemoteNode, base), {})
    return cls(name, remote, remote_pid, role, pc)


class Spread:
    """The other servers of a lab: their agents, the tunnels to them, their nodes' proxies. It
    drives them beside ``here``, this machine's part of the lab (whose network shows them)."""

    def __init__(self, here: Machine, target: LabPlan) -> None:
        self.here = here
        servers = target.of(Server)
        # (each ssh session joins the lab's cgroup here, once it has one)
        self.remotes = {name: Remote(server, here) for name, server in sorted(servers.items())}
        self.agents: dict[str, AgentClient] = {}
        #: Each server's switches as Mininet sees them here, by bridge key.
        self.views: dict[str, dict[str, RemoteSwitch]] = {}
        self.tunnels: dict[str, Tunnel | Relay] = {}
        self.proxies: dict[str, RemoteNode] = {}
        self._taps: set[int] = set()

    def adopt(self, group: Any) -> None:
        """Moves the agents' ssh sessions, started before the lab had its cgroup, into it."""
        for agent in self.agents.values():
            if agent.proc is not None:
                group.adopt(agent.proc.pid)

    def connect(self, graph: Any) -> None:
        """Starts every server's agent at once for the lab's ``graph``; if one cannot be reached,
        the others stop and LabError names it (nothing is built)."""
        data = topology.to_node_link(graph)
        clients = {name: AgentClient(remote, self.here.say)
                   for name, remote in self.remotes.items()}
        errors: dict[str, Exception] = {}

        def one(name: str) -> None:
            try:
                clients[name].connect(data, self.here.quiet)
            except ServerError as err:
                errors[name] = err

        try:
            _each(one, list(clients))
        except BaseException:  # interrupted (Ctrl-C): whatever answered goes again
            _each(lambda name: clients[name].close(), list(clients))
            raise
        if errors:
            _each(lambda name: clients[name].close(), [n for n in clients if n not in errors])
            for name in errors:
                clients[name].end()
            first = errors[min(errors)]
            more = f" (and {', '.join(sorted(errors)[1:])})" if len(errors) > 1 else ""
            raise LabError(f"{first}{more}; nothing was built")
        self.agents = clients

    def apply(self, old: LabPlan, new: LabPlan, timeout: float, graph: Any,
              repair: bool = False) -> None:
        """Carries out a change on every machine (see the module's docstring), from ``old`` to
        ``new``: ``graph`` is the one the servers plan theirs from; with ``repair``, undoing a
        change that failed part way on one of them."""
        relays = sorted(k for k, u in new.of(Uplink).items() if u.a and u.b)
        for key, u in new.of(Uplink).items():
            if key not in self.tunnels:
                tunnel = uplink_tunnel(u, self.remotes, self.here.prefix,
                                       relays.index(key) if key in relays else 0)
                tunnel.open(self._taps)
                self.tunnels[key] = tunnel
        data = topology.to_node_link(graph)
        mine: list[Delta] = []  # this machine's part of the difference, once carried out
        errors = self._everywhere(lambda a: a.request("apply", APPLY_TIMEOUT, graph=data,
                                                      timeout=timeout, repair=repair),
                                  lambda: mine.append(self.here.apply(
                                      new, timeout, start=old, repair=repair, clients=False)))
        self._sync_proxies(errors)
        self._show(new)
        if errors:
            raise errors[0]
        errors = self._everywhere(lambda a: a.request("clients", APPLY_TIMEOUT, timeout=timeout),
                                  lambda: self.here.start_clients(mine[0], timeout))
        if errors:
            raise errors[0]
        for key in [k for k in self.tunnels if k not in new.of(Uplink)]:
            self.tunnels.pop(key).close()

    def _everywhere(self, remote: Callable[[AgentClient], Any],
                    local: Callable[[], None]) -> list[Exception]:
        """Runs a step on every server and here at the same time; every failure, in order."""
        results: dict[str, Any] = {}
        with concurrent.futures.ThreadPoolExecutor(max(1, len(self.agents))) as pool:
            futures = {name: pool.submit(remote, agent) for name, agent in self.agents.items()}
            errors: list[Exception] = []
            try:
                local()
            except Exception as err:  # noqa: BLE001 - reported with the servers' failures
                errors.append(err)
            for name, future in futures.items():
                try:
                    results[name] = future.result()
                except Exception as err:  # noqa: BLE001 - each server's failure is named
                    errors.append(err)
        self._results = results
        return errors

    def _sync_proxies(self, errors: list[Exception]) -> None:
        """A Mininet node here for every node there (new ones made, gone ones ended)."""
        net = self.here.net
        wanted: list[tuple[str, str, int, str, str | None]] = []
        for name, reply in self._results.items():
            there = reply.get("nodes", {})
            for node, (pid, role, pc) in sorted(there.items()):
                old = self.proxies.get(node)
                if old is not None and old.remote_pid == pid:
                    continue
                if old is not None:
                    self._forget(node)
                wanted.append((name, node, pid, role, pc))
            for node in [n for n, p in self.proxies.items() if p.server == name and n not in there]:
                self._forget(node)

        def make(entry: tuple[str, str, int, str, str | None]) -> RemoteNode | Exception:
            name, node, pid, role, pc = entry
            try:
                return remote_node(node, self.remotes[name], pid, role, pc)
            except Exception as err:  # noqa: BLE001 - a shell that cannot start
                return ServerError(f"server {name}: no shell for {node}: {err}")

        # (cheap: a node's shell opens on its first command)
        for entry, proxy in zip(wanted, map(make, wanted), strict=True):
            if isinstance(proxy, Exception):
                errors.append(proxy)
                continue
            self.proxies[entry[1]] = proxy
            net.hosts.append(proxy)
            net.nameToNode[entry[1]] = proxy

    def _show(self, plan: LabPlan) -> None:
        """Mininet's view of the servers' parts, made anew from ``plan``: every remote node's
        interfaces, every remote switch with its ports, the links between them, and the uplinks
        between machines. Only describes: nothing is run."""
        net = self.here.net
        self._unshow()
        ends: dict[str, LabIntf] = {}
        for name, remote in self.remotes.items():
            part = plan.part(name)
            nodes = {n: p for n, p in self.proxies.items() if p.server == name}
            inner: dict[str, tuple[LabIntf, str]] = {}
            show_veths(net, part, [v for v in part.of(Veth).values() if v.node in nodes
                                   and (v.peer is None or v.peer in nodes)], nodes, inner)
            switches: dict[str, RemoteSwitch] = {}
            show_switches(net, part, part.of(Bridge).values(), part.of(Port).values(),
                          switches, inner, lambda b, remote=remote: remote_switch(b, remote))
            self.views[name] = switches
            for switch in switches.values():
                ends.update(switch.nameToIntf)
        local = self.here.realizer.switches if self.here.realizer else {}
        for u in plan.of(Uplink).values():
            for dev in (u.a_dev, u.b_dev):
                if dev not in ends:
                    found = port_intf(plan, local, dev)
                    if found is not None:
                        ends[dev] = found
            if u.a_dev in ends and u.b_dev in ends:
                net.links.append(UplinkTunnel(ends[u.a_dev], ends[u.b_dev]))

    def _unshow(self) -> None:
        """Mininet forgets the view of the servers' parts (their nodes stay)."""
        net = self.here.net
        proxies = set(self.proxies.values())
        switches = {s for view in self.views.values() for s in view.values()}
        for link in [link for link in net.links
                     if {link.intf1.node, link.intf2.node} & (proxies | switches)]:
            net.forget(link)
        net.forget(*switches)
        for node in proxies:
            node.intfs.clear()
            node.ports.clear()
            node.nameToIntf.clear()
        self.views.clear()

    def _forget(self, node: str) -> None:
        proxy = self.proxies.pop(node)
        proxy.terminate()
        net = self.here.net
        if proxy in net.hosts:
            net.hosts.remove(proxy)
        net.nameToNode.pop(node, None)

    def check(self) -> list[str]:
        """Servers whose agent session ended since the last check, each named once."""
        lost = []
        for agent in self.agents.values():
            proc = agent.proc
            if proc is not None and proc.poll() is not None and not agent.lost:
                agent.lost = (f"server {agent.name} ({agent.remote.server.host}) was lost: its "
                              f"session ended (ssh exit {proc.returncode}); its part of the lab "
                              "no longer answers")
                lost.append(agent.lost)
        return lost

    def leases(self) -> dict[str, list[dict[str, Any]]]:
        """The lease tables of every DHCP server on the servers, by network."""
        tables: dict[str, list[dict[str, Any]]] = {}
        for agent in self.agents.values():
            tables.update(agent.request("leases", 30)["leases"])
        return tables

    def state(self) -> dict[str, Any]:
        """What ``wvpclab clean`` needs after a crash: the servers and the ssh sessions to them."""
        agents = [a.proc.pid for a in self.agents.values() if a.proc is not None]
        return {"servers": {n: {"host": r.server.host, "user": r.server.user}
                            for n, r in self.remotes.items()},
                "ssh": agents + [pid for t in self.tunnels.values() for pid in t.pids]}

    def end_proxies(self) -> None:
        """The nodes' shells here end (their nodes go with their servers' parts)."""
        self._unshow()
        for node in list(self.proxies):
            try:
                self._forget(node)
            except Exception:  # noqa: BLE001 - the node's shell may be gone with its server
                self.proxies.pop(node, None)

    def stop(self) -> None:
        """Every server tears its part down at once (a lost one is named); then the tunnels."""
        self.end_proxies()
        _each(lambda name: self.agents[name].close(), list(self.agents))
        self.agents.clear()
        for tunnel in self.tunnels.values():
            tunnel.close()
        self.tunnels.clear()


def _each(fn: Callable[[str], None], names: list[str]) -> None:
    """``fn`` for every name at once."""
    if not names:
        return
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        for future in [pool.submit(fn, n) for n in names]:
            future.result()


__all__ = ["AgentClient", "Relay", "RemoteNode", "RemoteSwitch", "Spread", "Tunnel",
           "remote_node", "remote_switch", "tap_number", "uplink_tunnel"]
