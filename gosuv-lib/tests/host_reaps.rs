//! An embedding host that reaps every child itself (a C `SIGCHLD` handler looping on
//! `waitpid(-1)`, Python's `os.wait()`) must not make gosuv lose an exit: a program killed
//! behind gosuv's back is restarted at once, and a stop completes.
//!
//! One test in this file: the host's reaping loop takes every child of this process, so no
//! other test may share it.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use gosuv::ProgramState::*;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// Reaps every child of this process as soon as it exits, as a careless host does, for as
/// long as the test runs; counts what it reaped.
fn host_reaper(reaped: Arc<AtomicU64>) {
    std::thread::spawn(move || loop {
        // Blocking, as a host thread that does nothing else would: the kernel wakes it
        // the moment a child exits.
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::StillAlive) | Err(_) => std::thread::sleep(Duration::from_millis(1)),
            Ok(_) => {
                reaped.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_reaps_every_child_loses_no_exit() {
    let env = Env::new();
    let reaped = Arc::new(AtomicU64::new(0));
    host_reaper(reaped.clone());
    let mut failures = Vec::new();

    // A stop completes although the host takes the leader's exit.
    env.sup
        .add(quick("stoppable", "exec sleep 300"))
        .await
        .expect("add");
    env.sup.start("stoppable", WAIT).await.expect("start");
    match env.sup.stop("stoppable", WAIT).await {
        Ok(st) if st.state == Stopped => {}
        other => failures.push(format!("stop did not complete: {other:?}")),
    }

    // A program killed behind gosuv's back is restarted, every time: owned by a cgroup
    // (where this machine allows) and by its process group.
    for (name, cgroup) in [
        ("victim", gosuv::CgroupMode::Auto),
        ("plain", gosuv::CgroupMode::Off),
    ] {
        let mut p = quick(name, "exec sleep 300");
        p.cgroup = cgroup;
        env.sup.add(p).await.expect("add");
        failures.extend(kill_five_times(&env, name).await);
    }
    let shutdown = tokio::time::timeout(Duration::from_secs(20), env.sup.shutdown()).await;
    if shutdown.is_err() {
        failures.push("shutdown hung".into());
    }
    assert!(
        reaped.load(Ordering::SeqCst) > 0,
        "the host reaped nothing: the test tested nothing"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Starts `name`, SIGKILLs it five times (each time it must come back with a new pid), then
/// stops it; returns what went wrong.
async fn kill_five_times(env: &Env, name: &str) -> Vec<String> {
    let mut failures = Vec::new();
    {
        let mut pid = env
            .sup
            .start(name, WAIT)
            .await
            .expect("start")
            .pid
            .expect("pid");
        let mut took = Vec::new();
        for round in 0..5 {
            let t0 = Instant::now();
            kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
            let deadline = t0 + Duration::from_secs(5);
            let new_pid = loop {
                let st = env.sup.status(name).expect("status");
                match st.pid {
                    Some(p) if p != pid && st.state == Running && pid_exists(p) => break Some(p),
                    _ if Instant::now() > deadline => break None,
                    _ => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            };
            match new_pid {
                Some(p) => {
                    took.push(t0.elapsed());
                    pid = p;
                }
                None => {
                    failures.push(format!(
                        "{name}, round {round}: not restarted 5 s after SIGKILL: {:?}",
                        env.sup.status(name)
                    ));
                    break;
                }
            }
        }
        if took.len() == 5 {
            took.sort();
            println!("{name}: restart after SIGKILL with a reaping host: {took:?}");
            if took[2] > Duration::from_millis(100) {
                failures.push(format!(
                    "{name}: median restart {:?} is over 100 ms",
                    took[2]
                ));
            }
        }
        match env.sup.stop(name, WAIT).await {
            Ok(st) if st.state == Stopped => {}
            other => failures.push(format!(
                "{name}: stop after the kills did not complete: {other:?}"
            )),
        }
    }
    failures
}
