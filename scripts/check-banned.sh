#!/usr/bin/env bash
# Fails if C sources call a banned function (ARCHITECTURE.md conventions):
# unbounded or unchecked string and number functions.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='\b(sprintf|vsprintf|strcpy|strcat|strncat|atoi|atol|atoll|gets)\s*\('
if grep -nE "$pattern" src/*.c src/*/*.c src/*/*.h tests/unit/*.c fuzz/*.c bench/*.c; then
  echo "banned functions used (see above): use snprintf, td_strlcpy, td_parse_i64" >&2
  exit 1
fi
echo "no banned functions"
