"""One guest, one identity (as root): a guest on an internal network attacks its DHCP server with
scapy and a user checks what changed. DISCOVERs for other hardware addresses get no OFFER; forged
DECLINEs and RELEASEs of another guest's address leave its lease alone; one NIC holds at most four
leases; known hardware addresses keep the pool's reserve; a real client still leases, and no other
guest sees the OFFER and ACK meant for it unless it asked for broadcast. A guest bridged over Wi-Fi
(its frames carry the adapter's MAC) still leases from the LAN's gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.lab.helpers import Capture, example_as, leftovers, read_pcap, send_frames, wait_for
from wvpclab import Lab
from wvpclab.model import topology
from wvpclab.model.items import DhcpServer
from wvpclab.runtime.dhcp import leases as L
from wvpclab.runtime.dhcp.server import NOT_A_RELAY, NOT_THE_SENDER, read_table

pytestmark = pytest.mark.lab

NET = "pc/lab"
LAB1_IP = "169.254.1.10"  # the attacker's static address (four_modes.yaml)
OTHER_SERVER = "169.254.0.2"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = example_as(tmp_path_factory.mktemp("topo"), "four_modes.yaml", "t-dhcp-identity")
    doc = yaml.safe_load(path.read_text())
    doc["vms"]["xp"]["nics"][1] = {"bridge": "wlan0"}  # xp's bridged NIC goes over Wi-Fi
    path.write_text(yaml.safe_dump(doc))
    with Lab(topology.load(path), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def mac_of(lab: Lab, nic: str) -> str:
    return lab.graph.nodes[nic]["mac"]


def victim_ip(lab: Lab) -> str:
    lease = lab.dhcp_client("xp", 2).lease()
    assert lease, "xp has no lease on the internal network"
    return lease["ip"]


def dhcp(lab: Lab, mtype: str, chaddr: str, *, ip_src: str = "0.0.0.0",
         ip_dst: str = "255.255.255.255", eth_dst: str = "ff:ff:ff:ff:ff:ff", xid: str = "1",
         ciaddr: str = "0.0.0.0", giaddr: str = "0.0.0.0", options: str = "") -> str:
    """A DHCP client message from lab1, as a scapy expression, from port 68 even when relayed
    (lab1's switch port lets out only lab1's source MAC, and no UDP from port 67, the port relays
    send from). ``chaddr`` and ``xid`` are Python expressions (quote a literal MAC with repr)."""
    return (f"Ether(src='{mac_of(lab, 'lab1/0')}', dst='{eth_dst}')"
            f"/IP(src='{ip_src}', dst='{ip_dst}')/UDP(sport=68, dport=67)"
            f"/BOOTP(chaddr=mac2str({chaddr}), xid={xid}, ciaddr='{ciaddr}', giaddr='{giaddr}')"
            f"/DHCP(options=[('message-type', '{mtype}'), {options}'end'])")


def replies(frames_or_path: list | Path, mtype: int | None = None) -> list:
    """The DHCP server messages among frames or in a capture (of one message type: 2 OFFER,
    5 ACK)."""
    from scapy.layers.dhcp import BOOTP, DHCP

    frames = read_pcap(frames_or_path) if isinstance(frames_or_path, Path) else frames_or_path
    out = []
    for f in frames:
        if BOOTP in f and f[BOOTP].op == 2:
            kind = dict(o for o in f[DHCP].options if isinstance(o, tuple)).get("message-type")
            if mtype is None or kind == mtype:
                out.append(f)
    return out


def bound(lab: Lab) -> set[tuple[str, str, str]]:
    """The responder's lease table as a user reads it: (address, MAC, state)."""
    return {(r["ip"], r["mac"], r["state"]) for r in lab.responder(NET).leases()}


def counted(lab: Lab, before: dict[str, int], want: dict[str, int]) -> None:
    """Waits until the responder's stats grew by ``want``. (The server writes its stats at most
    twice a second, so ``before`` may lag: count only what the test alone causes.)"""
    responder = lab.responder(NET)
    wait_for(lambda: all(responder.stats().get(k, 0) >= before.get(k, 0) + n
                         for k, n in want.items()),
             timeout=15, what=f"the responder to count {want} (it has {responder.stats()})")


def test_discovers_for_other_hardware_addresses_get_no_offer(lab: Lab, tmp_path: Path) -> None:
    responder = lab.responder(NET)
    before, table = responder.stats(), bound(lab)
    at_lab1 = Capture(lab.vm("lab1"), "eth0", tmp_path / "lab1.pcap", "udp port 68", inbound=True)
    # 200 DISCOVERs, each for another hardware address: a starvation attempt from one guest
    storm = dhcp(lab, "discover", "'0a:00:00:00:%02x:%02x' % divmod(i, 256)", xid="i")
    send_frames(lab.vm("lab1"), "eth0", f"[{storm} for i in range(200)]")
    counted(lab, before, {NOT_THE_SENDER: 200})
    assert at_lab1.stop() == []  # no OFFER came back to the guest that asked
    assert bound(lab) == table


def test_forged_decline_and_release_leave_another_guests_lease_alone(lab: Lab) -> None:
    responder = lab.responder(NET)
    victim, server = victim_ip(lab), responder.server_ip
    xp, lab1 = mac_of(lab, "xp/2"), mac_of(lab, "lab1/0")
    server_mac = json.loads(lab.node("dhcp.pc.lab").cmd("ip -j link show eth0"))[0]["address"]
    xp_id = f"b'\\x01' + mac2str({xp!r})"
    before = responder.stats()
    decline = f"('requested_addr', '{victim}'), ('server_id', '{server}'), "
    frames = [
        # in the victim's name (its chaddr), in its client identifier, and as a relay for it
        dhcp(lab, "decline", repr(xp), options=decline),
        dhcp(lab, "decline", repr(lab1), options=f"('client_id', {xp_id}), " + decline),
        dhcp(lab, "decline", repr(xp), ip_src=LAB1_IP, ip_dst=server, eth_dst=server_mac,
             giaddr=LAB1_IP, options=decline),
        dhcp(lab, "release", repr(xp), ip_src=victim, ip_dst=server, eth_dst=server_mac,
             ciaddr=victim, options=f"('server_id', '{server}'), "),
        dhcp(lab, "release", repr(lab1), ip_src=victim, ip_dst=server, eth_dst=server_mac,
             ciaddr=victim, options=f"('client_id', {xp_id}), ('server_id', '{server}'), "),
        dhcp(lab, "release", repr(xp), ip_src=LAB1_IP, ip_dst=server, eth_dst=server_mac,
             ciaddr=victim, giaddr=LAB1_IP, options=f"('server_id', '{server}'), "),
    ]
    send_frames(lab.vm("lab1"), "eth0", f"[{', '.join(frames)}]")
    counted(lab, before, {NOT_THE_SENDER: 2, L.DECLINE_IGNORED: 1, L.RELEASE_IGNORED: 1,
                          NOT_A_RELAY: 2})
    row = next(r for r in responder.leases() if r["ip"] == victim)
    assert (row["state"], row["mac"]) == ("bound", xp)
    assert L.IPv4(victim) not in read_table(responder.leases_path).declined
    assert "1 received" in lab.vm("lab1").cmd(f"ping -n -c1 -W2 {victim}")
    # and the victim renews the same address (a set-aside address would be NAKed)
    expires = row["expires"]
    lab.dhcp_client("xp", 2).renew()
    wait_for(lambda: any(r["ip"] == victim and r["expires"] > expires and r["mac"] == xp
                         for r in responder.leases()),
             timeout=20, what="xp to renew its lease")
    assert victim_ip(lab) == victim


def test_a_real_client_leases_and_no_other_guest_sees_its_offer_or_ack(
        lab: Lab, tmp_path: Path) -> None:
    xp, victim = mac_of(lab, "xp/2"), victim_ip(lab)
    at_lab1 = Capture(lab.vm("lab1"), "eth0", tmp_path / "lab1.pcap", "udp port 68", inbound=True)
    at_xp = Capture(lab.vm("xp"), "eth2", tmp_path / "xp.pcap", "udp port 68", inbound=True)
    out = lab.vm("xp").cmd("busybox udhcpc -q -n -f -i eth2 -s /bin/true -t 3 -T 1 2>&1")
    assert f"lease of {victim} obtained" in out, out
    wait_for(lambda: replies(tmp_path / "xp.pcap", 2) and replies(tmp_path / "xp.pcap", 5),
             what="the OFFER and ACK at xp")
    seen = replies(at_xp.stop())
    assert {(f.dst, f["IP"].dst) for f in seen} == {(xp, victim)}  # xp's MAC and address
    assert at_lab1.stop() == []  # lab1 saw none of them
    # a client that sets the broadcast flag (RFC 2131 §4.1) gets its replies broadcast: lab1
    # sees them (the capture there works)
    at_lab1 = Capture(lab.vm("lab1"), "eth0", tmp_path / "lab1b.pcap", "udp port 68",
                      inbound=True)
    out = lab.vm("xp").cmd("busybox udhcpc -B -q -n -f -i eth2 -s /bin/true -t 3 -T 1 2>&1")
    assert f"lease of {victim} obtained" in out, out
    wait_for(lambda: replies(tmp_path / "lab1b.pcap", 5), what="the broadcast ACK at lab1")
    assert {f.dst for f in at_lab1.stop()} == {"ff:ff:ff:ff:ff:ff"}


def test_one_nic_holds_at_most_four_leases(lab: Lab, tmp_path: Path) -> None:
    responder = lab.responder(NET)
    before = responder.stats()
    at_lab1 = Capture(lab.vm("lab1"), "eth0", tmp_path / "lab1.pcap", "udp port 68", inbound=True)
    ids = [f"b'\\xffos-{n}'" for n in range(8)]
    frames = [dhcp(lab, "discover", repr(mac_of(lab, "lab1/0")), xid=str(100 + n),
                   options=f"('client_id', {cid}), ") for n, cid in enumerate(ids)]
    send_frames(lab.vm("lab1"), "eth0", f"[{', '.join(frames)}]")
    counted(lab, before, {"in DISCOVER": 8, L.TOO_MANY: 4})
    wait_for(lambda: len(replies(tmp_path / "lab1.pcap", 2)) >= 4, what="4 OFFERs at lab1")
    offers = replies(at_lab1.stop())
    assert len(offers) == 4 and {f.dst for f in offers} == {mac_of(lab, "lab1/0")}
    # lab1 picks another server for all four: their offers go, so the next test starts clean
    drop = [dhcp(lab, "request", repr(mac_of(lab, "lab1/0")), xid=str(200 + n),
                 options=f"('client_id', {cid}), ('server_id', '{OTHER_SERVER}'), "
                         "('requested_addr', '169.254.0.99'), ")
            for n, cid in enumerate(ids[:4])]
    before = responder.stats()
    send_frames(lab.vm("lab1"), "eth0", f"[{', '.join(drop)}]")
    counted(lab, before, {"in REQUEST": 4})


def test_known_hardware_addresses_keep_the_reserve(lab: Lab, tmp_path: Path) -> None:
    responder = lab.responder(NET)
    lab1 = mac_of(lab, "lab1/0")
    discover = dhcp(lab, "discover", repr(lab1), xid="300")
    planned = lab.plan.get(DhcpServer, NET).known
    assert responder.known == planned and set(planned) == {mac_of(lab, "xp/2"), lab1}
    responder.reserve = 100_000  # all of the pool is reserve: unknown NICs get nothing new
    try:
        responder.restart()
        responder.set_known((mac_of(lab, "xp/2"),))  # read again, in the same process
        assert responder.known_path.read_text() == mac_of(lab, "xp/2") + "\n"
        pid, before = responder.pid, responder.stats()
        reads = before["known file read"]
        at_lab1 = Capture(lab.vm("lab1"), "eth0", tmp_path / "none.pcap", "udp port 68",
                          inbound=True)
        send_frames(lab.vm("lab1"), "eth0", f"[{discover}]")
        counted(lab, before, {L.RESERVED: 1})
        assert at_lab1.stop() == []
        # the known file is read again on SIGHUP: the same process now offers to lab1
        responder.set_known((mac_of(lab, "xp/2"), lab1))
        assert responder.pid == pid and responder.stats()["known file read"] == reads + 1
        at_lab1 = Capture(lab.vm("lab1"), "eth0", tmp_path / "lab1.pcap", "udp port 68",
                          inbound=True)
        send_frames(lab.vm("lab1"), "eth0", f"[{discover}]")
        wait_for(lambda: replies(tmp_path / "lab1.pcap", 2), what="the OFFER to lab1")
        assert [f.dst for f in replies(at_lab1.stop())] == [lab1]
        # xp (known) renews as ever
        expires = next(r["expires"] for r in responder.leases() if r["mac"] == mac_of(lab, "xp/2"))
        lab.dhcp_client("xp", 2).renew()
        wait_for(lambda: any(r["mac"] == mac_of(lab, "xp/2") and r["expires"] > expires
                             for r in responder.leases()),
                 timeout=20, what="xp to renew its lease")
    finally:
        responder.reserve = None
        responder.restart()
        responder.set_known(planned)  # as the lab made it
    assert responder.known == planned and responder.pid is not None


def test_the_responder_logged_the_attacks_and_still_serves(lab: Lab) -> None:
    log = lab.responder(NET).log_path.read_text()
    assert "dropped (the hardware address is not the sender's)" in log
    assert "which it does not hold: ignored" in log
    out = lab.vm("xp").cmd("busybox udhcpc -q -n -f -i eth2 -s /bin/true -t 3 -T 1 2>&1")
    assert f"lease of {victim_ip(lab)} obtained" in out, out


def test_a_guest_bridged_over_wifi_still_leases_from_the_lans_gateway(lab: Lab) -> None:
    """The wireless bridge puts the adapter's MAC on xp's DHCP messages: the LAN's server must
    answer them all the same (the lab names the adapter to it as one that speaks for others)."""
    lease = lab.dhcp_client("xp", 1).lease()
    assert lease and lease["ip"].startswith("192.168.60."), lease
    responder = lab.responder("cafe")
    command = responder.command()
    adapter = lab.graph.nodes["pc/wlan0"]["mac"]
    assert "--any-sender" not in command
    assert command[command.index("--translators") + 1] == adapter
    assert mac_of(lab, "xp/1") in {r["mac"] for r in responder.leases() if r["state"] == "bound"}
    assert NOT_THE_SENDER not in responder.stats()
