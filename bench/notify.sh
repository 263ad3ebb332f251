#!/usr/bin/env bash
# bench/notify.sh — how fast tokend delivers the notifications and end-user
# messages it owes, to a real receiver that fails 30 % of first attempts
# (issue "Reliable notifications"): zero loss, every row delivered, and the
# rate, per delivery profile (d1 with batching on and off, classic, webhook).
# Not part of CI: it takes about 2 minutes (plus any wait for a quiet machine).
#
#   bench/notify.sh [--quick]
#
# What it does, in order:
#  1. Builds a Release tokend and tokenctl (build-rel/) and bench/seed_cards.c.
#     Starts two reference receivers (`tokenctl -q listen`, docs/receiver.md)
#     on free loopback ports, each requiring a bearer token or a Standard
#     Webhooks signature: "rx" fails the first attempt of BENCH_FAIL_PCT
#     (30) % of the distinct notification ids with HTTP 500 (picked by a hash
#     of the id); "rx-ceiling" never fails. Starts tokend (fresh temporary
#     store, --rate-limit 0, --delivery-concurrency BENCH_DELIVERY_CONCURRENCY).
#  2. Seeds through the real API, one issuer per scenario (BNOTIFY00k), while
#     no delivery is configured (rows wait): BENCH_CARDS cards, BENCH_DCARDS
#     GREEN tokenizations (each owes DIGITIZE SUCCESSFUL to the issuer and an
#     ACTIVATION message to the end user) and one SUSPEND lifecycle event per
#     digital card (owes SUSPEND). So each digital card has two notifications
#     in sequence (the second waits while the first is retried) and a message.
#  3. For each scenario — d1-batch64 (d1, d1BatchMax 64), d1 (no batching),
#     classic, webhook (webhook-signed) — waits for a quiet machine, then PUTs
#     the issuer's delivery settings (base URL and messaging URL on rx) and
#     follows tokend's /metrics every 100 ms (bench/watch_delivery.py, one
#     process) until every row of the issuer is delivered. The rate is rows / (last delivery - the PUT): it includes the
#     back-off before each retried row's second attempt (full jitter, up to 2 s
#     after the first failure), so it is a lower bound; the busiest second is
#     reported too. Checks: every outbox row of the issuer DELIVERED, none dead;
#     the receiver's distinct notifications and messages grew by exactly the
#     number of rows (it drops duplicates by id), and it injected failures.
#  4. The ceiling, same run: wrk -t2 -c<concurrency> -d4s POSTs unique d1
#     Notify Digital Card Operation bodies straight to rx-ceiling (how fast the
#     receiver itself takes notifications), and to nginx answering 204 with no
#     body, as the receiver does (how fast an HTTP server answers on this
#     machine). Ratios are tokend's delivered/s against both.
#  5. Profiles tokend (perf record --call-graph dwarf, or callgrind) while it
#     delivers a fifth issuer's rows in the d1 profile (no batching).
# Every process it starts it stops by pid; the temp dir is removed at the end
# (BENCH_KEEP=1 keeps it). Results: bench/results/<timestamp>/ (git-ignored):
# summary.md, per-scenario timelines (seconds, rows delivered, transfers in
# flight, every 100 ms), receiver/tokend logs, profiles.
#
# --quick: 200 cards, 2,000 digital cards a scenario, 2 s ceiling runs — a
# smoke test of the harness, not numbers to quote.
#
# Settings (environment): BENCH_CARDS (1000), BENCH_DCARDS (20000 per
# scenario), BENCH_SCENARIOS ("d1-batch64 d1 classic webhook": which to run;
# the profile's issuer is seeded only when BENCH_PROFILE is not none),
# BENCH_FAIL_PCT (30), BENCH_DELIVERY_CONCURRENCY (64), BENCH_DURATION (4s, the ceiling runs), BENCH_THREADS (2: wrk threads and
# tokend --threads), BENCH_PROFILE (auto|perf|callgrind|none),
# BENCH_SEED_CONCURRENCY (64), BENCH_DELIVER_TIMEOUT (300 s per scenario),
# BENCH_QUIET_WAIT (120), BENCH_KEEP (0).
#
# Needs what network.sh needs (scripts/deps.sh --bench).
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
  echo "usage: bench/notify.sh [--quick]" >&2
  exit 2
  ;;
esac

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

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh" # log, die, PIDS/cleanup, CPU accounting, tokend, nginx, wrk runs, profiles

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
  for _ in $(seq 100); do
    curl -sf "$RX_URL/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$RX_PID" 2>/dev/null || die "the receiver $name exited at start: $(tail -3 "$RESULTS/receiver-$name.log")"
    sleep 0.1
  done
  die "the receiver $name did not answer /healthz"
}
start_receiver rx --fail-first 1 --fail-mode 500 --fail-percent "$FAIL_PCT"
RX=$RX_URL
RXPID=$RX_PID
start_receiver ceiling
CEIL_URL=$RX_URL
CEIL_PID=$RX_PID

STORE="$WORK/store"
DB="$STORE/tokend.db"
mkdir -p "$STORE"
start_tokend main "$STORE"
log "tokend pid $TD_PID on $TD_URL (delivery concurrency $CONC); receivers $RX (fails $FAIL_PCT %) and $CEIL_URL"
ADMIN_KEY=$(cat "$STORE/admin.key")


metric() { # NAME: a value from tokend's /metrics
  curl -sf "$TD_URL/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

# rx_count NAME: a counter of the receiver at RX (received, duplicates,
# failedInjected, messages, applied, ...); 0 if it has none yet.
rx_count() {
  curl -sf "$RX/state" | python3 -c 'import json, sys; print(json.load(sys.stdin)["counts"].get(sys.argv[1], 0))' "$1"
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

seed_t0=$(date +%s.%N)
ALL=("${SCENARIOS[@]}")
[[ $PROFILE == none ]] || ALL+=(profile)
declare -A ISS
for k in "${!ALL[@]}"; do
  ISS[${ALL[$k]}]=$(printf 'BNOTIFY%03d' "$((k + 1))")
  log "seeding ${ISS[${ALL[$k]}]} (${ALL[$k]}): $N_CARDS cards, $N_DCARDS tokenizations and SUSPEND events"
  seed_issuer "$k" "${ISS[${ALL[$k]}]}"
done
seed_s=$(awk -v a="$seed_t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
OWED=$(sql "SELECT group_concat(what || ' ' || n, ', ') FROM (SELECT trim(channel || ' ' || operation || message || ' ' ||
            status) AS what, count(*) AS n FROM outbox WHERE issuer_id = '${ISS[${SCENARIOS[0]}]}' GROUP BY what ORDER BY what)")
log "seeded in ${seed_s}s; each issuer owes $OWED"

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

# deliver SCENARIO: configures delivery for the scenario's issuer and waits
# until all its rows are delivered; R[SCENARIO.*] = what it measured.
deliver() {
  local s=$1 iss=${ISS[$1]} rows open d0 r0 x0 q0 rcv0 dup0 inj0 t0 t1 c0 c1
  rows=$(sql "SELECT count(*) FROM outbox WHERE issuer_id = '$iss'")
  open=$(sql "SELECT count(*) FROM outbox WHERE issuer_id = '$iss' AND state = 'PENDING'")
  ((rows > 0 && open == rows)) || die "$s: $iss has $rows rows, $open pending before its delivery is configured"
  d0=$(metric tokend_notifications_delivered_total)
  r0=$(metric tokend_notifications_retried_total)
  x0=$(metric tokend_notifications_dead_total)
  q0=$(metric tokend_notification_requests_total)
  local k0 k1
  k0=$(metric tokend_store_commit_batch_size_count)
  rcv0=$(rx_count received)
  dup0=$(rx_count duplicates)
  inj0=$(rx_count failedInjected)
  c0=$(cpu_ticks "$TD_PID")
  local rc0
  rc0=$(cpu_ticks "$RXPID")
  : >"$RESULTS/timeline-$s.txt"
  thread_ticks "$TD_PID" >"$WORK/threads0"
  t0=$(date +%s.%N)
  api PUT "/admin/v1/issuers/$iss/delivery" "$ADMIN_KEY" "$(settings_body "$s")" 200 >/dev/null
  local wrc=0
  "$ROOT/bench/watch_delivery.py" "$TD_URL" "$t0" "$rows" "$d0" "$x0" "$DELIVER_TIMEOUT" \
    "$RESULTS/timeline-$s.txt" || wrc=$?
  ((wrc != 2)) || die "$s: a row went dead (see the outbox of $iss)"
  ((wrc == 0)) || die "$s: the delivery did not complete (watch_delivery.py exit $wrc; timeline-$s.txt)"
  t1=$(date +%s.%N)
  thread_ticks "$TD_PID" >"$WORK/threads1"
  c1=$(cpu_ticks "$TD_PID")
  local rc1
  rc1=$(cpu_ticks "$RXPID")
  R[$s.rows]=$rows
  R[$s.seconds]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
  R[$s.rate]=$(awk -v n="$rows" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
  # The busiest second: the most rows delivered within any 1 s of the timeline.
  R[$s.peak]=$(awk '{t[NR] = $1; d[NR] = $2} END {j = 1; best = 0
      for (i = 1; i <= NR; i++) { while (t[i] - t[j] > 1.0) j++; if (j < i && d[i] - d[j] > best) best = (d[i] - d[j]) / (t[i] - t[j]) }
      printf "%.0f", best}' "$RESULTS/timeline-$s.txt")
  # Steady state: the rate between 10 % and 90 % of the rows delivered (the
  # start-up and the back-off tail left out).
  R[$s.steady]=$(awk -v n="$rows" '{t[NR] = $1; d[NR] = $2} END {
      for (i = 1; i <= NR; i++) { if (!a && d[i] >= 0.1 * n) a = i; if (!b && d[i] >= 0.9 * n) b = i }
      printf "%.0f", (a && b > a) ? (d[b] - d[a]) / (t[b] - t[a]) : 0}' "$RESULTS/timeline-$s.txt")
  # tokend's CPU by thread, % of one core over the delivery.
  R[$s.threads]=$(awk -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" '
      NR == FNR {t0[$1] = $3; next}
      {d = $3 - t0[$1]; if (d > 0) {sum[$2] += d; n[$2]++}}
      END {for (c in sum) {printf "%s%s x%d %.0f%%", sep, c, n[c], sum[c] / ((b - a) * hz) * 100; sep = ", "}}' \
    "$WORK/threads0" "$WORK/threads1")
  R[$s.retried]=$(($(metric tokend_notifications_retried_total) - r0))
  R[$s.requests]=$(($(metric tokend_notification_requests_total) - q0))
  k1=$(metric tokend_store_commit_batch_size_count)
  R[$s.commits]=$((k1 - k0))
  R[$s.dead]=$(($(metric tokend_notifications_dead_total) - x0))
  R[$s.cpu_us]=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$rows" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
  R[$s.rx_cpu_us]=$(awk -v d=$((rc1 - rc0)) -v hz="$CLK_TCK" -v n="$rows" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
  sleep 0.3 # the receiver's counters of the last answers
  R[$s.delivered_rows]=$(sql "SELECT count(*) FROM outbox WHERE issuer_id = '$iss' AND state = 'DELIVERED'")
  R[$s.rx_received]=$(($(rx_count received) - rcv0))
  R[$s.rx_dups]=$(($(rx_count duplicates) - dup0))
  R[$s.rx_distinct]=$((R[$s.rx_received] - R[$s.rx_dups]))
  R[$s.rx_injected]=$(($(rx_count failedInjected) - inj0))
  local check=PASS why=""
  ((R[$s.delivered_rows] == rows)) || why+=" ${R[$s.delivered_rows]}/$rows rows DELIVERED;"
  ((R[$s.dead] == 0)) || why+=" ${R[$s.dead]} dead;"
  ((R[$s.rx_distinct] == rows)) || why+=" the receiver got ${R[$s.rx_distinct]} distinct notifications for $rows rows;"
  ((R[$s.rx_injected] > 0)) || why+=" no failure was injected;"
  [[ -z $why ]] || check="FAIL:$why"
  R[$s.check]=$check
  log "$s: $rows rows in ${R[$s.seconds]}s = ${R[$s.rate]}/s (steady ${R[$s.steady]}/s, busiest second" \
    "${R[$s.peak]}/s); tokend threads: ${R[$s.threads]}; ${R[$s.requests]}" \
    "requests, ${R[$s.commits]} commits, ${R[$s.retried]} retried, ${R[$s.rx_injected]} failures injected, receiver distinct" \
    "${R[$s.rx_distinct]} (+${R[$s.rx_dups]} duplicates); tokend ${R[$s.cpu_us]} CPU us/row, receiver" \
    "${R[$s.rx_cpu_us]}; $check"
}

for s in "${SCENARIOS[@]}"; do
  wait_quiet
  deliver "$s"
done

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
  wait_quiet
  perf record -F 999 --call-graph dwarf,16384 -p "$TD_PID" -o "$WORK/perf-deliver.data" \
    >"$RESULTS/perf-record-deliver.log" 2>&1 &
  perf_pid=$!
  PIDS+=("$perf_pid")
  sleep 0.5
  deliver profile
  stop_pid "$perf_pid" INT
  perf report -i "$WORK/perf-deliver.data" --no-children --sort dso,symbol --stdio --percent-limit 0.7 -g none \
    2>/dev/null | grep -v '^$' >"$RESULTS/profile-deliver-self.txt" || true
  perf report -i "$WORK/perf-deliver.data" --children --sort symbol --stdio --percent-limit 3 -g none 2>/dev/null |
    grep -v '^$' | grep -E '^ +[0-9]' | grep -vE '\] 0x[0-9a-f]+ |\(inlined\)' \
    >"$RESULTS/profile-deliver-inclusive-named.txt" || true
  ;;
*) log "profile $PROFILE: only perf is wired for this benchmark; skipping the profile" ;;
esac
stop_pid "$TD_PID" TERM

# ---- report ----
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
FAILED=""
for s in "${SCENARIOS[@]}"; do
  [[ ${R[$s.check]} == PASS ]] || FAILED+=" $s"
done
{
  echo "# tokend notification delivery benchmark $STAMP"
  echo
  echo "Machine: $(nproc) cores, $CPU_MODEL, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo);" \
    "kernel $(uname -r). tokend $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '+uncommitted') (Release)," \
    "--delivery-concurrency $CONC, --threads $THREADS; receiver: \`tokenctl -q listen --bearer … --webhook-secret … --fail-first 1 --fail-mode 500 --fail-percent $FAIL_PCT\`."
  echo
  echo "Per scenario: $N_DCARDS digital cards on $N_CARDS cards, seeded through the API while no delivery was" \
    "configured (${seed_s}s for all five issuers); each issuer owes $OWED. Delivered from the moment its" \
    "settings were PUT to the last row delivered (tokend /metrics polled every 100 ms). Steady: the rate from 10 % to 90 % of the rows delivered."
  echo
  echo "| scenario | rows | seconds | delivered/s | steady /s | busiest second /s | HTTP requests | write jobs | retried | failures injected | receiver: distinct (+dups) | tokend CPU µs/row | receiver CPU µs/row | check |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for s in "${SCENARIOS[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s (+%s) | %s | %s | %s |\n' "$s" "${R[$s.rows]}" \
      "${R[$s.seconds]}" "${R[$s.rate]}" "${R[$s.steady]}" "${R[$s.peak]}" "${R[$s.requests]}" "${R[$s.commits]}" \
      "${R[$s.retried]}" \
      "${R[$s.rx_injected]}" "${R[$s.rx_distinct]}" "${R[$s.rx_dups]}" "${R[$s.cpu_us]}" "${R[$s.rx_cpu_us]}" \
      "${R[$s.check]}"
  done
  echo
  echo "tokend's CPU by thread during each delivery (% of one core):"
  for s in "${SCENARIOS[@]}"; do echo "- $s: ${R[$s.threads]}"; done
  echo
  echo "Ceilings, same run (\`${WRK_CEIL[*]/#$ROOT\//} URL -- PATH BODIES TOKEN $THREADS once|wrap\`, unique" \
    "Notify Digital Card Operation bodies, answer $RX_ANSWER_BYTES B):"
  echo
  echo "| ceiling | req/s | p50 ms | p99 ms | non-2xx | % of the machine: wrk / other / steal |"
  echo "|---|---:|---:|---:|---:|---:|"
  for c in ceiling-receiver ceiling-nginx; do
    printf '| %s | %.0f | %s | %s | %s | %s / %s / %s |\n' "$c" "${R[$c.rps]}" "$(ms "${R[$c.p50_us]}")" \
      "$(ms "${R[$c.p99_us]}")" "${R[$c.non2xx]}" "${R[$c.wrk_cpu_pct]}" "${R[$c.other_pct]}" "${R[$c.steal_pct]}"
  done
  echo
  echo "| target | delivered/s (all rows) | steady | steady, of the receiver's ceiling | of nginx | |"
  echo "|---|---:|---:|---:|---:|---|"
  for s in "${SCENARIOS[@]}"; do
    echo "| $s >= 5,000 delivered/s, zero loss | ${R[$s.rate]}/s | ${R[$s.steady]}/s | $(pct "${R[$s.steady]}" "${R[ceiling-receiver.rps]}") % |" \
      "$(pct "${R[$s.steady]}" "${R[ceiling-nginx.rps]}") % | $(verdict "${R[$s.rate]}" '>=' 5000)$([[ ${R[$s.check]} == PASS ]] || echo ' (loss check FAILED)') |"
  done
  if [[ -n ${R[profile.rate]:-} ]]; then
    echo
    echo "Profile (perf, the d1 unbatched delivery of ${ISS[profile]}: ${R[profile.rows]} rows at ${R[profile.rate]}/s under perf):" \
      "profile-deliver-*.txt beside this file."
  fi
} >"$RESULTS/summary.md"
cat "$RESULTS/summary.md"
if [[ -s $RESULTS/profile-deliver-inclusive-named.txt ]]; then
  echo
  echo "== delivery profile: inclusive (children), named frames =="
  head -40 "$RESULTS/profile-deliver-inclusive-named.txt" | cut -c1-100
  echo "== delivery profile: self =="
  grep -E '^ *[0-9][0-9,.]*%? ' "$RESULTS/profile-deliver-self.txt" 2>/dev/null | head -20 | cut -c1-110 || true
fi
log "results in $RESULTS"
[[ -z $FAILED ]] || die "the loss check failed for:$FAILED (see above)"
