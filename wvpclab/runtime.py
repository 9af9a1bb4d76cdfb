"""WVPC's Settings dialog while the VM runs: move a NIC between modes, pull and plug its cable, capture it.

A mixin of ``Lab``. Every call returns when the change is in force (the controller acknowledges after an
OpenFlow barrier) and, where the new network has a DHCP server, when the guest holds a lease on it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from wvpclab import cleanup, topology

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")


def parse_mode(spec: str, target: str | None = None) -> tuple[str, str | None]:
    """``none``, ``shared``, ``bridge:eth0`` / ``bridge eth0``, ``internal:lab`` -> (mode, target)."""
    text = spec.strip() if target is None else f"{spec.strip()}:{target.strip()}"
    mode, _, rest = text.replace(" ", ":", 1).partition(":")
    rest = rest.strip()
    if mode in ("none", "shared") and not rest:
        return mode, None
    if mode in ("bridge", "internal") and rest:
        return mode, rest
    raise ValueError(f"{spec!r} is not a NIC mode (none, shared, bridge ADAPTER, internal NAME)")


class RuntimeChanges:
    """set_nic, cable and capture for a running lab (mixed into ``Lab``)."""

    # -- the Settings dialog ----------------------------------------------------------------------
    def set_nic(self, vm: str, index: int, spec: str, target: str | None = None,
                timeout: float = 30.0) -> None:
        """Moves NIC ``index`` of ``vm`` to another mode, as WVPC's Settings dialog does while the VM
        runs: ``none``, ``shared``, ``bridge:ADAPTER`` or ``internal:NAME``. The guest keeps its
        interface and MAC (only carrier flaps); its DHCP client releases the old lease and gets one on
        the new network before this returns; a static address stays."""
        from wvpclab.lab import LabError

        try:
            mode, target = parse_mode(spec, target)
        except ValueError as err:
            raise LabError(str(err)) from None
        nic = self._nic(vm, index)
        pc = self.graph.nodes[vm]["pc"]
        if mode == "bridge":
            adapter = self.graph.nodes.get(f"{pc}/{target}")
            if not adapter or adapter.get("kind") != "adapter":
                have = [d["name"] for _, d in topology.nodes_of(self.graph, "adapter")
                        if d["pc"] == pc]
                raise LabError(f"no adapter {target!r} on pc {pc} (it has: "
                               f"{', '.join(have) or 'none'})")
        if mode == "internal" and not _NAME_RE.match(target or ""):
            raise LabError(f"{target!r} is not a valid internal network name")
        if (nic["mode"], nic["target"]) == (mode, target):
            return
        client = self.clients.get((vm, index))
        peer = self.cables[(vm, index)]
        if client:
            client.release()
        self._link(peer, up=False)
        old = self._nic_bridge(nic)
        if old:
            self._unplug(old, (vm, index))
        if nic["mode"] == "shared":
            self._remove_nat(vm, index)
        # the graph says where the NIC is now
        key = f"{vm}/{index}"
        for other in list(self.graph.neighbors(key)):
            if self.graph.edges[key, other].get("rel") == "attach":
                self.graph.remove_edge(key, other)
        nic["mode"], nic["target"] = mode, target
        self._nodes[vm].nic(index).mode = mode
        if mode == "shared":
            self._create_nat(key, nic)
        elif mode == "internal" and f"{pc}/{target}" not in self.bridges:
            self._create_internal(pc, target)
        new = self._nic_bridge(nic)
        if new:
            attach = pc if mode == "shared" else new
            self.graph.add_edge(key, attach, rel="attach", mode=mode)
            self._plug(new, (vm, index))
        if nic["ip"]:
            self._reroute_static(nic)
        if mode != "none" and self.cable_on.get((vm, index), True):
            self._link(peer, up=True)
            self._renew(vm, index, timeout)

    def cable(self, vm: str, index: int, plugged: bool, timeout: float = 30.0) -> None:
        """Pulls (False) or plugs (True) the NIC's cable: only the switch side goes down, the guest
        sees no carrier; on plugging, its DHCP client renews, as Windows does on media connect."""
        nic = self._nic(vm, index)
        self.cable_on[(vm, index)] = plugged
        if nic["mode"] == "none":
            return  # Not connected: there is no switch to plug into
        self._link(self.cables[(vm, index)], up=plugged)
        if plugged:
            self._renew(vm, index, timeout)

    # -- captures -----------------------------------------------------------------------------------
    def capture(self, vm: str, index: int, path: str | Path | None = None) -> Path:
        """Starts a pcap of a NIC (both directions, as the guest sees them); returns the file."""
        from wvpclab.lab import LabError

        self._nic(vm, index)
        if (vm, index) in self.captures:
            raise LabError(f"{vm} eth{index} is already being captured to "
                           f"{self.captures[(vm, index)][1]}")
        out = Path(path) if path else Path.cwd() / f"capture-{vm}-eth{index}.pcap"
        out = out.resolve()
        proc = self._nodes[vm].popen(["tcpdump", "-i", f"eth{index}", "-U", "--immediate-mode", "-n", "-w", str(out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0)
        seen = b""
        deadline = time.monotonic() + 10
        fd = proc.stderr.fileno()
        while b"listening on" not in seen:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise LabError(f"tcpdump on {vm} eth{index} did not start: "
                               f"{seen.decode(errors='replace').strip()}")
            if select.select([fd], [], [], 0.2)[0]:
                seen += os.read(fd, 4096)
        self.captures[(vm, index)] = (proc, out)
        return out

    def stop_captures(self) -> list[tuple[str, Path]]:
        """Ends every capture (tcpdump flushes its file); returns (NIC, file) pairs."""
        done = []
        for (vm, index), (proc, out) in list(self.captures.items()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if proc.stderr:
                proc.stderr.close()
            done.append((f"{vm} eth{index}", out))
            del self.captures[(vm, index)]
        return done

    # -- the pieces -----------------------------------------------------------------------------------
    def _nic(self, vm: str, index: int) -> dict:
        from wvpclab.lab import LabError

        self.vm(vm)
        data = self.graph.nodes.get(f"{vm}/{index}")
        if data is None or data.get("kind") != "nic":
            raise LabError(f"{vm} has no NIC {index}")
        return data

    @staticmethod
    def _link(dev: str, up: bool) -> None:
        subprocess.run(["ip", "link", "set", dev, "up" if up else "down"], check=True,
                       capture_output=True, timeout=30)

    def _renew(self, vm: str, index: int, timeout: float) -> None:
        """Tells the NIC's DHCP client to get a lease now and waits for one on the NIC's network."""
        client = self.clients.get((vm, index))
        if client is None:
            return
        client.renew()
        if not self.expects_lease(vm, index):
            return
        network = self._network_of(self.graph.nodes[f"{vm}/{index}"])

        def leased() -> bool:
            lease = client.lease()
            return bool(lease) and (network is None
                                    or ipaddress.IPv4Address(lease["ip"]) in network)

        if not cleanup.wait_until(leased, timeout, interval=0.05):
            self._say(f"warning: {vm} eth{index} has no lease on its new network after "
                      f"{timeout:.0f} s")

    def _network_of(self, nic: dict) -> ipaddress.IPv4Network | None:
        if nic["mode"] == "shared":
            return ipaddress.IPv4Network(self.graph.nodes[self.graph.nodes[nic["vm"]]["pc"]]
                                         ["nat_subnet"])
        if nic["mode"] == "bridge":
            lan = self.graph.nodes[self._nic_bridge(nic)]["lan"]
            return ipaddress.IPv4Network(self.graph.nodes[lan]["subnet"]) if lan else None
        if nic["mode"] == "internal":
            return ipaddress.IPv4Network("169.254.0.0/16")
        return None

    def _reroute_static(self, nic: dict) -> None:
        """A static address stays; its default route follows the router of the new network."""
        from wvpclab.vm import TABLE_BASE

        dev, index = f"eth{nic['index']}", nic["index"]
        vm = self._nodes[nic["vm"]]
        vm.cmd(f"ip route del default dev {dev} 2>/dev/null; "
               f"ip route del default table {TABLE_BASE + index} 2>/dev/null")
        gateway = self._gateway_for(nic)
        if gateway:
            vm.cmd(f"ip route replace default via {gateway} dev {dev} metric {100 + index}; "
                   f"ip route replace default via {gateway} dev {dev} table {TABLE_BASE + index}")

    def _plug(self, key: str, owner: tuple) -> None:
        """Adds a NIC's cable to a switch and registers it; returns when its flows are in force."""
        vm, index = owner
        nic = self.graph.nodes[f"{vm}/{index}"]
        br = self.bridges[key]
        peer = self.cables[owner]
        number = br.add(peer, "guest", nic["mac"], owner, nic["allow_mac_spoofing"])
        cleanup.ovs("add-port", br.name, peer, "--", "set", "Interface", peer,
                    f"ofport_request={number}")
        self.controller.add_port(br.dpid, number, "guest", nic["mac"], nic["allow_mac_spoofing"])

    def _unplug(self, key: str, owner: tuple) -> None:
        """Unregisters a NIC's port (flows gone after the barrier), then takes it off the switch."""
        br = self.bridges[key]
        number = br.number_of(owner)
        if number is None:
            return
        self.controller.remove_port(br.dpid, number)
        cleanup.ovs("--if-exists", "del-port", br.name, br.ports[number]["peer"])
        del br.ports[number]

    def _new_bridge(self, br: Any) -> None:
        """Creates one controlled bridge (secure, userspace, OpenFlow 1.3) with the ports it has."""
        from wvpclab.lab import port_args

        args = self._bridge_args(br)
        for number, port in br.ports.items():
            args += port_args(br.name, port, number)
        cleanup.ovs(*args[1:])
        if not cleanup.wait_until(lambda: os.path.exists(f"/sys/class/net/{br.name}"), 10):
            from wvpclab.lab import LabError

            raise LabError(f"Open vSwitch did not create {br.name} in 10 s")
        from wvpclab.lab import harden_root_interface

        harden_root_interface(br.name)

    def _new_ends(self, ends: list) -> None:
        """Veths for service nodes added at runtime (inner end in the node, root end hardened)."""
        from wvpclab.lab import MTU, _run, harden_root_interface

        lines = [f"link add name {e.peer} mtu {MTU} type veth peer name {e.dev} address {e.mac} "
                 f"mtu {MTU} netns {e.node.pid}" for e in ends]
        _run(["ip", "-batch", "-"], "\n".join(lines) + "\n")
        for e in ends:
            harden_root_interface(e.peer)
            self._link(e.peer, up=True)
            self.bridges[e.bridge].add(e.peer, e.role, e.mac, e.owner)
        self._ends.extend(ends)

    def _realize_ends_since(self, before: int) -> None:
        """Makes the veths that ``_add_responder``/``_add_nat`` planned (the ends listed after
        ``before``) and configures their nodes: link up and address."""
        ends = self._ends[before:]
        del self._ends[before:]
        self._new_ends(ends)
        for e in ends:
            self._node_script(e.node, ["link set lo up", f"link set {e.dev} up",
                                       f"address add {e.ip} dev {e.dev}"])

    def _create_internal(self, pc: str, name: str) -> None:
        """An internal network used for the first time on this PC: its switch and, unless the
        topology switched its DHCP off, its responder."""
        from wvpclab.lab import Bridge

        # the topology's declaration, if any (also for networks no NIC used at start); a name
        # typed afresh, as WVPC's dialog allows, gets the built-in DHCP server
        dhcp = self.graph.graph.get("internal", {}).get(name, {}).get("dhcp", True)
        key = f"{pc}/{name}"
        self.graph.add_node(key, kind="internal", name=name, pc=pc, dhcp=dhcp)
        self.graph.add_edge(pc, key, rel="internal")
        names = {b.name for b in self.bridges.values()}
        index = next(i for i in range(len(names) + 1) if f"{self.prefix}-i{i}" not in names)
        br = Bridge(key, f"{self.prefix}-i{index}", self._dpid(0x0, index), "internal", dhcp)
        self.bridges[key] = br
        if dhcp:
            before = len(self._ends)
            self._add_responder(key, self.graph.nodes[key])
            self._realize_ends_since(before)
        self._new_bridge(br)
        self.controller.add_switch(br.dpid, "internal", br.name, self.registration(br),
                                   dhcp_steering=key in self.responders)
        if key in self.responders:
            self.responders[key].start()
        self._save_state()

    def _create_nat(self, key: str, nic: dict) -> None:
        """A NAT engine for a NIC that becomes shared: node, switch, transit link, rules, DHCP."""
        from wvpclab.lab import MTU, _run
        from wvpclab.nat import OUTSIDE

        used = {n.number for n in self.nats.values()}
        number = next(i for i in range(len(used) + 1) if i not in used)
        before = len(self._ends)
        self._add_nat(key, nic, number)
        self._realize_ends_since(before)
        nat = self.nats[(nic["vm"], nic["index"])]
        pc = self._nodes[self.graph.nodes[nic["vm"]]["pc"]]
        _run(["ip", "-batch", "-"], f"link add name {OUTSIDE} netns {self._nodes[nat.node].pid} "
                                    f"mtu {MTU} type veth peer name {nat.pc_dev} netns {pc.pid} "
                                    f"mtu {MTU}\n")
        self._configure_nat([nat])
        br = self.bridges[f"nat:{key}"]
        self._new_bridge(br)
        self.controller.add_switch(br.dpid, "internal", br.name, self.registration(br),
                                   dhcp_steering=True)
        self.responders[f"nat:{key}"].start()
        self._save_state()

    def _remove_nat(self, vm: str, index: int) -> None:
        """Takes a NIC's NAT engine away entirely: switch, node (and with it the transit link, its
        DHCP server and leases' process), and its rules in the PC."""
        from wvpclab.nat import pc_rules

        nat = self.nats.pop((vm, index))
        bkey = f"nat:{vm}/{index}"
        br = self.bridges.pop(bkey)
        self.controller.remove_switch(br.dpid)
        cleanup.ovs("--if-exists", "del-br", br.name)
        responder = self.responders.pop(bkey)
        responder.stop()
        node = self._nodes.pop(nat.node)
        cleanup.kill_namespaces([node.pid])
        self._release(node)
        if self.net is not None:
            self.net.hosts = [h for h in self.net.hosts if h is not node]
            self.net.nameToNode.pop(nat.node, None)
        self._ends = [e for e in self._ends if e.node is not node]
        pc = self.graph.nodes[vm]["pc"]
        remaining = [n for n in self.nats.values() if self.graph.nodes[n.vm]["pc"] == pc]
        adapters = [d["name"] for _, d in topology.nodes_of(self.graph, "adapter")
                    if d["pc"] == pc and d["lan"]]
        self._load_rules(self._nodes[pc], pc_rules(remaining, adapters))
        self._save_state()


__all__ = ["RuntimeChanges", "parse_mode"]
