//! `gosuv shell`: the commands of the CLI at a prompt, like `supervisorctl` with no
//! arguments.
//!
//! Each line is split like a POSIX shell (the `shlex` crate), parsed by the same clap
//! definitions as the command line and run by the same function ([`crate::commands::run`]),
//! so a command says and does in the shell exactly what it does as `gosuv CMD`. On a
//! terminal: line editing, history in `~/.gosuv_history`, Tab completion of commands, flags
//! and program names (asked of the server at each Tab), and Ctrl-C abandons the line or the
//! command under way (a `logs -f`, a `wait`) and returns to the prompt. Without a terminal
//! it reads one command a line and exits 1 if any failed.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};

use crate::cli::{Cli, Command};
use crate::{CliResult, Failure};

/// The prompt.
pub const PROMPT: &str = "gosuv> ";

/// The history file's name, in the home directory.
const HISTORY_FILE: &str = ".gosuv_history";

/// How long Tab waits for the server's program names (one request, in this process: a
/// little more than a separate `gosuv __names` gets, which pays for its own start).
const NAMES_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// How many lines of history are kept.
const HISTORY_SIZE: usize = 1000;

/// What one line did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Nothing to do (a blank line or a comment), or the command succeeded.
    Done,
    /// The command failed (its message is printed).
    Failed,
    /// `exit` or `quit`.
    Exit,
}

/// Runs the shell on `conf`: interactive when stdin is a terminal, else one command a line.
///
/// # Errors
/// Without a terminal, a command failed (exit status 1, after every line was run); on a
/// terminal, the line editor could not start.
pub fn run(conf: &Path) -> CliResult {
    if std::io::stdin().is_terminal() {
        interactive(conf)
    } else {
        scripted(conf, std::io::stdin().lock())
    }
}

/// One command a line from `input`; every line is run, and the result is an error when any
/// failed.
fn scripted(conf: &Path, input: impl BufRead) -> CliResult {
    let mut failed = 0usize;
    for (n, line) in input.split(b'\n').enumerate() {
        let line = line.map_err(|e| Failure::new(format!("cannot read the commands: {e}")))?;
        let Ok(line) = String::from_utf8(line) else {
            eprintln!("gosuv: line {}: not UTF-8: skipped", n + 1);
            failed += 1;
            continue;
        };
        match run_line(conf, &line) {
            Outcome::Done => {}
            Outcome::Failed => failed += 1,
            Outcome::Exit => break,
        }
    }
    if failed > 0 {
        return Err(Failure::new(format!(
            "{failed} command{} failed",
            if failed == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

fn interactive(conf: &Path) -> CliResult {
    // Ctrl-C while a command runs abandons it (the prompt comes back) instead of ending
    // the shell; at the prompt, the line editor reads it as a key.
    crate::interrupt::enable().map_err(|e| Failure::new(format!("cannot handle Ctrl-C: {e}")))?;
    let config = Config::builder()
        .max_history_size(HISTORY_SIZE)
        .map_err(|e| Failure::new(format!("cannot start the line editor: {e}")))?
        .history_ignore_dups(true)
        .map_err(|e| Failure::new(format!("cannot start the line editor: {e}")))?
        .history_ignore_space(true)
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<ShellHelper, rustyline::history::DefaultHistory> =
        Editor::with_config(config)
            .map_err(|e| Failure::new(format!("cannot start the line editor: {e}")))?;
    editor.set_helper(Some(ShellHelper {
        conf: conf.to_path_buf(),
    }));
    let mut history = history_path().filter(|path| usable_history(path));
    if let Some(path) = &history {
        // A first session has no file yet; an unreadable one is said once.
        if let Err(e) = editor.load_history(path) {
            if path.exists() {
                eprintln!(
                    "warning: cannot read the history in {}: {e}",
                    path.display()
                );
            }
        }
    }
    println!(
        "gosuv {} shell: 'help' lists the commands, 'exit' or Ctrl-D leaves",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        let line = match editor.readline(PROMPT) {
            Ok(line) => line,
            // Ctrl-C at the prompt drops the line.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            // A byte that is not UTF-8 (pasted Latin-1, a Meta key): that line only.
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                eprintln!("gosuv: the line was not UTF-8: dropped");
                continue;
            }
            Err(e) => return Err(Failure::new(format!("cannot read the command line: {e}"))),
        };
        if !line.trim().is_empty() {
            let _ = editor.add_history_entry(line.trim_end());
            if let Some(path) = &history {
                // Appended after each command, so two shells at once both keep theirs.
                if let Err(e) = editor.append_history(path) {
                    eprintln!(
                        "warning: cannot write the history to {}: {e} (history off for this session)",
                        path.display()
                    );
                    history = None;
                }
            }
        }
        let outcome = run_line(conf, &line);
        reap_children();
        if outcome == Outcome::Exit {
            break;
        }
    }
    Ok(())
}

/// Whether the history file may be used: not a symlink (the line editor makes its file
/// private, and would make another file private through it). A link to /dev/null, the
/// usual way to turn a history off, turns it off without a word.
fn usable_history(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            if std::fs::read_link(path).is_ok_and(|t| t != Path::new("/dev/null")) {
                eprintln!(
                    "warning: {} is a symlink: no history kept (make it a file of its own)",
                    path.display()
                );
            }
            false
        }
        Ok(m) if !m.is_file() => {
            eprintln!(
                "warning: {} is not a regular file: no history kept",
                path.display()
            );
            false
        }
        _ => true,
    }
}

/// Reaps what this shell started and has exited: a server started here (`start-server`)
/// is its child, and would stay a zombie after its `shutdown` while the shell runs.
fn reap_children() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// `~/.gosuv_history`, or None without a home directory.
fn history_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })?;
    Some(home.join(HISTORY_FILE))
}

/// Runs one line: prints what the command prints, or its error.
fn run_line(conf: &Path, line: &str) -> Outcome {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Outcome::Done;
    }
    let Some(words) = shlex::split(line) else {
        eprintln!("gosuv: unbalanced quotes in: {line}");
        return Outcome::Failed;
    };
    match words.first().map(String::as_str) {
        Some("exit" | "quit") if words.len() == 1 => return Outcome::Exit,
        Some("help" | "h") if words.len() == 1 => {
            let _ = crate::docs::help(&[]);
            println!("\nIn the shell: exit, quit or Ctrl-D leaves; Ctrl-C abandons a command.");
            return Outcome::Done;
        }
        _ => {}
    }
    if let Some(w) = words.iter().take_while(|w| *w != "--").find(|w| {
        *w == "-c" || w.starts_with("--conf") || (w.starts_with("-c") && !w.starts_with("--"))
    }) {
        eprintln!(
            "gosuv: {w}: the shell's commands use the config it was started with: \
             run 'gosuv -c PATH shell' for another"
        );
        return Outcome::Failed;
    }
    let args = [
        std::ffi::OsString::from("gosuv"),
        "-c".into(),
        conf.as_os_str().to_owned(),
    ]
    .into_iter()
    .chain(words.into_iter().map(std::ffi::OsString::from));
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Outcome::Failed
            } else {
                Outcome::Done
            };
        }
    };
    if let Some(refused) = refused_in_shell(cli.command.as_ref()) {
        eprintln!("gosuv: {refused}");
        return Outcome::Failed;
    }
    crate::interrupt::begin_command();
    if matches!(cli.command, Some(Command::Top)) {
        return top(conf);
    }
    match crate::commands::run(cli) {
        Ok(()) => Outcome::Done,
        Err(e) => {
            // After the terminal's `^C`, on a line of its own.
            let newline = if e.message.starts_with(crate::client::INTERRUPTED) {
                "\n"
            } else {
                ""
            };
            eprintln!("{newline}gosuv: {}", e.message);
            Outcome::Failed
        }
    }
}

/// `top`, as a process of its own (the same binary and function): a full-screen program
/// reads the terminal on a thread of its own, and a key typed as it exits could go to that
/// thread instead of the prompt; its end, as a process, leaves every later key to the shell,
/// and its signal handlers and terminal state go with it.
fn top(conf: &Path) -> Outcome {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("gosuv: cannot find this program to run top: {e}");
            return Outcome::Failed;
        }
    };
    match std::process::Command::new(exe)
        .arg("-c")
        .arg(conf)
        .arg("top")
        .status()
    {
        Ok(status) if status.success() => Outcome::Done,
        // top said why.
        Ok(_) => Outcome::Failed,
        Err(e) => {
            eprintln!("gosuv: cannot run top: {e}");
            Outcome::Failed
        }
    }
}

/// Why a command is not run inside the shell, if it is not.
fn refused_in_shell(command: Option<&Command>) -> Option<&'static str> {
    match command? {
        Command::Shell => Some("already in the shell"),
        Command::StartServer {
            foreground: true, ..
        } => Some(
            "start-server -f would run the server inside the shell: use start-server \
             (it starts in the background), or run -f from a terminal of its own",
        ),
        Command::StartServer {
            daemon_child: true, ..
        }
        | Command::StartServer {
            pidfile_fd: Some(_),
            ..
        }
        | Command::StartServer {
            reexecuted: true, ..
        } => Some("these options of start-server are the server's own, not for the shell"),
        Command::Holder => Some("__holder is the server's, not a command"),
        _ => None,
    }
}

/// Completion of commands, flags and program names.
struct ShellHelper {
    conf: PathBuf,
}

impl Helper for ShellHelper {}
impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = line.get(..pos).unwrap_or(line);
        let start = before.rfind(char::is_whitespace).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        });
        let word = &before[start..];
        let earlier: Vec<&str> = before[..start].split_whitespace().collect();
        // A Ctrl-C of the last command must not abandon this request (no key makes a
        // SIGINT here: the terminal is raw while a line is edited).
        crate::interrupt::begin_command();
        let found = candidates(&earlier, word, || {
            crate::docs::server_names(&self.conf, NAMES_TIMEOUT)
        });
        let pairs = found
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect::<Vec<_>>();
        // A single match is taken whole and gets its space, as in bash.
        let pairs = match <[Pair; 1]>::try_from(pairs) {
            Ok([one]) => vec![Pair {
                replacement: format!("{} ", one.replacement),
                display: one.display,
            }],
            Err(many) => many,
        };
        Ok((start, pairs))
    }
}

/// What may complete `word`, after the words `earlier` of the line. `names` asks the server
/// for its program names (only when a name may come next).
fn candidates(earlier: &[&str], word: &str, names: impl FnOnce() -> Vec<String>) -> Vec<String> {
    let cli = Cli::command();
    let mut out: Vec<String> = match earlier.first() {
        // The command itself.
        None => commands(&cli)
            .into_iter()
            .chain(["exit", "quit"].map(String::from))
            .collect(),
        Some(&first) => {
            let Some(sub) = cli
                .get_subcommands()
                .find(|s| s.get_name() == first || s.get_all_aliases().any(|a| a == first))
            else {
                return Vec::new();
            };
            if word.starts_with('-') {
                flags(sub)
            } else if matches!(sub.get_name(), "help") {
                commands(&cli)
            } else if sub.get_name() == "completions" {
                ["bash", "zsh", "fish", "elvish", "powershell"]
                    .map(String::from)
                    .to_vec()
            } else if sub.get_name() == "signal" && earlier[1..].iter().all(|w| w.starts_with('-'))
            {
                gosuv::signal_names()
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else if crate::docs::takes_names(sub.get_name()) {
                let given = earlier[1..].iter().filter(|w| !w.starts_with('-')).count();
                if sub.get_name() == "tail" && given > 0 {
                    return Vec::new();
                }
                let mut n = names();
                if !matches!(sub.get_name(), "status" | "logs" | "tail") {
                    n.push("all".to_string());
                }
                // Not the names already on the line.
                n.retain(|c| !earlier[1..].contains(&c.as_str()));
                n
            } else {
                Vec::new()
            }
        }
    };
    out.retain(|c| c.starts_with(word));
    out.sort();
    out.dedup();
    out
}

/// Every visible command name and alias.
fn commands(cli: &clap::Command) -> Vec<String> {
    cli.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .flat_map(|s| {
            std::iter::once(s.get_name().to_string())
                .chain(s.get_visible_aliases().map(str::to_string))
        })
        .collect()
}

/// A command's flags, long and short.
fn flags(sub: &clap::Command) -> Vec<String> {
    sub.get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .flat_map(|a| {
            a.get_long()
                .map(|l| format!("--{l}"))
                .into_iter()
                .chain(a.get_short().map(|s| format!("-{s}")))
        })
        .chain(["--help".to_string()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["web-1".into(), "web-2".into(), "db".into()]
    }

    #[test]
    fn completes_commands() {
        let c = candidates(&[], "st", names);
        assert!(c.contains(&"start".to_string()), "{c:?}");
        assert!(c.contains(&"status".to_string()), "{c:?}");
        assert!(c.contains(&"stop".to_string()), "{c:?}");
        assert!(!c.iter().any(|x| x.starts_with("__")), "{c:?}");
        assert_eq!(candidates(&[], "qu", names), vec!["quit"]);
    }

    #[test]
    fn completes_program_names_only_where_they_go() {
        assert_eq!(candidates(&["stop"], "we", names), vec!["web-1", "web-2"]);
        assert_eq!(candidates(&["stop"], "a", names), vec!["all"]);
        assert_eq!(
            candidates(&["status"], "", names),
            vec!["db", "web-1", "web-2"]
        );
        let never = || -> Vec<String> { panic!("asked the server for names") };
        assert!(candidates(&["reload"], "", never).is_empty());
        assert!(candidates(&["nosuch"], "", never).is_empty());
        assert_eq!(candidates(&["signal"], "HU", never), vec!["HUP"]);
        assert_eq!(candidates(&["signal", "HUP"], "d", names), vec!["db"]);
        assert_eq!(candidates(&["stop", "web-1"], "web", names), vec!["web-2"]);
        assert!(candidates(&["stop", "all"], "a", names).is_empty());
        assert!(candidates(&["tail", "db"], "", never).is_empty());
        assert_eq!(candidates(&["tail", "-f"], "d", names), vec!["db"]);
    }

    #[test]
    fn completes_flags() {
        assert_eq!(candidates(&["status"], "--j", names), vec!["--json"]);
        let c = candidates(&["logs"], "-", names);
        assert!(c.contains(&"--follow".to_string()) && c.contains(&"-f".to_string()));
        assert_eq!(candidates(&["help"], "relo", names), vec!["reload"]);
    }

    #[test]
    fn lines_that_do_nothing() {
        let _serial = crate::interrupt::TEST_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let conf = Path::new("/nonexistent/config.yml");
        assert_eq!(run_line(conf, ""), Outcome::Done);
        assert_eq!(run_line(conf, "   # a comment"), Outcome::Done);
        assert_eq!(run_line(conf, "exit"), Outcome::Exit);
        assert_eq!(run_line(conf, " quit "), Outcome::Exit);
        assert_eq!(run_line(conf, "stop 'unbalanced"), Outcome::Failed);
        assert_eq!(run_line(conf, "nosuchcommand"), Outcome::Failed);
        assert_eq!(run_line(conf, "shell"), Outcome::Failed);
        assert_eq!(run_line(conf, "start-server -f"), Outcome::Failed);
        assert_eq!(
            run_line(conf, "start-server --pidfile-fd 3"),
            Outcome::Failed
        );
        assert_eq!(
            run_line(conf, "start-server --daemon-child"),
            Outcome::Failed
        );
        assert_eq!(run_line(conf, "-c /etc/x.yml status"), Outcome::Failed);
        assert_eq!(run_line(conf, "status --conf=/etc/x.yml"), Outcome::Failed);
        // A command that needs the server says it cannot reach it, and the shell goes on.
        assert_eq!(run_line(conf, "status"), Outcome::Failed);
    }

    #[test]
    fn scripted_runs_every_line_and_fails_if_one_did() {
        let _serial = crate::interrupt::TEST_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let conf = Path::new("/nonexistent/config.yml");
        assert!(scripted(conf, "\n# nothing\n".as_bytes()).is_ok());
        let e = scripted(conf, "status\nversion\nstatus\n".as_bytes()).unwrap_err();
        assert_eq!(e.message, "2 commands failed");
        assert!(scripted(conf, "exit\nstatus\n".as_bytes()).is_ok());
        let e = scripted(conf, b"\xff\xfe\n# fine\n".as_slice()).unwrap_err();
        assert_eq!(e.message, "1 command failed");
    }
}
