#!/usr/bin/env bash
# apt-install.sh PKG…: install the distribution's packages, updating the
# package lists once per run. Runs as root; never calls sudo.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
	echo "apt-install.sh: run as root to install: $*" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
stamp=/tmp/.sluice-apt-updated
if [ ! -e "$stamp" ]; then
	apt-get update -q >/dev/null
	touch "$stamp"
fi
apt-get install -y -q --no-install-recommends "$@" >/dev/null
