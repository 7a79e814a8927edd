//! Which programs a list of names and shell globs (`web-*`, `db`, `all`) selects: one rule
//! for the CLI and the API's `?names=`, so both select the same programs.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// The most patterns one selection takes: one request cannot make the server compile and
/// try thousands of globs against every name.
pub const MAX_PATTERNS: usize = 256;

/// How many unmatched patterns an error names (the rest are counted).
const MAX_NAMED: usize = 10;

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
    /// More patterns than [`MAX_PATTERNS`].
    #[error("{0} names or globs: at most {MAX_PATTERNS} are taken at once (use a glob such as 'web-*' for many)")]
    TooMany(usize),
}

/// The first [`MAX_NAMED`] patterns, quoted, and how many more there are.
fn quoted(patterns: &[String]) -> String {
    let mut s = patterns
        .iter()
        .take(MAX_NAMED)
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if patterns.len() > MAX_NAMED {
        s.push_str(&format!(" and {} more", patterns.len() - MAX_NAMED));
    }
    s
}

fn bad(pattern: &str, e: &globset::Error) -> SelectError {
    SelectError::BadGlob {
        pattern: pattern.to_string(),
        why: e.kind().to_string(),
    }
}

/// The names among `names` that `patterns` select, in the order of `names`, each once. A
/// plain name is compared as it is; `all` is `*`; the globs are matched as one set.
///
/// # Errors
/// [`SelectError::Unmatched`] with every pattern that selects nothing (so nothing is done
/// for a typo among good names), [`SelectError::BadGlob`], [`SelectError::Empty`],
/// [`SelectError::TooMany`].
pub fn select<S: AsRef<str>>(patterns: &[S], names: &[String]) -> Result<Vec<String>, SelectError> {
    if patterns.is_empty() {
        return Err(SelectError::Empty);
    }
    if patterns.len() > MAX_PATTERNS {
        return Err(SelectError::TooMany(patterns.len()));
    }
    // Each literal's pattern indexes; each glob of the set maps to its pattern's index.
    let mut literals: std::collections::HashMap<&str, Vec<usize>> =
        std::collections::HashMap::new();
    let mut globs = GlobSetBuilder::new();
    let mut glob_of: Vec<usize> = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        let p = p.as_ref();
        let glob = if p == "all" { "*" } else { p };
        if glob.contains(['*', '?', '[']) {
            globs.add(Glob::new(glob).map_err(|e| bad(p, &e))?);
            glob_of.push(i);
        } else {
            literals.entry(p).or_default().push(i);
        }
    }
    let set: GlobSet = globs.build().map_err(|e| bad(patterns[0].as_ref(), &e))?;
    let mut used = vec![false; patterns.len()];
    let mut out = Vec::new();
    let mut hits = Vec::new();
    for n in names {
        set.matches_into(n, &mut hits);
        let lit = literals.get(n.as_str());
        if hits.is_empty() && lit.is_none() {
            continue;
        }
        for &g in &hits {
            used[glob_of[g]] = true;
        }
        for &i in lit.into_iter().flatten() {
            used[i] = true;
        }
        out.push(n.clone());
    }
    let unmatched: Vec<String> = patterns
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(p, _)| p.as_ref().to_string())
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
    fn many_patterns_are_capped_and_named_briefly() {
        let n = names();
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("p{i}")).collect();
        assert_eq!(
            select(&many, &n).unwrap_err(),
            SelectError::TooMany(MAX_PATTERNS + 1)
        );
        let some: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
        let e = select(&some, &n).unwrap_err().to_string();
        assert!(
            e.contains("'p9'") && !e.contains("'p10'") && e.contains("and 40 more"),
            "{e}"
        );
    }

    #[test]
    fn lists_split_on_commas() {
        assert_eq!(split_list(" a, w-*,,"), ["a", "w-*"]);
        assert!(split_list("").is_empty());
    }
}
