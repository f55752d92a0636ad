# shellcheck shell=bash
# Part of scripts/lib.sh: the private PostgreSQL (port WAITROOM_PG_PORT, data in .data/pg).
#
# One cluster serves every script, each with its own database (WR_PG_DB, set by wr_use_db) owned
# by the role `waitroom`: the suite and the bench never see the dev server's sales.

# Our cluster as the application role, without a database name.
_wr_pg_base() { printf 'postgres://waitroom@127.0.0.1:%s' "$WR_PG_PORT"; }

# True when URL names our private cluster (as role waitroom), whichever database it selects.
_wr_pg_is_ours() {
  local u base
  u=$(_wr_norm_url "$1")
  base=$(_wr_pg_base)
  [[ $u == "$base" || $u == "$base"/* ]]
}

# True when WAITROOM_DATABASE_URL is set to something other than our private cluster.
_wr_pg_external() {
  [[ -n ${WAITROOM_DATABASE_URL:-} ]] && ! _wr_pg_is_ours "$WAITROOM_DATABASE_URL"
}

# The database this shell uses: wr_use_db's choice; else the one an inherited URL of ours names
# (so scripts/pgctl, run by a test, recreates its caller's); else waitroom.
if [[ -z ${WR_PG_DB:-} ]]; then
  WR_PG_DB=waitroom
  if [[ -n ${WAITROOM_DATABASE_URL:-} ]] && _wr_pg_is_ours "$WAITROOM_DATABASE_URL"; then
    _wr_db=$(_wr_norm_url "$WAITROOM_DATABASE_URL")
    _wr_db=${_wr_db#"$(_wr_pg_base)"}
    _wr_db=${_wr_db#/}
    _wr_db=${_wr_db%%\?*}
    [[ $_wr_db =~ ^[a-z_][a-z0-9_]*$ ]] && WR_PG_DB=$_wr_db
    unset _wr_db
  fi
fi

_wr_pg_our_url() { printf '%s/%s' "$(_wr_pg_base)" "$WR_PG_DB"; }

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

# Start (initialising on first use) our Postgres, create role `waitroom` and database WR_PG_DB,
# export WAITROOM_DATABASE_URL. Idempotent: a running instance of our data dir is reused.
wr_start_postgres() {
  local pgdata="$WR_DATA/pg" log="$WR_DATA/pg.log" bindir started=0
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
  _wr_pg_init "$bindir" || return 1

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
    _wr_pg_write_conf "$pgdata" "$WR_DATA/pgsock" || return 1
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

  # Application role: LOGIN and CREATEDB, not a superuser; it owns every database of ours.
  if ! "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -v db="$WR_PG_DB" \
    -h 127.0.0.1 -p "$WR_PG_PORT" -U postgres -d postgres >/dev/null <<'SQL'; then
SELECT 'CREATE ROLE waitroom LOGIN CREATEDB'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'waitroom')\gexec
SELECT format('CREATE DATABASE %I OWNER waitroom', :'db')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
    wr_err "could not create role waitroom / database $WR_PG_DB"
    return 1
  fi
  ((started)) && WR_STARTED_PG=1
  WAITROOM_DATABASE_URL=$(_wr_pg_our_url)
  export WAITROOM_DATABASE_URL
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
