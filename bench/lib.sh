# Shared by the bench scripts: `. bench/lib.sh` from the repository's root.

# Builds the release binary; sets GOSUV.
bench_build() {
  local target=${CARGO_TARGET_DIR:-$PWD/target}
  cargo build --release -p gosuv-bin >&2
  GOSUV="$target/release/gosuv"
}

# A temp dir with a config.yml (server log at warn, the unix socket beside it); sets work.
# The caller's EXIT trap removes it.
bench_workdir() {
  work=$(mktemp -d "/tmp/${1:-gosuv-bench}.XXXXXX")
  cat >"$work/config.yml" <<YML
server:
  log:
    level: warn
client:
  server_url: unix://.gosuv.sock
YML
  chmod 600 "$work/config.yml"
}

# programs.yml of N `sleep` programs started at once (p0001 ...).
bench_programs() {
  local i
  for i in $(seq "$1"); do
    printf -- "- name: p%04d\n  command: [sleep, '100000']\n  start_auto: true\n  start_seconds: 0\n" "$i"
  done >"$work/programs.yml"
}

# Waits (30 s at most) until N programs are running; sets running to how many are.
bench_wait_running() {
  local _
  running=0
  for _ in $(seq 300); do
    running=$("$GOSUV" -c "$work/config.yml" status | grep -c ' running ' || true)
    [ "$running" -ge "$1" ] && break
    sleep 0.1
  done
}
