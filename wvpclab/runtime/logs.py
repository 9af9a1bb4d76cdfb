"""Bounded logs: every log a lab writes is capped, whatever its guests send.

A log is written through ``CappedFile``: once the next write would take it past its cap, the file
becomes ``NAME.1`` (the older one goes) and a new ``NAME`` starts, so a log never holds more than
twice its cap on the disk. A process that writes lines of its own (the DHCP servers, the LAN
servers' services) writes through one; dnsmasq logs to a pipe that a ``Pump`` (a thread of the lab
process) reads into one, so dnsmasq never blocks on it (``--log-async``: it drops lines when the
pipe is full) and never writes the file itself.

A write the disk refuses (full, gone) is dropped and counted, never raised: a log is not worth
stopping a server for. ``CappedFile.error`` says which path could not be written, and why.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import IO

#: Bytes a log may hold before it is rotated (one older file is kept: at most twice this each).
CAP = 1 << 20


def cap_words(cap: int = CAP) -> str:
    """The cap for people: ``1 MiB``."""
    return f"{cap / (1 << 20):g} MiB" if cap >= 1 << 20 else f"{cap / 1024:g} KiB"


def where(run_dir: Path, cap: int = CAP) -> str:
    """The line ``wvpclab run`` says where its logs go with."""
    return (f"logs: {run_dir}/ (dns+*.log, dhcp+*.log, server-*.log, controller.log; each capped "
            f"at {cap_words(cap)}, one older file kept as NAME.1)")


def older(path: Path) -> Path:
    """Where a log's older half goes when it is rotated."""
    return path.with_name(path.name + ".1")


def for_child(path: Path, cap: int = CAP) -> IO[bytes]:
    """``path`` opened to append, for a child's stderr (the child caps what it writes itself; its
    stderr holds what it could not say so, e.g. a crash): rotated first if it is at its cap, so
    restarts cannot grow it either."""
    try:
        if path.stat().st_size >= cap:
            os.replace(path, older(path))
    except FileNotFoundError:
        pass
    return open(path, "ab")


class CappedFile:
    """Appends to ``path``, rotating it to ``NAME.1`` when it would pass ``cap`` bytes.

    Thread-safe. ``write`` takes text or bytes (so an instance can stand in for ``sys.stderr``);
    a single write larger than the cap keeps only its last ``cap`` bytes. A write the disk refuses
    is dropped: ``lost`` counts the bytes, ``error`` names the path and the reason (the first time).
    """

    def __init__(self, path: Path, cap: int = CAP) -> None:
        if cap <= 0:
            raise ValueError(f"a log's cap must be positive, not {cap}")
        self.path = Path(path)
        self.cap = cap
        self.lost = 0
        self.rotations = 0
        self.error: str | None = None
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._size = 0
        self._open()

    def _open(self) -> None:
        try:
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open, closed in close()
            self._size = self._file.tell()
        except OSError as err:
            self._file = None
            self._failed(err)

    def _failed(self, err: OSError) -> None:
        if self.error is None:
            self.error = f"cannot write {self.path}: {err.strerror or err}"

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            os.replace(self.path, older(self.path))
        except FileNotFoundError:
            pass
        except OSError as err:
            self._failed(err)
            try:  # cannot keep the older half: start this one again rather than grow past the cap
                os.truncate(self.path, 0)
            except OSError:
                pass
        self.rotations += 1
        self._open()

    def write(self, data: str | bytes) -> int:
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
        if not raw:
            return 0
        if len(raw) > self.cap:
            self.lost += len(raw) - self.cap
            raw = raw[-self.cap:]
        with self._lock:
            if self._file is None:
                self._open()  # (it failed before: the directory may be back)
            elif self._size + len(raw) > self.cap and self._size > 0:
                self._rotate()
            if self._file is None:
                self.lost += len(raw)
                return len(data)
            try:
                self._file.write(raw)
                self._file.flush()
                self._size += len(raw)
            except OSError as err:
                self.lost += len(raw)
                self._failed(err)
                # what reached the file is unknown: ask the file
                try:
                    self._size = os.fstat(self._file.fileno()).st_size
                except OSError:
                    pass
        return len(data)

    def flush(self) -> None:
        """(Every write is flushed already: there for callers that treat this as a stream.)"""

    def isatty(self) -> bool:
        return False

    def size(self) -> int:
        with self._lock:
            return self._size

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class Pump(threading.Thread):
    """Reads a process's log pipe (its stderr) into a ``CappedFile``, each line stamped with the
    time it was read, until the process closes it. ``marker`` (e.g. dnsmasq's start line) sets
    ``seen`` when it passes; ``tail`` keeps the last few lines (for an error message). The first
    write the disk refuses is said once on the lab's stderr, naming the path."""

    def __init__(self, pipe: IO[bytes], log: CappedFile, marker: bytes = b"",
                 name: str = "wvpclab-log") -> None:
        super().__init__(name=name, daemon=True)
        self.pipe = pipe
        self.log = log
        self.marker = marker
        self.seen = threading.Event()
        self._tail = b""
        self._at_start = True

    @property
    def tail(self) -> str:
        return self._tail.decode("utf-8", "replace").strip()

    def stamped(self, chunk: bytes) -> bytes:
        """``chunk`` with the time before each line that starts in it."""
        stamp = time.strftime("%b %d %H:%M:%S ").encode()
        body = chunk[:-1].replace(b"\n", b"\n" + stamp) + chunk[-1:]
        out = (stamp if self._at_start else b"") + body
        self._at_start = chunk.endswith(b"\n")
        return out

    def run(self) -> None:
        fd = self.pipe.fileno()
        said = False
        try:
            while True:
                try:
                    chunk = os.read(fd, 1 << 16)
                except OSError:
                    break
                if not chunk:
                    break
                if self.marker and not self.seen.is_set() and self.marker in self._tail[
                        -len(self.marker):] + chunk:
                    self.seen.set()
                self._tail = (self._tail + chunk)[-2048:]
                self.log.write(self.stamped(chunk))
                if self.log.error and not said:
                    said = True
                    print(f"wvpclab: warning: {self.log.error} (its lines are dropped until it "
                          "can)", file=sys.stderr, flush=True)
        finally:
            self.log.close()


__all__ = ["CAP", "CappedFile", "Pump", "cap_words", "for_child", "older", "where"]
