#!/usr/bin/env bash
# bench/network.sh — how fast tokend ingests network lifecycle events and how
# quickly it decides tokenizations, against nginx as the ceiling of what an
# HTTP server on this machine can do (the issue "network tokenization hub");
# with --store postgres, in the same run, SQLite against tokend on PostgreSQL
# with one node and with two (issue 11). Not part of CI.
#
#   bench/network.sh [--quick] [--store sqlite|postgres]
#   bench/network.sh --help
#
# Duration: about 2 minutes for SQLite, 2 more with --store postgres, plus any
# wait for a quiet machine; --quick (200 cards, 4,000 digital cards, 2 s runs)
# is a smoke test of the harness, not numbers to quote. Results:
# bench/results/<timestamp>/ (git-ignored): summary.md, the wrk outputs,
# tokend/nginx/PostgreSQL logs, captured bodies, profiles. It exits non-zero
# if a correctness check fails or a run used up its planned requests.
#
# What it measures, in order:
#  1. Builds a Release tokend (build-rel/), starts it on a free loopback port
#     with a fresh temporary store and --rate-limit 0 (the default
#     synchronous=FULL: every 200 to an event is on disk).
#  2. Seeds through the real API: an issuer (POST /admin/v1/issuers), its
#     "issuer" and "network" API keys, a card policy with high limits
#     (maxActiveTokens 1000, maxAttemptsPerHour 100000: the RED rules must not
#     fire under load), then BENCH_CARDS cards (POST /banking/v1/issuers/{id}/
#     cards, each with its own PAN, phone and email) and BENCH_DCARDS +
#     BENCH_PROFILE_DCARDS + 1 digital cards (POST /network/v1/tokenizations
#     by PAN with the registered phone and email and scores 5: GREEN, so
#     ACTIVE), with bench/seed_cards.c (libcurl multi, 64 in flight). Every
#     tokenization answer must be GREEN.
#  3. Plans the load (python3, deterministic): BENCH_EVENTS lifecycle events
#     for the digital cards, laid out for wrk's threads (bench/events.lua:
#     thread k sends lines k, k+T, ...). Each digital card belongs to one
#     thread and gets SUSPEND, RESUME, SUSPEND, ... (source WALLET, eventTime
#     one second later each time), one round over all the thread's cards at a
#     time, so every event changes the card and a card's events go out in
#     order, thousands of requests apart. 20 % of each thread's requests
#     (BENCH_DUP_PCT) are duplicates: the same body as an event the thread sent
#     64 to 5,000 requests earlier, as a TSP's retry would be. Also
#     BENCH_TOKENIZE tokenization requests, each with its own correlationId,
#     on the registered cards (GREEN path).
#  4. Captures real answers: one event on a spare digital card (a SUSPEND
#     answer, the longer of the two kinds) and checks that sending it again
#     gets the same bytes and writes nothing; a GREEN tokenization answer from
#     the seeding. nginx (worker_processes 2, access_log off, its own pid file,
#     error log and temp dirs) serves them as static files: POST on a static
#     file is 405 in nginx, so `error_page 405 =200` answers it 200 with the
#     same file, as run.sh does for PUT.
#  5. Runs, each as the same wrk command for both servers (wrk -t2 -d4s
#     --latency -s events.lua URL -- PATH BODIES KEY 2 once|wrap):
#     (a) POST /network/v1/events at -c64, nginx then tokend ("once": no body
#     repeats but the planned duplicates); (b) POST /network/v1/tokenizations
#     at -c32, nginx then tokend. For each: req/s, p50, p99, tokend/nginx
#     ratio, server CPU per request (utime+stime from /proc/PID/stat), and
#     how much of the machine wrk, other processes and steal took.
#  6. Checks the event run: wrk saw no non-2xx; from the plan and the number
#     of bodies each wrk thread handed out, the distinct events and the
#     duplicates that went out; the events recorded in dcard_events (sqlite3 on
#     the store file) are exactly some of those, each once, and number between
#     the distinct events sent less those tokend never answered and the
#     distinct events sent; tokend's 200s (its request log) are those events
#     plus the duplicates it answered, within the same in-flight bound as
#     run.sh's cancel check; the duplicates wrote nothing: the new operations,
#     outbox rows and digital card sequence numbers are exactly what the
#     recorded events owe (counted on the capture event). The tokenization
#     run: one digital card per tokenization answered 200, all GREEN.
#  7. Profiles tokend during a short event run (BENCH_EVENTS/2 events planned
#     the same way on the BENCH_PROFILE_DCARDS spare digital cards) and a short
#     tokenization run (BENCH_TOKENIZE/2 other bodies): perf record
#     --call-graph dwarf if `perf stat -e instructions true` works here, else
#     valgrind --tool=callgrind.
#
# --store postgres (issue 11): after step 2, a throwaway PostgreSQL cluster
# (scripts/pg.sh: a free loopback port, fsync and synchronous_commit on) and
# the seeded store, before any run, copied into a template database (tokenctl
# store copy, VACUUM ANALYZE). After step 7, for one node and then two (pg1,
# pg2): a database copied from the template; per run a CHECKPOINT, the nodes
# started on it (the SQLite store's keys, TD_PG_WRITERS writers each, 2 by
# default), the same wrk command, the nodes stopped: the event run with the
# same checks (counted in PostgreSQL with psql), then the tokenization run and
# its check. Two nodes: wrk's thread k connects to node k mod 2
# (bench/nodes.lua, WRK_NODES), so a digital card's events all go to one node.
# Per run also: the CPU µs per request of the nodes and of every process of
# the cluster, requests per tokend commit and per PostgreSQL write
# transaction (the COMMIT records pg_waldump counts in the run's WAL), WAL
# flushes (lib.sh, as in run.sh). Profiles, with perf: one node during 3 s of
# events on the spare digital cards on pg1's database (perf record
# --call-graph dwarf), then the whole machine during the same load on pg2's
# (lib.sh profile_system). The targets of issue 11 are reported, not
# enforced: events on one node >= 0.8 x SQLite's rate, >= 8 requests per
# PostgreSQL transaction at 64 connections.
#
# Every process it starts it stops by pid, the PostgreSQL cluster too (also on
# failure); the temp dir is removed at the end. The shell functions it shares
# with bench/run.sh and bench/notify.sh are in bench/lib.sh.
#
# A shared machine: before each run it waits (up to BENCH_QUIET_WAIT s, 120)
# until other processes use < 15 % of the CPUs, and reports for each run how
# much of the machine wrk, other processes and steal took. Numbers with
# "other" above a few % are disturbed: run again.
#
# Settings (environment): BENCH_CARDS (1000), BENCH_DCARDS (20000), BENCH_EVENTS
# (200000 requests planned, duplicates included), BENCH_DUP_PCT (20),
# BENCH_TOKENIZE (60000), BENCH_DURATION (4s), BENCH_THREADS (2: wrk threads
# and tokend --threads), BENCH_CONNECTIONS (64: the event runs),
# BENCH_TOK_CONNECTIONS (32: the tokenization runs), BENCH_PROFILE
# (auto|perf|callgrind|none), BENCH_PROFILE_DCARDS (4000),
# BENCH_SEED_CONCURRENCY (64), BENCH_QUIET_WAIT (120), BENCH_KEEP (0: 1 keeps
# the temp dir); with --store postgres the environment's TD_PG_WRITERS.
#
# A run that uses up its planned requests (a thread runs out) would report
# too low a req/s: network.sh then says so and fails; raise BENCH_EVENTS or
# BENCH_TOKENIZE (planning is cheap; more events per digital card are more
# rounds) or shorten BENCH_DURATION.
#
# Needs what run.sh needs: cmake, gcc, libcurl dev files, wrk, nginx,
# sqlite3, curl, python3, perf or valgrind, PostgreSQL 15 (server, psql,
# pgbench, pg_waldump) for --store postgres (scripts/deps.sh --bench).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh" # log, die, PIDS/cleanup, CPU accounting, tokend, nginx, bench_measure, profiles, PostgreSQL
bench_args "$@"             # QUICK, STORE_MODE

if ((QUICK)); then
  : "${BENCH_CARDS:=200}" "${BENCH_DCARDS:=4000}" "${BENCH_DURATION:=2s}" "${BENCH_EVENTS:=100000}"
  : "${BENCH_TOKENIZE:=30000}" "${BENCH_PROFILE_DCARDS:=1000}"
fi
N_CARDS=${BENCH_CARDS:-1000}
N_DCARDS=${BENCH_DCARDS:-20000}
N_EVENTS=${BENCH_EVENTS:-200000}
DUP_PCT=${BENCH_DUP_PCT:-20}
N_TOKENIZE=${BENCH_TOKENIZE:-60000}
DURATION=${BENCH_DURATION:-4s}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
TOK_CONNS=${BENCH_TOK_CONNECTIONS:-32}
PROFILE=${BENCH_PROFILE:-auto}
PROFILE_DCARDS=${BENCH_PROFILE_DCARDS:-4000}
SEED_CONC=${BENCH_SEED_CONCURRENCY:-64}
KEEP=${BENCH_KEEP:-0}
PROFILE_SECONDS=3
ISSUER_ID=BENCHISS01 # D1 issuer ids are exactly 10 characters
EXPIRY=1230          # every card's expiry (MMYY), in the future
DUP_GAP=64           # a duplicate repeats an event sent at least this many requests earlier by its thread
DUP_WINDOW=5000      # ... and at most this many
EV_PATH=/network/v1/events
TOK_PATH=/network/v1/tokenizations

bench_tools
bench_dirs tokend-netbench

# ---- 1. build ----
if [[ $STORE_MODE == postgres ]]; then build_tokend tokenctl; else build_tokend; fi
build_seed_cards

STORE="$WORK/store"
DB="$STORE/tokend.db"
mkdir -p "$STORE"
start_tokend main "$STORE"
log "tokend pid $TD_PID on $TD_URL, store $DB"
ADMIN_KEY=$(cat "$STORE/admin.key")

# ---- 2. seed: issuer, keys, policy, cards, digital cards ----
seed_t0=$EPOCHREALTIME
api POST /admin/v1/issuers "$ADMIN_KEY" "{\"issuerId\":\"$ISSUER_ID\",\"displayName\":\"bench issuer\"}" 201 >/dev/null
ISSUER_KEY=$(api POST "/admin/v1/issuers/$ISSUER_ID/api-keys" "$ADMIN_KEY" '{"role":"issuer"}' 201 | json_field apiKey)
NETWORK_KEY=$(api POST "/admin/v1/issuers/$ISSUER_ID/api-keys" "$ADMIN_KEY" '{"role":"network"}' 201 | json_field apiKey)
POLICY='{"decision":{"maxActiveTokens":1000,"maxAttemptsPerHour":100000}}'
api PUT "/admin/v1/issuers/$ISSUER_ID/card-policy" "$ADMIN_KEY" "$POLICY" 200 >"$RESULTS/card-policy.json"
{
  echo "ISSUER_ID=$ISSUER_ID"
  echo "ISSUER_KEY=$ISSUER_KEY"
  echo "NETWORK_KEY=$NETWORK_KEY"
} >"$RESULTS/seed.env"

# Cards: card-NNNNNN, PAN 4 99 <12 digits of the index> <Luhn digit>, phone
# +336<8 digits>, email userN@example.com. tokenize_bodies PREFIX FIRST COUNT
# writes tokenization bodies (correlationId PREFIX<7 digits>) by PAN on card
# (i mod BENCH_CARDS), with the registered phone and email and top scores.
python3 - "$N_CARDS" "$EXPIRY" >"$WORK/cards.jsonl" <<'PY'
import json, sys
n, expiry = int(sys.argv[1]), sys.argv[2]
def luhn(d):
    s = 0
    for i, ch in enumerate(reversed(d)):
        x = int(ch) * (2 if i % 2 == 0 else 1)
        s += x - 9 if x > 9 else x
    return d + str((10 - s % 10) % 10)
for i in range(n):
    print(json.dumps({"cardId": "card-%06d" % i, "consumerId": "cons-%06d" % i, "pan": luhn("499%012d" % i),
                      "expiry": expiry, "phone": "+336%08d" % i, "email": "user%d@example.com" % i,
                      "state": "ACTIVE"}, separators=(",", ":")))
PY
tokenize_bodies() { # PREFIX FIRST COUNT > bodies
  python3 - "$WORK/cards.jsonl" "$1" "$2" "$3" <<'PY'
import json, sys
cards = [json.loads(l) for l in open(sys.argv[1])]
prefix, first, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for j in range(first, first + count):
    c = cards[j % len(cards)]
    print(json.dumps({"correlationId": "%s%07d" % (prefix, j), "card": {"pan": c["pan"], "expiry": c["expiry"]},
                      "walletProviderId": "APPLE_PAY", "tokenRequestorId": "40010030273",
                      "tokenStorageId": "SE-%07d" % j, "isPrimary": True,
                      "device": {"id": "dev-%07d" % j, "type": "PHONE", "name": "bench phone", "os": "iOS"},
                      "scores": {"wallet": 5, "device": 5},
                      "endUser": {"phone": c["phone"], "email": c["email"]}}, separators=(",", ":")))
PY
}
SEED_DCARDS=$((N_DCARDS + PROFILE_DCARDS + 1))
tokenize_bodies seed- 0 "$SEED_DCARDS" >"$WORK/seed-tokenize.jsonl"
log "seeding $N_CARDS cards and $SEED_DCARDS digital cards through the API ($SEED_CONC in flight)"
"$WORK/seed_cards" "$TD_URL" "$ISSUER_KEY" "/banking/v1/issuers/$ISSUER_ID/cards" "$WORK/cards.jsonl" \
  "$WORK/cards-answers.jsonl" "$SEED_CONC" 201 2>>"$RESULTS/seed.log" ||
  die "registering cards failed: $(tail -3 "$RESULTS/seed.log")"
log "$(tail -1 "$RESULTS/seed.log")"
"$WORK/seed_cards" "$TD_URL" "$NETWORK_KEY" "$TOK_PATH" "$WORK/seed-tokenize.jsonl" \
  "$WORK/seed-answers.jsonl" "$SEED_CONC" 200 2>>"$RESULTS/seed.log" ||
  die "tokenizing failed: $(tail -3 "$RESULTS/seed.log")"
log "$(tail -1 "$RESULTS/seed.log")"
seed_s=$(awk -v a="$seed_t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
# Every answer GREEN; the digital card ids: the run's, the profile's, the capture's.
python3 - "$WORK/seed-answers.jsonl" "$N_DCARDS" "$PROFILE_DCARDS" "$WORK" <<'PY' || die "the seeding was not all GREEN"
import json, sys
answers = [json.loads(l) for l in open(sys.argv[1])]
n, p, work = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
bad = [a for a in answers if a.get("decision") != "GREEN"]
if bad:
    sys.exit("%d of %d tokenizations were not GREEN, e.g. %s" % (len(bad), len(answers), bad[0]))
ids = [a["digitalCardId"] for a in answers]
if len(set(ids)) != len(ids):
    sys.exit("digital card ids repeat")
open(work + "/dcards-bench.txt", "w").write("\n".join(ids[:n]) + "\n")
open(work + "/dcards-profile.txt", "w").write("\n".join(ids[n:n + p]) + "\n")
open(work + "/dcard-capture.txt", "w").write(ids[n + p] + "\n")
PY
log "seeded in ${seed_s}s: every tokenization GREEN"
# With --store postgres the seeded store (before any run) becomes the
# template of every PostgreSQL configuration's database.
if [[ $STORE_MODE == postgres ]]; then pg_setup "$DB"; fi

# ---- 3. plan the load ----
# plan_events DCARDS_FILE PREFIX LINES BODIES_OUT PLAN_OUT: the event list laid
# out for THREADS wrk threads (see the header), and the plan: per line,
# "eventId 0|1" (1: a planned duplicate).
plan_events() {
  python3 - "$1" "$2" "$3" "$4" "$5" "$THREADS" "$DUP_PCT" "$DUP_GAP" "$DUP_WINDOW" <<'PY'
import datetime, json, random, sys
dcards = [l.strip() for l in open(sys.argv[1]) if l.strip()]
prefix, lines, bodies_out, plan_out = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
T, pct, gap, window = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
rng = random.Random(20261122)
per = (lines + T - 1) // T
# One second after now, and a second more each round: later than the
# tokenization that made each card (an older event would be IGNORED as late).
base_ms = (int(datetime.datetime.now(datetime.timezone.utc).timestamp()) + 1) * 1000
def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        "%03dZ" % (ms % 1000)
shares = []
for k in range(T):
    cards = dcards[k::T]
    if not cards:
        sys.exit("no digital cards for thread %d" % k)
    share, sent, n = [], [], 0  # sent: the thread's distinct events so far
    for i in range(per):
        if (i + 1) * pct // 100 > i * pct // 100 and len(sent) >= gap:
            share.append(sent[rng.randint(max(0, len(sent) - window), len(sent) - gap)] + (1,))
            continue
        rnd, card = divmod(n, len(cards))
        eid = "%s%08d" % (prefix, n * T + k)
        body = json.dumps({"eventId": eid, "digitalCardId": cards[card],
                           "type": "SUSPEND" if rnd % 2 == 0 else "RESUME", "source": "WALLET",
                           "eventTime": iso(base_ms + rnd * 1000)}, separators=(",", ":"))
        sent.append((eid, body))
        share.append((eid, body, 0))
        n += 1
    shares.append(share)
with open(bodies_out, "w") as b, open(plan_out, "w") as p:
    for i in range(per):
        for k in range(T):
            eid, body, dup = shares[k][i]
            b.write(body + "\n")
            p.write("%s %d\n" % (eid, dup))
PY
}
plan_events "$WORK/dcards-bench.txt" ev "$N_EVENTS" "$WORK/events-bench.txt" "$WORK/events-plan.txt"
plan_events "$WORK/dcards-profile.txt" pe "$((N_EVENTS / 2))" "$WORK/events-profile.txt" "$WORK/events-profile-plan.txt"
tokenize_bodies lat- 0 "$N_TOKENIZE" >"$WORK/tokenize-bench.jsonl"
tokenize_bodies prf- 0 "$((N_TOKENIZE / 2))" >"$WORK/tokenize-profile.jsonl"
PLANNED_DUPS=$(awk '$2 == 1' "$WORK/events-plan.txt" | wc -l)
log "planned $(wc -l <"$WORK/events-bench.txt") event requests ($PLANNED_DUPS duplicates) on $N_DCARDS digital cards," \
  "$N_TOKENIZE tokenizations"

# ---- 4. real answers, then nginx serving bodies of the same sizes ----
mkdir -p "$WORK/nginx/www" "$WORK/nginx/tmp"
chmod 755 "$WORK" "$WORK/nginx" "$WORK/nginx/www" # nginx workers run as nobody
CAPTURE_DC=$(cat "$WORK/dcard-capture.txt")
CAPTURE_BODY=$(python3 -c 'import json, sys, time
print(json.dumps({"eventId": "cp00000000", "digitalCardId": sys.argv[1], "type": "SUSPEND", "source": "WALLET",
                  "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 1))},
                 separators=(",", ":")))' "$CAPTURE_DC")
count_rows() { sql "SELECT (SELECT count(*) FROM operations), (SELECT count(*) FROM outbox), (SELECT count(*) FROM dcard_events)"; }
IFS='|' read -r ops0 out0 ev0 < <(count_rows)
api POST "$EV_PATH" "$NETWORK_KEY" "$CAPTURE_BODY" 200 >"$WORK/nginx/www/event.json"
IFS='|' read -r ops1 out1 ev1 < <(count_rows)
api POST "$EV_PATH" "$NETWORK_KEY" "$CAPTURE_BODY" 200 >"$WORK/event-again.json"
IFS='|' read -r ops2 out2 ev2 < <(count_rows)
OPS_PER_EVENT=$((ops1 - ops0))
OUTBOX_PER_EVENT=$((out1 - out0))
grep -q '"result":"APPLIED"' "$WORK/nginx/www/event.json" || die "the capture event was not APPLIED: $(cat "$WORK/nginx/www/event.json")"
((ev1 - ev0 == 1)) || die "the capture event recorded $((ev1 - ev0)) events, expected 1"
cmp -s "$WORK/nginx/www/event.json" "$WORK/event-again.json" ||
  die "a duplicate event got another answer: $(cat "$WORK/event-again.json")"
((ops2 == ops1 && out2 == out1 && ev2 == ev1)) || die "a duplicate event wrote rows"
tail -1 "$WORK/seed-answers.jsonl" | tr -d '\n' >"$WORK/nginx/www/tokenize.json"
EVENT_BYTES=$(stat -c %s "$WORK/nginx/www/event.json")
TOK_BYTES=$(stat -c %s "$WORK/nginx/www/tokenize.json")
chmod 644 "$WORK/nginx/www/"*.json
cp "$WORK/nginx/www/event.json" "$RESULTS/body-event.json"
cp "$WORK/nginx/www/tokenize.json" "$RESULTS/body-tokenize.json"
log "captured bodies: event $EVENT_BYTES bytes (an applied event owes $OPS_PER_EVENT operation(s) and" \
  "$OUTBOX_PER_EVENT outbox row(s); its duplicate got the same bytes and wrote nothing), tokenization $TOK_BYTES bytes"

NG_PORT=$(free_port)
nginx_start <<EOF
  server {
    listen 127.0.0.1:$NG_PORT;
    root $WORK/nginx/www;
    add_header Cache-Control no-store;
    # POST on a static file is 405 in nginx (after reading the body): answer it 200 with the same file.
    location = $EV_PATH {
      rewrite ^ /event.json break;
      error_page 405 =200 /event.json;
    }
    location = $TOK_PATH {
      rewrite ^ /tokenize.json break;
      error_page 405 =200 /tokenize.json;
    }
    location = /event.json { internal; }
    location = /tokenize.json { internal; }
  }
EOF

check_nginx() { # path body_file expected_bytes
  local out
  out=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -X POST -H "Authorization: Bearer $NETWORK_KEY" \
    -H 'Content-Type: application/json' --data-binary "@$2" "$NG_URL$1")
  [[ $out == "200 $3" ]] || die "nginx POST $1 answered '$out', expected '200 $3'"
}
head -1 "$WORK/events-bench.txt" >"$WORK/one-event.json"
head -1 "$WORK/tokenize-bench.jsonl" >"$WORK/one-tokenize.json"
check_nginx "$EV_PATH" "$WORK/one-event.json" "$EVENT_BYTES"
check_nginx "$TOK_PATH" "$WORK/one-tokenize.json" "$TOK_BYTES"
log "nginx pid $NG_PID on $NG_URL (2 workers) answers both POSTs with 200 and the same body sizes"

# ---- 5. the runs ----
WRK_EV=(wrk "-t$THREADS" "-c$CONNS" "-d$DURATION" --latency -s "$ROOT/bench/events.lua")
WRK_TOK=(wrk "-t$THREADS" "-c$TOK_CONNS" "-d$DURATION" --latency -s "$ROOT/bench/events.lua")

dcard_seq_sum() { sql "SELECT sum(seq) FROM digital_cards WHERE correlation_id LIKE 'seed-%'"; }

# measure_events NAME: the event run against the running nodes (NODE_*; wrk
# to TD_URL, or WRK_ENV's nodes), then its checks (step 6): R[NAME.check] and
# R[NAME.ev_*]; the group commit (lib.sh group_commit).
measure_events() {
  local name=$1 ops0 out0 ev0 seq0 served0 g0 ops1 out1 ev1
  IFS='|' read -r ops0 out0 ev0 < <(count_rows)
  seq0=$(dcard_seq_sum)
  served0=$(served_200 "$EV_PATH")
  g0=$(store_commits)
  bench_measure "$name" "${NODE_PIDS[*]}" ${WRK_ENV[@]+"${WRK_ENV[@]}"} "${WRK_EV[@]}" "$TD_URL" -- "$EV_PATH" \
    "$WORK/events-bench.txt" "$NETWORK_KEY" "$THREADS" once
  sleep 0.5 # let the events wrk stopped waiting for reach their commit
  group_commit "$name" "$g0"
  IFS='|' read -r ops1 out1 ev1 < <(count_rows)
  check_events "$name" "$(($(served_200 "$EV_PATH") - served0))" "$((ops1 - ops0))" "$((out1 - out0))" \
    "$(($(dcard_seq_sum) - seq0))" "$((ev1 - ev0))"
}

# ---- 6. correctness ----
# check_events NAME SERVED OPS OUTBOX SEQ EVENTS: the event run NAME. Sent:
# thread k handed out the first issued_by_thread[k] bodies of its share (lines
# k, k+T, ...). Of those, the nodes answered SERVED (their logs); the rest
# (UNANSWERED = sent - SERVED <= wrk's in flight) were closed by wrk before
# tokend read them, and each can hide at most one distinct event. OPS, OUTBOX,
# SEQ, EVENTS: the new operations, outbox rows, digital card sequence numbers
# and dcard_events rows during the run. Sets R[NAME.ev_*] (the python's
# variables) and R[NAME.check].
check_events() {
  local name=$1 kv
  sql "SELECT event_id, outcome FROM dcard_events WHERE issuer_id = '$ISSUER_ID' AND source = 'WALLET'
       AND event_id LIKE 'ev%'" >"$WORK/events-recorded-$name.txt"
  python3 - "$WORK/events-plan.txt" "$THREADS" "${R[$name.issued_by_thread]}" "$2" \
    "${R[$name.requests]}" "${R[$name.non2xx]}" "$WORK/events-recorded-$name.txt" "$3" "$4" "$5" "$6" \
    "$OPS_PER_EVENT" "$OUTBOX_PER_EVENT" >"$WORK/events-check-$name.txt" <<'PY'
import collections, sys
plan = [l.split() for l in open(sys.argv[1])]
T = int(sys.argv[2])
issued_by = [int(x) for x in sys.argv[3].split(",")]
served, answered, non2xx = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[7]) if l.strip()]
ops, outbox, seq, events = (int(x) for x in sys.argv[8:12])
ops_per, outbox_per = int(sys.argv[12]), int(sys.argv[13])
sent_ids, sent_dups, sent = set(), 0, 0
for k in range(T):
    for i in range(issued_by[k]):
        eid, dup = plan[i * T + k]
        sent += 1
        sent_dups += dup == "1"
        sent_ids.add(eid)
distinct = len(sent_ids)
recorded = len(rows)
outcomes = collections.Counter(o for _, o in rows)
applied = outcomes.get("APPLIED", 0)
unanswered = sent - served
checks = {
    "no_non2xx": non2xx == 0,
    "served_bounds": answered <= served <= sent,
    "each_recorded_once": len({e for e, _ in rows}) == recorded,
    "recorded_were_sent": all(e in sent_ids for e, _ in rows),
    "recorded_bounds": distinct - unanswered <= recorded <= distinct,
    "dups_answered_bounds": sent_dups - unanswered <= served - recorded <= sent_dups,
    "only_these_events": events == recorded,
    "every_event_changed_the_card": applied == recorded,
    "dups_wrote_nothing": ops == ops_per * applied and outbox == outbox_per * applied and seq == recorded,
}
print("ev_sent=%d ev_sent_distinct=%d ev_sent_dups=%d ev_served=%d ev_unanswered=%d ev_recorded=%d ev_applied=%d"
      % (sent, distinct, sent_dups, served, unanswered, recorded, applied))
print("ev_outcomes=%s" % ",_".join("%s_%d" % kv for kv in sorted(outcomes.items())))
print("ev_failed=%s" % ",".join(k for k, ok in checks.items() if not ok))
print("ev_dups_answered=%d ev_ops=%d ev_outbox=%d ev_seq=%d" % (served - recorded, ops, outbox, seq))
PY
  local kvs
  while read -ra kvs; do
    for kv in "${kvs[@]}"; do R[$name.${kv%%=*}]=${kv#*=}; done
  done <"$WORK/events-check-$name.txt"
  R[$name.check]=PASS
  [[ -z ${R[$name.ev_failed]} ]] || R[$name.check]="FAIL (${R[$name.ev_failed]})"
  R[$name.ev_new_per_s]=$(awk -v n="${R[$name.ev_recorded]}" -v d="${R[$name.duration_us]}" 'BEGIN {printf "%.0f", d ? n / (d / 1e6) : 0}')
  log "$name: event check ${R[$name.check]}: sent ${R[$name.ev_sent]} (${R[$name.ev_sent_dups]} duplicates)," \
    "answered 200 ${R[$name.ev_served]}, recorded ${R[$name.ev_recorded]}; ${R[$name.commits]} commits," \
    "${R[$name.batch]} jobs each"
}

# measure_tokenize NAME: the tokenization run against the running nodes,
# then its check: one digital card per tokenization answered 200, no other,
# all GREEN, within wrk's 200s and its in-flight requests.
measure_tokenize() {
  local name=$1 served0 g0
  served0=$(served_200 "$TOK_PATH")
  g0=$(store_commits)
  bench_measure "$name" "${NODE_PIDS[*]}" ${WRK_ENV[@]+"${WRK_ENV[@]}"} "${WRK_TOK[@]}" "$TD_URL" -- "$TOK_PATH" \
    "$WORK/tokenize-bench.jsonl" "$NETWORK_KEY" "$THREADS" once
  sleep 0.5
  group_commit "$name" "$g0"
  R[$name.tok_served]=$(($(served_200 "$TOK_PATH") - served0))
  R[$name.tok_recorded]=$(sql "SELECT count(*) FROM digital_cards WHERE correlation_id LIKE 'lat-%'")
  R[$name.tok_green]=$(sql "SELECT count(*) FROM digital_cards WHERE correlation_id LIKE 'lat-%' AND answer_json LIKE '{\"decision\":\"GREEN\"%'")
  row_check "$name" "${R[$name.tok_recorded]}" "${R[$name.tok_served]}" "${R[$name.tok_green]}"
  log "$name: tokenization check ${R[$name.check]}: ${R[$name.tok_recorded]} new digital cards" \
    "(${R[$name.tok_green]} GREEN), ${R[$name.tok_served]} answered 200; ${R[$name.commits]} commits"
}

log "event runs: ${WRK_EV[*]} URL -- $EV_PATH BODIES KEY $THREADS once|wrap"
bench_measure nginx-events "$(ng_pids)" "${WRK_EV[@]}" "$NG_URL" -- "$EV_PATH" "$WORK/events-bench.txt" \
  "$NETWORK_KEY" "$THREADS" wrap
measure_events tokend-events
log "tokenization runs: ${WRK_TOK[*]} URL -- $TOK_PATH BODIES KEY $THREADS once|wrap"
bench_measure nginx-tokenize "$(ng_pids)" "${WRK_TOK[@]}" "$NG_URL" -- "$TOK_PATH" "$WORK/tokenize-bench.jsonl" \
  "$NETWORK_KEY" "$THREADS" wrap
measure_tokenize tokend-tokenize

# The SQLite runs' figures, as the summary names them.
for k in ev_sent ev_sent_distinct ev_sent_dups ev_served ev_unanswered ev_recorded ev_applied ev_dups_answered \
  ev_new_per_s ev_ops ev_outbox ev_seq; do
  printf -v "${k^^}" '%s' "${R[tokend-events.$k]}"
done
EV_OUTCOMES=${R[tokend-events.ev_outcomes]//_/ }
EV_BATCH=${R[tokend-events.batch]}
EV_COMMITS=${R[tokend-events.commits]}
TOK_BATCH=${R[tokend-tokenize.batch]}
ev_check=${R[tokend-events.check]}
TOK_RECORDED=${R[tokend-tokenize.tok_recorded]}
TOK_GREEN=${R[tokend-tokenize.tok_green]}
TOK_SERVED=${R[tokend-tokenize.tok_served]}
TOK_OK200=${R[tokend-tokenize.ok200]}
TOK_INFLIGHT=${R[tokend-tokenize.inflight]}
tok_check=${R[tokend-tokenize.check]}
log "event check: $ev_check; tokenization check: $tok_check"

# ---- 7. profile ----
# The profile's load: LOAD URL SECONDS CONNECTIONS PATH BODIES.
profile_load() {
  wrk "-t$THREADS" "-c$3" "-d${2}s" --latency -s "$ROOT/bench/events.lua" "$1" -- "$4" "$5" "$NETWORK_KEY" \
    "$THREADS" once
}
case $PROFILE in
perf)
  log "profiling with perf record (events on spare digital cards, then tokenizations), ${PROFILE_SECONDS}s each"
  profile_perf events profile_load "$CONNS" "$EV_PATH" "$WORK/events-profile.txt"
  profile_perf tokenize profile_load "$TOK_CONNS" "$TOK_PATH" "$WORK/tokenize-profile.jsonl"
  ;;
callgrind)
  log "profiling with valgrind --tool=callgrind (events on spare digital cards, then tokenizations)"
  stop_pid "$TD_PID" TERM
  profile_callgrind events "$DB" profile_load "$CONNS" "$EV_PATH" "$WORK/events-profile.txt"
  profile_callgrind tokenize "$DB" profile_load "$TOK_CONNS" "$TOK_PATH" "$WORK/tokenize-profile.jsonl"
  ;;
*) log "no profiler: skipping the profile" ;;
esac
if kill -0 "$TD_PID" 2>/dev/null; then stop_pid "$TD_PID" TERM; fi
stop_pid "$NG_PID" QUIT
DB_MB=$(du -m "$DB" | cut -f1)

# ---- 7b. PostgreSQL (--store postgres): one node, two nodes, the profiles ----
# pg_configuration NAME N (called by lib.sh pg_runs): N nodes on a fresh copy
# of the seeded store; the event run and the tokenization run with their
# checks, each measured by pg_measured (nodes started for the run and stopped
# after it). Two nodes: wrk's thread k goes to node k mod 2 (bench/nodes.lua,
# WRK_NODES), each with half of the connections; a digital card's events all
# come from one thread, so from one node.
pg_configuration() {
  pg_db_new "td_$1"
  pg_measured "$1-events" "$2" measure_events
  pg_measured "$1-tokenize" "$2" measure_tokenize
}
if [[ $STORE_MODE == postgres ]]; then
  pg_runs events profile_load "$CONNS" "$EV_PATH" "$WORK/events-profile.txt"
fi

# ---- report ----
# pg_summary: the PostgreSQL part of summary.md (--store postgres).
pg_summary() {
  local n r1
  pg_summary_intro "Two nodes: the same wrk commands, thread k connected to node k mod 2 (bench/nodes.lua," \
    "WRK_NODES): half of the connections per node."
  echo
  pg_table_head
  pg_table_group events nginx-events tokend-events "nginx POST $EV_PATH (static), -c$CONNS" \
    "SQLite: events (durable, $DUP_PCT % duplicates)"
  pg_table_group tokenize nginx-tokenize tokend-tokenize "nginx POST $TOK_PATH (static), -c$TOK_CONNS" \
    "SQLite: tokenizations (GREEN, durable)"
  echo
  echo "Checks on PostgreSQL (the same as SQLite's, on the configuration's database and the nodes' logs):"
  for n in pg1-events pg2-events; do
    echo "- $n (${R[$n.check]}): wrk's threads sent ${R[$n.ev_sent]} requests (${R[$n.ev_sent_distinct]} distinct" \
      "events, ${R[$n.ev_sent_dups]} duplicates); the nodes answered ${R[$n.ev_served]} 200; ${R[$n.ev_recorded]}" \
      "events recorded once each (${R[$n.ev_outcomes]//_/ }), ${R[$n.ev_new_per_s]} new events/s; new rows" \
      "${R[$n.ev_ops]} operations, ${R[$n.ev_outbox]} outbox, +${R[$n.ev_seq]} sequence numbers."
  done
  for n in pg1-tokenize pg2-tokenize; do
    echo "- $n (${R[$n.check]}): ${R[$n.tok_recorded]} new digital cards (${R[$n.tok_green]} GREEN), the nodes" \
      "answered ${R[$n.tok_served]} 200; wrk ${R[$n.ok200]} 200s + ${R[$n.inflight]} in flight."
  done
  echo
  echo "Write transactions and WAL per run:"
  pg_write_details request pg1-events pg2-events pg1-tokenize pg2-tokenize
  echo
  echo "Bounds (lib.sh pg_bounds):"
  echo "- $(pg_bounds pg1-events "$CONNS" "${TD_PG_WRITERS:-2}" 0)"
  echo "- $(pg_bounds pg2-events "$CONNS" $((2 * ${TD_PG_WRITERS:-2})) 0)"
  echo "- $(pg_bounds pg1-tokenize "$TOK_CONNS" "${TD_PG_WRITERS:-2}" 0)"
  pg_profile_note events
  r1=$(pct "${R[pg1-events.rps]}" "${R[tokend-events.rps]}")
  echo
  echo "| target (issue 11; reported, not enforced) | measured | |"
  echo "|---|---:|---|"
  echo "| durable events, one PostgreSQL node >= 0.8 × SQLite (same run) | ${r1} % | $(verdict "$r1" '>=' 80) |"
  echo "| >= 8 requests per PostgreSQL transaction at $CONNS connections, one node | ${R[pg1-events.req_per_xact]} (per tokend commit: ${R[pg1-events.req_per_commit]}) | $(verdict "${R[pg1-events.req_per_xact]}" '>=' 8) |"
}

ratio_ev=$(pct "${R[tokend-events.rps]}" "${R[nginx-events.rps]}")
ratio_tok=$(pct "${R[tokend-tokenize.rps]}" "${R[nginx-tokenize.rps]}")
EXHAUSTED=$((${R[tokend-events.exhausted_threads]} + ${R[tokend-tokenize.exhausted_threads]}))
{
  echo "# tokend network benchmark $STAMP"
  echo
  about_machine
  echo
  echo "Commands: events \`${WRK_EV[*]/#$ROOT\//} URL -- $EV_PATH BODIES NETWORK_KEY $THREADS once|wrap\`;"
  echo "tokenizations \`${WRK_TOK[*]/#$ROOT\//} URL -- $TOK_PATH BODIES NETWORK_KEY $THREADS once|wrap\`"
  echo "(\"once\" for tokend, \"wrap\" for nginx)."
  echo "Seeded through the API in ${seed_s}s: $N_CARDS cards, $SEED_DCARDS digital cards (all GREEN);" \
    "$(grep -c 'requests in' "$RESULTS/seed.log") seeding passes: $(grep 'requests in' "$RESULTS/seed.log" | sed 's/^seed_cards: //' | paste -sd ';' | sed 's/;/; /g')."
  echo "Bodies: event answer $EVENT_BYTES B (SUSPEND; a RESUME answer is 3 B shorter), tokenization answer $TOK_BYTES B." \
    "Store after the runs: ${DB_MB} MB."
  echo
  wrk_table_head
  wrk_row "nginx POST $EV_PATH (static $EVENT_BYTES B), -c$CONNS" nginx-events "—"
  wrk_row "tokend POST $EV_PATH (durable, $DUP_PCT % duplicates), -c$CONNS" tokend-events "${ratio_ev} %"
  wrk_row "nginx POST $TOK_PATH (static $TOK_BYTES B), -c$TOK_CONNS" nginx-tokenize "—"
  wrk_row "tokend POST $TOK_PATH (GREEN, durable), -c$TOK_CONNS" tokend-tokenize "${ratio_tok} %"
  echo
  echo "Events: $EV_NEW_PER_S new events recorded per second ($EV_RECORDED in the run);" \
    "group commit: $EV_COMMITS commits, $EV_BATCH requests per commit on average. Tokenizations: $TOK_BATCH per commit."
  echo
  echo "Event correctness ($ev_check): wrk's threads sent $EV_SENT requests: $EV_SENT_DISTINCT distinct events and" \
    "$EV_SENT_DUPS planned duplicates; tokend answered $EV_SERVED of them 200 (its request log), wrk counted" \
    "${R[tokend-events.requests]} answers, non-2xx ${R[tokend-events.non2xx]}; $EV_UNANSWERED request(s) were closed by wrk" \
    "before tokend read them. dcard_events got $EV_RECORDED new events, each once and each one that was sent" \
    "($EV_OUTCOMES); tokend's other $EV_DUPS_ANSWERED 200s were duplicates. New rows: $EV_OPS operations," \
    "$EV_OUTBOX outbox rows, sequence numbers +$EV_SEQ — what $EV_APPLIED applied events owe" \
    "($OPS_PER_EVENT operation and $OUTBOX_PER_EVENT outbox row each), so the duplicates wrote nothing."
  echo
  echo "Tokenization correctness ($tok_check): $TOK_RECORDED new digital cards, $TOK_GREEN of them GREEN; tokend" \
    "answered $TOK_SERVED tokenizations 200 (its log); wrk counted $TOK_OK200 answers 200, non-2xx" \
    "${R[tokend-tokenize.non2xx]}, and $TOK_INFLIGHT in flight when it stopped."
  echo
  echo "Server CPU by thread (% of one core):"
  for n in nginx-events tokend-events nginx-tokenize tokend-tokenize; do echo "- $n: ${R[$n.threads]}"; done
  if ((EXHAUSTED)); then
    echo
    echo "WARNING: $EXHAUSTED wrk thread(s) ran out of planned requests, so a req/s is too low:"
    echo "raise BENCH_EVENTS / BENCH_TOKENIZE or shorten BENCH_DURATION."
  fi
  echo
  echo "| target | measured | |"
  echo "|---|---:|---|"
  echo "| events (durable, $DUP_PCT % duplicates) >= 20 % of nginx | ${ratio_ev} % | $(verdict "$ratio_ev" '>=' 20) |"
  echo "| tokenization p99 <= 10 ms at $TOK_CONNS connections | $(ms "${R[tokend-tokenize.p99_us]}") ms | $(verdict "${R[tokend-tokenize.p99_us]}" '<=' 10000) |"
  echo
  echo "Profile ($PROFILE): profile-events-*.txt and profile-tokenize-*.txt beside this file."
  if [[ $STORE_MODE == postgres ]]; then pg_summary; fi
} >"$RESULTS/summary.md"
cat "$RESULTS/summary.md"
show_profiles events tokenize pg1-events pg-events
log "results in $RESULTS"
if [[ $STORE_MODE == postgres ]]; then
  check_runs tokend-events tokend-tokenize pg1-events pg2-events pg1-tokenize pg2-tokenize
else
  check_runs tokend-events tokend-tokenize
fi
