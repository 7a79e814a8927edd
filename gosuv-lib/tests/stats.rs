//! CPU % and RSS of a program's whole process tree.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_and_memory_of_the_tree() {
    let env = Env::new();
    // A busy child under an idle leader: the tree's CPU must show the child's work.
    let cmd = "sh -c 'while :; do :; done' & echo ready; wait";
    env.sup.add(quick("busy", cmd)).await.expect("add");
    env.sup
        .add(quick("idle", "exec sleep 30"))
        .await
        .expect("add");
    env.sup.start_all(WAIT).await;
    wait_file_contains(&env.log("busy", "stdout"), "ready", 5);
    // First sample: the average since start; take a second one over a known interval.
    env.sup.stats("busy").await.expect("first");
    std::thread::sleep(gosuv::STATS_MAX_AGE + std::time::Duration::from_millis(100));
    let busy = env.sup.stats("busy").await.expect("stats");
    assert!(busy.pids.len() >= 2, "{busy:?}");
    assert!(
        busy.cpu_percent > 40.0,
        "busy tree shows {}% CPU",
        busy.cpu_percent
    );
    assert!(busy.rss_bytes > 100 * 1024, "{busy:?}");
    let idle = env.sup.stats("idle").await.expect("stats");
    assert_eq!(idle.pids.len(), 1);
    assert!(idle.cpu_percent < 10.0, "{idle:?}");
    let all = env.sup.stats_all().await;
    assert_eq!(all.len(), 2);
    env.sup.stop("busy", WAIT).await.expect("stop");
    assert_eq!(
        env.sup.stats("busy").await.expect("stopped"),
        gosuv::ProcessStats::default()
    );
    env.sup.shutdown().await;
}
