"""The lab's Mininet nodes. Each configures itself: ``config`` makes it what it is (a guest's
strong-host sysctls, a router's forwarding) together with its first share of the plan, ``apply``
takes later shares (one shell round trip each), ``terminate`` ends what it owns and its namespace.

Roles (the plan's ``Host.role``): ``vm`` (VirtualPC), ``pc`` (PhysicalPC), ``gateway`` (LanGateway),
``server`` (LanServer); a NIC mode's own nodes have the class its ``Mode.roles`` names (shared's
``nat``: NatEngine, internal's ``dhcp``: DhcpResponderNode).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mininet.node import Host

from wvpclab.errors import CommandError, LabError
from wvpclab.runtime import cgroups, cleanup
from wvpclab.runtime.procs import end

#: A node without IPv6: none on the interfaces it has and on those it gets later.
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}


@dataclass
class NodeScript:
    """A node's share of a change, run in one shell round trip: its own resolver files mounted,
    sysctls, removals (which may find nothing left to remove), an ``ip -batch``, a ``tc -batch``, a
    whole firewall and its ingress filters (nftables)."""

    sysctls: dict[str, Any] = field(default_factory=dict)
    ip_removals: list[str] = field(default_factory=list)
    ip: list[str] = field(default_factory=list)
    tc: list[str] = field(default_factory=list)
    #: a repair's: the shapers may be there already (each ``tc`` line may fail, the rest run)
    tc_forced: bool = False
    firewall: str | None = None
    ingress: str = ""
    mounts: list[tuple[str, str]] = field(default_factory=list)  # (file, over) in its mount ns

    def __bool__(self) -> bool:
        return bool(self.sysctls or self.ip_removals or self.ip or self.tc
                    or self.firewall is not None or self.ingress or self.mounts)


def cmd_apart(node: Any, args: tuple) -> str:
    """Runs a command line in ``node`` as a process of its own (not in its Mininet shell); its
    stdout and stderr together, as ``cmd`` gives them."""
    line = " ".join(str(a) for a in args)
    proc = node.popen(["sh", "-c", line], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, text=True)
    try:
        return proc.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):  # mnexec -d: its own process group
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            out = proc.communicate(timeout=5)[0]
        except subprocess.TimeoutExpired:  # something else holds the pipe: leave it
            out = ""
        return out + f"\n(timed out after 120 s: {line})"


def shell_is_mine() -> bool:
    """Whether this thread may use a node's Mininet shell: only the main thread (the CLI's) does;
    the web page's changes and the lab's watch run their commands apart (``cmd_apart``), so a
    command the CLI is running in a node is never disturbed."""
    return threading.current_thread() is threading.main_thread()


class LabNode(Host):
    """A node of a lab: runs in its own network namespace, configures itself from the plan, and ends
    the processes it owns (servers, clients) when it terminates."""

    #: What makes the node what it is, set by ``config``.
    SYSCTLS: ClassVar[dict[str, Any]] = {}

    def __init__(self, name: str, run_dir: str | Path = "/tmp", ipv6: bool = True,
                 group: Any = None, **params: Any) -> None:
        """``group``: the lab's cgroup (``wvpclab.runtime.cgroups``): the node's shell and every
        process
        started in the node join it, and what they start in turn."""
        self.run_dir = Path(run_dir)
        self.ipv6 = ipv6
        self.group = group
        self.owned: dict[str, subprocess.Popen] = {}
        super().__init__(name, **params)

    def _popen(self, cmd: list[str], **params: Any) -> subprocess.Popen:
        """Mininet's one way to start a process for the node (its shell, ``popen``): in the lab's
        group."""
        return super()._popen(cgroups.wrap(self.group, cmd), **params)

    def cmd(self, *args: Any, **kwargs: Any) -> str:
        """Mininet's ``cmd`` in the main thread; from another thread (a change made from the web
        page) the command runs apart, as the shell may be busy with the CLI's."""
        if shell_is_mine():
            return super().cmd(*args, **kwargs)
        return cmd_apart(self, args)

    def config(self, script: NodeScript | None = None, **params: Any) -> dict:
        """Makes the node what it is (loopback up, its role's sysctls) and applies ``script``, in
        one round trip."""
        first = script or NodeScript()
        first.sysctls = {**self.SYSCTLS, **({} if self.ipv6 else NO_IPV6), **first.sysctls}
        first.ip.insert(0, "link set lo up")
        self.apply(first)
        return {}

    def apply(self, script: NodeScript) -> None:
        """Runs a share of a change in the node; raises CommandError naming the node on failure."""
        if not script:
            return
        try:
            self._run_script(script)
        except OSError as err:  # its files could not be written (a full disk): say which
            where = f" ({err.filename})" if err.filename else ""
            raise CommandError(f"configuring {self.name}",
                               f"{err.strerror or err}{where}") from None

    def _run_script(self, script: NodeScript) -> None:
        base = self.run_dir / self.name

        def write(path: Path, text: str) -> None:
            try:
                path.write_text(text)
            except OSError as err:  # (a failed write names no file of its own)
                raise OSError(err.errno, err.strerror, str(path)) from None

        # the node's own files over the machine's (Mininet gave it a private mount namespace)
        parts = [f"mount --bind {src} {over}" for src, over in script.mounts]
        if script.sysctls:
            parts.append("sysctl -qw " + " ".join(f"{k}={v}" for k, v in script.sysctls.items()))
        if script.ip_removals:
            path = base.with_suffix(".del.ip")
            write(path, "\n".join(script.ip_removals) + "\n")
            parts.append(f"{{ ip -force -batch {path} >/dev/null 2>&1 || true; }}")
        if script.ip:
            path = base.with_suffix(".ip")
            write(path, "\n".join(script.ip) + "\n")
            parts.append(f"ip -batch {path}")
        if script.tc:
            path = base.with_suffix(".tc")
            write(path, "\n".join(script.tc) + "\n")
            parts.append(f"{{ tc -force -batch {path} >/dev/null 2>&1 || true; }}"
                         if script.tc_forced else f"tc -batch {path}")
        if script.firewall is not None:
            path = base.with_suffix(".rules")
            write(path, script.firewall)
            parts.append(f"iptables-restore < {path}")
        if script.ingress:
            path = base.with_suffix(".nft")
            write(path, script.ingress)
            parts.append(f"nft -f {path}")
        out = self.cmd(" && ".join(parts) + " ; echo rc=$?")
        if "rc=0" not in out:
            raise CommandError(f"configuring {self.name}", out)

    def own(self, key: str, proc: subprocess.Popen) -> None:
        """Records a process this node runs (a server, a client): ``terminate`` ends it."""
        self.owned[key] = proc

    def disown(self, key: str) -> subprocess.Popen | None:
        return self.owned.pop(key, None)

    def terminate(self) -> None:
        """Ends every process in the node's namespace (its own and any a user started), then the
        shell; nothing of the node is left."""
        if self.shell and self.pid:
            cleanup.kill_namespaces([self.pid])
        self.release()

    def release(self) -> None:
        """Reaps what the node owned and its shell, and closes its terminal (after its namespace was
        ended, alone or with the others)."""
        for proc in self.owned.values():
            end(proc, grace=1)
        self.owned.clear()
        try:
            if self.shell:
                self.shell.wait(5)
        except subprocess.TimeoutExpired:
            pass
        stdin = getattr(self, "stdin", None)
        if stdin:
            try:
                stdin.close()
            except OSError:
                pass
        slave = getattr(self, "slave", None)
        if slave is not None:
            try:
                os.close(slave)
            except OSError:
                pass
            self.slave = None
        self.shell = None


class VirtualPC(LabNode):
    """A guest VM with up to four 21140A NICs (``eth0``..``eth3``): strong host (ARP only for the
    NIC's own address; replies leave by the NIC a packet came in on), never a router."""

    SYSCTLS: ClassVar[dict[str, Any]] = {
        "net.ipv4.conf.all.arp_ignore": 1,
        "net.ipv4.conf.all.arp_announce": 2,
        "net.ipv4.conf.all.rp_filter": 0,
        "net.ipv4.conf.default.rp_filter": 0,
        "net.ipv4.ip_forward": 0,
    }

    def __init__(self, name: str, pc: str | None = None, **params: Any) -> None:
        self.pc_name = pc
        super().__init__(name, **params)

    def nics(self) -> list:
        """The VM's NICs in order."""
        return [intf for _, intf in sorted(self.intfs.items()) if intf.name != "lo"]

    def nic(self, index: int):
        """NIC ``index`` (0..3)."""
        for intf in self.nics():
            if getattr(intf, "index", None) == index:
                return intf
        raise LabError(f"{self.name} has no NIC {index}")


class PhysicalPC(LabNode):
    """The physical PC running Windows Virtual PC: its own IP stack, one interface per host adapter,
    and the transit links of its NAT engines, which it routes (its firewall drops anything else)."""

    SYSCTLS: ClassVar[dict[str, Any]] = {"net.ipv4.ip_forward": 1}

    def __init__(self, name: str, pc: str | None = None, **params: Any) -> None:
        super().__init__(name, **params)


class LanGateway(LabNode):
    """An emulated LAN's gateway at the subnet's .1: its router and (unless ``dhcp: false``) its
    DHCP server. Named ``gw.LAN``."""

    #: a router that tells no host to go round it (the internet's core and gateways share a switch)
    SYSCTLS: ClassVar[dict[str, Any]] = {"net.ipv4.ip_forward": 1,
                                         "net.ipv4.conf.all.send_redirects": 0,
                                         "net.ipv4.conf.default.send_redirects": 0}

    def __init__(self, name: str, pc: str | None = None, **params: Any) -> None:
        super().__init__(name, **params)


class LanServer(LabNode):
    """A plain host on an emulated LAN answering TCP/UDP echo (port 7) and HTTP (port 80)."""

    def __init__(self, name: str, pc: str | None = None, **params: Any) -> None:
        super().__init__(name, **params)


class NatEngine(LabNode):
    """One shared NIC's NAT engine (``nat.VM.N``): the guest's gateway, DHCP and DNS address (.254),
    MASQUERADE and a stateful firewall onto a transit link into the PC."""

    SYSCTLS: ClassVar[dict[str, Any]] = {"net.ipv4.ip_forward": 1}

    def __init__(self, name: str, pc: str | None = None, **params: Any) -> None:
        super().__init__(name, **params)


class DhcpResponderNode(LabNode):
    """The node of an internal network's built-in DHCP server (``dhcp.PC.NAME``)."""

    def __init__(self, name: str, pc: str | None = None, **params: Any) -> None:
        super().__init__(name, **params)


class _Roles(dict):
    """The node class of each plan role: the topology's own here, a mode's as its ``roles`` name
    it (imported the first time a node of the role starts)."""

    def __missing__(self, role: str) -> type[LabNode]:
        from wvpclab.model import modes

        for mode in modes.MODES.values():
            if role in mode.roles:
                module, _, name = mode.roles[role].rpartition(".")
                self[role] = getattr(importlib.import_module(module), name)
                return self[role]
        raise KeyError(role)


#: The node class of each plan role (a mode's added when first asked for).
ROLES: dict[str, type[LabNode]] = _Roles(vm=VirtualPC, pc=PhysicalPC, gateway=LanGateway,
                                         server=LanServer)
#: The roles of the topology's own nodes (not those a mode or a LAN adds).
TOPOLOGY_ROLES = ("vm", "pc", "server")


__all__ = ["ROLES", "TOPOLOGY_ROLES", "DhcpResponderNode", "LabNode", "LanGateway", "LanServer",
           "NatEngine", "NodeScript", "PhysicalPC", "VirtualPC"]
