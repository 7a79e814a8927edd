#!/usr/bin/env bash
# Runs every test of the project: the README's test command. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")"

# What the C tests need (the C ABI suite builds and runs C/C++ programs, one under valgrind),
# and tmux: the terminal the tests of `gosuv shell` and `gosuv top` drive.
need=()
for tool in cc:build-essential c++:build-essential make:build-essential pkg-config:pkg-config valgrind:valgrind tmux:tmux; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== cargo test --workspace"
cargo test --workspace

for suite in gosuv-py/test.sh web-tests/run.sh; do
  if [ -x "$suite" ]; then
    echo "== $suite"
    "./$suite"
  fi
done
