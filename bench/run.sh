#!/usr/bin/env bash
# bench/run.sh — how fast tokend cancels and serves tokens, measured against
# nginx as the ceiling of what an HTTP server on this machine can do. Not part
# of CI: it takes about 2 minutes (plus any wait for a quiet machine).
#
#   bench/run.sh [--quick]
#
# What it does, in order:
#  1. Builds a Release tokend (build-rel/), starts it on a free loopback port
#     with a fresh temporary store and --rate-limit 0 (the default
#     synchronous=FULL: every 200 to a cancel is on disk).
#  2. Seeds tokens through the real API with bench/seed.c (libcurl multi, 64
#     flows in flight: token request -> authorization -> consent approve), and
#     keeps a copy of the store for step 6.
#  3. Cancels one spare token and GETs it to capture real response bodies,
#     then starts nginx (worker_processes 2, access_log off, its own pid file,
#     error log and temp dirs) on another free port, serving those two bodies
#     as static files: PUT /tokens/{id}/cancel answers 200 with the cancel
#     body (error_page 405 =200), GET /tokens/{id} the token body.
#  4. Runs the same wrk command (wrk -t2 -c64 -d4s --latency -s tokens.lua)
#     four times: PUT .../cancel against nginx and against tokend (each
#     request a token never cancelled before), then GET against nginx and
#     tokend. For each: req/s, p50, p99, tokend/nginx ratio, and server CPU
#     microseconds per request (utime+stime from /proc/PID/stat, in CLK_TCK
#     ticks, over the requests wrk counted; nginx: master and workers). Then
#     checks the cancel run: wrk saw no non-2xx answer; the tokens that went
#     to CANCELED in the SQLite file (sqlite3 CLI, tokens.state = 1) number
#     exactly the cancels tokend answered 200 (counted in its request log);
#     and that number is at least wrk's 200s and at most wrk's 200s plus the
#     requests wrk had in flight when it stopped (it closes those sockets;
#     tokend commits the ones it had already read).
#  5. Profiles tokend during a short cancel run (on spare tokens) and a short
#     GET run: perf record --call-graph dwarf if `perf stat -e instructions
#     true` works here, else valgrind --tool=callgrind.
#  6. Grows the copied store to 1,000,000 tokens with SQL in one transaction
#     (copies of the seeded tokens with new unique ids), starts tokend on it,
#     runs GET load over a random sample of ids and reads VmRSS/VmHWM.
# Every process it starts it stops by pid; the temp dir is removed at the end
# (BENCH_KEEP=1 keeps it). The shell functions it shares with bench/network.sh
# (CPU accounting, quiet-machine wait, tokend and nginx start, the measured
# run, the profiles) are in bench/lib.sh. Results: bench/results/<timestamp>/ (git-ignored):
# summary.md (the table), the wrk outputs, tokend/nginx logs, profile reports.
#
# A shared machine: before each run it waits (up to BENCH_QUIET_WAIT s, 120)
# until other processes use < 15 % of the CPUs, and it reports for each run
# how much of the machine wrk, other processes and the hypervisor (steal)
# took. Numbers with "other" above a few % are disturbed: run again.
#
# --quick: 50,000 tokens, 2 s runs, 200,000 tokens for the memory step — a
# smoke test of the harness, not numbers to quote.
#
# Settings (environment): BENCH_TOKENS (100000), BENCH_DURATION (4s: wrk -d,
# the same for every run; see below), BENCH_THREADS (2: wrk threads and
# tokend --threads), BENCH_CONNECTIONS (64), BENCH_RSS_TOKENS (1000000),
# BENCH_PROFILE (auto|perf|callgrind|none), BENCH_PROFILE_TOKENS (20000),
# BENCH_SEED_CONCURRENCY (64),
# BENCH_QUIET_WAIT (120), BENCH_KEEP (0).
#
# Why 4 s and not 20 s: a cancel run may not repeat a token, and tokend
# cancels 10,000-15,000 tokens/s here, so 100,000 tokens last 7-10 s. A
# cancel thread that runs out stops (tokens.lua), which would make its req/s
# too low: run.sh then says so and fails; raise BENCH_TOKENS (seeding costs
# about 1 s per 5,000) or shorten BENCH_DURATION.
#
# Needs: cmake, gcc, libcurl dev files, wrk, nginx, sqlite3, curl, python3,
# perf or valgrind — `scripts/deps.sh --bench` installs them; run.sh calls it
# when one is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
case "${1:-}" in
--quick) QUICK=1 ;;
"") ;;
-h | --help)
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
  ;;
*)
  echo "usage: bench/run.sh [--quick]" >&2
  exit 2
  ;;
esac

if ((QUICK)); then
  : "${BENCH_TOKENS:=50000}" "${BENCH_DURATION:=2s}" "${BENCH_RSS_TOKENS:=200000}" "${BENCH_PROFILE_TOKENS:=5000}"
fi
N_TOKENS=${BENCH_TOKENS:-100000}
DURATION=${BENCH_DURATION:-4s}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
RSS_TOKENS=${BENCH_RSS_TOKENS:-1000000}
PROFILE=${BENCH_PROFILE:-auto}
PROFILE_TOKENS=${BENCH_PROFILE_TOKENS:-20000}
SEED_CONC=${BENCH_SEED_CONCURRENCY:-64}
KEEP=${BENCH_KEEP:-0}
PROFILE_SECONDS=3

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh" # log, die, PIDS/cleanup, CPU accounting, tokend, nginx, bench_measure, profiles

# ---- tools ----
bench_tools

# ---- work dirs and cleanup ----
bench_dirs tokend-bench

# ---- 1. build ----
build_tokend
# shellcheck disable=SC2046 # pkg-config's flags are meant to split
gcc -O2 -Wall -Wextra -o "$WORK/seed" "$ROOT/bench/seed.c" $(pkg-config --cflags --libs libcurl) ||
  die "cannot build bench/seed.c"

# ---- 2. seed ----
STORE="$WORK/store"
mkdir -p "$STORE"
start_tokend main "$STORE"
log "tokend pid $TD_PID on $TD_URL, store $STORE/tokend.db"
SEED_TOTAL=$((N_TOKENS + 1 + PROFILE_TOKENS))
log "seeding $SEED_TOTAL tokens through the API ($SEED_CONC flows in flight)"
seed_t0=$(date +%s.%N)
"$WORK/seed" "$TD_URL" "$(cat "$STORE/admin.key")" "$SEED_TOTAL" "$SEED_CONC" "$WORK" 2>"$RESULTS/seed.log" ||
  die "seeding failed: $(tail -3 "$RESULTS/seed.log")"
seed_s=$(awk -v a="$seed_t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
log "$(tail -1 "$RESULTS/seed.log")"
# shellcheck disable=SC1091
source "$WORK/seed.env" # TPP_KEY TPP_ID USER_ID
[[ $(sort -u "$WORK/tokens.txt" | wc -l) -eq $SEED_TOTAL ]] || die "the seeder did not record $SEED_TOTAL distinct ids"
head -n "$N_TOKENS" "$WORK/tokens.txt" >"$WORK/ids-bench.txt"
sed -n "$((N_TOKENS + 1))p" "$WORK/tokens.txt" >"$WORK/id-capture.txt"
tail -n "$PROFILE_TOKENS" "$WORK/tokens.txt" >"$WORK/ids-profile.txt"
cp "$WORK/tokens.txt" "$RESULTS/tokens.txt"
{
  echo "TPP_KEY=$TPP_KEY"
  echo "TPP_ID=$TPP_ID"
  echo "USER_ID=$USER_ID"
} >"$RESULTS/seed.env"

# A copy of the freshly seeded store (all tokens ACTIVE) for the memory step.
mkdir -p "$WORK/rss"
sqlite3 "$STORE/tokend.db" "VACUUM INTO '$WORK/rss/tokend.db'"
cp "$STORE/master.key" "$STORE/admin.key" "$WORK/rss/"

# ---- 3. real bodies, then nginx serving bodies of the same sizes ----
CAPTURE_ID=$(cat "$WORK/id-capture.txt")
mkdir -p "$WORK/nginx/www" "$WORK/nginx/tmp"
chmod 755 "$WORK" "$WORK/nginx" "$WORK/nginx/www" # nginx workers run as nobody
code=$(curl -s -o "$WORK/nginx/www/cancel.json" -w '%{http_code}' -X PUT -H "Authorization: Bearer $TPP_KEY" \
  -H 'Content-Length: 0' "$TD_URL/tokens/$CAPTURE_ID/cancel")
[[ $code == 200 ]] || die "capturing a cancel answer: HTTP $code"
code=$(curl -s -o "$WORK/nginx/www/token.json" -w '%{http_code}' -H "Authorization: Bearer $TPP_KEY" \
  "$TD_URL/tokens/$CAPTURE_ID")
[[ $code == 200 ]] || die "capturing a GET answer: HTTP $code"
CANCEL_BYTES=$(stat -c %s "$WORK/nginx/www/cancel.json")
GET_BYTES=$(stat -c %s "$WORK/nginx/www/token.json")
chmod 644 "$WORK/nginx/www/"*.json
cp "$WORK/nginx/www/cancel.json" "$RESULTS/body-cancel.json"
cp "$WORK/nginx/www/token.json" "$RESULTS/body-get.json"
log "captured bodies: cancel $CANCEL_BYTES bytes, GET (a cancelled token) $GET_BYTES bytes"

NG_PORT=$(free_port)
nginx_start <<EOF
  server {
    listen 127.0.0.1:$NG_PORT;
    root $WORK/nginx/www;
    add_header Cache-Control no-store;
    # PUT on a static file is 405 in nginx: answer it 200 with the same file.
    location ~ ^/tokens/[^/]+/cancel\$ {
      rewrite ^ /cancel.json break;
      error_page 405 =200 /cancel.json;
    }
    location ~ ^/tokens/[^/]+\$ {
      rewrite ^ /token.json break;
    }
    location = /cancel.json { internal; }
  }
EOF

check_nginx() { # method path expected_bytes
  local out
  out=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -X "$1" -H "Authorization: Bearer $TPP_KEY" \
    -H 'Content-Length: 0' "$NG_URL$2")
  [[ $out == "200 $3" ]] || die "nginx $1 $2 answered '$out', expected '200 $3'"
}
check_nginx PUT "/tokens/$CAPTURE_ID/cancel" "$CANCEL_BYTES"
check_nginx GET "/tokens/$CAPTURE_ID" "$GET_BYTES"
log "nginx pid $NG_PID on $NG_URL (2 workers) answers PUT and GET with 200 and the same body sizes"

# ---- 4. the runs ----
WRK_CMD=(wrk "-t$THREADS" "-c$CONNS" "-d$DURATION" --latency -s "$ROOT/bench/tokens.lua")
# bench_run NAME URL MODE IDS WRAP PID...
bench_run() {
  local name=$1 url=$2 mode=$3 ids=$4 wrap=$5
  shift 5
  bench_measure "$name" "$*" "${WRK_CMD[@]}" "$url" -- "$mode" "$ids" "$TPP_KEY" "$THREADS" "$wrap"
}

canceled_count() { sqlite3 "$STORE/tokend.db" "SELECT count(*) FROM tokens WHERE state = 1"; }
# Cancels tokend answered 200, from its request log (one JSON line a request).
served_200() { grep -c '"route":"/tokens/{tokenId}/cancel","status":200' "$RESULTS/tokend-main.log" || true; }

log "runs: ${WRK_CMD[*]} URL -- MODE IDS KEY $THREADS once|wrap"
# shellcheck disable=SC2046 # one argument per pid
bench_run nginx-put "$NG_URL" cancel "$WORK/ids-bench.txt" wrap $(ng_pids)
canceled_before=$(canceled_count)
served_before=$(served_200)
jobs0=$(store_metric tokend_store_commit_batch_size_sum)
commits0=$(store_metric tokend_store_commit_batch_size_count)
bench_run tokend-cancel "$TD_URL" cancel "$WORK/ids-bench.txt" once "$TD_PID"
sleep 0.5 # let the cancels wrk stopped waiting for reach their commit
jobs1=$(store_metric tokend_store_commit_batch_size_sum)
commits1=$(store_metric tokend_store_commit_batch_size_count)
canceled_after=$(canceled_count)
served_after=$(served_200)
# shellcheck disable=SC2046
bench_run nginx-get "$NG_URL" get "$WORK/ids-bench.txt" wrap $(ng_pids)
bench_run tokend-get "$TD_URL" get "$WORK/ids-bench.txt" wrap "$TD_PID"

# Correctness of the cancel run.
CANCELED=$((canceled_after - canceled_before))
OK200=$((${R[tokend-cancel.requests]} - ${R[tokend-cancel.non2xx]}))
INFLIGHT=$((${R[tokend-cancel.issued]} - ${R[tokend-cancel.requests]}))
EVENTS=$(sqlite3 "$STORE/tokend.db" "SELECT count(*) FROM token_events WHERE type = 'CANCELED'")
BATCH=$(awk -v j=$((jobs1 - jobs0)) -v c=$((commits1 - commits0)) 'BEGIN {printf "%.1f", c ? j / c : 0}')
SERVED=$((served_after - served_before))
# Exact: every cancel tokend answered 200 is in the file, and nothing else is.
# Bounded: wrk saw every one of its 200s land; of the requests still in flight
# when wrk closed its sockets, those tokend had read were committed, the rest
# were discarded with the connection (a reset drops unread bytes).
check="FAIL"
if [[ ${R[tokend-cancel.non2xx]} == 0 && $CANCELED -eq $SERVED && $CANCELED -ge $OK200 &&
  $CANCELED -le $((OK200 + INFLIGHT)) ]]; then
  check="PASS"
fi
EXHAUSTED=${R[tokend-cancel.exhausted_threads]}

# ---- 5. profile ----
# The profile's load: LOAD URL SECONDS MODE IDS WRAP (lib.sh's profile_perf and
# profile_callgrind give URL and SECONDS).
profile_load() {
  wrk "-t$THREADS" "-c$CONNS" "-d${2}s" --latency -s "$ROOT/bench/tokens.lua" "$1" -- \
    "$3" "$4" "$TPP_KEY" "$THREADS" "$5"
}

case $PROFILE in
perf)
  log "profiling with perf record (cancel on spare tokens, then GET), ${PROFILE_SECONDS}s each"
  profile_perf cancel profile_load cancel "$WORK/ids-profile.txt" once
  profile_perf get profile_load get "$WORK/ids-bench.txt" wrap
  ;;
callgrind)
  log "profiling with valgrind --tool=callgrind (cancel on spare tokens, then GET)"
  stop_pid "$TD_PID" TERM
  profile_callgrind cancel "$STORE/tokend.db" profile_load cancel "$WORK/ids-profile.txt" once
  profile_callgrind get "$STORE/tokend.db" profile_load get "$WORK/ids-bench.txt" wrap
  ;;
*) log "no profiler: skipping the profile" ;;
esac
if kill -0 "$TD_PID" 2>/dev/null; then stop_pid "$TD_PID" TERM; fi
stop_pid "$NG_PID" QUIT

# ---- 6. memory with RSS_TOKENS tokens ----
log "growing the store copy to $RSS_TOKENS tokens (SQL, one transaction)"
RSS_DB="$WORK/rss/tokend.db"
n0=$(sqlite3 "$RSS_DB" "SELECT count(*) FROM tokens")
maxrow=$(sqlite3 "$RSS_DB" "SELECT max(rowid) FROM tokens")
copies=$(((RSS_TOKENS - n0 + n0 - 1) / n0))
gen_t0=$(date +%s.%N)
if ((RSS_TOKENS > n0)); then
  # Copy k of token T gets id "<kind>:<T's middle part>:-<7 digits>": '-' is
  # never in a generated id (base58), and the digits (k-1)*maxrow+rowid are
  # unique, so every new id is unique. The id inside the JSON changes with it.
  sqlite3 "$RSS_DB" <<EOF
PRAGMA journal_mode=DELETE;
PRAGMA synchronous=OFF;
PRAGMA cache_size=-524288;
BEGIN;
WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < $copies)
INSERT INTO tokens (id, kind, state, from_id, to_id, issuer_id, ref_id, acting_as_ref_id, token_request_id,
                    replaced_by, canceled_by, created_ms, expires_ms, seq, json, payload_canonical,
                    accounts_src, accounts_dst)
SELECT nid, kind, state, from_id, to_id, issuer_id, ref_id, acting_as_ref_id, token_request_id, replaced_by,
       canceled_by, created_ms, expires_ms, seq, replace(json, '"id":"' || id || '"', '"id":"' || nid || '"'),
       payload_canonical, accounts_src, accounts_dst
FROM (SELECT t.*,
             substr(t.id, 1, 3 + instr(substr(t.id, 4), ':')) || '-' || printf('%07d', (k.n - 1) * $maxrow + t.rowid) AS nid
      FROM k, tokens t)
LIMIT $((RSS_TOKENS - n0));
COMMIT;
EOF
fi
RSS_COUNT=$(sqlite3 "$RSS_DB" "SELECT count(*) FROM tokens")
gen_s=$(awk -v a="$gen_t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
RSS_DB_MB=$(du -m "$RSS_DB" | cut -f1)
log "store has $RSS_COUNT tokens (${RSS_DB_MB} MB), made in ${gen_s}s"
sample=$((RSS_COUNT < 100000 ? RSS_COUNT : 100000))
sqlite3 "$RSS_DB" "SELECT id FROM tokens ORDER BY random() LIMIT $sample" >"$WORK/ids-rss.txt"
start_tokend rss "$WORK/rss"
RSS_START=$(status_kb "$TD_PID" VmRSS)
bench_run tokend-get-1m "$TD_URL" get "$WORK/ids-rss.txt" wrap "$TD_PID"
RSS_KB=$(status_kb "$TD_PID" VmRSS)
HWM_KB=$(status_kb "$TD_PID" VmHWM)
stop_pid "$TD_PID" TERM
log "tokend with $RSS_COUNT tokens: VmRSS $RSS_KB kB after GET load (was $RSS_START kB at start), VmHWM $HWM_KB kB"

# ---- report ----
ratio_cancel=$(pct "${R[tokend-cancel.rps]}" "${R[nginx-put.rps]}")
ratio_get=$(pct "${R[tokend-get.rps]}" "${R[nginx-get.rps]}")
row() { # label name ratio
  printf '| %s | %.0f | %s | %s | %s | %s | %s | %s / %s / %s |\n' "$1" "${R[$2.rps]}" "$(ms "${R[$2.p50_us]}")" \
    "$(ms "${R[$2.p99_us]}")" "$3" "${R[$2.cpu_us]}" "${R[$2.non2xx]}" "${R[$2.wrk_cpu_pct]}" \
    "${R[$2.other_pct]}" "${R[$2.steal_pct]}"
}
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
{
  echo "# tokend benchmark $STAMP"
  echo
  echo "Machine: $(nproc) cores, $CPU_MODEL, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo);" \
    "kernel $(uname -r); load average before the report: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "tokend $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (Release), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)," \
    "$(nginx -v 2>&1 | sed 's/^nginx version: //'), SQLite $(sqlite3 --version | cut -d' ' -f1)."
  echo
  echo "Command for every run: \`${WRK_CMD[*]/#$ROOT\//} URL -- MODE IDS API_KEY $THREADS once|wrap\`"
  echo "(\"once\": tokend cancel, each request a token never cancelled; \"wrap\": the others)."
  echo "Seeded $SEED_TOTAL tokens through the API in ${seed_s}s ($N_TOKENS for the runs, 1 to capture bodies," \
    "$PROFILE_TOKENS for the profile). Bodies: cancel $CANCEL_BYTES B, GET $GET_BYTES B."
  echo
  echo "| run | req/s | p50 ms | p99 ms | tokend/nginx | server CPU µs/req | non-2xx | % of the machine: wrk / other / steal |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  row "nginx PUT /tokens/{id}/cancel (static ${CANCEL_BYTES} B)" nginx-put "—"
  row "tokend PUT /tokens/{id}/cancel (durable)" tokend-cancel "${ratio_cancel} %"
  row "nginx GET /tokens/{id} (static ${GET_BYTES} B)" nginx-get "—"
  row "tokend GET /tokens/{id}" tokend-get "${ratio_get} %"
  row "tokend GET, store of $RSS_COUNT tokens" tokend-get-1m "—"
  echo
  echo "Cancel correctness ($check): $CANCELED tokens went to CANCELED (state = 1) in the SQLite file during" \
    "the run; tokend answered $SERVED cancels 200 (its request log); wrk counted $OK200 answers 200," \
    "non-2xx ${R[tokend-cancel.non2xx]}, and $INFLIGHT requests in flight when it stopped, of which" \
    "$((CANCELED - OK200)) reached tokend and were committed. CANCELED events in the file: $EVENTS" \
    "(the run's, plus 1 for the body capture)."
  echo
  echo "Server CPU by thread (% of one core; tokend's unnamed thread that works is the writer):"
  for n in nginx-put tokend-cancel nginx-get tokend-get tokend-get-1m; do echo "- $n: ${R[$n.threads]}"; done
  echo
  echo "Group commit during the cancel run: $((commits1 - commits0)) commits, $BATCH cancels per commit on average."
  if [[ $EXHAUSTED != 0 ]]; then
    echo
    echo "WARNING: $EXHAUSTED wrk thread(s) ran out of unused tokens during the cancel run, so its req/s is too low:"
    echo "raise BENCH_TOKENS or shorten BENCH_DURATION."
  fi
  echo
  echo "Memory: tokend serving a store of $RSS_COUNT tokens (${RSS_DB_MB} MB file, grown in ${gen_s}s):" \
    "VmRSS $((RSS_KB / 1024)) MB after the GET run (at start $((RSS_START / 1024)) MB), VmHWM $((HWM_KB / 1024)) MB."
  echo
  echo "| target | measured | |"
  echo "|---|---:|---|"
  echo "| durable cancel >= 15 % of nginx (stretch 25 %) | ${ratio_cancel} % | $(verdict "$ratio_cancel" '>=' 15) / stretch $(verdict "$ratio_cancel" '>=' 25) |"
  echo "| GET >= 50 % of nginx (stretch 70 %) | ${ratio_get} % | $(verdict "$ratio_get" '>=' 50) / stretch $(verdict "$ratio_get" '>=' 70) |"
  echo "| cancel p99 <= 20 ms at $CONNS connections | $(ms "${R[tokend-cancel.p99_us]}") ms | $(verdict "${R[tokend-cancel.p99_us]}" '<=' 20000) |"
  echo "| GET p99 <= 20 ms at $CONNS connections | $(ms "${R[tokend-get.p99_us]}") ms | $(verdict "${R[tokend-get.p99_us]}" '<=' 20000) |"
  echo "| RSS <= 100 MB with $RSS_COUNT tokens | $((HWM_KB / 1024)) MB (VmHWM) | $(verdict "$HWM_KB" '<=' 102400) |"
  echo
  echo "Profile ($PROFILE): profile-cancel-*.txt and profile-get-*.txt beside this file."
} >"$RESULTS/summary.md"
cat "$RESULTS/summary.md"
if [[ $PROFILE == perf || $PROFILE == callgrind ]]; then
  for p in cancel get; do
    echo
    echo "== $p profile: inclusive (children), named frames =="
    head -40 "$RESULTS/profile-$p-inclusive-named.txt" 2>/dev/null | cut -c1-90 || true
    echo "== $p profile: self =="
    grep -E '^ *[0-9][0-9,.]*%? ' "$RESULTS/profile-$p-self.txt" 2>/dev/null | head -15 | cut -c1-100 || true
  done
fi
log "results in $RESULTS"
[[ $EXHAUSTED == 0 ]] || die "the cancel run used up its tokens: its req/s is too low (see above)"
[[ $check == PASS ]] || die "the cancel correctness check failed (see above)"
