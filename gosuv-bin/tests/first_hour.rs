//! A supervisord user's first hour, as one walk through the real binary: a `numprocs: 3`
//! entry with `{n}` in its command and `${VAR}` in its directory, `gosuv wait 'w-*'`,
//! `status --json` read by `python3 -m json.tool`, `gosuv logs -f` of every program,
//! `gosuv signal HUP w-1` reaching the real process (the pid in `status` is python's, not a
//! shell's), and `gosuv stop 'w-*'`.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PROGRAM: &str = r#"
import signal, sys, time
n = sys.argv[1]
signal.signal(signal.SIGHUP, lambda *_: print(f"instance {n} got HUP", flush=True))
print(f"instance {n} up", flush=True)
while True:
    time.sleep(60)
"#;

#[test]
fn numprocs_globs_signal_logs_and_json() {
    let env = Env::unix();
    let work = env.path("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("w.py"), PROGRAM).unwrap();
    env.programs(
        "\
- name: w
  numprocs: 3
  command: python3 -u w.py {n}
  directory: ${WALK_DIR}/work
  start_auto: true
  start_seconds: 0
  stop_timeout: 5
",
    );
    let out = env
        .command(&["start-server"])
        .env("WALK_DIR", env.path(""))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let _server = Server { env: &env };

    env.ok(&["wait", "w-*", "--timeout", "20"]);

    // status --json is JSON a standard tool reads.
    let json = env.ok(&["status", "--json"]);
    let mut tool = std::process::Command::new("python3")
        .args(["-m", "json.tool"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(tool.stdin.as_mut().unwrap(), json.as_bytes()).unwrap();
    drop(tool.stdin.take());
    assert!(tool.wait().unwrap().success(), "{json}");
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["w-0", "w-1", "w-2"]);
    let w1 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "w-1")
        .unwrap();
    let pid = w1["pid"].as_i64().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(
        comm.trim(),
        "python3",
        "the pid in status is not the program's"
    );

    // logs -f of every program, each line prefixed with its program's name.
    let mut logs = env
        .command(&["logs", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = logs.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    for n in 0..3 {
        wait_line(&rx, &mut seen, &format!("instance {n} up"));
    }
    let up = seen
        .iter()
        .find(|l| l.ends_with("instance 2 up"))
        .unwrap()
        .clone();
    assert!(up.starts_with("w-2"), "no name prefix: {up:?}");

    // The signal reaches the real process, which lives on.
    env.ok(&["signal", "HUP", "w-1"]);
    wait_line(&rx, &mut seen, "instance 1 got HUP");
    let after = env.api("GET", "/api/programs/w-1", "").json();
    assert_eq!(after["state"], "running");
    assert_eq!(after["pid"].as_i64(), Some(pid), "w-1 was restarted");

    // A glob stops every instance.
    env.ok(&["stop", "w-*"]);
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    for p in list.as_array().unwrap() {
        assert_eq!(p["state"], "stopped", "{p}");
    }
    assert!(!alive(pid as i32));
    let _ = logs.kill();
    let _ = logs.wait();
}

/// Reads lines of `logs -f` until one ends with `want` (prefixed by a name).
fn wait_line(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if seen.iter().any(|l| l.contains('|') && l.ends_with(want)) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("logs -f never printed {want:?}: {seen:?}"),
        }
    }
}
