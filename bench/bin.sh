#!/usr/bin/env bash
# Benchmarks of the gosuv binary (issue 5's "must reach" figures). Run on demand:
#   bench/bin.sh            # 1000 programs, all running
#   PROGRAMS=200 bench/bin.sh
# Needs wrk (apt-get install wrk). Prints medians. Every server it starts is shut down.
set -euo pipefail
cd "$(dirname "$0")/.."

PROGRAMS=${PROGRAMS:-1000}
RUNS=${RUNS:-15}
command -v wrk >/dev/null || { echo "bench/bin.sh needs wrk: apt-get install wrk" >&2; exit 1; }

. bench/lib.sh
bench_build

work=$(mktemp -d /tmp/gosuv-bench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { "$GOSUV" -c "$work/config.yml" shutdown >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

# HTTP always needs auth (every local user can reach 127.0.0.1).
pass="bench-$RANDOM$RANDOM"
auth="Authorization: Basic $(printf 'admin:%s' "$pass" | base64)"
cat >"$work/config.yml" <<YML
server:
  httpserver:
    enabled: true
    addr: 127.0.0.1:$port
  auth:
    enabled: true
    username: admin
    password: "$pass"
  log:
    level: warn
client:
  server_url: unix://.gosuv.sock
  username: admin
  password: "$pass"
YML
chmod 600 "$work/config.yml"
g() { "$GOSUV" -c "$work/config.yml" "$@"; }

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

echo "== start-server to answering, no programs ($RUNS runs)"
: >"$work/programs.yml"
for _ in $(seq "$RUNS"); do
  t0=$(now_ns); g start-server >/dev/null; t1=$(now_ns)
  echo "$(( (t1 - t0) / 1000 ))" >>"$work/start.us"
  g shutdown >/dev/null
done
echo "median: $(awk '{print $1/1000}' "$work/start.us" | median) ms"

echo "== $PROGRAMS programs, all running"
bench_programs "$PROGRAMS"
g start-server >/dev/null
bench_wait_running "$PROGRAMS"
echo "running: $running"

echo "== gosuv status with $PROGRAMS programs ($RUNS runs, whole command)"
for _ in $(seq "$RUNS"); do
  t0=$(now_ns); g status >/dev/null; t1=$(now_ns)
  echo "$(( (t1 - t0) / 1000 ))" >>"$work/status.us"
done
echo "median: $(awk '{print $1/1000}' "$work/status.us" | median) ms"

pid=$(cat "$work/.gosuv.pid")
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
echo "== GET /api/programs with $PROGRAMS programs (wrk, loopback)"
wrk -t1 -c4 -d3s -H "$auth" "http://127.0.0.1:$port/api/programs" >/dev/null  # warm-up
echo "server RSS before: $(rss) KiB"
total=0
for round in 1 2 3 4 5; do
  out=$(wrk -t2 -c8 -d8s -H "$auth" "http://127.0.0.1:$port/api/programs")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  total=$((total + reqs))
  echo "round $round: $rate req/s, $reqs requests (total $total), server RSS $(rss) KiB"
  echo "$rate" >>"$work/rate"
done
echo "median: $(median <"$work/rate") req/s over $total requests"
bytes=$(curl -s -H "$auth" "http://127.0.0.1:$port/api/programs" | wc -c)
echo "response size: $bytes bytes"

echo "== for comparison: GET /api/programs?stats=false (rebuilt on every request, no cache)"
wrk -t2 -c8 -d5s -H "$auth" "http://127.0.0.1:$port/api/programs?stats=false" | awk '/Requests\/sec/ {print $2 " req/s"}'
echo "== GET /metrics"
wrk -t2 -c8 -d5s -H "$auth" "http://127.0.0.1:$port/metrics" | awk '/Requests\/sec/ {print $2 " req/s"}'
