#!/usr/bin/env bash
# Installs the Debian packages of the real peers that tests and `npm run peers`
# start on loopback (never the system services). Idempotent; needs root or sudo.
#
#   bash scripts/install-peers.sh           install what is missing
#   bash scripts/install-peers.sh --check   print the missing packages (space-separated), install nothing
#
# `npm test` runs scripts/ensure-peers.ts first, which asks --check and runs
# this script when something is missing and it may (root, or sudo without a
# password). To add a peer, add one `want` line: the package, then the
# binaries any one of which shows it is installed.
set -euo pipefail
need=()
want() {
  local pkg=$1
  shift
  for bin in "$@"; do
    if [[ $bin == /* ]]; then
      [ -e "$bin" ] && return 0
    else
      command -v "$bin" >/dev/null 2>&1 && return 0
    fi
  done
  need+=("$pkg")
}
want nats-server nats-server /usr/sbin/nats-server /usr/bin/nats-server
want dovecot-imapd /usr/sbin/dovecot
want prosody prosody
want chromium /usr/bin/chromium
# The edge compiles a tiny LD_PRELOAD shim (SO_REUSEPORT for worker processes) on first use.
want gcc cc
want libc6-dev /usr/include/stdio.h
# The container tests (test/containers): podman as root with runc, podman-compose,
# netavark and aardvark-dns for service names on compose networks, and haproxy,
# whose binary the load balancer's local stand-in image is made from.
want podman podman
want podman-compose podman-compose
want runc runc
want netavark /usr/lib/podman/netavark
want aardvark-dns /usr/lib/podman/aardvark-dns
want haproxy haproxy /usr/sbin/haproxy
# The monitoring tests (test/monitoring): promtool checks the shipped rules, a real
# Prometheus scrapes a loopback cluster (the package has both binaries).
want prometheus promtool

if [ "${1:-}" = "--check" ]; then
  echo "${need[*]}"
  exit 0
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq
  # Package scripts must not start the system instances: tests run their own.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
