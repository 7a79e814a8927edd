//! Readiness on the command line: `gosuv start` returns when the `ready` probe passes (or
//! fails with the probe's error), and `gosuv status` shows the time to ready, the health
//! check and what a waiting program waits for.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn start_returns_once_ready_and_fails_with_the_probes_last_error() {
    let env = Env::unix();
    let closed = free_port();
    // start_seconds is ignored with a ready probe: start must not wait 30 s for it.
    env.programs(&format!(
        "- name: slow\n  command: sleep 0.5; echo up; exec sleep 300\n  start_seconds: 30\n  ready: {{log: '^up$'}}\n\
         - name: never\n  command: exec sleep 300\n  start_retries: 1\n  ready: {{http: \"http://127.0.0.1:{closed}/\", interval: 50ms, timeout: 500ms}}\n"
    ));
    let _s = env.start();
    let t = Instant::now();
    let out = env.ok(&["start", "slow"]);
    assert!(out.starts_with("slow: running (pid "), "{out}");
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // It returned because the line came: the line is there already.
    assert_eq!(env.ok(&["tail", "slow"]), "up\n");

    let err = env.fails(&["start", "never"]);
    assert!(
        err.contains(
            "'never' could not start: not ready within 500ms (http probe): GET http://127.0.0.1:"
        ) && err.contains("connection refused"),
        "{err}"
    );
    let table = env.ok(&["status"]);
    let row = table.lines().find(|l| l.starts_with("never ")).unwrap();
    assert!(
        row.contains(" fatal ") && row.contains("(http probe)"),
        "{table}"
    );
}

/// The column starts of a table's header line.
fn column_starts(header: &str) -> Vec<usize> {
    let b = header.as_bytes();
    (0..b.len())
        .filter(|&i| b[i] != b' ' && (i == 0 || (i >= 2 && &b[i - 2..i] == b"  ")))
        .collect()
}

#[test]
fn status_shows_waiting_ready_and_health() {
    let env = Env::unix();
    let closed = free_port();
    env.programs(&format!(
        "- name: db\n  command: exec sleep 300\n  ready: {{tcp: \"127.0.0.1:{closed}\", interval: 50ms, timeout: 60s}}\n\
         - name: web\n  command: exec sleep 300\n  depends_on: [db]\n\
         - name: up\n  command: sleep 0.3; echo up; exec sleep 300\n  ready: {{log: '^up$'}}\n\
         - name: sick\n  command: exec sleep 300\n  start_seconds: 0\n  health: {{tcp: \"127.0.0.1:{closed}\", interval: 100ms, failures: 1000}}\n"
    ));
    let _s = env.start();
    env.ok(&["start", "up"]);
    env.ok(&["start", "sick"]);
    let out = env.ok(&["start", "web", "--no-wait"]);
    assert_eq!(out.trim(), "web: waiting", "{out}");
    let mut table = String::new();
    eventually(15, "web waiting and sick failing in the table", || {
        table = env.ok(&["status"]);
        table.contains("waiting for db") && table.contains("failing ")
    });
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "CPU", "MEM", "LAST", "EXIT", "READY",
            "IN", "HEALTH", "OWNED", "BY", "LAST", "ERROR"
        ],
        "{table}"
    );
    // Aligned: every cell starts where its column's title does.
    let starts = column_starts(lines[0]);
    assert_eq!(starts.len(), 12, "{table}");
    for line in &lines[1..] {
        assert_eq!(column_starts(line)[..12], starts[..], "{table}");
    }
    let row = |name: &str| -> Vec<String> {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{table}"));
        starts
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let end = starts.get(i + 1).copied().unwrap_or(line.len());
                line[s..end].trim().to_string()
            })
            .collect()
    };
    let web = row("web");
    assert_eq!(
        web[1..10],
        ["waiting", "-", "-", "0", "-", "-", "-", "-", "-"],
        "{table}"
    );
    assert_eq!(web[11], "waiting for db", "{table}");
    let db = row("db");
    assert_eq!(db[1], "starting", "{table}");
    assert_eq!(db[8], "-", "not ready yet: {table}");
    let up = row("up");
    assert_eq!(up[1], "running", "{table}");
    assert!(
        up[8].ends_with('s') && up[8] != "-",
        "time to ready: {table}"
    );
    let secs: f64 = up[8].trim_end_matches('s').parse().unwrap();
    assert!((0.3..20.0).contains(&secs), "{table}");
    assert_eq!(up[9], "-", "no health probe: {table}");
    let sick = row("sick");
    assert!(
        sick[9].starts_with("failing ") && sick[9].contains("/1000"),
        "{table}"
    );
    assert!(sick[11].starts_with("health check: "), "{table}");
}
