//! The server's own log, `gosuv.log`, through tracing: rotated by size (`filemax`, `backups`)
//! with the core's [`RotatingFile`], the same rotation as the programs' logs.

use std::io;
use std::str::FromStr;
use std::sync::Mutex;

use gosuv::logs::RotatingFile;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::{CliResult, Failure};

/// An [`io::Write`] over a rotating file; each tracing event is written in one call, so a
/// rotation never splits a line.
#[derive(Debug)]
pub struct RotatingWriter(RotatingFile);

impl io::Write for RotatingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends tracing to `<logpath>/gosuv.log` (and to stderr when `to_stderr`), at the
/// configured level.
///
/// # Errors
/// The level is unknown or the log directory cannot be created.
pub fn init(log: &gosuv::config::ServerLogConfig, to_stderr: bool) -> CliResult {
    gosuv::files::create_dir_all(&log.logpath).map_err(|e| {
        Failure::new(format!(
            "cannot create the log directory {}: {e}",
            log.logpath.display()
        ))
    })?;
    let level = LevelFilter::from_str(&log.level)
        .map_err(|_| Failure::new(format!("'{}' is not a log level", log.level)))?;
    let file = RotatingFile::new(log.logpath.join("gosuv.log"), log.filemax, log.backups);
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(Mutex::new(RotatingWriter(file)))
        .with_filter(level);
    let stderr_layer = to_stderr.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(io::stderr)
            .with_filter(level)
    });
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    Ok(())
}
