//! How a string `command` is run, so that the pid gosuv shows is the program's own.
//!
//! A string that is one simple command (words, quotes the shell and `shlex` split alike, no
//! other shell syntax) is split here and exec'd directly. One command that needs the shell
//! (a `$VAR`, a redirection, a glob) runs as `/bin/sh -c 'exec ...'`: the shell expands it,
//! then becomes the program (dash, Debian's `/bin/sh`, does not exec a last command by
//! itself). Anything else (lists, pipes, compound commands, assignments, builtins) runs as
//! written under `/bin/sh -c`. When unsure it is the last: a wrapper left in place is a
//! lesser harm than a command split differently from the shell.

/// How to run a string command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Exec these words directly (the first found on `PATH`).
    Direct(Vec<String>),
    /// `/bin/sh -c 'exec <command>'`: one command the shell must expand first.
    Exec,
    /// `/bin/sh -c '<command>'`, as written.
    AsIs,
}

/// Words a shell treats as its own at a command's start: reserved words and the builtins of
/// dash (and bash) that act on the shell itself or differ from a program of the same name
/// (`echo` reads backslashes in dash, not in coreutils). None of them is exec'd.
const SHELL_WORDS: &[&str] = &[
    "!",
    "[[",
    "]]",
    "{",
    "}",
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "case",
    "cd",
    "chdir",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "coproc",
    "declare",
    "dirs",
    "disown",
    "do",
    "done",
    "echo",
    "elif",
    "else",
    "enable",
    "esac",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "fi",
    "for",
    "function",
    "getopts",
    "hash",
    "help",
    "history",
    "if",
    "in",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "select",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "then",
    "time",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "until",
    "wait",
    "while",
];

/// What a scan of the command found outside single quotes.
#[derive(Default)]
struct Found {
    /// More than one command, or syntax around commands: `; & | ( ) { }`, newlines,
    /// backquotes, `$(`, unbalanced quotes.
    several: bool,
    /// Something the shell expands or redirects in a single command: `$`, `< >`, globs,
    /// `~`, `#`, a backslash (shlex and the shell may read one differently: the shell
    /// reads it).
    expands: bool,
}

fn scan(s: &str) -> Found {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut f = Found::default();
    let mut q = Quote::None;
    let mut chars = s.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        match q {
            Quote::Single => {
                if c == '\'' {
                    q = Quote::None;
                }
            }
            Quote::Double => match c {
                '"' => q = Quote::None,
                '`' => f.several = true,
                '$' if chars.peek() == Some(&'(') => f.several = true,
                '$' if chars.peek() == Some(&'{') => braced(&mut chars, &mut f),
                '$' | '\\' => f.expands = true,
                '\n' | '\r' => f.several = true,
                _ => {}
            },
            Quote::None => match c {
                '\'' => q = Quote::Single,
                '"' => q = Quote::Double,
                // `>&2`, `2>&1`, `<&0`: a redirection, not a background job.
                '&' if matches!(prev, '<' | '>') => f.expands = true,
                ';' | '&' | '|' | '(' | ')' | '{' | '}' | '`' | '\n' | '\r' => f.several = true,
                '$' if chars.peek() == Some(&'(') => f.several = true,
                '$' if chars.peek() == Some(&'{') => braced(&mut chars, &mut f),
                '$' | '<' | '>' | '*' | '?' | '[' | ']' | '~' | '#' | '\\' | '!' | '%' | '^' => {
                    f.expands = true
                }
                _ => {}
            },
        }
        prev = c;
    }
    if q != Quote::None {
        f.several = true;
    }
    f
}

/// After `$`: a `${NAME}` or `${NAME:-word}` with a plain word is an expansion; anything
/// nested in it (quotes, `$`, commands) is left to the shell as written.
fn braced(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, f: &mut Found) {
    chars.next();
    f.expands = true;
    for c in chars.by_ref() {
        match c {
            '}' => return,
            '$' | '`' | '(' | ')' | '{' | '\'' | '"' | '\\' | ';' | '&' | '|' | '\n' | '\r' => {
                f.several = true
            }
            _ => {}
        }
    }
    f.several = true;
}

/// Whether `word` is `NAME=...`: an assignment when it comes first.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// How to run the string command `s` (see the module's comment).
pub(crate) fn plan(s: &str) -> Plan {
    let found = scan(s);
    if found.several {
        return Plan::AsIs;
    }
    let trimmed = s.trim_start();
    // A redirection first (`>log cmd`) may be followed by assignments: left to the shell.
    if trimmed.starts_with(|c: char| matches!(c, '<' | '>') || c.is_ascii_digit())
        && trimmed
            .split_whitespace()
            .next()
            .is_some_and(|w| w.contains(['<', '>']))
    {
        return Plan::AsIs;
    }
    let Some(words) = shlex::split(s) else {
        return Plan::AsIs;
    };
    let Some(first) = words.first() else {
        return Plan::AsIs;
    };
    let raw_first = trimmed.split_whitespace().next().unwrap_or_default();
    if SHELL_WORDS.contains(&first.as_str())
        || SHELL_WORDS.contains(&raw_first)
        || is_assignment(raw_first)
        || first.is_empty()
    {
        return Plan::AsIs;
    }
    if found.expands {
        Plan::Exec
    } else {
        Plan::Direct(words)
    }
}

/// The argv that runs `s` by `plan`, `exec` or as written (`direct` is taken as given).
pub(crate) fn shell_argv(s: &str, plan: &Plan) -> Vec<String> {
    match plan {
        Plan::Direct(words) => words.clone(),
        Plan::Exec => vec!["/bin/sh".into(), "-c".into(), format!("exec {s}")],
        Plan::AsIs => vec!["/bin/sh".into(), "-c".into(), s.into()],
    }
}

/// Whether the file at `path` is one `execve` runs itself: a binary (ELF) or a script with
/// `#!`. A script without one is run by the shell instead (as `execvp` and the shell do).
pub(crate) fn execve_runs(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    head[..n].starts_with(b"#!") || head[..n] == *b"\x7fELF"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(s: &str) -> Vec<String> {
        match plan(s) {
            Plan::Direct(w) => w,
            other => panic!("{s:?} should be exec'd directly, got {other:?}"),
        }
    }

    #[test]
    fn simple_commands_are_split_like_the_shell() {
        assert_eq!(direct("sleep 30"), ["sleep", "30"]);
        assert_eq!(
            direct("  /usr/bin/env  -i  x "),
            ["/usr/bin/env", "-i", "x"]
        );
        assert_eq!(
            direct("python3 -c 'print(1)'"),
            ["python3", "-c", "print(1)"]
        );
        assert_eq!(direct("grep \"a b\" 'c d'"), ["grep", "a b", "c d"]);
        assert_eq!(
            direct("x --opt=1 a.b-c_d/e:f@g+h"),
            ["x", "--opt=1", "a.b-c_d/e:f@g+h"]
        );
        assert_eq!(direct("x ''"), ["x", ""]);
    }

    #[test]
    fn one_command_the_shell_expands_is_execd_by_it() {
        for s in [
            "sleep 30 > /dev/null",
            "sleep $SECS",
            "sleep \"${SECS:-3}\"",
            "sleep ${SECS:-3} ${X}",
            "cat < in",
            "ls *.log",
            "ls ~/x",
            "run 2>&1",
            "run >&2",
            "sleep 1 # why",
            "printf2 'x' \\n",
        ] {
            assert_eq!(plan(s), Plan::Exec, "{s:?}");
        }
        assert_eq!(
            shell_argv("sleep $S", &Plan::Exec),
            ["/bin/sh", "-c", "exec sleep $S"]
        );
    }

    #[test]
    fn anything_else_stays_as_written() {
        for s in [
            "echo a; sleep 30",
            "a && b",
            "a || b",
            "a | b",
            "a &",
            "a &> f",
            "(a)",
            "{ a; }",
            "a\nb",
            "a `b`",
            "a $(b)",
            "a \"$(b)\"",
            "a \"`b`\"",
            "a ${X:-$(b)}",
            "a ${X",
            "X=1 prog",
            "cd /tmp",
            "exec sleep 1",
            "echo 'a b'",
            "printf '%s\\n' 'a b'",
            "if true",
            "> f cmd",
            "2>f X=1 cmd",
            "a 'unclosed",
            "a \"unclosed",
            "while",
            "coproc sleep 30",
            "pushd /tmp",
            "popd",
            "dirs",
            "disown",
            "shopt -s nullglob",
            "enable -n echo",
            "mapfile lines",
            "readarray lines",
            "source ./env.sh",
            "declare -x A",
            "typeset A",
            "let A",
            "local A",
            "",
            "   ",
        ] {
            assert_eq!(plan(s), Plan::AsIs, "{s:?}");
        }
    }

    #[test]
    fn quoted_specials_are_words() {
        assert_eq!(direct("grep 'a;b|c&d' \"e f\""), ["grep", "a;b|c&d", "e f"]);
        assert_eq!(direct("x '$HOME' '*'"), ["x", "$HOME", "*"]);
    }

    #[test]
    fn no_panic_on_odd_input() {
        for s in ["\u{0}", "'", "\"", "\\", "é ü", "\u{feff}x", "x\u{2028}y"] {
            let _ = plan(s);
        }
    }
}
