//! A program's `env_file`: a dotenv file read at each start.

use std::path::Path;

/// The largest `env_file` read: far more than any environment needs, and a bound on what a
/// wrong path (a log, a device) can cost.
const MAX_ENV_FILE: u64 = 1 << 20;

/// Who may read the file: the program's user, when gosuv switches to one.
pub(crate) struct Reader {
    pub(crate) uid: libc::uid_t,
    /// Its primary group and the others.
    pub(crate) gids: Vec<libc::gid_t>,
}

/// Reads the dotenv file at `path`: its variables in file order.
///
/// # Errors
/// As [`read_for`].
pub(crate) fn read(path: &Path) -> Result<Vec<(String, String)>, String> {
    read_for(path, None)
}

/// Reads the dotenv file at `path` for a program run as `reader`, when given.
///
/// Only a regular file is read: a FIFO would block the open (or the read) until a writer
/// comes, and a device has no end. When `reader` is given, the file must be one that user
/// could read itself: gosuv reads it before the switch, and must not hand a program the
/// values of a file (or a link's target) only gosuv may read.
///
/// # Errors
/// A message for `last_error` that names the file (and the line, for a bad line).
pub(crate) fn read_for(
    path: &Path,
    reader: Option<&Reader>,
) -> Result<Vec<(String, String)>, String> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    let shown = path.display();
    let fix = "fix `env_file` (see docs/config.md)";
    // Non-blocking: opening a FIFO with no writer would wait for ever.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot read env_file {shown}: {}: {fix}", plain(&e)))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read env_file {shown}: {}: {fix}", plain(&e)))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(format!("env_file {shown} is {what}, not a file: {fix}"));
    }
    if let Some(r) = reader {
        // By its mode bits (owner, group, others: ACLs are not read), the file and every
        // directory on the way to it, as given and as it really is (through links).
        let allows = |m: &std::fs::Metadata, bits: u32| {
            let mode = m.mode();
            r.uid == 0
                || if m.uid() == r.uid {
                    mode & (bits << 6) != 0
                } else if r.gids.contains(&m.gid()) {
                    mode & (bits << 3) != 0
                } else {
                    mode & bits != 0
                }
        };
        let mut dirs: Vec<std::path::PathBuf> = Vec::new();
        for p in [Some(path.to_path_buf()), std::fs::canonicalize(path).ok()]
            .into_iter()
            .flatten()
        {
            dirs.extend(p.ancestors().skip(1).map(Path::to_path_buf));
        }
        let blocked = dirs
            .iter()
            .find(|d| std::fs::metadata(d).is_ok_and(|m| m.is_dir() && !allows(&m, 0o1)));
        if !allows(&meta, 0o4) || blocked.is_some() {
            return Err(format!(
                "env_file {shown} is not readable by the program's user (uid {}){}: \
                 make it readable by that user or {fix}",
                r.uid,
                blocked.map_or_else(String::new, |d| format!(
                    ": it may not enter {}",
                    d.display()
                ))
            ));
        }
    }
    let mut bytes = Vec::new();
    file.take(MAX_ENV_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read env_file {shown}: {}: {fix}", plain(&e)))?;
    if bytes.len() as u64 > MAX_ENV_FILE {
        return Err(format!(
            "env_file {shown} is over 1 MiB: is it the right file? {fix}"
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("env_file {shown} is not UTF-8 text: {fix}"))?;
    parse(&text).map_err(|(line, why)| format!("env_file {shown}, line {line}: {why}"))
}

/// An I/O error without Rust's `(os error N)`.
fn plain(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A bad key as shown in a message: its first 60 characters, so a wrong file (a binary, a
/// line of minified text) does not fill the status.
fn shorten(k: &str) -> String {
    match k.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &k[..i]),
        None => k.to_string(),
    }
}

fn valid_name(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses dotenv text; a bad line as its 1-based number and what is wrong.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            return Err((n, "expected KEY=VALUE".into()));
        };
        let key = key.trim();
        if !valid_name(key) {
            return Err((
                n,
                format!(
                    "'{}' is not a variable name (letters, digits and _, not first a digit)",
                    shorten(key)
                ),
            ));
        }
        let value = unquote(value.trim()).map_err(|why| (n, why))?;
        if value.contains('\0') {
            return Err((n, "the value holds a NUL byte".into()));
        }
        vars.push((key.to_string(), value));
    }
    Ok(vars)
}

/// A value: in single quotes as written, in double quotes with `\"`, `\\`, `\n` read as
/// escapes, else up to a ` #` comment.
fn unquote(v: &str) -> Result<String, String> {
    let rest_ok = |rest: &str| {
        let rest = rest.trim();
        rest.is_empty() || rest.starts_with('#')
    };
    if let Some(body) = v.strip_prefix('\'') {
        let Some(end) = body.find('\'') else {
            return Err("the value's single quote is not closed on this line".into());
        };
        if !rest_ok(&body[end + 1..]) {
            return Err("only a # comment may follow a quoted value".into());
        }
        return Ok(body[..end].to_string());
    }
    if let Some(body) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    if !rest_ok(&body[i + 1..]) {
                        return Err("only a # comment may follow a quoted value".into());
                    }
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, e)) if matches!(e, '"' | '\\') => out.push(e),
                    Some((_, e)) => {
                        out.push('\\');
                        out.push(e);
                    }
                    None => out.push('\\'),
                },
                c => out.push(c),
            }
        }
        return Err("the value's double quote is not closed on this line".into());
    }
    let end = v
        .char_indices()
        .find(|&(i, c)| c == '#' && v[..i].ends_with([' ', '\t']))
        .map_or(v.len(), |(i, _)| i);
    Ok(v[..end].trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn reads_the_usual_forms() {
        let text = "# a comment\n\nA=1\nexport B = two words \nC='x # y' # note\nD=\"q \\\"r\\\" \\\\ \\n\"\nE=\nF=a#b # c\r\nG==x\n";
        assert_eq!(
            parse(text),
            Ok(vec![
                kv("A", "1"),
                kv("B", "two words"),
                kv("C", "x # y"),
                kv("D", "q \"r\" \\ \n"),
                kv("E", ""),
                kv("F", "a#b"),
                kv("G", "=x"),
            ])
        );
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(parse("A=1\nnonsense\n").map_err(|e| e.0), Err(2));
        assert_eq!(parse("1A=x").map_err(|e| e.0), Err(1));
        assert_eq!(parse("A B=x").map_err(|e| e.0), Err(1));
        assert_eq!(parse("\n\nA='open").map_err(|e| e.0), Err(3));
        assert_eq!(parse("A=\"open").map_err(|e| e.0), Err(1));
        assert_eq!(parse("A='x' y").map_err(|e| e.0), Err(1));
        assert_eq!(parse("A=\0").map_err(|e| e.0), Err(1));
        assert_eq!(parse("exportA=1"), Ok(vec![kv("exportA", "1")]));
    }

    #[test]
    fn a_long_bad_key_is_cut_in_the_message() {
        let key = "x-".repeat(500);
        let (_, why) = parse(&format!("{key}=1")).expect_err("bad key");
        assert!(why.len() < 150, "{why}");
        assert!(why.starts_with(&format!("'{}...'", &key[..60])), "{why}");
        // Cut on a character, not inside one.
        let (_, why) = parse(&format!("{}=1", "é-".repeat(100))).expect_err("bad key");
        assert!(why.contains("...'"), "{why}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = read(Path::new("/definitely/not/here.env")).expect_err("missing");
        assert_eq!(
            e,
            "cannot read env_file /definitely/not/here.env: No such file or directory: fix `env_file` (see docs/config.md)"
        );
    }
}
