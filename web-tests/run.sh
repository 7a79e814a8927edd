#!/usr/bin/env bash
# Browser tests of gosuv's web page (issue 6), on a fresh Debian machine or a developer's:
# installs Debian's chromium when it is missing and playwright-core from the lock file, builds
# the gosuv binary, starts a real server in a temp dir (HTTP on 127.0.0.1 with a free port,
# behind basic auth as gosuv requires, plus the unix socket), runs tests/*.test.mjs with node's
# test runner against it (with the login URL the server printed), and always stops the server.
# Screenshots and the server's log go to web-tests/artifacts/. Exits non-zero when anything fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

echo "== npm (playwright-core)"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

echo "== cargo build -p gosuv-bin"
(cd "$root" && cargo build -p gosuv-bin)
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
bin="$target/debug/gosuv"
[ -x "$bin" ] || { echo "no gosuv binary at $bin" >&2; exit 1; }

artifacts="$here/artifacts"
rm -rf "$artifacts"
mkdir -p "$artifacts"
work="$(mktemp -d /tmp/gosuv-web.XXXXXX)"
pids=()
confs=()

stop_servers() {
  local i
  for i in "${!pids[@]}"; do
    local pid="${pids[$i]}" conf="${confs[$i]}"
    if kill -0 "$pid" 2>/dev/null; then
      # A graceful shutdown stops the programs the tests left; signals are the fallback.
      timeout 30 "$bin" -c "$conf" shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
      local deadline=$((SECONDS + 20))
      while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    local dir
    dir="$(dirname "$conf")"
    cp "$dir/server.out" "$artifacts/$(basename "$dir")-server.out" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}

# start_server NAME: writes NAME/config.yml and programs.yml, starts `gosuv start-server -f`
# and waits until it answers; sets $port and $login_url (the URL it printed).
start_server() {
  local name="$1" dir="$work/$1"
  mkdir -p "$dir"
  port="$(free_port)"
  cat >"$dir/config.yml" <<EOF
server:
  httpserver:
    enabled: true
    addr: "127.0.0.1:$port"
  unixserver:
    enabled: true
    sockfile: .gosuv.sock
  auth:
    enabled: true
    username: webtest
    password: "$GOSUV_PASS"
  log:
    level: info
client:
  server_url: unix://.gosuv.sock
  username: webtest
  password: "$GOSUV_PASS"
EOF
  chmod 600 "$dir/config.yml"
  cat >"$dir/programs.yml" <<'EOF'
- name: seed-ticker
  command: 'i=0; while true; do i=$((i+1)); echo "seed $i"; sleep 0.5; done'
  start_auto: true
  start_seconds: 0
  stop_timeout: 2
EOF
  (cd "$dir" && exec "$bin" -c config.yml start-server -f >server.out 2>&1) &
  pids+=("$!")
  confs+=("$dir/config.yml")
  local deadline=$((SECONDS + 30))
  until "$bin" -c "$dir/config.yml" status-server >/dev/null 2>&1; do
    if ! kill -0 "${pids[-1]}" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "gosuv did not start ($name):" >&2
      cat "$dir/server.out" >&2
      exit 1
    fi
    sleep 0.1
  done
  login_url="$(sed -n 's/^web page: //p' "$dir/server.out")"
  echo "   $name: http://127.0.0.1:$port in $dir"
}

GOSUV_PASS="pw-$RANDOM$RANDOM"
export GOSUV_PASS GOSUV_USER=webtest
echo "== starting gosuv server"
start_server auth
export GOSUV_URL="http://127.0.0.1:$port" GOSUV_DIR="$work/auth" GOSUV_LOGIN_URL="$login_url"
export GOSUV_ARTIFACTS="$artifacts" GOSUV_BIN="$bin" GOSUV_WORK="$work"

echo "== node --test (headless chromium)"
# GOSUV_WEB_TEST_PATTERN=regex runs only the tests whose names match it.
status=0
node --test --test-concurrency=1 --test-reporter=spec ${GOSUV_WEB_TEST_PATTERN:+--test-name-pattern="$GOSUV_WEB_TEST_PATTERN"} "$here"/tests/*.test.mjs || status=$?
echo "screenshots and server logs: $artifacts"
exit "$status"
