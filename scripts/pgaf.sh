#!/usr/bin/env bash
# Throwaway pg_auto_failover formations for failover tests (issue 11, section
# 5): a monitor, a primary and a synchronous secondary, all on free ports on
# 127.0.0.1, run by an unprivileged user, stopped by their own PIDs.
#
#   scripts/pgaf.sh start DIR                     create DIR and the formation; prints the URL
#   scripts/pgaf.sh stop DIR                      stop it (succeeds quietly if not running)
#   scripts/pgaf.sh state DIR                     pg_autoctl show state (add --json for JSON)
#   scripts/pgaf.sh primary DIR                   "NAME PORT" of the node that takes writes
#   scripts/pgaf.sh kill-primary DIR              SIGKILL the primary's postmaster; prints the node
#   scripts/pgaf.sh wait-failover DIR [SECS] [--rejoin]   wait for the other node to take writes
#   scripts/pgaf.sh psql DIR [ARGS]               psql as the tokend role on the primary
#
# What DIR holds (DIR itself belongs to the caller, mode 0755):
#   pg/NAME      the three clusters, NAME = monitor, node1, node2 (pg/ and
#                all in it belong to the server's user, 0700; Postgres logs
#                in pg/NAME/log/)
#   sock/        their unix sockets (0700)      home/  pg_autoctl's HOME and XDG dirs (0700)
#   NAME.log     the output of pg_autoctl create and run for NAME
#   NAME.pid     the PID of NAME's `pg_autoctl run`
#   ports        "monitor PORT", "node1 PORT", "node2 PORT"
#   password     the tokend role's password (0600)
#   pgpass       PGPASSFILE lines for it, both nodes (0600)
#   url          postgres://tokend@127.0.0.1:P1,127.0.0.1:P2/tokend?target_session_attrs=read-write&connect_timeout=3
#   killed       the node kill-primary killed last
#   unmark.pid, unmark.log   kill-primary's watcher (see cmd_kill_primary)
#
# Roles: the cluster superuser (named after the server's user, as pg_autoctl
# expects), pg_auto_failover's own roles (autoctl_node on the monitor;
# pgautofailover_monitor and pgautofailover_replicator on the nodes) with one
# random password that only the server's user can read (home/pgpass), and
# tokend (random password) owning the database tokend on the nodes.
# Authentication: trust on the unix sockets (sock/ is 0700), scram-sha-256
# over TCP for every role, replication included; TLS with self-signed
# certificates (pg_autoctl --ssl-self-signed). Everything listens on 127.0.0.1
# only. One gap: pg_autoctl runs initdb itself (with --auth=trust), and the
# monitor and the primary serve TCP from 127.0.0.1 with trust for the seconds
# that `pg_autoctl create` runs them; start then turns that into scram-sha-256
# before they run for good (the secondary copies the primary's). Clusters
# initialised beforehand would avoid it, but pg_autoctl 2.0 then often refuses
# them: its Postgres service starts the cluster while the node registers, and
# registration then finds "PostgreSQL is already running".
#
# Synchronous replication: with one standby, pg_auto_failover accepts only
# number_sync_standbys = 0 (it wants number_sync_standbys + 1 standbys), which
# still sets synchronous_standby_names on the primary while the secondary is
# healthy: a commit acknowledged in that state is on both nodes. start checks
# it (pg_stat_replication.sync_state). When the standby is lost the primary
# goes to wait_primary and commits alone until it is back.
#
# kill-primary: pg_autoctl restarts a killed Postgres in place within a second
# or two, often before the monitor has decided anything: a plain kill -9 gave
# a crash recovery on the same node in 2 of 4 kills here, not a failover. To
# test a failover, kill-primary first adds a setting PostgreSQL refuses to the
# node's tokend.conf (each restart then fails at once, cleanly; the keeper
# reports Postgres down and the monitor promotes the secondary), and sends
# SIGKILL to the postmaster. A watcher removes the setting once the node's
# keeper has left the primary role: pg_autoctl then rewinds the old primary
# and it rejoins as a secondary. Two traps of pg_autoctl 2.0 shaped this.
# Killing each restarted postmaster instead makes it wait for ever on its
# unreaped child (whose PID still answers kill -0). And a node whose Postgres
# fails to start when pg_autoctl starts it to rewind it never rejoins: the
# setting must go after the keeper has left the primary role (before, the
# keeper's Postgres service, still retrying, brings the old primary back
# read-write for a moment, beside the promoted one) and before the monitor
# tells it to catch up. After a failed restart the keeper waits 10 s for
# Postgres (hard-wired), so that window exists only if the monitor's
# primary_demote_timeout is well above 10 s, as its default (30 s) is.
#
# Failover timing: pg_auto_failover's own settings are kept; PGAF_* variables
# override the monitor's (PGAF_HEALTH_CHECK_PERIOD_MS, _TIMEOUT_MS,
# _MAX_RETRIES, _RETRY_DELAY_MS, PGAF_UNHEALTHY_TIMEOUT_MS,
# PGAF_DEMOTE_TIMEOUT_MS, written to pg/monitor/tokend.conf) and
# PGAF_RESTART_RETRIES the keepers' postgresql_restart_failure_max_retries.
# The keeper reports a Postgres that is down at once, so the monitor decides
# within a second or two whatever its health-check settings; the rest is the
# keeper's 10 s wait and the promotion. Measured here (2-core machine, load
# average 4 to 10): from the kill to the first write committed on the new
# primary 14 to 15.5 s, the old primary a synchronous secondary again after
# 19 to 23 s. Shorter monitor timeouts changed neither much.
#
# pg_auto_failover and PostgreSQL refuse to run as root. Run as root, this
# script creates the system user tokend-pg once (as scripts/pg.sh does) and
# runs pg_autoctl and the servers as that user, so DIR's parents must be
# traversable by it (not under /root). Run as anyone else, they run as the
# caller. Binaries: pg_autoctl on the PATH (Debian's pg-auto-failover-cli,
# installed by scripts/deps.sh --test; PG_AUTOCTL overrides) and PostgreSQL 15
# (/usr/lib/postgresql/15/bin; PG_BINDIR overrides) with the pgautofailover
# extension (postgresql-15-auto-failover).
set -euo pipefail
PROG=pgaf.sh
SELF=$(readlink -f -- "$0") # kill-primary's watcher runs this script again
# shellcheck source=scripts/pg-lib.sh
. "$(dirname -- "$SELF")/pg-lib.sh"
NODES=(node1 node2)
CREATE_TIMEOUT=120    # seconds for each pg_autoctl create
FORMATION_TIMEOUT=120 # seconds until primary + secondary are in sync
STOP_TIMEOUT=20       # seconds for pg_autoctl to stop its Postgres after SIGTERM

usage() {
  sed -n '6,12s/^# //p' "$SELF" >&2
  exit 2
}

find_bins() {
  find_pg_bindir
  AUTOCTL=${PG_AUTOCTL:-$(command -v pg_autoctl || true)}
  [[ -n $AUTOCTL && -x $AUTOCTL ]] || die "pg_autoctl not found; run scripts/deps.sh --test (Debian: pg-auto-failover-cli, postgresql-15-auto-failover), or set PG_AUTOCTL"
  local share
  share=$("$BIN/pg_config" --sharedir 2>/dev/null) || share=/usr/share/postgresql/15
  [[ -f $share/extension/pgautofailover.control ]] || die "the pgautofailover extension is not installed in $share (Debian: postgresql-15-auto-failover)"
}

# pg_autoctl (and the Postgres it runs) read their settings, state and
# passwords from these places, never from the caller's environment.
af_env() {
  AF_ENV=(HOME="$DIR/home" XDG_CONFIG_HOME="$DIR/home/config" XDG_DATA_HOME="$DIR/home/data"
    XDG_RUNTIME_DIR="$DIR/home/run" PATH="$BIN:/usr/bin:/bin" LANG=C.UTF-8 LC_ALL=C.UTF-8
    PGPASSFILE="$DIR/home/pgpass" PGHOST="$DIR/sock" PG_REGRESS_SOCK_DIR="$DIR/sock")
}

autoctl() { as_pg env -i "${AF_ENV[@]}" "$AUTOCTL" "$@"; }
autoctl_t() { as_pg timeout "$CREATE_TIMEOUT" env -i "${AF_ENV[@]}" "$AUTOCTL" "$@"; } # bounded

# The superuser through NAME's unix socket (trust: only root and the server's user get there).
su_psql() { # NAME DB [psql args]
  local name=$1 db=$2
  shift 2
  "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=terse \
    "host=$DIR/sock port=$(port_of "$name") user=$PG_USER dbname=$db connect_timeout=5" "$@"
}

port_of() { awk -v n="$1" '$1 == n { print $2 }' "$DIR/ports"; }

# The PID of NAME's `pg_autoctl run` if it runs: the recorded PID must still
# be a pg_autoctl working on DIR/NAME (PIDs are reused).
autoctl_pid() { # NAME
  local pid
  pid=$(head -n1 "$DIR/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "run --pgdata $DIR/pg/$1 " || return 1
  echo "$pid"
}

# The PID of the postmaster running DIR/NAME, if any.
postmaster_pid() { postmaster_in "$DIR/pg/$1" "$DIR/pg/$1/postmaster.pid"; }

log_tail() { # NAME
  echo "--- last lines of $DIR/$1.log:" >&2
  tail -n 25 "$DIR/$1.log" >&2 || true
  local pglog
  pglog=$(find "$DIR/pg/$1/log" -name "*.log" -printf "%T@ %p\n" 2>/dev/null | sort -n | tail -n1 | cut -d" " -f2-) || true
  if [[ -n $pglog ]]; then
    echo "--- last lines of $pglog:" >&2
    tail -n 15 "$pglog" >&2 || true
  fi
}

# `pg_autoctl run` for NAME in the background, in a session of its own, its
# PID in DIR/NAME.pid.
run_node() { # NAME
  local name=$1 pid
  (
    cd "$DIR"
    exec </dev/null >>"$DIR/$name.log" 2>&1
    exec_as_pg setsid env -i "${AF_ENV[@]}" "$AUTOCTL" run --pgdata "$DIR/pg/$name"
  ) &
  pid=$!
  echo "$pid" >"$DIR/$name.pid"
}

wait_ready() { # NAME SECONDS
  local end=$((SECONDS + $2))
  until "$BIN/pg_isready" -q -h "$DIR/sock" -p "$(port_of "$1")"; do
    if ((SECONDS >= end)); then
      log_tail "$1"
      die "$1 does not answer on port $(port_of "$1") after $2 s"
    fi
    autoctl_pid "$1" >/dev/null || {
      log_tail "$1"
      die "pg_autoctl run for $1 exited"
    }
    sleep 0.2
  done
}

# The formation's state as "NAME PORT REPORTED ASSIGNED" lines, from the monitor.
states() {
  su_psql monitor pg_auto_failover -F ' ' -c \
    "SELECT nodename, nodeport, reportedstate, goalstate FROM pgautofailover.node ORDER BY nodeid" 2>/dev/null
}

# The node that takes writes (reported and assigned primary or wait_primary,
# or single), and whose server says it is not in recovery: "NAME PORT".
current_primary() {
  local name port rep goal
  while read -r name port rep goal; do
    case $rep:$goal in
    primary:primary | wait_primary:wait_primary | single:single | primary:apply_settings | wait_primary:primary) ;;
    *) continue ;;
    esac
    [[ $(su_psql "$name" postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null) == f ]] || continue
    echo "$name $port"
    return 0
  done < <(states)
  return 1
}

in_sync() { # primary + secondary, reported as assigned, the standby synchronous
  local s
  s=$(states | awk '{ print $3 ":" $4 }' | sort | tr '\n' ' ')
  [[ $s == "primary:primary secondary:secondary " ]] || return 1
  local p
  p=$(current_primary) || return 1
  [[ $(su_psql "${p%% *}" postgres -c \
    "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum') AND state = 'streaming'" 2>/dev/null) == 1 ]]
}

# Stops every process of the formation: SIGTERM to each `pg_autoctl run`
# (which stops its Postgres), then SIGKILL to what is left of them, then any
# postmaster still running in DIR/NAME.
stop_dir() {
  local name pid pids=() left kids
  if pid=$(watcher_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/unmark.pid"
  for name in "${NODES[@]}" monitor; do
    pid=$(autoctl_pid "$name") || continue
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$name:$pid")
  done
  local end=$((SECONDS + STOP_TIMEOUT)) # one deadline for all of them
  for left in ${pids[@]+"${pids[@]}"}; do
    name=${left%%:*} pid=${left#*:}
    wait_gone "$pid" $((end > SECONDS ? end - SECONDS : 0)) && continue
    kids=$(descendants "$pid")
    echo "pgaf.sh: pg_autoctl $pid ($DIR/pg/$name) still running $STOP_TIMEOUT s after SIGTERM: killing it and its children" >&2
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids 2>/dev/null || true
    wait_gone "$pid" 5 || die "pg_autoctl $pid ($DIR/pg/$name) survived SIGKILL"
  done
  for name in "${NODES[@]}" monitor; do
    rm -f "$DIR/$name.pid"
    pid=$(postmaster_pid "$name") || continue
    # SIGINT: fast shutdown; then SIGQUIT, SIGKILL (as scripts/pg.sh).
    kill -INT "$pid" 2>/dev/null || true
    wait_gone "$pid" 20 && continue
    kill -QUIT "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 && continue
    kids=$(descendants "$pid")
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids 2>/dev/null || true
    wait_gone "$pid" 5 || die "postgres $pid ($DIR/pg/$name) survived SIGKILL"
  done
}

failed_start() { # stops whatever an unfinished start left running
  local rc=$?
  ((rc == 0)) || stop_dir >/dev/null 2>&1 || true
}

# After `pg_autoctl create` for NAME (its initdb trusts every TCP connection
# from 127.0.0.1, and the cluster is stopped again when create returns):
# scram-sha-256 over TCP for every role, and our settings after pg_autoctl's.
# A secondary gets both from its primary (pg_basebackup).
configure_cluster() { # NAME [EXTRA_SETTINGS]
  local data=$DIR/pg/$1 rule pid
  rule='^(host[[:space:]]+(all|replication)[[:space:]]+all[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+)trust[[:space:]]*$'
  as_pg sed -i -E "s#$rule#\\1scram-sha-256#" "$data/pg_hba.conf"
  [[ $(grep -Ec '^host[[:space:]]+(all|replication)[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+scram-sha-256$' "$data/pg_hba.conf") == 2 ]] ||
    die "unexpected pg_hba.conf in $data: cannot turn loopback trust into scram-sha-256"
  ! grep -Eq '^host[^#]*127\.0\.0\.1/32[[:space:]]+trust' <(grep -E '^host' "$data/pg_hba.conf" | head -n 2) ||
    die "pg_hba.conf in $data still trusts TCP connections"
  # After pg_autoctl's include, which sets listen_addresses, port, TLS and
  # replication; tokend.conf only sets what it leaves alone.
  as_pg tee -a "$data/postgresql.conf" >/dev/null <<EOF
# Written by scripts/pgaf.sh: a throwaway cluster for tokend's tests.
include = 'tokend.conf'
EOF
  as_pg tee "$data/tokend.conf" >/dev/null <<EOF
max_connections = 300
shared_buffers = 128MB
# The tests are about durability: keep it.
fsync = on
synchronous_commit = on
full_page_writes = on
${2:-}
EOF
  if pid=$(postmaster_pid "$1"); then
    kill -HUP "$pid" # still running: reload
  fi
}

cmd_start() {
  [[ $# -eq 1 ]] || usage
  find_bins
  mkdir -p -- "$1" || die "cannot create $1"
  DIR=$(resolve "$1") || die "cannot enter $1"
  [[ -z $(ls -A -- "$DIR") ]] || die "$DIR is not empty; remove the old formation first: scripts/pgaf.sh stop $1 && rm -rf $1"
  [[ $DIR != *[\'[:space:]\\,\&?=]* ]] || die "$DIR: quotes, backslashes, spaces and URL punctuation are not supported in DIR"
  # DIR/sock/.s.PGSQL.PORT.lock must fit in sun_path (107 bytes).
  ((${#DIR} + 25 <= 107)) || die "$DIR is too long for a unix socket path; use a shorter DIR"
  chmod 0755 "$DIR"
  if ((EUID == 0)); then
    ensure_pg_user
    check_reachable
  fi
  af_env
  mkdir -m 0700 "$DIR/home" "$DIR/sock" "$DIR/pg" "$DIR/pg/monitor" "$DIR/pg/node1" "$DIR/pg/node2"
  local name
  for name in monitor "${NODES[@]}"; do
    : >"$DIR/$name.log"
    chmod 0640 "$DIR/$name.log"
  done
  ((EUID != 0)) || chown "$PG_USER:" "$DIR/home" "$DIR/sock" "$DIR/pg" "$DIR/pg/monitor" "$DIR/pg/node1" "$DIR/pg/node2" \
    "$DIR/monitor.log" "$DIR/node1.log" "$DIR/node2.log"
  trap failed_start EXIT
  cd "$DIR" # the server's user may not be able to enter the caller's directory

  : >"$DIR/ports.tmp"
  for name in monitor "${NODES[@]}"; do
    pick_port
    echo "$name $PORT" >>"$DIR/ports.tmp"
  done
  mv "$DIR/ports.tmp" "$DIR/ports"

  # One random password for pg_auto_failover's roles, in a PGPASSFILE that
  # pg_autoctl, pg_basebackup, the standby's walreceiver and the monitor's
  # health checks all read (their environment: af_env).
  local internal
  internal=$(new_password)
  (
    umask 077
    printf '*:*:*:%s:%s\n' autoctl_node "$internal" pgautofailover_monitor "$internal" \
      pgautofailover_replicator "$internal" >"$DIR/home/pgpass"
  )
  ((EUID != 0)) || chown "$PG_USER:" "$DIR/home/pgpass"

  # The monitor, with pg_auto_failover's timeouts unless PGAF_* say otherwise
  # (see the header).
  autoctl_t create monitor --pgctl "$BIN/pg_ctl" --pgdata "$DIR/pg/monitor" --pgport "$(port_of monitor)" \
    --hostname 127.0.0.1 --listen 127.0.0.1 --auth scram-sha-256 --ssl-self-signed \
    >>"$DIR/monitor.log" 2>&1 </dev/null || { log_tail monitor; die "pg_autoctl create monitor failed"; }
  local knob var monitor_settings=''
  for knob in health_check_period:PGAF_HEALTH_CHECK_PERIOD_MS health_check_timeout:PGAF_HEALTH_CHECK_TIMEOUT_MS \
    health_check_max_retries:PGAF_HEALTH_CHECK_MAX_RETRIES health_check_retry_delay:PGAF_HEALTH_CHECK_RETRY_DELAY_MS \
    node_considered_unhealthy_timeout:PGAF_UNHEALTHY_TIMEOUT_MS primary_demote_timeout:PGAF_DEMOTE_TIMEOUT_MS; do
    var=${knob#*:}
    [[ -z ${!var:-} ]] || printf -v monitor_settings '%spgautofailover.%s = %s\n' "$monitor_settings" "${knob%%:*}" "${!var}"
  done
  configure_cluster monitor "$monitor_settings"
  run_node monitor
  wait_ready monitor 60
  su_psql monitor pg_auto_failover >/dev/null <<EOF || { log_tail monitor; die "could not set the monitor's password"; }
SET log_statement = 'none';
SET log_min_error_statement = panic;
ALTER ROLE autoctl_node PASSWORD '$internal';
EOF
  local monitor_uri
  monitor_uri="postgres://autoctl_node@127.0.0.1:$(port_of monitor)/pg_auto_failover?sslmode=require"

  # The primary: registered first, it starts as "single".
  create_node node1 "$monitor_uri"
  configure_cluster node1
  run_node node1
  wait_ready node1 60
  # Its roles for health checks and replication get their passwords before
  # the secondary copies it (pg_basebackup): the copy has them too.
  local password
  password=$(new_password)
  su_psql node1 postgres >/dev/null <<EOF || { log_tail node1; die "could not create the roles on node1"; }
SET log_statement = 'none';
SET log_min_error_statement = panic;
ALTER ROLE pgautofailover_monitor PASSWORD '$internal';
ALTER ROLE pgautofailover_replicator PASSWORD '$internal';
CREATE ROLE tokend LOGIN PASSWORD '$password';
CREATE DATABASE tokend OWNER tokend;
-- pg_basebackup's spread checkpoint then has nothing to write: it takes
-- seconds, not minutes.
CHECKPOINT;
EOF
  # The secondary: an empty data directory, filled by pg_basebackup.
  create_node node2 "$monitor_uri"
  run_node node2

  local deadline=$((SECONDS + FORMATION_TIMEOUT))
  until in_sync; do
    if ((SECONDS >= deadline)); then
      autoctl show state --pgdata "$DIR/pg/monitor" >&2 || true
      log_tail node1
      log_tail node2
      die "the formation in $DIR has no synchronous primary + secondary after $FORMATION_TIMEOUT s"
    fi
    for name in monitor "${NODES[@]}"; do
      autoctl_pid "$name" >/dev/null || {
        log_tail "$name"
        die "pg_autoctl run for $name exited"
      }
    done
    sleep 0.5
  done

  local p1 p2 url
  p1=$(port_of node1) p2=$(port_of node2)
  url="postgres://tokend@127.0.0.1:$p1,127.0.0.1:$p2/tokend?target_session_attrs=read-write&connect_timeout=3"
  (
    umask 077
    printf '%s\n' "$password" >"$DIR/password"
    printf '127.0.0.1:%s:*:tokend:%s\n' "$p1" "$password" "$p2" "$password" >"$DIR/pgpass"
  )
  echo "$url" >"$DIR/url"
  [[ $(PGPASSFILE=$DIR/pgpass "$BIN/psql" -X -At "$url" -c 'SELECT current_user' 2>&1) == tokend ]] || {
    log_tail node1
    die "the tokend role cannot log in over TCP with $DIR/pgpass"
  }
  trap - EXIT
  echo "$url"
}

create_node() { # NAME MONITOR_URI
  local name=$1
  autoctl_t create postgres --pgctl "$BIN/pg_ctl" --pgdata "$DIR/pg/$name" --pgport "$(port_of "$name")" \
    --listen 127.0.0.1 --hostname 127.0.0.1 --name "$name" --monitor "$2" \
    --auth scram-sha-256 --ssl-self-signed >>"$DIR/$name.log" 2>&1 </dev/null ||
    {
      log_tail "$name"
      die "pg_autoctl create postgres failed for $name"
    }
  if [[ -n ${PGAF_RESTART_RETRIES:-} ]]; then
    autoctl config set --pgdata "$DIR/pg/$name" timeout.postgresql_restart_failure_max_retries \
      "$PGAF_RESTART_RETRIES" >/dev/null
  fi
}

cmd_stop() {
  [[ $# -eq 1 ]] || usage
  [[ -d $1 ]] || return 0
  DIR=$(resolve "$1") || die "cannot enter $1"
  stop_dir
}

# DIR of a started formation.
started_dir() {
  if ! DIR=$(resolve "$1") || [[ ! -f $DIR/ports ]]; then
    die "no formation in $1 (start it with: scripts/pgaf.sh start $1)"
  fi
  find_bins
  af_env
}

cmd_state() {
  [[ $# -ge 1 ]] || usage
  started_dir "$1"
  shift
  cd "$DIR"
  autoctl show state --pgdata "$DIR/pg/monitor" "$@"
}

cmd_primary() {
  [[ $# -eq 1 ]] || usage
  started_dir "$1"
  current_primary || die "no node of $DIR takes writes now"
}

# SIGKILL to the primary's postmaster, and that node's Postgres kept down
# until the monitor has failed over. pg_autoctl restarts a killed Postgres in
# place within a second or two, often before its keeper has told the monitor:
# then there is no failover, only a crash recovery. (Killing the restarted
# postmaster again is no way out: pg_autoctl 2.0 then waits for ever on its
# unreaped child, whose PID still answers kill -0.) So before the kill, a line
# that PostgreSQL refuses is added to the node's tokend.conf: every restart
# fails at once, cleanly; the keeper reports it (restart_failure_max_retries
# = 0) and the monitor promotes the secondary. A watcher in the background
# (its PID in DIR/unmark.pid, its log DIR/unmark.log) removes the line once
# the node has left the primary role, and before pg_autoctl starts it again
# to rewind it (see unmark_when_safe).
KILL_MARK=pgaf_kill_primary_keeps_this_node_down
cmd_kill_primary() {
  [[ $# -eq 1 ]] || usage
  started_dir "$1"
  local p name port pid
  ! watcher_pid >/dev/null || die "a previous kill-primary is still in progress in $DIR: wait-failover first"
  p=$(current_primary) || die "no node of $DIR takes writes now: nothing to kill"
  read -r name port <<<"$p"
  pid=$(postmaster_pid "$name") || die "no postmaster runs in $DIR/pg/$name"
  KILL_CONF=$DIR/pg/$name/tokend.conf
  trap unmark_conf EXIT # the line goes again if anything below fails
  echo "$KILL_MARK = on" | as_pg tee -a "$KILL_CONF" >/dev/null
  echo "$name" >"$DIR/killed"
  (
    exec </dev/null >>"$DIR/unmark.log" 2>&1
    exec setsid bash "$SELF" _unmark "$DIR" "$name"
  ) &
  echo $! >"$DIR/unmark.pid"
  kill -KILL "$pid"
  trap - EXIT
  # The killed postmaster leaves its postmaster.pid, which pg_autoctl 2.0
  # keeps reading ("Read a stale pid") after each failed start: removed once
  # the postmaster is gone (no new one can have written it: the line above
  # stops each before it takes its lock file).
  local i data=$DIR/pg/$name
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if ! alive "$pid" && [[ $(head -n1 "$data/postmaster.pid" 2>/dev/null) == "$pid" ]]; then
    as_pg rm -f "$data/postmaster.pid"
  fi
  echo "killed $name (127.0.0.1:$port, postmaster $pid)"
}

watcher_pid() { # the PID of a running kill-primary watcher of DIR
  local pid
  pid=$(head -n1 "$DIR/unmark.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "_unmark $DIR " || return 1
  echo "$pid"
}

is_primary_state() { # STATE (empty: unknown, counted as primary)
  case $1 in
  primary | wait_primary | single | apply_settings | join_primary | '') return 0 ;;
  *) return 1 ;;
  esac
}

unmark_conf() {
  [[ -z ${KILL_CONF:-} ]] || as_pg sed -i "/^$KILL_MARK = /d" "$KILL_CONF"
}

# The watcher: removes the line once the node's keeper has left the primary
# role (its own state: draining, demote_timeout or demoted), which it does
# after the monitor's order: by then it has told its Postgres service to keep
# PostgreSQL stopped. Removing it as soon as the monitor decides lets that
# service, still retrying, bring the old primary back read-write for a moment
# while the secondary is being promoted; removing it after the keeper has
# moved on to catching up is too late (pg_autoctl 2.0 then waits for ever for
# the PostgreSQL it starts before pg_rewind, which the line stopped, and the
# node never rejoins). The window between is the monitor's
# primary_demote_timeout less the keeper's 10 s wait (see the header).
unmark_when_safe() { # DIR NAME
  DIR=$1
  local name=$2 keeper seen='' deadline=$((SECONDS + 120))
  find_bins
  af_env
  KILL_CONF=$DIR/pg/$name/tokend.conf
  while grep -q "^$KILL_MARK = " "$KILL_CONF" 2>/dev/null; do
    keeper=$(autoctl show state --local --json --pgdata "$DIR/pg/$name" 2>/dev/null |
      sed -n 's/^ *"current_group_state": "\([a-z_]*\)".*/\1/p') || keeper=
    [[ $keeper == "$seen" ]] || echo "$(date +%T.%N | cut -c1-12) $name: keeper ${keeper:-?}"
    seen=$keeper
    case $keeper in
    draining | demote_timeout | demoted)
      sleep 0.2 # a start that read the configuration before the keeper's order fails still
      unmark_conf
      echo "$(date +%T.%N | cut -c1-12) $name may start again"
      return 0
      ;;
    catchingup | secondary | wait_standby)
      unmark_conf
      echo "$(date +%T.%N | cut -c1-12) $name: too late, pg_autoctl may not restart it"
      return 1
      ;;
    esac
    if ((SECONDS >= deadline)); then
      unmark_conf # pg_autoctl may restart it in place, then
      echo "$(date +%T.%N | cut -c1-12) $name still a primary after 120 s: it may start again"
      return 1
    fi
    sleep 0.05
  done
}

# Waits for another node than the one killed to take writes (the tokend role
# can write there) and, with --rejoin, for the killed one to be a secondary
# again.
cmd_wait_failover() {
  [[ $# -ge 1 ]] || usage
  started_dir "$1"
  shift
  local timeout=60 rejoin='' a
  for a in "$@"; do
    case $a in
    --rejoin) rejoin=1 ;;
    [0-9]*) timeout=$a ;;
    *) usage ;;
    esac
  done
  local killed p name port start=$SECONDS
  killed=$(cat "$DIR/killed" 2>/dev/null) || die "no kill-primary in $DIR to wait for"
  local deadline=$((SECONDS + timeout))
  while :; do
    if p=$(current_primary) && name=${p%% *} && [[ $name != "$killed" ]] && ! watcher_pid >/dev/null; then
      # It takes writes from the tokend role too (not only reports so).
      if [[ $(PGPASSFILE=$DIR/pgpass "$BIN/psql" -X -At "postgres://tokend@127.0.0.1:${p#* }/tokend?connect_timeout=2" \
        -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null) == t ]]; then
        [[ -z $rejoin ]] && break
        [[ $(states | awk -v n="$killed" '$1 == n { print $3 ":" $4 }') == secondary:secondary ]] && break
      fi
    fi
    if ((SECONDS >= deadline)); then
      autoctl show state --pgdata "$DIR/pg/monitor" >&2 || true
      die "no failover from $killed within $timeout s${rejoin:+ (with $killed back as secondary)}"
    fi
    sleep 0.2
  done
  read -r name port <<<"$p"
  echo "primary $name (127.0.0.1:$port) after $((SECONDS - start)) s"
}

case ${1:-} in
start | stop | state | primary)
  cmd=$1
  shift
  "cmd_$cmd" "$@"
  ;;
kill-primary)
  shift
  cmd_kill_primary "$@"
  ;;
wait-failover)
  shift
  cmd_wait_failover "$@"
  ;;
_unmark) # kill-primary's watcher (internal)
  [[ $# -eq 3 ]] || usage
  unmark_when_safe "$2" "$3"
  ;;
psql)
  [[ $# -ge 2 ]] || usage
  started_dir "$2"
  shift 2
  PGPASSFILE=$DIR/pgpass exec "$BIN/psql" "$(cat "$DIR/url")" "$@"
  ;;
*) usage ;;
esac
