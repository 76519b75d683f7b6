#!/usr/bin/env bash
# Requests/s of the inbox list endpoint under gunicorn (gthread) at concurrency 32 on
# loopback, for a bounded time, against the framework floor measured in the same run
# (an unknown /v1/ path: gunicorn + middleware + the JSON 404 envelope, no auth, no
# mailbox query). wrk from Debian when present, else bench/_loadgen.py (httpx).
#
#   bench/load.sh                      # DURATION=15 CONCURRENCY=32 WEB_WORKERS=2 WEB_THREADS=8 SEED=10000
#
# PostgreSQL from scripts/pg.sh in a temp folder on BENCH_PG_PORT (default 54338).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo /work/main/.venv/bin/python )}
BIN=$(dirname "$PY")
DURATION=${DURATION:-15}; CONCURRENCY=${CONCURRENCY:-32}; SEED=${SEED:-10000}
WEB_WORKERS=${WEB_WORKERS:-2}; WEB_THREADS=${WEB_THREADS:-8}
LIST_PATH=${LIST_PATH:-/v1/inbox?limit=50}
FLOOR_PATH=/v1/__load_floor__
work=$(mktemp -d /tmp/bench-load-XXXXXX); chmod 755 "$work"; pgdir="$work/pg"
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
gpid=""
cleanup() {
  [ -n "$gpid" ] && kill "$gpid" 2>/dev/null && wait "$gpid" 2>/dev/null || true
  scripts/pg.sh stop "$pgdir"; rm -rf "$work"
}
trap cleanup EXIT

echo "machine: $(nproc) cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) load $(cut -d' ' -f1 /proc/loadavg)"
url=$(scripts/pg.sh start "$pgdir" "${BENCH_PG_PORT:-54338}")
export DATABASE_URL=$url DATA_DIR=$work DEBUG=0 LOG_LEVEL=WARNING DB_CONN_MAX_AGE=${DB_CONN_MAX_AGE:-60} \
  SECRET_KEY=bench-$RANDOM$RANDOM TOKEN_PEPPER=bench-$RANDOM$RANDOM API_RATE_LIMIT=100000000/min
token=$("$PY" bench/_seed.py --database-url "$url" --data-dir "$work" --n "$SEED" | tail -n1)
"$BIN/gunicorn" assmbl.wsgi --bind "127.0.0.1:$port" --workers "$WEB_WORKERS" --worker-class gthread \
  --threads "$WEB_THREADS" --log-level warning --no-control-socket >"$work/gunicorn.log" 2>&1 &
gpid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
auth="Authorization: Bearer $token"

load() { # path -> prints requests/s; non-2xx counted as errors
  local path=$1
  if command -v wrk >/dev/null; then
    out=$(wrk -t2 -c"$CONCURRENCY" -d"${DURATION}s" --timeout 10s --latency -H "$auth" "http://127.0.0.1:$port$path")
    rps=$(sed -n 's/^Requests\/sec: *//p' <<<"$out")
    non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *//p' <<<"$out"); sock=$(grep -o 'Socket errors:.*' <<<"$out" || true)
    p50=$(awk '$1=="50%"{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
    echo "$rps req/s  p50 $p50  p99 $p99  non-2xx ${non2xx:-0}  ${sock:-socket errors 0}"
  else
    "$PY" bench/_loadgen.py "http://127.0.0.1:$port$path" --concurrency "$CONCURRENCY" --duration "$DURATION" --header "$auth"
  fi
}

echo "gunicorn gthread ${WEB_WORKERS}x${WEB_THREADS}, concurrency $CONCURRENCY, ${DURATION}s each, mailbox of $SEED"
floor=$(load "$FLOOR_PATH")
echo "floor  GET $FLOOR_PATH (middleware + JSON 404): $floor"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "http://127.0.0.1:$port$LIST_PATH")
if [ "$code" != 200 ]; then
  echo "list   GET $LIST_PATH answers $code: the list endpoint is not on this branch yet (inbox-api); nothing to measure"
  exit 0
fi
list=$(load "$LIST_PATH")
echo "list   GET $LIST_PATH: $list"
awk -v a="${list%% *}" -v b="${floor%% *}" 'BEGIN { if (b > 0) printf "ratio list / floor: %.3f\n", a / b }'
echo "goal: 0 errors (non-2xx, socket errors, timeouts > 10 s) on the list"
