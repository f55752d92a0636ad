# shellcheck shell=bash
# Part of scripts/lib.sh: creating and configuring the private PostgreSQL's data directory
# (used by wr_start_postgres in postgres.sh).

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

# _wr_pg_init BINDIR: check the data dir matches the installed server and run initdb on first use.
_wr_pg_init() {
  local bindir=$1 pgdata="$WR_DATA/pg" sock="$WR_DATA/pgsock" log="$WR_DATA/pg.log" v
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
  [[ -s $pgdata/PG_VERSION ]] && return 0

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
}

# Write waitroom.conf (our settings; see _wr_pg_init for why it is a separate file).
_wr_pg_write_conf() {
  local pgdata=$1 sock=$2 q_sock
  # A Unix socket path must fit in sun_path (107 bytes). Nothing of ours uses the socket (all URLs
  # are TCP), so with a deep checkout we simply turn it off instead of putting it in /tmp.
  if ((${#sock} + ${#WR_PG_PORT} + 10 > 100)); then
    sock=''
  fi
  q_sock=${sock//\'/\'\'}
  _wr_as_pg tee "$pgdata/waitroom.conf" >/dev/null <<CONF
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
CONF
}
