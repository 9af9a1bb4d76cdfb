"""A running lab's changes as the other threads see them (the web page, the CLI, a script): one
change at a time, which NICs are changing (in words), and the graph edited only at a change's end,
counted, and read whole."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import networkx as nx


class Changes:
    """The changes of a lab whose graph is ``graph``."""

    def __init__(self, graph: nx.Graph) -> None:
        self.graph = graph
        #: Held by a change (and a stop) from start to end: the CLI, the web page and the API
        #: change the lab one at a time, and a stop waits for a change in flight.
        self.lock = threading.RLock()
        #: The changes under way (or waiting for the one under way), by NIC ``VM/N`` (or by VM,
        #: made or removed): what each is, in words (the web page shows them, whoever made them).
        self.changing: dict[str, str] = {}
        self._waiting: dict[str, int] = {}
        #: Held while ``graph`` itself is edited (briefly): ``snapshot`` reads under it. Each
        #: edit adds one to ``generation`` and wakes ``wait``.
        self._graph_lock = threading.Condition(threading.Lock())
        self.generation = 0

    def of_nic(self, vm: str, index: int, what: str) -> contextlib.AbstractContextManager[None]:
        """Marks a change of a NIC as under way (``changing``, as ``VM/N``)."""
        return self.of(f"{vm}/{index}", what)

    @contextlib.contextmanager
    def of(self, key: str, what: str) -> Iterator[None]:
        """Marks a change of ``key`` (a NIC ``VM/N``, or a VM made or removed: its name) as under
        way (``changing``) while it waits and runs; the newest one's words show; the mark goes
        with the last of them."""
        with self._graph_lock:
            self._waiting[key] = self._waiting.get(key, 0) + 1
            self.changing[key] = what
        try:
            yield
        finally:
            with self._graph_lock:
                self._waiting[key] -= 1
                if not self._waiting[key]:
                    del self._waiting[key]
                    self.changing.pop(key, None)

    def keep(self, edit: Callable[[nx.Graph], object]) -> None:
        """Makes ``edit`` to the graph itself (a change that is done), and wakes ``wait``."""
        with self._graph_lock:
            edit(self.graph)
            self.generation += 1
            self._graph_lock.notify_all()

    def wait(self, since: int, timeout: float) -> int:
        """Waits until the graph has changed since ``generation`` was ``since`` (at most
        ``timeout`` seconds); returns the generation now."""
        with self._graph_lock:
            self._graph_lock.wait_for(lambda: self.generation != since, timeout)
            return self.generation

    def snapshot(self) -> nx.Graph:
        """A copy of the graph as it is now (safe from another thread while a change runs: the
        change edits the graph only at its end, under the same lock)."""
        with self._graph_lock:
            return self.graph.copy()


__all__ = ["Changes"]
