"""The ``wvpclab`` command: ``check`` a topology, ``run`` a lab, ``clean`` up after a crashed one.

Results go to stdout; progress and errors to stderr. Library errors become exit codes only here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from wvpclab import topology

EXIT_INVALID = 2


def _err(message: str) -> None:
    print(f"wvpclab: {message}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    """Validates each file; prints its summary (stdout) or every error (stderr)."""
    status = 0
    for i, path in enumerate(args.topology):
        try:
            graph = topology.load(path)
        except topology.TopologyError as err:
            print(f"wvpclab: {err}", file=sys.stderr)
            status = EXIT_INVALID
            continue
        if i:
            print()
        print(topology.summary(graph))
        if args.graph_json:
            import json
            with open(args.graph_json, "w", encoding="utf-8") as out:
                json.dump(topology.to_node_link(graph), out, indent=1)
            print(f"wvpclab: wrote the graph of {path} to {args.graph_json}", file=sys.stderr)
    return status


def cmd_run(args: argparse.Namespace) -> int:
    """Placeholder until the running lab lands: validates and prints the summary."""
    try:
        graph = topology.load(args.topology)
    except topology.TopologyError as err:
        print(f"wvpclab: {err}", file=sys.stderr)
        return EXIT_INVALID
    print(topology.summary(graph))
    _err("the running lab is not built yet in this release: validated and summarized only")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wvpclab",
        description="Windows Virtual PC networking labs on Mininet and Open vSwitch.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = sub.add_parser("check", help="validate topology files and print their summary (no root)")
    check.add_argument("topology", nargs="+", help="a .yaml/.yml, node-link .json or .py file")
    check.add_argument("--graph-json", metavar="FILE",
                       help="also write the validated graph as node-link JSON to FILE")
    check.set_defaults(func=cmd_check)
    run = sub.add_parser("run", help="bring up a lab")
    run.add_argument("topology", help="a .yaml/.yml, node-link .json or .py file")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
