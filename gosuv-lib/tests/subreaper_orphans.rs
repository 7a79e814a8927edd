//! An embedding host with the subreaper on: the orphans a run leaves (killed with it, and
//! reparented to the host) are reaped even when their run, or the whole supervisor, ends
//! before the reaper got to them. They were left zombies for ever when gosuv forgot the
//! run's session (or the supervisor's cgroup) first.
//!
//! A test file of its own: it asserts that this process has no zombie child at all.

mod common;

use std::time::Duration;

use common::*;
use gosuv::CgroupMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_killed_with_their_run_are_reaped_whenever_the_run_ends() {
    for mode in [CgroupMode::Off, CgroupMode::Auto] {
        for round in 0..10 {
            let env = Env::with(|o| o.subreaper = true);
            // Five children of the leader, which die with it and are reparented here.
            let mut p = quick(
                "parent",
                "for i in 1 2 3 4 5; do sleep 300 & done; exec sleep 300",
            );
            p.cgroup = mode;
            p.stop_timeout = 5;
            env.sup.add(p).await.expect("add");
            env.sup.start("parent", WAIT).await.expect("start");
            // The supervisor ends at once: the stop and the shutdown race the reaper.
            env.sup.shutdown().await;
            drop(env);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !zombie_children().is_empty() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{mode:?} round {round}: zombies left {:?}",
                    zombie_children()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}
