"""Internal network with the built-in DHCP server switched off (`dhcp: false`), so that a guest
can be the DHCP server — what WVPC tells users to do for a guest-run server.

As a topology:  wvpclab run topologies/guest_dhcp.py   then, in the CLI:
    server python3 -m wvpclab.runtime.dhcp.server --iface eth0 --network 169.254.0.0/16 \\
        --server 169.254.0.2 --pool 169.254.20.10-169.254.20.50 --leases /tmp/guest.json &
    (within a few seconds the clients' own DHCP clients get leases from it)
    nics
As a script (root):  .venv/bin/python topologies/guest_dhcp.py
does just that and prints the leases.
"""

from __future__ import annotations

import networkx as nx

from wvpclab.model import topology as t


def topology() -> nx.Graph:
    return t.from_document({
        "name": "guest-dhcp",
        "pcs": {"pc": {}},
        "internal": {"lab": {"dhcp": False}},
        "vms": {
            "server": {"nics": [{"internal": "lab", "ip": "169.254.0.2/16"}]},
            "c1": {"nics": [{"internal": "lab"}]},
            "c2": {"dhcp_client": "dhclient", "nics": [{"internal": "lab"}]},
        },
    })


def main() -> None:
    import subprocess
    import sys
    import tempfile
    import time

    import wvpclab
    from wvpclab.runtime.dhcp.server import READY_LINE
    from wvpclab.runtime.procs import wait_ready

    with wvpclab.Lab(topology(), quiet=True) as lab, tempfile.TemporaryDirectory() as tmp:
        server = lab.vm("server").popen(
            [sys.executable, "-m", "wvpclab.runtime.dhcp.server", "--iface", "eth0", "--network",
             "169.254.0.0/16", "--server", "169.254.0.2", "--pool", "169.254.20.10-169.254.20.50",
             "--leases", f"{tmp}/guest.json"], stdout=subprocess.PIPE)
        wait_ready(server, READY_LINE, 20, "the guest's DHCP server")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
                lab.dhcp_client(vm, 0).lease() for vm in ("c1", "c2")):
            time.sleep(0.1)
        for vm in ("c1", "c2"):
            print(f"{vm}: {(lab.dhcp_client(vm, 0).lease() or {}).get('ip', 'no lease')} "
                  "from the guest server")
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    main()
