"""The other servers of a lab spread over several machines: reaching them over ssh, and the
preflight that says, per server, what to fix before a lab can use it (``wvpclab servers FILE``).

Every remote command runs as root (``sudo -n`` first when the server's user is not root) over
``ssh -o BatchMode=yes``: a key, never a password. ``WVPCLAB_SSH_CONFIG`` names an ssh client
config file to use instead of the user's own (the tests' fake servers have theirs)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wvpclab import __version__
from wvpclab.errors import LabError
from wvpclab.model.items import Server
from wvpclab.runtime.cgroups import wrap
from wvpclab.runtime.procs import wait_ready

#: How long reaching a server may take before it counts as unreachable.
CONNECT_TIMEOUT = 5


class ServerError(LabError):
    """A server could not be reached, or a command on it failed; the message names the server."""


def code_version() -> str:
    """This wvpclab's version and a fingerprint of its code (the lab and the controller), so that
    two machines running different checkouts of the same version are told apart."""
    digest = hashlib.sha256()
    top = Path(__file__).resolve().parents[2]
    for package in ("wvpclab", "controllers"):
        for path in sorted((top / package).rglob("*.py")):
            digest.update(path.relative_to(top).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def ssh_options() -> list[str]:
    """The options every ssh to a server gets: the config file if one is named, no password
    prompt, a bounded connect and a dead connection noticed within 15 s."""
    config = os.environ.get("WVPCLAB_SSH_CONFIG")
    return [*(["-F", config] if config else []), "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={CONNECT_TIMEOUT}", "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3"]


@dataclass(frozen=True)
class Remote:
    """One server of a lab, reached over ssh."""

    server: Server
    #: The lab whose ssh sessions these are: each joins its cgroup (``wvpclab.runtime.cgroups``),
    #: once the lab has one.
    lab: Any = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.server.name

    def argv(self, command: str, *options: str) -> list[str]:
        """The ssh command line that runs ``command`` (a shell command line) as root there."""
        root = "" if self.server.user == "root" else "sudo -n "
        argv = ["ssh", *ssh_options(), *options, "-l", self.server.user, self.server.host,
                "--", f"{root}{command}" if root else command]
        return wrap(getattr(self.lab, "group", None), argv)

    def run(self, command: str, timeout: float = 30, stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """Runs a command there; ServerError naming the server if it cannot be reached, does not
        answer in ``timeout`` s or (with ``check``) fails."""
        try:
            res = subprocess.run(self.argv(command), input=stdin, capture_output=True, text=True,
                                 timeout=timeout, check=False, start_new_session=True)
        except subprocess.TimeoutExpired:
            raise ServerError(f"server {self.name} ({self.server.host}): no answer in "
                              f"{timeout:.0f} s") from None
        if res.returncode == 255:  # ssh's own failure: the connection, not the command
            raise ServerError(f"server {self.name} ({self.server.host}) cannot be reached over "
                              f"ssh as {self.server.user}: {_last_line(res.stderr)}")
        if check and res.returncode != 0:
            raise ServerError(f"server {self.name}: `{command[:60]}` failed: "
                              f"{_last_line(res.stderr or res.stdout)}")
        return res


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no message)"


# -- the preflight ---------------------------------------------------------------------------------
#: What the probe prints, one ``key=value`` a line (run as root on the server by ``bash -s``).
PROBE = r"""
echo "uid=$(id -u)"
command -v mnexec >/dev/null 2>&1 && echo mnexec=yes || echo mnexec=no
command -v nft >/dev/null 2>&1 && echo nft=yes || echo nft=no
command -v dnsmasq >/dev/null 2>&1 && echo dnsmasq=yes || echo dnsmasq=no
if ovs-vsctl --timeout=3 show >/dev/null 2>&1; then echo ovs=running; else echo ovs=down; fi
echo "ovs_version=$(ovs-vsctl --version 2>/dev/null | head -1 | awk '{print $NF}')"
tso=$(ovs-vsctl --timeout=3 get Open_vSwitch . other_config:userspace-tso-enable 2>/dev/null)
echo "tso=$(echo "$tso" | tr -d '"')"
echo "wvpclab=$(wvpclab --version 2>/dev/null | awk '{print $2}')"
echo "tun=$(test -c /dev/net/tun && echo yes || echo no)"
"""


@dataclass
class Preflight:
    """What the preflight found on a server: ``problems`` (each says what to fix) and ``facts``."""

    server: Server
    problems: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        head = f"server {self.server.name} ({self.server.user}@{self.server.host}): "
        if self.ok:
            return head + "ready (" + ", ".join(f"{k} {v}" for k, v in self.facts.items()) + ")"
        return head + f"{len(self.problems)} to fix\n" + "\n".join(f"  - {p}"
                                                                   for p in self.problems)


def local_facts() -> dict[str, str]:
    """This machine's versions, which every server must match."""
    try:
        ovs = subprocess.run(["ovs-vsctl", "--version"], capture_output=True, text=True,
                             timeout=10, check=False).stdout.split("\n", 1)[0].split()[-1]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        ovs = ""
    return {"wvpclab": code_version(), "ovs_version": ovs}


def preflight(server: Server, local: dict[str, str] | None = None,
              tunnel: bool = True) -> Preflight:
    """Checks one server: ssh with a key, root, mnexec, Open vSwitch running with userspace TSO,
    /dev/net/tun, sshd allowing Ethernet tunnels, and the same wvpclab and Open vSwitch as here."""
    result = Preflight(server)
    remote = Remote(server)
    local = local or local_facts()
    try:
        res = remote.run("bash -s", stdin=PROBE, timeout=CONNECT_TIMEOUT + 20, check=False)
    except ServerError as err:
        result.problems.append(f"{err}. It needs sshd reachable from here and this machine's "
                               f"key in {server.user}'s authorized_keys (ssh -o BatchMode=yes)")
        return result
    if res.returncode != 0 and server.user != "root":
        result.problems.append(f"{server.user} cannot become root without a password there "
                               f"(`sudo -n bash` failed: {_last_line(res.stderr)}): ssh as root, "
                               "or give the user NOPASSWD sudo")
        return result
    facts = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    if facts.get("uid") != "0":
        result.problems.append(f"commands run as uid {facts.get('uid', '?')}, not root")
    if facts.get("mnexec") != "yes":
        result.problems.append("no mnexec: run scripts/install.sh there (Debian's mininet)")
    if facts.get("nft") != "yes":
        result.problems.append("no nft (NAT engines' ingress filters): run scripts/install.sh "
                               "there (Debian's nftables)")
    if facts.get("dnsmasq") != "yes":
        result.problems.append("no dnsmasq (the LANs' DNS, the PCs' DNS relays): run "
                               "scripts/install.sh there (Debian's dnsmasq-base)")
    if facts.get("ovs") != "running":
        result.problems.append("Open vSwitch is not running: run scripts/install.sh there")
    elif facts.get("tso") != "true":
        result.problems.append("Open vSwitch runs without userspace TSO (TCP through a userspace "
                               "bridge hangs): ovs-vsctl set Open_vSwitch . "
                               "other_config:userspace-tso-enable=true, then restart it "
                               "(scripts/install.sh does both)")
    if facts.get("tun") != "yes":
        result.problems.append("no /dev/net/tun: the kernel needs TUN/TAP for the uplinks")
    for key, what in (("wvpclab", "wvpclab"), ("ovs_version", "Open vSwitch")):
        theirs, ours = facts.get(key) or "none", local.get(key) or "none"
        if theirs != ours:
            fix = ("install this checkout there and run scripts/install.sh (it puts `wvpclab` "
                   "on root's PATH)") if key == "wvpclab" else "install the same version"
            result.problems.append(f"{what} {theirs} there, {ours} here: {fix}")
    if tunnel and not result.problems:
        why = tunnel_refused(remote)
        if why:
            result.problems.append(why)
    result.facts = {"wvpclab": facts.get("wvpclab", ""),
                    "Open vSwitch": facts.get("ovs_version", "")}
    return result


def tunnel_refused(remote: Remote, timeout: float = 15) -> str | None:
    """Opens an Ethernet tunnel to the server and closes it at once: None if it opened, else what
    to fix (sshd's ``PermitTunnel``)."""
    argv = remote.argv("echo tunnel-open; sleep 20", "-o", "Tunnel=ethernet", "-w", "any:any",
                       "-o", "ExitOnForwardFailure=yes")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        wait_ready(proc, "tunnel-open", timeout, "the tunnel")
    except LabError:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        return (f"sshd refuses Ethernet tunnels ({_last_line(err)}): set `PermitTunnel yes` "
                "(or `ethernet`) in its sshd_config and reload it")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    return None


def preflight_all(servers: Iterable[Server], tunnel: bool = True) -> list[Preflight]:
    """Every server checked at once (in parallel), in the order given."""
    servers = list(servers)
    if not servers:
        return []
    local = local_facts()
    with concurrent.futures.ThreadPoolExecutor(min(8, len(servers))) as pool:
        return list(pool.map(lambda s: preflight(s, local, tunnel), servers))


__all__ = ["CONNECT_TIMEOUT", "PROBE", "Preflight", "Remote", "ServerError", "code_version",
           "local_facts", "preflight", "preflight_all", "ssh_options", "tunnel_refused"]
