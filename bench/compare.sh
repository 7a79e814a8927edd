#!/usr/bin/env bash
# gosuv vs supervisord (and pm2 when npm is present), same workloads, one run.
# Installs the peers into throwaway directories; builds gosuv in release mode.
#   bench/compare.sh            # the full run (about 10 minutes)
#   bench/compare.sh --quick    # short windows, fewer rounds
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/gosuv-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT

cargo build --release -p gosuv-bin
gosuv="${CARGO_TARGET_DIR:-target}/release/gosuv"

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet supervisor
args=(--gosuv "$gosuv" --supervisord "$work/venv/bin/supervisord")
if command -v npm >/dev/null 2>&1; then
  (cd "$work" && npm install --silent --no-audit --no-fund pm2 >/dev/null 2>&1) \
    && args+=(--pm2 "$work/node_modules/.bin/pm2") \
    || echo "pm2 could not be installed: comparing with supervisord only" >&2
fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 bench/compare.py "${args[@]}" "$@"
