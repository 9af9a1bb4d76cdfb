"""The Mininet CLI, extended for a wvpclab lab: node command results on stdout, piped input works.

Mininet's own CLI forwards standard input into a running node command (fine on a terminal, but with
commands piped in it feeds the next commands to the node) and prints results through its logger on
stderr. This subclass fixes both. The lab's own commands (``nic``, ``vm``, ``save``...) are
``LabCommands``: they write to streams they are given and leave an exit status, so that the lab's
control channel (``wvpclab.runtime.control``) runs a second terminal's command lines through the
same code, without a terminal, and answers with the same one-line errors.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TextIO

from mininet.cli import CLI
from mininet.log import LEVELS, lg

from wvpclab.errors import UsageError
from wvpclab.model import modes, topology

#: Exit statuses of a command (``LabCommands.status``): done, a failure, a usage error.
DONE, FAILED, USAGE = 0, 1, 2


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


#: What ``LabCommands._attempt`` returns for a change the lab refused (its error said).
REFUSED = object()


class LabCommands:
    """The lab's own commands, apart from any terminal: each writes its results to ``out`` and
    its errors, one line each, to ``err`` (the terminal's by default), and leaves ``status``
    (``DONE``, ``FAILED`` or ``USAGE``). ``LabCLI`` is the prompt's; ``LabCommands(lab, out,
    err).run_line(line)`` runs one line of the control channel's (``REMOTE`` only)."""

    #: What a second terminal may run (``wvpclab.runtime.control``): the commands that change the
    #: lab and those that show it; a node's own command is ``wvpclab exec``'s.
    REMOTE = ("nic", "cable", "vm", "save", "nics", "vms", "leases", "nodes")

    lab: Any
    _out: TextIO | None = None
    _err: TextIO | None = None
    status = DONE

    def __init__(self, lab: Any, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.lab = lab
        self._out, self._err = out, err

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    @property
    def err(self) -> TextIO:
        return self._err or sys.stderr

    def run_line(self, line: str) -> int:
        """Runs one command line of ``REMOTE``; returns its status (anything else: ``USAGE``,
        with one line naming what is accepted)."""
        self.status = DONE
        word, _, rest = line.strip().partition(" ")
        if word not in self.REMOTE:
            self._fail(f"{word or 'an empty line'}: not a command of the control channel (it "
                       f"takes {', '.join(self.REMOTE)}; a node's command: wvpclab exec LAB NODE "
                       "-- CMD)")
            return self.status
        try:
            getattr(self, f"do_{word}")(rest.strip())
        except Exception as err:  # noqa: BLE001 - as at the prompt: one line, the lab goes on
            self._fail(f"{word}: {err}", USAGE if isinstance(err, ValueError) else FAILED)
        return self.status

    def _fail(self, message: str, status: int = USAGE) -> None:
        """One line of error on ``err`` (a message of several lines, a failed command's, joined);
        the command's status (the first one said stays)."""
        line = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
        self.err.write(f"*** {line}\n")
        self.err.flush()
        self.status = self.status or status

    def _error(self, err: Exception) -> None:
        """An error the lab raised, in one line: a usage error (a wrong name, mode or number:
        ``UsageError``, ``ValueError``) or a failure."""
        self._fail(str(err), USAGE if isinstance(err, (UsageError, ValueError)) else FAILED)

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
            self._error(err)
            return
        if not tables:
            self.out.write("no DHCP responders in this lab\n")
        for key, rows in tables.items():
            self.out.write(format_leases(key, rows))
        self.out.flush()

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
            self._error(err)
            return
        self.out.write(f"{args[0]}:\n" + "".join(f"  {l}\n" for l in lines))
        self.out.flush()

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
            self._error(err)
            return
        for who, rules in tables.items():
            self.out.write(f"# {who}\n{rules}")
        self.out.flush()

    def _vm_nic(self, args: list[str], usage: str) -> tuple[str, int] | None:
        if len(args) < 2 or not args[1].isdigit():
            self._fail(f"Usage: {usage}")
            return None
        return args[0], int(args[1])

    def do_vms(self, line: str) -> None:
        """List the VMs: PC, DHCP client and each NIC's mode.
        Usage: vms"""
        graph = self.lab.graph_snapshot()  # (a change in another thread may be ending)
        for key, vm in topology.nodes_of(graph, "vm"):
            nics = ", ".join(f"{n['index']}:{modes.label(n)}"
                             for n in topology.nics_of(graph, key))
            self.out.write(f"{key:<12} pc {vm['pc']:<10} {nics or 'no NICs'}\n")
        self.out.flush()

    def do_nics(self, line: str) -> None:
        """Show NICs: number, MAC, mode, carrier and address, of one VM or all.
        Usage: nics [VM]"""
        args = line.split()
        if len(args) > 1:
            self._fail("Usage: nics [VM]")
            return
        graph = self.lab.graph_snapshot()
        vms = [k for k, _ in topology.nodes_of(graph, "vm")]
        if args:
            if args[0] not in vms:
                self._fail(f"no VM {args[0]!r} (VMs: {', '.join(vms)})")
                return
            vms = args
        self.out.write(f"{'VM':<10}{'NIC':<5}{'MAC':<19}{'MODE':<18}{'CARRIER':<9}ADDRESS\n")
        for vm in vms:
            for nic in topology.nics_of(graph, vm):
                intf = self.lab.vm(vm).nic(nic["index"])
                addr = intf.updateIP()
                prefix = f"/{intf.prefixLen}" if addr else ""
                self.out.write(f"{vm:<10}{nic['index']:<5}{nic['mac']:<19}"
                               f"{modes.label(nic):<18}"
                               f"{'yes' if intf.carrier() else 'no':<9}{addr or '-'}{prefix}\n")
        self.out.flush()

    def do_nodes(self, line: str) -> None:
        """List all nodes.
        Usage: nodes"""
        self.out.write(f"available nodes are: \n{' '.join(sorted(self.lab.net))}\n")
        self.out.flush()

    #: The ``nic`` command's forms, for its usage lines and ``help nic``.
    NIC_FORMS = ("nic VM N MODE", "nic add VM [MODE]", "nic remove VM N")

    def do_nic(self, line: str) -> None:
        """Move a NIC to another network while the VM runs, add one or remove one (WVPC's
        Settings dialog: a network adapter's mode, the number of network adapters).
        Usage: nic VM N MODE | nic add VM [MODE] | nic remove VM N  (``help nic``: the modes)"""
        args = line.split()
        # (a VM's name starts with a letter: `nic add 0 shared` is NIC 0 of a VM called add)
        if args[:1] == ["add"] and len(args) > 1 and not args[1].isdigit():
            self._nic_add(args[1:])
            return
        if args[:1] == ["remove"] and len(args) > 1 and not args[1].isdigit():
            self._nic_remove(args[1:])
            return
        usage = f"nic VM N {modes.usage()}"
        where = self._vm_nic(args, usage)
        if where is None:
            return
        if len(args) not in (3, 4):
            self._fail(f"Usage: {usage}")
            return
        changed = self._attempt(lambda: self.lab.set_nic(where[0], where[1], " ".join(args[2:])),
                                lambda: self._nic_after_interrupt(*where))
        if changed is REFUSED:
            return
        self._say_nic(*where, note="" if changed else " (already so: nothing changed)")

    def _attempt(self, change: Callable[[], Any], after_interrupt: Callable[[], None]) -> Any:
        """Makes a change of the lab: its result, or ``REFUSED`` once its error is said in one
        line. Ctrl-C during it: ``after_interrupt`` says what the lab has now, and it goes on."""
        try:
            return change()
        except KeyboardInterrupt:
            after_interrupt()
            raise
        except Exception as err:  # noqa: BLE001 - LabError: a bad argument, one line
            self._error(err)
            return REFUSED

    def _say_nic(self, vm: str, index: int, what: str = "", note: str = "") -> None:
        """``xp NIC 0: internal lab, address 169.254.0.17``: a NIC as a change left it."""
        nic = self.lab.graph_snapshot().nodes[f"{vm}/{index}"]
        lease = self.lab.clients.get((vm, index))
        addr = (lease.lease() or {}).get("ip") if lease else nic["ip"]
        self.out.write(f"{vm} NIC {index}{what}: {modes.label(nic)}"
                       f"{', address ' + addr if addr else ''}{note}\n")
        self.out.flush()

    def _nic_add(self, args: list[str]) -> None:
        if len(args) not in (1, 2, 3):
            self._fail(f"Usage: nic add VM [{modes.usage()}]")
            return
        vm, mode = args[0], " ".join(args[1:]) or None
        index = self._attempt(lambda: self.lab.add_nic(vm, mode),
                              lambda: self._nics_after_interrupt(vm))
        if index is REFUSED:
            return
        self._say_nic(vm, index, " added")

    def _nic_remove(self, args: list[str]) -> None:
        where = self._vm_nic(args, "nic remove VM N")
        if where is None:
            return
        if len(args) != 2:
            self._fail("Usage: nic remove VM N")
            return
        if self._attempt(lambda: self.lab.remove_nic(*where),
                         lambda: self._nics_after_interrupt(where[0])) is REFUSED:
            return
        self.out.write(f"{where[0]} NIC {where[1]} removed\n")
        self.out.flush()

    def help_nic(self) -> None:
        """``help nic``: its forms, with the modes as the registry has them
        (``none|shared|bridge ADAPTER|...``)."""
        first = (self.do_nic.__doc__ or "").split("\n        Usage:")[0]
        self.out.write(f"{first}\n        Usage: nic VM N {modes.usage()}\n"
                       f"               nic add VM [{modes.usage()}]\n"
                       "               nic remove VM N\n"
                       "        A new NIC is Not connected unless a mode is given, and takes the "
                       "lowest free number\n        of 0-3; the other NICs keep their numbers "
                       "when one is removed.\n")
        self.out.flush()

    def _nics_after_interrupt(self, vm: str) -> None:
        """Ctrl-C during ``nic add`` or ``nic remove``: the change is whole or not made; say
        which NICs the VM has now."""
        graph = self.lab.graph_snapshot()
        nics = [str(n["index"]) for n in topology.nics_of(graph, vm)] if vm in graph else []
        self.out.write(f"{vm} has {'NICs ' + ', '.join(nics) if nics else 'no NICs'} (Ctrl-C: "
                       "a change is made whole or not at all; these are its NICs now)\n")
        self.out.flush()

    def do_vm(self, line: str) -> None:
        """Create a VM and start it (WVPC's Create Virtual Machine wizard), or remove one.
        Usage: vm add NAME [on PC] [NIC...] | vm remove NAME
        Each NIC is a mode: none, shared, bridge ADAPTER, internal NAME (or bridge:ADAPTER,
        internal:NAME), in NIC order: `vm add w7 on pc bridge eth0 shared`. Without NICs, the
        wizard's: bridged to the PC's first wired and first wireless adapter (shared
        networking on a PC with none). Without PC: the lab's only PC."""
        usage = "Usage: vm add NAME [on PC] [NIC...] | vm remove NAME"
        args = line.split()
        if args[:1] == ["remove"] and len(args) == 2:
            self._vm_remove(args[1])
            return
        if args[:1] != ["add"] or len(args) < 2:
            self._fail(usage)
            return
        name, rest, pc = args[1], args[2:], None
        if rest[:1] == ["on"]:
            if len(rest) < 2:
                self._fail(usage)
                return
            pc, rest = rest[1], rest[2:]
        nics = nic_specs(rest) if rest else None
        if self._attempt(lambda: self.lab.add_vm(name, pc, nics),
                         lambda: self._vm_after_interrupt(name)) is REFUSED:
            return
        graph = self.lab.graph_snapshot()
        made = topology.nics_of(graph, name)
        how = ("with no NICs" if not made else "with the wizard's NICs" if nics is None
               else "with its NICs")
        self.out.write(f"{name}: created on {graph.nodes[name]['pc']} {how}\n")
        for nic in made:
            self._say_nic(name, nic["index"])
        self.out.flush()

    def _vm_remove(self, name: str) -> None:
        if self._attempt(lambda: self.lab.remove_vm(name),
                         lambda: self._vm_after_interrupt(name)) is REFUSED:
            return
        self.out.write(f"{name}: removed\n")
        self.out.flush()

    def _vm_after_interrupt(self, name: str) -> None:
        """Ctrl-C during ``vm add`` or ``vm remove``: say whether the VM is there now."""
        there = self.lab.graph_snapshot().nodes.get(name, {}).get("kind") == "vm"
        self.out.write(f"{name}: {'a VM of the lab' if there else 'no such VM'} now (Ctrl-C: a "
                       "change is made whole or not at all)\n")
        self.out.flush()

    def do_save(self, line: str) -> None:
        """Write the lab as it is now (VMs, NICs and their modes, cables, MACs) to a topology
        file that starts the same lab; the comments and order of the file it came from are kept.
        Usage: save FILE"""
        args = line.split()
        if len(args) != 1:
            self._fail("Usage: save FILE")
            return
        try:
            path = self.lab.save(args[0])
        except Exception as err:  # noqa: BLE001 - LabError, OSError: one line
            self._error(err)
            return
        self.out.write(f"saved lab {self.lab.name} to {path}\n")
        self.out.flush()

    def _nic_after_interrupt(self, vm: str, index: int) -> None:
        """Ctrl-C during ``nic`` or ``cable``: a change is made whole or not at all (the signal
        waits for it), so the NIC is as one of the two; say which."""
        nic = self.lab.graph.nodes[f"{vm}/{index}"]
        self.out.write(f"{vm} NIC {index}: {modes.label(nic)}, cable "
                         f"{'plugged' if nic.get('cable', True) else 'pulled'} (Ctrl-C: a change "
                         "is made whole or not at all; this is the NIC now)\n")
        self.out.flush()

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
        changed = self._attempt(lambda: self.lab.cable(where[0], where[1], args[2] == "on"),
                                lambda: self._nic_after_interrupt(*where))
        if changed is REFUSED:
            return
        state = "plugged" if args[2] == "on" else "pulled"
        note = "" if changed else " already (nothing changed)"
        self.out.write(f"{where[0]} NIC {where[1]}: cable {state}{note}\n")
        self.out.flush()

    def do_capture(self, line: str) -> None:
        """Capture a NIC to a pcap file (Wireshark opens it) until `capture stop`.
        Usage: capture VM N [FILE] | capture stop"""
        args = line.split()
        if args == ["stop"]:
            done = self.lab.stop_captures()
            if not done:
                self.out.write("no capture running\n")
            for nic, path in done:
                self.out.write(f"{nic}: {path}\n")
            self.out.flush()
            return
        where = self._vm_nic(args, "capture VM N [FILE] | capture stop")
        if where is None or len(args) > 3:
            if where is not None:
                self._fail("Usage: capture VM N [FILE] | capture stop")
            return
        try:
            path = self.lab.capture(where[0], where[1], args[2] if len(args) == 3 else None)
        except Exception as err:  # noqa: BLE001 - LabError: a bad argument, one line
            self._error(err)
            return
        self.out.write(f"capturing {where[0]} eth{where[1]} to {path} (capture stop ends it)\n")
        self.out.flush()

    def do_matrix(self, line: str) -> None:
        """Probe what reaches what in the running lab against the model, with the reason.
        Usage: matrix"""
        from wvpclab.analysis.verify import format_matrix, matrix

        if line.strip():
            self._fail("Usage: matrix")
            return
        rows, wrong = matrix(self.lab)
        self.out.write(format_matrix(rows))
        self.out.flush()
        for w in wrong:
            self.err.write(f"*** mismatch: {w}\n")

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
            self._error(err)
            return
        self.out.write(f"drew {out}\n")
        self.out.flush()

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
            self._error(err)
            return
        self.out.write(f"the lab's page: {page.url}\n")
        self.out.flush()


class LabCLI(LabCommands, CLI):
    """``wvpclab> `` prompt; every Mininet command, plus the lab's (``LabCommands``, on the
    terminal's streams)."""

    prompt = "wvpclab> "

    def __init__(self, lab: Any, stdin: TextIO = sys.stdin, **kwargs: Any) -> None:
        self.lab = lab
        route_mininet_output()
        CLI.__init__(self, lab.net, stdin=stdin, **kwargs)  # (runs the loop)

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

    def do_EOF(self, line: str) -> str:
        """Exit (end of input)."""
        if self.isatty():
            sys.stdout.write("\n")
        return "exited"


def nic_specs(words: list[str]) -> list[str]:
    """NIC modes typed one after the other (``bridge eth0 shared``, ``bridge:eth0 shared``), one
    spec each: a mode that takes a target takes the next word (unless it has one after ``:``)."""
    specs: list[str] = []
    i = 0
    while i < len(words):
        mode = modes.MODES.get(words[i])
        if mode is not None and mode.takes_target and i + 1 < len(words):
            specs.append(f"{words[i]}:{words[i + 1]}")
            i += 2
        else:
            specs.append(words[i])
            i += 1
    return specs


def format_leases(key: str, rows: list[dict[str, Any]]) -> str:
    """A lease table for people: address, MAC, state, seconds left, hostname."""
    lines = [f"{key}: {len(rows)} lease{'s' if len(rows) != 1 else ''}"]
    if rows:
        lines.append(f"  {'ADDRESS':<16}{'MAC':<19}{'STATE':<10}{'LEFT':>7}  HOSTNAME")
    for r in rows:
        lines.append(f"  {r['ip']:<16}{r['mac']:<19}{r['state']:<10}{r['remaining']:>6}s  "
                     f"{r.get('hostname') or '-'}")
    return "\n".join(lines) + "\n"
