#!/bin/sh
# wvpclab's DHCP client hook, for busybox udhcpc (-s) and ISC dhclient (-sf). It configures the NIC it is
# called for (address, per-NIC source routing, default route) and writes the lab's state file
# ($WVPC_STATE) and the lease's DNS servers into the node's own resolv.conf parts ($WVPC_DNS, a
# directory; the node's resolv.conf is $WVPC_DNS.resolv.conf, mounted over /etc/resolv.conf in the
# node alone). It never writes /etc/resolv.conf or anything outside the guest's own namespace.
dev=${interface:?no interface}
idx=${WVPC_INDEX:-0}
table=$((100 + idx))
prio=$((1000 + idx))
state=${WVPC_STATE:-}
parts=${WVPC_DNS:-}

nameservers() {   # this NIC's DNS servers (none: its part goes), then the node's resolv.conf anew
    [ -n "$parts" ] && [ -d "$parts" ] || return 0
    if [ -n "$1" ]; then
        for s in $1; do echo "nameserver $s"; done > "$parts.$dev.tmp" && mv "$parts.$dev.tmp" "$parts/$dev"
    else
        rm -f "$parts/$dev"
    fi
    (   # one writer at a time (the lab takes the same lock); written in place: it is mounted
        flock 9
        { cat "$parts"/* 2>/dev/null; echo "options timeout:2 attempts:2"; } > "$parts.tmp"
        cat "$parts.tmp" > "$parts.resolv.conf"
    ) 9> "$parts.lock"
}

if [ -n "${reason:-}" ]; then            # dhclient
    case $reason in
        BOUND|RENEW|REBIND|REBOOT)
            event=bound; addr=$new_ip_address; mask=$new_subnet_mask
            router=${new_routers%% *}; lease=${new_dhcp_lease_time:-}; old=${old_ip_address:-}
            servers=${new_domain_name_servers:-};;
        EXPIRE|FAIL|RELEASE|STOP|NBI) event=deconfig; old=${old_ip_address:-};;
        PREINIT) ip link set dev "$dev" up; exit 0;;
        *) exit 0;;
    esac
else                                     # udhcpc
    case ${1:-} in
        bound|renew)
            event=bound; addr=$ip; mask=$subnet; router=${router%% *}; lease=${lease:-}
            servers=${dns:-}
            old=$(ip -4 -o addr show dev "$dev" scope global | awk '{print $4}' | cut -d/ -f1 | head -n1);;
        deconfig|leasefail|nak) event=deconfig; old="";;
        *) exit 0;;
    esac
fi

if [ "$event" = deconfig ]; then
    ip -4 addr flush dev "$dev" scope global 2>/dev/null
    ip rule del priority "$prio" 2>/dev/null
    ip route flush table "$table" 2>/dev/null
    [ -n "$state" ] && rm -f "$state"
    nameservers ""
    exit 0
fi

if [ -n "$old" ] && [ "$old" != "$addr" ]; then
    ip -4 addr flush dev "$dev" scope global
fi
ip addr replace "$addr/$mask" dev "$dev" || exit 1
net=$(ip -4 -o route show dev "$dev" proto kernel scope link | awk '{print $1}' | head -n1)
if [ "${WVPC_SOURCE_ROUTING:-1}" = 1 ]; then   # a guest: strong host, replies leave by this NIC
    ip rule del priority "$prio" 2>/dev/null
    ip rule add from "$addr" table "$table" priority "$prio"
    ip route flush table "$table" 2>/dev/null
    [ -n "$net" ] && ip route replace "$net" dev "$dev" src "$addr" table "$table"
    [ -n "${router:-}" ] && ip route replace default via "$router" dev "$dev" table "$table"
fi
if [ -n "${router:-}" ]; then
    ip route replace default via "$router" dev "$dev" metric $((100 + idx))
fi
nameservers "${servers:-}"
if [ -n "$state" ]; then
    printf '{"ip": "%s", "mask": "%s", "router": "%s", "lease": "%s", "time": %s}\n' \
        "$addr" "$mask" "${router:-}" "${lease:-}" "$(date +%s)" > "$state.tmp" && mv "$state.tmp" "$state"
fi
exit 0
