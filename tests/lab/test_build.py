"""Building a lab while it runs (as root): VMs created with Virtual PC's wizard's NICs or with
their own, NICs added up to four and removed keeping their numbers, VMs removed leaving nothing of
them, and every add or remove interrupted at any step leaving the lab as it was."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import address, leftovers, wait_for
from wvpclab import Lab, LabError
from wvpclab.errors import UsageError
from wvpclab.model import edits, topology

pytestmark = pytest.mark.lab

WEB = "http://192.168.50.80/"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    # a PC with a wired adapter on the office LAN and a wireless one on the cafe's, read from a
    # file (its own, comments and all, under the suite's name)
    text = (ROOT / "topologies" / "four_modes.yaml").read_text()
    path = tmp_path_factory.mktemp("build") / "t-build.yaml"
    path.write_text(text.replace("\nname: office-lab\n", "\nname: t-build\n"))
    with Lab.load(path, quiet=True) as running:
        yield running
    assert leftovers(running.prefix) == []


def ovs_ports(lab: Lab) -> set[str]:
    out = set()
    for bridge in sorted(b.name for b in lab.bridges.values()):
        res = subprocess.run(["ovs-vsctl", "list-ports", bridge], capture_output=True, text=True,
                             check=True)
        out |= set(res.stdout.split())
    return out


def all_flows(lab: Lab) -> str:
    return "".join(subprocess.run(["ovs-ofctl", "dump-flows", b.name], capture_output=True,
                                  text=True, check=False).stdout
                   for b in lab.bridges.values())


def leased_macs(lab: Lab) -> set[str]:
    return {row["mac"] for rows in lab.leases().values() for row in rows
            if row["state"] == "bound"}


def resolves(lab: Lab, asker: str, name: str) -> bool:
    return lab.vm(asker).cmd(f"getent hosts {name} >/dev/null && echo yes").strip() == "yes"


def guest_devs(lab: Lab, vm: str) -> list[str]:
    out = lab.vm(vm).cmd("ls /sys/class/net").split()
    return sorted(d for d in out if d.startswith("eth") and "-" not in d)


def test_a_vm_made_with_the_wizards_nics_leases_on_the_lan_and_the_wireless_lan(lab: Lab) -> None:
    lab.add_vm("w7")
    nics = {d["index"]: d for _, d in lab.graph.nodes(data=True)
            if d.get("kind") == "nic" and d["vm"] == "w7"}
    assert {i: (n["mode"], n["target"]) for i, n in nics.items()} == {
        0: ("bridge", "eth0"), 1: ("bridge", "wlan0")}
    assert all(n["mac"].startswith("00:03:ff:") for n in nics.values())
    # a guest that runs its DHCP clients: a lease on the office LAN and one on the cafe's
    assert address(lab, "w7", "eth0").startswith("192.168.50.")
    assert address(lab, "w7", "eth1").startswith("192.168.60.")
    assert lab.vm("w7").cmd(f"curl -s -m 5 {WEB}").startswith("web: hello from web; you are "
                                                              "192.168.50.")
    # in the lab's views and in Mininet's network at once, and known by name on the LAN
    assert "w7" in lab.nodes and "w7" in lab.net.nameToNode
    assert lab.net.get("w7") in lab.net.hosts
    assert any(link.intf1.node.name == "w7" for link in lab.net.links)
    assert resolves(lab, "xp", "w7")  # xp's NIC 1 is on the office LAN
    assert "1 received" in lab.vm("xp").cmd("ping -c1 -W2 w7")


def test_a_vm_made_in_shared_mode_reaches_the_lan_server_as_its_pc(lab: Lab) -> None:
    lab.add_vm("s1", nics=["shared"])
    assert address(lab, "s1", "eth0").startswith("192.168.131.")
    pc = address(lab, "pc", "eth0")
    assert lab.vm("s1").cmd(f"curl -s -m 5 {WEB}").strip() == (
        f"web: hello from web; you are {pc}")
    assert "nat.s1.0" in lab.nodes


def test_nics_are_added_up_to_four_and_a_fifth_is_refused(lab: Lab) -> None:
    lab.add_vm("n4", nics=[])
    assert guest_devs(lab, "n4") == []
    assert [lab.add_nic("n4") for _ in range(3)] == [0, 1, 2]
    assert lab.add_nic("n4", "internal:lab") == 3
    assert guest_devs(lab, "n4") == ["eth0", "eth1", "eth2", "eth3"]
    assert lab.vm("n4").nic(0).carrier() is False  # a NIC added is Not connected
    assert address(lab, "n4", "eth3").startswith("169.254.")
    with pytest.raises(UsageError) as err:
        lab.add_nic("n4")
    assert str(err.value) == ("n4 has 4 NICs already, the most a Virtual PC VM has (remove one "
                              "first: nic remove n4 N)")
    assert guest_devs(lab, "n4") == ["eth0", "eth1", "eth2", "eth3"]


def test_a_nic_removed_from_the_middle_leaves_the_others_their_numbers(lab: Lab) -> None:
    lab.set_nic("n4", 1, "bridge:eth0")
    mac = lab.graph.nodes["n4/1"]["mac"]
    assert mac in leased_macs(lab)
    lab.remove_nic("n4", 1)
    assert guest_devs(lab, "n4") == ["eth0", "eth2", "eth3"]
    assert edits.nic_numbers(lab.graph, "n4") == [0, 2, 3]
    assert mac not in leased_macs(lab)  # its lease was given back
    assert address(lab, "n4", "eth3").startswith("169.254.")  # the others work on
    lab.set_nic("n4", 2, "shared")
    assert lab.vm("n4").cmd(f"curl -s -m 5 {WEB}").startswith("web: hello from web")
    assert lab.add_nic("n4", "bridge eth0") == 1  # the lowest free number
    assert address(lab, "n4", "eth1").startswith("192.168.50.")


def test_a_vm_removed_leaves_nothing_of_it(lab: Lab) -> None:
    for name in ("w7", "s1"):
        node = lab.vm(name)
        shell = node.pid
        macs = [d["mac"] for _, d in lab.graph.nodes(data=True)
                if d.get("kind") == "nic" and d["vm"] == name]
        cables = [root for (vm, _), root in lab.cables.items() if vm == name]
        nat = [n for n in lab.nodes if n.startswith(f"nat.{name}.")]
        nat_pids = [lab.node(n).pid for n in nat]
        assert set(macs) & leased_macs(lab)
        lab.remove_vm(name)
        assert name not in lab.nodes and name not in lab.net.nameToNode
        assert not [link for link in lab.net.links if link.intf1.node.name == name]
        assert not [n for n in lab.nodes if n.startswith(f"nat.{name}.")]
        for pid in [shell, *nat_pids]:  # its namespaces' processes are gone
            wait_for(lambda p=pid: not _alive(p), timeout=5, what=f"process {pid} gone")
        assert not set(cables) & ovs_ports(lab)
        flows = all_flows(lab)
        assert not [m for m in macs if m in flows]
        assert not set(macs) & leased_macs(lab)  # its leases were given back
        assert not [k for k in lab.graph if str(k).split("/")[0] == name]
        with pytest.raises(UsageError, match=f"no node '{name}'"):
            lab.node(name)
    assert not resolves(lab, "xp", "w7")  # its name left the DNS
    assert lab.vm("xp").cmd(f"curl -s -m 5 {WEB}").startswith("web: hello from web")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def snapshot(lab: Lab) -> dict:
    return {"graph": sorted(map(str, lab.graph.nodes)), "plan": lab.plan,
            "nodes": sorted(lab.nodes), "ports": ovs_ports(lab), "leases": leased_macs(lab),
            "hosts": sorted(h.name for h in lab.net.hosts),
            "registered": {dpid: sorted(sw["ports"]) for dpid, sw in
                           lab.controller.switches.items()}}


@pytest.mark.parametrize("step", ["release", "remove nodes", "add nodes", "add veths",
                                  "configure nodes", "register", "start clients"])
def test_an_add_or_remove_interrupted_at_any_step_leaves_the_lab_as_it_was(
        lab: Lab, step: str) -> None:
    for action in (lambda: lab.add_vm("tmp"), lambda: lab.remove_vm("tmp"),
                   lambda: lab.add_nic("xp") if len(edits.nic_numbers(lab.graph, "xp")) < 4
                   else lab.remove_nic("xp", 3)):
        before = snapshot(lab)

        def fault(name: str) -> None:
            if name == step:
                raise LabError(f"injected fault at {name}")

        lab.realizer.fault = fault
        try:
            try:
                action()
            except LabError as err:
                assert f"injected fault at {step} (nothing was changed)" in str(err)
                assert snapshot(lab) == before
            else:  # a step this change does not have: it went through
                assert snapshot(lab) != before
                continue
        finally:
            lab.realizer.fault = None
        action()  # the next try works
        assert snapshot(lab) != before
    assert "1 received" in lab.vm("xp").cmd("ping -c1 -W2 192.168.50.80")


def nic_table(lab: Lab) -> list[tuple]:
    """Every NIC as the guest has it: VM, number, mode, cable, MAC on the guest's interface,
    carrier, static address."""
    rows = []
    for _, nic in sorted(lab.graph.nodes(data=True), key=lambda kv: str(kv[0])):
        if nic.get("kind") != "nic":
            continue
        vm, index = nic["vm"], nic["index"]
        guest_mac = lab.vm(vm).cmd(f"cat /sys/class/net/eth{index}/address").strip()
        rows.append((vm, index, nic["mode"], nic["target"], nic.get("cable", True), guest_mac,
                     lab.vm(vm).nic(index).carrier(), nic["ip"]))
    return rows


def test_a_lab_built_at_runtime_is_saved_and_starts_again_the_same(lab: Lab,
                                                                   tmp_path) -> None:
    lab.add_vm("w10", nics=["bridge:wlan0", "internal:made-now"])
    lab.cable("xp", 1, False)
    lab.remove_nic("n4", 1)
    saved = lab.save(tmp_path / "built.yaml")
    text = saved.read_text()
    assert "# One VM with all four NIC modes" in text  # the file's own comments are kept
    assert "made-now" in text and "index: 2" in text  # n4's NIC 1 is gone: 0, then 2 and 3
    before = nic_table(lab)
    assert ("xp", 1, "bridge", "eth0", False) in [row[:5] for row in before]
    graph = topology.load(saved)
    graph.graph["name"] = "t-build-again"  # beside the lab it was saved from
    with Lab(graph, quiet=True) as again:
        assert nic_table(again) == before
        assert address(again, "w10", "eth0").startswith("192.168.60.")
    assert leftovers(again.prefix) == []
    lab.cable("xp", 1, True)
