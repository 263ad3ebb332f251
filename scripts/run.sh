#!/usr/bin/env bash
# Sets up, builds and runs `tokend serve` on its embedded default (SQLite in
# ./var, 127.0.0.1:8080). Extra arguments go to `tokend serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec build/tokend serve "$@"
