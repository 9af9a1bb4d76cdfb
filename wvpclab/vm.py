"""VirtualPC: a Mininet host that behaves like a Windows guest with up to four 21140A NICs.

Strong-host behaviour: ARP answered only for the receiving NIC's own address and replies leave by the
NIC the request came in on (per-NIC source routing), so two NICs in one subnet on two networks work.
"""

from __future__ import annotations

import ipaddress

from mininet.node import Host

#: Routing table for NIC N's source routing is TABLE_BASE + N (rule priority RULE_BASE + N).
TABLE_BASE = 100
RULE_BASE = 1000

GUEST_SYSCTLS = {
    "net.ipv4.conf.all.arp_ignore": 1,
    "net.ipv4.conf.all.arp_announce": 2,
    "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0,
    "net.ipv4.ip_forward": 0,
}


def source_routing(dev: str, index: int, cidr: str, gateway: str | None = None) -> list[str]:
    """``ip -batch`` lines so that traffic from ``cidr``'s address leaves by ``dev``."""
    iface = ipaddress.IPv4Interface(cidr)
    table = TABLE_BASE + index
    lines = [f"rule add from {iface.ip} table {table} priority {RULE_BASE + index}",
             f"route replace {iface.network} dev {dev} src {iface.ip} table {table}"]
    if gateway:
        lines.append(f"route replace default via {gateway} dev {dev} table {table}")
    return lines


class VirtualPC(Host):
    """A guest VM. NICs are ``eth0``..``eth3`` (Tulip21140Intf), added by the lab in one batch."""

    def __init__(self, name: str, pc: str | None = None, **params: object) -> None:
        self.pc_name = pc
        super().__init__(name, **params)

    def nics(self) -> list:
        """The VM's NICs in order."""
        return [intf for _, intf in sorted(self.intfs.items()) if intf.name != "lo"]

    def nic(self, index: int):  # noqa: ANN201 - Tulip21140Intf
        """NIC ``index`` (0..3)."""
        for intf in self.nics():
            if getattr(intf, "index", None) == index:
                return intf
        raise KeyError(f"{self.name} has no NIC {index}")

