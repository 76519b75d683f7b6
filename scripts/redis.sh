#!/usr/bin/env bash
# A Redis server in a folder, on a loopback port, for run-stack, tests and benchmarks.
#   scripts/redis.sh start DIR PORT   -> prints the redis:// URL (db 0)
#   scripts/redis.sh stop DIR
# The config lives in DIR/redis.conf so a rerun finds the same server (idempotent).
# REDIS_FOREGROUND=1 runs it in the foreground instead (run-stack supervises it itself).
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?data dir}; port=${3:-6379}
server=$(command -v redis-server || true)
if [ -z "$server" ]; then
  echo "redis-server not found: apt-get install -y redis-server" >&2; exit 1
fi
cli=$(command -v redis-cli || true)
ping() { # 0 when a server answers on the port recorded in DIR
  local p; p=$(sed -n 's/^port //p' "$dir/redis.conf" 2>/dev/null || true)
  [ -n "$p" ] && [ -n "$cli" ] && "$cli" -h 127.0.0.1 -p "$p" ping 2>/dev/null | grep -q PONG
}
case "$cmd" in
  start)
    mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
    # Loopback only, no protected-mode surprises, AOF every second: a broker that loses at
    # most a second of queued tasks on a crash (the sweeper re-queues stored deliveries).
    cat > "$dir/redis.conf" <<CONF
bind 127.0.0.1
port $port
protected-mode yes
dir $dir
pidfile $dir/redis.pid
logfile $dir/redis.log
daemonize ${REDIS_DAEMONIZE:-yes}
appendonly yes
appendfsync everysec
save ""
CONF
    if [ "${REDIS_FOREGROUND:-0}" = 1 ]; then
      sed -i 's/^daemonize .*/daemonize no/; s|^logfile .*|logfile ""|' "$dir/redis.conf"
      exec "$server" "$dir/redis.conf"
    fi
    if ! ping; then
      "$server" "$dir/redis.conf"
      for _ in $(seq 50); do ping && break; sleep 0.1; done
      ping || { echo "redis-server did not start; see $dir/redis.log" >&2; exit 1; }
    fi
    echo "redis://127.0.0.1:$port/0"
    ;;
  stop)
    if ping; then
      p=$(sed -n 's/^port //p' "$dir/redis.conf")
      "$cli" -h 127.0.0.1 -p "$p" shutdown nosave >/dev/null 2>&1 || true
    elif [ -f "$dir/redis.pid" ]; then
      kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    fi
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
