"""What a client of the lab's page may take from the lab's process: bounded, so that a lab change
never fails for want of a file descriptor or memory that the page's clients hold.

- **Time**: a request's head must arrive whole within ``head_seconds`` of the connection (or of the
  previous response on it), its body within ``body_seconds`` of its head; a connection that does not
  is closed (a slowloris sending a header line every few seconds holds nothing for long).
- **Connections, per user and in total**: every client is on 127.0.0.1, so the peer's address says
  nothing (any local user may bind any 127.x.y.z). A connection counts against the *user* who owns
  the peer's socket (its uid, asked of the kernel with sock_diag: a user cannot make a socket owned
  by another uid), with the peer's address only when the kernel no longer knows the socket. Each
  user holds at most ``per_user`` connections; the lab's own users (the uid running the lab and
  the one who ran sudo) always keep their ``per_user``, so a flood from other users fills at most
  what is left of ``total``: root's browser is never locked out. A connection over a cap is closed
  as soon as it is accepted.
- **Bodies**: at most ``max_body`` bytes (a change is a small JSON object), token or not; a longer
  one is refused with 413 before it is read.
- **File descriptors**: the page's connections and its accept backlog together stay within a
  quarter of the process's RLIMIT_NOFILE (raised toward its hard limit when the page starts), so
  the lab keeps the rest for its changes and their undos.
- **Logs**: refusals are counted and said in one line per ``report_seconds`` (``Tally``), never a
  line or a traceback each.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pwd
import resource
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

#: A lab raises its soft RLIMIT_NOFILE to this when the page starts (never above the hard limit).
NOFILE_TARGET = 8192

#: The kernel's queue of connections the page has not accepted yet (they hold no file of the lab's;
#: the kernel caps it at net.core.somaxconn).
LISTEN_QUEUE = 4096

#: Who holds a connection: ("uid", N) from the kernel, or ("addr", IP) when it no longer knows.
Who = tuple[str, Any]


@dataclass(frozen=True)
class Limits:
    head_seconds: float = 5.0
    body_seconds: float = 10.0
    max_body: int = 64 * 1024
    per_user: int = 32
    total: int = 256
    backlog: int = 16
    report_seconds: float = 10.0

    @classmethod
    def for_nofile(cls, soft: int, **kwargs: Any) -> Limits:
        """The limits for a process that may open ``soft`` files: the page's connections and
        what asyncio has accepted but not yet handed over or closed (up to four batches of
        ``backlog``: accepted, made a transport, refused, closing) within a quarter of them."""
        budget = max(soft // 4, 32)
        backlog = max(4, min(cls.backlog, budget // 16))
        total = min(cls.total, budget - 4 * backlog)
        per_user = max(2, min(cls.per_user, total // 4))
        return cls(total=total, per_user=per_user, backlog=backlog, **kwargs)


def raise_nofile(target: int = NOFILE_TARGET) -> int:
    """Raises the soft RLIMIT_NOFILE toward ``target`` (within the hard limit; never lowers it);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def owners() -> frozenset[int]:
    """The lab's own users: the uid running it and, under sudo, the one who ran sudo (whose
    browser opens the page)."""
    uids = {os.geteuid(), os.getuid()}
    sudo = os.environ.get("SUDO_UID", "")
    if sudo.isdigit():
        uids.add(int(sudo))
    return frozenset(uids)


class Gate:
    """Counts the page's open connections by who holds them and says which may open (pure)."""

    def __init__(self, total: int, per_user: int, owners: Iterable[int] = ()) -> None:
        self.per_user = per_user
        self.owners = frozenset(owners)
        #: What the lab's own users hold at most, kept for them; the others share the rest.
        self.others_cap = max(total - per_user * len(self.owners), 0)
        self.open: Counter[Who] = Counter()
        self.others = 0

    def _owner(self, who: Who) -> bool:
        return who[0] == "uid" and who[1] in self.owners

    def admit(self, who: Who) -> str | None:
        """None (and counts the connection) when ``who`` may open one more; else why not:
        ``"user"`` (over its own cap) or ``"total"`` (the others' share is full)."""
        if self.open[who] >= self.per_user:
            return "user"
        if not self._owner(who):
            if self.others >= self.others_cap:
                return "total"
            self.others += 1
        self.open[who] += 1
        return None

    def release(self, who: Who) -> None:
        if self.open[who] <= 0:
            return
        self.open[who] -= 1
        if not self.open[who]:
            del self.open[who]
        if not self._owner(who):
            self.others -= 1

    @property
    def count(self) -> int:
        return sum(self.open.values())


def who_text(who: Who | None) -> str:
    if who is None:
        return "?"
    if who[0] == "uid":
        try:
            return f"uid {who[1]} ({pwd.getpwuid(who[1]).pw_name})"
        except KeyError:
            return f"uid {who[1]}"
    return str(who[1])


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


class Tally:
    """Refusals counted by kind and by who, said in one line (``summary``). Thread-safe."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, Any]] = Counter()
        #: Every refusal since the page started, by kind (never reset).
        self.totals: Counter[str] = Counter()

    def add(self, kind: str, who: Any = None, count: int = 1) -> None:
        with self._lock:
            self.counts[kind, who] += count
            self.totals[kind] += count

    def summary(self, seconds: float | None = None) -> str | None:
        """One line for the refusals since the last summary (None when there were none); resets
        them."""
        with self._lock:
            counts, self.counts = self.counts, Counter()
        if not counts:
            return None
        lim = self.limits
        words = {
            "user": lambda n: f"{_n(n, 'connection')} refused (over its user's "
                              f"{lim.per_user} open)",
            "total": lambda n: f"{_n(n, 'connection')} refused (the page's "
                               f"{lim.total} open are taken)",
            "head": lambda n: f"{_n(n, 'connection')} closed without a whole request head in "
                              f"{lim.head_seconds:g} s",
            "body": lambda n: f"{_n(n, 'connection')} closed without a whole body in "
                              f"{lim.body_seconds:g} s",
            "large": lambda n: f"{_n(n, 'body', 'bodies')} over {lim.max_body // 1024} KiB "
                               f"refused (413)",
            "bad": lambda n: f"{_n(n, 'request')} not HTTP (400)",
            "upgrade": lambda n: f"{_n(n, 'upgrade')} refused (the page speaks HTTP alone)",
            "accept": lambda n: f"{_n(n, 'accept')} failed",
            "lookup": lambda n: f"{_n(n, 'connection')} counted by address, not by user (the "
                                f"kernel could not be asked whose it is)",
        }
        parts = []
        for kind, say in words.items():
            mine = {who: n for (k, who), n in counts.items() if k == kind}
            if not mine:
                continue
            top = sorted(mine.items(), key=lambda item: -item[1])
            by = ", ".join(f"{who if kind in ('accept', 'lookup') else who_text(who)}: {n:,}"
                           for who, n in top[:3] if who is not None)
            more = f", {len(top) - 3} more" if len(top) > 3 else ""
            parts.append(say(sum(mine.values())) + (f" [{by}{more}]" if by else ""))
        when = f" in the last {seconds:g} s" if seconds else ""
        return f"wvpclab: the page's limits{when}: " + "; ".join(parts)


# -- who holds a connection: the owner of the peer's socket, from the kernel (sock_diag) ----------
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NOCOOKIE = 0xFFFFFFFF


def diag_request(local: tuple[str, int], peer: tuple[str, int], seq: int = 1) -> bytes:
    """A sock_diag request for the one TCP socket whose own end is ``peer`` and whose other end
    is ``local`` (the peer's socket of a connection this side accepted)."""
    sockid = (struct.pack("!HH", peer[1], local[1]) + socket.inet_aton(peer[0]) + bytes(12)
              + socket.inet_aton(local[0]) + bytes(12)
              + struct.pack("=III", 0, _NOCOOKIE, _NOCOOKIE))
    req = struct.pack("=BBBxI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0xFFFFFFFF) + sockid
    return struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, seq,
                       0) + req


def diag_uid(answer: bytes, peer_port: int, local_port: int) -> int | None:
    """The socket owner's uid in a sock_diag answer, if it is the socket asked about."""
    if len(answer) < 16 + 4 + 48 + 20:
        return None
    _length, kind = struct.unpack_from("=IH", answer)
    if kind == _NLMSG_ERROR:
        return None
    sport, dport = struct.unpack_from("!HH", answer, 16 + 4)
    if (sport, dport) != (peer_port, local_port):
        return None
    return struct.unpack_from("=I", answer, 16 + 4 + 48 + 12)[0]


class PeerUsers:
    """Finds the uid that owns the peer's socket of a loopback TCP connection (one netlink socket,
    used from the page's thread alone)."""

    def __init__(self, on_failure: Callable[[str], None] | None = None) -> None:
        self._sock: socket.socket | None = None
        self._seq = 0
        #: Called with why, each time the kernel could not be asked (not: did not know the socket).
        self.on_failure = on_failure

    def uid(self, local: tuple[str, int], peer: tuple[str, int]) -> int | None:
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                                           _NETLINK_SOCK_DIAG)
                self._sock.settimeout(1.0)
            self._seq += 1
            self._sock.send(diag_request(local, peer, self._seq))
            while True:
                answer = self._sock.recv(8192)
                if struct.unpack_from("=I", answer, 8)[0] == self._seq:
                    return diag_uid(answer, peer[1], local[1])
        except (OSError, ValueError, struct.error) as err:
            self.close()
            if self.on_failure is not None:
                self.on_failure(getattr(err, "strerror", None) or str(err) or type(err).__name__)
            return None

    def who(self, local: Any, peer: Any) -> Who:
        if isinstance(local, tuple) and isinstance(peer, tuple) and len(peer) == 2:
            uid = self.uid((local[0], int(local[1])), (peer[0], int(peer[1])))
            if uid is not None:
                return ("uid", uid)
            return ("addr", peer[0])
        return ("addr", "?")

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


# -- the bounded HTTP protocol: uvicorn's h11 one with a gate, deadlines and a report ------------
_RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Guarded:
    """What one page's bounds need at run time: its limits, gate, tally and peer lookup."""

    def __init__(self, limits: Limits, owner_uids: Iterable[int] | None = None) -> None:
        self.limits = limits
        self.gate = Gate(limits.total, limits.per_user,
                         owners() if owner_uids is None else owner_uids)
        self.tally = Tally(limits)
        self.peers = PeerUsers(lambda why: self.tally.add("lookup", why))
        self.log_filter = _CountBadRequests(self.tally)
        logging.getLogger("uvicorn.error").addFilter(self.log_filter)

    def close(self) -> None:
        logging.getLogger("uvicorn.error").removeFilter(self.log_filter)
        self.peers.close()

    def uvicorn_config(self, app: Any, **options: Any) -> Any:
        """uvicorn's configuration for a page served within these bounds (``options``: the rest).
        No WebSocket: an upgrade is answered as plain HTTP (uvicorn would hand the connection to
        a protocol of its own, past the gate)."""
        import uvicorn

        return uvicorn.Config(app, http=self.protocol(), ws="none", backlog=self.limits.backlog,
                              h11_max_incomplete_event_size=16 * 1024, **options)

    def protocol(self) -> type:
        """uvicorn's h11 protocol for this page (``uvicorn.Config(http=...)``)."""
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return type("GuardedH11Protocol", (_GuardedMixin, H11Protocol), {"guarded": self})

    def exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """The page's loop: an accept() out of files or memory is counted, not a traceback each."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS:
            self.tally.add("accept", errno.errorcode.get(exc.errno, str(exc.errno)))
            return
        loop.default_exception_handler(context)


class _CountBadRequests(logging.Filter):
    """uvicorn's line for each request that is not HTTP, from the page's thread, becomes a count."""

    def __init__(self, tally: Tally) -> None:
        super().__init__()
        self.tally = tally
        #: The page's thread (set when it runs): other threads' records pass untouched.
        self.thread: int | None = None

    #: uvicorn's lines, one a request: counted by kind; the second line of an upgrade is dropped.
    COUNTED: ClassVar[dict[str, str]] = {"Invalid HTTP request received.": "bad",
                                         "Unsupported upgrade request.": "upgrade"}
    DROPPED = "No supported WebSocket library detected."

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread or not isinstance(record.msg, str):
            return True
        kind = self.COUNTED.get(record.msg)
        if kind is not None:
            self.tally.add(kind)
            return False
        return not record.msg.startswith(self.DROPPED)


class _GuardedMixin:
    """Added before uvicorn's ``H11Protocol``: a connection over its user's or the page's cap is
    closed at once; one with no whole request head in ``head_seconds`` (or body in
    ``body_seconds`` after its head) is closed; the ASGI app sees who holds it in
    ``scope["state"]["wvpclab.who"]``."""

    guarded: Guarded
    _who: Who | None = None
    _timer: asyncio.TimerHandle | None = None
    _waiting: str | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        guarded = self.guarded
        who = guarded.peers.who(self.server, self.client)  # type: ignore[attr-defined]
        refused = guarded.gate.admit(who)
        if refused is not None:
            guarded.tally.add(refused, who)
            transport.abort()
            return
        self._who = who
        self.app_state = {**self.app_state, "wvpclab.who": who}  # type: ignore[has-type]
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._wait(None)
        if self._who is not None:
            self.guarded.gate.release(self._who)
            self._who = None
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        self._follow()

    def on_response_complete(self) -> None:
        self._wait(None)  # the next request's head has its own time
        super().on_response_complete()  # type: ignore[misc]
        self._follow()

    def _follow(self) -> None:
        """Sets the deadline for what the connection waits for from the client now."""
        import h11

        if self._who is None or self.transport.is_closing():  # type: ignore[attr-defined]
            self._wait(None)
            return
        state = self.conn.their_state  # type: ignore[attr-defined]
        self._wait("head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None)

    def _wait(self, what: str | None) -> None:
        if what == self._waiting:
            return  # the same wait goes on: its deadline stands
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting = what
        if what is not None:
            limits = self.guarded.limits
            seconds = limits.head_seconds if what == "head" else limits.body_seconds
            self._timer = self.loop.call_later(  # type: ignore[attr-defined]
                seconds, self._expired, what)

    def _expired(self, what: str) -> None:
        self._timer = None
        self._waiting = None
        if not self.transport.is_closing():  # type: ignore[attr-defined]
            self.guarded.tally.add(what, self._who)
            self.transport.abort()  # type: ignore[attr-defined]


async def read_body(receive: Callable[[], Any], limit: int) -> bytes | None:
    """A request's body from an ASGI ``receive``, or None as soon as it passes ``limit`` bytes
    (the rest is never read)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def declared_too_large(headers: dict[str, str], limit: int) -> bool:
    """True when a request's Content-Length is over ``limit`` (or is not a number)."""
    length = headers.get("content-length")
    if length is None:
        return False
    return not length.strip().isdigit() or int(length) > limit
