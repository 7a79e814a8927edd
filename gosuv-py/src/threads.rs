//! `gosuv._native.start_thread`: runs a Python callable on a new native thread, for
//! `gosuv.aio`.
//!
//! `threading.Thread.start()` waits until the new thread has started, which on a busy
//! machine stalls an event loop for milliseconds; `std::thread::spawn` returns at once, and
//! the thread takes the GIL only when it runs.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Calls `target()` on a new thread named `gosuv-aio` and returns at once. An exception it
/// raises goes to `sys.unraisablehook` (`gosuv.aio` catches its own).
#[pyfunction]
pub fn start_thread(target: Py<PyAny>) -> PyResult<()> {
    std::thread::Builder::new()
        .name("gosuv-aio".into())
        .spawn(move || {
            // An interpreter that is finalizing has no thread to run it on; then nothing runs.
            Python::try_attach(|py| {
                if let Err(e) = target.call0(py) {
                    e.write_unraisable(py, Some(target.bind(py)));
                }
            });
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
    Ok(())
}
