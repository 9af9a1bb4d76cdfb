"""The topology-file reference (``docs/topology.md``), written from the JSON Schema that
``wvpclab.model.schema`` declares: every section and key, its type, default and description, and a
worked example. ``python -m wvpclab schema --markdown > docs/topology.md`` writes it again."""

from __future__ import annotations

import json
from typing import Any

from wvpclab.model import modes, schema

#: The worked example (docs/architecture.md §4's lab); a unit test checks that it is a valid
#: topology.
EXAMPLE = """\
name: office-lab
pcs:                                   # physical PCs running WVPC
  pc:
    adapters:
      eth0: {type: wired, mac: "00:1a:2b:3c:4d:5e", lan: office}    # ip: dhcp (default) or CIDR
      wlan0: {type: wireless, mac: "00:1a:2b:3c:4d:5f", lan: cafe}
lans:                                  # emulated external networks
  office:
    subnet: 192.168.50.0/24            # gateway .1 runs DHCP for the LAN unless dhcp: false
    servers: {web: 192.168.50.80}      # plain hosts on the LAN (a web/echo server)
  cafe:
    subnet: 192.168.60.0/24
internal:
  lab: {dhcp: true}
vms:
  xp:
    pc: pc                             # optional when there is one PC
    nics:                              # at most 4, in order
      - shared                         # NAT
      - bridge: eth0                   # Host adapter
      - internal: lab
      - none                           # Not connected
  lab1:
    nics: [{internal: lab, ip: 169.254.1.10/16, mac: "00:03:ff:00:00:10"}]
"""

#: The sections in the order the reference shows them: (JSON Schema definition, heading, where).
_ORDER = [
    ("Server", "A server", "`servers.NAME`"),
    ("Pc", "A PC", "`pcs.NAME`"),
    ("Adapter", "A host adapter", "`pcs.NAME.adapters.ADAPTER`"),
    ("Nat", "A PC's shared networking", "`pcs.NAME.nat`"),
    ("Lan", "A LAN", "`lans.NAME`"),
    ("Internet", "The internet", "`internet`"),
    ("InternalNetwork", "An internal network", "`internal.NAME`"),
    ("Vm", "A VM", "`vms.NAME`"),
    ("Nic", "A NIC", "`vms.NAME.nics[N]`"),
]


def _type(prop: dict[str, Any]) -> str:
    """A property's type in words."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "anyOf" in prop:
        parts = [p for p in prop["anyOf"] if p.get("type") != "null"]
        text = " or ".join(_type(p) for p in parts)
        return f"{text} (or empty)" if len(parts) < len(prop["anyOf"]) else text
    kind = prop.get("type")
    if kind == "object":
        inner = prop.get("additionalProperties")
        if not isinstance(inner, dict):
            return "mapping"
        text = _type(inner)
        if text.endswith(" (or empty)"):  # ``pc:`` with nothing after it: every default
            text = text.removesuffix(" (or empty)") + ", each may be empty"
        return f"mapping of NAME to {text}"
    if kind == "array":
        text = f"list of {_type(prop.get('items', {}))}"
        return f"{text}, at most {prop['maxItems']}" if "maxItems" in prop else text
    if kind == "string" and "pattern" in prop:
        if prop["pattern"].startswith("^(dhcp|"):
            return "`dhcp` or an address"
        if prop["pattern"].endswith("(/\\d{1,2})?$"):
            return "address"
        return "string (CIDR)" if "/" in prop["pattern"] else "string"
    return {"string": "string", "boolean": "boolean", "integer": "integer",
            "null": "empty"}.get(kind or "", "any")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(definition: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    required = set(definition.get("required", ()))
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for key, prop in definition.get("properties", {}).items():
        if key in skip:
            continue
        empty = {"object": "`{}`", "array": "`[]`"}.get(prop.get("type", ""), "")
        default = "required" if key in required else (
            f"`{json.dumps(prop['default'])}`" if "default" in prop else empty)
        lines.append(f"| `{key}` | {_type(prop)} | {default} | "
                     f"{_cell(prop.get('description', ''))} |")
    return lines


def markdown() -> str:
    """The reference, as ``docs/topology.md`` holds it."""
    js = schema.json_schema()
    defs = js["$defs"]
    out = [
        "# Topology files",
        "",
        ("<!-- Generated from the schema (wvpclab/model/schema.py) by "
         "`python -m wvpclab schema --markdown > docs/topology.md`; do not edit by hand. -->"),
        "",
        js.get("description", ""),
        "",
        ("A topology is a YAML (or JSON) file; `wvpclab check FILE` validates it and prints what "
         "it holds, or every error, one a line, naming its key path "
         "(`vms.xp.nics[1].bridge: no adapter 'eth9' on pc pc (it has: eth0, wlan0)`). "
         "`wvpclab schema` prints the JSON Schema; the example files begin with"),
        "",
        "```yaml",
        "# yaml-language-server: $schema=../wvpclab/model/topology.schema.json",
        "```",
        "",
        ("so that an editor with the YAML language server (VS Code's YAML extension) completes "
         "and checks them. A networkx graph built in code (a `.py` file's `topology()`) describes "
         "the same things as nodes and attributes."),
        "",
        "## Example",
        "",
        "```yaml",
        EXAMPLE.rstrip("\n"),
        "```",
        "",
        "## The document",
        "",
        *_table(js),
        "",
    ]
    for name, heading, where in _ORDER:
        definition = defs[name]
        out += [f"## {name}", "", f"{heading}: {where}. {definition.get('description', '')}", ""]
        if name == "Nic":
            out += _nic()
            mapping = definition["anyOf"][1]
            out += _table(mapping, skip=tuple(modes.MODES))
        else:
            out += _table(definition)
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _nic() -> list[str]:
    lines = ["A NIC is written as its mode alone (one word: "
             + ", ".join(f"`{m.format(m.target_word) if m.takes_target else m.name}`"
                         for m in modes.MODES.values())
             + "), or as a mapping with exactly one mode key ("
             + ", ".join(f"`{m.usage(': ')}`" if m.takes_target else f"`{m.name}: true`"
                         for m in modes.MODES.values())
             + ") and options.", "", "| Mode | Written | What it is |", "|---|---|---|"]
    for m in modes.MODES.values():
        written = f"`{m.format(m.target_word)}`, `{m.usage(': ')}`" if m.takes_target else \
            f"`{m.name}`, `{m.name}: true`"
        lines.append(f"| `{m.name}` | {written} | {_cell(m.summary)} |")
    lines += ["", "Options:", ""]
    return lines
