#!/usr/bin/env bash
# `npm test`: the whole suite. Installs the system programs the integration tests start (a real
# redis-server, Dovecot, Postfix, swaks, curl, python3) with apt-get when it can, otherwise stops
# with one line naming what to install. Then type-checks, and runs unit + integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have redis-server || need+=(redis-server)
have dovecot || need+=(dovecot-imapd)
have postfix || need+=(postfix)
have swaks || need+=(swaks)
have curl || need+=(curl)
have python3 || need+=(python3)
have openssl || need+=(openssl)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need[*]}" >&2
    # Keep Debian from starting its own services: the test harness starts its own instances.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  else
    echo "mailwarden tests need: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
npx jest --selectProjects unit "$@"
npx jest --selectProjects integration --runInBand "$@"
