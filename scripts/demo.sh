#!/usr/bin/env bash
# demo.sh: bring up the lab, show traffic passing, deny the client, show the
# same traffic dropped at XDP and counted; forward an L4 VIP at the NIC and
# serve an L7 VIP through the proxy; then tear the lab down.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'echo; scripts/lab.sh down' EXIT INT TERM
scripts/lab.sh up >/dev/null
export SLUICE_API=unix:///tmp/sluice-lab/sluice.sock
C=sluice-lab-client
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
try() { echo "\$ $*"; "$@" || echo "(no reply)"; }
daemon_pid() { bin/sluice status -o json | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$'; }

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

step "L4 at the NIC: a VIP forwarded to the backend in IPIP (DSR); the backend answers the client directly"
bin/sluice svc set echo --vip 10.99.100.10 --port 7007 --mode dsr-ipip --backend 10.99.2.2
try ip netns exec $C bin/sltool probe tcp 10.99.100.10:7007 -src 10.99.1.3
bin/sluice svc show echo

step "L7: a VIP handed to the proxy (sk_lookup, no iptables), two upstream servers"
bin/sluice svc set web --vip 10.99.100.80 --port 80 --mode l7
bin/sluice upstream set app --server 10.99.2.2:8080 --server 10.99.2.2:8081
bin/sluice vs set site --service web
bin/sluice location set site root --path / --upstream app
for _ in 1 2 3 4; do try ip netns exec $C curl -s -m 2 --interface 10.99.1.3 http://10.99.100.80/; done
step "The denied client is dropped at XDP before it reaches the proxy"
try ip netns exec $C curl -s -m 2 --interface 10.99.1.2 http://10.99.100.80/
step "Take a server out through the dynamic upstream API: no reload, no failed request"
bin/sluice upstream server set app 2 --down
for _ in 1 2; do try ip netns exec $C curl -s -m 2 --interface 10.99.1.3 http://10.99.100.80/; done
bin/sluice upstream show app
step "Upgrade the daemon in place (SIGUSR2) while the client keeps asking: a new process takes over"
old=$(daemon_pid)
ip netns exec $C sh -c 'for i in $(seq 30); do curl -s -m 2 --interface 10.99.1.3 http://10.99.100.80/ || echo "FAILED"; sleep 0.1; done' >/tmp/sluice-demo-upgrade.txt &
loop=$!
sleep 0.5
echo "\$ kill -USR2 $old"
kill -USR2 "$old"
new=$old
for _ in $(seq 100); do new=$(daemon_pid 2>/dev/null || echo "$old"); [ "$new" != "$old" ] && break; sleep 0.1; done
wait $loop
echo "daemon pid $old -> $new; the client's 30 requests across the upgrade:"
sort /tmp/sluice-demo-upgrade.txt | uniq -c
rm -f /tmp/sluice-demo-upgrade.txt
echo "$new" >/tmp/sluice-lab/sluice.pid
step "Live L7 statistics (also at /ui and in Prometheus)"
bin/sluice stats --l7
