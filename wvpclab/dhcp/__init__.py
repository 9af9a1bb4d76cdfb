"""DHCP for the lab: the RFC 2131 server (pure lease decisions + a thin UDP loop) and the guests' clients.

``message`` parses and builds packets, ``leases`` decides, ``server`` is the process, ``service`` runs
responders and clients in a lab, ``client-hook.sh`` configures a guest NIC from udhcpc or dhclient.
"""
