"""The addresses WVPC and the lab fix once: the internal network's, shared networking's, the transit
range into each PC. Defined here only; everything else imports them."""

from __future__ import annotations

import ipaddress

#: WVPC's internal networks: link-local, its built-in DHCP server leases
#: 169.254.0.16-169.254.10.254.
INTERNAL_NETWORK = ipaddress.IPv4Network("169.254.0.0/16")
INTERNAL_POOL = ("169.254.0.16", "169.254.10.254")
#: The internal network's DHCP responder address (below the pool).
INTERNAL_SERVER = ipaddress.IPv4Interface("169.254.0.1/16")
#: Shared networking's private network unless a PC says otherwise.
DEFAULT_NAT_SUBNET = "192.168.131.0/24"
#: The lab's internet, unless it says otherwise: in the shared address space (RFC 6598,
#: 100.64.0.0/10), never a public range.
DEFAULT_INTERNET_SUBNET = "100.64.0.0/24"
#: The /30 transit links from each NAT engine into its PC: no LAN or NAT subnet may overlap it.
TRANSIT_NET = ipaddress.IPv4Network("172.31.0.0/16")


def nat_address(subnet: str) -> ipaddress.IPv4Interface:
    """The shared-networking NAT engine's address: the last usable one (192.168.131.254/24)."""
    net = ipaddress.IPv4Network(subnet)
    return ipaddress.IPv4Interface(f"{net.broadcast_address - 1}/{net.prefixlen}")


def gateway_address(subnet: str) -> ipaddress.IPv4Interface:
    """A LAN gateway's address: the first usable one (.1)."""
    net = ipaddress.IPv4Network(subnet)
    return ipaddress.IPv4Interface(f"{net.network_address + 1}/{net.prefixlen}")


def transit(number: int) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv4Interface]:
    """The PC's and the NAT engine's ends of transit link ``number`` (its /30 in TRANSIT_NET)."""
    base = TRANSIT_NET.network_address + 4 * number
    if base + 3 > TRANSIT_NET.broadcast_address:
        raise ValueError(f"transit link {number} is beyond {TRANSIT_NET}")
    return (ipaddress.IPv4Interface(f"{base + 1}/30"), ipaddress.IPv4Interface(f"{base + 2}/30"))


def lan_pool(subnet: str) -> tuple[str, str]:
    """A LAN gateway's DHCP pool: from .100 (or the subnet's middle, if smaller) to the last address
    below broadcast."""
    net = ipaddress.IPv4Network(subnet)
    start = net.network_address + max(2, min(100, net.num_addresses // 2))
    return str(start), str(net.broadcast_address - 1)


def nat_pool(subnet: str) -> tuple[str, str]:
    """A NAT network's DHCP pool: the first usable address up to the one below the NAT engine's."""
    net = ipaddress.IPv4Network(subnet)
    return str(net.network_address + 1), str(nat_address(subnet).ip - 1)


def host(cidr: str) -> str:
    """The address of ``a.b.c.d/len`` without its length."""
    return str(ipaddress.IPv4Interface(cidr).ip)


def in_pool(pool: tuple[str, str], addresses: list[str]) -> tuple[str, ...]:
    """The addresses (CIDR or plain) that fall in ``pool``: the ones its server must never hand
    out."""
    lo, hi = (ipaddress.IPv4Address(a) for a in pool)
    return tuple(sorted({host(a) for a in addresses if lo <= ipaddress.IPv4Address(host(a)) <= hi},
                        key=ipaddress.IPv4Address))

#: A guest NIC N's source routing: routing table TABLE_BASE + N, rule priority RULE_BASE + N (the
#: DHCP client hook uses the same numbers).
TABLE_BASE = 100
RULE_BASE = 1000
