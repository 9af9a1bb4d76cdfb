"""Shared networking (NAT): the addresses and firewall rules of each NIC's NAT engine and of its PC.

Pure: these functions return ``iptables-restore`` input; the lab loads it into the NAT node's and the PC's
own namespaces (never the machine's). Each shared NIC has a NAT node of its own: the guest's private
network on the inside, a /30 transit link into the PC on the outside, MASQUERADE and a stateful firewall;
the PC masquerades again out of its adapters, with FORWARD policy DROP (DESIGN.md §2).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from wvpclab.topology import nat_address

#: What a NAT engine forwards: WVPC's NAT "supports all connections which use TCP/IP" — TCP, UDP and
#: ICMP. Anything else (GRE, ESP: VPNs) does not leave; non-IP frames are never routed.
PROTOCOLS = ("tcp", "udp", "icmp")
TRANSIT_BASE = ipaddress.IPv4Network("172.31.0.0/16")
INSIDE, OUTSIDE = "eth0", "wan0"
#: The start of each ruleset's tables: forwarding off unless a rule says otherwise.
FILTER_HEAD = ("*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]")
NAT_HEAD = ("*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
            ":POSTROUTING ACCEPT [0:0]")


@dataclass(frozen=True)
class NatNic:
    """One shared NIC's NAT: where it is and what it forwards."""

    vm: str
    index: int
    number: int  # the lab's count of shared NICs: picks the transit /30 and the PC's interface name
    subnet: str  # the guest's private network, e.g. 192.168.131.0/24
    guest_ip: str  # the guest's address (static, or the one the NAT's DHCP gives its only client)
    forward: tuple[str, ...] = ()  # "tcp:8080:80"

    @property
    def node(self) -> str:
        return f"nat.{self.vm}.{self.index}"

    @property
    def pc_dev(self) -> str:
        return f"nat{self.number}"

    @property
    def transit(self) -> ipaddress.IPv4Network:
        return list(TRANSIT_BASE.subnets(new_prefix=30))[self.number]

    @property
    def pc_side(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.transit.network_address + 1}/30")

    @property
    def nat_side(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.transit.network_address + 2}/30")

    @property
    def inside(self) -> ipaddress.IPv4Interface:
        """The NAT engine's own address on the guest's network (.254 of a /24): gateway, DHCP, DNS."""
        return nat_address(self.subnet)

    def forwards(self) -> list[tuple[str, int, int]]:
        out = []
        for rule in self.forward:
            proto, host, guest = rule.split(":")
            out.append((proto, int(host), int(guest)))
        return out


def dhcp_pool(subnet: str) -> tuple[str, str]:
    """The NAT network's DHCP pool: the first usable address up to the one below the NAT's own."""
    net = ipaddress.IPv4Network(subnet)
    return str(net.network_address + 1), str(nat_address(subnet).ip - 1)


def engine_rules(nic: NatNic) -> str:
    """The NAT node's ruleset: MASQUERADE out, only TCP/UDP/ICMP forwarded out, nothing new in but the
    forwarded ports."""
    lines = [*FILTER_HEAD,
             f"-A INPUT -i {OUTSIDE} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
             f"-A INPUT -i {OUTSIDE} -j DROP"]
    for proto in PROTOCOLS:
        lines.append(f"-A FORWARD -i {INSIDE} -o {OUTSIDE} -p {proto} -j ACCEPT")
    lines.append(f"-A FORWARD -i {OUTSIDE} -o {INSIDE} -m conntrack --ctstate ESTABLISHED,RELATED "
                 "-j ACCEPT")
    for proto, _host, guest in nic.forwards():
        lines.append(f"-A FORWARD -i {OUTSIDE} -o {INSIDE} -p {proto} -d {nic.guest_ip} "
                     f"--dport {guest} -m conntrack --ctstate DNAT -j ACCEPT")
    lines += ["COMMIT", *NAT_HEAD]
    for proto, host, guest in nic.forwards():
        lines.append(f"-A PREROUTING -i {OUTSIDE} -p {proto} --dport {host} "
                     f"-j DNAT --to-destination {nic.guest_ip}:{guest}")
    lines += [f"-A POSTROUTING -o {OUTSIDE} -j MASQUERADE", "COMMIT"]
    return "\n".join(lines) + "\n"


def pc_rules(nics: list[NatNic], adapters: list[str]) -> str:
    """The PC's ruleset for its NAT engines: out of every adapter, MASQUERADE what comes from a
    transit link; FORWARD policy DROP (so transit links never reach each other, and nothing new comes
    in); the forwarded ports are sent on to their NAT engine."""
    lines = list(FILTER_HEAD)
    for nic in nics:
        for adapter in adapters:
            for proto in PROTOCOLS:
                lines.append(f"-A FORWARD -i {nic.pc_dev} -o {adapter} -p {proto} -j ACCEPT")
        lines.append(f"-A FORWARD -o {nic.pc_dev} -m conntrack --ctstate ESTABLISHED,RELATED "
                     "-j ACCEPT")
        for proto, host, _guest in nic.forwards():
            lines.append(f"-A FORWARD -o {nic.pc_dev} -p {proto} -d {nic.nat_side.ip} "
                         f"--dport {host} -m conntrack --ctstate DNAT -j ACCEPT")
    lines += ["COMMIT", *NAT_HEAD]
    for nic in nics:
        for proto, host, _guest in nic.forwards():
            for adapter in adapters:
                lines.append(f"-A PREROUTING -i {adapter} -p {proto} --dport {host} "
                             f"-j DNAT --to-destination {nic.nat_side.ip}:{host}")
    for adapter in adapters:
        lines.append(f"-A POSTROUTING -s {TRANSIT_BASE} -o {adapter} -j MASQUERADE")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
