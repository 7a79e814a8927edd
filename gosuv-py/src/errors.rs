//! The core's errors as the exceptions of `gosuv._errors` (all rooted at `GosuvError`).
//!
//! The exception classes are written in Python, where they can have two bases
//! (`Timeout` is also a `TimeoutError`, `ProgramNotFound` a `LookupError`, `InvalidArgument`
//! a `ValueError`); they are looked up once and cached.

use gosuv::{ConfigErrors, Error};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// One exception class of `gosuv._errors`.
pub(crate) struct ErrorClass {
    name: &'static str,
    cell: PyOnceLock<Py<PyType>>,
}

impl ErrorClass {
    const fn new(name: &'static str) -> Self {
        ErrorClass {
            name,
            cell: PyOnceLock::new(),
        }
    }

    /// An exception of this class with `message`, and `attrs` set on it.
    pub(crate) fn err(
        &self,
        py: Python<'_>,
        message: String,
        attrs: &[(&str, Py<PyAny>)],
    ) -> PyErr {
        let build = || -> PyResult<PyErr> {
            let cls = self.cell.import(py, "gosuv._errors", self.name)?;
            let exc = cls.call1((message.clone(),))?;
            for (k, v) in attrs {
                exc.setattr(*k, v)?;
            }
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|e| {
            // Only a broken installation gets here; keep the message rather than hide it.
            PyRuntimeError::new_err(format!("{message} (and gosuv._errors failed: {e})"))
        })
    }
}

pub(crate) static GOSUV_ERROR: ErrorClass = ErrorClass::new("GosuvError");
pub(crate) static CONFIG_ERROR: ErrorClass = ErrorClass::new("ConfigError");
pub(crate) static PROGRAM_NOT_FOUND: ErrorClass = ErrorClass::new("ProgramNotFound");
pub(crate) static PROGRAM_EXISTS: ErrorClass = ErrorClass::new("ProgramExists");
pub(crate) static START_ERROR: ErrorClass = ErrorClass::new("StartError");
pub(crate) static STOPPED_BEFORE_RUNNING: ErrorClass = ErrorClass::new("StoppedBeforeRunning");
pub(crate) static TIMEOUT: ErrorClass = ErrorClass::new("Timeout");
pub(crate) static SUPERVISOR_CLOSED: ErrorClass = ErrorClass::new("SupervisorClosed");
pub(crate) static INVALID_ARGUMENT: ErrorClass = ErrorClass::new("InvalidArgument");
pub(crate) static TASK_FAILED: ErrorClass = ErrorClass::new("TaskFailed");

/// A `ConfigError` carrying every problem, one a line in its message and as a list in
/// `errors`.
pub(crate) fn config_error(py: Python<'_>, errors: &ConfigErrors) -> PyErr {
    let list: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    let attr = list
        .into_pyobject(py)
        .map(|l| l.into_any().unbind())
        .unwrap_or_else(|_| py.None());
    CONFIG_ERROR.err(py, errors.to_string(), &[("errors", attr)])
}

fn program_attr(py: Python<'_>, name: &str) -> (&'static str, Py<PyAny>) {
    let v = name
        .into_pyobject(py)
        .map(|s| s.into_any().unbind())
        .unwrap_or_else(|_| py.None());
    ("program", v)
}

/// Converts a core error into its exception.
pub(crate) fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::NotFound(name) => PROGRAM_NOT_FOUND.err(py, message, &[program_attr(py, &name)]),
        Error::Exists(name) => PROGRAM_EXISTS.err(py, message, &[program_attr(py, &name)]),
        Error::Config(errors) => config_error(py, &errors),
        Error::StartFailed { name, reason } => {
            let reason = reason
                .into_pyobject(py)
                .map(|s| s.into_any().unbind())
                .unwrap_or_else(|_| py.None());
            START_ERROR.err(py, message, &[program_attr(py, &name), ("reason", reason)])
        }
        Error::StoppedBeforeRunning(name) => {
            let reason = "stopped before it reached running"
                .into_pyobject(py)
                .map(|s| s.into_any().unbind())
                .unwrap_or_else(|_| py.None());
            STOPPED_BEFORE_RUNNING.err(py, message, &[program_attr(py, &name), ("reason", reason)])
        }
        Error::Timeout { name, state, .. } => {
            let state = crate::convert::state(py, state).unwrap_or_else(|_| py.None());
            TIMEOUT.err(py, message, &[program_attr(py, &name), ("state", state)])
        }
        Error::Invalid(_) => INVALID_ARGUMENT.err(py, message, &[]),
        Error::TaskFailed(name) => TASK_FAILED.err(py, message, &[program_attr(py, &name)]),
        Error::ShuttingDown => SUPERVISOR_CLOSED.err(py, message, &[]),
        // A store hook is never set from Python, and an internal error is a bug: neither has
        // anything a caller could act on beyond the message.
        Error::Store(_) | Error::Internal(_) | Error::Io { .. } => {
            GOSUV_ERROR.err(py, message, &[])
        }
    }
}

/// `Result<T, gosuv::Error>` into `PyResult<T>`.
pub(crate) trait IntoPyResult<T> {
    /// Converts the error, if any, into its exception.
    fn into_py_result(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn into_py_result(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

impl<T> IntoPyResult<T> for Result<T, ConfigErrors> {
    fn into_py_result(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| config_error(py, &e))
    }
}
