"""Launcher of the wvpclab controller process (os-ken 4.2.2 ships no osken-manager).

Run as ``python -m controllers.main --of-port PORT --control SOCKET [--log FILE]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

READY_LINE = "wvpclab-controller ready"
LISTEN_HOST = "127.0.0.1"
APP_MODULE = "controllers.app"
_TCP_LISTEN = "0A"  # socket state in /proc/net/tcp


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m controllers.main",
        description="wvpclab's OpenFlow controller: proactive flows for filter and internal "
                    "switches, driven over a local Unix socket.")
    parser.add_argument("--of-port", type=int, required=True,
                        help="OpenFlow TCP port to listen on (127.0.0.1 only)")
    parser.add_argument("--control", required=True, help="path of the control Unix socket")
    parser.add_argument("--log", help="log file (default: warnings to stderr)")
    parser.add_argument("--ready-timeout", type=float, default=10.0,
                        help="seconds to wait for the OpenFlow listener (default 10)")
    args = parser.parse_args(argv)
    if not 1 <= args.of_port <= 65535:
        parser.error(f"--of-port {args.of_port} is not a TCP port")
    return args


def setup_logging(log_file: str | None) -> None:
    """Send logs to `log_file` (our own at INFO, os-ken's at WARNING) or warnings to stderr."""
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("wvpclab").setLevel(logging.INFO if log_file else logging.WARNING)


def _hex_to_addr(text: str) -> tuple[str, int]:
    """Decode an IPv4 ``ADDR:PORT`` field of /proc/net/tcp (address in host byte order)."""
    addr, port = text.split(":")
    octets = bytes.fromhex(addr)[::-1] if len(addr) == 8 else bytes.fromhex(addr)
    host = ".".join(map(str, octets)) if len(octets) == 4 else octets.hex()
    return host, int(port, 16)


def own_tcp_listeners() -> set[tuple[str, int]]:
    """Return the (host, port) pairs this process listens on (IPv4 and IPv6).

    Reads /proc: a socket counts when its inode is one of this process's file descriptors.
    """
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    cols = line.split()
                    if cols[3] == _TCP_LISTEN and cols[9] in inodes:
                        found.add(_hex_to_addr(cols[1]))
        except FileNotFoundError:
            continue
    return found


def configure_os_ken(of_port: int) -> None:
    """Make os-ken listen on 127.0.0.1:`of_port` only (no 0.0.0.0, no legacy 6633 listener).

    os-ken opens the legacy port only when neither listen port is set; the SSL port is used only
    with certificates, which we never give.
    """
    from os_ken import cfg

    # Importing app_manager first avoids a circular import in os-ken; it imports
    # os_ken.controller.controller, which registers the ofp_* options.
    from os_ken.base import app_manager  # noqa: F401

    conf = cfg.CONF
    conf(args=[], project="wvpclab", default_config_files=[])
    conf.set_override("ofp_listen_host", LISTEN_HOST)
    conf.set_override("ofp_tcp_listen_port", of_port)
    conf.set_override("ofp_ssl_listen_port", of_port)


def wait_for_listener(of_port: int, threads: list[threading.Thread], timeout: float) -> None:
    """Wait until os-ken listens on 127.0.0.1:`of_port`, and only there.

    Raises:
        RuntimeError: when it does not within `timeout`, its thread died (port taken), or it
            listens anywhere else.
    """
    deadline = time.monotonic() + timeout
    while True:
        listeners = own_tcp_listeners()
        stray = {x for x in listeners if x[0] != LISTEN_HOST}
        if stray:
            raise RuntimeError(f"unexpected listener(s): {sorted(stray)}")
        if (LISTEN_HOST, of_port) in listeners:
            return
        if not all(t.is_alive() for t in threads):
            raise RuntimeError(f"OpenFlow listener on {LISTEN_HOST}:{of_port} failed to start "
                               f"(port in use?)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no OpenFlow listener on {LISTEN_HOST}:{of_port} after "
                               f"{timeout:g} s")
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

    configure_os_ken(args.of_port)
    from os_ken.base.app_manager import AppManager

    from controllers.app import WvpcController
    from controllers.channel import ControlServer

    server = None
    status = 0
    try:
        manager = AppManager.get_instance()
        manager.load_apps([APP_MODULE])
        contexts = manager.create_contexts()
        threads = manager.instantiate_apps(**contexts)
        app = next(a for a in manager.applications.values() if isinstance(a, WvpcController))
        server = ControlServer(args.control, app)
        server.start()
        wait_for_listener(args.of_port, threads, args.ready_timeout)
        log.info("listening on %s:%d, control socket %s", LISTEN_HOST, args.of_port,
                 args.control)
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
        logging.shutdown()
    return status


if __name__ == "__main__":
    exit_status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_status)  # os-ken's server threads are not daemons and cannot be stopped
