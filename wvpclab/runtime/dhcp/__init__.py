"""DHCP for the lab: the RFC 2131 server (pure lease decisions, thin UDP loop) and guests' clients.

``message`` reads requests and writes replies (the bytes are ``wvpclab.wire``'s), ``leases``
decides, ``server`` is the process, ``service`` runs responders and clients in a lab,
``client-hook.sh`` configures a guest NIC from udhcpc or dhclient.
"""
