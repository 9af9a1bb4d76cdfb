#!/usr/bin/env bash
# Idempotent set-up for wvpclab on Debian 12, as root: Debian packages, the .venv with the project
# installed editable, and Open vSwitch (userspace datapath) running with userspace TSO enabled.
# A second run does nothing that is already done and takes about a second.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
say() { printf 'install: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    say "must run as root (it installs Debian packages and starts Open vSwitch); try: sudo $0"
    exit 1
fi

# --- Debian packages ---------------------------------------------------------------------------
packages=(
    openvswitch-switch   # the switches (userspace datapath)
    mininet              # for its mnexec helper; the Python package comes from the venv
    python3-venv         # the .venv on Debian's python3.11
    iproute2 iputils-ping ethtool iptables tcpdump iperf3 curl
    busybox              # udhcpc
    isc-dhcp-client      # dhclient
    ruby                 # checks the Vagrantfile's syntax
    graphviz             # dot, for `wvpclab draw`
    procps make
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python venv -------------------------------------------------------------------------------
py=${WVPCLAB_PYTHON:-/usr/bin/python3.11}
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    say "creating .venv with $py"
    rm -rf .venv
    "$py" -m venv .venv
fi
stamp=.venv/.wvpclab-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
        || ! .venv/bin/python -c 'import wvpclab, controllers' 2>/dev/null; then
    say "installing the project (editable) and its Python dependencies into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2> >(grep -v '^WARNING: Location' >&2)
    touch "$stamp"
fi

# --- Open vSwitch ------------------------------------------------------------------------------
ovs_ctl=/usr/share/openvswitch/scripts/ovs-ctl
ovs_up() { ovs-vsctl --timeout=3 show >/dev/null 2>&1 && [ -f /var/run/openvswitch/ovs-vswitchd.pid ] \
    && kill -0 "$(cat /var/run/openvswitch/ovs-vswitchd.pid)" 2>/dev/null; }
if ! ovs_up; then
    say "starting Open vSwitch"
    "$ovs_ctl" start --system-id=random >/dev/null 2>&1 || { say "ovs-ctl start failed"; exit 1; }
fi
if [ "$(ovs-vsctl --timeout=3 get Open_vSwitch . other_config:userspace-tso-enable 2>/dev/null)" != '"true"' ]; then
    # Without userspace TSO, TCP between namespaces through a userspace bridge hangs (bad checksums).
    say "enabling userspace TSO and restarting ovs-vswitchd"
    ovs-vsctl --timeout=3 set Open_vSwitch . other_config:userspace-tso-enable=true
    "$ovs_ctl" restart --system-id=random >/dev/null 2>&1 || { say "ovs-ctl restart failed"; exit 1; }
fi
ovs_up || { say "Open vSwitch is not answering after start"; exit 1; }
