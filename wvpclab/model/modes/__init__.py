"""The four NIC modes of Windows Virtual PC, one module each, behind one interface
(``base.Mode``): each module says everything its mode does, everywhere (the plan, reachability,
the picture, the web page, the command line); nothing outside this package names a mode.

``of(nic)`` gives a NIC's mode object; ``parse`` reads a mode typed by a user; ``label``,
``usage`` and ``counts`` put the modes in words. Adding a mode is a new module and a line in
``MODES`` (``tests/unit/test_sixth_mode.py`` adds one from a test file alone).
"""

from __future__ import annotations

import networkx as nx

from wvpclab.model.modes import bridge, internal, none, shared
from wvpclab.model.modes.base import Mode, Nic
from wvpclab.model.names import did_you_mean

#: Every mode, by the name topology files and the CLI use.
MODES: dict[str, Mode] = {m.name: m for m in (none.MODE, shared.MODE, bridge.MODE, internal.MODE)}


def of(nic: Nic) -> Mode:
    """The mode object of a NIC."""
    return MODES[nic["mode"]]


def of_any(nic: Nic) -> Mode:
    """The mode of a NIC, or Not connected for a mode there is none of (a hand-made graph)."""
    return MODES.get(nic.get("mode"), none.MODE)


def by_name(name: str) -> Mode:
    return MODES[name]


def parse(spec: str, target: str | None = None, sep: str = " ") -> tuple[str, str | None]:
    """``none``, ``shared``, ``bridge:eth0`` / ``bridge eth0``, ``internal:lab`` -> (mode, target);
    ValueError naming the forms otherwise (written with ``sep`` between a mode and its target: a
    topology file's ``": "``, the CLI's ``" "``). The one reader of a mode written as text: topology
    files, graphs, the CLI and the API."""
    text = spec.strip() if target is None else f"{spec.strip()}:{target.strip()}"
    name, _, rest = (text if ":" in text else text.replace(" ", ":", 1)).partition(":")
    name, rest = name.strip(), rest.strip()
    mode = MODES.get(name)
    if mode is not None and bool(rest) == mode.takes_target:
        return name, rest or None
    if mode is not None and mode.takes_target:
        raise ValueError(f"{spec!r} is not a NIC mode: {name} needs a target ({mode.usage(sep)})")
    if mode is not None:
        raise ValueError(f"{spec!r} is not a NIC mode: {name} takes no target")
    raise ValueError(f"{spec!r} is not a NIC mode ({usage(sep, ', ')}){did_you_mean(name, MODES)}")


def format(mode: str, target: str | None = None) -> str:  # the inverse of parse
    """A mode as one word, as ``parse`` reads it and a topology file's NIC list writes it:
    ``shared``, ``bridge:eth0``."""
    return MODES[mode].format(target)


def label(nic: Nic) -> str:
    """A NIC's mode as a user types and reads it: ``none``, ``shared``, ``bridge eth0``,
    ``internal lab`` (``nic`` needs only ``mode`` and ``target``)."""
    return of(nic).label(nic)


def usage(sep: str = " ", between: str = "|") -> str:
    """Every mode as a usage line names them: ``none|shared|bridge ADAPTER|internal NAME`` (the
    command line's), ``none, shared, bridge:ADAPTER, internal:NAME`` (``sep=":"``,
    ``between=", "``: the page's and the API's)."""
    return between.join(m.usage(sep) for m in MODES.values())


def counts(graph: nx.Graph) -> list[tuple[int, str]]:
    """What the modes bring to a lab, counted for a summary line: ``[(1, "internal network")]``."""
    return [count for m in MODES.values() for count in m.counts(graph)]


def move(graph: nx.Graph, vm: str, index: int, mode: str, target: str | None) -> None:
    """Puts NIC ``index`` of ``vm`` in another mode in the graph: its ``attach`` edge follows, and
    the mode adds what it needs (an internal network typed afresh is declared)."""
    key = f"{vm}/{index}"
    nic = graph.nodes[key]
    for other in list(graph.neighbors(key)):
        if graph.edges[key, other].get("rel") == "attach":
            graph.remove_edge(key, other)
    nic["mode"], nic["target"] = mode, target
    the_mode = of(nic)
    the_mode.prepare(graph, graph.nodes[vm]["pc"], target)
    attach = the_mode.graph_attach(graph, nic)
    if attach:
        graph.add_edge(key, attach, rel="attach", mode=mode)


def wizard(graph: nx.Graph, pc: str) -> list[tuple[str, str | None]]:
    """The NICs Virtual PC's Create Virtual Machine wizard gives a new VM on ``pc``, as (mode,
    target): NIC 0 bridged to the PC's first wired adapter, NIC 1 to its first wireless one (one
    NIC where the PC has one kind of adapter), shared networking on a PC with none."""
    adapters = [d for d in graph.nodes.values()
                if d.get("kind") == "adapter" and d.get("pc") == pc]  # in declaration order
    picked = [next((d["name"] for d in adapters if d.get("type") == kind), None)
              for kind in ("wired", "wireless")]
    bridged = [("bridge", name) for name in picked if name is not None]
    return bridged or [("shared", None)]


def set_cable(graph: nx.Graph, vm: str, index: int, plugged: bool) -> None:
    """Pulls (False) or plugs (True) a NIC's cable in the graph."""
    graph.nodes[f"{vm}/{index}"]["cable"] = plugged


__all__ = ["MODES", "Mode", "by_name", "counts", "format", "label", "move", "of", "of_any", "parse",
           "set_cable", "usage", "wizard"]
