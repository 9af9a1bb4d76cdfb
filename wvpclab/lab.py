"""The running lab: a validated graph becomes namespaces, veths, OVS bridges and controller flows.

``with Lab.load(path) as lab:`` builds it and tears it down on exit, also after an error or Ctrl-C.
Interfaces, bridges and ports are made in batches (one ``ip -batch``, one ``ovs-vsctl`` transaction),
not one command at a time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
from mininet.net import Mininet
from mininet.node import Node

from wvpclab import cleanup, macs, topology
from wvpclab.controller import Controller, ControllerError
from wvpclab.dhcp.service import (
    INTERNAL_NETWORK,
    INTERNAL_POOL,
    Client,
    DhcpResponderNode,
    Responder,
    internal_exclusions,
)
from wvpclab.procs import process_alive
from wvpclab.nic import MTU, Tulip21140Intf, shaping_commands, shaping_links
from wvpclab.pc import PhysicalPC
from wvpclab.vm import GUEST_SYSCTLS, VirtualPC, source_routing

#: Modes this release builds; the others are refused before anything starts.
BUILT_MODES = ("none", "internal")

#: Hardening of every interface the lab puts in the root namespace (../shared/STACK.md).
ROOT_SYSCTLS = (("ipv4", "arp_ignore", "8"), ("ipv4", "rp_filter", "1"),
                ("ipv6", "disable_ipv6", "1"))


class LabError(RuntimeError):
    """The lab cannot start or cannot do what was asked; the message says why and what to do."""


@dataclass
class Bridge:
    """An OVS bridge of the lab: its name, datapath id, kind and ports (OpenFlow number -> the port's
    registration: role, mac, allow_spoofing, and ``owner``, a (vm, index) NIC or ("dhcp", key))."""

    key: str
    name: str
    dpid: int
    kind: str
    dhcp: bool = False
    ports: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, peer: str, role: str, mac: str, owner: tuple, allow_spoofing: bool = False) -> int:
        number = len(self.ports) + 1
        self.ports[number] = {"port": number, "role": role, "mac": mac,
                              "allow_spoofing": allow_spoofing, "owner": owner, "peer": peer}
        return number


def _run(cmd: list[str], stdin: str | None = None, timeout: float = 60) -> str:
    res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise LabError(f"{cmd[0]} {' '.join(cmd[1:3])} failed: {res.stderr.strip()[:500]}")
    return res.stdout


def preflight() -> None:
    """Root, mnexec and a running Open vSwitch with userspace TSO; else one line saying what to run."""
    if os.geteuid() != 0:
        raise LabError("a lab needs root (namespaces, Open vSwitch): run it with sudo, or `make lab`")
    for tool in ("mnexec", "ovs-vsctl", "ip", "tc"):
        if not shutil.which(tool):
            raise LabError(f"{tool} is not installed: run `make install` (scripts/install.sh)")
    res = subprocess.run(["ovs-vsctl", "--timeout=5", "get", "Open_vSwitch", ".",
                          "other_config:userspace-tso-enable"], capture_output=True, text=True,
                         timeout=15)
    if res.returncode != 0:
        raise LabError("Open vSwitch is not running: run `make install` (scripts/install.sh) to "
                       "start it")
    if res.stdout.strip() != '"true"':
        raise LabError("Open vSwitch runs without userspace TSO (TCP would hang): run `make install`"
                       " (scripts/install.sh), which enables it and restarts ovs-vswitchd")


def harden_root_interface(name: str) -> None:
    """No ARP answers, strict reverse-path filter and no IPv6 on a root-namespace lab interface."""
    for family, key, value in ROOT_SYSCTLS:
        with open(f"/proc/sys/net/{family}/conf/{name}/{key}", "w", encoding="ascii") as f:
            f.write(value)


class Lab:
    """A running Windows Virtual PC lab built from a validated topology graph."""

    def __init__(self, graph: nx.Graph, quiet: bool = False) -> None:
        errors = topology.validate(graph)
        if errors:
            raise topology.TopologyError(errors)
        self.graph = graph
        self.name: str = graph.graph["name"]
        self.prefix = cleanup.prefix_for(self.name)
        self.run_dir = cleanup.run_dir(self.prefix)
        self.quiet = quiet
        self.net: Mininet | None = None
        self.controller: Controller | None = None
        self.bridges: dict[str, Bridge] = {}
        self.cables: dict[tuple[str, int], str] = {}  # (vm, index) -> root-namespace end
        self._nodes: dict[str, Node] = {}
        self.responders: dict[str, Responder] = {}
        self.clients: dict[tuple[str, int], Client] = {}
        self._service_ends: list[tuple[str, Node, str, str]] = []  # (key, node, mac, root end)
        self._started = False
        self._t0 = 0.0

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> Lab:
        """A lab for a topology file (validated; nothing started until ``start`` or ``with``)."""
        return cls(topology.load(path), **kwargs)

    # -- context manager ----------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _say(self, message: str) -> None:
        if not self.quiet:
            print(f"wvpclab: {message}", file=sys.stderr, flush=True)

    # -- start ------------------------------------------------------------------------------------------
    def unbuilt(self) -> list[str]:
        """Key paths of NICs whose mode this release does not build."""
        out = []
        for key, nic in topology.nodes_of(self.graph, "nic"):
            if nic["mode"] not in BUILT_MODES:
                what = "shared networking (NAT)" if nic["mode"] == "shared" else "bridge mode"
                out.append(f"vms.{nic['vm']}.nics[{nic['index']}]: {what} is not built yet in "
                           "this release")
        return out

    def start(self) -> None:
        """Builds and starts the lab; returns when every switch's flows are in force. On any failure
        it tears down what it built and raises with the first cause."""
        if self._started:
            raise LabError(f"lab {self.name} is already started")
        problems = self.unbuilt()
        if problems:
            raise LabError("cannot start:\n  " + "\n  ".join(problems))
        preflight()
        self._claim()
        self._started = True
        self._t0 = time.monotonic()
        try:
            self._build()
        except BaseException:
            self.stop()
            raise

    def _claim(self) -> None:
        state = cleanup.read_state(self.prefix)
        owner = (state or {}).get("owner_pid")
        if owner and int(owner) != os.getpid() and process_alive(int(owner)):
            raise LabError(f"lab {self.name} is already running (pid {owner}); stop it first, "
                           "or run `wvpclab clean --force`")
        if state or cleanup.lab_bridges(self.prefix) or cleanup.lab_links(self.prefix):
            for line in cleanup.clean_prefix(self.prefix, state):
                self._say(f"stale leftovers of an earlier run of {self.name}: {line}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._save_state()

    def _save_state(self) -> None:
        shells = [n.pid for n in self._nodes.values() if n.pid]
        netns = [cleanup.netns_inode(pid) for pid in shells]
        cleanup.write_state(self.prefix, {
            "name": self.name, "owner_pid": os.getpid(),
            "owner_start": cleanup.start_ticks(os.getpid()), "shells": shells,
            "netns": [i for i in netns if i is not None],
            "controller_pid": self.controller.pid if self.controller else None,
            "bridges": [b.name for b in self.bridges.values()]})

    def _build(self) -> None:
        g = self.graph
        skipped = [k for k, _ in topology.nodes_of(g, "adapter")] + \
                  [k for k, _ in topology.nodes_of(g, "lan")]
        if skipped:
            self._say(f"declared but not built in this release (bridge mode and LANs come later): "
                      f"{', '.join(skipped)}")
        self.controller = Controller(self.run_dir)
        self.controller.start()
        self._save_state()

        Mininet.inited = True  # skip Mininet.init(): it raises limits and sysctls machine-wide
        self.net = Mininet(build=False, controller=None, autoSetMacs=False, waitConnected=False,
                           ipBase="172.30.0.0/16")
        for key, _ in topology.nodes_of(g, "pc"):
            self._nodes[key] = self.net.addHost(key, cls=PhysicalPC)
        for key, vm in topology.nodes_of(g, "vm"):
            self._nodes[key] = self.net.addHost(key, cls=VirtualPC, pc=vm["pc"])
        self._save_state()

        # Internal networks: one bridge per (PC, network) that has NICs, and its DHCP responder.
        for i, (key, net) in enumerate(topology.nodes_of(g, "internal")):
            dpid = (0x5776 << 48) | (int(self.prefix[2:], 16) << 20) | i
            self.bridges[key] = Bridge(key, f"{self.prefix}-i{i}", dpid, "internal", net["dhcp"])
            if net["dhcp"]:
                self._add_responder(key, net, i)

        self._make_cables()
        self._make_bridges()
        self._configure_guests()
        self._save_state()
        self._register()
        for responder in self.responders.values():
            responder.start()
        self._start_clients()
        self._started = True
        self._wait_for_leases()
        nvm = len(topology.nodes_of(g, "vm"))
        self._say(f"lab {self.name} is up: {nvm} VMs, {len(self.cables)} NICs, "
                  f"{len(self.bridges)} switches, in {time.monotonic() - self._t0:.2f} s")

    def _add_responder(self, key: str, net: dict, i: int) -> None:
        """An internal network's built-in DHCP server: a node of its own on the network's bridge."""
        assert self.net is not None
        name = f"dhcp.{net['pc']}.{net['name']}"
        node = self.net.addHost(name, cls=DhcpResponderNode)
        self._nodes[name] = node
        static = [d["ip"] for _, d in topology.nodes_of(self.graph, "nic")
                  if d["mode"] == "internal" and d["ip"]
                  and f"{self.graph.nodes[d['vm']]['pc']}/{d['target']}" == key]
        self.responders[key] = Responder(
            key=key, node=node, dev="eth0", network=INTERNAL_NETWORK,
            server_ip=str(topology.INTERNAL_SERVER.ip), pool=INTERNAL_POOL,
            files=self.run_dir / f"dhcp-{net['pc']}-{net['name']}",
            exclude=internal_exclusions(static))
        self._service_ends.append((key, node, macs.derive_adapter(net["pc"], f"dhcp/{net['name']}"),
                                   f"{self.prefix}-d{i}"))

    def _make_cables(self) -> None:
        """Every NIC: a veth whose guest end is ``ethN`` in the VM (MAC, MTU) and whose other end is in
        the root namespace, hardened, up only if the NIC is connected — in one ``ip -batch``."""
        lines, up = [], []
        nics = topology.nodes_of(self.graph, "nic")
        # Both ends are made at once, the guest end directly in its namespace (moving an interface
        # there afterwards costs ~18 ms of RCU wait each).
        for k, (_, nic) in enumerate(nics):
            vm = self._nodes[nic["vm"]]
            peer = f"{self.prefix}-n{k}"
            dev = f"eth{nic['index']}"
            lines.append(f"link add name {peer} mtu {MTU} type veth peer name {dev} "
                         f"address {nic['mac']} mtu {MTU} netns {vm.pid}")
            self.cables[(nic["vm"], nic["index"])] = peer
            if nic["mode"] != "none":
                up.append(f"link set {peer} up")
        for _, node, mac, peer in self._service_ends:
            lines.append(f"link add name {peer} mtu {MTU} type veth peer name eth0 "
                         f"address {mac} mtu {MTU} netns {node.pid}")
            up.append(f"link set {peer} up")
        if not lines:
            return
        _run(["ip", "-batch", "-"], "\n".join(lines) + "\n")
        for peer in list(self.cables.values()) + [end[3] for end in self._service_ends]:
            harden_root_interface(peer)
        if up:
            _run(["ip", "-batch", "-"], "\n".join(up) + "\n")
        for _, nic in nics:
            vm = self._nodes[nic["vm"]]
            intf = Tulip21140Intf(f"eth{nic['index']}", node=vm, port=nic["index"], mac=nic["mac"],
                                  peer=self.cables[(nic["vm"], nic["index"])], speed=nic["speed"],
                                  index=nic["index"])
            intf.mode = nic["mode"]
            if nic["ip"]:
                intf.ip, intf.prefixLen = nic["ip"].split("/")

    def _make_bridges(self) -> None:
        """All bridges and their ports in one ``ovs-vsctl`` transaction (secure fail mode, userspace
        datapath, OpenFlow 1.3, our controller on loopback)."""
        if not self.bridges:
            return
        assert self.controller is not None
        args: list[str] = []
        for br in self.bridges.values():
            args += ["--", "add-br", br.name,
                     "--", "set", "Bridge", br.name, "datapath_type=netdev", "fail_mode=secure",
                     "protocols=OpenFlow13", f"other-config:datapath-id={br.dpid:016x}",
                     "other-config:disable-in-band=true",
                     f"external-ids:wvpclab-lab={self.name}",
                     "--", f"--id=@c{br.dpid:x}", "create", "Controller",
                     f"target=\"{self.controller.target}\"", "max_backoff=1000",
                     "--", "set", "Bridge", br.name, f"controller=@c{br.dpid:x}"]
        for key, _, mac, peer in self._service_ends:
            self.bridges[key].add(peer, "dhcp", mac, ("dhcp", key))
        for _, nic in topology.nodes_of(self.graph, "nic"):
            if nic["mode"] != "internal":
                continue
            br = self.bridges[f"{self.graph.nodes[nic['vm']]['pc']}/{nic['target']}"]
            br.add(self.cables[(nic["vm"], nic["index"])], "guest", nic["mac"],
                   (nic["vm"], nic["index"]), nic["allow_mac_spoofing"])
        for br in self.bridges.values():
            for number, port in br.ports.items():
                args += ["--", "add-port", br.name, port["peer"], "--", "set", "Interface",
                         port["peer"], f"ofport_request={number}"]
        cleanup.ovs(*args[1:])
        names = [br.name for br in self.bridges.values()]
        if not cleanup.wait_until(lambda: all(os.path.exists(f"/sys/class/net/{n}") for n in names),
                                  10):
            raise LabError("Open vSwitch did not create the bridges' ports in 10 s")
        for name in names:  # the bridge's own (internal) port stays down; harden it anyway
            harden_root_interface(name)

    def _configure_guests(self) -> None:
        """Per VM, one shell round trip: sysctls, links up, addresses, source routing, shaping."""
        sysctls = " ".join(f"{k}={v}" for k, v in GUEST_SYSCTLS.items())
        for key, _ in topology.nodes_of(self.graph, "vm"):
            vm = self._nodes[key]
            ip_lines, tc_lines = ["link set lo up"], []
            for nic in topology.nics_of(self.graph, key):
                dev = f"eth{nic['index']}"
                ip_lines.append(f"link set {dev} up")
                if nic["ip"]:
                    ip_lines.append(f"address add {nic['ip']} dev {dev}")
                    ip_lines += source_routing(dev, nic["index"], nic["ip"])
                ip_lines += shaping_links(dev, nic["speed"])
                tc_lines += shaping_commands(dev, nic["speed"])
            ipf, tcf = self.run_dir / f"{key}.ip", self.run_dir / f"{key}.tc"
            ipf.write_text("\n".join(ip_lines) + "\n")
            script = f"sysctl -qw {sysctls} && ip -batch {ipf}"
            if tc_lines:
                tcf.write_text("\n".join(tc_lines) + "\n")
                script += f" && tc -batch {tcf}"
            out = vm.cmd(script + " ; echo rc=$?")
            if "rc=0" not in out:
                raise LabError(f"configuring {key} failed: {out.strip()[:500]}")
        for key, node, _, _ in self._service_ends:
            responder = self.responders[key]
            out = node.cmd(f"ip link set lo up && ip link set eth0 up && ip addr add "
                           f"{topology.INTERNAL_SERVER} dev eth0 ; echo rc=$?")
            if "rc=0" not in out:
                raise LabError(f"configuring {responder.node.name} failed: {out.strip()[:500]}")

    def _start_clients(self) -> None:
        """A DHCP client on every guest NIC without a static address, as a guest OS would run."""
        for key, vm in topology.nodes_of(self.graph, "vm"):
            for nic in topology.nics_of(self.graph, key):
                if nic["ip"]:
                    continue
                client = Client(key, nic["index"], vm["dhcp_client"], self._nodes[key],
                                self.run_dir / f"client-{key}-eth{nic['index']}")
                client.start()
                self.clients[(key, nic["index"])] = client

    def expects_lease(self, vm: str, index: int) -> bool:
        """True when NIC ``index`` of ``vm`` uses DHCP on a network that has a server running."""
        nic = self.graph.nodes[f"{vm}/{index}"]
        if nic["ip"] or nic["mode"] != "internal":
            return False
        return f"{self.graph.nodes[vm]['pc']}/{nic['target']}" in self.responders

    def _wait_for_leases(self, timeout: float = 30.0) -> None:
        """Returns once every NIC that has a server holds a lease; after ``timeout``, a warning
        naming the NICs that do not."""
        waiting = [c for (vm, i), c in self.clients.items() if self.expects_lease(vm, i)]
        cleanup.wait_until(lambda: all(c.lease() for c in waiting), timeout, interval=0.05)
        missing = [f"{c.vm} eth{c.index}" for c in waiting if not c.lease()]
        if missing:
            self._say(f"warning: no DHCP lease after {timeout:.0f} s for: {', '.join(missing)}")

    def _register(self) -> None:
        """Tells the controller every switch, port, role and MAC; returns when flows are in force."""
        assert self.controller is not None
        for br in self.bridges.values():
            ports = [{k: p[k] for k in ("port", "role", "mac", "allow_spoofing")}
                     for _, p in sorted(br.ports.items())]
            try:
                self.controller.add_switch(br.dpid, br.kind, br.name, ports,
                                           dhcp_steering=br.key in self.responders)
            except ControllerError as err:
                raise LabError(f"switch {br.name} ({br.key}): {err}") from None

    # -- stop -------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Tears everything down: node processes (by namespace), bridges, interfaces, controller."""
        if not self._started:
            return
        self._started = False
        if self.controller:
            self.controller._stopping.set()  # no restarts while tearing down
        shells = [n.pid for n in self._nodes.values() if n.pid]
        cleanup.kill_namespaces(shells)
        for node in self._nodes.values():
            self._release(node)
        cleanup.wait_until(lambda: not cleanup.lab_links(self.prefix + "-n"), 10)
        cleanup.remove_bridges_and_links(self.prefix)
        if self.controller:
            self.controller.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self._say(f"lab {self.name} is down")

    @staticmethod
    def _release(node: Node) -> None:
        """Reaps a node's shell and closes its terminal, so many labs in one process leak nothing."""
        try:
            if node.shell:
                node.shell.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for fd_owner in ("stdin",):
            f = getattr(node, fd_owner, None)
            if f:
                try:
                    f.close()
                except OSError:
                    pass
        slave = getattr(node, "slave", None)
        if slave is not None:
            try:
                os.close(slave)
            except OSError:
                pass
        node.shell = None

    # -- access -----------------------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        """Any node by its topology name (VMs, PCs)."""
        try:
            return self._nodes[name]
        except KeyError:
            raise LabError(f"no node {name!r} in lab {self.name} (nodes: "
                           f"{', '.join(sorted(self._nodes)) or 'none'})") from None

    def vm(self, name: str) -> VirtualPC:
        node = self.node(name)
        if not isinstance(node, VirtualPC):
            raise LabError(f"{name!r} is not a VM")
        return node

    def pc(self, name: str) -> PhysicalPC:
        node = self.node(name)
        if not isinstance(node, PhysicalPC):
            raise LabError(f"{name!r} is not a PC")
        return node

    @property
    def nodes(self) -> dict[str, Node]:
        return dict(self._nodes)

    def bridge_of(self, pc: str, network: str) -> Bridge:
        """The bridge of internal network ``network`` on ``pc``."""
        try:
            return self.bridges[f"{pc}/{network}"]
        except KeyError:
            raise LabError(f"no internal network {network!r} on {pc}") from None

    def cable(self, vm: str, index: int) -> str:
        """The root-namespace end of a NIC's veth (the switch port)."""
        try:
            return self.cables[(vm, index)]
        except KeyError:
            raise LabError(f"{vm} has no NIC {index}") from None

    def responder(self, network: str) -> Responder:
        """The DHCP responder of internal network ``PC/NAME``."""
        try:
            return self.responders[network]
        except KeyError:
            raise LabError(f"no DHCP responder for {network!r} (networks with one: "
                           f"{', '.join(sorted(self.responders)) or 'none'})") from None

    def leases(self, network: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """The lease tables of one network (``PC/NAME``) or of every network with a responder."""
        keys = [network] if network else sorted(self.responders)
        return {key: self.responder(key).leases() for key in keys}

    def dhcp_client(self, vm: str, index: int) -> Client:
        """The DHCP client of a guest NIC (NICs with a static address have none)."""
        try:
            return self.clients[(vm, index)]
        except KeyError:
            raise LabError(f"{vm} eth{index} runs no DHCP client (static address or no such NIC)") \
                from None
