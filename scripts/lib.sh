# shellcheck shell=bash
# Shared bootstrap for scripts/test, scripts/run, scripts/bench and scripts/pgctl: installs what
# is missing and runs a private Redis and a private PostgreSQL whose data all lives under
# $ROOT/.data. The parts live in scripts/lib/ (knobs are documented in lib/common.sh):
#   common.sh    settings, logging, waiting, process helpers, apt
#   redis.sh     the private Redis        postgres.sh, pg-init.sh   the private PostgreSQL
#   cluster.sh   the tests' Redis Cluster
#   browser.sh   Chromium + chromedriver    nginx.sh   nginx for tests/suite/nginx.rs
# Sourced, not executed; sets no shell options (see lib/common.sh).

_wr_lib="$(dirname "${BASH_SOURCE[0]}")/lib"
# shellcheck source=scripts/lib/common.sh
source "$_wr_lib/common.sh"
# shellcheck source=scripts/lib/redis.sh
source "$_wr_lib/redis.sh"
# shellcheck source=scripts/lib/cluster.sh
source "$_wr_lib/cluster.sh"
# shellcheck source=scripts/lib/postgres.sh
source "$_wr_lib/postgres.sh"
# shellcheck source=scripts/lib/pg-init.sh
source "$_wr_lib/pg-init.sh"
# shellcheck source=scripts/lib/browser.sh
source "$_wr_lib/browser.sh"
# shellcheck source=scripts/lib/nginx.sh
source "$_wr_lib/nginx.sh"
unset _wr_lib

# Install redis-server and postgresql (and curl, which scripts/run needs) when missing, in one
# apt run. The Debian postgresql package creates and tries to start its own cluster on port 5432,
# and redis-server its own instance on 6379; we ignore both and run private instances.
wr_install_missing() {
  local pkgs=()
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 ||
    pkgs+=(redis-server)
  wr_pg_bindir >/dev/null 2>&1 || pkgs+=(postgresql)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  ((${#pkgs[@]} == 0)) && return 0
  _wr_apt_install "${pkgs[@]}" || return 1
  if ! wr_pg_bindir >/dev/null; then
    wr_err "postgresql installed but no initdb found under /usr/lib/postgresql/*/bin"
    return 1
  fi
}

# wr_use_db PG_DB REDIS_DB: which database of each private instance this shell uses, so the
# suite and the bench never touch the dev data. scripts/run: waitroom and 0; scripts/test:
# waitroom_test and 1; scripts/bench: waitroom_bench and 2. Call before wr_start_services, which
# creates the Postgres database if missing; a WAITROOM_*_URL naming our own instance is replaced.
wr_use_db() {
  if [[ ! $1 =~ ^[a-z_][a-z0-9_]*$ || ! $2 =~ ^[0-9]+$ ]]; then
    wr_err "wr_use_db: want a lower-case database name and a Redis DB number, got: $*"
    return 1
  fi
  WR_PG_DB=$1 WR_REDIS_DB=$2
}

# Start (or reuse) both services and export WAITROOM_REDIS_URL and WAITROOM_DATABASE_URL.
wr_start_services() {
  wr_raise_fd_limit
  mkdir -p "$WR_DATA"
  wr_start_redis || return 1
  wr_start_postgres || return 1
  wr_log "Redis:    $WAITROOM_REDIS_URL"
  wr_log "Postgres: $WAITROOM_DATABASE_URL"
}

# Empty this script's own database and Redis DB (never the dev server's `waitroom` / DB 0), so
# each run starts from nothing: sales left by earlier runs cannot slow or sway it. Tests never
# flush; this runs once, before any of them. Our own services only.
wr_reset_data() {
  if _wr_pg_external || _wr_redis_external; then
    wr_log "external Redis or Postgres: not resetting test data"
    return 0
  fi
  if [[ $WR_PG_DB == waitroom || $WR_REDIS_DB == 0 ]]; then
    wr_err "wr_reset_data: refusing to empty the dev data ($WR_PG_DB, Redis DB $WR_REDIS_DB)"
    return 1
  fi
  local bindir
  bindir=$(wr_pg_bindir) || return 1
  "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$WR_PG_PORT" -U postgres -d postgres \
    -c "DROP DATABASE IF EXISTS \"$WR_PG_DB\" WITH (FORCE)" \
    -c "CREATE DATABASE \"$WR_PG_DB\" OWNER waitroom" >/dev/null || return 1
  redis-cli -h 127.0.0.1 -p "$WR_REDIS_PORT" -n "$WR_REDIS_DB" flushdb >/dev/null || return 1
  wr_log "emptied $WR_PG_DB and Redis DB $WR_REDIS_DB"
}

# Stop our private Redis, Redis Cluster and Postgres, whoever started them.
wr_stop_services() {
  local rc=0
  wr_stop_postgres || rc=1
  wr_stop_redis || rc=1
  wr_stop_cluster || rc=1
  return "$rc"
}

# Stop only what this shell started (for traps): a developer's already-running services survive.
wr_cleanup_started() {
  local rc=0
  if [[ $WR_STARTED_PG == 1 ]]; then wr_stop_postgres || rc=1; fi
  if [[ $WR_STARTED_REDIS == 1 ]]; then wr_stop_redis || rc=1; fi
  if [[ $WR_STARTED_CLUSTER == 1 ]]; then wr_stop_cluster || rc=1; fi
  WR_STARTED_PG=0 WR_STARTED_REDIS=0 WR_STARTED_CLUSTER=0
  return "$rc"
}
