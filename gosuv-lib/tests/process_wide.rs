//! The shared threads and the guardian end only when no supervisor of any kind is left: a
//! blocking supervisor dropped beside an async one ends nothing and returns at once.
mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use gosuv::{ProgramState, SupervisorOptions};

/// The tests count supervisors process-wide: one at a time.
static ONE: Mutex<()> = Mutex::new(());

fn one() -> std::sync::MutexGuard<'static, ()> {
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The names of this process's gosuv threads.
fn gosuv_threads() -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .flatten()
    {
        if let Ok(c) = std::fs::read_to_string(e.path().join("comm")) {
            if c.starts_with("gosuv-") {
                v.push(c.trim().to_string());
            }
        }
    }
    v.sort();
    v
}

/// This process's guardian (its child running the guardian's script), if one runs.
fn guardian() -> Option<u32> {
    children_of(std::process::id()).into_iter().find(|p| {
        !proc_dead(*p)
            && std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("gosuv-guardian"))
    })
}

fn guarded(dir: &std::path::Path) -> SupervisorOptions {
    let mut opts = SupervisorOptions::new(dir);
    opts.kill_on_parent_death = true;
    opts
}

/// Makes and drops a blocking supervisor; how long the drop took.
fn blocking_made_and_dropped() -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = gosuv::blocking::Supervisor::new(guarded(dir.path())).expect("blocking");
    let t = Instant::now();
    drop(b);
    t.elapsed()
}

/// An async supervisor running a program: each drop of a blocking one returns at once (it
/// waited 2 s for the guardian, which was not to end) and the guardian stays.
#[test]
fn a_blocking_supervisor_dropped_beside_a_running_async_one_returns_at_once() {
    let _one = one();
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let sup = rt.block_on(async {
        let sup = gosuv::Supervisor::new(guarded(dir.path())).expect("async supervisor");
        sup.add(quick("a", "exec sleep 300")).await.expect("add");
        sup.start("a", WAIT).await.expect("start");
        sup
    });
    let g = guardian().expect("a guardian runs");
    for i in 0..3 {
        let took = blocking_made_and_dropped();
        assert!(
            took < Duration::from_millis(1500),
            "drop {i} of the blocking supervisor took {took:?}; threads {:?}",
            gosuv_threads()
        );
        assert_eq!(guardian(), Some(g), "the guardian changed after drop {i}");
    }
    rt.block_on(sup.shutdown());
}

/// An async supervisor with no program running keeps the guardian when the last blocking
/// supervisor goes (it was ended, and a run starting meanwhile could be killed by it); a
/// program started then is guarded by the same guardian. When the async supervisor goes
/// too, every thread and the guardian end.
#[test]
fn an_async_supervisor_keeps_the_guardian_and_its_end_ends_everything() {
    let _one = one();
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let sup = rt.block_on(async {
        let sup = gosuv::Supervisor::new(guarded(dir.path())).expect("async supervisor");
        sup.add(quick("a", "exec sleep 300")).await.expect("add");
        sup.start("a", WAIT).await.expect("start");
        sup.stop("a", WAIT).await.expect("stop");
        sup
    });
    let g = guardian().expect("a guardian runs");
    blocking_made_and_dropped();
    assert_eq!(
        guardian(),
        Some(g),
        "the guardian was ended while an async supervisor lives"
    );
    let st = rt.block_on(sup.start("a", WAIT)).expect("start again");
    assert_eq!(st.state, ProgramState::Running);
    assert_eq!(guardian(), Some(g), "a new guardian was started");
    rt.block_on(sup.shutdown());
    drop(sup);
    drop(rt);
    poll(10, "every gosuv thread and the guardian to end", || {
        gosuv_threads().is_empty() && guardian().is_none()
    });
    poll(10, "the guardian to be reaped", || !pid_exists(g));
}
