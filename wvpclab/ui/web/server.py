"""The lab's web page: WVPC's Settings dialog for every VM beside the lab's picture, drawn live.

``WebServer(lab).start()`` serves it on 127.0.0.1 (a Starlette app under uvicorn, in a thread of the
lab's process) and ``url`` is its address with the run's token; ``stop()`` ends it, after any change
in flight has finished. Every change goes through the lab's own ``set_nic``, ``cable``,
``capture``, ``add_vm``, ``remove_vm``, ``add_nic`` and ``remove_nic``, as the CLI's do, one at a
time (the lab's lock), so the page, the CLI and the Python API see one lab. Who may read and
change: ``wvpclab.ui.web.guard``; what a client may take from the lab's process (time,
connections, bodies, files, log lines): ``wvpclab.ui.web.limits``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import socket
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

from wvpclab.errors import LabError, UsageError
from wvpclab.model import modes
from wvpclab.model.lookups import nics_of
from wvpclab.model.schema import MAX_NICS
from wvpclab.ui.web import guard, limits
from wvpclab.ui.web.state import Sampler, settings

#: The page's port unless told otherwise (and the next ones, if it is taken).
DEFAULT_PORT = 8470
_TRIES = 10
#: How long a page's look at the lab waits for a change before it takes the live values anyway.
WAIT = 0.5

_SECURITY_HEADERS = [
    (b"content-security-policy", (b"default-src 'self'; img-src 'self' data: blob:; "
                                  b"frame-ancestors 'none'; form-action 'none'; base-uri 'none'")),
    (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]

_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/app.css": ("app.css", "text/css; charset=utf-8")}


def new_vm_request(body: dict) -> tuple[str, str | None, list[str] | None]:
    """A "New virtual machine..." request's name, PC (None: the lab's only PC) and NICs (None:
    the wizard's; else mode specs as ``set_nic`` takes them); UsageError in one line when the
    body is not that. What the values may be (a free name, a PC of the lab's, modes it takes) the
    lab says."""
    name, pc, nics = body.get("name"), body.get("pc"), body.get("nics")
    if not isinstance(name, str) or not name.strip():
        raise UsageError("new virtual machine: give it a name ({\"name\": NAME})")
    if pc is not None and not isinstance(pc, str):
        raise UsageError(f"new virtual machine: the PC is a name, not {pc!r}")
    if nics is not None and (not isinstance(nics, list)
                             or not all(isinstance(n, str) for n in nics)):
        raise UsageError(f"new virtual machine: the NICs are a list of modes "
                         f"({modes.usage(':', ', ')}), not {nics!r}")
    return name.strip(), (pc.strip() or None) if pc is not None else None, nics


def vm_request(body: dict) -> str:
    """The VM a request names (``{"vm": NAME}``); UsageError in one line otherwise."""
    vm = body.get("vm")
    if not isinstance(vm, str) or not vm:
        raise UsageError("name the VM: {\"vm\": NAME}")
    return vm


def adapters_request(body: dict) -> tuple[str, int]:
    """A "Number of network adapters" request's VM and count (1 to 4, as WVPC's Settings);
    UsageError in one line otherwise."""
    vm, count = vm_request(body), body.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_NICS:
        raise UsageError(f"{vm}: the number of network adapters is 1 to {MAX_NICS}, "
                         f"not {count!r}")
    return vm, count


def adapter_steps(numbers: list[int], count: int) -> tuple[int, list[int]]:
    """How a VM whose NICs have ``numbers`` comes to have ``count``: how many NICs to add (each
    takes the lowest free number, Not connected, as WVPC adds an adapter) and which to remove
    (the highest-numbered first)."""
    if count >= len(numbers):
        return count - len(numbers), []
    return 0, sorted(numbers, reverse=True)[:len(numbers) - count]


def _static(name: str) -> bytes:
    return resources.files("wvpclab.ui.web").joinpath("static", name).read_bytes()


def port_number(text: str) -> int | None:
    """``text`` as a TCP port (1-65535), or None."""
    return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else None


def bind(port: int | None, host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on ``port`` (None: the default one or, if taken, one of the next
    ones). LabError naming the port when it cannot be had."""
    ports = [port] if port is not None else range(DEFAULT_PORT, DEFAULT_PORT + _TRIES)
    last: OSError | None = None
    for p in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, p))
            sock.listen(64)
        except OSError as err:
            sock.close()
            last = err
            continue
        sock.set_inheritable(False)
        return sock
    where = f"port {port}" if port is not None else \
        f"ports {DEFAULT_PORT}-{DEFAULT_PORT + _TRIES - 1}"
    raise LabError(f"the web page cannot listen on {host} {where}: "
                   f"{last.strerror if last else 'no port'} (name another: --web PORT)")


class WebServer:
    """The page of one running lab."""

    def __init__(self, lab: Any, port: int | None = None, token: str | None = None,
                 sock: socket.socket | None = None) -> None:
        self.lab = lab
        self.token = token or secrets.token_urlsafe(24)
        self.sock = sock if sock is not None else bind(port)
        self.port: int = self.sock.getsockname()[1]
        self.sampler = Sampler(lab)
        self._svg: tuple[str, bytes] = ("", b"")
        self._key: tuple[int, str] = (-1, "")
        #: The pcap files of the captures this page started (the only ones it deletes).
        self._captures: set[Path] = set()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        #: The page's bounds (set by ``start``, from the process's file limit).
        self.guarded: limits.Guarded | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        import uvicorn

        # The lab keeps most of its files for its changes: the page's connections and backlog
        # stay within a quarter of the (raised) limit.
        self.guarded = guarded = limits.Guarded(limits.Limits.for_nofile(limits.raise_nofile()))
        config = guarded.uvicorn_config(self.app, log_level="warning", access_log=False,
                                        lifespan="off", timeout_graceful_shutdown=40,
                                        server_header=False, interface="asgi3",
                                        proxy_headers=False)
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(server)),
                                        name="wvpclab-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise LabError(f"the web page did not start on port {self.port}")
            time.sleep(0.02)
        # uvicorn listened with the backlog asyncio also takes as its accepts per turn (files the
        # lab holds at once); the kernel's queue of connections not yet accepted costs the lab no
        # file: a long one, so that a flood does not make the kernel drop a browser's SYN.
        with contextlib.suppress(OSError):
            self.sock.listen(limits.LISTEN_QUEUE)

    async def _serve(self, server: Any) -> None:
        """The page's thread: uvicorn, with an accept() out of files counted (not a traceback
        each) and the refusals said once per ``report_seconds``."""
        assert self.guarded is not None
        guarded = self.guarded
        asyncio.get_running_loop().set_exception_handler(guarded.exception_handler)
        guarded.log_filter.thread = threading.get_ident()

        async def reports() -> None:
            while True:
                await asyncio.sleep(guarded.limits.report_seconds)
                self._report(guarded.limits.report_seconds)

        reporter = asyncio.ensure_future(reports())
        try:
            await server.serve([self.sock])
        finally:
            reporter.cancel()

    def _report(self, seconds: float | None = None) -> None:
        line = self.guarded.tally.summary(seconds) if self.guarded is not None else None
        if line:
            with contextlib.suppress(OSError, ValueError):
                print(line, file=sys.stderr, flush=True)

    def stop(self) -> None:
        """Ends the page: no new requests; a change in flight finishes first (the lab stays
        whole)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None
        with contextlib.suppress(OSError):
            self.sock.close()
        self.sampler.close()
        if self.guarded is not None:
            self._report()  # what was refused since the last line
            self.guarded.close()

    # -- the ASGI app -----------------------------------------------------------------------------
    async def app(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        from starlette.requests import Request

        request = Request(scope, receive)
        headers = {k.lower(): v for k, v in request.headers.items()}
        query_token = request.query_params.get("token")
        refused = guard.refusal(request.method, request.url.path, headers, query_token,
                                self.token)
        data: Any = None
        if refused is None and request.method == "POST":
            data, refused = await self._body(scope, headers, receive)
        if refused is not None:  # a browser's address bar gets words; the page's script JSON
            as_json = request.url.path.startswith("/api/") or request.method != "GET"
            # the body (if any) is left unread: the connection ends with the answer
            await self._reply(send, refused[0], {"error": refused[1]} if as_json else
                              f"wvpclab: {refused[1]}\n".encode(), "text/plain; charset=utf-8",
                              [(b"connection", b"close")])
            return
        try:
            status, body, kind, extra = await self._route(request, data)
        except UsageError as err:
            status, body, kind, extra = 400, {"error": str(err)}, None, []
        except LabError as err:
            status, body, kind, extra = 409, {"error": str(err)}, None, []
        except ValueError as err:
            status, body, kind, extra = 400, {"error": f"bad request: {err}"}, None, []
        except Exception as err:  # noqa: BLE001 - the page says it; the lab goes on
            status, body, kind, extra = 500, {"error": f"the lab failed to answer: {err}"}, \
                None, []
        await self._reply(send, status, body, kind, extra)

    async def _body(self, scope: dict, headers: dict[str, str],
                    receive: Any) -> tuple[Any, tuple[int, str] | None]:
        """A change's JSON body, read up to the page's cap (token or not); or why it is
        refused."""
        cap = self.guarded.limits.max_body if self.guarded is not None else 64 * 1024
        raw = None if limits.declared_too_large(headers, cap) else \
            await limits.read_body(receive, cap)
        if raw is None:
            if self.guarded is not None:
                self.guarded.tally.add("large", scope.get("state", {}).get("wvpclab.who"))
            return None, (413, f"a change's body is at most {cap // 1024} KiB")
        try:
            return json.loads(raw), None
        except ValueError as err:
            return None, (400, f"bad request: the body is not JSON ({err})")

    async def _reply(self, send: Any, status: int, body: Any, kind: str | None = None,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
        if not isinstance(body, bytes):
            body, kind = json.dumps(body).encode(), "application/json"
        headers = [(b"content-type", (kind or "application/octet-stream").encode()),
                   (b"content-length", str(len(body)).encode()), *_SECURITY_HEADERS,
                   *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _route(self, request: Any, body: Any) -> tuple[int, Any, str | None, list]:
        from starlette.concurrency import run_in_threadpool

        path, method = request.url.path, request.method
        if method in ("GET", "HEAD"):
            if path in _STATIC:
                name, kind = _STATIC[path]
                data = _static(name)
                if name == "index.html":
                    data = data.replace(b"@TOKEN@", self.token.encode())
                return 200, data, kind, []
            if path == "/api/state":
                since = request.query_params.get("since", "")
                if since.isdigit():  # a page's next look: as soon as the lab changes, or in 0.5 s
                    await run_in_threadpool(self.lab.wait_change, int(since), WAIT)
                return 200, await run_in_threadpool(self.state), None, []
            if path == "/api/picture.svg":
                key, svg = await run_in_threadpool(self.picture)
                return 200, svg, "image/svg+xml", [(b"x-wvpclab-picture", key.encode())]
            if path == "/api/rules":
                key = request.query_params.get("switch", "")
                return 200, {"switch": key, "rules": await run_in_threadpool(
                    self.lab.filter_rules, key)}, None, []
            if path == "/api/leases":
                key = request.query_params.get("network", "")
                tables = await run_in_threadpool(self.lab.leases, key)
                return 200, {"network": key, "leases": tables.get(key, [])}, None, []
            return 404, {"error": f"nothing at {path}"}, None, []
        if not isinstance(body, dict):
            return 400, {"error": "bad request: the body is a JSON object"}, None, []
        if path == "/api/nic":
            return 200, await run_in_threadpool(self.set_nic, body), None, []
        if path == "/api/cable":
            return 200, await run_in_threadpool(self.cable, body), None, []
        if path == "/api/vm/add":
            return 200, await run_in_threadpool(self.add_vm, body), None, []
        if path == "/api/vm/remove":
            return 200, await run_in_threadpool(self.remove_vm, body), None, []
        if path == "/api/adapters":
            return 200, await run_in_threadpool(self.set_adapters, body), None, []
        if path == "/api/capture":
            result = await run_in_threadpool(self.capture, body)
            if isinstance(result, bytes):
                name = f"capture-{body['vm']}-eth{body['index']}.pcap"
                return 200, result, "application/vnd.tcpdump.pcap", [
                    (b"content-disposition", f'attachment; filename="{name}"'.encode())]
            return 200, result, None, []
        return 404, {"error": f"nothing to change at {path}"}, None, []

    # -- what the routes do (in worker threads) ---------------------------------------------------
    def state(self) -> dict[str, Any]:
        generation = self.lab.generation  # first: the graph is at least as new
        graph = self.lab.graph_snapshot()
        out = settings(graph)
        out["generation"] = generation
        out.update(self.sampler.sample())
        if self._key[0] != generation:  # the picture changes only with the graph
            self._key = (generation, self._picture_source(graph)[0])
        out["picture"] = self._key[1]
        out["busy"] = self.lab.changing.copy()
        out["captures"] = [f"{vm}/{i}" for vm, i in self.lab.captures_running()]
        out["time"] = time.time()
        return out

    @staticmethod
    def _picture_source(graph: Any) -> tuple[str, str]:
        """The live picture's DOT text and its key (a hash of it)."""
        from wvpclab.analysis.draw import dot_source

        source = dot_source(graph, live=True)
        return hashlib.sha1(source.encode()).hexdigest()[:16], source

    def picture(self) -> tuple[str, bytes]:
        """The live picture and its key (what ``state`` says the page should show)."""
        from wvpclab.analysis.draw import run_dot

        key, source = self._picture_source(self.lab.graph_snapshot())
        if self._svg[0] != key:
            self._svg = (key, run_dot(source, "svg"))
        return self._svg

    @staticmethod
    def _where(body: dict) -> tuple[str, int]:
        vm, index = body.get("vm"), body.get("index")
        if not isinstance(vm, str) or isinstance(index, bool) or not isinstance(index, int):
            raise UsageError("name the NIC: {\"vm\": NAME, \"index\": 0..3}")
        return vm, index

    def set_nic(self, body: dict) -> dict[str, Any]:
        vm, index = self._where(body)
        mode = body.get("mode")
        if not isinstance(mode, str):
            raise UsageError(f"set_nic: give the mode as a string ({modes.usage(':', ', ')})")
        changed = self.lab.set_nic(vm, index, mode)
        return {"changed": changed, **self._nic_now(vm, index)}

    def cable(self, body: dict) -> dict[str, Any]:
        vm, index = self._where(body)
        plugged = body.get("plugged")
        changed = self.lab.cable(vm, index, plugged)
        return {"changed": changed, **self._nic_now(vm, index)}

    def add_vm(self, body: dict) -> dict[str, Any]:
        """WVPC's Create Virtual Machine wizard: ``lab.add_vm``; the new VM's NICs as they are
        once it is up (each one's address where its guest holds one)."""
        name, pc, nics = new_vm_request(body)
        self.lab.add_vm(name, pc, nics)
        return self._vm_now(name)

    def remove_vm(self, body: dict) -> dict[str, Any]:
        vm = vm_request(body)
        self.lab.remove_vm(vm)
        return {"removed": vm}

    def set_adapters(self, body: dict) -> dict[str, Any]:
        """WVPC's "Number of network adapters": NICs added (``lab.add_nic``: Not connected, the
        lowest free numbers) or removed (``lab.remove_nic``: the highest-numbered), one change
        each. A step the lab refuses stops there: its error says how many the VM has now. The
        page stopping (the lab ending) ends it after the step under way."""
        vm, count = adapters_request(body)
        self.lab.vm(vm)  # a wrong name in the lab's words
        numbers = [nic["index"] for nic in nics_of(self.lab.graph_snapshot(), vm)]
        add, remove = adapter_steps(numbers, count)
        steps = [("add", None)] * add + [("remove", n) for n in remove]
        done = 0
        try:
            for what, n in steps:
                if self._server is not None and self._server.should_exit:
                    raise LabError("the lab's page is stopping")
                if what == "add":
                    self.lab.add_nic(vm)
                else:
                    self.lab.remove_nic(vm, n)
                done += 1
        except LabError as err:  # (some steps made: a LabError, as not all was refused)
            if not done:
                raise
            now = len(nics_of(self.lab.graph_snapshot(), vm))
            raise LabError(f"{err} ({vm} has {now} network adapter"
                           f"{'' if now == 1 else 's'} now)") from err
        return {"changed": bool(steps), **self._vm_now(vm)}

    def _vm_now(self, vm: str) -> dict[str, Any]:
        graph = self.lab.graph_snapshot()
        nics = [self._nic_now(vm, nic["index"], graph) for nic in nics_of(graph, vm)]
        return {"vm": vm, "pc": graph.nodes[vm]["pc"], "nics": nics}

    def capture(self, body: dict) -> dict[str, Any] | bytes:
        vm, index = self._where(body)
        action = body.get("action")
        if action == "start":
            path = self.lab.capture(vm, index, self.lab.run_dir / f"web-capture-{vm}-{index}.pcap")
            self._captures.add(path)
            return {"capturing": True, "file": str(path)}
        if action == "stop":  # a capture started at the prompt keeps its file
            path = self.lab.stop_capture(vm, index)
            try:
                return path.read_bytes()
            finally:
                if path in self._captures:
                    self._captures.discard(path)
                    path.unlink(missing_ok=True)
        raise UsageError("capture: the action is start or stop")

    def _nic_now(self, vm: str, index: int, graph: Any = None) -> dict[str, Any]:
        graph = graph if graph is not None else self.lab.graph_snapshot()
        nic = graph.nodes[f"{vm}/{index}"]
        client = self.lab.clients.get((vm, index))
        lease = client.lease() if client is not None else None
        return {"vm": vm, "index": index, "label": modes.label(nic),
                "cable": bool(nic.get("cable", True)),
                "address": (lease or {}).get("ip") or nic.get("ip")}
