"""The DHCP server process: a thin UDP loop around ``leases.decide`` with leases kept on disk.

Run in a node: ``python -m wvpclab.dhcp.server --iface eth0 --network 169.254.0.0/16 ...``.
Requests are read in batches; the lease file is written (temp file, fsync, rename) once per batch,
before any ACK of that batch leaves. Malformed packets are dropped and counted by reason; nothing a
client sends stops it.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import select
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from wvpclab.dhcp.leases import LeaseTable, PoolConfig, decide, destination
from wvpclab.dhcp.message import SERVER_PORT, IPv4, Malformed, MessageType, parse

READY_LINE = "wvpclab-dhcp ready"
BATCH = 256


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
    """One network's DHCP service on one interface."""

    def __init__(self, cfg: PoolConfig, iface: str, leases: Path, log_path: Path | None = None,
                 stats_path: Path | None = None) -> None:
        self.cfg = cfg
        self.iface = iface
        self.leases_path = leases
        self.stats_path = stats_path
        self._log_file = open(log_path, "a", encoding="utf-8") if log_path else sys.stderr  # noqa: SIM115
        self.stats: Counter[str] = Counter()
        self.table = load(leases, self.log)
        self._journal = None  # the open journal file (after the first compaction)
        self._journal_lines = 0
        self._notes_window = (0.0, 0)
        self._stats_written = 0.0
        self._unsaved = False  # the disk refused the last write: the whole table is owed
        self._running = True
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("0.0.0.0", SERVER_PORT))
        self.sock.setblocking(False)

    def log(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self._log_file.write(f"{stamp} {message}\n")
        self._log_file.flush()

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

    def handle(self, data: bytes, now: float) -> tuple[Any, bool]:
        """Decides one datagram; returns (reply or None, whether the table must be saved first)."""
        self.stats["received"] += 1
        try:
            req = parse(data)
        except Malformed as err:
            self.stats[f"dropped: {err}"] += 1
            return None, False
        except Exception as err:  # noqa: BLE001 - one packet's error never stops the server
            self.stats[f"dropped: unreadable ({type(err).__name__})"] += 1
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
            if "exhausted" in decision.note:
                self.stats["pool exhausted"] += 1
        return decision.reply, decision.persist

    def run_once(self, timeout: float = 0.5) -> None:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            self._write_stats()
            return
        now = time.time()
        held, persist = [], False
        for _ in range(BATCH):
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                break
            reply, must_save = self.handle(data, now)
            if reply is None:
                persist = persist or must_save
            elif must_save:  # an ACK that binds a lease leaves only once the lease is on disk
                persist = True
                held.append(reply)
            else:  # OFFER, NAK, INFORM's ACK: nothing to keep, no reason to wait for the disk
                self.send(reply)
        if persist or self.table.journal:
            self.flush_or_go_on()
        for reply in held:
            self.send(reply)
        self._write_stats()

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
                self.log(f"cannot write the lease file ({err.strerror or err}): serving from "
                         "memory; leases are not durable until it can")
            self._unsaved = True
            self.table.journal.clear()
            self.stats[f"lease file not written: {err.strerror or err}"] += 1

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
        try:
            addr, port = destination(reply.request, reply)
            wire = reply.build()
        except Exception as err:  # noqa: BLE001 - a reply that cannot be built is dropped alone
            self.stats[f"reply not built: {type(err).__name__}"] += 1
            return
        try:
            self.sock.sendto(wire, (str(addr), port))
            self.stats[f"out {reply.mtype.name}"] += 1
        except OSError as err:
            self.stats[f"send failed: {errno.errorcode.get(err.errno, err.errno)}"] += 1

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

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.compact()
        self.log(f"serving {self.cfg.start}-{self.cfg.end} of {self.cfg.network} on {self.iface} "
                 f"as {self.cfg.server}; {len(self.table.by_client)} leases loaded")
        print(READY_LINE, flush=True)
        while self._running:
            self.run_once()
        self._stats_written = 0.0
        self._write_stats()
        self.log("stopped")


def _ips(text: str | None) -> list[IPv4]:
    return [IPv4(x) for x in text.split(",") if x] if text else []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wvpclab.dhcp.server",
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
    args = p.parse_args(argv)
    try:
        first, last = args.pool.split("-")
        cfg = PoolConfig(network=ipaddress.IPv4Network(args.network), start=IPv4(first),
                         end=IPv4(last), server=IPv4(args.server), lease_time=args.lease_time,
                         router=IPv4(args.router) if args.router else None,
                         dns=tuple(_ips(args.dns)), excluded=frozenset(_ips(args.exclude)))
        server = Server(cfg, args.iface, args.leases, args.log, args.stats)
    except (ValueError, OSError) as err:
        print(f"wvpclab-dhcp: {err}", file=sys.stderr)
        return 1
    server.serve()
    return 0


__all__ = ["MessageType", "Server", "main", "save"]

if __name__ == "__main__":
    sys.exit(main())
