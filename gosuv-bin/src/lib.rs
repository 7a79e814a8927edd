//! The `gosuv` command: a CLI, a daemon and a REST server over the [`gosuv`] core.
//!
//! The server ([`server`]) serves one axum [`Router`](axum::Router), built by
//! [`server::api::router`], on a unix socket and/or over HTTP. The CLI ([`cli`],
//! [`commands`]) is a client of that API ([`client`]) for everything but starting the server.

pub mod cli;
pub mod client;
pub mod commands;
pub mod daemon;
pub mod docs;
pub mod holder;
pub mod interrupt;
pub mod log_printer;
pub mod select;
pub mod server;
pub mod shell;
#[doc(hidden)]
pub mod top;

/// A CLI failure: the message to print (it says what to do) and the process exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// What went wrong and what to do about it.
    pub message: String,
    /// The exit code (1 unless a command documents another).
    pub code: i32,
}

impl Failure {
    /// A failure with exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

impl From<gosuv::ConfigErrors> for Failure {
    fn from(e: gosuv::ConfigErrors) -> Self {
        Failure::new(e.to_string())
    }
}

/// The result of a CLI command.
pub type CliResult<T = ()> = Result<T, Failure>;
