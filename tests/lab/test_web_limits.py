"""The lab's page under load, on a running lab (issue 27): an unprivileged local user's flood of
half-open connections (a header line every few seconds) while NIC changes run, and an oversized
body with the token. The changes succeed, the page answers within a second, the lab's open files
stay bounded and come back down (the server closes the slow connections), its memory does not
balloon, and the refusals are logged as counts, not tracebacks."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.helpers import wait_for
from wvpclab.runtime.lab import Lab

pytestmark = pytest.mark.lab

NAME = "t-web-limits"
NOBODY = 65534

#: The flood, run as user nobody: keeps up to COUNT connections to 127.0.0.1:PORT open, each sent
#: the start of a request head and then a header line every EVERY s, opening new ones (at most
#: RATE a second) as the server closes them, for FLOOD s; then HOLD s more without opening any;
#: then it ends itself. Prints its counts as a JSON line each 0.5 s.
FLOOD = r'''
import json, os, resource, select, socket, sys, time
port, count, every, flood, hold, rate = (int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]),
                                         float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
count = min(count, hard - 64)
poll = select.epoll()
socks = {}                 # fd -> [socket, connected, next line at]
opened = closed = 0
start = time.monotonic()
last_say = 0.0
def close(fd):
    global closed
    s = socks.pop(fd)[0]
    poll.unregister(fd)
    s.close()
    closed += 1
def say(phase):
    print(json.dumps({"phase": phase, "uid": os.getuid(), "opened": opened, "closed": closed,
                      "open": sum(1 for v in socks.values() if v[1]), "pending": len(socks),
                      "t": round(time.monotonic() - start, 2)}), flush=True)
while True:
    now = time.monotonic() - start
    phase = "flood" if now < flood else "hold" if now < flood + hold else "end"
    if phase == "end":
        break
    if phase == "hold" and len(socks) > sum(1 for v in socks.values() if v[1]):
        for fd in [fd for fd, v in socks.items() if not v[1]]:
            close(fd)      # no connect left pending: nothing new reaches the page now
    if phase == "flood":
        budget = int(now * rate) - opened   # at most RATE a second, however fast this loop runs
        while len(socks) < count and budget > 0:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks[s.fileno()] = [s, False, 0.0]
            poll.register(s.fileno(), select.EPOLLOUT | select.EPOLLIN | select.EPOLLRDHUP)
            opened += 1
            budget -= 1
    for fd, ev in poll.poll(0.05):
        if fd not in socks:
            continue
        entry = socks[fd]
        if ev & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP | select.EPOLLRDHUP):
            close(fd)          # the server answered or closed it: it is gone
            continue
        if ev & select.EPOLLOUT and not entry[1]:
            try:
                entry[0].send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            except OSError:
                close(fd)
                continue
            entry[1], entry[2] = True, now + every
            poll.modify(fd, select.EPOLLIN | select.EPOLLRDHUP)
    for fd, entry in list(socks.items()):
        if entry[1] and entry[2] <= now:
            try:
                entry[0].send(b"X-Slow: 1\r\n")
                entry[2] = now + every
            except OSError:
                close(fd)
    if now - last_say >= 0.5:
        last_say = now
        say(phase)
say("end")
'''


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class MostOpenFiles:
    """The most files the process held, looked at every 10 ms by a thread until ``stop``."""

    def __init__(self) -> None:
        self.most = open_files()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.most = max(self.most, open_files())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.most


class Flood:
    """The flood script, run as nobody, its JSON lines read by a thread (latest in ``last``)."""

    def __init__(self, port: int, count: int, every: float, flood: float, hold: float,
                 rate: int) -> None:
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-c", FLOOD, str(port), str(count), str(every), str(flood),
             str(hold), str(rate)], user=NOBODY, group=NOBODY, extra_groups=[], cwd="/",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict] = queue.Queue()
        self.last: dict[str, Any] = {}
        self.most_open = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.last = json.loads(line)
                self.most_open = max(self.most_open, self.last["open"])

    def end(self, timeout: float) -> str:
        """Waits for the flood to end itself (killed by its PID if it overstays); its stderr."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise
        finally:
            err = self.proc.stderr.read() if self.proc.stderr else ""
        return err


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = tmp_path_factory.mktemp("web-limits") / f"{NAME}.yaml"
    path.write_text(yaml.safe_dump({
        "name": NAME, "pcs": {"pc": {}}, "internal": {"lab": None},
        "vms": {"a": {"nics": [{"internal": "lab", "ip": "169.254.7.1/16"}, "none"]}}}))
    with Lab.load(path, quiet=True) as lab:
        lab.web_page()
        yield lab


def get_state(lab: Lab) -> tuple[int, float]:
    start = time.monotonic()
    request = urllib.request.Request(f"http://127.0.0.1:{lab.web.port}/api/state",
                                     headers={"X-Wvpclab-Token": lab.web.token})
    with urllib.request.urlopen(request, timeout=10) as res:
        json.loads(res.read())
        return res.status, time.monotonic() - start


def test_a_local_user_s_flood_of_slow_connections_leaves_changes_and_the_page_working(
        lab: Lab, capfd: pytest.CaptureFixture[str]) -> None:
    limits = lab.web.guarded.limits
    # a whole request (and its connection's end) first, so the baseline is the page at rest
    assert get_state(lab)[0] == 200
    wait_for(lambda: lab.web.guarded.gate.count == 0, 10, what="the page at rest")
    before, rss_before = open_files(), rss_mb()
    capfd.readouterr()

    flood = Flood(lab.web.port, count=3000, every=3, flood=20, hold=limits.head_seconds + 6,
                  rate=2000)
    try:
        watch = MostOpenFiles()
        wait_for(lambda: flood.last.get("opened", 0) >= 2000, 20, what="the flood under way")
        started = time.monotonic()
        assert lab.set_nic("a", 1, "internal:lab") is True
        moved = time.monotonic() - started
        status, took = get_state(lab)
        assert status == 200 and took < 1.0, took
        nic = lab.graph_snapshot().nodes["a/1"]
        assert (nic["mode"], nic["target"]) == ("internal", "lab")
        assert lab.clients[("a", 1)].lease(), "the moved NIC holds no lease"
        started = time.monotonic()
        assert lab.cable("a", 1, False) is True  # and pulled, while the flood goes on
        pulled = time.monotonic() - started
        assert get_state(lab)[1] < 1.0
        assert flood.last["phase"] == "flood", "the flood ended before the changes did"
        most = watch.stop()
        # the page held at most its user's cap, plus what asyncio accepted and has not closed
        # yet (four batches at most), plus a few of the lab's own for the change
        assert most - before <= limits.per_user + 4 * limits.backlog + 16, (before, most)
        # the flood stops opening and keeps trickling: the server closes what is left
        wait_for(lambda: flood.last.get("phase") == "hold", 30, what="the flood's hold")
        try:
            wait_for(lambda: flood.last.get("open", 1) == 0 and open_files() <= before + 4,
                     limits.head_seconds + 4, what="the slow connections closed by the server")
        except AssertionError as err:
            raise AssertionError(f"{err}: {flood.last}, {open_files()} open files in the lab "
                                 f"({before} before), the page's gate holds "
                                 f"{lab.web.guarded.gate.open}") from None
        after = open_files()
        assert flood.proc.poll() is None, "the flood ended before the server closed its connections"
        print(f"open files: {before} before, {most} at most during the flood, {after} after; "
              f"flood: {flood.last['opened']} connections opened, at most {flood.most_open} open "
              f"at once; set_nic took {moved:.2f} s, cable {pulled:.2f} s; "
              f"RSS {rss_before:.0f} -> {rss_mb():.0f} MB")
        err = flood.end(60)
        assert err == "", err
    finally:
        if flood.proc.poll() is None:
            flood.proc.kill()
            flood.proc.wait(10)
    lab.cable("a", 1, True)
    assert get_state(lab)[0] == 200
    # the refusals in counts: a line per interval (the flood lasted more than two), no traceback
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, err
    assert all(line.startswith("wvpclab: the page's limits") for line in lines), err[:2000]
    assert "Traceback" not in err and len(err) < 8000, err[:2000]
    assert "over its user's 32 open) [uid 65534 (nobody)" in err, err
    assert "closed without a whole request head in 5 s [uid 65534 (nobody)" in err, err
    print(out + err)


def post_large(lab: Lab, head_extra: bytes, total: int, seconds: float) -> tuple[bytes, int]:
    """Sends a POST /api/nic with the token and a body of ``total`` bytes (or until the server
    answers, or ``seconds`` pass); returns the answer and how many body bytes went."""
    head = (b"POST /api/nic HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-Wvpclab-Token: " + lab.web.token.encode() + b"\r\n" + head_extra + b"\r\n")
    chunk = b"x" * (1 << 20)
    sent = 0
    deadline = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", lab.web.port), timeout=10) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):
            while sent < total and time.monotonic() < deadline:
                readable, writable, _ = select.select([sock], [sock], [], 1)
                if readable:
                    break
                if writable:
                    sent += sock.send(chunk if b"chunked" not in head_extra else
                                      b"100000\r\n" + chunk + b"\r\n")
        answer = b""
        with contextlib.suppress(OSError):
            while chunk_in := sock.recv(65536):
                answer += chunk_in
    return answer, sent


def test_an_oversized_body_with_the_token_is_refused_and_the_lab_s_memory_stays(lab: Lab) -> None:
    rss_before = rss_mb()
    big = 300 * 1000 * 1000
    answer, sent = post_large(lab, b"Content-Length: %d\r\n" % big, big, 60)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"at most 64 KiB" in answer and sent < 32 << 20, sent
    answer, sent = post_large(lab, b"Transfer-Encoding: chunked\r\n", big, 60)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 32 << 20, sent
    grew = rss_mb() - rss_before
    assert grew < 30, f"the lab grew by {grew:.0f} MB"
    assert lab.web.guarded.tally.totals["large"] >= 2
    # a change within the cap is still served
    assert get_state(lab)[0] == 200
    print(f"413 after {sent} bytes sent; RSS {rss_before:.0f} -> {rss_mb():.0f} MB")
