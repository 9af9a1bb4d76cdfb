"""The lab's own error types: every primitive raises one of these, and only the command line maps
them to exit codes (``wvpclab.ui.cli``)."""

from __future__ import annotations


class WvpcError(Exception):
    """Anything the lab refuses or fails to do; the message names the thing and what to do."""


class LabError(WvpcError, RuntimeError):
    """The lab cannot start or cannot do what was asked."""


class UsageError(LabError, ValueError):
    """A request that names something the lab does not have, or asks for something malformed (a node
    that does not exist, a NIC mode that is not one); nothing was changed."""


class CommandError(LabError):
    """A command the lab ran (iproute2, Open vSwitch, a node's shell) failed."""

    def __init__(self, what: str, detail: str) -> None:
        self.what = what
        self.detail = detail.strip()[:500]
        super().__init__(f"{what} failed: {self.detail}" if self.detail else f"{what} failed")


class ControllerError(LabError):
    """The controller could not be started, or refused or failed a request."""


__all__ = ["CommandError", "ControllerError", "LabError", "UsageError", "WvpcError"]
