#!/bin/sh
# netns-hosts.sh: several "hosts" on one machine for the multi-host tests.
# Each host is a network namespace with its own address; the hosts meet on
# a bridge in the root namespace through veth pairs, and each host's side of
# its veth is shaped with tc tbf, so traffic between hosts crosses a link
# slower than the loopback two ranks of one host talk over.
#
#   netns-hosts.sh check               why hosts cannot be made: one line on
#                                      stdout and exit 1; silent, exit 0, if they can
#   netns-hosts.sh up N PREFIX RATE    N hosts (1..16): namespaces PREFIXh0 ..
#                                      PREFIXh<N-1>, addresses 10.123.0.1 .. .N/24
#                                      on interface "mbnet0" in each (so every host
#                                      names it alike), egress shaped to RATE (a
#                                      tc rate: 200mbit); /etc/netns/<host>/hosts
#                                      names every host, so each resolves the others
#                                      (ip netns exec mounts it over /etc/hosts)
#   netns-hosts.sh down PREFIX         remove all of it; safe to call twice
#
# PREFIX: letters and digits, at most 11 characters, so that the root
# namespace's interface names (PREFIXv<i>, PREFIXbr) fit in 15. Use a
# unique one per run (say mb$$) so parallel runs do not collide: the subnet
# is the same in every run, but each run's hosts see only their own bridge.
# Root only (CAP_NET_ADMIN and CAP_SYS_ADMIN in the initial namespaces).
set -u

NETIF=mbnet0
SUBNET=10.123.0

die() { echo "netns-hosts: $*" >&2; exit 1; }

check_prefix() {
	case $1 in
	'' | *[!A-Za-z0-9]*) die "prefix '$1' must be letters and digits" ;;
	esac
	[ ${#1} -le 11 ] || die "prefix '$1' is longer than 11 characters"
}

# check: the first reason found, on stdout
ns_check() {
	[ "$(id -u)" = 0 ] || { echo "not root (network namespaces need CAP_NET_ADMIN)"; return 1; }
	for c in ip tc unshare; do
		command -v $c > /dev/null 2>&1 || { echo "no '$c' command (iproute2, util-linux)"; return 1; }
	done
	if ! mkdir -p /etc/netns 2> /dev/null || ! [ -w /etc/netns ]; then
		echo "cannot write /etc/netns (each host's /etc/hosts goes there)"
		return 1
	fi
	rmdir /etc/netns 2> /dev/null # only if empty
	t=mbchk$$
	if ! err=$(ip netns add $t 2>&1); then
		echo "ip netns add fails: $err"
		return 1
	fi
	r=0
	if ! err=$(ip link add ${t}a type veth peer name ${t}b netns $t 2>&1); then
		echo "cannot make a veth pair: $err"
		r=1
	elif ! err=$(tc -n $t qdisc add dev ${t}b root tbf rate 100mbit burst 64kb latency 50ms 2>&1); then
		echo "tc tbf qdisc unavailable: $err"
		r=1
	elif ! err=$(ip link add ${t}c type bridge 2>&1); then
		echo "cannot make a bridge: $err"
		r=1
	elif ! err=$(ip netns exec $t unshare --uts sh -c "hostname $t" 2>&1); then
		echo "cannot enter a namespace with its own hostname: $err"
		r=1
	fi
	ip link del ${t}c 2> /dev/null
	ip link del ${t}a 2> /dev/null
	ip netns del $t 2> /dev/null
	return $r
}

ns_up() {
	[ $# -eq 3 ] || die "usage: up N PREFIX RATE"
	n=$1 p=$2 rate=$3
	check_prefix "$p"
	case $n in '' | *[!0-9]*) die "N '$n' is not a number" ;; esac
	[ "$n" -ge 1 ] && [ "$n" -le 16 ] || die "N=$n outside 1..16"
	ip netns list | grep -q "^${p}h" && die "hosts with prefix $p exist already"
	ip link add ${p}br type bridge || return 1
	ip link set ${p}br up || return 1
	i=0
	while [ $i -lt "$n" ]; do
		h=${p}h$i
		ip netns add $h &&
			ip link add ${p}v$i type veth peer name $NETIF netns $h &&
			ip link set ${p}v$i master ${p}br &&
			ip link set ${p}v$i up &&
			ip -n $h link set lo up &&
			ip -n $h addr add $SUBNET.$((i + 1))/24 dev $NETIF &&
			ip -n $h link set $NETIF up &&
			tc -n $h qdisc add dev $NETIF root tbf rate "$rate" burst 64kb latency 50ms ||
			return 1
		i=$((i + 1))
	done
	hosts=$(i=0; while [ $i -lt "$n" ]; do echo "$SUBNET.$((i + 1))	${p}h$i"; i=$((i + 1)); done)
	i=0
	while [ $i -lt "$n" ]; do
		mkdir -p /etc/netns/${p}h$i || return 1
		printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n%s\n' "$hosts" > /etc/netns/${p}h$i/hosts ||
			return 1
		i=$((i + 1))
	done
	return 0
}

ns_down() {
	[ $# -eq 1 ] || die "usage: down PREFIX"
	p=$1
	check_prefix "$p"
	# the root namespace's ends first: deleting one deletes its peer at once,
	# where a namespace's deletion takes its veth away only later
	for l in $(ip -o link show 2> /dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
		case $l in "${p}v"[0-9]* | "${p}br") ip link del "$l" 2> /dev/null ;; esac
	done
	for h in $(ip netns list | awk -v p="${p}h" 'index($1, p) == 1 { print $1 }'); do
		case ${h#"${p}h"} in '' | *[!0-9]*) continue ;; esac
		# processes a run left in the host (a stray orted) would keep the
		# namespace alive after its name is gone
		pids=$(ip netns pids $h 2> /dev/null)
		if [ -n "$pids" ]; then
			kill $pids 2> /dev/null
			sleep 0.5
			pids=$(ip netns pids $h 2> /dev/null)
			[ -n "$pids" ] && kill -9 $pids 2> /dev/null
		fi
		ip netns del $h 2> /dev/null
		rm -rf "/etc/netns/$h"
	done
	rmdir /etc/netns 2> /dev/null # only if no other run uses it
	return 0
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
check) ns_check ;;
up)
	[ $# -eq 3 ] || die "usage: up N PREFIX RATE"
	ns_up "$@" || { ns_down "$2"; die "up failed (removed what was made)"; } ;;
down) ns_down "$@" ;;
*) die "usage: netns-hosts.sh check | up N PREFIX RATE | down PREFIX" ;;
esac
