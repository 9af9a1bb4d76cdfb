"""Pure rule sets (no root): the NAT engines' and PCs' firewalls, a NIC's shaping, a guest's source
routing, as the plan hands them to the nodes."""

from __future__ import annotations

from wvpclab.model import topology
from wvpclab.model.items import Nat, Route, Rule
from wvpclab.model.nat import engine_rules, pc_rules
from wvpclab.model.plan import plan
from wvpclab.runtime.nic import shaping_commands, shaping_links

NAT = Nat("xp", 0, 3, "pc", "192.168.131.0/24", "192.168.131.1", ("tcp:8080:80",))


def test_nat_engine_forwards_tcp_udp_icmp_out_and_nothing_new_in() -> None:
    rules = engine_rules(NAT).splitlines()
    assert ":FORWARD DROP [0:0]" in rules
    for proto in ("tcp", "udp", "icmp"):
        assert f"-A FORWARD -i eth0 -o wan0 -p {proto} -j ACCEPT" in rules
    assert not [r for r in rules if "-p gre" in r or "-p esp" in r or "-p 47" in r]
    assert ("-A FORWARD -i wan0 -o eth0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
            in rules)
    assert "-A POSTROUTING -o wan0 -j MASQUERADE" in rules
    # the one forwarded port, and only it, comes in
    assert ("-A PREROUTING -i wan0 -d 172.31.0.14 -p tcp --dport 8080 -j DNAT --to-destination "
            "192.168.131.1:80") in rules
    inbound = ("-A FORWARD -i wan0 -o eth0 -p tcp -d 192.168.131.1 --dport 80 -m conntrack "
               "--ctstate DNAT -j ACCEPT")
    assert [r for r in rules if r.startswith("-A FORWARD -i wan0 -o eth0 -p")] == [inbound]
    assert rules.count("COMMIT") == 2


def test_pc_masquerades_its_transit_links_out_of_each_adapter() -> None:
    assert (str(NAT.pc_side), str(NAT.nat_side)) == ("172.31.0.13/30", "172.31.0.14/30")
    rules = pc_rules([NAT], ["eth0", "wlan0"]).splitlines()
    assert ":FORWARD DROP [0:0]" in rules
    for adapter in ("eth0", "wlan0"):
        assert f"-A POSTROUTING -s 172.31.0.0/16 -o {adapter} -j MASQUERADE" in rules
        assert f"-A FORWARD -i nat3 -o {adapter} -p tcp -j ACCEPT" in rules
        # only at the PC's own address on that adapter, not at one it would route onwards
        assert (f"-A PREROUTING -i {adapter} -p tcp --dport 8080 -m addrtype --dst-type LOCAL "
                "--limit-iface-in -j DNAT --to-destination 172.31.0.14:8080") in rules
    # without NAT engines: forwarding still closed, masquerade still only for the transit range
    bare = pc_rules([], ["eth0"]).splitlines()
    assert ":FORWARD DROP [0:0]" in bare and not [r for r in bare if r.startswith("-A FORWARD")]


def test_shaping_holds_a_nic_to_its_speed_both_ways() -> None:
    assert shaping_links("eth1", "unlimited") == [] == shaping_commands("eth1", "unlimited")
    links = shaping_links("eth1", 10)
    assert links[0] == "link add eth1-rx mtu 1500 type ifb"
    cmds = shaping_commands("eth1", 10)
    for dev in ("eth1", "eth1-rx"):
        assert f"qdisc replace dev {dev} root handle 1: htb default 1" in cmds
        assert any(c.startswith(f"class replace dev {dev} parent 1: classid 1:1 htb rate 10mbit "
                                "ceil 10mbit") for c in cmds)
    assert cmds[-1].endswith("action mirred egress redirect dev eth1-rx")
    assert "rate 100mbit" in " ".join(shaping_commands("eth0", 100))


def test_a_static_guest_nic_routes_its_own_traffic_out_of_itself() -> None:
    doc = {"name": "t-rules", "pcs": {"pc": {"adapters": {"eth0": {"lan": "office"}}}},
           "lans": {"office": {"subnet": "192.168.50.0/24"}},
           "vms": {"v": {"nics": ["none", {"bridge": "eth0", "ip": "192.168.50.9/24"}]}}}
    p = plan(topology.from_document(doc), "wvabc")
    assert list(p.of(Rule).values()) == [Rule("v", "192.168.50.9", 101, 1001)]
    routes = sorted(r.line() for r in p.of(Route).values() if r.node == "v")
    assert routes == ["route v: 192.168.50.0/24 dev eth1 src 192.168.50.9 table 101",
                      "route v: default via 192.168.50.1 dev eth1 metric 101",
                      "route v: default via 192.168.50.1 dev eth1 table 101"]
