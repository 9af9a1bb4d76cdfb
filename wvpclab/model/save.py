"""A running lab saved as a topology file: ``render(graph, original)`` writes the text of a file
that starts the same lab (its VMs, their NICs with their numbers, modes, cables, static
addresses and MACs, the internal networks typed at runtime).

Pure: no root, no I/O. Without ``original`` the text is clean YAML as the example files write it
(the schema line first, flow-style NIC entries, no default values). With ``original`` (the text
of the YAML file the lab was loaded from) that file is edited in place (ruamel.yaml's round-trip
mode): its comments, key order and styles stay, and only entries whose meaning changed are
written anew. Meaning is compared on graphs (the original file's, read by the loader, and the
lab's), so ``shared`` and ``{shared: true}`` are the same NIC. A JSON original, or one that is no
YAML topology (a Python file, node-link JSON), gives the clean YAML with a line saying so.

Every text is read back before it is returned: a derived MAC the file would derive otherwise is
written out, and a text that would start another lab is an error, never a file.
"""

from __future__ import annotations

import copy
import difflib
import io
import ipaddress
import json
from collections.abc import Mapping
from typing import Any

import networkx as nx
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from wvpclab.model import modes, topology
from wvpclab.model.addresses import DEFAULT_INTERNET_SUBNET
from wvpclab.model.lookups import INTERNET

#: The first line of every topology file we write: where an editor finds the schema.
SCHEMA_LINE = "# yaml-language-server: $schema=../wvpclab/model/topology.schema.json"
#: The document's sections, in the order a file written afresh has them (docs/topology.md's
#: example; an internet after the name, as topologies/internet.yaml has it).
SECTIONS = ("name", "servers", "internet", "pcs", "lans", "internal", "vms")
#: The keys of an adapter and a LAN, in the order the example files write them.
_ADAPTER_KEYS = ("type", "mac", "lan", "ip")
_LAN_KEYS = ("subnet", "dhcp", "nat", "server", "servers")
#: A NIC's attributes that make what it is (``mac_source`` aside: a derived MAC written out is
#: the same MAC).
_NIC_ATTRS = ("index", "mode", "target", "mac", "ip", "speed", "allow_mac_spoofing", "forward",
              "cable")
#: Attempts at writing out derived MACs the file would derive otherwise (each can move another).
_MAC_ROUNDS = 4


class SaveError(ValueError):
    """A lab that cannot be written as a topology file (its graph does not read back)."""


# --------------------------------------------------------------------------------------------------
# The lab's document, clean


def document(graph: nx.Graph) -> dict:
    """The topology document of a validated lab graph: no default values, MACs written where the
    file would derive others. Raises SaveError if the graph does not read back as itself."""
    doc, errors = topology.to_document(graph)
    if errors:
        raise SaveError(f"the lab's graph is not a topology: {errors[0]}")
    doc = _clean(doc, graph)
    for _ in range(_MAC_ROUNDS):
        wrong = _differences(graph, _reload(doc))
        macs = {key: mac for key, mac in wrong if mac is not None}
        if len(macs) < len(wrong):
            break
        if not wrong:
            return doc
        for key, mac in macs.items():
            _entry_of(doc, graph, key)["mac"] = mac
    problems = [key for key, _ in _differences(graph, _reload(doc))]
    if problems:
        raise SaveError(f"lab {graph.graph.get('name')} does not read back as itself "
                        f"(at {', '.join(map(str, problems[:5]))})")
    return doc


def _clean(doc: dict, graph: nx.Graph) -> dict:
    """``to_document``'s document without the values a file leaves to their defaults, its
    sections in the order of SECTIONS."""
    out: dict[str, Any] = {"name": doc["name"]}
    servers = {name: {k: v for k, v in body.items() if not (k == "user" and v == "root")}
               for name, body in doc.get("servers", {}).items()}
    if servers:
        out["servers"] = servers
    pcs = {}
    for name, body in doc.get("pcs", {}).items():
        pc = dict(body)
        adapters = {a: {k: ad[k] for k in _ADAPTER_KEYS if k in ad
                        and not (k == "type" and ad[k] == "wired")
                        and not (k == "ip" and ad[k] == "dhcp")}
                    for a, ad in pc.pop("adapters", {}).items()}
        pcs[name] = {**({"adapters": adapters} if adapters else {}), **pc}
    if pcs:
        out["pcs"] = pcs
    lans = {}
    for name, body in doc.get("lans", {}).items():
        lan = {k: body[k] for k in _LAN_KEYS if k in body
               and not (k == "dhcp" and body[k] is True) and not (k == "servers" and not body[k])}
        if "servers" in lan:
            lan["servers"] = _bare(lan["servers"], lan["subnet"])
        lans[name] = lan
    if lans:
        out["lans"] = lans
    if doc.get("internal"):
        # written as the example files write it ({dhcp: true}), not as an empty mapping
        out["internal"] = {name: {"dhcp": body.get("dhcp", True)}
                           for name, body in doc["internal"].items()}
    several = len([1 for _, d in graph.nodes(data=True) if d.get("kind") == "pc"]) > 1
    vms = {}
    for name, body in doc.get("vms", {}).items():
        vm = {k: v for k, v in body.items() if k != "nics" and (k != "pc" or several)}
        vm["nics"] = [_clean_nic(e) for e in body.get("nics", [])]
        vms[name] = vm
    if vms:
        out["vms"] = vms
    if INTERNET in doc:
        body = doc[INTERNET]
        out[INTERNET] = {k: v for k, v in body.items()
                         if not (k == "subnet" and v == DEFAULT_INTERNET_SUBNET)
                         and not (k == "servers" and not v)}
        if out[INTERNET].get("servers"):
            out[INTERNET]["servers"] = _bare(out[INTERNET]["servers"], body["subnet"])
    return out


def _bare(hosts: Mapping, subnet: Any) -> dict:
    """Hosts' addresses as a file writes them: bare where the prefix is the network's."""
    try:
        prefix = f"/{ipaddress.IPv4Network(subnet).prefixlen}"
    except (ValueError, TypeError):
        return dict(hosts)
    return {name: ip[: -len(prefix)] if isinstance(ip, str) and ip.endswith(prefix) else ip
            for name, ip in hosts.items()}


def _clean_nic(entry: Mapping) -> dict:
    return {k: v for k, v in entry.items()
            if not (k == "speed" and v == 100) and not (k == "cable" and v is True)}


def _entry_of(doc: dict, graph: nx.Graph, key: Any) -> dict:
    """The mapping of a NIC or host adapter node in a clean document."""
    data = graph.nodes[key]
    if data["kind"] == "adapter":
        pc = doc["pcs"][data["pc"]]
        return pc.setdefault("adapters", {})[data["name"]]
    numbers = sorted(d["index"] for _, d in graph.nodes(data=True)
                     if d.get("kind") == "nic" and d.get("vm") == data["vm"])
    return doc["vms"][data["vm"]]["nics"][numbers.index(data["index"])]


def _reload(doc: Any) -> nx.Graph:
    """The lab a document starts (SaveError: it starts none)."""
    try:
        return topology.from_document(copy.deepcopy(doc))
    except topology.TopologyError as err:
        first = err.errors[0] if err.errors else err
        raise SaveError(f"the lab does not read back as a topology: {first}") from None


def _declared(graph: nx.Graph) -> dict:
    """The internal networks a lab has: declared in its file or typed at runtime."""
    nets = {k: bool((v or {}).get("dhcp", True))
            for k, v in (graph.graph.get("internal") or {}).items()}
    for _, d in graph.nodes(data=True):
        if d.get("kind") == "internal":
            nets.setdefault(d["name"], bool(d.get("dhcp", True)))
    return nets


def _differences(graph: nx.Graph, other: nx.Graph) -> list[tuple[Any, str | None]]:
    """Where ``other`` is not the lab ``graph``: (node key or what, the MAC ``graph`` has when a
    MAC is all that differs, else None). Internal networks are compared as declared (a PC's node
    of one no NIC uses any more is no difference)."""
    out: list[tuple[Any, str | None]] = []
    if graph.graph.get("name") != other.graph.get("name"):
        out.append(("name", None))
    if _declared(graph) != _declared(other):
        out.append(("internal", None))
    if (graph.graph.get("servers") or {}) != (other.graph.get("servers") or {}):
        out.append(("servers", None))
    mine = {k: d for k, d in graph.nodes(data=True) if d.get("kind") != "internal"}
    theirs = {k: d for k, d in other.nodes(data=True) if d.get("kind") != "internal"}
    for key in sorted(set(mine) | set(theirs), key=str):
        a, b = mine.get(key), theirs.get(key)
        if a is None or b is None:
            out.append((key, None))
            continue
        attrs = set(a) | set(b)
        attrs.discard("mac_source")
        if a.get("kind") == "pc":
            attrs.discard("base_mac")  # follows the adapters' MACs, compared themselves
        changed = {x for x in attrs if a.get(x) != b.get(x)}
        if changed == {"mac"} and a.get("mac"):
            out.append((key, a["mac"]))
        elif changed:
            out.append((key, None))
    return out


def _nic_signatures(graph: nx.Graph, vm: str) -> list[tuple]:
    nics = sorted((d for _, d in graph.nodes(data=True)
                   if d.get("kind") == "nic" and d.get("vm") == vm), key=lambda d: d["index"])
    return [tuple(_freeze(d.get(a)) for a in _NIC_ATTRS) for d in nics]


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# --------------------------------------------------------------------------------------------------
# Rendering


def render(graph: nx.Graph, original: str | None = None, fmt: str = "yaml", *,
           source: str | None = None) -> str:
    """The text of a topology file that starts the lab ``graph`` (a validated lab graph, e.g. a
    running lab's ``graph_snapshot()``) as it is now.

    ``original``: the text of the file the lab was loaded from; a YAML one is kept (comments,
    order, styles) and changed only where the lab changed. ``fmt``: ``yaml`` or ``json``.
    ``source``: the original's name, for the line a file gets when its original cannot be kept.
    Raises SaveError when the lab cannot be written as a file that starts it again.
    """
    if fmt not in ("yaml", "json"):
        raise SaveError(f"{fmt!r} is not a topology file format (yaml or json)")
    doc = document(graph)
    if fmt == "json":
        text = json.dumps({"$schema": _schema_path(), **doc}, indent=2) + "\n"
        _check_text(graph, json.loads(text))
        return text
    note = None
    if original is not None:
        edited, why = _edit(original, graph, doc)
        if edited is not None:
            return edited
        what = f" {source}" if source else ""
        note = (f"# Saved from the running lab {graph.graph.get('name')}; its topology file{what}"
                f" was {why}, so its layout is not kept.")
    return _plain(graph, doc, note)


def _schema_path() -> str:
    return SCHEMA_LINE.split("$schema=", 1)[1]


def _plain(graph: nx.Graph, doc: dict, note: str | None = None) -> str:
    """The document as YAML written afresh, in the example files' style."""
    tree = CommentedMap()
    for section in SECTIONS:
        if section in doc:
            tree[section] = _styled_section(section, doc[section])
    head = SCHEMA_LINE + "\n" + (note + "\n" if note else "")
    text = head + _dump(tree, _yaml())
    _check_text(graph, yaml.safe_load(text))
    return text


def _styled_section(section: str, body: Any) -> Any:
    if section == "name":
        return _scalar(body)
    if section == "internet":
        return _map(body, flow_below=1)
    out = CommentedMap()
    for name, entry in body.items():
        if section == "vms":
            out[_scalar(name)] = _styled_vm(entry)
        elif section == "pcs":
            out[_scalar(name)] = _map(entry, flow_below=2) if entry else _flow({})
        elif section == "lans":
            out[_scalar(name)] = _map(entry, flow_below=1) if entry else _flow({})
        else:  # servers, internal: one line each
            out[_scalar(name)] = _flow(entry)
    return out


def _styled_vm(vm: Mapping, like: Any = None) -> CommentedMap:
    """A VM's mapping in the example files' style, or like ``like`` (a neighbour's mapping in
    the original: flow or block, its NIC list flow or block)."""
    flow_vm = isinstance(like, CommentedMap) and like.fa.flow_style()
    nics_like = like.get("nics") if isinstance(like, CommentedMap) else None
    out = CommentedMap()
    for key, value in vm.items():
        if key == "nics":
            out["nics"] = _styled_nics(value, nics_like)
        else:
            out[key] = _value(value)
    if flow_vm:
        out.fa.set_flow_style()
    return out


def _styled_nics(nics: list, like: Any = None) -> CommentedSeq:
    """A NIC list: one NIC on one line (``[{bridge: eth0}]``), several one a line, or as
    ``like``'s."""
    seq = CommentedSeq(_nic_item(e, like) for e in nics)
    if isinstance(like, CommentedSeq):
        flow = like.fa.flow_style() or not like
    else:
        flow = len(nics) <= 1
    if flow:
        seq.fa.set_flow_style()
    else:
        seq.fa.set_block_style()
    return seq


def _nic_item(entry: Mapping, like: Any = None) -> Any:
    """A NIC entry: the mode's one word (``shared``) when it is all, else a flow mapping, or a
    block one where ``like`` (a NIC list) writes its mappings so."""
    entry = dict(entry)
    (first, value), *rest = entry.items()
    if not rest and value is True and first in modes.MODES:
        return first
    item = CommentedMap((k, _value(v)) for k, v in entry.items())
    block = (isinstance(like, CommentedSeq) and not like.fa.flow_style()
             and any(isinstance(e, CommentedMap) and not e.fa.flow_style() for e in like)
             and not rest)
    if not block:
        item.fa.set_flow_style()
    return item


def _map(body: Mapping, flow_below: int) -> CommentedMap:
    """A block mapping whose values ``flow_below`` levels down are written on one line."""
    out = CommentedMap()
    for key, value in body.items():
        if isinstance(value, Mapping):
            out[_scalar(key)] = (_flow(value) if flow_below <= 1
                                 else _map(value, flow_below - 1))
        else:
            out[_scalar(key)] = _value(value)
    return out


def _flow(body: Mapping) -> CommentedMap:
    out = CommentedMap((_scalar(k), _value(v)) for k, v in body.items())
    out.fa.set_flow_style()
    return out


def _value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _flow(value)
    if isinstance(value, list):
        seq = CommentedSeq(_value(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    return _scalar(value)


def _scalar(value: Any) -> Any:
    """A string PyYAML (the loader's YAML 1.1) would read as something else is quoted (``no``,
    ``on``, ``1:20``); a MAC always, as the examples write it."""
    if not isinstance(value, str):
        return value
    try:
        read = yaml.safe_load(value)
    except yaml.YAMLError:
        read = None
    if read != value or not isinstance(read, str) or value.count(":") == 5:
        return DoubleQuotedScalarString(value)
    return value


def _yaml(indent: tuple[int, int, int] = (2, 4, 2)) -> YAML:
    y = YAML()  # round-trip: comments, order and styles kept
    y.preserve_quotes = True
    y.width = 4096  # never folds a long line
    y.brace_single_entry_mapping_in_flow_sequence = True  # [{bridge: eth0}], as written
    y.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    return y


def _dump(tree: Any, y: YAML) -> str:
    out = io.StringIO()
    y.dump(tree, out)
    return out.getvalue()


def _check_text(graph: nx.Graph, data: Any) -> None:
    wrong = _differences(graph, _reload(data))
    if wrong:
        raise SaveError(f"lab {graph.graph.get('name')} does not read back as itself "
                        f"(at {', '.join(str(k) for k, _ in wrong[:5])})")


# --------------------------------------------------------------------------------------------------
# Editing the original file in place

#: Indentations tried on an original (mapping, sequence, dash offset): the first that writes it
#: back unchanged is used.
_INDENTS = ((2, 4, 2), (2, 2, 0), (4, 6, 4), (4, 2, 0), (4, 4, 2), (3, 5, 3), (3, 2, 0),
            (3, 4, 2))


def _edit(original: str, graph: nx.Graph, doc: dict) -> tuple[str | None, str]:
    """The original YAML file with the lab's changes, or (None, why it cannot be kept)."""
    if original.lstrip().startswith(("{", "[")):
        return None, "JSON"
    if "\r\n" in original:  # written with Windows line ends: kept so
        text, why = _edit(original.replace("\r\n", "\n"), graph, doc)
        return (text.replace("\n", "\r\n") if text is not None else None), why
    y = None
    for indent in _INDENTS:
        candidate = _yaml(indent)
        try:
            tree = candidate.load(original)
        except Exception:  # noqa: BLE001 - whatever it is, the file is written afresh
            return None, "not YAML whose layout can be kept"
        if not isinstance(tree, CommentedMap):
            return None, "not a YAML topology document"
        if _dump(tree, candidate) == original:
            y = candidate
            break
    if y is None:
        y = _yaml()
    tree = y.load(original)
    try:
        before = topology.from_document(yaml.safe_load(original), graph.graph.get("name", "lab"))
    except (topology.TopologyError, yaml.YAMLError):
        return None, "not a valid YAML topology"
    _Editor(tree, before, graph, doc).run()
    for _ in range(_MAC_ROUNDS):
        text = _dump(tree, y)
        try:
            wrong = _differences(graph, _reload(yaml.safe_load(text)))
        except (SaveError, yaml.YAMLError):
            return None, "not editable in place"
        if not wrong:
            return text, ""
        if any(mac is None for _, mac in wrong):
            return None, "not editable in place"
        for key, mac in wrong:
            _tree_entry(tree, graph, key)["mac"] = DoubleQuotedScalarString(mac)
    return None, "not editable in place"


def _tree_entry(tree: CommentedMap, graph: nx.Graph, key: Any) -> CommentedMap:
    """The mapping of a NIC or adapter node in the edited file (a one-word NIC becomes one)."""
    data = graph.nodes[key]
    if data["kind"] == "adapter":
        return tree["pcs"][data["pc"]]["adapters"][data["name"]]
    numbers = sorted(d["index"] for _, d in graph.nodes(data=True)
                     if d.get("kind") == "nic" and d.get("vm") == data["vm"])
    seq = tree["vms"][data["vm"]]["nics"]
    pos = numbers.index(data["index"])
    if not isinstance(seq[pos], CommentedMap):
        seq[pos] = _as_mapping(seq[pos])
    return seq[pos]


def _as_mapping(item: Any) -> CommentedMap:
    """A one-word NIC (``shared``) as a flow mapping, to which keys can be added."""
    mode, target = modes.parse(str(item), sep=": ")
    out = CommentedMap(modes.by_name(mode).entry(target))
    out.fa.set_flow_style()
    return out


class _Editor:
    """Edits the original's round-trip tree into the lab's document, entry by entry."""

    def __init__(self, tree: CommentedMap, before: nx.Graph, graph: nx.Graph, doc: dict) -> None:
        self.tree, self.before, self.graph, self.doc = tree, before, graph, doc
        self.old = document_of(before)

    def run(self) -> None:
        if self.tree.get("name") != self.doc["name"]:
            if "name" in self.tree:
                self.tree["name"] = _scalar(self.doc["name"])
            else:
                self.tree.insert(0, "name", _scalar(self.doc["name"]))
        for section in ("servers", "pcs", "lans", "internal", INTERNET):
            self.section(section)
        self.vms()

    # -- sections other than vms: an entry whose meaning changed is written anew --------------
    def section(self, section: str) -> None:
        new, old = self.doc.get(section), self.old.get(section)
        if new == old:
            return
        if section == INTERNET:
            self.put(self.tree, section, _map(new, flow_below=1) if new is not None else None)
            return
        if new is None:
            if section in self.tree:
                _remove(self.tree, section)
            return
        body = self.tree.get(section)
        if not isinstance(body, CommentedMap):
            self.put(self.tree, section, _styled_section(section, new))
            return
        old = old or {}
        for name in list(body):
            if name not in new:
                _remove(body, name)
        for name, entry in new.items():
            if old.get(name) == entry and name in body:
                continue
            styled = _styled_section(section, {name: entry})[name]
            like = _neighbour(body, name)
            if (section == "internal" and isinstance(like, Mapping) and not like
                    and entry == {"dhcp": True}):
                styled = _flow({})  # as its neighbours write the default: `lab: {}`
            self.put(body, name, styled)

    def put(self, body: CommentedMap, key: Any, value: Any) -> None:
        """Sets ``body[key]`` (a new key in SECTIONS' order at the top level, else at the end);
        ``None`` removes it."""
        if value is None:
            if key in body:
                _remove(body, key)
            return
        if key in body:
            _replace(body, key, value)
            return
        if body is self.tree and key in SECTIONS:
            after = [k for k in SECTIONS[SECTIONS.index(key) + 1:] if k in body]
            if after:
                body.insert(list(body).index(after[0]), key, value)
                return
        _append(body, key, value)

    # -- vms: NICs compared on graphs, changed ones written anew in place ---------------------
    def vms(self) -> None:
        new = self.doc.get("vms", {})
        body = self.tree.get("vms")
        if not isinstance(body, CommentedMap):
            if new:
                self.put(self.tree, "vms", _styled_section("vms", new))
            elif "vms" in self.tree:
                _remove(self.tree, "vms")
            return
        for name in list(body):
            if name not in new:
                _remove(body, name)
        for name, vm in new.items():
            if name in body and body[name] is None:  # `xp:` alone: every default
                if self.unchanged(name):
                    continue
                _replace(body, name, CommentedMap())
            if name not in body or not isinstance(body[name], CommentedMap):
                like = _neighbour(body, name)
                styled = _styled_vm(vm, like)
                if (isinstance(like, CommentedMap) and "pc" in like and "pc" not in styled):
                    styled.insert(0, "pc", _scalar(self.graph.nodes[name]["pc"]))
                self.put(body, name, styled)
                continue
            self.vm(body[name], name, vm)

    def unchanged(self, name: str) -> bool:
        """Whether VM ``name`` is as the original file has it (its NICs too)."""
        was = self.before.nodes[name] if name in self.before else None
        return (was == self.graph.nodes[name]
                and _nic_signatures(self.before, name) == _nic_signatures(self.graph, name))

    def vm(self, entry: CommentedMap, name: str, vm: dict) -> None:
        was = self.before.nodes[name] if name in self.before else {}
        now = self.graph.nodes[name]
        for key, default in (("pc", None), ("dhcp_client", "udhcpc"), ("ipv6", True)):
            if was.get(key) == now.get(key):
                continue
            if key in vm:
                self.put(entry, key, _scalar(vm[key]))
            elif key in entry and key != "pc":
                _remove(entry, key)
        old_nics = _nic_signatures(self.before, name)
        new_nics = _nic_signatures(self.graph, name)
        if old_nics == new_nics:
            return
        seq = entry.get("nics")
        if not isinstance(seq, CommentedSeq):
            like = _neighbour_nics(self.tree["vms"], name)
            self.put(entry, "nics", _styled_nics(vm["nics"], like))
            return
        items = list(vm["nics"])
        ops = difflib.SequenceMatcher(None, old_nics, new_nics, autojunk=False).get_opcodes()
        for tag, i1, i2, j1, j2 in reversed(ops):
            if tag == "equal":
                continue
            common = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            for k in range(common):
                _replace(seq, i1 + k, _nic_item(items[j1 + k], seq))
            for k in range(i2 - 1, i1 + common - 1, -1):
                _remove(seq, k)
            for k in range(j1 + common, j2):
                seq.insert(i1 + k - j1, _nic_item(items[k], seq))
        self.numbers(seq, [sig[0] for sig in new_nics])

    @staticmethod
    def numbers(seq: CommentedSeq, numbers: list[int]) -> None:
        """Each NIC entry's ``index`` where its number does not follow the one before."""
        after = -1
        for pos, number in enumerate(numbers):
            item = seq[pos]
            written = item.get("index") if isinstance(item, CommentedMap) else None
            if number != after + 1 or (written is not None and written != number):
                if not isinstance(item, CommentedMap):
                    item = _as_mapping(item)
                    _replace(seq, pos, item)
                item["index"] = number
            after = number


def document_of(graph: nx.Graph) -> dict:
    """The clean document of a graph, MACs as its own file writes them (for comparing)."""
    doc, _ = topology.to_document(graph)
    return _clean(doc, graph)


def _neighbour(body: CommentedMap, name: Any) -> Any:
    """The entry before ``name`` in ``body`` (or after it, or the last), to copy its style."""
    keys = [k for k in body if k != name]
    if name in body:
        pos = list(body).index(name)
        before = [k for k in list(body)[:pos]]
        if before:
            return body[before[-1]]
    return body[keys[-1]] if keys else None


def _neighbour_nics(vms: CommentedMap, name: Any) -> Any:
    for key in reversed([k for k in vms if k != name]):
        if isinstance(vms[key], CommentedMap) and isinstance(vms[key].get("nics"), CommentedSeq):
            return vms[key]["nics"]
    return None


# -- comments: a changed entry loses its own, the ones before the next entry stay ---------------


def _slot(body: Any, key: Any) -> int:
    return 0 if isinstance(body, CommentedSeq) else 2


def _last_holder(body: Any, key: Any) -> tuple[Any, Any]:
    """The container and key holding the comment that ends ``body[key]`` (the comment lines
    after an entry hang on its deepest last value)."""
    value = body[key]
    while isinstance(value, (CommentedMap, CommentedSeq)) and value and not value.fa.flow_style():
        body, key = value, (list(value)[-1] if isinstance(value, CommentedMap) else len(value) - 1)
        value = body[key]
    return body, key


def _tail(body: Any, key: Any) -> tuple[str, str]:
    """The comment ending ``body[key]``: (its own, on the entry's last line; the lines after)."""
    holder, hkey = _last_holder(body, key)
    entry = holder.ca.items.get(hkey)
    slot = _slot(holder, hkey)
    token = entry[slot] if entry and len(entry) > slot else None
    if token is None:
        return "", ""
    text = token.value
    if text.startswith("#"):
        own, _, rest = text.partition("\n")
        return own, rest
    return "", text


def _set_tail(body: Any, key: Any, own: str, rest: str) -> None:
    """Sets the comment ending ``body[key]`` (see ``_tail``)."""
    holder, hkey = _last_holder(body, key)
    slot = _slot(holder, hkey)
    text = (own + "\n" + rest) if own else ("\n" + rest if rest and not rest.startswith("\n")
                                           else rest)
    entry = holder.ca.items.get(hkey)
    if not text.strip("\n") and not own:
        text = ""
    if not text:
        if entry and len(entry) > slot:
            entry[slot] = None
            if not any(entry):
                holder.ca.items.pop(hkey, None)
        return
    if not entry:
        entry = holder.ca.items[hkey] = [None, None, None, None]
    token = entry[slot]
    if token is None:
        entry[slot] = CommentToken(text, CommentMark(0))
    else:
        token.value = text
    if isinstance(holder[hkey], (CommentedMap, CommentedSeq)) and holder[hkey].fa.flow_style():
        holder[hkey].ca.comment = None  # the parent's copy is the one written


def _replace(body: Any, key: Any, value: Any) -> None:
    """``body[key] = value``; the old value's own comment goes, the lines after it stay."""
    _, rest = _tail(body, key)
    _set_tail(body, key, "", "")
    body[key] = value
    if rest:
        _set_tail(body, key, "", rest)


def _remove(body: Any, key: Any) -> None:
    """Removes ``body[key]`` with its comments; the comment lines before the next entry stay."""
    keys = list(body) if isinstance(body, CommentedMap) else list(range(len(body)))
    pos = keys.index(key)
    _, rest = _tail(body, key)
    column = _column(body, key)
    kept = _after_entry(rest, column)
    if pos > 0:  # the comment lines before this entry hang on the one before it: they go too
        prev = keys[pos - 1]
        own, prest = _tail(body, prev)
        _set_tail(body, prev, own, _before_next(prest, column) + kept)
    else:  # the first entry's come before the mapping's (or list's) first line
        tokens = body.ca.comment[1] if body.ca.comment and len(body.ca.comment) > 1 else None
        lead = "".join(t.value for t in tokens) if tokens else ""
        head = _before_next(lead, column)
        # the first line is written at the token's column, the others as they are
        text = head + kept if head.strip() else kept.lstrip("\n").lstrip(" ")
        if tokens:
            tokens[0].value = text
            for token in tokens[1:]:
                token.value = ""
        elif text.strip():
            body.ca.comment = [None, [CommentToken(text, CommentMark(column or 0))]]
    del body[key]


def _column(body: Any, key: Any) -> int | None:
    """The column of an entry's key (its dash in a list), when the original said it."""
    try:
        if isinstance(body, CommentedMap):
            return body.lc.key(key)[1]
        return body.lc.item(key)[1] - 2
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _after_entry(rest: str, column: int | None) -> str:
    """Of the comment lines after an entry, those of the next one (at most as deep as the
    entry's key), and the blank lines."""
    lines = _lines(rest)
    keep = [i for i, line in enumerate(lines)
            if not line.strip() or column is None or len(line) - len(line.lstrip()) <= column]
    first = keep[0] if keep else len(lines)
    return "".join(lines[first:])


def _before_next(rest: str, column: int | None) -> str:
    """Of the comment lines after an entry, those that are its own (deeper than the next
    entry's key, the lines up to the last blank line): what stays when the next entry goes."""
    lines = _lines(rest)
    end = len(lines)
    while end and lines[end - 1].strip() and (
            column is None or len(lines[end - 1]) - len(lines[end - 1].lstrip()) <= column):
        end -= 1
    return "".join(lines[:end])


def _append(body: CommentedMap, key: Any, value: Any) -> None:
    """A new last entry: the comment lines after the old last entry stay after it."""
    keys = list(body)
    if keys:
        own, rest = _tail(body, keys[-1])
        _set_tail(body, keys[-1], own, "")
        body[key] = value
        if rest:
            _set_tail(body, key, "", rest)
    else:
        body[key] = value


__all__ = ["SCHEMA_LINE", "SaveError", "document", "render"]
