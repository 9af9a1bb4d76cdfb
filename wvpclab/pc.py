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
