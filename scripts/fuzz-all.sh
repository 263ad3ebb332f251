#!/usr/bin/env bash
# Builds every libFuzzer target (fuzz/fuzz_*.c) and runs each for SECONDS
# (default 600), one after another, with its seeds (fuzz/corpus for
# fuzz_request, fuzz/corpus_<name> for fuzz_<name>) and a working corpus of
# its own under the build directory. Prints one line per target from
# libFuzzer's final stats; stops at the first target that finds a crash, leak
# or broken invariant (its input is kept as BUILD/crash-*; the exit status is
# libFuzzer's). docs/fuzzing.md records the runs.
#
#   scripts/fuzz-all.sh [SECONDS]      BUILD: build-fuzz (FUZZ_BUILD to change)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
build=${FUZZ_BUILD:-build-fuzz}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz-all.sh [SECONDS]" >&2; exit 2; }
command -v clang >/dev/null || scripts/deps.sh --test

cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DTD_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=()
for src in fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null

for t in "${targets[@]}"; do
  seeds=fuzz/corpus_${t#fuzz_}
  [[ $t == fuzz_request ]] && seeds=fuzz/corpus
  work=$build/corpus-$t
  mkdir -p "$work"
  log=$build/$t.log
  echo "== $t: ${seconds} s, seeds $seeds, corpus $work, log $log" >&2
  rc=0
  "$build/$t" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$build/" "$work" "$seeds" \
    >"$log" 2>&1 || rc=$?
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  echo "$t: ${seconds} s, ${runs:-?} runs, ${cov:-?} edges, $(find "$work" -type f | wc -l) inputs in the corpus," \
    "exit $rc"
  if ((rc != 0)); then
    tail -40 "$log" >&2
    exit "$rc"
  fi
done
