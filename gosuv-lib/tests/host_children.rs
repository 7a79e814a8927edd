//! gosuv never reaps a child the host started itself, even one in a new session (Python's
//! `start_new_session=True`, `setsid`): the host's `wait()` gets its real exit status.
//!
//! One test in this file: the subreaper setting is process-wide.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

use common::*;
use gosuv::{Supervisor, SupervisorOptions};

/// Starts `sh -c 'echo hi; exit 3'` in a session of its own, reads its output to the end,
/// and only then waits for it (as `subprocess.run(capture_output=True)` does), `rounds`
/// times. Returns what went wrong.
fn run_host_children(rounds: usize) -> Vec<String> {
    let mut wrong = Vec::new();
    for _ in 0..rounds {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hi; exit 3"])
            .stdout(std::process::Stdio::piped());
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut out)
            .expect("read");
        // The host waits once the child has ended (a zombie), a moment after: whatever
        // takes it in between steals its status.
        let pid = child.id();
        poll(5, "the child's end", || {
            proc_state(pid) != Some('S') && proc_state(pid) != Some('R')
        });
        std::thread::sleep(std::time::Duration::from_millis(5));
        match child.wait() {
            Ok(st) if st.code() == Some(3) => {}
            other => wrong.push(format!("{other:?}")),
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_children_in_new_sessions_are_left_to_the_host() {
    // With the default options.
    let env = Env::new();
    env.sup
        .add(quick("busy", "exec sleep 300"))
        .await
        .expect("add");
    env.sup.start("busy", WAIT).await.expect("start");
    let wrong = run_host_children(50);
    assert!(
        wrong.is_empty(),
        "default options: the host's own children were taken: {wrong:?}"
    );
    env.sup.shutdown().await;

    // With the subreaper on: gosuv reaps the orphans of its programs (one makes a
    // short-lived orphan every 10 ms, reparented to this process), and only those.
    let dir = tempfile::tempdir().expect("tmp");
    let mut opts = SupervisorOptions::new(dir.path());
    opts.subreaper = true;
    let sup = Supervisor::new(opts).expect("supervisor");
    sup.add(quick(
        "orphaner",
        "while :; do sh -c 'sleep 0.005 &'; sleep 0.01; done",
    ))
    .await
    .expect("add");
    sup.start("orphaner", WAIT).await.expect("start");
    let wrong = run_host_children(50);
    assert!(
        wrong.is_empty(),
        "subreaper on: the host's own children were taken: {wrong:?}"
    );
    // Orphans came and went meanwhile; none is left a zombie for long.
    poll_async(5, "the orphans reaped", || zombie_children().len() <= 2).await;
    sup.shutdown().await;
    poll_async(5, "no zombie left", || zombie_children().is_empty()).await;
}
