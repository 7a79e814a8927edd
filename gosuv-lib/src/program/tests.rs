//! The state machine driven with a fake process: each test decides exactly when the process
//! exits, ignores a signal or goes away, and time is paused (tokio's test clock), so races
//! between commands and exits are replayed in the order that matters, without timing luck.

use std::sync::Mutex;

use tokio::sync::watch;

use super::*;
use crate::config::Command as ProgramCommand;

/// What a fake process does when asked to stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum OnStop {
    /// Exits at once (by the signal), leaving nothing behind.
    #[default]
    Exit,
    /// Ignores it: only a kill ends it.
    Ignore,
    /// Panics (a bug in the owner of the processes).
    Panic,
}

#[derive(Clone, Debug, Default)]
struct FakeState {
    /// Exits with code 0 at this instant by itself.
    exit_at: Option<Instant>,
    exit: Option<ExitStatus>,
    empty: bool,
    signals: Vec<i32>,
    killed: bool,
    memory: u64,
    dropped: bool,
}

/// The test's side of one fake run.
#[derive(Clone)]
struct Ctl {
    config: Arc<ProgramConfig>,
    state: Arc<watch::Sender<FakeState>>,
}

impl Ctl {
    /// The process exits by itself (nothing of it is left).
    fn exit(&self, status: ExitStatus) {
        self.state.send_modify(|s| {
            s.exit = Some(status);
            s.empty = true;
        });
    }

    fn get(&self) -> FakeState {
        self.state.borrow().clone()
    }
}

struct FakeProcess {
    pid: u32,
    on_stop: OnStop,
    state: Arc<watch::Sender<FakeState>>,
    finished: bool,
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        if !self.finished {
            self.state.send_modify(|s| s.dropped = true);
        }
    }
}

impl Process for FakeProcess {
    async fn let_go(self) {}

    fn pid(&self) -> u32 {
        self.pid
    }

    fn view(&self) -> Option<Arc<GroupView>> {
        None
    }

    fn ownership(&self) -> Ownership {
        Ownership::Group
    }

    async fn exited(&mut self) -> ExitStatus {
        let mut rx = self.state.subscribe();
        let exit_at = self.state.borrow().exit_at;
        let by_itself = async {
            match exit_at {
                Some(t) => sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            s = rx.wait_for(|s| s.exit.is_some()) => {
                s.ok().and_then(|s| s.exit).unwrap_or(ExitStatus::Unknown)
            }
            () = by_itself => {
                self.state.send_modify(|s| {
                    s.exit = s.exit.or(Some(ExitStatus::Code(0)));
                    s.empty = true;
                });
                self.state.borrow().exit.unwrap_or(ExitStatus::Unknown)
            }
        }
    }

    fn exit(&mut self) -> Option<ExitStatus> {
        self.state.borrow().exit
    }

    async fn stop(&mut self, sig: i32) {
        self.state.send_modify(|s| s.signals.push(sig));
        match self.on_stop {
            OnStop::Exit => self.state.send_modify(|s| {
                s.exit = Some(ExitStatus::Signal(sig));
                s.empty = true;
            }),
            OnStop::Ignore => {}
            OnStop::Panic => panic!("the fake process was told to panic"),
        }
    }

    async fn kill(&mut self) {
        self.state.send_modify(|s| {
            s.killed = true;
            s.exit = s.exit.or(Some(ExitStatus::Signal(libc::SIGKILL)));
            s.empty = true;
        });
    }

    async fn emptied(&mut self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| s.exit.is_some() && s.empty).await;
    }

    async fn after_exit(mut self) -> Vec<JoinHandle<()>> {
        self.state.send_modify(|s| s.empty = true);
        self.finished = true;
        Vec::new()
    }

    async fn finish(mut self) -> Vec<JoinHandle<()>> {
        self.finished = true;
        Vec::new()
    }

    async fn memory(&self) -> Option<u64> {
        Some(self.state.borrow().memory)
    }

    fn kernel_enforces_memory(&self) -> bool {
        false
    }

    fn oom_killed(&self) -> bool {
        false
    }
}

/// Launches fake processes and keeps the test's side of each.
#[derive(Default)]
struct FakeLauncher {
    runs: Mutex<Vec<Ctl>>,
    /// How many of the next launches fail.
    failing: Mutex<u32>,
    on_stop: Mutex<OnStop>,
    /// Each new process exits by itself this long after it starts.
    exit_after: Mutex<Option<Duration>>,
    launched: watch::Sender<usize>,
}

impl FakeLauncher {
    fn run(&self, i: usize) -> Ctl {
        self.runs.lock().unwrap()[i].clone()
    }

    fn count(&self) -> usize {
        self.runs.lock().unwrap().len()
    }

    async fn wait_launches(&self, n: usize) -> Ctl {
        let mut rx = self.launched.subscribe();
        rx.wait_for(|c| *c >= n).await.expect("launcher alive");
        self.run(n - 1)
    }
}

impl Launcher for FakeLauncher {
    type Proc = FakeProcess;

    async fn launch(
        &self,
        config: &ProgramConfig,
        _logs: &Arc<ProgramLogs>,
        _meta: crate::process_group::RunMeta,
    ) -> Result<FakeProcess, String> {
        {
            let mut failing = self.failing.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err("cannot run 'fake': no such file or command".into());
            }
        }
        let exit_at = self.exit_after.lock().unwrap().map(|d| Instant::now() + d);
        let state = Arc::new(
            watch::channel(FakeState {
                exit_at,
                ..FakeState::default()
            })
            .0,
        );
        let mut runs = self.runs.lock().unwrap();
        runs.push(Ctl {
            config: Arc::new(config.clone()),
            state: state.clone(),
        });
        let pid = 1000 + runs.len() as u32;
        self.launched.send_replace(runs.len());
        Ok(FakeProcess {
            pid,
            on_stop: *self.on_stop.lock().unwrap(),
            state,
            finished: false,
        })
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    launcher: Arc<FakeLauncher>,
    handle: ProgramHandle,
    events: broadcast::Receiver<Event>,
}

fn program(version: &str) -> ProgramConfig {
    let mut p = ProgramConfig::new("fake", ProgramCommand::Argv(vec!["fake".into()]));
    p.start_seconds = 0;
    p.stop_timeout = 10;
    p.environ = vec![("VERSION".into(), version.into())];
    p
}

/// What every program of a supervisor shares, in `dir`, with room for `events` events.
fn shared_in(dir: &std::path::Path, events: usize) -> Arc<Shared> {
    Arc::new(Shared {
        events: broadcast::channel(events).0,
        base_dir: dir.to_path_buf(),
        log_dir: dir.to_path_buf(),
        spawn: SpawnOptions::default(),
        observers: Vec::new().into(),
        subreaper: false,
        cgroups: std::sync::Mutex::new(None),
        tracker: TaskTracker::new(),
        peers: Default::default(),
        tcp_batch: Default::default(),
        _in_use: crate::process_wide::InUse::new(),
    })
}

fn rig(config: ProgramConfig) -> Rig {
    let dir = tempfile::tempdir().expect("tmp");
    let shared = shared_in(dir.path(), 1024);
    let events = shared.events.subscribe();
    let launcher = Arc::new(FakeLauncher::default());
    let handle = launch_with(shared, launcher.clone(), config, None);
    Rig {
        _dir: dir,
        launcher,
        handle,
        events,
    }
}

impl Rig {
    async fn send(&self, cmd: Cmd) {
        self.handle
            .cmds
            .send(cmd)
            .await
            .expect("the task takes commands");
    }

    /// Sends a command that replies with a result; returns the reply's receiver.
    async fn ask(
        &self,
        make: fn(oneshot::Sender<Result<(), Error>>) -> Cmd,
    ) -> oneshot::Receiver<Result<(), Error>> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await;
        rx
    }

    async fn update(&self, config: ProgramConfig) -> bool {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Update(Box::new(config), tx)).await;
        rx.await.expect("update answered")
    }

    fn state(&self) -> ProgramState {
        self.handle.published.borrow().state
    }

    /// Forgets the transitions seen so far.
    fn drain(&mut self) {
        while self.events.try_recv().is_ok() {}
    }

    /// The transitions seen until the next one into `to`.
    async fn reach(&mut self, to: ProgramState) -> Vec<(ProgramState, ProgramState)> {
        let mut seen = Vec::new();
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(3600), self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("never reached {to}; saw {seen:?}"))
                .expect("events");
            seen.push((ev.from, ev.to));
            if ev.to == to {
                return seen;
            }
        }
    }
}

use ProgramState::*;

#[tokio::test(start_paused = true)]
async fn an_update_during_a_stop_is_what_the_next_start_runs() {
    let mut r = rig(program("1"));
    *r.launcher.on_stop.lock().unwrap() = OnStop::Ignore;
    r.ask(Cmd::Start)
        .await
        .await
        .expect("started")
        .expect("running");
    let stop = r.ask(Cmd::Stop).await;
    r.reach(Stopping).await;
    // A plain stop is under way: the config waits for the next start.
    assert!(!r.update(program("2")).await);
    r.launcher.run(0).exit(ExitStatus::Code(0));
    stop.await.expect("answered").expect("stopped");
    assert_eq!(r.state(), Stopped);
    assert!(!r.update(program("3")).await);
    r.ask(Cmd::Start)
        .await
        .await
        .expect("started")
        .expect("running");
    assert_eq!(r.launcher.count(), 2);
    assert_eq!(*r.launcher.run(1).config, program("3"));
    assert_eq!(*r.handle.published.borrow().config, program("3"));
}

#[tokio::test(start_paused = true)]
async fn updates_while_running_restart_once_with_the_newest_config() {
    let mut r = rig(program("1"));
    *r.launcher.on_stop.lock().unwrap() = OnStop::Ignore;
    r.ask(Cmd::Start)
        .await
        .await
        .expect("started")
        .expect("running");
    assert!(r.update(program("2")).await);
    r.reach(Stopping).await;
    assert!(r.update(program("3")).await);
    r.launcher.run(0).exit(ExitStatus::Signal(libc::SIGTERM));
    let ctl = r.launcher.wait_launches(2).await;
    assert_eq!(*ctl.config, program("3"));
    r.reach(Running).await;
    assert_eq!(r.launcher.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_restart_during_a_stop_starts_once_the_stop_is_over() {
    let mut r = rig(program("1"));
    *r.launcher.on_stop.lock().unwrap() = OnStop::Ignore;
    r.ask(Cmd::Start)
        .await
        .await
        .expect("started")
        .expect("running");
    let stop = r.ask(Cmd::Stop).await;
    r.reach(Stopping).await;
    let restart = r.ask(Cmd::Restart).await;
    r.launcher.run(0).exit(ExitStatus::Code(0));
    stop.await.expect("answered").expect("stop done");
    restart.await.expect("answered").expect("running again");
    assert_eq!(r.launcher.count(), 2);
    assert_eq!(r.state(), Running);
    assert_eq!(r.launcher.run(0).get().signals, vec![libc::SIGTERM]);
}

#[tokio::test(start_paused = true)]
async fn a_stop_racing_an_exit_is_never_lost() {
    let mut r = rig(program("1"));
    r.ask(Cmd::Start)
        .await
        .await
        .expect("started")
        .expect("running");
    r.drain();
    // The exit and the stop arrive together; the exit is handled first (a restart), and the
    // stop then stops the new run.
    r.launcher.run(0).exit(ExitStatus::Code(1));
    let stop = r.ask(Cmd::Stop).await;
    stop.await.expect("answered").expect("stopped");
    assert_eq!(r.state(), Stopped);
    let seen = r.reach(Stopped).await;
    assert_eq!(seen[0], (Running, Exited));
    assert!(r.handle.published.borrow().pid.is_none());
}

#[tokio::test(start_paused = true)]
async fn stop_timeout_kills_what_ignores_the_stop_signal() {
    let mut r = rig(program("1"));
    *r.launcher.on_stop.lock().unwrap() = OnStop::Ignore;
    r.ask(Cmd::Start)
        .await
        .await
        .expect("started")
        .expect("running");
    let t0 = Instant::now();
    r.ask(Cmd::Stop)
        .await
        .await
        .expect("answered")
        .expect("stopped");
    assert!(
        t0.elapsed() >= Duration::from_secs(10),
        "{:?}",
        t0.elapsed()
    );
    let run = r.launcher.run(0).get();
    assert_eq!(run.signals, vec![libc::SIGTERM]);
    assert!(run.killed);
    assert_eq!(r.reach(Stopped).await.last(), Some(&(Stopping, Stopped)));
}

#[tokio::test(start_paused = true)]
async fn failed_starts_back_off_doubling_then_go_fatal() {
    let mut p = program("1");
    p.start_retries = 3;
    let mut r = rig(p);
    *r.launcher.failing.lock().unwrap() = 3;
    let t0 = Instant::now();
    let err = r
        .ask(Cmd::Start)
        .await
        .await
        .expect("answered")
        .expect_err("fails");
    assert!(
        err.to_string().contains("3 failed starts in a row"),
        "{err}"
    );
    assert!(err.to_string().contains("no such file"), "{err}");
    // 1 s after the first failure, 2 s after the second.
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    let seen = r.reach(Fatal).await;
    assert_eq!(
        seen,
        vec![
            (Stopped, Starting),
            (Starting, Backoff),
            (Backoff, Starting),
            (Starting, Backoff),
            (Backoff, Starting),
            (Starting, Fatal)
        ]
    );
    // A start by hand tries afresh.
    r.ask(Cmd::Start)
        .await
        .await
        .expect("answered")
        .expect("running");
}

#[tokio::test(start_paused = true)]
async fn a_stop_in_backoff_cancels_the_retry() {
    let mut r = rig(program("1"));
    *r.launcher.failing.lock().unwrap() = 1;
    let start = r.ask(Cmd::Start).await;
    r.reach(Backoff).await;
    r.ask(Cmd::Stop)
        .await
        .await
        .expect("answered")
        .expect("stopped");
    let err = start
        .await
        .expect("answered")
        .expect_err("stopped before running");
    assert!(matches!(err, Error::StoppedBeforeRunning(_)), "{err}");
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(r.launcher.count(), 0);
    assert_eq!(r.state(), Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_removal_during_a_start_answers_every_waiter_and_ends_the_task() {
    let mut p = program("1");
    p.start_seconds = 5;
    let mut r = rig(p);
    let start = r.ask(Cmd::Start).await;
    r.reach(Starting).await;
    let removed = r.ask(Cmd::Remove).await;
    let err = start.await.expect("answered").expect_err("never running");
    assert!(matches!(err, Error::StoppedBeforeRunning(_)), "{err}");
    removed.await.expect("answered").expect("removed");
    (&mut r.handle.task).await.expect("the task ended");
    assert!(r.handle.cmds.is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_task_that_panics_leaves_its_program_fatal_and_usable() {
    let mut r = rig(program("1"));
    *r.launcher.on_stop.lock().unwrap() = OnStop::Panic;
    r.ask(Cmd::Start)
        .await
        .await
        .expect("started")
        .expect("running");
    let stop = r.ask(Cmd::Stop).await;
    // The failed task's waiter is answered by the one that took over: nothing runs.
    stop.await.expect("answered").expect("stopped");
    r.reach(Fatal).await;
    let status = r.handle.status();
    assert_eq!(status.state, Fatal);
    assert!(status.pid.is_none());
    let why = status.last_error.unwrap_or_default();
    assert!(why.contains("told to panic"), "{why}");
    // Its processes were let go of, and so killed.
    assert!(r.launcher.run(0).get().dropped);
    *r.launcher.on_stop.lock().unwrap() = OnStop::Exit;
    r.ask(Cmd::Start)
        .await
        .await
        .expect("answered")
        .expect("running again");
    r.ask(Cmd::Stop)
        .await
        .await
        .expect("answered")
        .expect("stopped");
}

#[tokio::test(start_paused = true)]
async fn a_task_that_panics_during_a_removal_still_removes_its_program() {
    let mut r = rig(program("1"));
    *r.launcher.on_stop.lock().unwrap() = OnStop::Panic;
    r.ask(Cmd::Start)
        .await
        .await
        .expect("started")
        .expect("running");
    let removed = r.ask(Cmd::Remove).await;
    removed.await.expect("answered").expect("removed");
    (&mut r.handle.task).await.expect("the task ended");
    assert!(
        r.launcher.run(0).get().dropped,
        "its processes were let go of"
    );
}

#[tokio::test(start_paused = true)]
async fn an_exit_whose_status_another_process_took_still_restarts() {
    let mut r = rig(program("1"));
    r.ask(Cmd::Start)
        .await
        .await
        .expect("started")
        .expect("running");
    r.drain();
    r.launcher.run(0).exit(ExitStatus::Unknown);
    r.launcher.wait_launches(2).await;
    let seen = r.reach(Running).await;
    assert_eq!(
        seen,
        vec![(Running, Exited), (Exited, Starting), (Starting, Running)]
    );
    let st = r.handle.status();
    assert_eq!((st.exit_code, st.exit_signal, st.restarts), (None, None, 1));
}

#[tokio::test(start_paused = true)]
async fn over_memory_max_it_is_restarted_and_says_why() {
    let mut p = program("1");
    p.memory_max = Some(100 << 20);
    let mut r = rig(p);
    r.ask(Cmd::Start)
        .await
        .await
        .expect("started")
        .expect("running");
    r.launcher.run(0).state.send_modify(|s| s.memory = 50 << 20);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(r.launcher.count(), 1, "restarted under its memory_max");
    r.drain();
    r.launcher
        .run(0)
        .state
        .send_modify(|s| s.memory = 300 << 20);
    r.launcher.wait_launches(2).await;
    let seen = r.reach(Running).await;
    assert_eq!(
        seen,
        vec![
            (Running, Stopping),
            (Stopping, Stopped),
            (Stopped, Starting),
            (Starting, Running)
        ]
    );
    let st = r.handle.status();
    assert_eq!(st.restarts, 1);
    let why = st.last_error.unwrap_or_default();
    assert!(why.contains("over memory_max 100.0 MiB"), "{why}");
    // A start by hand clears the reason.
    r.ask(Cmd::Restart)
        .await
        .await
        .expect("answered")
        .expect("running");
    assert_eq!(r.handle.status().last_error, None);
}

#[tokio::test(start_paused = true)]
async fn a_start_by_hand_in_backoff_tries_at_once() {
    let mut p = program("1");
    p.start_retries = 5;
    let mut r = rig(p);
    *r.launcher.failing.lock().unwrap() = 3;
    let first = r.ask(Cmd::Start).await;
    r.reach(Backoff).await;
    r.reach(Backoff).await;
    // Two failures: the next try would be 2 s away; a start by hand does not wait for it.
    let t0 = Instant::now();
    let again = r.ask(Cmd::Start).await;
    r.reach(Starting).await;
    assert_eq!(t0.elapsed(), Duration::ZERO);
    // It failed once more (the third failing launch), then runs at the next try, 1 s later
    // (the count started afresh).
    again.await.expect("answered").expect("running");
    first.await.expect("answered").expect("running");
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn an_exit_at_the_end_of_start_seconds_counts_as_up() {
    let mut p = program("1");
    p.start_seconds = 2;
    let mut r = rig(p);
    *r.launcher.exit_after.lock().unwrap() = Some(Duration::from_secs(2));
    let start = r.ask(Cmd::Start).await;
    // The process exits by itself at the very instant start_seconds end: both are ready
    // when the task looks, and the exit is looked at first.
    start.await.expect("answered").expect("it was up");
    let seen = r.reach(Exited).await;
    assert_eq!(
        seen,
        vec![(Stopped, Starting), (Starting, Running), (Running, Exited)]
    );
}

/// The next event into `to`, with the events before it.
async fn next_event(r: &mut Rig, to: ProgramState) -> Event {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(3600), r.events.recv())
            .await
            .unwrap_or_else(|_| panic!("never reached {to}"))
            .expect("events");
        if ev.to == to {
            return ev;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_backs_off_doubling_and_ends_when_it_stays_up() {
    let mut p = program("1");
    p.start_limit = crate::config::StartLimit {
        burst: 3,
        interval: Duration::from_secs(60),
    };
    let mut r = rig(p);
    *r.launcher.exit_after.lock().unwrap() = Some(Duration::from_secs(1));
    r.ask(Cmd::Start)
        .await
        .await
        .expect("answered")
        .expect("running");
    // Two exits restart it at once; the third makes the loop.
    for _ in 0..2 {
        let t = Instant::now();
        next_event(&mut r, Exited).await;
        let ev = next_event(&mut r, Starting).await;
        assert_eq!(ev.from, Exited);
        assert_eq!(t.elapsed(), Duration::from_secs(1));
    }
    let ev = next_event(&mut r, Backoff).await;
    assert_eq!(ev.from, Exited);
    assert_eq!(
        ev.reason.as_deref(),
        Some("crash loop: 3 exits in 60s (last: exit 0)")
    );
    let st = r.handle.status();
    assert_eq!(
        st.last_error.as_deref(),
        Some("crash loop: 3 exits in 60s (last: exit 0)")
    );
    assert_eq!(st.restarts, 2);
    // 1 s, then 2 s, then 4 s before each restart while the loop lasts; never fatal.
    for wait in [1, 2, 4] {
        let t = Instant::now();
        next_event(&mut r, Starting).await;
        assert_eq!(t.elapsed(), Duration::from_secs(wait));
        if wait < 4 {
            next_event(&mut r, Backoff).await;
        }
    }
    assert_eq!(r.handle.status().restarts, 5);
    // Up longer than the interval: its exit ends the loop, restarted at once.
    *r.launcher.exit_after.lock().unwrap() = Some(Duration::from_secs(61));
    next_event(&mut r, Backoff).await;
    next_event(&mut r, Running).await;
    assert_eq!(
        r.handle.status().last_error.as_deref(),
        Some("crash loop: 3 exits in 60s (last: exit 0)"),
        "said while the loop lasts"
    );
    next_event(&mut r, Exited).await;
    let t = Instant::now();
    next_event(&mut r, Starting).await;
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(r.handle.status().last_error, None, "the loop is over");
}

#[tokio::test(start_paused = true)]
async fn a_stop_cancels_a_crash_loop_backoff_and_a_start_forgets_the_loop() {
    let mut p = program("1");
    p.start_limit = crate::config::StartLimit {
        burst: 2,
        interval: Duration::from_secs(60),
    };
    let mut r = rig(p);
    *r.launcher.exit_after.lock().unwrap() = Some(Duration::from_secs(1));
    r.ask(Cmd::Start)
        .await
        .await
        .expect("answered")
        .expect("running");
    next_event(&mut r, Backoff).await;
    let launched = r.launcher.count();
    r.ask(Cmd::Stop)
        .await
        .await
        .expect("answered")
        .expect("stopped");
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        r.launcher.count(),
        launched,
        "the pending restart is cancelled"
    );
    assert_eq!(r.state(), Stopped);
    // Started by hand: at once, and its next exit is the first of a new count.
    r.drain();
    let t = Instant::now();
    r.ask(Cmd::Start)
        .await
        .await
        .expect("answered")
        .expect("running");
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(r.handle.status().last_error, None);
    next_event(&mut r, Exited).await;
    let ev = tokio::time::timeout(Duration::from_secs(3600), r.events.recv())
        .await
        .expect("an event")
        .expect("events");
    assert_eq!((ev.from, ev.to), (Exited, Starting), "restarted at once");
}

#[tokio::test(start_paused = true)]
async fn burst_zero_never_makes_a_crash_loop() {
    let mut p = program("1");
    p.start_limit.burst = 0;
    let mut r = rig(p);
    *r.launcher.exit_after.lock().unwrap() = Some(Duration::from_millis(10));
    r.ask(Cmd::Start)
        .await
        .await
        .expect("answered")
        .expect("running");
    let seen = loop {
        let ev = r.events.recv().await.expect("events");
        assert_ne!(ev.to, Backoff, "no backoff with burst 0");
        if r.launcher.count() >= 50 {
            break r.handle.status();
        }
    };
    assert!(seen.restarts >= 49, "{seen:?}");
}

#[test]
fn a_crash_loop_says_its_limit_as_written() {
    let text =
        |burst, interval| crash_loop_text(crate::config::StartLimit { burst, interval }, "exit 1");
    assert_eq!(
        text(5, Duration::from_secs(60)),
        "crash loop: 5 exits in 60s (last: exit 1)"
    );
    assert_eq!(
        text(3, Duration::from_secs(90)),
        "crash loop: 3 exits in 90s (last: exit 1)"
    );
    assert_eq!(
        text(2, Duration::from_millis(500)),
        "crash loop: 2 exits in 500ms (last: exit 1)"
    );
    assert_eq!(
        text(2, Duration::from_millis(1500)),
        "crash loop: 2 exits in 1500ms (last: exit 1)"
    );
    assert_eq!(
        text(2, Duration::from_micros(250)),
        "crash loop: 2 exits in 250µs (last: exit 1)"
    );
}

#[test]
fn an_exit_cause_is_short() {
    assert_eq!(exit_cause(ExitStatus::Code(3)), "exit 3");
    assert_eq!(exit_cause(ExitStatus::Signal(libc::SIGSEGV)), "SIGSEGV");
    assert_eq!(exit_cause(ExitStatus::Signal(200)), "signal 200");
}

/// The waits between a crash loop's restarts, with the program up `up` each run.
async fn loop_waits(r: &mut Rig, n: usize) -> Vec<u64> {
    let mut waits = Vec::new();
    while waits.len() < n {
        next_event(r, Exited).await;
        let t = Instant::now();
        next_event(r, Starting).await;
        waits.push(t.elapsed().as_secs());
    }
    waits
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_backoff_reaches_sixty_seconds_and_stays() {
    // The default limit (5 in 60s), a run of 1 s: the backoff spreads the exits far over
    // the interval, and must not end the loop for it.
    let mut r = rig(program("1"));
    *r.launcher.exit_after.lock().unwrap() = Some(Duration::from_secs(1));
    r.ask(Cmd::Start)
        .await
        .await
        .expect("answered")
        .expect("running");
    let waits = loop_waits(&mut r, 14).await;
    assert_eq!(waits, [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
    assert!(r
        .handle
        .status()
        .last_error
        .is_some_and(|e| e.starts_with("crash loop: 5 exits in 60s (last: ")));
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_ends_once_a_run_stays_up_for_the_interval() {
    let mut p = program("1");
    p.start_limit = crate::config::StartLimit {
        burst: 2,
        interval: Duration::from_secs(10),
    };
    let mut r = rig(p);
    *r.launcher.exit_after.lock().unwrap() = Some(Duration::from_secs(1));
    r.ask(Cmd::Start)
        .await
        .await
        .expect("answered")
        .expect("running");
    next_event(&mut r, Backoff).await;
    *r.launcher.exit_after.lock().unwrap() = Some(Duration::from_secs(3600));
    next_event(&mut r, Running).await;
    let up = Instant::now();
    assert!(r
        .handle
        .status()
        .last_error
        .is_some_and(|e| e.starts_with("crash loop: ")));
    // Cleared while it runs, once it has been up for the interval, not at its next exit.
    let mut changes = r.handle.published.clone();
    while r.handle.status().last_error.is_some() {
        tokio::time::timeout(Duration::from_secs(3600), changes.changed())
            .await
            .expect("cleared in time")
            .expect("published");
    }
    assert_eq!(up.elapsed(), Duration::from_secs(10));
    assert_eq!(r.state(), Running);
}

/// The most a program's task future may be, in bytes, in a debug build (a release build's is
/// smaller). It lives as long as the program: 5,000 programs hold 5,000 of them. The task
/// itself is ~800 bytes (its phase holds the run's process group) and the wait of an idle
/// program ~500 (its leader's exit, its commands, a timer); every other step (a start's
/// preparation and spawn, a stop, a probe's wait) is boxed while it runs. Before, the future
/// held the largest of them all, 3,856 bytes: over this bound.
const MAX_TASK_FUTURE: usize = 1_536;

#[test]
fn a_program_task_future_holds_only_the_idle_wait() {
    let dir = tempfile::tempdir().expect("tmp");
    let shared = shared_in(dir.path(), 16);
    let config = Arc::new(program("1"));
    let launcher = Arc::new(RealLauncher::new(shared.clone()));
    let logs = Arc::new(ProgramLogs::new(&config, &shared));
    let published = Arc::new(super::status_watch::channel(Published::new(config.clone())).0);
    let task = Task::new(shared, launcher, logs, published, config);
    let (_tx, rx) = super::mailbox::channel(1);
    let future = supervise(task, rx);
    let size = std::mem::size_of_val(&future);
    assert!(
        size <= MAX_TASK_FUTURE,
        "a program's task future is {size} bytes (at most {MAX_TASK_FUTURE}): is a new step \
         awaited in the task's loop without a box?"
    );
}
