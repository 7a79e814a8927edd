//! `start_limit`: a program that keeps exiting after it was up waits in `backoff` before each
//! restart, instead of restarting at once for ever.

mod common;

use std::time::Duration;

use common::*;
use gosuv::config::{parse_programs, StartLimit};
use gosuv::ProgramState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_within_the_interval_make_a_crash_loop_that_backs_off() {
    let env = Env::new();
    let mut p = quick("looper", "sleep 1.2; exit 1");
    p.start_seconds = 1;
    p.start_limit = StartLimit {
        burst: 3,
        interval: Duration::from_secs(60),
    };
    let mut events = env.sup.subscribe();
    env.sup.add(p).await.expect("add");
    env.sup.start("looper", WAIT).await.expect("start");
    let seen = events_until(&mut events, "looper", ProgramState::Backoff, 30).await;
    let exits = seen.iter().filter(|e| e.to == ProgramState::Exited).count();
    assert_eq!(exits, 3, "the third exit makes the loop: {seen:?}");
    let backoff = seen.last().expect("the backoff event");
    assert_eq!(backoff.from, ProgramState::Exited);
    assert_eq!(
        backoff.reason.as_deref(),
        Some("crash loop: 3 exits in 60s (last: exit 1)")
    );
    let st = env.sup.status("looper").expect("status");
    assert_eq!(st.state, ProgramState::Backoff);
    assert_eq!(
        st.last_error.as_deref(),
        Some("crash loop: 3 exits in 60s (last: exit 1)")
    );
    assert_eq!(st.restarts, 2, "two restarts at once before the loop");
    // The restart after it waits the backoff out (1 s), and counts.
    let next = events_until(&mut events, "looper", ProgramState::Starting, 10).await;
    let waited = next[0]
        .at
        .duration_since(backoff.at)
        .expect("events in order");
    assert_eq!(next[0].from, ProgramState::Backoff);
    assert!(
        waited >= Duration::from_secs(1),
        "restarted after {waited:?}"
    );
    assert_eq!(env.sup.status("looper").expect("status").restarts, 3);
    // Still looping at its next exit: a longer wait, never fatal; a stop cancels it.
    let seen = events_until(&mut events, "looper", ProgramState::Backoff, 30).await;
    assert!(seen.iter().all(|e| e.to != ProgramState::Fatal), "{seen:?}");
    let st = env
        .sup
        .stop("looper", WAIT)
        .await
        .expect("a stop in backoff");
    assert_eq!(st.state, ProgramState::Stopped);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_limit_is_five_exits_in_sixty_seconds() {
    let env = Env::new();
    let mut events = env.sup.subscribe();
    env.sup.add(quick("quitter", "true")).await.expect("add");
    env.sup.start("quitter", WAIT).await.expect("start");
    let seen = events_until(&mut events, "quitter", ProgramState::Backoff, 30).await;
    let exits = seen.iter().filter(|e| e.to == ProgramState::Exited).count();
    assert_eq!(exits, 5, "{seen:?}");
    assert_eq!(
        seen.last().and_then(|e| e.reason.as_deref()),
        Some("crash loop: 5 exits in 60s (last: exit 0)")
    );
    // A start by hand starts it at once and forgets the loop.
    let st = env.sup.start("quitter", WAIT).await;
    assert!(st.is_ok(), "{st:?}");
    let st = env.sup.status("quitter").expect("status");
    assert_ne!(
        st.last_error.as_deref(),
        Some("crash loop: 5 exits in 60s (last: exit 0)")
    );
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_zero_restarts_at_once_for_ever() {
    let env = Env::new();
    let mut p = quick("eager", "true");
    p.start_limit.burst = 0;
    let mut events = env.sup.subscribe();
    env.sup.add(p).await.expect("add");
    env.sup.start("eager", WAIT).await.expect("start");
    let mut restarts = 0;
    while restarts < 20 {
        let ev = events_until(&mut events, "eager", ProgramState::Starting, 10).await;
        assert!(
            ev.iter().all(|e| e.to != ProgramState::Backoff),
            "no crash loop with burst 0: {ev:?}"
        );
        restarts += 1;
    }
    // The first was the start by hand.
    assert!(env.sup.status("eager").expect("status").restarts >= 19);
    env.sup.shutdown().await;
}

#[test]
fn start_limit_is_read_and_checked() {
    let base = std::path::Path::new("/tmp");
    let ps = parse_programs(
        "- name: a\n  command: x\n  start_limit: {burst: 2, interval: 1m30s}\n- name: b\n  command: x\n  start_limit: {burst: 0}\n- name: c\n  command: x\n  start_limit: {interval: 250ms}\n- name: d\n  command: x\n",
        None,
        base,
    );
    // `1m30s` is no duration gosuv reads: an error naming the key.
    let err = ps.expect_err("1m30s").to_string();
    assert!(err.contains("start_limit.interval"), "{err}");
    let ps = parse_programs(
        "- name: a\n  command: x\n  start_limit: {burst: 2, interval: 90}\n- name: b\n  command: x\n  start_limit: {burst: 0}\n- name: c\n  command: x\n  start_limit: {interval: 250ms}\n- name: d\n  command: x\n",
        None,
        base,
    )
    .expect("valid");
    assert_eq!(
        ps[0].start_limit,
        StartLimit {
            burst: 2,
            interval: Duration::from_secs(90)
        }
    );
    assert_eq!(ps[1].start_limit.burst, 0);
    assert_eq!(ps[2].start_limit.interval, Duration::from_millis(250));
    assert_eq!(ps[2].start_limit.burst, 5);
    assert_eq!(ps[3].start_limit, StartLimit::default());
    // Written back and read again, the same.
    let text = serde_yaml::to_string(&ps).expect("yaml");
    assert_eq!(parse_programs(&text, None, base).expect("reads back"), ps);
    for bad in [
        "start_limit: {burst: 1}",
        "start_limit: {burst: -1}",
        "start_limit: {burst: 1001}",
        "start_limit: {burst: 3, interval: 0}",
        "start_limit: {brust: 3}",
        "start_limit: 5",
        "start_limit: {interval: 2d}",
    ] {
        let text = format!("- name: a\n  command: x\n  {bad}\n");
        let err = parse_programs(&text, None, base)
            .expect_err(bad)
            .to_string();
        assert!(err.contains("start_limit"), "{bad}: {err}");
    }
}

/// A command whose first `failing` runs end after 1.1 s by `end`, and whose later runs stay
/// up (a counter file tells them apart).
fn flaky(env: &Env, name: &str, failing: u32, end: &str) -> gosuv::ProgramConfig {
    let count = env.path().join(format!("{name}.count"));
    let count = count.display();
    let mut p = quick(
        name,
        &format!(
            "n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; \
             if [ $n -gt {failing} ]; then exec sleep 600; fi; sleep 1.1; {end}"
        ),
    );
    p.start_seconds = 1;
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backoff_does_not_end_a_loop_only_a_run_that_stays_up_does() {
    let env = Env::new();
    let mut p = flaky(&env, "spread", 4, "exit 1");
    p.start_limit = StartLimit {
        burst: 2,
        interval: Duration::from_secs(3),
    };
    let mut events = env.sup.subscribe();
    env.sup.add(p).await.expect("add");
    env.sup.start("spread", WAIT).await.expect("start");
    // Exits 2, 3 and 4 each wait longer (1 s, 2 s, 4 s), though the waits spread exits 3
    // and 4 over more than the interval: the runs themselves never stayed up 3 s.
    let mut waits = Vec::new();
    for _ in 0..3 {
        let seen = events_until(&mut events, "spread", ProgramState::Backoff, 30).await;
        let backoff = seen.last().expect("backoff");
        assert_eq!(
            backoff.reason.as_deref(),
            Some("crash loop: 2 exits in 3s (last: exit 1)"),
            "{seen:?}"
        );
        let next = events_until(&mut events, "spread", ProgramState::Starting, 30).await;
        waits.push(
            next[0]
                .at
                .duration_since(backoff.at)
                .expect("events in order"),
        );
    }
    for (wait, at_least) in waits.iter().zip([1, 2, 4]) {
        assert!(
            *wait >= Duration::from_secs(at_least),
            "waits {waits:?}: at least 1 s, 2 s, 4 s"
        );
    }
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_says_the_last_cause_and_clears_once_a_run_stays_up() {
    let env = Env::new();
    let mut p = flaky(&env, "settles", 2, "kill -SEGV $$");
    p.start_limit = StartLimit {
        burst: 2,
        interval: Duration::from_secs(3),
    };
    let mut events = env.sup.subscribe();
    env.sup.add(p).await.expect("add");
    env.sup.start("settles", WAIT).await.expect("start");
    let seen = events_until(&mut events, "settles", ProgramState::Backoff, 30).await;
    let loop_text = "crash loop: 2 exits in 3s (last: SIGSEGV)";
    assert_eq!(
        seen.last().and_then(|e| e.reason.as_deref()),
        Some(loop_text)
    );
    // The third run stays up: the loop is said while it has not been up 3 s, then forgotten
    // while it runs, not at some later exit.
    events_until(&mut events, "settles", ProgramState::Running, 30).await;
    let st = env.sup.status("settles").expect("status");
    // Measured from the run's own start (the test may be late under load).
    let started = st.started_at.expect("started_at");
    let up = || {
        std::time::SystemTime::now()
            .duration_since(started)
            .unwrap_or_default()
    };
    assert!(
        st.last_error.as_deref() == Some(loop_text) || up() >= Duration::from_secs(3),
        "{:?} after {:?}",
        st.last_error,
        up()
    );
    let pid = st.pid;
    poll(15, "the crash loop's last_error cleared", || {
        env.sup
            .status("settles")
            .is_ok_and(|s| s.last_error.is_none())
    });
    assert!(
        up() >= Duration::from_millis(2900),
        "cleared after {:?}, before the run stayed up 3 s",
        up()
    );
    let st = env.sup.status("settles").expect("status");
    assert_eq!(st.state, ProgramState::Running);
    assert_eq!(st.pid, pid, "the same run");
    env.sup.shutdown().await;
}
