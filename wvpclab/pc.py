"""The physical PC running Windows Virtual PC, as a Mininet node (its own IP stack).

Its switches are OVS bridges in the root namespace; NAT engines and DHCP responders are nodes of their own.
"""

from __future__ import annotations

from mininet.node import Host


class PhysicalPC(Host):
    """The physical PC running Windows Virtual PC: its own IP stack, one interface per host adapter.

    Its switches (filter switches, internal networks) are OVS bridges in the root namespace, and its
    NAT engines and DHCP responders are nodes of their own; this node is the host's own stack only.
    """


class LanGateway(Host):
    """An emulated LAN's gateway at the subnet's .1: its router and (unless ``dhcp: false``) its DHCP
    server. Named ``gw.LAN``."""


class LanServer(Host):
    """A plain host on an emulated LAN answering TCP/UDP echo (port 7) and HTTP (port 80)."""


class NatEngine(Host):
    """One shared NIC's NAT engine (``nat.VM.N``): the guest's gateway, DHCP and DNS address (.254),
    MASQUERADE and a stateful firewall onto a transit link into the PC."""
