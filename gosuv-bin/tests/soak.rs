//! The soak: 300 programs (100 crash-looping, 100 chatty, 100 idle) under one server, with
//! `GET /api/programs` every 100 ms, for `GOSUV_SOAK_SECS` seconds: 60 in the normal test
//! run (the CI variant), 600 on demand (`bench/soak.sh`). After a warm-up (a third of the
//! run, at most 60 s) the server's RSS stays within a few MiB, its descriptor count is flat,
//! and it uses under 5 % of one core, all read from /proc.
//!
//! - crash-looping: runs 9 to 10 s (past `start_seconds`), writes a line to stderr and exits
//!   1, and is restarted at once (`start_limit` off): about 10 spawns a second across the
//!   100, for ever (a crash before `start_seconds` would go to backoff and, after
//!   `start_retries`, to fatal);
//! - chatty: writes 64 KiB at once (its in-memory tail is full from the start), then a
//!   120-byte line every 100 ms, to its log file;
//! - idle: `sleep`.

mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::*;

const MIB: u64 = 1024 * 1024;

fn programs() -> String {
    let mut y = String::new();
    for i in 0..100 {
        // 9.00 to 9.99 s, so the crashes do not come in step.
        let _ = write!(
            y,
            "- name: crash{i:03}\n  command: [/bin/sh, -c, 'sleep 9.{i:02}; echo crash >&2; exit 1']\n  start_auto: true\n  start_seconds: 1\n  start_limit: {{burst: 0}}\n"
        );
        let _ = write!(
            y,
            "- name: chatty{i:03}\n  command: [perl, -e, '$| = 1; print \"x\" x 65535, \"\\n\"; for (my $n = 0;; $n++) {{ printf \"%08d %s\\n\", $n, \"y\" x 110; select(undef, undef, undef, 0.1) }}']\n  start_auto: true\n  start_seconds: 0\n"
        );
        let _ = write!(
            y,
            "- name: idle{i:03}\n  command: [sleep, '1000000']\n  start_auto: true\n  start_seconds: 0\n"
        );
    }
    y
}

struct Sample {
    at: Duration,
    rss: u64,
    fds: usize,
    cpu: u64,
}

#[test]
fn three_hundred_programs_for_a_minute() {
    let secs: u64 = std::env::var("GOSUV_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let warmup = Duration::from_secs((secs / 3).min(60));
    let env = Env::unix();
    env.programs(&programs());
    let _srv = env.start();
    let server = env.pid().unwrap();

    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = start;
    let mut queries = 0u64;
    let mut slowest = Duration::ZERO;
    let mut states = serde_json::Value::Null;
    while Instant::now() < end {
        let t = Instant::now();
        let r = env.api("GET", "/api/programs", "");
        let took = t.elapsed();
        assert_eq!(r.status, 200, "{}", r.body);
        queries += 1;
        slowest = slowest.max(took);
        if t >= next_sample {
            states = r.json();
            samples.push(Sample {
                at: start.elapsed(),
                rss: rss_bytes(server),
                fds: fd_count(server),
                cpu: cpu_ticks(server),
            });
            next_sample += Duration::from_secs(1);
        }
        // One query every 100 ms, whatever the last one took.
        let next = t + Duration::from_millis(100);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }

    let list = states.as_array().unwrap();
    assert_eq!(list.len(), 300);
    let count = |prefix: &str, ok: &[&str]| {
        list.iter()
            .filter(|p| p["name"].as_str().unwrap().starts_with(prefix))
            .filter(|p| ok.contains(&p["state"].as_str().unwrap()))
            .count()
    };
    assert_eq!(count("chatty", &["running"]), 100, "chatty ones stopped");
    assert_eq!(count("idle", &["running"]), 100, "idle ones stopped");
    assert_eq!(
        count("crash", &["starting", "running", "exited"]),
        100,
        "crash-looping ones left the loop"
    );
    let restarts: u64 = list.iter().filter_map(|p| p["restarts"].as_u64()).sum();

    let measured: Vec<&Sample> = samples.iter().filter(|s| s.at >= warmup).collect();
    assert!(measured.len() >= 10, "too few samples");
    let first = measured[0];
    let last = measured[measured.len() - 1];
    let rss_max = measured.iter().map(|s| s.rss).max().unwrap();
    let fd_min = measured.iter().map(|s| s.fds).min().unwrap();
    let fd_max = measured.iter().map(|s| s.fds).max().unwrap();
    let secs_measured = (last.at - first.at).as_secs_f64();
    let cpu = (last.cpu - first.cpu) as f64 / ticks_per_sec() as f64 / secs_measured;
    let report = format!(
        "soak {secs}s (warm-up {warmup:?}): {queries} status queries (slowest {slowest:?}), {restarts} restarts; \
         RSS {:.1} MiB after warm-up, max {:.1}, end {:.1}; fds {} after warm-up, {fd_min}..{fd_max}, end {}; \
         CPU {:.2} % of one core (opt-level {})",
        first.rss as f64 / MIB as f64,
        rss_max as f64 / MIB as f64,
        last.rss as f64 / MIB as f64,
        first.fds,
        last.fds,
        cpu * 100.0,
        env!("GOSUV_BUILD_OPT_LEVEL")
    );
    eprintln!("{report}");
    let trace: Vec<String> = samples
        .iter()
        .map(|s| {
            format!(
                "{:.0}s {:.1}MiB {}fd",
                s.at.as_secs_f64(),
                s.rss as f64 / MIB as f64,
                s.fds
            )
        })
        .collect();
    eprintln!("samples: {}", trace.join(", "));
    assert!(
        rss_max <= first.rss + 4 * MIB,
        "RSS grew after warm-up: {report}"
    );
    // Each crash-looping program holds its pipes while it runs and for the moment of its
    // restart, so the count breathes a little; it must not climb.
    assert!(fd_max - fd_min <= 24, "fd count not flat: {report}");
    assert!(last.fds <= first.fds + 12, "fd count climbing: {report}");
    // The bound is for optimized code; an unoptimized test build (the default of
    // `cargo test`) runs the same work several times slower and is held to 25 %: on this
    // 2-core machine it measured 18.6-19.3 % for the code of both 2026-12-01 versions
    // (before and after the embedding work, run alternately), and 20.6 % once with a build
    // beside it, so 20 % failed on noise. A scan of every program each tick, or a busy
    // loop, costs far more than the 6 points of margin.
    let optimized = env!("GOSUV_BUILD_OPT_LEVEL") != "0";
    let bound = if optimized { 0.05 } else { 0.25 };
    assert!(
        cpu < bound,
        "server CPU {:.2} % (bound {:.0} %, {} build): {report}",
        cpu * 100.0,
        bound * 100.0,
        if optimized {
            "optimized"
        } else {
            "unoptimized"
        }
    );
    assert!(restarts >= 100, "the crash loop did not loop: {report}");
}
