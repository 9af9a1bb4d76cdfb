"""The topology document's structure, declared once (pydantic v2): every section and entry, its
keys, their types, defaults, choices and descriptions. The JSON Schema (``wvpclab schema``), the
topology reference (``docs/topology.md``) and the structural checks of ``wvpclab.model.topology``
all come from these models; the cross-reference checks (names, addresses, what refers to what)
stay in ``topology``, run on what the models parsed.

A NIC's mode keys are not listed here: they come from the mode registry
(``wvpclab.model.modes.MODES``) each time a document is validated or the JSON Schema written, so a
mode registered later is a key like the others.

``check(doc)`` validates a document and turns pydantic's errors into ``Issue`` lines (key path,
message in the project's words, "did you mean" for a misspelt key); the parts in error are left out
so that what remains is still parsed and cross-checked: every error is reported at once.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from wvpclab.model import macs, modes
from wvpclab.model.addresses import DEFAULT_INTERNET_SUBNET, DEFAULT_NAT_SUBNET
from wvpclab.model.names import ADAPTER_RE, HOSTNAME_RE, NAME_RE, USER_RE, did_you_mean

MAX_NICS = 4
SPEEDS = (10, 100, "unlimited")
ADAPTER_TYPES = ("wired", "wireless")
DHCP_CLIENTS = ("udhcpc", "dhclient")
FORWARD_RE = re.compile(r"^(tcp|udp):(\d{1,5}):(\d{1,5})$")


# --------------------------------------------------------------------------------------------------
# Issues and how values are quoted in them


@dataclass(frozen=True)
class Issue:
    """One problem in a topology: where (a key path such as ``vms.xp.nics[0].bridge``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def path_of(*parts: object) -> str:
    """A key path as messages write it: ``vms.xp.nics[0].bridge``."""
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def short(text: str, limit: int = 120) -> str:
    """At most ``limit`` characters of a text, saying how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def fmt(value: Any) -> str:
    """A value quoted in an error: whole if short, else an excerpt (a hostile file may hold huge
    values, or aliases that expand to millions)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 80 else f"{value[:60]!r}… ({len(value):,} characters)"
    if isinstance(value, (Mapping, list, tuple)) and _bigger_than(value, 30):
        kind = "mapping" if isinstance(value, Mapping) else "list"
        return f"a {kind} of {len(value):,} entries"
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):  # keys JSON cannot write (dates, numbers as keys)
        text = repr(value)
    return short(text, 120)


def _bigger_than(value: Any, limit: int) -> bool:
    """True when a nested value holds more than ``limit`` values (stops counting there)."""
    seen = 0
    stack = [value]
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


# --------------------------------------------------------------------------------------------------
# Value formats (their messages are the project's; the graph gets the normalized value)


def network(text: Any) -> ipaddress.IPv4Network:
    """An IPv4 network in CIDR form, or ValueError saying what is wrong."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"{fmt(text)} is not a network in CIDR form (e.g. 192.168.50.0/24)")
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ipaddress.NetmaskValueError:
        raise ValueError(f"{fmt(text)} has a bad prefix length") from None
    except ValueError as err:
        if "has host bits set" in str(err):
            raise ValueError(f"{fmt(text)} has host bits set; the network is "
                             f"{ipaddress.IPv4Network(text, strict=False)}") from None
        raise ValueError(f"{fmt(text)} is not an IPv4 network in CIDR form") from None


def interface(text: Any) -> ipaddress.IPv4Interface:
    """An IPv4 address in CIDR form, or ValueError."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"{fmt(text)} is not an address in CIDR form (e.g. 169.254.1.10/16)")
    try:
        return ipaddress.IPv4Interface(text)
    except ValueError:
        raise ValueError(f"{fmt(text)} is not an IPv4 address in CIDR form") from None


def _cidr(text: str) -> str:
    return str(network(text))


def _mac(text: str) -> str:
    if not isinstance(text, str):  # only for messages: the models let only text through
        raise TypeError(f"{fmt(text)} is not a MAC address (six hex octets, e.g. "
                        "00:1a:2b:3c:4d:5e)")
    try:
        return macs.check_unicast(text)
    except macs.MacError as err:
        raise ValueError(str(err)) from None


def server_host(value: Any) -> str | None:
    """A server's address in one spelling (an IP address normalized, a DNS name lower-cased), or
    None when it is neither."""
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        pass
    if HOSTNAME_RE.match(value) and not value.replace(".", "").isdigit():
        return value.lower()
    return None


def _host(text: str) -> str:
    host = server_host(text)
    if host is None:
        raise ValueError(f"{fmt(text)} is not an IP address or a DNS name")
    return host


def _user(text: str) -> str:
    if not USER_RE.match(text):
        raise ValueError(f"{fmt(text)} is not a user name")
    return text


def _forward(text: str) -> str:
    m = FORWARD_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{fmt(text)} is not PROTO:HOSTPORT:GUESTPORT (e.g. tcp:8080:80)")
    proto, hport, gport = m.group(1), int(m.group(2)), int(m.group(3))
    if not (1 <= hport <= 65535 and 1 <= gport <= 65535):
        raise ValueError(f"{fmt(text)}: ports are 1 to 65535")
    return f"{proto}:{hport}:{gport}"


def _empty_if_none(value: Any) -> Any:
    """An entry written with nothing after its name (``pc:``) is an entry with every default."""
    return {} if value is None else value


Cidr = Annotated[str, AfterValidator(_cidr),
                 Field(json_schema_extra={"pattern": r"^\d+\.\d+\.\d+\.\d+/\d+$"})]
Mac = Annotated[str, AfterValidator(_mac),
                Field(json_schema_extra={"pattern": r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$"})]
Forward = Annotated[str, AfterValidator(_forward),
                    Field(json_schema_extra={"pattern": FORWARD_RE.pattern})]
Name = Any  # an entry's name: checked by topology (its rules, uniqueness), in its words
#: What an editor is told of names (topology checks the rest: uniqueness, reserved words).
NAMES = {"propertyNames": {"pattern": NAME_RE.pattern}}
ADAPTER_NAMES = {"propertyNames": {"pattern": ADAPTER_RE.pattern}}
#: What an editor is told of a static address: bare or CIDR (topology checks the rest).
_ADDRESS = r"\d{1,3}(\.\d{1,3}){3}(/\d{1,2})?"
ADDRESS = {"pattern": f"^{_ADDRESS}$"}
ADDRESS_OR_DHCP = {"pattern": f"^(dhcp|{_ADDRESS})$"}


def _entries(model: Any, names: dict[str, Any] = NAMES) -> Any:
    """A section: entries by name, each a ``model`` mapping (or empty, ``pc:``: every default)."""
    return Annotated[dict[Name, Annotated[model | None, BeforeValidator(_empty_if_none)]],
                     Field(json_schema_extra=names)]


def _hosts() -> Any:
    """Plain hosts by name: name -> static address."""
    return Annotated[dict[Name, Annotated[str, Field(json_schema_extra=ADDRESS)]],
                     Field(json_schema_extra=NAMES)]


# --------------------------------------------------------------------------------------------------
# The models


class _Entry(BaseModel):
    """A mapping of known keys: a key not declared is an error; values are not converted (``"on"``
    is not a boolean, ``"10"`` not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: Extra words for messages about one key: a list's ("a list of NICs"), a choice's ("a speed").
    words: ClassVar[dict[str, str]] = {}
    #: Keys whose value names another entry: the kind of entry ("server").
    refers_to: ClassVar[dict[str, str]] = {}

    @classmethod
    def document_keys(cls) -> list[str]:
        """The keys a document may write in this mapping."""
        return [f.alias or k for k, f in cls.model_fields.items()]


class Server(_Entry):
    """Another machine the lab spreads over (reached with ssh as ``user``)."""

    host: Annotated[str, AfterValidator(_host)] = Field(
        description="the address or DNS name ssh reaches the server at, e.g. 192.0.2.10")
    user: Annotated[str, AfterValidator(_user)] = Field(
        "root", description="The user ssh logs in as on the server.")


class Nat(_Entry):
    """A PC's shared networking (NAT)."""

    subnet: Cidr = Field(DEFAULT_NAT_SUBNET, description=(
        "The network shared (NAT) NICs on this PC get their addresses from; the NAT engine is its "
        ".254. At most /30."))


class Adapter(_Entry):
    """A host adapter of a PC: an interface plugged into a LAN (or into nothing)."""

    words: ClassVar[dict[str, str]] = {"type": "an adapter type"}
    refers_to: ClassVar[dict[str, str]] = {"lan": "LAN"}
    type: Literal["wired", "wireless"] = Field("wired", description="The adapter's kind.")
    mac: Mac | None = Field(None, description=(
        "The adapter's MAC address (unicast); derived from the PC's and adapter's names if not "
        "given."))
    lan: str | None = Field(None, description="The LAN (under `lans`) the adapter is plugged into.")
    ip: str = Field("dhcp", json_schema_extra=ADDRESS_OR_DHCP, description=(
        "`dhcp`, or a static address on the LAN: bare (the LAN's prefix length) or CIDR."))


class Pc(_Entry):
    """A physical PC running Windows Virtual PC."""

    refers_to: ClassVar[dict[str, str]] = {"server": "server"}

    adapters: _entries(Adapter, ADAPTER_NAMES) = Field(  # type: ignore[valid-type]
        default_factory=dict, description="The PC's host adapters by interface name (eth0, wlan0).")
    nat: Annotated[Nat, BeforeValidator(_empty_if_none)] | None = Field(
        None, description="Shared networking: the subnet its NAT engines lease from.")
    server: str | None = Field(None, description=(
        "The server (under `servers`) the PC runs on; none: the machine that runs the lab."))


class Lan(_Entry):
    """An emulated external network: a switch, a gateway at .1 (DHCP unless `dhcp: false`)."""

    refers_to: ClassVar[dict[str, str]] = {"server": "server"}

    subnet: Cidr = Field(description="the LAN's IPv4 network, e.g. 192.168.50.0/24")
    dhcp: bool = Field(True, description="Whether the gateway leases addresses on the LAN.")
    servers: _hosts() | None = Field(None, description=(  # type: ignore[valid-type]
        "Plain hosts on the LAN (a web/echo server): name -> static address, bare or CIDR."))
    server: str | None = Field(None, description=(
        "The server (under `servers`) the LAN runs on; none: the machine that runs the lab."))
    nat: bool | None = Field(None, description=(
        "With an `internet`: whether the LAN's gateway NATs onto it (default) or routes."))


class Internet(_Entry):
    """The lab's internet: a switch, a core router at the subnet's first address and servers."""

    subnet: Cidr = Field(DEFAULT_INTERNET_SUBNET, description=(
        "The internet's network: shared address space (100.64.0.0/10) or private, at most /28."))
    servers: _hosts() | None = Field(None, description=(  # type: ignore[valid-type]
        "Hosts on the internet: name -> static address, bare or CIDR."))


class InternalNetwork(_Entry):
    """An internal network: per PC, an isolated switch its guests on that network share."""

    dhcp: bool = Field(True, description=(
        "Whether a DHCP responder leases 169.254.0.16-169.254.10.254 on the network."))


class Nic(_Entry):
    """A VM's network adapter: its mode (one key, or the one-word form) and options."""

    words: ClassVar[dict[str, str]] = {"speed": "a speed", "forward": 'a list like ["tcp:8080:80"]'}
    #: What the mode key parsed to (not written as such: a document writes ``bridge: eth0``).
    mode: str | None = Field(None, exclude=True)
    target: str | None = Field(None, exclude=True)
    ip: str | None = Field(None, json_schema_extra=ADDRESS_OR_DHCP, description=(
        "A static address: CIDR (bare on a LAN: its prefix length); default DHCP where the mode "
        "offers it (`dhcp`)."))
    mac: Mac | None = Field(None, description=(
        "The NIC's MAC address (unicast); derived (00:03:ff:…, as Virtual PC's) if not given."))
    speed: Literal[10, 100, "unlimited"] = Field(100, description="The link speed in Mbit/s.")
    allow_mac_spoofing: bool = Field(False, description=(
        "Whether the guest may send from other MAC addresses."))
    forward: list[Forward] = Field(default_factory=list, description=(
        "Ports of the PC forwarded to the guest (`PROTO:HOSTPORT:GUESTPORT`); for modes that "
        "forward ports (shared)."))
    cable: bool = Field(True, description=(
        "Whether the NIC's cable is plugged in; `false`: pulled, the guest sees no carrier (as "
        "`cable VM N off` leaves it)."))
    index: int | None = Field(None, ge=0, le=MAX_NICS - 1, description=(
        f"The adapter's number (0-{MAX_NICS - 1}); default: the one after the NIC before it. "
        "Written where a NIC was removed: NICs keep their numbers, as Virtual PC's adapters 1-4 "
        "do."))

    @classmethod
    def document_keys(cls) -> list[str]:
        return [*modes.MODES, *(k for k in super().document_keys() if k not in ("mode", "target"))]

    @model_validator(mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        """The mode, from the registry: ``shared``, ``bridge:eth0`` or a mapping with exactly one
        mode key plus options -> ``{"mode": ..., "target": ..., options}``."""
        if value is _BROKEN:
            return {}
        if isinstance(value, str):
            try:
                mode, target = modes.parse(value, sep=": ")
            except ValueError as err:
                raise PydanticCustomError("wvpclab", "{message}", {"message": str(err)}) from None
            return {"mode": mode, "target": target}
        if not isinstance(value, Mapping):
            raise PydanticCustomError("wvpclab", "{message}", {"message": (
                f"expected a NIC mode or a mapping, got {type(value).__name__} {fmt(value)}")})
        found = [k for k in value if isinstance(k, str) and k in modes.MODES]
        if len(found) != 1:
            known = cls.document_keys()
            unknown = [k for k in value if k not in known]
            hint = "".join(f"; {fmt(k)} is no key here{did_you_mean(k, list(modes.MODES))}"
                           for k in unknown[:3])
            raise PydanticCustomError("wvpclab", "{message}", {"message": (
                f"a NIC needs exactly one mode key ({_or(list(modes.MODES))}), got "
                f"{', '.join(map(str, found)) or 'none'}{hint}")})
        name = found[0]
        try:
            target = modes.MODES[name].parse_value(value[name])
        except ValueError as err:
            raise PydanticCustomError("wvpclab", "{message}",
                                      {"message": str(err), "at": name}) from None
        options = {k: v for k, v in value.items() if k != name}
        for key in ("mode", "target"):  # not keys a document writes
            if key in options:
                options[f"{key} "] = options.pop(key)
        return {**options, "mode": name, "target": target}

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: GetJsonSchemaHandler) -> Any:
        ref = handler(core_schema)
        schema = handler.resolve_ref_schema(ref)
        props = {k: v for k, v in schema["properties"].items() if k not in ("mode", "target")}
        words = [m for m in modes.MODES.values() if not m.takes_target]
        targeted = [m for m in modes.MODES.values() if m.takes_target]
        one_word = {"type": "string", "title": "A NIC in one word",
                    "description": "The mode alone: " + ", ".join(
                        f"`{m.format('NAME') if m.takes_target else m.name}`"
                        for m in modes.MODES.values()) + ".",
                    "pattern": "^(" + "|".join(m.pattern() for m in modes.MODES.values()) + ")$"}
        mode_props: dict[str, Any] = {}
        for m in words:
            mode_props[m.name] = {"description": m.summary, "anyOf": [
                {"const": True}, {"type": "null"}, {"type": "object", "maxProperties": 0}]}
        for m in targeted:
            mode_props[m.name] = {"description": f"{m.summary} The value names {m.target_what}.",
                                  "type": "string", "minLength": 1}
        mapping = {
            "type": "object", "title": "A NIC with options",
            "description": "Exactly one mode key, and options.",
            "properties": {**mode_props, **props}, "additionalProperties": False,
            "oneOf": [{"required": [name]} for name in mode_props],
        }
        schema.clear()
        schema.update({"title": "Nic", "description": cls.__doc__, "anyOf": [one_word, mapping]})
        return ref


class Vm(_Entry):
    """A virtual machine (a Linux guest standing in for Windows)."""

    words: ClassVar[dict[str, str]] = {"nics": "a list of NICs", "dhcp_client": "a DHCP client"}
    refers_to: ClassVar[dict[str, str]] = {"pc": "PC"}
    pc: str | None = Field(None, description=(
        "The PC (under `pcs`) the VM runs on; may be left out when there is one PC."))
    nics: list[Nic] | None = Field(None, max_length=MAX_NICS, description=(
        f"The VM's network adapters, in order; at most {MAX_NICS}. Left out, the VM gets what "
        "Virtual PC's Create Virtual Machine wizard attaches: NIC 0 bridged to the PC's first "
        "wired adapter and NIC 1 to its first wireless one (shared networking on a PC with no "
        "adapter); `[]`: none."))
    dhcp_client: Literal["udhcpc", "dhclient"] = Field(
        "udhcpc", description="The guest's DHCP client.")
    ipv6: bool = Field(True, description=(
        "Whether the guest runs IPv6 beside IPv4 (as Windows 7 does, XP by default not)."))

    @model_validator(mode="before")
    @classmethod
    def _no_nics(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "nics" in value and value["nics"] is None:
            return {k: v for k, v in value.items() if k != "nics"}
        return value


class Topology(_Entry):
    """A Windows Virtual PC lab: physical PCs and their adapters, the LANs they plug into,
    internal networks, VMs and their NICs."""

    model_config = ConfigDict(title="wvpclab topology", extra="forbid", strict=True, frozen=True)

    schema_: str | None = Field(None, alias="$schema", description=(
        "Where an editor finds this schema (a JSON topology's way to name it); ignored."))

    @classmethod
    def document_keys(cls) -> list[str]:
        return [k for k in super().document_keys() if k != "$schema"]  # an editor's, not a lab's

    name: str | None = Field(None, description=(
        "The lab's name (letters, digits, '.', '-', '_'; at most 64); default: the file's name."))
    servers: _entries(Server) | None = Field(None, description=(  # type: ignore[valid-type]
        "Other machines the lab spreads over, by name; none: the lab runs on this machine."))
    pcs: _entries(Pc) | None = Field(None, description=(  # type: ignore[valid-type]
        "The physical PCs running Windows Virtual PC, by name."))
    lans: _entries(Lan) | None = Field(None, description=(  # type: ignore[valid-type]
        "The emulated external networks the PCs' adapters plug into, by name."))
    internal: _entries(InternalNetwork) | None = Field(None, description=(  # type: ignore[valid-type]
        "The internal networks NICs may join, by name (each PC has its own of each)."))
    vms: _entries(Vm) | None = Field(None, description=(  # type: ignore[valid-type]
        "The virtual machines, by name."))
    internet: Annotated[Internet, BeforeValidator(_empty_if_none)] | None = Field(
        None, description=("An internet behind every LAN's gateway (a core router, servers); "
                           "`internet: {}` for the defaults."))


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


class _Broken:
    """Stands in a document for a NIC whose entry is in error, so the others keep their index."""

    def __repr__(self) -> str:
        return "<a NIC in error>"


_BROKEN = _Broken()


# --------------------------------------------------------------------------------------------------
# Checking a document


@dataclass
class Checked:
    """What ``check`` found: the parsed document (None if nothing could be), the issues, and the
    key paths of entries left out for their errors (their names are known; references to them are
    not errors of their own)."""

    topology: Topology | None
    issues: list[Issue]
    left_out: set[tuple[Any, ...]]


def check(doc: Any) -> Checked:
    """Validates ``doc`` against the models: every structural issue, and the document parsed with
    the parts in error left out (an unknown or wrong key: as if not written; an entry missing a
    required key, or a NIC in error: left out; too many NICs: the first ones)."""
    if doc is None:
        return Checked(None, [Issue("", "the topology is empty")], set())
    if not isinstance(doc, Mapping):
        keys = ", ".join(Topology.document_keys())
        return Checked(None, [Issue("", f"a topology is a mapping of {keys}; got "
                                        f"{type(doc).__name__}")], set())
    issues: list[Issue] = []
    seen: set[str] = set()
    left_out: set[tuple[Any, ...]] = set()
    said: set[tuple[Any, ...]] = set()
    work: Any = doc
    for _ in range(8):
        try:
            return Checked(Topology.model_validate(work), issues, left_out)
        except ValidationError as err:
            errors = err.errors(include_url=False)
        if work is doc:
            work = copy.deepcopy(doc)
        for e in errors:
            loc = tuple(e["loc"])
            if any(loc[:n] in said for n in range(len(loc) + 1)):
                continue  # a key left out for an error already said (a required one: "missing")
            issue = _issue(e, work)
            if str(issue) not in seen:
                seen.add(str(issue))
                issues.append(issue)
        said |= {tuple(e["loc"]) for e in errors if e["type"] != "too_long"}
        for e in sorted(errors, key=lambda e: len(e["loc"]), reverse=True):
            _leave_out(work, e, left_out)
    return Checked(None, issues, left_out)


def _issue(e: Any, doc: Any) -> Issue:
    """One pydantic error in the project's words."""
    loc = tuple(e["loc"])
    kind, ctx, value = e["type"], e.get("ctx") or {}, e.get("input")
    key = loc[-1] if loc else ""
    model = model_at(loc[:-1])
    words = getattr(model, "words", {}) if isinstance(model, type) else {}
    if kind == "wvpclab":
        at = ctx.get("at")
        return Issue(path_of(*loc, *([at] if at else [])), ctx["message"])
    if kind == "value_error":
        return Issue(path_of(*loc), str(ctx.get("error", e["msg"])))
    if kind == "extra_forbidden":
        entry = isinstance(model, type) and issubclass(model, _Entry)
        allowed = model.document_keys() if entry else []
        key = str(key).rstrip() if isinstance(key, str) else key  # "mode " -> mode
        return Issue(path_of(*loc[:-1], key), f"unknown key {fmt(key)} (expected one of: "
                                              f"{', '.join(allowed)}){did_you_mean(key, allowed)}")
    if kind == "missing":
        field = model.model_fields.get(str(key)) if isinstance(model, type) else None
        hint = field.description if field is not None and field.description else ""
        return Issue(path_of(*loc), f"missing ({hint})" if hint else "missing")
    if kind in ("bool_type", "bool_parsing"):
        return Issue(path_of(*loc), f"expected true or false, got {fmt(value)}")
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return Issue(path_of(*loc), f"expected a mapping, got {type(value).__name__} {fmt(value)}")
    if kind == "list_type":
        what = words.get(str(key), "a list")
        shown = type(value).__name__ if str(key) == "nics" else fmt(value)
        return Issue(path_of(*loc), f"expected {what}, got {shown}")
    if kind == "literal_error":
        what = words.get(str(key), "one of the choices")
        choices = str(ctx.get("expected", "")).replace("'", "")
        return Issue(path_of(*loc), f"{fmt(value)} is not {what} ({choices})")
    if kind == "too_long" and str(key) == "nics":
        return Issue(path_of(*loc), f"{ctx.get('actual_length')} NICs, a VM has at most "
                                    f"{ctx.get('max_length')}")
    if kind == "too_long":
        return Issue(path_of(*loc), f"{ctx.get('actual_length')} entries, at most "
                                    f"{ctx.get('max_length')}")
    if kind in ("string_type", "str_type") and str(key) in getattr(model, "refers_to", {}):
        what = model.refers_to[str(key)]
        return Issue(path_of(*loc), f"no {what} {fmt(value)} (a {what}'s name is text)")
    if kind in ("string_type", "str_type"):
        why = _format_error(loc, value)
        return Issue(path_of(*loc), why or f"expected text, got {type(value).__name__} "
                                           f"{fmt(value)}")
    bounds = {"less_than_equal": ("at most", "le"), "greater_than_equal": ("at least", "ge"),
              "less_than": ("less than", "lt"), "greater_than": ("more than", "gt")}
    if kind in bounds:
        words_, key_ = bounds[kind]
        return Issue(path_of(*loc), f"{fmt(value)} is out of range: {words_} {ctx.get(key_)}")
    if kind.startswith(("int", "float")):
        return Issue(path_of(*loc), f"expected a number, got {fmt(value)}")
    return Issue(path_of(*loc), f"{fmt(value)} is not accepted here ({kind.replace('_', ' ')})")


def _format_error(loc: tuple[Any, ...], value: Any) -> str | None:
    """What a value's format check says of a value that is not even text (a CIDR network, a MAC,
    a forwarding rule: "5 is not a network in CIDR form"), or None for a plain text key."""
    holder = model_at(loc[:-1])
    metadata: list[Any] = []
    if isinstance(holder, type) and issubclass(holder, BaseModel):
        field = holder.model_fields.get(str(loc[-1]))
        tp = field.annotation if field is not None else None
        metadata = list(field.metadata) if field is not None else []
    else:
        tp = _element_type(loc)
    if get_origin(tp) in (Union, types.UnionType):
        tp = next((a for a in get_args(tp) if a is not type(None)), None)
    if get_origin(tp) is Annotated:
        metadata += list(get_args(tp)[1:])
    for item in metadata:
        if isinstance(item, AfterValidator):
            try:
                item.func(value)  # type: ignore[call-arg]
            except (ValueError, TypeError) as err:
                return str(err)
            except AttributeError:
                return None
    return None


def _element_type(loc: tuple[Any, ...]) -> Any:
    """The declared type (Annotated kept) of a list's or mapping's element at ``loc``."""
    holder = model_at(loc[:-2]) if len(loc) >= 2 else None
    if isinstance(holder, type) and issubclass(holder, BaseModel):
        field = holder.model_fields.get(str(loc[-2]))
        container = _unwrap(field.annotation) if field is not None else None
        if get_origin(container) in (list, dict):
            return get_args(container)[-1]
    return None


def _leave_out(doc: Any, e: Any, left_out: set[tuple[Any, ...]]) -> None:
    """Removes from ``doc`` the part one error is about (see ``check``)."""
    loc = tuple(e["loc"])
    if not loc:
        return
    if e["type"] == "too_long":
        holder = _at(doc, loc)
        if isinstance(holder, list):
            del holder[int(e["ctx"]["max_length"]):]
        return
    if e["type"] == "extra_forbidden" and isinstance(loc[-1], str) and loc[-1].endswith(" "):
        loc = (*loc[:-1], loc[-1].rstrip())
    if e["type"] == "missing":  # the entry cannot be without it
        loc = loc[:-1]
    # within a NIC, a key in error is dropped; a NIC itself in error stands as a broken one
    if len(loc) >= 4 and loc[0] == "vms" and loc[2] == "nics":
        nic = loc[:4]
        if len(loc) == 4 or e["type"] != "extra_forbidden" and loc[4] in ("mode", "target"):
            holder = _at(doc, nic[:-1])
            if isinstance(holder, list) and isinstance(loc[3], int) and loc[3] < len(holder):
                holder[loc[3]] = _BROKEN
                left_out.add(nic)
            return
        if len(loc) > 5:  # a forward rule: the NIC's forwards go
            loc = loc[:5]
    parent = _at(doc, loc[:-1])
    if isinstance(parent, dict) and loc[-1] in parent:
        del parent[loc[-1]]
        left_out.add(loc)
    elif isinstance(parent, list) and len(loc) >= 2:
        grand = _at(doc, loc[:-2])
        if isinstance(grand, dict) and loc[-2] in grand:
            del grand[loc[-2]]
            left_out.add(loc[:-1])


def _at(doc: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


def model_at(loc: tuple[Any, ...]) -> Any:
    """The model (or type) of the value at ``loc`` in a document."""
    tp: Any = Topology
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return None
    return _unwrap(tp)


# --------------------------------------------------------------------------------------------------
# The JSON Schema


def json_schema() -> dict[str, Any]:
    """The topology document's JSON Schema (draft 2020-12), with titles and descriptions."""
    schema = Topology.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def json_schema_text() -> str:
    """The JSON Schema as the checked-in file holds it."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


__all__ = ["Checked", "Issue", "Topology", "check", "fmt", "interface",
           "json_schema", "json_schema_text", "model_at", "network", "path_of", "server_host",
           "short"]
