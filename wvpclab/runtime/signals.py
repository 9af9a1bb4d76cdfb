"""Signals held back while the lab must not be cut short: a change is whole or not at all, and a
stop always finishes."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP are noted, not acted on; afterwards the
    first one still listed is raised again (its usual handler runs then). Only in the main
    thread (elsewhere signals cannot be handled anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    pending: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {s: signal.getsignal(s) for s in kinds}
    for s in kinds:
        signal.signal(s, lambda signum, frame: pending.append(signum))
    try:
        yield pending
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


__all__ = ["signals_deferred"]
