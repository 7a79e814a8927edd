#!/usr/bin/env bash
# Runs every test of the project: the README's test command. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")"

echo "== cargo test --workspace"
cargo test --workspace

for suite in gosuv-py/test.sh; do
  if [ -x "$suite" ]; then
    echo "== $suite"
    "./$suite"
  fi
done
