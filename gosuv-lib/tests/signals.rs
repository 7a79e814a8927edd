//! `Supervisor::signal`: a signal reaches every process of a program's run, the way its
//! stop signal does, and only while it has one.

mod common;

use common::*;
use gosuv::config::CgroupMode;
use gosuv::{parse_signal, Error, ProgramState, Stream};

/// A child that left the process group (setsid) is the program's too: it gets the signal,
/// through the program's cgroup where there is one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_reaches_the_leader_and_a_child_that_left_its_group() {
    a_child_that_left_its_group_gets_the_signal(CgroupMode::Auto).await;
}

/// The same without a cgroup: the child is found in /proc, outside the process group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cgroup_a_child_that_left_its_group_gets_the_signal() {
    a_child_that_left_its_group_gets_the_signal(CgroupMode::Off).await;
}

async fn a_child_that_left_its_group_gets_the_signal(cgroup: CgroupMode) {
    let env = Env::new();
    let mut p = quick(
        "traps",
        "setsid sh -c 'trap \"echo escaped-USR1\" USR1; echo escaped-ready; while :; do sleep 0.05; done' & \
         trap 'echo leader-USR1' USR1; echo leader-ready; while :; do sleep 0.05; done",
    );
    p.cgroup = cgroup;
    env.sup.add(p).await.expect("add");
    let st = env.sup.start("traps", WAIT).await.expect("start");
    if cgroup == CgroupMode::Off {
        assert_eq!(st.ownership, Some(gosuv::Ownership::Group), "{st:?}");
    }
    let said = |what: &str| {
        let out = env
            .sup
            .tail("traps", Stream::Stdout, 64 * 1024)
            .unwrap_or_default();
        String::from_utf8_lossy(&out).contains(what)
    };
    // Until its trap is set, USR1 would end a shell.
    poll_async(10, "both traps set", || {
        said("leader-ready") && said("escaped-ready")
    })
    .await;
    env.sup
        .signal("traps", parse_signal("USR1").expect("USR1"))
        .await
        .expect("signal");
    poll_async(10, "the signal heard by both", || {
        said("leader-USR1") && said("escaped-USR1")
    })
    .await;
    // Nothing else happened to it.
    let now = env.sup.status("traps").expect("status");
    assert_eq!(now.state, ProgramState::Running);
    assert_eq!(now.pid, st.pid);
    env.sup.shutdown().await;
}

/// SIGSTOP stays (no SIGCONT follows it, unlike a stop); SIGCONT resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_signal_is_not_undone() {
    let env = Env::new();
    env.sup
        .add(quick("sleeper", "exec sleep 300"))
        .await
        .expect("add");
    let pid = env
        .sup
        .start("sleeper", WAIT)
        .await
        .expect("start")
        .pid
        .expect("pid");
    env.sup
        .signal("sleeper", parse_signal("STOP").expect("STOP"))
        .await
        .expect("signal");
    poll_async(5, "stopped", || proc_state(pid) == Some('T')).await;
    env.sup
        .signal("sleeper", parse_signal("SIGCONT").expect("CONT"))
        .await
        .expect("signal");
    poll_async(5, "resumed", || proc_state(pid) == Some('S')).await;
    env.sup.shutdown().await;
}

/// No process, no signal: the error names the state. An unknown program or signal number
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_process_no_signal() {
    let env = Env::new();
    env.sup
        .add(quick("idle", "exec sleep 300"))
        .await
        .expect("add");
    match env.sup.signal("idle", libc::SIGHUP).await {
        Err(Error::Invalid(m)) => assert!(m.contains("'idle' is stopped"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        env.sup.signal("ghost", libc::SIGHUP).await,
        Err(Error::NotFound(_))
    ));
    for bad in [0, -1, 65, i32::MAX, i32::MIN] {
        match env.sup.signal("idle", bad).await {
            Err(Error::Invalid(m)) => assert!(m.contains("not a signal number"), "{m}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    env.sup.shutdown().await;
}

#[test]
fn signals_by_name_and_number() {
    assert_eq!(parse_signal("HUP").unwrap(), libc::SIGHUP);
    assert_eq!(parse_signal("sighup").unwrap(), libc::SIGHUP);
    assert_eq!(parse_signal(" SIGTERM ").unwrap(), libc::SIGTERM);
    assert_eq!(parse_signal("9").unwrap(), libc::SIGKILL);
    for bad in [
        "",
        "SIG",
        "NOPE",
        "0",
        "-9",
        "99999999999999",
        "1.5",
        "HUP\0",
    ] {
        let e = parse_signal(bad).unwrap_err().to_string();
        assert!(
            e.contains("is not a signal") && e.contains("USR1"),
            "{bad:?}: {e}"
        );
    }
}

/// A signal meant for the run with a given pid is not sent to another run: a restart in
/// between (the new run may not have set up its handlers yet) refuses it and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_for_an_earlier_run_is_not_sent() {
    let env = Env::new();
    env.sup
        .add(quick("sleeper", "exec sleep 300"))
        .await
        .expect("add");
    let pid = env
        .sup
        .start("sleeper", WAIT)
        .await
        .expect("start")
        .pid
        .expect("pid");
    // TERM would end it: refused for another pid, and it runs on untouched.
    match env
        .sup
        .signal_run("sleeper", libc::SIGTERM, Some(pid + 1))
        .await
    {
        Err(Error::Invalid(m)) => assert_eq!(
            m,
            format!(
                "'sleeper' restarted: its pid is now {pid} (was {}); nothing was sent",
                pid + 1
            )
        ),
        other => panic!("{other:?}"),
    }
    env.sup
        .signal_run("sleeper", libc::SIGSTOP, Some(pid))
        .await
        .expect("the run's own pid");
    poll_async(5, "stopped by SIGSTOP", || proc_state(pid) == Some('T')).await;
    env.sup
        .signal_run("sleeper", libc::SIGCONT, Some(pid))
        .await
        .expect("the run's own pid");
    let now = env.sup.status("sleeper").expect("status");
    assert_eq!((now.state, now.pid), (ProgramState::Running, Some(pid)));
    env.sup.stop("sleeper", WAIT).await.expect("stop");
    match env.sup.signal_run("sleeper", libc::SIGHUP, Some(pid)).await {
        Err(Error::Invalid(m)) => assert!(
            m.contains("'sleeper' is stopped now") && m.contains("nothing was sent"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    env.sup.shutdown().await;
}
