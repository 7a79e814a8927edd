//! Saving the programs file after an API change: the whole list, written atomically (a
//! temporary file beside it, fsync, rename), so a crash leaves the old file or the new one.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use gosuv::ProgramConfig;

const HEADER: &str =
    "# gosuv programs: a YAML list, one program per item (its keys: see docs/config.md).\n\
# gosuv rewrites this file when programs are added, changed or removed through its API.\n";

/// Writes `programs` to `path` atomically. A file that exists keeps its mode (less any
/// world-write bit); a new one is created `0600`, as it may hold secrets in `environ`.
///
/// # Errors
/// The temporary file cannot be written or renamed.
pub fn save_programs(path: &Path, programs: &[ProgramConfig]) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o775)
        .unwrap_or(0o600);
    let body = if programs.is_empty() {
        "[]\n".to_string()
    } else {
        // Loading replaces `${VAR}` and `$$`: the values written are the resolved ones.
        let mut value = serde_yaml::to_value(programs).map_err(std::io::Error::other)?;
        gosuv::config::escape_interpolation_in(&mut value);
        serde_yaml::to_string(&value).map_err(std::io::Error::other)?
    };
    let mut text = String::with_capacity(HEADER.len() + body.len());
    text.push_str(HEADER);
    text.push_str(&body);
    gosuv::files::write_atomic(path, text.as_bytes(), mode, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("programs.yml");
        let mut p = ProgramConfig::shell("web", "echo hi");
        p.environ = vec![("A".into(), "1".into())];
        p.start_seconds = 0;
        save_programs(&path, &[p.clone()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let back = gosuv::config::parse_programs(&text, Some(&path), dir.path()).unwrap();
        assert_eq!(back, vec![p]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        save_programs(&path, &[]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(gosuv::config::parse_programs(&text, None, dir.path())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn dollars_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("programs.yml");
        let mut p = ProgramConfig::shell("web", "echo $$ ${HOME} $PATH $");
        p.environ = vec![("A".into(), "${NOT_A_VARIABLE}".into())];
        save_programs(&path, &[p.clone()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let back = gosuv::config::parse_programs(&text, Some(&path), dir.path()).unwrap();
        assert_eq!(back, vec![p]);
    }
}
