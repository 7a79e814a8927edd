//! `config.yml` and `programs.yml`: parsing, defaults and validation (SPEC §2).
//!
//! Validation collects every error of a file, each with the file, the line and the key, so
//! that `gosuv conftest` can show them all at once. A file with any error yields no config:
//! callers keep what they had.

mod lines;
mod program;
mod server;

use std::fmt;
use std::path::{Path, PathBuf};

pub use program::{
    parse_program_value, parse_programs, validate_name, Autorestart, Command, ProgramConfig,
    StopSignal,
};
pub use server::{
    AuthConfig, ClientConfig, HttpServerConfig, ServerConfig, ServerLogConfig, ServerSection,
    UnixServerConfig, DEFAULT_CONFIG_YML,
};

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
}

/// Validates `config.yml` and the programs file it names, collecting the errors of both.
/// This is what `gosuv conftest` runs.
///
/// # Errors
/// Every error of both files, each with file, line and key.
pub fn validate(config_path: &Path) -> Result<ValidatedConfig, ConfigErrors> {
    let (server, mut errors) = ServerConfig::load_lenient(config_path)?;
    // The programs file is checked even when config.yml has errors (with the `include`
    // that could be read), so that one run shows everything to fix.
    let programs = match server.load_programs() {
        Ok(p) => p,
        Err(e) => {
            errors
                .get_or_insert_with(|| ConfigErrors(Vec::new()))
                .0
                .extend(e.0);
            Vec::new()
        }
    };
    match errors {
        Some(e) => Err(e),
        None => Ok(ValidatedConfig { server, programs }),
    }
}

/// Collects errors while a document is walked.
pub(crate) struct Collector<'a> {
    file: Option<&'a Path>,
    index: Option<&'a LineIndex>,
    errors: Vec<ConfigError>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(file: Option<&'a Path>, index: Option<&'a LineIndex>) -> Self {
        Collector {
            file,
            index,
            errors: Vec::new(),
        }
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

/// Parses YAML text into a value, reporting a syntax error with its line.
fn parse_yaml(text: &str, file: Option<&Path>) -> Result<serde_yaml::Value, ConfigErrors> {
    serde_yaml::from_str(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.map(Path::to_path_buf),
            line: e.location().map(|l| l.line()),
            key: String::new(),
            message: format!("not valid YAML: {e}"),
        }])
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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
