#!/usr/bin/env bash
# How long the API is unavailable while `gosuv restart-server` re-executes the server with
# PROGRAMS programs running (issue 15's figure; goal under 200 ms with 1,000). Run on demand:
#   bench/restart.sh             # 1000 programs, 5 restarts
#   PROGRAMS=200 RUNS=9 bench/restart.sh
# A client polls GET /api/status over the unix socket back to back during each restart; the
# downtime is the longest time between two answers. Also checks that no program's pid
# changed. Prints each run and the medians. The server it starts is shut down.
set -euo pipefail
cd "$(dirname "$0")/.."

PROGRAMS=${PROGRAMS:-1000}
RUNS=${RUNS:-5}
. bench/lib.sh
bench_build
bench_workdir gosuv-bench
cleanup() { "$GOSUV" -c "$work/config.yml" shutdown >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
bench_programs "$PROGRAMS"
g() { (cd "$work" && "$GOSUV" -c "$work/config.yml" "$@"); }
g start-server >/dev/null
pids() { curl -s --unix-socket "$work/.gosuv.sock" 'http://x/api/programs?stats=false' \
  | python3 -c 'import json,sys; print(sorted((p["name"],p["pid"],p["state"]) for p in json.load(sys.stdin)))'; }
deadline=$((SECONDS + 120))
until [ "$(curl -s --unix-socket "$work/.gosuv.sock" 'http://x/api/programs?stats=false' \
  | python3 -c 'import json,sys; print(sum(p["state"]=="running" for p in json.load(sys.stdin)))')" = "$PROGRAMS" ]; do
  [ $SECONDS -lt $deadline ] || { echo "the programs did not all start" >&2; exit 1; }
  sleep 0.2
done
before=$(pids)

probe() {
  python3 - "$work/.gosuv.sock" "$work/stop" <<'PY'
import os, socket, sys, time
sock, stop = sys.argv[1], sys.argv[2]
req = b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
last = None; gap = 0.0; answers = 0
while not os.path.exists(stop):
    try:
        s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sock); s.sendall(req)
        data = b""
        while True:
            c = s.recv(65536)
            if not c: break
            data += c
        s.close()
        if data.startswith(b"HTTP/1.1 200"):
            now = time.monotonic(); answers += 1
            if last is not None: gap = max(gap, now - last)
            last = now
    except OSError:
        time.sleep(0.0002)
print(f"{gap*1000:.1f} {answers}")
PY
}

echo "== restart-server with $PROGRAMS programs running ($RUNS runs)"
: >"$work/gaps"; : >"$work/cli"
for r in $(seq "$RUNS"); do
  rm -f "$work/stop"
  probe >"$work/probe.out" &
  probe_pid=$!
  sleep 0.3
  t0=$(date +%s%N); g restart-server >/dev/null; t1=$(date +%s%N)
  sleep 0.3; touch "$work/stop"; wait "$probe_pid"
  read -r gap answers <"$work/probe.out"
  cli=$(( (t1 - t0) / 1000000 ))
  echo "run $r: API unavailable ${gap} ms (longest gap between answers; $answers answers), restart-server took ${cli} ms"
  echo "$gap" >>"$work/gaps"; echo "$cli" >>"$work/cli"
  after=$(pids)
  [ "$before" = "$after" ] || { echo "a program's pid or state changed across the restart" >&2; exit 1; }
done
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m}'; }
echo "median API downtime: $(median <"$work/gaps") ms; median restart-server: $(median <"$work/cli") ms; every pid unchanged"
