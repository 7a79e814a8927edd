#!/usr/bin/env bash
# What `gosuv top` costs while nothing happens: a server with N idle `sleep` programs, top
# running in a tmux terminal (200x60) against it, and top's CPU (utime + stime from
# /proc/PID/stat) over a window, as % of one core. The server's CPU in the same window is
# printed too (it answers top's list once a second). Run on demand:
#   bench/top_idle.sh                      # 200, then 1000 programs, 25 s each
#   PROGRAMS=1000 SECONDS_IDLE=30 bench/top_idle.sh
# Needs tmux. Everything it starts (server, programs, tmux) is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

PROGRAMS=${PROGRAMS:-"200 1000"}
SECONDS_IDLE=${SECONDS_IDLE:-25}
command -v tmux >/dev/null || { echo "bench/top_idle.sh needs tmux: apt-get install tmux" >&2; exit 1; }

. bench/lib.sh
bench_build
HZ=$(getconf CLK_TCK)

bench_workdir gosuv-top-idle
tmux_sock="$work/tmux.sock"
cleanup() {
  tmux -S "$tmux_sock" kill-server >/dev/null 2>&1 || true
  "$GOSUV" -c "$work/config.yml" shutdown >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

g() { "$GOSUV" -c "$work/config.yml" "$@"; }

# utime + stime of a process, in clock ticks (fields 14 and 15; the name may hold spaces).
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

for n in $PROGRAMS; do
  echo "== $n idle programs, top for ${SECONDS_IDLE}s"
  bench_programs "$n"
  g start-server >/dev/null
  bench_wait_running "$n"
  echo "running: $running"
  server=$(cat "$work/.gosuv.pid")

  tmux -S "$tmux_sock" -f /dev/null new-session -d -s top -x 200 -y 60 \
    "exec env TERM=xterm-256color '$GOSUV' -c '$work/config.yml' top"
  top=$(tmux -S "$tmux_sock" display-message -p -t top '#{pane_pid}')
  # Past its start (the first list, the first frames).
  sleep 3
  grep -q gosuv "/proc/$top/comm" || { echo "top is not running" >&2; exit 1; }

  t0=$(date +%s%N); c0=$(ticks "$top"); s0=$(ticks "$server")
  sleep "$SECONDS_IDLE"
  t1=$(date +%s%N); c1=$(ticks "$top"); s1=$(ticks "$server")
  awk -v c="$((c1 - c0))" -v s="$((s1 - s0))" -v hz="$HZ" -v ns="$((t1 - t0))" 'BEGIN {
    secs = ns / 1e9
    printf "top CPU: %.2f %% of a core (%d ticks of 1/%d s in %.1f s)\n", 100 * c / hz / secs, c, hz, secs
    printf "server CPU meanwhile: %.2f %% of a core\n", 100 * s / hz / secs
  }'
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$top/status")
  echo "top RSS: $rss KiB"

  tmux -S "$tmux_sock" kill-server >/dev/null 2>&1 || true
  g shutdown >/dev/null
done
