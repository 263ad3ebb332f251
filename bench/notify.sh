#!/usr/bin/env bash
# bench/notify.sh — how fast tokend delivers the notifications and end-user
# messages it owes, to a real receiver that fails 30 % of first attempts
# (issue "Reliable notifications"): zero loss, every row delivered, and the
# rate, per delivery profile (d1 with batching on and off, classic, webhook),
# against the receiver's and nginx's ceilings; with --store postgres, in the
# same run, SQLite against tokend on PostgreSQL with one node and with two
# (issue 11). Not part of CI.
#
#   bench/notify.sh [--quick] [--store sqlite|postgres]
#   bench/notify.sh --help
#
# Duration: about 2 minutes for SQLite, 3 more with --store postgres, plus any
# wait for a quiet machine; --quick (200 cards, 2,000 digital cards a
# scenario, 2 s ceiling runs) is a smoke test of the harness, not numbers to
# quote. Results: bench/results/<timestamp>/ (git-ignored): summary.md, per
# delivery a timeline (seconds since the PUT, rows delivered, transfers in
# flight, every 100 ms), receiver/tokend/PostgreSQL logs, profiles. It exits
# non-zero if a delivery loses or kills a row (the loss check).
#
# What it measures, in order:
#  1. Builds a Release tokend and tokenctl (build-rel/) and bench/seed_cards.c.
#     Starts two reference receivers (`tokenctl -q listen`, docs/receiver.md)
#     on free loopback ports, each requiring a bearer token or a Standard
#     Webhooks signature: "rx" fails the first attempt of BENCH_FAIL_PCT
#     (30) % of the distinct notification ids with HTTP 500 (picked by a hash
#     of the id); "rx-ceiling" never fails. Starts tokend (fresh temporary
#     SQLite store, --rate-limit 0, --delivery-concurrency
#     BENCH_DELIVERY_CONCURRENCY).
#  2. Seeds through the real API, one issuer per scenario (BNOTIFY00k), while
#     no delivery is configured (rows wait): BENCH_CARDS cards, BENCH_DCARDS
#     GREEN tokenizations (each owes DIGITIZE SUCCESSFUL to the issuer and an
#     ACTIVATION message to the end user) and one SUSPEND lifecycle event per
#     digital card (owes SUSPEND). So each digital card has two notifications
#     in sequence (the second waits while the first is retried) and a message.
#     With --store postgres: a throwaway PostgreSQL cluster (scripts/pg.sh) and
#     the seeded store, nothing delivered yet, copied into a template database
#     (tokenctl store copy, VACUUM ANALYZE).
#  3. For each scenario — d1-batch64 (d1, d1BatchMax 64), d1 (no batching),
#     classic, webhook (webhook-signed) — waits for a quiet machine, starts
#     bench/watch_delivery.py (one process following the nodes' /metrics every
#     100 ms), PUTs the issuer's delivery settings (base URL and messaging URL
#     on rx) and waits until every row of the issuer is delivered. The rate is
#     rows / (last delivery - the PUT): it includes the back-off before each
#     retried row's second attempt (full jitter, up to 2 s after the first
#     failure), so it is a lower bound; the steady rate (10 % to 90 % of the
#     rows) and the busiest second are reported too, and the CPU µs per row of
#     tokend and of the receiver (utime+stime, /proc). The loss check
#     (PASS/FAIL): every outbox row of the issuer DELIVERED, none dead; the
#     receiver's distinct notifications and messages grew by exactly the
#     number of rows (it drops duplicates by id), and it injected failures.
#  4. The ceilings, same run: one wrk command, `wrk -t2 -c64 -d4s --latency -s
#     bench/events.lua URL -- PATH BODIES TOKEN 2 once|wrap`, POSTs unique d1
#     Notify Digital Card Operation bodies straight to rx-ceiling (how fast the
#     receiver itself takes notifications), and to nginx answering 204 with no
#     body, as the receiver does (how fast an HTTP server answers on this
#     machine). Ratios are tokend's steady delivered/s against both.
#  5. Profiles tokend with perf record --call-graph dwarf while it delivers a
#     fifth issuer's rows in the d1 profile (no batching); only perf is wired
#     here.
#  5b. With --store postgres, for one node and then two (pg1, pg2): a database
#     copied from the template and a fresh receiver rx (the same failures: the
#     copies hold the same notification ids); per scenario a CHECKPOINT, the
#     nodes started on the database (the SQLite store's keys), the settings
#     PUT on node 1, the same delivery and loss check (counted with psql),
#     the nodes stopped. Two nodes both claim rows (FOR UPDATE SKIP LOCKED):
#     the report gives each node's share. Per delivery also: the CPU µs per
#     row of all nodes and of every process of the cluster, rows per tokend
#     commit and per PostgreSQL write transaction (the COMMIT records
#     pg_waldump counts in the delivery's WAL), WAL flushes. Profiles, with
#     perf: one node delivering the fifth issuer's rows on pg1's database
#     (perf record --call-graph dwarf), then the whole machine while one node
#     delivers them on pg2's (lib.sh profile_system). The target of issue 11
#     is reported, not enforced: two nodes deliver at least the SQLite rate,
#     with zero loss.
#
# A shared machine: before each delivery and ceiling run it waits (up to
# BENCH_QUIET_WAIT s, 120) until other processes use < 15 % of the CPUs, and
# reports how much of the machine other processes took ("other load").
#
# Settings (environment): BENCH_CARDS (1000), BENCH_DCARDS (20000 per
# scenario), BENCH_SCENARIOS ("d1-batch64 d1 classic webhook": which to run;
# the profile's issuer is seeded only when BENCH_PROFILE is not none),
# BENCH_FAIL_PCT (30), BENCH_DELIVERY_CONCURRENCY (64), BENCH_DURATION (4s,
# the ceiling runs), BENCH_THREADS (2: wrk threads and tokend --threads),
# BENCH_PROFILE (auto|perf|none), BENCH_SEED_CONCURRENCY (64),
# BENCH_DELIVER_TIMEOUT (300 s per delivery), BENCH_QUIET_WAIT (120),
# BENCH_KEEP (0: 1 keeps the temp dir); with --store postgres the
# environment's TD_PG_WRITERS (the nodes' writers, 2 if unset).
#
# Every process it starts it stops by pid, the PostgreSQL cluster too (also on
# failure); the temp dir is removed at the end. The shell functions it shares
# with bench/run.sh and bench/network.sh are in bench/lib.sh.
#
# Needs what run.sh needs (scripts/deps.sh --bench; PostgreSQL 15 for --store
# postgres).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh" # log, die, PIDS/cleanup, CPU accounting, tokend, nginx, wrk runs, profiles, PostgreSQL
bench_args "$@"             # QUICK, STORE_MODE

if ((QUICK)); then
  : "${BENCH_CARDS:=200}" "${BENCH_DCARDS:=2000}" "${BENCH_DURATION:=2s}"
fi
N_CARDS=${BENCH_CARDS:-1000}
N_DCARDS=${BENCH_DCARDS:-20000}
FAIL_PCT=${BENCH_FAIL_PCT:-30}
CONC=${BENCH_DELIVERY_CONCURRENCY:-64}
DURATION=${BENCH_DURATION:-4s}
THREADS=${BENCH_THREADS:-2}
PROFILE=${BENCH_PROFILE:-auto}
SEED_CONC=${BENCH_SEED_CONCURRENCY:-64}
DELIVER_TIMEOUT=${BENCH_DELIVER_TIMEOUT:-300}
KEEP=${BENCH_KEEP:-0}
PROFILE_SECONDS=3
EXPIRY=1230
read -r -a SCENARIOS <<<"${BENCH_SCENARIOS:-d1-batch64 d1 classic webhook}"
for s in "${SCENARIOS[@]}"; do
  case $s in d1-batch64 | d1 | classic | webhook) ;; *) echo "BENCH_SCENARIOS: unknown scenario $s" >&2 && exit 2 ;; esac
done
RX_TOKEN=bench-receiver-token
WHSEC="whsec_$(head -c 24 /dev/urandom | base64)"
TD_EXTRA=(--delivery-concurrency "$CONC")

bench_tools
bench_dirs tokend-notifybench

# ---- 1. build, receivers, tokend ----
build_tokend tokenctl
build_seed_cards

# start_receiver NAME [more listen flags] -> RX_PID, RX_URL
start_receiver() {
  local name=$1 port
  shift
  port=$(free_port)
  "$TOKENCTL" -q listen --port "$port" --bearer "$RX_TOKEN" --webhook-secret "$WHSEC" "$@" \
    >"$RESULTS/receiver-$name.log" 2>&1 &
  RX_PID=$!
  PIDS+=("$RX_PID")
  RX_URL="http://127.0.0.1:$port"
  wait_healthz "$RX_URL" "$RX_PID" "the receiver $name" "$RESULTS/receiver-$name.log"
}
# start_rx NAME: the receiver that fails first attempts, RX and RXPID.
start_rx() {
  start_receiver "$1" --fail-first 1 --fail-mode 500 --fail-percent "$FAIL_PCT"
  RX=$RX_URL
  RXPID=$RX_PID
}
start_rx rx
start_receiver ceiling
CEIL_URL=$RX_URL
CEIL_PID=$RX_PID

STORE="$WORK/store"
DB="$STORE/tokend.db"
mkdir -p "$STORE"
start_tokend main "$STORE"
log "tokend pid $TD_PID on $TD_URL (delivery concurrency $CONC); receivers $RX (fails $FAIL_PCT %) and $CEIL_URL"
ADMIN_KEY=$(cat "$STORE/admin.key")

# rx_counts: the counters of the receiver at RX "received duplicates
# failedInjected" (0 for one it has none of yet).
rx_counts() {
  curl -sf "$RX/state" | python3 -c 'import json, sys
c = json.load(sys.stdin)["counts"]
print(*(c.get(k, 0) for k in ("received", "duplicates", "failedInjected")))'
}

# ---- 2. seed ----
# seed_issuer K ISSUER_ID: cards, GREEN tokenizations and one SUSPEND event per
# digital card, through the API; nothing is delivered yet (no settings).
seed_issuer() {
  local k=$1 iss=$2 issuer_key network_key
  api POST /admin/v1/issuers "$ADMIN_KEY" "{\"issuerId\":\"$iss\",\"displayName\":\"bench issuer $k\"}" 201 >/dev/null
  issuer_key=$(api POST "/admin/v1/issuers/$iss/api-keys" "$ADMIN_KEY" '{"role":"issuer"}' 201 | json_field apiKey)
  network_key=$(api POST "/admin/v1/issuers/$iss/api-keys" "$ADMIN_KEY" '{"role":"network"}' 201 | json_field apiKey)
  api PUT "/admin/v1/issuers/$iss/card-policy" "$ADMIN_KEY" \
    '{"decision":{"maxActiveTokens":1000,"maxAttemptsPerHour":100000}}' 200 >/dev/null
  python3 - "$k" "$N_CARDS" "$N_DCARDS" "$EXPIRY" "$WORK/cards-$k.jsonl" "$WORK/tok-$k.jsonl" <<'PY'
import json, sys
k, ncards, ndcards, expiry, cards_out, tok_out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \
    sys.argv[5], sys.argv[6]
def luhn(d):
    s = 0
    for i, ch in enumerate(reversed(d)):
        x = int(ch) * (2 if i % 2 == 0 else 1)
        s += x - 9 if x > 9 else x
    return d + str((10 - s % 10) % 10)
cards = []
with open(cards_out, "w") as f:
    for i in range(ncards):
        c = {"cardId": "card-%06d" % i, "consumerId": "cons-%06d" % i, "pan": luhn("49%d%012d" % (k, i)),
             "expiry": expiry, "phone": "+336%08d" % i, "email": "user%d@example.com" % i, "state": "ACTIVE"}
        cards.append(c)
        f.write(json.dumps(c, separators=(",", ":")) + "\n")
with open(tok_out, "w") as f:
    for j in range(ndcards):
        c = cards[j % ncards]
        f.write(json.dumps({"correlationId": "n%d-%07d" % (k, j), "card": {"pan": c["pan"], "expiry": c["expiry"]},
                            "walletProviderId": "GOOGLE_PAY", "tokenRequestorId": "40010075001",
                            "tokenStorageId": "SE-%07d" % j, "isPrimary": True,
                            "device": {"id": "dev-%07d" % j, "type": "PHONE", "name": "bench phone", "os": "Android"},
                            "scores": {"wallet": 5, "device": 5},
                            "endUser": {"phone": c["phone"], "email": c["email"]}}, separators=(",", ":")) + "\n")
PY
  "$WORK/seed_cards" "$TD_URL" "$issuer_key" "/banking/v1/issuers/$iss/cards" "$WORK/cards-$k.jsonl" \
    "$WORK/cards-answers-$k.jsonl" "$SEED_CONC" 201 2>>"$RESULTS/seed.log" ||
    die "registering cards failed: $(tail -3 "$RESULTS/seed.log")"
  "$WORK/seed_cards" "$TD_URL" "$network_key" /network/v1/tokenizations "$WORK/tok-$k.jsonl" \
    "$WORK/tok-answers-$k.jsonl" "$SEED_CONC" 200 2>>"$RESULTS/seed.log" ||
    die "tokenizing failed: $(tail -3 "$RESULTS/seed.log")"
  python3 - "$k" "$WORK/tok-answers-$k.jsonl" "$WORK/events-$k.jsonl" <<'PY' || die "the seeding was not all GREEN"
import datetime, json, sys
k, answers, out = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])], sys.argv[3]
bad = [a for a in answers if a.get("decision") != "GREEN"]
if bad:
    sys.exit("%d of %d tokenizations were not GREEN, e.g. %s" % (len(bad), len(answers), bad[0]))
at = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
with open(out, "w") as f:
    for j, a in enumerate(answers):
        f.write(json.dumps({"eventId": "s%s-%07d" % (k, j), "digitalCardId": a["digitalCardId"], "type": "SUSPEND",
                            "source": "WALLET", "eventTime": at}, separators=(",", ":")) + "\n")
PY
  sleep 1 # the events' eventTime is a second after the tokenizations
  "$WORK/seed_cards" "$TD_URL" "$network_key" /network/v1/events "$WORK/events-$k.jsonl" \
    "$WORK/events-answers-$k.jsonl" "$SEED_CONC" 200 2>>"$RESULTS/seed.log" ||
    die "posting events failed: $(tail -3 "$RESULTS/seed.log")"
  local not_applied
  not_applied=$(awk '!/"result":"APPLIED"/' "$WORK/events-answers-$k.jsonl")
  [[ -z $not_applied ]] || die "some SUSPEND events were not APPLIED, e.g. ${not_applied%%$'\n'*}"
}

seed_t0=$EPOCHREALTIME
ALL=("${SCENARIOS[@]}")
[[ $PROFILE == none ]] || ALL+=(profile)
declare -A ISS
for k in "${!ALL[@]}"; do
  ISS[${ALL[$k]}]=$(printf 'BNOTIFY%03d' "$((k + 1))")
  log "seeding ${ISS[${ALL[$k]}]} (${ALL[$k]}): $N_CARDS cards, $N_DCARDS tokenizations and SUSPEND events"
  seed_issuer "$k" "${ISS[${ALL[$k]}]}"
done
seed_s=$(awk -v a="$seed_t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
OWED=$(sql "SELECT trim(channel || ' ' || operation || message || ' ' || status) AS what, count(*) FROM outbox
            WHERE issuer_id = '${ISS[${SCENARIOS[0]}]}' GROUP BY what ORDER BY what" |
  awk -F'|' '{printf "%s%s %s", sep, $1, $2; sep = ", "}')
log "seeded in ${seed_s}s; each issuer owes $OWED"
# With --store postgres the seeded store (nothing delivered yet) becomes the
# template of every PostgreSQL configuration's database.
if [[ $STORE_MODE == postgres ]]; then pg_setup "$DB"; fi

# ---- 3. the deliveries ----
# settings_body SCENARIO: the issuer's delivery settings on rx.
settings_body() {
  case $1 in
  d1-batch64) echo "{\"profile\":\"d1\",\"baseUrl\":\"$RX/issuer\",\"auth\":{\"type\":\"bearer\",\"token\":\"$RX_TOKEN\"},\"d1BatchMax\":64,\"messagingUrl\":\"$RX/messages\"}" ;;
  d1 | profile) echo "{\"profile\":\"d1\",\"baseUrl\":\"$RX/issuer\",\"auth\":{\"type\":\"bearer\",\"token\":\"$RX_TOKEN\"},\"d1BatchMax\":1,\"messagingUrl\":\"$RX/messages\"}" ;;
  classic) echo "{\"profile\":\"classic\",\"baseUrl\":\"$RX/issuer\",\"auth\":{\"type\":\"bearer\",\"token\":\"$RX_TOKEN\"},\"messagingUrl\":\"$RX/messages\"}" ;;
  webhook) echo "{\"profile\":\"webhook\",\"baseUrl\":\"$RX/webhook\",\"auth\":{\"type\":\"webhook\",\"secret\":\"$WHSEC\"},\"messagingUrl\":\"$RX/messages\"}" ;;
  esac
}

# deliver NAME SCENARIO: configures delivery for the scenario's issuer on the
# first running node (TD_URL) and waits until all its rows are delivered, by
# whichever nodes (NODE_PIDS, NODE_URLS); R[NAME.*] = what it measured, per
# row (R[NAME.requests] = the rows: the unit of lib.sh's per-request figures)
# with lib.sh measure_begin/measure_end (the nodes are the server, the
# receiver rx the helper, watch_delivery.py the client). The check: every
# outbox row of the issuer DELIVERED, none dead; the receiver's distinct
# notifications and messages grew by exactly the number of rows (it drops
# duplicates by id), and it injected failures.
deliver() {
  local name=$1 s=$2 iss=${ISS[$2]} rows open per0 d0=0 x0 r0 q0 g0 rx0 rx1 wpid wrc=0 t0 i v per=()
  rows=$(sql "SELECT count(*) FROM outbox WHERE issuer_id = '$iss'")
  open=$(sql "SELECT count(*) FROM outbox WHERE issuer_id = '$iss' AND state = 'PENDING'")
  ((rows > 0 && open == rows)) || die "$name: $iss has $rows rows, $open pending before its delivery is configured"
  read -ra per0 < <(nodes_metric_each tokend_notifications_delivered_total)
  for v in "${per0[@]}"; do d0=$((d0 + v)); done
  x0=$(nodes_metric tokend_notifications_dead_total)
  r0=$(nodes_metric tokend_notifications_retried_total)
  q0=$(nodes_metric tokend_notification_requests_total)
  g0=$(store_commits)
  read -ra rx0 < <(rx_counts)
  # watch_delivery.py first (it polls before the PUT: its start-up is not
  # counted), then the window and the PUT: t0.
  rm -f "$WORK/watch.txt"
  "$ROOT/bench/watch_delivery.py" "$(IFS=, && echo "${NODE_URLS[*]}")" "$rows" "$d0" "$x0" "$DELIVER_TIMEOUT" \
    "$WORK/watch.txt" &
  wpid=$!
  PIDS+=("$wpid")
  until [[ -s $WORK/watch.txt ]] || ! kill -0 "$wpid" 2>/dev/null; do sleep 0.02; done
  measure_begin "${NODE_PIDS[*]}" "$RXPID" "$wpid"
  t0=$EPOCHREALTIME
  api PUT "/admin/v1/issuers/$iss/delivery" "$ADMIN_KEY" "$(settings_body "$s")" 200 >/dev/null
  wait "$wpid" || wrc=$?
  forget_pid "$wpid"
  ((wrc != 2)) || die "$name: a row went dead (see the outbox of $iss)"
  ((wrc == 0)) || die "$name: the delivery did not complete (watch_delivery.py exit $wrc)"
  R[$name.requests]=$rows
  measure_end "$name" "$rows"
  # The timeline from the PUT: "0 0", then every poll after it.
  awk -v t0="$t0" 'BEGIN {print "0.000 0 0"} $1 > t0 {printf "%.3f %s %s\n", $1 - t0, $2, $3}' "$WORK/watch.txt" \
    >"$RESULTS/timeline-$name.txt"
  R[$name.rows]=$rows
  R[$name.seconds]=$(awk 'END {printf "%.2f", $1}' "$RESULTS/timeline-$name.txt")
  R[$name.rate]=$(awk -v n="$rows" -v d="${R[$name.seconds]}" 'BEGIN {printf("%.0f", (d > 0) ? n / d : 0)}')
  # The busiest second: the highest rate over the shortest window of at least
  # 1 s between two polls (the timeline starts at "0 0", the PUT).
  R[$name.peak]=$(awk '{t[NR] = $1; d[NR] = $2} END {j = 1; best = 0
      for (i = 2; i <= NR; i++) {
        while (j + 1 < i && t[i] - t[j + 1] >= 1.0) j++
        if ((t[i] - t[j] >= 1.0 || i == NR) && t[i] > t[j] && (d[i] - d[j]) / (t[i] - t[j]) > best) best = (d[i] - d[j]) / (t[i] - t[j])
      }
      printf "%.0f", best}' "$RESULTS/timeline-$name.txt")
  # Steady state: the rate between the moments 10 % and 90 % of the rows were
  # delivered, each interpolated between two polls (the start-up and the
  # back-off tail left out).
  R[$name.steady]=$(awk -v n="$rows" '
      function at(f,   i) { for (i = 2; i <= NR; i++) if (d[i] >= f * n) return t[i - 1] + (t[i] - t[i - 1]) * (f * n - d[i - 1]) / (d[i] - d[i - 1]); return -1 }
      {t[NR] = $1; d[NR] = $2} END {a = at(0.1); b = at(0.9); printf "%.0f", (a >= 0 && b > a) ? 0.8 * n / (b - a) : 0}' \
    "$RESULTS/timeline-$name.txt")
  R[$name.retried]=$(($(nodes_metric tokend_notifications_retried_total) - r0))
  R[$name.http_requests]=$(($(nodes_metric tokend_notification_requests_total) - q0))
  R[$name.dead]=$(($(nodes_metric tokend_notifications_dead_total) - x0))
  group_commit "$name" "$g0"
  i=0
  for v in $(nodes_metric_each tokend_notifications_delivered_total); do
    per+=($((v - per0[i])))
    i=$((i + 1))
  done
  R[$name.per_node]=$(IFS=/ && echo "${per[*]}")
  R[$name.rx_cpu_us]=${R[$name.also_us]}
  sleep 0.3 # the receiver's counters of the last answers
  R[$name.delivered_rows]=$(sql "SELECT count(*) FROM outbox WHERE issuer_id = '$iss' AND state = 'DELIVERED'")
  read -ra rx1 < <(rx_counts)
  R[$name.rx_received]=$((rx1[0] - rx0[0]))
  R[$name.rx_dups]=$((rx1[1] - rx0[1]))
  R[$name.rx_distinct]=$((R[$name.rx_received] - R[$name.rx_dups]))
  R[$name.rx_injected]=$((rx1[2] - rx0[2]))
  local check=PASS why=""
  ((R[$name.delivered_rows] == rows)) || why+=" ${R[$name.delivered_rows]}/$rows rows DELIVERED;"
  ((R[$name.dead] == 0)) || why+=" ${R[$name.dead]} dead;"
  ((R[$name.rx_distinct] == rows)) || why+=" the receiver got ${R[$name.rx_distinct]} distinct notifications for $rows rows;"
  ((R[$name.rx_injected] > 0)) || why+=" no failure was injected;"
  [[ -z $why ]] || check="FAIL:$why"
  R[$name.check]=$check
  log "$name: $rows rows in ${R[$name.seconds]}s = ${R[$name.rate]}/s (steady ${R[$name.steady]}/s, busiest second" \
    "${R[$name.peak]}/s), per node ${R[$name.per_node]}; ${R[$name.http_requests]} requests, ${R[$name.commits]}" \
    "commits, ${R[$name.retried]} retried, ${R[$name.rx_injected]} failures injected, receiver distinct" \
    "${R[$name.rx_distinct]} (+${R[$name.rx_dups]} duplicates); CPU us/row: tokend ${R[$name.cpu_us]}," \
    "receiver ${R[$name.rx_cpu_us]}${R[$name.pg_cpu_us]+", PostgreSQL ${R[$name.pg_cpu_us]}"}; other load" \
    "${R[$name.other_pct]} %; tokend threads: ${R[$name.threads]}; $check"
}
# deliver_quietly NAME SCENARIO: deliver, once the machine is quiet.
deliver_quietly() {
  wait_quiet
  deliver "$@"
}
# deliver_load URL SECONDS: the profiles' load (lib.sh profile_perf,
# profile_system): the profile issuer's rows delivered (whatever the time),
# as the run profile-PROFILE_RUN; prints the BENCH line profile_system reads.
deliver_load() {
  deliver "profile-$PROFILE_RUN" profile
  echo "BENCH requests=${R[profile-$PROFILE_RUN.rows]} rps=${R[profile-$PROFILE_RUN.rate]}"
}

for s in "${SCENARIOS[@]}"; do deliver_quietly "$s" "$s"; done

# ---- 4. the ceilings ----
# Unique Notify Digital Card Operation bodies (the d1 call tokend makes most).
CEIL_PATH="/issuer/notifications/d1/v1/issuers/BNOTIFYCEI/digitalCards/dc-ceiling/notifications"
python3 -c 'import sys
for i in range(int(sys.argv[1])):
    print("{\"operationId\":\"op_ceiling%09d\",\"operation\":\"SUSPEND\",\"status\":\"SUCCESSFUL\"}" % i)' \
  "$((QUICK ? 200000 : 600000))" >"$WORK/ceiling-bodies.txt"
curl -s -o "$WORK/rx-answer.json" -X POST -H "Authorization: Bearer $RX_TOKEN" -H 'Content-Type: application/json' \
  --data-binary '{"operationId":"op_probe","operation":"SUSPEND","status":"SUCCESSFUL"}' "$CEIL_URL$CEIL_PATH"
RX_ANSWER_BYTES=$(stat -c %s "$WORK/rx-answer.json")
NG_PORT=$(free_port)
nginx_start <<EOF
  server {
    listen 127.0.0.1:$NG_PORT;
    root $WORK/nginx/www;
    # The receiver answers 204 without a body: so does nginx (after discarding the request body).
    location = $CEIL_PATH { return 204; }
  }
EOF
RX_ANSWER_CODE=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $RX_TOKEN" \
  -H 'Content-Type: application/json' --data-binary '{"operationId":"op_probe2","operation":"SUSPEND","status":"SUCCESSFUL"}' \
  "$CEIL_URL$CEIL_PATH")
ng=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -X POST -H 'Content-Type: application/json' \
  --data-binary '{"operationId":"op_probe","operation":"SUSPEND","status":"SUCCESSFUL"}' "$NG_URL$CEIL_PATH")
log "the receiver answers a notification $RX_ANSWER_CODE with $RX_ANSWER_BYTES bytes; nginx answers '$ng'"
WRK_CEIL=(wrk "-t$THREADS" "-c$CONC" "-d$DURATION" --latency -s "$ROOT/bench/events.lua")
bench_measure ceiling-receiver "$CEIL_PID" "${WRK_CEIL[@]}" "$CEIL_URL" -- "$CEIL_PATH" "$WORK/ceiling-bodies.txt" \
  "$RX_TOKEN" "$THREADS" once
bench_measure ceiling-nginx "$(ng_pids)" "${WRK_CEIL[@]}" "$NG_URL" -- "$CEIL_PATH" "$WORK/ceiling-bodies.txt" \
  "$RX_TOKEN" "$THREADS" wrap
stop_pid "$NG_PID" QUIT

# ---- 5. profile ----
case $PROFILE in
perf)
  log "profiling tokend with perf record while it delivers ${ISS[profile]}'s rows (d1, no batching)"
  profile_perf deliver deliver_load
  ;;
*) log "profile $PROFILE: only perf is wired for this benchmark; skipping the profile" ;;
esac
stop_pid "$TD_PID" TERM

# ---- 5b. PostgreSQL (--store postgres): one node, two nodes, the profiles ----
# pg_configuration NAME N (called by lib.sh pg_runs): every scenario delivered
# again by N nodes, from a fresh copy of the store seeded above (the same
# rows, so the same notification ids: each configuration gets a fresh
# receiver rx, whose duplicate count starts at 0). Each delivery is measured
# by pg_measured: the nodes start, deliver, and stop. Two nodes: both have
# the issuer's settings (the PUT reaches node 1; settings live in the
# database) and both claim rows (FOR UPDATE SKIP LOCKED): "per node" tells
# each one's share.
pg_configuration() {
  local s
  pg_db_new "td_$1"
  stop_pid "$RXPID" TERM
  start_rx "rx-$1"
  SYS_HELPER="receiver:$RXPID" # lib.sh profile_system: the receiver's samples apart
  for s in "${SCENARIOS[@]}"; do pg_measured "$1-$s" "$2" deliver_quietly "$s"; done
}
if [[ $STORE_MODE == postgres ]]; then pg_runs deliver deliver_load; fi

# ---- report ----
# pg_summary: the PostgreSQL part of summary.md (--store postgres).
pg_summary() {
  local s c n
  pg_summary_intro "Each configuration delivers every scenario to a fresh receiver (the same notification ids as" \
    "the SQLite run); per node --delivery-concurrency $CONC. Two nodes: the delivery settings are PUT on node 1;" \
    "both claim rows. Per row: CPU of all nodes, of every process of the cluster and of the receiver; rows per" \
    "PostgreSQL transaction: the rows over the COMMIT records pg_waldump counts in the delivery's WAL."
  echo
  echo "| scenario | store | rows | seconds | delivered/s | of SQLite | steady /s | steady, of nginx | delivered per node |" \
    "HTTP requests | tokend commits | rows per tokend commit | rows per PostgreSQL transaction | retried |" \
    "receiver: distinct (+dups) | CPU µs/row: tokend / PostgreSQL / receiver | other load % | check |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for s in "${SCENARIOS[@]}"; do
    for c in sqlite pg1 pg2; do
      n=$s
      [[ $c == sqlite ]] || n=$c-$s
      printf '| %s | %s | %s | %s | %s | %s | %s | %s %% | %s | %s | %s | %s | %s | %s | %s (+%s) | %s / %s / %s | %s | %s |\n' \
        "$s" "$c" "${R[$n.rows]}" "${R[$n.seconds]}" "${R[$n.rate]}" \
        "$([[ $c == sqlite ]] && echo — || echo "$(pct "${R[$n.rate]}" "${R[$s.rate]}") %")" "${R[$n.steady]}" \
        "$(pct "${R[$n.steady]}" "${R[ceiling-nginx.rps]}")" "${R[$n.per_node]}" "${R[$n.http_requests]}" \
        "${R[$n.commits]}" "${R[$n.req_per_commit]}" "${R[$n.req_per_xact]:-—}" "${R[$n.retried]}" \
        "${R[$n.rx_distinct]}" "${R[$n.rx_dups]}" "${R[$n.cpu_us]}" "${R[$n.pg_cpu_us]:-—}" "${R[$n.rx_cpu_us]}" \
        "${R[$n.other_pct]}" "${R[$n.check]}"
    done
  done
  echo
  echo "Write transactions and WAL per PostgreSQL delivery:"
  for s in "${SCENARIOS[@]}"; do pg_write_details row "pg1-$s" "pg2-$s"; done
  if [[ -n ${R[profile-pg1-deliver.rate]:-} ]]; then
    echo
    echo "Profiles while one PostgreSQL node delivers ${ISS[profile]}'s rows (d1, no batching):" \
      "profile-pg1-deliver-*.txt (perf on tokend: ${R[profile-pg1-deliver.rows]} rows at" \
      "${R[profile-pg1-deliver.rate]}/s under perf) and profile-pg-deliver-system.txt (the whole machine:" \
      "${R[profile-pg-deliver.rate]}/s; samples by process ${R[pg-deliver.sys_split]}; PostgreSQL sent" \
      "${R[pg-deliver.sys_sendto]} answers (sendto) per row)."
  fi
  echo
  echo "| target (issue 11; reported, not enforced) | measured | |"
  echo "|---|---:|---|"
  for s in "${SCENARIOS[@]}"; do
    echo "| $s: two nodes deliver >= the SQLite rate, zero loss | ${R[pg2-$s.rate]}/s = $(pct "${R[pg2-$s.rate]}" "${R[$s.rate]}") % of ${R[$s.rate]}/s; per node ${R[pg2-$s.per_node]}; check ${R[pg2-$s.check]} |" \
      "$(verdict "${R[pg2-$s.rate]}" '>=' "${R[$s.rate]}")$([[ ${R[pg2-$s.check]} == PASS ]] || echo ' (loss check FAILED)') |"
  done
}

{
  echo "# tokend notification delivery benchmark $STAMP"
  echo
  about_machine
  echo "Per node: --delivery-concurrency $CONC, --threads $THREADS; receiver: \`tokenctl -q listen --bearer …" \
    "--webhook-secret … --fail-first 1 --fail-mode 500 --fail-percent $FAIL_PCT\`."
  echo
  echo "Per scenario: $N_DCARDS digital cards on $N_CARDS cards, seeded through the API while no delivery was" \
    "configured (${seed_s}s for all ${#ALL[@]} issuers); each issuer owes $OWED. Delivered from the moment its" \
    "settings were PUT to the last row delivered (tokend /metrics polled every 100 ms). Steady: the rate from 10 % to" \
    "90 % of the rows delivered."
  echo
  echo "| scenario | rows | seconds | delivered/s | steady /s | busiest second /s | HTTP requests | tokend commits | retried | failures injected | receiver: distinct (+dups) | tokend CPU µs/row | receiver CPU µs/row | other load % | check |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for s in "${SCENARIOS[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s (+%s) | %s | %s | %s | %s |\n' "$s" "${R[$s.rows]}" \
      "${R[$s.seconds]}" "${R[$s.rate]}" "${R[$s.steady]}" "${R[$s.peak]}" "${R[$s.http_requests]}" "${R[$s.commits]}" \
      "${R[$s.retried]}" "${R[$s.rx_injected]}" "${R[$s.rx_distinct]}" "${R[$s.rx_dups]}" "${R[$s.cpu_us]}" \
      "${R[$s.rx_cpu_us]}" "${R[$s.other_pct]}" "${R[$s.check]}"
  done
  echo
  echo "tokend's CPU by thread during each delivery (% of one core, all nodes):"
  for s in "${SCENARIOS[@]}"; do
    for n in "$s" ${R[pg1-$s.threads]+"pg1-$s" "pg2-$s"}; do echo "- $n: ${R[$n.threads]}"; done
  done
  echo
  echo "Ceilings, same run (\`${WRK_CEIL[*]/#$ROOT\//} URL -- PATH BODIES TOKEN $THREADS once|wrap\`, unique" \
    "Notify Digital Card Operation bodies, answer $RX_ANSWER_BYTES B):"
  echo
  echo "| ceiling | req/s | p50 ms | p99 ms | server CPU µs/req | non-2xx | % of the machine: wrk / other / steal |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for c in ceiling-receiver ceiling-nginx; do
    printf '| %s | %.0f | %s | %s | %s | %s | %s / %s / %s |\n' "$c" "${R[$c.rps]}" "$(ms "${R[$c.p50_us]}")" \
      "$(ms "${R[$c.p99_us]}")" "${R[$c.cpu_us]}" "${R[$c.non2xx]}" "${R[$c.wrk_cpu_pct]}" "${R[$c.other_pct]}" \
      "${R[$c.steal_pct]}"
  done
  echo
  echo "| target | delivered/s (all rows) | steady | steady, of the receiver's ceiling | of nginx | |"
  echo "|---|---:|---:|---:|---:|---|"
  for s in "${SCENARIOS[@]}"; do
    echo "| $s >= 5,000 delivered/s, zero loss | ${R[$s.rate]}/s | ${R[$s.steady]}/s | $(pct "${R[$s.steady]}" "${R[ceiling-receiver.rps]}") % |" \
      "$(pct "${R[$s.steady]}" "${R[ceiling-nginx.rps]}") % | $(verdict "${R[$s.rate]}" '>=' 5000)$([[ ${R[$s.check]} == PASS ]] || echo ' (loss check FAILED)') |"
  done
  if [[ -n ${R[profile-deliver.rate]:-} ]]; then
    echo
    echo "Profile (perf, the d1 unbatched delivery of ${ISS[profile]}: ${R[profile-deliver.rows]} rows at" \
      "${R[profile-deliver.rate]}/s under perf): profile-deliver-*.txt beside this file."
  fi
  if [[ $STORE_MODE == postgres ]]; then pg_summary; fi
} >"$RESULTS/summary.md"
cat "$RESULTS/summary.md"
show_profiles deliver pg1-deliver pg-deliver
log "results in $RESULTS"
RUNS=("${SCENARIOS[@]}")
if [[ $STORE_MODE == postgres ]]; then
  for s in "${SCENARIOS[@]}"; do RUNS+=("pg1-$s" "pg2-$s"); done
fi
check_runs "${RUNS[@]}"
