"""Shared networking (NAT): the addresses and firewall rules of each NIC's NAT engine and of its PC.

Pure: these functions return ``iptables-restore`` input (and the engine's ingress filter, ``nft``
input); the lab loads it into the NAT node's and the PC's own namespaces (never the machine's). Each
shared NIC has a NAT node of its own: the guest's cable on the inside (its private network, no
switch), a /30 transit link into the PC on the outside, MASQUERADE
and a stateful firewall; the PC masquerades again out of its adapters, with FORWARD policy DROP
(docs/architecture.md §2).
"""

from __future__ import annotations

from controllers.flowrules import DHCP_METER_BURST, DHCP_METER_RATE
from wvpclab.model.addresses import TRANSIT_NET
from wvpclab.model.items import Nat

#: What a NAT engine forwards: WVPC's NAT "supports all connections which use TCP/IP" — TCP, UDP and
#: ICMP. Anything else (GRE, ESP: VPNs) does not leave; non-IP frames are never routed.
PROTOCOLS = ("tcp", "udp", "icmp")
INSIDE, OUTSIDE = "eth0", "wan0"
#: The start of each ruleset's tables: forwarding off unless a rule says otherwise.
FILTER_HEAD = ("*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]")
NAT_HEAD = ("*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
            ":POSTROUTING ACCEPT [0:0]")


def engine_rules(nic: Nat) -> str:
    """The NAT node's ruleset: MASQUERADE out, only TCP/UDP/ICMP forwarded out, nothing new in but
    the forwarded ports; DNS asked of the engine (.254) relayed by its PC (WVPC's DNS proxy)."""
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
    for proto in ("udp", "tcp"):  # DNS asked of the engine goes to its PC's relay
        lines.append(f"-A PREROUTING -i {INSIDE} -d {nic.inside.ip} -p {proto} --dport 53 "
                     f"-j DNAT --to-destination {nic.pc_side.ip}:53")
    for proto, host, guest in nic.forwards():
        lines.append(f"-A PREROUTING -i {OUTSIDE} -d {nic.nat_side.ip} -p {proto} --dport {host} "
                     f"-j DNAT --to-destination {nic.guest_ip}:{guest}")
    lines += [f"-A POSTROUTING -o {OUTSIDE} -j MASQUERADE", "COMMIT"]
    return "\n".join(lines) + "\n"


def engine_ingress(guest_mac: str, allow_spoofing: bool) -> str:
    """The NAT engine's ingress filter on its end of the guest's cable (nftables, netdev family),
    what the guest's own switch used to do: a frame from another source MAC goes nowhere (dropped
    as it arrives, before routing, ARP or the DHCP server see it); a guest allowed to send any
    source MAC instead reaches the DHCP server at a bounded rate (the switches' meter), so that a
    flood of invented hardware addresses cannot empty the pool."""
    if allow_spoofing:
        rule = (f"udp dport 67 limit rate over {DHCP_METER_RATE}/second burst {DHCP_METER_BURST} "
                "packets drop")
    else:
        rule = f"ether saddr != {guest_mac} drop"
    # the table is made (if missing) and deleted first, so that loading replaces it as one
    return (f"table netdev wvpclab\ndelete table netdev wvpclab\ntable netdev wvpclab {{\n"
            f"  chain guest {{\n"
            f"    type filter hook ingress device \"{INSIDE}\" priority 0; policy accept;\n"
            f"    {rule}\n  }}\n}}\n")


#: A LAN gateway's interfaces: its LAN, and (with an internet) its uplink.
LAN_SIDE, WAN_SIDE = "eth0", "eth1"


def gateway_rules(nat: bool) -> str:
    """A LAN gateway's ruleset once the lab has an internet: its LAN goes out (behind the gateway's
    own internet address unless the LAN is routed, ``nat: false``); nothing new comes in to a
    NATed LAN; the gateway's own DNS and DHCP are not offered to the internet (it answers ping)."""
    lines = [*FILTER_HEAD,
             f"-A INPUT -i {WAN_SIDE} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
             f"-A INPUT -i {WAN_SIDE} -p icmp -j ACCEPT",
             f"-A INPUT -i {WAN_SIDE} -j DROP",
             f"-A FORWARD -i {LAN_SIDE} -o {WAN_SIDE} -j ACCEPT",
             (f"-A FORWARD -i {WAN_SIDE} -o {LAN_SIDE} -m conntrack --ctstate ESTABLISHED,RELATED "
              "-j ACCEPT")]
    if not nat:
        lines.append(f"-A FORWARD -i {WAN_SIDE} -o {LAN_SIDE} -j ACCEPT")
    lines += ["COMMIT", *NAT_HEAD]
    if nat:
        lines.append(f"-A POSTROUTING -o {WAN_SIDE} -j MASQUERADE")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def pc_rules(nics: list[Nat], adapters: list[str]) -> str:
    """The PC's ruleset for its NAT engines: out of every adapter, MASQUERADE what comes from a
    transit link; FORWARD policy DROP (so transit links never reach each other, and nothing new
    comes in); the forwarded ports are sent on to their NAT engine, only when asked at the PC's own
    address on the adapter they came in on (not at an address the PC would route onwards)."""
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
                             "-m addrtype --dst-type LOCAL --limit-iface-in "
                             f"-j DNAT --to-destination {nic.nat_side.ip}:{host}")
    for adapter in adapters:
        lines.append(f"-A POSTROUTING -s {TRANSIT_NET} -o {adapter} -j MASQUERADE")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
