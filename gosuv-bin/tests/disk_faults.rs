//! Disk faults seen from the server: a program whose log file fails (pointed at /dev/full)
//! is not stopped, blocked or slowed; the failures are counted and shown by `gosuv status`,
//! the API and /metrics; logging resumes when the fault clears. (The core proves the same
//! for its own API in gosuv-lib/tests/logs.rs.)

mod common;

use std::time::{Duration, Instant};

use common::*;

/// 40 MB as fast as the program can write them, then exit; `flood` logs to a file, `full`
/// to /dev/full.
const FLOOD: &str = "- name: flood\n  command: [/bin/sh, -c, 'yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 40000000']\n  start_seconds: 0\n  autorestart: false\n\
                     - name: full\n  command: [/bin/sh, -c, 'yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 40000000']\n  start_seconds: 0\n  autorestart: false\n";

/// A line every 20 ms, for ever.
const STEADY: &str = "- name: steady\n  command: [/bin/sh, -c, 'while :; do echo tick; sleep 0.02; done']\n  start_auto: true\n  start_seconds: 0\n";

/// Starts a flood program and returns how long it took to write everything and exit.
fn flood_time(env: &Env, name: &str) -> Duration {
    let t = Instant::now();
    // Answered once it is running: any `exited` seen after that is this run's.
    let r = env.api("POST", &format!("/api/programs/{name}/start"), "");
    assert_eq!(r.status, 200, "{}", r.body);
    eventually(60, "the flood to finish", || {
        env.api("GET", &format!("/api/programs/{name}"), "").json()["state"] == "exited"
    });
    let took = t.elapsed();
    assert_eq!(
        env.api("GET", &format!("/api/programs/{name}"), "").json()["exit_code"],
        0
    );
    took
}

fn log_errors(env: &Env, name: &str) -> u64 {
    env.api("GET", &format!("/api/programs/{name}"), "").json()["log_errors"]
        .as_u64()
        .unwrap()
}

fn metric(env: &Env, line_start: &str) -> Option<u64> {
    let text = env.api("GET", "/metrics", "").body;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_failing_log_file_neither_stops_nor_slows_the_program_and_is_reported() {
    let env = Env::unix();
    env.programs(&format!("{FLOOD}{STEADY}"));
    // The fault, from the first write: these logs point at a device that is always full.
    // (A log file moved or removed by another tool is followed: see gosuv-lib/tests/logs.rs.)
    std::fs::create_dir_all(env.path("logs")).unwrap();
    for name in ["full", "steady"] {
        if !full_device(&env.path(&format!("logs/{name}.stdout.log"))) {
            return;
        }
    }
    let _srv = env.start();
    env.wait_state("steady", "running");
    let steady_pid = env.api("GET", "/api/programs/steady", "").json()["pid"].clone();

    // The same output into a real file, then into /dev/full; best of three each.
    let healthy = (0..3).map(|_| flood_time(&env, "flood")).min().unwrap();
    // Every byte is in the file and its rotated backups (log_max_bytes is 50MB).
    let written: u64 = std::fs::read_dir(env.path("logs"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("flood.stdout.log")
        })
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(written, 3 * 40_000_000);
    assert_eq!(log_errors(&env, "flood"), 0);
    let faulty = (0..3).map(|_| flood_time(&env, "full")).min().unwrap();
    eprintln!("40 MB of output: {healthy:?} into a file, {faulty:?} into /dev/full");
    assert!(
        faulty < healthy * 3 + Duration::from_secs(1),
        "the failing log slowed the program: {faulty:?} against {healthy:?}"
    );
    let flood_errors = log_errors(&env, "full");
    assert!(flood_errors > 0);
    eventually(10, "steady's failures to be counted", || {
        log_errors(&env, "steady") > 0
    });

    // Shown everywhere: the API (above), /metrics, `gosuv status`, gosuv.log.
    assert_eq!(
        metric(
            &env,
            "gosuv_program_log_write_errors_total{program=\"full\",stream=\"stdout\"}"
        ),
        Some(flood_errors)
    );
    let table = env.ok(&["status"]);
    let row = table.lines().find(|l| l.starts_with("full ")).unwrap();
    assert!(
        row.contains(&format!("{flood_errors} log writes failed")),
        "{table}"
    );
    let log = std::fs::read_to_string(env.path("logs/gosuv.log")).unwrap();
    assert!(
        log.contains("log write failed") && log.contains("No space left on device"),
        "{log}"
    );

    // The steady program never stopped: same process, still running.
    let now = env.api("GET", "/api/programs/steady", "").json();
    assert_eq!(now["state"], "running");
    assert_eq!(now["pid"], steady_pid);

    // The fault clears: the next write opens a real file again, and the count stops.
    std::fs::remove_file(env.path("logs/steady.stdout.log")).unwrap();
    eventually(10, "steady's log to be written again", || {
        std::fs::read_to_string(env.path("logs/steady.stdout.log"))
            .is_ok_and(|t| t.contains("tick\ntick\n"))
    });
    // Its first line says what the fault cost.
    let text = std::fs::read_to_string(env.path("logs/steady.stdout.log")).unwrap();
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("[gosuv: ")
            && first.ends_with(" bytes lost: No space left on device (os error 28)]"),
        "{first}"
    );
    let settled = log_errors(&env, "steady");
    let before = std::fs::metadata(env.path("logs/steady.stdout.log"))
        .unwrap()
        .len();
    eventually(10, "more ticks in the file", || {
        std::fs::metadata(env.path("logs/steady.stdout.log"))
            .unwrap()
            .len()
            > before + 20
    });
    assert_eq!(log_errors(&env, "steady"), settled);
    assert_eq!(
        env.api("GET", "/api/programs/steady", "").json()["pid"],
        steady_pid
    );
}
