"""The only builder: carries out a ``Delta`` between two plans in batches.

One ``ip -batch`` for the veths, one Open vSwitch transaction for the bridges and ports that go and
one for those that come, one shell round trip per node, one registration per switch. Start, every
runtime change and stop come through ``Realizer.apply``; nothing is created or removed by any other
path.

The order keeps every step safe: a guest gives its lease back and loses carrier before its port
goes; a port's flows go (controller) before the port does (OVS); ports come before their flows;
carrier comes back after the switch is ready; DHCP clients renew last, and the call returns once
they hold leases."""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from wvpclab.errors import CommandError, ControllerError, LabError
from wvpclab.model.items import (
    Address,
    Bridge,
    DhcpClient,
    DhcpServer,
    Dns,
    Firewall,
    Host,
    Port,
    Resolver,
    Route,
    Rule,
    Service,
    Shaper,
    Veth,
)
from wvpclab.model.plan import Delta, LabPlan
from wvpclab.runtime import cleanup, dns
from wvpclab.runtime.controller import Controller
from wvpclab.runtime.dhcp.service import Client, Responder
from wvpclab.runtime.net import (
    SWITCHES,
    LabNet,
    LabSwitch,
    NicCable,
    PatchCable,
    PortIntf,
    TransitLink,
    detach,
    link_class,
)
from wvpclab.runtime.nic import (
    MTU,
    LabIntf,
    Tulip21140Intf,
    rx_shaper,
    shaping_commands,
    shaping_links,
)
from wvpclab.runtime.nodes import ROLES, LabNode, NodeScript, VirtualPC
from wvpclab.runtime.ovs import vsctl
from wvpclab.runtime.procs import end, wait_ready, wait_until
from wvpclab.runtime.services import READY_LINE as SERVICES_READY

#: Hardening of every interface the lab puts in the root namespace (docs/architecture.md §5, What a
#: lab puts on the machine).
ROOT_SYSCTLS = (("ipv4", "arp_ignore", "8"), ("ipv4", "rp_filter", "1"),
                ("ipv6", "disable_ipv6", "1"))
#: Removing this many switch ports at once is worth expedited RCU (see ``expedited_rcu``).
EXPEDITE_FROM = 20


def harden_root_interface(name: str) -> None:
    """No ARP answers, strict reverse-path filter and no IPv6 on a root-namespace lab interface."""
    for family, key, value in ROOT_SYSCTLS:
        with open(f"/proc/sys/net/{family}/conf/{name}/{key}", "w", encoding="ascii") as f:
            f.write(value)


def ip_batch(lines: list[str], force: bool = False) -> None:
    """Runs ``ip -batch`` in the root namespace; CommandError on failure (unless ``force``)."""
    if not lines:
        return
    # its own session: a Ctrl-C at the terminal is the lab's to handle, not this helper's
    res = subprocess.run(["ip", *(["-force"] if force else []), "-batch", "-"], check=False,
                         input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120,
                         start_new_session=True)
    if res.returncode != 0 and not force:
        raise CommandError("ip -batch", res.stderr)


@contextlib.contextmanager
def expedited_rcu(ports: int) -> Iterator[None]:
    """While many switch ports go: the kernel's expedited RCU grace periods. ovs-vswitchd closes one
    packet socket per userspace port, and each close waits a full grace period (~13 ms here): 400
    ports took 5.4 s, 0.3 s expedited. Machine-wide, so only for the removal, restored after; where
    the switch cannot be written the removal is only slower."""
    path = Path("/sys/kernel/rcu_expedited")
    old = None
    if ports >= EXPEDITE_FROM:
        try:
            old = path.read_text().strip()
            if old == "0":
                path.write_text("1")
            else:
                old = None
        except OSError:
            old = None
    try:
        yield
    finally:
        if old is not None:
            with contextlib.suppress(OSError):
                path.write_text(old)


def ovs(args: list[str]) -> None:
    """One ``ovs-vsctl`` transaction (``args`` starts with ``--``); CommandError on failure."""
    if args:
        vsctl(*args[1:])


def _only_known_differs(old: DhcpServer, new: DhcpServer) -> bool:
    """Whether a server's change is only in the hardware addresses it knows (read live)."""
    return replace(old, known=new.known) == new


def _has_interface(pid: int | None, dev: str) -> bool:
    """Whether the network namespace of process ``pid`` has an interface ``dev``."""
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return False
    return any(line.split(":", 1)[0].strip() == dev for line in lines)


def show_veths(net: LabNet, plan: LabPlan, veths: Iterable[Veth], nodes: dict[str, Any],
               inner: dict[str, tuple[LabIntf, str]]) -> None:
    """Mininet interfaces for the node ends of ``veths`` (a VM's are 21140A NICs), and the links
    between two nodes; ``inner`` gets each root end's node interface and role, for its port. Only
    describes: nothing is run."""
    for v in veths:
        shaper = plan.get(Shaper, v.key)
        node = nodes[v.node]
        if v.root and isinstance(node, VirtualPC):
            index = int(v.dev[3:])
            intf = Tulip21140Intf(v.dev, node=node, port=index, mac=v.mac, peer=v.root,
                                  speed=shaper.speed if shaper else "unlimited", index=index)
        else:
            intf = LabIntf(v.dev, node, mac=v.mac)
        if v.root:
            inner[v.root] = (intf, plan.get(Host, v.node).role)
            if v.into:
                show_straight(net, v, intf, nodes)
        else:
            peer = LabIntf(v.peer_dev, nodes[v.peer])
            net.links.append(TransitLink(intf, peer))


def show_straight(net: LabNet, v: Veth, intf: LabIntf, nodes: dict[str, Any]) -> None:
    """The far end of a cable that goes straight into a node (``v.into``), and the cable."""
    assert v.into is not None
    far = LabIntf(v.into[1], nodes[v.into[0]], mac=v.into[2])
    net.links.append(NicCable(intf, far))


def show_switches(net: LabNet, plan: LabPlan, bridges: Iterable[Bridge], ports: Iterable[Port],
                  switches: dict[str, LabSwitch], inner: dict[str, tuple[LabIntf, str]],
                  make: Callable[[Bridge], LabSwitch] | None = None) -> None:
    """Mininet objects for ``bridges`` (made by ``make``: a switch here by default), ``ports``
    and the links into them (patch cables, node cables); ``switches`` holds every switch of the
    view by its key. Only describes: nothing is run."""
    for b in bridges:
        if b.key in switches:
            continue
        switch = make(b) if make else SWITCHES[b.kind](
            b.name, key=b.key, dpid=b.dpid, fail_mode="secure" if b.controlled else "standalone")
        switches[b.key] = switch
        net.switches.append(switch)
        net.nameToNode[b.name] = switch
    patches: dict[str, LabIntf] = {}
    for p in sorted(ports, key=lambda p: p.order):
        if p.ifname in switches[p.bridge].nameToIntf:
            continue
        intf = PortIntf(p.ifname, switches[p.bridge], port=p.number, mac=p.mac)
        if p.patch:
            patches[p.ifname] = intf
            other = patches.get(p.patch) or port_intf(plan, switches, p.patch)
            if other is not None:
                net.links.append(PatchCable(other, intf))
        elif p.ifname in inner:
            node_end, role = inner[p.ifname]
            net.links.append(link_class(role)(node_end, intf))


def port_intf(plan: LabPlan, switches: dict[str, LabSwitch], ifname: str) -> LabIntf | None:
    """The Mininet interface of an existing port, by its name."""
    for p in plan.of(Port).values():
        if p.ifname == ifname and p.bridge in switches:
            return switches[p.bridge].nameToIntf.get(ifname)
    return None


class Realizer:
    """Holds what a lab runs (its Mininet nodes and processes) and carries out deltas."""

    def __init__(self, name: str, run_dir: Path, net: LabNet, controller: Controller,
                 say: Callable[[str], None],
                 checkpoint: Callable[[], None] = lambda: None) -> None:
        self.name = name
        self.run_dir = run_dir
        self.net = net
        self.controller = controller
        self.say = say
        #: Called once new nodes run, so that a crash from then on leaves a record to clean by.
        self.checkpoint = checkpoint
        #: A test's hook: called with each step's name as it begins (raise to interrupt there).
        self.fault: Callable[[str], None] | None = None
        self.repair = False
        #: Held while a change is carried out (the server watch waits for it).
        self.lock = threading.RLock()
        self.nodes: dict[str, LabNode] = {}
        self.responders: dict[str, Responder] = {}
        self.services: dict[str, subprocess.Popen] = {}
        self.clients: dict[tuple[str, str], Client] = {}
        self.dns_servers: dict[str, dns.DnsServer] = {}
        #: the lab's name files (the nodes' resolvers, the DNS servers' names): readable by all
        self.dns_base = dns.dns_dir(run_dir.name)
        dns.prepare_lab(self.dns_base)
        #: Mininet's view: each bridge's switch object, each root end's inner interface and role
        self.switches: dict[str, LabSwitch] = {}
        self.inner: dict[str, tuple[LabIntf, str]] = {}

    def revive_servers(self) -> list[str]:
        """Starts again every DHCP server whose process ended (a crash, a kill -9), its leases
        read back from its files, and every DNS server. Returns what it did, one line each (none
        while a change runs)."""
        if not self.lock.acquire(blocking=False):
            return []
        try:
            done = []
            for key, responder in list(self.responders.items()):
                with responder.lock:  # not while someone restarts it (it would run twice)
                    proc = responder.proc
                    if proc is None or proc.poll() is None:
                        continue
                    done.append(f"the DHCP server of {key} (pid {proc.pid}) exited with code "
                                f"{proc.returncode}; restarting it")
                    end(proc)
                    try:
                        responder.start()
                    except LabError as err:
                        done.append(f"restarting the DHCP server of {key} failed: {err}")
                        continue
                    self.nodes[responder.node.name].own(f"dhcp:{key}", responder.proc)
            for name, server in list(self.dns_servers.items()):
                proc = server.proc
                if proc is None or proc.poll() is None:
                    continue
                done.append(f"the DNS server of {name} (pid {proc.pid}) exited with code "
                            f"{proc.returncode}; restarting it")
                server.stop()
                try:
                    server.start()
                    server.wait()
                except LabError as err:
                    done.append(f"restarting the DNS server of {name} failed: {err}")
                    continue
                self.nodes[name].own("dns", server.proc)
            return done
        finally:
            self.lock.release()

    # -- the whole change -------------------------------------------------------------------------
    def apply(self, d: Delta, timeout: float = 30.0, repair: bool = False,
              clients: bool = True) -> None:
        """Carries out ``d``; returns when the switches' flows are in force and every DHCP client
        that was started or renewed holds a lease on its network (or, after ``timeout``, with a
        warning naming those that do not). With ``repair`` (undoing a change that failed part way)
        each step tolerates finding its work done or its object gone already. Without ``clients``
        the DHCP clients are left for ``start_clients`` (a lab over several servers starts them
        once every server's part is built: their servers may be on another)."""
        with self.lock:
            self._apply_locked(d, timeout, repair, clients)

    def start_clients(self, d: Delta, timeout: float = 30.0) -> None:
        """The last step of ``apply(d, clients=False)``."""
        with self.lock:
            self._apply_locked(d, timeout, False, True, only_clients=True)

    def _apply_locked(self, d: Delta, timeout: float, repair: bool, clients: bool,
                      only_clients: bool = False) -> None:
        self.repair = repair
        try:
            if only_clients:
                self._step("start clients")
                self._start_clients(d, timeout)
            else:
                self._apply(d, timeout, clients)
        except subprocess.TimeoutExpired as err:
            raise CommandError(str(err.cmd[0] if err.cmd else "a command"),
                               f"no answer in {err.timeout:.0f} s") from None
        except OSError as err:  # a write that failed part way names no file: say where
            where = err.filename or f"writing the lab's files in {self.run_dir.parent}"
            raise LabError(f"{err.strerror or err} ({where})") from None
        finally:
            self.repair = False

    def _step(self, name: str) -> None:
        """A step of a change begins (``fault`` lets a test interrupt any one of them)."""
        if self.fault is not None and not self.repair:
            self.fault(name)

    def _apply(self, d: Delta, timeout: float, clients: bool = True) -> None:
        everything = not d.new.items
        self._step("release")
        moving = [(a, b) for a, b in d.change(DhcpClient) if a.attached != b.attached]
        # a NIC that moves, or goes (a VM removed, or one of its NICs), gives its lease back
        going = [a for a, _ in moving] + ([] if everything else d.remove(DhcpClient))
        for a in going:
            client = self.clients.get(a.key)
            responder = self.responders.get(a.lease_net) if a.lease_net else None
            if client is not None:
                client.release(server=responder.server_ip if responder is not None else None)
        self._wait_released(d, going)
        self._step("carrier off")
        # a NIC that moves loses carrier while it moves (its guest sees the cable go and come)
        moving_ends = {p.ifname for p in d.remove(Port)} & {p.ifname for p in d.add(Port)}
        staying = {v.root: v for v in d.new.of(Veth).values() if v.root in moving_ends}
        downs = [a for a, b in d.change(Veth) if a.up and (not b.up or a.into != b.into)]
        downs += [d.old.get(Veth, staying[r].key) for r in sorted(staying)
                  if d.old.get(Veth, staying[r].key) is not None
                  and d.old.get(Veth, staying[r].key).up]
        self._carrier(downs, False)
        if not everything:  # else they end with their namespaces, all at once
            self._step("stop processes")
            self._stop_processes(d)
        self._step("unregister")
        self._unregister(d, everything)
        if everything:
            # Open vSwitch closes the ports while the namespaces die: the two waits overlap
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                removal = pool.submit(self._remove_from_ovs, d)
                # every node goes, also one a failed change made that no plan lists
                self._remove_nodes(list(self.nodes), d.remove(Veth))
                removal.result()
            self.net.forget(*self.net.links, *self.net.switches)
            for table in (self.switches, self.inner, self.responders, self.services,
                          self.clients, self.dns_servers):
                table.clear()
            return
        self._step("cables out")
        self._cables_out([(a, b) for a, b in d.change(Veth) if a.into and a.into != b.into])
        self._step("remove ports and switches")
        self._remove_from_ovs(d)
        self._forget_ports(d)
        self._step("remove nodes")
        self._remove_nodes([h.name for h in d.remove(Host)], d.remove(Veth))
        ip_batch([f"link del {v.root}" for v in d.remove(Veth)
                  if v.root and v.node in self.nodes], force=True)
        self._step("add nodes")
        self._add_nodes([h for h in d.add(Host) if h.name not in self.nodes])
        if d.add(Host):
            self.checkpoint()
        self._step("add veths")
        self._add_veths(d.new, d.add(Veth))
        self._cables_in([b for a, b in d.change(Veth) if b.into and a.into != b.into])
        self._step("add switches and ports")
        self._add_to_ovs(d)
        self._step("configure nodes")
        self._configure_nodes(d)
        self._step("register")
        self._register(d)
        self._step("carrier on")  # once the switch's flows for it are in force
        # (a cable moved straight into a node came up as that node was configured)
        ups = [b for a, b in d.change(Veth) if b.up and (not a.up or a.into != b.into)
               and not b.into]
        ups += [b for a, b in d.change(Veth) if b.up and not a.up and b.into and a.into == b.into]
        ups += [v for r, v in sorted(staying.items()) if v.up and v not in ups]
        self._carrier(ups, True)
        self._step("start processes")
        self._start_processes(d)
        if clients:
            self._step("start clients")
            self._start_clients(d, timeout)

    def _wait_released(self, d: Delta, going: list[DhcpClient], timeout: float = 2.0) -> None:
        """Waits (at most ``timeout`` seconds for them all) until the DHCP servers of this
        machine have the leases of ``going`` back: a release through a wireless access point
        passes the controller, and the NIC must not go before it arrives."""
        waits = []
        for a in going:
            veth = d.old.get(Veth, a.key)
            responder = self.responders.get(a.lease_net) if a.lease_net else None
            if veth is not None and responder is not None:
                waits.append((responder, veth.mac))
        deadline = time.monotonic() + timeout
        for responder, mac in waits:
            while time.monotonic() < deadline and any(
                    row.get("mac") == mac and row.get("state") == "bound"
                    for row in responder.leases()):
                time.sleep(0.02)

    # -- taking away -------------------------------------------------------------------------------
    def _stop_processes(self, d: Delta) -> None:
        for n in d.remove(Dns):
            server = self.dns_servers.pop(n.node, None)
            if server is not None:
                server.stop()
                self._end_owned(n.node, "dns", None)
        for s in d.remove(Service):
            self._end_owned(s.node, f"service:{s.node}", self.services.pop(s.node, None))
        restarted = [a for a, b in d.change(DhcpServer) if not _only_known_differs(a, b)]
        for r in d.remove(DhcpServer) + restarted:
            responder = self.responders.pop(r.key, None)
            if responder is not None:
                responder.stop()
                self._end_owned(r.node, f"dhcp:{r.key}", None)
        for c in d.remove(DhcpClient):
            client = self.clients.pop(c.key, None)
            if client is not None:
                client.stop()
                self._end_owned(c.node, f"client:{c.dev}", None)

    def _end_owned(self, node: str, key: str, proc: subprocess.Popen | None) -> None:
        owner = self.nodes.get(node)
        owned = owner.disown(key) if owner else None
        end(proc or owned)

    def _unregister(self, d: Delta, everything: bool) -> None:
        """Flows go before their ports: switches that go are unregistered; a switch that stays is
        told its ports without the ones that go."""
        if everything:
            return  # the controller goes with the lab
        gone = {b.key for b in d.remove(Bridge)}
        for b in d.remove(Bridge):
            if b.controlled and (not self.repair or b.dpid in self.controller.switches):
                self._call(b, lambda b=b: self.controller.remove_switch(b.dpid))
        leaving = {p.key for p in d.remove(Port)}
        for key in sorted({p.bridge for p in d.remove(Port)} - gone):
            b = d.old.get(Bridge, key)
            if b is None or not b.controlled:
                continue
            ports = [p.registration() for p in d.old.ports_of(key)
                     if p.key not in leaving and p.role is not None]
            self._call(b, lambda b=b, ports=ports: self.controller.add_switch(
                b.dpid, b.kind, b.name, ports, dhcp_steering=b.steering, dhcp_guard=b.guard))

    def _remove_from_ovs(self, d: Delta) -> None:
        gone = {b.key for b in d.remove(Bridge)}
        args: list[str] = []
        for p in d.remove(Port):
            name = d.old.get(Bridge, p.bridge).name
            if p.bridge not in gone and (not self.repair or self._port_on(p.ifname) == name):
                args += ["--", "--if-exists", "del-port", name, p.ifname]
        for b in d.remove(Bridge):
            args += ["--", "--if-exists", "del-br", b.name]
        with expedited_rcu(len(d.remove(Port))):
            ovs(args)

    @staticmethod
    def _port_on(ifname: str) -> str | None:
        """The bridge a port is on now (None: on none)."""
        try:
            return vsctl("port-to-br", ifname).strip() or None
        except CommandError:
            return None

    def _forget_ports(self, d: Delta) -> None:
        """Mininet forgets the ports (and their links) and switches that went."""
        for p in d.remove(Port):
            switch = self.switches.get(p.bridge)
            intf = switch.nameToIntf.get(p.ifname) if switch else None
            if intf is not None:
                if intf.link is not None:
                    self.net.forget(intf.link)
                detach(intf)
        for b in d.remove(Bridge):
            switch = self.switches.pop(b.key, None)
            if switch is not None:
                self.net.forget(switch)

    def remove_every_node(self) -> None:
        """Ends every node the lab runs (a teardown's last resort)."""
        self._remove_nodes(list(self.nodes), [])

    def _remove_nodes(self, names: list[str], veths: list[Veth]) -> None:
        """Ends the nodes' namespaces all at once (their veths go with them), then reaps them."""
        nodes = [self.nodes.pop(name) for name in names if name in self.nodes]
        if not nodes:
            return
        cleanup.kill_namespaces([n.pid for n in nodes if n.shell and n.pid])
        gone = {node.name for node in nodes}
        ends = [v.root for v in veths if v.root and not v.into and v.node in gone]
        # ends of transit links in nodes that stay (a NAT engine's in its PC)
        peers = [(self.nodes[v.peer].pid, v.peer_dev) for v in veths
                 if v.peer and v.node in gone and v.peer in self.nodes]
        # the kernel removes a dead namespace's veths in one batch, shortly after
        wait_until(lambda: not any(os.path.exists(f"/sys/class/net/{e}") for e in ends)
                           and not any(_has_interface(pid, dev) for pid, dev in peers), 10)
        for node in nodes:
            node.release()
            for intf in node.intfList():
                link = intf.link
                if link is None:
                    continue
                other = link.intf2 if link.intf1 is intf else link.intf1
                self.net.forget(link)
                if other.node.name not in gone and not isinstance(other.node, LabSwitch):
                    detach(other)  # a transit link's end in the PC
            self.net.forget(node)
        for root in [r for r, (intf, _) in self.inner.items() if intf.node.name in gone]:
            del self.inner[root]
        for key in [k for k, c in self.clients.items() if k[0] not in self.nodes]:
            del self.clients[key]

    # -- bringing in -------------------------------------------------------------------------------
    def _add_nodes(self, hosts: Iterable[Host]) -> None:
        for h in hosts:
            try:
                node = self.net.addHost(h.name, cls=ROLES[h.role], pc=h.pc, run_dir=self.run_dir,
                                        ipv6=h.ipv6)
            except Exception as err:  # noqa: BLE001 - e.g. no memory or PIDs for a namespace
                raise LabError(f"cannot start node {h.name}: {err}") from None
            self.nodes[h.name] = node

    def _add_veths(self, plan: LabPlan, veths: list[Veth]) -> None:
        """Both ends of every new veth at once, the inner end made directly in its namespace (moving
        one there afterwards costs ~18 ms each); root ends hardened, then up where plugged."""
        if self.repair:  # only those not there any more
            veths = [v for v in veths if v.dev not in self.nodes[v.node].nameToIntf]
        lines = []
        for v in veths:
            node = self.nodes[v.node]
            if v.peer:
                lines.append(f"link add name {v.dev} netns {node.pid} mtu {MTU} type veth peer "
                             f"name {v.peer_dev} netns {self.nodes[v.peer].pid} mtu {MTU}")
            elif v.into:
                far, far_dev, far_mac = v.into
                lines.append(f"link add name {far_dev} address {far_mac} mtu {MTU} netns "
                             f"{self.nodes[far].pid} type veth peer name {v.dev} address {v.mac} "
                             f"mtu {MTU} netns {node.pid}")
            else:
                lines.append(f"link add name {v.root} mtu {MTU} type veth peer name {v.dev} "
                             f"address {v.mac} mtu {MTU} netns {node.pid}")
        ip_batch(lines)
        for v in veths:
            if v.root and not v.into:
                harden_root_interface(v.root)
        ip_batch([f"link set {v.root} up" for v in veths if v.root and v.up and not v.into])
        show_veths(self.net, plan, veths, self.nodes, self.inner)

    def _carrier(self, veths: list[Veth], up: bool) -> None:
        """Cables' switch-side ends (in the root namespace) or far ends (in the node a cable goes
        straight into) down or up: the guest sees its carrier go or come."""
        state = "up" if up else "down"
        ip_batch([f"link set {v.root} {state}" for v in veths if not v.into], force=self.repair)
        for v in veths:
            if v.into and v.into[0] in self.nodes:
                out = self.nodes[v.into[0]].cmd(f"ip link set {v.into[1]} {state} 2>&1; echo rc=$?")
                if "rc=0" not in out and not self.repair:
                    raise CommandError(f"ip link set {v.into[1]} {state} in {v.into[0]}", out)

    def _cables_in(self, veths: list[Veth]) -> None:
        """Cables that now go straight into a node (a NIC became shared): the switch-side end moves
        from the root namespace into that node under its name and address (it arrives down; the
        node's configuration brings it up)."""
        if self.repair:  # only those still in the root namespace
            veths = [v for v in veths if os.path.exists(f"/sys/class/net/{v.root}")]
        ip_batch([f"link set {v.root} netns {self.nodes[v.into[0]].pid} name {v.into[1]} "
                  f"address {v.into[2]}" for v in veths if v.into])
        for v in veths:
            if v.root in self.inner:
                show_straight(self.net, v, self.inner[v.root][0], self.nodes)

    def _cables_out(self, moves: list[tuple[Veth, Veth]]) -> None:
        """Cables that leave the node they went straight into (before that node goes: its
        namespace would take the cable with it): back to the root namespace under their switch-side
        names, hardened, down until their new switch is ready."""
        for a, b in moves:
            assert a.into is not None
            node = self.nodes.get(a.into[0])
            if node is None or (self.repair and os.path.exists(f"/sys/class/net/{b.root}")):
                continue
            out = node.cmd(f"ip link set {a.into[1]} netns {os.getpid()} name {b.root} 2>&1; "
                           "echo rc=$?")
            if "rc=0" not in out and not self.repair:
                raise CommandError(f"moving {a.into[1]} out of {node.name}", out)
            harden_root_interface(b.root)
            far = node.nameToIntf.get(a.into[1])
            if far is not None:
                if far.link is not None:
                    self.net.forget(far.link)
                detach(far)

    def _add_to_ovs(self, d: Delta) -> None:
        """New bridges and ports in one transaction: LAN switches standalone (NORMAL), the others
        secure under the controller on loopback; all on the userspace datapath."""
        args: list[str] = []
        for b in d.add(Bridge):
            args += self._bridge_args(b)
        may = ["--may-exist"] if self.repair else []
        for p in d.add(Port):
            bridge = d.new.get(Bridge, p.bridge)
            args += ["--", *may, "add-port", bridge.name, p.ifname, "--", "set", "Interface",
                     p.ifname, f"ofport_request={p.number}"]
            if p.patch:
                args += ["type=patch", f"options:peer={p.patch}"]
        ovs(args)
        names = [b.name for b in d.add(Bridge)]
        if not wait_until(lambda: all(os.path.exists(f"/sys/class/net/{n}")
                                              for n in names), 10):
            raise LabError("Open vSwitch did not create the bridges in 10 s")
        for name in names:  # the bridge's own (internal) port stays down; harden it anyway
            harden_root_interface(name)
        self._show_to_mininet(d)

    def _show_to_mininet(self, d: Delta) -> None:
        """Mininet objects for the new switches, their ports and the links into them."""
        show_switches(self.net, d.new, d.add(Bridge), d.add(Port), self.switches, self.inner)

    def _bridge_args(self, b: Bridge) -> list[str]:
        may = ["--may-exist"] if self.repair else []
        args = ["--", *may, "add-br", b.name, "--", "set", "Bridge", b.name,
                "datapath_type=netdev",
                f"other-config:datapath-id={b.dpid:016x}", "other-config:disable-in-band=true",
                f"external-ids:wvpclab-lab={self.name}"]
        if not b.controlled:
            return args + ["fail_mode=standalone"]
        return args + ["fail_mode=secure", "protocols=OpenFlow13",
                       "--", f"--id=@c{b.dpid:x}", "create", "Controller",
                       f"target=\"{self.controller.target}\"", "max_backoff=1000",
                       "--", "set", "Bridge", b.name, f"controller=@c{b.dpid:x}"]

    def _configure_nodes(self, d: Delta) -> None:
        """One round trip per node that has a share of the change: its interfaces up, addresses,
        rules, routes, shapers and firewall; what goes is removed first."""
        scripts: dict[str, NodeScript] = {}

        def script(node: str) -> NodeScript:
            return scripts.setdefault(node, NodeScript())

        gone_devs = {(v.node, v.dev) for v in d.remove(Veth)}
        gone_devs |= {(v.peer, v.peer_dev) for v in d.remove(Veth) if v.peer}
        alive = set(self.nodes)
        for a in d.remove(Address):
            if a.node in alive and (a.node, a.dev) not in gone_devs:
                script(a.node).ip_removals.append(f"address del {a.cidr} dev {a.dev}")
        for r in d.remove(Route):
            if r.node in alive and (r.node, r.dev) not in gone_devs:
                script(r.node).ip_removals.append(f"route del {r.spec()}")
        for r in d.remove(Rule):
            if r.node in alive:
                script(r.node).ip_removals.append(f"rule del {r.spec()}")
        for s in d.remove(Shaper):  # a NIC removed from a VM that stays: its receive shaper too
            if s.node in alive and shaping_links(s.dev, s.speed):
                script(s.node).ip_removals.append(f"link del {rx_shaper(s.dev)}")
        for v in d.add(Veth):
            script(v.node).ip.append(f"link set {v.dev} up")
            if v.peer:
                script(v.peer).ip.append(f"link set {v.peer_dev} up")
        moved_in = [b for a, b in d.change(Veth) if b.into and a.into != b.into]
        for v in d.add(Veth) + moved_in:
            if v.into and v.up:
                script(v.into[0]).ip.append(f"link set {v.into[1]} up")
        for s in d.add(Shaper):
            script(s.node).ip += shaping_links(s.dev, s.speed)
            script(s.node).tc += shaping_commands(s.dev, s.speed)
        for a in d.add(Address):
            script(a.node).ip.append(f"address add {a.cidr} dev {a.dev}")
        for r in d.add(Rule):
            script(r.node).ip.append(f"rule add {r.spec()}")
        for r in sorted(d.add(Route), key=lambda r: r.via is not None):  # links before gateways
            script(r.node).ip.append(f"route replace {r.spec()}")
        for f in d.add(Firewall) + [b for _, b in d.change(Firewall)]:
            script(f.node).firewall = f.rules
            script(f.node).ingress = f.ingress
        fresh = {h.name for h in d.add(Host)}
        for r in d.add(Resolver) + [b for _, b in d.change(Resolver)]:
            dns.prepare(self.dns_base, r.node, r.nameservers, r.own,
                        new=r.node in fresh and not self.repair)
        for r in d.add(Resolver):
            if not self.repair or r.node in fresh:  # (a repair finds the others mounted)
                script(r.node).mounts = dns.mounts(self.dns_base, r.node)
        if self.repair:  # whatever is already there stays; the rest is made
            for s in scripts.values():
                s.ip_removals += s.ip
                s.ip = []
                s.tc_forced = True
        for name in fresh:
            self.nodes[name].config(scripts.pop(name, None))
        for name, s in scripts.items():
            self.nodes[name].apply(s)

    def _register(self, d: Delta) -> None:
        """Every switch that is new or whose ports changed is told its whole port set; returns when
        its flows are in force."""
        touched = {b.key for b in d.add(Bridge)}
        touched |= {p.bridge for p in d.add(Port) + d.remove(Port)}
        for key in sorted(touched):
            b = d.new.get(Bridge, key)
            if b is None or not b.controlled:
                continue
            self._call(b, lambda b=b: self.controller.add_switch(
                b.dpid, b.kind, b.name, d.new.registration(b.key), dhcp_steering=b.steering,
                dhcp_guard=b.guard))

    def _call(self, b: Bridge, request: Callable[[], None]) -> None:
        try:
            request()
        except ControllerError as err:
            raise ControllerError(f"switch {b.name} ({b.key}): {err}") from None

    def _start_processes(self, d: Delta) -> None:
        self._start_dns(d)
        for r in d.add(DhcpServer) + [b for _, b in d.change(DhcpServer)]:
            running = self.responders.get(r.key)
            if running is not None and running.pid is not None and running.exclude == r.exclude:
                if running.known != r.known:  # a NIC came or went: the server reads it live
                    running.set_known(r.known)
                continue  # (repair) it never stopped
            node = self.nodes[r.node]
            responder = Responder(key=r.key, node=node, dev=r.dev, network=r.network,
                                  server_ip=r.server_ip, pool=r.pool,
                                  files=self.run_dir / r.files, router=r.router, dns=r.dns,
                                  exclude=r.exclude, known=r.known, translators=r.translators,
                                  names=dns.names_dir(self.dns_base, r.node) if r.hostnames
                                  else None, holders=dns.holders_path(self.dns_base))
            responder.start()
            node.own(f"dhcp:{r.key}", responder.proc)
            self.responders[r.key] = responder
        starting = []
        for s in d.add(Service):
            if s.node in self.services and self.services[s.node].poll() is None:
                continue  # (repair) it never stopped
            node = self.nodes[s.node]
            proc = node.popen([sys.executable, "-m", "wvpclab.runtime.services", "--name", s.node,
                               "--log", str(self.run_dir / f"server-{s.node}.log")],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            starting.append((s.node, proc))
        for name, proc in starting:  # started together, waited for together
            wait_ready(proc, SERVICES_READY, 20, f"the services of {name}")
            self.nodes[name].own(f"service:{name}", proc)
            self.services[name] = proc

    def _start_dns(self, d: Delta) -> None:
        """DNS servers: a LAN gateway's names written (its lease hostnames follow from its DHCP
        server), new servers started together and waited for together. The lab's nodes and
        their hardware addresses are written for the LANs' DHCP servers (a node's name is its
        own)."""
        dns.write_holders(self.dns_base, d.new)
        for n in d.add(Dns) + [b for _, b in d.change(Dns)]:
            if not n.relay:
                where = dns.names_dir(self.dns_base, n.node)
                where.mkdir(exist_ok=True)
                where.chmod(0o755)
                dns.write_atomic(where / "lab", dns.names_text(n.names), self.dns_base)
                if not (where / "leases").exists():
                    dns.write_atomic(where / "leases", "", self.dns_base)
        starting = []
        for n in d.add(Dns):
            running = self.dns_servers.get(n.node)
            if running is not None and running.pid is not None:
                continue  # (repair) it never stopped
            node = self.nodes[n.node]
            server = dns.DnsServer(n.node, node, dns.command(
                n.node, n.listen, n.relay, self.dns_base, self.run_dir,
                relay_to=str(dns.resolv_conf(self.dns_base, n.node))),
                dns.log_path(self.run_dir, n.node))
            server.start()
            starting.append(server)
        for server in starting:
            server.wait()
            self.nodes[server.node_name].own("dns", server.proc)
            self.dns_servers[server.node_name] = server

    def _start_clients(self, d: Delta, timeout: float) -> None:
        """New clients start; a client whose NIC moved, or whose carrier came back, renews. Waits
        until each that has a server on its network holds a lease there."""
        waiting: list[tuple[Client, str]] = []
        for c in d.add(DhcpClient):
            if c.key in self.clients:
                continue  # (repair) it never stopped
            node = self.nodes[c.node]
            files = self.run_dir / f"client+{c.node}+{c.dev}"  # "+" is in no name
            client = Client(c.node, c.index, c.kind, node, files, dev_name=c.dev,
                            source_routing=c.source_routing,
                            dns_parts=dns.parts_dir(self.dns_base, c.node))
            client.start()
            node.own(f"client:{c.dev}", client.proc)
            self.clients[c.key] = client
            if c.lease_net:
                waiting.append((client, c.lease_net))
        for a, b in d.change(DhcpClient):
            if b.carrier and (a.attached != b.attached or a.lease_net != b.lease_net
                              or not a.carrier) and b.key in self.clients:
                client = self.clients[b.key]
                client.renew()
                self.nodes[b.node].own(f"client:{b.dev}", client.proc)
                if b.lease_net:
                    waiting.append((client, b.lease_net))
        if not waiting:
            return

        def leased(client: Client, net: str) -> bool:
            lease = client.lease()
            return bool(lease) and ipaddress.IPv4Address(lease["ip"]) in ipaddress.IPv4Network(net)

        wait_until(lambda: all(leased(c, n) for c, n in waiting), timeout, interval=0.05)
        missing = [f"{c.vm} {c.dev}" for c, n in waiting if not leased(c, n)]
        if missing:
            self.say(f"warning: no DHCP lease after {timeout:.0f} s for: {', '.join(missing)}")


__all__ = ["ROOT_SYSCTLS", "Realizer", "harden_root_interface", "ip_batch", "port_intf",
           "show_straight", "show_switches", "show_veths"]
