//! `Supervisor.program(...)`: a program that lives for one `with` block.

use std::time::Duration;

use gosuv::{Error, ProgramConfig};
use pyo3::prelude::*;

use crate::errors::IntoPyResult;
use crate::interrupt::{self, Stopping};
use crate::objects::Status;
use crate::supervisor::Supervisor;

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
        match interrupt::run_stopping(py, vec![sup.clone()], targets, move || sup.remove(&name))? {
            Ok(()) | Err(Error::NotFound(_)) | Err(Error::ShuttingDown) => Ok(()),
            Err(e) => Err(crate::errors::to_py(py, e)),
        }
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

    fn __repr__(&self) -> String {
        format!("<gosuv.ScopedProgram {:?}>", self.config.name)
    }
}
