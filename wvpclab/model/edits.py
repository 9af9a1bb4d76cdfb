"""Building a lab while it runs: VMs and NICs added and removed, as Virtual PC's Create Virtual
Machine wizard and each VM's Settings dialog ("Number of network adapters") do.

Pure. Each function checks the change against the whole topology (a new VM or NIC is read as the
topology file would write it, by the same loader, so the same rules and messages apply) and
returns the edit to make to the lab's graph: a function of the graph, which the running lab plans
and carries out all or nothing (``wvpclab.runtime.lab``), and keeps when it is done. Wrong input
raises ValueError with one line naming the problem.

NICs keep their numbers: removing NIC 1 of 0-2 leaves NICs 0 and 2 (the topology file writes
``index: 2``), and a new NIC takes the lowest free number.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import networkx as nx

from wvpclab.model import macs, modes, topology
from wvpclab.model.lookups import nodes_of
from wvpclab.model.names import did_you_mean
from wvpclab.model.schema import MAX_NICS

Edit = Callable[[nx.Graph], None]


def _vm(graph: nx.Graph, name: Any) -> dict:
    data = graph.nodes.get(name) if isinstance(name, str) else None
    if data is None or data.get("kind") != "vm":
        vms = sorted(n for n, _ in nodes_of(graph, "vm"))
        raise ValueError(f"no VM {name!r} in lab {graph.graph.get('name')} (VMs: "
                         f"{', '.join(vms) or 'none'}){did_you_mean(name, vms)}")
    return data


def nic_numbers(graph: nx.Graph, vm: str) -> list[int]:
    """The numbers of a VM's NICs, in order (with gaps where NICs were removed)."""
    return sorted(d["index"] for _, d in nodes_of(graph, "nic") if d["vm"] == vm)


def _mode(graph: nx.Graph, pc: str, spec: Any) -> tuple[str, str | None]:
    """A NIC's mode and target from a mode as the CLI and ``set_nic`` write it, checked as
    ``set_nic`` checks a target on ``pc``."""
    if not isinstance(spec, str):  # (one error type for every wrong input: ValueError)
        raise ValueError(  # noqa: TRY004
            f"a NIC's mode is a string ({modes.usage(':', ', ')}), not {spec!r}")
    mode, target = modes.parse(spec)
    problem = modes.by_name(mode).check_target(graph, pc, target)
    if problem:
        raise ValueError(problem)
    return mode, target


def _rebuilt(graph: nx.Graph, pc: str, new: list[tuple[str, str | None]],
             change: Callable[[dict], None], where: str) -> nx.Graph:
    """The lab's topology document with ``change`` made, read back by the loader (ValueError: its
    first problem, in one line). The modes of the ``new`` NICs on ``pc`` first add what they
    need, as for a NIC moved into them (an internal network typed afresh is declared)."""
    prepared = graph.copy()
    prepared.graph = copy.deepcopy(graph.graph)
    for mode, target in new:
        modes.by_name(mode).prepare(prepared, pc, target)
    doc, problems = topology.to_document(prepared)
    if problems:  # a running lab's graph is valid: this is a bug, said as it is
        raise ValueError(f"the lab's own graph does not read back: {problems[0]}")
    change(doc)
    try:
        return topology.from_document(doc, graph.graph.get("name", "lab"))
    except topology.TopologyError as err:
        mine = [e for e in err.errors if e.path.startswith(where)] or err.errors
        first = mine[0]
        more = f" (and {len(err.errors) - 1} more)" if len(err.errors) > 1 else ""
        where_ = "" if first.path == where else f"{first.path}: "
        raise ValueError(f"{where_}{first.message}{more}") from None


def _adopt(graph: nx.Graph, rebuilt: nx.Graph, new: Iterable[str]) -> None:
    """Makes in ``graph`` the nodes ``new`` as ``rebuilt`` has them, with their edges, and what
    their modes declared (internal networks typed afresh); derived MACs are derived against every
    MAC of ``graph`` (the running lab's)."""
    new = list(new)
    taken = {d["mac"] for _, d in graph.nodes(data=True) if d.get("mac")}
    for key in new:
        data = dict(rebuilt.nodes[key])
        if data.get("kind") == "nic" and data.get("mac_source") == "derived":
            base = graph.nodes[graph.nodes[data["vm"]]["pc"]]["base_mac"]
            data["mac"] = macs.derive(base, data["vm"], data["index"], taken)
        if data.get("mac"):
            taken.add(data["mac"])
        graph.add_node(key, **data)
    for key in new:
        for other in rebuilt.neighbors(key):
            if other in graph:
                graph.add_edge(key, other, **rebuilt.edges[key, other])
    for key, data in rebuilt.nodes(data=True):  # e.g. an internal network's node for the PC
        if key not in graph:
            graph.add_node(key, **data)
            for other in rebuilt.neighbors(key):
                if other in graph:
                    graph.add_edge(key, other, **rebuilt.edges[key, other])
    graph.graph["internal"] = {k: dict(v) for k, v in rebuilt.graph.get("internal", {}).items()}


def add_vm(graph: nx.Graph, name: Any, pc: Any = None,
           nics: list[str] | None = None) -> tuple[Edit, list[dict]]:
    """A new VM ``name`` on ``pc`` (the lab's only PC when None) with ``nics`` (mode specs:
    ``none``, ``shared``, ``bridge:eth0``, ``internal:lab``; None: the wizard's defaults; ``[]``:
    none). Returns the edit and the new NICs' data as they will be."""
    if not isinstance(name, str):
        raise ValueError(f"a VM's name is a string, not {name!r}")  # noqa: TRY004
    if name in graph:
        what = graph.nodes[name].get("kind", "node")
        raise ValueError(f"name {name!r} is already used by a {what} of the lab (names are "
                         "unique across PCs, VMs, LANs and servers)")
    pcs = sorted(n for n, _ in nodes_of(graph, "pc"))
    if pc is None:
        if len(pcs) != 1:
            raise ValueError(f"lab {graph.graph.get('name')} has {len(pcs)} PCs "
                             f"({', '.join(pcs) or 'none'}): say which one runs {name}")
        pc = pcs[0]
    elif pc not in pcs:
        raise ValueError(f"no PC {pc!r} in lab {graph.graph.get('name')} (PCs: "
                         f"{', '.join(pcs) or 'none'}){did_you_mean(pc, pcs)}")
    if nics is not None:
        if not isinstance(nics, (list, tuple)):
            raise ValueError(f"a VM's NICs are a list of modes, not {nics!r}")
        if len(nics) > MAX_NICS:
            raise ValueError(f"{len(nics)} NICs: a Virtual PC VM has at most {MAX_NICS}")
        chosen = [_mode(graph, pc, spec) for spec in nics]
        entries = [modes.by_name(mode).entry(target) for mode, target in chosen]

    def change(doc: dict) -> None:
        body: dict[str, Any] = {"pc": pc}
        if nics is not None:
            body["nics"] = entries
        doc["vms"][name] = body

    rebuilt = _rebuilt(graph, pc, chosen if nics is not None else [], change, f"vms.{name}")
    new = [name, *(f"{name}/{i}" for i in nic_numbers(rebuilt, name))]

    def edit(g: nx.Graph) -> None:
        _adopt(g, rebuilt, new)

    preview = nx.Graph(graph)
    edit(preview)
    return edit, [dict(preview.nodes[k]) for k in new[1:]]


def remove_vm(graph: nx.Graph, name: Any) -> Edit:
    """Removes VM ``name`` and its NICs."""
    _vm(graph, name)

    def edit(g: nx.Graph) -> None:
        g.remove_nodes_from([f"{name}/{i}" for i in nic_numbers(g, name)] + [name])

    return edit


def add_nic(graph: nx.Graph, vm: Any, mode: str | None = None) -> tuple[Edit, int]:
    """A new NIC of ``vm`` in ``mode`` (None: Not connected, as Settings adds an adapter), with
    the lowest free number. Returns the edit and that number."""
    _vm(graph, vm)
    have = nic_numbers(graph, vm)
    free = [i for i in range(MAX_NICS) if i not in have]
    if not free:
        raise ValueError(f"{vm} has {MAX_NICS} NICs already, the most a Virtual PC VM has "
                         f"(remove one first: nic remove {vm} N)")
    index = free[0]
    pc = graph.nodes[vm]["pc"]
    chosen = _mode(graph, pc, "none" if mode is None else mode)
    entry = modes.by_name(chosen[0]).entry(chosen[1])

    def change(doc: dict) -> None:
        listed = doc["vms"][vm]["nics"]
        # the document's NICs, each with its number, the new one in its place
        numbered = [(n, {k: v for k, v in e.items() if k != "index"})
                    for n, e in zip(have, listed)]
        numbered.append((index, entry))
        numbered.sort(key=lambda item: item[0])
        out, after = [], -1
        for n, e in numbered:
            out.append(e if n == after + 1 else {**e, "index": n})
            after = n
        doc["vms"][vm]["nics"] = out

    rebuilt = _rebuilt(graph, pc, [chosen], change, f"vms.{vm}")
    key = f"{vm}/{index}"

    def edit(g: nx.Graph) -> None:
        _adopt(g, rebuilt, [key])

    return edit, index


def remove_nic(graph: nx.Graph, vm: Any, index: Any) -> Edit:
    """Removes NIC ``index`` of ``vm``; the others keep their numbers."""
    _vm(graph, vm)
    have = nic_numbers(graph, vm)
    if isinstance(index, bool) or not isinstance(index, int) or index not in have:
        raise ValueError(f"{vm} has no NIC {index!r} (its NICs: "
                         f"{', '.join(map(str, have)) or 'none'})")

    def edit(g: nx.Graph) -> None:
        g.remove_node(f"{vm}/{index}")

    return edit


__all__ = ["Edit", "add_nic", "add_vm", "nic_numbers", "remove_nic", "remove_vm"]
