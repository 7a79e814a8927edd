//! The native part of the Python package `gosuv`, imported as `gosuv._native`.
//!
//! A thin adapter over [`gosuv::blocking::Supervisor`]: it converts Python arguments into
//! the core's types, runs every call that can wait without holding the GIL and stays
//! interruptible by Ctrl-C, and turns the core's errors into the exceptions of
//! `gosuv._errors`. The package's `__init__.py` re-exports what users see; `_native.pyi`
//! describes it for type checkers.

mod aio;
mod convert;
mod errors;
mod interrupt;
mod line_wait;
mod log_dir;
mod objects;
mod scoped;
mod streams;
mod supervisor;

use pyo3::prelude::*;

/// The module `gosuv._native`.
#[pymodule]
mod _native {
    #[pymodule_export]
    use crate::aio::{_aio_init, AioHub};
    #[pymodule_export]
    use crate::line_wait::LineWait;
    #[pymodule_export]
    use crate::objects::{Event, HealthStatus, ReloadReport, Stats, Status};
    #[pymodule_export]
    use crate::scoped::ScopedProgram;
    #[pymodule_export]
    use crate::streams::{Events, LogFollower};
    #[pymodule_export]
    use crate::supervisor::{shutdown_all, Supervisor};

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", gosuv::VERSION)
    }
}
