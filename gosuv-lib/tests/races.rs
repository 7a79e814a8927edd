//! Commands racing each other: an update while a stop is under way does not override a
//! later update, an add racing a shutdown leaves nothing running, and concurrent reloads
//! are applied one after the other, never mixed.

mod common;

use std::time::Duration;

use common::*;
use gosuv::ProgramState::*;

/// A program that prints `$V` and takes 0.3 s to stop.
fn slow_stopper(v: &str) -> gosuv::ProgramConfig {
    let mut p = quick(
        "svc",
        "trap 'sleep 0.3; exit 0' TERM; echo \"V=$V\"; while :; do sleep 0.05; done",
    );
    p.environ = vec![("V".into(), v.into())];
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_during_a_stop_does_not_override_a_later_update() {
    let env = Env::new();
    env.sup.add(slow_stopper("1")).await.expect("add");
    env.sup.start("svc", WAIT).await.expect("start");
    wait_file_contains(&env.log("svc", "stdout"), "V=1", 5);
    // A stop is under way when the first update comes; the second comes once it stopped.
    let st = env.sup.stop("svc", None).await.expect("stop");
    assert_eq!(st.state, Stopping);
    env.sup.update(slow_stopper("2")).await.expect("update 2");
    env.sup
        .wait_for("svc", Stopped, Duration::from_secs(5))
        .await
        .expect("stopped");
    env.sup.update(slow_stopper("3")).await.expect("update 3");
    assert_eq!(env.sup.config("svc").expect("config"), slow_stopper("3"));
    env.sup.start("svc", WAIT).await.expect("start");
    let text = wait_file_contains(&env.log("svc", "stdout"), "V=1\nV=", 5);
    let second = text.lines().nth(1).unwrap_or_default().to_string();
    assert_eq!(second, "V=3", "the later update was overridden: {text:?}");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_racing_shutdown_leaves_nothing_running() {
    for round in 0..20 {
        let env = Env::new();
        let marker = unique_marker();
        // Eight tasks add programs (big configs: each add takes a while to validate) while
        // the shutdown comes.
        let mut adders = Vec::new();
        for t in 0..8 {
            let adder = env.sup.clone();
            let m = marker.clone();
            adders.push(tokio::spawn(async move {
                for i in 0..20 {
                    let mut p = quick(&format!("p{t}-{i}"), &format!("exec sleep 300.{m}"));
                    p.environ = (0..2000)
                        .map(|k| (format!("K{k}"), "v".repeat(20)))
                        .collect();
                    p.start_auto = true;
                    if adder.add(p).await.is_err() {
                        break;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(2 + round)).await;
        env.sup.shutdown().await;
        for a in adders {
            a.await.expect("adds");
        }
        assert!(
            env.sup.list().is_empty(),
            "round {round}: programs listed after shutdown: {:?}",
            env.sup.names()
        );
        // Nothing may run after shutdown returned.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let left = procs_with_arg(&marker);
        for p in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert!(
            left.is_empty(),
            "round {round}: left running after shutdown: {left:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reloads_apply_one_list_then_the_other() {
    let env = Env::new();
    // Both lists change the running x0..x4 (each update waits for a restart) and add
    // programs of their own.
    let list = |prefix: &str| -> Vec<gosuv::ProgramConfig> {
        let mut l: Vec<gosuv::ProgramConfig> = (0..5)
            .map(|i| {
                let mut p = quick(&format!("x{i}"), "exec sleep 30");
                p.environ = vec![("FROM".into(), prefix.into())];
                p
            })
            .collect();
        l.extend((0..5).map(|i| quick(&format!("{prefix}{i}"), "exec sleep 30")));
        l
    };
    for i in 0..5 {
        env.sup
            .add(quick(&format!("x{i}"), "exec sleep 30"))
            .await
            .expect("add");
        env.sup.start(&format!("x{i}"), WAIT).await.expect("start");
    }
    let a = env.sup.clone();
    let b = env.sup.clone();
    let (ra, rb) = tokio::join!(a.reload(list("a")), b.reload(list("b")));
    ra.expect("reload a");
    rb.expect("reload b");
    let mut configs = env.sup.configs();
    configs.sort_by(|x, y| x.name.cmp(&y.name));
    let matches = |prefix: &str| {
        let mut want = list(prefix);
        want.sort_by(|x, y| x.name.cmp(&y.name));
        configs == want
    };
    assert!(
        matches("a") || matches("b"),
        "the two reloads were mixed: {:?}",
        configs
            .iter()
            .map(|c| (c.name.clone(), c.environ.clone()))
            .collect::<Vec<_>>()
    );
    env.sup.shutdown().await;
}

/// An observer that panics when told a run of `boom` ended.
struct PanickingObserver;

impl gosuv::GroupObserver for PanickingObserver {
    fn started(&self, _: &gosuv::GroupInfo) {}
    fn ended(&self, group: &gosuv::GroupInfo) {
        if group.program == "boom" {
            panic!("an observer that fails");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_that_panics_neither_hangs_a_removal_nor_stops_the_supervisor() {
    let env = Env::with(|o| o.observer = Some(std::sync::Arc::new(PanickingObserver)));
    env.sup
        .add(quick("boom", "exec sleep 300"))
        .await
        .expect("add");
    let pid = env.sup.start("boom", WAIT).await.expect("start").pid;
    tokio::time::timeout(Duration::from_secs(20), env.sup.remove("boom"))
        .await
        .expect("the removal ends")
        .expect("removed");
    assert!(env.sup.names().is_empty());
    assert!(!pid.is_some_and(pid_exists), "its process is gone");
    // The supervisor goes on: a new program with the same name works.
    env.sup
        .add(quick("boom", "exec sleep 300"))
        .await
        .expect("add again");
    tokio::time::timeout(Duration::from_secs(20), env.sup.shutdown())
        .await
        .expect("shutdown ends");
}
