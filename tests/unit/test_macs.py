"""MAC parsing and the 00:03:ff derivation (docs/architecture.md §3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wvpclab.model import macs


@pytest.mark.parametrize("text, expected", [
    ("00:1A:2b:3C:4d:5E", "00:1a:2b:3c:4d:5e"),
    ("00-1a-2b-3c-4d-5e", "00:1a:2b:3c:4d:5e"),
])
def test_normalize_accepts_colon_and_dash_forms(text: str, expected: str) -> None:
    assert macs.normalize(text) == expected


@pytest.mark.parametrize("text", ["00:1a:2b:3c:4d", "00:1a:2b:3c:4d:5e:6f", "00:1a-2b:3c:4d:5e",
                                  "zz:1a:2b:3c:4d:5e", "001a2b3c4d5e", 12, None])
def test_normalize_rejects_malformed(text: object) -> None:
    with pytest.raises(macs.MacError, match="not a MAC address"):
        macs.normalize(text)


@pytest.mark.parametrize("text", ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "33:33:00:00:00:01"])
def test_check_unicast_rejects_group_addresses(text: str) -> None:
    with pytest.raises(macs.MacError, match="multicast"):
        macs.check_unicast(text)


def test_check_unicast_rejects_zero() -> None:
    with pytest.raises(macs.MacError):
        macs.check_unicast("00:00:00:00:00:00")


def test_derive_is_wvpc_oui_deterministic_and_depends_on_inputs() -> None:
    a = macs.derive("00:1a:2b:3c:4d:5e", "xp", 0)
    assert a.startswith("00:03:ff:") and len(a) == 17
    assert a == macs.derive("00:1a:2b:3c:4d:5e", "xp", 0)
    assert a != macs.derive("00:1a:2b:3c:4d:5e", "xp", 1)
    assert a != macs.derive("00:1a:2b:3c:4d:5e", "xp2", 0)
    assert a != macs.derive("00:1a:2b:3c:4d:5f", "xp", 0)


def test_derive_steps_past_taken_addresses_deterministically() -> None:
    first = macs.derive("00:1a:2b:3c:4d:5e", "xp", 0)
    second = macs.derive("00:1a:2b:3c:4d:5e", "xp", 0, taken={first})
    assert second != first and second.startswith("00:03:ff:")
    assert second == macs.derive("00:1a:2b:3c:4d:5e", "xp", 0, taken={first})


def test_derive_adapter_is_locally_administered_unicast() -> None:
    mac = macs.derive_adapter("pc", "eth0")
    assert mac.startswith("02:") and len(mac) == 17
    assert macs.check_unicast(mac) == mac


@given(st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True),
                          st.integers(0, 3)), unique=True, max_size=60))
def test_derived_macs_unique_when_each_avoids_the_taken(pairs: list[tuple[str, int]]) -> None:
    taken: set[str] = set()
    for vm, index in pairs:
        mac = macs.derive("00:1a:2b:3c:4d:5e", vm, index, taken)
        assert mac not in taken
        assert not macs.is_multicast(mac)
        taken.add(mac)
