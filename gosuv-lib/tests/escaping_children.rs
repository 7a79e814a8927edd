//! A program's processes are the program's even when they leave its process group: a child
//! that calls `setsid` is stopped with it, restarted with it (never one more per restart)
//! and shut down with it. Counted from /proc by a marker in their command lines. Both ways
//! of owning them are tried: a cgroup (where this machine lets gosuv make one) and, with
//! `cgroup: off`, the process group with what gosuv finds of its tree.

mod common;

use std::time::Duration;

use common::*;
use gosuv::{CgroupMode, Ownership, ProgramState::*};

/// A program whose child leaves the group (`setsid`) and sleeps; both carry `marker`.
fn escaper(name: &str, marker: &str, cgroup: CgroupMode) -> gosuv::ProgramConfig {
    let mut p = quick(
        name,
        &format!("setsid sleep 301.{marker} & exec sleep 300.{marker}"),
    );
    p.cgroup = cgroup;
    p
}

async fn count_settles(marker: &str, want: usize, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = procs_with_arg(marker);
        if found.len() == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {} processes carry the marker, wanted {want}: {found:?}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn stop_restart_shutdown(cgroup: CgroupMode, ownership: Ownership) {
    let env = Env::new();
    let marker = unique_marker();
    env.sup
        .add(escaper("escaper", &marker, cgroup))
        .await
        .expect("add");
    let st = env.sup.start("escaper", WAIT).await.expect("start");
    assert_eq!(st.ownership, Some(ownership));
    count_settles(&marker, 2, "started").await;
    let stats = env.sup.stats("escaper").await.expect("stats");
    assert_eq!(stats.pids.len(), 2, "stats count both: {stats:?}");
    let st = env.sup.stop("escaper", WAIT).await.expect("stop");
    assert_eq!(st.state, Stopped);
    // `stopped` means every process of it is gone (a zombie has no command line).
    let left = procs_with_arg(&marker);
    assert!(left.is_empty(), "left after stop: {left:?}");

    env.sup.start("escaper", WAIT).await.expect("start");
    count_settles(&marker, 2, "started again").await;
    for round in 0..3 {
        let st = env.sup.restart("escaper", WAIT).await.expect("restart");
        count_settles(&marker, 2, &format!("restart {round}")).await;
        let stats = env.sup.stats("escaper").await.expect("stats");
        assert_eq!(stats.pids[0], st.pid.expect("pid"));
        assert_eq!(stats.pids.len(), 2, "restart {round}: {stats:?}");
    }
    env.sup.shutdown().await;
    let left = procs_with_arg(&marker);
    assert!(left.is_empty(), "left after shutdown: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_calls_setsid_is_stopped_restarted_and_shut_down_with_its_cgroup() {
    if cgroups_available("a_child_that_calls_setsid_..._with_its_cgroup") {
        stop_restart_shutdown(CgroupMode::Auto, Ownership::Cgroup).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_calls_setsid_is_stopped_restarted_and_shut_down_without_a_cgroup() {
    stop_restart_shutdown(CgroupMode::Off, Ownership::Group).await;
}

/// A program whose child leaves its session, ignores TERM and forks short-lived orphans as
/// fast as it can: a stop still completes (each process found is killed, however late it is
/// found), nothing of it is left, and no zombie stays with gosuv as their subreaper.
async fn a_forking_escapee_is_stopped(cgroup: CgroupMode) {
    let env = Env::with(|o| o.subreaper = true);
    let marker = unique_marker();
    let mut p = quick(
        "forker",
        &format!(
            "setsid sh -c 'trap \"\" TERM; while :; do sh -c \"sleep 1000.{marker} &\"; done' & exec sleep 1001.{marker}"
        ),
    );
    p.cgroup = cgroup;
    p.stop_timeout = 1;
    env.sup.add(p).await.expect("add");
    env.sup.start("forker", WAIT).await.expect("start");
    count_settles_at_least(&marker, 3).await;
    let st = tokio::time::timeout(Duration::from_secs(20), env.sup.stop("forker", WAIT))
        .await
        .expect("the stop completes")
        .expect("stop");
    assert_eq!(st.state, Stopped);
    let left = procs_with_arg(&marker);
    assert!(left.is_empty(), "left after stop: {left:?}");
    poll_async(10, "no zombie children", || zombie_children().is_empty()).await;
    env.sup.shutdown().await;
}

async fn count_settles_at_least(marker: &str, want: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while procs_with_arg(marker).len() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "the program did not fork"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forking_escapee_is_stopped_with_its_cgroup() {
    if cgroups_available("a_forking_escapee_is_stopped_with_its_cgroup") {
        a_forking_escapee_is_stopped(CgroupMode::Auto).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forking_escapee_is_stopped_without_a_cgroup() {
    a_forking_escapee_is_stopped(CgroupMode::Off).await;
}

/// A child whose command name is not UTF-8 (any bytes may name an executable; it is run
/// here through a link named `\xffsleep`) and that leaves the session is still the
/// program's: counted in its stats and stopped with it. Its `/proc/<pid>/stat` used to be
/// read as text, which failed, so without a cgroup the process was not seen at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_named_in_bytes_that_are_not_utf8_is_found_and_stopped() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let marker = unique_marker();
    let bin = env.dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    let sleep = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("a sleep binary");
    std::os::unix::fs::symlink(sleep, bin.join(std::ffi::OsStr::from_bytes(b"\xffsleep")))
        .expect("link");
    let mut p = quick(
        "bytes",
        &format!(
            "setsid \"{}/$(printf '\\377')sleep\" 301.{marker} & exec sleep 300.{marker}",
            bin.display()
        ),
    );
    p.cgroup = CgroupMode::Off;
    env.sup.add(p).await.expect("add");
    env.sup.start("bytes", WAIT).await.expect("start");
    count_settles(&marker, 2, "started").await;
    // The child carries the marker from `setsid`'s own command line on, before the link
    // runs: once it runs, it does so under its own name.
    poll_async(10, "the link running under its own name", || {
        procs_with_arg(&marker)
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(b"\xff"))
            })
            .count()
            == 1
    })
    .await;
    let stats = env.sup.stats("bytes").await.expect("stats");
    assert_eq!(stats.pids.len(), 2, "stats count both: {stats:?}");
    let st = env.sup.stop("bytes", WAIT).await.expect("stop");
    assert_eq!(st.state, Stopped);
    let left = procs_with_arg(&marker);
    assert!(left.is_empty(), "left after stop: {left:?}");
    env.sup.shutdown().await;
}
