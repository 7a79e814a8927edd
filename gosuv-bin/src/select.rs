//! Which programs a list of names and shell globs (`web-*`, `db`, `all`) selects: one rule
//! for the CLI and the API's `?names=`, so both select the same programs.

use globset::{Glob, GlobMatcher};

/// Why a selection failed; nothing is to be done then.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Patterns that match no program.
    #[error("no program matches {}: check the name{} (list the programs with 'gosuv status')", quoted(.0), if .0.len() == 1 { "" } else { "s" })]
    Unmatched(Vec<String>),
    /// A pattern that is not a glob.
    #[error("'{pattern}' is not a name or a glob ({why}): use *, ? and [...] in a program name")]
    BadGlob {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        why: String,
    },
    /// No pattern at all.
    #[error("no program named: give names or globs, or 'all'")]
    Empty,
}

fn quoted(patterns: &[String]) -> String {
    patterns
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One pattern: a plain name is compared as it is; `all` is `*`.
enum Pattern {
    Literal(String),
    Glob(GlobMatcher),
}

impl Pattern {
    fn new(p: &str) -> Result<Self, SelectError> {
        if p == "all" {
            return Ok(Pattern::Glob(
                Glob::new("*").map_err(|e| bad(p, &e))?.compile_matcher(),
            ));
        }
        if !p.contains(['*', '?', '[']) {
            return Ok(Pattern::Literal(p.to_string()));
        }
        Ok(Pattern::Glob(
            Glob::new(p).map_err(|e| bad(p, &e))?.compile_matcher(),
        ))
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Literal(l) => l == name,
            Pattern::Glob(g) => g.is_match(name),
        }
    }
}

fn bad(pattern: &str, e: &globset::Error) -> SelectError {
    SelectError::BadGlob {
        pattern: pattern.to_string(),
        why: e.kind().to_string(),
    }
}

/// The names among `names` that `patterns` select, in the order of `names`, each once.
///
/// # Errors
/// [`SelectError::Unmatched`] with every pattern that selects nothing (so nothing is done
/// for a typo among good names), [`SelectError::BadGlob`], [`SelectError::Empty`].
pub fn select<S: AsRef<str>>(patterns: &[S], names: &[String]) -> Result<Vec<String>, SelectError> {
    if patterns.is_empty() {
        return Err(SelectError::Empty);
    }
    let compiled: Vec<(String, Pattern)> = patterns
        .iter()
        .map(|p| Pattern::new(p.as_ref()).map(|c| (p.as_ref().to_string(), c)))
        .collect::<Result<_, _>>()?;
    let mut used = vec![false; compiled.len()];
    let mut out = Vec::new();
    for n in names {
        let mut hit = false;
        for (i, (_, c)) in compiled.iter().enumerate() {
            if c.matches(n) {
                used[i] = true;
                hit = true;
            }
        }
        if hit {
            out.push(n.clone());
        }
    }
    let unmatched: Vec<String> = compiled
        .into_iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|((p, _), _)| p)
        .collect();
    if !unmatched.is_empty() {
        return Err(SelectError::Unmatched(unmatched));
    }
    Ok(out)
}

/// Splits `a,w-*` (the API's `?names=`) into patterns, blanks dropped.
pub fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["db", "web-0", "web-1", "web-10", "worker"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn globs_literals_and_all() {
        let n = names();
        assert_eq!(
            select(&["web-?", "db"], &n).unwrap(),
            ["db", "web-0", "web-1"]
        );
        assert_eq!(
            select(&["web-*"], &n).unwrap(),
            ["web-0", "web-1", "web-10"]
        );
        assert_eq!(select(&["w[!e]*"], &n).unwrap(), ["worker"]);
        assert_eq!(select(&["web-[01]"], &n).unwrap(), ["web-0", "web-1"]);
        assert_eq!(select(&["all"], &n).unwrap(), n);
        assert_eq!(select(&["*", "db"], &n).unwrap(), n);
        assert_eq!(select(&["db", "db"], &n).unwrap(), ["db"]);
    }

    #[test]
    fn every_unmatched_pattern_is_named() {
        let n = names();
        let e = select(&["db", "cache", "api-*"], &n).unwrap_err();
        assert_eq!(
            e,
            SelectError::Unmatched(vec!["cache".into(), "api-*".into()])
        );
        assert!(e
            .to_string()
            .starts_with("no program matches 'cache', 'api-*': check the names"));
        assert_eq!(select::<&str>(&[], &n).unwrap_err(), SelectError::Empty);
        assert!(matches!(
            select(&["web-[0"], &n).unwrap_err(),
            SelectError::BadGlob { .. }
        ));
    }

    #[test]
    fn lists_split_on_commas() {
        assert_eq!(split_list(" a, w-*,,"), ["a", "w-*"]);
        assert!(split_list("").is_empty());
    }
}
