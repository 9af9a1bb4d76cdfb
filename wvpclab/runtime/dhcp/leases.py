"""DHCP lease decisions (RFC 2131 §4.3): the reply, given the lease table, a request and the time.

No I/O and no clock here: ``decide`` is called with ``now`` and changes only the table it is given,
so every case of the RFC is a table-driven unit test. The server loop persists the table and sends
replies.

One guest, one identity: a lease belongs to its client identifier *and* the hardware address (and
relay) it was made for; only a request from that hardware address (through that relay, or none)
may renew, decline or release it. A hardware address holds at most ``max_per_mac`` leases and has
at most as many addresses set aside by its DECLINEs, and when the server is told which hardware
addresses it knows, the others get no new address from the last ``reserve`` free ones.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from wvpclab.runtime.dhcp.message import ZERO, IPv4, Reply, Request, u32
from wvpclab.wire import DHCP_CLIENT_PORT, DHCP_SERVER_PORT, MessageType, Option

#: Lease states. An expired or released record is kept so that the client gets its address back
#: while nobody else took it.
OFFERED, BOUND, RELEASED = "offered", "bound", "released"
BROADCAST = IPv4("255.255.255.255")
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
#: Leases one hardware address may hold at once (different client identifiers on one NIC: a few
#: operating systems on one guest, a PXE stage and the OS), and addresses its DECLINEs may set
#: aside.
MAX_PER_MAC = 4


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
    #: Hardware addresses the server knows (lower case); None: everyone is known.
    known: frozenset[str] | None = None
    #: Free addresses kept for known hardware addresses; None: max(8, a tenth of the pool).
    reserve: int | None = None
    max_per_mac: int = MAX_PER_MAC

    def __post_init__(self) -> None:
        if not (self.start in self.network and self.end in self.network and self.start <= self.end):
            raise ValueError(f"pool {self.start}-{self.end} is not inside {self.network}")
        if self.reserve is None:
            object.__setattr__(self, "reserve", max(8, self.size // 10))
        elif self.reserve < 0:
            raise ValueError(f"reserve {self.reserve} is negative")

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1

    @cached_property
    def usable(self) -> int:
        """How many pool addresses may be handed out (the pool but exclusions and the server)."""
        taken = {ip for ip in self.excluded | {self.server} if self.start <= ip <= self.end}
        return self.size - len(taken)

    def in_pool(self, ip: IPv4) -> bool:
        return self.start <= ip <= self.end and ip not in self.excluded and ip != self.server

    def is_known(self, mac: str) -> bool:
        return self.known is None or mac in self.known

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
    relay: IPv4 = ZERO  # the relay (giaddr) it was made through; 0.0.0.0 when none
    #: since when its client has held it bound under this hostname, renewal after renewal (the
    #: first holder of a name keeps it: ``hold_names``)
    since: float = 0.0

    def active(self, now: float) -> bool:
        """True while the address is the client's (bound or offered, not yet expired)."""
        return self.state in (BOUND, OFFERED) and self.expires > now

    def owned_by(self, req: Request) -> bool:
        """True when ``req`` may act for this lease's client: it comes from the same hardware
        address, and not through a relay unless the lease was made through that relay (anyone
        posing as a relay can name any chaddr)."""
        return self.mac == req.mac and (req.giaddr == ZERO or self.relay == req.giaddr)

    def as_dict(self) -> dict[str, Any]:
        return {"client": self.client, "ip": str(self.ip), "expires": self.expires,
                "state": self.state, "mac": self.mac, "hostname": self.hostname,
                "relay": str(self.relay) if self.relay != ZERO else "", "since": self.since}


@dataclass
class LeaseTable:
    """Every client record and declined address of one network."""

    by_client: dict[str, Lease] = field(default_factory=dict)
    by_ip: dict[IPv4, Lease] = field(default_factory=dict)
    #: hardware address -> the clients whose records carry it (so a DISCOVER counts them quickly)
    by_mac: dict[str, set[str]] = field(default_factory=dict)
    declined: dict[IPv4, float] = field(default_factory=dict)
    decliners: dict[IPv4, str] = field(default_factory=dict)  # who set each address aside
    cursor: int = 0  # next never-used pool offset
    #: Changes not yet on disk, as journal records ({"set": lease}, {"drop": client},
    #: {"decline": ip, "until": t, "mac": m}); the server appends them to its journal and clears
    #: this.
    journal: list[dict[str, Any]] = field(default_factory=list)

    def set(self, lease: Lease) -> None:
        if lease.state != OFFERED:  # an offer is not kept across a restart
            self.journal.append({"set": lease.as_dict()})
        self._set(lease)

    def _set(self, lease: Lease) -> None:
        old = self.by_client.get(lease.client)
        if old is not None:
            if self.by_ip.get(old.ip) is old and old.ip != lease.ip:
                del self.by_ip[old.ip]
            self._unindex(old)
        other = self.by_ip.get(lease.ip)
        if other is not None and other.client != lease.client:
            self.by_client.pop(other.client, None)  # the address went to someone else
            self._unindex(other)
        self.by_client[lease.client] = lease
        self.by_ip[lease.ip] = lease
        clients = self.by_mac.get(lease.mac)
        if clients is None:
            self.by_mac[lease.mac] = {lease.client}
        else:
            clients.add(lease.client)

    def _unindex(self, lease: Lease) -> None:
        clients = self.by_mac.get(lease.mac)
        if clients is not None:
            clients.discard(lease.client)
            if not clients:
                del self.by_mac[lease.mac]

    def drop(self, client: str) -> None:
        if client in self.by_client:
            self.journal.append({"drop": client})
        lease = self.by_client.pop(client, None)
        if lease is not None:
            if self.by_ip.get(lease.ip) is lease:
                del self.by_ip[lease.ip]
            self._unindex(lease)

    def held_by(self, mac: str, now: float, but: str = "") -> int:
        """How many leases hardware address ``mac`` holds now (offered or bound), ``but`` that of
        client ``but``."""
        clients = self.by_mac.get(mac)
        if not clients:  # most often: a DISCOVER's first
            return 0
        return sum(1 for client in clients
                   if client != but and self.by_client[client].active(now))

    def set_aside_by(self, mac: str, now: float) -> int:
        """How many addresses the DECLINEs of hardware address ``mac`` keep set aside now."""
        return sum(1 for ip, who in self.decliners.items()
                   if who == mac and self.declined.get(ip, 0) > now)

    def free_more_than(self, cfg: PoolConfig, count: int, now: float) -> bool:
        """True if more than ``count`` pool addresses are free (nobody holds them, none is set
        aside). Counting is O(1) while the table is small beside the pool, O(table) near the end."""
        if cfg.usable - len(self.by_ip) - len(self.declined) > count:
            return True  # every busy pool address is in by_ip or declined: a lower bound
        busy = {ip for ip, lease in self.by_ip.items() if lease.active(now) and cfg.in_pool(ip)}
        busy.update(ip for ip, until in self.declined.items() if until > now and cfg.in_pool(ip))
        return cfg.usable - len(busy) > count

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
            del row["since"]
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
                "declined": {str(ip): until for ip, until in self.declined.items()},
                "decliners": {str(ip): mac for ip, mac in self.decliners.items()}}

    def decline(self, ip: IPv4, until: float, mac: str = "") -> None:
        self.declined[ip] = until
        self.decliners[ip] = mac
        self.journal.append({"decline": str(ip), "until": until, "mac": mac})

    @staticmethod
    def _lease(row: dict[str, Any]) -> Lease:
        return Lease(client=row["client"], ip=IPv4(row["ip"]), expires=float(row["expires"]),
                     state=row["state"], mac=row.get("mac", ""), hostname=row.get("hostname"),
                     relay=IPv4(row.get("relay") or ZERO), since=float(row.get("since", 0.0)))

    @classmethod
    def from_json(cls, data: dict[str, Any], journal: list[dict[str, Any]] = ()) -> LeaseTable:
        """The table from a snapshot and the journal records written after it (replaying a record
        that the snapshot already holds changes nothing)."""
        table = cls()
        for row in data.get("leases", []):
            table._set(cls._lease(row))
        table.declined = {IPv4(ip): float(until) for ip, until in data.get("declined", {}).items()}
        table.decliners = {IPv4(ip): mac for ip, mac in data.get("decliners", {}).items()}
        for record in journal:
            if "set" in record:
                table._set(cls._lease(record["set"]))
            elif "drop" in record:
                table.drop(record["drop"])
            elif "decline" in record:
                table.decline(IPv4(record["decline"]), float(record["until"]),
                              record.get("mac", ""))
        table.journal.clear()
        return table


@dataclass(frozen=True)
class Decision:
    """What to do with one request: the reply (or None), whether the table must reach the disk
    before the reply leaves, a note for the log, and the name under which the server counts a
    refusal."""

    reply: Reply | None
    persist: bool = False
    note: str | None = None
    count: str | None = None


#: A hostname a client may be known by in its LAN's DNS: one label (RFC 1123), lower case.
HOSTNAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


#: Why a lease's hostname is not in its LAN's DNS (the server's stats keys; each refusal is
#: counted once, when it starts).
NAME_OF_THE_LAB = "hostname refused: a name of the lab"
NAME_OF_A_NODE = "hostname refused: another node's name"
NAME_HELD = "hostname refused: held by another lease"


@dataclass(frozen=True)
class NameRefusal:
    """A bound lease whose hostname its LAN's DNS does not answer with: why (``NAME_...``) and who
    holds the name (for the log)."""

    client: str
    mac: str
    ip: IPv4
    name: str
    why: str
    holder: str

    def note(self) -> str:
        return (f"{self.client} ({self.mac}, {self.ip}) asked for the name {self.name!r}: refused, "
                f"{self.holder} holds it")


def hold_names(table: LeaseTable, now: float, taken: frozenset[str] = frozenset(),
               owners: Mapping[str, frozenset[str]] | None = None,
               ) -> tuple[dict[str, IPv4], list[NameRefusal]]:
    """The names a LAN's DNS answers for its DHCP clients, as a home router's does, and the
    hostnames it refuses. Each bound lease's hostname (lower case) names its address, unless:

    - it is not one valid DNS label: left out;
    - it is one of the lab's own names (``taken``: servers, gateways, PCs' static adapters);
    - it is a node's name (``owners``: each node of the lab, with the hardware addresses its own
      NICs lease with) and the lease is not from one of that node's hardware addresses: a guest
      never takes a PC's or another guest's name, even while that node holds no lease;
    - another lease holds it: the first holder (the lease bound under that name the longest,
      renewal after renewal) keeps it while it lives.
    """
    owners = owners or {}
    refused: list[NameRefusal] = []
    wanting: dict[str, list[Lease]] = {}
    for lease in table.by_client.values():
        if lease.state != BOUND or lease.expires <= now or not lease.hostname:
            continue
        name = lease.hostname.lower()
        if not HOSTNAME_RE.match(name):
            continue
        if name in taken:
            refused.append(NameRefusal(lease.client, lease.mac, lease.ip, name, NAME_OF_THE_LAB,
                                       "the lab"))
        elif name in owners and lease.mac not in owners[name]:
            refused.append(NameRefusal(lease.client, lease.mac, lease.ip, name, NAME_OF_A_NODE,
                                       f"node {name}"))
        else:
            wanting.setdefault(name, []).append(lease)
    names: dict[str, IPv4] = {}
    for name, leases in wanting.items():
        first, *later = sorted(leases, key=lambda lease: (lease.since, lease.client))
        names[name] = first.ip
        for lease in later:
            if name in owners:  # one node's two NICs on one LAN: its name is its first's
                continue
            refused.append(NameRefusal(lease.client, lease.mac, lease.ip, name, NAME_HELD,
                                       f"{first.client} ({first.ip})"))
    return {name: names[name] for name in sorted(names)}, refused


def lease_names(table: LeaseTable, now: float, taken: frozenset[str] = frozenset(),
                owners: Mapping[str, frozenset[str]] | None = None) -> dict[str, IPv4]:
    """The names a LAN's DNS answers for its DHCP clients (``hold_names`` without refusals)."""
    return hold_names(table, now, taken, owners)[0]


#: What ``Decision.count`` says (the server's stats keys).
EXHAUSTED = "pool exhausted"
TOO_MANY = "refused: too many clients on one hardware address"
RESERVED = "refused: pool reserve (hardware address not known)"
NOT_ITS_OWN = "refused: client identifier held by another hardware address"
DECLINE_IGNORED = "ignored: DECLINE not from the holder"
DECLINES_CAPPED = "ignored: too many DECLINEs from one hardware address"
RELEASE_IGNORED = "ignored: RELEASE not from the holder"


def _ack(cfg: PoolConfig, req: Request, ip: IPv4) -> Reply:
    return Reply(MessageType.ACK, req, yiaddr=ip, server_id=cfg.server, options=cfg.options(True))


def _nak(cfg: PoolConfig, req: Request, why: str, count: str | None = None) -> Decision:
    reply = Reply(MessageType.NAK, req, server_id=cfg.server,
                  options=((Option.MESSAGE, why.encode()[:250]),))
    return Decision(reply, note=f"NAK {req.client_key}: {why}", count=count)


def _bind(table: LeaseTable, cfg: PoolConfig, req: Request, ip: IPv4, now: float) -> Decision:
    known = table.by_client.get(req.client_key)
    renewed = (known is not None and known.state == BOUND and known.active(now)
               and known.hostname == req.hostname)  # (it keeps its name, if it holds one)
    table.set(Lease(req.client_key, ip, now + cfg.lease_time, BOUND, req.mac, req.hostname,
                    req.giaddr, known.since if renewed else now))
    return Decision(_ack(cfg, req, ip), persist=True)


def _theirs(lease: Lease | None, req: Request, now: float) -> bool:
    """True when ``lease`` is in force and belongs to another hardware address (or relay)."""
    return lease is not None and lease.active(now) and not lease.owned_by(req)


def _refusal(table: LeaseTable, cfg: PoolConfig, req: Request, now: float) -> Decision | None:
    """Why ``req``'s client may not take a new address (one it does not hold now), or None: its
    hardware address holds ``max_per_mac`` leases already, or it is not known and only the reserve
    is left."""
    key = req.client_key
    if table.held_by(req.mac, now, but=key) >= cfg.max_per_mac:
        return Decision(None, note=f"{req.mac} holds {cfg.max_per_mac} leases already: no new "
                                   f"address for {key}", count=TOO_MANY)
    if not cfg.is_known(req.mac) and not table.free_more_than(cfg, cfg.reserve, now):
        return Decision(None, note=f"{req.mac} is not known and only the reserve of "
                                   f"{cfg.reserve} addresses is free: no address for {key}",
                        count=RESERVED)
    return None


def _may_bind(table: LeaseTable, cfg: PoolConfig, req: Request, ip: IPv4,
              now: float) -> Decision:
    """ACKs ``ip`` (free for this client) unless it would be a new address the client may not
    take; then NAKs."""
    known = table.by_client.get(req.client_key)
    if not (known is not None and known.ip == ip and known.active(now)):
        refusal = _refusal(table, cfg, req, now)
        if refusal is not None:
            return _nak(cfg, req, refusal.note or "", refusal.count)
    return _bind(table, cfg, req, ip, now)


def decide(table: LeaseTable, cfg: PoolConfig, req: Request, now: float) -> Decision:
    """The server's answer to ``req`` at time ``now`` (RFC 2131 §4.3), updating ``table``."""
    key = req.client_key
    if req.giaddr != ZERO and req.giaddr not in cfg.network:
        return Decision(None, note=f"relayed from {req.giaddr}, outside {cfg.network}: ignored")
    known = table.by_client.get(key)
    mtype = req.mtype

    if mtype == MessageType.DISCOVER:
        if _theirs(known, req, now):
            return Decision(None, note=f"{key} holds {known.ip} from {known.mac}: no offer to "
                                       f"{req.mac}", count=NOT_ITS_OWN)
        holds = known is not None and known.active(now)
        if not holds:
            refusal = _refusal(table, cfg, req, now)
            if refusal is not None:
                return refusal
        ip = None
        if known is not None and cfg.in_pool(known.ip) and table.free_for(known.ip, key, now):
            ip = known.ip
        elif (req.requested_ip is not None and cfg.in_pool(req.requested_ip)
              and table.free_for(req.requested_ip, key, now)):
            ip = req.requested_ip
        else:
            ip = table.allocate(cfg, key, now)
        if ip is None:
            return Decision(None, note=f"pool {cfg.start}-{cfg.end} exhausted: no offer for {key}",
                            count=EXHAUSTED)
        if holds and known.ip != ip:  # held, but no longer free for it (set aside since)
            refusal = _refusal(table, cfg, req, now)
            if refusal is not None:
                return refusal
        if known is None or known.ip != ip or not holds or known.state != BOUND:
            table.set(Lease(key, ip, now + cfg.offer_hold, OFFERED, req.mac, req.hostname,
                            req.giaddr))
        return Decision(Reply(MessageType.OFFER, req, yiaddr=ip, server_id=cfg.server,
                              options=cfg.options(True)))

    if mtype == MessageType.REQUEST:
        if req.server_id is not None:  # SELECTING
            if req.server_id != cfg.server:
                if known is not None and known.state == OFFERED and known.owned_by(req):
                    table.drop(key)
                return Decision(None, note=f"{key} chose server {req.server_id}")
            ip = req.requested_ip
            if ip is None:
                return Decision(None, note=f"{key}: REQUEST (selecting) without an address")
            if _theirs(known, req, now):
                return _nak(cfg, req, f"{ip} was offered to another hardware address",
                            NOT_ITS_OWN)
            if known is not None and known.ip == ip and table.free_for(ip, key, now):
                return _may_bind(table, cfg, req, ip, now)
            return _nak(cfg, req, f"{ip} was not offered to this client")
        if req.ciaddr == ZERO:  # INIT-REBOOT
            ip = req.requested_ip
            if ip is None:
                return Decision(None, note=f"{key}: REQUEST without an address")
            if ip not in cfg.network:
                return _nak(cfg, req, f"{ip} is not on this network ({cfg.network})")
            if known is None:
                return Decision(None, note=f"{key}: INIT-REBOOT for {ip}, no record: silent")
            if _theirs(known, req, now):
                return _nak(cfg, req, f"{ip} is held by another hardware address", NOT_ITS_OWN)
            if known.ip == ip and cfg.in_pool(ip) and table.free_for(ip, key, now):
                return _may_bind(table, cfg, req, ip, now)
            return _nak(cfg, req, f"{ip} is not this client's address")
        ip = req.ciaddr  # RENEWING (unicast) or REBINDING (broadcast)
        if ip not in cfg.network:
            return _nak(cfg, req, f"{ip} is not on this network ({cfg.network})")
        if _theirs(known, req, now):
            return _nak(cfg, req, f"{ip} is held by another hardware address", NOT_ITS_OWN)
        if known is not None and known.ip == ip and table.free_for(ip, key, now):
            return _may_bind(table, cfg, req, ip, now)
        if cfg.in_pool(ip) and table.free_for(ip, key, now) and ip not in table.by_ip:
            return _may_bind(table, cfg, req, ip, now)  # a client we lost track of: keep it there
        return _nak(cfg, req, f"{ip} is not this client's address")

    if mtype == MessageType.DECLINE:
        if req.server_id is not None and req.server_id != cfg.server:
            return Decision(None)
        ip = req.requested_ip
        if ip is None or ip not in cfg.network:
            return Decision(None, note=f"{key}: DECLINE without a usable address")
        if not (known is not None and known.ip == ip and known.active(now)
                and known.owned_by(req)):
            return Decision(None, note=f"{key} from {req.mac} declined {ip}, which it does not "
                                       "hold: ignored", count=DECLINE_IGNORED)
        table.drop(key)
        if table.set_aside_by(req.mac, now) >= cfg.max_per_mac:  # the address goes back
            return Decision(None, persist=True, note=f"{key} declined {ip}, but {req.mac} has set "
                            f"{cfg.max_per_mac} addresses aside already: not set aside",
                            count=DECLINES_CAPPED)
        table.decline(ip, now + cfg.decline_hold, req.mac)
        return Decision(None, persist=True, note=f"{key} declined {ip}: set aside")

    if mtype == MessageType.RELEASE:
        if (known is not None and known.ip == req.ciaddr and known.state == BOUND
                and known.owned_by(req)):
            table.set(Lease(key, known.ip, now, RELEASED, known.mac, known.hostname,
                            known.relay))
            return Decision(None, persist=True, note=f"{key} released {req.ciaddr}")
        return Decision(None, note=f"{key} from {req.mac} released {req.ciaddr}, which it does "
                                   "not hold: ignored", count=RELEASE_IGNORED)

    if mtype == MessageType.INFORM:
        return Decision(Reply(MessageType.ACK, req, server_id=cfg.server,
                              options=cfg.options(False)))
    return Decision(None)


def destination(req: Request, reply: Reply) -> tuple[str | None, IPv4, int]:
    """Where a reply goes (RFC 2131 §4.1), as (Ethernet destination, IP destination, UDP port).

    The Ethernet destination is None where the kernel routes the reply and resolves the address
    with ARP: to a relay on the server port, and unicast to a client that has an address (ciaddr).
    Otherwise the server writes the frame itself: a NAK, and a reply to a client that set the
    broadcast flag, go to everyone (ff:ff:ff:ff:ff:ff, 255.255.255.255); an OFFER or ACK to a
    client without an address goes to its hardware address (chaddr) and the address given
    (yiaddr), so that no other client on the network sees it.
    """
    if req.giaddr != ZERO:
        return None, req.giaddr, DHCP_SERVER_PORT
    if reply.mtype == MessageType.NAK:
        return BROADCAST_MAC, BROADCAST, DHCP_CLIENT_PORT
    if req.ciaddr != ZERO:
        return None, req.ciaddr, DHCP_CLIENT_PORT
    if req.broadcast or reply.yiaddr == ZERO:
        return BROADCAST_MAC, BROADCAST, DHCP_CLIENT_PORT
    return req.mac, reply.yiaddr, DHCP_CLIENT_PORT
