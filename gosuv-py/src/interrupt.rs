//! Blocking calls that release the GIL and stay interruptible by Ctrl-C.
//!
//! Python runs signal handlers only on the main thread and only between bytecodes, so a call
//! that blocks in Rust for seconds would hold off `KeyboardInterrupt` until it returned. Each
//! call that can wait runs on a thread of its own while the caller, detached from the
//! interpreter, waits for its result in short slices and checks for signals between them.
//! An interrupted call is only abandoned by the caller: the supervisor finishes the request,
//! as with a timeout.
//!
//! A call that waits for programs to stop ([`run_stopping`]: `stop`, `remove`, `shutdown`,
//! the end of a `with` block) is the exception. Ctrl-C there means "stop now": the usual way
//! to get there is a first Ctrl-C that ended the test or script, whose clean-up is this
//! graceful stop, and nobody presses Ctrl-C again to wait the full `stop_timeout`. The
//! programs being stopped get SIGKILL (their process group or cgroup, as any stop), the call
//! waits briefly for them to be gone, and the `KeyboardInterrupt` is raised.

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use gosuv::blocking;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// How often a waiting call looks for a pending signal.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// How long an interrupted stop waits for its killed programs to be gone before it raises.
const AFTER_KILL: Duration = Duration::from_secs(5);

fn spawn<T, F>(f: F) -> PyResult<mpsc::Receiver<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("gosuv-call".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread for the call: {e}")))?;
    Ok(rx)
}

/// Whether this is the process's first thread, the only one where Python runs signal
/// handlers (its thread id is the process id).
fn on_main_thread() -> bool {
    // SAFETY: gettid and getpid take no arguments and cannot fail.
    unsafe { libc::gettid() == libc::getpid() }
}

fn panicked() -> PyErr {
    PyRuntimeError::new_err("gosuv: the call panicked (a bug: please report it with the traceback)")
}

/// Runs `f` on its own thread and waits for it without the GIL, raising the exception of a
/// signal handler (`KeyboardInterrupt` for Ctrl-C) as soon as one fires.
pub(crate) fn run<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let mut rx = spawn(f)?;
    if !on_main_thread() {
        // No signal handler runs here: wait without taking the GIL back every slice (with
        // gosuv.aio's threads, that GIL traffic is what would stall the event loop).
        return py.detach(move || rx.recv()).map_err(|_| panicked());
    }
    loop {
        // `&mut` so the closure may move to the detached side (a receiver is not `Sync`).
        let rx = &mut rx;
        match py.detach(move || rx.recv_timeout(SLICE)) {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => return Err(panicked()),
        }
    }
}

/// Which programs a stopping call stops.
pub(crate) enum Stopping {
    /// These, by name.
    Named(Vec<String>),
    /// Every program of the supervisor.
    All,
}

/// As [`run`], for a call that waits for programs to stop: a signal's exception (Ctrl-C)
/// first kills `targets` at once, waits up to a few seconds for the call to end, and is
/// then raised. A further signal meanwhile is raised at once.
pub(crate) fn run_stopping<T, F>(
    py: Python<'_>,
    sups: Vec<Arc<blocking::Supervisor>>,
    targets: Stopping,
    f: F,
) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let mut rx = spawn(f)?;
    if !on_main_thread() {
        return py.detach(move || rx.recv()).map_err(|_| panicked());
    }
    let interrupted = loop {
        let rx = &mut rx;
        match py.detach(move || rx.recv_timeout(SLICE)) {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    break e;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Err(panicked()),
        }
    };
    py.detach(|| kill_now(&sups, &targets));
    let end = Instant::now() + AFTER_KILL;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(interrupted);
        }
        let rx = &mut rx;
        match py.detach(move || rx.recv_timeout(left.min(SLICE))) {
            Ok(_) | Err(RecvTimeoutError::Disconnected) => return Err(interrupted),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(again) = py.check_signals() {
                    // As Python chains an exception raised while another is handled.
                    let _ = again
                        .value(py)
                        .setattr("__context__", interrupted.value(py));
                    return Err(again);
                }
            }
        }
    }
}

/// Sends SIGKILL to the processes of `targets` (through their process groups or cgroups,
/// as the core signals any program), without waiting more than a second for the requests.
pub(crate) fn kill_now(sups: &[Arc<blocking::Supervisor>], targets: &Stopping) {
    let jobs: Vec<(Arc<blocking::Supervisor>, Vec<String>)> = sups
        .iter()
        .map(|s| {
            let names = match targets {
                Stopping::Named(n) => n.clone(),
                Stopping::All => s.as_async().names(),
            };
            (s.clone(), names)
        })
        .collect();
    let Ok(rx) = spawn(move || {
        for (sup, names) in &jobs {
            for name in names {
                // Not found (already gone) or no process (already stopped) is fine.
                let _ = block_on(sup.as_async().signal(name, libc::SIGKILL));
            }
        }
    }) else {
        return;
    };
    let _ = rx.recv_timeout(Duration::from_secs(1));
}

/// Wakes the thread that polls a future.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `f` to its end on this thread. For the core's command calls, which only send on a
/// channel and wait for the program task's reply (runtime-agnostic tokio channels): the
/// blocking facade has no `signal` call, and its runtime is its own.
fn block_on<F: Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
