"""DHCP lease decisions (RFC 2131 §4.3): the reply, given the lease table, a request and the time.

No I/O and no clock here: ``decide`` is called with ``now`` and changes only the table it is given,
so every case of the RFC is a table-driven unit test. The server loop persists the table and sends
replies.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from wvpclab.dhcp.message import (
    CLIENT_PORT,
    SERVER_PORT,
    ZERO,
    IPv4,
    MessageType,
    Option,
    Reply,
    Request,
    u32,
)

#: Lease states. An expired or released record is kept so that the client gets its address back
#: while nobody else took it.
OFFERED, BOUND, RELEASED = "offered", "bound", "released"
BROADCAST = IPv4("255.255.255.255")


@dataclass(frozen=True)
class PoolConfig:
    """One network's DHCP service."""

    network: ipaddress.IPv4Network
    start: IPv4
    end: IPv4
    server: IPv4
    lease_time: int = 3600
    router: IPv4 | None = None
    dns: tuple[IPv4, ...] = ()
    excluded: frozenset[IPv4] = frozenset()
    offer_hold: int = 30
    decline_hold: int = 3600

    def __post_init__(self) -> None:
        if not (self.start in self.network and self.end in self.network and self.start <= self.end):
            raise ValueError(f"pool {self.start}-{self.end} is not inside {self.network}")

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1

    def in_pool(self, ip: IPv4) -> bool:
        return self.start <= ip <= self.end and ip not in self.excluded and ip != self.server

    def options(self, lease: bool) -> tuple[tuple[int, bytes], ...]:
        """Options of an OFFER/ACK: lease time and T1/T2 (when a lease), mask, router and DNS (only
        where the network has them)."""
        opts: list[tuple[int, bytes]] = []
        if lease:
            opts += [(Option.LEASE_TIME, u32(self.lease_time)),
                     (Option.RENEWAL_T1, u32(self.lease_time // 2)),
                     (Option.REBINDING_T2, u32(self.lease_time * 7 // 8))]
        opts.append((Option.SUBNET_MASK, self.network.netmask.packed))
        if self.router is not None:
            opts.append((Option.ROUTER, self.router.packed))
        if self.dns:
            opts.append((Option.DNS, b"".join(d.packed for d in self.dns)))
        return tuple(opts)


@dataclass
class Lease:
    """One client's address and how long it holds it (``expires`` in seconds since the epoch)."""

    client: str
    ip: IPv4
    expires: float
    state: str
    mac: str = ""
    hostname: str | None = None

    def active(self, now: float) -> bool:
        """True while the address is the client's (bound or offered, not yet expired)."""
        return self.state in (BOUND, OFFERED) and self.expires > now

    def as_dict(self) -> dict[str, Any]:
        return {"client": self.client, "ip": str(self.ip), "expires": self.expires,
                "state": self.state, "mac": self.mac, "hostname": self.hostname}


@dataclass
class LeaseTable:
    """Every client record and declined address of one network."""

    by_client: dict[str, Lease] = field(default_factory=dict)
    by_ip: dict[IPv4, Lease] = field(default_factory=dict)
    declined: dict[IPv4, float] = field(default_factory=dict)
    cursor: int = 0  # next never-used pool offset
    #: Changes not yet on disk, as journal records ({"set": lease}, {"drop": client},
    #: {"decline": ip, "until": t}); the server appends them to its journal and clears this.
    journal: list[dict[str, Any]] = field(default_factory=list)

    def set(self, lease: Lease) -> None:
        if lease.state != OFFERED:  # an offer is not kept across a restart
            self.journal.append({"set": lease.as_dict()})
        self._set(lease)

    def _set(self, lease: Lease) -> None:
        old = self.by_client.get(lease.client)
        if old is not None and self.by_ip.get(old.ip) is old and old.ip != lease.ip:
            del self.by_ip[old.ip]
        other = self.by_ip.get(lease.ip)
        if other is not None and other.client != lease.client:
            self.by_client.pop(other.client, None)  # the address went to someone else
        self.by_client[lease.client] = lease
        self.by_ip[lease.ip] = lease

    def drop(self, client: str) -> None:
        if client in self.by_client:
            self.journal.append({"drop": client})
        lease = self.by_client.pop(client, None)
        if lease is not None and self.by_ip.get(lease.ip) is lease:
            del self.by_ip[lease.ip]

    def free_for(self, ip: IPv4, client: str, now: float) -> bool:
        """True if ``client`` may have ``ip``: nobody else holds it and it is not set aside."""
        until = self.declined.get(ip)
        if until is not None and until > now:
            return False
        holder = self.by_ip.get(ip)
        return holder is None or holder.client == client or not holder.active(now)

    def allocate(self, cfg: PoolConfig, client: str, now: float) -> IPv4 | None:
        """A free address for a new client: never-used ones first, then the longest expired."""
        base = int(cfg.start)
        while self.cursor < cfg.size:
            ip = IPv4(base + self.cursor)
            self.cursor += 1
            if cfg.in_pool(ip) and ip not in self.by_ip and self.free_for(ip, client, now):
                return ip
        candidates = [lease for lease in self.by_ip.values()
                      if not lease.active(now) and cfg.in_pool(lease.ip)
                      and self.free_for(lease.ip, client, now)]
        if candidates:
            return min(candidates, key=lambda lease: lease.expires).ip
        for offset in range(cfg.size):  # addresses freed by DECLINE expiry or dropped offers
            ip = IPv4(base + offset)
            if cfg.in_pool(ip) and ip not in self.by_ip and self.free_for(ip, client, now):
                return ip
        return None

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        """The table for people: one dict per record, with seconds left."""
        rows = []
        for lease in sorted(self.by_ip.values(), key=lambda lease: lease.ip):
            row = lease.as_dict()
            shown = lease.active(now) or lease.state == RELEASED
            row["state"] = lease.state if shown else "expired"
            row["remaining"] = max(0, int(lease.expires - now))
            rows.append(row)
        return rows

    # -- persistence (the server writes this dict atomically) --------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"version": 1,
                "leases": [lease.as_dict() for lease in self.by_client.values()
                           if lease.state != OFFERED],
                "declined": {str(ip): until for ip, until in self.declined.items()}}

    def decline(self, ip: IPv4, until: float) -> None:
        self.declined[ip] = until
        self.journal.append({"decline": str(ip), "until": until})

    @staticmethod
    def _lease(row: dict[str, Any]) -> Lease:
        return Lease(client=row["client"], ip=IPv4(row["ip"]), expires=float(row["expires"]),
                     state=row["state"], mac=row.get("mac", ""), hostname=row.get("hostname"))

    @classmethod
    def from_json(cls, data: dict[str, Any], journal: list[dict[str, Any]] = ()) -> LeaseTable:
        """The table from a snapshot and the journal records written after it (replaying a record
        that the snapshot already holds changes nothing)."""
        table = cls()
        for row in data.get("leases", []):
            table._set(cls._lease(row))
        table.declined = {IPv4(ip): float(until) for ip, until in data.get("declined", {}).items()}
        for record in journal:
            if "set" in record:
                table._set(cls._lease(record["set"]))
            elif "drop" in record:
                table.drop(record["drop"])
            elif "decline" in record:
                table.declined[IPv4(record["decline"])] = float(record["until"])
        table.journal.clear()
        return table


@dataclass(frozen=True)
class Decision:
    """What to do with one request: the reply (or None), whether the table must reach the disk
    before the reply leaves, and a note for the log."""

    reply: Reply | None
    persist: bool = False
    note: str | None = None


def _ack(cfg: PoolConfig, req: Request, ip: IPv4) -> Reply:
    return Reply(MessageType.ACK, req, yiaddr=ip, server_id=cfg.server, options=cfg.options(True))


def _nak(cfg: PoolConfig, req: Request, why: str) -> Decision:
    reply = Reply(MessageType.NAK, req, server_id=cfg.server,
                  options=((Option.MESSAGE, why.encode()[:250]),))
    return Decision(reply, note=f"NAK {req.client_key}: {why}")


def _bind(table: LeaseTable, cfg: PoolConfig, req: Request, ip: IPv4, now: float) -> Decision:
    table.set(Lease(req.client_key, ip, now + cfg.lease_time, BOUND, req.mac, req.hostname))
    return Decision(_ack(cfg, req, ip), persist=True)


def decide(table: LeaseTable, cfg: PoolConfig, req: Request, now: float) -> Decision:
    """The server's answer to ``req`` at time ``now`` (RFC 2131 §4.3), updating ``table``."""
    key = req.client_key
    if req.giaddr != ZERO and req.giaddr not in cfg.network:
        return Decision(None, note=f"relayed from {req.giaddr}, outside {cfg.network}: ignored")
    known = table.by_client.get(key)
    mtype = req.mtype

    if mtype == MessageType.DISCOVER:
        ip = None
        if known is not None and cfg.in_pool(known.ip) and table.free_for(known.ip, key, now):
            ip = known.ip
        elif (req.requested_ip is not None and cfg.in_pool(req.requested_ip)
              and table.free_for(req.requested_ip, key, now)):
            ip = req.requested_ip
        else:
            ip = table.allocate(cfg, key, now)
        if ip is None:
            return Decision(None, note=f"pool {cfg.start}-{cfg.end} exhausted: no offer for {key}")
        if known is None or known.ip != ip or not known.active(now) or known.state != BOUND:
            table.set(Lease(key, ip, now + cfg.offer_hold, OFFERED, req.mac, req.hostname))
        return Decision(Reply(MessageType.OFFER, req, yiaddr=ip, server_id=cfg.server,
                              options=cfg.options(True)))

    if mtype == MessageType.REQUEST:
        if req.server_id is not None:  # SELECTING
            if req.server_id != cfg.server:
                if known is not None and known.state == OFFERED:
                    table.drop(key)
                return Decision(None, note=f"{key} chose server {req.server_id}")
            ip = req.requested_ip
            if ip is None:
                return Decision(None, note=f"{key}: REQUEST (selecting) without an address")
            if known is not None and known.ip == ip and table.free_for(ip, key, now):
                return _bind(table, cfg, req, ip, now)
            return _nak(cfg, req, f"{ip} was not offered to this client")
        if req.ciaddr == ZERO:  # INIT-REBOOT
            ip = req.requested_ip
            if ip is None:
                return Decision(None, note=f"{key}: REQUEST without an address")
            if ip not in cfg.network:
                return _nak(cfg, req, f"{ip} is not on this network ({cfg.network})")
            if known is None:
                return Decision(None, note=f"{key}: INIT-REBOOT for {ip}, no record: silent")
            if known.ip == ip and cfg.in_pool(ip) and table.free_for(ip, key, now):
                return _bind(table, cfg, req, ip, now)
            return _nak(cfg, req, f"{ip} is not this client's address")
        ip = req.ciaddr  # RENEWING (unicast) or REBINDING (broadcast)
        if ip not in cfg.network:
            return _nak(cfg, req, f"{ip} is not on this network ({cfg.network})")
        if known is not None and known.ip == ip and table.free_for(ip, key, now):
            return _bind(table, cfg, req, ip, now)
        if cfg.in_pool(ip) and table.free_for(ip, key, now) and ip not in table.by_ip:
            return _bind(table, cfg, req, ip, now)  # a client we lost track of: keep it there
        return _nak(cfg, req, f"{ip} is not this client's address")

    if mtype == MessageType.DECLINE:
        if req.server_id is not None and req.server_id != cfg.server:
            return Decision(None)
        ip = req.requested_ip
        if ip is None or ip not in cfg.network:
            return Decision(None, note=f"{key}: DECLINE without a usable address")
        if known is not None and known.ip == ip:
            table.drop(key)
        table.decline(ip, now + cfg.decline_hold)
        return Decision(None, persist=True, note=f"{key} declined {ip}: set aside")

    if mtype == MessageType.RELEASE:
        if known is not None and known.ip == req.ciaddr and known.state == BOUND:
            table.set(Lease(key, known.ip, now, RELEASED, known.mac, known.hostname))
            return Decision(None, persist=True, note=f"{key} released {req.ciaddr}")
        return Decision(None)

    if mtype == MessageType.INFORM:
        return Decision(Reply(MessageType.ACK, req, server_id=cfg.server,
                              options=cfg.options(False)))
    return Decision(None)


def destination(req: Request, reply: Reply) -> tuple[IPv4, int]:
    """Where a reply goes (RFC 2131 §4.1): a relay gets it on the server port; a client with an
    address gets it unicast; otherwise broadcast (a NAK always, and OFFER/ACK to a client with no
    address yet, since this server does not write ARP entries)."""
    if req.giaddr != ZERO:
        return req.giaddr, SERVER_PORT
    if reply.mtype == MessageType.NAK:
        return BROADCAST, CLIENT_PORT
    if req.ciaddr != ZERO:
        return req.ciaddr, CLIENT_PORT
    return BROADCAST, CLIENT_PORT
