//! A change whose caller stops waiting (a dropped future: a client that went away, a
//! timeout around the call) is still made whole: a removal that stopped the program also
//! forgets it, so the name is free and the program is not left listed with no task.

mod common;

use std::time::Duration;

use common::*;

/// A program whose stop takes about half a second (it traps TERM), started, and waited for
/// until its trap is set (a TERM before that would end it at once).
async fn started_slow(env: &Env, name: &str) {
    let ready = env.path().join(format!("{name}.trapped"));
    let p = quick(
        name,
        &format!(
            "trap 'sleep 0.5; exit 0' TERM; touch '{}'; while :; do sleep 0.05; done",
            ready.display()
        ),
    );
    env.sup.add(p).await.expect("add");
    env.sup.start(name, WAIT).await.expect("start");
    poll_async(10, "the trap set", || ready.exists()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_whose_caller_goes_away_is_made_all_the_same() {
    let env = Env::new();
    started_slow(&env, "slow").await;
    let cut = tokio::time::timeout(Duration::from_millis(100), env.sup.remove("slow")).await;
    assert!(cut.is_err(), "the stop takes longer than the wait: {cut:?}");
    poll_async(10, "the program forgotten", || !env.sup.has_program("slow")).await;
    // The name is free again, for a program that runs.
    env.sup
        .add(quick("slow", "exec sleep 300"))
        .await
        .expect("the name is free");
    env.sup.start("slow", WAIT).await.expect("start");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_whose_caller_goes_away_is_made_all_the_same() {
    let env = Env::new();
    started_slow(&env, "slow").await;
    let kept = quick("kept", "exec sleep 300");
    env.sup.add(kept.clone()).await.expect("add kept");
    let cut = tokio::time::timeout(Duration::from_millis(100), env.sup.reload(vec![kept])).await;
    assert!(cut.is_err(), "the stop takes longer than the wait: {cut:?}");
    poll_async(10, "the program forgotten", || !env.sup.has_program("slow")).await;
    assert_eq!(env.sup.names(), vec!["kept".to_string()]);
    env.sup.shutdown().await;
}
