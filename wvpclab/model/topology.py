"""Topology files -> a validated networkx graph (pure: no root, no I/O beyond reading the file).

The file contract is docs/architecture.md §4. Every error is collected and reported at once, each
naming its key path and the offending value; nothing is started from a topology that has an error.
The document's structure (keys, types, defaults, choices) is declared once in
``wvpclab.model.schema``; this module reads files, runs the cross-reference checks on what the
schema parsed (names, addresses, what refers to what; each NIC's mode checks its own target, address
and forwards) and builds the graph. A graph built in code is checked in graph words first
(``from_graph``), and ``checked(graph)`` validates a graph once per lab start.

Graph schema (node key: attributes; every node has ``kind`` and ``name``):

- ``PC``: kind ``pc``; ``nat_subnet`` (CIDR); ``base_mac`` (the first adapter's MAC, or derived);
  ``server`` (the server it runs on, or None: the machine that runs the lab).
- ``PC/ADAPTER``: kind ``adapter``; ``pc``, ``type`` (wired|wireless), ``mac``, ``mac_source``
  (explicit|derived), ``lan`` (or None), ``ip`` (``dhcp`` or CIDR).
- ``LAN``: kind ``lan``; ``subnet``, ``gateway`` (CIDR of the .1 gateway), ``dhcp`` (bool),
  ``server`` (as a PC's); with an internet also ``nat`` (bool: NATed onto it, else routed) and
  ``wan`` (CIDR of its gateway on the internet).
- ``internet`` (the optional ``internet:`` section): kind ``lan`` too, with ``internet`` True,
  ``dns`` False, ``dhcp`` False, ``gateway`` its core router (``gw.internet``).
- ``SERVER``: kind ``server``; ``lan`` (``internet`` for the internet's), ``ip`` (CIDR).
- ``PC/NAME``: kind ``internal``; ``pc``, ``dhcp`` (bool).
- ``VM``: kind ``vm``; ``pc``; ``dhcp_client`` (udhcpc|dhclient: the guest's DHCP client);
  ``ipv6`` (bool: whether the guest runs IPv6 beside IPv4, as Windows 7 does and XP by default not).
- ``VM/N``: kind ``nic``; ``vm``, ``index``, ``mode`` (a name in ``wvpclab.model.modes.MODES``),
  ``target`` (what the mode names: an adapter, an internal network; else None), ``mac``,
  ``mac_source``, ``ip`` (CIDR or None for DHCP), ``speed`` (10|100|"unlimited"),
  ``allow_mac_spoofing``, ``forward`` (list of ``proto:hostport:guestport``).

The graph's own attributes: ``name``, ``internal`` (declared internal networks) and ``servers``
(``{NAME: {"host": ADDRESS, "user": USER}}``, the other machines a lab spreads over; empty: one
machine).

Edges carry ``rel``: pc-adapter ``adapter``, adapter-lan ``uplink``, lan-server ``server``,
pc-internal ``internal``, vm-pc ``host``, vm-nic ``nic``, and nic-(adapter|internal|pc) ``attach``
with the NIC's ``mode`` (the mode says where: ``Mode.graph_attach``; a NIC not connected has no
attach edge).
"""

from __future__ import annotations

import ipaddress
import json
import stat
import subprocess
import sys
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from wvpclab.model import macs, modes, schema
from wvpclab.model.addresses import (
    DEFAULT_INTERNET_SUBNET,
    DEFAULT_NAT_SUBNET,
    INTERNAL_SERVER,  # noqa: F401 - read from here by others
    TRANSIT_NET,
    gateway_address,
    nat_address,  # noqa: F401 - read from here by others
)
from wvpclab.model.lookups import INTERNET, has_internet, nics_of, nodes_of
from wvpclab.model.names import (
    ADAPTER_RE,
    ADAPTER_RULE,
    LAB_NAME_RE,
    LAB_NAME_RULE,
    NAME_RE,
    NAME_RULE,
    RESERVED_IFACE_RE,
    RESERVED_NAMES,
    did_you_mean,
)
from wvpclab.model.schema import (  # noqa: F401 - part of this module's interface
    ADAPTER_TYPES,
    DHCP_CLIENTS,
    MAX_NICS,
    SPEEDS,
    Issue,
)

#: The name that stands for the machine running the lab (in plans and placements).
LOCAL = "local"
def __getattr__(name: str) -> Any:
    """``MODES``: the mode names, as registered now (``wvpclab.model.modes.MODES``)."""
    if name == "MODES":
        return tuple(modes.MODES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: A NIC's keys other than its mode.
_NIC_OPTIONS = ("ip", "mac", "speed", "allow_mac_spoofing", "forward", "cable")


class TopologyError(Exception):
    """A topology that cannot be used; ``errors`` lists every problem found."""

    def __init__(self, errors: Iterable[Issue], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.errors)
        lines = [f"{count} error{'s' if count != 1 else ''}{where}:"]
        lines += [f"  {e}" for e in self.errors]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------------------------------
# Reading files


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser if there
    """A YAML loader refusing a key given twice in one mapping (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                f"while reading the mapping that starts on line {node.start_mark.line + 1}",
                node.start_mark,
                f"key {key!r} appears twice (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping  # type: ignore[arg-type]
)


def _yaml_error(err: yaml.YAMLError) -> Issue:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    text = f"{context}: {problem}" if context else str(problem)
    if mark is not None:
        return Issue(f"line {mark.line + 1}, column {mark.column + 1}", f"YAML: {text}")
    return Issue("", f"YAML: {text}")


#: A topology file is read only if it is a regular file of at most this size ...
MAX_BYTES = 16 * 2**20
#: ... and its YAML, aliases expanded, holds at most this many values, nested at most this deep.
MAX_VALUES = 1_000_000
MAX_DEPTH = 64
#: A ``.py`` topology runs in a child process for at most this long.
PYTHON_TIMEOUT = 60.0


def read(path: str | Path) -> Any:
    """Reads a topology file: a YAML/JSON document (a mapping), a node-link JSON graph, or a
    ``.py`` file whose ``topology()`` returns a graph or a mapping (run in a child process, so that
    its exit or crash is this file's error). Raises TopologyError if it cannot be read: only regular
    files of at most MAX_BYTES, YAML whose aliases expand within MAX_VALUES values, nesting within
    MAX_DEPTH, numbers Python can read.
    """
    p = Path(path)
    src = str(path)
    try:
        if not p.exists():
            raise TopologyError([Issue("", "no such file")], src)
        if p.is_dir():
            raise TopologyError([Issue("", "is a directory, not a topology file")], src)
        info = p.stat()
    except OSError as err:
        raise TopologyError([Issue("", f"cannot read: {err.strerror or err}")], src) from None
    if not stat.S_ISREG(info.st_mode):
        raise TopologyError([Issue("", "is not a regular file (a FIFO, device or socket); a "
                                       "topology is a file")], src)
    if info.st_size > MAX_BYTES:
        raise TopologyError([Issue("", f"is {info.st_size / 2**20:.1f} MiB; a topology file may "
                                       f"be at most {MAX_BYTES // 2**20} MiB")], src)
    if p.suffix == ".py":
        return _read_python(p, src)
    try:
        with open(p, "rb") as f:
            text = f.read(MAX_BYTES + 1).decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TopologyError([Issue("", f"cannot read: {_short(str(err))}")], src) from None
    if len(text) > MAX_BYTES:
        raise TopologyError([Issue("", f"is larger than {MAX_BYTES // 2**20} MiB")], src)
    if not text.strip():
        raise TopologyError([Issue("", "the file is empty")], src)
    try:
        if p.suffix == ".json":
            try:
                return json.loads(text)
            except json.JSONDecodeError as err:
                raise TopologyError(
                    [Issue(f"line {err.lineno}, column {err.colno}", f"JSON: {err.msg}")], src
                ) from None
        return _load_yaml(text, src)
    except RecursionError:
        raise TopologyError([Issue("", "nested too deep to read")], src) from None
    except ValueError as err:  # e.g. an integer of more digits than Python reads
        raise TopologyError([Issue("", f"a value cannot be read: {_short(str(err))}")],
                            src) from None


def _load_yaml(text: str, src: str) -> Any:
    """YAML through the strict loader, its size measured (aliases expanded) before it is built."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node, src)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise TopologyError([_yaml_error(err)], src) from None
    finally:
        loader.dispose()


def _measure(root: yaml.Node, src: str) -> None:
    """Refuses a YAML document that, aliases expanded, holds more than MAX_VALUES values, nests
    deeper than MAX_DEPTH, or refers to itself (counted once per distinct node: linear)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in size:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if not done:
            if key in open_nodes:
                raise TopologyError([Issue(f"line {node.start_mark.line + 1}",
                                           "a value that contains itself (a recursive alias)")],
                                    src)
            open_nodes.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in open_nodes:
                    raise TopologyError(
                        [Issue(f"line {child.start_mark.line + 1}",
                               "a value that contains itself (a recursive alias)")], src)
                if id(child) not in size:
                    stack.append((child, False))
            continue
        open_nodes.discard(key)
        size[key] = 1 + sum(size[id(c)] for c in children)
        depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
        if size[key] > MAX_VALUES:
            raise TopologyError([Issue("", f"its values, aliases expanded, are more than "
                                           f"{MAX_VALUES:,}: not a topology")], src)
        if depth[key] > MAX_DEPTH:
            raise TopologyError([Issue(f"line {node.start_mark.line + 1}",
                                       f"nested deeper than {MAX_DEPTH} levels")], src)


#: Runs a ``.py`` topology in a child: its stdout goes to stderr, the result is one JSON line.
_PYTHON_CHILD = r"""
import importlib.util, json, sys
from collections.abc import Mapping
import networkx as nx
out, sys.stdout = sys.stdout, sys.stderr
path = sys.argv[1]
def answer(**kw):
    out.write(json.dumps(kw, default=str) + "\n")
    out.flush()
    raise SystemExit(0)
spec = importlib.util.spec_from_file_location("wvpclab_topology_child", path)
if spec is None or spec.loader is None:
    answer(issue=["", "cannot import this file"])
module = importlib.util.module_from_spec(spec)
try:
    spec.loader.exec_module(module)
except SystemExit as err:
    answer(issue=["", f"importing it exited (code {err.code})"])
except BaseException as err:
    answer(issue=["", f"importing it raised {type(err).__name__}: {err}"])
func = getattr(module, "topology", None)
if not callable(func):
    answer(issue=["", "defines no topology() function"])
try:
    result = func()
except SystemExit as err:
    answer(issue=["topology()", f"exited (code {err.code})"])
except BaseException as err:
    answer(issue=["topology()", f"raised {type(err).__name__}: {err}"])
if isinstance(result, nx.Graph):
    answer(graph=nx.node_link_data(result, edges="links"))
if isinstance(result, Mapping):
    answer(document=result)
answer(issue=["topology()", f"returned {type(result).__name__}, expected a networkx graph"])
"""


def _read_python(p: Path, src: str) -> Any:
    try:
        res = subprocess.run([sys.executable, "-c", _PYTHON_CHILD, str(p)], capture_output=True,
                             text=True, timeout=PYTHON_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise TopologyError([Issue("", f"did not finish in {PYTHON_TIMEOUT:.0f} s")],
                            src) from None
    lines = res.stdout.strip().splitlines()
    try:
        reply = json.loads(lines[-1]) if lines else None
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or not (
            (isinstance(reply.get("issue"), list) and len(reply["issue"]) == 2)
            or isinstance(reply.get("graph"), dict) or isinstance(reply.get("document"), dict)):
        tail = _short(res.stderr.strip().splitlines()[-1]) if res.stderr.strip() else ""
        raise TopologyError([Issue("", f"running it ended with code {res.returncode} and no "
                                       f"topology{': ' + tail if tail else ''}")], src)
    if "issue" in reply:
        where, message = reply["issue"]
        raise TopologyError([Issue(where, _short(message, 300))], src)
    if "graph" in reply:
        return reply["graph"]
    return reply["document"]


def _is_node_link(data: Any) -> bool:
    return isinstance(data, Mapping) and "nodes" in data and ("links" in data or "edges" in data)


def load(path: str | Path) -> nx.Graph:
    """Reads and validates a topology file: its graph, or a TopologyError listing every error."""
    data = read(path)
    default_name = Path(path).stem
    try:
        if isinstance(data, nx.Graph):
            return from_graph(data, default_name)
        if _is_node_link(data):
            try:
                graph = nx.node_link_graph(data, edges="links" if "links" in data else "edges")
            except Exception as err:  # noqa: BLE001 - malformed node-link data
                raise TopologyError([Issue("", f"not a valid node-link graph: {err}")]) from None
            return from_graph(graph, default_name)
        return from_document(data, default_name)
    except TopologyError as err:
        raise TopologyError(err.errors, str(path)) from None


# --------------------------------------------------------------------------------------------------
# Document -> graph


def from_document(doc: Any, default_name: str = "lab") -> nx.Graph:
    """Validates a topology document (the YAML shape): returns its graph or raises TopologyError."""
    graph, errors = _Builder(default_name).build(doc)
    if errors:
        raise TopologyError(errors)
    _mark(graph)
    return graph


def check_document(doc: Any) -> list[Issue]:
    """Every problem in a topology document (empty when it is valid)."""
    return _Builder("lab").build(doc)[1]


def from_graph(graph: nx.Graph, default_name: str = "lab") -> nx.Graph:
    """Validates a graph (built in code or read from node-link JSON); returns it rebuilt and
    normalized (derived MACs filled in), or raises TopologyError. The graph's own problems (its
    attributes, nodes and edges) are named in graph words: ``graph['internal']``,
    ``nodes['pc'].subnett``, ``edges['pc', 'eth0']``."""
    if not isinstance(graph, nx.Graph):
        raise TopologyError([Issue("", f"expected a networkx graph, got {type(graph).__name__}")])
    doc, errors = to_document(graph)
    if errors:
        raise TopologyError(errors)
    try:
        return from_document(doc, graph.graph.get("name") or default_name)
    except TopologyError as err:
        raise TopologyError(_in_graph_words(err.errors, graph), err.source) from None


def validate(graph: nx.Graph) -> list[Issue]:
    """Every problem in a graph: its own (in graph words) or, in the topology it describes, as key
    paths of the equivalent topology document."""
    doc, errors = to_document(graph)
    return errors or _in_graph_words(check_document(doc), graph)


def _in_graph_words(issues: Iterable[Issue], graph: nx.Graph) -> list[Issue]:
    """Issues found in a graph's equivalent document, told in the graph's words:
    ``pcs.pc.nat.subnet`` is ``nodes['pc'].nat_subnet``, ``vms.v.nics[0].speed`` is
    ``nodes['v/0'].speed``."""
    where: dict[str, str] = {}  # a document's key path -> the graph's words for it
    attrs: dict[str, dict[str, str]] = {}  # a document path's own keys -> the node's attributes
    for key, data in graph.nodes(data=True):
        kind, node = data.get("kind"), f"nodes[{_fmt(key)}]"
        name = data.get("name", key)
        if kind in ("adapter", "internal") and isinstance(name, str):
            name = name.rsplit("/", 1)[-1]
        path = {"pc": f"pcs.{name}", "vm": f"vms.{name}",
                "lan": INTERNET if data.get("internet") else f"lans.{name}",
                "server": (f"internet.servers.{name}" if data.get("lan") == INTERNET
                           else f"lans.{data.get('lan')}.servers.{name}"),
                "adapter": f"pcs.{data.get('pc')}.adapters.{name}",
                "nic": f"vms.{data.get('vm')}.nics[{data.get('index')}]"}.get(str(kind))
        if path:
            where[path] = node
        if kind == "pc":
            attrs[path] = {"nat.subnet": "nat_subnet", "nat": "nat_subnet"}
        if kind == "nic":
            attrs[path] = {m: "target" for m in modes.MODES}
    for attr in ("internal", "servers"):
        for name in graph.graph.get(attr) or {}:
            where[f"{attr}.{name}"] = f"graph[{_fmt(attr)}][{_fmt(name)}]"
    out = []
    for issue in issues:
        best = max((p for p in where
                    if issue.path == p or issue.path.startswith((p + ".", p + "["))),
                   key=len, default=None)
        if best is None:
            out.append(issue)
            continue
        rest = issue.path[len(best):].lstrip(".")
        rest = attrs.get(best, {}).get(rest, rest)
        out.append(Issue(f"{where[best]}.{rest}" if rest else where[best], issue.message))
    return out


#: Graphs this module built (or found valid) and what they held then: ``checked`` does not
#: validate them again while they are unchanged.
_CHECKED: weakref.WeakKeyDictionary[nx.Graph, int] = weakref.WeakKeyDictionary()


def _fingerprint(graph: nx.Graph) -> int:
    """What a graph holds, in one number (its name aside: ``run --name`` renames a loaded lab, and
    ``checked`` checks a name on its own)."""
    rest = {k: v for k, v in graph.graph.items() if k != "name"}
    return hash((repr(rest), repr(list(graph.nodes(data=True))),
                 repr(list(graph.edges(data=True)))))


def _mark(graph: nx.Graph) -> None:
    _CHECKED[graph] = _fingerprint(graph)


def checked(graph: nx.Graph) -> nx.Graph:
    """``graph`` once it is known valid: a graph the loader built (``load``, ``from_document``,
    ``from_graph``), unchanged since, is not validated again; any other is validated (raising
    TopologyError listing every problem) and remembered. A lab is thus validated once per start
    (``wvpclab.runtime.lab.Lab`` calls this)."""
    name = graph.graph.get("name") if isinstance(graph, nx.Graph) else None
    if (isinstance(graph, nx.Graph) and _CHECKED.get(graph) == _fingerprint(graph)
            and isinstance(name, str) and LAB_NAME_RE.match(name)):
        return graph
    if not isinstance(graph, nx.Graph):
        raise TopologyError([Issue("", f"expected a networkx graph, got {type(graph).__name__}")])
    errors = validate(graph)
    if errors:
        raise TopologyError(errors)
    _mark(graph)
    return graph


_path = schema.path_of
_short = schema.short
_fmt = schema.fmt


def _usable(iface: ipaddress.IPv4Interface) -> str | None:
    """Why an address cannot be a host's, or None."""
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        which = "network" if iface.ip == net.network_address else "broadcast"
        return f"{iface.ip} is the {which} address of {net}"
    return None


class _Builder:
    """The cross-reference checks, on a document the models parsed (``schema.check``): walks it
    once, filling a graph and a list of issues."""

    def __init__(self, default_name: str) -> None:
        self.default_name = default_name
        self.errors: list[Issue] = []
        self.g = nx.Graph()
        self.names: dict[str, str] = {}  # lab-wide node name -> path where declared
        self.internet_given = False  # the document has an internet: section (valid or not)
        self.internal_decl: dict[str, dict] = {}
        # broadcast domain -> {ip: path} for static address clashes
        self.addresses: dict[str, dict[ipaddress.IPv4Address, str]] = {}
        self.g.graph["servers"] = {}
        self.server_decl: dict[str, str] = {}  # name -> path, for "named but unused"
        self.server_used: set[str] = set()
        self.left_out: set[tuple[Any, ...]] = set()  # (section, name) of entries left out
        self.left_out_keys: set[tuple[Any, ...]] = set()  # every key path left out

    # -- helpers ----------------------------------------------------------------------------------
    def err(self, path: str, message: str) -> None:
        self.errors.append(Issue(path, message))

    def was_left_out(self, section: str, name: Any) -> bool:
        """Whether entry ``name`` of ``section`` was written but left out for its own errors
        (a reference to it is then no error of its own)."""
        return (section, name) in self.left_out

    def node_name(self, name: Any, path: str, what: str, section: str | None = None) -> bool:
        """Whether ``name`` may name a node; if not, says why, and the entry of ``section`` is
        left out (a reference to it is then no error of its own)."""
        ok = self._name_ok(name, path, what)
        if not ok and section:
            self.left_out.add((section, name))
        return ok

    def _name_ok(self, name: Any, path: str, what: str) -> bool:
        if not isinstance(name, str) or not NAME_RE.match(name):
            self.err(path, f"{_fmt(name)} is not a valid {what} name ({NAME_RULE})")
            return False
        if name in RESERVED_NAMES:
            self.err(path, f"{_fmt(name)} is a CLI command; a {what} so named could not be "
                           "addressed in the CLI")
            return False
        if name in self.names:
            self.err(path, f"name {_fmt(name)} is already used at {self.names[name]} "
                           "(names are unique across PCs, VMs, LANs and servers)")
            return False
        self.names[name] = path
        return True

    def claim_address(self, domain: str, iface: ipaddress.IPv4Interface, path: str) -> None:
        taken = self.addresses.setdefault(domain, {})
        if iface.ip in taken:
            self.err(path, f"address {iface.ip} is already used at {taken[iface.ip]}")
        else:
            taken[iface.ip] = path

    # -- the walk ---------------------------------------------------------------------------------
    def build(self, doc: Any) -> tuple[nx.Graph, list[Issue]]:
        checked = schema.check(doc)
        self.errors.extend(checked.issues)
        self.left_out = {loc[:2] for loc in checked.left_out if len(loc) == 2}
        self.left_out_keys = checked.left_out
        topo = checked.topology
        if topo is None:
            return self.g, self.errors
        name = topo.name if topo.name is not None else self.default_name
        if not LAB_NAME_RE.match(name):
            self.err("name", f"{_fmt(name)} is not a valid lab name ({LAB_NAME_RULE})")
            name = "lab"
        self.g.graph["name"] = name
        self.servers(topo.servers or {})
        self.internals(topo.internal or {})
        self.g.graph["internal"] = {k: dict(v) for k, v in self.internal_decl.items()}
        self.internet_given = INTERNET in topo.model_fields_set or ("internet",) in checked.left_out
        if INTERNET in topo.model_fields_set:
            self.internet(topo.internet or schema.Internet())
        self.lans(topo.lans or {})
        self.internet_links()
        self.pcs(topo.pcs or {})
        self.vms(topo.vms or {})
        self.unused_servers()
        if not self.errors:
            self.derive_macs()
        return self.g, self.errors

    def servers(self, section: Mapping[Any, schema.Server]) -> None:
        """The other machines the lab spreads over: a name, the address ssh reaches and the user."""
        self.g.graph["servers"] = {}
        hosts: dict[str, str] = {}
        for name, body in section.items():
            path = _path("servers", str(name))
            if not isinstance(name, str) or not NAME_RE.match(name):
                self.err(path, f"{_fmt(name)} is not a valid server name ({NAME_RULE})")
                continue
            if name == LOCAL:
                self.err(path, f"{LOCAL!r} stands for the machine that runs the lab; a PC or LAN "
                               "without `server` runs there. Name the other machine otherwise")
                continue
            if body.host in hosts:
                self.err(_path(path, "host"), f"{body.host} is already the address of "
                                              f"{hosts[body.host]}")
                continue
            hosts[body.host] = path
            self.server_decl[name] = path
            self.g.graph["servers"][name] = {"host": body.host, "user": body.user}

    def placement(self, server: str | None, path: str) -> str | None:
        """A PC's or LAN's ``server``: a declared server's name, or None (this machine)."""
        if server is None:
            return None
        if server in self.g.graph["servers"]:
            self.server_used.add(server)
            return server
        if server == LOCAL or self.was_left_out("servers", server):
            return None
        declared = sorted(self.g.graph["servers"])
        self.err(_path(path, "server"), f"no server {_fmt(server)} (declared in `servers`: "
                                        f"{', '.join(declared) or 'none'})"
                                        f"{did_you_mean(server, declared)}")
        return None

    def unused_servers(self) -> None:
        for name, path in self.server_decl.items():
            if name not in self.server_used:
                self.err(path, f"server {name} is named but no PC or LAN is placed on it "
                               f"(`server: {name}` under one of them, or remove it)")

    def internals(self, section: Mapping[Any, schema.InternalNetwork]) -> None:
        for name, body in section.items():
            path = _path("internal", str(name))
            if not isinstance(name, str) or not NAME_RE.match(name):
                self.err(path, f"{_fmt(name)} is not a valid internal network name")
                continue
            self.internal_decl[name] = {"dhcp": body.dhcp}

    def internet(self, body: schema.Internet) -> None:
        """The lab's internet: a switch, a core router at its subnet's first address
        (``gw.internet``) that every LAN's gateway routes through, and servers."""
        path = INTERNET
        subnet = ipaddress.IPv4Network(body.subnet)
        why = None
        if subnet.is_global:
            why = (f"{subnet} is a public range; the lab's internet uses the shared address space "
                   f"(100.64.0.0/10, default {DEFAULT_INTERNET_SUBNET}) or a private one")
        elif subnet.overlaps(TRANSIT_NET):
            why = f"{subnet} overlaps {TRANSIT_NET}, which the lab uses for NAT transit links"
        elif subnet.prefixlen > 28:
            why = f"{subnet} is too small (at most /28: a core router, gateways and servers)"
        if why:
            self.err(_path(path, "subnet"), why)
            return
        if not self.node_name(INTERNET, path, "internet"):
            return
        core = gateway_address(str(subnet))
        self.claim_address(f"lan:{INTERNET}", core, f"{path} (its core router)")
        self.g.add_node(INTERNET, kind="lan", name=INTERNET, subnet=str(subnet), dhcp=False,
                        gateway=str(core), server=None, internet=True, dns=False)
        self.lan_servers(INTERNET, subnet, body.servers or {}, path)

    def internet_links(self) -> None:
        """Each LAN's gateway gets an address on the internet (from the top of its subnet down);
        routed LANs (``nat: false``) must not overlap each other or the internet."""
        lans = [(k, d) for k, d in self.g.nodes(data=True)
                if d.get("kind") == "lan" and not d.get("internet")]
        if INTERNET not in self.g:
            for key, data in lans if not self.internet_given else ():
                if data.get("nat") is not None:
                    self.err(_path("lans", key, "nat"), "the lab has no internet: section (there "
                                                        "is nothing to NAT onto)")
            return
        inet = ipaddress.IPv4Network(self.g.nodes[INTERNET]["subnet"])
        taken = self.addresses.get(f"lan:{INTERNET}", {})
        free = (ip for ip in reversed(list(inet.hosts())) if ip not in taken)
        routed: list[tuple[str, ipaddress.IPv4Network]] = []
        for key, data in lans:
            data["nat"] = data.get("nat") is not False
            if data.get("server"):
                self.err(_path("lans", key, "server"),
                         "with an internet, a LAN runs on the machine running the lab (its "
                         "gateway's cable to the internet's switch cannot cross machines yet)")
            wan = next(free, None)
            if wan is None:
                self.err(_path("lans", key), f"the internet {inet} has no address left for this "
                                             "LAN's gateway")
                continue
            data["wan"] = f"{wan}/{inet.prefixlen}"
            self.claim_address(f"lan:{INTERNET}", ipaddress.IPv4Interface(data["wan"]),
                               _path("lans", key, "(its gateway on the internet)"))
            if not data["subnet"]:
                continue
            net = ipaddress.IPv4Network(data["subnet"])
            if net.overlaps(inet):
                self.err(_path("lans", key, "subnet"), f"{net} overlaps the internet ({inet})")
            elif not data["nat"]:
                for other, onet in routed:
                    if net.overlaps(onet):
                        self.err(_path("lans", key, "subnet"),
                                 f"{net} overlaps LAN {other} ({onet}); routed LANs (nat: false) "
                                 "need subnets of their own")
                routed.append((key, net))

    def lans(self, section: Mapping[Any, schema.Lan]) -> None:
        for name, body in section.items():
            path = _path("lans", str(name))
            if not self.node_name(name, path, "LAN", "lans"):
                continue
            subnet: ipaddress.IPv4Network | None = ipaddress.IPv4Network(body.subnet)
            if subnet.overlaps(TRANSIT_NET):
                self.err(_path(path, "subnet"), f"{subnet} overlaps {TRANSIT_NET}, which the lab "
                                                "uses for the PCs' links to their NAT engines")
                subnet = None
            elif subnet.prefixlen > 29:
                self.err(_path(path, "subnet"), f"{subnet} is too small for a LAN (at most /29: "
                                                "a gateway and hosts)")
                subnet = None
            attrs: dict[str, Any] = {"kind": "lan", "name": name, "dhcp": body.dhcp,
                                     "subnet": str(subnet) if subnet else None, "gateway": None,
                                     "server": self.placement(body.server, path)}
            if body.nat is not None:
                attrs["nat"] = body.nat
            if subnet:
                gw = gateway_address(str(subnet))
                attrs["gateway"] = str(gw)
                self.claim_address(f"lan:{name}", gw, f"{path} (its gateway)")
            self.g.add_node(name, **attrs)
            self.lan_servers(name, subnet, body.servers or {}, path)

    def lan_servers(self, lan: str, subnet: ipaddress.IPv4Network | None,
                    servers: Mapping[Any, str], path: str) -> None:
        """A LAN's (or the internet's) ``servers``: each a name and its static address there."""
        for sname, sip in servers.items():
            spath = _path(path, "servers", str(sname))
            if not self.node_name(sname, spath, "server"):
                continue
            iface = self.lan_address(sip, subnet, spath, lan)
            self.g.add_node(sname, kind="server", name=sname, lan=lan,
                            ip=str(iface) if iface else None)
            self.g.add_edge(lan, sname, rel="server")

    def lan_address(self, value: Any, subnet: ipaddress.IPv4Network | None, path: str,
                    lan: str | None = None) -> ipaddress.IPv4Interface | None:
        """A static address on a LAN: bare or CIDR, inside the subnet, not the gateway's."""
        text = value
        if subnet is not None and isinstance(value, str) and "/" not in value:
            text = f"{value}/{subnet.prefixlen}"
        try:
            iface = schema.interface(text)
        except ValueError:
            self.err(path, f"{_fmt(value)} is not an IPv4 address (bare or in CIDR form)")
            return None
        if subnet is None:
            return iface
        if iface.ip not in subnet:
            self.err(path, f"{iface.ip} is outside the LAN's network {subnet}")
            return None
        if iface.network != subnet:
            self.err(path, f"{iface} has prefix /{iface.network.prefixlen}; the LAN is {subnet}")
            return None
        why = _usable(iface)
        if why:
            self.err(path, why)
            return None
        if lan:
            self.claim_address(f"lan:{lan}", iface, path)
        return iface

    def pcs(self, section: Mapping[Any, schema.Pc]) -> None:
        for name, body in section.items():
            path = _path("pcs", str(name))
            if not self.node_name(name, path, "PC", "pcs"):
                continue
            nat_subnet = DEFAULT_NAT_SUBNET
            if body.nat is not None:
                net = ipaddress.IPv4Network(body.nat.subnet)
                if net.prefixlen > 30:
                    self.err(_path(path, "nat", "subnet"),
                             f"{net} is too small (at most /30: the NAT and a guest)")
                else:
                    nat_subnet = str(net)
            self.g.add_node(name, kind="pc", name=name, nat_subnet=nat_subnet, base_mac=None,
                            server=self.placement(body.server, path))
            for aname, abody in body.adapters.items():
                self.adapter(name, aname, abody, _path(path, "adapters", str(aname)))
            self.check_pc_subnets(name, path)

    def adapter(self, pc: str, name: Any, body: schema.Adapter, path: str) -> None:
        if not isinstance(name, str) or not ADAPTER_RE.match(name):
            self.err(path, f"{_fmt(name)} is not a valid adapter name ({ADAPTER_RULE})")
            return
        if name == "lo" or RESERVED_IFACE_RE.match(name):
            self.err(path, f"{_fmt(name)} is a name the lab gives to an interface of the PC (lo, "
                           "natN for shared networking); choose another adapter name")
            return
        mac, source = (body.mac, "explicit") if body.mac else (None, "derived")
        lan = body.lan
        subnet = None
        if lan is not None:
            if lan not in self.g or self.g.nodes[lan]["kind"] != "lan":
                if not self.was_left_out("lans", lan):
                    known = sorted(n for n, d in self.g.nodes(data=True) if d["kind"] == "lan")
                    self.err(_path(path, "lan"), f"no LAN {_fmt(lan)} (declared: "
                                                 f"{', '.join(known) or 'none'})"
                                                 f"{did_you_mean(lan, known)}")
                lan = None
            elif self.g.nodes[lan]["subnet"]:
                subnet = ipaddress.IPv4Network(self.g.nodes[lan]["subnet"])
        ip: str = "dhcp"
        if body.ip != "dhcp":
            iface = self.lan_address(body.ip, subnet, _path(path, "ip"), lan)
            ip = str(iface) if iface else "dhcp"
        key = f"{pc}/{name}"
        self.g.add_node(key, kind="adapter", name=name, pc=pc, type=body.type, mac=mac,
                        mac_source=source, lan=lan, ip=ip)
        self.g.add_edge(pc, key, rel="adapter")
        if lan:
            self.g.add_edge(key, lan, rel="uplink")

    def check_pc_subnets(self, pc: str, path: str) -> None:
        nat = ipaddress.IPv4Network(self.g.nodes[pc]["nat_subnet"])
        if nat.overlaps(TRANSIT_NET):
            self.err(_path(path, "nat", "subnet"), f"{nat} overlaps {TRANSIT_NET}, which the lab "
                                                   "uses for the PC's links to its NAT engines")
        seen: list[tuple[str, ipaddress.IPv4Network]] = [("nat", nat)]
        for key in self.g.neighbors(pc):
            data = self.g.nodes[key]
            if (data["kind"] != "adapter" or not data["lan"]
                    or not self.g.nodes[data["lan"]]["subnet"]):
                continue
            net = ipaddress.IPv4Network(self.g.nodes[data["lan"]]["subnet"])
            for other, onet in seen:
                if net.overlaps(onet):
                    what = "its NAT subnet" if other == "nat" else f"adapter {other}'s LAN"
                    self.err(_path(path, "adapters", data["name"], "lan"),
                             f"LAN {data['lan']} ({net}) overlaps {what} ({onet}) on this PC")
            seen.append((data["name"], net))

    def vms(self, section: Mapping[Any, schema.Vm]) -> None:
        pcs = sorted(n for n, d in self.g.nodes(data=True) if d["kind"] == "pc")
        forwards: dict[tuple[str, str, int], str] = {}
        for name, body in section.items():
            path = _path("vms", str(name))
            if not self.node_name(name, path, "VM", "vms"):
                continue
            pc = body.pc
            if pc is None and ("vms", name, "pc") in self.left_out_keys:
                continue  # its pc is in error, said already
            if pc is None:
                if len(pcs) == 1:
                    pc = pcs[0]
                elif not pcs and any(s == "pcs" for s, *_ in self.left_out):
                    continue  # the PC written is in error, said already
                elif not pcs:
                    self.err(_path(path, "pc"), "no PC to run on: declare one under pcs")
                else:
                    self.err(_path(path, "pc"), f"required when the lab has several PCs "
                                                f"({', '.join(pcs)})")
            elif pc not in pcs:
                if not self.was_left_out("pcs", pc):
                    self.err(_path(path, "pc"), f"no PC {_fmt(pc)} (declared: "
                                                f"{', '.join(pcs) or 'none'})"
                                                f"{did_you_mean(pc, pcs)}")
                pc = None
            if pc is None:
                continue
            self.g.add_node(name, kind="vm", name=name, pc=pc, dhcp_client=body.dhcp_client,
                            ipv6=body.ipv6)
            self.g.add_edge(name, pc, rel="host")
            nics = body.nics
            if nics is None:  # left out: what Virtual PC's wizard attaches
                nics = [schema.Nic.model_validate(modes.by_name(mode).entry(target))
                        for mode, target in modes.wizard(self.g, pc)]
            index = -1
            for position, nic in enumerate(nics):
                npath = _path(path, "nics", position)
                if nic.index is not None and nic.index <= index:
                    self.err(_path(npath, "index"), f"NIC {nic.index} comes after NIC {index}: "
                                                    "the numbers go up, each NIC's once")
                    continue
                index = index + 1 if nic.index is None else nic.index
                if index > MAX_NICS - 1:
                    self.err(npath, f"NIC {index}: a VM's NICs are numbered 0-{MAX_NICS - 1}")
                    break
                if nic.mode is not None:  # else in error, already said
                    self.nic(name, pc, index, nic, npath, forwards)

    def nic(self, vm: str, pc: str, index: int, spec: schema.Nic, path: str,
            forwards: dict[tuple[str, str, int], str]) -> None:
        mode = modes.MODES[spec.mode]
        attrs: dict[str, Any] = {"kind": "nic", "name": f"{vm}/{index}", "vm": vm, "index": index,
                                 "mode": mode.name, "target": spec.target, "mac": None,
                                 "mac_source": "derived", "ip": None, "speed": spec.speed,
                                 "allow_mac_spoofing": spec.allow_mac_spoofing, "forward": [],
                                 "cable": spec.cable}
        why = mode.check_declared(self.g, pc, spec.target)
        attached = why is None
        if why is not None:
            self.err(_path(path, mode.name), why)
        else:
            mode.prepare(self.g, pc, spec.target)
        if not spec.cable and mode.attachment_kind() is None:
            self.err(_path(path, "cable"), f"a {mode.name} NIC has no cable to pull "
                                           "(leave cable out)")
        if spec.mac:
            attrs["mac"], attrs["mac_source"] = spec.mac, "explicit"
        key = f"{vm}/{index}"
        self.g.add_node(key, **attrs)
        self.g.add_edge(vm, key, rel="nic")
        if spec.ip is not None and spec.ip != "dhcp":
            iface = self.nic_address(spec.ip, mode, attrs, attached, _path(path, "ip"))
            attrs["ip"] = str(iface) if iface else None
        if spec.forward:
            attrs["forward"] = self.forwards(spec.forward, mode, pc, _path(path, "forward"),
                                             forwards)
        attach = mode.graph_attach(self.g, attrs) if attached else None
        if attach:
            self.g.add_edge(key, attach, rel="attach", mode=mode.name)
        self.g.nodes[key].update(attrs)

    def nic_address(self, value: str, mode: modes.Mode, nic: dict, attached: bool,
                    path: str) -> ipaddress.IPv4Interface | None:
        """A NIC's static address: CIDR (or bare where the mode knows the prefix length), usable,
        what the mode accepts, unique in its broadcast domain."""
        if not attached:  # the address is checked once the target is right; its form now
            try:
                ipaddress.IPv4Interface(value)
            except ValueError:
                self.err(path, f"{_fmt(value)} is not an IPv4 address (bare or in CIDR form)")
            return None
        prefix = mode.address_prefix(self.g, nic)
        text = value
        if prefix is not None and "/" not in value:
            text = f"{value}/{prefix.prefixlen}"
        try:
            iface = schema.interface(text)
        except ValueError as err:
            self.err(path, f"{_fmt(value)} is not an IPv4 address (bare or in CIDR form)"
                     if prefix is not None else str(err))
            return None
        why = mode.check_address(self.g, nic, iface) or _usable(iface)
        if why:
            self.err(path, why)
            return None
        domain = mode.address_domain(self.g, nic)
        if domain:
            self.claim_address(domain, iface, path)
        return iface

    def forwards(self, rules: list[str], mode: modes.Mode, pc: str, path: str,
                 seen: dict[tuple[str, str, int], str]) -> list[str]:
        if not mode.takes_forwards:
            self.err(path, f"port forwarding is for {_or_modes(lambda m: m.takes_forwards)} NICs, "
                           f"this NIC is {mode.name}")
            return []
        out = []
        for i, rule in enumerate(rules):
            rpath = _path(path, i)
            proto, hport, _ = rule.split(":")
            if (pc, proto, int(hport)) in seen:
                self.err(rpath, f"{proto} port {hport} of pc {pc} is already forwarded at "
                                f"{seen[(pc, proto, int(hport))]}")
                continue
            seen[(pc, proto, int(hport))] = rpath
            out.append(rule)
        return out

    def derive_macs(self) -> None:
        """Fills in derived MACs; checks explicit ones are unique lab-wide."""
        owners: dict[str, str] = {}
        for key, data in sorted(self.g.nodes(data=True)):
            if data["kind"] in ("adapter", "nic") and data["mac_source"] == "explicit":
                mac = data["mac"]
                if mac in owners:
                    self.err(self.doc_path(key, "mac"), f"MAC {mac} is already used by "
                                                        f"{self.doc_path(owners[mac])}")
                else:
                    owners[mac] = key
        for key, data in sorted(self.g.nodes(data=True)):
            if data["kind"] == "adapter" and data["mac_source"] == "derived":
                data["mac"] = macs.derive_adapter(data["pc"], data["name"], owners)
                owners[data["mac"]] = key
        for data in self.g.nodes.values():  # insertion order: the first adapter declared
            if data["kind"] == "adapter" and self.g.nodes[data["pc"]]["base_mac"] is None:
                self.g.nodes[data["pc"]]["base_mac"] = data["mac"]
        for data in self.g.nodes.values():
            if data["kind"] == "pc" and data["base_mac"] is None:
                data["base_mac"] = macs.derive_adapter(data["name"], "")
        nics = sorted((d["vm"], d["index"], k) for k, d in self.g.nodes(data=True)
                      if d["kind"] == "nic" and d["mac_source"] == "derived")
        for vm, index, key in nics:
            base = self.g.nodes[self.g.nodes[vm]["pc"]]["base_mac"]
            mac = macs.derive(base, vm, index, owners)
            self.g.nodes[key]["mac"] = mac
            owners[mac] = key

    def doc_path(self, key: str, *rest: str) -> str:
        data = self.g.nodes[key]
        if data["kind"] == "adapter":
            return _path("pcs", data["pc"], "adapters", data["name"], *rest)
        return _path("vms", data["vm"], "nics", data["index"], *rest)


def _or_modes(which: Any) -> str:
    """The modes for which ``which(mode)`` holds, as a message names them: ``shared (NAT)``."""
    names = [m.describe({}) if m.name in m.describe({}) else m.name
             for m in modes.MODES.values() if which(m)]
    return " or ".join(names) or "no"


# --------------------------------------------------------------------------------------------------
# Graph -> document (for graphs built in code or read as node-link JSON)

#: What each kind of node may carry (the module docstring says what each means).
_NODE_ATTRS: dict[str, tuple[str, ...]] = {
    "pc": ("kind", "name", "nat_subnet", "base_mac", "server"),
    "adapter": ("kind", "name", "pc", "type", "mac", "mac_source", "lan", "ip"),
    "lan": ("kind", "name", "subnet", "gateway", "dhcp", "server", "nat", "wan", "internet", "dns"),
    "server": ("kind", "name", "lan", "ip"),
    "internal": ("kind", "name", "pc", "dhcp"),
    "vm": ("kind", "name", "pc", "dhcp_client", "ipv6"),
    "nic": ("kind", "name", "vm", "index", "mode", "target", "mac", "mac_source", "ip", "speed",
            "allow_mac_spoofing", "forward", "cable"),
}
#: The graph's own attributes.
_GRAPH_ATTRS = ("name", "internal", "servers")
#: What an edge's ``rel`` says, between which kinds of node, and the attribute that says it:
#: rel -> (kind, kind, the attribute of the second that names the first, or None).
_RELS: dict[str, tuple[str, str, str | None]] = {
    "adapter": ("pc", "adapter", "pc"), "uplink": ("lan", "adapter", "lan"),
    "server": ("lan", "server", "lan"), "internal": ("pc", "internal", "pc"),
    "host": ("pc", "vm", "pc"), "nic": ("vm", "nic", "vm"), "attach": ("", "nic", None),
}


def _graph_issues(graph: nx.Graph) -> list[Issue]:
    """A graph's own problems, in graph words: its attributes (``graph['internal']``), its nodes'
    kinds and attributes (``nodes['pc'].subnett``) and its edges' relations (``edges['a', 'b']``).
    What the nodes describe is checked afterwards, as a topology document."""
    errors: list[Issue] = []
    for attr, value in graph.graph.items():
        where = f"graph[{_fmt(attr)}]"
        if attr not in _GRAPH_ATTRS:
            errors.append(Issue(where, f"unknown graph attribute (expected one of: "
                                       f"{', '.join(_GRAPH_ATTRS)})"
                                       f"{did_you_mean(attr, _GRAPH_ATTRS)}"))
        elif attr == "name" and value is not None and not isinstance(value, str):
            errors.append(Issue(where, f"expected the lab's name, got {type(value).__name__} "
                                       f"{_fmt(value)}"))
        elif attr != "name" and value is not None and not (
                isinstance(value, Mapping) and all(v is None or isinstance(v, Mapping)
                                                   for v in value.values())):
            what = "internal network" if attr == "internal" else "server"
            errors.append(Issue(where, f"expected a mapping of {what} names to their settings "
                                       f"(e.g. {{'lab': {{'dhcp': True}}}}), got "
                                       f"{type(value).__name__} {_fmt(value)}"
                                if attr == "internal" else
                                f"expected a mapping of {what} names to their settings "
                                f"(e.g. {{'far': {{'host': '192.0.2.10'}}}}), got "
                                f"{type(value).__name__} {_fmt(value)}"))
    kinds = tuple(_NODE_ATTRS)
    for key, data in graph.nodes(data=True):
        where = f"nodes[{_fmt(key)}]"
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in _NODE_ATTRS:
            errors.append(Issue(where, f"kind {_fmt(kind)} is not one of {', '.join(kinds)}"
                                       f"{did_you_mean(kind, kinds)}"))
            continue
        for attr in data:
            if attr not in _NODE_ATTRS[kind]:
                known = _NODE_ATTRS[kind]
                errors.append(Issue(f"{where}.{attr}", f"unknown attribute of a {kind} node "
                                                       f"(expected one of: {', '.join(known)})"
                                                       f"{did_you_mean(attr, known)}"))
    for a, b, data in graph.edges(data=True):
        where = f"edges[{_fmt(a)}, {_fmt(b)}]"
        rel = data.get("rel")
        if rel not in _RELS:
            got = "no rel" if rel is None else f"rel {_fmt(rel)} is not one of {', '.join(_RELS)}"
            errors.append(Issue(where, f"{got}: an edge says what it joins (rel: "
                                       f"{', '.join(_RELS)}), and the nodes' attributes must say "
                                       "it too (an adapter's pc, a VM's pc, a NIC's vm, ...)"))
            continue
        first, second, attr = _RELS[rel]
        ends = {graph.nodes[a].get("kind"): a, graph.nodes[b].get("kind"): b}
        if second not in ends or (first and first not in ends):
            errors.append(Issue(where, f"rel {rel!r} joins a {first or 'NIC'} and a {second}"
                                       if first else f"rel {rel!r} starts at a nic node"))
            continue
        if attr and graph.nodes[ends[second]].get(attr) != _name(graph, ends[first]):
            errors.append(Issue(where, f"rel {rel!r} joins {_fmt(ends[first])} and "
                                       f"{_fmt(ends[second])}, but nodes[{_fmt(ends[second])}]."
                                       f"{attr} is {_fmt(graph.nodes[ends[second]].get(attr))}"))
    return errors


def _name(graph: nx.Graph, key: Any) -> Any:
    return graph.nodes[key].get("name", key)



def to_document(graph: nx.Graph) -> tuple[dict, list[Issue]]:
    """The topology document equivalent to ``graph``, and the structural problems found on the way.

    Attributes are what counts (see the module docstring); edges are rebuilt from them.
    """
    errors = _graph_issues(graph)

    def section(attr: str) -> dict:
        value = graph.graph.get(attr)
        if not isinstance(value, Mapping):
            return {}
        return {k: dict(v or {}) for k, v in value.items() if v is None or isinstance(v, Mapping)}

    doc: dict[str, Any] = {"name": graph.graph.get("name", "lab"), "servers": section("servers"),
                           "pcs": {}, "lans": {}, "internal": section("internal"), "vms": {}}
    by_kind: dict[str, list[tuple[Any, dict]]] = {}
    for key, data in graph.nodes(data=True):
        if isinstance(data.get("kind"), str) and data["kind"] in _NODE_ATTRS:
            by_kind.setdefault(data["kind"], []).append((key, data))

    def need(key: Any, data: dict, *attrs: str) -> bool:
        missing = [a for a in attrs if data.get(a) is None]
        for a in missing:
            errors.append(Issue(f"nodes[{_fmt(key)}].{a}", f"missing on a {data['kind']} node"))
        return not missing

    def name_of(key: Any, data: dict) -> Any:
        name = data.get("name", key)
        return name.rsplit("/", 1)[-1] if isinstance(name, str) and data["kind"] in (
            "adapter", "internal") else name

    first: dict[tuple[str, str, Any], Any] = {}

    def twice(key: Any, data: dict, section: dict) -> bool:
        """Whether a node's name is already taken in its section (it would replace the other)."""
        name = name_of(key, data)
        if name in section:
            where = f" on pc {data['pc']}" if data["kind"] == "adapter" else ""
            other = first[(data["kind"], where, name)]
            errors.append(Issue(f"nodes[{_fmt(key)}]", f"a second {data['kind']} node named "
                                                       f"{_fmt(name)}{where} (the first is "
                                                       f"nodes[{_fmt(other)}])"))
            return True
        first[(data["kind"], f" on pc {data['pc']}" if data["kind"] == "adapter" else "",
               name)] = key
        return False

    for key, data in by_kind.get("pc", []):
        pc: dict[str, Any] = {"adapters": {}}
        if data.get("nat_subnet") and data["nat_subnet"] != DEFAULT_NAT_SUBNET:
            pc["nat"] = {"subnet": data["nat_subnet"]}
        if data.get("server") is not None:
            pc["server"] = data["server"]
        if twice(key, data, doc["pcs"]):
            continue
        doc["pcs"][name_of(key, data)] = pc
    for key, data in by_kind.get("lan", []):
        if data.get("internet"):
            doc[INTERNET] = {"subnet": data.get("subnet"), "servers": {}}
            continue
        lan = {"subnet": data.get("subnet"), "dhcp": data.get("dhcp", True), "servers": {}}
        if data.get("nat") is False:
            lan["nat"] = False
        if data.get("server") is not None:
            lan["server"] = data["server"]
        if twice(key, data, doc["lans"]):
            continue
        doc["lans"][name_of(key, data)] = lan
    for key, data in by_kind.get("server", []):
        if need(key, data, "lan", "ip"):
            if data["lan"] == INTERNET and INTERNET in doc:
                doc[INTERNET]["servers"][name_of(key, data)] = data["ip"]
            elif data["lan"] not in doc["lans"]:
                errors.append(Issue(f"nodes[{_fmt(key)}].lan", f"no LAN node {_fmt(data['lan'])}"))
            else:
                doc["lans"][data["lan"]]["servers"][name_of(key, data)] = data["ip"]
    for key, data in by_kind.get("adapter", []):
        if need(key, data, "pc"):
            if data["pc"] not in doc["pcs"]:
                errors.append(Issue(f"nodes[{_fmt(key)}].pc", f"no PC node {_fmt(data['pc'])}"))
                continue
            adapter = {k: data[k] for k in ("type", "lan", "ip") if data.get(k) is not None}
            if data.get("mac") and data.get("mac_source", "explicit") == "explicit":
                adapter["mac"] = data["mac"]
            if twice(key, data, doc["pcs"][data["pc"]]["adapters"]):
                continue
            doc["pcs"][data["pc"]]["adapters"][name_of(key, data)] = adapter
    for key, data in by_kind.get("internal", []):
        name = name_of(key, data)
        dhcp = data.get("dhcp", True)
        if name in doc["internal"] and doc["internal"][name]["dhcp"] != dhcp:
            errors.append(Issue(f"nodes[{_fmt(key)}].dhcp", f"internal network {name} has dhcp "
                                                            "on for one PC and off for another"))
        doc["internal"][name] = {"dhcp": dhcp}
    for key, data in by_kind.get("vm", []):
        vm: dict[str, Any] = {"nics": []}
        if data.get("pc") is not None:
            vm["pc"] = data["pc"]
        if data.get("dhcp_client") not in (None, "udhcpc"):
            vm["dhcp_client"] = data["dhcp_client"]
        if data.get("ipv6", True) is not True:
            vm["ipv6"] = data["ipv6"]
        if twice(key, data, doc["vms"]):
            continue
        doc["vms"][name_of(key, data)] = vm
    nics: dict[Any, dict[int, dict]] = {}
    for key, data in by_kind.get("nic", []):
        if not need(key, data, "vm", "index", "mode"):
            continue
        if data["vm"] not in doc["vms"]:
            errors.append(Issue(f"nodes[{_fmt(key)}].vm", f"no VM node {_fmt(data['vm'])}"))
            continue
        index = data["index"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            errors.append(Issue(f"nodes[{_fmt(key)}].index", f"{_fmt(index)} is not a NIC index"))
            continue
        if index in nics.setdefault(data["vm"], {}):
            errors.append(Issue(f"nodes[{_fmt(key)}].index", f"VM {data['vm']} has two NICs "
                                                             f"numbered {index}"))
            continue
        mode = modes.MODES.get(data["mode"]) if isinstance(data["mode"], str) else None
        if mode is None:
            errors.append(Issue(f"nodes[{_fmt(key)}].mode", f"{_fmt(data['mode'])} is not a NIC "
                                                            f"mode ({modes.usage(': ', ', ')})"))
            continue
        nic: dict[str, Any] = mode.entry(data.get("target"))
        for opt in _NIC_OPTIONS:
            value = data.get(opt)
            if opt == "mac" and data.get("mac_source", "explicit") != "explicit":
                continue
            unset = (value is None or value == [] or (opt == "allow_mac_spoofing" and not value)
                     or (opt == "cable" and value is True))
            if not unset:
                nic[opt] = value
        nics[data["vm"]][index] = nic
    for vm, entries in nics.items():
        if entries and max(entries) > MAX_NICS - 1:
            errors.append(Issue(f"vms.{vm}.nics", f"NIC {max(entries)}: a VM's NICs are "
                                                  f"numbered 0-{MAX_NICS - 1}"))
            continue
        listed, after = [], -1
        for index in sorted(entries):
            entry = entries[index]
            if index != after + 1:  # after a gap: the number is written
                entry = {**entry, "index": index}
            listed.append(entry)
            after = index
        doc["vms"][vm]["nics"] = listed
    return doc, errors


def to_node_link(graph: nx.Graph) -> dict:
    """The graph as node-link data (JSON-serializable), readable back by ``load``."""
    return nx.node_link_data(graph, edges="links")


# --------------------------------------------------------------------------------------------------
# Reading a graph


def summary(graph: nx.Graph) -> str:
    """A readable summary of a validated graph: one line per PC, adapter, LAN, server, internal
    network, VM and NIC (number, MAC, mode, address, speed)."""
    counts = {k: len(nodes_of(graph, k)) for k in ("pc", "adapter", "lan", "server", "vm", "nic")}

    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    inet = has_internet(graph)
    totals = (f"lab {graph.graph['name']}: {n(counts['pc'], 'PC')},"
              f" {n(counts['adapter'], 'adapter')}, {n(counts['lan'] - inet, 'LAN')},"
              f"{' an internet,' if inet else ''}"
              + "".join(f" {n(count, what)}," for count, what in modes.counts(graph))
              + f" {n(counts['vm'], 'VM')},"
              f" {n(counts['nic'], 'NIC')}")
    lines = [totals]
    for name, server in sorted(graph.graph.get("servers", {}).items()):
        lines.append(f"server {name}  {server['user']}@{server['host']}")

    def on(data: Mapping) -> str:
        return f"  on server {data['server']}" if data.get("server") else ""

    for key, pc in nodes_of(graph, "pc"):
        notes = ", ".join(note for m in modes.MODES.values() for note in m.pc_notes(pc))
        lines.append(f"pc {key}  ({notes}){on(pc)}" if notes else f"pc {key}{on(pc)}")
        for _, a in nodes_of(graph, "adapter"):
            if a["pc"] == key:
                lines.append(f"  adapter {a['name']:<8} {a['type']:<8} {a['mac']}  "
                             f"lan {a['lan'] or '-'}  ip {a['ip']}")
    for key, lan in nodes_of(graph, "lan"):
        if lan.get("internet"):
            lines.append(f"internet  {lan['subnet']}  core router {lan['gateway']}")
        else:
            outside = ""
            if lan.get("wan"):
                outside = (f"  NAT onto the internet as {lan['wan']}" if lan.get("nat") else
                           f"  routed to the internet via {lan['wan']}")
            lines.append(f"lan {key}  {lan['subnet']}  gateway {lan['gateway']}  "
                         f"dhcp {'on' if lan['dhcp'] else 'off'}{outside}{on(lan)}")
        for skey, s in nodes_of(graph, "server"):
            if s["lan"] == key:
                lines.append(f"  server {skey}  {s['ip']}")
    for key, net in nodes_of(graph, "internal"):
        lines.append(f"internal {key}  dhcp {'on' if net['dhcp'] else 'off'}")
    for key, vm in nodes_of(graph, "vm"):
        lines.append(f"vm {key}  (pc {vm['pc']}, dhcp client {vm['dhcp_client']}"
                     f"{'' if vm.get('ipv6', True) else ', no IPv6'})")
        for nic in nics_of(graph, key):
            extra = [f"ip {nic['ip'] or 'dhcp'}", f"speed {nic['speed']}"]
            if nic["allow_mac_spoofing"]:
                extra.append("mac spoofing allowed")
            if nic["forward"]:
                extra.append("forward " + ",".join(nic["forward"]))
            lines.append(f"  nic {nic['index']}  {nic['mac']}  {modes.label(nic):<16} "
                         + "  ".join(extra))
    return "\n".join(lines)
