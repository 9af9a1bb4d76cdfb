"""A guest that may send any source MAC (allow_mac_spoofing) cannot empty a DHCP pool (as root):
its DHCP requests pass a per-port meter on its switch (on a shared NIC: the rate limit of its NAT
engine's ingress filter), so a flood of DISCOVERs for invented hardware addresses reaches the
server at a bounded rate while a real client still leases."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import yaml

from controllers.flowrules import DHCP_METER_BURST, DHCP_METER_RATE
from tests.lab.helpers import leftovers, wait_for
from wvpclab import Lab
from wvpclab.model import topology

pytestmark = pytest.mark.lab

TOPOLOGY = {
    "name": "meterlab",
    "pcs": {"host": {}},
    "internal": {"net": {"dhcp": True}},
    "vms": {
        "spoofy": {"pc": "host", "nics": [{"internal": "net", "allow_mac_spoofing": True},
                                          {"shared": True, "allow_mac_spoofing": True}]},
        "victim": {"pc": "host", "nics": [{"internal": "net"}]},
    },
}
FLOOD_SECONDS = 4.0
#: DISCOVERs from invented hardware addresses, as fast as scapy sends them, for FLOOD_SECONDS
FLOOD = (
    "import random, time; from scapy.all import *; conf.verb = 0\n"
    "s = conf.L2socket(iface='{iface}'); end = time.monotonic() + {seconds}; n = 0\n"
    "while time.monotonic() < end:\n"
    "    mac = '02:' + ':'.join('%02x' % random.randrange(256) for _ in range(5))\n"
    "    s.send(Ether(src=mac, dst='ff:ff:ff:ff:ff:ff')/IP(src='0.0.0.0', dst='255.255.255.255')"
    "/UDP(sport=68, dport=67)/BOOTP(chaddr=mac2str(mac), xid=random.randrange(1 << 32))"
    "/DHCP(options=[('message-type', 'discover'), 'end'])); n += 1\n"
    "print(n)\n")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = tmp_path_factory.mktemp("meter") / "meterlab.yaml"
    path.write_text(yaml.safe_dump(TOPOLOGY))
    with Lab(topology.load(path), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def settled(count: Callable[[], int], quiet: float = 1.5, timeout: float = 15) -> int:
    """`count()` once it has not changed for `quiet` seconds (the server's stats are written every
    half second)."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the count never settled"
        time.sleep(0.1)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
    return last


@pytest.mark.parametrize(("network", "index"), [("host/net", 0), ("nat:spoofy/1", 1)])
def test_a_spoofing_guests_dhcp_flood_is_held_to_its_meter(lab: Lab, network: str,
                                                           index: int) -> None:
    responder = lab.responder(network)
    wait_for(lambda: responder.stats(), what="the server's first stats")
    before = responder.stats().get("in DISCOVER", 0)
    started = time.monotonic()
    proc = lab.vm("spoofy").popen([sys.executable, "-c", FLOOD.format(seconds=FLOOD_SECONDS,
                                                                       iface=f"eth{index}")],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - started
    sent = int(out.strip() or 0)
    assert sent > 10 * DHCP_METER_RATE * FLOOD_SECONDS, (out, err)  # a real flood
    limit = DHCP_METER_RATE * elapsed + DHCP_METER_BURST
    got = settled(lambda: responder.stats().get("in DISCOVER", 0) - before)
    assert got <= limit, f"{got} of {sent} DISCOVERs reached the server (limit {limit:.0f})"
    if network == "host/net":
        assert any("at most 10 a second" in line for line in lab.filter_rules(network))
        victim, net = ("victim", 0), "169.254."
    else:
        rules = lab.nat_rules("spoofy", index)["nat.spoofy.1"]
        assert f"udp dport 67 limit rate over {DHCP_METER_RATE}/second burst " \
            f"{DHCP_METER_BURST} packets drop" in rules
        victim, net = ("spoofy", index), "192.168.131."  # the guest's own client, alone there
    # a real client on the same network still leases
    lab.cable(*victim, False)
    lab.cable(*victim, True)
    lease = lab.dhcp_client(*victim).lease()
    assert lease and lease["ip"].startswith(net), lease
