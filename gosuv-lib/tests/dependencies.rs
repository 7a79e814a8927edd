//! `depends_on` with real programs: a start waits (`waiting`) until its dependencies are
//! satisfied and starts those that are not started; a dependency that goes `fatal` or is
//! removed makes its waiting dependents `fatal` (nothing waits for ever); programs start
//! in dependency order and stop in reverse.

mod common;

use std::time::Duration;

use common::*;
use gosuv::config::{Condition, Dependency, ProbeCheck, ReadyProbe};
use gosuv::ProgramState::*;

fn dep(name: &str) -> Dependency {
    Dependency {
        name: name.into(),
        condition: Condition::Ready,
    }
}

fn log_ready(p: &mut gosuv::ProgramConfig, regex: &str) {
    let mut r = ReadyProbe::new(ProbeCheck::Log(regex.into()));
    r.timeout = Duration::from_secs(30);
    p.ready = Some(r);
}

/// A process's start time, in clock ticks since boot (field 22 of /proc/PID/stat).
fn start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read(format!("/proc/{pid}/stat"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .expect("stat");
    let rest = stat.rsplit_once(')').expect("comm").1;
    rest.split_whitespace()
        .nth(19)
        .and_then(|t| t.parse().ok())
        .expect("starttime")
}

fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no side effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).unwrap_or(100)
}

/// Starting a dependent starts its dependency (not started by anyone), waits in
/// `waiting` while the dependency is not ready, and spawns only once it is: checked from
/// the processes' own start times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_waits_for_its_dependency_and_starts_it() {
    let env = Env::new();
    let mut db = quick("db", "sleep 0.8; echo 'db ready'; exec sleep 300");
    log_ready(&mut db, "db ready");
    let mut api = quick("api", "exec sleep 300");
    api.depends_on = vec![dep("db")];
    env.sup.add(db).await.expect("add db");
    env.sup.add(api).await.expect("add api");
    let mut events = env.sup.subscribe();
    let sup = env.sup.clone();
    let started = tokio::spawn(async move { sup.start("api", WAIT).await });
    let seen = events_until(&mut events, "api", Waiting, 10).await;
    assert_eq!(pairs(&seen), vec![(Stopped, Waiting)]);
    assert!(
        seen[0].reason.as_deref().unwrap_or_default().contains("db"),
        "{seen:?}"
    );
    // While waiting it says what for, and its dependency was started for it.
    poll_async(10, "db to start", || {
        env.sup.status("db").ok().map(|s| s.state) == Some(Starting)
    })
    .await;
    let st = env.sup.status("api").expect("status");
    assert_eq!(st.state, Waiting);
    assert_eq!(st.waiting_for, vec!["db".to_string()]);
    assert_eq!(st.pid, None);
    let st = started.await.expect("join").expect("start api");
    assert_eq!(st.state, Running);
    let db = env.sup.status("db").expect("db");
    assert_eq!(db.state, Running);
    let (db_pid, api_pid) = (db.pid.expect("db pid"), st.pid.expect("api pid"));
    let gap = start_ticks(api_pid).saturating_sub(start_ticks(db_pid));
    // db was ready 0.8 s after it started: api cannot have started earlier.
    assert!(
        gap * 1000 / ticks_per_sec() >= 700,
        "api started {gap} ticks after db, before db was ready"
    );
    env.sup.shutdown().await;
}

/// A dependency that goes `fatal` makes its waiting dependent `fatal` with the reason;
/// the start of the dependent fails instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_that_goes_fatal_makes_its_dependent_fatal() {
    let env = Env::new();
    let mut db = quick("db", "echo 'no config' >&2; exit 3");
    db.start_seconds = 1;
    db.start_retries = 1;
    let mut api = quick("api", "exec sleep 300");
    api.depends_on = vec![dep("db")];
    env.sup.add(db).await.expect("add db");
    env.sup.add(api).await.expect("add api");
    let err = env
        .sup
        .start("api", WAIT)
        .await
        .expect_err("api cannot start");
    let msg = err.to_string();
    assert!(msg.contains("'db' is fatal"), "{msg}");
    let st = env.sup.status("api").expect("status");
    assert_eq!(st.state, Fatal);
    let why = st.last_error.unwrap_or_default();
    assert!(
        why.contains("dependency 'db' is fatal") && why.contains("no config"),
        "{why}"
    );
    env.sup.shutdown().await;
}

/// A program others depend on cannot be removed (they would wait for nothing, and a saved
/// programs file would no longer load): the refusal names them and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_cannot_be_removed_while_depended_on() {
    let env = Env::new();
    let db = quick("db", "exec sleep 300");
    let mut api = quick("api", "exec sleep 300");
    api.depends_on = vec![dep("db")];
    env.sup.add(db).await.expect("add db");
    env.sup.add(api).await.expect("add api");
    env.sup.start("api", WAIT).await.expect("start api");
    let err = env.sup.remove("db").await.expect_err("db is depended on");
    assert!(
        err.to_string().contains("'db' is a dependency of api"),
        "{err}"
    );
    assert_eq!(env.sup.status("db").expect("db").state, Running);
    // Once nothing depends on it, it goes.
    env.sup.remove("api").await.expect("remove api");
    env.sup.remove("db").await.expect("remove db");
    env.sup.shutdown().await;
}

/// A change of `depends_on` alone does not restart a running program; a one-shot that
/// restarts after every exit cannot be depended on with `exited_ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_changes_restart_nothing_and_exited_ok_needs_a_one_shot() {
    let env = Env::new();
    env.sup
        .add(quick("db", "exec sleep 300"))
        .await
        .expect("add");
    let mut api = quick("api", "exec sleep 300");
    env.sup.add(api.clone()).await.expect("add");
    let pid = env.sup.start("api", WAIT).await.expect("start").pid;
    api.depends_on = vec![dep("db")];
    assert!(!env.sup.update(api.clone()).await.expect("update"));
    let st = env.sup.status("api").expect("api");
    assert_eq!((st.state, st.pid), (Running, pid));
    assert_eq!(
        env.sup.config("api").expect("config").depends_on,
        vec![dep("db")]
    );
    let mut loops = quick("loops", "exit 0");
    loops.autorestart = gosuv::config::Autorestart::Always;
    env.sup.add(loops).await.expect("add");
    let mut after = quick("after", "exec sleep 300");
    after.depends_on = vec![Dependency {
        name: "loops".into(),
        condition: Condition::ExitedOk,
    }];
    let err = env.sup.add(after).await.expect_err("autorestart always");
    assert!(err.to_string().contains("autorestart: always"), "{err}");
    env.sup.shutdown().await;
}

/// `started` is met by a process that exists (not ready); `exited_ok` by a run that
/// exited with one of its `exit_codes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_and_exited_ok_conditions() {
    let env = Env::new();
    let mut slow = quick("slow", "exec sleep 300");
    log_ready(&mut slow, "never said");
    let mut migrate = quick("migrate", "sleep 0.3; echo migrated");
    migrate.autorestart = gosuv::config::Autorestart::Never;
    let mut app = quick("app", "exec sleep 300");
    app.depends_on = vec![
        Dependency {
            name: "slow".into(),
            condition: Condition::Started,
        },
        Dependency {
            name: "migrate".into(),
            condition: Condition::ExitedOk,
        },
    ];
    env.sup.add(slow).await.expect("add");
    env.sup.add(migrate).await.expect("add");
    env.sup.add(app).await.expect("add");
    let st = env.sup.start("app", WAIT).await.expect("app starts");
    assert_eq!(st.state, Running);
    assert_eq!(env.sup.status("slow").expect("slow").state, Starting);
    let m = env.sup.status("migrate").expect("migrate");
    assert_eq!((m.state, m.exit_code), (Exited, Some(0)));
    // A one-shot that fails fails its dependent.
    let mut bad = quick("bad", "sleep 0.2; exit 4");
    bad.autorestart = gosuv::config::Autorestart::Never;
    let mut after = quick("after", "exec sleep 300");
    after.depends_on = vec![Dependency {
        name: "bad".into(),
        condition: Condition::ExitedOk,
    }];
    env.sup.add(bad).await.expect("add");
    env.sup.add(after).await.expect("add");
    let err = env.sup.start("after", WAIT).await.expect_err("bad exits 4");
    assert!(
        err.to_string().contains("'bad' exited with exit code 4"),
        "{err}"
    );
    env.sup.shutdown().await;
}

/// Unknown dependencies and cycles are refused by add and update, naming them; nothing
/// changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_dependencies_and_cycles_are_refused() {
    let env = Env::new();
    let mut a = quick("a", "exec sleep 300");
    a.depends_on = vec![dep("nope")];
    let err = env
        .sup
        .add(a.clone())
        .await
        .expect_err("unknown dependency");
    assert!(err.to_string().contains("'nope'"), "{err}");
    assert!(env.sup.names().is_empty());
    a.depends_on.clear();
    env.sup.add(a.clone()).await.expect("add a");
    let mut b = quick("b", "exec sleep 300");
    b.depends_on = vec![dep("a")];
    env.sup.add(b).await.expect("add b");
    a.depends_on = vec![dep("b")];
    let err = env.sup.update(a).await.expect_err("a cycle");
    assert!(err.to_string().contains("dependency cycle"), "{err}");
    assert!(env.sup.config("a").expect("a").depends_on.is_empty());
    env.sup.shutdown().await;
}

/// Programs of a file are started dependencies first, whatever their order in the file;
/// shutdown stops dependents first and waits for them before stopping what they depend
/// on: checked from the order the stop signals arrive in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_in_dependency_order_and_stop_in_reverse() {
    let env = Env::new();
    let record = env.path().join("stops");
    // Each program notes the arrival of its TERM, lingers a little, then exits.
    let prog = |name: &str| {
        let cmd = format!(
            "trap 'echo {name} >> {rec}; sleep 0.2; exit 0' TERM; echo up; while :; do sleep 0.05; done",
            rec = record.display()
        );
        let mut p = quick(name, &cmd);
        p.start_auto = true;
        log_ready(&mut p, "^up$");
        p
    };
    let mut web = prog("web");
    web.depends_on = vec![dep("api")];
    let mut api = prog("api");
    api.depends_on = vec![dep("db"), dep("cache")];
    let db = prog("db");
    let cache = prog("cache");
    let sup =
        gosuv::Supervisor::new(gosuv::SupervisorOptions::new(env.path())).expect("supervisor");
    let failed = sup.add_all(vec![web, api, db, cache]).await.expect("add");
    assert!(failed.is_empty(), "{failed:?}");
    for name in ["web", "api", "db", "cache"] {
        sup.wait(name, Duration::from_secs(20)).await.expect(name);
    }
    let pid = |n: &str| sup.status(n).ok().and_then(|s| s.pid).expect("pid");
    let t = |n: &str| start_ticks(pid(n));
    assert!(t("api") >= t("db") && t("api") >= t("cache") && t("web") >= t("api"));
    sup.shutdown().await;
    let order = std::fs::read_to_string(&record).expect("stop record");
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(order.len(), 4, "{order:?}");
    assert_eq!(order[0], "web", "{order:?}");
    assert_eq!(order[1], "api", "{order:?}");
    let mut last: Vec<&str> = order[2..].to_vec();
    last.sort_unstable();
    assert_eq!(last, vec!["cache", "db"]);
}

/// A dependency that restarts does not restart its dependent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_restart_leaves_its_dependent_alone() {
    let env = Env::new();
    let db = quick("db", "exec sleep 300");
    let mut api = quick("api", "exec sleep 300");
    api.depends_on = vec![dep("db")];
    env.sup.add(db).await.expect("add");
    env.sup.add(api).await.expect("add");
    let api_pid = env.sup.start("api", WAIT).await.expect("api").pid;
    env.sup.restart("db", WAIT).await.expect("db restart");
    let st = env.sup.status("api").expect("api");
    assert_eq!((st.state, st.pid), (Running, api_pid));
    env.sup.shutdown().await;
}

/// An automatic restart does not start a dependency someone stopped: the dependent goes
/// `fatal` saying so, and the dependency stays stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automatic_restart_does_not_start_a_stopped_dependency() {
    let env = Env::new();
    env.sup
        .add(quick("db", "exec sleep 300"))
        .await
        .expect("add");
    let mut api = quick("api", "exec sleep 300");
    api.depends_on = vec![dep("db")];
    env.sup.add(api).await.expect("add");
    let pid = env
        .sup
        .start("api", WAIT)
        .await
        .expect("start")
        .pid
        .expect("pid");
    env.sup.stop("db", WAIT).await.expect("stop db");
    // SAFETY: kill with the pid of our own program.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    env.sup
        .wait_for("api", Fatal, Duration::from_secs(10))
        .await
        .expect("api fatal");
    let why = env
        .sup
        .status("api")
        .expect("api")
        .last_error
        .unwrap_or_default();
    assert!(why.contains("dependency 'db' was stopped"), "{why}");
    assert_eq!(env.sup.status("db").expect("db").state, Stopped);
    // A start by hand starts it again.
    env.sup.start("api", WAIT).await.expect("start by hand");
    assert_eq!(env.sup.status("db").expect("db").state, Running);
    env.sup.shutdown().await;
}

/// A supervisor built from a set is refused with every problem of the set at once, before
/// anything is added (before, the first error came after the others were added and
/// started).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_is_checked_whole_before_anything_starts() {
    let env = Env::new();
    let mut good = quick("good", "exec sleep 300");
    good.start_auto = true;
    let mut a = quick("a", "exec sleep 300");
    a.depends_on = vec![dep("nowhere")];
    let mut b = quick("b", "exec sleep 300");
    b.depends_on = vec![dep("c")];
    let mut c = quick("c", "exec sleep 300");
    c.depends_on = vec![dep("b")];
    let err = gosuv::Supervisor::with_programs(
        gosuv::SupervisorOptions::new(env.path()),
        vec![good, a, b, c],
    )
    .await
    .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("'nowhere'") && text.contains("dependency cycle"),
        "{text}"
    );
}
