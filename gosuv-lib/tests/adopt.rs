//! Taking over a run another process left running (`Supervisor::add_all_adopting`): what a
//! server does with the programs of the server before it. The run here is started by the
//! test, not a child of it (as after a server's death), with a pipe the test made.

mod common;

use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime};

use common::*;
use gosuv::{Adoption, ProgramState::*};

/// A program that counts, one numbered line every 10 ms, its own session leader, not a
/// child of this process; its stdout is a pipe whose read end is returned.
fn orphan_counter(dir: &std::path::Path, marker: &str) -> (u32, u64, OwnedFd) {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let pidfile = dir.join(format!("{marker}.pid"));
    let script = format!(
        "setsid sh -c 'echo $$ > {p}; i=0; while :; do i=$((i+1)); echo line $i; sleep 0.01; done' {marker} &",
        p = pidfile.display()
    );
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::from(write))
        .stdin(std::process::Stdio::null())
        .status()
        .expect("sh");
    assert!(status.success());
    let mut pid = 0;
    poll(5, "the counter's pid", || {
        pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        pid != 0
    });
    let start = gosuv::procfs::ProcStat::read(pid)
        .expect("the counter runs")
        .start_time;
    (pid, start, read)
}

/// The numbers of `line N` lines of a log, checked to run 1, 2, 3 ... with none missing
/// or twice; returns the last.
fn contiguous(text: &str) -> u64 {
    let mut expect = 1;
    for l in text.lines() {
        let n: u64 = l
            .strip_prefix("line ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a counter line: {l:?}"));
        assert_eq!(n, expect, "line {expect} missing or out of order");
        expect += 1;
    }
    expect - 1
}

/// The adoption of a run with no cgroup whose stdout (and stderr) is `read`.
fn adoption(
    program: &str,
    pid: u32,
    start_time: u64,
    read: OwnedFd,
    started_at: SystemTime,
    restarts: u64,
) -> Adoption {
    Adoption {
        program: program.into(),
        pid,
        start_time,
        stdout: read,
        stderr: None,
        cgroup: None,
        started_at,
        restarts,
    }
}

fn counter_config(name: &str) -> gosuv::ProgramConfig {
    let mut p = quick(name, "exit 0");
    p.redirect_stderr = true;
    p.stop_timeout = 5;
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_run_keeps_its_pid_uptime_restarts_and_every_line() {
    let env = Env::new();
    let marker = unique_marker();
    let (pid, start, read) = orphan_counter(env.path(), &marker);
    assert_ne!(
        gosuv::procfs::ProcStat::read(pid).map(|s| s.ppid),
        Some(std::process::id()),
        "the counter must not be this process's child"
    );
    let started_at = SystemTime::now() - Duration::from_secs(100);
    let mut events = env.sup.subscribe();
    let (failed, refused) = env
        .sup
        .add_all_adopting(
            vec![counter_config("counter")],
            vec![adoption("counter", pid, start, read, started_at, 3)],
            &[],
        )
        .await
        .expect("add");
    assert!(
        failed.is_empty() && refused.is_empty(),
        "{failed:?} {refused:?}"
    );
    let st = env.sup.status("counter").expect("status");
    assert_eq!(st.state, Running);
    assert_eq!(st.pid, Some(pid));
    assert_eq!(st.restarts, 3);
    let up = st.started_at.expect("started");
    assert!(
        up <= started_at + Duration::from_secs(1),
        "uptime not kept: started {up:?}, recorded {started_at:?}"
    );
    let seen = events_until(&mut events, "counter", Running, 5).await;
    assert_eq!(pairs(&seen), vec![(Stopped, Running)]);
    assert!(
        seen[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("adopted")),
        "{:?}",
        seen[0].reason
    );
    // What it wrote before, and goes on writing, reaches the log in order.
    let log = env.log("counter", "stdout");
    wait_file_contains(&log, "line 60\n", 10);
    let st = env.sup.stop("counter", WAIT).await.expect("stop");
    assert_eq!(st.state, Stopped);
    assert!(proc_dead(pid), "{pid} outlived the stop");
    let last = contiguous(&std::fs::read_to_string(&log).expect("log"));
    assert!(last >= 60, "{last}");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_run_that_exits_has_an_unknown_status_and_is_restarted() {
    let env = Env::new();
    let marker = unique_marker();
    let (pid, start, read) = orphan_counter(env.path(), &marker);
    let mut events = env.sup.subscribe();
    let mut config = counter_config("again");
    config.command = gosuv::Command::Shell("echo fresh; sleep 60".into());
    env.sup
        .add_all_adopting(
            vec![config],
            vec![adoption("again", pid, start, read, SystemTime::now(), 0)],
            &[],
        )
        .await
        .expect("add");
    events_until(&mut events, "again", Running, 5).await;
    // SAFETY: kill(2) only sends a signal.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let seen = events_until(&mut events, "again", Running, 10).await;
    let exit = seen
        .iter()
        .find(|e| e.from == Running)
        .expect("the adopted run's exit");
    assert_eq!((exit.exit_code, exit.exit_signal), (None, None));
    assert!(
        exit.reason
            .as_deref()
            .is_some_and(|r| r.contains("unknown status")),
        "{:?}",
        exit.reason
    );
    let st = env.sup.status("again").expect("status");
    assert_eq!((st.exit_code, st.exit_signal), (None, None));
    assert_ne!(st.pid, Some(pid));
    assert_eq!(st.restarts, 1);
    wait_file_contains(&env.log("again", "stdout"), "fresh", 5);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_is_not_the_recorded_one_is_not_adopted() {
    let env = Env::new();
    let marker = unique_marker();
    let (pid, start, read) = orphan_counter(env.path(), &marker);
    let (failed, refused) = env
        .sup
        .add_all_adopting(
            vec![counter_config("other")],
            // Another start time: a process that got the recorded number since.
            vec![adoption(
                "other",
                pid,
                start + 1,
                read,
                SystemTime::now(),
                0,
            )],
            &[],
        )
        .await
        .expect("add");
    assert!(failed.is_empty());
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].1.contains("not the one"), "{refused:?}");
    let st = env.sup.status("other").expect("status");
    assert_eq!(st.state, Stopped);
    assert!(!proc_dead(pid), "a stranger's process was touched");
    // SAFETY: kill(2) only sends a signal.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    env.sup.shutdown().await;
}
