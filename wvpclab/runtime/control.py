"""A running lab's control channel: the way in for a second terminal (``wvpclab ls``, ``exec``,
``nic``, ``cable``, ``vm``, ``save``), as containerlab's ``inspect`` and ``exec`` and Mininet's
``util/m`` are.

The lab's process serves a Unix socket in its run directory (``/run/wvpclab/PREFIX/control.sock``:
the directory is root's alone, and a peer that is not root is refused) from a daemon thread, from
when the lab is up until its stop begins. A request is one JSON line, the answer one JSON line:

- ``{"request": "info"}``: the lab in numbers (``name``, ``owner_pid``, ``pcs``, ``vms``,
  ``nics``, ``up_since`` in seconds since the epoch, ``page``: the web page's address or null);
- ``{"request": "pid", "node": NODE}``: the PID of the node's shell on this machine (what
  ``mnexec -a`` enters), with the lab's ``cgroup``;
- ``{"request": "command", "line": LINE}``: one command line of the prompt's that changes or shows
  the lab (``LabCommands.REMOTE``), run through the prompt's own code; the answer has its output,
  its error lines and its ``status`` (0 done, 1 a failure, 2 a usage error).

Every answer has ``ok``; a refused request (not JSON, an unknown request, a wrong node) has
``ok: false``, ``status`` and a one-line ``error``, and the lab goes on. Commands run one at a time
(and, under the lab's ``changes.lock``, one at a time with the prompt's and the page's changes);
``info`` and ``pid`` are answered meanwhile.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from wvpclab.errors import LabError, UsageError
from wvpclab.model import topology

#: The socket's name in the lab's run directory.
SOCKET = "control.sock"
#: The longest request read (a command line is short).
MAX_REQUEST = 64 * 1024
#: How long a client may take to send its request.
READ_TIMEOUT = 10.0
#: Clients served at once (more wait in the listening queue).
MAX_CLIENTS = 8
#: Exit statuses, as ``wvpclab.ui.labcli``'s.
FAILED, USAGE = 1, 2


def socket_path(run_dir: Path) -> Path:
    return Path(run_dir) / SOCKET


class ControlChannel:
    """The control channel of a running ``lab``: ``start`` serves it, ``stop`` ends it (a command
    under way finishes first)."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab
        self.path = socket_path(lab.run_dir)
        #: When the lab was up (the channel starts then).
        self.up_since = time.time()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._one_command = threading.Lock()
        self._clients: dict[threading.Thread, tuple[socket.socket, list[bool]]] = {}
        self._clients_lock = threading.Lock()

    @classmethod
    def serve(cls, lab: Any) -> ControlChannel | None:
        """The lab's channel, served; None (said on the lab's stderr) when the socket cannot be
        made: the lab runs on, reachable from its prompt alone."""
        channel = cls(lab)
        try:
            channel.start()
        except OSError as err:
            channel.stop()
            lab.machine.say(f"warning: no control channel ({err.strerror or err}): a second "
                            "terminal cannot reach this lab")
            return None
        return channel

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener = listener
        listener.bind(str(self.path))
        os.chmod(self.path, 0o600)
        listener.listen(16)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._accept, name="wvpclab-control", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 120.0) -> None:
        """Stops taking requests, ends the clients that are not running a command, waits for
        those that are (a change finishes whole), and removes the socket."""
        self._stopping.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._clients_lock:
            clients = dict(self._clients)
        for conn, busy in clients.values():
            if not busy[0]:  # still reading its request, or writing its answer
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in clients:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1
        with contextlib.suppress(OSError):
            self.path.unlink()

    # -- serving ----------------------------------------------------------------------------------
    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([self._listener, self._wake_r], [], [])
            except (OSError, ValueError):
                return
            if self._wake_r in ready or self._stopping.is_set():
                return
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            with self._clients_lock:
                if len(self._clients) >= MAX_CLIENTS:
                    self._reply(conn, refused("the lab's control channel is busy: try again"))
                    conn.close()
                    continue
                busy = [False]
                thread = threading.Thread(target=self._client, args=(conn, busy),
                                          name="wvpclab-control-client", daemon=True)
                self._clients[thread] = (conn, busy)
            thread.start()

    def _client(self, conn: socket.socket, busy: list[bool]) -> None:
        try:
            with conn:
                if peer_uid(conn) != 0:
                    self._reply(conn, refused("the lab's control channel is root's: run it with "
                                              "sudo"))
                    return
                try:
                    request = read_request(conn)
                except ValueError as err:
                    self._reply(conn, refused(str(err)))
                    return
                except OSError:
                    return  # the client went away (or the lab stops)
                self._reply(conn, self.answer(request, busy))
        finally:
            with self._clients_lock:
                self._clients.pop(threading.current_thread(), None)

    @staticmethod
    def _reply(conn: socket.socket, answer: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(answer).encode() + b"\n")

    def answer(self, request: Any, busy: list[bool] | None = None) -> dict[str, Any]:
        """The answer to one request (already read as JSON)."""
        if not isinstance(request, dict) or not isinstance(request.get("request"), str):
            return refused('a request is a JSON object with "request": "info", "pid" or '
                           '"command"')
        kind = request["request"]
        try:
            if kind == "info":
                return {"ok": True, **self.info()}
            if kind == "pid":
                return {"ok": True, **self.pid(request.get("node"))}
            if kind == "command":
                line = request.get("line")
                if not isinstance(line, str) or "\n" in line or not line.strip():
                    return refused('a command request has "line": one command line')
                return {"ok": True, **self.command(line, busy)}
        except UsageError as err:
            return refused(str(err))
        except Exception as err:  # noqa: BLE001 - the lab goes on; the client hears why
            return refused(str(err) or type(err).__name__, FAILED)
        return refused(f"no request {kind!r} (requests: info, pid, command)")

    def info(self) -> dict[str, Any]:
        graph = self.lab.graph_snapshot()
        web = self.lab.web
        return {"name": self.lab.name, "owner_pid": os.getpid(),
                "pcs": [k for k, _ in topology.nodes_of(graph, "pc")],
                "vms": [k for k, _ in topology.nodes_of(graph, "vm")],
                "nics": len(topology.nodes_of(graph, "nic")),
                "up_since": self.up_since, "page": web.url if web is not None else None}

    def pid(self, name: Any) -> dict[str, Any]:
        """The PID of node ``name``'s shell on this machine (UsageError: no such node, or one on
        another server of the lab)."""
        if not isinstance(name, str):
            raise UsageError('a pid request has "node": a node\'s name')
        here = dict(self.lab.realizer.nodes) if self.lab.realizer is not None else {}
        node = here.get(name)
        if node is None:
            spread = self.lab.spread
            proxy = spread.proxies.get(name) if spread is not None else None
            if proxy is not None:
                raise UsageError(f"{name} runs on server {proxy.server} of lab {self.lab.name}, "
                                 "not on this machine: exec reaches the nodes of the machine the "
                                 "lab was started on")
            self.lab.node(name)  # no such node: its one line, naming the lab's nodes
            raise UsageError(f"no node {name!r} on this machine")
        if not node.shell or not node.pid:
            raise LabError(f"{name} is not running")
        group = self.lab.group
        return {"pid": node.pid, "cgroup": str(group.path) if group is not None else None}

    def command(self, line: str, busy: list[bool] | None = None) -> dict[str, Any]:
        """Runs one command line as the prompt would (one at a time); its output and status."""
        from wvpclab.ui.labcli import LabCommands

        out, err = io.StringIO(), io.StringIO()
        with self._one_command:
            if self._stopping.is_set():
                raise LabError(f"lab {self.lab.name} is stopping")
            if busy is not None:
                busy[0] = True
            try:
                status = LabCommands(self.lab, out, err).run_line(line)
            finally:
                if busy is not None:
                    busy[0] = False
        return {"status": status, "out": out.getvalue(), "err": err.getvalue()}


def refused(message: str, status: int = USAGE) -> dict[str, Any]:
    """An answer refusing a request, in one line."""
    return {"ok": False, "status": status, "error": " ".join(message.split())}


def peer_uid(conn: socket.socket) -> int | None:
    """The user id of the process at the other end of a Unix socket."""
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return struct.unpack("3i", creds)[1]


def read_request(conn: socket.socket, limit: int = MAX_REQUEST,
                 timeout: float = READ_TIMEOUT) -> Any:
    """One JSON line from a client (ValueError: too long, cut short, or not JSON)."""
    conn.settimeout(timeout)
    data = b""
    while b"\n" not in data:
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            raise ValueError(f"no whole request within {timeout:.0f} s") from None
        if not chunk:
            if not data:
                raise OSError("the client sent nothing")
            break
        data += chunk
        if len(data) > limit:
            raise ValueError(f"a request is one line of at most {limit} bytes")
    line = data.split(b"\n", 1)[0]
    try:
        return json.loads(line)
    except ValueError:
        raise ValueError("a request is one line of JSON") from None


class ChannelError(Exception):
    """A lab's control channel did not answer (no socket, no answer in time, a broken answer)."""


def ask(run_dir: Path, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Sends one request to the control channel of the lab whose run directory is ``run_dir``
    and returns its answer (ChannelError: no answer)."""
    path = socket_path(run_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise ChannelError(f"no answer from {path} within {timeout:g} s") from None
        except OSError as err:
            raise ChannelError(f"{path}: {err.strerror or err}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise ChannelError(f"{path}: no answer (the lab may be stopping)") from None
    if not isinstance(answer, dict):
        raise ChannelError(f"{path}: an answer that is not one")
    return answer


__all__ = ["SOCKET", "ChannelError", "ControlChannel", "ask", "read_request", "refused",
           "socket_path"]
