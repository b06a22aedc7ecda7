#!/bin/sh
# Writes the interface of the IPv4 default route as $VRRP_INTERFACE for
# keepalived.conf, as the reference procedure finds it by hand with `ip route`.
# Runs before every start of keepalived, so a renamed interface is picked up.
set -eu

out=${1:-/etc/keepalived/vrrp-interface.conf}
# DHCP may still be bringing the port up when keepalived starts at boot.
tries=${VRRP_INTERFACE_WAIT_SECONDS:-60}

while :; do
    dev=$(ip -4 route show default | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
    [ -n "$dev" ] && break
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then
        echo "vrrp-interface: no IPv4 default route, cannot tell keepalived which interface to use" >&2
        exit 1
    fi
    sleep 1
done

tmp="$out.tmp.$$"
# A literal $VRRP_INTERFACE: keepalived.conf's variable, not the shell's.
# shellcheck disable=SC2016
printf '$VRRP_INTERFACE=%s\n' "$dev" > "$tmp"
mv "$tmp" "$out"
echo "vrrp-interface: keepalived will use $dev"
