//! Writes to the guardian never block the supervisor: with the guardian stopped (SIGSTOP,
//! so its pipe fills and every write would block), programs keep starting and stopping.
//!
//! One test in this file: the guardian is one per process.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gosuv::{Autorestart, ProgramState::*, Supervisor, SupervisorOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// This process's guardian: its child whose command line names `gosuv-guardian`.
fn guardian_pid() -> Option<u32> {
    children_of(std::process::id()).into_iter().find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("gosuv-guardian"))
            .unwrap_or(false)
    })
}

/// Lets the guardian run again however the test ends, so that nothing stays blocked.
struct Continue(u32);

impl Drop for Continue {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0 as i32), Signal::SIGCONT);
    }
}

#[test]
fn a_stopped_guardian_does_not_block_the_supervisor() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tmp");
    let mut opts = SupervisorOptions::new(dir.path());
    opts.kill_on_parent_death = true;
    opts.subreaper = false;
    let sup = rt
        .block_on(async { Supervisor::new(opts) })
        .expect("supervisor");
    rt.block_on(async {
        sup.add(quick("first", "exec sleep 300"))
            .await
            .expect("add");
        sup.start("first", WAIT).await.expect("start");
    });
    let guardian = guardian_pid().expect("the guardian runs");
    kill(Pid::from_raw(guardian as i32), Signal::SIGSTOP).expect("stop the guardian");
    let _continue = Continue(guardian);

    // Four crash loops: each run tells the guardian of its start and its end. A pipe holds
    // 64 KiB, about 4,000 runs' worth of lines.
    rt.block_on(async {
        for i in 0..4 {
            let mut p = quick(&format!("loop{i}"), "exit 0");
            p.autorestart = Autorestart::Always;
            // Restarted at once for ever: no crash-loop backoff (start_limit) slows them.
            p.start_limit.burst = 0;
            sup.add(p).await.expect("add");
            sup.start(&format!("loop{i}"), None).await.expect("start");
        }
    });
    // Watched from this thread, not the runtime's: a blocked runtime must fail the test, not
    // hang it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = || -> u64 {
        (0..4)
            .map(|i| sup.status(&format!("loop{i}")).map_or(0, |s| s.restarts))
            .sum()
    };
    while runs() < 10_000 {
        assert!(
            Instant::now() < deadline,
            "the crash loops stalled at {} runs: the supervisor blocked on the guardian",
            runs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Commands are still answered.
    let (tx, rx) = std::sync::mpsc::channel();
    let s = sup.clone();
    rt.spawn(async move {
        let _ = tx.send(s.stop("first", WAIT).await);
    });
    let st = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a stop is answered")
        .expect("stop");
    assert_eq!(st.state, Stopped);
    drop(_continue);
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), sup.shutdown())
            .await
            .expect("shutdown");
    });
}
