"""The plan (no root): golden plans of every example lab, and the difference between plans for every
change WVPC's Settings dialog makes (every ordered pair of modes of one NIC, cable off and on)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from wvpclab.model import macs, modes, topology
from wvpclab.model.items import (
    Address,
    Bridge,
    DhcpClient,
    DhcpServer,
    Firewall,
    Host,
    Nat,
    Port,
    Route,
    Rule,
    Shaper,
    Veth,
)
from wvpclab.model.plan import EMPTY, GUEST_PORT_BASE, diff, plan

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden")
EXAMPLES = sorted(p for p in (ROOT / "topologies").iterdir() if p.suffix in (".yaml", ".py"))
PREFIX = "wvabc"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_golden_plan_of_every_example_lab(path: Path) -> None:
    """The plan of each example lab is the one reviewed and kept under tests/unit/golden (run with
    WVPCLAB_UPDATE_GOLDEN=1 to write them again after a deliberate change, then read the diff)."""
    text = plan(topology.load(path), PREFIX).text()
    golden = GOLDEN / f"{path.stem}.plan"
    if os.environ.get("WVPCLAB_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_plans_are_deterministic_and_fit_the_kernel(path: Path) -> None:
    g = topology.load(path)
    one, two = plan(g, PREFIX), plan(g, PREFIX)
    assert one == two and not diff(one, two)
    names = [v.root for v in one.of(Veth).values() if v.root]
    names += [b.name for b in one.of(Bridge).values()]
    names += [p.ifname for p in one.of(Port).values() if p.patch]
    assert all(len(n) <= 15 for n in names)
    assert len(set(names)) == len(names)  # one namespace: interfaces, bridges, patch ports
    dpids = [b.dpid for b in one.of(Bridge).values()]
    assert len(set(dpids)) == len(dpids)
    for bridge in one.of(Bridge):  # port numbers unique per switch
        numbers = [p.number for p in one.ports_of(bridge)]
        assert len(set(numbers)) == len(numbers)


def test_start_and_stop_are_the_differences_from_and_to_nothing() -> None:
    p = plan(topology.load(ROOT / "topologies" / "four_modes.yaml"), PREFIX)
    start, stop = diff(EMPTY, p), diff(p, EMPTY)
    for kind, items in p.items.items():
        assert sorted(map(repr, start.add(kind))) == sorted(map(repr, items.values()))
        assert sorted(map(repr, stop.remove(kind))) == sorted(map(repr, items.values()))
    assert not start.removed and not start.changed and not stop.added and not stop.changed


# -- one NIC through every mode ------------------------------------------------------------------

DOC = {"name": "t-plan", "pcs": {"pc": {"adapters": {
    "eth0": {"mac": "00:1a:2b:3c:4d:5e", "lan": "office"},
    "wlan0": {"type": "wireless", "mac": "00:1a:2b:3c:4d:5f", "lan": "cafe"}}}},
    "lans": {"office": {"subnet": "192.168.50.0/24"}, "cafe": {"subnet": "192.168.60.0/24"}},
    "internal": {"lab": None},
    "vms": {"v": {"nics": ["none"]}, "w": {"nics": [{"internal": "lab"}]}}}
SETTINGS = [("none", None), ("shared", None), ("bridge", "eth0"), ("bridge", "wlan0"),
            ("internal", "lab"), ("internal", "fresh")]


def _planned(setting: tuple[str, str | None], static: str | None = None):
    g = topology.from_document(DOC)
    if static:
        g.nodes["v/0"]["ip"] = static
    modes.move(g, "v", 0, *setting)
    return g, plan(g, PREFIX)


def _attached(setting: tuple[str, str | None]) -> str | None:
    """Where the NIC's cable goes: a switch's key, or its NAT engine's network."""
    mode, target = setting
    return {"none": None, "shared": "nat:v/0"}.get(mode, f"pc/{target}")


def _bridge_of(setting: tuple[str, str | None]) -> str | None:
    """The switch the NIC's cable plugs into (a shared NIC's goes straight into its engine)."""
    return None if setting[0] == "shared" else _attached(setting)


@pytest.mark.parametrize(("a", "b"), list(itertools.permutations(SETTINGS, 2)),
                         ids=lambda s: f"{s[0]}-{s[1]}")
def test_diff_between_every_pair_of_modes(a: tuple, b: tuple) -> None:
    g, old = _planned(a)
    modes.move(g, "v", 0, *b)  # as the running lab does: the graph it runs, moved
    new = plan(g, PREFIX, previous=old)
    d = diff(old, new)
    # The guest keeps its NIC: the veth is never made again, only its carrier may change.
    assert not [v for v in d.add(Veth) + d.remove(Veth) if v.node == "v"]
    carrier = [(x.up, y.up) for x, y in d.change(Veth) if x.node == "v" and x.up != y.up]
    assert carrier == ([] if (a[0] == "none") == (b[0] == "none") else
                       [(a[0] != "none", b[0] != "none")])
    # A shared NIC's cable goes straight into its NAT engine (as its eth0), no switch between.
    ends = [(x.into, y.into) for x, y in d.change(Veth) if x.node == "v" and x.into != y.into]
    engine = ("nat.v.0", "eth0", macs.derive_adapter("nat.v.0", "eth0"))
    assert ends == {(False, False): [], (False, True): [(None, engine)],
                    (True, False): [(engine, None)]}[a[0] == "shared", b[0] == "shared"]
    # Its port leaves the old switch and joins the new one, with the same number and MAC.
    gone = [p for p in d.remove(Port) if p.role == "guest"]
    came = [p for p in d.add(Port) if p.role == "guest"]
    assert [p.bridge for p in gone] == ([_bridge_of(a)] if _bridge_of(a) else [])
    assert [p.bridge for p in came] == ([_bridge_of(b)] if _bridge_of(b) else [])
    assert {p.number for p in gone + came} <= {GUEST_PORT_BASE}
    # Its DHCP client moves (release before, renew after): same client, another network.
    (before, after), = [(x, y) for x, y in d.change(DhcpClient) if x.node == "v"]
    assert (before.attached, after.attached) == (_attached(a), _attached(b))
    # A NAT engine exists exactly while the NIC is shared; the PC's firewall follows.
    nat_hosts = {h.name for h in d.add(Host)} | {h.name for h in d.remove(Host)}
    assert ("nat.v.0" in nat_hosts) == ("shared" in (a[0], b[0]))
    assert bool(d.change(Firewall)) == ("shared" in (a[0], b[0]))
    if b[0] == "shared":
        assert {h.name for h in d.add(Host)} == {"nat.v.0"}
        assert [n.key for n in d.add(Nat)] == [("v", 0)]
        assert [x.known for x in d.add(DhcpServer)] == [(new.get(Veth, ("v", "eth0")).mac,)]
    # A network typed afresh gets its switch and DHCP server; nothing else appears or goes.
    expected_new = {"pc/fresh"} if b == ("internal", "fresh") else set()
    assert {x.key for x in d.add(Bridge)} == expected_new
    # a network once made stays (as WVPC keeps it in its list); no switch is a NAT engine's
    assert not d.remove(Bridge)
    # Nothing about other guests changes.
    assert not [i for kind in d.added for i in d.add(kind) if getattr(i, "node", "") == "w"]
    assert not [i for kind in d.removed for i in d.remove(kind) if getattr(i, "node", "") == "w"]


def test_internal_network_added_at_runtime_keeps_its_name_afterwards() -> None:
    g, first = _planned(("internal", "fresh"))
    modes.move(g, "v", 0, "none", None)
    later = plan(g, PREFIX, previous=first)
    assert later.get(Bridge, "pc/fresh") == first.get(Bridge, "pc/fresh")
    names = [b.name for b in later.of(Bridge).values()]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"{s[0]}-{s[1]}")
def test_cable_off_and_on_changes_only_carrier(setting: tuple) -> None:
    g, on = _planned(setting)
    modes.set_cable(g, "v", 0, False)
    off = plan(g, PREFIX, previous=on)
    d = diff(on, off)
    assert not d.added and not d.removed
    connected = setting[0] != "none"
    assert [(a.up, b.up) for a, b in d.change(Veth)] == ([(True, False)] if connected else [])
    assert [(a.carrier, b.carrier) for a, b in d.change(DhcpClient)] == \
        ([(True, False)] if connected else [])
    back = diff(off, plan(g, PREFIX, previous=off))
    assert not back
    modes.set_cable(g, "v", 0, True)
    assert plan(g, PREFIX, previous=off) == on


@pytest.mark.parametrize(("a", "b"), [(("bridge", "eth0"), ("shared", None)),
                                      (("internal", "lab"), ("bridge", "wlan0")),
                                      (("shared", None), ("none", None))],
                         ids=lambda s: f"{s[0]}-{s[1]}")
def test_a_static_address_stays_and_its_routes_follow_the_network(a: tuple, b: tuple) -> None:
    g, old = _planned(a, static="192.168.50.7/16")  # in both LANs and the NAT network
    modes.move(g, "v", 0, *b)
    d = diff(old, plan(g, PREFIX, previous=old))
    assert not [x for x in d.add(Address) + d.remove(Address) if x.node == "v"]
    assert not [x for x in d.add(Rule) + d.remove(Rule) if x.node == "v"]
    routers = {"bridge": {"eth0": "192.168.50.1", "wlan0": "192.168.60.1"},
               "shared": {None: "192.168.131.254"}}
    for setting, items in ((a, d.remove(Route)), (b, d.add(Route))):
        router = routers.get(setting[0], {}).get(setting[1])
        vias = sorted((r.table or 0, r.metric or 0) for r in items
                      if r.node == "v" and r.via == router)
        assert vias == ([(0, 100), (100, 0)] if router else [])


def test_a_static_address_of_another_network_gets_no_route_to_its_router() -> None:
    g, old = _planned(("internal", "lab"), static="169.254.7.7/16")
    modes.move(g, "v", 0, "bridge", "eth0")
    d = diff(old, plan(g, PREFIX, previous=old))
    assert not [r for r in d.add(Route) if r.node == "v"]  # 192.168.50.1 is not on its link


def test_static_addresses_are_kept_out_of_their_network_pool() -> None:
    g, p = _planned(("internal", "lab"), static="169.254.7.7/16")
    assert p.get(DhcpServer, "pc/lab").exclude == ("169.254.7.7",)
    modes.move(g, "v", 0, "internal", "fresh")
    later = plan(g, PREFIX, previous=p)
    assert later.get(DhcpServer, "pc/lab").exclude == ()
    assert later.get(DhcpServer, "pc/fresh").exclude == ("169.254.7.7",)
    assert [(a.key, b.exclude) for a, b in diff(p, later).change(DhcpServer)] == [("pc/lab", ())]


def test_every_nic_is_shaped_to_its_speed_unless_unlimited() -> None:
    doc = {**DOC, "vms": {"v": {"nics": [{"internal": "lab", "speed": 10}, "none",
                                         {"internal": "lab", "speed": "unlimited"}]}}}
    p = plan(topology.from_document(doc), PREFIX)
    assert {k: s.speed for k, s in p.of(Shaper).items()} == {("v", "eth0"): 10,
                                                               ("v", "eth1"): 100}


def test_mode_parsing_names_the_forms() -> None:
    assert modes.parse("bridge eth0") == ("bridge", "eth0")
    assert modes.parse("internal", "lab") == ("internal", "lab")
    assert modes.parse("shared") == ("shared", None)
    for bad in ("warp", "bridge", "none x", "shared:eth0"):
        with pytest.raises(ValueError, match="is not a NIC mode"):
            modes.parse(bad)


def test_a_switch_made_anew_gets_its_ports_anew() -> None:
    g, old = _planned(("internal", "lab"))
    g.nodes["pc/lab"]["dhcp"] = False  # another kind of switch: no steering, no server
    d = diff(old, plan(g, PREFIX, previous=old))
    assert [(b.key, b.steering) for b in d.remove(Bridge)] == [("pc/lab", True)]
    assert [(b.key, b.steering) for b in d.add(Bridge)] == [("pc/lab", False)]
    guests = {p.ifname for p in old.ports_of("pc/lab") if p.role == "guest"}
    assert guests and guests <= {p.ifname for p in d.add(Port)}
    assert guests <= {p.ifname for p in d.remove(Port)}
