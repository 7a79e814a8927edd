//! Concurrency: 50 clients issue start, stop, restart, update, delete and create on the
//! same 5 programs at once, for `GOSUV_STORM_SECS` seconds (8 in the normal test run; 30
//! for the figure: `GOSUV_STORM_SECS=30 cargo test -p gosuv-bin --test
//! concurrency`). Then: every request was answered with a status defined for it (no
//! deadlock, no 5xx, no panic in gosuv.log); a last request on each program decides its
//! state, and the API, /proc and programs.yml agree with it; no zombie; and once the
//! programs are stopped, the server has exactly the descriptors it had before the storm.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const PROGRAMS: [&str; 5] = ["c0", "c1", "c2", "c3", "c4"];
const CLIENTS: usize = 50;

fn body(mark: &str, name: &str, variant: u64) -> String {
    json!({
        "name": name,
        "command": ["sleep", format!("{}", 100_000 + variant % 7)],
        "start_seconds": 0,
        "stop_timeout": 2,
        "environ": [format!("{MARK_VAR}={mark}"), format!("PROGRAM={name}")],
    })
    .to_string()
}

/// A tiny xorshift: the storm needs variety, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The statuses each operation may answer, whatever the others do at the same time.
fn allowed(op: &str, status: u16) -> bool {
    match op {
        "start" | "restart" => matches!(status, 200 | 404 | 409),
        "stop" | "delete" => matches!(status, 200 | 404),
        "update" => matches!(status, 200 | 404),
        "create" => matches!(status, 201 | 409),
        _ => false,
    }
}

#[test]
fn fifty_clients_on_the_same_programs() {
    let secs: u64 = std::env::var("GOSUV_STORM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let env = Arc::new(Env::unix());
    let mark = env.dir.path().display().to_string();
    let _cleanup = KillMarked(mark.clone());
    let _srv = env.start();
    let server = env.pid().unwrap();
    for name in PROGRAMS {
        let r = env.api("POST", "/api/programs", &body(&mark, name, 0));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // Everything the server opens lazily is opened once; then the baseline, all stopped.
    assert_eq!(env.api("POST", "/api/all/start", "").status, 200);
    assert_eq!(env.api("POST", "/api/all/stop", "").status, 200);
    // Connections of the requests above may still be closing: the baseline is the lowest
    // count seen over a moment.
    let settle = Instant::now() + Duration::from_millis(300);
    let mut fds_before = fd_count(server);
    while Instant::now() < settle {
        fds_before = fds_before.min(fd_count(server));
        std::thread::sleep(Duration::from_millis(10));
    }

    let counts: Arc<Mutex<BTreeMap<(String, u16), u64>>> = Arc::default();
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let env = env.clone();
            let counts = counts.clone();
            let slowest = slowest.clone();
            let mark = mark.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1000_0001));
                let mut bad = Vec::new();
                while Instant::now() < deadline {
                    let name = PROGRAMS[(rng.next() % 5) as usize];
                    let op = ["start", "stop", "restart", "update", "delete", "create"]
                        [(rng.next() % 6) as usize];
                    let t = Instant::now();
                    let r = match op {
                        "update" => env.api(
                            "PUT",
                            &format!("/api/programs/{name}"),
                            &body(&mark, name, rng.next()),
                        ),
                        "delete" => env.api("DELETE", &format!("/api/programs/{name}"), ""),
                        "create" => env.api("POST", "/api/programs", &body(&mark, name, 0)),
                        _ => env.api("POST", &format!("/api/programs/{name}/{op}"), ""),
                    };
                    let took = t.elapsed();
                    {
                        let mut s = slowest.lock().unwrap();
                        *s = (*s).max(took);
                    }
                    *counts
                        .lock()
                        .unwrap()
                        .entry((op.to_string(), r.status))
                        .or_default() += 1;
                    if !allowed(op, r.status) {
                        bad.push(format!("{op} {name}: {} {}", r.status, r.body));
                    }
                }
                bad
            })
        })
        .collect();
    let bad: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread panicked"))
        .collect();
    let counts = counts.lock().unwrap().clone();
    let total: u64 = counts.values().sum();
    eprintln!(
        "{total} requests from {CLIENTS} clients in {secs}s; slowest {:?}; by operation and status: {counts:?}",
        slowest.lock().unwrap()
    );
    assert!(bad.is_empty(), "answers outside the defined ones: {bad:#?}");
    assert!(total >= CLIENTS as u64, "only {total} requests");

    // The last request decides. Each program exists first (created or already there).
    for name in PROGRAMS {
        let r = env.api("POST", "/api/programs", &body(&mark, name, 0));
        assert!(matches!(r.status, 201 | 409), "{}", r.body);
    }
    let ok = |method: &str, path: &str, body: &str| {
        let r = env.api(method, path, body);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        r.json()
    };
    ok("POST", "/api/programs/c0/start", "");
    ok("POST", "/api/programs/c1/stop", "");
    ok("DELETE", "/api/programs/c2", "");
    let before = env.api("GET", "/api/programs/c3", "").json()["pid"].clone();
    let c3 = ok("POST", "/api/programs/c3/restart", "");
    assert_ne!(c3["pid"], before);
    let c4_was = env.api("GET", "/api/programs/c4", "").json()["state"].clone();
    ok("PUT", "/api/programs/c4", &body(&mark, "c4", 6));
    // An update of a running program restarts it, and the answer does not wait for that.
    eventually(10, "c4 back in its state after the update", || {
        env.api("GET", "/api/programs/c4", "").json()["state"] == c4_was
    });

    let api: BTreeMap<String, serde_json::Value> = env
        .api("GET", "/api/programs?stats=false", "")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p.clone()))
        .collect();
    assert_eq!(
        api.keys().collect::<Vec<_>>(),
        ["c0", "c1", "c3", "c4"],
        "{api:#?}"
    );
    assert_eq!(api["c0"]["state"], "running");
    assert_eq!(api["c1"]["state"], "stopped");
    assert_eq!(api["c3"]["state"], "running");
    assert_eq!(api["c4"]["command"], json!(["sleep", "100006"]));
    assert_eq!(
        api["c4"]["state"], c4_was,
        "an update keeps a program's state"
    );
    // /proc agrees: one group for each running program, its pid the API's; none for the
    // others. (A stop answers once the whole group is gone.)
    let procs = groups_by_program(&mark);
    for (name, p) in &api {
        match p["pid"].as_i64() {
            Some(pid) => assert_eq!(procs.get(name), Some(&vec![pid as i32]), "{name}"),
            None => assert_eq!(procs.get(name), None, "{name}: {procs:?}"),
        }
    }
    assert_eq!(procs.get("c2"), None, "a deleted program still runs");
    // programs.yml holds the same set and c4's last config.
    let saved = std::fs::read_to_string(env.path("programs.yml")).unwrap();
    let saved = gosuv::config::parse_programs(&saved, None, env.dir.path()).unwrap();
    // (In the file's order: a change edits its block in place, an addition is appended.)
    let mut names: Vec<&str> = saved.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["c0", "c1", "c3", "c4"]);

    eventually(10, "no zombie child of the server", || {
        zombie_children(server).is_empty()
    });
    assert_eq!(env.api("POST", "/api/all/stop", "").status, 200);
    assert!(marked(&mark).is_empty());
    let fds = || fd_count(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds() > fds_before {
        assert!(
            Instant::now() < deadline,
            "the server has {} descriptors, {fds_before} before the storm",
            fds()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(env.path("logs/gosuv.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "{}", env.server_log());
}
