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
umask 022
# Connection settings from the caller's environment must not redirect ours.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE \
  PGSERVICE PGSERVICEFILE PGSSLMODE PGTARGETSESSIONATTRS PGDATA

PG_USER=tokend-pg
START_TIMEOUT=30 # seconds until the server must answer

die() {
  echo "pg.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '1,12s/^#   \(scripts\/pg.sh\)/  \1/p' "$0" >&2
  exit 2
}

find_bindir() {
  if [[ -n ${PG_BINDIR:-} ]]; then
    BIN=$PG_BINDIR
  elif [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then
    BIN=/usr/lib/postgresql/15/bin
  elif command -v pg_config >/dev/null; then
    BIN=$(pg_config --bindir)
  else
    BIN=
  fi
  local b
  for b in initdb pg_ctl postgres pg_isready psql; do
    [[ -x $BIN/$b ]] || die "PostgreSQL's $b not found (looked in ${BIN:-/usr/lib/postgresql/15/bin}); run scripts/deps.sh --test, or set PG_BINDIR"
  done
}

# Runs a command as the server's user.
if ((EUID == 0)); then
  as_pg() { runuser -u "$PG_USER" -- "$@"; }
else
  as_pg() { "$@"; }
  PG_USER=$(id -un)
fi

ensure_pg_user() {
  local i
  for i in 1 2 3 4 5; do
    getent passwd "$PG_USER" >/dev/null && return 0
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment "tokend throwaway PostgreSQL clusters" \
      "$PG_USER" && return 0
    sleep 1 # another start may be creating it at this moment
  done
  die "could not create the system user $PG_USER"
}

# Root only: the server's user must be able to reach DIR.
check_reachable() {
  ((EUID == 0)) || return 0
  as_pg test -x "$DIR" && return 0
  local path='' part parts
  IFS=/ read -ra parts <<<"${DIR#/}"
  for part in "${parts[@]}"; do
    path=$path/$part
    as_pg test -x "$path" && continue
    die "$path ($(stat -c '%A %U' "$path")) cannot be entered by $PG_USER, the user the server runs as (PostgreSQL refuses root); put DIR elsewhere (under /tmp or the build directory) or chmod o+x $path"
  done
  die "$DIR cannot be entered by $PG_USER"
}

# DIR as an absolute physical path (the postmaster's working directory is
# DIR/data, which is how stop recognises it).
resolve() { cd -- "$1" 2>/dev/null && pwd -P; }

alive() { # PID: a live process (not a zombie)
  local stat
  stat=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $stat && ${stat%% *} != Z ]]
}

# Prints the PID of DIR's postmaster if it runs. A PID file may be stale and
# its number reused: the process must be a postmaster working in DIR/data.
cluster_pid() {
  local dir=$1 f pid cwd
  for f in "$dir/postgres.pid" "$dir/data/postmaster.pid"; do
    pid=$(head -n1 "$f" 2>/dev/null) || continue
    [[ $pid =~ ^[0-9]+$ ]] || continue
    alive "$pid" || continue
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || cwd=
    if [[ -n $cwd ]]; then
      [[ $cwd == "$dir/data" ]] || continue
    else # not ours to inspect: fall back to its command line
      tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-D $dir/data" || continue
    fi
    echo "$pid"
    return 0
  done
  return 1
}

wait_gone() { # PID SECONDS
  local end=$((SECONDS + $2))
  while alive "$1"; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
}

child_pids() { # PID
  local p stat ppid
  for p in /proc/[0-9]*; do
    stat=$(sed 's/^.*) //' "$p/stat" 2>/dev/null) || continue
    read -r _ ppid _ <<<"$stat"
    [[ $ppid == "$1" ]] && echo "${p#/proc/}"
  done
  return 0
}

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
    children=$(child_pids "$pid")
    echo "pg.sh: killing postgres $pid and its children ($dir)" >&2
    # shellcheck disable=SC2086
    kill -KILL "$pid" $children 2>/dev/null || true
    wait_gone "$pid" 5 || die "postgres $pid ($dir) survived SIGKILL"
    for pid in $children; do wait_gone "$pid" 5 || true; done
  fi
  rm -f "$dir/postgres.pid"
}

# A port on 127.0.0.1 that nothing listens on, below Linux's ephemeral range
# (32768-60999) so that no outgoing connection holds it by chance, never 5432.
# Another process may still take it before the server binds it: start retries.
free_port() {
  local port i
  for ((i = 0; i < 100; i++)); do
    port=$((20000 + RANDOM % 12000))
    if ! timeout 1 bash -c ": </dev/tcp/127.0.0.1/$port" 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found on 127.0.0.1"
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
  find_bindir
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
    port=$(free_port)
    write_conf "$port"
    logsize=$(stat -c %s "$DIR/postgres.log")
    if as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t "$START_TIMEOUT" start >"$DIR/pg_ctl.log" 2>&1; then
      started=1
      break
    fi
    stop_dir "$DIR" # pg_ctl gave up; a slow server may still be coming up
    # Someone took the port between free_port and the bind: try another.
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
  password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_') # URL-safe, no ':'
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
  find_bindir
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
  find_bindir
  PGPASSFILE=$DIR/pgpass exec "$BIN/psql" "$(cat "$DIR/url")" "$@"
  ;;
*) usage ;;
esac
