# shellcheck shell=bash
# bench/lib.sh — the shell functions the benchmarks share (bench/run.sh,
# bench/network.sh). Sourced, never run: it only defines functions and the
# result table R, and changes no shell option.
#
# What a script sets before using them:
#   ROOT             the repository
#   THREADS          wrk threads and tokend --threads (start_tokend)
#   KEEP             1 keeps WORK at the end (cleanup)
#   PROFILE          auto|perf|callgrind|none (bench_tools resolves auto)
#   PROFILE_SECONDS  length of a profile run (profile_perf, 3x for callgrind)
#   TD_EXTRA         (array, optional) more `tokend serve` flags (start_tokend)
# What the functions set:
#   bench_tools      PROFILE (resolved), CLK_TCK
#   bench_dirs       STAMP, RESULTS (bench/results/<stamp>), WORK (temp dir), PIDS; the EXIT trap
#   build_tokend     TOKEND (build-rel/tokend, Release), TOKENCTL
#   build_seed_cards WORK/seed_cards; sql, api, json_field: the store and tokend's API (DB, TD_URL)
#   start_tokend     TD_PID, TD_PORT, TD_URL
#   nginx_start      NG_PID, NG_URL (NG_PORT is the caller's: its server block listens on it)
#   bench_measure    R[name.field] for one measured command
#
# Every process a function starts goes into PIDS and is stopped by pid, by
# stop_pid or at exit (cleanup); nothing is killed by name.

declare -A R # R[run.field]: what bench_measure read for each run

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
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
  local rc=$?
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    wait "$p" 2>/dev/null || true
  done
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

# ---- CPU accounting ----
# utime+stime of the given pids, in clock ticks.
cpu_ticks() {
  local total=0 p v
  for p in "$@"; do
    v=$(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') || v=0
    total=$((total + v))
  done
  echo "$total"
}

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

# "tid comm ticks" for every thread of the given processes.
thread_ticks() {
  local t p
  for p in "$@"; do for t in /proc/"$p"/task/*; do
    [[ -r $t/stat ]] && echo "${t##*/} $(sed 's/^[0-9]* (\(.*\)) .*/\1/' "$t/stat" | tr ' ' '_')" \
      "$(sed 's/^.*) //' "$t/stat" | awk '{print $12 + $13}')"
  done; done 2>/dev/null || true
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
  # shellcheck disable=SC2034 # for the scripts that build tokenctl too (notify.sh)
  TOKENCTL="$ROOT/build-rel/tokenctl"
}

# start_tokend NAME STORE_DIR -> sets TD_PID, TD_PORT, TD_URL. Its log (one
# JSON line a request) goes to RESULTS/tokend-NAME.log.
start_tokend() {
  local name=$1 dir=$2
  TD_PORT=$(free_port)
  TD_URL="http://127.0.0.1:$TD_PORT"
  "$TOKEND" serve --listen "127.0.0.1:$TD_PORT" --store "sqlite:$dir/tokend.db" --rate-limit 0 \
    --threads "$THREADS" "${TD_EXTRA[@]+"${TD_EXTRA[@]}"}" 2>>"$RESULTS/tokend-$name.log" &
  TD_PID=$!
  PIDS+=("$TD_PID")
  for _ in $(seq 100); do
    curl -sf "$TD_URL/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$TD_PID" 2>/dev/null || die "tokend exited at start, see $RESULTS/tokend-$name.log"
    sleep 0.1
  done
  die "tokend did not answer /healthz on $TD_URL"
}

# build_seed_cards -> WORK/seed_cards (bench/seed_cards.c: POSTs a list of bodies, many in flight)
build_seed_cards() {
  # shellcheck disable=SC2046 # pkg-config's flags are meant to split
  gcc -O2 -Wall -Wextra -o "$WORK/seed_cards" "$ROOT/bench/seed_cards.c" $(pkg-config --cflags --libs libcurl) ||
    die "cannot build bench/seed_cards.c"
}

# sql QUERY: sqlite3 on the caller's store file (DB)
sql() { sqlite3 "$DB" "$1"; }

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

store_metric() { # name: a tokend_store_* value from /metrics
  curl -sf "$TD_URL/metrics" | awk -v n="$1" '$1 == n {print $2}'
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

# ---- one measured run ----
# bench_measure NAME "PID..." CMD...: waits for a quiet machine, runs CMD (a
# wrk command whose script prints one "BENCH key=value ..." line) with its
# output in RESULTS/wrk-NAME.txt, and sets R[NAME.key] for every key of that
# line, plus R[NAME.cpu_us] (CPU of the PIDs per request wrk counted),
# R[NAME.threads] (per thread name, % of one core), R[NAME.wrk_cpu_pct],
# R[NAME.other_pct] (the machine's busy time less the server's and CMD's) and
# R[NAME.steal_pct], the last three as % of the whole machine.
bench_measure() {
  local name=$1 pids t0 t1 line k v kv m0 m1 c0 c1 e0 e1
  read -ra pids <<<"$2"
  shift 2
  wait_quiet
  read -ra m0 < <(machine_ticks)
  child_ticks
  c0=$CHILD_TICKS
  e0=$(date +%s.%N)
  t0=$(cpu_ticks "${pids[@]}")
  thread_ticks "${pids[@]}" >"$WORK/threads0"
  "$@" >"$RESULTS/wrk-$name.txt" 2>&1 ||
    die "wrk failed for $name: $(tail -3 "$RESULTS/wrk-$name.txt")"
  t1=$(cpu_ticks "${pids[@]}")
  thread_ticks "${pids[@]}" >"$WORK/threads1"
  e1=$(date +%s.%N)
  # Per thread name, % of one core: where the server's CPU went.
  R[$name.threads]=$(awk -v hz="$CLK_TCK" -v a="$e0" -v b="$e1" '
      NR == FNR {t0[$1] = $3; next}
      {d = $3 - t0[$1]; if (d > 0) {sum[$2] += d; n[$2]++}}
      END {for (c in sum) {printf "%s%s x%d %.0f%%", sep, c, n[c], sum[c] / ((b - a) * hz) * 100; sep = ", "}}' \
    "$WORK/threads0" "$WORK/threads1")
  child_ticks
  c1=$CHILD_TICKS
  read -ra m1 < <(machine_ticks)
  # What else ran meanwhile: machine busy time less the server's and wrk's, and steal.
  R[$name.other_pct]=$(awk -v busy=$((m1[0] - m0[0])) -v srv=$((t1 - t0)) -v wrk=$((c1 - c0)) -v a="$e0" -v b="$e1" \
    -v hz="$CLK_TCK" -v n="$(nproc)" 'BEGIN {o = (busy - srv - wrk) / ((b - a) * hz * n) * 100; printf "%.0f", o < 0 ? 0 : o}')
  R[$name.steal_pct]=$(awk -v st=$((m1[1] - m0[1])) -v a="$e0" -v b="$e1" -v hz="$CLK_TCK" -v n="$(nproc)" \
    'BEGIN {printf "%.0f", st / ((b - a) * hz * n) * 100}')
  R[$name.wrk_cpu_pct]=$(awk -v w=$((c1 - c0)) -v a="$e0" -v b="$e1" -v hz="$CLK_TCK" -v n="$(nproc)" \
    'BEGIN {printf "%.0f", w / ((b - a) * hz * n) * 100}')
  line=$(grep '^BENCH ' "$RESULTS/wrk-$name.txt") || die "no BENCH line in $RESULTS/wrk-$name.txt"
  for kv in ${line#BENCH }; do
    k=${kv%%=*}
    v=${kv#*=}
    R[$name.$k]=$v
  done
  R[$name.cpu_us]=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="${R[$name.requests]}" \
    'BEGIN {printf "%.1f", n ? d * 1e6 / hz / n : 0}')
  log "$name: $(printf '%.0f' "${R[$name.rps]}") req/s, p50 ${R[$name.p50_us]} us, p99 ${R[$name.p99_us]} us," \
    "${R[$name.cpu_us]} CPU us/request, non-2xx ${R[$name.non2xx]}, wrk ${R[$name.wrk_cpu_pct]} %," \
    "other load ${R[$name.other_pct]} %, steal ${R[$name.steal_pct]} %; server threads: ${R[$name.threads]}"
}

# ---- profiles ----
# profile_perf NAME LOAD_FN ARGS...: perf record --call-graph dwarf on the
# running tokend (TD_PID) while `LOAD_FN TD_URL PROFILE_SECONDS ARGS...` runs
# (its output in RESULTS/wrk-profile-NAME.txt); reports in
# RESULTS/profile-NAME-{self,inclusive,dso,inclusive-named}.txt.
profile_perf() {
  local name=$1 fn=$2 data="$WORK/perf-$1.data"
  shift 2
  perf record -F 999 --call-graph dwarf,16384 -p "$TD_PID" -o "$data" >"$RESULTS/perf-record-$name.log" 2>&1 &
  local ppid=$!
  PIDS+=("$ppid")
  sleep 0.5
  "$fn" "$TD_URL" "$PROFILE_SECONDS" "$@" >"$RESULTS/wrk-profile-$name.txt" 2>&1 || true
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
    --store "sqlite:$db" --rate-limit 0 --threads "$THREADS" 2>>"$RESULTS/valgrind-$name.log" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$fn" "http://127.0.0.1:$port" "$((PROFILE_SECONDS * 3))" "$@" >"$RESULTS/wrk-profile-$name.txt" 2>&1 || true
  stop_pid "$pid" TERM
  callgrind_annotate --inclusive=yes "$out" 2>/dev/null | head -60 >"$RESULTS/profile-$name-inclusive.txt" || true
  callgrind_annotate --inclusive=no "$out" 2>/dev/null | head -60 >"$RESULTS/profile-$name-self.txt" || true
  grep -E '^ *[0-9,]+ \(' "$RESULTS/profile-$name-inclusive.txt" | grep -v '???:0x' \
    >"$RESULTS/profile-$name-inclusive-named.txt" || true
}

# ---- report helpers ----
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b ? 100 * a / b : 0}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }
verdict() { # value op target -> PASS/MISS
  awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {ok = (op == ">=") ? v >= t : v <= t; print ok ? "PASS" : "MISS"}'
}
