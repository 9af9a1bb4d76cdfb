"""Launcher of the wvpclab controller process (os-ken 4.2.2 ships no osken-manager).

Run as ``python -m controllers.main --openflow SOCKET --control SOCKET [--log FILE]``.

The switches reach the controller over a Unix socket in the lab's root-only run directory
(``unix:PATH`` as their controller target), never over TCP: no other local user can connect to it,
bind it first while the controller restarts, or pose as a switch.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.handlers
import os
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

READY_LINE = "wvpclab-controller ready"
APP_MODULE = "controllers.app"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m controllers.main",
        description="wvpclab's OpenFlow controller: proactive flows for filter and internal "
                    "switches, driven over a local Unix socket.")
    parser.add_argument("--openflow", required=True,
                        help="path of the Unix socket the switches connect to (mode 0600)")
    parser.add_argument("--control", required=True, help="path of the control Unix socket")
    parser.add_argument("--log", help="log file (default: warnings to stderr)")
    parser.add_argument("--ready-timeout", type=float, default=10.0,
                        help="seconds to wait for the OpenFlow listener (default 10)")
    return parser.parse_args(argv)


#: Bytes the log holds before it is rotated (one older file kept, ``LOG.1``): a guest that makes
#: the controller log (new addresses learned, refused changes) never fills the disk.
LOG_CAP = 1 << 20


class _ToLog:
    """What Python writes to stderr (a thread's traceback, a warning), as lines of the log (so it
    is capped with it)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._part = ""
        self._busy = threading.local()  # (a log write that fails must not log its failure)

    def write(self, text: str) -> int:
        if getattr(self._busy, "on", False):
            return len(text)
        self._busy.on = True
        try:
            lines = (self._part + text).split("\n")
            self._part = lines.pop()
            for line in lines:
                if line:
                    self.logger.error("%s", line)
        finally:
            self._busy.on = False
        return len(text)

    def flush(self) -> None:
        if self._part:
            self.logger.error("%s", self._part)
            self._part = ""

    def isatty(self) -> bool:
        return False


def setup_logging(log_file: str | None) -> None:
    """Send logs to `log_file` (our own at INFO, os-ken's at WARNING; capped at LOG_CAP bytes,
    one older file kept, and what Python writes to stderr with them) or warnings to stderr."""
    handler: logging.Handler
    if log_file:
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=LOG_CAP, backupCount=1)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("wvpclab").setLevel(logging.INFO if log_file else logging.WARNING)
    if log_file:
        logging.raiseExceptions = False  # a full disk loses lines; it does not stop the controller
        sys.stderr = _ToLog(logging.getLogger("wvpclab.stderr"))


class _UnixStream:
    """A Unix stream socket as os-ken's ``Datapath`` uses a TCP one: it sets TCP_NODELAY, which
    a Unix socket does not have (and needs no: it never delays small writes)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        if level != socket.IPPROTO_TCP:
            self._sock.setsockopt(level, option, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def listen_unix(path: str) -> socket.socket:
    """The OpenFlow listener: a Unix socket only root can connect to (a stale one is replaced).

    Raises:
        RuntimeError: when another process listens there or the path is something else.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise RuntimeError(f"{path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(path) == 0:
                raise RuntimeError(f"another process is listening on {path}")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock


def use_unix_listener(listener: socket.socket) -> None:
    """Make os-ken serve switches from `listener` instead of opening TCP ports.

    os-ken's OpenFlow server loop (``OpenFlowController.server_loop``) only knows TCP and TLS, and
    its ``Datapath`` sets a TCP option on every connection; this replaces the loop with one that
    accepts from the Unix socket and hands each connection to os-ken as usual.
    """
    from os_ken.controller import controller
    from os_ken.lib import hub

    class Datapath(controller.Datapath):
        """os-ken's connection to one switch, ended when the switch goes: with native threads its
        send thread waits for something to send forever, so a closed connection never reported
        itself dead (no DEAD event, two threads kept) until the controller wrote to it."""

        def _recv_loop(self) -> None:
            try:
                super()._recv_loop()
            finally:
                if self.send_q is not None:
                    self.send(b"", close_socket=True)  # wakes the send thread, which ends

    def serve_switch(sock: socket.socket, address: str) -> None:
        with contextlib.closing(Datapath(_UnixStream(sock), address)) as datapath:
            try:
                datapath.serve()
            except Exception:  # a switch's malformed message ends its connection, not ours
                logging.getLogger("wvpclab.main").exception("a switch connection failed")

    def server_loop(_self: object, *_ports: object) -> None:
        while listener.fileno() != -1:
            try:
                conn, _ = listener.accept()
            except OSError as exc:  # no file descriptors or buffers left: try again shortly
                if listener.fileno() != -1:
                    logging.getLogger("wvpclab.main").warning("accept: %s", exc)
                    time.sleep(0.1)
                continue
            hub.spawn(serve_switch, conn, listener.getsockname())

    controller.OpenFlowController.server_loop = server_loop


def configure_os_ken() -> None:
    """Set os-ken's options: no listen port of its own is ever opened (see use_unix_listener).

    os-ken opens the legacy port 6633 too when neither listen port is set; setting them keeps its
    constructor from spawning that second loop.
    """
    from os_ken import cfg

    # Importing app_manager first avoids a circular import in os-ken; it imports
    # os_ken.controller.controller, which registers the ofp_* options.
    from os_ken.base import app_manager  # noqa: F401

    conf = cfg.CONF
    conf(args=[], project="wvpclab", default_config_files=[])
    conf.set_override("ofp_listen_host", "127.0.0.1")
    conf.set_override("ofp_tcp_listen_port", 6653)
    conf.set_override("ofp_ssl_listen_port", 6653)


def wait_for_listener(threads: list[threading.Thread], timeout: float) -> None:
    """Wait until os-ken's threads run (its OpenFlow loop accepts from our socket).

    Raises:
        RuntimeError: when one of them died or they are not up within `timeout`.
    """
    deadline = time.monotonic() + timeout
    while not all(t.is_alive() for t in threads):
        if time.monotonic() > deadline:
            raise RuntimeError(f"os-ken's threads did not start within {timeout:g} s")
        time.sleep(0.02)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the controller, print the ready line, run until SIGTERM/SIGINT.

    Returns:
        The exit status (the process ends with os._exit: os-ken's threads cannot be joined).
    """
    args = parse_args(argv)
    setup_logging(args.log)
    log = logging.getLogger("wvpclab.main")
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    configure_os_ken()
    from os_ken.base.app_manager import AppManager

    from controllers.app import WvpcController
    from controllers.channel import ControlServer

    server = None
    listener = None
    status = 0
    try:
        listener = listen_unix(args.openflow)
        use_unix_listener(listener)
        manager = AppManager.get_instance()
        manager.load_apps([APP_MODULE])
        contexts = manager.create_contexts()
        threads = manager.instantiate_apps(**contexts)
        app = next(a for a in manager.applications.values() if isinstance(a, WvpcController))
        server = ControlServer(args.control, app)
        server.start()
        wait_for_listener(threads, args.ready_timeout)
        log.info("switches connect to %s, control socket %s", args.openflow, args.control)
        print(READY_LINE, flush=True)
        while not stop.wait(1.0):
            pass
    except Exception as exc:  # the command-line layer: report and exit non-zero
        if args.log:
            log.exception("controller failed")
        print(f"wvpclab-controller: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        if server is not None:
            server.close()
        if listener is not None:
            listener.close()
            try:
                os.unlink(args.openflow)
            except FileNotFoundError:
                pass
        logging.shutdown()
    return status


if __name__ == "__main__":
    exit_status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_status)  # os-ken's server threads are not daemons and cannot be stopped
