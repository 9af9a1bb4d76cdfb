"""A topology built in code, and a script that drives it end to end: load, start, change, probe,
stop.

As a topology file:  wvpclab check topologies/move_nic.py   (or wvpclab run ...)
As a script (root):  .venv/bin/python topologies/move_nic.py
It moves one VM's NIC through WVPC's four modes, as the Settings dialog does while the VM runs, and
prints what the guest sees in each: its address, and what a web server on the LAN says about it.
"""

from __future__ import annotations

import networkx as nx

from wvpclab.model import topology as t


def topology() -> nx.Graph:
    """One PC on an office LAN with a web server, an internal network, and two VMs."""
    return t.from_document({
        "name": "move-nic",
        "pcs": {"pc": {"adapters": {"eth0": {"mac": "00:1a:2b:3c:4d:5e", "lan": "office"}}}},
        "lans": {"office": {"subnet": "192.168.50.0/24", "servers": {"web": "192.168.50.80"}}},
        "internal": {"lab": {"dhcp": True}},
        "vms": {
            "xp": {"nics": ["shared"]},
            "peer": {"nics": [{"internal": "lab", "ip": "169.254.1.10/16"}]},
        },
    })


def main() -> None:
    import wvpclab

    with wvpclab.Lab(topology(), quiet=True) as lab:           # start: returns when all is in force
        xp = lab.vm("xp")
        for mode in ("shared", "bridge:eth0", "internal:lab", "none", "shared"):
            lab.set_nic("xp", 0, mode)                          # change: returns with a new lease
            lease = lab.dhcp_client("xp", 0).lease() or {}
            if mode.startswith("internal"):
                seen = xp.cmd("ping -n -c1 -W2 169.254.1.10 | grep -o '1 received'").strip()
            elif mode == "none":
                seen = "carrier " + ("yes" if xp.nic(0).carrier() else "no")
            else:
                seen = xp.cmd("curl -s -m 5 http://192.168.50.80/").strip()   # probe
            print(f"{mode:<13} address {lease.get('ip', '-'):<16} {seen}")
    # stop: everything the lab made is gone here, also after an exception


if __name__ == "__main__":
    main()
