//! `Supervisor.program(...)`: a program that lives for one `with` block.

use std::time::Duration;

use gosuv::{Error, ProgramConfig};
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;

use crate::aio::AioHub;

use crate::errors::IntoPyResult;
use crate::interrupt::{self, Stopping};
use crate::objects::Status;
use crate::supervisor::Supervisor;

/// A removal's outcome where a program already gone (removed in the block, or stopped by a
/// shutdown) is fine.
/// A blocking call of the core, run on a thread of gosuv.aio's blocking pool.
type BlockingCall = Box<dyn FnOnce(&gosuv::blocking::Supervisor) -> gosuv::Result<()> + Send>;

fn removed(r: gosuv::Result<()>) -> gosuv::Result<()> {
    match r {
        Ok(()) | Err(Error::NotFound(_)) | Err(Error::ShuttingDown) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A program for the length of a `with` block, made by `Supervisor.program(...)`.
///
/// Entering adds the program, starts it and waits until it is `running` (ready, with a
/// `ready` probe), then gives its `Status`. A start that fails (the program goes `fatal`:
/// `StartError`, whose `reason` quotes the probe's last failure) or takes longer than the
/// timeout (`Timeout`) removes the program again and raises. Leaving the block stops the
/// program, waits until none of its processes is left and removes it, also when the block
/// raised. Dependencies that the start started for it keep running.
#[pyclass(frozen, module = "gosuv")]
pub struct ScopedProgram {
    sup: Py<Supervisor>,
    config: ProgramConfig,
    timeout: Duration,
}

impl ScopedProgram {
    pub(crate) fn new(sup: Py<Supervisor>, config: ProgramConfig, timeout: Duration) -> Self {
        ScopedProgram {
            sup,
            config,
            timeout,
        }
    }

    /// Stops and removes the program; one already gone (removed in the block, or stopped
    /// by a shutdown) is fine.
    fn remove(&self, py: Python<'_>) -> PyResult<()> {
        let sup = self.sup.get().sup(py)?.clone();
        let name = self.config.name.clone();
        let targets = Stopping::Named(vec![name.clone()]);
        let done =
            interrupt::run_stopping(py, vec![sup.clone()], targets, move || sup.remove(&name))?;
        removed(done).map_err(|e| crate::errors::to_py(py, e))
    }
}

#[pymethods]
impl ScopedProgram {
    /// The program's name.
    #[getter]
    fn name(&self) -> &str {
        &self.config.name
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<Status> {
        let sup = self.sup.get().open(py)?.clone();
        let config = self.config.clone();
        py.detach(|| sup.add(config)).into_py_result(py)?;
        let name = self.config.name.clone();
        let wait = Some(self.timeout);
        let started =
            interrupt::run(py, move || sup.start(&name, wait)).and_then(|r| r.into_py_result(py));
        match started {
            Ok(st) => Status::new(py, st),
            Err(failed) => {
                if let Err(cleanup) = self.remove(py) {
                    // As Python chains an exception raised while another is handled.
                    cleanup.value(py).setattr("__context__", failed.value(py))?;
                    return Err(cleanup);
                }
                Err(failed)
            }
        }
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.remove(py)
    }

    /// `__enter__` for `gosuv.aio`, on a native thread that never takes the GIL; returns the
    /// call's id, whose result `hub` gives.
    fn _aio_enter(&self, py: Python<'_>, hub: &AioHub) -> PyResult<u64> {
        let sup = crate::aio::Held::new(self.sup.get().open(py)?.clone());
        let config = self.config.clone();
        let wait = Some(self.timeout);
        // On gosuv.aio's runtime: a cancelled entry drops the wait at once.
        hub.submit_async(
            py,
            Box::pin(async move {
                let name = config.name.clone();
                // Adding and removing make the program's tasks: on the supervisor's own
                // runtime (its blocking calls, on a thread of the blocking pool). Only the
                // start's wait is a task here.
                let blocking = |f: BlockingCall| {
                    let sup = sup.clone_arc();
                    async move {
                        let sup = crate::aio::Held::new(sup);
                        tokio::task::spawn_blocking(move || f(&sup))
                            .await
                            .unwrap_or_else(|e| {
                                Err(gosuv::Error::Invalid(format!(
                                    "gosuv: the call failed: {e}"
                                )))
                            })
                    }
                };
                let add = blocking(Box::new(move |s| s.add(config)));
                // The start's error, and the error of removing the program again, if any.
                let outcome = match add.await {
                    Err(e) => Err((e, None)),
                    Ok(()) => match sup.as_async().start(&name, wait).await {
                        Ok(st) => Ok(st),
                        Err(failed) => {
                            let gone = name.clone();
                            let removing = blocking(Box::new(move |s| s.remove(&gone)));
                            Err((failed, removed(removing.await).err()))
                        }
                    },
                };
                let finish: crate::aio::Finish = Box::new(move |py| match outcome {
                    Ok(st) => Status::new(py, st)?.into_py_any(py),
                    Err((failed, cleanup)) => {
                        let failed = crate::errors::to_py(py, failed);
                        let Some(cleanup) = cleanup else {
                            return Err(failed);
                        };
                        let cleanup = crate::errors::to_py(py, cleanup);
                        // As Python chains an exception raised while another is handled.
                        cleanup.value(py).setattr("__context__", failed.value(py))?;
                        Err(cleanup)
                    }
                });
                finish
            }),
        )
    }

    /// `__exit__` for `gosuv.aio`: stops and removes the program on a native thread.
    fn _aio_exit(&self, py: Python<'_>, hub: &AioHub) -> PyResult<u64> {
        let sup = self.sup.get().sup(py)?.clone();
        let name = self.config.name.clone();
        hub.submit(
            py,
            Box::new(move |_| {
                let done = removed(sup.remove(&name));
                Box::new(move |py| match done {
                    Ok(()) => Ok(py.None()),
                    Err(e) => Err(crate::errors::to_py(py, e)),
                })
            }),
        )
    }

    fn __repr__(&self) -> String {
        format!("<gosuv.ScopedProgram {:?}>", self.config.name)
    }
}
