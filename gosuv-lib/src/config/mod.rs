//! `config.yml` and `programs.yml`: parsing, defaults and validation.
//!
//! Validation collects every error of a file, each with the file, the line and the key, so
//! that `gosuv conftest` can show them all at once. A file with any error yields no config:
//! callers keep what they had. What only one program's start could trip on (a directory or
//! user that does not exist yet) is a warning, not an error: the others still start.

mod interpolate;
mod keys;
mod lines;
mod program;
mod ready;
mod server;
mod stdio;

use std::fmt;
use std::path::{Path, PathBuf};

pub use interpolate::{escape_interpolation, escape_interpolation_in};
pub use keys::PROGRAM_KEYS;
pub(crate) use program::{lexical, log_clash_message, own_log_message, shared_log_files_by};
pub use program::{
    missing_on_host, parse_program_value, parse_programs, parse_programs_checked, reserved_name,
    validate_name, Autorestart, CgroupMode, Command, LoadedPrograms, ProgramConfig, StopSignal,
    MAX_DURATION_SECS, MAX_INSTANCES, MAX_NUMPROCS, MAX_START_RETRIES,
};
pub use program::{StartLimit, MAX_START_BURST};
pub use ready::{
    check_dependencies, format_duration, parse_duration, Condition, Dependency, HealthProbe,
    ProbeCheck, ReadyProbe,
};
pub use server::{
    default_config_yml, default_programs_yml, is_listen_addr, AuthConfig, ClientConfig,
    HttpServerConfig, ServerConfig, ServerLogConfig, ServerSection, UnixServerConfig,
};
pub use stdio::{HostFd, OutputMode, ProgramIo, StdinMode};

use lines::{LineIndex, Seg};

/// One problem in a config file, with where it is and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when the config came from one.
    pub file: Option<PathBuf>,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The key the error is about, as a dotted path (`programs[1].name`), empty for the file.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": ")?;
        } else if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every error found in one config, in file order. Never empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// A single error not tied to a line (an unreadable file, say).
    pub fn single(file: Option<&Path>, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError {
            file: file.map(Path::to_path_buf),
            line: None,
            key: String::new(),
            message: message.into(),
        }])
    }
}

/// What `validate` found in a pair of valid files.
#[derive(Clone, Debug)]
pub struct ValidatedConfig {
    /// The server settings.
    pub server: ServerConfig,
    /// The programs file's programs.
    pub programs: Vec<ProgramConfig>,
    /// What does not make the files invalid but will fail a program's start (a `directory`
    /// or `user` that does not exist).
    pub warnings: Vec<ConfigError>,
}

/// Validates `config.yml` and the programs file it names, collecting the errors of both.
/// (The files only: `gosuv conftest` also runs the server's own checks, such as HTTP
/// needing auth.)
///
/// # Errors
/// Every error of both files, each with file, line and key.
pub fn validate(config_path: &Path) -> Result<ValidatedConfig, ConfigErrors> {
    let (server, mut errors) = ServerConfig::load_lenient(config_path)?;
    // The programs file is checked even when config.yml has errors (with the `include`
    // that could be read), so that one run shows everything to fix.
    let loaded = match server.load_programs_checked() {
        Ok(p) => p,
        Err(e) => {
            errors
                .get_or_insert_with(|| ConfigErrors(Vec::new()))
                .0
                .extend(e.0);
            LoadedPrograms::default()
        }
    };
    match errors {
        Some(e) => Err(e),
        None => Ok(ValidatedConfig {
            server,
            programs: loaded.programs,
            warnings: loaded.warnings,
        }),
    }
}

/// Collects errors while a document is walked.
pub(crate) struct Collector<'a> {
    file: Option<&'a Path>,
    index: Option<&'a LineIndex<'a>>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(file: Option<&'a Path>, index: Option<&'a LineIndex<'a>>) -> Self {
        Collector {
            file,
            index,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// A problem that does not make the file invalid. It names no key (its message says
    /// what it is about), so it reads `file:line: message`.
    pub(crate) fn warn(&mut self, path: &[Seg], message: impl Into<String>) {
        self.warnings.push(ConfigError {
            file: self.file.map(Path::to_path_buf),
            line: self.index.and_then(|i| i.line(path)),
            key: String::new(),
            message: message.into(),
        });
    }

    /// The warnings so far, in file order.
    pub(crate) fn take_warnings(&mut self) -> Vec<ConfigError> {
        let mut w = std::mem::take(&mut self.warnings);
        w.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        w
    }

    pub(crate) fn error(&mut self, path: &[Seg], message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.map(Path::to_path_buf),
            line: self.index.and_then(|i| i.line(path)),
            key: display_path(path),
            message: message.into(),
        });
    }

    pub(crate) fn finish<T>(mut self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            self.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
            Err(ConfigErrors(self.errors))
        }
    }
}

fn display_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// How deep `[` and `{` may nest in a config. The YAML parser's time grows with the square
/// of the nesting (200 KB of `[` took most of a minute to refuse); at this depth it takes
/// a millisecond, and the parser refuses anything past 128 levels by itself anyway.
pub const MAX_FLOW_NESTING: usize = 1000;

/// Where `text` has more than [`MAX_FLOW_NESTING`] `[`/`{` open: its line and column (from
/// 1). Every bracket counts, in strings and comments too: a scanner that skipped quoted
/// strings or comments could be fooled into skipping real brackets (a quote inside a plain
/// string), and more than a thousand unclosed brackets in the strings of one file is no
/// config anyone writes.
fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    let (mut line, mut col) = (1usize, 0usize);
    for c in text.chars() {
        col += 1;
        match c {
            '\n' => {
                line += 1;
                col = 0;
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_NESTING {
                    return Some((line, col));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Refuses text the YAML parser would take too long over (see [`MAX_FLOW_NESTING`]).
///
/// # Errors
/// The line and column where the nesting passes the bound.
pub fn check_nesting(text: &str, file: Option<&Path>) -> Result<(), ConfigErrors> {
    match too_deep(text) {
        None => Ok(()),
        Some((line, col)) => Err(ConfigErrors(vec![ConfigError {
            file: file.map(Path::to_path_buf),
            line: Some(line),
            key: String::new(),
            message: format!(
                "more than {MAX_FLOW_NESTING} [ or {{ open at once (at column {col}): no config nests that deep"
            ),
        }])),
    }
}

/// Parses YAML text into a value, reporting a syntax error with its line. Nesting deeper
/// than [`MAX_FLOW_NESTING`] is refused before the YAML parser sees it.
///
/// # Errors
/// The text is not YAML, or nests too deep.
pub fn parse_yaml(text: &str, file: Option<&Path>) -> Result<serde_yaml::Value, ConfigErrors> {
    check_nesting(text, file)?;
    serde_yaml::from_str(text).map_err(|e| {
        let text = e.to_string();
        let (key, message) = match too_large_number(&text) {
            Some((key, number)) => {
                let bound = program::numeric_bound(key.rsplit('.').next().unwrap_or_default())
                    .unwrap_or_else(|| "of at most 18446744073709551615".into());
                (
                    key.trim_start_matches('.').to_string(),
                    format!("{number} is too large: expected a whole number {bound}"),
                )
            }
            None => (String::new(), format!("not valid YAML: {text}")),
        };
        ConfigErrors(vec![ConfigError {
            file: file.map(Path::to_path_buf),
            line: e.location().map(|l| l.line()),
            key,
            message,
        }])
    })
}

/// A number YAML reads but no value can hold (past 2^64): serde_yaml says
/// `.[0].stop_timeout: invalid type: integer `N` as u128, ...`. Returns the key path and the
/// number.
fn too_large_number(error: &str) -> Option<(&str, &str)> {
    let (path, rest) = error.split_once(": invalid type: integer `")?;
    let (number, rest) = rest.split_once('`')?;
    rest.starts_with(" as u128").then_some((path, number))
}

/// Parses a size: a number of bytes, or a number with `KB`, `MB` or `GB` (powers of 1024;
/// `KiB`/`MiB`/`GiB` and a lone `K`/`M`/`G` are accepted too, in any case).
///
/// # Errors
/// A message that says which forms are accepted.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || format!("'{text}' is not a size: write bytes (1048576) or 10KB, 50MB, 1GB");
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Writes a size the way [`parse_size`] reads it back: `50MB`, `1GB`, `10KB`, or bytes.
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0 => "0".into(),
        b if b % (1 << 30) == 0 => format!("{}GB", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}MB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}KB", b >> 10),
        b => b.to_string(),
    }
}

/// A size for people to read: `1.5 GiB`, `230.4 MiB`, `12 KiB`, `100 B`.
pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else if bytes >= 1 << 10 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// Resolves `p` against `base` unless it is absolute, dropping `.` components (`..` is
/// kept: a symlink may make it mean something else than the parent).
pub fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// Checks a whole set of programs: each one (as [`ProgramConfig::validate`]), their names
/// unique, their dependencies among them (no unknown name, no cycle). Every problem at once.
/// It may look users up and stat directories: call it where blocking is fine.
///
/// # Errors
/// Every problem found.
pub fn check_set(programs: &[ProgramConfig]) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let refs: Vec<&ProgramConfig> = programs.iter().collect();
    for (i, msg) in check_dependencies(&refs, &Default::default()) {
        errors.push(ConfigError {
            file: None,
            line: None,
            key: format!("{}.depends_on", refs[i].name),
            message: msg,
        });
    }
    for (i, msg) in program::shared_log_files(&refs) {
        errors.push(ConfigError {
            file: None,
            line: None,
            key: format!("{}.log", refs[i].name),
            message: msg,
        });
    }
    for p in programs {
        if let Err(e) = p.validate() {
            errors.extend(e.0);
        }
        if !seen.insert(p.name.clone()) {
            errors.extend(
                ConfigErrors::single(None, format!("duplicate program name '{}'", p.name)).0,
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_written_as_they_are_read() {
        for n in [0, 1, 1000, 1024, 50 << 20, 3 << 30, (1 << 20) + 1, u64::MAX] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "{n}");
        }
        assert_eq!(human_size(150 << 20), "150.0 MiB");
        assert_eq!(human_size(100), "100 B");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10KB"), Ok(10 * 1024));
        assert_eq!(parse_size("50MB"), Ok(50 << 20));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("2 mib"), Ok(2 << 20));
        assert!(parse_size("MB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("10XB").is_err());
        assert!(parse_size("99999999999999999999GB").is_err());
    }

    #[test]
    fn error_display_names_file_line_and_key() {
        let e = ConfigError {
            file: Some("programs.yml".into()),
            line: Some(3),
            key: "[0].name".into(),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "programs.yml:3: [0].name: bad");
    }
}
