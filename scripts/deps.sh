#!/usr/bin/env bash
# Installs everything tokend needs to build, run and test, from Debian's
# packages and (for the contract tests) npm with a lockfile. Idempotent: it
# installs only what is missing and runs `apt-get update` only then.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config clang
  libmicrohttpd-dev libgnutls28-dev libjansson-dev libsodium-dev libsqlite3-dev libcurl4-openssl-dev
  libpq-dev libcmocka-dev
  python3 python3-pytest python3-requests
  nodejs npm
  sqlite3 curl jq openssl
)
# Only the test command needs these (benchmarks need wrk and nginx too).
# PostgreSQL and pg_auto_failover: the tests start their own throwaway clusters
# on free ports (scripts/pg.sh). Installing postgresql-15 may create (and, where
# services start, run) Debian's default cluster 15/main on port 5432; nothing of
# ours uses or touches it.
if [[ "${1:-}" == "--test" || "${1:-}" == "--bench" ]]; then
  PACKAGES+=(libclang-rt-14-dev
    postgresql-15 postgresql-client-15 postgresql-15-auto-failover pg-auto-failover-cli)
fi
if [[ "${1:-}" == "--bench" ]]; then
  PACKAGES+=(wrk nginx-light linux-perf valgrind)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from elsewhere on a developer machine: accept working commands.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  # Another deps.sh (or apt) may be installing at the same time: wait for its lock.
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == "--test" || "${1:-}" == "--bench" ]]; then
  if [[ ! -d tests/contract/node_modules ]]; then
    (cd tests/contract && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
