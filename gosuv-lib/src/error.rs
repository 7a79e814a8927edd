//! The core's one error type.

use std::time::Duration;

use crate::config::ConfigErrors;
use crate::events::ProgramState;

/// What can go wrong in the core. Every message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No program has that name.
    #[error("no program named '{0}': check the name (list the programs to see them all)")]
    NotFound(String),
    /// A program with that name exists already.
    #[error("a program named '{0}' already exists: choose another name or update it instead")]
    Exists(String),
    /// The config is invalid; nothing was changed.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The program could not be brought to `running`.
    #[error("'{name}' could not start: {reason}")]
    StartFailed {
        /// The program.
        name: String,
        /// Why its last start failed.
        reason: String,
    },
    /// A stop (or remove) came before the program reached `running`.
    #[error("'{0}' was stopped before it reached running")]
    StoppedBeforeRunning(String),
    /// The wait for a state took longer than allowed; the program carries on.
    #[error("timed out after {:.1}s waiting for '{name}' to be {wanted}; it is {state}", timeout.as_secs_f64())]
    Timeout {
        /// The program.
        name: String,
        /// The state that was waited for.
        wanted: String,
        /// The state it had when the wait ended.
        state: ProgramState,
        /// How long was waited.
        timeout: Duration,
    },
    /// An argument is out of its bounds (a wait longer than a day, say); nothing was done.
    #[error("{0}")]
    Invalid(String),
    /// The change was made, but the store hook could not save it.
    #[error("the change is live but could not be saved: {0}")]
    Store(String),
    /// The program's task failed (a bug): the program was stopped and marked `fatal`.
    #[error("gosuv's task for '{0}' failed and the program was stopped; see its last_error (a bug; please report it)")]
    TaskFailed(String),
    /// Something that should not fail did (a blocking thread that could not run, say).
    #[error("internal error: {0} (a bug; please report it)")]
    Internal(String),
    /// The supervisor has shut down, or is shutting down.
    #[error("the supervisor is shutting down: no more changes are accepted")]
    ShuttingDown,
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
