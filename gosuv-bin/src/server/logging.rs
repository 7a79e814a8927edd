//! The server's own log, `gosuv.log`, through tracing: rotated by size (`filemax`, `backups`)
//! with the core's [`RotatingFile`], the same rotation as the programs' logs. One event is
//! one line: control characters in any message or field (a user name, a path, a header a
//! client sent; an error quoting a file) are escaped, so nothing can forge a line.

use std::fmt::{self, Write as _};
use std::io;
use std::str::FromStr;
use std::sync::Mutex;

use gosuv::logs::RotatingFile;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{debug_fn, Writer};
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

/// A [`fmt::Write`] that escapes, as it writes, every character that could end a line or
/// steer a terminal: C0 and C1 controls (`\n` as `\\n`, `\r`, `\t`, the others as
/// `\\u{..}`) and the Unicode line and paragraph separators.
pub struct Escaping<W>(pub W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(needs_escape) {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                // So that an escape a client sent as text cannot pass for one of these.
                '\\' => self.0.write_str("\\\\")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\\')
}

/// The same text as tracing's default field format (`message key=value ...`), escaped.
fn escaped_fields(
    w: &mut Writer<'_>,
    field: &tracing::field::Field,
    value: &dyn fmt::Debug,
) -> fmt::Result {
    let mut out = Escaping(w);
    match field.name() {
        "message" => write!(out, "{value:?}"),
        name => write!(out, "{}={value:?}", name.trim_start_matches("r#")),
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
    let file = RotatingFile::new(log.logpath.join("gosuv.log"), log.filemax, log.backups).strict();
    let fields = || debug_fn(escaped_fields).delimited(" ");
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .fmt_fields(fields())
        .with_writer(Mutex::new(RotatingWriter(file)))
        .with_filter(level);
    // Colour codes only for a terminal that wants them: a journal or a file gets plain text.
    let ansi = {
        use std::io::IsTerminal;
        io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    };
    let stderr_layer = to_stderr.then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .fmt_fields(fields())
            .with_writer(io::stderr)
            .with_filter(level)
    });
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let mut out = String::new();
        write!(
            Escaping(&mut out),
            "a\nb\r\nc\td\u{1b}[2K\u{85}e\u{2028}f\\n é"
        )
        .unwrap();
        // A client's own backslash is doubled: its text "\\n" cannot pass for a newline.
        assert_eq!(out, "a\\nb\\r\\nc\\td\\u{1b}[2K\\u{85}e\\u{2028}f\\\\n é");
    }
}
