"""The running lab: a validated graph becomes namespaces, veths, OVS bridges and controller flows.

``with Lab.load(path) as lab:`` builds it and tears it down on exit, also after an error or Ctrl-C.
Interfaces, bridges and ports are made in batches (one ``ip -batch``, one ``ovs-vsctl`` transaction),
not one command at a time.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
from mininet.net import Mininet
from mininet.node import Node

from controllers.flowrules import Learned, Port, Switch, explain, flows_for
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
from wvpclab.nic import MTU, Tulip21140Intf, shaping_commands, shaping_links
from wvpclab.nat import OUTSIDE, NatNic, dhcp_pool, engine_rules, pc_rules
from wvpclab.pc import LanGateway, LanServer, NatEngine, PhysicalPC
from wvpclab.procs import end, wait_ready
from wvpclab.runtime import RuntimeChanges
from wvpclab.services import READY_LINE as SERVICES_READY
from wvpclab.vm import GUEST_SYSCTLS, VirtualPC, source_routing

#: Modes this release builds; the others are refused before anything starts.
BUILT_MODES = ("none", "internal", "bridge", "shared")

#: Hardening of every interface the lab puts in the root namespace (../shared/STACK.md).
ROOT_SYSCTLS = (("ipv4", "arp_ignore", "8"), ("ipv4", "rp_filter", "1"),
                ("ipv6", "disable_ipv6", "1"))


#: Prefixes of the labs this process has started and not stopped.
_STARTED: set[str] = set()


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

    def add(self, peer: str, role: str | None, mac: str | None, owner: tuple,
            allow_spoofing: bool = False, patch: str | None = None) -> int:
        """Adds a port: ``peer`` is the interface (or, with ``patch``, this side's patch port whose
        other side is named ``patch``)."""
        number = self.free_number()
        self.ports[number] = {"port": number, "role": role, "mac": mac,
                              "allow_spoofing": allow_spoofing, "owner": owner, "peer": peer,
                              "patch": patch}
        return number

    def free_number(self) -> int:
        """The lowest OpenFlow port number not in use."""
        used = set(self.ports)
        number = 1
        while number in used:
            number += 1
        return number

    def number_of(self, owner: tuple) -> int | None:
        for number, port in self.ports.items():
            if port["owner"] == owner:
                return number
        return None


@dataclass
class _End:
    """A veth the lab makes besides guest NICs: which bridge, which node and device, its MAC, its
    root-namespace end, the role the controller gives its port, who it is, and its static address."""

    bridge: str
    node: Node
    dev: str
    mac: str
    peer: str
    role: str | None
    owner: tuple
    ip: str | None


def port_args(bridge: str, port: dict, number: int) -> list[str]:
    """``ovs-vsctl`` arguments adding one port (an interface, or one side of a patch cable)."""
    args = ["--", "add-port", bridge, port["peer"], "--", "set", "Interface", port["peer"],
            f"ofport_request={number}"]
    if port.get("patch"):
        args += ["type=patch", f"options:peer={port['patch']}"]
    return args


def lan_pool(subnet: str) -> tuple[str, str]:
    """A LAN gateway's DHCP pool: from .100 (or the subnet's middle, if smaller) to the last address
    below broadcast."""
    net = ipaddress.IPv4Network(subnet)
    start = net.network_address + max(2, min(100, net.num_addresses // 2))
    return str(start), str(net.broadcast_address - 1)


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


class Lab(RuntimeChanges):
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
        self._ends: list[_End] = []  # every veth that is not a guest NIC
        self.services: dict[str, subprocess.Popen] = {}
        self.nats: dict[tuple[str, int], NatNic] = {}
        self.cable_on: dict[tuple[str, int], bool] = {}
        self.captures: dict[tuple[str, int], tuple[subprocess.Popen, Path]] = {}
        self._counter = 0
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
            where = f"vms.{nic['vm']}.nics[{nic['index']}]"
            if nic["mode"] not in BUILT_MODES:
                out.append(f"{where}: mode {nic['mode']} is not built in this release")
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
        atexit.register(self.stop)  # a lab left running by a script is torn down at exit
        self._t0 = time.monotonic()
        try:
            self._build()
        except BaseException:
            self.stop()
            raise

    def _claim(self) -> None:
        state = cleanup.read_state(self.prefix)
        owner = cleanup.owner_running(state)
        other = (state or {}).get("name")
        if self.prefix in _STARTED or (owner and owner != os.getpid()):
            if other and other != self.name:
                raise LabError(f"lab {self.name} shares the prefix {self.prefix} with running lab "
                               f"{other}: rename one of them")
            raise LabError(f"lab {self.name} is already running (pid {owner or os.getpid()}); "
                           "stop it first, or run `wvpclab clean --force`")
        _STARTED.add(self.prefix)
        if state or cleanup.lab_bridges(self.prefix) or cleanup.lab_links(self.prefix):
            for line in cleanup.clean_prefix(self.prefix, state):
                self._say(f"stale leftovers of an earlier run of {self.name}: {line}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._save_state()

    def _save_state(self) -> None:
        shells = [n.pid for n in self._nodes.values() if n.pid]
        netns = [cleanup.netns_inode(pid) for pid in shells]
        cleanup.write_state(self.prefix, {
            "name": self.name, "owner_pid": os.getpid(), "nodes": sorted(self._nodes),
            "owner_start": cleanup.start_ticks(os.getpid()), "shells": shells,
            "netns": [i for i in netns if i is not None],
            "controller_pid": self.controller.pid if self.controller else None,
            "bridges": [b.name for b in self.bridges.values()]})

    def _build(self) -> None:
        g = self.graph
        counts = {k: len(topology.nodes_of(g, k)) for k in ("pc", "vm", "nic", "lan", "server",
                                                             "internal")}
        def n(count: int, word: str) -> str:
            return f"{count} {word}{'' if count == 1 else 's'}"

        self._say(f"building lab {self.name}: {n(counts['pc'], 'PC')}, {n(counts['vm'], 'VM')} with "
                  f"{n(counts['nic'], 'NIC')}, {n(counts['lan'], 'LAN')} with "
                  f"{n(counts['server'], 'server')}, {n(counts['internal'], 'internal network')}")
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

        # The emulated external LANs: a learning switch, a gateway (router + DHCP), the servers.
        for i, (key, lan) in enumerate(topology.nodes_of(g, "lan")):
            self.bridges[key] = Bridge(key, f"{self.prefix}-l{i}", self._dpid(0x1, i), "lan")
            self._add_gateway(key, lan)
        for key, server in topology.nodes_of(g, "server"):
            node = self.net.addHost(key, cls=LanServer)
            self._nodes[key] = node
            self._ends.append(_End(server["lan"], node, "eth0", macs.derive_adapter(key, "eth0"),
                                   self._peer("s"), None, ("server", key), server["ip"]))
        # Host adapters: wired ones through a filter switch, wireless ones straight onto their LAN.
        for i, (key, adapter) in enumerate(topology.nodes_of(g, "adapter")):
            pc = self._nodes[adapter["pc"]]
            ip = None if adapter["ip"] == "dhcp" else adapter["ip"]
            if adapter["type"] == "wired":
                self.bridges[key] = Bridge(key, f"{self.prefix}-f{i}", self._dpid(0x2, i), "filter")
                self._ends.append(_End(key, pc, adapter["name"], adapter["mac"], self._peer("h"),
                                       "host", ("adapter", key), ip))
                if adapter["lan"]:
                    self._patch(key, "uplink", None, adapter["lan"], None, None)
            else:
                # a wireless adapter: its own filter switch (MAC translation), and an access point
                # between it and the LAN that passes only frames with the adapter's MAC
                self.bridges[key] = Bridge(key, f"{self.prefix}-w{i}", self._dpid(0x4, i),
                                           "wireless")
                self._ends.append(_End(key, pc, adapter["name"], adapter["mac"], self._peer("h"),
                                       "host", ("adapter", key), ip))
                if adapter["lan"]:
                    ap = f"ap:{key}"
                    self.bridges[ap] = Bridge(ap, f"{self.prefix}-p{i}", self._dpid(0x5, i), "ap")
                    self._patch(key, "uplink", None, ap, "station", adapter["mac"])
                    self._patch(ap, "lan", None, adapter["lan"], None, None)
        # Shared networking: per shared NIC a NAT engine on a private network of its own.
        for k, (key, nic) in enumerate((k, d) for k, d in topology.nodes_of(g, "nic")
                                       if d["mode"] == "shared"):
            self._add_nat(key, nic, k)
        # Internal networks: one bridge per (PC, network) that has NICs, and its DHCP responder.
        for i, (key, net) in enumerate(topology.nodes_of(g, "internal")):
            self.bridges[key] = Bridge(key, f"{self.prefix}-i{i}", self._dpid(0x0, i), "internal",
                                       net["dhcp"])
            if net["dhcp"]:
                self._add_responder(key, net)

        self._say(f"{len(self._nodes)} nodes started ({time.monotonic() - self._t0:.2f} s); "
                  "cables and switches next")
        self._make_cables()
        self._make_bridges()
        self._configure_guests()
        self._configure_service_nodes()
        self._configure_nat()
        self._save_state()
        self._register()
        for responder in self.responders.values():
            responder.start()
        self._start_services()
        self._start_clients()
        self._started = True
        self._say(f"{len(self.bridges)} switches in force ({time.monotonic() - self._t0:.2f} s); "
                  f"waiting for {len(self.clients)} DHCP clients")
        self._wait_for_leases()
        nvm = len(topology.nodes_of(g, "vm"))
        self._say(f"lab {self.name} is up: {nvm} VM{'' if nvm == 1 else 's'}, {len(self.cables)} "
                  f"NIC{'' if len(self.cables) == 1 else 's'}, {len(self.bridges)} switches, in "
                  f"{time.monotonic() - self._t0:.2f} s")

    def _patch(self, a: str, role_a: str | None, mac_a: str | None, b: str, role_b: str | None,
               mac_b: str | None) -> None:
        """A patch cable between two bridges (no kernel interface: one datapath pass)."""
        ba, bb = self.bridges[a], self.bridges[b]
        name_a, name_b = f"{ba.name}-x{len(ba.ports)}", f"{bb.name}-x{len(bb.ports)}"
        ba.add(name_a, role_a, mac_a, ("patch", b), patch=name_b)
        bb.add(name_b, role_b, mac_b, ("patch", a), patch=name_a)

    def _dpid(self, kind: int, index: int) -> int:
        return (0x5776 << 48) | (kind << 40) | (int(self.prefix[2:], 16) << 20) | index

    def _peer(self, letter: str) -> str:
        """A fresh root-namespace interface name: ``wvXXX-`` + letter + count."""
        self._counter += 1
        return f"{self.prefix}-{letter}{self._counter}"

    def _add_gateway(self, key: str, lan: dict) -> None:
        """A LAN's gateway at .1: its router and, unless ``dhcp: false``, its DHCP server."""
        assert self.net is not None
        name = f"gw.{key}"
        node = self.net.addHost(name, cls=LanGateway)
        self._nodes[name] = node
        self._ends.append(_End(key, node, "eth0", macs.derive_adapter(name, "eth0"),
                               self._peer("g"), None, ("gateway", key), lan["gateway"]))
        if lan["dhcp"]:
            gw = ipaddress.IPv4Interface(lan["gateway"])
            self.responders[key] = Responder(
                key=key, node=node, dev="eth0", network=lan["subnet"], server_ip=str(gw.ip),
                pool=lan_pool(lan["subnet"]), files=self.run_dir / f"dhcp-{key}",
                router=str(gw.ip), exclude=tuple(self._static_on_lan(key)))

    def _static_on_lan(self, lan: str) -> list[str]:
        g = self.graph
        out = [d["ip"] for _, d in topology.nodes_of(g, "server") if d["lan"] == lan]
        out += [d["ip"] for _, d in topology.nodes_of(g, "adapter")
                if d["lan"] == lan and d["ip"] != "dhcp"]
        for _, nic in topology.nodes_of(g, "nic"):
            if nic["mode"] == "bridge" and nic["ip"]:
                adapter = g.nodes[f"{g.nodes[nic['vm']]['pc']}/{nic['target']}"]
                if adapter["lan"] == lan:
                    out.append(nic["ip"])
        return [str(ipaddress.IPv4Interface(x).ip) for x in out]

    def _add_responder(self, key: str, net: dict) -> None:
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
        self._ends.append(_End(key, node, "eth0",
                               macs.derive_adapter(net["pc"], f"dhcp/{net['name']}"),
                               self._peer("d"), "dhcp", ("dhcp", key),
                               str(topology.INTERNAL_SERVER)))

    def _add_nat(self, key: str, nic: dict, k: int) -> None:
        """A shared NIC's NAT engine: its node, its private network's switch, its DHCP server."""
        assert self.net is not None
        pc = self.graph.nodes[nic["vm"]]["pc"]
        subnet = self.graph.nodes[pc]["nat_subnet"]
        pool = dhcp_pool(subnet)
        guest_ip = str(ipaddress.IPv4Interface(nic["ip"]).ip) if nic["ip"] else pool[0]
        nat = NatNic(nic["vm"], nic["index"], k, subnet, guest_ip, tuple(nic["forward"]))
        node = self.net.addHost(nat.node, cls=NatEngine)
        self._nodes[nat.node] = node
        self.nats[(nic["vm"], nic["index"])] = nat
        bkey = f"nat:{key}"
        self.bridges[bkey] = Bridge(bkey, f"{self.prefix}-a{k}", self._dpid(0x3, k), "internal",
                                    True)
        inside = str(nat.inside.ip)
        self.responders[bkey] = Responder(
            key=bkey, node=node, dev="eth0", network=subnet, server_ip=inside, pool=pool,
            files=self.run_dir / f"dhcp-nat-{nic['vm']}-{nic['index']}", router=inside,
            dns=(inside,), exclude=(guest_ip,) if nic["ip"] else ())
        self._ends.append(_End(bkey, node, "eth0", macs.derive_adapter(nat.node, "eth0"),
                               self._peer("a"), "dhcp", ("nat", key), str(nat.inside)))

    def _gateway_for(self, nic: dict) -> str | None:
        """The router a NIC with a static address uses, as DHCP would have told it: the LAN's
        gateway when bridged, the NAT engine when shared, none on an internal network."""
        if nic["mode"] == "shared":
            return str(self.nats[(nic["vm"], nic["index"])].inside.ip)
        if nic["mode"] == "bridge":
            lan = self.graph.nodes[self._nic_bridge(nic)]["lan"]
            if lan:
                return str(ipaddress.IPv4Interface(self.graph.nodes[lan]["gateway"]).ip)
        return None

    def _nic_bridge(self, nic: dict) -> str | None:
        """The bridge key a NIC's cable plugs into, or None (Not connected)."""
        pc = self.graph.nodes[nic["vm"]]["pc"]
        if nic["mode"] in ("internal", "bridge"):
            return f"{pc}/{nic['target']}"
        if nic["mode"] == "shared":
            return f"nat:{nic['vm']}/{nic['index']}"
        return None

    def _make_cables(self) -> None:
        """Every NIC, adapter, gateway, server and responder: a veth whose inner end is in its node
        (name, MAC, MTU) and whose other end is in the root namespace, hardened, up unless the NIC is
        Not connected — in one ``ip -batch``."""
        lines, up = [], []
        nics = topology.nodes_of(self.graph, "nic")
        # Both ends are made at once, the inner end directly in its namespace (moving an interface
        # there afterwards costs ~18 ms of RCU wait each).
        for _, nic in nics:
            vm = self._nodes[nic["vm"]]
            peer = self._peer("n")
            dev = f"eth{nic['index']}"
            lines.append(f"link add name {peer} mtu {MTU} type veth peer name {dev} "
                         f"address {nic['mac']} mtu {MTU} netns {vm.pid}")
            self.cables[(nic["vm"], nic["index"])] = peer
            if nic["mode"] != "none":
                up.append(f"link set {peer} up")
        for end in self._ends:
            lines.append(f"link add name {end.peer} mtu {MTU} type veth peer name {end.dev} "
                         f"address {end.mac} mtu {MTU} netns {end.node.pid}")
            up.append(f"link set {end.peer} up")
        for nat in self.nats.values():  # transit links: both ends in namespaces, none in the root
            pc = self._nodes[self.graph.nodes[nat.vm]["pc"]]
            lines.append(f"link add name {OUTSIDE} netns {self._nodes[nat.node].pid} mtu {MTU} "
                         f"type veth peer name {nat.pc_dev} netns {pc.pid} mtu {MTU}")
        if not lines:
            return
        _run(["ip", "-batch", "-"], "\n".join(lines) + "\n")
        for peer in list(self.cables.values()) + [end.peer for end in self._ends]:
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
        """All bridges and their ports in one ``ovs-vsctl`` transaction: filter and internal switches
        in secure fail mode under our controller on loopback, LAN switches as plain learning switches
        (standalone, NORMAL); all on the userspace datapath."""
        if not self.bridges:
            return
        assert self.controller is not None
        for end in self._ends:
            self.bridges[end.bridge].add(end.peer, end.role, end.mac, end.owner)
        for _, nic in topology.nodes_of(self.graph, "nic"):
            key = self._nic_bridge(nic)
            if key is not None:
                self.bridges[key].add(self.cables[(nic["vm"], nic["index"])], "guest", nic["mac"],
                                      (nic["vm"], nic["index"]), nic["allow_mac_spoofing"])
        args: list[str] = []
        for br in self.bridges.values():
            args += self._bridge_args(br)
        for br in self.bridges.values():
            for number, port in br.ports.items():
                args += port_args(br.name, port, number)
        cleanup.ovs(*args[1:])
        names = [br.name for br in self.bridges.values()]
        if not cleanup.wait_until(lambda: all(os.path.exists(f"/sys/class/net/{n}") for n in names),
                                  10):
            raise LabError("Open vSwitch did not create the bridges' ports in 10 s")
        for name in names:  # the bridge's own (internal) port stays down; harden it anyway
            harden_root_interface(name)

    def _bridge_args(self, br: Bridge) -> list[str]:
        """``ovs-vsctl`` arguments creating one bridge: LAN switches standalone (NORMAL), the others
        secure under our controller on loopback; all on the userspace datapath."""
        assert self.controller is not None
        args = ["--", "add-br", br.name,
                "--", "set", "Bridge", br.name, "datapath_type=netdev",
                f"other-config:datapath-id={br.dpid:016x}",
                "other-config:disable-in-band=true", f"external-ids:wvpclab-lab={self.name}"]
        if br.kind == "lan":
            return args + ["fail_mode=standalone"]
        return args + ["fail_mode=secure", "protocols=OpenFlow13",
                       "--", f"--id=@c{br.dpid:x}", "create", "Controller",
                       f"target=\"{self.controller.target}\"", "max_backoff=1000",
                       "--", "set", "Bridge", br.name, f"controller=@c{br.dpid:x}"]

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
                    gateway = self._gateway_for(nic)
                    ip_lines.append(f"address add {nic['ip']} dev {dev}")
                    ip_lines += source_routing(dev, nic["index"], nic["ip"], gateway)
                    if gateway:
                        ip_lines.append(f"route replace default via {gateway} dev {dev} "
                                        f"metric {100 + nic['index']}")
                ip_lines += shaping_links(dev, nic["speed"])
                tc_lines += shaping_commands(dev, nic["speed"])
            self._node_script(vm, ip_lines, tc_lines, sysctls)

    def _node_script(self, node: Node, ip_lines: list[str], tc_lines: list[str] = (),
                     sysctls: str = "") -> None:
        """One shell round trip in ``node``: sysctls, an ``ip -batch`` and a ``tc -batch``."""
        ipf, tcf = self.run_dir / f"{node.name}.ip", self.run_dir / f"{node.name}.tc"
        ipf.write_text("\n".join(ip_lines) + "\n")
        script = f"sysctl -qw {sysctls} && " if sysctls else ""
        script += f"ip -batch {ipf}"
        if tc_lines:
            tcf.write_text("\n".join(tc_lines) + "\n")
            script += f" && tc -batch {tcf}"
        out = node.cmd(script + " ; echo rc=$?")
        if "rc=0" not in out:
            raise LabError(f"configuring {node.name} failed: {out.strip()[:500]}")

    def _configure_service_nodes(self) -> None:
        """PCs' adapters, gateways, servers and responders: links up, static addresses, routes."""
        per_node: dict[str, list[str]] = {}
        for end in self._ends:
            lines = per_node.setdefault(end.node.name, ["link set lo up"])
            lines.append(f"link set {end.dev} up")
            if end.ip:
                lines.append(f"address add {end.ip} dev {end.dev}")
                kind, key = end.owner
                lan = self.graph.nodes[key]["lan"] if kind in ("server", "adapter") else None
                if lan:
                    gw = ipaddress.IPv4Interface(self.graph.nodes[lan]["gateway"]).ip
                    lines.append(f"route replace default via {gw} dev {end.dev}")
        for name, lines in per_node.items():
            sysctls = "net.ipv4.ip_forward=1" if name.startswith("gw.") else ""
            self._node_script(self._nodes[name], lines, sysctls=sysctls)

    def _configure_nat(self, new: list[NatNic] | None = None) -> None:
        """NAT engines (all, or the ``new`` ones) and their PCs: transit addresses, forwarding in their
        own namespaces, rules (a PC's rules are rewritten whole, for all its NAT engines)."""
        new = list(self.nats.values()) if new is None else new
        by_pc: dict[str, list[NatNic]] = {}
        for nat in new:
            by_pc.setdefault(self.graph.nodes[nat.vm]["pc"], []).append(nat)
            node = self._nodes[nat.node]
            self._node_script(node, [f"link set {OUTSIDE} up",
                                     f"address add {nat.nat_side} dev {OUTSIDE}",
                                     f"route replace default via {nat.pc_side.ip} dev {OUTSIDE}"],
                              sysctls="net.ipv4.ip_forward=1")
            self._load_rules(node, engine_rules(nat))
        for pc, nats in by_pc.items():
            node = self._nodes[pc]
            lines = []
            for nat in nats:
                lines += [f"link set {nat.pc_dev} up", f"address add {nat.pc_side} dev {nat.pc_dev}"]
            self._node_script(node, lines, sysctls="net.ipv4.ip_forward=1")
            adapters = [d["name"] for _, d in topology.nodes_of(self.graph, "adapter")
                        if d["pc"] == pc and d["lan"]]
            every = [n for n in self.nats.values() if self.graph.nodes[n.vm]["pc"] == pc]
            self._load_rules(node, pc_rules(every, adapters))

    def _load_rules(self, node: Node, rules: str) -> None:
        path = self.run_dir / f"{node.name}.rules"
        path.write_text(rules)
        out = node.cmd(f"iptables-restore < {path} ; echo rc=$?")
        if "rc=0" not in out:
            raise LabError(f"loading the firewall of {node.name} failed: {out.strip()[:500]}")

    def _start_services(self) -> None:
        """TCP/UDP echo and HTTP on every LAN server."""
        for key, _ in topology.nodes_of(self.graph, "server"):
            node = self._nodes[key]
            proc = node.popen([sys.executable, "-m", "wvpclab.services", "--name", key, "--log",
                               str(self.run_dir / f"server-{key}.log")], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
            wait_ready(proc, SERVICES_READY, 20, f"the services of {key}")
            self.services[key] = proc

    def _start_clients(self) -> None:
        """A DHCP client on every guest NIC and PC adapter without a static address, as their
        operating systems would run."""
        for key, vm in topology.nodes_of(self.graph, "vm"):
            for nic in topology.nics_of(self.graph, key):
                if nic["ip"]:
                    continue
                client = Client(key, nic["index"], vm["dhcp_client"], self._nodes[key],
                                self.run_dir / f"client-{key}-eth{nic['index']}")
                client.start()
                self.clients[(key, nic["index"])] = client
        for key, pc in topology.nodes_of(self.graph, "pc"):
            adapters = [d for _, d in topology.nodes_of(self.graph, "adapter") if d["pc"] == key]
            for index, adapter in enumerate(adapters):
                if adapter["ip"] != "dhcp" or (adapter["type"] == "wireless" and not adapter["lan"]):
                    continue
                client = Client(key, index, "udhcpc", self._nodes[key],
                                self.run_dir / f"client-{key}-{adapter['name']}",
                                dev_name=adapter["name"], source_routing=False)
                client.start()
                self.clients[(key, index)] = client

    def expects_lease(self, node: str, index: int) -> bool:
        """True when NIC ``index`` of VM ``node`` (or adapter ``index`` of PC ``node``) uses DHCP on a
        network whose DHCP server the lab runs."""
        data = self.graph.nodes[node]
        if data["kind"] == "pc":
            adapters = [d for _, d in topology.nodes_of(self.graph, "adapter") if d["pc"] == node]
            lan = adapters[index]["lan"]
            return adapters[index]["ip"] == "dhcp" and lan in self.responders
        nic = self.graph.nodes[f"{node}/{index}"]
        if nic["ip"] or nic["mode"] == "none":
            return False
        key = self._nic_bridge(nic)
        if nic["mode"] == "bridge":
            return self.graph.nodes[key]["lan"] in self.responders
        return key in self.responders

    def _wait_for_leases(self, timeout: float = 30.0) -> None:
        """Returns once every NIC that has a server holds a lease; after ``timeout``, a warning
        naming the NICs that do not."""
        waiting = [c for (vm, i), c in self.clients.items() if self.expects_lease(vm, i)]
        cleanup.wait_until(lambda: all(c.lease() for c in waiting), timeout, interval=0.05)
        missing = [f"{c.vm} {c.dev}" for c in waiting if not c.lease()]
        if missing:
            self._say(f"warning: no DHCP lease after {timeout:.0f} s for: {', '.join(missing)}")

    def registration(self, br: Bridge) -> list[dict[str, Any]]:
        """The ports, roles and MACs the controller is told for a bridge."""
        return [{k: p[k] for k in ("port", "role", "mac", "allow_spoofing")}
                for _, p in sorted(br.ports.items()) if p["role"] is not None]

    def _register(self) -> None:
        """Tells the controller every switch, port, role and MAC; returns when flows are in force."""
        assert self.controller is not None
        for br in self.bridges.values():
            if br.kind == "lan":
                continue
            try:
                self.controller.add_switch(br.dpid, br.kind, br.name, self.registration(br),
                                           dhcp_steering=br.kind == "internal"
                                           and br.key in self.responders)
            except ControllerError as err:
                raise LabError(f"switch {br.name} ({br.key}): {err}") from None

    # -- stop -------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Tears everything down: node processes (by namespace), bridges, interfaces, controller."""
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.stop)
        self.stop_captures()
        if self.controller:
            self.controller._stopping.set()  # no restarts while tearing down
        shells = [n.pid for n in self._nodes.values() if n.pid]
        cleanup.kill_namespaces(shells)
        for proc in [r.proc for r in self.responders.values()] + list(self.services.values()) + \
                [c.proc for c in self.clients.values()]:
            end(proc, signal.SIGKILL)  # already ended with their namespace: reap, close pipes
        for node in self._nodes.values():
            self._release(node)
        cleanup.wait_until(lambda: not [n for n in cleanup.lab_links(self.prefix)
                                        if n.startswith(f"{self.prefix}-n")], 10)
        cleanup.remove_bridges_and_links(self.prefix)
        if self.controller:
            self.controller.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        _STARTED.discard(self.prefix)
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

    def cable_end(self, vm: str, index: int) -> str:
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

    def port_labels(self, br: Bridge) -> dict[int, str]:
        """A name for each port of a bridge, for people."""
        labels = {}
        for number, port in br.ports.items():
            kind, key = port["owner"][0], port["owner"][1]
            if port["role"] == "guest":
                labels[number] = f"guest {kind}/eth{key}"
            elif kind == "adapter":
                adapter = self.graph.nodes[key]
                labels[number] = f"host stack ({adapter['pc']} {adapter['name']})"
            elif kind == "dhcp":
                labels[number] = "DHCP responder"
            elif kind == "patch" and key.startswith("ap:"):
                labels[number] = "uplink (access point)"
            elif kind == "patch" and self.bridges[key].kind == "lan":
                labels[number] = f"uplink (LAN {key})" if port["role"] == "uplink" \
                    else f"LAN {key}"
            elif kind == "patch":
                labels[number] = f"station ({self.graph.nodes[key]['pc']} "\
                    f"{self.graph.nodes[key]['name']})"
            else:
                labels[number] = f"{kind} {key}"
        return labels

    def filter_rules(self, key: str) -> list[str]:
        """The rules of a filter switch (``PC/ADAPTER``) or internal switch (``PC/NAME``) in words,
        from the same code that builds its flows."""
        br = self.bridges.get(key)
        if br is None or br.kind == "lan":
            have = sorted(k for k, b in self.bridges.items() if b.kind != "lan")
            raise LabError(f"no filter or internal switch {key!r} (switches: "
                           f"{', '.join(have) or 'none'})")
        ports = tuple(Port(p["port"], p["role"], p["mac"], p["allow_spoofing"])
                      for p in self.registration(br))
        learned: tuple = ()
        if br.kind == "wireless" and self.controller is not None:
            # what the controller learned from the guests' ARP and DHCP (it lives there only)
            learned = tuple(Learned(e["ip"], e["port"], e["mac"], e["how"])
                            for e in self.controller.dump(br.dpid).get("learned", []))
        switch = Switch(br.dpid, br.kind, ports,
                        br.kind == "internal" and br.key in self.responders, learned=learned)
        return explain(flows_for(switch), self.port_labels(br), learned)

    def nat_rules(self, vm: str, index: int) -> dict[str, str]:
        """The firewall and NAT rules in force for a shared NIC: its NAT engine's and its PC's, as
        ``iptables-save`` prints them in their namespaces."""
        nat = self.nats.get((vm, index))
        if nat is None:
            raise LabError(f"{vm} NIC {index} is not in shared networking (NAT) mode")
        pc = self.graph.nodes[vm]["pc"]
        return {who: self._nodes[who].cmd("iptables-save | grep -v '^#'").replace("\r\n", "\n")
                for who in (nat.node, pc)}
