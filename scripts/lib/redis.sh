# shellcheck shell=bash
# Part of scripts/lib.sh: the private Redis (port WAITROOM_REDIS_PORT, data in .data/redis).
#
# One instance serves every script, each on its own logical DB (WR_REDIS_DB, set by wr_use_db):
# the suite and the bench never see the dev server's keys. Pub/sub channels are shared by all
# DBs of an instance; that is harmless here because every sale id is unique.

# Our instance, without a DB number.
_wr_redis_base() { printf 'redis://127.0.0.1:%s' "$WR_REDIS_PORT"; }

# True when URL names our private instance, whichever DB it selects.
_wr_redis_is_ours() {
  local u base
  u=$(_wr_norm_url "$1")
  base=$(_wr_redis_base)
  [[ $u == "$base" || $u == "$base"/* ]]
}

# True when WAITROOM_REDIS_URL is set to something other than our private instance.
_wr_redis_external() {
  [[ -n ${WAITROOM_REDIS_URL:-} ]] && ! _wr_redis_is_ours "$WAITROOM_REDIS_URL"
}

# The DB this shell uses: wr_use_db's choice; else the one an inherited URL of ours names (so
# scripts/pgctl, run by a test, keeps its caller's); else 0.
if [[ -z ${WR_REDIS_DB:-} ]]; then
  WR_REDIS_DB=0
  if [[ -n ${WAITROOM_REDIS_URL:-} ]] && _wr_redis_is_ours "$WAITROOM_REDIS_URL"; then
    _wr_db=$(_wr_norm_url "$WAITROOM_REDIS_URL")
    _wr_db=${_wr_db#"$(_wr_redis_base)"}
    _wr_db=${_wr_db#/}
    [[ $_wr_db =~ ^[0-9]+$ ]] && WR_REDIS_DB=$_wr_db
    unset _wr_db
  fi
fi

_wr_redis_our_url() { printf '%s/%s' "$(_wr_redis_base)" "$WR_REDIS_DB"; }

_wr_redis_ping() {
  [[ $(redis-cli -h 127.0.0.1 -p "$WR_REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

_wr_redis_not_ping() { ! _wr_redis_ping; }

# _wr_redis_pid_in DIR: the live redis-server whose pidfile is DIR/redis.pid (also the cluster's).
_wr_redis_pid_in() {
  local pidfile="$1/redis.pid" pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  _wr_pid_is "$pid" redis-server || return 1
  echo "$pid"
}

_wr_redis_pid() { _wr_redis_pid_in "$WR_DATA/redis"; }

# _wr_redis_kill PID: SIGTERM is Redis's graceful shutdown (it fsyncs the AOF and exits);
# SIGKILL if it has not within WR_TIMEOUT.
_wr_redis_kill() {
  kill -TERM "$1" 2>/dev/null || true
  if ! _wr_wait "$WR_TIMEOUT" bash -c "! kill -0 $1"; then
    wr_log "Redis (pid $1) did not stop within ${WR_TIMEOUT}s: killing it"
    kill -KILL "$1" 2>/dev/null || true
  fi
}

# Start (or reuse) our Redis and export WAITROOM_REDIS_URL with this shell's DB.
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
      WAITROOM_REDIS_URL=$(_wr_redis_our_url)
      export WAITROOM_REDIS_URL
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
  # AOF on with appendfsync everysec, RDB snapshots off (--save ''): one persistence
  # mechanism is enough for a dev instance and AOF loses at most a second on a crash.
  # shellcheck disable=SC2094 # redis-server writes the log itself once daemonized; before
  # that (bad arguments) its stdout goes there too.
  if ! (
    _wr_close_fds
    exec redis-server \
      --bind 127.0.0.1 --port "$WR_REDIS_PORT" \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$log" \
      --dir "$dir" --appendonly yes --appendfsync everysec --save '' \
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
  WAITROOM_REDIS_URL=$(_wr_redis_our_url)
  export WAITROOM_REDIS_URL
}

# Stop our Redis (found through its pidfile, so it works from any shell and for a data dir left
# by an earlier run).
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
  _wr_redis_kill "$pid"
  rm -f "$WR_DATA/redis/redis.pid"
}
