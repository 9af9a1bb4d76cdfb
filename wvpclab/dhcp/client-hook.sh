#!/bin/sh
# wvpclab's DHCP client hook, for busybox udhcpc (-s) and ISC dhclient (-sf). It configures the NIC it is
# called for (address, per-NIC source routing, default route) and writes the lab's state file
# ($WVPC_STATE); it never touches /etc/resolv.conf or anything outside the guest's own namespace.
dev=${interface:?no interface}
idx=${WVPC_INDEX:-0}
table=$((100 + idx))
prio=$((1000 + idx))
state=${WVPC_STATE:-}

if [ -n "${reason:-}" ]; then            # dhclient
    case $reason in
        BOUND|RENEW|REBIND|REBOOT)
            event=bound; addr=$new_ip_address; mask=$new_subnet_mask
            router=${new_routers%% *}; lease=${new_dhcp_lease_time:-}; old=${old_ip_address:-};;
        EXPIRE|FAIL|RELEASE|STOP|NBI) event=deconfig; old=${old_ip_address:-};;
        PREINIT) ip link set dev "$dev" up; exit 0;;
        *) exit 0;;
    esac
else                                     # udhcpc
    case ${1:-} in
        bound|renew)
            event=bound; addr=$ip; mask=$subnet; router=${router%% *}; lease=${lease:-}
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
if [ -n "$state" ]; then
    printf '{"ip": "%s", "mask": "%s", "router": "%s", "lease": "%s", "time": %s}\n' \
        "$addr" "$mask" "${router:-}" "${lease:-}" "$(date +%s)" > "$state.tmp" && mv "$state.tmp" "$state"
fi
exit 0
