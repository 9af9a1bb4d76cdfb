"""The example labs and scripts in topologies/, run as a user would (root)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wvpclab.runtime import rundir

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]


def test_move_nic_script_drives_a_lab_end_to_end() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "topologies" / "move_nic.py")],
                         capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, res.stderr
    lines = dict(l.split(None, 1) for l in res.stdout.splitlines())
    assert lines["shared"].startswith("address 192.168.131.1 ")
    assert "web: hello from web; you are 192.168.50." in lines["shared"]
    bridged = lines["bridge:eth0"].split()
    assert bridged[1].startswith("192.168.50.") and bridged[-1] == bridged[1]  # its own address
    assert lines["internal:lab"].endswith("1 received")
    assert lines["none"].endswith("carrier no")


EXAMPLES = sorted(p.name for p in (ROOT / "topologies").iterdir() if p.suffix in (".yaml", ".py"))


def suite_name(example: str) -> str:
    """The name the suite runs an example lab under (``--name``): a teacher's lab of the example's
    own name may run beside the suite."""
    return "t-ex-" + Path(example).stem.replace("_", "-")


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_lab_behaves_as_the_model_says(name: str) -> None:
    wvpclab = Path(sys.executable).parent / "wvpclab"
    res = subprocess.run([str(wvpclab), "verify", str(ROOT / "topologies" / name),
                          "--name", suite_name(name)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "MISMATCH" not in res.stdout
    assert "behave as the model says" in res.stderr
    rows = res.stdout.splitlines()[1:]
    # the two labs without a reachable pair: a pulled cable, and DHCP off with no guest serving yet
    assert any(" reaches " in r for r in rows) == (name not in ("not_connected.yaml",
                                                               "guest_dhcp.py"))


def test_each_example_says_what_to_try() -> None:
    for name in EXAMPLES:
        head = (ROOT / "topologies" / name).read_text().splitlines()[:3]
        assert head[0].startswith(("#", '"""')), f"{name} has no header"


def test_guest_dhcp_script_shows_a_guest_serving() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "topologies" / "guest_dhcp.py")],
                         capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and all("169.254.20." in l and "from the guest server" in l
                                   for l in lines)


def test_verify_fails_naming_the_pair_when_a_rule_is_broken() -> None:
    from tests.lab.helpers import example_graph
    from wvpclab import Lab
    from wvpclab.analysis.verify import matrix

    with Lab(example_graph("bridge.yaml", "t-ex-broken"), quiet=True) as lab:
        g2 = lab.graph.nodes["g2/0"]["mac"]
        # break the filter on purpose: frames for g2 are dropped
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", lab.bridges["pc/eth0"].name,
                        f"table=1,priority=700,dl_dst={g2},actions=drop"], check=True)
        _rows, wrong = matrix(lab)
    assert "g1/eth0 -> g2/eth0: expected reaches (same LAN), probed blocked" in wrong
    assert "web -> g2/eth0: expected reaches (same LAN), probed blocked" in wrong
    assert wrong and all("g2/eth0" in w for w in wrong)  # g2 gets no replies either


def test_progress_on_stderr_and_quiet_silences_it(tmp_path: Path) -> None:
    wvpclab = Path(sys.executable).parent / "wvpclab"
    topo = ROOT / "topologies" / "internal_dhcp.yaml"
    loud = subprocess.run([str(wvpclab), "run", str(topo), "--name", "t-ex-progress", "--no-cli",
                           "--cmd", "a true"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert loud.returncode == 0
    assert "building" in loud.stderr and "is up" in loud.stderr and " s" in loud.stderr
    prefix = rundir.prefix_for("t-ex-progress")  # and where its logs go
    assert f"wvpclab: logs: /run/wvpclab/{prefix}/ (" in loud.stderr, loud.stderr
    assert loud.stdout == ""
    quiet = subprocess.run([str(wvpclab), "run", str(topo), "--name", "t-ex-progress", "--no-cli",
                            "--quiet", "--cmd", "a true"], capture_output=True, text=True,
                           timeout=120, check=False)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""


def try_lines(path: Path) -> list[str]:
    """The commands a topology file's header suggests under "Try in the CLI:" (one a line, in the
    column of the first; deeper lines continue a remark, a line to the left ends the list)."""
    out: list[str] = []
    col = None
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if col is None:
            if "Try in the CLI:" in line:
                head = line.index("Try in the CLI:") + len("Try in the CLI:")
                col = head + len(line[head:]) - len(line[head:].lstrip())
                out.append(line[col:].split("  ", 1)[0].strip())
            continue
        if line[1:col].strip() or len(line) <= col:
            break
        if line[col] != " ":
            out.append(line[col:].split("  ", 1)[0].strip())
    return out


@pytest.mark.parametrize("name", [n for n in EXAMPLES if n.endswith(".yaml")])
def test_every_try_line_of_the_examples_runs_without_an_error(name: str) -> None:
    path = ROOT / "topologies" / name
    lines = try_lines(path)
    if name != "four_modes.yaml":  # its header describes the lab rather than commands
        assert lines, f"{name} suggests nothing to try"
    wvpclab = Path(sys.executable).parent / "wvpclab"
    res = subprocess.run([str(wvpclab), "run", str(path), "--quiet", "--name", suite_name(name)],
                         input="\n".join(lines) + "\n", capture_output=True, text=True,
                         timeout=300, check=False)
    Path("/tmp/g1.pcap").unlink(missing_ok=True)  # bridge.yaml's suggested capture file
    assert res.returncode == 0, res.stderr
    errors = [l for l in res.stderr.splitlines() if l.startswith("***")]
    assert errors == [], (lines, errors)
