//! `gosuv top` in a real terminal (tmux) against a real server: what it shows, its keys,
//! its output pane, the way out on every path, HTTP with auth, a server that goes away and
//! comes back, the filter and resizes. Each wait polls the screen with a deadline.

mod common;

use common::tmux::{self, shell_quote, Tmux};
use common::*;

/// Whether the tmux tests can run here; says why not when they cannot.
fn can_run() -> bool {
    match tmux::unavailable() {
        None => true,
        Some(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// `gosuv top` for `env` in a `width` x `height` terminal. The shell stays after it, so the
/// terminal can be checked as top left it: it prints top's exit status and the terminal's
/// line settings (raw mode turns `icanon` and `echo` off).
fn top(env: &Env, width: u16, height: u16) -> Tmux {
    let cmd = format!(
        "{} -c {} top; echo \"top exited with $?\"; \
         stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; echo; \
         exec sleep 100000",
        shell_quote(BIN),
        shell_quote(&env.conf().to_string_lossy())
    );
    Tmux::start(env.dir.path(), width, height, &[], &cmd)
}

/// The pid of the `gosuv top` the pane's shell runs.
fn top_pid(t: &Tmux) -> i32 {
    let shell = t.pane_pid();
    let mut found = None;
    eventually(15, "top's process", || {
        found = all_pids().into_iter().find(|&pid| {
            let stat = std::fs::read(format!("/proc/{pid}/stat"))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            // `pid (comm) state ppid ...`
            let Some((comm, rest)) = stat.split_once(") ") else {
                return false;
            };
            comm.ends_with("(gosuv")
                && rest.split_whitespace().nth(1) == Some(shell.to_string().as_str())
        });
        found.is_some()
    });
    found.unwrap_or_default()
}

/// Waits until top has exited and returns its status.
fn wait_exit(t: &Tmux) -> i32 {
    let s = t.wait_text(15, "top exited with ");
    s.lines()
        .find_map(|l| l.trim().strip_prefix("top exited with ")?.parse().ok())
        .unwrap_or(-1)
}

/// Runs `f` with top (`width` x `height`) on a server of `programs` over the unix socket;
/// nothing where tmux is missing.
fn with_top(programs: &str, width: u16, height: u16, f: impl FnOnce(&Env, &Tmux)) {
    if !can_run() {
        return;
    }
    let env = Env::unix();
    env.programs(programs);
    let _srv = env.start();
    let t = top(&env, width, height);
    f(&env, &t);
}

/// The STATE cell of `name`'s row on `screen`, if the row is there.
fn row_state(screen: &str, name: &str) -> Option<String> {
    screen
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
}

/// Waits until `name`'s row shows `state`.
fn wait_row(t: &Tmux, name: &str, state: &str) -> String {
    t.wait_for(15, &format!("{name} {state}"), |s| {
        row_state(s, name).as_deref() == Some(state)
    })
}

/// Waits until the table is drawn (its header and `name`'s row).
fn wait_table(t: &Tmux, name: &str) {
    t.wait_for(15, "the table", |s| {
        s.contains("RESTARTS") && row_state(s, name).is_some()
    });
}

/// Whether tmux shows the cursor in the pane.
fn cursor_shown(t: &Tmux) -> bool {
    t.tmux(&["display-message", "-p", "-t", &t.target, "#{cursor_flag}"])
        .trim()
        == "1"
}

/// Quits top with `key` and checks it exits 0 and gives the terminal back.
fn quit_with(t: &Tmux, key: &str) {
    t.keys(&[key]);
    assert_eq!(wait_exit(t), 0);
    assert_restored(t);
}

/// After top exited: the primary screen is back, with the cursor, out of raw mode, and no
/// table left on it.
fn assert_restored(t: &Tmux) {
    let s = t.wait_for(15, "the line settings", |s| {
        s.lines().any(|l| l.contains("icanon"))
    });
    assert!(!t.alternate_on(), "still on the alternate screen:\n{s}");
    assert!(cursor_shown(t), "the cursor is hidden:\n{s}");
    assert!(
        s.lines().any(|l| l.trim() == "icanon echo"),
        "the terminal is left in raw mode:\n{s}"
    );
    assert!(
        !s.contains("RESTARTS") && !s.contains("gosuv top ·"),
        "the table is left on the screen:\n{s}"
    );
}

const THREE: &str = "\
- name: alpha
  command: [sleep, '100000']
  start_seconds: 0
  start_auto: true
- name: beta
  command: [sleep, '100000']
  start_seconds: 0
  start_auto: true
- name: gamma
  command: [sleep, '100000']
  start_seconds: 0
  start_auto: false
";

/// Prints a numbered line to stdout and one to stderr, ten times a second.
const COUNTER: &str = "\
- name: counter
  command: i=0; while :; do i=$((i+1)); echo out-$i; echo err-$i >&2; sleep 0.1; done
  start_seconds: 0
  start_auto: true
";

const WEB_AND_DB: &str = "\
- name: web-1
  command: [sleep, '100000']
- name: web-2
  command: [sleep, '100000']
- name: db
  command: [sleep, '100000']
";

#[test]
fn shows_every_program_and_follows_state_changes() {
    with_top(THREE, 160, 40, |env, t| {
        env.wait_state("alpha", "running");
        env.wait_state("beta", "running");
        t.wait_for(15, "the alternate screen", |_| t.alternate_on());
        wait_row(t, "alpha", "running");
        wait_row(t, "beta", "running");
        wait_row(t, "gamma", "stopped");
        // Changes made by someone else show up.
        let r = env.api("POST", "/api/programs/gamma/start", "");
        assert_eq!(r.status, 200, "{}", r.body);
        wait_row(t, "gamma", "running");
        let r = env.api("POST", "/api/programs/alpha/stop", "");
        assert_eq!(r.status, 200, "{}", r.body);
        wait_row(t, "alpha", "stopped");
        let s = t.screen();
        assert!(s.contains("CPU (1 min)") && s.contains("MEM"), "{s}");
        quit_with(t, "q");
    });
}

#[test]
fn x_asks_and_only_y_stops() {
    with_top(THREE, 160, 40, |env, t| {
        env.wait_state("alpha", "running");
        let pid = env.api("GET", "/api/programs/alpha", "").json()["pid"].clone();
        wait_row(t, "alpha", "running");
        // alpha, the first row, is selected.
        t.keys(&["x"]);
        t.wait_text(15, "stop alpha? y/n");
        t.keys(&["n"]);
        t.wait_text(15, "alpha: not stopped");
        let now = env.api("GET", "/api/programs/alpha", "").json();
        assert_eq!(now["state"], "running");
        assert_eq!(now["pid"], pid);
        t.keys(&["x"]);
        t.wait_text(15, "stop alpha? y/n");
        t.keys(&["y"]);
        env.wait_state("alpha", "stopped");
        t.wait_text(15, "alpha: stopped");
        wait_row(t, "alpha", "stopped");
        // And s starts it again, through the API too.
        t.keys(&["s"]);
        env.wait_state("alpha", "running");
        wait_row(t, "alpha", "running");
        quit_with(t, "C-c");
    });
}

/// The highest N of the `prefix`N lines on `screen`.
fn highest(screen: &str, prefix: &str) -> Option<u64> {
    screen
        .lines()
        .filter_map(|l| l.trim().strip_prefix(prefix)?.parse().ok())
        .max()
}

#[test]
fn the_output_pane_follows_live_and_l_switches_to_stderr() {
    with_top(COUNTER, 120, 40, |env, t| {
        env.wait_state("counter", "running");
        wait_row(t, "counter", "running");
        t.wait_text(15, "counter stdout");
        let first = t.wait_for(15, "a line of output", |s| highest(s, "out-").is_some());
        let seen = highest(&first, "out-").unwrap_or(0);
        // A line the program printed after that one shows up, without a key pressed.
        t.wait_for(15, "a fresh line", |s| {
            highest(s, "out-").is_some_and(|n| n > seen + 2)
        });
        t.keys(&["l"]);
        t.wait_text(15, "counter stderr");
        let s = t.wait_for(15, "standard error only", |s| {
            highest(s, "err-").is_some() && highest(s, "out-").is_none()
        });
        let seen = highest(&s, "err-").unwrap_or(0);
        t.wait_for(15, "a fresh line of stderr", |s| {
            highest(s, "err-").is_some_and(|n| n > seen + 2)
        });
        t.keys(&["l"]);
        t.wait_text(15, "counter stdout");
        quit_with(t, "q");
    });
}

#[test]
fn sigterm_restores_the_terminal() {
    with_top(THREE, 120, 30, |_env, t| {
        wait_table(t, "alpha");
        assert!(t.alternate_on());
        signal(top_pid(t), libc::SIGTERM);
        assert_eq!(wait_exit(t), 128 + libc::SIGTERM);
        assert_restored(t);
        assert!(
            t.screen().contains("top ended by SIGTERM"),
            "{}",
            t.screen()
        );
    });
}

#[test]
fn works_over_http_with_auth() {
    if !can_run() {
        return;
    }
    let env = Env::http(true);
    env.programs(THREE);
    let _srv = env.start();
    env.wait_state("alpha", "running");
    let t = top(&env, 160, 40);
    t.wait_text(15, "http://127.0.0.1:");
    wait_row(&t, "alpha", "running");
    wait_row(&t, "gamma", "stopped");
    // gamma is the third row.
    t.keys(&["Down", "Down", "s"]);
    env.wait_state("gamma", "running");
    wait_row(&t, "gamma", "running");
    t.wait_text(15, "gamma: running (pid");
    quit_with(&t, "q");
}

#[test]
fn reconnects_when_the_server_comes_back() {
    if !can_run() {
        return;
    }
    let env = Env::unix();
    env.programs(THREE);
    let srv = env.start();
    env.wait_state("alpha", "running");
    let t = top(&env, 160, 40);
    wait_row(&t, "alpha", "running");
    srv.shutdown();
    let s = t.wait_text(15, "reconnecting");
    // The last table stays.
    assert!(row_state(&s, "beta").is_some(), "{s}");
    let _srv = env.start();
    t.wait_for(15, "the server back", |s| {
        !s.contains("reconnecting") && row_state(s, "alpha").as_deref() == Some("running")
    });
    wait_row(&t, "beta", "running");
    quit_with(&t, "q");
}

#[test]
fn the_filter_shows_only_matching_names() {
    with_top(WEB_AND_DB, 120, 30, |_env, t| {
        wait_table(t, "db");
        t.keys(&["/"]);
        t.type_text("WEB");
        t.wait_for(15, "only web-*", |_| {
            let s = t.screen();
            row_state(&s, "web-1").is_some()
                && row_state(&s, "web-2").is_some()
                && row_state(&s, "db").is_none()
        });
        t.keys(&["Enter"]);
        t.wait_text(15, "filter 'WEB': 2 shown");
        assert!(row_state(&t.screen(), "db").is_none());
        t.keys(&["/", "Escape"]);
        t.wait_for(15, "every program", |s| row_state(s, "db").is_some());
        quit_with(t, "q");
    });
}

#[test]
fn survives_resizes_and_shows_help() {
    with_top(THREE, 120, 30, |_env, t| {
        wait_table(t, "gamma");
        for (w, h) in [(60, 12), (200, 50), (20, 4), (1, 1), (100, 25)] {
            t.resize(w, h);
            if w >= 60 {
                t.wait_for(15, &format!("the table at {w}x{h}"), |s| {
                    s.contains("NAME") && row_state(s, "alpha").is_some()
                });
            }
        }
        t.keys(&["?"]);
        t.wait_text(15, "gosuv top: keys");
        t.keys(&["Escape"]);
        t.wait_for(15, "the help closed", |s| {
            !s.contains("gosuv top: keys") && row_state(s, "alpha").is_some()
        });
        assert!(
            !t.screen().contains("top exited"),
            "top ended:\n{}",
            t.history()
        );
        quit_with(t, "q");
    });
}

#[test]
fn refuses_without_a_terminal() {
    let env = Env::unix();
    let err = env.fails(&["top"]);
    assert!(
        err.contains("needs a terminal") && err.contains("gosuv status"),
        "{err}"
    );
}

/// `top` typed in `gosuv shell`: it takes the terminal, gives it back on q and on Ctrl-C,
/// and reads no key after that: what is typed at the prompt next reaches the shell.
#[test]
fn inside_the_shell_leaves_the_keys_to_it() {
    if !can_run() {
        return;
    }
    let env = Env::unix();
    env.programs(THREE);
    let _srv = env.start();
    let home = env.dir.path().to_string_lossy().into_owned();
    let cmd = format!(
        "exec {} -c {} shell",
        shell_quote(BIN),
        shell_quote(&env.conf().to_string_lossy())
    );
    let t = Tmux::start(env.dir.path(), 120, 30, &[("HOME", &home)], &cmd);
    t.wait_text(15, "gosuv>");
    for (round, quit) in ["q", "C-c"].into_iter().enumerate() {
        t.line("top");
        wait_table(&t, "alpha");
        t.keys(&[quit]);
        t.wait_for(15, "the terminal back", |_| !t.alternate_on());
        // A new prompt: what is typed from then on is the shell's (keys typed while top is
        // still exiting may be read by it, as by any full-screen program).
        t.wait_for(15, "the prompt back", |s| {
            s.lines().filter(|l| l.starts_with("gosuv>")).count() >= 2 * round + 2
        });
        // Every key of the command reaches the shell: it runs, and its answer shows.
        t.line("status-server");
        t.wait_for(15, "the shell's answer", |s| {
            s.matches("server is running").count() == round + 1
        });
    }
    assert!(cursor_shown(&t));
    // top gave the signals back: SIGTERM ends the shell, as before top ran.
    signal(t.pane_pid(), libc::SIGTERM);
    assert_eq!(t.wait_exit(15), 128 + libc::SIGTERM);
}
