//! Every transition of a program's state machine, one test each, with real processes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gosuv::{Autorestart, Command, Error, ProgramConfig, ProgramState::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_to_starting_to_running_after_start_seconds() {
    let env = Env::new();
    let mut p = ProgramConfig::shell("svc", "exec sleep 30");
    p.start_seconds = 1;
    env.sup.add(p).await.expect("add");
    assert_eq!(env.sup.status("svc").expect("status").state, Stopped);
    let mut events = env.sup.subscribe();
    let t0 = Instant::now();
    let st = env.sup.start("svc", WAIT).await.expect("start");
    let took = t0.elapsed();
    assert_eq!(st.state, Running);
    assert!(
        took >= Duration::from_millis(950),
        "running before start_seconds: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let pid = st.pid.expect("pid");
    assert!(pid_exists(pid));
    let seen = events_until(&mut events, "svc", Running, 5).await;
    assert_eq!(pairs(&seen), vec![(Stopped, Starting), (Starting, Running)]);
    assert_eq!(seen[1].pid, Some(pid));
    env.sup.shutdown().await;
    assert!(!pid_exists(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_to_backoff_when_it_exits_early_then_retries_with_doubling_delay() {
    let env = Env::new();
    let mut p = ProgramConfig::shell("flaky", "echo trying; exit 3");
    p.start_seconds = 1;
    p.start_retries = 3;
    env.sup.add(p).await.expect("add");
    let mut events = env.sup.subscribe();
    let err = env.sup.start("flaky", WAIT).await.expect_err("must fail");
    let seen = events_until(&mut events, "flaky", Fatal, 10).await;
    assert_eq!(
        pairs(&seen),
        vec![
            (Stopped, Starting),
            (Starting, Backoff),
            (Backoff, Starting),
            (Starting, Backoff),
            (Backoff, Starting),
            (Starting, Fatal),
        ]
    );
    assert_eq!(seen[1].exit_code, Some(3));
    // The retry waits 1 s after the first failure, 2 s after the second.
    let gap = |a: usize, b: usize| seen[b].at.duration_since(seen[a].at).expect("ordered");
    let first = gap(1, 2);
    let second = gap(3, 4);
    assert!(
        first >= Duration::from_millis(950) && first < Duration::from_millis(1500),
        "{first:?}"
    );
    assert!(
        second >= Duration::from_millis(1950) && second < Duration::from_millis(2600),
        "{second:?}"
    );
    match err {
        Error::StartFailed { reason, .. } => {
            assert!(reason.contains("exit code 3"), "{reason}");
            assert!(reason.contains("trying"), "last output quoted: {reason}");
            assert!(reason.contains("3 failed starts"), "{reason}");
        }
        other => panic!("expected StartFailed, got {other}"),
    }
    let st = env.sup.status("flaky").expect("status");
    assert_eq!(st.state, Fatal);
    assert!(st.last_error.expect("last_error").contains("exit code 3"));
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_error_counts_as_failed_start_and_keeps_its_message() {
    let env = Env::new();
    let mut p = ProgramConfig::new("ghost", Command::Argv(vec!["/no/such/binary".into()]));
    p.start_retries = 1;
    env.sup.add(p).await.expect("add");
    let err = env.sup.start("ghost", WAIT).await.expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("cannot run '/no/such/binary'"), "{msg}");
    let st = env.sup.status("ghost").expect("status");
    assert_eq!(st.state, Fatal);
    assert!(st.pid.is_none());
    assert!(st.last_error.expect("kept").contains("no such file"));
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_can_be_started_again() {
    let env = Env::new();
    let marker = env.path().join("ok");
    let cmd = format!("test -e {} || exit 1; exec sleep 30", marker.display());
    let mut p = ProgramConfig::shell("later", cmd);
    p.start_seconds = 0;
    p.start_retries = 1;
    // start_seconds 0 means an early exit is a run that ended, not a failed start: use 1.
    p.start_seconds = 1;
    env.sup.add(p).await.expect("add");
    env.sup.start("later", WAIT).await.expect_err("fails first");
    assert_eq!(env.sup.status("later").expect("s").state, Fatal);
    std::fs::write(&marker, "").expect("marker");
    let mut events = env.sup.subscribe();
    let st = env.sup.start("later", WAIT).await.expect("starts now");
    assert_eq!(st.state, Running);
    assert!(
        st.last_error.is_none(),
        "last_error is cleared once running"
    );
    let seen = events_until(&mut events, "later", Running, 5).await;
    assert_eq!(pairs(&seen), vec![(Fatal, Starting), (Starting, Running)]);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_to_exited_without_autorestart() {
    let env = Env::new();
    let gate = env.path().join("gate");
    let mut p = quick(
        "once",
        &format!(
            "while [ ! -e {} ]; do sleep 0.01; done; exit 0",
            gate.display()
        ),
    );
    p.autorestart = Autorestart::Never;
    env.sup.add(p).await.expect("add");
    env.sup.start("once", WAIT).await.expect("start");
    let mut events = env.sup.subscribe();
    std::fs::write(&gate, "").expect("gate");
    let seen = events_until(&mut events, "once", Exited, 5).await;
    assert_eq!(pairs(&seen), vec![(Running, Exited)]);
    assert_eq!(seen[0].exit_code, Some(0));
    let st = env.sup.status("once").expect("s");
    assert_eq!((st.state, st.exit_code, st.pid), (Exited, Some(0), None));
    // Nothing restarts it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.sup.status("once").expect("s").state, Exited);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exited_restarts_at_once_with_autorestart() {
    let env = Env::new();
    let p = quick("crashy", "exec sleep 30");
    env.sup.add(p).await.expect("add");
    let first = env
        .sup
        .start("crashy", WAIT)
        .await
        .expect("start")
        .pid
        .expect("pid");
    let mut events = env.sup.subscribe();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let seen = events_until(&mut events, "crashy", Running, 5).await;
    assert_eq!(
        pairs(&seen),
        vec![(Running, Exited), (Exited, Starting), (Starting, Running)]
    );
    assert_eq!(seen[0].exit_signal, Some(9));
    let restart = seen[1].at.duration_since(seen[0].at).expect("ordered");
    assert!(
        restart < Duration::from_millis(200),
        "restart was delayed: {restart:?}"
    );
    let st = env.sup.status("crashy").expect("s");
    assert_eq!(st.restarts, 1);
    assert_ne!(st.pid, Some(first));
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autorestart_unexpected_restarts_only_on_unexpected_codes() {
    let env = Env::new();
    let code_file = env.path().join("code");
    std::fs::write(&code_file, "7").expect("code");
    let cmd = format!(
        "c=$(cat {f}); echo 2 > {f}; sleep 0.2; exit $c",
        f = code_file.display()
    );
    let mut p = quick("picky", &cmd);
    p.autorestart = Autorestart::Unexpected;
    p.exit_codes = vec![2];
    env.sup.add(p).await.expect("add");
    let mut events = env.sup.subscribe();
    env.sup.start("picky", WAIT).await.expect("start");
    // Exit 7 is unexpected: restarted. The next run exits 2, expected: stays exited.
    let seen = events_until(&mut events, "picky", Exited, 5).await;
    assert_eq!(seen.last().and_then(|e| e.exit_code), Some(7));
    let seen = events_until(&mut events, "picky", Exited, 5).await;
    assert_eq!(seen.last().and_then(|e| e.exit_code), Some(2));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let st = env.sup.status("picky").expect("s");
    assert_eq!((st.state, st.exit_code, st.restarts), (Exited, Some(2), 1));
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_to_stopping_to_stopped_with_the_stop_signal() {
    let env = Env::new();
    let out = env.path().join("got");
    let mut p = quick(
        "polite",
        &format!(
            "trap 'echo got-int > {}; exit 0' INT; echo ready; while :; do sleep 0.05; done",
            out.display()
        ),
    );
    p.stop_signal = "INT".parse().expect("sig");
    env.sup.add(p).await.expect("add");
    let pid = env
        .sup
        .start("polite", WAIT)
        .await
        .expect("start")
        .pid
        .expect("pid");
    wait_file_contains(&env.log("polite", "stdout"), "ready", 5);
    let mut events = env.sup.subscribe();
    let st = env.sup.stop("polite", WAIT).await.expect("stop");
    assert_eq!(st.state, Stopped);
    assert!(!pid_exists(pid));
    assert_eq!(
        std::fs::read_to_string(&out).expect("trap ran"),
        "got-int\n"
    );
    let seen = events_until(&mut events, "polite", Stopped, 5).await;
    assert_eq!(pairs(&seen), vec![(Running, Stopping), (Stopping, Stopped)]);
    assert_eq!(seen[1].exit_code, Some(0));
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_sends_sigkill_after_stop_timeout() {
    let env = Env::new();
    let mut p = quick(
        "stubborn",
        "trap '' TERM; echo ready; while :; do sleep 0.05; done",
    );
    p.stop_timeout = 1;
    env.sup.add(p).await.expect("add");
    let pid = env
        .sup
        .start("stubborn", WAIT)
        .await
        .expect("start")
        .pid
        .expect("pid");
    wait_file_contains(&env.log("stubborn", "stdout"), "ready", 5);
    let t0 = Instant::now();
    let st = env.sup.stop("stubborn", WAIT).await.expect("stop");
    let took = t0.elapsed();
    assert_eq!(st.state, Stopped);
    assert_eq!(st.exit_signal, Some(9));
    assert!(
        took >= Duration::from_millis(950),
        "killed before stop_timeout: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Killed processes may be zombies a moment longer, until their new parent reaps them.
    assert!(live_group_members(pid).is_empty());
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_in_backoff_cancels_the_retry() {
    let env = Env::new();
    let runs = env.path().join("runs");
    let mut p = ProgramConfig::shell("loop", format!("echo run >> {}; exit 1", runs.display()));
    p.start_retries = 10;
    env.sup.add(p).await.expect("add");
    let mut events = env.sup.subscribe();
    env.sup.start("loop", None).await.expect("start");
    events_until(&mut events, "loop", Backoff, 5).await;
    let st = env.sup.stop("loop", WAIT).await.expect("stop");
    assert_eq!(st.state, Stopped);
    let seen = events_until(&mut events, "loop", Stopped, 1).await;
    assert_eq!(pairs(&seen), vec![(Backoff, Stopped)]);
    // The retry was due after 1 s: wait past it and check nothing ran again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        std::fs::read_to_string(&runs)
            .expect("runs")
            .lines()
            .count(),
        1
    );
    assert_eq!(env.sup.status("loop").expect("s").state, Stopped);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_is_never_lost_when_it_races_the_exit() {
    let env = Env::new();
    // Each run lives a random 0-20 ms: stops land before, during and after its own exit.
    let p = quick("racer", "sleep 0.0$(( $$ % 3 ))");
    env.sup.add(p).await.expect("add");
    for i in 0..40 {
        let _ = env.sup.start("racer", None).await;
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis((i % 7) as u64 * 3)).await;
        }
        let st = env.sup.stop("racer", WAIT).await.expect("stop answered");
        assert!(
            matches!(st.state, Stopped | Exited),
            "round {i}: stop left it {}",
            st.state
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        let st = env.sup.status("racer").expect("s");
        assert!(
            matches!(st.state, Stopped | Exited) && st.pid.is_none(),
            "round {i}: came back as {} {:?}",
            st.state,
            st.pid
        );
    }
    env.sup.shutdown().await;
    assert!(zombie_children().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_is_stop_then_start_in_one_request() {
    let env = Env::new();
    env.sup
        .add(quick("re", "exec sleep 30"))
        .await
        .expect("add");
    let old = env
        .sup
        .start("re", WAIT)
        .await
        .expect("start")
        .pid
        .expect("pid");
    let mut events = env.sup.subscribe();
    let st = env.sup.restart("re", WAIT).await.expect("restart");
    assert_eq!(st.state, Running);
    let new = st.pid.expect("pid");
    assert_ne!(old, new);
    assert!(!pid_exists(old));
    let seen = events_until(&mut events, "re", Running, 5).await;
    assert_eq!(
        pairs(&seen),
        vec![
            (Running, Stopping),
            (Stopping, Stopped),
            (Stopped, Starting),
            (Starting, Running)
        ]
    );
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_waits_with_a_timeout_and_the_program_carries_on() {
    let env = Env::new();
    let mut p = ProgramConfig::shell("slow", "exec sleep 30");
    p.start_seconds = 2;
    env.sup.add(p).await.expect("add");
    let err = env
        .sup
        .start("slow", Some(Duration::from_millis(200)))
        .await
        .expect_err("times out");
    assert!(
        matches!(
            err,
            Error::Timeout {
                state: Starting,
                ..
            }
        ),
        "{err}"
    );
    let st = env
        .sup
        .wait_for("slow", Running, Duration::from_secs(5))
        .await
        .expect("runs");
    assert_eq!(st.state, Running);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_program_is_not_found() {
    let env = Env::new();
    let err = env.sup.start("nope", WAIT).await.expect_err("unknown");
    assert!(
        matches!(err, Error::NotFound(ref n) if n == "nope"),
        "{err}"
    );
    assert!(env.sup.status("nope").is_err());
    assert!(env.sup.remove("nope").await.is_err());
    let dup = quick("dup", "sleep 1");
    env.sup.add(dup.clone()).await.expect("add");
    assert!(matches!(env.sup.add(dup).await, Err(Error::Exists(_))));
    let bad = quick("../x", "sleep 1");
    assert!(matches!(env.sup.add(bad).await, Err(Error::Config(_))));
    assert_eq!(env.sup.names(), vec!["dup".to_string()]);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_sees_a_state_held_only_for_an_instant() {
    let env = Env::new();
    // Exited lasts only until the immediate automatic restart.
    env.sup
        .add(quick("blink", "sleep 0.2; exit 1"))
        .await
        .expect("add");
    env.sup.start("blink", WAIT).await.expect("start");
    env.sup
        .wait_for("blink", Exited, Duration::from_secs(5))
        .await
        .expect("saw exited");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_to_stopping_when_stopped_before_start_seconds() {
    let env = Env::new();
    let mut p = ProgramConfig::shell("early", "exec sleep 30");
    p.start_seconds = 5;
    env.sup.add(p).await.expect("add");
    let mut events = env.sup.subscribe();
    let starter = env.sup.clone();
    let waiting = tokio::spawn(async move { starter.start("early", WAIT).await });
    events_until(&mut events, "early", Starting, 5).await;
    let st = env.sup.stop("early", WAIT).await.expect("stop");
    assert_eq!(st.state, Stopped);
    let seen = events_until(&mut events, "early", Stopped, 5).await;
    assert_eq!(
        pairs(&seen),
        vec![(Starting, Stopping), (Stopping, Stopped)]
    );
    // The start that was waiting learns why it will not see `running`.
    let err = waiting.await.expect("join").expect_err("stopped first");
    assert!(matches!(err, Error::StoppedBeforeRunning(_)), "{err}");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wait_the_returned_status_already_shows_the_command() {
    let env = Env::new();
    let mut p = ProgramConfig::shell("nowait", "exec sleep 30");
    p.start_seconds = 5;
    env.sup.add(p).await.expect("add");
    let st = env.sup.start("nowait", None).await.expect("start");
    assert_eq!(st.state, Starting);
    assert!(st.pid.is_some());
    let st = env.sup.stop("nowait", None).await.expect("stop");
    assert!(matches!(st.state, Stopping | Stopped), "{}", st.state);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_subscriptions_end_after_shutdown_with_its_events() {
    let env = Env::new();
    env.sup
        .add(quick("last", "exec sleep 30"))
        .await
        .expect("add");
    env.sup.start("last", WAIT).await.expect("start");
    let mut events = env.sup.subscribe();
    env.sup.shutdown().await;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(gosuv::EventNotice::Changed(e))) => seen.push((e.from, e.to)),
            Ok(Some(gosuv::EventNotice::Missed(n))) => panic!("missed {n}"),
            Ok(None) => break,
            Err(_) => panic!("the subscription did not end after shutdown"),
        }
    }
    assert_eq!(seen, vec![(Running, Stopping), (Stopping, Stopped)]);
}
