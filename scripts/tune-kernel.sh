#!/usr/bin/env bash
# Check (default) or set (--apply, as root) the kernel settings a DHT crawl at
# wire speed needs: UDP socket buffers and the backlog between the NIC and the
# sockets. Without them the kernel drops datagrams in bursts before trawl sees
# them (watch `RcvbufErrors` in /proc/net/snmp).
#
#   scripts/tune-kernel.sh            # report current vs recommended, exit 1 if any is low
#   sudo scripts/tune-kernel.sh --apply [--persist]
#                                     # set them now (and in /etc/sysctl.d/90-trawl.conf)
#
# Conntrack: a crawler talks to millions of distinct UDP peers, and every one
# becomes a connection-tracking entry when nf_conntrack is loaded. When the
# table fills, the kernel drops new flows for *every* service on the machine
# ("nf_conntrack: table full, dropping packet" in dmesg). Exempt the DHT port:
#
#   iptables -t raw -A PREROUTING -p udp --dport 6881 -j NOTRACK
#   iptables -t raw -A OUTPUT     -p udp --sport 6881 -j NOTRACK
#   (ip6tables likewise; nftables: `udp dport 6881 notrack` in a raw-priority chain)
#
# and, if the host firewall is stateful, allow the port explicitly
# (`-A INPUT -p udp --dport 6881 -j ACCEPT`), since untracked packets never
# match ESTABLISHED.
set -euo pipefail

apply=0
persist=0
for arg in "$@"; do
    case "$arg" in
        --apply) apply=1 ;;
        --persist) persist=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "tune-kernel.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

# name recommended-minimum why
settings=(
    "net.core.rmem_max 16777216 largest receive buffer a socket may ask for (trawl asks for 4 MiB per socket; the kernel caps it here)"
    "net.core.rmem_default 1048576 receive buffer of sockets that do not ask"
    "net.core.wmem_max 8388608 largest send buffer"
    "net.core.netdev_max_backlog 65536 packets queued between the NIC and the protocol stack per CPU"
)

low=0
persist_lines=()
for entry in "${settings[@]}"; do
    read -r name want why <<<"$entry"
    path="/proc/sys/${name//.//}"
    if [[ ! -r "$path" ]]; then
        printf '%-28s %12s  (not available here)\n' "$name" "-"
        continue
    fi
    have="$(cat "$path")"
    if (( have >= want )); then
        printf '%-28s %12s  ok (>= %s)  %s\n' "$name" "$have" "$want" "$why"
    elif (( apply )); then
        echo "$want" > "$path"
        printf '%-28s %12s  set to %s  %s\n' "$name" "$have" "$want" "$why"
    else
        printf '%-28s %12s  LOW: recommend %s  %s\n' "$name" "$have" "$want" "$why"
        low=1
    fi
    persist_lines+=("$name = $(( have >= want ? have : want ))")
done

if (( apply && persist )); then
    conf=/etc/sysctl.d/90-trawl.conf
    printf '%s\n' "# written by trawl scripts/tune-kernel.sh" "${persist_lines[@]}" > "$conf"
    echo "persisted in $conf"
fi

if [[ -r /proc/sys/net/netfilter/nf_conntrack_max ]]; then
    count="$(cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo '?')"
    echo "conntrack is loaded: $count of $(cat /proc/sys/net/netfilter/nf_conntrack_max) entries in use;" \
         "exempt the DHT port with NOTRACK rules (see the top of this script)"
else
    echo "conntrack is not loaded: nothing to exempt"
fi

if (( low )); then
    echo "some settings are below the recommendation: run 'sudo $0 --apply' (add --persist to keep them after reboot)"
    exit 1
fi
