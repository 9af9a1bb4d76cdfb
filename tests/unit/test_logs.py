"""Bounded logs without root: the capped writer keeps at most its cap in a log and one older file,
whatever is written, and says which path it could not write; the pump reads a real pipe into one,
stamping lines, and sees a process's start line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from wvpclab.runtime import logs

CAP = 64 * 1024


def test_a_log_never_holds_more_than_its_cap_and_one_older_file(tmp_path: Path) -> None:
    path = tmp_path / "dns+gw.office.log"
    log = logs.CappedFile(path, CAP)
    line = "dnsmasq[1]: query[A] flood-0123456789 from 192.168.50.101\n"
    for i in range(20_000):  # about 1.2 MB: eighteen times the cap
        log.write(line.replace("0123456789", f"{i:010d}"))
        assert path.stat().st_size <= CAP
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["dns+gw.office.log", "dns+gw.office.log.1"]  # one older file, no more
    assert logs.older(path).stat().st_size <= CAP
    newest = path.read_text().splitlines()
    assert newest[-1].endswith("flood-0000019999 from 192.168.50.101")  # the latest lines stay
    assert all(line.startswith("dnsmasq[1]: query[A] flood-") for line in newest)  # whole lines
    assert log.rotations >= 17 and log.lost == 0


def test_one_write_larger_than_the_cap_keeps_its_end(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    log = logs.CappedFile(path, CAP)
    log.write(b"x" * (3 * CAP) + b"the end\n")
    log.close()
    assert path.stat().st_size == CAP and path.read_bytes().endswith(b"the end\n")
    assert log.lost == 2 * CAP + len(b"the end\n")


def test_a_log_full_when_opened_again_is_rotated_before_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "dhcp+lan+office.log"
    path.write_bytes(b"old\n" * (CAP // 4))  # exactly at its cap (a restarted server's log)
    log = logs.CappedFile(path, CAP)
    log.write("serving\n")
    log.close()
    assert path.read_text() == "serving\n" and logs.older(path).stat().st_size == CAP
    with logs.for_child(path, 8) as child:  # a child's stderr: rotated first when at its cap
        child.write(b"traceback\n")
    assert path.read_text() == "traceback\n" and logs.older(path).read_text() == "serving\n"


def test_a_write_the_disk_refuses_is_dropped_and_names_its_path(tmp_path: Path) -> None:
    # a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored): the kernel refuses writes past 4 KiB, as a
    # full disk refuses them, in a process of its own
    path = tmp_path / "server-web.log"
    code = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from wvpclab.runtime.logs import CappedFile
log = CappedFile({str(path)!r}, 1 << 20)
for i in range(200):
    log.write(f"http 192.168.50.101:{{40000 + i}} GET / HTTP/1.1\\n")
print(log.error)
print(log.lost)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True, cwd=Path(__file__).resolve().parents[2])
    error, lost = res.stdout.splitlines()
    assert error == f"cannot write {path}: File too large"
    assert int(lost) > 0 and path.stat().st_size <= 4096


def test_the_pump_reads_a_pipe_into_a_capped_log_and_sees_the_start_line(tmp_path: Path) -> None:
    path = tmp_path / "dns+pc.log"
    read, write = os.pipe()
    pump = logs.Pump(os.fdopen(read, "rb"), logs.CappedFile(path, CAP), b"started, version")
    pump.start()

    def flood() -> None:
        with os.fdopen(write, "wb") as out:
            out.write(b"dnsmasq[7]: star")  # the start line, cut across two reads
            out.flush()
            out.write(b"ted, version 2.90 cachesize 150\n")
            for i in range(30_000):
                out.write(f"dnsmasq[7]: query[A] n{i} from 192.168.131.1\n".encode())

    writer = threading.Thread(target=flood)
    writer.start()
    assert pump.seen.wait(10)
    writer.join(30)
    pump.join(30)
    assert not pump.is_alive()  # the pipe closed: the pump ends, its log closed
    assert path.stat().st_size <= CAP and logs.older(path).stat().st_size <= CAP
    last = path.read_text().splitlines()[-1]
    assert last.endswith(" dnsmasq[7]: query[A] n29999 from 192.168.131.1")
    assert last[:3].isalpha() and last[3] == " "  # stamped: "Dec 07 18:42:01 dnsmasq[7]: ..."
    assert "n29999" in pump.tail


def test_a_cap_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        logs.CappedFile(tmp_path / "x.log", 0)


def test_run_says_where_its_logs_go() -> None:
    line = logs.where(Path("/run/wvpclab/wv3fa"))
    assert line.startswith("logs: /run/wvpclab/wv3fa/ ")
    assert "capped at 1 MiB" in line and "one older file kept" in line


def test_the_pump_says_once_which_log_it_cannot_write(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gone" / "dns+gw.office.log"  # (its directory is not there)
    read, write = os.pipe()
    pump = logs.Pump(os.fdopen(read, "rb"), logs.CappedFile(path, CAP))
    pump.start()
    with os.fdopen(write, "wb") as out:
        for i in range(100):
            out.write(f"dnsmasq[7]: query[A] n{i} from 192.168.50.101\n".encode())
            out.flush()
    pump.join(10)
    err = capsys.readouterr().err
    assert err.count("wvpclab: warning: cannot write ") == 1, err
    assert f"cannot write {path}: No such file or directory" in err


def test_the_controllers_log_is_capped_with_what_python_writes_to_stderr(tmp_path: Path) -> None:
    path = tmp_path / "controller.log"
    code = f"""
import logging, sys
from controllers.main import LOG_CAP, setup_logging
setup_logging({str(path)!r})
log = logging.getLogger("wvpclab.controller")
for i in range(40_000):  # e.g. a guest's new source addresses, each learned
    log.info("switch 0x1: learned 02:00:00:00:%02x:%02x -> port 3", i >> 8, i & 255)
print("a thread's traceback", file=sys.stderr)
print(LOG_CAP)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True, cwd=Path(__file__).resolve().parents[2])
    cap = int(res.stdout)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["controller.log", "controller.log.1"]
    assert all(p.stat().st_size <= cap for p in tmp_path.iterdir())
    assert "ERROR wvpclab.stderr: a thread's traceback" in path.read_text()
    assert res.stderr == ""
