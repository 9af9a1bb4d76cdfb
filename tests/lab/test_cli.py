"""`wvpclab run` and `wvpclab clean` driven as a user would, as root: piped CLI commands, --cmd,
bad node names, and clean after a lab process was killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.lab.helpers import end_run, leftovers, read_pty, shells_alive, wait_for
from wvpclab.runtime import cleanup, procs, rundir

pytestmark = pytest.mark.lab

WVPCLAB = str(Path(sys.executable).parent / "wvpclab")


def write_topology(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "pcs": {"pc": {}}, "internal": {"lab": None},
        "vms": {"a": {"nics": [{"internal": "lab", "ip": "169.254.5.1/16"}, "none"]},
                "b": {"nics": [{"internal": "lab", "ip": "169.254.5.2/16"}]}}}))
    return path


def run(*args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WVPCLAB, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_run_reads_piped_cli_commands_and_exits_0_at_eof(tmp_path: Path) -> None:
    topo = write_topology(tmp_path, "t-cli-pipe")
    res = run("run", str(topo), stdin="a ping -n -c 1 -W 2 169.254.5.2\nb ip -br link\nnodes\n")
    assert res.returncode == 0, res.stderr
    assert "1 packets transmitted, 1 received" in res.stdout
    assert "eth0" in res.stdout and "00:03:ff:" not in res.stderr
    assert "a b dhcp.pc.lab pc" in res.stdout  # `nodes`: the VMs, the responder, the PC
    assert "lab t-cli-pipe is up" in res.stderr
    assert leftovers(rundir.prefix_for("t-cli-pipe")) == []


def test_run_exit_command_and_unknown_cli_command(tmp_path: Path) -> None:
    topo = write_topology(tmp_path, "t-cli-exit")
    res = run("run", str(topo), "--quiet", stdin="frobnicate\nexit\na echo never-run\n")
    assert res.returncode == 0, res.stderr
    assert "Unknown command: frobnicate" in res.stderr
    assert "never-run" not in res.stdout
    assert leftovers(rundir.prefix_for("t-cli-exit")) == []


def test_run_no_cli_with_cmds_prints_output_and_tears_down(tmp_path: Path) -> None:
    topo = write_topology(tmp_path, "t-cli-cmd")
    res = run("run", str(topo), "--no-cli", "--quiet", "--cmd", "a cat /sys/class/net/eth1/carrier",
              "--cmd", "b ping -n -c 1 -W 2 169.254.5.1")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "0"  # NIC 1 of a is not connected: no carrier
    assert "1 received" in res.stdout
    assert leftovers(rundir.prefix_for("t-cli-cmd")) == []


def test_run_failing_cmd_gives_nonzero_exit(tmp_path: Path) -> None:
    topo = write_topology(tmp_path, "t-cli-fail")
    res = run("run", str(topo), "--no-cli", "--quiet", "--cmd", "a false")
    assert res.returncode == 1
    assert leftovers(rundir.prefix_for("t-cli-fail")) == []


def test_run_bad_node_name_is_a_clear_error_and_the_lab_is_torn_down(tmp_path: Path) -> None:
    topo = write_topology(tmp_path, "t-cli-bad")
    res = run("run", str(topo), "--no-cli", "--cmd", "nosuchvm ls")
    assert res.returncode == 2
    assert "no node 'nosuchvm' in lab t-cli-bad (nodes: a, b, dhcp.pc.lab, pc)" in res.stderr
    assert "lab t-cli-bad is down" in res.stderr
    assert leftovers(rundir.prefix_for("t-cli-bad")) == []


def test_run_invalid_topology_exits_2_before_building(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("vms: {a: {nics: [warp]}}\n")
    res = run("run", str(bad), "--no-cli", "--cmd", "a ls")
    assert res.returncode == 2
    assert "vms.a.nics[0]: 'warp' is not a NIC mode" in res.stderr


@contextlib.contextmanager
def lab_process(tmp_path: Path, name: str) -> Iterator[tuple[subprocess.Popen, str, dict]]:
    """`wvpclab run` with its CLI on a pipe, up and running; ended (by PID) on the way out."""
    prefix = rundir.prefix_for(name)
    topo = write_topology(tmp_path, name)
    proc = subprocess.Popen([WVPCLAB, "run", str(topo)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        state = wait_for(lambda: (rundir.read_state(prefix) or {}).get("bridges")
                         and rundir.read_state(prefix), timeout=60, what="the lab to be up")
        yield proc, prefix, state
    finally:
        end_run(proc, name)
        proc.communicate(timeout=10)


def kill_9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_clean_after_kill_9_of_a_running_lab(tmp_path: Path) -> None:
    with lab_process(tmp_path, "t-cli-kill") as (proc, prefix, state):
        # a daemon started in a VM outlives the VM's shell and keeps its namespace
        assert proc.stdin is not None
        proc.stdin.write("a setsid sleep 300 >/dev/null 2>&1 < /dev/null &\n")
        proc.stdin.flush()
        inodes = [int(i) for i in state["netns"]]
        daemon = wait_for(lambda: [p for p in cleanup.pids_in_netns(inodes)
                                   if procs.cmdline(p).startswith("sleep 300")],
                          what="the daemon in VM a")
        kill_9(proc)
    ctl = int(state["controller_pid"])
    assert procs.cmdline(daemon[0]).startswith("sleep 300")
    assert "controllers.main" in procs.cmdline(ctl)
    assert cleanup.lab_bridges(prefix)
    res = run("clean", "t-cli-kill")
    assert res.returncode == 0, res.stderr
    # the daemon, the responder, a's DHCP client on its unplugged NIC and the controller: all in
    # the lab's cgroup
    ended = re.search(rf"{prefix}: ended (\d+) processes of the lab \(its cgroup\)", res.stdout)
    assert ended and int(ended.group(1)) >= 4, res.stdout
    wait_for(lambda: not procs.cmdline(daemon[0]), what="the daemon to end")
    assert not procs.cmdline(ctl)
    wait_for(lambda: leftovers(prefix) == [], what=f"no leftovers of {prefix}")
    assert not shells_alive([int(p) for p in state["shells"]])
    assert prefix not in run("clean", "t-cli-kill").stdout


def test_a_new_lab_removes_its_own_stale_leftovers(tmp_path: Path) -> None:
    with lab_process(tmp_path, "t-cli-stale") as (proc, prefix, _):
        kill_9(proc)
    res = run("run", str(tmp_path / "t-cli-stale.yaml"), "--no-cli", "--cmd",
              "a ping -n -c 1 -W 2 169.254.5.2")
    assert res.returncode == 0, res.stderr
    assert "stale leftovers of an earlier run" in res.stderr
    assert leftovers(prefix) == []


def test_clean_leaves_a_running_lab_alone(tmp_path: Path) -> None:
    with lab_process(tmp_path, "t-cli-alive") as (proc, prefix, _):
        res = run("clean", "t-cli-alive")
        assert res.returncode == 0
        assert f"{prefix}: lab t-cli-alive is running" in res.stdout
        assert cleanup.lab_bridges(prefix)
        out, err = proc.communicate("a ping -n -c 1 -W 2 169.254.5.2\n", timeout=60)
        assert proc.returncode == 0, err
        assert "1 received" in out
    assert leftovers(prefix) == []


def test_clean_by_name_touches_only_that_dead_lab(tmp_path: Path) -> None:
    with lab_process(tmp_path, "t-cli-one") as (one, prefix_one, _), \
            lab_process(tmp_path, "t-cli-two") as (two, prefix_two, _):
        res = run("clean", "t-cli-two")  # running: left alone, whatever is asked
        assert res.returncode == 0 and "is running" in res.stdout
        assert "only its own stop removes it" in res.stdout and cleanup.lab_bridges(prefix_two)
        kill_9(one)
        res = run("clean", "t-cli-two")  # the dead one is not this name: untouched
        assert prefix_one not in res.stdout and cleanup.lab_bridges(prefix_one)
        res = run("clean", "t-cli-one")
        assert res.returncode == 0 and f"{prefix_one}: " in res.stdout
        wait_for(lambda: leftovers(prefix_one) == [], what=f"no leftovers of {prefix_one}")
        twice = run("run", str(tmp_path / "t-cli-two.yaml"), "--no-cli", "--cmd", "a true")
        assert twice.returncode == 1 and "is already running" in twice.stderr
        assert "clean" not in twice.stderr  # it recommends only what is safe
        out, err = two.communicate("a ping -n -c 1 -W 2 169.254.5.2\n", timeout=60)
        assert two.returncode == 0 and "1 received" in out, err
    assert leftovers(prefix_two) == []


def test_run_and_clean_as_non_root_say_what_to_do(tmp_path: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="wvpclab-test-", dir="/tmp"))
    try:
        os.chmod(shared, 0o755)
        _as_nobody(write_topology(shared, "t-cli-user"))
    finally:
        shutil.rmtree(shared)


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
#: A new user namespace where root is not mapped: there the process's uid is 65534 (what the CLI's
#: checks read), while the kernel still checks its file accesses as root's.
ROOT_UNMAPPED = ["unshare", "--user", "--"]


def _non_root() -> tuple[list[str], str]:
    """How to run ``wvpclab`` as a user who is not root: the command prefix and the wvpclab.

    As nobody, with this interpreter's command or the checkout's .venv's, whichever nobody can run.
    An interpreter in a directory only root may enter (pyenv's builds under /root, for
    WVPCLAB_PYTHON) is nobody's to run: then as root in a user namespace where root is unmapped,
    so the CLI sees a user that is not root. Skips, saying why, only when neither can be had (CI
    runs the system's Python, which nobody can run)."""
    tried = []
    for wvpclab in (WVPCLAB, str(ROOT / ".venv" / "bin" / "wvpclab")):
        probe = subprocess.run([*AS_NOBODY, wvpclab, "--version"], capture_output=True,
                               text=True, timeout=60, check=False)
        if probe.returncode == 0:
            return AS_NOBODY, wvpclab
        tried.append(f"{wvpclab}: {(probe.stderr.strip().splitlines() or ['?'])[-1]}")
    probe = subprocess.run([*ROOT_UNMAPPED, sys.executable, "-c", "import os; print(os.geteuid())"],
                           capture_output=True, text=True, timeout=60, check=False)
    if probe.returncode == 0 and probe.stdout.strip() == "65534":
        return ROOT_UNMAPPED, WVPCLAB
    pytest.skip(f"nobody cannot run wvpclab here ({'; '.join(tried)}) and no user namespace "
                f"can be made ({probe.stderr.strip() or probe.stdout.strip()})")


def _as_nobody(topo: Path) -> None:
    prefix, wvpclab = _non_root()
    res = subprocess.run([*prefix, wvpclab, "run", str(topo), "--no-cli", "--cmd", "a ls"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 1, res.stderr
    assert "a lab needs root" in res.stderr and "sudo" in res.stderr
    res = subprocess.run([*prefix, wvpclab, "clean"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 1 and "clean needs root" in res.stderr, res.stderr
    res = subprocess.run([*prefix, wvpclab, "check", str(topo)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 0 and "vm a" in res.stdout, res.stderr  # check needs no root


def test_leases_command_in_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "t-cli-leases.yaml"
    path.write_text(yaml.safe_dump({
        "name": "t-cli-leases", "pcs": {"pc": {}}, "internal": {"lab": None},
        "vms": {"a": {"nics": ["internal:lab"]}, "b": {"nics": ["internal:lab"]}}}))
    res = run("run", str(path), "--quiet",
              stdin="leases\nleases pc/nope\nleases a b\nleases pc/lab\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("pc/lab: 2 leases") == 2
    assert "no DHCP responder for 'pc/nope'" in res.stderr
    assert "Usage: leases [PC/NETWORK]" in res.stderr
    rows = [l.split() for l in res.stdout.splitlines() if l.strip().startswith("169.254.")]
    assert {r[4] for r in rows} == {"a", "b"} and {r[2] for r in rows} == {"bound"}


def test_missing_tools_are_named_with_what_to_run(tmp_path: Path) -> None:
    topo = write_topology(tmp_path, "t-cli-tools")
    env = dict(os.environ, PATH=str(Path(WVPCLAB).parent))  # no /usr/bin: no mnexec, ip, ovs-vsctl
    res = subprocess.run([WVPCLAB, "run", str(topo), "--no-cli", "--cmd", "a ls"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == ("wvpclab: mnexec is not installed: run `make install` "
                                  "(scripts/install.sh)")


def test_runtime_cli_commands_and_their_errors(tmp_path: Path) -> None:
    topo = Path(__file__).resolve().parents[2] / "topologies" / "four_modes.yaml"
    pcap = tmp_path / "xp0.pcap"
    script = "\n".join([
        "vms", "nics xp", "nic xp 0 internal lab", "nics xp",
        "cable xp 0 off", "nics xp", "cable xp 0 on",
        f"capture xp 0 {pcap}", "xp ping -n -c 3 -i 0.2 -W 1 -I eth0 lab1", "capture stop",
        "rules pc/eth0", "nat xp 0", "nic xp 1 shared", "nat xp 1",
        # errors: one line each, the CLI goes on
        "nic xp 9 none", "nic xp 0 warp", "nic", "cable xp 0 sideways", "nics nobody",
        "rules pc/eth7", "nat xp 2", "capture nobody 0", "leases pc/none",
        "nics xp", "help nic"]) + "\n"
    res = run("run", str(topo), "--quiet", "--name", "t-cli-runtime", stdin=script)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "xp           pc pc         0:shared, 1:bridge eth0, 2:internal lab, 3:none" in out
    assert "xp NIC 0: internal lab, address 169.254." in out
    # help names the modes the registry has
    assert "Usage: nic VM N none|shared|bridge ADAPTER|internal NAME\n" in out
    assert "xp NIC 0: cable pulled" in out and "xp NIC 0: cable plugged" in out
    rows = [l.removeprefix("wvpclab> ") for l in out.splitlines()]
    carriers = [r[52:61].strip() for r in rows if r.startswith("xp        0 ")]
    assert "no" in carriers and "yes" in carriers
    assert "3 packets transmitted, 3 received" in out
    assert f"xp eth0: {pcap}" in out
    assert "from uplink (LAN office): admitted" in out
    assert "# nat.xp.1" in out and "MASQUERADE" in out
    errors = [l for l in res.stderr.splitlines() if l.startswith("***")]
    assert len(errors) == 10, res.stderr
    assert "*** xp has no NIC 9" in errors
    assert "*** Usage: nic VM N none|shared|bridge ADAPTER|internal NAME" in errors
    assert "*** Usage: cable VM N on|off" in errors
    assert any(e.startswith("*** no VM 'nobody'") for e in errors)
    assert any("xp NIC 2 is not in shared networking" in e for e in errors)
    # the pcap opens as Wireshark would, and holds the pings sent during the capture
    from scapy.all import ICMP, rdpcap

    frames = rdpcap(str(pcap))
    requests = [f for f in frames if f.haslayer(ICMP) and f[ICMP].type == 8]
    assert len(requests) == 3 and all(f.dst != "ff:ff:ff:ff:ff:ff" for f in requests)


def test_draw_command_line_and_cli(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    topo = Path(__file__).resolve().parents[2] / "topologies" / "four_modes.yaml"
    svg = tmp_path / "lab.svg"
    res = run("draw", str(topo), "-o", str(svg))
    assert res.returncode == 0 and res.stdout.strip() == str(svg)
    text = " ".join(t for t in ET.parse(svg).getroot().itertext())
    assert "internal → lab" in text and "00:03:ff:00:00:10" in text
    bad = run("draw", str(topo), "-o", str(tmp_path / "lab.pdf"))
    assert bad.returncode == 2 and ".svg or .png" in bad.stderr
    drawn = tmp_path / "running.svg"
    res = run("run", str(topo), "--quiet", "--name", "t-cli-draw",
              stdin=f"nic xp 3 internal lab\ndraw {drawn}\ndraw a b\n")
    assert res.returncode == 0, res.stderr
    assert f"drew {drawn}" in res.stdout and "*** Usage: draw [FILE]" in res.stderr
    running = " ".join(ET.parse(drawn).getroot().itertext())
    # NIC 3 is drawn on the internal network now: "not connected" is left only in the legend
    assert running.count("not connected") == text.count("not connected") - 1


def test_run_under_another_name_beside_the_files_own(tmp_path: Path) -> None:
    with lab_process(tmp_path, "t-cli-named") as (_proc, prefix, _):
        topo = tmp_path / "t-cli-named.yaml"
        twice = run("run", str(topo), "--no-cli", "--cmd", "a true")  # the file's name: taken
        assert twice.returncode == 1 and "is already running" in twice.stderr
        other = run("run", str(topo), "--name", "t-cli-named-2", "--no-cli", "--cmd",
                    "a ping -n -c 1 -W 2 169.254.5.2")
        assert other.returncode == 0, other.stderr
        assert "lab t-cli-named-2 is up" in other.stderr and "1 received" in other.stdout
        assert cleanup.lab_bridges(prefix)  # the first runs on
    assert leftovers(rundir.prefix_for("t-cli-named-2")) == []
    bad = run("run", str(topo), "--name", "no spaces")
    assert bad.returncode == 2 and "'no spaces' is not a lab name" in bad.stderr


def test_a_stop_finishes_when_nobody_reads_the_lab_s_output_any_more(tmp_path: Path) -> None:
    """`wvpclab run ... | tee log` in a terminal that is closed: tee is gone when the lab stops, and
    its words meet a dead pipe (before, the stop raised BrokenPipeError there, and a word said
    before its files were removed left them behind); the stop finishes, quietly."""
    from wvpclab import Lab
    from wvpclab.model import topology
    lab = Lab(topology.load(write_topology(tmp_path, "t-cli-deadpipe")))
    read_end, write_end = os.pipe()
    dead = os.fdopen(write_end, "w")
    saved = sys.stderr
    try:
        lab.start()
        os.close(read_end)  # tee is gone
        sys.stderr = dead
        lab.stop()  # says "lab ... is down" into the dead pipe
    finally:
        sys.stderr = saved
        lab.stop()
        with contextlib.suppress(OSError):
            dead.close()
    assert leftovers(lab.prefix) == []


def test_vms_and_nics_added_and_removed_at_the_prompt(tmp_path: Path) -> None:
    topo = Path(__file__).resolve().parents[2] / "topologies" / "four_modes.yaml"
    lines = [
        "vm add w7", "vm add w8 on pc bridge:eth0 internal lab", "w7 ping -n -c 1 -W 2 web",
        "nic add w8", "nic add w8 shared", "nic remove w8 1", "nic add w8 internal lab",
        "vm remove w7", "vms", "nodes", "help vm", f"save {tmp_path / 'saved.yaml'}",
        # errors: one line each, the prompt goes on
        "vm", "vm add", "vm add w9 on", "vm add w9 warp", "vm remove nobody", "vm add xp",
        "nic add w8", "nic remove w8", "nic remove w8 7", "vm add save",
        f"save {tmp_path / 'no' / 'such.yaml'}", "save"]
    res = run("run", str(topo), "--quiet", "--name", "t-cli-build", stdin="\n".join(lines) + "\n")
    assert res.returncode == 0, res.stderr
    out = res.stdout.replace("wvpclab> ", "")
    # the wizard's NICs: bridged to the PC's first wired and first wireless adapter
    assert re.search(r"w7: created on pc with the wizard's NICs\n"
                     r"w7 NIC 0: bridge eth0, address 192\.168\.50\.\d+\n"
                     r"w7 NIC 1: bridge wlan0, address 192\.168\.60\.\d+\n", out), out
    assert re.search(r"w8: created on pc with its NICs\n"
                     r"w8 NIC 0: bridge eth0, address 192\.168\.50\.\d+\n"
                     r"w8 NIC 1: internal lab, address 169\.254\.\d+\.\d+\n", out), out
    assert "1 packets transmitted, 1 received" in out
    assert "w8 NIC 2 added: none\n" in out
    assert re.search(r"w8 NIC 3 added: shared, address 192\.168\.131\.\d+\n", out), out
    assert "w8 NIC 1 removed\n" in out
    assert "w8 NIC 1 added: internal lab, address 169.254." in out  # the lowest free number
    assert "w7: removed\n" in out
    assert "w8           pc pc         0:bridge eth0, 1:internal lab, 2:none, 3:shared" in out
    after = out.split("w7: removed\n")[1]
    assert not re.search(r"(?m)^w7 ", after.split("available nodes are:")[0])  # vms
    nodes = after.split("available nodes are: \n")[1].splitlines()[0].split()
    assert "w8" in nodes and "w7" not in nodes
    assert "Usage: vm add NAME [on PC] [NIC...] | vm remove NAME" in out  # help vm
    errors = [line for line in res.stderr.splitlines() if line.startswith("***")]
    assert len(errors) == 12, res.stderr
    assert errors[:3] == ["*** Usage: vm add NAME [on PC] [NIC...] | vm remove NAME"] * 3
    assert "'warp' is not a NIC mode" in errors[3]
    assert "no node 'nobody'" in errors[4]
    assert "name 'xp' is already used by a vm" in errors[5]
    assert "4 NICs" in errors[6] or "at most 4" in errors[6], errors[6]
    assert errors[7] == "*** Usage: nic remove VM N"
    assert errors[8] == "*** w8 has no NIC 7"
    assert "'save' is a CLI command" in errors[9]
    assert errors[10].startswith(f"*** cannot write {tmp_path / 'no' / 'such.yaml'}: ")
    assert errors[11] == "*** Usage: save FILE"
    # the saved file starts the lab as it is now: w8's four NICs, w7 gone
    assert f"saved lab t-cli-build to {tmp_path / 'saved.yaml'}\n" in out
    from wvpclab.model import modes, topology

    saved = topology.load(tmp_path / "saved.yaml")
    assert [modes.label(n) for n in topology.nics_of(saved, "w8")] == \
        ["bridge eth0", "internal lab", "none", "shared"]
    assert "w7" not in saved


def _shell_of(name: str) -> bool:
    """Whether node ``name``'s Mininet shell runs (its guest is started)."""
    return any(procs.cmdline(int(p)).split()[-1:] == [f"mininet:{name}"]
               for p in os.listdir("/proc") if p.isdigit())


def _end_pty_lab(pid: int, name: str) -> None:
    """Ends a lab run on a terminal by this test (by its PID): SIGTERM, SIGKILL if it is still
    there a minute later, then its leftovers by its name."""
    import time

    with contextlib.suppress(ChildProcessError, ProcessLookupError):
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.1)
    cleanup.clean(name)


def test_ctrl_c_during_vm_add_at_the_prompt_says_whether_the_vm_is_there() -> None:
    """On a terminal, Ctrl-C (SIGINT to the lab's process) while `vm add` runs (its guest
    started, its DHCP client not yet bound): the VM is made whole first, then the prompt says it
    is there and comes back; the same for `nic add`."""
    import pty

    topo = Path(__file__).resolve().parents[2] / "topologies" / "four_modes.yaml"
    name = "t-cli-ctrlc"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the lab on a terminal
        os.execv(WVPCLAB, [WVPCLAB, "run", str(topo), "--quiet", "--name", name])
    try:
        read_pty(fd, "wvpclab> ", 60)
        said = ""
        for vm in ("w7", "w8", "w9"):  # (the key may come after a change ended: again)
            os.write(fd, f"vm add {vm}\n".encode())
            wait_for(lambda vm=vm: _shell_of(vm), 20, 0.01, what=f"{vm}'s guest started")
            os.kill(pid, signal.SIGINT)
            said = read_pty(fd, "wvpclab> ", 60)
            if "Ctrl-C: a change" in said:
                break
        assert (f"{vm}: a VM of the lab now (Ctrl-C: a change is made whole or not at all)"
                in said), said
        os.write(fd, f"nics {vm}\n".encode())
        now = read_pty(fd, "wvpclab> ", 30)
        assert re.search(rf"{vm}\s+0\s+00:03:ff:\S+\s+bridge eth0\s+yes\s+192\.168\.50\.", now), now
        os.write(fd, f"nic add {vm} shared\n".encode())
        wait_for(lambda vm=vm: _shell_of(f"nat.{vm}.2"), 20, 0.01,
                 what="the new NIC's NAT engine started")
        os.kill(pid, signal.SIGINT)
        said = read_pty(fd, "wvpclab> ", 60)
        if "Ctrl-C: a change" in said:  # (else the change ended before the key: no words)
            assert f"{vm} has NICs 0, 1, 2 (Ctrl-C: a change is made whole" in said, said
        os.write(fd, b"vms\n")
        assert "2:shared" in read_pty(fd, "wvpclab> ", 30)
        os.write(fd, b"exit\n")
        read_pty(fd, "is down", 60)
    finally:
        _end_pty_lab(pid, name)
        os.close(fd)
    assert leftovers(rundir.prefix_for(name)) == []
