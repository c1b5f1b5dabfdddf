#!/usr/bin/env bash
# deps.sh test|bench: install, from the distribution's packages, the tools the
# tests (or the benchmarks) run that are not there yet.
set -euo pipefail
cd "$(dirname "$0")"
need=()
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
want ip iproute2
want ping iputils-ping
want curl curl
want nsenter util-linux
want sysctl procps
want ethtool ethtool
if [ "${1:-test}" = bench ]; then
	want ipset ipset
	want iptables iptables
	want nft nftables
	want haproxy haproxy
	want nginx nginx
	want wrk wrk
	want clang clang
fi
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}"
	./apt-install.sh "${need[@]}"
fi
