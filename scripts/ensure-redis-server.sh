#!/usr/bin/env bash
# The tests start their own redis-server processes (test/support/redis-server.ts). This makes sure
# the binary is there, installing Debian's package when it is not: root installs it directly, a
# user with sudo through sudo. Nothing is started here.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo -n"
else
  echo "redis-server is missing and this user cannot install it: run 'apt-get install redis-server' as root" >&2
  exit 1
fi
echo "installing redis-server from Debian's packages (the tests need it)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
command -v redis-server >/dev/null
