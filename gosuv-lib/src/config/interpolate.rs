//! `${VAR}`, `${VAR:-default}` and `$$` in the string values of a programs file, replaced
//! when the file is loaded, so a file can be shared between hosts that differ only in their
//! environment. A bare `$VAR` is left alone: it is the shell's (a `command` string runs
//! under `/bin/sh`), and taking it would change what every existing file means.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::lines::Seg;
use super::{resolve_path, Collector};

/// An env_file's variables, or why it could not be read.
type EnvFileVars = Result<HashMap<String, String>, String>;

/// Where `${VAR}` finds its value: gosuv's environment, then a program's `env_file`.
pub(crate) struct Vars {
    /// The env_file, and what was read from it.
    env_file: Option<(PathBuf, EnvFileVars)>,
}

impl Vars {
    /// gosuv's environment only.
    pub(crate) fn environment() -> Self {
        Vars { env_file: None }
    }

    /// gosuv's environment, then the dotenv file `path` (relative to `base_dir`), read now.
    pub(crate) fn with_env_file(path: &str, base_dir: &Path) -> Self {
        let path = resolve_path(base_dir, Path::new(path));
        // Read as a start reads it (one parser of dotenv files).
        let vars = crate::spawn::read_env_file(&path).map(|pairs| pairs.into_iter().collect());
        Vars {
            env_file: Some((path, vars)),
        }
    }

    /// The value of `name`, `Ok(None)` when it is unset.
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        match std::env::var(name) {
            Ok(v) => return Ok(Some(v)),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!(
                    "`${{{name}}}`: its value in gosuv's environment is not UTF-8 text"
                ))
            }
            Err(std::env::VarError::NotPresent) => {}
        }
        match &self.env_file {
            Some((_, Ok(vars))) => Ok(vars.get(name).cloned()),
            _ => Ok(None),
        }
    }

    /// What an unset variable's message adds: where else it was looked for.
    fn looked_in(&self) -> String {
        match &self.env_file {
            None => "gosuv's environment".into(),
            Some((path, Ok(_))) => format!("gosuv's environment nor in {}", path.display()),
            Some((_, Err(e))) => format!("gosuv's environment (and {e})"),
        }
    }
}

/// Replaces `${VAR}`, `${VAR:-default}` and `$$` in `text`. `${VAR:-default}` takes the
/// default when VAR is unset or empty, as the shell does.
///
/// # Errors
/// A message naming the variable that is not set, or the malformed `${`.
pub(crate) fn expand(text: &str, vars: &Vars) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                return Err(format!(
                    "`${{` without its closing `}}` in '{}': write `${{NAME}}`, or `$$` for a literal `$`",
                    shorten(text)
                ));
            };
            let body = &inner[..end];
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            if default.is_some_and(|d| d.contains("${")) {
                return Err(format!(
                    "`${{{}}}`: a default cannot hold another `${{...}}`: give a plain value",
                    shorten(body)
                ));
            }
            if !valid_name(name) {
                return Err(format!(
                    "`${{{}}}` is not a variable: a name is letters, digits and `_`, not starting \
                     with a digit, optionally followed by `:-default`; write `$${{` for a literal `${{`",
                    shorten(body)
                ));
            }
            match (vars.get(name)?, default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "`${{{name}}}` is not set in {}: set {name}, or give a default with `${{{name}:-value}}`",
                        vars.looked_in()
                    ))
                }
            }
            rest = &inner[end + 1..];
        } else {
            // A bare `$NAME` (or a lone `$`) is the shell's.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// At most 40 characters of `s`, for a message.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Writes `text` so that loading a programs file reads it back unchanged: a `$` before `$`
/// or `{` is doubled. For whoever writes a program's resolved values back into a programs
/// file.
pub fn escape_interpolation(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('$' | '{')) {
            out.push('$');
        }
    }
    out
}

/// [`escape_interpolation`] on every string value of `value` (mapping keys are left alone,
/// as loading leaves them): what a programs file must hold for its programs to load back as
/// they are.
pub fn escape_interpolation_in(value: &mut Value) {
    match value {
        Value::String(s) => *s = escape_interpolation(s),
        Value::Sequence(items) => items.iter_mut().for_each(escape_interpolation_in),
        Value::Mapping(m) => m.iter_mut().for_each(|(_, v)| escape_interpolation_in(v)),
        Value::Tagged(t) => escape_interpolation_in(&mut t.value),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Replaces the variables in every string value of `value` (mapping keys are left alone),
/// reporting each problem at its own key. Returns whether there was none.
pub(crate) fn expand_value(
    c: &mut Collector<'_>,
    path: &mut Vec<Seg>,
    value: &mut Value,
    vars: &Vars,
) -> bool {
    match value {
        Value::String(s) => match expand(s, vars) {
            Ok(new) => {
                *s = new;
                true
            }
            Err(e) => {
                c.error(path, e);
                false
            }
        },
        Value::Sequence(items) => {
            let mut ok = true;
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                ok &= expand_value(c, path, item, vars);
                path.pop();
            }
            ok
        }
        Value::Mapping(m) => {
            let mut ok = true;
            for (k, v) in m.iter_mut() {
                path.push(Seg::Key(k.as_str().unwrap_or_default().to_string()));
                ok &= expand_value(c, path, v, vars);
                path.pop();
            }
            ok
        }
        Value::Tagged(t) => expand_value(c, path, &mut t.value, vars),
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Replaces the variables in one program's mapping: from gosuv's environment, then from its
/// `env_file` (itself expanded from the environment only). Returns whether there was no
/// problem; each problem is reported at its key.
pub(crate) fn expand_program(
    c: &mut Collector<'_>,
    path: &[Seg],
    item: &mut Value,
    base_dir: &Path,
) -> bool {
    let mut path = path.to_vec();
    let env_file = match item.get_mut("env_file") {
        Some(Value::String(raw)) => {
            path.push(Seg::Key("env_file".into()));
            let expanded = expand(raw, &Vars::environment());
            let out = match expanded {
                Ok(p) => {
                    *raw = p.clone();
                    Some(p)
                }
                Err(e) => {
                    c.error(&path, e);
                    path.pop();
                    return false;
                }
            };
            path.pop();
            out
        }
        _ => None,
    };
    let vars = match env_file.as_deref() {
        Some(p) if !p.is_empty() => Vars::with_env_file(p, base_dir),
        _ => Vars::environment(),
    };
    expand_value(c, &mut path, item, &vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_only(text: &str) -> Result<String, String> {
        expand(text, &Vars::environment())
    }

    #[test]
    fn forms() {
        std::env::set_var("GOSUV_T_SET", "v1");
        std::env::set_var("GOSUV_T_EMPTY", "");
        assert_eq!(env_only("a ${GOSUV_T_SET} b").as_deref(), Ok("a v1 b"));
        assert_eq!(env_only("${GOSUV_T_UNSET:-d f}").as_deref(), Ok("d f"));
        assert_eq!(env_only("${GOSUV_T_SET:-d}").as_deref(), Ok("v1"));
        assert_eq!(env_only("${GOSUV_T_EMPTY:-d}").as_deref(), Ok("d"));
        assert_eq!(env_only("${GOSUV_T_EMPTY}").as_deref(), Ok(""));
        assert_eq!(env_only("${GOSUV_T_UNSET:-}").as_deref(), Ok(""));
        assert_eq!(env_only("echo $$ $HOME $").as_deref(), Ok("echo $ $HOME $"));
        assert_eq!(env_only("$${GOSUV_T_SET}").as_deref(), Ok("${GOSUV_T_SET}"));
        assert_eq!(env_only("é${GOSUV_T_SET}é").as_deref(), Ok("év1é"));
        let e = env_only("${GOSUV_T_UNSET:-${GOSUV_T_SET}}").unwrap_err();
        assert!(e.contains("a default cannot hold"), "{e}");
    }

    #[test]
    fn errors_name_the_variable() {
        let e = env_only("x ${GOSUV_T_NEVER_SET} y").unwrap_err();
        assert!(
            e.starts_with("`${GOSUV_T_NEVER_SET}` is not set in gosuv's environment"),
            "{e}"
        );
        assert!(e.contains("${GOSUV_T_NEVER_SET:-value}"), "{e}");
        let e = env_only("x ${OPEN").unwrap_err();
        assert!(e.contains("without its closing"), "{e}");
        for bad in ["${}", "${1A}", "${A-B}", "${A B}", "${A:+x}"] {
            let e = env_only(bad).unwrap_err();
            assert!(e.contains("is not a variable"), "{bad}: {e}");
        }
    }

    #[test]
    fn escaping_round_trips() {
        for s in [
            "echo $$", "${X}", "$HOME", "a$", "$${", "$$$", "plain", "$ {x}",
        ] {
            assert_eq!(env_only(&escape_interpolation(s)).as_deref(), Ok(s), "{s}");
        }
    }

    #[test]
    fn env_file_is_the_fallback() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("app.env"),
            "# comment\n\nexport GOSUV_T_FILE_ONLY=\"from file\"\nGOSUV_T_BOTH='file'\nPLAIN = x y \n",
        )
        .expect("write");
        std::env::set_var("GOSUV_T_BOTH", "environ");
        let vars = Vars::with_env_file("app.env", dir.path());
        assert_eq!(
            expand("${GOSUV_T_FILE_ONLY} ${GOSUV_T_BOTH} ${PLAIN}", &vars).as_deref(),
            Ok("from file environ x y")
        );
        let e = expand("${GOSUV_T_NOWHERE}", &vars).unwrap_err();
        assert!(e.contains("nor in "), "{e}");
        assert!(e.contains("app.env"), "{e}");
        let missing = Vars::with_env_file("nope.env", dir.path());
        let e = expand("${GOSUV_T_NOWHERE}", &missing).unwrap_err();
        assert!(e.contains("cannot read env_file"), "{e}");
    }
}
