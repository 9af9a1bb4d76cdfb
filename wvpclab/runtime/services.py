"""What a LAN server answers so a user can try it: TCP and UDP echo (port 7) and HTTP (port 80).

Run in a server's node as ``python -m wvpclab.runtime.services --name web``. The HTTP page names
the server
and the client's address as the server sees it (``you are 192.168.50.101``), so NAT and bridging are
visible with curl alone; every request is logged, one line per request, with the client's address,
in a log capped at ``logs.CAP`` (one older file kept): a client's flood costs old lines, not the
disk.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from wvpclab.runtime.logs import CappedFile

READY_LINE = "wvpclab-services ready"


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, log) -> None:
        self.log = log

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.log(f"udp echo {addr[0]}:{addr[1]} {len(data)} bytes")
        self.transport.sendto(data, addr)


async def _serve(name: str, bind: str, out: Any) -> None:
    def log(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        log(f"tcp echo {peer[0]}:{peer[1]}")
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            first = request.split(b"\r\n", 1)[0].decode("latin-1")
            log(f"http {peer[0]}:{peer[1]} {first}")
            body = f"{name}: hello from {name}; you are {peer[0]}\n".encode()
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                         + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                         + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    await asyncio.start_server(echo, bind, 7)
    await asyncio.start_server(http, bind, 80)
    await loop.create_datagram_endpoint(lambda: _Udp(log), local_addr=(bind, 7))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(READY_LINE, flush=True)
    await stop.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wvpclab.runtime.services")
    p.add_argument("--name", required=True)
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--log", type=Path)
    args = p.parse_args(argv)
    if args.log:
        out = CappedFile(args.log)
        sys.stderr = out  # (what Python itself says goes there too)
        try:
            asyncio.run(_serve(args.name, args.bind, out))
        finally:
            out.close()
    else:
        asyncio.run(_serve(args.name, args.bind, sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
