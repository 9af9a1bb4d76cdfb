"""MAC addresses: parsing, checks, and the 21140A NIC's 00:03:ff derivation.

Pure functions; no I/O. docs/architecture.md §3 says how a guest NIC's MAC is made.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

#: The OUI Windows Virtual PC gives every emulated DEC/Intel 21140A NIC.
WVPC_OUI = "00:03:ff"

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")


class MacError(ValueError):
    """A MAC address string that is not a usable unicast Ethernet address."""


def normalize(text: object) -> str:
    """Returns a MAC in lower-case colon form, or raises MacError saying what is wrong.

    Accepts ``aa:bb:cc:dd:ee:ff`` and ``aa-bb-cc-dd-ee-ff`` (any case).
    """
    if not isinstance(text, str) or not _MAC_RE.match(text.strip()):
        raise MacError(f"{text!r} is not a MAC address (six hex octets, e.g. 00:1a:2b:3c:4d:5e)")
    return text.strip().lower().replace("-", ":")


def is_multicast(mac: str) -> bool:
    """True for group addresses (the I/G bit of the first octet), broadcast included."""
    return bool(int(mac[:2], 16) & 1)


def check_unicast(text: object) -> str:
    """Normalizes a MAC and insists it can be an interface's own address."""
    mac = normalize(text)
    if is_multicast(mac):
        raise MacError(f"{mac} is a multicast/broadcast address, a NIC needs a unicast one")
    if mac == "00:00:00:00:00:00":
        raise MacError("00:00:00:00:00:00 is not a usable address")
    return mac


def _pick(prefix: str, seed: str, taken: Iterable[str]) -> str:
    """``prefix`` plus octets hashed from ``seed``, re-seeded with a counter while the result is
    taken."""
    # a set or a mapping is looked up as it is (copying it for each NIC made checking quadratic)
    used = taken if isinstance(taken, (set, frozenset, Mapping)) else set(taken)
    count = 6 - len(prefix.split(":"))
    attempt = 0
    while True:
        digest = hashlib.sha256(f"{seed}|{attempt}".encode() if attempt else seed.encode()).digest()
        mac = prefix + "".join(f":{b:02x}" for b in digest[:count])
        if mac not in used:
            return mac
        attempt += 1


def derive(adapter_mac: str, vm: str, index: int, taken: Iterable[str] = ()) -> str:
    """The WVPC-style MAC of NIC ``index`` of ``vm`` on a PC whose first adapter is ``adapter_mac``.

    ``00:03:ff`` followed by three octets hashed from the adapter's MAC, the VM's name and the NIC's
    index (never its mode, so changing a NIC's network keeps its MAC). If the result is in
    ``taken``, the seed is extended with a counter until it is not: deterministic for the same
    inputs.
    """
    return _pick(WVPC_OUI, f"{adapter_mac}|{vm}|{index}", taken)


def derive_adapter(pc: str, adapter: str, taken: Iterable[str] = ()) -> str:
    """A stable, locally administered unicast MAC (``02:…``) for a host adapter given no ``mac``."""
    return _pick("02", f"adapter|{pc}|{adapter}", taken)
