#!/usr/bin/env bash
# Fails if C sources call a banned function (ARCHITECTURE.md conventions):
# unbounded or unchecked string and number functions.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='\b(sprintf|vsprintf|strcpy|strcat|strncat|atoi|atol|atoll|gets)\s*\('
# Every C file at any depth (src/store/sqlite/, src/store/pg/ are two down).
if find src tests/unit fuzz bench -name '*.[ch]' -print0 | xargs -0 grep -nE "$pattern"; then
  echo "banned functions used (see above): use snprintf, td_strlcpy, td_parse_i64" >&2
  exit 1
fi
echo "no banned functions"
