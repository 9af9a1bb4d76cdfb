"""Interfaces' carrier and IPv4 address read inside other network namespaces without a process:
one thread of this process enters a node's namespace (``setns``, which moves the calling thread
alone), asks the kernel with ``ioctl`` on a socket made there, and comes back.

A 100-VM lab's page used to start a process per VM for each look (``ip -j addr`` through
``mnexec``); this reads the same in a fraction of the time (``bench/web.py``). If the thread
cannot come back to its own namespace it is never used again (``broken``) and the caller falls
back to processes.
"""

from __future__ import annotations

import array
import concurrent.futures
import ctypes
import errno
import fcntl
import os
import socket
import struct
from typing import Any

CLONE_NEWNET = 0x40000000
SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
SIOCETHTOOL = 0x8946
ETHTOOL_GLINK = 0x0000000A
_IFNAMSIZ = 16


def read_interface(sock: socket.socket, name: str) -> dict[str, Any] | None:
    """Carrier (ethtool's link state) and primary IPv4 address (``a.b.c.d/n``) of interface
    ``name`` in the namespace ``sock`` was made in; None when there is no such interface."""
    ifname = name.encode()[:_IFNAMSIZ - 1]
    link = array.array("I", [ETHTOOL_GLINK, 0])
    try:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL,
                    struct.pack("16sP", ifname, link.buffer_info()[0]))
    except OSError as err:
        if err.errno == errno.ENODEV:  # no such interface
            return None
        link[1] = 0  # no ethtool link state: say no carrier
    addresses = []
    ifreq = struct.pack("16s16x", ifname)
    try:
        addr = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, ifreq)[20:24]
        mask = fcntl.ioctl(sock.fileno(), SIOCGIFNETMASK, ifreq)[20:24]
        prefix = int.from_bytes(mask, "big").bit_count()
        addresses.append(f"{socket.inet_ntoa(addr)}/{prefix}")
    except OSError:  # EADDRNOTAVAIL: no IPv4 address
        pass
    return {"carrier": bool(link[1]), "addresses": addresses}


class NetnsReader:
    """Reads interfaces inside network namespaces (by a process's PID) from one dedicated thread."""

    def __init__(self) -> None:
        self.broken = False
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wvpclab-netns")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def read(self, pids: dict[str, int], names: list[str],
             timeout: float = 10) -> dict[str, dict[str, dict[str, Any]]]:
        """Per key of ``pids``: interface name -> carrier and addresses (interfaces that are not
        there are left out; a namespace that cannot be entered is left out whole)."""
        if self.broken:
            raise OSError("the namespace reader could not come back to its own namespace")
        return self._pool.submit(self._read_all, pids, names).result(timeout)

    def _setns(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def _read_all(self, pids: dict[str, int], names: list[str]
                  ) -> dict[str, dict[str, dict[str, Any]]]:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        out: dict[str, dict[str, dict[str, Any]]] = {}
        try:
            for key, pid in pids.items():
                try:
                    there = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
                except OSError:  # the node went
                    continue
                try:
                    self._setns(there)
                    try:
                        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                            found = {n: read_interface(sock, n) for n in names}
                        out[key] = {n: v for n, v in found.items() if v is not None}
                    finally:
                        try:
                            self._setns(home)
                        except OSError:
                            self.broken = True
                            raise
                except OSError:
                    if self.broken:
                        raise
                finally:
                    os.close(there)
        finally:
            os.close(home)
        return out
