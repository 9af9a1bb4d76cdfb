"""The lab as Mininet sees it: every switch and link the realizer builds is a Mininet object too.

The realizer makes bridges, ports and veths in batches; these classes describe them to Mininet
without doing anything themselves (no shell per switch, no command per interface), so that ``net``,
``links``, ``dump``, ``intfs``, ``ports`` and ``dpctl`` see the whole lab, and Mininet's API works
on it."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any, ClassVar

from mininet.link import Link
from mininet.log import output
from mininet.net import Mininet
from mininet.node import Node, OVSSwitch

from wvpclab.model.items import Host
from wvpclab.runtime.nic import LabIntf
from wvpclab.runtime.nodes import TOPOLOGY_ROLES, LabNode


class LabSwitch(OVSSwitch):
    """An Open vSwitch bridge of the lab (made by the realizer in one OVS transaction). It has no
    shell: its commands (``dpctl``) run in the root namespace, OpenFlow 1.3."""

    KIND: ClassVar[str] = "switch"

    def __init__(self, name: str, key: str = "", dpid: int = 0, fail_mode: str = "secure",
                 **params: Any) -> None:
        self.key = key
        Node.__init__(self, name, inNamespace=False, **params)
        self.dpid = f"{dpid:016x}"
        self.opts, self.listenPort = "", None
        self.controlIntf = LabIntf("lo", self, port=0)
        self.failMode, self.datapath, self.inband = fail_mode, "user", False
        self.protocols, self.reconnectms, self.stp = "OpenFlow13", 1000, False
        self._uuids: list[str] = []
        self.batch, self.commands = True, []

    def startShell(self, mnopts: Any = None) -> None:
        """No shell: the switch lives in the root namespace and runs nothing of its own."""
        self.shell = self.pid = None

    def cmd(self, *args: Any, **kwargs: Any) -> str:
        """Runs a command in the root namespace; its output (stdout and stderr)."""
        out, err, _ = self.pexec(*args)
        return out + err

    def pexec(self, *args: Any, **kwargs: Any) -> tuple[str, str, int]:
        """Runs a command in the root namespace; (stdout, stderr, exit code)."""
        line = " ".join(str(a) for a in args)
        res = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=30,
                             check=False)
        return res.stdout, res.stderr, res.returncode

    def dpctl(self, *args: Any) -> str:
        """``ovs-ofctl`` on this bridge, OpenFlow 1.3 (``dpctl dump-flows``)."""
        return self.cmd("ovs-ofctl", "-O", "OpenFlow13", args[0], self, *args[1:])

    def start(self, controllers: Any = None) -> None:
        """Made by the realizer; nothing to start."""

    def stop(self, deleteIntfs: bool = False) -> None:
        """Removed by the realizer; nothing to stop."""

    def terminate(self) -> None:
        """No shell to end."""

    def connected(self) -> bool:
        return True

    def __repr__(self) -> str:
        ports = ",".join(f"{i.name}" for i in self.intfList() if i.name != "lo")
        return f"<{self.__class__.__name__} {self.name} ({self.key}): {ports}>"


class PortIntf(LabIntf):
    """A switch port: a veth's root end or one side of a patch cable."""

    def updateIP(self) -> None:
        return None

    def status(self) -> str:
        """``OK`` while Open vSwitch has the port with an OpenFlow number, else ``MISSING``."""
        out = self.node.cmd(f"ovs-vsctl --timeout=5 get Interface {self.name} ofport 2>&1")
        return "OK" if out.strip().lstrip("-").isdigit() and int(out) > 0 else "MISSING"


class FilterSwitch(LabSwitch):
    """The Virtual PC Network Filter of a wired host adapter."""

    KIND = "filter"


class WirelessFilterSwitch(LabSwitch):
    """The filter of a wireless host adapter (MAC translation by the controller)."""

    KIND = "wireless"


class AccessPoint(LabSwitch):
    """The access point between a wireless adapter and its LAN (only the adapter's MAC passes)."""

    KIND = "ap"


class InternalSwitch(LabSwitch):
    """An internal network's switch (a shared NIC's cable goes straight into its NAT engine)."""

    KIND = "internal"


class LanSwitch(LabSwitch):
    """An emulated LAN: a plain learning switch (standalone, NORMAL)."""

    KIND = "lan"


SWITCHES: dict[str, type[LabSwitch]] = {c.KIND: c for c in (FilterSwitch, WirelessFilterSwitch,
                                                           AccessPoint, InternalSwitch, LanSwitch)}


class LabLink(Link):
    """A link the lab made: two existing interfaces, nothing created or deleted by Mininet."""

    KIND: ClassVar[str] = "wire"

    def __init__(self, intf1: LabIntf, intf2: LabIntf) -> None:
        self.intf1, self.intf2 = intf1, intf2
        self.fast = True
        intf1.link = intf2.link = self

    def __str__(self) -> str:
        a, b = self.intf1, self.intf2
        return f"{a.node.name}:{a.name}<->{b.node.name}:{b.name}"

    def delete(self) -> None:
        """Forgets the link (the realizer removes the interfaces themselves)."""
        for intf in (self.intf1, self.intf2):
            if intf is not None and intf.link is self:
                intf.link = None

    def stop(self) -> None:
        self.delete()


class NicCable(LabLink):
    """A VM NIC's cable into the switch of its mode."""

    KIND = "cable"


class AdapterLink(LabLink):
    """A PC's host adapter: its own stack's interface on the adapter's filter switch."""

    KIND = "adapter"


class PatchCable(LabLink):
    """A patch cable between two switches (filter to LAN, filter to access point, AP to LAN)."""

    KIND = "patch"


class UplinkTunnel(LabLink):
    """A LAN uplink between two servers: the ssh Ethernet tunnel whose ends are a port of each."""

    KIND = "uplink"


class TransitLink(LabLink):
    """A veth between two nodes' own stacks, no switch between them: a NAT engine's transit link
    into its PC (``wvpclab.model.modes.shared``)."""

    KIND = "transit"


def link_class(role: str | None) -> type[LabLink]:
    """The link class for a node of this plan role plugged into a switch."""
    return {"vm": NicCable, "pc": AdapterLink}.get(role or "", LabLink)


class LabNet(Mininet):
    """The lab's Mininet: nodes, switches and links kept true by the realizer; its tests (ping,
    iperf) and link commands act the lab's way (``lab`` is set by the lab)."""

    lab: Any = None

    def addHost(self, name: str, cls: Any = None, **params: Any) -> Any:
        """Mininet's, with the lab's cgroup given to a node of the lab (its processes join it)."""
        group = getattr(self.lab, "group", None)
        if group is not None and cls is not None and issubclass(cls, LabNode):
            params.setdefault("group", group)
        return super().addHost(name, cls, **params)

    def forget(self, *objects: Any) -> None:
        """Drops switches, hosts or links from Mininet's lists (they were removed)."""
        for obj in objects:
            for group in (self.hosts, self.switches, self.links):
                if obj in group:
                    group.remove(obj)
            if isinstance(obj, Node):
                self.nameToNode.pop(obj.name, None)
            if isinstance(obj, Link):
                obj.delete()

    # -- Mininet's tests, truthful -------------------------------------------------------------
    def _pairs(self, hosts: list[Any] | None) -> list[tuple[str, str]]:
        names = [h.name for h in (hosts or self.hosts)]
        return [(a, b) for a in names for b in names if a != b]

    def ping(self, hosts: list[Any] | None = None, timeout: float | None = None,
             manualdestip: Any = None) -> float:
        """Pings every ordered pair of ``hosts`` (default all) from the interface the source would
        use, in parallel; prints Mininet's table, its results line and what the model expects;
        returns the percentage dropped."""
        from wvpclab.analysis import reach
        output("*** Ping: testing ping reachability\n")
        probes = reach.probe(self.lab, self._pairs(hosts), timeout=float(timeout or 1))
        by_src: dict[str, list[str]] = {}
        for p in probes:
            mark = p.dst if p.received else ("-" if p.target is None else "X")
            by_src.setdefault(p.src, []).append(mark)
        for src, marks in by_src.items():
            output(f"{src} -> {' '.join(marks)}\n")
        lines = reach.summary(probes)
        for line in lines:
            output(line + "\n")
        tried = [p for p in probes if p.target is not None]
        return 100.0 * sum(not p.received for p in tried) / len(tried) if tried else 0.0

    def pingAll(self, timeout: float | None = None) -> float:
        return self.ping(timeout=timeout)

    def pingPair(self) -> float:
        return self.ping(self.hosts[:2])

    def pingFull(self, hosts: list[Any] | None = None, timeout: float | None = None,
                 manualdestip: Any = None) -> list[tuple]:
        """As ``ping``, with each pair's round-trip summary; returns (src, dst, (sent, received,
        rtt avg)) per probed pair."""
        from wvpclab.analysis import reach
        output("*** Ping: testing ping reachability with details\n")
        probes = reach.probe(self.lab, self._pairs(hosts), count=3, timeout=float(timeout or 1))
        out = []
        for p in probes:
            if p.target is None:
                output(f" {p.src}->{p.dst}: no address\n")
                continue
            model = "" if p.expected is None else \
                f" (model: {'reaches' if p.expected else 'blocked'}, {p.why})"
            output(f" {p.src}->{p.dst} ({p.target.ip}): "
                   f"{'received' if p.received else 'lost'}{model}\n")
            out.append((p.src, p.dst, (3, 3 if p.received else 0)))
        for line in reach.summary(probes):
            output(line + "\n")
        return out

    def pingAllFull(self) -> list[tuple]:
        return self.pingFull()

    def pingPairFull(self) -> list[tuple]:
        return self.pingFull(self.hosts[:2])

    def own_hosts(self) -> list[Any]:
        """The hosts the topology names (its VMs, PCs and servers), by their role in the plan: not
        the nodes a LAN or a NIC mode adds (gateways, NAT engines, DHCP servers)."""
        roles = {h.name: h.role for h in self.lab.plan.of(Host).values()}
        return [h for h in self.hosts if roles.get(h.name) in TOPOLOGY_ROLES]

    def iperf(self, hosts: list[Any] | None = None, l4Type: str = "TCP",
              udpBw: str = "10M", fmt: str | None = None, seconds: int = 5,
              port: int = 5201) -> list[str]:
        """iperf3 from the first host to the second (default: the first two hosts) at the address
        the first would use; returns [server speed, client speed] as Mininet does."""
        from wvpclab.analysis import reach
        from wvpclab.errors import UsageError

        if not hosts:  # as Mininet: the first and the last host (of the topology's own)
            own = self.own_hosts()
            hosts = [own[0], own[-1]] if len(own) > 1 else self.hosts[:1] + self.hosts[-1:]
        client, server = hosts
        target = reach.Resolver(self.lab).target(client.name, server.name)
        if target is None:
            raise UsageError(f"{server.name} has no address to test against")
        output(f"*** Iperf: testing {l4Type} bandwidth between {client.name} and "
               f"{server.name} ({target.ip})\n")
        return iperf3(client, server, target.ip, l4Type, udpBw, seconds, port)

    def configLinkStatus(self, src: str, dst: str, status: str) -> None:
        """``link A B up|down``: a VM NIC's cable is pulled or plugged as ``cable`` does; another
        veth's switch end, a transit link's ends or a patch port go down or up."""
        from wvpclab.errors import UsageError

        if status not in ("up", "down"):
            raise UsageError(f"link {src} {dst} {status}: the state is up or down")
        for name in (src, dst):
            if name not in self.nameToNode:
                raise UsageError(f"no node {name!r} in this lab")
        pairs = self.nameToNode[src].connectionsTo(self.nameToNode[dst])
        if not pairs:
            raise UsageError(f"{src} and {dst} are not linked (see `links`)")
        for a, b in pairs:
            self.lab.set_link(a.link, status == "up")


def iperf3(client: Any, server: Any, address: str, l4: str, bw: str, seconds: int,
           port: int) -> list[str]:
    """Runs an iperf3 server (one test) on ``server`` and a client on ``client``; [server, client]
    speeds as "N Mbits/sec"."""
    srv = server.popen(["iperf3", "-s", "-1", "-B", address, "-p", str(port), "-J"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        end = time.monotonic() + 5.0
        while f"{address}:{port}" not in server.cmd("ss -ltnH") and time.monotonic() < end:
            time.sleep(0.05)
        args = ["iperf3", "-c", address, "-p", str(port), "-t", str(seconds), "-J",
                "--connect-timeout", "3000"]
        if l4.upper() == "UDP":
            args += ["-u", "-b", bw]
        cli = client.popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            out, _ = cli.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            cli.kill()
            out, _ = cli.communicate()
        try:
            sout, _ = srv.communicate(timeout=2 if '"error"' in out else 15)
        except subprocess.TimeoutExpired:
            sout = ""  # the client never reached it
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait(5)

    def speed(text: str, side: str) -> str:
        try:
            end = json.loads(text)["end"]
            key = "sum_received" if "sum_received" in end else "sum"
            bits = end[key]["bits_per_second"] if side == "server" or key == "sum" else \
                end["sum_sent"]["bits_per_second"]
            return f"{bits / 1e6:.1f} Mbits/sec"
        except (ValueError, KeyError, TypeError):
            return "no result"

    result = [speed(sout, "server"), speed(out, "client")]
    output(f"*** Results: {result}\n")
    return result


def detach(intf: LabIntf) -> None:
    """Takes an interface off its node's lists (it was removed or moves to another switch)."""
    node = intf.node
    port = node.ports.pop(intf, None)
    if port is not None:
        node.intfs.pop(port, None)
    node.nameToIntf.pop(intf.name, None)


__all__ = ["SWITCHES", "AccessPoint", "AdapterLink", "FilterSwitch", "InternalSwitch", "LabLink",
           "LabNet", "LabSwitch", "LanSwitch", "NicCable", "PatchCable", "TransitLink",
           "WirelessFilterSwitch", "detach", "link_class"]
