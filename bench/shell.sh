#!/usr/bin/env bash
# The round trip of a command in `gosuv shell` (issue 17's figure: `status` of 100 programs
# under 10 ms). Run on demand:
#   bench/shell.sh               # 100 programs, 200 commands
#   PROGRAMS=1000 RUNS=100 bench/shell.sh
# A driver writes `status` to the shell's standard input, one at a time, and times each
# until the whole table (a header and a row per program) has come back: the same path as a
# command typed at the prompt (the line is parsed by the same definitions and run by the
# same function), without the terminal. Prints the median, p90 and max, and for reference
# the same command run as a process of its own (`gosuv status`). The server is shut down.
set -euo pipefail
cd "$(dirname "$0")/.."

PROGRAMS=${PROGRAMS:-100}
RUNS=${RUNS:-200}
. bench/lib.sh
bench_build
bench_workdir gosuv-bench
cleanup() { "$GOSUV" -c "$work/config.yml" shutdown >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
bench_programs "$PROGRAMS"
(cd "$work" && "$GOSUV" start-server >/dev/null)
"$GOSUV" -c "$work/config.yml" wait all --timeout 120 >/dev/null

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $PROGRAMS programs, $RUNS commands"
python3 - "$GOSUV" "$work/config.yml" "$PROGRAMS" "$RUNS" <<'PY'
import statistics, subprocess, sys, time
gosuv, conf, programs, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def report(what, times):
    times = sorted(t * 1000 for t in times)
    p90 = times[int(len(times) * 0.9) - 1]
    print(f"{what}: median {statistics.median(times):.2f} ms, p90 {p90:.2f} ms, max {times[-1]:.2f} ms")

shell = subprocess.Popen([gosuv, "-c", conf, "shell"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, bufsize=1)
times = []
for _ in range(runs + 5):
    t0 = time.perf_counter()
    shell.stdin.write("status\n")
    shell.stdin.flush()
    for _ in range(programs + 1):
        if not shell.stdout.readline():
            sys.exit("the shell ended early")
    times.append(time.perf_counter() - t0)
shell.stdin.close()
if shell.wait() != 0:
    sys.exit("the shell failed")
report("shell: status", times[5:])

times = []
for _ in range(min(runs, 50)):
    t0 = time.perf_counter()
    subprocess.run([gosuv, "-c", conf, "status"], stdout=subprocess.DEVNULL, check=True)
    times.append(time.perf_counter() - t0)
report("gosuv status (a process each)", times)
PY
