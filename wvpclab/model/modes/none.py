"""Not connected: the NIC exists in the guest, admin-up, with no carrier (its cable plugs into
nothing)."""

from __future__ import annotations

from wvpclab.model.modes.base import Mode


class NotConnected(Mode):
    name = "none"
    style = ("#8c8c8c", "#eeeeee", "none — not connected")
    summary = ("Not connected: the NIC exists in the guest, admin-up, without a carrier (its cable "
               "plugs into nothing).")

    def describe(self, nic) -> str:
        return "not connected"

    def attachment_kind(self) -> None:
        return None


MODE = NotConnected()
