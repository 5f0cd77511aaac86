#!/usr/bin/env bash
# Installs the Debian packages of the real peers that tests and `npm run peers`
# start on loopback (never the system services). Idempotent; needs root or sudo.
set -euo pipefail
need=()
{ command -v nats-server || [ -x /usr/sbin/nats-server ] || [ -x /usr/bin/nats-server ]; } >/dev/null || need+=(nats-server)
[ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
command -v prosody >/dev/null || need+=(prosody)
[ -x /usr/bin/chromium ] || need+=(chromium)
# The edge compiles a tiny LD_PRELOAD shim (SO_REUSEPORT for worker processes) on first use.
command -v cc >/dev/null || need+=(gcc libc6-dev)
# The container tests (test/containers): podman as root with runc, podman-compose,
# netavark and aardvark-dns for service names on compose networks, and haproxy,
# whose binary the load balancer's local stand-in image is made from.
command -v podman >/dev/null || need+=(podman)
command -v podman-compose >/dev/null || need+=(podman-compose)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/podman/netavark ] || need+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || need+=(aardvark-dns)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq
  # Package scripts must not start the system instances: tests run their own.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
