#!/usr/bin/env bash
# The suite under every other CPython from 3.10 to 3.13 this machine has (the system's own and any
# that pyenv keeps), each in a throw-away environment: the unit suite under each, and under the newest
# also every example lab run from its file as a user would (tests/lab/test_examples.py: each starts,
# its try lines run at the prompt, `verify` passes). The main run in .venv (the Python `make lab`
# uses) has the whole lab suite; running all of it twice cost CI nine minutes for little: the lab
# code is the same under every Python, the examples show the interpreter runs it. `make test` runs
# this after the main run.
# WVPCLAB_MATRIX=0 skips it (a developer's quick run); it always says what it ran.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
say() { printf 'pythons: %s\n' "$*" >&2; }
SUPPORTED=(3.10 3.11 3.12 3.13)

if [ "${WVPCLAB_MATRIX:-1}" = 0 ]; then
    say "skipped (WVPCLAB_MATRIX=0): only $(.venv/bin/python -V) ran"
    exit 0
fi

main=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
declare -A found=()
candidates=()
for v in "${SUPPORTED[@]}"; do
    candidates+=("/usr/bin/python$v" "/usr/local/bin/python$v")
    for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v"; do
        candidates+=("$d")
    done
done
for py in "${candidates[@]}"; do
    [ -x "$py" ] || continue
    v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
    [ "$v" = "$main" ] && continue  # the main run was under it
    [ -n "${found[$v]:-}" ] || found[$v]=$py
done
ran=("$main (.venv: unit and lab suites)")
newest=""
for v in "${SUPPORTED[@]}"; do [ -n "${found[$v]:-}" ] && newest=$v; done
if [ -n "$newest" ] && [[ "$newest" < "$main" ]]; then newest=""; fi  # the main run is the newest
for v in "${SUPPORTED[@]}"; do
    py=${found[$v]:-}
    [ -n "$py" ] || continue
    env=$(mktemp -d "/tmp/wvpclab-py$v.XXXXXX")
    trap 'rm -rf "$env"' EXIT
    say "Python $v ($py): a throw-away environment in $env"
    "$py" -m venv "$env"
    "$env/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]' \
        2> >(grep -v '^WARNING: Location' >&2)
    if [ "$v" = "$newest" ]; then
        say "Python $v: the unit suite and the example labs"
        "$env/bin/python" -m pytest -q -p no:cacheprovider tests/unit tests/lab/test_examples.py
        ran+=("$v ($py: unit suite, example labs)")
    else
        say "Python $v: the unit suite"
        "$env/bin/python" -m pytest -q -p no:cacheprovider tests/unit
        ran+=("$v ($py: unit suite)")
    fi
    rm -rf "$env"
    trap - EXIT
done
missing=()
for v in "${SUPPORTED[@]}"; do
    [ "$v" = "$main" ] || [ -n "${found[$v]:-}" ] || missing+=("$v")
done
say "ran under: ${ran[*]}"
[ ${#missing[@]} -eq 0 ] || say "not on this machine, not run: ${missing[*]}"
