# shellcheck shell=bash
# Part of scripts/lib.sh (which sources every file of scripts/lib/): settings, logging, waiting,
# process helpers and package installation shared by the Redis, Postgres and browser parts.
#
# Sourced, not executed. The scripts that source it run with `set -euo pipefail`; these files do
# not set shell options themselves, so `source scripts/lib.sh` in an interactive shell is safe too.
# For the same reason every function reports failure with an explicit `return 1` rather than
# relying on `set -e` (which bash ignores inside functions called from `if`/`||`).
#
# Knobs (environment):
#   WAITROOM_REDIS_PORT      private Redis port        (default 6390)
#   WAITROOM_PG_PORT         private Postgres port     (default 5442)
#   WAITROOM_CLUSTER_PORT    first of the six ports of the tests' Redis Cluster (default 6400):
#                            3 nodes, then 3 for a test's own cluster; each + 10000 for the bus
#   WAITROOM_REDIS_URL       if set to another server than our own: use that Redis, start none
#   WAITROOM_DATABASE_URL    if set to another server than our own: use that Postgres, start none
#   WAITROOM_PG_OS_USER      OS user that owns the Postgres data when we run as root
#                            (default waitroom-pg; Postgres refuses to run as root)
#   WAITROOM_SERVICE_TIMEOUT seconds to wait for a service to come up or go down (default 60)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
WR_DATA="$ROOT/.data"
WR_REDIS_PORT="${WAITROOM_REDIS_PORT:-6390}"
WR_PG_PORT="${WAITROOM_PG_PORT:-5442}"
WR_PG_OS_USER="${WAITROOM_PG_OS_USER:-waitroom-pg}"
WR_TIMEOUT="${WAITROOM_SERVICE_TIMEOUT:-60}"

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

# postgres:// for postgresql:// and no trailing slash, so equal URLs compare equal.
_wr_norm_url() {
  local u=${1%/}
  u=${u/#postgresql:\/\//postgres://}
  printf '%s' "$u"
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

# _wr_apt_install PKG...: apt-get update (once per shell), then install without recommends:
# recommends are desktop extras (Chromium's alone pull in avahi, cups and ~100 more packages)
# that nothing here uses, and they slow down a fresh CI machine.
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
  wr_log "apt-get install --no-install-recommends $*"
  _wr_as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "$@" >&2 || return 1
}
