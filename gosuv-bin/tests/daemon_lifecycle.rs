//! The server's life: background start, a second start refused, stale socket and pidfile
//! after `kill -9`, restart-server, kill, signals (graceful stop, SIGHUP reload),
//! persistence of API changes across restarts, and the foreground mode.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::*;
use serde_json::json;

#[test]
fn a_second_server_is_refused() {
    let env = Env::unix();
    let _srv = env.start();
    let pid = env.pid().unwrap();
    let err = env.fails(&["start-server"]);
    assert!(
        err.contains("already running") && err.contains(&pid.to_string()),
        "{err}"
    );
    let err = env.fails(&["start-server", "-f"]);
    assert!(err.contains("already running"), "{err}");
    // Another config on the same socket is refused too.
    let other = env.path("other.yml");
    std::fs::write(
        &other,
        "server:\n  pidfile: other.pid\n  log:\n    logpath: logs2\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["-c", other.to_str().unwrap(), "start-server", "-f"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another gosuv server is listening"), "{err}");
    assert_eq!(env.api("GET", "/api/status", "").json()["pid"], pid);
}

#[test]
fn stale_socket_and_pidfile_are_replaced() {
    let env = Env::unix();
    let _srv = env.start();
    let pid = env.pid().unwrap();
    signal(pid, libc::SIGKILL);
    eventually(10, "the server to die", || !alive(pid));
    assert!(env.sock().exists(), "kill -9 leaves the socket");
    assert!(
        env.path(".gosuv.pid").exists(),
        "kill -9 leaves the pidfile"
    );
    let err = env.fails(&["status-server"]);
    assert!(err.contains("server is not running"), "{err}");
    let _srv2 = env.start();
    let pid2 = env.pid().unwrap();
    assert_ne!(pid, pid2);
    env.ok(&["status-server"]);
}

#[test]
fn restart_server_waits_for_the_old_one() {
    let env = Env::unix();
    env.programs(
        "- name: auto\n  command: [sleep, '300']\n  start_auto: true\n  start_seconds: 0\n",
    );
    let _srv = env.start();
    env.wait_state("auto", "running");
    let old = env.pid().unwrap();
    let old_prog = env.api("GET", "/api/programs/auto", "").json()["pid"]
        .as_i64()
        .unwrap() as i32;
    let out = env.ok(&["restart-server"]);
    assert!(
        out.contains("server stopped") && out.contains("server started, listening"),
        "{out}"
    );
    assert!(!alive(old) && !alive(old_prog));
    let new = env.pid().unwrap();
    assert_ne!(old, new);
    env.wait_state("auto", "running");
}

#[test]
fn restart_server_starts_a_stopped_server() {
    let env = Env::unix();
    let _guard = Server { env: &env };
    let out = env.ok(&["restart-server"]);
    assert!(
        out.contains("server was not running") && out.contains("server started"),
        "{out}"
    );
}

#[test]
fn kill_is_graceful_and_kill_9_is_not() {
    let env = Env::unix();
    env.programs("- name: p\n  command: [sleep, '300']\n  start_auto: true\n  start_seconds: 0\n");
    let _srv = env.start();
    env.wait_state("p", "running");
    let prog = env.api("GET", "/api/programs/p", "").json()["pid"]
        .as_i64()
        .unwrap() as i32;
    let server = env.pid().unwrap();
    let out = env.ok(&["kill"]);
    assert_eq!(out.trim(), format!("server stopped (pid {server})"));
    assert!(!alive(server));
    assert!(!alive(prog), "SIGTERM stops the programs first");
    assert!(!env.sock().exists());

    let _srv = env.start();
    env.wait_state("p", "running");
    let prog = env.api("GET", "/api/programs/p", "").json()["pid"]
        .as_i64()
        .unwrap() as i32;
    let server = env.pid().unwrap();
    let out = env.ok(&["kill", "-9"]);
    assert!(out.contains("server killed"), "{out}");
    assert!(!alive(server));
    // SIGKILL leaves the program; clean it up here.
    signal(prog, libc::SIGKILL);
    let err = env.fails(&["kill"]);
    assert!(err.contains("not running"), "{err}");
}

#[test]
fn signals_stop_gracefully_and_sighup_reloads() {
    let env = Env::unix();
    let _srv = env.start();
    let server = env.pid().unwrap();
    env.programs(
        "- name: late\n  command: [sleep, '300']\n  start_auto: true\n  start_seconds: 0\n",
    );
    signal(server, libc::SIGHUP);
    eventually(10, "SIGHUP to add the program", || {
        env.api("GET", "/api/programs/late", "").status == 200
    });
    env.wait_state("late", "running");
    let prog = env.api("GET", "/api/programs/late", "").json()["pid"]
        .as_i64()
        .unwrap() as i32;
    signal(server, libc::SIGQUIT);
    eventually(20, "SIGQUIT to stop the server", || !alive(server));
    assert!(!alive(prog));
    assert!(!env.sock().exists());

    let _srv = env.start();
    let server = env.pid().unwrap();
    signal(server, libc::SIGINT);
    eventually(20, "SIGINT to stop the server", || !alive(server));
}

#[test]
fn api_changes_survive_a_restart() {
    let env = Env::unix();
    let srv = env.start();
    let r = env.api(
        "POST",
        "/api/programs",
        &json!({"name": "kept", "command": ["sleep", "300"], "start_auto": true, "start_seconds": 0, "environ": {"X": "1"}}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    env.api(
        "POST",
        "/api/programs",
        &json!({"name": "dropped", "command": "true"}).to_string(),
    );
    env.api("DELETE", "/api/programs/dropped", "");
    srv.shutdown();
    let _srv = env.start();
    let list = env.api("GET", "/api/programs", "").json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kept"]);
    assert_eq!(list[0]["environ"], json!(["X=1"]));
    env.wait_state("kept", "running");
    env.ok(&["conftest"]);
}

#[test]
fn foreground_mode() {
    let env = Env::unix();
    let mut child = env
        .command(&["start-server", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut guard = Kill(child);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("server started, listening unix://"),
        "{line}"
    );
    env.ok(&["status-server"]);
    signal(guard.0.id() as i32, libc::SIGTERM);
    let status = guard.0.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn a_server_that_cannot_start_says_why() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let env = Env::new(Setup {
        http_port: Some(port),
        ..Setup::default()
    });
    let err = env.fails(&["start-server"]);
    assert!(err.contains("the server did not start"), "{err}");
    assert!(
        err.contains(&format!("cannot listen on http://127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!env.sock().exists() || env.fails(&["status-server"]).contains("not running"));
}
