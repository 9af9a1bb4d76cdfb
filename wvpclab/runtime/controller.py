"""The lab's side of the controller: the child process, its local channel, and what it was told.

The controller (``controllers/``) is stateless across restarts: this client keeps every switch and
port it registered, so a restarted controller is told everything again and reinstalls it.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controllers.main import READY_LINE
from wvpclab.errors import ControllerError, LabError
from wvpclab.runtime import cgroups, logs
from wvpclab.runtime.procs import end, wait_ready


class _ChannelBroken(Exception):
    """The controller's end of the channel is gone."""


#: Requests that change what the lab registered (kept in ``Controller.switches`` before they are
#: sent, so a restarted controller's replay puts them in force).
_REGISTRATIONS = frozenset({"add_switch", "set_ports", "add_port", "remove_port", "remove_switch"})


#: How much longer a switch's registration may take for each of its ports (Open vSwitch opens
#: each, and its flows go in one bundle: a 1,000-port switch outlasted a fixed 30 s).
PER_PORT = 0.05


class Controller:
    """Runs ``python -m controllers.main`` as a child process and talks to it over a Unix socket."""

    def __init__(self, run_dir: Path, openflow: Path, timeout: float = 30.0,
                 group: cgroups.Group | None = None,
                 on_spawn: Callable[[], None] | None = None) -> None:
        """``group``: the lab's cgroup, which each controller process joins; ``on_spawn``: called
        after each new process is ready (the lab records its PID)."""
        self.run_dir = run_dir
        self.group = group
        self.on_spawn = on_spawn
        self.socket_path = run_dir / "controller.sock"
        self.log_path = run_dir / "controller.log"
        #: Where the switches connect: a Unix socket only root can open (never TCP), in Open
        #: vSwitch's run directory (the only place it connects to one).
        self.openflow_path = openflow
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        self._sock: socket.socket | None = None
        self._buf = b""
        self._lock = threading.RLock()
        self._next_id = 1
        # What the lab registered: dpid -> {"kind", "name", "dhcp_steering", "dhcp_guard",
        # "ports": {n: fields}}
        self.switches: dict[int, dict[str, Any]] = {}
        self._watch: threading.Thread | None = None
        self._stopping = threading.Event()
        self.restarts = 0
        self._reviving = False
        #: While False, a dead controller stays dead (to watch the switches fail closed).
        self.supervised = True

    @property
    def target(self) -> str:
        """The OpenFlow target of the lab's switches (``Controller.target`` in OVSDB)."""
        return f"unix:{self.openflow_path}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    # -- process ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Starts the process and connects; returns once it listens (bounded wait)."""
        with self._lock:
            self._spawn()
        self._spawned()
        if self._watch is None:
            self._watch = threading.Thread(target=self._supervise, name="wvpclab-controller-watch",
                                           daemon=True)
            self._watch.start()

    def _spawn(self) -> None:
        if self.socket_path.exists():
            self.socket_path.unlink()
        with logs.for_child(self.log_path) as log:  # (rotated first when at its cap: restarts)
            self.proc = subprocess.Popen(
                cgroups.wrap(self.group, [
                    sys.executable, "-m", "controllers.main", "--openflow",
                    str(self.openflow_path), "--control", str(self.socket_path),
                    "--log", str(self.log_path)]),
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True)
        try:
            wait_ready(self.proc, READY_LINE, self.timeout, "the controller")
        except LabError as err:
            self.kill()
            raise ControllerError(f"{err}; see {self.log_path}") from None
        self._connect()

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.socket_path))
        self._sock = sock
        self._buf = b""

    def _supervise(self) -> None:
        """Restarts the controller if it dies while the lab runs, and tells it everything again."""
        while not self._stopping.wait(0.3):
            proc = self.proc
            if proc is None or proc.poll() is None or not self.supervised:
                continue
            with self._lock:
                if self._stopping.is_set() or self.proc is not proc:
                    continue
                print(f"wvpclab: the controller (pid {proc.pid}) exited with code "
                      f"{proc.returncode}; restarting it", file=sys.stderr)
                try:
                    self._spawn()
                    self.restarts += 1
                    self.replay()
                except Exception as err:  # noqa: BLE001 - the supervisor must go on watching
                    print(f"wvpclab: restarting the controller failed: {err}", file=sys.stderr)
                    continue
            self._spawned()

    def restart(self) -> None:
        """Stops and starts the controller again, re-registering everything (flows reinstalled)."""
        with self._lock:
            self.kill()
            self._spawn()
            self.restarts += 1
            self.replay()
        self._spawned()

    def _spawned(self) -> None:
        """Tells the lab a new controller process runs (it records the PID); a failure to record
        is the lab's to say, never a reason to stop controlling."""
        if self.on_spawn is not None:
            try:
                self.on_spawn()
            except Exception as err:  # noqa: BLE001
                print(f"wvpclab: recording the controller's PID failed: {err}", file=sys.stderr)

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Ends the process (by its PID) and closes the channel."""
        with self._lock:
            if self._sock:
                self._sock.close()
                self._sock = None
            end(self.proc, sig)

    def hold(self) -> None:
        """Stops supervising: a controller that ends now stays ended (the lab is going down)."""
        self._stopping.set()

    def stop(self) -> None:
        """Stops supervising and ends the process."""
        self.hold()
        self.kill()
        if self.socket_path.exists():
            self.socket_path.unlink()

    # -- requests ---------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> int:
        assert self._sock is not None, "controller channel is not connected"
        rid = self._next_id
        self._next_id += 1
        self._sock.sendall((json.dumps({"id": rid, **message}) + "\n").encode())
        return rid

    def _receive(self, rid: int, deadline: float, wait: float) -> dict[str, Any]:
        assert self._sock is not None
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                reply = json.loads(line)
                if reply.get("id") == rid:
                    return reply
            left = deadline - time.monotonic()
            if left <= 0:
                raise ControllerError(f"no answer from the controller in {wait:.0f} s "
                                      f"(request {rid}); see {self.log_path}")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise _ChannelBroken("closed")
            self._buf += chunk

    def requests(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sends several requests at once, then waits for every answer (in order)."""
        with self._lock:
            try:
                replies = self._exchange(messages)
            except (OSError, AssertionError, _ChannelBroken) as err:  # it died under us
                if not self.supervised or self._stopping.is_set() or self._reviving:
                    raise ControllerError(f"the controller's channel broke ({err or 'closed'}); "
                                          f"see {self.log_path}") from None
                self._revive()
                # what the lab registered is in force again (the registry was updated before
                # the request): only the other requests are asked again
                again = [m for m in messages if m.get("op") not in _REGISTRATIONS]
                answers = iter(self._exchange(again))
                replies = [next(answers) if m.get("op") not in _REGISTRATIONS else {"ok": True}
                           for m in messages]
        for message, reply in zip(messages, replies):
            if not reply.get("ok"):
                raise ControllerError(f"controller refused {message.get('op')}: "
                                      f"{reply.get('error', reply)}")
        return replies

    def _exchange(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # a request that gives the controller longer (a big switch) is waited for that long
        wait = max([self.timeout] + [m["timeout"] + 5 for m in messages if "timeout" in m])
        deadline = time.monotonic() + wait
        ids = [self._send(m) for m in messages]
        return [self._receive(rid, deadline, wait) for rid in ids]

    def _revive(self) -> None:
        """The controller died during a request: it is started again at once (not at the
        supervisor's next look) and told everything the lab registered."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass
        print(f"wvpclab: the controller (pid {self.pid}) died during a request; restarting it",
              file=sys.stderr)
        self._reviving = True  # once: a controller that dies again in the replay is an error
        try:
            self.kill()
            self._spawn()
            self.restarts += 1
            self.replay()
        finally:
            self._reviving = False
        self._spawned()

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        return self.requests([{"op": op, **fields}])[0]

    # -- registrations ----------------------------------------------------------------------------
    def add_switch(self, dpid: int, kind: str, name: str, ports: list[dict[str, Any]],
                   dhcp_steering: bool = False, dhcp_guard: bool = False) -> None:
        """Registers a switch with its ports; returns when its flows are in force."""
        with self._lock:  # the registry changes only under the lock (the supervisor replays it)
            self.switches[dpid] = {"kind": kind, "name": name, "dhcp_steering": dhcp_steering,
                                   "dhcp_guard": dhcp_guard,
                                   "ports": {p["port"]: dict(p) for p in ports}}
            self.requests(self._switch_messages(dpid))

    def _switch_messages(self, dpid: int) -> list[dict[str, Any]]:
        sw = self.switches[dpid]
        # one request, one change: a switch never passes through "registered without ports"
        return [{"op": "add_switch", "dpid": dpid, "kind": sw["kind"], "name": sw["name"],
                 "dhcp_steering": sw["dhcp_steering"], "dhcp_guard": sw["dhcp_guard"],
                 "ports": [p for _, p in sorted(sw["ports"].items())],
                 "timeout": self.timeout + PER_PORT * len(sw["ports"])}]

    def add_port(self, dpid: int, port: int, role: str, mac: str | None,
                 allow_spoofing: bool = False) -> None:
        fields = {"port": port, "role": role, "mac": mac, "allow_spoofing": allow_spoofing}
        with self._lock:
            self.switches[dpid]["ports"][port] = fields
            self.request("add_port", dpid=dpid, **fields)

    def remove_port(self, dpid: int, port: int) -> None:
        with self._lock:
            self.switches[dpid]["ports"].pop(port, None)
            try:
                self.request("remove_port", dpid=dpid, port=port)
            except ControllerError as err:
                if "has no port" not in str(err):  # gone already (a restart replayed without it)
                    raise

    def remove_switch(self, dpid: int) -> None:
        with self._lock:
            self.switches.pop(dpid, None)
            try:
                self.request("remove_switch", dpid=dpid)
            except ControllerError as err:
                if "registered" not in str(err):  # gone already (a restart replayed without it)
                    raise

    def replay(self) -> None:
        """Tells a (re)started controller every registered switch and port."""
        msgs: list[dict[str, Any]] = []
        for dpid in sorted(self.switches):
            msgs += self._switch_messages(dpid)
        if msgs:
            self.requests(msgs)

    def dump(self, dpid: int) -> dict[str, Any]:
        return self.request("dump", dpid=dpid)


__all__ = ["Controller", "ControllerError"]
