"""The DHCP server process: a thin loop around ``leases.decide`` with leases kept on disk.

Run in a node: ``python -m wvpclab.runtime.dhcp.server --iface eth0 --network 169.254.0.0/16 ...``.
Requests are read as whole Ethernet frames (an AF_PACKET socket), so the server knows who sent each:
a request whose hardware address (chaddr) is not its sender's is dropped. Requests are read in
batches; the lease file is written (journal, fsync) once per batch, before any ACK of that batch
leaves. Replies to a client without an address are written as frames to its hardware address (or
broadcast, when it asks); the rest go out through the kernel's UDP. Malformed frames and packets are
dropped and counted by reason; nothing a client sends stops it.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import ipaddress
import json
import os
import re
import select
import signal
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from wvpclab.runtime.dhcp.leases import (
    BROADCAST,
    LeaseTable,
    PoolConfig,
    decide,
    destination,
    hold_names,
)
from wvpclab.runtime.dhcp.message import ZERO, IPv4, parse, parse_frame
from wvpclab.runtime.dns import names_text, read_holders, write_atomic
from wvpclab.runtime.logs import CappedFile
from wvpclab.wire import (
    DHCP_SERVER_PORT,
    ETH_TYPE_IPV4,
    IPPROTO_UDP,
    Malformed,
    build_udp_frame,
)

READY_LINE = "wvpclab-dhcp ready"
BATCH = 256
NOT_THE_SENDER = "dropped: hardware address is not the sender's"
NOT_FOR_US = "dropped: not addressed to this server"
NOT_A_RELAY = "dropped: relayed, but not from port 67"
MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")

# ---- classic BPF (Linux's socket filters), written by hand ---------------------------------------
SO_ATTACH_FILTER = 26
SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # SKF_AD_OFF + SKF_AD_PKTTYPE: loads the frame's packet type
LD_B, LD_H = 0x30, 0x28  # A = the byte / half-word at [k]
LD_H_X = 0x48  # A = the half-word at [X + k]
LDX_IP_HEADER = 0xB1  # X = 4 * ([k] & 0xf): an IP header's length
JEQ, JSET, RET = 0x15, 0x45, 0x06  # jump if A == k, jump if A & k, return k (bytes to keep)
#: Frames for the server: IPv4, UDP, not a later fragment, to port 67, neither sent by this host
#: nor sent to another host's MAC (seen only while the interface is promiscuous, e.g. captured).
#: Each instruction is (code, jump if true, jump if false, k); a jump skips that many
#: instructions. The kernel drops everything else before it is queued; parse_frame checks the
#: rest, with reasons.
TO_SERVER_PORT = (
    (LD_B, 0, 0, SKF_AD_PKTTYPE),           # 0: A = the frame's packet type
    (JEQ, 11, 0, socket.PACKET_OUTGOING),   # 1: one this host sends (a reply to a relay): 13
    (JEQ, 10, 0, socket.PACKET_OTHERHOST),  # 2: to another host's MAC: 13
    (LD_H, 0, 0, 12),                       # 3: A = ethertype
    (JEQ, 0, 8, ETH_TYPE_IPV4),             # 4: not IPv4: 13
    (LD_B, 0, 0, 14 + 9),                   # 5: A = IP protocol
    (JEQ, 0, 6, IPPROTO_UDP),               # 6: not UDP: 13
    (LD_H, 0, 0, 14 + 6),                   # 7: A = IP flags and fragment offset
    (JSET, 4, 0, 0x1FFF),                   # 8: a later fragment has no UDP header: 13
    (LDX_IP_HEADER, 0, 0, 14),              # 9: X = IP header length, 4 * (IHL at frame[14])
    (LD_H_X, 0, 0, 14 + 2),                 # 10: A = UDP destination port, at frame[14 + X + 2]
    (JEQ, 0, 1, DHCP_SERVER_PORT),          # 11: not 67: 13
    (RET, 0, 0, 0x40000),                   # 12: accept the frame (up to 256 KiB of it)
    (RET, 0, 0, 0),                         # 13: drop it
)
NOTHING = ((RET, 0, 0, 0),)  # keep no packet at all


def attach_filter(sock: socket.socket, program: tuple[tuple[int, int, int, int], ...]) -> None:
    """Attaches a classic BPF program to ``sock`` (SO_ATTACH_FILTER takes a struct sock_fprog:
    the instruction count and a pointer to the instructions, which the kernel copies)."""
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                    struct.pack("HL", len(program), ctypes.addressof(code)))


def read_known(path: Path) -> frozenset[str]:
    """The hardware addresses in a known-clients file: one MAC a line (any case); blank lines and
    ``#`` comments are skipped. Raises ValueError naming the first line that is not a MAC."""
    macs = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip().lower()
        if text and not MAC_RE.fullmatch(text):
            raise ValueError(f"{path}:{number}: not a MAC address: {text!r}")
        if text:
            macs.add(text)
    return frozenset(macs)


def save(path: Path, data: dict[str, Any]) -> None:
    """Writes ``data`` as JSON so that a crash at any moment leaves the old or new file whole."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def read_table(path: Path) -> LeaseTable:
    """The lease table on disk: the snapshot, then the journal written after it. A last journal line
    cut short by a crash is ignored (its ACK had not left: the lease was not promised)."""
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    records = []
    jpath = journal_path(path)
    if jpath.exists():
        for line in jpath.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                break
    return LeaseTable.from_json(data, records)


def load(path: Path, log: Any) -> LeaseTable:
    if not path.exists() and not journal_path(path).exists():
        return LeaseTable()
    try:
        return read_table(path)
    except (ValueError, KeyError, TypeError) as err:
        bad = path.with_name(path.name + ".corrupt")
        if path.exists():
            os.replace(path, bad)
        if journal_path(path).exists():
            os.replace(journal_path(path), bad.with_name(bad.name + ".journal"))
        log(f"lease file {path} unreadable ({err}); moved to {bad}, starting empty")
        return LeaseTable()


class Server:
    """One network's DHCP service on one interface.

    ``known_path`` names the file of known hardware addresses (re-read on SIGHUP; without it,
    every client is known). With ``check_sender`` a request that is not relayed is answered only
    if its chaddr is the frame's source MAC, or the source is one of ``translators`` (a wireless
    bridge puts its adapter's MAC on its guests' frames).
    """

    def __init__(self, cfg: PoolConfig, iface: str, leases: Path, log_path: Path | None = None,
                 stats_path: Path | None = None, known_path: Path | None = None,
                 check_sender: bool = True, translators: frozenset[str] = frozenset(),
                 names_dir: Path | None = None, holders_path: Path | None = None) -> None:
        self.cfg = cfg
        #: where the LAN's DNS server reads the lease hostnames (``leases``) and the lab's names
        self.names_dir = names_dir
        #: the lab's nodes and their hardware addresses: only a node's own NICs take its name
        self.holders_path = holders_path
        self._names_text: str | None = None
        self._names_checked = 0.0
        self._refused: set[tuple[str, str, str]] = set()  # hostnames refused (said once each)
        self.iface = iface
        self.leases_path = leases
        self.stats_path = stats_path
        self.known_path = known_path
        self.check_sender = check_sender
        self.translators = frozenset(bytes.fromhex(m.replace(":", "")) for m in translators)
        #: where a request may be sent: this server, or broadcast (limited or the network's)
        self.addresses = frozenset({cfg.server, BROADCAST, cfg.network.broadcast_address})
        #: its log, capped (logs.CAP, one older file kept): no client makes it grow past that
        self.log_file = CappedFile(log_path) if log_path else sys.stderr
        self.stats: Counter[str] = Counter()
        if known_path is not None:
            self.cfg = replace(cfg, known=read_known(known_path))
            self.stats["known file read"] += 1
        self.table = load(leases, self.log)
        self._journal = None  # the open journal file (after the first compaction)
        self._journal_lines = 0
        self._notes_window = (0.0, 0)
        self._stats_written = 0.0
        self._unsaved = False  # the disk refused the last write: the whole table is owed
        self._running = True
        self._reload = False  # a SIGHUP came: read the known file again
        self.raw: socket.socket | None = None
        self.sock: socket.socket | None = None
        self.mac = b""

    def open(self) -> None:
        """Opens the sockets on the interface.

        Requests come in, and frames the server writes itself go out, on an AF_PACKET socket:
        it is created for no protocol (it receives nothing), given its filter, and only then bound
        to the interface for IPv4, so no other frame is ever queued on it. Replies the kernel
        routes (to relays, to clients with an address) leave through a UDP socket bound to port
        67 on the interface. That socket also keeps the port taken, so the kernel does not answer
        each request with ICMP port unreachable; a filter that keeps nothing makes it receive
        nothing (the requests are read once, as frames).
        """
        self.raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        attach_filter(self.raw, TO_SERVER_PORT)
        # (capped at net.core.rmem_max: under a flood, a short queue drops what would be stale
        # by the time it was read, rather than answering it late)
        self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.raw.bind((self.iface, ETH_TYPE_IPV4))
        self.raw.setblocking(False)
        self.mac = self.raw.getsockname()[4]  # this interface's MAC (as seen in its namespace)
        if len(self.mac) != 6:
            raise OSError(f"{self.iface} has no Ethernet address")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        attach_filter(self.sock, NOTHING)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.iface.encode())
        self.sock.bind(("0.0.0.0", DHCP_SERVER_PORT))

    def log(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.log_file.write(f"{stamp} {message}\n")
        self.log_file.flush()
        error = getattr(self.log_file, "error", None)
        if error and not self.stats[f"log not written: {error}"]:
            self.stats[f"log not written: {error}"] += 1

    def note(self, message: str) -> None:
        """Logs a decision's note, at most 20 a second (a flood of NAKs must not fill the disk)."""
        start, count = self._notes_window
        now = time.monotonic()
        if now - start >= 1.0:
            if count > 20:
                self.log(f"({count - 20} more notes not logged)")
            start, count = now, 0
        count += 1
        self._notes_window = (start, count)
        if count <= 20:
            self.log(message)

    def handle(self, frame: bytes, now: float) -> tuple[Any, bool]:
        """Decides one frame; returns (reply or None, whether the table must be saved first)."""
        self.stats["received"] += 1
        try:
            sent = parse_frame(frame)
            if sent.dst_ip not in self.addresses:
                raise Malformed("not addressed to this server")  # counted as NOT_FOR_US
            req = parse(sent.payload)
        except Malformed as err:
            self.stats[f"dropped: {err}"] += 1
            return None, False
        except Exception as err:  # noqa: BLE001 - one packet's error never stops the server
            self.stats[f"dropped: unreadable ({type(err).__name__})"] += 1
            return None, False
        if req.giaddr != ZERO and sent.src_port != DHCP_SERVER_PORT:
            # relay agents send from port 67 (RFC 2131 §4.1); the lab's DHCP guard drops UDP from
            # port 67 out of guests, so a guest cannot pose as a relay and name any chaddr
            self.stats[NOT_A_RELAY] += 1
            self.note(f"a {req.mtype.name} relayed by {req.giaddr} from port {sent.src_port}: "
                      "dropped (relays send from port 67)")
            return None, False
        if (self.check_sender and req.giaddr == ZERO and req.chaddr != sent.src_mac
                and sent.src_mac not in self.translators):
            self.stats[NOT_THE_SENDER] += 1
            self.note(f"a {req.mtype.name} for {req.mac} sent by {sent.src_mac.hex(':')}: "
                      "dropped (the hardware address is not the sender's)")
            return None, False
        try:
            return self._decide(req, now)
        except Exception as err:  # noqa: BLE001 - the same for a decision that fails
            self.stats[f"dropped: failed to answer ({type(err).__name__})"] += 1
            self.note(f"a {req.mtype.name} from {req.chaddr.hex(':')} could not be answered: "
                      f"{type(err).__name__}: {err}")
            return None, False

    def _decide(self, req: Any, now: float) -> tuple[Any, bool]:
        self.stats[f"in {req.mtype.name}"] += 1
        decision = decide(self.table, self.cfg, req, now)
        if decision.note:
            self.note(decision.note)
        if decision.count:
            self.stats[decision.count] += 1
        return decision.reply, decision.persist

    def run_once(self, timeout: float = 0.5) -> None:
        if self._reload:
            self.reload_known()
        assert self.raw is not None, "open() the server first"
        ready, _, _ = select.select([self.raw], [], [], timeout)
        if not ready:
            self._write_stats()
            self.write_names(time.time())
            return
        now = time.time()
        held, persist = [], False
        for _ in range(BATCH):
            try:
                frame = self.raw.recv(4096)  # (recvfrom would cost an ioctl a frame)
            except BlockingIOError:
                break
            except OSError as err:  # its interface went down (a cable pulled): said once, not fatal
                self.stats[f"receive failed: {errno.errorcode.get(err.errno, err.errno)}"] += 1
                break
            reply, must_save = self.handle(frame, now)
            if reply is None:
                persist = persist or must_save
            elif must_save:  # an ACK that binds a lease leaves only once the lease is on disk
                persist = True
                held.append(reply)
            else:  # OFFER, NAK, INFORM's ACK: nothing to keep, no reason to wait for the disk
                self.send(reply)
        changed = bool(persist or self.table.journal)
        if changed:
            self.flush_or_go_on()
        for reply in held:
            self.send(reply)
        self._write_stats()
        self.write_names(now, changed)

    def write_names(self, now: float, changed: bool = False) -> None:
        """The lease hostnames for the LAN's DNS server, written when they changed (a lease bound,
        released or expired: checked at least once a second). The file is replaced whole, its
        temporary copy made outside the directory the DNS server watches. A hostname that another
        holds (``hold_names``) is left out, and counted and logged once, when it is first
        refused."""
        if self.names_dir is None or not (changed or now - self._names_checked >= 1.0):
            return
        self._names_checked = now
        try:
            lab = (self.names_dir / "lab").read_text()
        except OSError:
            lab = ""
        taken = frozenset(w.lower() for line in lab.splitlines() for w in line.split()[1:])
        owners = {}
        if self.holders_path is not None:
            try:
                owners = read_holders(self.holders_path)
            except OSError:  # (not written yet): the lab's and the leases' rules still hold
                pass
        names, refused = hold_names(self.table, now, taken, owners)
        seen = set()
        for r in refused:
            key = (r.client, r.name, r.why)
            seen.add(key)
            if key not in self._refused:  # once, not once a renewal
                self.stats[r.why] += 1
                self.note(r.note())
        self._refused = seen
        text = names_text(tuple((name, str(ip)) for name, ip in names.items()))
        if text == self._names_text:
            return
        try:
            write_atomic(self.names_dir / "leases", text, self.names_dir.parent)
        except OSError as err:
            self.stats[f"names not written: {_why(err, self.names_dir / 'leases')}"] += 1
            return
        self._names_text = text

    def compact(self) -> None:
        """Writes the whole table as the snapshot and starts an empty journal."""
        save(self.leases_path, self.table.to_json())
        self.table.journal.clear()
        if self._journal is not None:
            self._journal.close()
        self._journal = open(journal_path(self.leases_path), "w", encoding="utf-8")  # noqa: SIM115
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self._journal_lines = 0

    def flush_or_go_on(self) -> None:
        """Writes the batch's changes; if the disk refuses (full, gone), the server goes on from
        memory, says so once in its log and stats, and writes the whole table once it can again."""
        try:
            if self._unsaved:
                self.compact()
            else:
                self.flush()
            if self._unsaved:
                self.log("the lease file is written again")
            self._unsaved = False
        except OSError as err:
            if not self._unsaved:
                self.log(f"cannot write the lease file ({_why(err, self.leases_path)}): serving "
                         "from memory; leases are not durable until it can")
            self._unsaved = True
            self.table.journal.clear()
            self.stats[f"lease file not written: {_why(err, self.leases_path)}"] += 1

    def flush(self) -> None:
        """Appends the batch's changes to the journal and fsyncs it: one write and one fsync per
        batch, however many leases it bound; the snapshot is rewritten only now and then."""
        assert self._journal is not None
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in self.table.journal)
        self.table.journal.clear()
        self._journal.write(lines)
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self._journal_lines += lines.count("\n")
        if self._journal_lines > max(4096, 2 * len(self.table.by_client)):
            self.compact()

    def send(self, reply: Any) -> None:
        """Sends a reply where ``destination`` says: a frame written here when it names the
        Ethernet destination, else through the kernel's UDP (which routes it and resolves ARP)."""
        try:
            mac, addr, port = destination(reply.request, reply)
            wire = reply.build()
            if mac is not None:
                wire = build_udp_frame(bytes.fromhex(mac.replace(":", "")), self.mac,
                                       self.cfg.server.packed, addr.packed, DHCP_SERVER_PORT, port,
                                       wire)
        except Exception as err:  # noqa: BLE001 - a reply that cannot be built is dropped alone
            self.stats[f"reply not built: {type(err).__name__}"] += 1
            return
        try:
            if mac is not None:
                self.raw.send(wire)
            else:
                self.sock.sendto(wire, (str(addr), port))
            self.stats[f"out {reply.mtype.name}"] += 1
        except OSError as err:
            self.stats[f"send failed: {errno.errorcode.get(err.errno, err.errno)}"] += 1

    def reload_known(self) -> None:
        """Reads the known hardware addresses again (after a SIGHUP); if the file cannot be read,
        the ones read before stay in force and the log says why."""
        self._reload = False
        if self.known_path is None:
            self.log("SIGHUP: no known file to read (every client is known)")
            return
        try:
            known = read_known(self.known_path)
        except (OSError, ValueError) as err:
            self.stats["known file unreadable"] += 1
            self.log(f"known file not read again, the old one stays in force: {err}")
            return
        self.cfg = replace(self.cfg, known=known)
        self.stats["known file read"] += 1
        self.log(f"{len(known)} known hardware addresses read from {self.known_path}")
        self._stats_written = 0.0
        self._write_stats()

    def _write_stats(self) -> None:
        if self.stats_path is None or time.monotonic() - self._stats_written < 0.5:
            return
        self._stats_written = time.monotonic()
        tmp = self.stats_path.with_name(self.stats_path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(dict(self.stats)))
            os.replace(tmp, self.stats_path)
        except OSError:  # a full disk: the stats wait for space, the server goes on
            tmp.unlink(missing_ok=True)

    def stop(self, *_: object) -> None:
        self._running = False

    def hangup(self, *_: object) -> None:
        self._reload = True  # read at the top of the next run_once (within half a second)

    def serve(self) -> None:
        """Serves until SIGTERM or SIGINT (``open()`` first)."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGHUP, self.hangup)
        self.compact()
        self.write_names(time.time(), True)
        known = ("everyone known" if self.cfg.known is None else
                 f"{len(self.cfg.known)} known hardware addresses, reserve {self.cfg.reserve}")
        self.log(f"serving {self.cfg.start}-{self.cfg.end} of {self.cfg.network} on {self.iface} "
                 f"({self.mac.hex(':')}) as {self.cfg.server}; {known}; "
                 f"{len(self.table.by_client)} leases loaded")
        self._write_stats()  # this process's counts replace the last one's before it says ready
        print(READY_LINE, flush=True)
        while self._running:
            self.run_once()
        self._stats_written = 0.0
        self._write_stats()
        self.log("stopped")


def _why(err: OSError, path: Path) -> str:
    """An error of writing ``path``, naming the path (``No space left on device: PATH``)."""
    return f"{err.strerror or err}: {err.filename or path}"


def _ips(text: str | None) -> list[IPv4]:
    return [IPv4(x) for x in text.split(",") if x] if text else []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wvpclab.runtime.dhcp.server",
                                description="wvpclab's DHCP server (RFC 2131) for one network")
    p.add_argument("--iface", required=True)
    p.add_argument("--network", required=True, help="e.g. 169.254.0.0/16")
    p.add_argument("--server", required=True, help="this server's address (server identifier)")
    p.add_argument("--pool", required=True, help="FIRST-LAST, e.g. 169.254.0.16-169.254.10.254")
    p.add_argument("--router")
    p.add_argument("--dns", help="comma-separated")
    p.add_argument("--exclude", help="comma-separated addresses never handed out")
    p.add_argument("--lease-time", type=int, default=3600)
    p.add_argument("--leases", required=True, type=Path, help="lease file (JSON)")
    p.add_argument("--log", type=Path)
    p.add_argument("--stats", type=Path)
    p.add_argument("--known", type=Path, help="file of known hardware addresses, one MAC a line "
                   "(re-read on SIGHUP); the others get no address from the reserve. Without "
                   "it every client is known")
    p.add_argument("--reserve", type=int, help="free addresses kept for known hardware "
                   "addresses (default: max(8, a tenth of the pool))")
    p.add_argument("--any-sender", action="store_true", help="answer requests whose chaddr is "
                   "not the frame's source MAC (a LAN reached through wireless bridges)")
    p.add_argument("--translators", help="comma-separated MACs that may send for other clients "
                   "(wireless adapters whose bridge puts their own MAC on guests' frames)")
    p.add_argument("--names", type=Path, help="directory of the LAN's DNS server: the lease "
                   "hostnames are written to its file 'leases' (its file 'lab' holds the names "
                   "taken)")
    p.add_argument("--holders", type=Path, help="the lab's nodes, one a line: its name and the "
                   "hardware addresses its NICs lease with; a lease from another takes no node's "
                   "name")
    args = p.parse_args(argv)
    try:
        first, last = args.pool.split("-")
        cfg = PoolConfig(network=ipaddress.IPv4Network(args.network), start=IPv4(first),
                         end=IPv4(last), server=IPv4(args.server), lease_time=args.lease_time,
                         router=IPv4(args.router) if args.router else None,
                         dns=tuple(_ips(args.dns)), excluded=frozenset(_ips(args.exclude)),
                         reserve=args.reserve)
        translators = frozenset(m.lower() for m in (args.translators or "").split(",") if m)
        if bad := [m for m in translators if not MAC_RE.fullmatch(m)]:
            raise ValueError(f"--translators: not a MAC address: {bad[0]}")
        server = Server(cfg, args.iface, args.leases, args.log, args.stats, args.known,
                        not args.any_sender, translators, args.names, args.holders)
        if args.log:  # what Python itself says (a warning, a traceback) goes to the capped log
            sys.stderr = server.log_file
        server.open()
    except (ValueError, OSError) as err:
        print(f"wvpclab-dhcp: {err}", file=sys.stderr)
        return 1
    server.serve()
    return 0


__all__ = ["Server", "main", "read_known", "save"]

if __name__ == "__main__":
    sys.exit(main())
