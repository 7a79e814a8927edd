//! Crash recovery without duplicates: a server killed with SIGKILL leaves its programs
//! running (nothing stops them); the next `start-server` takes over those whose config is
//! unchanged and stops the others, from the groups file beside the pidfile, before it starts
//! its own, so each program runs once. A recorded group whose number now belongs to another
//! process is never signalled.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

const NAMES: [&str; 5] = ["alpha", "bravo", "charlie", "delta", "stubborn"];

/// Five programs, each a shell with a child in its group; `stubborn` ignores SIGTERM, so
/// only SIGKILL after its `stop_timeout` stops it. `version` changes their config.
fn programs(mark: &str, version: u32) -> String {
    let mut y = String::new();
    for name in NAMES {
        let script = if name == "stubborn" {
            "trap '' TERM; sleep 100000 & wait; wait"
        } else {
            "sleep 100000 & wait"
        };
        y.push_str(&format!(
            "- name: {name}\n  command: [/bin/sh, -c, \"{script}\"]\n  start_auto: true\n  start_seconds: 0\n  stop_timeout: 1\n  environ: [\"{MARK_VAR}={mark}\", \"PROGRAM={name}\", \"VERSION={version}\"]\n"
        ));
    }
    y
}

fn api_pids(env: &Env) -> BTreeMap<String, i32> {
    let list = env.api("GET", "/api/programs?stats=false", "").json();
    list.as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["pid"].as_i64()? as i32)))
        .collect()
}

fn wait_all_running(env: &Env) {
    for name in NAMES {
        env.wait_state(name, "running");
    }
}

fn groups_file(env: &Env) -> Value {
    std::fs::read_to_string(env.path(".gosuv.pid.groups"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

#[test]
fn kill_9_then_start_again_runs_exactly_one_instance_of_each() {
    let env = Env::unix();
    let mark = env.dir.path().display().to_string();
    let _cleanup = KillMarked(mark.clone());
    env.programs(&programs(&mark, 1));
    let srv = env.start();
    wait_all_running(&env);
    let first = api_pids(&env);
    eventually(10, "the groups file to list the 5 groups", || {
        groups_file(&env)["groups"]
            .as_array()
            .is_some_and(|g| g.len() == NAMES.len())
    });
    // Killed, then started again with the same config: every program is taken over, one
    // instance each, the same processes.
    let server = env.pid().unwrap();
    signal(server, libc::SIGKILL);
    eventually(10, "the server to die", || !alive(server));
    std::mem::forget(srv);
    let srv = env.start();
    wait_all_running(&env);
    assert_eq!(api_pids(&env), first, "taken over, not started again");
    let now = groups_by_program(&mark);
    for name in NAMES {
        assert_eq!(now[name], vec![first[name]], "{name}: exactly one instance");
    }
    let old = api_pids(&env);
    assert_eq!(old.len(), NAMES.len());
    // The groups file lists every program's group, with its leader's start time.
    eventually(10, "the groups file to list the 5 groups", || {
        groups_file(&env)["groups"]
            .as_array()
            .is_some_and(|g| g.len() == NAMES.len())
    });
    for g in groups_file(&env)["groups"].as_array().unwrap() {
        let pgid = g["pgid"].as_i64().unwrap() as i32;
        assert_eq!(old[g["program"].as_str().unwrap()], pgid);
        assert_eq!(g["start_time"].as_u64(), stat(pgid).map(|s| s.start_time));
    }

    let server = env.pid().unwrap();
    signal(server, libc::SIGKILL);
    eventually(10, "the server to die", || !alive(server));
    std::mem::forget(srv);
    // Their config changes while no server runs: none can be taken over.
    env.programs(&programs(&mark, 2));
    // Nothing stopped the programs: without recovery they would now run twice.
    let left = groups_by_program(&mark);
    assert_eq!(left.len(), NAMES.len(), "{left:?}");
    for (name, pid) in &old {
        assert_eq!(left[name], vec![*pid], "{name}");
    }

    let _srv = env.start();
    // start-server answers only after the leftovers are gone, and before any new start.
    for (name, pid) in &old {
        assert!(!alive(*pid), "the old {name} (pid {pid}) still runs");
    }
    wait_all_running(&env);
    let new = api_pids(&env);
    let now = groups_by_program(&mark);
    assert_eq!(now.len(), NAMES.len(), "{now:?}");
    for name in NAMES {
        assert_eq!(
            now[name],
            vec![new[name]],
            "{name}: exactly one instance, the new server's"
        );
        assert_ne!(new[name], old[name]);
        // The leader and its child: nothing of the old group is left.
        let procs = marked(&mark)
            .into_iter()
            .filter(|(_, s)| s.pgrp == new[name])
            .count();
        assert_eq!(procs, 2, "{name}");
    }
    let log = std::fs::read_to_string(env.path("logs/gosuv.log")).unwrap();
    assert!(log.contains("did not shut down cleanly"), "{log}");
    assert!(log.contains("stopped 5 leftover process groups"), "{log}");
    assert!(
        log.contains("the leftover group of stubborn outlived its stop_timeout: SIGKILL"),
        "{log}"
    );
    // A clean shutdown removes the file: the next start has nothing to recover.
    drop(_srv);
    assert!(!env.path(".gosuv.pid.groups").exists());
    assert!(marked(&mark).is_empty());
}

#[test]
fn a_recycled_pid_or_an_old_boot_is_never_signalled() {
    let env = Env::unix();
    // A process that is not ours, in a group of its own, under a number the file lists.
    let mut stranger = Command::new("sleep");
    stranger.arg("100000").stdout(Stdio::null());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        stranger.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut stranger = Stranger(stranger.spawn().unwrap());
    let pid = stranger.0.id() as i32;
    let started = stat(pid).unwrap().start_time;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let record = |start_time: u64| json!({"pgid": pid, "program": "web", "start_time": start_time, "stop_signal": 9, "stop_timeout": 1});
    // The same number, recorded with another start time: a recycled pid.
    std::fs::write(
        env.path(".gosuv.pid.groups"),
        json!({"boot_id": boot.trim(), "server_pid": 1, "groups": [record(started.saturating_sub(7))]})
            .to_string(),
    )
    .unwrap();
    let srv = env.start();
    assert!(
        alive(pid),
        "a process that merely reuses a recorded pid was killed"
    );
    let log = std::fs::read_to_string(env.path("logs/gosuv.log")).unwrap();
    assert!(
        log.contains("belongs to another process: left alone"),
        "{log}"
    );
    srv.shutdown();

    // The right start time, but written before a reboot: ignored as well.
    std::fs::write(
        env.path(".gosuv.pid.groups"),
        json!({"boot_id": "another-boot", "server_pid": 1, "groups": [record(started)]})
            .to_string(),
    )
    .unwrap();
    let srv = env.start();
    assert!(alive(pid), "a group from another boot was signalled");
    // The running server's own file replaced it: it has no group yet.
    eventually(5, "the server's own groups file", || {
        groups_file(&env)["groups"] == json!([])
    });
    srv.shutdown();

    // The control: the same record on this boot is ours, and is stopped.
    std::fs::write(
        env.path(".gosuv.pid.groups"),
        json!({"boot_id": boot.trim(), "server_pid": 1, "groups": [record(started)]}).to_string(),
    )
    .unwrap();
    let srv = env.start();
    let status = stranger.0.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    srv.shutdown();
}

/// A process the test started; killed if the test fails before it is waited for.
struct Stranger(std::process::Child);

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_child_that_left_the_group_does_not_run_twice_after_kill_9() {
    let env = Env::unix();
    let mark = env.dir.path().display().to_string();
    let _cleanup = KillMarked(mark.clone());
    // The program's child leaves its process group and session (`setsid`), as a daemon's
    // does.
    env.programs(&format!(
        "- name: escaper\n  command: [/bin/sh, -c, \"setsid sleep 100000 & exec sleep 100001\"]\n  start_auto: true\n  start_seconds: 0\n  stop_timeout: 1\n  environ: [\"{MARK_VAR}={mark}\", \"PROGRAM=escaper\"]\n"
    ));
    let srv = env.start();
    env.wait_state("escaper", "running");
    eventually(10, "the program and its child", || marked(&mark).len() == 2);
    let server = env.pid().unwrap();
    signal(server, libc::SIGKILL);
    eventually(10, "the server to die", || !alive(server));
    std::mem::forget(srv);
    let _srv = env.start();
    env.wait_state("escaper", "running");
    // The new server's program and its child, nothing of the old one (start-server answers
    // only once the leftovers are gone).
    let new_leader = env.api("GET", "/api/programs/escaper", "").json()["pid"]
        .as_i64()
        .unwrap() as i32;
    eventually(10, "exactly one instance", || {
        let now = marked(&mark);
        now.len() == 2
            && now
                .iter()
                .all(|(pid, st)| *pid == new_leader || st.ppid == new_leader)
    });
    drop(_srv);
    eventually(10, "nothing left after shutdown", || {
        marked(&mark).is_empty()
    });
}
