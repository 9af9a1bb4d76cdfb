"""Names in a lab: each node's own resolver files, and its DNS servers (dnsmasq, from the
distribution).

Every node of a lab resolves with files of its own, bind-mounted over ``/etc/resolv.conf``,
``/etc/hosts`` and ``/etc/nsswitch.conf`` in its own mount namespace (Mininet gives each node one,
private: nothing mounted there reaches the machine). The machine's ``/etc/resolv.conf`` and
``/etc/hosts`` are never read for lab names nor written. A node's ``resolv.conf`` is made of
parts, one file each in its directory: ``0-static`` (its static settings, from the plan) and one per
interface that holds a DHCP lease (written by the DHCP client's hook, which also puts them
together). The files live in ``/run/wvpclab/PREFIX.dns/``, readable by all: dnsmasq reads its
names there after it dropped root, and so does any program in a node.

DNS servers:
- a LAN gateway's answers for every name of the lab (``lab`` file: servers, gateways, PCs' static
  adapters) and for the hostnames the LAN's DHCP clients sent with their leases (``leases``, written
  by the LAN's DHCP server), both in a directory dnsmasq watches; any other name is NXDOMAIN.
- a PC's is WVPC's DNS relay for its shared NICs: its NAT engines send their guests' queries to it
  (the engine's address .254 is the DNS server the guest leased), and it asks the PC's own
  resolver, from the PC's own address.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wvpclab.errors import LabError
from wvpclab.runtime import logs, rundir
from wvpclab.runtime.procs import end

DNSMASQ = "dnsmasq"
#: What dnsmasq logs once it listens.
READY = "started, version"
#: Log lines dnsmasq queues while its log pipe is full (its most); then it drops them.
LOG_QUEUE = 100
#: The resolver options every node gets: a dead server costs seconds, not half a minute.
OPTIONS = "options timeout:2 attempts:2\n"


dns_dir = rundir.dns_dir


def parts_dir(base: Path, node: str) -> Path:
    """The parts a node's ``resolv.conf`` is made of."""
    return base / node


def resolv_conf(base: Path, node: str) -> Path:
    return base / f"{node}.resolv.conf"


def hosts_file(base: Path, node: str) -> Path:
    return base / f"{node}.hosts"


def names_dir(base: Path, node: str) -> Path:
    """The directory a LAN gateway's DNS server watches: ``lab`` and ``leases``."""
    return base / f"names+{node}"


def nameserver_lines(servers: tuple[str, ...] | list[str]) -> str:
    return "".join(f"nameserver {s}\n" for s in servers)


def write_atomic(path: Path, text: str, tmp_dir: Path | None = None) -> None:
    """Writes a file whole (a reader never sees half of it); the temporary file is made in
    ``tmp_dir`` (a directory dnsmasq does not watch) or beside it."""
    tmp = (tmp_dir or path.parent) / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def compose(base: Path, node: str) -> None:
    """Puts a node's ``resolv.conf`` together from its parts, in place (it is bind-mounted: a new
    file would not be seen in the node), under the lock the DHCP client's hook takes too."""
    parts = parts_dir(base, node)
    with open(f"{parts}.lock", "w", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = "".join(p.read_text() for p in sorted(parts.iterdir()))
        with open(resolv_conf(base, node), "w", encoding="ascii") as f:
            f.write(text + OPTIONS)


def hosts_text(node: str, own: tuple[str, ...]) -> str:
    """A node's ``/etc/hosts``: localhost, and its own name for its static addresses (127.0.1.1
    without one, as Debian does)."""
    mine = "".join(f"{ip}\t{node}\n" for ip in own) or f"127.0.1.1\t{node}\n"
    return "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" + mine


def prepare(base: Path, node: str, nameservers: tuple[str, ...], own: tuple[str, ...],
            new: bool = False) -> None:
    """A node's resolver files: its static nameservers, its ``resolv.conf`` and ``/etc/hosts``
    (both written in place: they are mounted in the node). A ``new`` node has no lease yet: its
    ``resolv.conf`` is its static part alone (a node costs few file operations: a lab has
    thousands)."""
    parts = parts_dir(base, node)
    static = nameserver_lines(nameservers)
    parts.mkdir(mode=0o755, exist_ok=True)
    if new:
        (parts / "0-static").write_text(static)
        resolv_conf(base, node).write_text(static + OPTIONS)
    else:
        write_atomic(parts / "0-static", static, base)  # (its temporary file outside parts)
        compose(base, node)
    with open(hosts_file(base, node), "w", encoding="ascii") as f:
        f.write(hosts_text(node, own))


def nsswitch_text(machine: str) -> str | None:
    """The machine's ``nsswitch.conf`` with hosts looked up in files, then DNS: no other source
    (a local daemon of the machine's) answers for a node. None when the machine's says just that
    already (Debian's default): nodes use it as it is."""
    hosts = [line.split()[1:] for line in machine.splitlines() if line.startswith("hosts:")]
    if hosts == [["files", "dns"]]:
        return None
    lines = [line for line in machine.splitlines() if not line.startswith("hosts:")]
    return "\n".join([*lines, "hosts:          files dns"]) + "\n"


def prepare_lab(base: Path) -> None:
    """The lab's name directory and the nodes' ``nsswitch.conf``."""
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    try:
        machine = Path("/etc/nsswitch.conf").read_text()
    except OSError:
        return
    text = nsswitch_text(machine)
    if text is not None:
        write_atomic(base / "nsswitch.conf", text)


def mounts(base: Path, node: str) -> list[tuple[str, str]]:
    """What a node mounts over the machine's files (in its own mount namespace)."""
    out = [(str(resolv_conf(base, node)), "/etc/resolv.conf"),
           (str(hosts_file(base, node)), "/etc/hosts")]
    if (base / "nsswitch.conf").exists():  # (the machine's looks up hosts otherwise)
        out.append((str(base / "nsswitch.conf"), "/etc/nsswitch.conf"))
    return out


def names_text(names: tuple[tuple[str, str], ...]) -> str:
    return "".join(f"{ip}\t{name}\n" for name, ip in names)


def log_path(run_dir: Path, node: str) -> Path:
    """Where a node's DNS server's log goes (capped: ``logs.CAP``, one older file kept)."""
    return run_dir / f"dns+{node}.log"


def holders_path(base: Path) -> Path:
    """The lab's nodes and the hardware addresses each leases with (read by the LANs' DHCP
    servers: a node's name is its own NICs' alone)."""
    return base / "holders"


def holders(plan: Any) -> dict[str, frozenset[str]]:
    """Every node of a plan, with the hardware addresses of its DHCP clients' NICs (lower case;
    none for a node that leases nothing)."""
    from wvpclab.model.items import DhcpClient, Host, Veth

    out: dict[str, set[str]] = {name: set() for name in plan.of(Host)}
    for c in plan.of(DhcpClient).values():
        veth = plan.get(Veth, (c.node, c.dev))
        if veth is not None and veth.mac:
            out.setdefault(c.node, set()).add(veth.mac.lower())
    return {name: frozenset(macs) for name, macs in out.items()}


def holders_text(nodes: dict[str, frozenset[str]]) -> str:
    """One line a node: its name (lower case), then its hardware addresses."""
    return "".join(" ".join([name.lower(), *sorted(macs)]) + "\n"
                   for name, macs in sorted(nodes.items()))


def read_holders(path: Path) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if words := line.split():
            out[words[0]] = out.get(words[0], frozenset()) | frozenset(words[1:])
    return out


def write_holders(base: Path, plan: Any) -> None:
    """Writes the plan's nodes for the DHCP servers, when they changed."""
    text = holders_text(holders(plan))
    path = holders_path(base)
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    write_atomic(path, text)


def command(node: str, listen: str, relay: bool, base: Path, run_dir: Path,
            relay_to: str | None = None) -> list[str]:
    """dnsmasq's command line: DNS only (no DHCP), in the foreground, no file of the machine's
    read, root dropped after binding, its log on its stderr (``DnsServer`` caps it)."""
    cmd = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-hosts",
           "--user=nobody", "--group=nogroup", "--pid-file",
           # its log to its stderr, a pipe the lab reads into a capped file (logs.Pump); when the
           # pipe is full it drops lines rather than wait (--log-async): a query flood costs lines
           "--log-facility=-", f"--log-async={LOG_QUEUE}", "--log-queries",
           "--no-negcache", "--local-ttl=0"]
    if relay:
        # the NAT engines' transit links (nat0, nat1, ... also those added later)
        cmd += ["--bind-dynamic", "--interface=nat*", "--except-interface=lo",
                f"--resolv-file={relay_to}"]
    else:
        cmd += ["--bind-interfaces", f"--listen-address={listen}", "--no-resolv",
                "--local=/#/", f"--hostsdir={names_dir(base, node)}"]
    return cmd


@dataclass
class DnsServer:
    """A node's running dnsmasq. Its log (its stderr) is read into ``log``, capped at ``cap``
    bytes with one older file kept."""

    node_name: str
    node: Any
    cmd: list[str]
    log: Path
    cap: int = logs.CAP
    proc: subprocess.Popen | None = field(default=None, repr=False)
    pump: logs.Pump | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def start(self) -> None:
        """Starts dnsmasq (``wait`` waits until it answers: several start at once). Its log goes
        on where the last one's ended."""
        self.proc = self.node.popen(self.cmd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.pump = logs.Pump(self.proc.stderr, logs.CappedFile(self.log, self.cap),
                              READY.encode(), name=f"wvpclab-dns-log-{self.node_name}")
        self.pump.start()

    def wait(self, timeout: float = 10) -> None:
        """Returns once dnsmasq says it started (it listens by then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pump is not None and self.pump.seen.wait(0.02):
                return
            if self.proc is None or self.proc.poll() is not None:
                if self.pump is not None:
                    self.pump.join(1)
                err = self.pump.tail.splitlines()[-1] if self.pump and self.pump.tail else ""
                raise LabError(f"the DNS server of {self.node_name} exited while starting: "
                               f"{err or 'see ' + str(self.log)}")
        raise LabError(f"the DNS server of {self.node_name} did not start in {timeout:.0f} s")

    def stop(self) -> None:
        end(self.proc, signal.SIGTERM, grace=5)
        if self.pump is not None:
            self.pump.join(5)  # (its pipe ends with dnsmasq)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()


__all__ = [
    "DnsServer",
    "command",
    "compose",
    "dns_dir",
    "holders",
    "holders_path",
    "holders_text",
    "log_path",
    "mounts",
    "names_dir",
    "names_text",
    "nsswitch_text",
    "prepare",
    "prepare_lab",
    "read_holders",
    "resolv_conf",
    "write_atomic",
    "write_holders",
]
