//! Owning programs by cgroup: each program runs in a cgroup of its own under the
//! supervisor's, the cgroups go with their programs and with the supervisor, a leftover of a
//! process that died is removed, and `memory_max` restarts a program that goes over it.
//!
//! One test file of its own: it looks at every cgroup of this process's supervisors.

mod common;

use std::time::Duration;

use common::*;
use gosuv::{CgroupMode, Ownership, ProgramState::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_program_has_a_cgroup_that_goes_with_it() {
    if !cgroups_available("each_program_has_a_cgroup_that_goes_with_it") {
        return;
    }
    // A leftover of a supervisor whose process is gone (pid_max is at most 2^22).
    let base = own_cgroup_dir().expect("cgroup dir");
    let leftover = base.join("gosuv-4194999-0");
    std::fs::create_dir_all(leftover.join("prog-old")).expect("leftover");

    let env = Env::new();
    env.sup
        .add(quick("web", "exec sleep 300"))
        .await
        .expect("add");
    let st = env.sup.start("web", WAIT).await.expect("start");
    assert_eq!(st.ownership, Some(Ownership::Cgroup));
    assert!(!leftover.exists(), "the leftover of a dead process stayed");
    // This supervisor's cgroup: the one that holds `prog-web`.
    let mine: Vec<_> = own_supervisor_cgroups()
        .into_iter()
        .filter(|d| d.join("prog-web").is_dir())
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let cg = mine[0].join("prog-web");
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).expect("procs");
    assert_eq!(procs.trim(), st.pid.expect("pid").to_string());
    // What the program's process itself says.
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", st.pid.unwrap())).unwrap();
    assert!(own.contains("/prog-web"), "{own}");

    // A program with `cgroup: off` has none.
    let mut plain = quick("plain", "exec sleep 300");
    plain.cgroup = CgroupMode::Off;
    env.sup.add(plain).await.expect("add");
    let st = env.sup.start("plain", WAIT).await.expect("start");
    assert_eq!(st.ownership, Some(Ownership::Group));
    assert!(!mine[0].join("prog-plain").exists());

    env.sup.remove("web").await.expect("remove");
    assert!(!cg.exists(), "the removed program's cgroup stayed");
    env.sup.shutdown().await;
    assert!(
        !mine[0].exists(),
        "the supervisor's cgroup stayed after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_memory_max_a_program_is_restarted_and_says_why() {
    let env = Env::new();
    let mut p = quick(
        "hog",
        "python3 -c \"b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096]); print('big', flush=True); import time; time.sleep(300)\"",
    );
    p.memory_max = Some(100 << 20);
    env.sup.add(p).await.expect("add");
    env.sup.start("hog", WAIT).await.expect("start");
    // Restarted within a few seconds of going over (measured every second, or killed by the
    // kernel where it enforces memory.max).
    poll_async(20, "a restart for memory", || {
        env.sup.status("hog").is_ok_and(|s| s.restarts >= 1)
    })
    .await;
    let st = env.sup.status("hog").expect("status");
    let why = st.last_error.unwrap_or_default();
    assert!(why.contains("memory_max"), "{why}");
    // It stays said once the program is up again.
    env.sup
        .wait_for("hog", Running, Duration::from_secs(10))
        .await
        .expect("running");
    assert!(env
        .sup
        .status("hog")
        .expect("status")
        .last_error
        .is_some_and(|e| e.contains("memory_max")));
    env.sup.shutdown().await;
}

/// A program that moves a worker into a cgroup of its own below the program's (as runc or
/// a nested systemd do): the worker is still the program's, in its stats and at its stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_in_a_cgroup_below_the_programs_is_still_the_programs() {
    if !cgroups_available("a_worker_in_a_cgroup_below_the_programs_is_still_the_programs") {
        return;
    }
    let env = Env::new();
    let marker = unique_marker();
    // The program's cgroup from /proc/self/cgroup ("0::/path"), under the v2 mount.
    let mount = own_cgroup_mount();
    // The marker in two halves, so only the worker's command line holds it whole.
    let (head, tail) = marker.split_at(marker.len() / 2);
    let script = format!(
        "cg={mount}$(sed -n 's/^0:://p' /proc/self/cgroup); mkdir \"$cg/worker\"; \
         m={head}; sleep 300 \"$m\"{tail} & echo $! > \"$cg/worker/cgroup.procs\"; \
         echo moved; wait"
    );
    env.sup.add(quick("nested", &script)).await.expect("add");
    let st = env.sup.start("nested", WAIT).await.expect("start");
    assert_eq!(st.ownership, Some(Ownership::Cgroup));
    poll_async(10, "the worker moved", || {
        std::fs::read_to_string(env.log("nested", "stdout")).is_ok_and(|t| t.contains("moved"))
    })
    .await;
    let worker = procs_with_arg(&marker);
    assert_eq!(worker.len(), 1, "{worker:?}");
    let cg = own_supervisor_cgroups()
        .into_iter()
        .map(|d| d.join("prog-nested"))
        .find(|d| d.join("worker").is_dir())
        .expect("the program's cgroup, with the worker's below it");
    let stats = env.sup.stats("nested").await.expect("stats");
    assert!(
        stats.pids.contains(&worker[0]),
        "the worker {} is not in the program's stats {:?}",
        worker[0],
        stats.pids
    );
    env.sup.stop("nested", WAIT).await.expect("stop");
    poll_async(10, "the worker to die with its program", || {
        procs_with_arg(&marker).iter().all(|p| proc_dead(*p))
    })
    .await;
    // The run's cgroup goes with the run, the one the program made below it first.
    assert!(!cg.exists(), "{} stayed after the stop", cg.display());
    env.sup.shutdown().await;
}
