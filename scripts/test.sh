#!/usr/bin/env bash
# Sets up, builds and runs every test twice: a normal build, then one with
# AddressSanitizer and UndefinedBehaviorSanitizer. Warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
jobs=$(nproc)

run_suite() { # build-dir, extra cmake flags...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTD_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  (cd "$dir" && ctest --output-on-failure -j1)
}

# One throwaway PostgreSQL cluster for both suites (scripts/pg.sh): they find
# it through TD_TEST_PG_URL and PGPASSFILE. A previous run's is stopped and
# removed first; this one is stopped by its PID however the run ends.
pg_dir=build/pg
scripts/pg.sh stop "$pg_dir"
rm -rf "$pg_dir"
trap 'scripts/pg.sh stop "$pg_dir"' EXIT
echo "== PostgreSQL for the tests in $pg_dir" >&2
TD_TEST_PG_URL=$(scripts/pg.sh start "$pg_dir")
PGPASSFILE=$PWD/$pg_dir/pgpass
export TD_TEST_PG_URL PGPASSFILE
psql "$TD_TEST_PG_URL" -XAtqc 'select 1' >/dev/null ||
  { echo "tests: PostgreSQL at $TD_TEST_PG_URL does not answer (log: $pg_dir/postgres.log)" >&2; exit 1; }

echo "== tests: normal build" >&2
run_suite build
echo "== tests: ASan + UBSan build" >&2
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -DTD_SANITIZE=ON
echo "== all tests passed" >&2
