//! The server's life: background start, a second start refused, stale socket and pidfile
//! after `kill -9`, restart-server, kill, signals (graceful stop, SIGHUP reload),
//! persistence of API changes across restarts, and the foreground mode; a background start
//! that another process answers for; checks before anything is stopped.

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
fn restart_server_with_programs_waits_for_the_old_one_and_starts_everything_again() {
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
    let out = env.ok(&["restart-server", "--programs"]);
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
        auth: true,
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

/// `restart-server` checks both files and everything `start-server` checks before it stops
/// the running server: a config that could not start changes nothing.
#[test]
fn restart_server_checks_everything_before_it_stops_anything() {
    let env = Env::unix();
    env.programs("- name: p\n  command: [sleep, '300']\n  start_auto: true\n  start_seconds: 0\n");
    let _srv = env.start();
    env.wait_state("p", "running");
    let pid = env.pid().unwrap();
    let good = std::fs::read_to_string(env.conf()).unwrap();
    let port = free_port();
    let bad_configs = [
        // HTTP without auth.
        good.replacen(
            "    enabled: false\n    addr: \"127.0.0.1:1\"",
            &format!("    enabled: true\n    addr: \"127.0.0.1:{port}\""),
            1,
        ),
        // A missing ipfile.
        good.replacen("    ipfile: \"\"", "    ipfile: \"gone.txt\"", 1),
        // An unknown key.
        good.replacen("  log:\n", "  logs:\n", 1),
    ];
    for bad in &bad_configs {
        assert_ne!(bad, &good);
        std::fs::write(env.conf(), bad).unwrap();
        let out = env.run(&["restart-server"]);
        assert_eq!(out.status.code(), Some(1), "{bad}: {out:?}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("server stopped"),
            "{out:?}"
        );
        assert!(alive(pid), "restart-server stopped the server for: {bad}");
    }
    std::fs::write(env.conf(), &good).unwrap();
    env.programs("- name: p\n  command: [sleep, '300']\n  start_seconds: soon\n");
    let err = env.fails(&["restart-server"]);
    assert!(err.contains("programs.yml:3"), "{err}");
    assert!(alive(pid));
    assert_eq!(env.api("GET", "/api/status", "").json()["pid"], pid);
    env.wait_state("p", "running");
}

/// SIGHUP checks config.yml as `start-server` would before it reloads anything: with a
/// config.yml that could not start, the new programs file is not applied.
#[test]
fn sighup_with_a_config_that_could_not_start_changes_nothing() {
    let env = Env::unix();
    let _srv = env.start();
    let server = env.pid().unwrap();
    let good = std::fs::read_to_string(env.conf()).unwrap();
    std::fs::write(
        env.conf(),
        good.replacen("    ipfile: \"\"", "    ipfile: \"gone.txt\"", 1),
    )
    .unwrap();
    env.programs("- name: late\n  command: [sleep, '300']\n  start_seconds: 0\n");
    signal(server, libc::SIGHUP);
    eventually(10, "the failed reload in gosuv.log", || {
        env.server_log().contains("reload failed, nothing changed")
    });
    assert!(
        env.server_log().contains("gone.txt"),
        "{}",
        env.server_log()
    );
    assert_eq!(env.api("GET", "/api/programs/late", "").status, 404);
    // Fixed, the next SIGHUP applies it.
    std::fs::write(env.conf(), &good).unwrap();
    signal(server, libc::SIGHUP);
    eventually(10, "SIGHUP to add the program", || {
        env.api("GET", "/api/programs/late", "").status == 200
    });
}

/// `start-server` says `server started` only when the server it started answers. Here
/// another process (this test) answers on the socket path as a gosuv would, and the server
/// that was started cannot bind it: exit 1, with why.
#[test]
fn a_start_that_another_process_answers_for_fails() {
    let env = Env::unix();
    let impostor = std::os::unix::net::UnixListener::bind(env.sock()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answering = std::thread::spawn({
        let stop = stop.clone();
        move || {
            impostor.set_nonblocking(true).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match impostor.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                            .unwrap();
                        let mut buf = [0u8; 4096];
                        let _ = std::io::Read::read(&mut s, &mut buf);
                        let body =
                            r#"{"state":"running","pid":1,"listening":["unix://elsewhere"]}"#;
                        let _ = std::io::Write::write_all(
                            &mut s,
                            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
                        );
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
                }
            }
        }
    });
    let out = env.run(&["start-server"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    answering.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("server started"), "{stdout}");
    assert!(
        stderr.contains("the server did not start") && stderr.contains("pid 1"),
        "{stderr}"
    );
}

/// Two `start-server` at once on the same config: one starts the server, the other says it
/// lost the race (exit 1), never `server started` for a server it did not start.
#[test]
fn of_two_concurrent_starts_one_wins_and_the_other_says_so() {
    let env = Env::unix();
    let _guard = Server { env: &env };
    let children: Vec<_> = (0..2)
        .map(|_| {
            env.command(&["start-server"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let won: Vec<_> = outs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(won.len(), 1, "{outs:?}");
    let lost = outs.iter().find(|o| !o.status.success()).unwrap();
    assert_eq!(lost.status.code(), Some(1));
    assert!(
        !String::from_utf8_lossy(&lost.stdout).contains("server started"),
        "{lost:?}"
    );
    assert!(
        String::from_utf8_lossy(&lost.stderr).contains("already running"),
        "{lost:?}"
    );
}
