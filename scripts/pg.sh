#!/usr/bin/env bash
# Throwaway PostgreSQL clusters for tests and benchmarks: one per directory, on
# a free port on 127.0.0.1, run by an unprivileged user, stopped by its own PID.
#
#   scripts/pg.sh start DIR          create DIR, initdb, start; prints the URL
#   scripts/pg.sh stop DIR           stop it (succeeds quietly if not running)
#   scripts/pg.sh resume DIR         start a stopped cluster again, same port and data
#   scripts/pg.sh status DIR         "running PID PORT" and exit 0, else exit 3
#   scripts/pg.sh url DIR            postgres://tokend@127.0.0.1:PORT/tokend
#   scripts/pg.sh superuser-url DIR  the postgres role through the unix socket
#   scripts/pg.sh psql DIR [ARGS]    psql as the tokend role (PGPASSFILE=DIR/pgpass)
#
# What DIR holds (DIR itself belongs to the caller, mode 0755):
#   data/          the cluster, owned by the server's user, 0700
#   sock/          its unix socket, owned by the server's user, 0700
#   postgres.log   the server's log         postgres.pid   the postmaster's PID
#   password       the tokend role's password (0600)
#   pgpass         a PGPASSFILE line for it (0600)
#   url, port      how to reach it; the URL carries no password
#
# Roles: the superuser postgres, and tokend (random password) owning the
# database tokend. Authentication: trust on the unix socket, which only root
# and the server's user can reach (sock/ is 0700), scram-sha-256 over TCP.
# Durability stays on (fsync, synchronous_commit): the tests are about it.
#
# PostgreSQL refuses to run as root. Run as root, this script creates the
# system user tokend-pg once (no shell, no home) and runs initdb and the server
# as that user (runuser), so DIR's parents must be traversable by tokend-pg:
# not under /root, say (the script says which directory is in the way). Run
# as anyone else, the server runs as the caller.
#
# Binaries: /usr/lib/postgresql/15/bin (Debian's postgresql-15, installed by
# scripts/deps.sh --test), else `pg_config --bindir`; PG_BINDIR overrides.
# Nothing here uses Debian's pg_ctlcluster, its default cluster or port 5432.
set -euo pipefail
PROG=pg.sh
# shellcheck source=scripts/pg-lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/pg-lib.sh"
START_TIMEOUT=30 # seconds until the server must answer

usage() {
  sed -n '1,12s/^#   \(scripts\/pg.sh\)/  \1/p' "$0" >&2
  exit 2
}

# Prints the PID of DIR's postmaster if it runs.
cluster_pid() { postmaster_in "$1/data" "$1/postgres.pid" "$1/data/postmaster.pid"; }

# SIGINT (fast shutdown: clients are disconnected, a clean checkpoint is
# written; smart shutdown would wait for every client), then SIGQUIT
# (immediate), SIGKILL.
stop_dir() { # absolute DIR
  local dir=$1 pid step sig secs children
  pid=$(cluster_pid "$dir") || {
    rm -f "$dir/postgres.pid"
    return 0
  }
  for step in INT:20 QUIT:5; do
    sig=${step%:*} secs=${step#*:}
    if ! kill -s "$sig" "$pid" 2>/dev/null; then
      alive "$pid" || break
      die "cannot signal postgres $pid ($dir): it belongs to $(stat -c %U "/proc/$pid"); stop it as root or as that user"
    fi
    wait_gone "$pid" "$secs" && break
    [[ $sig == QUIT ]] || echo "pg.sh: postgres $pid ($dir) still running $secs s after SIG$sig" >&2
  done
  if alive "$pid"; then
    children=$(descendants "$pid")
    echo "pg.sh: killing postgres $pid and its children ($dir)" >&2
    # shellcheck disable=SC2086
    kill -KILL "$pid" $children 2>/dev/null || true
    wait_gone "$pid" 5 || die "postgres $pid ($dir) survived SIGKILL"
    for pid in $children; do wait_gone "$pid" 5 || true; done
  fi
  rm -f "$dir/postgres.pid"
}

write_conf() { # PORT
  cat >"$DIR/data/tokend.conf" <<EOF
# Written by scripts/pg.sh: a throwaway cluster for tokend's tests.
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = '$DIR/sock'
max_connections = 300
shared_buffers = 128MB
# The tests are about durability: keep it.
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
  ((EUID != 0)) || chown "$PG_USER:" "$DIR/data/tokend.conf"
}

log_tail() {
  echo "--- last lines of $DIR/postgres.log:" >&2
  tail -n 25 "$DIR/postgres.log" >&2 || true
}

failed_start() { # stops whatever an unfinished start left running
  local rc=$?
  ((rc == 0)) || stop_dir "$DIR" >/dev/null 2>&1 || true
}

cmd_start() {
  [[ $# -eq 1 ]] || usage
  find_pg_bindir
  mkdir -p -- "$1" || die "cannot create $1"
  DIR=$(resolve "$1") || die "cannot enter $1"
  [[ -z $(ls -A -- "$DIR") ]] || die "$DIR is not empty; remove the old cluster first: scripts/pg.sh stop $1 && rm -rf $1"
  [[ $DIR != *[\'[:space:]\\]* ]] || die "$DIR: quotes, backslashes and spaces are not supported in DIR"
  # The socket's path, DIR/sock/.s.PGSQL.PORT, must fit in sun_path (107 bytes).
  ((${#DIR} + 20 <= 107)) || die "$DIR is too long for a unix socket path; use a shorter DIR"
  chmod 0755 "$DIR"
  if ((EUID == 0)); then
    ensure_pg_user
    check_reachable
  fi
  mkdir -m 0700 "$DIR/data" "$DIR/sock"
  : >"$DIR/postgres.log"
  chmod 0640 "$DIR/postgres.log"
  ((EUID != 0)) || chown "$PG_USER:" "$DIR/data" "$DIR/sock" "$DIR/postgres.log"
  trap failed_start EXIT
  cd "$DIR" # the server's user may not be able to enter the caller's directory

  as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || {
    tail -n 25 "$DIR/initdb.log" >&2
    die "initdb failed (whole output: $DIR/initdb.log)"
  }
  echo "include = 'tokend.conf'" >>"$DIR/data/postgresql.conf"

  local port attempt logsize started=
  for ((attempt = 1; attempt <= 5; attempt++)); do
    pick_port
    port=$PORT
    write_conf "$port"
    logsize=$(stat -c %s "$DIR/postgres.log")
    if as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t "$START_TIMEOUT" start >"$DIR/pg_ctl.log" 2>&1; then
      started=1
      break
    fi
    stop_dir "$DIR" # pg_ctl gave up; a slow server may still be coming up
    # Someone took the port between pick_port and the bind: try another.
    tail -c +"$((logsize + 1))" "$DIR/postgres.log" | grep -q 'could not bind IPv4 address' || break
  done
  if [[ -z $started ]]; then
    cat "$DIR/pg_ctl.log" >&2
    log_tail
    die "PostgreSQL did not start in $DIR (port $port)"
  fi
  head -n1 "$DIR/data/postmaster.pid" >"$DIR/postgres.pid"

  local deadline=$((SECONDS + START_TIMEOUT))
  until "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; do
    if ((SECONDS >= deadline)); then
      log_tail
      die "PostgreSQL in $DIR does not answer on 127.0.0.1:$port after $START_TIMEOUT s"
    fi
    sleep 0.2
  done

  # CREATEDB: the end-to-end tests give each tokend server a database of its
  # own. The password goes to psql on stdin, never on a command line, and neither
  # the server's log nor an error message repeats the statement.
  local password url
  password=$(new_password)
  "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=terse \
    "host=$DIR/sock port=$port user=postgres dbname=postgres" >/dev/null <<EOF || { log_tail; die "could not create the tokend role and database"; }
SET log_min_error_statement = panic;
CREATE ROLE tokend LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE tokend OWNER tokend;
EOF
  url="postgres://tokend@127.0.0.1:$port/tokend"
  (
    umask 077
    printf '%s\n' "$password" >"$DIR/password"
    printf '127.0.0.1:%s:*:tokend:%s\n' "$port" "$password" >"$DIR/pgpass"
  )
  echo "$port" >"$DIR/port"
  echo "$url" >"$DIR/url"

  [[ $(PGPASSFILE=$DIR/pgpass "$BIN/psql" -X -At "$url" -c 'select 1' 2>&1) == 1 ]] || {
    log_tail
    die "the tokend role cannot log in over TCP with $DIR/pgpass"
  }
  trap - EXIT
  echo "$url"
}

cmd_stop() {
  [[ $# -eq 1 ]] || usage
  [[ -d $1 ]] || return 0
  DIR=$(resolve "$1") || die "cannot enter $1"
  stop_dir "$DIR"
}

# A stopped cluster back on its port (tests of an outage and the recovery).
cmd_resume() {
  [[ $# -eq 1 ]] || usage
  started_dir "$1"
  find_pg_bindir
  ! cluster_pid "$DIR" >/dev/null || return 0
  cd "$DIR"
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t "$START_TIMEOUT" start >"$DIR/pg_ctl.log" 2>&1 || {
    cat "$DIR/pg_ctl.log" >&2
    log_tail
    die "PostgreSQL did not start again in $DIR"
  }
  head -n1 "$DIR/data/postmaster.pid" >"$DIR/postgres.pid"
}

cmd_status() {
  [[ $# -eq 1 ]] || usage
  local pid
  if [[ -d $1 ]] && DIR=$(resolve "$1") && pid=$(cluster_pid "$DIR"); then
    echo "running $pid $(cat "$DIR/port" 2>/dev/null)"
  else
    echo "not running"
    exit 3
  fi
}

# DIR of a started cluster (for url, superuser-url, psql).
started_dir() {
  if ! DIR=$(resolve "$1") || [[ ! -f $DIR/url ]]; then
    die "no cluster in $1 (start it with: scripts/pg.sh start $1)"
  fi
}

case ${1:-} in
start | stop | resume | status)
  cmd=$1
  shift
  "cmd_$cmd" "$@"
  ;;
url)
  [[ $# -eq 2 ]] || usage
  started_dir "$2"
  cat "$DIR/url"
  ;;
superuser-url)
  # Trust authentication: only through the socket, only for root and the
  # server's user.
  [[ $# -eq 2 ]] || usage
  started_dir "$2"
  echo "postgresql:///tokend?host=$DIR/sock&user=postgres&port=$(cat "$DIR/port")"
  ;;
psql)
  [[ $# -ge 2 ]] || usage
  started_dir "$2"
  shift 2
  find_pg_bindir
  PGPASSFILE=$DIR/pgpass exec "$BIN/psql" "$(cat "$DIR/url")" "$@"
  ;;
*) usage ;;
esac
