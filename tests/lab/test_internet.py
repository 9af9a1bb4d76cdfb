"""An internet beyond the LANs (as root), on the example lab topologies/internet.yaml: a routed
office LAN and a home LAN behind its gateway's NAT, one VM per mode on each PC, a server on the
internet.
Guests open the internet's server by name (curl) and its log shows the address each is seen with;
the internet reaches a bridged guest on the routed LAN, but no NAT guest and nothing behind the
home's NAT; the whole lab behaves as ``verify``'s model says."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.lab.helpers import address, example_as, leftovers, wait_for
from wvpclab import Lab
from wvpclab.analysis import verify
from wvpclab.model import topology

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = example_as(tmp_path_factory.mktemp("topo"), "internet.yaml", "t-internet")
    with Lab(topology.load(path), quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def seen_as(lab: Lab, vm: str) -> str:
    """What the internet's server says it saw, asked by name as a user would."""
    out = lab.vm(vm).cmd("curl -s -m 5 http://site/")
    assert "hello from site; you are " in out, (vm, out)
    return out.rsplit("you are ", 1)[1].split()[0]


def test_guests_are_seen_from_the_internet_as_their_mode_says(lab: Lab) -> None:
    home_gw = lab.graph.nodes["home"]["wan"].split("/")[0]
    expected = {
        "work-br": address(lab, "work-br"),  # a routed LAN: its own address
        "work-nat": address(lab, "work"),  # WVPC's NAT: its PC's
        "home-br": home_gw,  # the home's NAT: its gateway's
        "home-nat": home_gw,  # both NATs: the home gateway's again
    }
    assert {vm: seen_as(lab, vm) for vm in expected} == expected
    log = (lab.run_dir / "server-site.log").read_text()
    for ip in expected.values():
        assert f"http {ip}:" in log  # the server's own log says the same
    assert lab.vm("work-int").cmd("curl -s -m 3 http://site/; echo rc=$?").strip().endswith(
        "rc=6")  # an internal guest: no name, no route, not there at all


def test_the_internet_reaches_a_routed_lan_but_no_nat_guest_and_no_nated_lan(lab: Lab) -> None:
    site = lab.node("site")
    listeners = {vm: lab.vm(vm).popen([sys.executable, "-m", "http.server", "8000"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for vm in ("work-br", "work-nat", "home-br")}
    try:
        def opens(vm: str, ip: str) -> bool:
            return "200" in site.cmd(f"curl -s -o /dev/null -w '%{{http_code}}' -m 2 "
                                     f"http://{ip}:8000/")

        wait_for(lambda: opens("work-br", address(lab, "work-br")),
                 what="the internet to open a page on work-br (routed LAN)")
        # unsolicited, from the internet: a NAT guest (its own address, its PC's), a NATed LAN
        for vm, ip in (("work-nat", address(lab, "work-nat")), ("work-nat", address(lab, "work")),
                       ("home-br", address(lab, "home-br")),
                       ("home-br", lab.graph.nodes["home"]["wan"].split("/")[0])):
            assert not opens(vm, ip), (vm, ip)
    finally:
        for proc in listeners.values():
            proc.kill()
            proc.wait(5)


def test_names_and_routes_cross_the_internet(lab: Lab) -> None:
    out = lab.vm("home-nat").cmd("getent ahostsv4 site intranet | awk '/STREAM/ {print $1}'")
    assert out.split() == ["100.64.0.80", "192.168.50.80"]
    page = lab.vm("home-br").cmd("curl -s -m 5 http://intranet/")  # home -> internet -> office
    assert f"you are {lab.graph.nodes['home']['wan'].split('/')[0]}" in page, page


def test_the_lab_behaves_as_the_model_says(lab: Lab) -> None:
    rows, wrong = verify.matrix(lab)
    assert wrong == []
    why = {(r["from"], r["to"]): r["why"] for r in rows if "from" in r}
    assert why[("home-br/eth0", "site")] == "over the internet"
    assert why[("site", "home-br/eth0")] == "over the internet: a NATed LAN, inbound blocked"
    assert why[("work-nat/eth0", "site")] == "NAT: outbound, as the PC, over the internet"
