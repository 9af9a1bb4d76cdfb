#!/usr/bin/env bash
# Idempotent set-up for wvpclab, as root, on the Debian family (Debian 12/13, Ubuntu 22.04/24.04):
# the distribution's packages, the .venv (the system's python3, 3.10 to 3.13, or WVPCLAB_PYTHON) with
# the project installed editable, and Open vSwitch (userspace datapath) running with userspace TSO.
# A second run does nothing that is already done and takes about a second.
# --test (what `make test` runs): also what the test suite needs beyond a lab: the project's test
# extra (pytest, scapy, selenium...) and Chromium with its driver and Firefox ESR, the browsers the
# lab tests drive the lab's web page in (Debian's packages).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
say() { printf 'install: %s\n' "$*" >&2; }
SUPPORTED_PYTHONS="3.10 3.11 3.12 3.13"

with_tests=""
for arg in "$@"; do
    case "$arg" in
        --test) with_tests=1 ;;
        *) say "unknown argument $arg (usage: $0 [--test])"; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    say "must run as root (it installs packages and starts Open vSwitch); try: sudo $0"
    exit 1
fi

# --- the distribution --------------------------------------------------------------------------
# One code path per family; each is named in the README's table of platforms.
os_id=unknown os_like="" os_name="an unknown system"
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    os_id=${ID:-unknown} os_like=${ID_LIKE:-} os_name=${PRETTY_NAME:-$os_id}
fi
case " $os_id $os_like " in
    *" debian "*|*" ubuntu "*) family=debian ;;
    *) say "$os_name is not supported: wvpclab installs on Debian 12/13 and Ubuntu 22.04/24.04"
       exit 1 ;;
esac
[ -f .venv/.wvpclab-installed ] || say "$os_name: installing with the $family family's packages"

# --- packages (Debian family) -----------------------------------------------------------------
packages=(
    openvswitch-switch   # the switches (userspace datapath)
    mininet              # for its mnexec helper; the Python package comes from the venv
    python3-venv         # the .venv on the system's python3
    iproute2 iputils-ping ethtool iptables tcpdump iperf3 curl
    nftables             # nft: a NAT engine's ingress filter on its guest's cable
    dnsmasq-base         # DNS: each LAN gateway's server, each PC's relay for its NAT guests
    bind9-dnsutils       # dig and nslookup, to try names from a node
    busybox              # udhcpc
    isc-dhcp-client      # dhclient
    ruby                 # checks the Vagrantfile's syntax
    graphviz             # dot, for `wvpclab draw`
    procps make
    openssh-client       # reaches the servers of a lab spread over several machines
    openssh-server       # sshd: what a lab's server runs (and the tests' fake servers); never started here
)
if [ -n "$with_tests" ]; then
    if [ "$os_id" = ubuntu ]; then  # Ubuntu's chromium is a snap, not a package
        [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/firefox-esr ] ||
            say "the web page's lab tests need /usr/bin/chromium, /usr/bin/chromedriver and" \
                "/usr/bin/firefox-esr, which Ubuntu does not package (snaps only)"
    else
        packages+=(chromium chromium-driver firefox-esr)  # the tests drive the web page in them
    fi
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Installing starts no service (an sshd on port 22, say) that was not running: a policy that
    # refuses every start while apt runs, unless the machine has its own policy already.
    policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# wvpclab install: start no service while packages install\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    trap '[ -z "$made_policy" ] || rm -f "$policy"' EXIT
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -z "$made_policy" ] || rm -f "$policy"
    made_policy=""
fi

# --- Python venv -------------------------------------------------------------------------------
system_python=/usr/bin/python3  # the distribution's own (not a pyenv shim earlier on PATH)
[ -x "$system_python" ] || system_python=$(command -v python3 || true)
py=${WVPCLAB_PYTHON:-$system_python}
if [ -z "$py" ] || ! [ -x "$py" ]; then
    say "no python3 found: install the distribution's python3 or set WVPCLAB_PYTHON=/path/to/python3"
    exit 1
fi
py=$(readlink -f "$py")
version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case " $SUPPORTED_PYTHONS " in
    *" $version "*) ;;
    *) say "$py is Python $version; wvpclab runs on Python ${SUPPORTED_PYTHONS// /, } (set WVPCLAB_PYTHON to one of those)"
       exit 1 ;;
esac
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.wvpclab-python 2>/dev/null)" != "$py" ]; then
    say "creating .venv with $py (Python $version)"
    rm -rf .venv
    "$py" -m venv .venv
    echo "$py" > .venv/.wvpclab-python
fi
# The stamp holds the extras installed ("test" or nothing): --test installs the test extra (pytest,
# scapy, selenium...) once; a later run without --test keeps it.
stamp=.venv/.wvpclab-installed
extras=$(cat "$stamp" 2>/dev/null || true)
[ -z "$with_tests" ] || extras=test
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$extras" ] || [ pyproject.toml -nt "$stamp" ] \
        || [ setup.py -nt "$stamp" ] || ! .venv/bin/python -c 'import wvpclab, controllers' 2>/dev/null; then
    say "installing the project (editable) and its Python dependencies${extras:+ (and the $extras extra)} into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}" \
        2> >(grep -v '^WARNING: Location' >&2)
    echo "$extras" > "$stamp"
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

# --- the command on servers' PATH ----------------------------------------------------------------
# A lab spread over several servers runs `wvpclab` on each over ssh (sshd's PATH has /usr/local/sbin):
# the link names this checkout's, unless it names something that is not a wvpclab .venv.
link=/usr/local/sbin/wvpclab
target="$top/.venv/bin/wvpclab"
if [ -L "$link" ] || [ ! -e "$link" ]; then
    current=$(readlink "$link" 2>/dev/null || true)
    case "$current" in
        "$target") ;;
        ""|*/.venv/bin/wvpclab) ln -sfn "$target" "$link" ;;
        *) say "$link links to $current, not a wvpclab checkout: left alone" ;;
    esac
else
    say "$link is not a link: left alone (a server of a spread lab runs the wvpclab on its PATH)"
fi
