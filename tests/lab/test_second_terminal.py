"""A second terminal, as root, against a lab another process runs (`wvpclab run` with its prompt
on a pipe): `wvpclab ls`, `exec`, `nic`, `cable`, `vm`, `save`, each checked by its effect in the
lab (a node's own view, and the prompt's), and their one-line errors; the lab's control channel
answering a malformed request with an error and going on."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.lab.helpers import end_run, leftovers, wait_for
from wvpclab.model import topology
from wvpclab.runtime import control, procs, rundir

pytestmark = pytest.mark.lab


def write_topology(tmp_path: Path, name: str) -> Path:
    """One PC whose wired adapter is on a LAN with a server, an internal network, two VMs."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "office-term",  # (run under --name: the second terminal knows it by that)
        "pcs": {"pc": {"adapters": {"eth0": {"type": "wired", "lan": "office"}}}},
        "lans": {"office": {"subnet": "192.168.77.0/24", "servers": {"web1": "192.168.77.80"}}},
        "internal": {"lab": None},
        "vms": {"xp": {"nics": [{"bridge": "eth0"}, {"internal": "lab"}]},
                "w7": {"nics": [{"internal": "lab"}]}}}))
    return path


def environment() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def wvpclab(*args: str, stdin: str = "", cwd: Path | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m wvpclab ARGS...`` as a user types it in another terminal."""
    return subprocess.run([sys.executable, "-m", "wvpclab", *args], input=stdin, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=environment(),
                          check=False)


@dataclass
class RunningLab:
    """A lab run by `wvpclab run` in another process; its prompt reads the test's lines."""

    name: str
    proc: subprocess.Popen
    out: Path
    err: Path

    @property
    def prefix(self) -> str:
        return rundir.prefix_for(self.name)

    def prompt(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def end(self, last: str = "") -> str:
        """Types ``last`` at the prompt, ends its input (and the lab with it); what the prompt
        printed."""
        if last:
            self.prompt(last)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(120) == 0, self.err.read_text()
        return self.out.read_text()


@contextlib.contextmanager
def lab_run(tmp_path: Path, name: str) -> Iterator[RunningLab]:
    """`wvpclab run FILE --name NAME`, up with its control channel; ended (by PID) on the way out
    however the test went, and nothing of it left."""
    topo = write_topology(tmp_path, name)
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "wvpclab", "run", str(topo), "--name",
                                 name], stdin=subprocess.PIPE, stdout=stdout, stderr=stderr,
                                text=True, env=environment(), cwd=tmp_path)
    lab = RunningLab(name, proc, out, err)
    try:
        wait_for(lambda: control.socket_path(rundir.run_dir(lab.prefix)).exists()
                 or proc.poll() is not None, timeout=90, what=f"lab {name} to be up")
        assert proc.poll() is None, err.read_text()
        yield lab
    finally:
        if proc.poll() is None and proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
        end_run(proc, name)
    assert leftovers(lab.prefix) == []


def ask_raw(lab: RunningLab, data: bytes, timeout: float = 10) -> dict:
    """Sends bytes to the lab's control socket as they are; its answer (one JSON line)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(control.socket_path(rundir.run_dir(lab.prefix))))
        sock.sendall(data)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.endswith(b"\n") and answer.count(b"\n") == 1, answer
    return json.loads(answer)


def ls_row(name: str) -> list[str]:
    res = wvpclab("ls")
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines()]
    assert rows[0][:5] == ["NAME", "PID", "PCS", "VMS", "NICS"], res.stdout
    mine = [r for r in rows if r[0] == name]
    assert len(mine) == 1, res.stdout
    return mine[0]


def test_ls_lists_the_lab_and_exec_runs_in_its_nodes(tmp_path: Path) -> None:
    with lab_run(tmp_path, "t-term-exec") as lab:
        row = ls_row(lab.name)
        assert row[1:5] == [str(lab.proc.pid), "1", "2", "3"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", row[5]) and row[7] == "-"  # no page served
        lab.prompt("web")
        page = wait_for(lambda: ls_row(lab.name)[7] != "-" and ls_row(lab.name)[7],
                        what="the page's address in ls")
        assert page.startswith("http://127.0.0.1:") and "token=" in page

        res = wvpclab("exec", lab.name, "xp", "--", "ip", "-4", "-br", "addr")
        assert res.returncode == 0, res.stderr
        assert re.search(r"(?m)^eth0@\S+\s+UP\s+192\.168\.77\.\d+/24", res.stdout), res.stdout
        assert re.search(r"(?m)^eth1@\S+\s+UP\s+169\.254\.\d+\.\d+/16", res.stdout), res.stdout
        both = wvpclab("exec", lab.name, "xp", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
        assert (both.returncode, both.stdout, both.stderr) == (3, "out\n", "err\n")
        echoed = wvpclab("exec", lab.name, "w7", "--", "cat", stdin="through stdin\n")
        assert (echoed.returncode, echoed.stdout) == (0, "through stdin\n")
        ping = wvpclab("exec", lab.name, "xp", "--", "ping", "-c", "1", "-W", "2",
                       "192.168.77.80")
        assert ping.returncode == 0 and "1 received" in ping.stdout, ping.stdout + ping.stderr
        group = wvpclab("exec", lab.name, "xp", "--", "cat", "/proc/self/cgroup")
        assert f"/wvpclab/{lab.prefix}\n" in group.stdout, group.stdout

        # a command left running in a node is in the lab's cgroup: the lab's stop ends it
        sleeper = subprocess.Popen([sys.executable, "-m", "wvpclab", "exec", lab.name, "xp", "--",
                                    "sleep", "300"], env=environment())
        try:
            wait_for(lambda: procs.cmdline(sleeper.pid).startswith("sleep 300"),
                     what="the command run by exec")
            lab.end()
            assert sleeper.wait(30) != 0  # ended by the lab's stop, not finished
        finally:
            if sleeper.poll() is None:
                sleeper.kill()
                sleeper.wait(10)


def test_wrong_lab_node_or_command_is_one_line(tmp_path: Path) -> None:
    with lab_run(tmp_path, "t-term-wrong") as lab:
        for args in (["exec", "t-term-nope", "xp", "--", "true"],
                     ["nic", "t-term-nope", "xp", "0", "shared"],
                     ["save", "t-term-nope", "x.yaml"]):
            res = wvpclab(*args)
            assert res.returncode == 2, res
            assert res.stderr.count("\n") == 1, res.stderr
            assert res.stderr.startswith("wvpclab: no lab 't-term-nope' is running on this "
                                         "machine (running: "), res.stderr
            assert lab.name in res.stderr
        res = wvpclab("exec", lab.name, "nobody", "--", "true")
        assert res.returncode == 2
        assert res.stderr == (f"wvpclab: no node 'nobody' in lab {lab.name} (nodes: "
                              "dhcp.pc.lab, gw.office, pc, w7, web1, xp)\n")
        res = wvpclab("exec", lab.name, "xp")
        assert res.returncode == 2 and "give the command after the node" in res.stderr
        for args, says in ((["nic", lab.name, "xp", "0", "warp"], "'warp' is not a NIC mode"),
                           (["nic", lab.name, "xp", "9", "none"], "xp has no NIC 9"),
                           (["nic", lab.name, "nobody", "0", "none"], "no node 'nobody'"),
                           (["nic", lab.name, "xp"], "Usage: nic VM N none|shared|"),
                           (["cable", lab.name, "xp", "0", "sideways"], "Usage: cable VM N on|off"),
                           (["cable", lab.name, "w7", "3", "off"], "w7 has no NIC 3"),
                           (["vm", lab.name, "add", "vm"], "'vm' is a CLI command"),
                           (["vm", lab.name, "add", "w9", "on", "nopc"], "no PC 'nopc'"),
                           (["vm", lab.name, "add", "w9", "bridge", "eth7"], "eth7"),
                           (["vm", lab.name, "remove", "nobody"], "nobody"),
                           (["vm", lab.name, "frob"], "Usage: vm add NAME [on PC] [NIC...]")):
            res = wvpclab(*args)
            assert res.returncode == 2, (args, res)
            assert res.stdout == "" and res.stderr.count("\n") == 1, (args, res)
            assert res.stderr.startswith("wvpclab: ") and says in res.stderr, (args, res)
        # nothing of that changed the lab
        row = ls_row(lab.name)
        assert row[2:5] == ["1", "2", "3"]
        out = lab.end("vms")
    assert "xp           pc pc         0:bridge eth0, 1:internal lab" in out
    assert "w7           pc pc         0:internal lab" in out and "w9" not in out


def test_non_root_is_told_in_one_line() -> None:
    from tests.lab.test_cli import _non_root

    prefix, exe = _non_root()
    for args in (["ls"], ["exec", "t-term-any", "xp", "--", "true"],
                 ["nic", "t-term-any", "xp", "0", "none"], ["save", "t-term-any", "x.yaml"]):
        res = subprocess.run([*prefix, exe, *args], capture_output=True, text=True, timeout=60,
                             env=environment(), cwd="/", check=False)
        assert res.returncode == 2, res
        assert res.stderr.count("\n") == 1 and "needs root" in res.stderr, res.stderr


def test_nic_and_cable_from_a_second_terminal(tmp_path: Path) -> None:
    with lab_run(tmp_path, "t-term-nic") as lab:
        res = wvpclab("nic", lab.name, "xp", "0", "shared")
        assert res.returncode == 0, res.stderr
        assert re.fullmatch(r"xp NIC 0: shared, address 192\.168\.131\.\d+\n", res.stdout)
        addr = wvpclab("exec", lab.name, "xp", "--", "ip", "-4", "-br", "addr", "show", "eth0")
        assert re.search(r"UP\s+192\.168\.131\.\d+/24", addr.stdout), addr.stdout
        again = wvpclab("nic", lab.name, "xp", "0", "shared")
        assert again.returncode == 0 and "already so: nothing changed" in again.stdout
        res = wvpclab("nic", lab.name, "w7", "0", "internal", "lab2")  # a network typed afresh
        assert res.returncode == 0 and "w7 NIC 0: internal lab2" in res.stdout, res.stderr

        res = wvpclab("cable", lab.name, "xp", "1", "off")
        assert (res.returncode, res.stdout) == (0, "xp NIC 1: cable pulled\n"), res.stderr
        carrier = wvpclab("exec", lab.name, "xp", "--", "cat", "/sys/class/net/eth1/carrier")
        assert carrier.stdout == "0\n"
        lab.prompt("nics xp")  # the prompt sees it: the lab's own record changed
        res = wvpclab("cable", lab.name, "xp", "1", "on")
        assert (res.returncode, res.stdout) == (0, "xp NIC 1: cable plugged\n"), res.stderr
        wait_for(lambda: wvpclab("exec", lab.name, "xp", "--", "cat",
                                 "/sys/class/net/eth1/carrier").stdout == "1\n",
                 what="carrier back on xp eth1")
        out = lab.end("nics")
    rows = nics_rows(out)
    assert [r["carrier"] for r in rows if r["nic"] == "xp 1"] == ["no", "yes"], out
    assert [(r["mode"], r["address"][:12]) for r in rows if r["nic"] == "xp 0"] == \
        [("shared", "192.168.131.")] * 2, out
    assert {r["mode"] for r in rows if r["nic"] == "w7 0"} == {"internal lab2"}, out


def nics_rows(out: str) -> list[dict[str, str]]:
    """The rows of the prompt's ``nics`` tables in its output (columns as it writes them)."""
    rows = []
    for line in out.splitlines():
        line = line.removeprefix("wvpclab> ")
        if re.match(r"\S+\s+\d\s+00:03:ff:", line):
            rows.append({"nic": " ".join(line[:15].split()), "mode": line[34:52].strip(),
                         "carrier": line[52:61].strip(), "address": line[61:].strip()})
    return rows


def test_vms_and_nics_come_and_go_from_a_second_terminal(tmp_path: Path) -> None:
    with lab_run(tmp_path, "t-term-vm") as lab:
        res = wvpclab("vm", lab.name, "add", "w10")  # the wizard's: bridged to eth0
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("w10: created on pc with the wizard's NICs\n")
        assert re.search(r"(?m)^w10 NIC 0: bridge eth0, address 192\.168\.77\.\d+$", res.stdout)
        res = wvpclab("vm", lab.name, "add", "w11", "on", "pc", "shared", "internal", "lab")
        assert res.returncode == 0, res.stderr
        assert "w11 NIC 0: shared, address 192.168.131." in res.stdout
        assert "w11 NIC 1: internal lab, address 169.254." in res.stdout
        ping = wvpclab("exec", lab.name, "w11", "--", "ping", "-c", "1", "-W", "2",
                       "192.168.77.80")  # shared: through its NAT to the LAN's server
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert ls_row(lab.name)[2:5] == ["1", "4", "6"]

        res = wvpclab("nic", lab.name, "add", "w11")
        assert (res.returncode, res.stdout) == (0, "w11 NIC 2 added: none\n"), res.stderr
        res = wvpclab("nic", lab.name, "add", "w11", "internal", "lab")
        assert res.returncode == 0 and res.stdout.startswith("w11 NIC 3 added: internal lab")
        res = wvpclab("nic", lab.name, "add", "w11")
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        res = wvpclab("nic", lab.name, "remove", "w11", "1")
        assert (res.returncode, res.stdout) == (0, "w11 NIC 1 removed\n"), res.stderr
        links = wvpclab("exec", lab.name, "w11", "--", "ls", "/sys/class/net")
        assert {"eth0", "eth2", "eth3"} <= set(links.stdout.split())
        assert "eth1" not in links.stdout.split()

        res = wvpclab("vm", lab.name, "remove", "w10")
        assert (res.returncode, res.stdout) == (0, "w10: removed\n"), res.stderr
        gone = wvpclab("exec", lab.name, "w10", "--", "true")
        assert gone.returncode == 2 and "no node 'w10'" in gone.stderr
        assert ls_row(lab.name)[2:5] == ["1", "3", "6"]
        out = lab.end("vms")
    assert "w11          pc pc         0:shared, 2:none, 3:internal lab" in out, out
    assert "w10" not in out


def test_save_from_a_second_terminal_writes_where_the_caller_is(tmp_path: Path) -> None:
    here = tmp_path / "caller"
    here.mkdir()
    with lab_run(tmp_path, "t-term-save") as lab:
        assert wvpclab("cable", lab.name, "xp", "1", "off").returncode == 0
        res = wvpclab("save", lab.name, "saved.yaml", cwd=here)
        assert res.returncode == 0, res.stderr
        assert res.stdout == f"saved lab {lab.name} to {here / 'saved.yaml'}\n"
        res = wvpclab("save", lab.name, "no/such/dir/saved.yaml", cwd=here)
        assert res.returncode != 0 and res.stderr.count("\n") == 1, res.stderr
        lab.end()
    graph = topology.load(here / "saved.yaml")
    assert graph.nodes["xp/1"]["cable"] is False
    assert sorted(n for n, _ in topology.nodes_of(graph, "vm")) == ["w7", "xp"]


def test_a_malformed_request_gets_an_error_and_the_lab_goes_on(tmp_path: Path) -> None:
    with lab_run(tmp_path, "t-term-proto") as lab:
        for data, says in ((b"not json\n", "one line of JSON"),
                           (b"[1, 2]\n", "a JSON object"),
                           (b'{"request": "reboot"}\n', "no request 'reboot'"),
                           (b'{"request": "pid"}\n', '"node"'),
                           (b'{"request": "pid", "node": "nobody"}\n', "no node 'nobody'"),
                           (b'{"request": "command"}\n', "one command line"),
                           (b'{"request": "command", "line": "nic xp 0 none\\nexit"}\n',
                            "one command line"),
                           (b"x" * (control.MAX_REQUEST + 10), "at most"),
                           (b'{"request": "info"', "one line of JSON")):  # cut short
            answer = ask_raw(lab, data)
            assert answer["ok"] is False and answer["status"] == 2, answer
            assert says in answer["error"] and "\n" not in answer["error"], answer
        # a command the channel does not take: one line naming those it does
        answer = ask_raw(lab, b'{"request": "command", "line": "xp ping -c 1 w7"}\n')
        assert answer["ok"] is True and answer["status"] == 2 and answer["out"] == ""
        assert answer["err"].count("\n") == 1 and "nic, cable, vm, save" in answer["err"]
        assert "wvpclab exec" in answer["err"]
        # a client that connects and says nothing, then one that goes away mid-request
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
            idle.connect(str(control.socket_path(rundir.run_dir(lab.prefix))))
            assert ask_raw(lab, b'{"request": "info"}\n')["name"] == lab.name  # not held up
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:
            gone.connect(str(control.socket_path(rundir.run_dir(lab.prefix))))
            gone.sendall(b'{"request": ')
        # the lab goes on: its channel answers, a change is made, its prompt works
        answer = ask_raw(lab, b'{"request": "command", "line": "nics w7"}\n')
        assert answer["ok"] and answer["status"] == 0 and "internal lab" in answer["out"]
        assert wvpclab("cable", lab.name, "w7", "0", "off").returncode == 0
        assert lab.proc.poll() is None
        out = lab.end("nodes")
    assert "dhcp.pc.lab gw.office pc" in out


def test_ls_lists_a_lab_whose_channel_does_not_answer_from_its_record(tmp_path: Path) -> None:
    with lab_run(tmp_path, "t-term-stuck") as lab:
        os.kill(lab.proc.pid, signal.SIGSTOP)  # (a lab busy beyond answering, or stuck)
        try:
            row = ls_row(lab.name)
            assert row[1:5] == [str(lab.proc.pid), "?", "?", "?"], row
            assert "does not answer" in " ".join(row)
            res = wvpclab("exec", lab.name, "xp", "--", "true")
            assert res.returncode == 1 and "does not answer" in res.stderr, res.stderr
        finally:
            os.kill(lab.proc.pid, signal.SIGCONT)
        assert ls_row(lab.name)[2:5] == ["1", "2", "3"]
        lab.end()


#: The lab docs/cli.md's second terminal reaches, as the reader starts it in the first one.
DOC_RUN = "sudo .venv/bin/wvpclab run topologies/default.yaml --name class1"


def second_terminal_block() -> list[tuple[str, list[str]]]:
    """docs/cli.md's ``console terminal-2`` block: each ``$`` line and the output shown under
    it (tests/lab/test_docs.py leaves the block alone: the lab runs in another terminal)."""
    text = (ROOT / "docs" / "cli.md").read_text()
    assert f"`{DOC_RUN}`" in text
    block = text.split("```console terminal-2\n", 1)[1].split("\n```", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def test_the_second_terminal_of_the_manual_prints_what_the_page_shows(tmp_path: Path) -> None:
    """Each line of docs/cli.md's second terminal, run against the lab it names (under a name of
    the suite's: a teacher's class1 may run beside), from a directory of the test's."""
    from tests.lab.test_docs import as_reader, matches, shell_command

    reader, suite = "class1", "t-doc-class1"
    topo = ROOT / "topologies" / "default.yaml"
    steps = second_terminal_block()
    assert len(steps) >= 10
    out, err = tmp_path / "lab.out", tmp_path / "lab.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "wvpclab", "run", str(topo), "--name",
                                 suite], stdin=subprocess.PIPE, stdout=stdout, stderr=stderr,
                                text=True, env=environment())
    try:
        wait_for(lambda: control.socket_path(rundir.run_dir(rundir.prefix_for(suite))).exists()
                 or proc.poll() is not None, timeout=90, what=f"lab {suite} to be up")
        wrong = []
        for command, shown in steps:
            line = shell_command(re.sub(rf"\b{reader}\b", suite, command))
            res = subprocess.run(line, shell=True, cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=300,
                                 env=environment(), check=False)
            printed = as_reader(res.stdout, reader, suite)
            if not matches(shown, printed):
                wrong.append(f"$ {command}\n--- the page shows:\n" + "\n".join(shown)
                             + f"\n--- it printed:\n{printed}")
        assert not wrong, "\n\n".join(wrong)
        assert (tmp_path / f"{suite}.yaml").exists()  # save wrote where the caller was
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(120) == 0, err.read_text()
    finally:
        end_run(proc, suite)
    assert leftovers(rundir.prefix_for(suite)) == []


def test_a_crashed_lab_is_not_listed_but_said_after_the_table(tmp_path: Path) -> None:
    from wvpclab.runtime import cleanup

    with lab_run(tmp_path, "t-term-crash") as lab, lab_run(tmp_path, "t-term-alive") as alive:
        os.kill(lab.proc.pid, signal.SIGKILL)
        lab.proc.wait(10)
        try:
            res = wvpclab("ls")
            assert res.returncode == 0, res.stderr
            names = [line.split()[0] for line in res.stdout.splitlines()[1:]]
            assert alive.name in names and lab.name not in names, res.stdout
            assert (f"wvpclab: lab {lab.name} ({lab.prefix}) is not running any more (its "
                    f"process is gone): `wvpclab clean {lab.name}` removes what it left\n"
                    ) in res.stderr
            gone = wvpclab("exec", lab.name, "xp", "--", "true")
            assert gone.returncode == 2 and f"no lab {lab.name!r} is running" in gone.stderr
            assert "is not running any more" not in gone.stderr  # (ls says it, once)
        finally:
            cleanup.clean(lab.name)
        alive.end()
