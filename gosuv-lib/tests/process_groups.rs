//! Stopping kills the whole process group, daemonised grandchildren are reaped (gosuv is a
//! subreaper), and shutdown leaves no process and no zombie behind.

mod common;

use std::time::Duration;

use common::*;
use gosuv::ProgramState::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_grandchildren_in_the_group() {
    let env = Env::with(|o| o.subreaper = true);
    let pids = env.path().join("pids");
    let cmd = format!(
        "sleep 60 & echo $! >> {f}; sh -c 'sleep 60 & echo $! >> {f}; wait' & echo ready; wait",
        f = pids.display()
    );
    env.sup.add(quick("tree", &cmd)).await.expect("add");
    let leader = env
        .sup
        .start("tree", WAIT)
        .await
        .expect("start")
        .pid
        .expect("pid");
    wait_file_contains(&env.log("tree", "stdout"), "ready", 5);
    poll(5, "two grandchildren", || {
        std::fs::read_to_string(&pids)
            .unwrap_or_default()
            .lines()
            .count()
            == 2
    });
    let grandchildren: Vec<u32> = std::fs::read_to_string(&pids)
        .expect("pids")
        .lines()
        .map(|l| l.trim().parse().expect("pid"))
        .collect();
    let stats = env.sup.stats("tree").await.expect("stats");
    for g in &grandchildren {
        assert!(
            stats.pids.contains(g),
            "stats tree {:?} misses {g}",
            stats.pids
        );
    }
    assert_eq!(stats.pids[0], leader);
    let st = env.sup.stop("tree", WAIT).await.expect("stop");
    assert_eq!(st.state, Stopped);
    // `stopped` means nothing of the group runs any more; a grandchild may still be a
    // zombie for a moment, until gosuv (the subreaper) reaps it, or (in a cgroup) just short
    // of one: out of its cgroup, its memory and files gone, not yet a zombie.
    for p in grandchildren.iter().chain([&leader]) {
        assert!(proc_dead(*p), "{p} survived the stop");
    }
    poll(5, "the group reaped", || {
        grandchildren
            .iter()
            .chain([&leader])
            .all(|p| !pid_exists(*p))
    });
    assert!(group_members(leader).is_empty());
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_only_when_the_group_is_gone() {
    let env = Env::with(|o| o.subreaper = true);
    // The leader exits on TERM at once; its child ignores TERM and dies only by SIGKILL.
    let cmd = "sh -c \"trap '' TERM; echo child-ready; while :; do sleep 0.05; done\" & trap 'exit 0' TERM; while :; do sleep 0.05; done";
    let mut p = quick("lingering", cmd);
    p.stop_timeout = 1;
    env.sup.add(p).await.expect("add");
    let leader = env
        .sup
        .start("lingering", WAIT)
        .await
        .expect("start")
        .pid
        .expect("pid");
    wait_file_contains(&env.log("lingering", "stdout"), "child-ready", 5);
    let mut events = env.sup.subscribe();
    let stop = env.sup.clone();
    let stopping = tokio::spawn(async move { stop.stop("lingering", WAIT).await });
    events_until(&mut events, "lingering", Stopping, 5).await;
    // The leader goes at once (a zombie kept until the group is empty, so its number stays
    // its own) but the group lives on: still stopping.
    poll_async(5, "leader gone", || proc_state(leader) == Some('Z')).await;
    assert!(!group_members(leader).is_empty());
    assert_eq!(env.sup.status("lingering").expect("s").state, Stopping);
    let st = stopping.await.expect("join").expect("stop");
    assert_eq!(st.state, Stopped);
    assert!(
        live_group_members(leader).is_empty(),
        "stopped while the group lived"
    );
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonised_grandchildren_are_reaped_not_left_as_zombies() {
    // A daemon that left the program's session is known as the program's by its cgroup.
    if !cgroups_available("daemonised_grandchildren_are_reaped_not_left_as_zombies") {
        return;
    }
    let env = Env::with(|o| o.subreaper = true);
    let pidfile = env.path().join("daemon.pid");
    // Double fork with setsid: the grandchild leaves the group and is reparented to us.
    let cmd = format!(
        "setsid sh -c 'sleep 1 & echo $! > {}; exit 0' ; exec sleep 60",
        pidfile.display()
    );
    env.sup.add(quick("daemonizer", &cmd)).await.expect("add");
    env.sup.start("daemonizer", WAIT).await.expect("start");
    poll(5, "daemon pid", || {
        pidfile.exists()
            && !std::fs::read_to_string(&pidfile)
                .unwrap_or_default()
                .trim()
                .is_empty()
    });
    let daemon: u32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    // Its parent exits at once, and it is reparented to this process, the subreaper ...
    let me = std::process::id();
    poll(5, "reparenting to the subreaper", || {
        children_of(me).contains(&daemon)
    });
    // ... which must reap it once it exits: no zombie left of it. (Not "no zombie child at
    // all": the other tests of this file run beside it, and a stopping program's leader is
    // kept unreaped, a zombie, until its run is empty, for up to its stop_timeout.)
    poll(5, "daemon exit and reap", || !pid_exists(daemon));
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_everything_concurrently_and_leaves_no_zombie() {
    let env = Env::with(|o| o.subreaper = true);
    let mut leaders = Vec::new();
    for i in 0..10 {
        let mut p = quick(
            &format!("p{i}"),
            "trap 'sleep 0.5; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
        );
        p.stop_timeout = 5;
        env.sup.add(p).await.expect("add");
    }
    for r in env.sup.start_all(WAIT).await {
        leaders.push(r.1.expect("start").pid.expect("pid"));
    }
    for i in 0..10 {
        wait_file_contains(&env.log(&format!("p{i}"), "stdout"), "ready", 5);
    }
    let t0 = std::time::Instant::now();
    env.sup.shutdown().await;
    let took = t0.elapsed();
    // Ten programs each taking 0.5 s to stop: concurrent, so well under 5 s.
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    // Not even as zombies. (Other tests of this file run beside it: their leaders may be
    // zombies for a while, by design, so this looks at its own.)
    for l in leaders {
        assert!(!pid_exists(l), "{l} still exists after shutdown");
    }
    assert!(env.sup.list().is_empty());
    assert!(env.sup.start("p0", WAIT).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_exits_takes_its_group_with_it() {
    let env = Env::with(|o| o.subreaper = true);
    let pidfile = env.path().join("bg.pid");
    let mut p = quick(
        "leaver",
        &format!(
            "sleep 60 & echo $! > {}; sleep 0.2; exit 1",
            pidfile.display()
        ),
    );
    p.autorestart = gosuv::Autorestart::Never;
    env.sup.add(p).await.expect("add");
    env.sup.start("leaver", WAIT).await.expect("start");
    env.sup
        .wait_for("leaver", Exited, Duration::from_secs(5))
        .await
        .expect("exits");
    let bg: u32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    poll(5, "background child killed", || !pid_exists(bg));
    env.sup.shutdown().await;
}
