#!/usr/bin/env bash
# fuzz.sh TIME: run every Go fuzz target in the module for TIME each. The
# seed corpora also run in plain `go test`; this explores beyond them.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-10s}
n=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	for name in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
		echo "fuzz $dir $name for $time"
		go test -run='^$' -fuzz="^${name}\$" -fuzztime="$time" "./$dir"
		n=$((n + 1))
	done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz' . | sed 's|^\./||' | sort)
echo "fuzzed $n targets"
