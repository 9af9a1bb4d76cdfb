"""The lab's web page on a running lab, driven in a real headless Chromium (Debian's chromium and
chromium-driver, Selenium from PyPI): the live picture, each VM's Settings dialog, the cable
switch, captures, a switch's rules and leases, changes from the CLI showing up, and the token and
cross-site guard. Writes the README's screenshot of the default lab to docs/."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, TOPOLOGIES
from tests.lab.browsers import Firefox, chrome
from tests.lab.helpers import read_pty, wait_for
from wvpclab.model import modes, topology
from wvpclab.runtime.lab import Lab
from wvpclab.ui.labcli import LabCLI

pytestmark = pytest.mark.lab

#: The default lab as the suite runs it: under a name of its own (a teacher's may run beside it).
XP = ["--name", "t-web-xp"]
WVPCLAB = str(Path(sys.executable).parent / "wvpclab")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    graph = topology.load(TOPOLOGIES / "four_modes.yaml")
    graph.graph["name"] = "t-web"  # a teacher's office-lab may run beside the suite
    with Lab(graph, quiet=True) as lab:
        lab.web_page()
        yield lab


@pytest.fixture(scope="module")
def downloads() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="wvpclab-web-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def browsing(lab: Lab, downloads: Path, what: str) -> Iterator[Any]:
    """Chrome on the lab's page, once its picture is there; closed after."""
    driver = chrome(downloads)
    try:
        driver.get(lab.web.url)
        wait_for(lambda: driver.find_elements("css selector", 'g[id="a_nic:xp/0"]'), 20,
                 what=f"the lab's picture on {what}")
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page(lab: Lab, downloads: Path) -> Iterator[Any]:
    yield from browsing(lab, downloads, "the page")


def cli(lab: Lab, commands: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Runs lines at the lab's prompt; returns what they printed on stdout."""
    capsys.readouterr()
    with tempfile.TemporaryFile("w+") as stdin:  # Mininet's CLI polls its input: a real file
        stdin.write(commands)
        stdin.seek(0)
        _FileCLI(lab, stdin=stdin)
    return capsys.readouterr().out.replace(LabCLI.prompt, "")


class _FileCLI(LabCLI):
    use_rawinput = False  # lines from its stdin file, not from input()


def nic_text(page: Any, key: str) -> str:
    """The words of a NIC's box in the picture (its SVG group's texts), one space between."""
    return " ".join(" ".join(t.get_attribute("textContent") for t in page.find_elements(
        "css selector", f'g[id="a_nic:{key}"] text')).split())


def nic_row(page: Any, key: str) -> Any:
    return page.find_element("id", f"nic-{key}")


def message(page: Any, key: str) -> str:
    return unless_redrawn(lambda: nic_row(page, key).find_element("css selector",
                                                                  "[data-msg]").text, "")


def unless_redrawn(read: Any, default: Any) -> Any:
    """``read()``, or ``default`` if the page redrew what it read meanwhile (it redraws the dialog
    whenever the lab changes): for conditions waited on, which then look again."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return read()
    except StaleElementReferenceException:
        return default


def click(page: Any, css: str) -> None:
    """Clicks an element, found again if the page redrew it (the picture is redrawn whenever the
    lab changes) between finding and clicking."""
    from selenium.common.exceptions import StaleElementReferenceException

    def once() -> bool:
        try:
            page.find_element("css selector", css).click()
        except StaleElementReferenceException:
            return False
        return True

    wait_for(once, 5, what=f"a click on {css}")


def open_dialog(page: Any, key: str) -> Any:
    """Opens a VM's Settings dialog by clicking the NIC in the picture; returns its row."""
    click(page, f'g[id="a_nic:{key}"] a')
    return wait_for(lambda: page.find_elements("id", f"nic-{key}"), 5,
                    what=f"the dialog row of {key}")[0]


def choose(page: Any, key: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(nic_row(page, key).find_element("tag name", "select")).select_by_value(value)


def test_the_picture_lists_every_nic_with_its_mode_and_live_address(lab: Lab, page: Any) -> None:
    groups = page.find_elements("css selector", 'g[id^="a_nic:"]')
    assert len(groups) == len(topology.nodes_of(lab.graph, "nic")) == 5
    for key, nic in topology.nodes_of(lab.graph, "nic"):
        words = wait_for(lambda key=key: nic_text(page, key).strip() or None, 5)
        assert f"NIC {nic['index']}" in words and modes.of(nic).describe(nic) in words, words
    # each DHCP NIC's live row: carrier, the address its client holds, the lease's time left
    for index in (0, 1, 2):
        held = lab.dhcp_client("xp", index).lease()["ip"]
        words = wait_for(lambda i=index, ip=held: (w := nic_text(page, f"xp/{i}")) and
                         f"carrier {ip}/" in w and "lease " in w and w, 5,
                         what=f"xp NIC {index}'s address on the page")
        assert "NO CARRIER" not in words
    assert "not connected" in nic_text(page, "xp/3")
    # each switch's packet counters
    assert wait_for(lambda: "packets in" in " ".join(
        t.get_attribute("textContent") for t in
        page.find_elements("css selector", 'g[id="a_switch:office"] text')), 5)


def test_the_page_reads_what_ip_shows_in_each_vm_without_a_process(lab: Lab) -> None:
    """The live readings (setns from one thread of the lab's process) agree with ``ip`` run in
    each VM, and leave every other thread of the process in its own namespace."""
    from wvpclab.ui.web.netns import NetnsReader
    from wvpclab.ui.web.state import parse_links

    home = os.readlink("/proc/thread-self/ns/net")
    reader = NetnsReader()
    try:
        pids = {vm: lab.node(vm).pid for vm, _ in topology.nodes_of(lab.graph, "vm")}
        got = reader.read(pids, ["eth0", "eth1", "eth2", "eth3", "lo", "nothere"])
        assert not reader.broken
        # the reading thread itself came back home
        back = reader._pool.submit(os.readlink, "/proc/thread-self/ns/net").result(5)
        assert back == home
    finally:
        reader.close()
    for vm in pids:
        shown = parse_links(lab.node(vm).cmd("ip -j addr show"))
        ours = {k: shown[k] for k in ("eth0", "eth1", "eth2", "eth3", "lo") if k in shown}
        for value in ours.values():
            value["addresses"] = value["addresses"][:1]  # the primary address
        assert got[vm] == ours, vm
    assert got["xp"]["eth3"] == {"carrier": False, "addresses": []}
    assert got["lab1"]["eth0"]["addresses"] == ["169.254.1.10/16"]
    assert os.readlink("/proc/thread-self/ns/net") == os.readlink("/proc/self/ns/net") == home


def test_switching_a_nic_in_the_dialog_moves_it(lab: Lab, page: Any,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    row = open_dialog(page, "xp/3")
    options = [o.get_attribute("value") for o in row.find_elements("tag name", "option")]
    assert options == ["none", "bridge:eth0", "bridge:wlan0", "shared", "internal:lab",
                       "internal:"]
    labels = [o.text for o in row.find_elements("tag name", "option")]
    assert labels[1] == "eth0 (wired adapter, LAN office)" and labels[3] == \
        "Shared Networking (NAT)" and labels[-1] == "New internal network..."
    choose(page, "xp/3", "bridge:eth0")
    wait_for(lambda: "changing" in message(page, "xp/3"), 5, what="the change's progress")
    said = wait_for(lambda: (m := message(page, "xp/3")).startswith("now") and m, 40,
                    what="the change's outcome")
    address = lab.dhcp_client("xp", 3).lease()["ip"]
    assert said == f"now bridge eth0, address {address}"
    assert address.startswith("192.168.50.")
    out = cli(lab, "nics xp\n", capsys)
    line = next(x for x in out.splitlines() if x.startswith("xp") and x.split()[1] == "3")
    assert "bridge eth0" in line and f"{address}/24" in line and " yes " in line
    ping = lab.node("xp").cmd(f"ping -n -c 1 -W 3 -I {address} 192.168.50.80")
    assert " 0% packet loss" in ping, ping
    assert any(r["mac"] == lab.graph.nodes["xp/3"]["mac"] for r in lab.leases("office")["office"])
    choose(page, "xp/3", "none")
    wait_for(lambda: message(page, "xp/3").startswith("now none"), 40, what="back to none")
    assert lab.graph.nodes["xp/3"]["mode"] == "none"


def test_the_cable_switch_drops_carrier(lab: Lab, page: Any) -> None:
    row = open_dialog(page, "xp/1")
    box = row.find_element("css selector", 'input[name="cable"]')
    assert box.is_selected()
    box.click()
    wait_for(lambda: message(page, "xp/1").startswith("cable pulled out"), 30)
    assert "NO-CARRIER" in lab.node("xp").cmd("ip link show eth1")
    assert "cable pulled" in nic_text(page, "xp/1")
    nic_row(page, "xp/1").find_element("css selector", 'input[name="cable"]').click()
    wait_for(lambda: message(page, "xp/1").startswith("cable plugged in"), 30)
    assert "NO-CARRIER" not in lab.node("xp").cmd("ip link show eth1")
    assert lab.graph.nodes["xp/1"].get("cable", True) is True


def new_internal_network(page: Any, key: str, name: str) -> None:
    """Chooses "New internal network..." for a NIC and types ``name`` into the prompt."""
    open_dialog(page, key)
    choose(page, key, "internal:")
    alert = wait_for(lambda: _alert(page), 5, what="the prompt for a name")
    alert.send_keys(name)
    alert.accept()


def test_a_refused_change_shows_the_lab_s_own_error(lab: Lab, page: Any) -> None:
    new_internal_network(page, "xp/3", "no spaces!")
    said = wait_for(lambda: "valid internal network name" in (m := message(page, "xp/3")) and m,
                    10)
    assert "'no spaces!' is not a valid internal network name" in said
    assert lab.graph.nodes["xp/3"]["mode"] == "none"
    select = nic_row(page, "xp/3").find_element("tag name", "select")
    wait_for(lambda: select.get_attribute("value") == "none", 5, what="the drop-down put back")


def _alert(page: Any) -> Any:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return page.switch_to.alert
    except NoAlertPresentException:
        return None


def test_a_new_internal_network_from_the_dialog(lab: Lab, page: Any) -> None:
    new_internal_network(page, "xp/3", "lab2")
    wait_for(lambda: message(page, "xp/3").startswith("now internal lab2"), 40)
    assert lab.graph.nodes["xp/3"]["target"] == "lab2"
    assert "pc/lab2" in lab.bridges
    def choices() -> list[str]:
        return unless_redrawn(lambda: [o.get_attribute("value") for o in nic_row(
            page, "xp/0").find_elements("tag name", "option")], [])

    values = wait_for(lambda: "internal:lab2" in (v := choices()) and v, 5,
                      what="the new network in every NIC's drop-down")
    assert values.index("internal:lab2") == values.index("internal:lab") + 1
    choose(page, "xp/3", "none")
    wait_for(lambda: message(page, "xp/3").startswith("now none"), 40)


def test_a_change_in_the_cli_shows_on_the_page_within_a_second(
        lab: Lab, page: Any, capsys: pytest.CaptureFixture[str]) -> None:
    open_dialog(page, "xp/2")
    select = nic_row(page, "xp/2").find_element("tag name", "select")
    assert select.get_attribute("value") == "internal:lab"
    try:
        out = cli(lab, "nic xp 2 shared\n", capsys)
        done = time.monotonic()
        assert out.startswith("xp NIC 2: shared"), out
        wait_for(lambda: select.get_attribute("value") == "shared"
                 and "shared (NAT)" in nic_text(page, "xp/2"), 3, 0.02,
                 what="the CLI's change on the page")
        seen = time.monotonic() - done
        assert seen < 1.0, f"the page showed the CLI's change after {seen:.2f} s"
    finally:
        cli(lab, "nic xp 2 internal lab\n", capsys)
    wait_for(lambda: select.get_attribute("value") == "internal:lab", 3)


def test_capture_downloads_a_pcap_of_what_crossed_the_nic(lab: Lab, page: Any,
                                                          downloads: Path) -> None:
    from scapy.all import ICMP, Ether, rdpcap

    button = open_dialog(page, "xp/1").find_element("css selector", "button.capture")
    assert button.text == "capture"
    button.click()
    wait_for(lambda: button.text == "stop capture and download", 10)
    address = lab.dhcp_client("xp", 1).lease()["ip"]
    assert " 0% packet loss" in lab.node("xp").cmd(
        f"ping -n -c 2 -W 3 -I {address} 192.168.50.80")
    button.click()
    pcap = downloads / "capture-xp-eth1.pcap"
    wait_for(lambda: pcap.exists() and pcap.stat().st_size > 24, 15, what="the downloaded pcap")
    frames = rdpcap(str(pcap))
    mac = lab.graph.nodes["xp/1"]["mac"]
    echoes = [f for f in frames if ICMP in f and f[Ether].src == mac and f[ICMP].type == 8]
    assert len(echoes) == 2
    assert lab.captures_running() == []
    wait_for(lambda: "capture saved" in message(page, "xp/1"), 5)
    assert not list(lab.run_dir.glob("web-capture-*"))  # the page's own file went
    # a capture started at the prompt, stopped from the page: downloaded, its file kept
    mine = downloads / "cli.pcap"
    lab.capture("xp", 1, mine)
    status, body = request(f"http://127.0.0.1:{lab.web.port}/api/capture",
                           {"vm": "xp", "index": 1, "action": "stop"},
                           {"Content-Type": "application/json", "X-Wvpclab-Token": lab.web.token})
    assert status == 200 and body["raw"].startswith(b"\xd4\xc3\xb2\xa1")  # a pcap
    assert mine.exists()


def test_a_switch_s_rules_and_an_internal_network_s_leases(lab: Lab, page: Any) -> None:
    click(page, 'g[id="a_switch:pc/eth0"] a')
    rules = wait_for(lambda: page.find_elements("css selector", "#detail pre"), 10)[0]
    assert rules.text.splitlines() == lab.filter_rules("pc/eth0")
    page.find_element("id", "detail-close").click()
    click(page, 'g[id="a_switch:pc/lab"] a')
    table = wait_for(lambda: page.find_elements("css selector", "#detail table"), 10)[0]
    xp = lab.graph.nodes["xp/2"]["mac"]
    assert any(xp in row.text for row in table.find_elements("tag name", "tr")), table.text
    page.find_element("id", "detail-close").click()


def test_a_change_from_the_page_while_the_cli_runs_a_command_in_that_node(lab: Lab) -> None:
    """Pulling xp NIC 0's cable takes the NAT engine's end down, a command in nat.xp.0; the CLI
    is running one there at that moment: both finish, neither sees the other's output."""
    web, engine = lab.web, lab.node("nat.xp.0")
    engine.sendCmd("sleep 3; echo cli-command-done")
    headers = {"Content-Type": "application/json", "X-Wvpclab-Token": web.token}
    try:
        status, body = request(f"http://127.0.0.1:{web.port}/api/cable",
                               {"vm": "xp", "index": 0, "plugged": False}, headers)
        assert status == 200 and body["cable"] is False, body
        # the change was made while the CLI's command ran: its shell has said nothing yet
        assert select.select([engine.stdout.fileno()], [], [], 0)[0] == []
        assert "cli-command-done" in engine.waitOutput()
        assert "state DOWN" in engine.cmd("ip link show eth0")
    finally:
        if engine.waiting:
            engine.waitOutput()
        lab.cable("xp", 0, True)
    assert "NO-CARRIER" not in lab.node("xp").cmd("ip link show eth0")


def test_the_page_works_in_firefox(lab: Lab, downloads: Path) -> None:
    """Firefox ESR (Debian's) over WebDriver BiDi: the picture, a NIC moved and its cable pulled
    from the dialog, the New virtual machine dialog, and no error in the page's console."""
    firefox = Firefox(downloads / "ff")
    try:
        firefox.navigate(lab.web.url)
        wait_for(lambda: firefox.js('document.querySelectorAll(\'g[id^="a_nic:"]\').length') == 5,
                 20, what="the picture in firefox")
        address = lab.dhcp_client("xp", 1).lease()["ip"]
        row = 'document.getElementById("a_nic:xp/1").querySelectorAll("text")'
        wait_for(lambda: f"carrier  {address}/24" in (firefox.js(f"{row}[{row}.length - 1]"
                                                               ".textContent") or ""), 5)
        firefox.js('document.getElementById("a_nic:xp/3").querySelector("a").dispatchEvent('
                   'new MouseEvent("click", {bubbles: true}))')
        msg = 'document.getElementById("nic-xp/3").querySelector("[data-msg]").textContent'
        wait_for(lambda: firefox.js('!!document.getElementById("nic-xp/3")'), 5)
        firefox.js('(() => { const s = document.getElementById("nic-xp/3")'
                   '.querySelector("select"); s.value = "shared";'
                   's.dispatchEvent(new Event("change")); })()')
        wait_for(lambda: firefox.js(msg).startswith("now shared"), 40, what="the move")
        assert lab.graph.nodes["xp/3"]["mode"] == "shared"
        assert lab.dhcp_client("xp", 3).lease()["ip"].startswith("192.168.131.")
        firefox.js('document.getElementById("nic-xp/3").querySelector(\'input[name="cable"]\')'
                   '.click()')
        wait_for(lambda: firefox.js(msg).startswith("cable pulled out"), 30, what="the cable")
        assert "NO-CARRIER" in lab.node("xp").cmd("ip link show eth3")
        # the New virtual machine dialog: the wizard's NICs listed, closed again
        firefox.js('document.getElementById("new-vm").click()')
        assert firefox.js('document.getElementById("new-vm-dialog").open') is True
        assert firefox.js('[...document.querySelectorAll("#new-vm-nics li")]'
                          '.map((li) => li.dataset.value)') == ["bridge:eth0", "bridge:wlan0"]
        firefox.js('document.getElementById("new-vm-cancel").click()')
        assert firefox.js('document.getElementById("new-vm-dialog").open') is False
        assert firefox.errors == []
    finally:
        firefox.close()
        if lab.graph.nodes["xp/3"]["mode"] != "none":
            lab.cable("xp", 3, True)
            lab.set_nic("xp", 3, "none")


# -- WVPC's Create Virtual Machine wizard, Remove, and the number of network adapters ------------
@pytest.fixture(scope="module")
def other(lab: Lab, downloads: Path) -> Iterator[Any]:
    """A second browser on the same page: what one page changes, the other shows."""
    yield from browsing(lab, downloads / "other", "the second page")


def vm_buttons(page: Any) -> list[str]:
    return unless_redrawn(lambda: [b.text for b in page.find_elements("css selector",
                                                                      "#vms button")], [])


def text_of(page: Any, css: str) -> str:
    return unless_redrawn(lambda: " ".join(e.text for e in page.find_elements("css selector",
                                                                              css)), "")


def open_new_vm(page: Any) -> Any:
    """Opens the "New virtual machine..." dialog; returns it."""
    page.find_element("id", "new-vm").click()
    dialog = page.find_element("id", "new-vm-dialog")
    wait_for(lambda: dialog.get_attribute("open") is not None, 5, what="the dialog open")
    return dialog


def nic_numbers(lab: Lab, vm: str) -> list[int]:
    return [nic["index"] for nic in topology.nics_of(lab.graph, vm)]


def guest_links(lab: Lab, vm: str) -> list[str]:
    """The guest's NICs (``ethN``), as ``ip`` in the guest lists them."""
    rows = json.loads(lab.node(vm).cmd("ip -j link show") or "[]")
    return sorted(r["ifname"] for r in rows if re.fullmatch(r"eth\d", r["ifname"]))


def test_a_new_vm_from_the_wizard_dialog_gets_the_wizard_s_nics_and_leases(
        lab: Lab, page: Any, other: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    assert "w7" not in lab.nodes
    dialog = open_new_vm(page)
    # before it is made, the dialog lists what the wizard attaches: the PC's first wired and
    # first wireless adapter, in the drop-down's words
    items = dialog.find_elements("css selector", "#new-vm-nics li")
    wizard = modes.wizard(lab.graph, "pc")
    assert [li.get_attribute("data-value") for li in items] == [
        modes.format(m, t) for m, t in wizard] == ["bridge:eth0", "bridge:wlan0"]
    assert [li.text for li in items] == [
        "Network adapter 1 (eth0): eth0 (wired adapter, LAN office)",
        "Network adapter 2 (eth1): wlan0 (wireless adapter, LAN cafe)"]
    assert not dialog.find_element("id", "new-vm-pc").is_displayed()  # one PC: no choice
    assert dialog.find_element("id", "new-vm-on").text == "on pc, the lab's PC"
    assert page.switch_to.active_element == dialog.find_element("id", "new-vm-name")
    try:
        page.switch_to.active_element.send_keys("w7", Keys.ENTER)  # the keyboard alone
        # the dialog says the VM is under way (unless it was made before a look could see it)
        wait_for(lambda: "creating w7" in text_of(page, "#new-vm-msg")
                 or dialog.get_attribute("open") is None, 5,
                 what="the dialog saying the VM is under way")
        wait_for(lambda: dialog.get_attribute("open") is None, 60, what="the dialog closed")
        note = page.find_element("id", "vm-note").text
        assert note.startswith("w7 was created on pc: NIC 0 bridge eth0 (192.168.50."), note
        # in the lab: the guest runs with the wizard's NICs, each holding a lease on its LAN
        assert "w7" in lab.nodes
        assert [(n["index"], n["mode"], n["target"]) for n in topology.nics_of(lab.graph, "w7")] \
            == [(0, "bridge", "eth0"), (1, "bridge", "wlan0")]
        for index, (lan, prefix) in enumerate([("office", "192.168.50."),
                                               ("cafe", "192.168.60.")]):
            held = lab.dhcp_client("w7", index).lease()["ip"]
            assert held.startswith(prefix), held
            assert f"inet {held}/24" in lab.node("w7").cmd(f"ip -4 addr show eth{index}")
            mac = lab.graph.nodes[f"w7/{index}"]["mac"]
            assert any(r["mac"] == mac and r["ip"] == held for r in lab.leases(lan)[lan])
        assert " 0% packet loss" in lab.node("w7").cmd("ping -n -c 1 -W 3 192.168.50.80")
        # on this page and on the other one: its button, its dialog, its NICs in the picture
        held = lab.dhcp_client("w7", 0).lease()["ip"]
        for driver in (page, other):
            wait_for(lambda d=driver: "w7" in vm_buttons(d), 5, what="w7's button")
            wait_for(lambda d=driver: f"carrier {held}/" in nic_text(d, "w7/0"), 10,
                     what="w7's NIC 0 with its address in the picture")
        assert page.find_element("css selector", "#dialog h2").text == "w7 Settings: Networking"
        assert [r.get_attribute("data-nic") for r in page.find_elements(
            "css selector", "#dialog fieldset.nic")] == ["w7/0", "w7/1"]
    finally:
        if "w7" in lab.nodes:
            lab.remove_vm("w7")
    for driver in (page, other):
        wait_for(lambda d=driver: "w7" not in vm_buttons(d), 5, what="w7 gone from the page")


def test_a_wrong_name_in_the_wizard_dialog_gets_the_lab_s_one_line_error(lab: Lab,
                                                                         page: Any) -> None:
    before = sorted(lab.nodes)
    dialog = open_new_vm(page)
    dialog.find_element("id", "new-vm-create").click()  # no name
    assert text_of(page, "#new-vm-msg") == "Give the new virtual machine a name."
    name = dialog.find_element("id", "new-vm-name")
    name.send_keys("xp")
    dialog.find_element("id", "new-vm-create").click()
    said = wait_for(lambda: "already used" in (t := text_of(page, "#new-vm-msg")) and t, 10,
                    what="the lab's refusal in the dialog")
    assert said == ("name 'xp' is already used by a vm of the lab (names are unique across "
                    "PCs, VMs, LANs and servers)")
    assert "error" in page.find_element("id", "new-vm-msg").get_attribute("class")
    assert dialog.get_attribute("open") is not None  # the dialog stays, to correct the name
    name.clear()
    name.send_keys("no spaces!")
    dialog.find_element("id", "new-vm-create").click()
    said = wait_for(lambda: "no spaces!" in (t := text_of(page, "#new-vm-msg")) and t, 10,
                    what="the lab's refusal of a bad name")
    assert "\n" not in said
    dialog.find_element("id", "new-vm-cancel").click()
    wait_for(lambda: dialog.get_attribute("open") is None, 5, what="the dialog closed")
    assert sorted(lab.nodes) == before  # the lab as it was, and still answering
    assert lab.dhcp_client("xp", 1).lease()["ip"].startswith("192.168.50.")


def choose_vm(page: Any, vm: str) -> None:
    click(page, f'#vms button[data-vm="{vm}"]')
    wait_for(lambda: text_of(page, "#dialog h2") == f"{vm} Settings: Networking", 5,
             what=f"{vm}'s dialog")


def set_adapters(page: Any, count: int) -> None:
    from selenium.webdriver.support.ui import Select

    def once() -> bool:
        box = page.find_element("id", "adapters")
        if not box.is_enabled():
            return False
        Select(box).select_by_value(str(count))
        return True

    wait_for(lambda: unless_redrawn(once, False), 5, what="the number of network adapters")


def vm_message(page: Any) -> str:
    return text_of(page, "#dialog [data-vm-msg]")


def test_the_number_of_network_adapters_from_1_to_3_and_back(lab: Lab, page: Any,
                                                             other: Any) -> None:
    """lab1 (one NIC, on the internal network): 3 adapters adds NICs 1 and 2, Not connected;
    one removed elsewhere (the API) leaves NICs 0 and 2, shown by their numbers; 1 again removes
    the highest-numbered."""
    from selenium.webdriver.support.ui import Select

    assert nic_numbers(lab, "lab1") == [0]
    choose_vm(page, "lab1")
    box = Select(page.find_element("id", "adapters"))
    assert [o.text for o in box.options] == ["1", "2", "3", "4"]
    assert box.first_selected_option.text == "1"
    assert page.find_element("css selector", 'label[for="adapters"]').text == \
        "Number of network adapters:"
    try:
        set_adapters(page, 3)
        said = wait_for(lambda: (m := vm_message(page)).startswith("3 network") and m, 30,
                        what="the adapters added")
        assert said == "3 network adapters: NIC 0 internal lab, NIC 1 none, NIC 2 none"
        assert nic_numbers(lab, "lab1") == [0, 1, 2]
        assert [lab.graph.nodes[f"lab1/{i}"]["mode"] for i in (1, 2)] == ["none", "none"]
        assert guest_links(lab, "lab1") == ["eth0", "eth1", "eth2"]
        assert "NO-CARRIER" in lab.node("lab1").cmd("ip link show eth2")  # Not connected
        for driver in (page, other):
            wait_for(lambda d=driver: d.find_elements("css selector", 'g[id="a_nic:lab1/2"]'),
                     10, what="lab1's NIC 2 in the picture")
        assert [r.get_attribute("data-nic") for r in page.find_elements(
            "css selector", "#dialog fieldset.nic")] == ["lab1/0", "lab1/1", "lab1/2"]
        # NIC 1 removed from elsewhere: the page shows NICs 0 and 2 by their numbers
        lab.remove_nic("lab1", 1)
        wait_for(lambda: text_of(page, "#dialog .sub").endswith("2 of 4 network adapters "
                                                                "(NIC 0, NIC 2)"), 5,
                 what="the dialog after NIC 1 went")
        legends = [e.text for e in page.find_elements("css selector", "#dialog legend")]
        assert [x.split(" 00:03:ff")[0] for x in legends] == [
            "Network adapter 1 (eth0)", "Network adapter 3 (eth2)"]
        assert Select(page.find_element("id", "adapters")).first_selected_option.text == "2"
        assert not page.find_elements("css selector", 'g[id="a_nic:lab1/1"]')
        set_adapters(page, 1)
        wait_for(lambda: vm_message(page) == "1 network adapter: NIC 0 internal lab", 30,
                 what="back to one adapter")
        assert nic_numbers(lab, "lab1") == [0]
        assert guest_links(lab, "lab1") == ["eth0"]
        assert " 0% packet loss" in lab.node("lab1").cmd("ping -n -c 1 -W 3 169.254.1.10")
        for driver in (page, other):
            wait_for(lambda d=driver: not d.find_elements(
                "css selector", 'g[id="a_nic:lab1/2"]'), 10, what="lab1's NIC 2 gone")
        # more than WVPC's four, from a script: refused in one line, nothing changed
        status, body = request(f"http://127.0.0.1:{lab.web.port}/api/adapters",
                               {"vm": "lab1", "count": 5},
                               {"Content-Type": "application/json",
                                "X-Wvpclab-Token": lab.web.token})
        assert (status, body) == (400, {"error": "lab1: the number of network adapters is 1 "
                                                 "to 4, not 5"})
        status, body = request(f"http://127.0.0.1:{lab.web.port}/api/adapters",
                               {"vm": "nosuch", "count": 2},
                               {"Content-Type": "application/json",
                                "X-Wvpclab-Token": lab.web.token})
        assert status == 400 and body["error"].startswith("no node 'nosuch' in lab t-web"), body
    finally:
        for n in reversed(nic_numbers(lab, "lab1")[1:]):
            lab.remove_nic("lab1", n)
    assert nic_numbers(lab, "lab1") == [0]


def test_remove_asks_first_then_the_vm_leaves_the_lab_and_every_page(lab: Lab, page: Any,
                                                                    other: Any) -> None:
    lab.add_vm("gone", nics=["shared"])
    try:
        address = lab.dhcp_client("gone", 0).lease()["ip"]
        assert address.startswith("192.168.131.")
        for driver in (page, other):
            wait_for(lambda d=driver: "gone" in vm_buttons(d), 5, what="the VM on the page")
        choose_vm(page, "gone")
        remove = page.find_element("css selector", "#dialog button.remove")
        assert remove.text == "Remove gone..."
        remove.click()
        ask = wait_for(lambda: _alert(page), 5, what="the confirmation")
        assert ask.text.startswith("Remove the virtual machine gone?")
        ask.dismiss()  # no: nothing happens
        assert "gone" in lab.nodes and "gone" in vm_buttons(page)
        page.find_element("css selector", "#dialog button.remove").click()
        wait_for(lambda: _alert(page), 5, what="the confirmation").accept()
        wait_for(lambda: text_of(page, "#vm-note") == "gone was removed", 30,
                 what="the VM removed")
        # gone from the lab: its node, its NIC, its lease
        assert "gone" not in lab.nodes and "gone" not in lab.graph
        assert not any(vm == "gone" for vm, _ in lab.clients)
        # and from both pages: its button, its NIC in the picture
        for driver in (page, other):
            wait_for(lambda d=driver: "gone" not in vm_buttons(d) and not d.find_elements(
                "css selector", 'g[id="a_nic:gone/0"]'), 5, what="the VM gone from the page")
        assert text_of(page, "#dialog h2") != "gone Settings: Networking"
    finally:
        if "gone" in lab.nodes:
            lab.remove_vm("gone")


def test_on_a_lab_of_two_pcs_the_wizard_asks_which_pc_and_lists_its_nics(tmp_path: Path) -> None:
    """The PC drop-down appears when there are several; the wizard's NICs follow the PC chosen;
    the VM is made on that PC (a PC with no adapter: shared networking, behind its own NAT
    engine)."""
    import ipaddress

    from selenium.webdriver.support.ui import Select

    graph = topology.from_document({
        "name": "t-web-pcs",
        "pcs": {"pc": {"adapters": {"eth0": {"type": "wired", "lan": "office"}}}, "bare": {}},
        "lans": {"office": {"subnet": "192.168.50.0/24"}},
        "vms": {"v": {"pc": "pc", "nics": []}}})
    with Lab(graph, quiet=True) as lab:
        driver = chrome(tmp_path)
        try:
            driver.get(lab.web_page().url)
            wait_for(lambda: "v" in vm_buttons(driver), 20, what="the page")
            dialog = open_new_vm(driver)
            pcs = Select(dialog.find_element("id", "new-vm-pc"))
            assert pcs.first_selected_option.text == "bare"
            assert [o.text for o in pcs.options] == ["bare", "pc"]

            def listed() -> list[str]:
                return [li.text for li in dialog.find_elements("css selector", "#new-vm-nics li")]

            assert listed() == ["Network adapter 1 (eth0): Shared Networking (NAT)"]
            pcs.select_by_value("pc")
            wired = "Network adapter 1 (eth0): eth0 (wired adapter, LAN office)"
            wait_for(lambda: listed() == [wired], 5, what="pc's wizard NICs")
            pcs.select_by_value("bare")
            wait_for(lambda: listed() == ["Network adapter 1 (eth0): Shared Networking (NAT)"],
                     5, what="bare's wizard NICs")
            dialog.find_element("id", "new-vm-name").send_keys("nb")
            dialog.find_element("id", "new-vm-create").click()
            wait_for(lambda: dialog.get_attribute("open") is None, 60, what="the VM made")
            assert lab.graph.nodes["nb"]["pc"] == "bare"
            assert [(n["mode"], n["target"]) for n in topology.nics_of(lab.graph, "nb")] == \
                [("shared", None)]
            held = lab.dhcp_client("nb", 0).lease()["ip"]
            assert ipaddress.ip_address(held) in ipaddress.ip_network(
                lab.graph.nodes["bare"]["nat_subnet"])
            assert f"inet {held}/" in lab.node("nb").cmd("ip -4 addr show eth0")
            wait_for(lambda: f"carrier {held}/" in nic_text(driver, "nb/0"), 10,
                     what="nb's address in the picture")
        finally:
            driver.quit()


# -- the guard ----------------------------------------------------------------------------------
def request(url: str, data: Any = None, headers: dict[str, str] | None = None,
            method: str | None = None) -> tuple[int, dict]:
    body = json.dumps(data).encode() if isinstance(data, dict) else data
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            text = res.read()
            status = res.status
    except urllib.error.HTTPError as err:
        text, status = err.read(), err.code
    with contextlib.suppress(ValueError):
        return status, json.loads(text or b"{}")
    return status, {"raw": text}


def test_a_wrong_token_and_a_cross_site_post_are_refused(lab: Lab) -> None:
    web = lab.web
    base = f"http://127.0.0.1:{web.port}"
    status, body = request(f"{base}/")  # an address bar: words
    assert status == 403 and body["raw"].startswith(b"wvpclab: this lab's page needs its token")
    assert request(f"{base}/?token=wrong")[0] == 403
    assert request(f"{base}/app.js")[0] == 403  # nothing is served without the token
    status, page = request(f"{base}/?token={web.token}")
    assert status == 200 and f'content="{web.token}"'.encode() in page["raw"]
    status, body = request(f"{base}/api/state")  # the page's script: JSON
    assert status == 403 and "token is wrong or missing" in body["error"]
    assert request(f"{base}/api/state?token={web.token}")[0] == 403  # a link cannot read it
    assert request(f"{base}/api/state", headers={"X-Wvpclab-Token": "x"})[0] == 403
    ok = {"X-Wvpclab-Token": web.token}
    assert request(f"{base}/api/state", headers=ok)[0] == 200
    # DNS rebinding: another name for 127.0.0.1
    status, body = request(f"{base}/api/state", headers={**ok, "Host": f"evil.example:{web.port}"})
    assert status == 403 and "127.0.0.1 and localhost only" in body["error"]
    pull = {"vm": "xp", "index": 1, "plugged": False}
    json_ct = {"Content-Type": "application/json"}
    # no token, the address's token (what a link or a form could carry), a wrong token
    assert request(f"{base}/api/cable", pull, json_ct)[0] == 403
    assert request(f"{base}/api/cable?token={web.token}", pull, json_ct)[0] == 403
    assert request(f"{base}/api/cable", pull, {**json_ct, "X-Wvpclab-Token": "x"})[0] == 403
    # the right token from another site's page
    status, body = request(f"{base}/api/cable", pull, {**json_ct, **ok,
                                                       "Origin": "http://evil.example"})
    assert status == 403 and "cross-site request refused" in body["error"]
    # a form's body (what a cross-site form can send without asking)
    status, _ = request(f"{base}/api/cable", b"vm=xp&index=1&plugged=false",
                        {"Content-Type": "application/x-www-form-urlencoded", **ok})
    assert status == 415
    assert lab.graph.nodes["xp/1"].get("cable", True) is True
    assert "NO-CARRIER" not in lab.node("xp").cmd("ip link show eth1")
    # a bad argument: the lab's own words, and the lab goes on
    status, body = request(f"{base}/api/nic", {"vm": "xp", "index": 7, "mode": "shared"},
                           {**json_ct, **ok, "Origin": f"http://127.0.0.1:{web.port}"})
    assert status == 400 and body["error"] == "xp has no NIC 7"
    status, body = request(f"{base}/api/nic", b"{not json", {**json_ct, **ok})
    assert status == 400 and "bad request" in body["error"]
    assert request(f"{base}/api/nic", method="PUT", headers=ok)[0] == 405
    # no cookie is ever set (a browser would send it to every server on 127.0.0.1)
    with urllib.request.urlopen(f"{base}/?token={web.token}", timeout=10) as res:
        assert res.headers.get("Set-Cookie") is None


# -- the command line and the default lab ---------------------------------------------------------
def test_run_web_prints_the_address_and_web_at_the_prompt(tmp_path: Path) -> None:
    res = subprocess.run([WVPCLAB, "run", str(TOPOLOGIES / "xp_mode.yaml"), *XP, "--web"],
                         input="web\nweb 70000\nweb 1\nweb echo said-by-the-server-web\n",
                         capture_output=True, text=True,
                         timeout=180, check=False)
    assert res.returncode == 0, res.stderr
    said = res.stderr.split("wvpclab: the lab's page (WVPC's Settings dialog, live): ", 1)[1]
    printed = said.split()[0]
    assert printed.startswith("http://127.0.0.1:") and "/?token=" in printed, res.stderr
    assert f"the lab's page: {printed}" in res.stdout
    assert "*** Usage: web [PORT]" in res.stderr
    assert "*** web: the page is already served on port" in res.stderr
    assert "said-by-the-server-web" in res.stdout  # XP Mode's LAN server is called web
    # a port that cannot be had: said before anything is built
    with socket_on() as port:
        res = subprocess.run([WVPCLAB, "run", str(TOPOLOGIES / "xp_mode.yaml"), *XP, "--web",
                              str(port)], input="", capture_output=True, text=True, timeout=60,
                             check=False)
    assert res.returncode == 2
    assert f"cannot listen on 127.0.0.1 port {port}" in res.stderr
    assert "building lab" not in res.stderr


def test_ctrl_c_while_the_page_changes_a_nic_lets_the_change_finish(tmp_path: Path) -> None:
    import signal
    import threading

    from tests.lab.helpers import leftovers
    from wvpclab.runtime import rundir
    proc = subprocess.Popen([WVPCLAB, "run", str(TOPOLOGIES / "xp_mode.yaml"), *XP, "--web"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        said = ""
        while "/?token=" not in said:
            line = proc.stderr.readline()
            assert line, f"the lab ended before printing its page: {said}"
            said += line
        url = said.split("live): ", 1)[1].split()[0]
        base, token = url.split("/?token=")
        result: dict[str, Any] = {}

        def move() -> None:
            result["answer"] = request(f"{base}/api/nic", {"vm": "xp", "index": 0,
                                                           "mode": "bridge:eth0"},
                                       {"Content-Type": "application/json",
                                        "X-Wvpclab-Token": token})

        mover = threading.Thread(target=move)
        mover.start()
        wait_for(lambda: request(f"{base}/api/state",
                                 headers={"X-Wvpclab-Token": token})[1].get("busy"), 10, 0.01,
                 what="the change in flight")
        proc.send_signal(signal.SIGINT)
        mover.join(60)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    status, body = result["answer"]
    assert status == 200 and body["label"] == "bridge eth0", body
    assert body["address"].startswith("192.168.50.")
    assert "lab t-web-xp is down" in err
    assert leftovers(rundir.prefix_for("t-web-xp")) == []


def test_ctrl_c_during_nic_at_the_prompt_says_where_the_nic_is() -> None:
    """On a terminal, Ctrl-C in the middle of `nic`: the change is made whole first (the page
    shows it under way when the key is pressed), then the CLI says where the NIC is now and the
    prompt comes back."""
    import pty
    import signal

    from tests.lab.helpers import leftovers
    from wvpclab.runtime import rundir
    pid, fd = pty.fork()
    if pid == 0:  # the child: the lab on a terminal
        os.execv(WVPCLAB, [WVPCLAB, "run", str(TOPOLOGIES / "xp_mode.yaml"), *XP, "--web"])
    try:
        shown = read_pty(fd, "wvpclab> ", 60)
        url = shown.split("live): ", 1)[1].split()[0]
        base, token = url.split("/?token=")
        # The key can only be pressed once the change is seen under way, and a change may end
        # in between: then the NIC goes back and the key is pressed again, at most three times.
        said, where = "", ""
        for mode, shown in [("bridge eth0", "bridge eth0"), ("shared", "shared")] * 2:
            os.write(fd, f"nic xp 0 {mode}\n".encode())
            wait_for(lambda: request(f"{base}/api/state",
                                     headers={"X-Wvpclab-Token": token})[1].get("busy"), 20,
                     0.01, what="the change under way")
            os.write(fd, b"\x03")
            said = read_pty(fd, "wvpclab> ", 60)
            if "Ctrl-C: a change" in said:
                where = shown
                break
            read_pty(fd, "wvpclab> ", 10)  # the prompt again, after Mininet's "Interrupt"
        assert where, f"Ctrl-C never came during a change: {said}"
        assert (f"xp NIC 0: {where}, cable plugged (Ctrl-C: a change is made whole or not at "
                "all; this is the NIC now)") in said, said
        os.write(fd, b"nics xp\n")
        now = read_pty(fd, "wvpclab> ", 30)
        assert (f"{where:<18}yes      192.168.50." if where.startswith("bridge") else
                f"{where:<18}yes      192.168.131.") in now, now
        os.write(fd, b"exit\n")
        read_pty(fd, "is down", 60)
    finally:
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        os.close(fd)
    assert leftovers(rundir.prefix_for("t-web-xp")) == []


@contextlib.contextmanager
def socket_on() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_the_default_lab_s_page_screenshot_for_the_readme(tmp_path: Path) -> None:
    """Writes docs/web.png: the page of `make lab`'s lab with XP Mode's Settings dialog open."""
    from wvpclab.runtime import cleanup, rundir
    name, out = "xp-mode", ROOT / "docs" / "web.png"
    if cleanup.owner_running(rundir.read_state(rundir.prefix_for(name))):
        # a teacher's `make lab` runs beside the suite: the name is theirs, the picture is kept
        name, out = "t-web-shot", tmp_path / "web.png"
    graph = topology.load(TOPOLOGIES / "xp_mode.yaml")
    graph.graph["name"] = name
    with Lab(graph, quiet=True) as lab:
        web = lab.web_page()
        driver = chrome(tmp_path)
        try:
            driver.get(web.url)
            wait_for(lambda: "carrier 192.168.131." in nic_text(driver, "xp/0"), 20,
                     what="xp's address on the page")
            open_dialog(driver, "xp/0")
            wait_for(lambda: "carrier" in nic_row(driver, "xp/0").text, 5)
            click(driver, 'g[id="a_switch:office"] a')  # the LAN's leases beside the dialog
            wait_for(lambda: driver.find_elements("css selector", "#detail table"), 10)
            # usable at 1280x720: nothing wider than the window, the dialog's controls in view
            assert driver.execute_script("return document.documentElement.scrollWidth") <= 1280
            select = nic_row(driver, "xp/0").find_element("tag name", "select")
            box = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()",
                                        select)
            assert 0 <= box["top"] and box["bottom"] <= 720 and box["right"] <= 1280, box
            assert driver.save_screenshot(str(out))
        finally:
            driver.quit()
    assert out.stat().st_size > 20_000
