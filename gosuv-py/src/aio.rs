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
//! 2. on a new native thread (`gosuv-aio`, never attached to the interpreter): the work runs
//!    the core's blocking call and returns a [`Finish`] closure, which again holds only Rust
//!    values; the hub queues it and writes to its eventfd;
//! 3. on the loop's thread again: `loop.add_reader` on the eventfd calls `AioHub.drain`,
//!    which runs the queued closures with the GIL (building the `Status`, the exception...)
//!    and gives `gosuv.aio` the results by call id, to set the futures.
//!
//! Nothing in [`Work`] or [`Finish`] is a Python object (`Send + 'static` closures of this
//! crate, built from owned Rust values), so neither running nor dropping one on a worker
//! thread touches the interpreter; `tests/test_aio.py` checks it by running a call while the
//! loop's thread holds the GIL.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors::SUPERVISOR_CLOSED;

/// Turns a finished call's Rust result into its Python result, on the loop's thread.
pub(crate) type Finish = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// A call's blocking part, run on a worker thread without the GIL. The flag is set when the
/// awaiting task gave up (a wait that can last should look at it now and then and end).
pub(crate) type Work = Box<dyn FnOnce(&AtomicBool) -> Finish + Send>;

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Queue {
    /// `None` once the hub is closed: results that come later are dropped.
    fd: Option<OwnedFd>,
    done: VecDeque<(u64, Finish)>,
    /// The abandon flag of each call under way.
    running: HashMap<u64, Arc<AtomicBool>>,
    next_id: u64,
}

struct Shared {
    queue: Mutex<Queue>,
}

impl Shared {
    /// Queues a call's result and wakes the loop (a worker thread; no GIL).
    fn complete(&self, id: u64, finish: Finish) {
        let mut q = lock(&self.queue);
        q.running.remove(&id);
        let Some(fd) = q.fd.as_ref().map(AsRawFd::as_raw_fd) else {
            drop(q);
            drop(finish);
            return;
        };
        q.done.push_back((id, finish));
        // Written under the lock, so `close` cannot close the fd (and the number be reused)
        // in between. An eventfd counter only overflows after 2^64 - 1 writes.
        let one: u64 = 1;
        // SAFETY: fd is an open eventfd (closed only under this lock); 8 bytes from a u64.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// Where a `gosuv.aio` supervisor's calls hand back their results: an eventfd that the
/// event loop watches, and a queue of finished calls. Made and used by `gosuv.aio` only.
#[pyclass(frozen, module = "gosuv._native")]
pub struct AioHub {
    shared: Arc<Shared>,
}

impl AioHub {
    /// Runs `work` on a new thread; returns the call's id, which `drain` gives back with its
    /// result.
    pub(crate) fn submit(&self, py: Python<'_>, work: Work) -> PyResult<u64> {
        let flag = Arc::new(AtomicBool::new(false));
        let id = {
            let mut q = lock(&self.shared.queue);
            if q.fd.is_none() {
                return Err(SUPERVISOR_CLOSED.err(
                    py,
                    "this gosuv.aio supervisor is shut down: it accepts no more calls".into(),
                    &[],
                ));
            }
            q.next_id += 1;
            let id = q.next_id;
            q.running.insert(id, flag.clone());
            id
        };
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("gosuv-aio".into())
            .spawn(move || {
                let finish = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&flag)))
                    .unwrap_or_else(|_| {
                        Box::new(|_py| {
                            Err(PyRuntimeError::new_err(
                                "gosuv: the call panicked (a bug: please report it)",
                            ))
                        })
                    });
                shared.complete(id, finish);
            });
        if let Err(e) = spawned {
            lock(&self.shared.queue).running.remove(&id);
            return Err(PyRuntimeError::new_err(format!(
                "cannot start a thread for the call: {e}"
            )));
        }
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
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(AioHub {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    fd: Some(fd),
                    done: VecDeque::new(),
                    running: HashMap::new(),
                    next_id: 0,
                }),
            }),
        })
    }

    /// The eventfd to watch with `loop.add_reader`; -1 once closed.
    fn fileno(&self) -> i32 {
        lock(&self.shared.queue)
            .fd
            .as_ref()
            .map_or(-1, AsRawFd::as_raw_fd)
    }

    /// The finished calls as `(id, ok, value)`, `value` being the result or, when not `ok`,
    /// the exception. Resets the eventfd. On the loop's thread.
    fn drain(&self, py: Python<'_>) -> Vec<(u64, bool, Py<PyAny>)> {
        let done = {
            let mut q = lock(&self.shared.queue);
            if let Some(fd) = q.fd.as_ref() {
                let mut count: u64 = 0;
                // SAFETY: fd is an open eventfd; reads 8 bytes into a u64. EAGAIN (nothing
                // written since the last read) is fine.
                unsafe { libc::read(fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
            }
            std::mem::take(&mut q.done)
        };
        done.into_iter()
            .map(|(id, finish)| match finish(py) {
                Ok(v) => (id, true, v),
                Err(e) => (id, false, e.into_value(py).into_any()),
            })
            .collect()
    }

    /// How many finished calls wait for `drain` (without releasing the GIL).
    fn completed(&self) -> usize {
        lock(&self.shared.queue).done.len()
    }

    /// How many calls are under way.
    fn running(&self) -> usize {
        lock(&self.shared.queue).running.len()
    }

    /// Tells the call `id` that nobody waits for it any more: a wait (a stream's, a line's)
    /// ends within 50 ms. A call that does not wait carries on. Unknown ids are ignored.
    fn abandon(&self, id: u64) {
        if let Some(flag) = lock(&self.shared.queue).running.get(&id) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Closes the eventfd; results that come later are dropped (without the GIL) and every
    /// wait under way is abandoned. Calling it again does nothing.
    fn close(&self) {
        let (fd, done) = {
            let mut q = lock(&self.shared.queue);
            for flag in q.running.values() {
                flag.store(true, Ordering::Relaxed);
            }
            (q.fd.take(), std::mem::take(&mut q.done))
        };
        drop(fd);
        drop(done);
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.shared.queue).fd.is_none()
    }
}
