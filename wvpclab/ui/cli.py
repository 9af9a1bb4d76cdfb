"""The ``wvpclab`` command: ``check`` a topology (``schema``: its JSON Schema), ``run`` a lab,
``clean`` up after a crashed one; from a second terminal, ``ls`` the running labs, ``exec`` a
command in a node of one, and change it (``nic``, ``cable``, ``vm``, ``save``) through its control
channel (``wvpclab.runtime.control``).

Results go to stdout; progress and errors to stderr. Library errors become exit codes only here.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from wvpclab.model import topology

EXIT_INVALID = 2


def _err(message: str) -> None:
    print(f"wvpclab: {message}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    """Validates each file; prints its summary (stdout) or every error (stderr)."""
    status = 0
    for i, path in enumerate(args.topology):
        try:
            graph = topology.load(path)
        except topology.TopologyError as err:
            print(f"wvpclab: {err}", file=sys.stderr)
            status = EXIT_INVALID
            continue
        if i:
            print()
        print(topology.summary(graph))
        if args.graph_json:
            import json
            with open(args.graph_json, "w", encoding="utf-8") as out:
                json.dump(topology.to_node_link(graph), out, indent=1)
            print(f"wvpclab: wrote the graph of {path} to {args.graph_json}", file=sys.stderr)
    return status


def _load(path: str, name: str | None = None):
    """The validated graph of a topology file, under ``name`` if given (``--name``)."""
    try:
        graph = topology.load(path)
    except topology.TopologyError as err:
        print(f"wvpclab: {err}", file=sys.stderr)
        return None
    if name is not None:
        graph.graph["name"] = name
    return graph


def _lab_name(text: str) -> str:
    if not topology.LAB_NAME_RE.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a lab name (letters, digits, '.', '-', '_'; 64 at most, "
            "a letter or digit first)")
    return text


def _port(text: str) -> int:
    from wvpclab.ui.web.server import port_number

    port = port_number(text)
    if port is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return port


def _on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _run_in_node(lab, spec: str, timeout: float) -> int:
    """Runs one ``NODE COMMAND`` from --cmd; output to stdout/stderr; returns its exit code."""
    name, _, command = spec.strip().partition(" ")
    node = lab.node(name)
    if not command.strip():
        raise ValueError(f"--cmd {spec!r}: give a command after the node name")
    proc = node.popen(["bash", "-c", command], text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"wvpclab: {name}: command timed out after {timeout:.0f} s\n"
        proc.returncode = 124
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.stderr.write(err)
    return proc.returncode


def cmd_schema(args: argparse.Namespace) -> int:
    """Prints the topology document's JSON Schema (or, with --markdown, its reference)."""
    from wvpclab.model import schema, schema_doc

    sys.stdout.write(schema_doc.markdown() if args.markdown else schema.json_schema_text())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Builds the lab, runs --cmd commands, opens the CLI unless --no-cli, tears down."""
    graph = _load(args.topology, args.name)
    if graph is None:
        return EXIT_INVALID
    if args.no_cli and not args.cmd:
        _err("--no-cli needs at least one --cmd 'NODE COMMAND'")
        return EXIT_INVALID
    from wvpclab.errors import LabError, UsageError
    from wvpclab.runtime.lab import Lab

    sock = None
    if args.web is not None:  # the port is had before anything is built
        from wvpclab.ui.web.server import bind

        try:
            sock = bind(args.web or None)
        except LabError as err:
            _err(str(err))
            return EXIT_INVALID
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    status = 0
    try:
        # (the file's text is kept: `save` keeps its comments and order)
        with Lab(graph, quiet=args.quiet, source=args.topology) as lab:
            if not args.quiet:
                from wvpclab.runtime.logs import where

                _err(where(lab.run_dir))
            if sock is not None:
                page = lab.web_page(sock=sock)
                _err(f"the lab's page (WVPC's Settings dialog, live): {page.url}")
            for spec in args.cmd:
                rc = _run_in_node(lab, spec, args.timeout)
                status = status or (1 if rc else 0)
            if not args.no_cli:
                from wvpclab.ui.labcli import LabCLI

                LabCLI(lab)
    except (LabError, ValueError) as err:
        _err(str(err))
        return EXIT_INVALID if isinstance(err, (UsageError, ValueError)) else 1
    finally:
        if sock is not None:
            sock.close()
    return status


def cmd_verify(args: argparse.Namespace) -> int:
    """Builds the lab, probes every pair against the model, prints the table; 1 on any mismatch."""
    graph = _load(args.topology, args.name)
    if graph is None:
        return EXIT_INVALID
    from wvpclab.analysis.verify import format_matrix, matrix
    from wvpclab.errors import LabError
    from wvpclab.runtime.lab import Lab

    signal.signal(signal.SIGTERM, _on_term)
    try:
        with Lab(graph, quiet=args.quiet) as lab:
            rows, wrong = matrix(lab)
    except LabError as err:
        _err(str(err))
        return 1
    sys.stdout.write(format_matrix(rows))
    pairs = sum("from" in r for r in rows)
    names = sum("endpoint" in r for r in rows)
    if wrong:
        for line in wrong:
            _err(f"mismatch: {line}")
        _err(f"{len(wrong)} of {pairs} pairs and {names} DNS servers differ from the model")
        return 1
    if not args.quiet:
        _err(f"all {pairs} pairs and {names} DNS servers behave as the model says (probed in "
             f"{rows[-1]['seconds']} s)")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Prints everything a topology's lab consists of, before building it (no root)."""
    graph = _load(args.topology)
    if graph is None:
        return EXIT_INVALID
    from wvpclab.model.plan import plan
    from wvpclab.runtime import rundir

    sys.stdout.write(plan(graph, rundir.prefix_for(graph.graph["name"])).text())
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    """Draws a topology to an SVG or PNG file (no root)."""
    graph = _load(args.topology)
    if graph is None:
        return EXIT_INVALID
    from wvpclab.analysis.draw import render

    try:
        out = render(graph, args.output)
    except (ValueError, RuntimeError, OSError) as err:
        _err(str(err))
        return EXIT_INVALID if isinstance(err, ValueError) else 1
    print(out)
    return 0


def cmd_servers(args: argparse.Namespace) -> int:
    """Checks every server a topology names; prints per server that it is ready or what to fix."""
    graph = _load(args.topology)
    if graph is None:
        return EXIT_INVALID
    from wvpclab.cluster.remote import preflight_all
    from wvpclab.model.items import Server

    servers = [Server(name, s["host"], s["user"])
               for name, s in sorted(graph.graph.get("servers", {}).items())]
    if not servers:
        print(f"lab {graph.graph['name']} runs on this machine alone: it names no servers")
        return 0
    results = preflight_all(servers)
    for result in results:
        print(result.text())
    bad = [r.server.name for r in results if not r.ok]
    if bad:
        _err(f"{len(bad)} of {len(results)} servers not ready: {', '.join(bad)}")
        return 1
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    """A lab's part on this server, driven by the lab over ssh (JSON lines on stdin/stdout)."""
    from wvpclab.cluster.agent import serve

    return serve()


def cmd_clean(args: argparse.Namespace) -> int:
    """Removes what crashed labs left behind (by name prefix and recorded PIDs)."""
    if os.geteuid() != 0:
        _err("clean needs root: run it with sudo, or `make clean`")
        return 1
    from wvpclab.runtime import cleanup
    report = cleanup.clean(args.lab)
    print("\n".join(report) if report else "nothing to clean")
    return 0


# -- a second terminal -------------------------------------------------------------------------
#: How long ``ls`` waits for each lab's answer, and a change made from a second terminal for its.
INFO_TIMEOUT = 3.0
COMMAND_TIMEOUT = 600.0


def _root(what: str) -> bool:
    """Whether we are root; else one line saying so."""
    if os.geteuid() == 0:
        return True
    _err(f"{what} needs root (a lab's files and control channel are root's): run it with sudo")
    return False


def running_labs(dead: list[str] | None = None) -> list[tuple[str, dict]]:
    """The labs running on this machine, as (prefix, record), by name; a line for each lab whose
    process is gone goes to ``dead`` (``wvpclab clean NAME`` removes what it left)."""
    from wvpclab.runtime import cleanup, rundir

    found = []
    try:
        entries = sorted(os.listdir(rundir.RUN_ROOT))
    except OSError:
        return []
    for entry in entries:
        match = rundir.ENTRY_RE.match(entry)
        if match is None or match.group(2):
            continue
        state = rundir.read_state(entry)
        if state is None:
            continue
        if cleanup.owner_running(state) is None:
            if dead is not None:
                dead.append(f"lab {state.get('name', entry)} ({entry}) is not running any more "
                            f"(its process is gone): `wvpclab clean {state.get('name', '')}` "
                            "removes what it left")
            continue
        found.append((entry, state))
    return sorted(found, key=lambda item: str(item[1].get("name")))


def _find_lab(name: str) -> tuple[str, dict] | None:
    """The running lab called ``name``; else one line naming the running labs."""
    from wvpclab.runtime import rundir

    labs = running_labs()
    for prefix, state in labs:
        if prefix == rundir.prefix_for(name) and state.get("name") == name:
            return prefix, state
    names = ", ".join(str(s.get("name")) for _, s in labs)
    _err(f"no lab {name!r} is running on this machine "
         f"({'running: ' + names if names else 'none is'})")
    return None


def cmd_ls(args: argparse.Namespace) -> int:
    """A table of the labs running on this machine, each asked through its control channel."""
    if not _root("ls"):
        return EXIT_INVALID
    import time

    from wvpclab.runtime import control, rundir

    dead: list[str] = []
    labs = running_labs(dead)
    if not labs:
        print("no lab is running on this machine")
    rows = [("NAME", "PID", "PCS", "VMS", "NICS", "UP SINCE", "PAGE")]
    for prefix, state in labs:
        try:
            info = control.ask(rundir.run_dir(prefix), {"request": "info"}, INFO_TIMEOUT)
        except control.ChannelError:
            info = {}
        if info.get("ok"):
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["up_since"]))
            rows.append((info["name"], str(info["owner_pid"]), str(len(info["pcs"])),
                         str(len(info["vms"])), str(info["nics"]), since, info["page"] or "-"))
        else:  # (starting, stopping, or stuck): what its record says
            rows.append((str(state.get("name")), str(state.get("owner_pid")), "?", "?", "?", "?",
                         "? (its control channel does not answer)"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows if labs else []:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    sys.stdout.flush()
    for line in dead:  # (after the table: a crashed lab is no reason to hide the running ones)
        _err(line)
    return 0


def _ask_lab(name: str, request: dict, timeout: float) -> tuple[dict | None, dict | None]:
    """The lab's record and its answer to ``request``; (None, None) when it has none (said)."""
    from wvpclab.runtime import control, rundir

    found = _find_lab(name)
    if found is None:
        return None, None
    prefix, state = found
    try:
        return state, control.ask(rundir.run_dir(prefix), request, timeout)
    except control.ChannelError as err:
        _err(f"lab {name} does not answer on its control channel ({err})")
        return state, None


def cmd_exec(args: argparse.Namespace) -> int:
    """Runs a command in a node of a running lab, as Mininet's util/m: in the node's namespaces
    (``mnexec -a``) and the lab's cgroup, this process becoming it (its exit code is ours)."""
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        _err("exec: give the command after the node: wvpclab exec LAB NODE -- CMD...")
        return EXIT_INVALID
    if not _root("exec"):
        return EXIT_INVALID
    state, answer = _ask_lab(args.lab, {"request": "pid", "node": args.node}, INFO_TIMEOUT * 3)
    if answer is None:
        return EXIT_INVALID if state is None else 1
    if not answer.get("ok"):
        _err(answer.get("error", "refused"))
        return int(answer.get("status", EXIT_INVALID))
    group = (state or {}).get("cgroup")
    if group:  # the lab's stop ends the command too
        try:
            with open(os.path.join(group, "cgroup.procs"), "w", encoding="ascii") as procs:
                procs.write(str(os.getpid()))
        except OSError as err:
            _err(f"lab {args.lab} is stopping (its cgroup {group}: {err.strerror or err})")
            return 1
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp("mnexec", ["mnexec", "-a", str(answer["pid"]), *argv])
    except OSError as err:
        _err(f"mnexec: {err.strerror or err} (run `make install`)")
        return 1
    return 1  # (never here)


def _lab_command(name: str, line: str) -> int:
    """One command line of the lab's prompt, run by the lab named ``name``: its output, its error
    lines (the prompt's, as wvpclab's) and its status."""
    if not _root(line.split(" ", 1)[0]):
        return EXIT_INVALID
    state, answer = _ask_lab(name, {"request": "command", "line": line}, COMMAND_TIMEOUT)
    if answer is None:
        return EXIT_INVALID if state is None else 1
    if not answer.get("ok"):
        _err(answer.get("error", "refused"))
        return int(answer.get("status", EXIT_INVALID))
    sys.stdout.write(answer.get("out", ""))
    sys.stdout.flush()
    for error in answer.get("err", "").splitlines():
        _err(error.removeprefix("*** "))
    return int(answer.get("status", 1))


def cmd_lab_command(args: argparse.Namespace) -> int:
    """``nic``, ``cable``, ``vm``, ``save``: the prompt's command, run by the lab LAB."""
    words = list(args.words)
    if args.command == "save":
        words = [os.path.abspath(w) for w in words]  # the caller's directory, not the lab's
    return _lab_command(args.lab, " ".join([args.command, *words]))


class _Version(argparse.Action):
    """``--version``: the version and a fingerprint of the code (what a server must match)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from wvpclab.cluster.remote import code_version

        print(f"wvpclab {code_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wvpclab",
        description="Windows Virtual PC networking labs on Mininet and Open vSwitch.",
    )
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="print the version (and a fingerprint of the code) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = sub.add_parser("check",
                           help="validate topology files and print their summary (no root)")
    check.add_argument("topology", nargs="+", help="a .yaml/.yml, node-link .json or .py file")
    check.add_argument("--graph-json", metavar="FILE",
                       help="also write the validated graph as node-link JSON to FILE")
    check.set_defaults(func=cmd_check)
    schema = sub.add_parser("schema", help="print the topology files' JSON Schema (no root)",
                            description="Prints the JSON Schema of topology files (what editors "
                                        "use to complete and check them; the examples name "
                                        "wvpclab/model/topology.schema.json, a copy of it).")
    schema.add_argument("--markdown", action="store_true",
                        help="print the topology-file reference (docs/topology.md) instead")
    schema.set_defaults(func=cmd_schema)
    run = sub.add_parser("run", help="bring up a lab and open the CLI (root)",
                         description="Builds the lab, runs each --cmd, opens the Mininet CLI "
                                     "(which reads commands from stdin when it is not a terminal) "
                                     "unless --no-cli, and tears everything down on exit.")
    run.add_argument("topology", help="a .yaml/.yml, node-link .json or .py file")
    run.add_argument("--cmd", action="append", default=[], metavar="'NODE COMMAND'",
                     help="run COMMAND in NODE and print its output (repeatable)")
    run.add_argument("--no-cli", action="store_true", help="do not open the CLI")
    run.add_argument("--timeout", type=float, default=120.0,
                     help="seconds a --cmd may take (default 120)")
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")
    run.add_argument("--name", type=_lab_name, metavar="NAME",
                     help="run the lab under this name, not the file's (a name runs once on "
                          "a machine: students sharing a server each give theirs)")
    run.add_argument("--web", nargs="?", const=0, type=_port, metavar="PORT",
                     help="serve the lab's web page on 127.0.0.1:PORT (default 8470 or the "
                          "next free port) and print its address, with the run's token")
    run.set_defaults(func=cmd_run)
    verify = sub.add_parser("verify", help="probe what reaches what against the model (root)",
                            description="Builds the lab, computes from the model whether each "
                                        "endpoint (VM NIC, PC adapter, LAN server) reaches each "
                                        "other one and why, pings every pair, prints the table, "
                                        "and exits 1 naming every pair that differs.")
    verify.add_argument("topology")
    verify.add_argument("--quiet", action="store_true", help="no progress on stderr")
    verify.add_argument("--name", type=_lab_name, metavar="NAME",
                        help="run the lab under this name, not the file's (a name runs once "
                             "on a machine: students sharing a server each give theirs)")
    verify.set_defaults(func=cmd_verify)
    plan = sub.add_parser("plan", help="print everything a topology's lab consists of (no root)",
                          description="Prints the lab's plan: nodes, veths, switches and their "
                                      "ports with roles and MACs, addresses, routes, shapers, "
                                      "firewalls, NAT engines, DHCP servers and clients, services. "
                                      "Nothing is built.")
    plan.add_argument("topology", help="a .yaml/.yml, node-link .json or .py file")
    plan.set_defaults(func=cmd_plan)
    draw = sub.add_parser("draw", help="draw a topology to an SVG or PNG file (no root)")
    draw.add_argument("topology")
    draw.add_argument("-o", "--output", required=True, metavar="FILE",
                      help="where to write: .svg or .png")
    draw.set_defaults(func=cmd_draw)
    servers = sub.add_parser("servers", help="check the servers a topology spreads over (root)",
                             description="Reaches each server the topology's `servers` section "
                                         "names over ssh and checks what a lab needs there: "
                                         "root, mnexec, Open vSwitch with userspace TSO, "
                                         "/dev/net/tun, sshd allowing Ethernet tunnels, and the "
                                         "same wvpclab and Open vSwitch as this machine. Prints "
                                         "what to fix; exits 1 if a server is not ready.")
    servers.add_argument("topology", help="a .yaml/.yml, node-link .json or .py file")
    servers.set_defaults(func=cmd_servers)
    agent = sub.add_parser("agent", help="a lab's part on this server (the lab runs it over ssh)",
                           description="Run by a lab spread over several servers, on each of "
                                       "them, over ssh: it speaks JSON lines on stdin and "
                                       "stdout. Not for use by hand.")
    agent.set_defaults(func=cmd_agent)
    clean = sub.add_parser("clean", help="remove what a crashed lab left behind (root)")
    clean.add_argument("lab", nargs="?", metavar="NAME",
                       help="only this lab's leftovers (the name in its topology file)")
    clean.set_defaults(func=cmd_clean)
    _second_terminal(sub)
    return parser


def _second_terminal(sub: argparse._SubParsersAction) -> None:
    """``ls``, ``exec``, ``nic``, ``cable``, ``vm``, ``save``: a running lab, from another
    terminal."""
    ls = sub.add_parser("ls", help="list the labs running on this machine (root)",
                        description="Lists the labs running on this machine: name, owner PID, "
                                    "PCs, VMs, NICs, up since, the web page's address.")
    ls.set_defaults(func=cmd_ls)
    ex = sub.add_parser("exec", help="run a command in a node of a running lab (root)",
                        description="Runs CMD in NODE of the running lab LAB (its network and "
                                    "mount namespaces, its cgroup), with this terminal's input "
                                    "and output; exits with CMD's exit code.",
                        usage="wvpclab exec LAB NODE -- CMD...")
    ex.add_argument("lab", metavar="LAB", help="the lab's name")
    ex.add_argument("node", metavar="NODE", help="a node of the lab (VM, PC, server, ...)")
    ex.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD",
                    help="the command and its arguments (after --)")
    ex.set_defaults(func=cmd_exec)
    forms = {
        "nic": ("move, add or remove a NIC of a running lab's VM (root)",
                "wvpclab nic LAB VM N MODE | nic LAB add VM [MODE] | nic LAB remove VM N",
                "MODE: none, shared, bridge ADAPTER, internal NAME."),
        "cable": ("plug or pull a NIC's cable in a running lab (root)",
                  "wvpclab cable LAB VM N on|off", ""),
        "vm": ("create or remove a VM in a running lab (root)",
               "wvpclab vm LAB add NAME [on PC] [NIC...] | vm LAB remove NAME",
               ("Each NIC a mode (none, shared, bridge ADAPTER, internal NAME); none given: the "
                "wizard's (bridged to the PC's first wired and first wireless adapter).")),
        "save": ("write a running lab as a topology file (root)", "wvpclab save LAB FILE",
                 "FILE is read from this terminal's working directory."),
    }
    for word, (summary, usage, more) in forms.items():
        parser = sub.add_parser(word, help=summary, usage=usage,
                                description=f"As `{word}` at the lab's prompt, made by the "
                                            f"running lab LAB (its control channel). {more}")
        parser.add_argument("lab", metavar="LAB", help="the lab's name")
        parser.add_argument("words", nargs=argparse.REMAINDER, metavar="...",
                            help="as at the prompt")
        parser.set_defaults(func=cmd_lab_command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `wvpclab check lab.yaml | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
