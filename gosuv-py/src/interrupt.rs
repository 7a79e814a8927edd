//! Blocking calls that release the GIL and stay interruptible by Ctrl-C.
//!
//! Python runs signal handlers only on the main thread and only between bytecodes, so a call
//! that blocks in Rust for seconds would hold off `KeyboardInterrupt` until it returned. Each
//! call that can wait runs on a thread of its own while the caller, detached from the
//! interpreter, waits for its result in short slices and checks for signals between them.
//! An interrupted call is only abandoned by the caller: the supervisor finishes the request
//! (a stop still stops), as with a timeout.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// How often a waiting call looks for a pending signal.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// Runs `f` on its own thread and waits for it without the GIL, raising the exception of a
/// signal handler (`KeyboardInterrupt` for Ctrl-C) as soon as one fires.
pub(crate) fn run<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, mut rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("gosuv-call".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread for the call: {e}")))?;
    loop {
        // `&mut` so the closure may move to the detached side (a receiver is not `Sync`).
        let rx = &mut rx;
        match py.detach(move || rx.recv_timeout(SLICE)) {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err(
                    "gosuv: the call panicked (a bug: please report it with the traceback)",
                ))
            }
        }
    }
}
