//! `reload` adds, updates and removes by name, touches nothing unchanged, and changes
//! nothing when the new list is invalid. Also `update` on its own.

mod common;

use common::*;
use gosuv::{Error, ProgramState::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reports_and_applies_the_diff() {
    let env = Env::new();
    for n in ["keep", "change", "drop"] {
        env.sup.add(quick(n, "exec sleep 30")).await.expect("add");
    }
    let started = env.sup.start_all(WAIT).await;
    let pid = |name: &str| {
        started
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, r)| r.as_ref().ok()?.pid)
            .expect("pid")
    };
    let (keep_pid, change_pid, drop_pid) = (pid("keep"), pid("change"), pid("drop"));

    let mut changed = quick("change", "exec sleep 31");
    changed.environ = vec![("X".into(), "1".into())];
    let mut added = quick("new", "exec sleep 30");
    added.start_auto = true;
    let report = env
        .sup
        .reload(vec![quick("keep", "exec sleep 30"), changed.clone(), added])
        .await
        .expect("reload");
    assert_eq!(report.added, vec!["new"]);
    assert_eq!(report.changed, vec!["change"]);
    assert_eq!(report.removed, vec!["drop"]);

    assert_eq!(env.sup.names(), vec!["change", "keep", "new"]);
    let keep = env.sup.status("keep").expect("keep");
    assert_eq!(
        (keep.state, keep.pid),
        (Running, Some(keep_pid)),
        "unchanged was touched"
    );
    assert!(!pid_exists(drop_pid), "removed program still runs");
    // The changed program was running: restarted with its new config.
    let ch = env
        .sup
        .wait_for("change", Running, std::time::Duration::from_secs(5))
        .await
        .expect("running");
    assert_ne!(ch.pid, Some(change_pid));
    assert!(!pid_exists(change_pid));
    assert_eq!(env.sup.config("change").expect("cfg"), changed);
    // start_auto programs start when reload adds them.
    env.sup
        .wait_for("new", Running, std::time::Duration::from_secs(5))
        .await
        .expect("autostarted");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_list_changes_nothing() {
    let env = Env::new();
    env.sup.add(quick("a", "exec sleep 30")).await.expect("add");
    let pid = env.sup.start("a", WAIT).await.expect("start").pid;
    let bad = vec![
        quick("b", "sleep 1"),
        quick("b", "sleep 2"),
        quick("../c", "sleep 1"),
    ];
    let err = env.sup.reload(bad).await.expect_err("invalid");
    let msg = err.to_string();
    assert!(matches!(err, Error::Config(_)));
    assert!(msg.contains("duplicate program name 'b'"), "{msg}");
    assert!(msg.contains("invalid name \"../c\""), "{msg}");
    assert_eq!(env.sup.names(), vec!["a"]);
    assert_eq!(env.sup.status("a").expect("a").pid, pid);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_restarts_only_when_running_and_changed() {
    let env = Env::new();
    let p = quick("u", "exec sleep 30");
    env.sup.add(p.clone()).await.expect("add");
    // Stopped: the config is replaced, nothing starts.
    let mut p2 = p.clone();
    p2.stop_timeout = 3;
    assert!(!env.sup.update(p2.clone()).await.expect("update"));
    assert_eq!(env.sup.status("u").expect("s").state, Stopped);
    assert_eq!(env.sup.config("u").expect("c").stop_timeout, 3);
    let pid = env.sup.start("u", WAIT).await.expect("start").pid;
    // Running and unchanged: nothing happens.
    assert!(!env.sup.update(p2.clone()).await.expect("same"));
    assert_eq!(env.sup.status("u").expect("s").pid, pid);
    // Running and changed: restarted.
    let mut p3 = p2.clone();
    p3.command = gosuv::Command::Shell("exec sleep 29".into());
    assert!(env.sup.update(p3).await.expect("changed"));
    let st = env
        .sup
        .wait_for("u", Running, std::time::Duration::from_secs(5))
        .await
        .expect("back");
    assert_ne!(st.pid, pid);
    assert!(matches!(
        env.sup.update(quick("ghost", "x")).await,
        Err(Error::NotFound(_))
    ));
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_stops_first() {
    let env = Env::new();
    env.sup.add(quick("r", "exec sleep 30")).await.expect("add");
    let pid = env
        .sup
        .start("r", WAIT)
        .await
        .expect("start")
        .pid
        .expect("pid");
    env.sup.remove("r").await.expect("remove");
    assert!(!pid_exists(pid));
    assert!(env.sup.names().is_empty());
    env.sup
        .add(quick("r", "exec sleep 30"))
        .await
        .expect("the name is free again");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_during_a_stop_does_not_start_it_again() {
    let env = Env::new();
    let mut p = quick(
        "slowstop",
        "trap 'sleep 0.3; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
    );
    p.stop_timeout = 5;
    env.sup.add(p.clone()).await.expect("add");
    env.sup.start("slowstop", WAIT).await.expect("start");
    wait_file_contains(&env.log("slowstop", "stdout"), "ready", 5);
    let stopper = env.sup.clone();
    let stopping = tokio::spawn(async move { stopper.stop("slowstop", WAIT).await });
    env.sup
        .wait_for("slowstop", Stopping, std::time::Duration::from_secs(5))
        .await
        .expect("stopping");
    let mut p2 = p.clone();
    p2.stop_timeout = 7;
    assert!(
        !env.sup.update(p2).await.expect("update"),
        "must not restart"
    );
    assert_eq!(stopping.await.expect("join").expect("stop").state, Stopped);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let st = env.sup.status("slowstop").expect("s");
    assert_eq!(st.state, Stopped);
    assert_eq!(env.sup.config("slowstop").expect("c").stop_timeout, 7);
    env.sup.shutdown().await;
}
