# shellcheck shell=bash
# Shared bootstrap for scripts/test, scripts/run and scripts/pgctl: installs what is missing and
# runs a private Redis and a private PostgreSQL whose data all lives under $ROOT/.data.
#
# Sourced, not executed. The scripts that source it run with `set -euo pipefail`; this file does
# not set shell options itself, so `source scripts/lib.sh` in an interactive shell is safe too.
# For the same reason every function reports failure with an explicit `return 1` rather than
# relying on `set -e` (which bash ignores inside functions called from `if`/`||`).
#
# Knobs (environment):
#   WAITROOM_REDIS_PORT      private Redis port        (default 6390)
#   WAITROOM_PG_PORT         private Postgres port     (default 5442)
#   WAITROOM_REDIS_URL       if set to anything but our own URL: use that Redis, start none
#   WAITROOM_DATABASE_URL    if set to anything but our own URL: use that Postgres, start none
#   WAITROOM_PG_OS_USER      OS user that owns the Postgres data when we run as root
#                            (default waitroom-pg; Postgres refuses to run as root)
#   WAITROOM_SERVICE_TIMEOUT seconds to wait for a service to come up or go down (default 60)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
WR_DATA="$ROOT/.data"
WR_REDIS_PORT="${WAITROOM_REDIS_PORT:-6390}"
WR_PG_PORT="${WAITROOM_PG_PORT:-5442}"
WR_PG_OS_USER="${WAITROOM_PG_OS_USER:-waitroom-pg}"
WR_TIMEOUT="${WAITROOM_SERVICE_TIMEOUT:-60}"
WR_OUR_REDIS_URL="redis://127.0.0.1:$WR_REDIS_PORT/"
WR_OUR_DATABASE_URL="postgres://waitroom@127.0.0.1:$WR_PG_PORT/waitroom"

# Child processes (tests calling scripts/pgctl, the bench) must agree on the ports.
export WAITROOM_REDIS_PORT="$WR_REDIS_PORT" WAITROOM_PG_PORT="$WR_PG_PORT"
export WAITROOM_PGCTL="$ROOT/scripts/pgctl"

# Set to 1 when *this* shell started the service; traps stop only those (wr_cleanup_started).
WR_STARTED_REDIS="${WR_STARTED_REDIS:-0}"
WR_STARTED_PG="${WR_STARTED_PG:-0}"
WR_APT_UPDATED="${WR_APT_UPDATED:-0}"

wr_log() { printf '[waitroom] %s\n' "$*" >&2; }
wr_err() { printf '[waitroom] ERROR: %s\n' "$*" >&2; }

# Print the last lines of a log file, indented, to stderr.
_wr_tail() {
  local file=$1 lines=${2:-40}
  if [[ -f $file ]]; then
    printf '[waitroom] --- last %s lines of %s ---\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" | sed 's/^/    /' >&2
  else
    printf '[waitroom] (no log file at %s)\n' "$file" >&2
  fi
}

# _wr_wait SECONDS CMD...: retry CMD (silenced) every 0.2 s until it succeeds or time runs out.
_wr_wait() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# _wr_pid_is PID NAME: PID is alive and its command name is NAME (guards against reused pids).
_wr_pid_is() {
  local pid=$1 name=$2 comm
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/comm ]]; then
    comm=$(<"/proc/$pid/comm")
  else
    comm=$(ps -p "$pid" -o comm= 2>/dev/null) || return 1
  fi
  [[ $comm == "$name" || $comm == */"$name" ]]
}

# _wr_kill_orphans NAME DIR: kill NAME processes whose working directory is DIR *after DIR was
# deleted* (someone ran `rm -rf .data` while our services were up). Redis and Postgres chdir into
# their data dir, so this finds exactly those orphans, which still hold our ports, and nothing
# that is legitimately running. Linux only; elsewhere it does nothing.
_wr_kill_orphans() {
  local name=$1 dir=$2 p pid cwd found=1
  [[ -d /proc/self ]] || return 1
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ -r $p/comm && $(<"$p/comm") == "$name" ]] 2>/dev/null || continue
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    [[ $cwd == "$dir (deleted)" ]] || continue
    wr_log "killing orphaned $name (pid $pid) whose data dir $dir was deleted"
    # SIGQUIT: Postgres does an immediate shutdown (its data is gone anyway); Redis just exits.
    kill -QUIT "$pid" 2>/dev/null || true
    found=0
  done
  ((found == 0)) && sleep 1
  return "$found"
}

# Close every inherited fd above 2. Called in the subshell that launches a daemon, so the daemon
# does not keep a caller's pipes or lock files open for its whole life (a test capturing our
# output, a flock held by scripts/pgctl). Linux only (/proc); elsewhere it does nothing.
_wr_close_fds() {
  local fd
  for fd in "/proc/$BASHPID/fd/"*; do
    fd=${fd##*/}
    if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then
      eval "exec $fd>&-" 2>/dev/null || true
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------------------------

# Run a command as root: directly when we are root, through sudo when available.
_wr_as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    wr_err "need root to run: $*  (not root and no sudo)"
    return 1
  fi
}

# _wr_apt_install [--no-install-recommends] PKG...: apt-get update (once per shell), then install.
_wr_apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    wr_err "apt-get not found; install these yourself: $*"
    return 1
  fi
  if [[ $WR_APT_UPDATED != 1 ]]; then
    wr_log "apt-get update"
    _wr_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || return 1
    WR_APT_UPDATED=1
  fi
  wr_log "apt-get install $*"
  _wr_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 || return 1
}

# Print the PostgreSQL bin directory. Debian keeps the server binaries (initdb, pg_ctl, postgres)
# in /usr/lib/postgresql/<major>/bin, off PATH. Prefer the major version that created our data dir
# (a newer package must not be pointed at an older cluster), else the highest installed one.
wr_pg_bindir() {
  local v d
  if [[ -s $WR_DATA/pg/PG_VERSION ]]; then
    v=$(<"$WR_DATA/pg/PG_VERSION")
    d=/usr/lib/postgresql/$v/bin
    if [[ -x $d/initdb ]]; then
      echo "$d"
      return 0
    fi
  fi
  if [[ -d /usr/lib/postgresql ]]; then
    while read -r d; do
      if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
        echo "$d"
        return 0
      fi
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
  fi
  # Not Debian (e.g. Homebrew): fall back to whatever is on PATH.
  if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
    pg_config --bindir
    return 0
  fi
  if command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

# Install redis-server and postgresql (and curl, which scripts/run needs) when missing.
# The Debian postgresql package creates and tries to start its own cluster on port 5432, and
# redis-server its own instance on 6379; we ignore both and run private instances on other ports.
wr_install_missing() {
  local pkgs=()
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 ||
    pkgs+=(redis-server)
  wr_pg_bindir >/dev/null 2>&1 || pkgs+=(postgresql)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  ((${#pkgs[@]} == 0)) && return 0
  _wr_apt_install --no-install-recommends "${pkgs[@]}" || return 1
  if ! wr_pg_bindir >/dev/null; then
    wr_err "postgresql installed but no initdb found under /usr/lib/postgresql/*/bin"
    return 1
  fi
}

# Chromium and chromedriver for the browser test (with recommends: fonts etc.).
wr_install_browser() {
  [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] && return 0
  _wr_apt_install chromium chromium-driver
}

# Raise the open-files limit: every SSE stream holds a socket, and Redis wants maxclients+32 fds.
# Raises the soft limit up to the hard limit; as root also tries to lift the hard limit to 65536
# first (which fails without CAP_SYS_RESOURCE, e.g. in many containers; then we live with it).
wr_raise_fd_limit() {
  local want=65536 hard target
  hard=$(ulimit -Hn)
  if [[ $hard != unlimited ]] && ((hard < want)); then
    ulimit -Hn "$want" 2>/dev/null && hard=$want
  fi
  target=$hard
  # An "unlimited" or enormous hard limit: stay at a sane value (some programs loop over all fds).
  if [[ $target == unlimited ]] || ((target > 1048576)); then target=1048576; fi
  ulimit -Sn "$target" 2>/dev/null || ulimit -Sn "$want" 2>/dev/null || true
  if [[ $(ulimit -Sn) != unlimited ]] && (($(ulimit -Sn) < want)) && [[ ${WR_FD_NOTED:-} != 1 ]]; then
    WR_FD_NOTED=1
    wr_log "note: open-files limit is $(ulimit -Sn) (hard limit; wanted $want); tests holding many SSE streams may hit EMFILE"
  fi
}

# ---------------------------------------------------------------------------------------------
# URLs: ours unless the caller pointed us elsewhere
# ---------------------------------------------------------------------------------------------

_wr_norm_url() {
  local u=${1%/}
  u=${u/#postgresql:\/\//postgres://}
  printf '%s' "$u"
}

# True when WAITROOM_REDIS_URL is set to something other than our private instance.
_wr_redis_external() {
  [[ -n ${WAITROOM_REDIS_URL:-} && $(_wr_norm_url "$WAITROOM_REDIS_URL") != "$(_wr_norm_url "$WR_OUR_REDIS_URL")" ]]
}

_wr_pg_external() {
  [[ -n ${WAITROOM_DATABASE_URL:-} && $(_wr_norm_url "$WAITROOM_DATABASE_URL") != "$(_wr_norm_url "$WR_OUR_DATABASE_URL")" ]]
}

# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------

_wr_redis_ping() {
  [[ $(redis-cli -h 127.0.0.1 -p "$WR_REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

_wr_redis_not_ping() { ! _wr_redis_ping; }

_wr_redis_pid() {
  local pidfile="$WR_DATA/redis/redis.pid" pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  _wr_pid_is "$pid" redis-server || return 1
  echo "$pid"
}

wr_start_redis() {
  local dir="$WR_DATA/redis" log="$WR_DATA/redis.log" pid
  if _wr_redis_external; then
    if [[ $(redis-cli -u "$WAITROOM_REDIS_URL" ping 2>/dev/null) != PONG ]]; then
      wr_err "WAITROOM_REDIS_URL=$WAITROOM_REDIS_URL does not answer PING"
      return 1
    fi
    wr_log "using external Redis at $WAITROOM_REDIS_URL"
    return 0
  fi

  if pid=$(_wr_redis_pid); then
    if _wr_redis_ping; then
      wr_log "Redis already running (pid $pid, port $WR_REDIS_PORT): reusing it"
      export WAITROOM_REDIS_URL="$WR_OUR_REDIS_URL"
      return 0
    fi
    wr_err "our Redis (pid $pid, data $dir) is running but not answering on port $WR_REDIS_PORT" \
      "(started with another WAITROOM_REDIS_PORT?). Stop it first: kill $pid"
    return 1
  fi

  mkdir -p "$dir"
  # Port answering without our pidfile: an orphan of a deleted .data (killed here), or someone
  # else's Redis (we refuse to guess).
  if _wr_redis_ping; then
    if _wr_kill_orphans redis-server "$dir"; then
      _wr_wait 10 _wr_redis_not_ping || true
    fi
  fi
  if _wr_redis_ping; then
    wr_err "port $WR_REDIS_PORT already has a Redis that is not ours (no $dir/redis.pid)." \
      "Stop it, or set WAITROOM_REDIS_PORT / WAITROOM_REDIS_URL."
    return 1
  fi
  rm -f "$dir/redis.pid"

  wr_log "starting Redis on 127.0.0.1:$WR_REDIS_PORT (data $dir)"
  # AOF on (appendfsync everysec, the default), RDB snapshots off (--save ''): one persistence
  # mechanism is enough for a dev instance and AOF loses at most a second on a crash.
  # shellcheck disable=SC2094 # redis-server writes the log itself once daemonized; before
  # that (bad arguments) its stdout goes there too.
  if ! (
    _wr_close_fds
    exec redis-server \
      --bind 127.0.0.1 --port "$WR_REDIS_PORT" \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$log" \
      --dir "$dir" --appendonly yes --save '' \
      --maxclients 10000
  ) >>"$log" 2>&1; then
    wr_err "redis-server failed to start"
    _wr_tail "$log"
    return 1
  fi
  if ! _wr_wait "$WR_TIMEOUT" _wr_redis_ping; then
    wr_err "Redis did not answer PING on port $WR_REDIS_PORT within ${WR_TIMEOUT}s"
    _wr_tail "$log"
    return 1
  fi
  WR_STARTED_REDIS=1
  export WAITROOM_REDIS_URL="$WR_OUR_REDIS_URL"
}

# Stop our Redis (found through its pidfile, so it works from any shell and for a data dir left
# by an earlier run). SIGTERM is Redis's graceful shutdown: it fsyncs the AOF and exits.
wr_stop_redis() {
  local pid
  if _wr_redis_external; then
    wr_log "Redis is external ($WAITROOM_REDIS_URL): not stopping it"
    return 0
  fi
  if ! pid=$(_wr_redis_pid); then
    rm -f "$WR_DATA/redis/redis.pid"
    return 0
  fi
  wr_log "stopping Redis (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! _wr_wait "$WR_TIMEOUT" bash -c "! kill -0 $pid"; then
    wr_log "Redis (pid $pid) did not stop within ${WR_TIMEOUT}s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$WR_DATA/redis/redis.pid"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------

# Run a command as the OS user that owns the cluster. Postgres refuses to run as root, so as root
# we use a dedicated unprivileged system user; otherwise the current user owns everything.
_wr_as_pg() {
  if [[ $EUID -eq 0 ]]; then
    # cd /: the caller's cwd may be unreadable for that user, which initdb/postgres complain about.
    (cd / && runuser -u "$WR_PG_OS_USER" -- "$@")
  else
    "$@"
  fi
}

# As root: make sure the unprivileged Postgres user exists and can reach and own our files.
_wr_pg_prepare_owner() {
  local pgdata=$1 sock=$2 log=$3 owner
  [[ $EUID -eq 0 ]] || return 0
  if ! id -u "$WR_PG_OS_USER" >/dev/null 2>&1; then
    wr_log "creating system user $WR_PG_OS_USER (owns the private Postgres data)"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$WR_PG_OS_USER" || return 1
  fi
  chmod 0755 "$WR_DATA"
  if ! runuser -u "$WR_PG_OS_USER" -- test -x "$WR_DATA"; then
    wr_err "user $WR_PG_OS_USER cannot enter $WR_DATA: every parent directory of the checkout" \
      "needs o+x (e.g. a checkout under /root does not work). Move the checkout or chmod o+x its parents."
    return 1
  fi
  mkdir -p "$pgdata" "$sock"
  touch "$log"
  owner=$(stat -c %U "$pgdata")
  if [[ $owner != "$WR_PG_OS_USER" ]]; then
    chown -R "$WR_PG_OS_USER:" "$pgdata"
  fi
  chown "$WR_PG_OS_USER:" "$sock" "$log"
  chmod 0700 "$pgdata"
}

_wr_pg_ready() {
  "$1/pg_isready" -q -h 127.0.0.1 -p "$WR_PG_PORT" -U postgres -d postgres
}

_wr_pg_not_ready() { ! _wr_pg_ready "$1"; }

# 0 when the postmaster of our data dir is running.
_wr_pg_running() {
  local bindir=$1
  [[ -f $WR_DATA/pg/postmaster.pid ]] || return 1
  _wr_as_pg "$bindir/pg_ctl" status -D "$WR_DATA/pg" >/dev/null 2>&1
}

# Start (initialising on first use) our Postgres, create role and database `waitroom`, export
# WAITROOM_DATABASE_URL. Idempotent: a running instance of our data dir is reused.
wr_start_postgres() {
  local pgdata="$WR_DATA/pg" sock="$WR_DATA/pgsock" log="$WR_DATA/pg.log" bindir v started=0
  if _wr_pg_external; then
    # pg_isready takes a connection URI as -d; it needs the client tools only.
    local isready
    isready=$(command -v pg_isready || echo "$(wr_pg_bindir)/pg_isready")
    if ! "$isready" -q -d "$WAITROOM_DATABASE_URL"; then
      wr_err "WAITROOM_DATABASE_URL=$WAITROOM_DATABASE_URL is not accepting connections"
      return 1
    fi
    wr_log "using external Postgres at $WAITROOM_DATABASE_URL"
    return 0
  fi

  if ! bindir=$(wr_pg_bindir); then
    wr_err "PostgreSQL server binaries not found (run wr_install_missing)"
    return 1
  fi
  if [[ -s $pgdata/PG_VERSION ]]; then
    v=$(<"$pgdata/PG_VERSION")
    if [[ $bindir != */"$v"/bin && -d /usr/lib/postgresql ]]; then
      wr_err "$pgdata was created by PostgreSQL $v, which is no longer installed ($bindir is)." \
        "It is disposable dev data: rm -rf $pgdata and start again."
      return 1
    fi
  elif [[ -e $pgdata ]]; then
    # A data dir without PG_VERSION is a failed initdb: nothing in it is worth keeping.
    rm -rf "$pgdata"
  fi
  mkdir -p "$WR_DATA" "$pgdata" "$sock"
  _wr_pg_prepare_owner "$pgdata" "$sock" "$log" || return 1

  if [[ ! -s $pgdata/PG_VERSION ]]; then
    wr_log "initdb $pgdata ($bindir)"
    # Trust authentication for local sockets and 127.0.0.1/::1: this is a private development
    # instance bound to loopback only, with throwaway data. Never copy this to a real server.
    # --no-locale: C collation, no dependence on which locales the machine has generated.
    if ! _wr_as_pg "$bindir/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --no-locale \
      >"$WR_DATA/initdb.log" 2>&1; then
      wr_err "initdb failed"
      _wr_tail "$WR_DATA/initdb.log"
      return 1
    fi
    # Our settings live in waitroom.conf, rewritten on every start (so a changed port applies);
    # included last so it overrides postgresql.conf.
    printf "\n# Added by scripts/lib.sh\ninclude_if_exists = 'waitroom.conf'\n" |
      _wr_as_pg tee -a "$pgdata/postgresql.conf" >/dev/null
  fi

  if _wr_pg_running "$bindir"; then
    if _wr_wait 5 _wr_pg_ready "$bindir"; then
      wr_log "Postgres already running (port $WR_PG_PORT): reusing it"
    else
      wr_err "our Postgres ($pgdata) is running but not accepting connections on port $WR_PG_PORT" \
        "(started with another WAITROOM_PG_PORT?). Stop it: scripts/pgctl stop"
      return 1
    fi
  else
    # Something answering on the port while our cluster is down: an orphan of a deleted .data
    # (killed here), or a foreign server (we refuse to guess).
    if _wr_pg_ready "$bindir"; then
      if _wr_kill_orphans postgres "$pgdata"; then
        _wr_wait 20 _wr_pg_not_ready "$bindir" || true
      fi
      if _wr_pg_ready "$bindir"; then
        wr_err "port $WR_PG_PORT already has a PostgreSQL that is not ours ($pgdata is not running)." \
          "Stop it, or set WAITROOM_PG_PORT / WAITROOM_DATABASE_URL."
        return 1
      fi
    fi
    _wr_pg_write_conf "$pgdata" "$sock" || return 1
    wr_log "starting Postgres on 127.0.0.1:$WR_PG_PORT (data $pgdata, log $log)"
    # pg_ctl redirects the server's stdin/stdout/stderr (to /dev/null and the log), so a caller
    # capturing our output (a test running scripts/pgctl) is not left holding an open pipe.
    if ! (
      _wr_close_fds
      _wr_as_pg "$bindir/pg_ctl" start -D "$pgdata" -l "$log" -s -w -t "$WR_TIMEOUT"
    ) >&2; then
      wr_err "Postgres failed to start"
      _wr_tail "$log"
      return 1
    fi
    started=1
  fi

  if ! _wr_wait "$WR_TIMEOUT" _wr_pg_ready "$bindir"; then
    wr_err "Postgres not accepting connections on port $WR_PG_PORT within ${WR_TIMEOUT}s"
    _wr_tail "$log"
    return 1
  fi

  # Application role: LOGIN and CREATEDB (tests create a database each), not a superuser.
  if ! "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$WR_PG_PORT" -U postgres -d postgres \
    >/dev/null <<'SQL'; then
SELECT 'CREATE ROLE waitroom LOGIN CREATEDB'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'waitroom')\gexec
SELECT 'CREATE DATABASE waitroom OWNER waitroom'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'waitroom')\gexec
SQL
    wr_err "could not create role/database waitroom"
    return 1
  fi
  ((started)) && WR_STARTED_PG=1
  export WAITROOM_DATABASE_URL="$WR_OUR_DATABASE_URL"
}

# Write waitroom.conf (our settings; see initdb above for why it is a separate file).
_wr_pg_write_conf() {
  local pgdata=$1 sock=$2 q_sock
  # A Unix socket path must fit in sun_path (107 bytes). Nothing of ours uses the socket (all URLs
  # are TCP), so with a deep checkout we simply turn it off instead of putting it in /tmp.
  if ((${#sock} + ${#WR_PG_PORT} + 10 > 100)); then
    sock=''
  fi
  q_sock=${sock//\'/\'\'}
  _wr_as_pg tee "$pgdata/waitroom.conf" >/dev/null <<EOF
# Written by scripts/lib.sh on every start: edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $WR_PG_PORT
unix_socket_directories = '$q_sock'
max_connections = 200
# Durability stays ON (the defaults, spelled out): the orders ledger must be honest, and the
# outage tests must see what a real crash would leave behind.
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
}

# Stop our Postgres. MODE: fast (default: disconnect clients, clean shutdown) or immediate
# (crash-like: recovery runs on the next start). Works for a data dir left by an earlier run.
wr_stop_postgres() {
  local mode=${1:-fast} bindir
  if _wr_pg_external; then
    wr_log "Postgres is external ($WAITROOM_DATABASE_URL): not stopping it"
    return 0
  fi
  [[ -s $WR_DATA/pg/PG_VERSION ]] || return 0
  bindir=$(wr_pg_bindir) || return 0
  _wr_pg_running "$bindir" || return 0
  wr_log "stopping Postgres (-m $mode)"
  if ! _wr_as_pg "$bindir/pg_ctl" stop -D "$WR_DATA/pg" -m "$mode" -s -w -t "$WR_TIMEOUT" >&2; then
    wr_err "pg_ctl stop failed"
    _wr_tail "$WR_DATA/pg.log"
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
# Both
# ---------------------------------------------------------------------------------------------

# Start (or reuse) both services and export WAITROOM_REDIS_URL and WAITROOM_DATABASE_URL.
wr_start_services() {
  wr_raise_fd_limit
  mkdir -p "$WR_DATA"
  wr_start_redis || return 1
  wr_start_postgres || return 1
  wr_log "Redis:    $WAITROOM_REDIS_URL"
  wr_log "Postgres: $WAITROOM_DATABASE_URL"
}

# Stop our private Redis and Postgres, whoever started them.
wr_stop_services() {
  local rc=0
  wr_stop_postgres || rc=1
  wr_stop_redis || rc=1
  return "$rc"
}

# Stop only what this shell started (for traps): a developer's already-running services survive.
wr_cleanup_started() {
  local rc=0
  if [[ $WR_STARTED_PG == 1 ]]; then wr_stop_postgres || rc=1; fi
  if [[ $WR_STARTED_REDIS == 1 ]]; then wr_stop_redis || rc=1; fi
  WR_STARTED_PG=0 WR_STARTED_REDIS=0
  return "$rc"
}
