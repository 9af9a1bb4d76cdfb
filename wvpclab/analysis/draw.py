"""A lab's picture (docs/architecture.md §1): PCs, their adapters, NAT engines and internal
networks, the LANs outside, and each VM's NICs coloured by mode, drawn with Graphviz.

Pure apart from running Graphviz's ``dot``: the picture is made from the topology graph alone (the
schema in :mod:`wvpclab.model.topology`), so a running lab is drawn from ``lab.graph``, whose
NIC modes
and ``attach`` edges the lab keeps current. A NIC's ``mode`` and ``target`` decide where its cable
goes; its ``attach`` edge is only a fallback.

Needs the PyPI package ``graphviz`` (the Python binding) and Debian's ``graphviz`` (the ``dot``
program). Layout: left to right, the world outside (LANs and their servers), then each PC (its host
adapters, its own IP stack, its NAT engines and internal networks), then the VMs.
"""

from __future__ import annotations

import html
import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from wvpclab.errors import LabError
from wvpclab.model import modes, topology

#: Output formats, by file suffix.
FORMATS = {".svg": "svg", ".png": "png"}


FONT = "DejaVu Sans"
MONO = "DejaVu Sans Mono"
PNG_DPI = 96
APT_PACKAGE = "graphviz"
PYPI_PACKAGE = "graphviz"

_LAN_FILL, _LAN_BORDER = "#f3f3f3", "#9a9a9a"
_PC_FILL, _PC_BORDER = "#fbfaf3", "#6b6b6b"
_ADAPTER_FILL = "#ffffff"


# --------------------------------------------------------------------------------------------------
# Labels


def _e(value: Any) -> str:
    """Text escaped for a Graphviz HTML label."""
    return html.escape(str(value), quote=True)


def _html(rows: Iterable[str], border: str = "0", bgcolor: str | None = None,
          color: str | None = None, style: str | None = None,
          anchor: tuple[str, str] | None = None) -> str:
    """An HTML-like label: a one-column table, one row per (already escaped) cell content.
    ``anchor``: (id, tooltip) of a live picture (the SVG group ``a_ID`` around the table)."""
    attrs = f'BORDER="{border}" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2"'
    if anchor:
        attrs += _anchor(*anchor)
    if bgcolor:
        attrs += f' BGCOLOR="{bgcolor}"'
    if color:
        attrs += f' COLOR="{color}"'
    if style:
        attrs += f' STYLE="{style}"'
    body = "".join(f'<TR><TD ALIGN="LEFT" BALIGN="LEFT">{row}</TD></TR>' for row in rows)
    return f"<<TABLE {attrs}>{body}</TABLE>>"


def _anchor(ident: str, tooltip: str) -> str:
    """Attributes that make a cell or table an SVG group ``a_ID`` with a link and a tooltip (what
    the web page finds, fills with live values and opens a dialog from)."""
    return f' ID="{_e(ident)}" HREF="#{_e(ident)}" TOOLTIP="{_e(tooltip)}"'


def live_id(kind: str, key: str) -> str:
    """The id of a live element: ``nic`` (key ``VM/N``) or ``switch`` (a switch's key)."""
    return f"{kind}:{key}"


#: Text of a live row before the page fills it in: it reserves the row's width (monospace).
LIVE_NIC = "\u00a0" * 44
LIVE_SWITCH = "\u00a0" * 34


def _switch_label(rows: list[str], key: str, tooltip: str, live: bool, **style: Any) -> str:
    """A switch's label (a LAN's, a filter switch's on its adapter, an internal network's);
    ``live``: with the row its counters go in and its anchor."""
    if not live:
        return _html(rows, **style)
    return _html([*rows, _mono(LIVE_SWITCH)], anchor=(live_id("switch", key), tooltip), **style)


def _small(text: str, color: str = "#444444") -> str:
    return f'<FONT POINT-SIZE="10" COLOR="{color}">{text}</FONT>'


def _mono(text: str) -> str:
    return f'<FONT FACE="{MONO}" POINT-SIZE="10">{_e(text)}</FONT>'


def _host(cidr: str) -> str:
    """``192.168.50.1/24`` -> ``192.168.50.1``."""
    try:
        return str(ipaddress.IPv4Interface(cidr).ip)
    except ValueError:
        return cidr


def _on(flag: Any) -> str:
    return "on" if flag else "off"


def _nic_cell(nic: Mapping[str, Any], live: bool = False) -> tuple[str, str]:
    """One NIC's table cell: (TD attributes, content); ``live``: with a row the web page fills
    (carrier, address, lease) and an anchor that opens the VM's settings."""
    mode = _mode(nic)
    strong, fill, _ = mode.style
    how = mode.describe(nic) if nic.get("mode") in modes.MODES else str(nic.get("mode"))
    address = nic.get("ip") or "dhcp"
    head = f'<B>NIC {_e(nic.get("index"))}</B>  <FONT COLOR="{strong}"><B>{_e(how)}</B></FONT>'
    rows = [head, _mono(nic.get("mac") or "?"), _mono(address)]
    extra = []
    if nic.get("forward"):
        extra.append("forward " + ", ".join(nic["forward"]))
    if nic.get("speed") not in (None, 100):
        extra.append(f"speed {nic['speed']}")
    if nic.get("allow_mac_spoofing"):
        extra.append("MAC spoofing allowed")
    rows += [_small(_e(x)) for x in extra]
    attrs = f'PORT="n{_e(nic.get("index"))}" BGCOLOR="{fill}" COLOR="{strong}" ALIGN="LEFT" ' \
            'BALIGN="LEFT" BORDER="1"'
    if live:
        rows.append(_mono(LIVE_NIC))
        attrs += _anchor(live_id("nic", f"{nic.get('vm')}/{nic.get('index')}"),
                         f"{nic.get('vm')} NIC {nic.get('index')}: open its settings")
    if mode.attachment_kind() is None:
        attrs += ' STYLE="dashed"'
    return attrs, "<BR/>".join(rows)


def _vm_label(key: str, vm: Mapping[str, Any], nics: list[Mapping[str, Any]],
              live: bool = False) -> str:
    head = (f'<TD BGCOLOR="#e4e4e4" ALIGN="LEFT" BALIGN="LEFT" BORDER="1" COLOR="#555555">'
            f'<B>{_e(key)}</B>  {_small("virtual machine on " + _e(vm.get("pc") or "?"))}</TD>')
    rows = [head]
    for nic in nics:
        attrs, content = _nic_cell(nic, live)
        rows.append(f"<TD {attrs}>{content}</TD>")
    if not nics:
        rows.append(f'<TD BORDER="1" COLOR="#8c8c8c">{_small("no NICs")}</TD>')
    body = "".join(f"<TR>{r}</TR>" for r in rows)
    return (f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="3" CELLPADDING="4" '
            f'BGCOLOR="#ffffff">{body}</TABLE>>')


def _title_label(name: Any) -> str:
    """The graph's label: the lab's name over the legend (a swatch per NIC mode, two a row)."""
    entries = []
    for mode in modes.MODES.values():
        strong, fill, text = mode.style
        style = ' STYLE="dashed"' if mode.attachment_kind() is None else ""
        entries.append(f'<TD BGCOLOR="{fill}" COLOR="{strong}" BORDER="1" WIDTH="24" HEIGHT="14" '
                       f'FIXEDSIZE="TRUE"{style}> </TD>'
                       f'<TD ALIGN="LEFT">{_small(_e(text), "#222222")}</TD>')
    rows = ['<TD WIDTH="8"> </TD>'.join(entries[i:i + 2]) for i in range(0, len(entries), 2)]
    lines = _small("- - -  LAN link: wireless (radio)<BR/>"
                   "· · ·  NAT routed through the host's IP stack")
    span = f'ROWSPAN="{max(len(rows), 1)}"'
    legend = (f'<TABLE BORDER="1" COLOR="#bbbbbb" CELLBORDER="0" CELLSPACING="3" CELLPADDING="2">'
              f'<TR><TD ALIGN="LEFT" VALIGN="TOP" {span}><FONT POINT-SIZE="11"><B>NIC modes'
              f'</B></FONT></TD>{rows[0] if rows else ""}<TD {span} WIDTH="6"> </TD>'
              f'<TD {span} ALIGN="LEFT" BALIGN="LEFT">{lines}</TD></TR>'
              + "".join(f"<TR>{row}</TR>" for row in rows[1:]) + '</TABLE>')
    title = (f'<FONT POINT-SIZE="16"><B>lab {_e(name)}</B></FONT>  '
             f'{_small("Windows Virtual PC networking (wvpclab)")}')
    return (f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="4" CELLPADDING="0">'
            f'<TR><TD ALIGN="LEFT">{title}</TD></TR><TR><TD ALIGN="LEFT">{legend}</TD></TR>'
            f'</TABLE>>')


# --------------------------------------------------------------------------------------------------
# The DOT source


def _mode(nic: Mapping[str, Any]) -> modes.Mode:
    """A NIC's mode; an unknown one (a hand-made graph) is drawn as not connected."""
    return modes.of_any(nic)


def _attach_key(graph: nx.Graph, key: str, nic: Mapping[str, Any]) -> str | None:
    """The graph node a NIC's cable plugs into: ``PC/ADAPTER``, ``PC/NAME``, the PC (shared), or
    None. The NIC's mode decides; the ``attach`` edge is the fallback."""
    mode = _mode(nic)
    vm = nic.get("vm")
    pc = graph.nodes[vm].get("pc") if vm in graph else None
    if mode.attachment_kind() is None:
        return None
    if pc and (nic.get("target") or not mode.takes_target):
        return mode.graph_attach(graph, nic) if vm in graph else None
    for other in graph.neighbors(key):
        if graph.edges[key, other].get("rel") == "attach":
            return other
    return None


def dot_source(graph: nx.Graph, dpi: int | None = None, live: bool = False) -> str:
    """The lab's picture as Graphviz DOT text (no ``dot`` needed to make it). ``live``: the web
    page's version, whose NICs and switches carry ids (``live_id``) and a row for live values."""
    gv = _binding()
    name = graph.graph.get("name", "lab")
    d = gv.Digraph(name=str(name))
    d.attr(rankdir="LR", newrank="true", compound="true", fontname=FONT, fontsize="16",
           labelloc="t", labeljust="l", nodesep="0.25", ranksep="0.8", pad="0.3",
           label=_title_label(name))
    if dpi:
        d.attr(dpi=str(dpi))
    d.attr("node", fontname=FONT, fontsize="11", shape="plain")
    d.attr("edge", fontname=FONT, fontsize="9", arrowhead="none", penwidth="1.6")

    nodes = {kind: topology.nodes_of(graph, kind) for kind in
             ("pc", "adapter", "lan", "server", "vm", "nic")}
    adapters = dict(nodes["adapter"])
    pcs = dict(nodes["pc"])

    # Nodes a NIC refers to that the graph lacks (a stale or hand-made graph): drawn, marked (a
    # mode draws its own: ``Mode.boxes``).
    missing: dict[str, tuple[str, str]] = {}
    for key, nic in nodes["nic"]:
        attach = _attach_key(graph, key, nic)
        if attach and attach not in graph:
            pc = attach.split("/", 1)[0]
            kind = _mode(nic).attaches_to
            if kind == "adapter":
                missing[attach] = (pc, "adapter not in the topology")
            elif kind == "pc":
                pcs.setdefault(attach, {"kind": "pc", "name": attach})

    # A lab over several servers: each machine a group around its LANs, PCs and VMs.
    servers = graph.graph.get("servers") or {}
    groups: dict[str | None, Any] = {}

    def group(server: str | None) -> Any:
        if not servers:
            return d
        if server not in groups:
            g = gv.Digraph(name=f"cluster_server_{server or 'here'}")
            where = (f"server {server}  {_small(_e(servers[server]['host']))}" if server
                     else "this machine")
            g.attr(label=f"<<B>{_e(where) if not server else where}</B>>", style="dashed",
                   color="#555555", penwidth="1.2", fontsize="13")
            groups[server] = g
        return groups[server]

    # The world outside: the internet (its core router, servers), LANs with their switch (subnet,
    # gateway: DHCP, DNS, and its uplink to the internet) and servers.
    for key, lan in nodes["lan"]:
        with group(lan.get("server")).subgraph(name=f"cluster_lan_{key}") as c:
            inet = bool(lan.get("internet"))
            c.attr(label=f"<<B>{'the internet' if inet else 'LAN ' + _e(key)}</B>>",
                   style="rounded,filled", fillcolor=_LAN_FILL, color=_LAN_BORDER, fontsize="12")
            rows = [f"<B>{_e(key)}</B>  {_small('switch')}", _mono(lan.get("subnet", "?")),
                    _small(f"core router {_e(_host(lan.get('gateway', '?')))}") if inet else
                    _small(f"gateway {_e(_host(lan.get('gateway', '?')))} · "
                           f"DHCP {_on(lan.get('dhcp'))} · DNS")]
            if lan.get("wan"):
                rows.append(_small(f"to the internet as {_e(_host(lan['wan']))}"
                                   if lan.get("nat") else
                                   f"routed to the internet ({_e(_host(lan['wan']))})"))
            c.node(key, _switch_label(rows, key, f"switch {key}: its leases", live, border="1",
                                      bgcolor="#ffffff", color="#777777"), shape="plain")
            for skey, server in nodes["server"]:
                if server.get("lan") == key:
                    c.node(skey, _html([f"<B>{_e(skey)}</B>  {_small('server')}",
                                        _mono(server.get("ip", "?"))],
                                       border="1", bgcolor="#ffffff", color="#777777"))
                    c.edge(skey, key, color="#777777", penwidth="1.2")
        if lan.get("wan") and topology.has_internet(graph):
            d.edge(topology.INTERNET, key, color="#555555", style="bold",
                   label="NAT" if lan.get("nat") else "routed")

    # Each physical PC: adapters, its own IP stack, NAT engines, internal networks.
    for key, pc in sorted(pcs.items()):
        with group(pc.get("server")).subgraph(name=f"cluster_pc_{key}") as c:
            notes = "  ".join(_small(_e(n)) for m in modes.MODES.values() for n in m.pc_notes(pc))
            c.attr(label=f"<<B>{_e(key)} — Windows Virtual PC host</B>  {notes}>",
                   style="rounded,filled", fillcolor=_PC_FILL, color=_PC_BORDER, penwidth="1.5",
                   fontsize="13")
            stack = f"{key}.host"
            c.node(stack, _html([f"<B>{_e(key)}</B>  {_small('host IP stack')}"], border="1",
                                bgcolor="#ffffff", color="#999999", style="rounded"))
            for akey, adapter in sorted(adapters.items()):
                if adapter.get("pc") != key:
                    continue
                wireless = adapter.get("type") == "wireless"
                kind = _small(_e(adapter.get("type", "?")) + " adapter")
                rows = [f"<B>{_e(adapter.get('name', akey))}</B>  {kind}",
                        _mono(adapter.get("mac") or "?"),
                        _small("ip " + _e(adapter.get("ip") or "?"))]
                if not adapter.get("lan"):
                    rows.append(_small("no LAN: cable unplugged"))
                c.node(akey, _switch_label(rows, akey, f"{akey}'s filter switch: its rules", live,
                                           border="1", bgcolor=_ADAPTER_FILL, color="#333333",
                                           style="dashed" if not adapter.get("lan") else None))
                c.edge(akey, stack, color="#999999", penwidth="1.0")
                if adapter.get("lan"):
                    link = ({"style": "dashed", "penwidth": "1.6", "label": "radio",
                             "fontcolor": "#555555"} if wireless else {"penwidth": "2.2"})
                    lan_server = graph.nodes[adapter["lan"]].get("server") \
                        if adapter["lan"] in graph else None
                    if lan_server != pc.get("server"):  # the uplink crosses machines
                        link["label"] = f"{link.get('label', '')} ssh tunnel".strip()
                        link["fontcolor"] = "#555555"
                    d.edge(adapter["lan"], akey, color="#555555", **link)
            for akey, (apc, why) in sorted(missing.items()):
                if apc == key:
                    c.node(akey, _html([f"<B>{_e(akey)}</B>", _small(why, "#b00000")],
                                       border="1", color="#b00000", style="dashed"))
            # what the modes draw in the PC: switches (internal networks) first, then engines
            drawn = [(m, box) for m in modes.MODES.values() for box in m.boxes(graph, key)]
            for mode, box in sorted(drawn, key=lambda mb: mb[1].switch is None):
                strong, fill, _ = mode.style
                rows = [f"<B>{_e(box.title)}</B>" + (f"  {_small(_e(box.note))}" if box.note
                                                      else "")]
                rows += [_mono(text) if how == "mono" else _small(_e(text))
                         for text, how in box.lines]
                look = {"border": "1", "bgcolor": fill, "color": strong,
                        "style": "rounded" if box.rounded else None}
                c.node(box.key, _switch_label(rows, box.key, box.switch, live, **look)
                       if box.switch is not None else _html(rows, **look))
                if box.from_stack:
                    c.edge(stack, box.key, color=strong, style="dotted", penwidth="1.2")

    # The VMs, each NIC a row, and their cables.
    for key, vm in nodes["vm"]:
        nics = topology.nics_of(graph, key)
        group(pcs.get(vm.get("pc"), {}).get("server")).node(key, _vm_label(key, vm, nics, live))
        if vm.get("pc") in pcs:  # every VM right of its PC, whatever its NICs attach to
            d.edge(f"{vm['pc']}.host", key, style="invis", minlen="2")
    for key, nic in nodes["nic"]:
        mode = _mode(nic)
        attach = _attach_key(graph, key, nic)
        if attach is None:
            continue
        tail = f"{mode.engine(nic) or attach}:e"
        strong = mode.style[0]
        d.edge(tail, f"{nic.get('vm')}:n{nic.get('index')}:w", color=strong, penwidth="2.0")
    for server in sorted(groups, key=lambda s: (s is not None, s or "")):
        d.subgraph(groups[server])

    return d.source


# --------------------------------------------------------------------------------------------------
# Rendering


def _binding() -> Any:
    try:
        import graphviz
    except ImportError:
        raise LabError(f"drawing needs the Python package {PYPI_PACKAGE!r}: "
                           f"pip install {PYPI_PACKAGE}") from None
    return graphviz


def render(graph: nx.Graph, path: str | Path) -> Path:
    """Draws the lab in ``graph`` to ``path``: SVG or PNG by its suffix. Returns the path.

    Raises ValueError for another suffix, LabError when Graphviz is missing.
    """
    out = Path(path)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot draw to {str(path)!r}: the file name must end in "
                         f"{' or '.join(FORMATS)}")
    out.write_bytes(pipe(graph, fmt))
    return out


def pipe(graph: nx.Graph, fmt: str = "svg") -> bytes:
    """The picture in ``fmt`` (svg or png) as bytes. LabError when Graphviz is missing or
    fails."""
    return run_dot(dot_source(graph, dpi=PNG_DPI if fmt == "png" else None), fmt)


def run_dot(source: str, fmt: str = "svg") -> bytes:
    """Graphviz's ``dot`` on a DOT text (``dot_source``'s): the picture in ``fmt`` as bytes."""
    gv = _binding()
    try:
        return gv.pipe("dot", fmt, source.encode("utf-8"), quiet=True)
    except gv.ExecutableNotFound:
        raise LabError(f"drawing needs Graphviz's dot program: install the Debian package "
                       f"{APT_PACKAGE!r} (apt-get install {APT_PACKAGE})") from None
    except gv.CalledProcessError as err:
        detail = (err.stderr or b"").decode("utf-8", "replace").strip()
        raise LabError(f"dot failed to draw the lab: {detail or err}") from None
