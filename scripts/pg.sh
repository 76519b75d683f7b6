#!/usr/bin/env bash
# A throwaway PostgreSQL cluster in a folder, on a loopback port, for tests and run-stack.
#   scripts/pg.sh start DIR PORT   -> prints the DATABASE_URL
#   scripts/pg.sh stop DIR
# PG_DURABLE=1 keeps fsync and full_page_writes on (run-stack, benchmarks of the real
# topology); the default turns them off, which is right only for throwaway test clusters.
# initdb refuses to run as root, so as root the cluster belongs to the 'postgres' user.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?data dir}; port=${3:-54329}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
if [ -z "$bindir" ]; then
  echo "PostgreSQL server not found: apt-get install -y postgresql postgresql-contrib" >&2; exit 1
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$cmd" in
  start)
    mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
    [ "$(id -u)" = 0 ] && chown postgres "$dir" && chmod 700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_pg "$bindir/initdb" -D "$dir" -U assmbl --auth=trust -E UTF8 >/dev/null
    fi
    if [ "${PG_DURABLE:-0}" = 1 ]; then
      durability="-c fsync=on -c full_page_writes=on -c synchronous_commit=${PG_SYNCHRONOUS_COMMIT:-on}"
    else
      durability="-c fsync=off -c full_page_writes=off"
    fi
    if ! as_pg "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      as_pg "$bindir/pg_ctl" -D "$dir" -w -l "$dir/server.log" \
        -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 $durability -c max_connections=200 ${PG_EXTRA_OPTS:-}" start >/dev/null
    fi
    as_pg "$bindir/psql" -h 127.0.0.1 -p "$port" -U assmbl -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='assmbl'" | grep -q 1 || \
      as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U assmbl assmbl
    echo "postgres://assmbl@127.0.0.1:$port/assmbl"
    ;;
  stop)
    as_pg "$bindir/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
