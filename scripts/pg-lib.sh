# shellcheck shell=bash
# Sourced by scripts/pg.sh and scripts/pgaf.sh: what running throwaway
# PostgreSQL servers as an unprivileged user, on free loopback ports, stopped
# by their own PIDs, needs in both. The caller sets PROG (its name, for
# messages) and DIR (the directory it manages) before using these.

umask 022
# Connection settings from the caller's environment must not redirect ours.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE \
  PGSERVICE PGSERVICEFILE PGSSLMODE PGTARGETSESSIONATTRS PGDATA PG_AUTOCTL_MONITOR

PG_USER=tokend-pg # PostgreSQL refuses root: run as root, the servers run as this user

die() {
  echo "$PROG: $*" >&2
  exit 1
}

# Sets BIN to PostgreSQL 15's binaries: PG_BINDIR, else Debian's
# /usr/lib/postgresql/15/bin (scripts/deps.sh --test), else `pg_config --bindir`.
find_pg_bindir() {
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

# as_pg runs a command as the servers' user; exec_as_pg replaces this process
# with it (no runuser in between: the PID of a background job is the program's).
if ((EUID == 0)); then
  as_pg() { runuser -u "$PG_USER" -- "$@"; }
  exec_as_pg() { exec setpriv --reuid="$PG_USER" --regid="$PG_USER" --init-groups -- "$@"; }
else
  as_pg() { "$@"; }
  exec_as_pg() { exec "$@"; }
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

# Root only: the servers' user must be able to reach DIR.
check_reachable() {
  ((EUID == 0)) || return 0
  as_pg test -x "$DIR" && return 0
  local path='' part parts
  IFS=/ read -ra parts <<<"${DIR#/}"
  for part in "${parts[@]}"; do
    path=$path/$part
    as_pg test -x "$path" && continue
    die "$path ($(stat -c '%A %U' "$path")) cannot be entered by $PG_USER, the user the servers run as (PostgreSQL refuses root); put DIR elsewhere (under /tmp or the build directory) or chmod o+x $path"
  done
  die "$DIR cannot be entered by $PG_USER"
}

# A directory as an absolute physical path (a postmaster's working directory
# is its data directory, which is how it is recognised).
resolve() { cd -- "$1" 2>/dev/null && pwd -P; }

alive() { # PID: a live process (not a zombie)
  local stat
  stat=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $stat && ${stat%% *} != Z ]]
}

wait_gone() { # PID SECONDS
  local end=$((SECONDS + $2))
  while alive "$1"; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
}

# Every descendant of PID (children first, then theirs), one a line.
descendants() { # PID
  local p stat ppid kids=() k
  for p in /proc/[0-9]*; do
    stat=$(sed 's/^.*) //' "$p/stat" 2>/dev/null) || continue
    read -r _ ppid _ <<<"$stat"
    [[ $ppid == "$1" ]] && kids+=("${p#/proc/}")
  done
  for k in ${kids[@]+"${kids[@]}"}; do
    echo "$k"
    descendants "$k"
  done
  return 0
}

# Prints the PID of the postmaster running the cluster in DATA, read from the
# first PIDFILE that names one. A PID file may be stale and its number
# reused: the process must work in DATA (or, when it is not ours to inspect,
# name DATA on its command line).
postmaster_in() { # DATA PIDFILE...
  local data=$1 f pid cwd
  shift
  for f in "$@"; do
    pid=$(head -n1 "$f" 2>/dev/null) || continue
    [[ $pid =~ ^[0-9]+$ ]] || continue
    alive "$pid" || continue
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || cwd=
    if [[ -n $cwd ]]; then
      [[ $cwd == "$data" ]] || continue
    else
      tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-D $data " || continue
    fi
    echo "$pid"
    return 0
  done
  return 1
}

# Sets PORT to a port on 127.0.0.1 that nothing listens on, below Linux's
# ephemeral range (32768-60999, so that no outgoing connection holds it by
# chance), never 5432 nor one picked before by this script (PICKED). Another
# process may still take it before the server binds it: callers retry.
PICKED=" "
pick_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    PORT=$((20000 + RANDOM % 12000))
    [[ $PICKED != *" $PORT "* ]] || continue
    if ! timeout 1 bash -c ": </dev/tcp/127.0.0.1/$PORT" 2>/dev/null; then
      PICKED+="$PORT "
      return 0
    fi
  done
  die "no free port found on 127.0.0.1"
}

# A random password, URL-safe and without ':' (it goes into pgpass lines).
new_password() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }
