//! The server's reaper (every orphan is its own: `reap_every_orphan`) keeps reaping while a
//! program's leader is kept unreaped for a long stop: a zombie it may not take yet does not
//! hide the others. (A peek at the first zombie saw only that leader, and orphans piled up.)
//!
//! One test in this file: the reaping rule is process-wide.

mod common;

use std::time::Duration;

use common::*;
use gosuv::ProgramState::*;

#[test]
fn orphans_are_reaped_while_a_leader_waits_for_its_group() {
    // As the server does: the reaper's thread exists before the runtime's workers, which
    // then fork the leaders (the kernel looks at the children of the threads in that order).
    gosuv::reap_every_orphan();
    gosuv::enable_subreaper().expect("subreaper");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(starved());
}

async fn starved() {
    let env = Env::with(|o| o.subreaper = true);
    // `slow`: the leader ends on TERM, its child ignores TERM: its stop lasts stop_timeout,
    // with the leader kept a zombie until then.
    let mut slow = quick(
        "slow",
        "sh -c \"trap '' TERM; echo ready; while :; do sleep 0.05; done\" & trap 'exit 0' TERM; while :; do sleep 0.05; done",
    );
    slow.stop_timeout = 5;
    env.sup.add(slow).await.expect("add");
    // `orphaner`: makes a short-lived orphan every 20 ms, reparented to this process.
    env.sup
        .add(quick(
            "orphaner",
            "while :; do sh -c 'sleep 0.01 &'; sleep 0.02; done",
        ))
        .await
        .expect("add");
    env.sup.start("slow", WAIT).await.expect("start");
    wait_file_contains(&env.log("slow", "stdout"), "ready", 5);
    env.sup.start("orphaner", WAIT).await.expect("start");
    let st = env.sup.stop("slow", None).await.expect("stop");
    assert_eq!(st.state, Stopping);
    // For 3 s of the slow stop, orphans come and go: zombies never pile up.
    let mut worst = 0;
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        worst = worst.max(zombie_children().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.sup.status("slow").expect("status").state, Stopping);
    assert!(
        worst <= 12,
        "{worst} zombie children at once: the reaper was starved by the stopping leader"
    );
    env.sup.shutdown().await;
    poll_async(10, "no zombie children", || zombie_children().is_empty()).await;
}
