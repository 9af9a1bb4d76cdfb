"""The lab's local control channel: JSON lines over a Unix stream socket, one thread per client.

`handle_request` checks one request and calls the app; `ControlServer` owns the socket and threads.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from typing import Any

from controllers.app import ControlError, WvpcController
from controllers.flowrules import KINDS, OFPP_MAX, ROLES, Port

LOG = logging.getLogger("wvpclab.channel")

MAX_LINE = 1 << 20  # a request longer than this closes the connection
_COMMON = ("id", "op", "timeout")


class RequestError(Exception):
    """A request that is malformed; the message names the problem."""


_MISSING = object()


def _field(req: dict[str, Any], name: str, kinds: tuple[type, ...], what: str,
           default: Any = _MISSING) -> Any:
    value = req.get(name, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise RequestError(f"missing field {name!r} ({what})")
        return default
    if isinstance(value, bool) and bool not in kinds:
        raise RequestError(f"field {name!r} must be {what}, got {json.dumps(value)}")
    if not isinstance(value, kinds):
        raise RequestError(f"field {name!r} must be {what}, got {json.dumps(value)}")
    return value


def _dpid(req: dict[str, Any]) -> int:
    dpid = _field(req, "dpid", (int,), "an integer datapath id")
    if not 0 <= dpid < 2**64:
        raise RequestError(f"field 'dpid' out of range (64 bits): {dpid}")
    return dpid


def _bool(req: dict[str, Any], name: str, default: Any = _MISSING) -> bool:
    return _field(req, name, (bool,), "true or false", default)


def _op_add_switch(app: WvpcController, req: dict[str, Any], timeout: float | None) -> dict:
    kind = _field(req, "kind", (str,), f"one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise RequestError(f"field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    name = _field(req, "name", (str,), "a string", "")
    ports = _ports(req) if "ports" in req else None
    app.add_switch(_dpid(req), kind, name, _bool(req, "dhcp_steering", False), timeout, ports,
                   _bool(req, "dhcp_guard", False))
    return {}


def _op_remove_switch(app: WvpcController, req: dict[str, Any], timeout: float | None) -> dict:
    app.remove_switch(_dpid(req), timeout)
    return {}


def _port_number(req: dict[str, Any]) -> int:
    number = _field(req, "port", (int,), "an OpenFlow port number")
    if not 1 <= number <= OFPP_MAX:
        raise RequestError(f"field 'port' out of range 1..{OFPP_MAX}: {number}")
    return number


def _port(req: dict[str, Any]) -> Port:
    number = _port_number(req)
    role = _field(req, "role", (str,), f"one of {', '.join(ROLES)}")
    mac = _field(req, "mac", (str, type(None)), "a MAC address or null", None)
    try:
        return Port(number, role, mac, _bool(req, "allow_spoofing", False))
    except (ValueError, TypeError) as exc:
        raise RequestError(str(exc)) from None


def _op_add_port(app: WvpcController, req: dict[str, Any], timeout: float | None) -> dict:
    app.add_port(_dpid(req), _port(req), timeout)
    return {}


_PORT_FIELDS = ("port", "role", "mac", "allow_spoofing")


def _op_set_ports(app: WvpcController, req: dict[str, Any], timeout: float | None) -> dict:
    """Replaces a switch's whole port set in one change (one flow computation, one barrier)."""
    app.set_ports(_dpid(req), _ports(req), timeout)
    return {}


def _ports(req: dict[str, Any]) -> tuple[Port, ...]:
    entries = _field(req, "ports", (list,), "a list of ports")
    ports = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise RequestError(f"ports[{i}] must be an object")
        extra = sorted(set(entry) - set(_PORT_FIELDS))
        if extra:
            raise RequestError(f"ports[{i}]: unknown field(s) {', '.join(extra)}")
        try:
            ports.append(_port(entry))
        except RequestError as exc:
            raise RequestError(f"ports[{i}]: {exc}") from None
    return tuple(ports)


def _op_remove_port(app: WvpcController, req: dict[str, Any], timeout: float | None) -> dict:
    app.remove_port(_dpid(req), _port_number(req), timeout)
    return {}


def _op_set_steering(app: WvpcController, req: dict[str, Any], timeout: float | None) -> dict:
    app.set_steering(_dpid(req), _bool(req, "on"), timeout)
    return {}


def _op_sync(app: WvpcController, req: dict[str, Any], timeout: float | None) -> dict:
    app.sync(_dpid(req), timeout)
    return {}


def _op_dump(app: WvpcController, req: dict[str, Any], timeout: float | None) -> dict:
    return app.dump(_dpid(req))


def _op_switches(app: WvpcController, req: dict[str, Any], timeout: float | None) -> dict:
    return {"switches": app.switches()}


def _op_ping(app: WvpcController, req: dict[str, Any], timeout: float | None) -> dict:
    return {"pid": os.getpid()}


_Handler = Callable[[WvpcController, dict[str, Any], float | None], dict]
#: op name -> (handler, fields it accepts besides id, op and timeout)
OPS: dict[str, tuple[_Handler, tuple[str, ...]]] = {
    "add_switch": (_op_add_switch, ("dpid", "kind", "name", "dhcp_steering", "ports",
                                    "dhcp_guard")),
    "remove_switch": (_op_remove_switch, ("dpid",)),
    "add_port": (_op_add_port, ("dpid", "port", "role", "mac", "allow_spoofing")),
    "remove_port": (_op_remove_port, ("dpid", "port")),
    "set_ports": (_op_set_ports, ("dpid", "ports")),
    "set_steering": (_op_set_steering, ("dpid", "on")),
    "sync": (_op_sync, ("dpid",)),
    "dump": (_op_dump, ("dpid",)),
    "switches": (_op_switches, ()),
    "ping": (_op_ping, ()),
}


def handle_request(app: WvpcController, line: bytes | str) -> dict[str, Any]:
    """Carry out one request line and return the reply (never raises).

    Args:
        app: The controller app.
        line: One JSON object, e.g. ``{"id": 1, "op": "sync", "dpid": 16}``.

    Returns:
        ``{"id": ..., "ok": true, ...}`` or ``{"id": ..., "ok": false, "error": "..."}``.
    """
    req_id = None
    try:
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"malformed JSON: {exc}") from None
        if not isinstance(req, dict):
            raise RequestError("a request must be a JSON object")
        req_id = req.get("id")
        if isinstance(req_id, (dict, list)):
            req_id = None
            raise RequestError("field 'id' must be a number or a string")
        op = req.get("op", _MISSING)
        if op is _MISSING:
            raise RequestError("missing field 'op'")
        if not isinstance(op, str) or op not in OPS:
            raise RequestError(f"unknown op {json.dumps(op)} (one of {', '.join(OPS)})")
        handler, accepted = OPS[op]
        extra = sorted(set(req) - set(accepted) - set(_COMMON))
        if extra:
            raise RequestError(f"unknown field(s) for {op}: {', '.join(extra)}")
        timeout = req.get("timeout")
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise RequestError("field 'timeout' must be a positive number of seconds")
        result = handler(app, req, timeout)
    except (RequestError, ControlError) as exc:
        return {"id": req_id, "ok": False, "error": str(exc)}
    except Exception as exc:  # keep serving whatever one request did
        LOG.exception("request %r failed", line)
        return {"id": req_id, "ok": False, "error": f"internal error: {exc!r}"}
    return {"id": req_id, "ok": True, **result}


class ControlServer:
    """Listens on a Unix socket and answers JSON-line requests, one thread per client.

    Args:
        path: Where to create the socket (mode 0600). A stale socket left there is replaced; a
            live one (another controller) or any other file is an error.
        app: The controller app the requests go to.
    """

    def __init__(self, path: str, app: WvpcController) -> None:
        self.path = path
        self.app = app
        self._sock: socket.socket | None = None
        self._closed = threading.Event()

    def start(self) -> None:
        """Create the socket and start accepting clients.

        Raises:
            RuntimeError: when the path is taken by a live socket or by something else.
        """
        self._clear_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)
        try:
            sock.bind(self.path)
        except OSError as exc:
            sock.close()
            raise RuntimeError(f"cannot create control socket {self.path}: "
                               f"{exc.strerror}") from None
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        sock.listen(16)
        self._sock = sock
        threading.Thread(target=self._accept_loop, name="control-accept", daemon=True).start()

    def _clear_stale(self) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise RuntimeError(f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.path)
        except OSError:
            os.unlink(self.path)  # nobody listens: a leftover of a killed controller
        else:
            raise RuntimeError(f"another process is listening on {self.path}")
        finally:
            probe.close()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._closed.is_set():
                    return
                LOG.exception("accept failed")
                continue
            threading.Thread(target=self._serve, args=(conn,), name="control-client",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as rfile:
            while True:
                try:
                    line = rfile.readline(MAX_LINE + 1)
                except OSError:
                    return
                if not line:
                    return
                if len(line) > MAX_LINE:
                    reply = {"id": None, "ok": False,
                             "error": f"request longer than {MAX_LINE} bytes"}
                    self._send(conn, reply)
                    return
                if not line.strip():
                    continue
                if not self._send(conn, handle_request(self.app, line)):
                    return

    @staticmethod
    def _send(conn: socket.socket, reply: dict[str, Any]) -> bool:
        try:
            conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Stop accepting and remove the socket file."""
        self._closed.set()
        if self._sock is not None:
            try:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread
                except OSError:
                    pass
                self._sock.close()
            finally:
                self._sock = None
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
