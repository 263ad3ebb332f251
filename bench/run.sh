#!/usr/bin/env bash
# bench/run.sh — how fast tokend cancels and serves tokens, against nginx as
# the ceiling of what an HTTP server on this machine can do; with --store
# postgres, in the same run, SQLite against tokend on PostgreSQL with one node
# and with two (issue 11). Not part of CI.
#
#   bench/run.sh [--quick] [--store sqlite|postgres]
#   bench/run.sh --help
#
# Duration: about 2 minutes for SQLite, 3 more with --store postgres, plus any
# wait for a quiet machine; --quick (50,000 tokens, 2 s runs, 200,000 tokens
# for the memory step) is a smoke test of the harness, not numbers to quote.
# Results: bench/results/<timestamp>/ (git-ignored): summary.md, the wrk
# outputs, the tokend/nginx/PostgreSQL logs, the profile reports. It exits
# non-zero if a correctness check fails or a cancel run used up its tokens.
#
# What it measures, in order:
#  1. Builds a Release tokend (build-rel/; with --store postgres tokenctl too),
#     starts it on a free loopback port with a fresh temporary SQLite store and
#     --rate-limit 0 (the default synchronous=FULL: every 200 to a cancel is on
#     disk).
#  2. Seeds tokens through the real API with bench/seed.c (libcurl multi, 64
#     flows in flight: token request -> authorization -> consent approve) and
#     keeps a copy of the store for step 6. With --store postgres: a throwaway
#     PostgreSQL cluster (scripts/pg.sh: WORK/pg, a free loopback port, fsync
#     and synchronous_commit on, track_wal_io_timing on), and the seeded store,
#     before any cancel, copied into a template database (tokenctl store copy,
#     VACUUM ANALYZE).
#  3. Cancels one spare token and GETs it to capture real response bodies, then
#     starts nginx (worker_processes 2, access_log off, its own pid file, error
#     log and temp dirs) on another free port, serving those two bodies as
#     static files: PUT /tokens/{id}/cancel answers 200 with the cancel body
#     (error_page 405 =200), GET /tokens/{id} the token body.
#  4. Runs one wrk command, `wrk -t2 -c64 -d4s --latency -s bench/tokens.lua URL
#     -- cancel|get IDS KEY 2 once|wrap`, against every server: PUT .../cancel
#     on nginx and on tokend (each request a token never cancelled before:
#     "once"), then GET on nginx and on tokend. Per run: req/s, p50, p99, the
#     ratio to nginx, and server CPU µs per request (utime+stime of every
#     thread, /proc, over the requests wrk counted; nginx: master and
#     workers). The cancel check (PASS/FAIL): wrk saw no non-2xx; the tokens
#     that went to CANCELED in the store (tokens.state = 1) number exactly the
#     cancels tokend answered 200 (its request log) and the new CANCELED
#     events; and that number is at least wrk's 200s and at most wrk's 200s
#     plus the requests wrk had in flight when it stopped (it closes those
#     sockets; tokend commits the ones it had already read). Group commit:
#     write jobs and commits (/metrics).
#  5. Profiles tokend during a short cancel run (on spare tokens) and a short
#     GET run: perf record --call-graph dwarf if `perf stat -e instructions
#     true` works here, else valgrind --tool=callgrind.
#  5b. With --store postgres, for one node and then two (pg1, pg2): a database
#     copied from the template; per run a CHECKPOINT, the nodes started on it
#     (the SQLite store's master and admin keys, --rate-limit 0, TD_PG_WRITERS
#     writers each, 4 by default), the same wrk command on the same ids, the
#     nodes stopped: the cancel run with the same check (counted with psql),
#     then the GET run. Two nodes: wrk's thread k connects to node k mod 2
#     (bench/nodes.lua, WRK_NODES), 32 connections each. Per run, besides the
#     columns above: the CPU µs per request of all nodes and of every process
#     of the cluster (the postmaster, its live children and those it reaped),
#     requests per tokend commit and per PostgreSQL write transaction (the
#     COMMIT records pg_waldump counts in the run's WAL), WAL flushes and their
#     mean time (pg_stat_wal), and the bounds of the machine (lib.sh
#     pg_bounds). Profiles, with perf: one node on pg1's database (perf record
#     --call-graph dwarf, 3 s of cancels on the spare tokens), then the whole
#     machine while one node cancels on pg2's (lib.sh profile_system: perf
#     record -a, the cluster's sendto/recvfrom/fdatasync, pg_stat_activity
#     every 50 ms). BENCH_PG_SWEEP="1 8 4:8" adds a one-node cancel run per
#     entry WRITERS[:THREADS] (TD_PG_WRITERS and tokend --threads), each on
#     its own copy. The targets of issue 11 are reported, not enforced: cancel
#     on one node >= 0.8 x SQLite's rate, >= 8 requests per PostgreSQL
#     transaction at 64 connections, cancel p99 <= 20 ms.
#  6. Grows the copied SQLite store to 1,000,000 tokens with SQL in one
#     transaction (copies of the seeded tokens with new unique ids), starts
#     tokend on it, runs GET load over a random sample of ids and reads
#     VmRSS/VmHWM.
#
# A shared machine: before each run it waits (up to BENCH_QUIET_WAIT s, 120)
# until other processes use < 15 % of the CPUs, and it reports for each run
# how much of the machine wrk, other processes and the hypervisor (steal)
# took. Numbers with "other" above a few % are disturbed: run again.
#
# Settings (environment): BENCH_TOKENS (100000), BENCH_DURATION (4s: wrk -d,
# the same for every run; see below), BENCH_THREADS (2: wrk threads and
# tokend --threads), BENCH_CONNECTIONS (64), BENCH_RSS_TOKENS (1000000),
# BENCH_PROFILE (auto|perf|callgrind|none), BENCH_PROFILE_TOKENS (20000),
# BENCH_SEED_CONCURRENCY (64), BENCH_QUIET_WAIT (120), BENCH_KEEP (0: 1 keeps
# the temp dir); with --store postgres also BENCH_PG_SWEEP (empty; see 5b)
# and the environment's TD_PG_WRITERS (the nodes' writers, 2 if unset).
#
# Why 4 s and not 20 s: a cancel run may not repeat a token, and tokend
# cancels 10,000-15,000 tokens/s here, so 100,000 tokens last 7-10 s. A
# cancel thread that runs out stops (tokens.lua), which would make its req/s
# too low: run.sh then says so and fails; raise BENCH_TOKENS (seeding costs
# about 1 s per 5,000) or shorten BENCH_DURATION.
#
# Every process it starts it stops by pid, the PostgreSQL cluster too (also on
# failure); the temp dir is removed at the end. The shell functions it shares
# with bench/network.sh and bench/notify.sh are in bench/lib.sh.
#
# Needs: cmake, gcc, libcurl dev files, wrk, nginx, sqlite3, curl, python3,
# perf or valgrind, and for --store postgres PostgreSQL 15 (server, psql,
# pgbench, pg_waldump) and libpq — `scripts/deps.sh --bench` installs them;
# run.sh calls it when one is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh" # log, die, PIDS/cleanup, CPU accounting, tokend, nginx, bench_measure, profiles, PostgreSQL
bench_args "$@"             # QUICK, STORE_MODE

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
read -r -a PG_SWEEP <<<"${BENCH_PG_SWEEP:-}"
SWEEP_RUNS=() # the sweep's run names, pgw<WRITERS>t<THREADS>-cancel
for c in ${PG_SWEEP[@]+"${PG_SWEEP[@]}"}; do
  [[ $c =~ ^[0-9]+(:[0-9]+)?$ ]] || { echo "BENCH_PG_SWEEP: '$c' is not WRITERS or WRITERS:THREADS" >&2 && exit 2; }
  if [[ $c == *:* ]]; then SWEEP_RUNS+=("pgw${c%%:*}t${c#*:}-cancel"); else SWEEP_RUNS+=("pgw${c}t$THREADS-cancel"); fi
done

bench_tools
bench_dirs tokend-bench

# ---- 1. build ----
if [[ $STORE_MODE == postgres ]]; then build_tokend tokenctl; else build_tokend; fi
# shellcheck disable=SC2046 # pkg-config's flags are meant to split
gcc -O2 -Wall -Wextra -o "$WORK/seed" "$ROOT/bench/seed.c" $(pkg-config --cflags --libs libcurl) ||
  die "cannot build bench/seed.c"

# ---- 2. seed ----
STORE="$WORK/store"
mkdir -p "$STORE"
DB="$STORE/tokend.db" # sql's SQLite file
start_tokend main "$STORE"
log "tokend pid $TD_PID on $TD_URL, store $DB"
SEED_TOTAL=$((N_TOKENS + 1 + PROFILE_TOKENS))
log "seeding $SEED_TOTAL tokens through the API ($SEED_CONC flows in flight)"
seed_t0=$EPOCHREALTIME
"$WORK/seed" "$TD_URL" "$(cat "$STORE/admin.key")" "$SEED_TOTAL" "$SEED_CONC" "$WORK" 2>"$RESULTS/seed.log" ||
  die "seeding failed: $(tail -3 "$RESULTS/seed.log")"
seed_s=$(awk -v a="$seed_t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
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

# A copy of the freshly seeded store (all tokens ACTIVE) for the memory step;
# with --store postgres, the template of every PostgreSQL configuration.
mkdir -p "$WORK/rss"
sqlite3 "$DB" "VACUUM INTO '$WORK/rss/tokend.db'"
cp "$STORE/master.key" "$STORE/admin.key" "$WORK/rss/"
if [[ $STORE_MODE == postgres ]]; then pg_setup "$WORK/rss/tokend.db"; fi

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
nginx_start <<EON
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
EON

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
WRK_ENV=() # (env WRK_NODES=...) when several nodes share the load (pg_measured)
# bench_run NAME URL MODE IDS WRAP PID...
bench_run() {
  local name=$1 url=$2 mode=$3 ids=$4 wrap=$5
  shift 5
  bench_measure "$name" "$*" ${WRK_ENV[@]+"${WRK_ENV[@]}"} "${WRK_CMD[@]}" "$url" -- "$mode" "$ids" "$TPP_KEY" \
    "$THREADS" "$wrap"
}

# The store being checked: sql reads DB (SQLite) or SQL_URL (PostgreSQL).
canceled_count() { sql "SELECT count(*) FROM tokens WHERE state = 1"; }
canceled_events() { sql "SELECT count(*) FROM token_events WHERE type = 'CANCELED'"; }

# measure_cancel NAME: the cancel run on ids-bench against the running nodes
# (NODE_PIDS, NODE_URLS, NODE_LOGS; wrk to TD_URL, or WRK_ENV's nodes), then
# its check (step 4): R[NAME.check] and the counts it compared; the group
# commit (lib.sh group_commit).
measure_cancel() {
  local name=$1 c0 e0 s0 g0
  c0=$(canceled_count)
  e0=$(canceled_events)
  s0=$(served_200 "/tokens/{tokenId}/cancel")
  g0=$(store_commits)
  bench_run "$name" "$TD_URL" cancel "$WORK/ids-bench.txt" once "${NODE_PIDS[@]}"
  sleep 0.5 # let the cancels wrk stopped waiting for reach their commit
  group_commit "$name" "$g0"
  R[$name.canceled]=$(($(canceled_count) - c0))
  R[$name.events]=$(($(canceled_events) - e0))
  R[$name.served]=$(($(served_200 "/tokens/{tokenId}/cancel") - s0))
  row_check "$name" "${R[$name.canceled]}" "${R[$name.served]}" "${R[$name.events]}"
  log "$name: ${R[$name.check]}: ${R[$name.canceled]} tokens CANCELED (events ${R[$name.events]}), ${R[$name.served]}" \
    "answered 200 by tokend, wrk ${R[$name.ok200]} 200s + ${R[$name.inflight]} in flight;" \
    "${R[$name.commits]} commits, ${R[$name.batch]} jobs per commit"
}
# measure_get NAME: the GET run against the running nodes.
measure_get() { bench_run "$1" "$TD_URL" get "$WORK/ids-bench.txt" wrap "${NODE_PIDS[@]}"; }

log "runs: ${WRK_CMD[*]} URL -- MODE IDS KEY $THREADS once|wrap"
# shellcheck disable=SC2046 # one argument per pid
bench_run nginx-put "$NG_URL" cancel "$WORK/ids-bench.txt" wrap $(ng_pids)
measure_cancel tokend-cancel
# shellcheck disable=SC2046
bench_run nginx-get "$NG_URL" get "$WORK/ids-bench.txt" wrap $(ng_pids)
measure_get tokend-get

# ---- 5. profile ----
# The profile's load: LOAD URL SECONDS MODE IDS WRAP (lib.sh's profile_perf,
# profile_callgrind and profile_system give URL and SECONDS).
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
  profile_callgrind cancel "$DB" profile_load cancel "$WORK/ids-profile.txt" once
  profile_callgrind get "$DB" profile_load get "$WORK/ids-bench.txt" wrap
  ;;
*) log "no profiler: skipping the profile" ;;
esac
if kill -0 "$TD_PID" 2>/dev/null; then stop_pid "$TD_PID" TERM; fi
stop_pid "$NG_PID" QUIT

# ---- 5b. PostgreSQL (--store postgres): one node, two nodes, the profiles ----
# pg_configuration NAME N (called by lib.sh pg_runs): N nodes on a fresh copy
# of the seeded store; the cancel run with its check, then the GET run, each
# measured by pg_measured (nodes started for the run and stopped after it).
pg_configuration() {
  pg_db_new "td_$1"
  pg_measured "$1-cancel" "$2" measure_cancel
  pg_measured "$1-get" "$2" measure_get
}

# W and T back from a sweep run's name.
sweep_w() { local x=${1#pgw}; echo "${x%%t*}"; }
sweep_t() { local x=${1#*t}; echo "${x%-cancel}"; }

if [[ $STORE_MODE == postgres ]]; then
  pg_runs cancel profile_load cancel "$WORK/ids-profile.txt" once
  # BENCH_PG_SWEEP: one node, the cancel run only, per WRITERS[:THREADS]
  # (TD_PG_WRITERS, and tokend --threads: the HTTP threads, which do a
  # cancel's reads and signature before its write job).
  MEASURE_PG=1
  for n in ${SWEEP_RUNS[@]+"${SWEEP_RUNS[@]}"}; do
    NODE_ENV=("TD_PG_WRITERS=$(sweep_w "$n")")
    NODE_THREADS=$(sweep_t "$n")
    pg_db_new "td_${n%-cancel}"
    pg_measured "$n" 1 measure_cancel
    "$PSQL" -X -q "$PG_BASE_URL" -c "DROP DATABASE $PG_DB"
  done
  NODE_ENV=()
  NODE_THREADS=
  MEASURE_PG=0
  SQL_URL=
fi

# ---- 6. memory with RSS_TOKENS tokens ----
log "growing the store copy to $RSS_TOKENS tokens (SQL, one transaction)"
RSS_DB="$WORK/rss/tokend.db"
n0=$(sqlite3 "$RSS_DB" "SELECT count(*) FROM tokens")
maxrow=$(sqlite3 "$RSS_DB" "SELECT max(rowid) FROM tokens")
copies=$(((RSS_TOKENS - n0 + n0 - 1) / n0))
gen_t0=$EPOCHREALTIME
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
gen_s=$(awk -v a="$gen_t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
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
# pg_summary: the PostgreSQL part of summary.md (--store postgres).
pg_summary() {
  local n one=pg1-cancel two=pg2-cancel ratio1
  pg_summary_intro "Two nodes: the same wrk command, its thread k connected to node k mod 2 (bench/nodes.lua," \
    "WRK_NODES): $((CONNS / THREADS)) connections per node."
  echo
  pg_table_head
  pg_table_group cancel nginx-put tokend-cancel "nginx PUT (static)" "SQLite: cancel (durable)"
  for n in ${SWEEP_RUNS[@]+"${SWEEP_RUNS[@]}"}; do
    pg_table_row "PostgreSQL, 1 node, TD_PG_WRITERS=$(sweep_w "$n"), --threads $(sweep_t "$n"): cancel" "$n" nginx-put tokend-cancel
  done
  pg_table_group get nginx-get tokend-get "nginx GET (static)" "SQLite: GET"
  echo
  echo "Cancel checks on PostgreSQL (as SQLite's: tokens CANCELED in the database = cancels the nodes answered 200" \
    "= new CANCELED events, within wrk's 200s and its in-flight requests; no non-2xx):"
  for n in pg1-cancel pg2-cancel ${SWEEP_RUNS[@]+"${SWEEP_RUNS[@]}"}; do
    echo "- $n (${R[$n.check]}): ${R[$n.canceled]} CANCELED, ${R[$n.events]} events, ${R[$n.served]} answered 200," \
      "wrk ${R[$n.ok200]} 200s + ${R[$n.inflight]} in flight, exhausted threads ${R[$n.exhausted_threads]}."
  done
  echo
  echo "Write transactions and WAL per cancel run:"
  pg_write_details request pg1-cancel pg2-cancel ${SWEEP_RUNS[@]+"${SWEEP_RUNS[@]}"}
  echo
  # One round trip: the UPDATE with its event in one statement, the savepoint
  # bookkeeping sent in the same pipeline (the COMMIT's is shared by the batch).
  echo "Bounds (lib.sh pg_bounds; a cancel job waits for 1 round trip: its UPDATE and event, savepoints pipelined with it):"
  echo "- $(pg_bounds pg1-cancel "$CONNS" "${TD_PG_WRITERS:-2}" 1)"
  echo "- $(pg_bounds pg2-cancel "$CONNS" $((2 * ${TD_PG_WRITERS:-2})) 1)"
  for n in ${SWEEP_RUNS[@]+"${SWEEP_RUNS[@]}"}; do echo "- $(pg_bounds "$n" "$CONNS" "$(sweep_w "$n")" 1)"; done
  pg_profile_note cancel
  ratio1=$(pct "${R[$one.rps]}" "${R[tokend-cancel.rps]}")
  echo
  echo "| target (issue 11; reported, not enforced) | measured | |"
  echo "|---|---:|---|"
  echo "| durable cancel, one PostgreSQL node >= 0.8 × SQLite (same run) | ${ratio1} % | $(verdict "$ratio1" '>=' 80) |"
  echo "| >= 8 requests per PostgreSQL transaction at $CONNS connections, one node | ${R[$one.req_per_xact]} (per tokend commit: ${R[$one.req_per_commit]}) | $(verdict "${R[$one.req_per_xact]}" '>=' 8) |"
  echo "| cancel p99 <= 20 ms, one node | $(ms "${R[$one.p99_us]}") ms | $(verdict "${R[$one.p99_us]}" '<=' 20000) |"
  echo "| cancel p99 <= 20 ms, two nodes | $(ms "${R[$two.p99_us]}") ms | $(verdict "${R[$two.p99_us]}" '<=' 20000) |"
}

ratio_cancel=$(pct "${R[tokend-cancel.rps]}" "${R[nginx-put.rps]}")
ratio_get=$(pct "${R[tokend-get.rps]}" "${R[nginx-get.rps]}")
CANCELED=${R[tokend-cancel.canceled]}
OK200=${R[tokend-cancel.ok200]}
{
  echo "# tokend benchmark $STAMP"
  echo
  about_machine
  echo
  echo "Command for every run: \`${WRK_CMD[*]/#$ROOT\//} URL -- MODE IDS API_KEY $THREADS once|wrap\`"
  echo "(\"once\": tokend cancel, each request a token never cancelled; \"wrap\": the others)."
  echo "Seeded $SEED_TOTAL tokens through the API in ${seed_s}s ($N_TOKENS for the runs, 1 to capture bodies," \
    "$PROFILE_TOKENS for the profile). Bodies: cancel $CANCEL_BYTES B, GET $GET_BYTES B."
  echo
  wrk_table_head
  wrk_row "nginx PUT /tokens/{id}/cancel (static ${CANCEL_BYTES} B)" nginx-put "—"
  wrk_row "tokend PUT /tokens/{id}/cancel (durable)" tokend-cancel "${ratio_cancel} %"
  wrk_row "nginx GET /tokens/{id} (static ${GET_BYTES} B)" nginx-get "—"
  wrk_row "tokend GET /tokens/{id}" tokend-get "${ratio_get} %"
  wrk_row "tokend GET, store of $RSS_COUNT tokens" tokend-get-1m "—"
  echo
  echo "Cancel correctness (${R[tokend-cancel.check]}): $CANCELED tokens went to CANCELED (state = 1) in the SQLite" \
    "file during the run; tokend answered ${R[tokend-cancel.served]} cancels 200 (its request log); wrk counted" \
    "$OK200 answers 200, non-2xx ${R[tokend-cancel.non2xx]}, and ${R[tokend-cancel.inflight]} requests in flight" \
    "when it stopped, of which $((CANCELED - OK200)) reached tokend and were committed. New CANCELED events in the" \
    "file: ${R[tokend-cancel.events]}."
  echo
  echo "Server CPU by thread (% of one core):"
  for n in nginx-put tokend-cancel nginx-get tokend-get tokend-get-1m; do echo "- $n: ${R[$n.threads]}"; done
  echo
  echo "Group commit during the cancel run: ${R[tokend-cancel.commits]} commits," \
    "${R[tokend-cancel.batch]} cancels per commit on average."
  if [[ ${R[tokend-cancel.exhausted_threads]} != 0 ]]; then
    echo
    echo "WARNING: ${R[tokend-cancel.exhausted_threads]} wrk thread(s) ran out of unused tokens during the cancel" \
      "run, so its req/s is too low: raise BENCH_TOKENS or shorten BENCH_DURATION."
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
  if [[ $STORE_MODE == postgres ]]; then pg_summary; fi
} >"$RESULTS/summary.md"
cat "$RESULTS/summary.md"
show_profiles cancel get pg1-cancel pg-cancel
log "results in $RESULTS"
if [[ $STORE_MODE == postgres ]]; then
  check_runs tokend-cancel pg1-cancel pg2-cancel ${SWEEP_RUNS[@]+"${SWEEP_RUNS[@]}"}
else
  check_runs tokend-cancel
fi
