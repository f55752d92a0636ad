# shellcheck shell=bash
# Part of scripts/lib.sh: a private three-master Redis Cluster for the tests, on loopback ports
# WAITROOM_CLUSTER_PORT .. +2 (cluster bus on each port + 10000), data and nodes.conf under
# .data/cluster/<port>. No replicas: the tests restart masters themselves when they need to.
#
# wr_start_cluster reuses a healthy cluster, restarts stopped nodes (they rejoin through their
# nodes.conf) and creates the cluster only when no slot is assigned yet. It exports
# WAITROOM_TEST_CLUSTER_NODES (comma-separated redis:// URLs), which the cluster tests read, and
# WAITROOM_TEST_CLUSTER_SPARE_PORT: ports +3 .. +5 are left for a test's own cluster.

WR_CLUSTER_PORT="${WAITROOM_CLUSTER_PORT:-6400}"
export WAITROOM_CLUSTER_PORT="$WR_CLUSTER_PORT"
WR_STARTED_CLUSTER="${WR_STARTED_CLUSTER:-0}"

_wr_cluster_ports() { echo "$WR_CLUSTER_PORT" $((WR_CLUSTER_PORT + 1)) $((WR_CLUSTER_PORT + 2)); }

_wr_cluster_ping() { [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; }

# _wr_cluster_info PORT FIELD: one field of CLUSTER INFO on that node.
_wr_cluster_info() {
  redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r' |
    sed -n "s/^$2://p"
}

# Every node answers and sees the whole cluster, all 16384 slots served.
_wr_cluster_ok() {
  local p
  for p in $(_wr_cluster_ports); do
    [[ $(_wr_cluster_info "$p" cluster_state) == ok ]] || return 1
    [[ $(_wr_cluster_info "$p" cluster_known_nodes) == 3 ]] || return 1
  done
}

_wr_cluster_pid() { _wr_redis_pid_in "$WR_DATA/cluster/$1"; }

# The node command line (also in docker-compose's cluster variant): cluster mode, AOF
# `everysec`, no RDB snapshots, and a cluster that keeps serving the slots it still has while
# one master is down (the tests restart one).
_wr_cluster_node() {
  local port=$1 dir="$WR_DATA/cluster/$1"
  mkdir -p "$dir"
  # shellcheck disable=SC2094 # redis-server writes the log itself once daemonized.
  (
    _wr_close_fds
    exec redis-server \
      --bind 127.0.0.1 --port "$port" \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
      --cluster-require-full-coverage no \
      --appendonly yes --appendfsync everysec --save '' --maxclients 10000
  ) >>"$dir/redis.log" 2>&1
}

wr_start_cluster() {
  local p nodes=() urls=()
  for p in $(_wr_cluster_ports); do
    nodes+=("127.0.0.1:$p")
    urls+=("redis://127.0.0.1:$p")
  done
  WAITROOM_TEST_CLUSTER_NODES=$(IFS=,; echo "${urls[*]}")
  # Three more ports for the test that starts, kills and restarts a cluster of its own.
  WAITROOM_TEST_CLUSTER_SPARE_PORT=$((WR_CLUSTER_PORT + 3))
  export WAITROOM_TEST_CLUSTER_NODES WAITROOM_TEST_CLUSTER_SPARE_PORT
  if _wr_cluster_ok; then
    wr_log "Redis Cluster already running on ports $(_wr_cluster_ports): reusing it"
    return 0
  fi
  for p in $(_wr_cluster_ports); do
    _wr_cluster_pid "$p" >/dev/null && continue
    if _wr_cluster_ping "$p"; then
      wr_err "port $p already has a Redis that is not our cluster node (no $WR_DATA/cluster/$p/redis.pid)." \
        "Stop it, or set WAITROOM_CLUSTER_PORT."
      return 1
    fi
    wr_log "starting Redis Cluster node on 127.0.0.1:$p (data $WR_DATA/cluster/$p)"
    if ! _wr_cluster_node "$p" || ! _wr_wait "$WR_TIMEOUT" _wr_cluster_ping "$p"; then
      wr_err "Redis Cluster node $p did not start"
      _wr_tail "$WR_DATA/cluster/$p/redis.log"
      return 1
    fi
    WR_STARTED_CLUSTER=1
  done
  if [[ $(_wr_cluster_info "$WR_CLUSTER_PORT" cluster_slots_assigned) == 0 ]]; then
    wr_log "creating the Redis Cluster: ${nodes[*]}"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >&2 || return 1
  fi
  if ! _wr_wait "$WR_TIMEOUT" _wr_cluster_ok; then
    wr_err "Redis Cluster on ports $(_wr_cluster_ports) not healthy within ${WR_TIMEOUT}s" \
      "(a half-made cluster? stop it and remove $WR_DATA/cluster)"
    redis-cli -p "$WR_CLUSTER_PORT" cluster nodes >&2 || true
    return 1
  fi
  wr_log "Redis Cluster: $WAITROOM_TEST_CLUSTER_NODES"
}

# Empties the cluster (it serves only the tests) and the ledgers the cluster tests keep beside
# it (see testkit/src/cluster.rs), so each run starts from nothing.
wr_reset_cluster() {
  local p bindir db
  for p in $(_wr_cluster_ports); do
    redis-cli -h 127.0.0.1 -p "$p" flushall >/dev/null || return 1
  done
  _wr_pg_external && return 0
  bindir=$(wr_pg_bindir) || return 1
  for db in "${WR_PG_DB}_cluster" "${WR_PG_DB}_cluster_restart"; do
    "$bindir/psql" -X -q -h 127.0.0.1 -p "$WR_PG_PORT" -U postgres -d postgres \
      -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || return 1
  done
}

wr_stop_cluster() {
  local p pid
  for p in $(_wr_cluster_ports); do
    pid=$(_wr_cluster_pid "$p") || continue
    wr_log "stopping Redis Cluster node $p (pid $pid)"
    _wr_redis_kill "$pid"
    rm -f "$WR_DATA/cluster/$p/redis.pid"
  done
}
