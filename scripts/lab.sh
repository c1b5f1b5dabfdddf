#!/usr/bin/env bash
# lab.sh up|down|status: the demo topology, for people to play in.
#
#   client ns                 lb ns (sluice, XDP on lab-lb0, lab-lb1)  backend ns
#   10.99.1.2, .3  ── veth ── 10.99.1.1 | 10.99.2.1  ── veth ──  10.99.2.2 (HTTP :8080 and :8081, echo :7007)
#   fd99:1::2                 fd99:1::1 | fd99:2::1                fd99:2::2
#
# The backend also holds the L4 VIP 10.99.100.10 on its loopback and runs
# `sluice decap`, so IPIP from the load balancer lands there (DSR).
set -euo pipefail
cd "$(dirname "$0")/.."
C=sluice-lab-client L=sluice-lab-lb B=sluice-lab-backend
STATE=/tmp/sluice-lab
BPFFS=/sys/fs/bpf/sluice-lab
SOCK=$STATE/sluice.sock

up() {
	down >/dev/null 2>&1 || true
	mkdir -p "$STATE" bin
	go build -o bin/sltool ./test/lab/sltool
	[ -x bin/sluice ] || go build -o bin/sluice ./cmd/sluice
	for ns in $C $L $B; do ip netns add $ns; ip -n $ns link set lo up; done
	ip link add lab-c0 type veth peer name lab-lb0
	ip link add lab-lb1 type veth peer name lab-b0
	ip link set lab-c0 netns $C; ip link set lab-lb0 netns $L
	ip link set lab-lb1 netns $L; ip link set lab-b0 netns $B
	ip -n $C addr add 10.99.1.2/24 dev lab-c0; ip -n $C addr add 10.99.1.3/24 dev lab-c0
	ip -n $C addr add fd99:1::2/64 dev lab-c0 nodad
	ip -n $L addr add 10.99.1.1/24 dev lab-lb0; ip -n $L addr add fd99:1::1/64 dev lab-lb0 nodad
	ip -n $L addr add 10.99.2.1/24 dev lab-lb1; ip -n $L addr add fd99:2::1/64 dev lab-lb1 nodad
	ip -n $B addr add 10.99.2.2/24 dev lab-b0; ip -n $B addr add fd99:2::2/64 dev lab-b0 nodad
	ip -n $C link set lab-c0 up; ip -n $L link set lab-lb0 up; ip -n $L link set lab-lb1 up; ip -n $B link set lab-b0 up
	ip -n $C route add default via 10.99.1.1; ip -n $C -6 route add default via fd99:1::1
	ip -n $B route add default via 10.99.2.1; ip -n $B -6 route add default via fd99:2::1
	ip netns exec $L sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	# A veth leaves TCP/UDP checksums for "hardware" to finish, and a frame
	# that XDP forwards never gets them finished; a real NIC would.
	ip netns exec $C ethtool -K lab-c0 tx off >/dev/null
	ip -n $B addr add 10.99.100.10/32 dev lo
	ip netns exec $B bin/sltool serve -name backend -tcp :7007 -udp :7008 -http :8080 >"$STATE/backend.log" 2>&1 &
	echo $! >"$STATE/backend.pid"
	ip netns exec $B bin/sltool serve -name backend-2 -http :8081 >"$STATE/backend2.log" 2>&1 &
	echo $! >"$STATE/backend2.pid"
	nsenter --net=/run/netns/$B bin/sluice decap --iface lab-b0 --vip 10.99.100.10 --bpffs $BPFFS-decap >/dev/null
	# nsenter enters only the network namespace, so the pins land in the host's bpffs.
	nsenter --net=/run/netns/$L bin/sluice serve --iface lab-lb0 --iface lab-lb1 --bpffs $BPFFS \
		--state-dir "$STATE/state" --socket "$SOCK" >"$STATE/sluice.log" 2>&1 &
	echo $! >"$STATE/sluice.pid"
	for _ in $(seq 50); do bin/sluice --api unix://$SOCK status >/dev/null 2>&1 && break; sleep 0.1; done
	bin/sluice --api unix://$SOCK status >/dev/null || { cat "$STATE/sluice.log"; exit 1; }
	cat <<MSG
lab is up. Try:
  export SLUICE_API=unix://$SOCK
  ip netns exec $C curl -s http://10.99.2.2:8080/         # passes
  bin/sluice acl add blocked 10.99.1.2                     # deny the client
  ip netns exec $C curl -s -m 2 http://10.99.2.2:8080/    # dropped at XDP
  bin/sluice stats
logs: $STATE/sluice.log; tear down: scripts/lab.sh down
MSG
}

down() {
	# The daemon serving now: another process than sluice.pid after an upgrade in place.
	pid=$(bin/sluice --api unix://$SOCK status -o json 2>/dev/null | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$' || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	for p in sluice backend backend2; do
		[ -f "$STATE/$p.pid" ] && kill "$(cat "$STATE/$p.pid")" 2>/dev/null || true
	done
	[ -x bin/sluice ] && bin/sluice detach --all --bpffs $BPFFS 2>/dev/null || true
	rm -rf $BPFFS-decap
	for ns in $C $L $B; do ip netns del $ns 2>/dev/null || true; done
	rm -rf "$STATE"
	echo "lab is down"
}

status() {
	ip netns list | grep sluice-lab || { echo "lab is down"; return; }
	bin/sluice --api unix://$SOCK status
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
