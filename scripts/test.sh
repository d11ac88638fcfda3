#!/usr/bin/env bash
# `npm test`: the whole suite. Installs the system programs the tests start or run (a real
# redis-server, Dovecot, Postfix, nginx with its mail module, swaks, curl, python3, openssl, promtool,
# Chromium, systemd-analyze) with apt-get when run as root, otherwise stops with one line naming the
# Debian packages to install. Then type-checks, and runs unit + integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# One entry per Debian package: the package and the file it puts on the machine.
required=(
  "redis-server        /usr/bin/redis-server"
  "dovecot-imapd       /usr/lib/dovecot/imap"
  "postfix             /usr/sbin/postfix"
  "swaks               /usr/bin/swaks"
  "curl                /usr/bin/curl"
  "python3             /usr/bin/python3"
  "openssl             /usr/bin/openssl"
  "nginx               /usr/sbin/nginx"
  "libnginx-mod-mail   /usr/lib/nginx/modules/ngx_mail_module.so"
  "prometheus          /usr/bin/promtool"
  "chromium            /usr/bin/chromium"
  "systemd             /usr/bin/systemd-analyze"
)
need=()
for entry in "${required[@]}"; do
  read -r package file <<<"$entry"
  [ -e "$file" ] || need+=("$package")
done

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "mailwarden tests need: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "installing: ${need[*]}" >&2
  # Keep Debian's maintainer scripts from starting the packages' own services (the harness starts
  # its own instances on free ports): invoke-rc.d refuses to start anything while policy-rc.d exits
  # 101. A policy-rc.d already on the machine is the owner's: it is left as it is, never replaced.
  policy=/usr/sbin/policy-rc.d
  created_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
    created_policy=$policy
  fi
  trap '[ -z "$created_policy" ] || rm -f "$created_policy"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -z "$created_policy" ] || rm -f "$created_policy"
  created_policy=
  still=()
  for entry in "${required[@]}"; do
    read -r package file <<<"$entry"
    [ -e "$file" ] || still+=("$package")
  done
  [ ${#still[@]} -eq 0 ] || { echo "apt-get did not install: ${still[*]}" >&2; exit 1; }
fi

[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
npx jest --selectProjects unit "$@"
npx jest --selectProjects integration --runInBand "$@"
