"""What a lab leaves on the machine, and removing it: names by prefix, processes by their group.

A lab's names and files follow its prefix (``wvpclab.runtime.rundir``), and it runs its processes
in a cgroup of its own (``wvpclab.runtime.cgroups``).
Everything of a lab is found from its prefix and its record, and only a lab whose owner process is
gone is ever cleaned: a running lab is its own stop's alone. Nothing else is ever touched (never
``mn -c``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wvpclab.errors import CommandError
from wvpclab.runtime import cgroups
from wvpclab.runtime.ovs import vsctl
from wvpclab.runtime.procs import cmdline, process_alive
from wvpclab.runtime.rundir import (
    ENTRY_RE,
    MAKING_RE,
    NAME_RE,
    RUN_ROOT,
    dns_dir,
    openflow_socket,
    prefix_for,
    read_state,
    run_dir,
)


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def start_ticks(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pids_in_netns(inodes: Iterable[int], since: int | None = None) -> list[int]:
    """Every process whose network namespace is one of ``inodes`` (never the root namespace's) and,
    with ``since``, that started no earlier than that (a namespace inode freed and reused by someone
    else's namespace later holds no process older than the lab)."""
    wanted = set(inodes)
    root = netns_inode(1)
    wanted.discard(root)  # type: ignore[arg-type]
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ino = netns_inode(int(entry))
            if ino is not None and ino in wanted:
                started = start_ticks(int(entry))
                if since is None or (started is not None and started >= since):
                    found.append(int(entry))
    return found


def kill_pids(pids: Iterable[int]) -> int:
    count = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            count += 1
        except ProcessLookupError:
            pass
    return count


def kill_namespaces(shell_pids: Iterable[int]) -> None:
    """Ends every process in the namespaces of these node shells (the shells included): with the
    last process gone, the namespace and its interfaces go too. Only PIDs that are Mininet node
    shells are trusted to name a namespace."""
    inodes = []
    for pid in shell_pids:
        if "mininet:" in cmdline(pid):
            ino = netns_inode(pid)
            if ino is not None:
                inodes.append(ino)
    if inodes:
        kill_pids(pids_in_netns(inodes))


def lab_bridges(prefix: str | None = None) -> list[str]:
    """OVS bridges named by a lab (by one lab's prefix, or any lab's)."""
    try:
        names = vsctl("list-br").split()
    except (CommandError, FileNotFoundError, subprocess.TimeoutExpired):
        return []
    return [n for n in names if (n.startswith(prefix + "-") if prefix else NAME_RE.match(n))]


def lab_links(prefix: str | None = None) -> list[str]:
    """Root-namespace interfaces named by a lab."""
    out = []
    for name in os.listdir("/sys/class/net"):
        if (name.startswith(prefix + "-") if prefix else NAME_RE.match(name)):
            out.append(name)
    return out


def remove_bridges_and_links(prefix: str | None) -> None:
    bridges = lab_bridges(prefix)
    if bridges:
        args: list[str] = []
        for br in bridges:
            args += ["--", "--if-exists", "del-br", br]
        vsctl(*args[1:], check=False)
    links = lab_links(prefix)
    if links:
        # best effort: with -force, ip goes on past a link that is already gone
        subprocess.run(["ip", "-force", "-batch", "-"], check=False,
                       input="".join(f"link del {n}\n" for n in links),
                       capture_output=True, text=True, timeout=60)


def own_namespace(prefix: str, state: dict[str, Any], inode: int) -> list[int]:
    """The processes in namespace ``inode`` if it is still this lab's (see ``clean_prefix``)."""
    pids = pids_in_netns([inode], state.get("owner_start"))
    mark = f"{run_dir(prefix)}/"
    shells = {f"mininet:{name}" for name in state.get("nodes", [])}
    for pid in pids:
        line = cmdline(pid)
        if mark in line or shells.intersection(line.split()):
            return pids
    return []


def owner_running(state: dict[str, Any] | None) -> int | None:
    """The PID of the process that runs the lab of ``state``, if that process still does (a PID
    reused by another process since does not count)."""
    owner = (state or {}).get("owner_pid")
    if not owner or not process_alive(int(owner)):
        return None
    started = (state or {}).get("owner_start")
    if started is not None and start_ticks(int(owner)) != started:
        return None
    return int(owner)


def clean_prefix(prefix: str, state: dict[str, Any] | None) -> list[str]:
    """Removes one lab's leftovers (a lab whose owner is gone); returns what was done, for the
    user."""
    done = []
    # Its group first: every process the lab started, restarted ones included, is in it.
    groups = cgroups.lab_groups(prefix)
    ended = sum(cgroups.Group(path).kill() for path in groups)
    if ended:
        done.append(f"ended {ended} processes of the lab (its cgroup)")
    if state:
        # What ran outside a group (a machine without cgroup2, or a process a user moved): the
        # node shells die with the lab's terminal; what was started inside the nodes may not, and
        # keeps their namespaces: find it by the namespaces the lab recorded. A namespace inode
        # is reused once freed, so a namespace counts as this lab's only while it still holds a
        # process that provably is: one whose command line names this lab's run directory (its
        # DHCP servers and clients) or a node shell of one of its nodes.
        pids = [p for ino in state.get("netns", []) for p in own_namespace(prefix, state, int(ino))]
        if pids:
            kill_pids(pids)
            done.append(f"ended {len(pids)} processes left in the lab's namespaces")
        ctl = state.get("controller_pid")
        if ctl and f"--control {run_dir(prefix)}/" in cmdline(int(ctl)):
            os.kill(int(ctl), signal.SIGKILL)
            done.append(f"ended the controller (pid {ctl})")
        done += clean_servers(state)
    bridges, links = lab_bridges(prefix), lab_links(prefix)
    if bridges or links:
        remove_bridges_and_links(prefix)
        done.append(f"removed {len(bridges)} bridges and {len(links)} interfaces")
    for path in groups:
        if not cgroups.Group(path).remove():
            done.append(f"could not remove its cgroup {path} (still busy)")
    files = [p for p in (run_dir(prefix), dns_dir(prefix), *abandoned(prefix)) if p.exists()]
    for path in files:
        shutil.rmtree(path, ignore_errors=True)
    if files:
        done.append(f"removed its files ({', '.join(str(p) for p in files)})")
    openflow_socket(prefix).unlink(missing_ok=True)
    return done


def abandoned(prefix: str | None = None) -> list[Path]:
    """Run directories a lab's process began and never finished (it died making them)."""
    found = []
    for name in os.listdir(RUN_ROOT) if RUN_ROOT.is_dir() else []:
        m = MAKING_RE.match(name)
        if m and (prefix is None or m.group(1) == prefix) and not process_alive(int(m.group(2))):
            found.append(RUN_ROOT / name)
    return found


def clean_servers(state: dict[str, Any]) -> list[str]:
    """A lab spread over servers: its ssh sessions here end (each server's agent then tears its
    part down), and ``wvpclab clean NAME`` runs on every server for whatever is left there."""
    servers = state.get("servers") or {}
    if not servers:
        return []
    done = []
    hosts = [f" {s['host']} " for s in servers.values()]
    ended = [pid for pid in state.get("ssh", []) if cmdline(int(pid)).startswith("ssh ")
             and any(h in cmdline(int(pid)) for h in hosts)]
    if ended:
        kill_pids(ended)
        done.append(f"ended {len(ended)} ssh sessions to the lab's servers")
    from wvpclab.cluster.remote import Remote, ServerError
    from wvpclab.model.items import Server

    name = state.get("name", "")
    for server, s in sorted(servers.items()):
        remote = Remote(Server(server, s["host"], s["user"]))
        try:
            # the agent may still be tearing down after its session ended: give it that time
            res = remote.run(f"for i in $(seq 100); do wvpclab clean {name} | grep -q 'is "
                             f"running' || break; sleep 0.2; done; wvpclab clean {name}",
                             timeout=120, check=False)
            lines = [line for line in res.stdout.splitlines() if line.strip()] or \
                [res.stderr.strip() or "nothing to clean"]
            done += [f"server {server}: {line}" for line in lines]
        except ServerError as err:
            done.append(f"{err}: clean it there (`wvpclab clean {name}` on {s['host']})")
    return done


def labs_present(only: str | None = None) -> list[str]:
    """The prefixes of labs that have files, a cgroup, bridges or interfaces on this machine (only
    ``only``'s, if given)."""
    found = set()
    if RUN_ROOT.is_dir():
        found |= {m.group(1) for m in map(ENTRY_RE.match, os.listdir(RUN_ROOT)) if m}
    found |= {MAKING_RE.match(p.name).group(1) for p in abandoned()}  # type: ignore[union-attr]
    found |= {p.name.split("@")[0] for p in cgroups.lab_groups()}
    found |= {m.group(0)[:-1] for m in map(NAME_RE.match, lab_bridges() + lab_links()) if m}
    return sorted(p for p in found if only is None or p == only)


def stale() -> list[str]:
    """Prefixes that ``clean`` would act on: labs whose owner process is gone and that left
    something (files, a cgroup, bridges or interfaces); empty when nothing is left behind."""
    return [p for p in labs_present() if not owner_running(read_state(p))]


def clean(name: str | None = None) -> list[str]:
    """Removes what crashed labs left: for each lab whose owner process is gone (only lab
    ``name``'s, if given), its processes, bridges, interfaces and files. A lab whose owner runs is
    never touched, nor anything of it: only its own stop removes it. Returns one line per thing
    done (or left alone)."""
    report = []
    for prefix in labs_present(prefix_for(name) if name else None):
        state = read_state(prefix)
        owner = owner_running(state)
        if owner:
            report.append(f"{prefix}: lab {(state or {}).get('name')} is running (pid {owner}); "
                          "left alone: only its own stop removes it")
            continue
        for line in clean_prefix(prefix, state):
            report.append(f"{prefix}: {line}")
    return report
