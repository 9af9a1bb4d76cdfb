"""Look-ups in a lab's graph (the graph ``wvpclab.model.topology`` builds): its nodes of one kind,
a VM's NICs, whether it has an internet. A module of its own so that the modes, which the topology
loader asks, can use them without importing the loader."""

from __future__ import annotations

import networkx as nx

#: The internet's name (a LAN node of its own: its switch, its core router ``gw.internet``).
INTERNET = "internet"


def nodes_of(graph: nx.Graph, kind: str) -> list[tuple[str, dict]]:
    """The (key, attributes) pairs of one kind, sorted by key."""
    return sorted((k, d) for k, d in graph.nodes(data=True) if d["kind"] == kind)


def nics_of(graph: nx.Graph, vm: str) -> list[dict]:
    """A VM's NIC attribute dicts in index order."""
    return sorted((graph.nodes[n] for n in graph.neighbors(vm) if graph.nodes[n]["kind"] == "nic"),
                  key=lambda d: d["index"])


def has_internet(graph: nx.Graph) -> bool:
    """Whether the lab has an internet (the ``internet:`` section)."""
    return bool(graph.nodes.get(INTERNET, {}).get("internet"))
