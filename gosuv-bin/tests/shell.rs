//! `gosuv shell` in a real terminal (tmux) against the real server: the prompt, commands and
//! their output, Tab completion from the server, Ctrl-C, history across sessions, losing
//! the server and getting it back, Ctrl-D; and without a terminal, one command a line.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::tmux::{self, Tmux};
use common::*;

const PROGRAMS: &str = "\
- name: alpha-one
  command: sleep 1000
- name: beta
  command: sleep 1000
- name: ticker
  command: \"i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.1; done\"
";

/// The shell of `env` in a terminal of its own, its home (the history's place) the env's dir.
fn shell(env: &Env, args: &str) -> Tmux {
    let home = env.dir.path().to_string_lossy().into_owned();
    let command = format!(
        "exec {} -c {} {args}",
        tmux::shell_quote(BIN),
        tmux::shell_quote(&env.conf().to_string_lossy())
    );
    Tmux::start(env.dir.path(), 160, 40, &[("HOME", &home)], &command)
}

/// The screen's last line that is not empty.
fn last_line(screen: &str) -> String {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string()
}

/// How many prompts the terminal has shown.
fn prompts(screen: &str) -> usize {
    screen.lines().filter(|l| l.starts_with("gosuv>")).count()
}

/// Waits for the prompt on the last line, with nothing typed after it.
fn wait_prompt(t: &Tmux) {
    t.wait_for(10, "an empty prompt", |s| {
        last_line(s).trim_end() == "gosuv>"
    });
}

macro_rules! need_tmux {
    () => {
        if let Some(why) = tmux::unavailable() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

#[test]
fn commands_completion_and_ctrl_c_at_the_prompt() {
    need_tmux!();
    let env = Env::unix();
    env.programs(PROGRAMS);
    let _server = env.start();
    env.ok(&["start", "all"]);

    let t = shell(&env, "shell");
    wait_prompt(&t);

    // The same table as `gosuv status`.
    t.line("status");
    t.wait_for(10, "the status table", |s| {
        s.contains("NAME")
            && s.lines()
                .any(|l| l.starts_with("alpha-one") && l.contains("running"))
    });
    wait_prompt(&t);

    // Tab completes a program name the server has (a unique prefix: taken whole, with its
    // space), then the command stops it.
    t.type_text("stop alp");
    t.keys(&["Tab"]);
    t.wait_for(10, "the name completed", |s| {
        last_line(s) == "gosuv> stop alpha-one"
    });
    t.keys(&["Enter"]);
    t.wait_text(15, "alpha-one: stopped");
    assert_eq!(
        env.api("GET", "/api/programs/alpha-one", "").json()["state"],
        "stopped"
    );
    assert_eq!(
        env.api("GET", "/api/programs/beta", "").json()["state"],
        "running"
    );
    wait_prompt(&t);

    // Tab on a command's first letters: their common part, then (a second Tab) the matches.
    t.type_text("res");
    t.keys(&["Tab"]);
    t.wait_for(10, "the common part", |s| last_line(s) == "gosuv> restart");
    t.keys(&["Tab"]);
    t.wait_for(10, "restart and restart-server listed", |s| {
        s.contains("restart-server")
            && s.lines()
                .any(|l| l.split_whitespace().any(|w| w == "restart"))
    });
    // Ctrl-C drops the line typed so far.
    t.keys(&["C-c"]);
    wait_prompt(&t);
    // An empty line: a new prompt under the last (type-ahead sent before it shows can be
    // lost: the line editor reads the terminal's answer to where its cursor is).
    let before = prompts(&t.history());
    t.keys(&["Enter"]);
    t.wait_for(10, "a new prompt", |s| {
        prompts(s) > before && last_line(s).trim_end() == "gosuv>"
    });

    // Ctrl-C ends a follow and the prompt comes back; the shell still works.
    t.line("logs -f ticker");
    t.wait_for(10, "live lines", |s| {
        s.matches("ticker | tick-").count() >= 12
    });
    t.keys(&["C-c"]);
    t.wait_text(10, "gosuv: interrupted");
    wait_prompt(&t);
    t.line("version");
    t.wait_text(10, "server 0.1");
    wait_prompt(&t);

    // A failing command prints its error and the shell stays.
    t.line("stop nosuch");
    t.wait_text(10, "no program named 'nosuch'");
    wait_prompt(&t);

    // Ctrl-D leaves with status 0.
    t.keys(&["C-d"]);
    assert_eq!(t.wait_exit(10), 0);
}

#[test]
fn history_is_kept_across_sessions() {
    need_tmux!();
    let env = Env::unix();
    env.programs(PROGRAMS);
    let _server = env.start();

    let first = shell(&env, "shell");
    wait_prompt(&first);
    first.line("status beta");
    first.wait_text(10, "beta ");
    wait_prompt(&first);
    first.line("exit");
    assert_eq!(first.wait_exit(10), 0);
    drop(first);

    let file = env.path(".gosuv_history");
    let text = std::fs::read_to_string(&file).expect("the history file");
    assert!(text.contains("status beta"), "{text}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the history is private: {mode:o}");

    // A second session: Up brings the first session's commands back, the last first.
    // `gosuv` alone, on a terminal, is the shell too.
    let second = shell(&env, "");
    wait_prompt(&second);
    second.keys(&["Up"]);
    second.wait_for(10, "the last command of the first session", |s| {
        last_line(s) == "gosuv> exit"
    });
    second.keys(&["Up"]);
    second.wait_for(10, "the one before", |s| {
        last_line(s) == "gosuv> status beta"
    });
    second.keys(&["C-u", "C-d"]);
    assert_eq!(second.wait_exit(10), 0);
}

#[test]
fn the_shell_outlives_the_server() {
    need_tmux!();
    let env = Env::unix();
    env.programs(PROGRAMS);
    let server = env.start();

    let t = shell(&env, "shell");
    wait_prompt(&t);
    server.shutdown();

    t.line("status");
    t.wait_text(10, "cannot reach gosuv at unix://");
    wait_prompt(&t);

    let _server = env.start();
    t.line("status");
    t.wait_for(10, "the table again", |s| {
        s.lines().any(|l| l.starts_with("ticker"))
    });
    wait_prompt(&t);
    t.keys(&["C-d"]);
    assert_eq!(t.wait_exit(10), 0);
}

#[test]
fn without_a_terminal_it_reads_commands_from_stdin() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    let _server = env.start();
    env.ok(&["start", "all"]);

    let run = |input: &str| {
        let mut child = env
            .command(&["shell"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the shell");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };

    // Every line runs, in order; one failed, so the exit status is 1.
    let out = run("# stop one\nstop beta\nstop nosuch\n\nstatus beta\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("beta: stopped"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("beta") && l.contains("stopped")),
        "{stdout}"
    );
    assert!(stderr.contains("no program named 'nosuch'"), "{stderr}");
    assert!(stderr.contains("1 command failed"), "{stderr}");
    assert!(
        !stdout.contains("gosuv>"),
        "no prompt without a terminal: {stdout}"
    );

    // All succeeded: 0; `exit` ends the input early.
    let out = run("start beta\nexit\nstop nosuch\n");
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
    assert_eq!(
        env.api("GET", "/api/programs/beta", "").json()["state"],
        "running"
    );

    // `gosuv` alone without a terminal is a usage error, not a shell reading nothing.
    let err = env.fails(&[]);
    assert!(err.contains("no command given"), "{err}");
}
