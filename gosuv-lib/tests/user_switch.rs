//! Switching to another user between fork and exec while the host creates threads: the
//! child changes its credentials with raw system calls, so it never waits for a thread that
//! exists only in the parent (glibc's `setgroups`/`setuid` would, and hang for ever).
//!
//! Needs root (it runs programs as `nobody`); elsewhere it says so and checks nothing.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use gosuv::ProgramState::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_as_another_user_never_hang_while_the_host_makes_threads() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED starts_as_another_user_never_hang...: needs root to switch users");
        return;
    }
    let env = Env::new();
    let mut p = quick("as-nobody", "exec sleep 300");
    p.user = Some("nobody".into());
    env.sup.add(p).await.expect("add");
    // The host makes and ends threads all the time, as a busy embedding host does.
    let stop = Arc::new(AtomicBool::new(false));
    let churn: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = std::thread::spawn(|| {}).join();
                }
            })
        })
        .collect();
    for round in 0..40 {
        let st = tokio::time::timeout(Duration::from_secs(20), env.sup.start("as-nobody", WAIT))
            .await
            .unwrap_or_else(|_| panic!("round {round}: the start hung"))
            .expect("start");
        assert_eq!(st.state, Running);
        env.sup.stop("as-nobody", WAIT).await.expect("stop");
    }
    stop.store(true, Ordering::Relaxed);
    for t in churn {
        t.join().expect("churn");
    }
    env.sup.shutdown().await;
}
