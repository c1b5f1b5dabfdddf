#!/usr/bin/env bash
# demo.sh: bring up the lab, show traffic passing, deny the client, show the
# same traffic dropped at XDP and counted, then tear the lab down.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'echo; scripts/lab.sh down' EXIT INT TERM
scripts/lab.sh up >/dev/null
export SLUICE_API=unix:///tmp/sluice-lab/sluice.sock
C=sluice-lab-client
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
try() { echo "\$ $*"; "$@" || echo "(no reply)"; }

step "Sluice is attached to the load balancer's interface"
bin/sluice status
step "The client reaches the backend through the load balancer"
try ip netns exec $C curl -s -m 2 http://10.99.2.2:8080/
try ip netns exec $C ping -c 2 -W 1 -I 10.99.1.2 10.99.2.2
step "Push a deny list holding the client's address (map-sync)"
printf '# demo deny list\n10.99.1.2\n192.0.2.0/24\n2001:db8::/32\n' >/tmp/sluice-demo-deny.txt
bin/sluice acl set --kind deny --file /tmp/sluice-demo-deny.txt blocked
bin/sluice acl check 10.99.1.2
step "The same traffic is now dropped at XDP"
try ip netns exec $C curl -s -m 2 --interface 10.99.1.2 http://10.99.2.2:8080/
try ip netns exec $C ping -c 2 -W 1 -I 10.99.1.2 10.99.2.2
step "The client's other address is not in the list and still passes"
try ip netns exec $C curl -s -m 2 --interface 10.99.1.3 http://10.99.2.2:8080/
step "What was dropped, and why"
bin/sluice stats
curl -s --unix-socket /tmp/sluice-lab/sluice.sock http://sluice/metrics | grep -E '^sluice_(acl_drops|drops|acl_entries)'
rm -f /tmp/sluice-demo-deny.txt
