#!/usr/bin/env bash
# Tests of the Python module gosuv: builds the wheel, installs it into a venv of its own
# (gosuv-py/.venv, not committed), runs the pytest suite (which also runs the examples),
# type-checks the tests, the examples and the package with mypy --strict, and checks the
# native module's stubs against the real module with stubtest. Exits non-zero on any failure.
#
# Needs Rust (cargo) and Python >= 3.9 with venv and pip; maturin, pytest and mypy come from
# PyPI. PYTHON picks the interpreter (default python3); CARGO_TARGET_DIR is honoured.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"

python="${PYTHON:-python3}"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check \
  "maturin>=1.9.4,<2" "pytest>=7" "pytest-timeout>=2" "mypy>=1.8"

echo "== building the wheel (maturin, dev profile)"
wheels="${CARGO_TARGET_DIR:-$root/target}/gosuv-py-wheels"
rm -rf "$wheels"
# The dev profile shares the build of `cargo test --workspace`; the tests need no speed.
VIRTUAL_ENV="$venv" "$venv/bin/maturin" build --quiet --profile dev \
  --manifest-path "$here/Cargo.toml" --interpreter "$py" --out "$wheels"
"$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
  "$wheels"/gosuv-*.whl

echo "== pytest gosuv-py/tests"
# Run from the tests' directory so that `import gosuv` finds the installed wheel, not the
# sources in gosuv-py/python.
(cd "$here" && "$py" -m pytest tests)

echo "== mypy --strict (tests, examples, package)"
# Checked against the installed package, so its stubs and py.typed are what is tested.
(cd "$here" && "$venv/bin/mypy" --strict tests)
(cd "$root/examples/python" && "$venv/bin/mypy" --strict .)
(cd "$root/docs/embedding" && "$venv/bin/mypy" --strict test_gosuv.py)
(cd "$here/python" && "$venv/bin/mypy" --strict gosuv)

echo "== stubtest gosuv"
(cd "$here" && "$py" -m mypy.stubtest gosuv --allowlist "$here/stubtest-allowlist.txt" \
  --ignore-unused-allowlist)
