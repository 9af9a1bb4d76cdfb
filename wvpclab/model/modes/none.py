"""Not connected: the NIC exists in the guest, admin-up, with no carrier (its cable plugs into
nothing).

What the mode does, everywhere (``NotConnected`` below): no attachment, so no carrier
(``attachment_kind``), no address, nothing in the plan but the guest's interface; unplugged for
verify (``where``); grey and dashed in the picture, "not connected" on the NIC (``style``,
``describe``); "Not connected" first in the page's drop-down, its cable box disabled
(``dialog_label``, ``dialog_rank``); ``none`` on the command line.
"""

from __future__ import annotations

from wvpclab.model.modes.base import Mode


class NotConnected(Mode):
    name = "none"
    style = ("#8c8c8c", "#eeeeee", "none — not connected")
    summary = ("Not connected: the NIC exists in the guest, admin-up, without a carrier (its cable "
               "plugs into nothing).")
    dialog_rank = 0
    dialog_label = "Not connected"

    def describe(self, nic) -> str:
        return "not connected"

    def attachment_kind(self) -> None:
        return None


MODE = NotConnected()
