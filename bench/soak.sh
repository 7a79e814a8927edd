#!/usr/bin/env bash
# The long variants of issue 8's load tests (RELIABILITY.md), run on demand:
#   bench/soak.sh            # the soak: 300 programs for 10 minutes, then the 30 s storm
#   bench/soak.sh soak       # the soak only (SECS=600 by default)
#   bench/soak.sh storm      # 50 clients for 30 s (SECS=30 by default)
#   PROFILE=debug bench/soak.sh soak    # against the debug build, as the normal test run
# Both are the same tests as in the normal test run (gosuv-bin/tests/soak.rs, concurrency.rs),
# only longer; each prints its figures and fails on the same bounds. Every server they
# start is shut down.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
PROFILE=${PROFILE:-release}
release=()
[ "$PROFILE" = release ] && release=(--release)

soak() {
  echo "== soak: 300 programs, ${SECS:-600} s ($PROFILE build)"
  GOSUV_SOAK_SECS=${SECS:-600} cargo test "${release[@]}" -p gosuv-bin --test soak -- --nocapture
}

storm() {
  echo "== storm: 50 clients on 5 programs, ${SECS:-30} s ($PROFILE build)"
  GOSUV_STORM_SECS=${SECS:-30} cargo test "${release[@]}" -p gosuv-bin --test concurrency -- --nocapture
}

case "$what" in
  soak) soak ;;
  storm) storm ;;
  all) soak; storm ;;
  *) echo "usage: bench/soak.sh [soak|storm|all]" >&2; exit 2 ;;
esac
