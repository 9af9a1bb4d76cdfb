"""The Mininet CLI, extended for a wvpclab lab: node command results on stdout, piped input works.

Mininet's own CLI forwards standard input into a running node command (fine on a terminal, but with
commands piped in it feeds the next commands to the node) and prints results through its logger on
stderr. This subclass fixes both; lab-specific commands are added here.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from mininet.cli import CLI
from mininet.log import LEVELS, lg

from wvpclab.model import modes, topology


class _SplitHandler(logging.StreamHandler):
    """Mininet's ``output()`` (results) to stdout; its info, warnings and errors to stderr."""

    terminator = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout if record.levelno == LEVELS["output"] else sys.stderr
        super().emit(record)


def route_mininet_output() -> None:
    """Installs the split handler on Mininet's logger (once)."""
    if not any(isinstance(h, _SplitHandler) for h in lg.handlers):
        level = lg.handlers[0].level if lg.handlers else LEVELS["output"]
        for handler in list(lg.handlers):
            lg.removeHandler(handler)
        handler = _SplitHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.setLevel(level)
        lg.addHandler(handler)


class LabCLI(CLI):
    """``wvpclab> `` prompt; every Mininet command, plus the lab's."""

    prompt = "wvpclab> "

    def __init__(self, lab: Any, stdin: TextIO = sys.stdin, **kwargs: Any) -> None:
        self.lab = lab
        route_mininet_output()
        super().__init__(lab.net, stdin=stdin, **kwargs)

    def run(self) -> None:
        """Mininet's loop on a terminal (Ctrl-C interrupts the command, the prompt comes back);
        with commands piped in there is no prompt to come back to, so Ctrl-C ends the session
        (and the lab with it)."""
        if self.isatty():
            super().run()
            return
        try:
            self.cmdloop()
        except KeyboardInterrupt:
            sys.stderr.write("wvpclab: interrupted: ending the lab\n")

    def waitForNode(self, node: Any) -> None:
        """Prints a node command's output (stdout) until it finishes; forwards keys only on a
        tty."""
        if self.isatty():
            super().waitForNode(node)
            return
        while node.waiting:
            try:
                data = node.monitor(timeoutms=200)
            except KeyboardInterrupt:
                node.sendInt()
                continue
            if data:
                sys.stdout.write(data)
                sys.stdout.flush()

    # -- Mininet's habits, the lab's way ------------------------------------------------------
    def parseline(self, line: str) -> tuple[str | None, str | None, str]:
        """A line's first word is a node's name whatever characters it has (``gw.office``,
        ``nat.xp.0``, ``WinXP-Mode``); otherwise the command word, as ``cmd`` reads it. A node
        named as a command of the CLI's (a server ``web``) runs what follows its name; the
        command alone, or ``web PORT``, is the CLI's (``onecmd``)."""
        text = line.strip()
        first, _, rest = text.partition(" ")
        if first and self.mn is not None and first in self.mn:
            return first, rest.strip(), text
        return super().parseline(line)

    def onecmd(self, line: str) -> Any:
        """Runs one line; any error is one line on stderr and the prompt comes back (only exit,
        quit and the end of input end the lab; Ctrl-C interrupts the command, not the lab)."""
        try:
            first, rest, _ = self.parseline(line)
            if first and rest and hasattr(self, f"do_{first}") and first in self.mn \
                    and not (first == "web" and rest.isdigit()):
                self.default(line)  # a server called web: `web curl ...` runs in it
                return None
            return super().onecmd(line)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001 - nothing typed at the prompt ends the lab
            word = line.strip().split(" ", 1)[0] if line.strip() else ""
            self._fail(f"{word}: {err}" if word else str(err))
            return None

    def default(self, line: str) -> None:
        """``NODE COMMAND``: runs COMMAND in NODE; any other node's name in it stands for that
        node's address as NODE would reach it (on a network they share, else its main address)."""
        from wvpclab.analysis.reach import Resolver

        first, args, line = self.parseline(line)
        if first not in self.mn:
            self._fail(f"Unknown command: {line}")
            return
        if not args:
            self._fail(f"Please enter a command for node: {first} <cmd>")
            return
        words = Resolver(self.lab).substitute(first, args.split(" "))
        node = self.mn[first]
        node.sendCmd(" ".join(words))
        self.waitForNode(node)

    def do_x(self, line: str) -> None:
        """Open an X11 program in a node (needs a display).
        Usage: x NODE [COMMAND]"""
        if self._display():
            super().do_x(line)

    def do_xterm(self, line: str, term: str = "xterm") -> None:
        """Open an xterm in each node (needs a display).
        Usage: xterm NODE..."""
        if self._display(term):
            super().do_xterm(line, term)

    def do_gterm(self, line: str) -> None:
        """Open a gnome-terminal in each node (needs a display).
        Usage: gterm NODE..."""
        self.do_xterm(line, term="gterm")

    def _display(self, what: str = "x") -> bool:
        import os

        if os.environ.get("DISPLAY"):
            return True
        self._fail(f"{what}: no X display here (DISPLAY is not set); run commands in a node "
                   "with NODE COMMAND instead")
        return False

    def do_source(self, line: str) -> None:
        """Read commands from a file.
        Usage: source FILE"""
        import os

        args = line.split()
        if len(args) != 1:
            self._fail("Usage: source FILE")
            return
        if not os.path.isfile(args[0]):
            self._fail(f"source: {args[0]} is not a readable file")
            return
        super().do_source(line)

    def _fail(self, message: str) -> None:
        """One line of error on stderr; the CLI goes on."""
        sys.stderr.write(f"*** {message}\n")

    def do_leases(self, line: str) -> None:
        """Show DHCP lease tables: every network with a responder, or one.
        Usage: leases [PC/NETWORK]"""
        args = line.split()
        if len(args) > 1:
            self._fail("Usage: leases [PC/NETWORK]")
            return
        try:
            tables = self.lab.leases(args[0] if args else None)
        except Exception as err:  # noqa: BLE001 - LabError: a bad argument, reported in one line
            self._fail(str(err))
            return
        if not tables:
            sys.stdout.write("no DHCP responders in this lab\n")
        for key, rows in tables.items():
            sys.stdout.write(format_leases(key, rows))
        sys.stdout.flush()

    def do_rules(self, line: str) -> None:
        """Show a filter switch's (or internal network's) rules in words.
        Usage: rules PC/ADAPTER | PC/NETWORK"""
        args = line.split()
        if len(args) != 1:
            self._fail("Usage: rules PC/ADAPTER | PC/NETWORK")
            return
        try:
            lines = self.lab.filter_rules(args[0])
        except Exception as err:  # noqa: BLE001 - LabError: a bad argument, reported in one line
            self._fail(str(err))
            return
        sys.stdout.write(f"{args[0]}:\n" + "".join(f"  {l}\n" for l in lines))
        sys.stdout.flush()

    def do_nat(self, line: str) -> None:
        """Show the NAT and firewall rules of a shared NIC: its NAT engine's and its PC's.
        Usage: nat VM N"""
        args = line.split()
        if len(args) != 2 or not args[1].isdigit():
            self._fail("Usage: nat VM N")
            return
        try:
            tables = self.lab.nat_rules(args[0], int(args[1]))
        except Exception as err:  # noqa: BLE001 - LabError: a bad argument, reported in one line
            self._fail(str(err))
            return
        for who, rules in tables.items():
            sys.stdout.write(f"# {who}\n{rules}")
        sys.stdout.flush()

    def _vm_nic(self, args: list[str], usage: str) -> tuple[str, int] | None:
        if len(args) < 2 or not args[1].isdigit():
            self._fail(f"Usage: {usage}")
            return None
        return args[0], int(args[1])

    def do_vms(self, line: str) -> None:
        """List the VMs: PC, DHCP client and each NIC's mode.
        Usage: vms"""
        for key, vm in topology.nodes_of(self.lab.graph, "vm"):
            nics = ", ".join(f"{n['index']}:{modes.label(n)}"
                             for n in topology.nics_of(self.lab.graph, key))
            sys.stdout.write(f"{key:<12} pc {vm['pc']:<10} {nics or 'no NICs'}\n")
        sys.stdout.flush()

    def do_nics(self, line: str) -> None:
        """Show NICs: number, MAC, mode, carrier and address, of one VM or all.
        Usage: nics [VM]"""
        args = line.split()
        if len(args) > 1:
            self._fail("Usage: nics [VM]")
            return
        vms = [k for k, _ in topology.nodes_of(self.lab.graph, "vm")]
        if args:
            if args[0] not in vms:
                self._fail(f"no VM {args[0]!r} (VMs: {', '.join(vms)})")
                return
            vms = args
        sys.stdout.write(f"{'VM':<10}{'NIC':<5}{'MAC':<19}{'MODE':<18}{'CARRIER':<9}ADDRESS\n")
        for vm in vms:
            for nic in topology.nics_of(self.lab.graph, vm):
                intf = self.lab.vm(vm).nic(nic["index"])
                addr = intf.updateIP()
                prefix = f"/{intf.prefixLen}" if addr else ""
                sys.stdout.write(f"{vm:<10}{nic['index']:<5}{nic['mac']:<19}"
                                 f"{modes.label(nic):<18}"
                                 f"{'yes' if intf.carrier() else 'no':<9}{addr or '-'}{prefix}\n")
        sys.stdout.flush()

    def do_nic(self, line: str) -> None:
        """Move a NIC to another network while the VM runs (WVPC's Settings dialog).
        Usage: nic VM N MODE (``help nic`` names the modes)"""
        usage = f"nic VM N {modes.usage()}"
        args = line.split()
        where = self._vm_nic(args, usage)
        if where is None:
            return
        if len(args) not in (3, 4):
            self._fail(f"Usage: {usage}")
            return
        try:
            changed = self.lab.set_nic(where[0], where[1], " ".join(args[2:]))
        except KeyboardInterrupt:
            self._nic_after_interrupt(*where)
            raise
        except Exception as err:  # noqa: BLE001 - LabError: a bad argument, one line
            self._fail(str(err))
            return
        nic = self.lab.graph.nodes[f"{where[0]}/{where[1]}"]
        lease = self.lab.clients.get(where)
        addr = (lease.lease() or {}).get("ip") if lease else nic["ip"]
        sys.stdout.write(f"{where[0]} NIC {where[1]}: {modes.label(nic)}"
                         f"{', address ' + addr if addr else ''}"
                         f"{'' if changed else ' (already so: nothing changed)'}\n")
        sys.stdout.flush()

    def help_nic(self) -> None:
        """``help nic``: the modes as the registry has them (``none|shared|bridge ADAPTER|...``)."""
        first = (self.do_nic.__doc__ or "").splitlines()[0]
        self.stdout.write(f"{first}\n        Usage: nic VM N {modes.usage()}\n")

    def _nic_after_interrupt(self, vm: str, index: int) -> None:
        """Ctrl-C during ``nic`` or ``cable``: a change is made whole or not at all (the signal
        waits for it), so the NIC is as one of the two; say which."""
        nic = self.lab.graph.nodes[f"{vm}/{index}"]
        sys.stdout.write(f"{vm} NIC {index}: {modes.label(nic)}, cable "
                         f"{'plugged' if nic.get('cable', True) else 'pulled'} (Ctrl-C: a change "
                         "is made whole or not at all; this is the NIC now)\n")
        sys.stdout.flush()

    def do_cable(self, line: str) -> None:
        """Plug or pull a NIC's cable (the guest sees carrier come and go).
        Usage: cable VM N on|off"""
        args = line.split()
        where = self._vm_nic(args, "cable VM N on|off")
        if where is None:
            return
        if len(args) != 3 or args[2] not in ("on", "off"):
            self._fail("Usage: cable VM N on|off")
            return
        try:
            changed = self.lab.cable(where[0], where[1], args[2] == "on")
        except KeyboardInterrupt:
            self._nic_after_interrupt(*where)
            raise
        except Exception as err:  # noqa: BLE001 - LabError: a bad argument, one line
            self._fail(str(err))
            return
        state = "plugged" if args[2] == "on" else "pulled"
        note = "" if changed else " already (nothing changed)"
        sys.stdout.write(f"{where[0]} NIC {where[1]}: cable {state}{note}\n")
        sys.stdout.flush()

    def do_capture(self, line: str) -> None:
        """Capture a NIC to a pcap file (Wireshark opens it) until `capture stop`.
        Usage: capture VM N [FILE] | capture stop"""
        args = line.split()
        if args == ["stop"]:
            done = self.lab.stop_captures()
            if not done:
                sys.stdout.write("no capture running\n")
            for nic, path in done:
                sys.stdout.write(f"{nic}: {path}\n")
            sys.stdout.flush()
            return
        where = self._vm_nic(args, "capture VM N [FILE] | capture stop")
        if where is None or len(args) > 3:
            if where is not None:
                self._fail("Usage: capture VM N [FILE] | capture stop")
            return
        try:
            path = self.lab.capture(where[0], where[1], args[2] if len(args) == 3 else None)
        except Exception as err:  # noqa: BLE001 - LabError: a bad argument, one line
            self._fail(str(err))
            return
        sys.stdout.write(f"capturing {where[0]} eth{where[1]} to {path} (capture stop ends it)\n")
        sys.stdout.flush()

    def do_matrix(self, line: str) -> None:
        """Probe what reaches what in the running lab against the model, with the reason.
        Usage: matrix"""
        from wvpclab.analysis.verify import format_matrix, matrix

        if line.strip():
            self._fail("Usage: matrix")
            return
        rows, wrong = matrix(self.lab)
        sys.stdout.write(format_matrix(rows))
        sys.stdout.flush()
        for w in wrong:
            sys.stderr.write(f"*** mismatch: {w}\n")

    def do_draw(self, line: str) -> None:
        """Draw the running lab, with every NIC's current mode, to an SVG or PNG file.
        Usage: draw [FILE]   (default: ./LAB.svg)"""
        from pathlib import Path

        from wvpclab.analysis.draw import render

        args = line.split()
        if len(args) > 1:
            self._fail("Usage: draw [FILE]")
            return
        try:
            out = render(self.lab.graph, args[0] if args else Path.cwd() / f"{self.lab.name}.svg")
        except (ValueError, RuntimeError, OSError) as err:
            self._fail(str(err))
            return
        sys.stdout.write(f"drew {out}\n")
        sys.stdout.flush()

    def do_web(self, line: str) -> None:
        """Serve the lab's web page (WVPC's Settings dialog, the lab drawn live) on 127.0.0.1 and
        print its address with the run's token (served already: print its address again).
        Usage: web [PORT]"""
        from wvpclab.ui.web.server import port_number

        args = line.split()
        port = port_number(args[0]) if len(args) == 1 else None
        if len(args) > 1 or (args and port is None):
            self._fail("Usage: web [PORT]")
            return
        page = self.lab.web
        if page is not None and port is not None and port != page.port:
            self._fail(f"web: the page is already served on port {page.port}: {page.url}")
            return
        try:
            page = self.lab.web_page(port)
        except Exception as err:  # noqa: BLE001 - LabError: the port is taken, one line
            self._fail(str(err))
            return
        sys.stdout.write(f"the lab's page: {page.url}\n")
        sys.stdout.flush()

    def do_EOF(self, line: str) -> str:
        """Exit (end of input)."""
        if self.isatty():
            sys.stdout.write("\n")
        return "exited"


def format_leases(key: str, rows: list[dict[str, Any]]) -> str:
    """A lease table for people: address, MAC, state, seconds left, hostname."""
    lines = [f"{key}: {len(rows)} lease{'s' if len(rows) != 1 else ''}"]
    if rows:
        lines.append(f"  {'ADDRESS':<16}{'MAC':<19}{'STATE':<10}{'LEFT':>7}  HOSTNAME")
    for r in rows:
        lines.append(f"  {r['ip']:<16}{r['mac']:<19}{r['state']:<10}{r['remaining']:>6}s  "
                     f"{r.get('hostname') or '-'}")
    return "\n".join(lines) + "\n"
