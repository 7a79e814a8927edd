#!/usr/bin/env bash
# gosuv vs supervisord (and pm2 when npm is present), same workloads, one run, with the
# "spawn limit" (bench/spawn_limit.c, compiled with `cc -O2` into a temp dir) as the floor.
# Installs the peers into throwaway directories; builds gosuv in release mode.
#   bench/compare.sh                  # the full run (tens of minutes)
#   bench/compare.sh --quick          # short windows, fewer rounds
#   bench/compare.sh --only W0,W1     # some workloads (W0-W7; see bench/compare.py)
#   bench/compare.sh --only W7 --big 2000   # W7's big run at 2,000 programs, not 5,000
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/gosuv-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT

cargo build --release -p gosuv-bin
gosuv="${CARGO_TARGET_DIR:-target}/release/gosuv"

# W0 (the spawn limit) and W7 (gosuv at 5,000) run no peer: skip installing them.
only=""
for ((i = 1; i <= $#; i++)); do
  case "${!i}" in
    --only) j=$((i + 1)); only="${!j:-}" ;;
    --only=*) only="${!i#--only=}" ;;
  esac
done
peers=yes
if [ -n "$only" ] && [ -z "$(tr ',' '\n' <<<"$only" | grep -v -x -e W0 -e W7 || true)" ]; then
  peers=no
fi

args=(--gosuv "$gosuv")
if [ "$peers" = yes ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet supervisor
  args+=(--supervisord "$work/venv/bin/supervisord")
  if command -v npm >/dev/null 2>&1; then
    (cd "$work" && npm install --silent --no-audit --no-fund pm2 >/dev/null 2>&1) \
      && args+=(--pm2 "$work/node_modules/.bin/pm2") \
      || echo "pm2 could not be installed: comparing with supervisord only" >&2
  fi
fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "open files $(ulimit -Sn)/$(ulimit -Hn), pid_max $(cat /proc/sys/kernel/pid_max)"
python3 bench/compare.py "${args[@]}" "$@"
