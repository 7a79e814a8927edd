//! The native side of `gosuv.aio`: calls that run on native threads which never take the
//! GIL, and hand their results back to the event loop through an eventfd.
//!
//! An event loop's thread must never wait for the GIL. A worker thread that takes it (to
//! build the result's Python objects, or to call `loop.call_soon_threadsafe`) can be
//! preempted while it holds it; the loop's thread then waits for CPython's switch interval
//! (5 ms) before it can force the GIL back. So each call is split in three:
//!
//! 1. on the loop's thread (with the GIL): the arguments are checked and converted into
//!    the core's Rust types, and a [`Work`] closure that holds only Rust values is submitted
//!    to the [`AioHub`];
//! 2. a call that waits (`wait`, `wait_for`, `start`/`stop`/`restart`, a program block's
//!    entry) runs as a task ([`AsyncWork`]) of gosuv.aio's own runtime (one worker thread,
//!    `gosuv-aio-rt`), which cancelling the await aborts; any other call runs on a new native
//!    thread (`gosuv-aio`, never attached to the interpreter, started by the process's
//!    dispatcher thread so that the loop's thread never maps a thread's stack). The shared
//!    threads start when `gosuv.aio` is imported, not on a loop's thread. Either returns a
//!    [`Finish`] closure, which again holds only Rust values; the hub queues it and writes
//!    to its eventfd;
//! 3. on the loop's thread again: `loop.add_reader` on the eventfd calls `AioHub.drain`,
//!    which runs the queued closures with the GIL (building the `Status`, the exception...)
//!    and gives `gosuv.aio` the results by call id, to set the futures.
//!
//! Nothing in [`Work`] or [`Finish`] is a Python object (`Send + 'static` closures of this
//! crate, built from owned Rust values), so neither running nor dropping one on a worker
//! thread touches the interpreter; `tests/test_aio.py` checks it by running a call while the
//! loop's thread holds the GIL.

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use gosuv::blocking;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors::SUPERVISOR_CLOSED;

/// Turns a finished call's Rust result into its Python result, on the loop's thread.
pub(crate) type Finish = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// A call's blocking part, run on a worker thread without the GIL. The flag is set when the
/// awaiting task gave up (a wait that can last should look at it now and then and end).
pub(crate) type Work = Box<dyn FnOnce(&AtomicBool) -> Finish + Send>;

/// A call that waits, run as a task of gosuv.aio's runtime: cancelling the awaiting task
/// aborts it (drops it), so an abandoned wait holds no thread and no supervisor.
pub(crate) type AsyncWork = Pin<Box<dyn Future<Output = Finish> + Send>>;

/// What every hub of this process shares, started once per process (again in a forked
/// child, which has none of its parent's threads): the runtime of the waits (one worker
/// thread, `gosuv-aio-rt`), the dispatcher of the blocking calls (`gosuv-aio-hub`) and the
/// reaper (`gosuv-aio-reaper`), which drops and shuts down supervisors off the loop's
/// thread and off the runtime.
struct Shared {
    pid: u32,
    rt: tokio::runtime::Runtime,
    jobs: mpsc::Sender<Job>,
    reap: mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

static SHARED: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

fn shared() -> Result<Arc<Shared>, String> {
    let me = std::process::id();
    let mut slot = lock(&SHARED);
    if let Some(s) = slot.as_ref() {
        if s.pid == me {
            return Ok(s.clone());
        }
        // A fork's copy: its threads are not in this process; never touch them.
        if let Some(old) = slot.take() {
            std::mem::forget(old);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("gosuv-aio-rt")
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start gosuv.aio's runtime: {e}"))?;
    let (jobs, queue) = mpsc::channel();
    std::thread::Builder::new()
        .name("gosuv-aio-hub".into())
        .spawn(move || dispatch(queue))
        .map_err(|e| format!("cannot start gosuv.aio's thread: {e}"))?;
    let (reap, reaped) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
    std::thread::Builder::new()
        .name("gosuv-aio-reaper".into())
        .spawn(move || {
            for job in reaped {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })
        .map_err(|e| format!("cannot start gosuv.aio's thread: {e}"))?;
    let s = Arc::new(Shared {
        pid: me,
        rt,
        jobs,
        reap,
    });
    *slot = Some(s.clone());
    Ok(s)
}

/// Starts the threads gosuv.aio shares (`import gosuv.aio` calls it, so that no loop's
/// thread starts one).
#[pyfunction]
pub fn _aio_init() -> PyResult<()> {
    shared().map(|_| ()).map_err(PyRuntimeError::new_err)
}

/// Runs `job` on the reaper thread; gives it back when there is none.
pub(crate) fn reap(job: Box<dyn FnOnce() + Send>) -> Result<(), Box<dyn FnOnce() + Send>> {
    match shared() {
        Ok(s) => s.reap.send(job).map_err(|e| e.0),
        Err(_) => Err(job),
    }
}

/// A supervisor held by a task of the runtime: its last reference must not be dropped
/// there (dropping a supervisor shuts it down and drops its runtime, which tokio forbids
/// inside another runtime), so it goes to the reaper.
pub(crate) struct Held(Option<Arc<blocking::Supervisor>>);

impl Held {
    pub(crate) fn new(sup: Arc<blocking::Supervisor>) -> Self {
        Held(Some(sup))
    }
}

impl Held {
    /// Another reference to the supervisor.
    pub(crate) fn clone_arc(&self) -> Arc<blocking::Supervisor> {
        self.0.clone().expect("only None while dropped")
    }
}

impl std::ops::Deref for Held {
    type Target = blocking::Supervisor;
    fn deref(&self) -> &blocking::Supervisor {
        self.0.as_deref().expect("only None while dropped")
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(sup) = self.0.take() {
            if let Err(job) = reap(Box::new(move || drop(sup))) {
                // No reaper: let a thread of its own drop it.
                let _ = std::thread::Builder::new()
                    .name("gosuv-aio-reaper".into())
                    .spawn(job);
            }
        }
    }
}

/// A call of either kind.
pub(crate) enum Call {
    Blocking(Work),
    Waiting(AsyncWork),
}

/// A [`Finish`] that gives `value`, converted on the loop's thread.
pub(crate) fn give<T>(value: T) -> Finish
where
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    Box::new(move |py| pyo3::IntoPyObjectExt::into_py_any(value, py))
}

/// A [`Finish`] that raises the core's error, or gives `ok(value)`.
pub(crate) fn finish_with<T, F>(result: gosuv::Result<T>, ok: F) -> Finish
where
    T: Send + 'static,
    F: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    Box::new(move |py| match result {
        Ok(v) => ok(py, v),
        Err(e) => Err(crate::errors::to_py(py, e)),
    })
}

/// A call's result: its id, whether it is the call's last, and what makes the result.
type Done = (u64, bool, Finish);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a worker thread needs to hand its result back. It shares no lock with the loop's
/// thread: a lock held by a worker that the kernel preempts would stall the loop as the GIL
/// did. The channel's send is lock-free (nobody ever blocks on its receiving end), the
/// counter atomic, and the eventfd is the worker's own reference to it, so closing the hub
/// never closes it under a worker's feet (it closes when the last worker lets go of it).
#[derive(Clone)]
struct Handback {
    tx: mpsc::Sender<Done>,
    fd: Arc<OwnedFd>,
    completed: Arc<AtomicUsize>,
}

impl Handback {
    /// Queues a call's result and wakes the loop (on a worker thread, without the GIL). A
    /// closed hub has dropped its receiver: the result is dropped then, here.
    fn complete(self, id: u64, finish: Finish) {
        self.send(id, true, finish);
    }

    /// Queues one result of a call (its last if `last`) and wakes the loop.
    fn send(&self, id: u64, last: bool, finish: Finish) {
        if self.tx.send((id, last, finish)).is_err() {
            return;
        }
        self.completed.fetch_add(1, Ordering::Release);
        let one: u64 = 1;
        // SAFETY: the fd is an eventfd kept open by this Arc; 8 bytes from a u64. It cannot
        // fail short of 2^64 - 1 writes (EAGAIN), and the loop reads it on each drain.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// How a call that gives several results (a wait for a line's batches) hands back each
/// but its last, from its task, without the GIL.
pub(crate) struct Emitter {
    id: u64,
    back: Handback,
}

impl Emitter {
    /// Hands `finish` to the loop as one more result of the call.
    pub(crate) fn emit(&self, finish: Finish) {
        self.back.send(self.id, false, finish);
    }
}

/// A call for the dispatcher to run on a thread of its own.
struct Job {
    id: u64,
    work: Work,
    abandoned: Arc<AtomicBool>,
    back: Handback,
}

/// An open hub's ends: the results' channel and eventfd, and the dispatcher's queue.
struct Open {
    tx: mpsc::Sender<Done>,
    rx: mpsc::Receiver<Done>,
    fd: Arc<OwnedFd>,
    shared: Arc<Shared>,
}

/// A call under way: its abandon flag, and the task to abort for a wait.
struct Running {
    flag: Arc<AtomicBool>,
    task: Option<tokio::task::AbortHandle>,
}

impl Running {
    fn abandon(&self) {
        self.flag.store(true, Ordering::Relaxed);
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// The dispatcher thread (`gosuv-aio-hub`, one per process): starts a thread (`gosuv-aio`)
/// for each blocking call. Starting a thread maps its stack, which waits for
/// the process's memory map lock behind any thread that is faulting a page in; the loop's
/// thread must not wait for that, so it only queues the call.
fn dispatch(jobs: mpsc::Receiver<Job>) {
    for job in jobs {
        let Job {
            id,
            work,
            abandoned,
            back,
        } = job;
        let (slot_tx, slot_rx) = mpsc::channel::<Handback>();
        let spawned = std::thread::Builder::new()
            .name("gosuv-aio".into())
            .spawn(move || {
                let finish =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&abandoned)))
                        .unwrap_or_else(|_| {
                            Box::new(|_py| {
                                Err(PyRuntimeError::new_err(
                                    "gosuv: the call panicked (a bug: please report it)",
                                ))
                            })
                        });
                if let Ok(back) = slot_rx.recv() {
                    back.complete(id, finish);
                }
            });
        match spawned {
            Ok(_) => {
                let _ = slot_tx.send(back);
            }
            Err(e) => {
                let message = format!("cannot start a thread for the call: {e}");
                back.complete(
                    id,
                    Box::new(move |_py| Err(PyRuntimeError::new_err(message))),
                );
            }
        }
    }
}

/// The hub's side, used on the loop's thread only (the locks are never contended by a
/// worker).
struct Ends {
    /// `None` once closed.
    open: Option<Open>,
    /// Each call whose result has not been drained yet.
    running: HashMap<u64, Running>,
    next_id: u64,
}

/// Where a `gosuv.aio` supervisor's calls hand back their results: an eventfd that the
/// event loop watches, and a queue of finished calls. Made and used by `gosuv.aio` only.
#[pyclass(frozen, module = "gosuv._native")]
pub struct AioHub {
    ends: Mutex<Ends>,
    /// Results sent and not drained yet.
    completed: Arc<AtomicUsize>,
}

impl AioHub {
    /// Runs `work` on a new thread; returns the call's id, which `drain` gives back with its
    /// result.
    pub(crate) fn submit(&self, py: Python<'_>, work: Work) -> PyResult<u64> {
        let abandoned = Arc::new(AtomicBool::new(false));
        let mut ends = lock(&self.ends);
        let Some(open) = ends.open.as_ref() else {
            return Err(SUPERVISOR_CLOSED.err(
                py,
                "this gosuv.aio supervisor is shut down: it accepts no more calls".into(),
                &[],
            ));
        };
        let back = Handback {
            tx: open.tx.clone(),
            fd: open.fd.clone(),
            completed: self.completed.clone(),
        };
        let id = ends.next_id + 1;
        let job = Job {
            id,
            work,
            abandoned: abandoned.clone(),
            back,
        };
        if open.shared.jobs.send(job).is_err() {
            return Err(PyRuntimeError::new_err(
                "gosuv.aio: the dispatcher thread is gone (a bug: please report it)",
            ));
        }
        ends.next_id = id;
        ends.running.insert(
            id,
            Running {
                flag: abandoned,
                task: None,
            },
        );
        Ok(id)
    }

    /// Submits a call of either kind.
    pub(crate) fn submit_call(&self, py: Python<'_>, call: Call) -> PyResult<u64> {
        match call {
            Call::Blocking(work) => self.submit(py, work),
            Call::Waiting(work) => self.submit_async(py, work),
        }
    }

    /// Runs `work` as a task of the runtime (no thread of its own); `abandon` aborts it.
    pub(crate) fn submit_async(&self, py: Python<'_>, work: AsyncWork) -> PyResult<u64> {
        self.submit_stream(py, |_| work)
    }

    /// Runs the task that `make` gives as a task of the runtime, as `submit_async`; the
    /// task may hand results to the loop before its last one through the [`Emitter`] that
    /// `make` receives (each one a `drain` item that is not `last`).
    pub(crate) fn submit_stream(
        &self,
        py: Python<'_>,
        make: impl FnOnce(Emitter) -> AsyncWork,
    ) -> PyResult<u64> {
        let mut ends = lock(&self.ends);
        let Some(open) = ends.open.as_ref() else {
            return Err(SUPERVISOR_CLOSED.err(
                py,
                "this gosuv.aio supervisor is shut down: it accepts no more calls".into(),
                &[],
            ));
        };
        let back = Handback {
            tx: open.tx.clone(),
            fd: open.fd.clone(),
            completed: self.completed.clone(),
        };
        let id = ends.next_id + 1;
        let rt = open.shared.rt.handle();
        let work = make(Emitter {
            id,
            back: back.clone(),
        });
        let inner = rt.spawn(work);
        let task = inner.abort_handle();
        // Hands back the result, a panic's error, or (aborted) an error nobody reads, so
        // that the call's entry goes either way.
        rt.spawn(async move {
            let finish: Finish = match inner.await {
                Ok(finish) => finish,
                Err(e) if e.is_panic() => Box::new(|_py| {
                    Err(PyRuntimeError::new_err(
                        "gosuv: the call panicked (a bug: please report it)",
                    ))
                }),
                Err(_) => Box::new(|_py| {
                    Err(PyRuntimeError::new_err("gosuv.aio: the call was abandoned"))
                }),
            };
            back.complete(id, finish);
        });
        ends.next_id = id;
        ends.running.insert(
            id,
            Running {
                flag: Arc::new(AtomicBool::new(false)),
                task: Some(task),
            },
        );
        Ok(id)
    }
}

#[pymethods]
impl AioHub {
    #[new]
    fn new() -> PyResult<Self> {
        // SAFETY: eventfd takes two integers and returns a new fd or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(PyRuntimeError::new_err(format!(
                "cannot make an eventfd for gosuv.aio: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: raw is a new fd that nothing else owns.
        let fd = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
        let (tx, rx) = mpsc::channel();
        // Started by `import gosuv.aio` already (here only in a forked child).
        let shared = shared().map_err(PyRuntimeError::new_err)?;
        Ok(AioHub {
            ends: Mutex::new(Ends {
                open: Some(Open { tx, rx, fd, shared }),
                running: HashMap::new(),
                next_id: 0,
            }),
            completed: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The eventfd to watch with `loop.add_reader`; -1 once closed.
    fn fileno(&self) -> i32 {
        lock(&self.ends)
            .open
            .as_ref()
            .map_or(-1, |open| open.fd.as_raw_fd())
    }

    /// The calls' results as `(id, ok, value, last)`, `value` being the result or, when not
    /// `ok`, the exception; `last` is false for a result that more of the same call follow
    /// (a wait for a line's batches). Resets the eventfd. On the loop's thread.
    fn drain(&self, py: Python<'_>) -> Vec<(u64, bool, Py<PyAny>, bool)> {
        let done: Vec<Done> = {
            let mut ends = lock(&self.ends);
            let Some(Open { rx, fd, .. }) = ends.open.as_ref() else {
                return Vec::new();
            };
            let mut count: u64 = 0;
            // SAFETY: fd is an open eventfd; reads 8 bytes into a u64. EAGAIN (nothing
            // written since the last read) is fine. Read before the queue is emptied, so a
            // result queued after this read writes again and is not missed.
            unsafe { libc::read(fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
            let done: Vec<Done> = rx.try_iter().collect();
            for (id, last, _) in &done {
                if *last {
                    ends.running.remove(id);
                }
            }
            done
        };
        self.completed.fetch_sub(done.len(), Ordering::AcqRel);
        done.into_iter()
            .map(|(id, last, finish)| match finish(py) {
                Ok(v) => (id, true, v, last),
                Err(e) => (id, false, e.into_value(py).into_any(), last),
            })
            .collect()
    }

    /// How many finished calls wait for `drain` (without releasing the GIL).
    fn completed(&self) -> usize {
        self.completed.load(Ordering::Acquire)
    }

    /// How many calls are under way or not drained yet.
    fn running(&self) -> usize {
        lock(&self.ends).running.len()
    }

    /// Tells the call `id` that nobody waits for it any more: a wait of the runtime (`wait`,
    /// `wait_for`, the wait of a start, stop or restart, a program block's start) is dropped
    /// at once (the request itself, a start say, carries on); a stream's wait ends within
    /// 50 ms. A call that does not wait carries on. Unknown ids are ignored.
    fn abandon(&self, id: u64) {
        if let Some(call) = lock(&self.ends).running.get(&id) {
            call.abandon();
        }
    }

    /// Lets go of the eventfd (closed at once, or by the last worker still under way) and
    /// the queue: results that come later are dropped on their worker thread, and every
    /// wait under way is abandoned. Calling it again does nothing.
    fn close(&self) {
        let (open, running) = {
            let mut ends = lock(&self.ends);
            (ends.open.take(), std::mem::take(&mut ends.running))
        };
        for call in running.values() {
            call.abandon();
        }
        drop(open);
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.ends).open.is_none()
    }
}
