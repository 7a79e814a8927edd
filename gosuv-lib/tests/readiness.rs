//! `ready` and `health` with real programs: a start is `running` when its probe first
//! passes (not before, and not on a timer), a probe that never passes is a failed start that
//! says why, and a health probe that keeps failing restarts the program.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use gosuv::config::{HealthProbe, ProbeCheck, ReadyProbe};
use gosuv::ProgramState::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn ready(check: ProbeCheck, interval_ms: u64, timeout_ms: u64) -> Option<ReadyProbe> {
    let mut r = ReadyProbe::new(check);
    r.interval = Duration::from_millis(interval_ms);
    r.timeout = Duration::from_millis(timeout_ms);
    Some(r)
}

fn connects(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// An HTTP server that binds 1.5 s after its start is `starting` until it answers, and
/// `running` once it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_server_is_running_once_it_answers_not_before() {
    let env = Env::new();
    let port = free_port();
    let mut p = quick(
        "web",
        &format!("sleep 1.5; exec python3 -m http.server {port} --bind 127.0.0.1"),
    );
    p.ready = ready(
        ProbeCheck::Http(format!("http://127.0.0.1:{port}/")),
        100,
        30_000,
    );
    env.sup.add(p).await.expect("add");
    let t = Instant::now();
    let sup = env.sup.clone();
    let started = tokio::spawn(async move { sup.start("web", WAIT).await });
    // A second in: the server is not up, and neither is the program.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !connects(port),
        "the server bound early: the test proves nothing"
    );
    assert_eq!(env.sup.status("web").expect("status").state, Starting);
    let st = started.await.expect("join").expect("start");
    assert_eq!(st.state, Running);
    assert!(connects(port), "running before the server answers");
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert!(st.ready_at.is_some());
    env.sup.shutdown().await;
}

/// A line of output, a TCP port, a unix socket, a command: each makes its program ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_tcp_unix_and_exec_probes_make_a_program_ready() {
    let env = Env::new();
    let port = free_port();
    let sock = env.path().join("app.sock");
    let flag = env.path().join("flag");
    let cases = [
        (
            "logger",
            "sleep 0.5; echo starting up; echo 'listening on port 8080'; exec sleep 300".to_string(),
            ProbeCheck::Log("listening on .*8080".into()),
        ),
        (
            "tcp",
            format!(
                "sleep 0.5; exec python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", {port})); s.listen(); time.sleep(300)'"
            ),
            ProbeCheck::Tcp(format!("127.0.0.1:{port}")),
        ),
        (
            "unix",
            format!(
                "sleep 0.5; exec python3 -c 'import socket,time; s=socket.socket(socket.AF_UNIX); s.bind(\"{}\"); s.listen(); time.sleep(300)'",
                sock.display()
            ),
            ProbeCheck::Tcp(format!("unix:{}", sock.display())),
        ),
        (
            "exec",
            format!("sleep 0.5; touch {}; exec sleep 300", flag.display()),
            ProbeCheck::Exec(gosuv::Command::Argv(vec![
                "test".into(),
                "-e".into(),
                flag.display().to_string(),
            ])),
        ),
    ];
    for (name, cmd, check) in cases {
        let mut p = quick(name, &cmd);
        p.ready = ready(check, 50, 20_000);
        env.sup.add(p).await.expect("add");
        let t = Instant::now();
        let st = env.sup.start(name, WAIT).await.expect("start");
        assert_eq!(st.state, Running, "{name}: {:?}", st.last_error);
        // Not before the fact: each says it after half a second.
        assert!(
            t.elapsed() >= Duration::from_millis(450),
            "{name}: {:?}",
            t.elapsed()
        );
    }
    env.sup.shutdown().await;
}

/// sd_notify: `READY=1` on `$NOTIFY_SOCKET` makes it ready; `STATUS=` is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_program_is_ready_when_it_says_so() {
    let env = Env::new();
    let script = r#"
import os, socket, time
time.sleep(0.3)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ["NOTIFY_SOCKET"])
s.send(b"STATUS=warming up")
time.sleep(0.2)
s.send(b"READY=1\nSTATUS=serving 3 clients")
time.sleep(2)
s.send(b"STATUS=serving 4 clients")
time.sleep(300)
"#;
    let mut p = quick("notifier", "exec python3 -c \"$SCRIPT\"");
    p.environ.push(("SCRIPT".into(), script.into()));
    p.ready = ready(ProbeCheck::Notify, 100, 20_000);
    env.sup.add(p).await.expect("add");
    let t = Instant::now();
    let st = env.sup.start("notifier", WAIT).await.expect("start");
    assert_eq!(st.state, Running, "{:?}", st.last_error);
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
    poll_async(5, "the status text", || {
        env.sup
            .status("notifier")
            .expect("s")
            .status_text
            .as_deref()
            == Some("serving 3 clients")
    })
    .await;
    // What it says once running is kept too.
    poll_async(10, "the later status text", || {
        env.sup
            .status("notifier")
            .expect("s")
            .status_text
            .as_deref()
            == Some("serving 4 clients")
    })
    .await;
    env.sup.shutdown().await;
}

/// A probe that never passes: each start fails after the ready timeout, the program goes
/// `fatal` after its retries, and `last_error` quotes the probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_never_passes_is_a_failed_start_that_says_why() {
    let env = Env::new();
    let port = free_port();
    let mut p = quick("never", "exec sleep 300");
    p.ready = ready(ProbeCheck::Tcp(format!("127.0.0.1:{port}")), 50, 400);
    p.start_retries = 2;
    env.sup.add(p).await.expect("add");
    let err = env.sup.start("never", WAIT).await.expect_err("never ready");
    let st = env.sup.status("never").expect("status");
    assert_eq!(st.state, Fatal, "{err}");
    let why = st.last_error.unwrap_or_default();
    assert!(
        why.contains("not ready within 400ms (tcp probe)")
            && why.contains(&format!("127.0.0.1:{port}"))
            && why.contains("refused"),
        "{why}"
    );
    env.sup.shutdown().await;
}

/// A health probe that fails `failures` times in a row restarts the program, and says so;
/// one that passes again in between does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_probe_restarts_the_program() {
    let env = Env::new();
    let flag = env.path().join("healthy");
    std::fs::write(&flag, "").expect("flag");
    let mut p = quick("svc", "exec sleep 300");
    let mut h = HealthProbe::new(ProbeCheck::Exec(gosuv::Command::Argv(vec![
        "test".into(),
        "-e".into(),
        flag.display().to_string(),
    ])));
    h.interval = Duration::from_millis(100);
    h.timeout = Duration::from_secs(2);
    h.failures = 3;
    p.health = Some(h);
    env.sup.add(p).await.expect("add");
    let st = env.sup.start("svc", WAIT).await.expect("start");
    let pid = st.pid.expect("pid");
    // Healthy for a while: no restart.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let now = env.sup.status("svc").expect("s");
    assert_eq!((now.pid, now.restarts), (Some(pid), 0));
    std::fs::remove_file(&flag).expect("unhealthy");
    poll_async(10, "a restart for health", || {
        let s = env.sup.status("svc").expect("s");
        s.restarts >= 1 && s.pid.is_some_and(|p| p != pid) && s.state == Running
    })
    .await;
    let s = env.sup.status("svc").expect("s");
    let why = s.last_error.unwrap_or_default();
    assert!(
        why.contains("health check failed 3 times in a row"),
        "{why}"
    );
    let health = s.health.expect("health record");
    assert!(health.failures >= 3, "{health:?}");
    env.sup.shutdown().await;
}

/// A program that says it is ready and then dies within `start_seconds` is a failed start
/// (backoff, then fatal), not a program restarted at once for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_then_dead_within_start_seconds_is_a_failed_start() {
    let env = Env::new();
    let mut p = quick("flaky", "echo up; sleep 0.2; echo 'bad config' >&2; exit 1");
    p.start_seconds = 2;
    p.start_retries = 2;
    p.ready = ready(ProbeCheck::Log("^up$".into()), 100, 10_000);
    env.sup.add(p).await.expect("add");
    let mut events = env.sup.subscribe();
    let _ = env.sup.start("flaky", None).await.expect("start");
    let seen = events_until(&mut events, "flaky", Fatal, 20).await;
    let pairs = pairs(&seen);
    assert!(pairs.contains(&(Running, Backoff)), "{pairs:?}");
    let st = env.sup.status("flaky").expect("status");
    assert_eq!(st.restarts, 1, "one retry after the first failed start");
    let why = st.last_error.unwrap_or_default();
    assert!(
        why.contains("within start_seconds") && why.contains("bad config"),
        "{why}"
    );
    env.sup.shutdown().await;
}

/// A `tcp` health probe to a loopback address (answered from the kernel's table of
/// listening sockets): a program that stops listening fails it, each failure is an event,
/// and `failures` in a row restart it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_stops_listening_fails_its_tcp_health_check_and_restarts() {
    let env = Env::new();
    let port = free_port();
    let script = format!(
        "import signal, socket, time\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', {port}))\n\
         s.listen()\n\
         signal.signal(signal.SIGUSR1, lambda *a: s.close())\n\
         while True:\n    time.sleep(1)\n"
    );
    let mut p = gosuv::ProgramConfig::new(
        "listener",
        gosuv::Command::Argv(vec!["python3".into(), "-c".into(), script]),
    );
    p.start_seconds = 0;
    p.ready = ready(ProbeCheck::Tcp(format!("localhost:{port}")), 20, 10_000);
    let mut h = HealthProbe::new(ProbeCheck::Tcp(format!("localhost:{port}")));
    h.interval = Duration::from_millis(100);
    h.failures = 2;
    p.health = Some(h);
    env.sup.add(p).await.expect("add");
    let first = env.sup.start("listener", WAIT).await.expect("start");
    let pid = first.pid.expect("pid");
    let mut events = env.sup.subscribe();
    // SAFETY: kill with a pid of our own program.
    unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    let seen = events_until(&mut events, "listener", Stopping, 10).await;
    let health: Vec<&str> = seen
        .iter()
        .filter(|e| (e.from, e.to) == (Running, Running))
        .filter_map(|e| e.reason.as_deref())
        .collect();
    assert_eq!(health.len(), 2, "{seen:?}");
    assert!(
        health[0].contains("health check failed (1 of 2 in a row)")
            && health[0].contains(&format!("connect localhost:{port}: connection refused")),
        "{health:?}"
    );
    assert!(health[1].contains("restarting"), "{health:?}");
    env.sup
        .wait_for("listener", Running, Duration::from_secs(20))
        .await
        .expect("running again");
    let st = env.sup.status("listener").expect("status");
    assert_ne!(st.pid, Some(pid));
    assert_eq!(st.restarts, 1);
    assert!(st
        .last_error
        .unwrap_or_default()
        .contains("health check failed 2 times in a row"),);
    env.sup.shutdown().await;
}
