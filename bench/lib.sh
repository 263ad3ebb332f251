# shellcheck shell=bash
# bench/lib.sh — the shell functions the benchmarks share (bench/run.sh,
# bench/network.sh, bench/notify.sh). Sourced, never run: it only defines
# functions and the result table R, and changes no shell option.
#
# What a script sets before using them:
#   ROOT             the repository
#   THREADS          wrk threads and tokend --threads (launch_tokend)
#   KEEP             1 keeps WORK at the end (cleanup)
#   PROFILE          auto|perf|callgrind|none (bench_tools resolves auto)
#   PROFILE_SECONDS  length of a profile run (profile_perf, 3x for callgrind)
#   STORE            the SQLite store's folder (start_tokend): its master.key and
#                    admin.key are every PostgreSQL node's too (pg_runs)
#   TD_EXTRA         (array, optional) more `tokend serve` flags (launch_tokend)
#   SYS_HELPER       (optional) "NAME:PID,...": processes profile_system counts apart
# What the functions set:
#   bench_args       QUICK, STORE_MODE (sqlite|postgres) from the command line
#   bench_tools      PROFILE (resolved), CLK_TCK
#   bench_dirs       STAMP, RESULTS (bench/results/<stamp>), WORK (temp dir), PIDS; the EXIT trap
#   build_tokend     TOKEND (build-rel/tokend, Release), TOKENCTL
#   build_seed_cards WORK/seed_cards
#   start_tokend     TD_PID, TD_PORT, TD_URL, and NODE_PIDS, NODE_URLS, NODE_LOGS (that one node)
#   sql, api         the store being checked (DB, or SQL_URL on PostgreSQL) and tokend's API (TD_URL)
#   nginx_start      NG_PID, NG_URL (NG_PORT is the caller's: its server block listens on it)
#   bench_measure    R[name.field] for one wrk run (measure_begin/measure_end for any other load)
#   group_commit     R[name.commits], R[name.batch], R[name.req_per_commit] (the nodes' /metrics)
#   row_check        R[name.check] (PASS/FAIL) of a run whose every 200 writes one row
#   profile_perf     RESULTS/profile-NAME-*.txt (profile_callgrind: the same under valgrind)
#   about_machine, wrk_table_head/wrk_row, show_profiles, check_runs: the summary, the exit status
# With --store postgres (the PostgreSQL part, at the end of this file):
#   pg_setup         the cluster (PG_DIR, PG_PID, PG_BASE_URL, PSQL, PGPASSFILE exported) and
#                    the database PG_TEMPLATE: a copy of a SQLite store (tokenctl store copy)
#   pg_runs          one node, two nodes (the caller's pg_configuration), the profiles
#   pg_db_new        PG_DB, PG_DB_URL, SQL_URL: a new database copied from PG_TEMPLATE
#   pg_measured      one run on N nodes: R[name.pg_*], requests per PostgreSQL transaction
#   start_nodes      NODE_PIDS, NODE_URLS, NODE_LOGS, NODE_ADDRS, TD_PID/TD_URL (the first node)
#   profile_system   where the machine's time goes (perf -a), the writers' wait states
#   pg_summary_intro, pg_table_head/pg_table_row/pg_table_group, pg_write_details,
#   pg_profile_note, pg_bounds: the summary's PostgreSQL part
#
# Every process a function starts goes into PIDS and is stopped by pid, by
# stop_pid or at exit (cleanup); nothing is killed by name. The PostgreSQL
# cluster is stopped at exit, also on failure, by scripts/pg.sh, which signals
# its postmaster by the PID it recorded.

declare -A R # R[run.field]: what the measurements read for each run
# shellcheck disable=SC2034 # read by the scripts
WRK_ENV=()    # (env WRK_NODES=...) before a wrk command while several nodes share the load (pg_measured)
# shellcheck disable=SC2034 # read by a LOAD_FN that records results (notify.sh)
PROFILE_RUN=  # the name of the profile being taken (profile_run)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# bench_args "$@": the options every benchmark takes; sets QUICK (0|1) and
# STORE_MODE (sqlite, or postgres: measure SQLite, then PostgreSQL with one
# node and with two, in the same run). -h prints the script's header.
# shellcheck disable=SC2034 # QUICK and STORE_MODE are the caller's
bench_args() {
  QUICK=0
  STORE_MODE=sqlite
  while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --store)
      STORE_MODE=${2:-}
      shift
      ;;
    --store=*) STORE_MODE=${1#--store=} ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) STORE_MODE=bad ;;
    esac
    shift || true
  done
  if [[ $STORE_MODE != sqlite && $STORE_MODE != postgres ]]; then
    echo "usage: bench/$(basename "$0") [--quick] [--store sqlite|postgres]" >&2
    exit 2
  fi
}

# ---- tools ----
# bench_tools: installs what is missing (scripts/deps.sh --bench), resolves
# PROFILE=auto to perf (if `perf stat -e instructions true` works here),
# callgrind or none, and sets CLK_TCK.
bench_tools() {
  local need=(cmake gcc pkg-config wrk nginx sqlite3 curl python3) missing=0 t
  for t in "${need[@]}"; do command -v "$t" >/dev/null || missing=1; done
  pkg-config --exists libcurl 2>/dev/null || missing=1
  if [[ $PROFILE == auto || $PROFILE == perf ]]; then command -v perf >/dev/null || missing=1; fi
  if [[ $PROFILE == callgrind ]]; then command -v valgrind >/dev/null || missing=1; fi
  if [[ $STORE_MODE == postgres ]]; then
    [[ -x /usr/lib/postgresql/15/bin/postgres || -n ${PG_BINDIR:-} ]] || missing=1
    pkg-config --exists libpq 2>/dev/null || missing=1
  fi
  if ((missing)); then
    log "installing what is missing: scripts/deps.sh --bench"
    "$ROOT/scripts/deps.sh" --bench
  fi
  if [[ $PROFILE == auto ]]; then
    if perf stat -e instructions true >/dev/null 2>&1; then
      PROFILE=perf
    elif command -v valgrind >/dev/null; then
      PROFILE=callgrind
    else
      PROFILE=none
    fi
  fi
  CLK_TCK=$(getconf CLK_TCK)
}

# ---- work dirs and cleanup ----
# bench_dirs [TEMP_PREFIX]: the results folder, a temp dir, and the EXIT trap
# that stops what we started and removes the temp dir (BENCH_KEEP=1 keeps it).
bench_dirs() {
  STAMP=$(date +%Y%m%d-%H%M%S)
  RESULTS="$ROOT/bench/results/$STAMP"
  mkdir -p "$RESULTS"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/${1:-tokend-bench}.XXXXXX")
  PIDS=() # every process we started and have not stopped yet
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

cleanup() {
  local rc=$? p
  ((rc == 0)) || log "exiting with status $rc (a command failed: see above)"
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    wait "$p" 2>/dev/null || true
  done
  if [[ -n ${PG_DIR:-} ]]; then # after the tokend nodes, its clients
    cp "$PG_DIR/postgres.log" "$RESULTS/postgres.log" 2>/dev/null || true
    "$ROOT/scripts/pg.sh" stop "$PG_DIR" || log "could not stop the PostgreSQL cluster in $PG_DIR"
  fi
  # shellcheck disable=SC2153 # KEEP is the caller's setting
  if ((KEEP)); then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}

forget_pid() { # pid
  local keep=() p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

stop_pid() { # pid [signal]: stops a process we started, and waits for it
  kill "-${2:-TERM}" "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_healthz URL PID WHAT LOG [TENTHS]: waits (up to TENTHS tenths of a
# second, 150) until URL/healthz answers; dies if PID exits first.
wait_healthz() {
  local i
  for ((i = 0; i < ${5:-150}; i++)); do
    curl -sf "$1/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited at start: $(tail -3 "$4")"
    sleep 0.1
  done
  die "$3 did not answer $1/healthz"
}

# ---- CPU accounting ----
# "busy steal idle" ticks of the whole machine so far (/proc/stat).
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $9, $5 + $6}' /proc/stat; }

# CHILD_TICKS = CPU ticks used by this shell's finished children (bash
# `times`, 2nd line). Call it plainly, never in $(...): a subshell's
# children start from zero.
child_ticks() {
  times >"$WORK/times"
  CHILD_TICKS=$(awk -v hz="$CLK_TCK" 'NR == 2 {
      n = split($1 " " $2, a, " "); t = 0
      for (i = 1; i <= n; i++) { split(a[i], ms, /[ms]/); t += ms[1] * 60 + ms[2] }
      printf "%d", t * hz }' "$WORK/times")
}

# Waits (up to BENCH_QUIET_WAIT s, default 120) until other processes use
# less than 15 % of the machine: numbers taken while a neighbour compiles or
# fuzzes on the same 2 cores say little. Our servers are idle meanwhile.
wait_quiet() {
  local waited=0 limit=${BENCH_QUIET_WAIT:-120} a b busy
  while :; do
    read -ra a < <(machine_ticks)
    sleep 1
    read -ra b < <(machine_ticks)
    busy=$(awk -v d=$((b[0] - a[0])) -v i=$((b[2] - a[2])) 'BEGIN {printf "%d", d + i ? 100 * d / (d + i) : 0}')
    ((busy < 15)) && return 0
    if ((waited == 0)); then log "the machine is ${busy} % busy with other work: waiting for it to calm down"; fi
    waited=$((waited + 1))
    if ((waited >= limit)); then
      log "still ${busy} % busy after ${limit}s: measuring anyway (see 'other load' in the summary)"
      return 0
    fi
  done
}

status_kb() { # pid field
  awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}

# ---- tokend ----
# shellcheck disable=SC2120 # the targets are optional
build_tokend() { # [more targets] -> TOKEND (and TOKENCTL); the build log in RESULTS/build.log
  log "building Release tokend $* in build-rel/"
  cmake -S "$ROOT" -B "$ROOT/build-rel" -DCMAKE_BUILD_TYPE=Release >"$RESULTS/build.log" 2>&1 ||
    die "cmake configure failed, see $RESULTS/build.log"
  cmake --build "$ROOT/build-rel" -j2 --target tokend "$@" >>"$RESULTS/build.log" 2>&1 ||
    die "build failed, see $RESULTS/build.log"
  TOKEND="$ROOT/build-rel/tokend"
  # shellcheck disable=SC2034 # for the scripts that build tokenctl too
  TOKENCTL="$ROOT/build-rel/tokenctl"
}

# launch_tokend NAME STORE_FLAGS...: one `tokend serve` on a free loopback
# port (with NODE_ENV, an array of VAR=VALUE, in its environment, and
# --threads NODE_THREADS if set, else THREADS); waits for /healthz. Sets
# TD_PID, TD_PORT, TD_URL; its log (one JSON line a request) is
# RESULTS/tokend-NAME.log.
launch_tokend() {
  local name=$1
  shift
  TD_PORT=$(free_port)
  TD_URL="http://127.0.0.1:$TD_PORT"
  env ${NODE_ENV[@]+"${NODE_ENV[@]}"} "$TOKEND" serve --listen "127.0.0.1:$TD_PORT" "$@" --rate-limit 0 --admin-rate-limit 0 --consent-rate-limit 0 --auth-failure-limit 0 --max-connections-per-ip 0 \
    --threads "${NODE_THREADS:-$THREADS}" ${TD_EXTRA[@]+"${TD_EXTRA[@]}"} 2>>"$RESULTS/tokend-$name.log" &
  TD_PID=$!
  PIDS+=("$TD_PID")
  wait_healthz "$TD_URL" "$TD_PID" tokend "$RESULTS/tokend-$name.log"
}

# start_tokend NAME STORE_DIR: tokend on the SQLite store STORE_DIR/tokend.db
# (its master and admin keys are created beside it), and the node list
# (NODE_PIDS, NODE_URLS, NODE_LOGS) of that one node.
start_tokend() {
  launch_tokend "$1" --store "sqlite:$2/tokend.db"
  NODE_PIDS=("$TD_PID")
  NODE_URLS=("$TD_URL")
  NODE_LOGS=("$RESULTS/tokend-$1.log")
}

# build_seed_cards -> WORK/seed_cards (bench/seed_cards.c: POSTs a list of bodies, many in flight)
build_seed_cards() {
  # shellcheck disable=SC2046 # pkg-config's flags are meant to split
  gcc -O2 -Wall -Wextra -o "$WORK/seed_cards" "$ROOT/bench/seed_cards.c" $(pkg-config --cflags --libs libcurl) ||
    die "cannot build bench/seed_cards.c"
}

# sql QUERY: the store being checked: psql on SQL_URL when it is set (a
# PostgreSQL database; the password from PGPASSFILE), else sqlite3 on the
# caller's store file (DB). Both print rows as "a|b|c", no header. Queries
# the scripts write for both engines use only what both understand (no
# group_concat/string_agg, no SQLite-only functions).
sql() {
  if [[ -n ${SQL_URL:-} ]]; then
    "$PSQL" -X -q -At -v ON_ERROR_STOP=1 "$SQL_URL" -c "$1"
  else
    sqlite3 "$DB" "$1"
  fi
}

# api METHOD PATH KEY BODY EXPECTED_STATUS -> the answer body on stdout (tokend at TD_URL)
api() {
  local out code
  out="$WORK/api.out"
  code=$(curl -s -o "$out" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $3" \
    -H 'Content-Type: application/json' --data-binary "$4" "$TD_URL$2") || code=000
  [[ $code == "$5" ]] || die "$1 $2 answered HTTP $code (expected $5): $(head -c 300 "$out")"
  cat "$out"
}

json_field() { # FIELD < JSON
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# nodes_metric_each NAME: a /metrics value of each running node (NODE_URLS),
# space-separated; nodes_metric NAME: their sum.
nodes_metric_each() {
  local u
  for u in "${NODE_URLS[@]}"; do
    curl -sf "$u/metrics" | awk -v n="$1" '$1 == n {v = $2} END {print v + 0}'
  done | paste -sd' '
}
nodes_metric() { nodes_metric_each "$1" | awk '{for (i = 1; i <= NF; i++) s += $i} END {print s + 0}'; }

# store_commits: "write jobs, commits" the running nodes' stores counted so far.
store_commits() {
  echo "$(nodes_metric tokend_store_commit_batch_size_sum) $(nodes_metric tokend_store_commit_batch_size_count)"
}

# group_commit NAME "JOBS0 COMMITS0": since store_commits said JOBS0 COMMITS0,
# R[NAME.jobs], R[NAME.commits], R[NAME.batch] (write jobs per commit) and
# R[NAME.req_per_commit] (R[NAME.requests] per commit).
group_commit() {
  local a b
  read -ra a <<<"$2"
  read -ra b < <(store_commits)
  R[$1.jobs]=$((b[0] - a[0]))
  R[$1.commits]=$((b[1] - a[1]))
  R[$1.batch]=$(awk -v j="${R[$1.jobs]}" -v c="${R[$1.commits]}" 'BEGIN {printf "%.1f", c ? j / c : 0}')
  R[$1.req_per_commit]=$(awk -v r="${R[$1.requests]}" -v c="${R[$1.commits]}" 'BEGIN {printf "%.1f", c ? r / c : 0}')
}

# served_200 ROUTE: the requests the running nodes answered 200 on ROUTE (a
# route template, as tokend logs it), from their request logs.
served_200() {
  cat "${NODE_LOGS[@]}" | grep -c "\"route\":\"$1\",\"status\":200" || true
}

# row_check NAME ROWS SERVED [MUST_EQUAL...]: the check of a wrk run NAME in
# which each 200 writes one row: ROWS new rows in the store, SERVED 200s in the
# nodes' request logs, and the MUST_EQUAL counts (the run's other rows) all
# equal; no non-2xx; ROWS at least wrk's 200s (R[NAME.ok200]) and at most
# those plus the requests wrk had in flight when it stopped (R[NAME.inflight]:
# it closes those sockets; tokend commits the ones it had already read).
# Sets R[NAME.check] to PASS or FAIL.
row_check() {
  local name=$1 rows=$2 x
  shift 2
  R[$name.ok200]=$((R[$name.requests] - R[$name.non2xx]))
  R[$name.inflight]=$((R[$name.issued] - R[$name.requests]))
  R[$name.check]=PASS
  for x in "$@"; do ((x == rows)) || R[$name.check]=FAIL; done
  ((R[$name.non2xx] == 0 && rows >= R[$name.ok200] && rows <= R[$name.ok200] + R[$name.inflight])) ||
    R[$name.check]=FAIL
}

# ---- nginx, the ceiling ----
# nginx_start < SERVER_BLOCK: writes WORK/nginx/nginx.conf (worker_processes 2,
# access_log off, its own pid file, error log and temp dirs; the caller's
# server block, which listens on NG_PORT, is read from stdin), tests it, starts
# nginx in the foreground of a background job and waits for its workers.
# Serves files from WORK/nginx/www (the caller fills it). Sets NG_URL, NG_PID.
nginx_start() {
  local server
  server=$(cat)
  NG_URL="http://127.0.0.1:$NG_PORT"
  mkdir -p "$WORK/nginx/www" "$WORK/nginx/tmp"
  {
    cat <<EOF
# The ceiling: nginx on the same 2 cores, answering with bodies of the sizes tokend sends.
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server_tokens off;
  keepalive_requests 1000000000;
  keepalive_timeout 60s;
  sendfile on;
  open_file_cache max=16 inactive=1h;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  default_type application/json;
EOF
    printf '%s\n}\n' "$server"
  } >"$WORK/nginx/nginx.conf"
  cp "$WORK/nginx/nginx.conf" "$RESULTS/nginx.conf"
  nginx -t -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" >/dev/null 2>&1 ||
    die "nginx config test failed: $(nginx -t -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" 2>&1 | tail -2)"
  nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
  NG_PID=$!
  PIDS+=("$NG_PID")
  for _ in $(seq 50); do
    [[ -n $(pgrep -P "$NG_PID" || true) ]] && curl -s -o /dev/null "$NG_URL/" 2>/dev/null && break
    sleep 0.1
  done
}

ng_pids() { echo "$NG_PID" $(pgrep -P "$NG_PID"); }

# ---- measured runs ----
# bench_measure NAME "PID..." CMD...: waits for a quiet machine, runs CMD (a
# wrk command whose script prints one "BENCH key=value ..." line) with its
# output in RESULTS/wrk-NAME.txt, sets R[NAME.key] for every key of that line
# and, over the requests wrk counted, what measure_end measures: the PIDs are
# the server's, wrk is the client.
bench_measure() {
  local name=$1 pids=$2 wpid st tasks line kv
  shift 2
  wait_quiet
  "$@" >"$RESULTS/wrk-$name.txt" 2>&1 &
  wpid=$!
  PIDS+=("$wpid")
  # The window starts when the load does: wrk first reads its script's data
  # (100,000 ids or bodies: about a second here) and then starts its THREADS
  # threads, whose -d timer starts with them. Counted from wrk's launch, the
  # window was 1-1.6 s longer than the load, which diluted the shares of the
  # machine and put wrk's set-up into its CPU per request.
  while { read -r st <"/proc/$wpid/stat"; } 2>/dev/null && [[ $st != *") Z "* ]]; do # until it ends, or:
    tasks=(/proc/"$wpid"/task/*)
    ((${#tasks[@]} <= THREADS)) || break
    sleep 0.01
  done
  measure_begin "$pids" "" "$wpid"
  wait "$wpid" || die "wrk failed for $name: $(tail -3 "$RESULTS/wrk-$name.txt")"
  forget_pid "$wpid"
  line=$(grep '^BENCH ' "$RESULTS/wrk-$name.txt") || die "no BENCH line in $RESULTS/wrk-$name.txt"
  for kv in ${line#BENCH }; do R[$name.${kv%%=*}]=${kv#*=}; done
  measure_end "$name" "${R[$name.requests]}"
  log "$name: $(printf '%.0f' "${R[$name.rps]}") req/s, p50 ${R[$name.p50_us]} us, p99 ${R[$name.p99_us]} us," \
    "${R[$name.cpu_us]} CPU us/request, non-2xx ${R[$name.non2xx]}, wrk ${R[$name.wrk_cpu_pct]} %," \
    "other load ${R[$name.other_pct]} %, steal ${R[$name.steal_pct]} %; server threads: ${R[$name.threads]}" \
    "${R[$name.pg_cpu_us]+"; PostgreSQL ${R[$name.pg_cpu_us]} CPU us/request (${R[$name.pg_pct]} % of the machine: ${R[$name.pg_procs]})"}"
}

# measure_begin "PID..." "ALSO_PID..." CLIENT_PID: the start of a measured
# window. The PIDs are the server's (per thread), the ALSO_PIDs a helper whose
# CPU is reported apart (notify.sh's receiver, or none); the client (wrk,
# watch_delivery.py) is a child of this shell that ends in the window, before
# measure_end: its CPU in the window is what this shell's children used
# meanwhile (bash `times`) less what it had used at the start.
measure_begin() {
  M_PIDS=$1
  M_ALSO=$2
  snapshot "$WORK/snap0" "$M_PIDS" "$M_ALSO" "$3"
  child_ticks
  M_C0=$CHILD_TICKS
}

# measure_end NAME COUNT: the end of the window that measure_begin started.
# Per COUNT (the requests, or the rows, of the run): R[NAME.cpu_us] (the
# server's CPU: utime+stime of every thread), R[NAME.also_us] (the helper's),
# R[NAME.wrk_us] (the client's); as % of the whole machine: R[NAME.cpu_pct],
# R[NAME.wrk_cpu_pct], R[NAME.other_pct] (its busy time less all of the above,
# and less the cluster's with MEASURE_PG=1) and R[NAME.steal_pct];
# R[NAME.threads] (per server thread name, % of one core); R[NAME.window_s].
# With MEASURE_PG=1 (a PostgreSQL run) also R[NAME.pg_cpu_us] (every process
# of the cluster), R[NAME.pg_pct] and R[NAME.pg_procs] (per kind of postgres
# process, % of one core).
measure_end() {
  local name=$1 n=$2 f
  child_ticks
  snapshot "$WORK/snap1" "$M_PIDS" "$M_ALSO" ""
  read -ra f < <(awk -v hz="$CLK_TCK" -v n="$n" -v cores="$(nproc)" -v child=$((CHILD_TICKS - M_C0)) '
    NR == FNR {s0[$1] += $(NF); next}
    {s1[$1] += $(NF)}
    END {
      secs = s1["U"] - s0["U"]; w = secs * hz * cores / 100; per = n ? 1e6 / hz / n : 0
      t = s1["T"] - s0["T"]; x = s1["A"] - s0["A"]; p = s1["P"] - s0["P"]; c = child - s0["W"]
      o = (s1["M"] - s0["M"]) - t - x - p - c
      printf "%.1f %.1f %.1f %.1f %.0f %.0f %.0f %.0f %.0f %.2f\n", t * per, x * per, c * per, p * per,
        t / w, c / w, (o < 0 ? 0 : o) / w, (s1["S"] - s0["S"]) / w, p / w, secs
    }' "$WORK/snap0" "$WORK/snap1")
  R[$name.cpu_us]=${f[0]}
  R[$name.also_us]=${f[1]}
  R[$name.wrk_us]=${f[2]}
  R[$name.cpu_pct]=${f[4]}
  R[$name.wrk_cpu_pct]=${f[5]}
  R[$name.other_pct]=${f[6]}
  R[$name.steal_pct]=${f[7]}
  R[$name.window_s]=${f[9]}
  R[$name.threads]=$(awk -v hz="$CLK_TCK" -v secs="${f[9]}" '
      $1 != "T" {next}
      NR == FNR {t0[$2] = $4; next}
      {d = $4 - t0[$2]; if (d > 0) {sum[$3] += d; n[$3]++}}
      END {for (c in sum) {printf "%s%s x%d %.0f%%", sep, c, n[c], sum[c] / (secs * hz) * 100; sep = ", "}}' \
    "$WORK/snap0" "$WORK/snap1")
  if ((${MEASURE_PG:-0})); then
    R[$name.pg_cpu_us]=${f[3]}
    R[$name.pg_pct]=${f[8]}
    R[$name.pg_procs]=$(pg_procs_delta "$WORK/snap0" "$WORK/snap1" "${f[9]}")
  fi
}

# snapshot FILE "PID..." "ALSO_PID..." [CLIENT_PID]: what a measured window
# compares, read by one awk process in a burst of a few milliseconds: on a
# busy machine the processes a shell starts one after the other may wait
# for a core a tenth of a second each, and the samples would no longer be of
# one instant. Lines: "U seconds" (/proc/uptime: the instant), "M busy" and
# "S steal" (/proc/stat, ticks of the whole machine), "T tid comm ticks" for
# every thread of the PIDs, "A tid comm ticks" for those of the ALSO_PIDs,
# "W pid ticks" for the client and, with MEASURE_PG=1, "P pid kind ticks" for
# every process of the cluster: the postmaster, its live children ("child":
# named afterwards by pg_procs_delta) and the children it reaped ("P exited
# exited", its cutime+cstime). Ticks: utime+stime. A process that ends
# between the glob and awk's read makes mawk fail ("read error (No such
# process)"): the snapshot is then taken again.
snapshot() {
  local try
  for try in 1 2 3; do
    snapshot_once "$@" 2>/dev/null && return 0
  done
  snapshot_once "$@"
}

snapshot_once() {
  local out=$1 p
  {
    for p in $2; do printf 'T %s\n' /proc/"$p"/task/*/stat; done
    for p in $3; do printf 'A %s\n' /proc/"$p"/task/*/stat; done
    [[ -z ${4:-} ]] || echo "W /proc/$4/stat"
    if ((${MEASURE_PG:-0})); then printf 'P %s\n' /proc/[0-9]*/stat; fi
  } | awk -v pm="${PG_PID:-}" '
    function rd(f,   l) { l = ""; if ((getline l < f) <= 0) l = ""; close(f); return l }
    BEGIN {
      split(rd("/proc/uptime"), u, " "); print "U", u[1]
      while ((getline l < "/proc/stat") > 0) if (l ~ /^cpu /) {split(l, c, " "); break}
      close("/proc/stat")
      print "M", c[2] + c[3] + c[4] + c[7] + c[8] + c[9]; print "S", c[9]
    }
    {
      l = rd($2); if (l == "") next
      lp = 0; while ((q = index(substr(l, lp + 1), ")")) > 0) lp += q
      o = index(l, " ("); id = substr(l, 1, o - 1); comm = substr(l, o + 2, lp - o - 2); gsub(/[ \t]/, "_", comm)
      split(substr(l, lp + 2), f, " ")
      if ($1 == "W") print "W", id, f[12] + f[13]
      else if ($1 != "P") print $1, id, comm, f[12] + f[13]
      else if (id == pm) {print "P", id, "postmaster", f[12] + f[13]; print "P exited exited", f[14] + f[15]}
      else if (f[2] == pm) print "P", id, "child", f[12] + f[13]
    }' >"$out"
}

# ---- profiles ----
# profile_run NAME OUT URL SECONDS LOAD_FN ARGS...: a profile's load,
# `LOAD_FN URL SECONDS ARGS...` with PROFILE_RUN=NAME, its output in OUT; half
# a second after the profiler started, so that it is attached.
# shellcheck disable=SC2034 # PROFILE_RUN: for a LOAD_FN that records results
profile_run() {
  local name=$1 out=$2 url=$3 secs=$4 fn=$5
  shift 5
  sleep 0.5
  PROFILE_RUN=$name
  "$fn" "$url" "$secs" "$@" >"$out" 2>&1 || true
}

# profile_perf NAME LOAD_FN ARGS...: perf record --call-graph dwarf on the
# running tokend (TD_PID) while `LOAD_FN TD_URL PROFILE_SECONDS ARGS...` runs
# (profile_run; its output in RESULTS/wrk-profile-NAME.txt); reports in
# RESULTS/profile-NAME-{self,inclusive,dso,inclusive-named}.txt.
profile_perf() {
  local name=$1 fn=$2 data="$WORK/perf-$1.data" ppid
  shift 2
  wait_quiet
  perf record -F 999 --call-graph dwarf,16384 -p "$TD_PID" -o "$data" >"$RESULTS/perf-record-$name.log" 2>&1 &
  ppid=$!
  PIDS+=("$ppid")
  profile_run "$name" "$RESULTS/wrk-profile-$name.txt" "$TD_URL" "$PROFILE_SECONDS" "$fn" "$@"
  stop_pid "$ppid" INT
  perf report -i "$data" --no-children --sort dso,symbol --stdio --percent-limit 0.7 -g none 2>/dev/null |
    grep -v '^$' >"$RESULTS/profile-$name-self.txt" || true
  perf report -i "$data" --children --sort symbol --stdio --percent-limit 3 -g none 2>/dev/null |
    grep -v '^$' >"$RESULTS/profile-$name-inclusive.txt" || true
  perf report -i "$data" --no-children --sort dso --stdio -g none 2>/dev/null |
    grep -v '^$' >"$RESULTS/profile-$name-dso.txt" || true
  # The inclusive list without frames perf could not name (libraries without
  # symbols for their static functions) and inlined duplicates.
  grep -E '^ +[0-9]' "$RESULTS/profile-$name-inclusive.txt" | grep -vE '\] 0x[0-9a-f]+ |\(inlined\)' \
    >"$RESULTS/profile-$name-inclusive-named.txt" || true
}

# profile_callgrind NAME STORE_DB LOAD_FN ARGS...: a second tokend under
# valgrind --tool=callgrind on STORE_DB (stop the other one first), loaded by
# `LOAD_FN URL 3*PROFILE_SECONDS ARGS...`; reports as profile_perf's.
profile_callgrind() {
  local name=$1 db=$2 fn=$3 out="$WORK/callgrind-$1.out" port pid
  shift 3
  port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$TOKEND" serve --listen "127.0.0.1:$port" \
    --store "sqlite:$db" --rate-limit 0 --max-connections-per-ip 0 --threads "$THREADS" 2>>"$RESULTS/valgrind-$name.log" &
  pid=$!
  PIDS+=("$pid")
  wait_healthz "http://127.0.0.1:$port" "$pid" "tokend under valgrind" "$RESULTS/valgrind-$name.log" 300
  profile_run "$name" "$RESULTS/wrk-profile-$name.txt" "http://127.0.0.1:$port" "$((PROFILE_SECONDS * 3))" "$fn" "$@"
  stop_pid "$pid" TERM
  callgrind_annotate --inclusive=yes "$out" 2>/dev/null | head -60 >"$RESULTS/profile-$name-inclusive.txt" || true
  callgrind_annotate --inclusive=no "$out" 2>/dev/null | head -60 >"$RESULTS/profile-$name-self.txt" || true
  grep -E '^ *[0-9,]+ \(' "$RESULTS/profile-$name-inclusive.txt" | grep -v '???:0x' \
    >"$RESULTS/profile-$name-inclusive-named.txt" || true
}

# show_profiles NAME...: the head of each profile's inclusive (named frames)
# and self lists, for the terminal; and the whole-machine report of
# profile_system for a NAME that has one.
show_profiles() {
  local n
  for n in "$@"; do
    if [[ -s $RESULTS/profile-$n-inclusive-named.txt ]]; then
      echo
      echo "== $n profile: inclusive (children), named frames =="
      head -40 "$RESULTS/profile-$n-inclusive-named.txt" | cut -c1-100
      echo "== $n profile: self =="
      grep -E '^ *[0-9][0-9,.]*%? ' "$RESULTS/profile-$n-self.txt" 2>/dev/null | head -15 | cut -c1-110 || true
    fi
    if [[ -s $RESULTS/profile-$n-system.txt ]]; then
      echo
      cat "$RESULTS/profile-$n-system.txt"
    fi
  done
}

# ---- report helpers ----
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b ? 100 * a / b : 0}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }
verdict() { # value op target -> PASS/MISS
  awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {ok = (op == ">=") ? v >= t : v <= t; print ok ? "PASS" : "MISS"}'
}

# about_machine: the summary's lines on the machine and the software measured.
about_machine() {
  echo "Machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); kernel $(uname -r);" \
    "load average before the report: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "tokend $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '+uncommitted') (Release)," \
    "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | sed 's/^nginx version: //'), SQLite $(sqlite3 --version | cut -d' ' -f1)$(
      [[ -s $RESULTS/pg-settings.txt ]] && echo ", PostgreSQL $(awk '/^server_version/ {print $3}' "$RESULTS/pg-settings.txt")")."
}

# wrk_table_head, then wrk_row LABEL NAME RATIO per run: the SQLite table of
# run.sh and network.sh.
wrk_table_head() {
  echo "| run | req/s | p50 ms | p99 ms | tokend/nginx | server CPU µs/req | non-2xx | % of the machine: wrk / other / steal |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
}
wrk_row() {
  printf '| %s | %.0f | %s | %s | %s | %s | %s | %s / %s / %s |\n' "$1" "${R[$2.rps]}" "$(ms "${R[$2.p50_us]}")" \
    "$(ms "${R[$2.p99_us]}")" "$3" "${R[$2.cpu_us]}" "${R[$2.non2xx]}" "${R[$2.wrk_cpu_pct]}" \
    "${R[$2.other_pct]}" "${R[$2.steal_pct]}"
}

# check_runs NAME...: after the summary, fails if a run's check did not pass
# or if a wrk thread used up its planned requests (its req/s is then too low).
check_runs() {
  local n bad=""
  for n in "$@"; do
    [[ ${R[$n.exhausted_threads]:-0} == 0 ]] ||
      bad+=" $n used up its planned requests (its req/s is too low: plan more, or shorten BENCH_DURATION);"
    [[ ${R[$n.check]:-} == PASS ]] || bad+=" $n: check ${R[$n.check]:-not run};"
  done
  [[ -z $bad ]] || die "${bad# } (see above)"
}

# ==== PostgreSQL (--store postgres) ====
# One throwaway cluster for the whole run (scripts/pg.sh: initdb, a free
# loopback port, the server run as the unprivileged user tokend-pg when we
# are root; fsync and synchronous_commit on). The store a script seeded
# through tokend's API on SQLite is copied once into a template database
# (tokenctl store copy, then VACUUM ANALYZE), and each measured configuration
# gets its own database copied from that template: every configuration starts
# from the same rows and may use the same ids. The tokend nodes of a
# configuration share its database and the SQLite store's master and admin
# keys (docs/postgres.md).

# pg_setup SQLITE_FILE: the cluster (pg_cluster_start) and the template
# database PG_TEMPLATE, a copy of the SQLite store SQLITE_FILE as it is now
# (VACUUM INTO a snapshot first: tokend may still be serving it).
pg_setup() {
  mkdir -p "$WORK/pgsrc"
  sqlite3 "$1" "VACUUM INTO '$WORK/pgsrc/tokend.db'"
  pg_cluster_start
  pg_load "$WORK/pgsrc/tokend.db"
  rm -f "$WORK/pgsrc/tokend.db"
}

# pg_cluster_start: the cluster in WORK/pg. Sets PG_DIR, PG_PID (the
# postmaster), PG_BASE_URL (the tokend role's database), PG_SU_URL (the
# superuser, over the unix socket), PSQL, and exports PGPASSFILE.
pg_cluster_start() {
  local bin=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
  [[ -x $bin/psql ]] || bin=$(pg_config --bindir)
  PSQL=$bin/psql
  chmod 0711 "$WORK" # the server's user must pass through WORK to reach WORK/pg
  PG_DIR="$WORK/pg"
  PG_BASE_URL=$("$ROOT/scripts/pg.sh" start "$PG_DIR" 2>"$RESULTS/pg-start.log") ||
    die "scripts/pg.sh start failed: $(tail -3 "$RESULTS/pg-start.log")"
  PG_PID=$(cat "$PG_DIR/postgres.pid")
  PG_SU_URL=$("$ROOT/scripts/pg.sh" superuser-url "$PG_DIR")
  export PGPASSFILE="$PG_DIR/pgpass"
  # WAL syncs are timed (pg_stat_wal.wal_sync_time): the commit latency the runs saw.
  "$PSQL" -X -q "$PG_SU_URL" -c "ALTER SYSTEM SET track_wal_io_timing = on" -c "SELECT pg_reload_conf()" >/dev/null
  "$PSQL" -X -At "$PG_BASE_URL" -c "SELECT name || ' = ' || setting || coalesce(' ' || unit, '') FROM pg_settings
    WHERE name IN ('server_version', 'shared_buffers', 'fsync', 'synchronous_commit', 'wal_sync_method',
    'full_page_writes', 'wal_buffers', 'max_wal_size', 'checkpoint_timeout', 'commit_delay', 'max_connections',
    'track_wal_io_timing')
    ORDER BY name" >"$RESULTS/pg-settings.txt"
  log "PostgreSQL $(awk '/^server_version/ {print $3}' "$RESULTS/pg-settings.txt"), postmaster pid $PG_PID: $PG_BASE_URL"
}

pg_url() { echo "${PG_BASE_URL%/*}/$1"; } # DBNAME -> its URL (no password: PGPASSFILE)

# pg_load SQLITE_FILE: the template database PG_TEMPLATE, a copy of a SQLite
# store (checked by tokenctl table by table), vacuumed and analysed.
pg_load() {
  local t0
  PG_TEMPLATE=td_template
  t0=$EPOCHREALTIME
  "$PSQL" -X -q -v ON_ERROR_STOP=1 "$PG_BASE_URL" -c "CREATE DATABASE $PG_TEMPLATE ENCODING 'UTF8' TEMPLATE template0"
  "$TOKENCTL" store copy "sqlite:$1" "$(pg_url "$PG_TEMPLATE")" >"$RESULTS/store-copy.txt" 2>&1 ||
    die "tokenctl store copy failed: $(tail -3 "$RESULTS/store-copy.txt")"
  "$PSQL" -X -q -v ON_ERROR_STOP=1 "$(pg_url "$PG_TEMPLATE")" -c "VACUUM (ANALYZE)"
  PG_LOAD_S=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
  log "copied the SQLite store into PostgreSQL in ${PG_LOAD_S}s: $(tail -1 "$RESULTS/store-copy.txt" | cut -c1-160)"
}

# pg_db_new NAME: a database copied from PG_TEMPLATE (file copy). Sets PG_DB,
# PG_DB_URL, and SQL_URL: from now on `sql` checks that database.
# shellcheck disable=SC2034 # for the caller
pg_db_new() {
  "$PSQL" -X -q -v ON_ERROR_STOP=1 "$PG_BASE_URL" \
    -c "CREATE DATABASE $1 TEMPLATE $PG_TEMPLATE STRATEGY FILE_COPY" || die "cannot create the database $1"
  PG_DB=$1
  PG_DB_URL=$(pg_url "$1")
  SQL_URL=$PG_DB_URL
}

# pg_runs WHAT LOAD_FN ARGS...: the PostgreSQL part of a benchmark, after its
# SQLite part: with MEASURE_PG=1 (the measurements count the cluster's CPU),
# the caller's `pg_configuration NAME N` for one node (pg1) and for two (pg2).
# With perf, two profiles under `LOAD_FN TD_URL PROFILE_SECONDS ARGS...`, each
# on one new node and a database whose spare rows no load has touched: perf
# record on the node, on pg1's database (profile-pg1-WHAT-*.txt), then the
# whole machine on pg2's (profile_system: profile-pg-WHAT-system.txt).
pg_runs() {
  local what=$1
  shift
  MEASURE_PG=1
  PG_RTT_US=$(pg_rtt_us)
  log "PostgreSQL round trip (SELECT 1, one client, unloaded): $PG_RTT_US us"
  pg_configuration pg1 1
  if [[ $PROFILE == perf ]]; then
    start_nodes pg1-profile 1 "$PG_DB_URL" "$STORE"
    log "profiling one PostgreSQL node with perf record ($what), ${PROFILE_SECONDS}s"
    profile_perf "pg1-$what" "$@"
    stop_nodes
  fi
  pg_configuration pg2 2
  if [[ $PROFILE == perf ]]; then
    start_nodes pg-system 1 "$PG_DB_URL" "$STORE"
    log "where the machine's time goes (perf record -a) while one PostgreSQL node serves $what, ${PROFILE_SECONDS}s"
    profile_system "pg-$what" "$@"
    stop_nodes
  fi
  MEASURE_PG=0
  SQL_URL=
}

# shellcheck disable=SC2034 # WRK_ENV: read by the scripts' measure functions
# pg_measured NAME N FN ARGS...: one measured run on the database of
# pg_db_new: a CHECKPOINT (no run pays for the previous one's dirty pages),
# the server's counters, N nodes (start_nodes; with several, WRK_ENV points
# wrk's threads at them), `FN NAME ARGS...` (which sets R[NAME.requests]), the
# nodes stopped (their backends then flush their statistics), the counters
# again: pg_stats_delta.
pg_measured() {
  local name=$1 n=$2 fn=$3 st0
  shift 3
  pg_checkpoint
  st0=$(pg_stats "$PG_DB")
  start_nodes "$name" "$n" "$PG_DB_URL" "$STORE"
  WRK_ENV=()
  if ((n > 1)); then WRK_ENV=(env "WRK_NODES=$NODE_ADDRS"); fi
  "$fn" "$name" "$@"
  stop_nodes
  WRK_ENV=()
  pg_stats_delta "$name" "$st0" "$(pg_stats "$PG_DB")"
}

pg_checkpoint() { "$PSQL" -X -q "$PG_SU_URL" -c CHECKPOINT >/dev/null || log "CHECKPOINT failed"; }

# pg_stats DBNAME: the server's cumulative counters, "xact_commit
# xact_rollback wal_records wal_fpi wal_bytes wal_sync wal_sync_time_ms
# wal_lsn". A backend sends its counters to the shared statistics lazily (at
# most once a second, or within 10 s of going idle) and always when it exits:
# read them with no tokend connected (stop_nodes first) and they are exact.
pg_stats() {
  "$PSQL" -X -At -F ' ' "$PG_BASE_URL" -c "SELECT d.xact_commit, d.xact_rollback, w.wal_records, w.wal_fpi,
    w.wal_bytes, w.wal_sync, round(w.wal_sync_time::numeric, 3), pg_current_wal_lsn()
    FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = '$1'"
}

# pg_wal_xacts LSN0 LSN1: "commits aborts" of write transactions between two
# WAL positions: the Transaction/COMMIT and /ABORT records pg_waldump counts
# (a transaction that wrote nothing leaves none: reads do not count); "? ?"
# if the WAL is gone (a checkpoint recycled it).
pg_wal_xacts() {
  local out
  if out=$("$(dirname "$PSQL")/pg_waldump" -p "$PG_DIR/data/pg_wal" -s "$1" -e "$2" --stats=record 2>"$WORK/waldump.err"); then
    awk '$1 == "Transaction/COMMIT" {c = $2} $1 == "Transaction/ABORT" {a = $2} END {print c + 0, a + 0}' <<<"$out"
  else
    log "pg_waldump $1..$2 failed: $(tail -1 "$WORK/waldump.err")"
    echo "? ?"
  fi
}

# pg_stats_delta NAME "BEFORE" "AFTER": for the run NAME (R[NAME.requests]
# set, and R[NAME.commits] for a writing run), R[NAME.pg_commits] (write
# transactions PostgreSQL committed: pg_wal_xacts; a few may be autovacuum's),
# R[NAME.req_per_xact] (requests per such transaction), R[NAME.pg_xacts]
# (pg_stat_database.xact_commit: those, and every statement a reader ran on
# its own), R[NAME.pg_rollbacks], R[NAME.wal_syncs] (WAL flushes),
# R[NAME.syncs_per_commit] (per tokend commit), R[NAME.sync_ms] (their mean
# duration), R[NAME.wal_b_req] (WAL bytes per request) and R[NAME.fpi_req]
# (full-page images per request).
pg_stats_delta() {
  local name=$1 a b w
  read -ra a <<<"$2"
  read -ra b <<<"$3"
  read -ra w < <(pg_wal_xacts "${a[7]}" "${b[7]}")
  R[$name.pg_commits]=${w[0]}
  R[$name.pg_xacts]=$((b[0] - a[0]))
  R[$name.pg_rollbacks]=$((b[1] - a[1]))
  R[$name.wal_syncs]=$((b[5] - a[5]))
  read -r "R[$name.req_per_xact]" "R[$name.sync_ms]" "R[$name.wal_b_req]" "R[$name.fpi_req]" "R[$name.syncs_per_commit]" < <(
    awk -v r="${R[$name.requests]}" -v c="${R[$name.commits]:-0}" -v x="${w[0]}" -v s=$((b[5] - a[5])) \
      -v st0="${a[6]}" -v st1="${b[6]}" -v wb=$((b[4] - a[4])) -v fpi=$((b[3] - a[3])) \
      'BEGIN {printf("%s %.2f %.0f %.2f %.2f\n", (x + 0 > 0) ? sprintf("%.1f", r / x) : "—", s ? (st1 - st0) / s : 0,
        r ? wb / r : 0, r ? fpi / r : 0, c ? s / c : 0)}')
}

# pg_rtt_us: the round trip of `SELECT 1` on a fresh connection, unloaded
# (pgbench, one client, 2 s, extended protocol as tokend's prepared
# statements): the floor of every statement a writer waits for.
pg_rtt_us() {
  echo 'SELECT 1;' >"$WORK/select1.sql"
  "$(dirname "$PSQL")/pgbench" -n -M prepared -c1 -T2 -f "$WORK/select1.sql" "$PG_BASE_URL" 2>&1 |
    awk '/^latency average/ {printf "%.0f", $4 * 1000}'
}

# pg_procs_delta SNAP0 SNAP1 SECONDS: the cluster's CPU between two snapshots,
# per kind of process, "kind xN P%" (% of one core); kind from the process
# title: backend (a client's connection), walwriter, checkpointer, ...;
# "ended": the processes that ended meanwhile (the postmaster reaped them).
pg_procs_delta() {
  local p kind
  awk '$1 == "P" && $3 == "child" {print $2}' "$2" | while read -r p; do
    kind=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | sed -E 's/^postgres: //; s/ +$//') || kind=gone
    if [[ $kind == *'('*')'* || $kind == *'[local]'* ]]; then
      kind=backend
    else
      kind=$(awk '{print ($1 == "autovacuum" || $1 == "background" || $1 == "logical") ? $1 "_" $2 : $1}' <<<"$kind")
    fi
    echo "$p ${kind:-gone}"
  done >"$WORK/pgkinds"
  awk -v hz="$CLK_TCK" -v secs="$3" '
    FILENAME ~ /pgkinds$/ {kind[$1] = $2; next}
    $1 != "P" {next}
    FILENAME == ARGV[2] {t0[$2] = $4; next}
    {seen[$2] = 1; k = ($2 in kind) ? kind[$2] : $3; d = $4 - t0[$2]}
    k == "exited" {ended = d; next}
    d > 0 {sum[k] += d; n[k]++}
    END {
      for (p in t0) if (!(p in seen)) {ended -= t0[p]; gone++} # their CPU before T0 was in SNAP0
      if (ended > 0) {sum["ended"] = ended; n["ended"] = gone ? gone : 1}
      for (c in sum) {printf "%s%s x%d %.0f%%", sep, c, n[c], sum[c] / (secs * hz) * 100; sep = ", "}
    }' \
    "$WORK/pgkinds" "$1" "$2"
}

# start_nodes NAME N STORE_URL KEY_DIR: N tokend nodes on one PostgreSQL
# database, one after the other (the first applies the migrations), all with
# KEY_DIR/master.key and KEY_DIR/admin.key. Sets NODE_PIDS, NODE_URLS,
# NODE_LOGS (RESULTS/tokend-NAME-<i>.log), NODE_ADDRS ("127.0.0.1:PORT,..."
# for the wrk scripts' WRK_NODES), and TD_PID, TD_URL to the first node's.
start_nodes() {
  local name=$1 n=$2 url=$3 keys=$4 i addrs=()
  NODE_PIDS=()
  NODE_URLS=()
  NODE_LOGS=()
  for ((i = 1; i <= n; i++)); do
    launch_tokend "$name-$i" --store "$url" --master-key-file "$keys/master.key" --admin-key-file "$keys/admin.key"
    NODE_PIDS+=("$TD_PID")
    NODE_URLS+=("$TD_URL")
    NODE_LOGS+=("$RESULTS/tokend-$name-$i.log")
    addrs+=("127.0.0.1:$TD_PORT")
  done
  NODE_ADDRS=$(IFS=, && echo "${addrs[*]}")
  TD_PID=${NODE_PIDS[0]}
  TD_URL=${NODE_URLS[0]}
  log "$name: $n tokend node(s) on $url (pids ${NODE_PIDS[*]}${NODE_ENV[*]+, ${NODE_ENV[*]}})"
}

stop_nodes() {
  local p
  for p in "${NODE_PIDS[@]}"; do stop_pid "$p" TERM; done
  NODE_PIDS=()
}

# profile_system NAME LOAD_FN ARGS...: while `LOAD_FN TD_URL PROFILE_SECONDS
# ARGS...` runs against one node (TD_PID; its output, with a "BENCH
# requests=N rps=R" line, in RESULTS/wrk-profile-sys-NAME.txt; PROFILE_RUN=NAME
# meanwhile), where the machine's time goes:
# - perf record -a -e cpu-clock (every CPU, 999 Hz, no call graphs): samples
#   per process, classified tokend (the node), postgres (the cluster), wrk,
#   the caller's SYS_HELPER ("NAME:PID,..."), idle, other; and per library
#   within tokend and postgres;
# - perf stat of the cluster's processes: sendto (an answer PostgreSQL sends:
#   one per round trip) and recvfrom, and fdatasync/fsync calls;
# - pg_stat_activity sampled every 50 ms by one psql process: the state and
#   wait event of tokend's connections, writers told from readers by their
#   statement (transaction control, INSERT/UPDATE/DELETE, FOR UPDATE, or a
#   transaction left open between statements: a writer).
# Reports in RESULTS/profile-NAME-system.txt; sets R[NAME.sys_*].
profile_system() {
  local name=$1 fn=$2 data="$WORK/perf-sys-$1.data" out="$RESULTS/profile-$1-system.txt" pgpids tdpids ppid spid apid req
  shift 2
  wait_quiet
  pgpids=$(IFS=, && echo "$PG_PID,$(pgrep -P "$PG_PID" | paste -sd,)")
  tdpids=$(IFS=, && echo "${NODE_PIDS[*]}")
  "$PSQL" -X -q -At -F ' ' "$PG_BASE_URL" >"$WORK/activity-$name.txt" 2>/dev/null <<'SQL' &
SELECT CASE WHEN state LIKE 'idle in transaction%'
              OR query ~* '^\s*(BEGIN|COMMIT|RELEASE|ROLLBACK|SAVEPOINT|UPDATE|INSERT|DELETE)' OR query ~* 'FOR UPDATE'
            THEN 'writer' ELSE 'reader' END,
       replace(coalesce(state, '-'), ' ', '_'), coalesce(wait_event_type || ':' || wait_event, '-')
FROM pg_stat_activity WHERE application_name = 'tokend' AND backend_type = 'client backend' \watch 0.05
SQL
  apid=$!
  PIDS+=("$apid")
  perf record -a -e cpu-clock -F 999 -o "$data" >"$RESULTS/perf-record-sys-$name.log" 2>&1 &
  ppid=$!
  PIDS+=("$ppid")
  perf stat -x, -e syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync \
    -p "$pgpids" -o "$WORK/pgstat-$name.csv" >/dev/null 2>&1 &
  spid=$!
  PIDS+=("$spid")
  profile_run "$name" "$RESULTS/wrk-profile-sys-$name.txt" "$TD_URL" "$PROFILE_SECONDS" "$fn" "$@"
  stop_pid "$spid" INT
  stop_pid "$ppid" INT
  stop_pid "$apid" TERM
  req=$(awk '/^BENCH / {for (i = 2; i <= NF; i++) if ($i ~ /^requests=/) {sub(/requests=/, "", $i); print $i}}' \
    "$RESULTS/wrk-profile-sys-$name.txt")
  R[$name.sys_requests]=${req:-0}
  {
    echo "# where the machine's time went: perf record -a -e cpu-clock -F 999, one node under load"
    echo "# ($req requests answered: $(grep -oE 'rps=[0-9.]+' "$RESULTS/wrk-profile-sys-$name.txt") under perf)"
    echo
    echo "## samples by process (% of all samples on both CPUs; kernel: in the kernel on its behalf)"
    perf script -i "$data" -F comm,pid,ip,dso 2>/dev/null | awk -v td="$tdpids" -v pg="$pgpids" -v helper="${SYS_HELPER:-}" '
      BEGIN {n = split(td, a, ","); for (i = 1; i <= n; i++) T[a[i]] = 1; n = split(pg, a, ","); for (i = 1; i <= n; i++) P[a[i]] = 1
             hname = helper; sub(/:.*/, "", hname); sub(/^[^:]*:/, "", helper); n = split(helper, a, ","); for (i = 1; i <= n; i++) H[a[i]] = 1}
      {pid = $(NF - 2); c = $1; k = (pid == 0) ? "idle" : (pid in T) ? "tokend" : (pid in P) ? "postgres" : (pid in H) ? hname : (c == "wrk") ? "wrk" : (c == "perf") ? "perf" : "other"
       s[k]++; if ($NF ~ /kernel/) kern[k]++; tot++}
      END {for (k in s) printf "%-9s %6.1f %%  (kernel %.1f %%)\n", k, 100 * s[k] / tot, 100 * kern[k] / tot}' | sort -k2 -nr || true
    echo
    echo "## where tokend's and postgres's samples were: by library, then the functions (% of all samples)"
    perf script -i "$data" -F comm,pid,ip,sym,dso 2>/dev/null | awk -v td="$tdpids" -v pg="$pgpids" '
      BEGIN {n = split(td, a, ","); for (i = 1; i <= n; i++) T[a[i]] = 1; n = split(pg, a, ","); for (i = 1; i <= n; i++) P[a[i]] = 1}
      {tot++; d = $NF; gsub(/[()]/, "", d); sub(/.*\//, "", d)
       for (i = 2; i < NF; i++) if ($i ~ /^[0-9]+$/) break
       k = ($i in T) ? "tokend" : ($i in P) ? "postgres" : ""; if (k == "") next
       sym = (i + 2 < NF) ? $(i + 2) : "?"; sub(/\+0x[0-9a-f]+$/, "", sym)
       D[k " " d]++; S[k " " sym " (" d ")"]++}
      END {for (x in D) printf "dso %6.1f %% %s\n", 100 * D[x] / tot, x; for (x in S) printf "sym %6.1f %% %s\n", 100 * S[x] / tot, x}' \
      >"$WORK/perf-sys-$name.agg" || true
    grep '^dso' "$WORK/perf-sys-$name.agg" | sort -k2 -nr | awk '$2 >= 0.3' | cut -c5- | head -16 || true
    echo
    grep '^sym' "$WORK/perf-sys-$name.agg" | sort -k2 -nr | awk '$2 >= 0.4' | cut -c5- | head -30 || true
    echo
    echo "## system calls of the cluster's processes during the run (perf stat)"
    grep -E 'syscalls' "$WORK/pgstat-$name.csv" | awk -F, -v n="${req:-0}" '{printf "%-32s %10s  %.2f per request\n", $3, $1, n ? $1 / n : 0}' || true
    echo
    echo "## tokend's PostgreSQL connections, sampled every 50 ms (role state wait: share of samples)"
    awk '{k = $1 " " $2 " " $3; s[k]++; r[$1]++} END {for (k in s) {split(k, a, " "); printf "%-6s %-30s %-24s %5.1f %%\n", a[1], a[2], a[3], 100 * s[k] / r[a[1]]}}' \
      "$WORK/activity-$name.txt" | sort -k1,1 -k4nr || true
  } >"$out"
  R[$name.sys_split]=$(awk '/^## samples by process/ {on = 1; next} on && NF == 0 {exit} on {printf "%s%s %s%%", sep, $1, $2; sep = ", "}' "$out")
  R[$name.sys_sendto]=$(awk -F, -v n="${req:-0}" '$3 ~ /sendto/ {printf "%.2f", n ? $1 / n : 0}' "$WORK/pgstat-$name.csv")
}

# ---- the PostgreSQL report ----
# pg_summary_intro SENTENCES...: the first paragraph of a summary's PostgreSQL
# part: the server and its settings, how each configuration's database was
# made, the nodes' writers, the round trip; then the caller's sentences.
pg_summary_intro() {
  echo
  echo "## PostgreSQL (--store postgres)"
  echo
  echo "PostgreSQL $(awk '/^server_version/ {print $3}' "$RESULTS/pg-settings.txt") on the same $(nproc) cores" \
    "(scripts/pg.sh: $(grep -E '^(shared_buffers|synchronous_commit|fsync|wal_sync_method|full_page_writes) ' \
      "$RESULTS/pg-settings.txt" | paste -sd, | sed 's/,/, /g'))." \
    "Each configuration starts from its own copy of the seeded SQLite store (tokenctl store copy into a template," \
    "VACUUM ANALYZE, then CREATE DATABASE ... TEMPLATE; copied in ${PG_LOAD_S}s) and each run from a CHECKPOINT." \
    "Per node: TD_PG_WRITERS ${TD_PG_WRITERS:-2 (default)} writers. Round trip of \`SELECT 1\`, one client," \
    "unloaded: ${PG_RTT_US:-?} µs. $*"
}

# pg_table_head, then pg_table_row LABEL NAME NGINX_NAME [SQLITE_NAME] per run:
# req/s, latency, the ratios to nginx and to SQLite in the same run, CPU per
# request of the server (tokend: all nodes) and of PostgreSQL (all its
# processes), requests per tokend commit and per PostgreSQL write transaction
# (writing runs), the run's check, and what else used the machine.
pg_table_head() {
  echo "| run | req/s | p50 ms | p99 ms | of nginx | of SQLite | server CPU µs/req | PostgreSQL CPU µs/req" \
    "| requests per tokend commit | requests per PostgreSQL transaction | non-2xx | check" \
    "| % of the machine: server / PostgreSQL / wrk / other / steal |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
}
pg_table_row() {
  local n=$2 of_sqlite="—" per_xact="—"
  [[ -z ${4:-} ]] || of_sqlite="$(pct "${R[$n.rps]}" "${R[$4.rps]}") %"
  [[ -z ${R[$n.commits]:-} || -z ${R[$n.pg_commits]:-} ]] || per_xact=${R[$n.req_per_xact]}
  printf '| %s | %.0f | %s | %s | %s %% | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s / %s / %s |\n' "$1" \
    "${R[$n.rps]}" "$(ms "${R[$n.p50_us]}")" "$(ms "${R[$n.p99_us]}")" "$(pct "${R[$n.rps]}" "${R[$3.rps]}")" \
    "$of_sqlite" "${R[$n.cpu_us]}" "${R[$n.pg_cpu_us]:-—}" "${R[$n.req_per_commit]:-—}" "$per_xact" \
    "${R[$n.non2xx]}" "${R[$n.check]:-—}" "${R[$n.cpu_pct]}" "${R[$n.pg_pct]:-—}" "${R[$n.wrk_cpu_pct]}" \
    "${R[$n.other_pct]}" "${R[$n.steal_pct]}"
}

# pg_table_group WHAT NGINX_NAME SQLITE_NAME NGINX_LABEL SQLITE_LABEL: the
# table's rows for one kind of request: nginx, SQLite, then PostgreSQL with
# one node (run pg1-WHAT) and with two (pg2-WHAT).
pg_table_group() {
  pg_table_row "$4" "$2" "$2"
  pg_table_row "$5" "$3" "$2"
  pg_table_row "PostgreSQL, 1 node: $1" "pg1-$1" "$2" "$3"
  pg_table_row "PostgreSQL, 2 nodes: $1" "pg2-$1" "$2" "$3"
}

# pg_write_details UNIT NAME...: per writing run on PostgreSQL, one line:
# tokend's commits, PostgreSQL's write transactions, statements and WAL (per
# UNIT: request, or row), where the CPU went.
pg_write_details() {
  local unit=$1 n
  shift
  for n in "$@"; do
    echo "- $n: ${R[$n.commits]} tokend commits (${R[$n.batch]} write jobs, ${R[$n.req_per_commit]} ${unit}s each);" \
      "PostgreSQL committed ${R[$n.pg_commits]} write transactions (${R[$n.req_per_xact]} ${unit}s each) and" \
      "${R[$n.pg_xacts]} transactions in all (reads included), rolled back ${R[$n.pg_rollbacks]};" \
      "${R[$n.wal_syncs]} WAL flushes (${R[$n.syncs_per_commit]} per tokend commit, ${R[$n.sync_ms]} ms each)," \
      "${R[$n.wal_b_req]} WAL bytes and ${R[$n.fpi_req]} full-page images per $unit."
    echo "  tokend threads: ${R[$n.threads]}. PostgreSQL processes: ${R[$n.pg_procs]}."
  done
}

# pg_profile_note WHAT: the sentence on the profiles pg_runs took, if it took them.
pg_profile_note() {
  [[ -n ${R[pg-$1.sys_split]:-} ]] || return 0
  echo
  echo "Profiles of one PostgreSQL node's $1 (profile-pg1-$1-*.txt: perf on tokend;" \
    "profile-pg-$1-system.txt: the whole machine): samples by process ${R[pg-$1.sys_split]};" \
    "PostgreSQL sent ${R[pg-$1.sys_sendto]} answers (sendto) per request."
}

# pg_bounds NAME CONNECTIONS WRITERS ROUND_TRIPS_PER_JOB: one line, the run
# NAME against what bounds it on this machine. CPU: cores ÷ (tokend +
# PostgreSQL + wrk µs per request). Commit: connections ÷ the mean WAL
# flush (every request in flight waiting for one flush). Writers: writer
# connections ÷ (round trips a job waits for × the unloaded round trip
# PG_RTT_US), as if every writer always had a job.
pg_bounds() {
  local n=$1
  awk -v name="$n" -v rps="${R[$n.rps]}" -v cores="$(nproc)" -v td="${R[$n.cpu_us]}" -v pg="${R[$n.pg_cpu_us]:-0}" \
    -v wrk="${R[$n.wrk_us]}" -v conns="$2" -v sync="${R[$n.sync_ms]:-0}" -v w="$3" -v rt="$4" -v rtt="${PG_RTT_US:-0}" '
    BEGIN {
      cpu = cores * 1e6 / (td + pg + wrk)
      printf "%s: %.0f req/s measured; CPU bound %.0f req/s (%d cores ÷ %.0f µs: tokend %.0f + PostgreSQL %.0f + wrk %.0f)", name, rps, cpu, cores, td + pg + wrk, td, pg, wrk
      if (sync > 0) printf "; commit bound %.0f req/s (%d connections ÷ %.2f ms per WAL flush)", conns / (sync / 1000), conns, sync
      if (rtt > 0 && rt > 0) printf "; writer bound %.0f req/s (%d writer connections ÷ (%d round trips per job × %d µs))", w * 1e6 / (rt * rtt), w, rt, rtt
      printf ".\n"
    }'
}
