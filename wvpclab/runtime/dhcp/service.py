"""DHCP in a running lab: responder processes in their nodes, and a real client on each guest NIC.

The lab decides where they go; this module starts, restarts and reads them. Clients run with the
lab's hook (``client-hook.sh``), private pid/lease files and a state file the lab waits on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mininet.node import Host

from wvpclab.errors import LabError
from wvpclab.runtime import logs
from wvpclab.runtime.dhcp.server import READY_LINE, read_table
from wvpclab.runtime.nodes import LanGateway
from wvpclab.runtime.procs import end, wait_ready

HOOK = Path(__file__).with_name("client-hook.sh")
CLIENTS = ("udhcpc", "dhclient")


@dataclass
class Responder:
    """One network's DHCP server process, in its node, with its lease file.

    ``known``: the hardware addresses the server knows (written to a file it reads; None: everyone
    is known); the others get no new address from the last ``reserve`` free ones (None: the
    server's default). ``translators``: MACs that may send requests for other hardware addresses
    (a PC's wireless adapters on this LAN: their bridge puts the adapter's MAC on its guests'
    frames). None means the lab did not say: a LAN gateway's server then answers any sender, since
    a guest may reach it through such a bridge; every other server (internal networks, NAT
    engines: only guests' own NICs before them) answers a request only from its chaddr.
    """

    key: str
    node: Host
    dev: str
    network: str
    server_ip: str
    pool: tuple[str, str]
    files: Path  # prefix of this responder's files in the lab's run directory
    router: str | None = None
    dns: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    lease_time: int = 3600
    known: tuple[str, ...] | None = None
    reserve: int | None = None
    translators: tuple[str, ...] | None = None
    names: Path | None = None  # the LAN's DNS server's directory: lease hostnames go there
    holders: Path | None = None  # the lab's nodes and their MACs: a node's name is its own
    proc: subprocess.Popen | None = field(default=None, repr=False)
    #: held while the process is started, stopped or restarted, so that the lab's watch (which
    #: starts again a server whose process ended) never starts a second one beside a restart
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def leases_path(self) -> Path:
        return self.files.with_name(self.files.name + ".leases.json")

    @property
    def known_path(self) -> Path:
        return self.files.with_name(self.files.name + ".known")

    @property
    def log_path(self) -> Path:
        return self.files.with_name(self.files.name + ".log")

    @property
    def stats_path(self) -> Path:
        return self.files.with_name(self.files.name + ".stats.json")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "wvpclab.runtime.dhcp.server", "--iface", self.dev,
               "--network", self.network, "--server", self.server_ip,
               "--pool", f"{self.pool[0]}-{self.pool[1]}", "--leases", str(self.leases_path),
               "--log", str(self.log_path), "--stats", str(self.stats_path),
               "--lease-time", str(self.lease_time)]
        if self.router:
            cmd += ["--router", self.router]
        if self.dns:
            cmd += ["--dns", ",".join(self.dns)]
        if self.exclude:
            cmd += ["--exclude", ",".join(self.exclude)]
        if self.known is not None:
            cmd += ["--known", str(self.known_path)]
        if self.reserve is not None:
            cmd += ["--reserve", str(self.reserve)]
        if self.names is not None:
            cmd += ["--names", str(self.names)]
            if self.holders is not None:
                cmd += ["--holders", str(self.holders)]
        if self.translators:
            cmd += ["--translators", ",".join(self.translators)]
        elif self.translators is None and isinstance(self.node, LanGateway):
            cmd += ["--any-sender"]
        return cmd

    def _write_known(self) -> None:
        tmp = self.known_path.with_name(self.known_path.name + ".tmp")
        tmp.write_text("".join(f"{mac.lower()}\n" for mac in self.known or ()))
        os.replace(tmp, self.known_path)  # the server never reads half a file

    def start(self, timeout: float = 20) -> None:
        """Starts the server; returns once it listens."""
        with self.lock:
            if self.known is not None:
                self._write_known()
            with logs.for_child(self.log_path) as stderr:  # (it caps its log itself)
                self.proc = self.node.popen(self.command(), stdout=subprocess.PIPE, stderr=stderr)
            wait_ready(self.proc, READY_LINE, timeout, f"the DHCP responder of {self.key}")

    def set_known(self, macs: tuple[str, ...] | None, timeout: float = 10) -> None:
        """Changes the hardware addresses the server knows (None: everyone). A server that reads a
        known file reads it again on SIGHUP, keeping its offers; this returns once it has. Else
        (none before, or none now) it is restarted; its leases are on disk."""
        had = self.known is not None
        self.known = tuple(macs) if macs is not None else None
        if not (had and self.known is not None and self.pid is not None):
            self.restart()
            return
        read = self.stats().get("known file read", 0)
        self._write_known()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self.stats().get("known file read", 0) <= read:
            if time.monotonic() > deadline or self.pid is None:
                raise LabError(f"the DHCP responder of {self.key} did not read its known file "
                               f"again in {timeout} s (see {self.log_path})")
            time.sleep(0.02)

    def stop(self, kill: bool = False) -> None:
        """Ends the server: SIGTERM (it finishes its batch) or, with ``kill``, SIGKILL at once."""
        with self.lock:
            end(self.proc, signal.SIGKILL if kill else signal.SIGTERM, grace=10)

    def restart(self, kill: bool = False) -> None:
        with self.lock:
            self.stop(kill)
            self.start()

    def leases(self) -> list[dict[str, Any]]:
        """The lease table as the server last wrote it (one dict per record)."""
        try:
            return read_table(self.leases_path).snapshot(time.time())
        except (OSError, ValueError, KeyError):
            return []

    def stats(self) -> dict[str, int]:
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}


@dataclass
class Client:
    """A guest NIC's DHCP client process (udhcpc or dhclient)."""

    vm: str
    index: int
    kind: str
    node: Host
    files: Path
    dev_name: str | None = None  # default eth{index} (a guest NIC); a PC adapter's own name
    source_routing: bool = True  # a guest's strong-host routing; a PC routes its NAT engines too
    dns_parts: Path | None = None  # the node's resolv.conf parts: the lease's DNS servers go there
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def dev(self) -> str:
        return self.dev_name or f"eth{self.index}"

    @property
    def state_path(self) -> Path:
        return self.files.with_name(self.files.name + ".state.json")

    def command(self) -> list[str]:
        pidfile = self.files.with_name(self.files.name + ".pid")
        if self.kind == "udhcpc":
            # -f foreground; retry discovers every second, 3 at a time, pause 2 s, forever
            return ["busybox", "udhcpc", "-f", "-i", self.dev, "-s", str(HOOK), "-p", str(pidfile),
                    "-t", "3", "-T", "1", "-A", "2", "-x", f"hostname:{self.vm}"]
        conf = self.files.with_name(self.files.name + ".dhclient.conf")
        conf.write_text(f'send host-name "{self.vm}";\n'
                        "request subnet-mask, broadcast-address, routers, domain-name-servers;\n"
                        "timeout 300;\nretry 2;\ninitial-interval 1;\nbackoff-cutoff 2;\n")
        leasefile = self.files.with_name(self.files.name + ".dhclient.leases")
        # dhclient gives its script a fresh environment: pass the lab's variables with -e
        return ["dhclient", "-4", "-d", "-sf", str(HOOK), "-cf", str(conf), "-lf", str(leasefile),
                "-pf", str(pidfile), "-e", f"WVPC_STATE={self.state_path}",
                "-e", f"WVPC_INDEX={self.index}",
                "-e", f"WVPC_SOURCE_ROUTING={int(self.source_routing)}",
                "-e", f"WVPC_DNS={self.dns_parts or ''}", self.dev]

    def start(self) -> None:
        env = dict(os.environ, WVPC_STATE=str(self.state_path), WVPC_INDEX=str(self.index),
                   WVPC_SOURCE_ROUTING=str(int(self.source_routing)),
                   WVPC_DNS=str(self.dns_parts or ""))
        self.proc = self.node.popen(self.command(), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def lease(self) -> dict[str, Any] | None:
        """What the hook last wrote: ip, mask, router, lease (None before the first lease)."""
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def renew(self) -> None:
        """Asks the client to renew now (as Windows does on media connect); a released client
        starts over with DISCOVER."""
        if self.kind == "udhcpc" and self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            return
        # dhclient has no renew signal: (re)start it; it asks for its lease again (INIT-REBOOT)
        self.stop()
        self.start()

    def release(self, timeout: float = 5.0, server: str | None = None) -> None:
        """Gives the lease back (DHCPRELEASE) and deconfigures the NIC, before it moves network.
        ``server``: the lease's server. The release goes to it by unicast, and a guest that has
        not spoken to it since its lease has no ARP entry for it: the kernel would hold the
        release for ARP while the client takes the address away, and it would never leave. One
        ping first makes the entry."""
        if server is not None and self.proc is not None and self.proc.poll() is None:
            self.node.cmd(f"ping -n -q -c1 -W1 -I {self.dev} {server} >/dev/null 2>&1")
        if self.kind == "udhcpc" and self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR2)  # busybox: release, run deconfig, wait
            deadline = time.monotonic() + timeout
            while self.state_path.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            return
        self.stop()
        env = {"reason": "STOP", "interface": self.dev, "WVPC_STATE": str(self.state_path),
               "WVPC_INDEX": str(self.index), "WVPC_DNS": str(self.dns_parts or ""),
               "PATH": os.environ.get("PATH", "")}
        self.node.popen([str(HOOK)], env=env).wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
