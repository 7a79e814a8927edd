//! The operator's command line against a real server: `signal`, names and globs, the status
//! table's columns and `--json`, `logs`, completions and the man page, aliases and exit codes.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// The stdout of `gosuv ARGS` and its exit code, whatever it is.
fn run_code(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let out = env.run(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The state of each program, from `status --json`.
fn states(env: &Env) -> std::collections::BTreeMap<String, String> {
    let out = env.ok(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    v.as_array()
        .expect("an array")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A signal reaches every process of the program (a child in the background too), by name,
/// with SIG, or by number; a bad signal is refused with the list; a program without a process
/// is a conflict that names its state; the API route does the same.
#[test]
fn signal_reaches_every_process_of_the_program() {
    let env = Env::unix();
    // A parent and a child in the background, each saying which signals reach it.
    let script = env.path("traps.sh");
    std::fs::write(
        &script,
        "sh -c 'for s in HUP USR1 USR2; do trap \"echo child-$s\" $s; done; echo child-ready; while :; do sleep 0.05; done' &\n\
         for s in HUP USR1 USR2; do trap \"echo parent-$s\" $s; done\n\
         echo parent-ready\n\
         while :; do sleep 0.05; done\n",
    )
    .unwrap();
    env.programs(&format!(
        "\
- name: sig-a
  command: [sh, '{}']
  start_seconds: 0
- name: sig-b
  command: [sleep, '300']
  start_seconds: 0
- name: idle
  command: [sleep, '300']
",
        script.display()
    ));
    let _srv = env.start();
    env.ok(&["start", "sig-a", "sig-b"]);
    // Until its traps are set, a HUP would end a shell.
    eventually(10, "both traps set", || {
        let t = env.ok(&["tail", "-n", "100", "sig-a"]);
        t.contains("parent-ready") && t.contains("child-ready")
    });
    let out = env.ok(&["signal", "HUP", "sig-a"]);
    assert!(out.contains("SIGHUP sent"), "{out}");
    eventually(10, "HUP heard by both", || {
        let t = env.ok(&["tail", "-n", "100", "sig-a"]);
        t.contains("parent-HUP") && t.contains("child-HUP")
    });
    // By number (USR2 is 12 on Linux), and a name in lower case.
    let out = env.ok(&["signal", "12", "sig-a"]);
    assert!(
        out.contains("sig-a: running (pid ") && out.contains("SIGUSR2 sent"),
        "{out}"
    );
    env.ok(&["signal", "usr1", "sig-a"]);
    eventually(10, "USR2 and USR1", || {
        let t = env.ok(&["tail", "-n", "100", "sig-a"]);
        t.contains("parent-USR2") && t.contains("child-USR2") && t.contains("child-USR1")
    });

    // A signal that ends it: its last exit says which.
    let out = env.ok(&["signal", "KILL", "sig-b"]);
    assert!(out.contains("SIGKILL sent"), "{out}");
    eventually(10, "sig-b killed", || {
        let r = env.api("GET", "/api/programs/sig-b", "");
        r.json()["exit_signal"] == 9
    });

    // Refused before anything is sent.
    let err = env.fails(&["signal", "NOPE", "sig-a"]);
    assert!(
        err.contains("'NOPE' is not a signal") && err.contains("HUP") && err.contains("USR1"),
        "{err}"
    );
    let err = env.fails(&["signal", "HUP", "ghost"]);
    assert!(err.contains("no program matches 'ghost'"), "{err}");
    let err = env.fails(&["signal", "HUP", "idle"]);
    assert!(
        err.contains("idle: stopped, no process: nothing sent"),
        "{err}"
    );
    // One without a process does not keep the others from theirs.
    let (code, out, err) = run_code(&env, &["signal", "HUP", "sig-a", "idle"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("sig-a: running") && err.contains("idle"),
        "{out}\n{err}"
    );

    // The API.
    let r = env.api("POST", "/api/programs/sig-a/signal", r#"{"signal": "HUP"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["signal"], "SIGHUP");
    assert_eq!(r.json()["state"], "running");
    let r = env.api("POST", "/api/programs/sig-a/signal", r#"{"signal": 1}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env.api(
        "POST",
        "/api/programs/sig-a/signal",
        r#"{"signal": "BOGUS"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error().contains("TERM") && r.error().contains("HUP"),
        "{}",
        r.body
    );
    for bad in [
        r#"{"signal": 0}"#,
        r#"{"signal": 99999999999}"#,
        r#"{"signal": -1}"#,
        r#"{}"#,
        "[]",
        "not json",
    ] {
        let r = env.api("POST", "/api/programs/sig-a/signal", bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = env.api("POST", "/api/programs/idle/signal", r#"{"signal": "HUP"}"#);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.error().contains("stopped"), "{}", r.body);
    let r = env.api("POST", "/api/programs/ghost/signal", r#"{"signal": "HUP"}"#);
    assert_eq!(r.status, 404, "{}", r.body);
    // Nothing of the signals made the shell stop.
    assert_eq!(states(&env)["sig-a"], "running");
}

const FOUR: &str = "\
- name: web-0
  command: [sleep, '300']
  start_seconds: 0
- name: web-1
  command: [sleep, '300']
  start_seconds: 0
- name: db
  command: [sleep, '300']
  start_seconds: 0
- name: worker
  command: [sleep, '300']
  start_seconds: 0
";

/// Several names and globs select programs for every command that takes names, on the CLI
/// and in `POST /api/all/{action}?names=`; a pattern that matches nothing is an error that
/// names it, and nothing is done.
#[test]
fn names_and_globs_select_programs() {
    let env = Env::unix();
    env.programs(FOUR);
    let _srv = env.start();
    let out = env.ok(&["start", "web-*", "db"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    let s = states(&env);
    assert_eq!(
        (
            s["web-0"].as_str(),
            s["web-1"].as_str(),
            s["db"].as_str(),
            s["worker"].as_str()
        ),
        ("running", "running", "running", "stopped")
    );

    // A typo among good names: refused as a whole.
    let err = env.fails(&["stop", "web-*", "dv", "cache-?"]);
    assert!(err.contains("no program matches 'dv', 'cache-?'"), "{err}");
    assert_eq!(states(&env)["web-0"], "running");
    let r = env.api("POST", "/api/all/stop?names=nope,web-*", "");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.error().contains("'nope'"), "{}", r.body);
    assert_eq!(states(&env)["web-1"], "running");

    // The API's selection: `?` and `[...]` too.
    let r = env.api("POST", "/api/all/stop?names=web-%3F", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let stopped: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stopped, ["web-0", "web-1"]);
    let s = states(&env);
    assert_eq!(
        (s["web-0"].as_str(), s["db"].as_str()),
        ("stopped", "running")
    );
    let out = env.ok(&["restart", "w[eo]*"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(states(&env).values().all(|s| s == "running"));

    // status and wait take globs; status of nothing is an error.
    let out = env.ok(&["status", "w*"]);
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["web-0", "web-1", "worker"], "{out}");
    let err = env.fails(&["status", "ghost*"]);
    assert!(err.contains("no program matches 'ghost*'"), "{err}");
    let out = env.ok(&["wait", "web-*", "--timeout", "5"]);
    assert_eq!(out, "web-0: running\nweb-1: running\n");
    let err = env.fails(&["wait", "nothing-*"]);
    assert!(err.contains("'nothing-*'"), "{err}");

    // tail takes one: a glob that matches one is fine, one that matches two is not.
    env.ok(&["tail", "d?"]);
    let err = env.fails(&["tail", "web-*"]);
    assert!(err.contains("matches 2 programs"), "{err}");

    // `all` is `*`.
    let out = env.ok(&["stop", "all"]);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(states(&env).values().all(|s| s == "stopped"));
}

/// The table has RESTARTS, CPU, MEM and LAST EXIT (a code, or a signal by name); `--json`
/// is the API's list, readable by any JSON tool; the list carries CPU and memory.
#[test]
fn status_shows_restarts_cpu_memory_and_the_last_exit() {
    let env = Env::unix();
    env.programs(
        "\
- name: quits
  command: exit 3
  start_seconds: 0
  autorestart: false
- name: sleeper
  command: [sleep, '300']
  start_seconds: 0
",
    );
    let _srv = env.start();
    env.ok(&["start", "sleeper"]);
    env.run(&["start", "quits"]);
    env.wait_state("quits", "exited");
    let table = env.ok(&["status"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("NAME     STATE    PID     UPTIME  RESTARTS  CPU   MEM   LAST EXIT")
            || header.contains("RESTARTS  CPU")
                && header.contains("MEM")
                && header.contains("LAST EXIT"),
        "{table}"
    );
    let col = |name: &str| header.find(name).unwrap();
    let cell = |row: &str, name: &str| -> String {
        row.get(col(name)..)
            .unwrap_or("")
            .split("  ")
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let quits = table.lines().find(|l| l.starts_with("quits")).unwrap();
    let sleeper = table.lines().find(|l| l.starts_with("sleeper")).unwrap();
    assert_eq!(cell(quits, "LAST EXIT"), "exit 3", "{table}");
    assert_eq!(cell(quits, "CPU"), "-", "{table}");
    assert_eq!(cell(sleeper, "RESTARTS"), "0", "{table}");
    assert!(cell(sleeper, "CPU").ends_with('%'), "{table}");
    let mem = cell(sleeper, "MEM");
    assert!(mem.ends_with(['K', 'M']), "{table}");

    // A signal that kills it shows by name.
    env.ok(&["signal", "SEGV", "sleeper"]);
    eventually(10, "sleeper's SIGSEGV in the table", || {
        let t = env.ok(&["status", "sleeper"]);
        t.lines()
            .nth(1)
            .is_some_and(|l| cell(l, "LAST EXIT") == "SIGSEGV")
    });
    // restarted by autorestart: one restart.
    eventually(10, "sleeper restarted", || {
        let t = env.ok(&["status", "sleeper"]);
        t.lines()
            .nth(1)
            .is_some_and(|l| cell(l, "RESTARTS") == "1" && l.contains("running"))
    });

    // --json: the API's objects, parseable by python's json.tool.
    let mut child = env
        .command(&["status", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let mut tool = std::process::Command::new("python3")
        .args(["-m", "json.tool"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("python3");
    std::io::Write::write_all(&mut tool.stdin.take().unwrap(), text.as_bytes()).unwrap();
    assert!(tool.wait().unwrap().success(), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sleeper = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sleeper")
        .unwrap();
    assert!(sleeper["cpu_percent"].is_number(), "{sleeper}");
    assert!(
        sleeper["rss_bytes"].as_u64().is_some_and(|b| b > 0),
        "{sleeper}"
    );
    assert_eq!(sleeper["command"][0], "sleep");
    let one: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--json", "q*"])).unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["exit_code"], 3);
}

/// `logs`: every program's lines, prefixed with its name padded to the widest; stdout and
/// stderr; -n; -f follows live, a program added meanwhile too, and ends when the server
/// goes; no colour codes into a pipe.
#[test]
fn logs_interleave_every_program_prefixed() {
    let env = Env::unix();
    env.programs(
        "\
- name: a
  command: echo a-1; echo a-2; echo a-err >&2; exec sleep 300
  start_seconds: 0
- name: bbb
  command: echo b-1; exec sleep 300
  start_seconds: 0
",
    );
    let srv = env.start();
    env.ok(&["start", "all"]);
    eventually(10, "both outputs", || {
        let out = env.ok(&["logs"]);
        out.contains("a   | a-2") && out.contains("a   | a-err") && out.contains("bbb | b-1")
    });
    let out = env.ok(&["logs", "-n", "1", "a"]);
    assert_eq!(out, "a | a-2\na | a-err\n");
    assert!(env.fails(&["logs", "zzz"]).contains("'zzz'"));

    let mut child = env
        .command(&["logs", "-f", "-n", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    // Added while following: followed too.
    let r = env.api(
        "POST",
        "/api/programs",
        r#"{"name": "late-one", "command": "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.05; done", "start_seconds": 0}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    env.ok(&["start", "late-one"]);
    let mut seen = Vec::new();
    let mut line = String::new();
    while seen.len() < 3 {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "logs -f ended: {seen:?}"
        );
        assert!(!line.contains('\x1b'), "{line:?}");
        if let Some(rest) = line.trim_end().strip_prefix("late-one | tick") {
            seen.push(rest.parse::<u32>().unwrap());
        }
    }
    assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    // Removed and added again under the same name: followed again.
    let r = env.api("DELETE", "/api/programs/late-one", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env.api(
        "POST",
        "/api/programs",
        r#"{"name": "late-one", "command": "while true; do echo again; sleep 0.05; done", "start_seconds": 0}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    env.ok(&["start", "late-one"]);
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "logs -f ended");
        if line == "late-one | again\n" {
            break;
        }
    }

    // Following named programs ends when they are all removed.
    let mut named = env
        .command(&["logs", "-f", "bbb"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut named_out = BufReader::new(named.stdout.take().unwrap());
    line.clear();
    named_out.read_line(&mut line).unwrap();
    assert_eq!(line, "bbb | b-1\n");
    let r = env.api("DELETE", "/api/programs/bbb", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(15);
    while named.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "logs -f bbb outlived bbb");
        std::thread::sleep(Duration::from_millis(10));
    }

    // The server going away ends it.
    srv.shutdown();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "logs -f outlived the server");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// On a terminal, `logs` colours names (standard error in red), and never with NO_COLOR.
#[test]
fn logs_colour_only_on_a_terminal_without_no_color() {
    let env = Env::unix();
    env.programs(
        "- name: col\n  command: echo hello; echo oops >&2; exec sleep 300\n  start_seconds: 0\n",
    );
    let _srv = env.start();
    env.ok(&["start", "col"]);
    eventually(10, "output", || env.ok(&["logs"]).contains("oops"));
    // `script` gives the command a terminal.
    let on_tty = |no_color: Option<&str>| -> String {
        let cmd = format!("{} -c {} logs", BIN, env.conf().display());
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]).stdin(Stdio::null());
        c.env_remove("NO_COLOR");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let out = c.output().expect("script");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_tty(None);
    assert!(coloured.contains("\x1b[31moops\x1b[0m"), "{coloured:?}");
    assert!(coloured.contains("col\x1b[0m | hello"), "{coloured:?}");
    let plain = on_tty(Some("1"));
    assert!(
        !plain.contains('\x1b') && plain.contains("col | oops"),
        "{plain:?}"
    );
    // An empty NO_COLOR is unset.
    assert!(on_tty(Some("")).contains('\x1b'));
}

/// The bash completion script completes a running server's program names after a command
/// that takes names (through the hidden `gosuv __names`), and commands after `gosuv`; zsh and
/// fish scripts ask for the names the same way; `__names` is silent without a server.
#[test]
fn completions_complete_program_names_from_the_server() {
    let env = Env::unix();
    env.programs(FOUR);
    assert_eq!(env.ok(&["__names"]), "", "no server: nothing");
    let _srv = env.start();
    assert_eq!(env.ok(&["__names"]), "db\nweb-0\nweb-1\nworker\n");
    let script = env.path("gosuv.bash");
    std::fs::write(&script, env.ok(&["completions", "bash"])).unwrap();
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let complete = |words: &str| -> String {
        let prog = format!(
            "source {script}; complete -p gosuv; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
             _gosuv_with_names gosuv \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script = script.display()
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &prog])
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin_dir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .current_dir(env.path(""))
            .stdin(Stdio::null())
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let conf = env.conf();
    let conf = conf.display();
    let out = complete(&format!("gosuv -c {conf} stop we"));
    assert!(out.contains("-F _gosuv_with_names gosuv"), "{out}");
    let got: Vec<&str> = out.lines().skip(1).collect();
    assert!(got.contains(&"web-0") && got.contains(&"web-1"), "{out}");
    assert!(!got.contains(&"db"), "{out}");
    let out = complete(&format!("gosuv -c {conf} logs ''"));
    assert!(out.contains("worker") && out.contains("db"), "{out}");
    let out = complete(&format!("gosuv -c {conf} sig"));
    assert!(out.lines().any(|l| l == "signal"), "{out}");
    // signal: first the signal, then names.
    let out = complete(&format!("gosuv -c {conf} signal US"));
    assert_eq!(
        out.lines().skip(1).collect::<Vec<_>>(),
        ["USR1", "USR2"],
        "{out}"
    );
    let out = complete(&format!("gosuv -c {conf} signal HUP d"));
    assert_eq!(out.lines().skip(1).collect::<Vec<_>>(), ["db"], "{out}");
    let out = complete(&format!("gosuv -c {conf} logs -n 5 wo"));
    assert_eq!(out.lines().skip(1).collect::<Vec<_>>(), ["worker"], "{out}");

    for shell in ["zsh", "fish"] {
        let s = env.ok(&["completions", shell]);
        assert!(s.contains(" __names"), "{shell}: {s}");
    }
    // fish, where it is installed, completes the names the same way.
    let fish_script = env.path("gosuv.fish");
    std::fs::write(&fish_script, env.ok(&["completions", "fish"])).unwrap();
    let fish = std::process::Command::new("fish")
        .args([
            "--no-config",
            "-c",
            &format!(
                "source {}; complete -C 'gosuv stop web'",
                fish_script.display()
            ),
        ])
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .current_dir(env.path(""))
        .stdin(Stdio::null())
        .output();
    if let Ok(out) = fish {
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text,
            "web-0\nweb-1\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The -c on the line reaches the server's names, from another directory too, in fish
    // and in zsh.
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let fish = std::process::Command::new("fish")
        .args([
            "--no-config",
            "-c",
            &format!(
                "source {}; complete -C 'gosuv -c {conf} stop web'",
                fish_script.display()
            ),
        ])
        .env("PATH", &path)
        .current_dir(elsewhere.path())
        .stdin(Stdio::null())
        .output();
    if let Ok(out) = fish {
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "web-0\nweb-1\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let zsh_script = env.path("gosuv.zsh");
    std::fs::write(&zsh_script, env.ok(&["completions", "zsh"])).unwrap();
    // zsh's completion functions need its line editor: `compadd` is stood in for by one
    // that prints, and `_gosuv` (clap's part) by nothing.
    let zsh = std::process::Command::new("zsh")
        .args([
            "-f",
            "-c",
            &format!(
                "compdef() {{ :; }}; source {script}; compadd() {{ print -l -- ${{(P)2}}; }}; _gosuv() {{ :; }}; \
                 words=(gosuv -c {conf} stop we); CURRENT=5; PREFIX=we; _gosuv_with_names",
                script = zsh_script.display()
            ),
        ])
        .env("PATH", &path)
        .current_dir(elsewhere.path())
        .stdin(Stdio::null())
        .output();
    if let Ok(out) = zsh {
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "db\nweb-0\nweb-1\nworker\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(run_code(&env, &["completions", "tcsh"]).0, Some(1));
}

/// `gosuv man` prints a manual page that lists every command, rendered by groff.
#[test]
fn the_man_page_lists_every_command() {
    let env = Env::unix();
    let page = env.ok(&["man"]);
    assert!(page.contains(".TH gosuv 1"), "{page}");
    let help = env.ok(&["--help"]);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(commands.len() > 15, "{help}");
    for c in &commands {
        let heading = format!(".SS \"{}", c.replace('-', "\\-"));
        assert!(page.contains(&heading), "{c} not in the page:\n{page}");
    }
    let mut groff = std::process::Command::new("groff")
        .args(["-man", "-Tascii"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("groff");
    std::io::Write::write_all(&mut groff.stdin.take().unwrap(), page.as_bytes()).unwrap();
    let out = groff.wait_with_output().unwrap();
    assert!(out.status.success());
    // Bold and underline are overstrikes: `N\bN`.
    let mut text = String::new();
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    assert!(text.contains("COMMANDS"), "{text}");
    assert!(text.contains("gosuv signal [-c|--conf]"), "{text}");
    assert!(text.contains("status (alias st)"), "{text}");
}

/// `v` and `h` as in the old tool; a usage error exits 1 (clap's code is 2), help and
/// version exit 0.
#[test]
fn aliases_and_usage_errors() {
    let env = Env::unix();
    assert_eq!(
        env.ok(&["v"]).trim(),
        format!("gosuv {}", env!("CARGO_PKG_VERSION"))
    );
    let help = env.ok(&["h"]);
    assert!(
        help.contains("Commands:") && help.contains("signal"),
        "{help}"
    );
    let help = env.ok(&["h", "signal"]);
    assert!(help.contains("Usage: gosuv signal"), "{help}");
    assert!(env.ok(&["help", "st"]).contains("Usage: gosuv status"));
    assert!(env.fails(&["h", "nosuch"]).contains("no command 'nosuch'"));
    env.ok(&["--help"]);
    env.ok(&["--version"]);
    env.ok(&["start", "--help"]);
    for args in [
        &["bogus"][..],
        &[],
        &["start"],
        &["status", "--jsn"],
        &["tail", "-n", "x", "a"],
        &["signal", "HUP"],
    ] {
        let (code, _, err) = run_code(&env, args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(!err.is_empty(), "{args:?}");
    }
}

/// `start-server -f` logs to stderr in plain text when stderr is not a terminal.
#[test]
fn foreground_server_writes_no_colour_codes_off_a_terminal() {
    let env = Env::unix();
    let log = env.path("stderr.txt");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = env
        .command(&["start-server", "-f"])
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let _guard = Server { env: &env };
    eventually(20, "the server", || {
        env.run(&["status-server"]).status.success()
    });
    env.ok(&["shutdown"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "nothing logged: {text}");
    assert!(!text.contains("\x1b["), "{text:?}");
}

/// `edit` that changes nothing says so and asks for no reload; a change that passes says to
/// reload.
#[test]
fn edit_says_when_nothing_changed() {
    let env = Env::unix();
    env.programs(FOUR);
    let out = env
        .command(&["edit"])
        .env("EDITOR", "true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "programs.yml unchanged\n");
    let editor = env.path("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf -- '- name: extra\\n  command: x\\n' >> \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env
        .command(&["edit"])
        .env("EDITOR", &editor)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("(5 programs)") && stdout.contains("run 'gosuv reload'"),
        "{stdout}"
    );
}

/// Waits (up to 15 s) for a child to end; its status.
fn exit_of(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("{what}: still running after 15 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lines `out` gives, read on a thread of their own so a test waits for them with a
/// deadline.
fn line_feed(out: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = BufReader::new(out);
        loop {
            let mut line = String::new();
            match out.read_line(&mut line) {
                Ok(n) if n > 0 => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    rx
}

/// The next line of `feed`, failing the test after `secs` seconds.
fn next_line(feed: &std::sync::mpsc::Receiver<String>, secs: u64, what: &str) -> String {
    feed.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("{what}: no line in {secs} s ({e})"))
}

/// A follow of every program that fell behind still follows a program removed and added
/// again under the same name: its new run's output arrives after the old run's.
#[test]
fn logs_follow_behind_follows_a_program_added_again() {
    let env = Env::unix();
    env.programs("");
    let _srv = env.start();
    // Much output at once: the follower below, not read yet, falls behind.
    let r = env.api(
        "POST",
        "/api/programs",
        r#"{"name": "busy", "command": "i=0; while [ $i -lt 200 ]; do head -c 20000 /dev/zero | tr '\\0' x; echo; i=$((i+1)); done; echo busy-done; exec sleep 300", "start_seconds": 0}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mut child = env
        .command(&["logs", "-f", "-n", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    env.ok(&["start", "busy"]);
    eventually(30, "busy's output written", || {
        env.ok(&["tail", "-n", "1", "busy"]).contains("busy-done")
    });
    // Removed and added again while the follower is still behind on its old output.
    let r = env.api("DELETE", "/api/programs/busy", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env.api(
        "POST",
        "/api/programs",
        r#"{"name": "busy", "command": "while true; do echo busy-again; sleep 0.05; done", "start_seconds": 0}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    env.ok(&["start", "busy"]);
    // Only now is the follower read: it catches up on the old busy's output first.
    let feed = line_feed(stdout);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match feed.recv_timeout(left) {
            Ok(line) if line == "busy | busy-again\n" => break,
            Ok(_) => {}
            Err(e) => panic!("the new busy was never followed ({e})"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `logs -f | head`: the reader going away ends the follow quietly, exit 0; a connection
/// that breaks (the server killed) is an error, exit 1, so a script tells them apart.
#[test]
fn logs_follow_ends_quietly_for_head_and_fails_on_a_broken_connection() {
    let env = Env::unix();
    env.programs(
        "\
- name: ticker
  command: while true; do echo tick; sleep 0.02; done
  start_seconds: 0
  environ: [GOSUV_TEST_MARK=ticker-of-logs-follow]
",
    );
    let _srv = env.start();
    env.ok(&["start", "ticker"]);
    assert!(
        !marked("ticker-of-logs-follow").is_empty(),
        "the mark finds the ticker"
    );
    let mut child = env
        .command(&["logs", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ticker | tick\n");
    drop(out);
    let status = exit_of(&mut child, "logs -f with its reader gone");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert_eq!(err, "", "quiet when the reader went away");

    let mut child = env
        .command(&["logs", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ticker | tick\n");
    let pid = env.pid().expect("the server's pid");
    signal(pid, libc::SIGKILL);
    // Whatever is left of the output, read to the end so the pipe never blocks it.
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let status = exit_of(&mut child, "logs -f after the server was killed");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("the connection broke"), "{err}");
    // The killed server's programs run on (their holder keeps their output): a new server
    // takes them over, and its shutdown at the end of the test stops them.
    let again = env.start();
    again.shutdown();
    assert!(
        marked_gone("ticker-of-logs-follow"),
        "the ticker outlived the test's servers"
    );
}

/// Whether no process with `mark` in its environment is left (waits a little).
fn marked_gone(mark: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !marked(mark).is_empty() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    true
}

/// Shell completion gives up quickly on a server that accepts and never answers.
#[test]
fn completion_names_give_up_on_a_silent_server() {
    let env = Env::unix();
    env.programs("");
    // Accepts (the kernel does, into the backlog) and never answers.
    let _listener = std::os::unix::net::UnixListener::bind(env.sock()).unwrap();
    let started = Instant::now();
    let mut child = env
        .command(&["__names"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_of(&mut child, "__names on a silent server");
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "");
}

/// A character split across two writes of a program reaches the merged follow and the
/// per-program follow whole.
#[test]
fn a_character_split_across_writes_is_followed_whole() {
    let env = Env::unix();
    env.programs(
        "\
- name: utf
  command: echo ready; while [ ! -e go ]; do sleep 0.02; done; printf '\\303'; sleep 0.3; printf '\\251t\\342\\202'; sleep 0.3; printf '\\254\\n'; exec sleep 300
  start_seconds: 0
",
    );
    let _srv = env.start();
    env.ok(&["start", "utf"]);
    let mut merged = env
        .command(&["logs", "-f", "-n", "1", "utf"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut tail = env
        .command(&["tail", "-f", "-n", "1", "utf"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let merged_out = line_feed(merged.stdout.take().unwrap());
    let tail_out = line_feed(tail.stdout.take().unwrap());
    assert_eq!(next_line(&merged_out, 15, "logs -f"), "utf | ready\n");
    assert_eq!(next_line(&tail_out, 15, "tail -f"), "ready\n");
    std::fs::write(env.path("go"), "").unwrap();
    assert_eq!(next_line(&merged_out, 15, "logs -f"), "utf | ét€\n");
    assert_eq!(next_line(&tail_out, 15, "tail -f"), "ét€\n");
    for mut c in [merged, tail] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Bounds of the merged logs: `lines` up to 1000, `names` up to 256 patterns, and a 404
/// that names at most ten of the patterns that match nothing.
#[test]
fn merged_logs_bound_lines_and_names() {
    let env = Env::unix();
    env.programs(FOUR);
    let _srv = env.start();
    for path in ["/api/logs?lines=1001", "/api/logs/follow?lines=100000000"] {
        let r = env.api("GET", path, "");
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.error().contains("at most 1000"), "{}", r.body);
    }
    assert_eq!(env.api("GET", "/api/logs?lines=1000", "").status, 200);
    assert!(env
        .fails(&["logs", "-n", "1001"])
        .contains("-n 1001: at most 1000"));
    // Without names: every program.
    assert_eq!(env.api("GET", "/api/logs?lines=10", "").status, 200);
    let many: Vec<String> = (0..257).map(|i| format!("p{i}")).collect();
    for route in ["/api/logs", "/api/logs/follow"] {
        let r = env.api("GET", &format!("{route}?names={}", many.join(",")), "");
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.error().contains("at most 256"), "{}", r.body);
    }
    let r = env.api(
        "GET",
        &format!("/api/logs?names=db,{}", many[..50].join(",")),
        "",
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        r.error().contains("'p9'")
            && !r.error().contains("'p10'")
            && r.error().contains("and 40 more"),
        "{}",
        r.body
    );
}

/// `signal` is not sent to a run that is not the one the caller saw (the API's `pid`); the
/// CLI sends the pid it listed; real-time signals go by name; the name `all` is reserved.
#[test]
fn signal_checks_the_run_and_takes_real_time_signals() {
    let env = Env::unix();
    env.programs(
        "\
- name: sleeper
  command: [sleep, '300']
  start_seconds: 0
",
    );
    let _srv = env.start();
    env.ok(&["start", "sleeper"]);
    let pid = env.api("GET", "/api/programs/sleeper", "").json()["pid"]
        .as_u64()
        .expect("a pid");
    let r = env.api(
        "POST",
        "/api/programs/sleeper/signal",
        &format!(r#"{{"signal": "TERM", "pid": {}}}"#, pid + 1),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.error(),
        format!(
            "'sleeper' restarted: its pid is now {pid} (was {}); nothing was sent",
            pid + 1
        )
    );
    for bad in [r#""12""#, "-1", "0", "99999999999", "1.5"] {
        let r = env.api(
            "POST",
            "/api/programs/sleeper/signal",
            &format!(r#"{{"signal": "HUP", "pid": {bad}}}"#),
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = env.api("GET", "/api/programs/sleeper", "");
    assert_eq!(
        (r.json()["state"].clone(), r.json()["pid"].as_u64()),
        ("running".into(), Some(pid))
    );
    let r = env.api(
        "POST",
        "/api/programs/sleeper/signal",
        &format!(r#"{{"signal": "CONT", "pid": {pid}}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["signal"], "SIGCONT");

    // A real-time signal by name: its default action ends sleep.
    let out = env.ok(&["signal", "RTMIN+1", "sleeper"]);
    assert!(out.contains("SIGRTMIN+1 sent"), "{out}");
    eventually(10, "sleeper ended by SIGRTMIN+1", || {
        let r = env.api("GET", "/api/programs/sleeper", "");
        r.json()["exit_signal"] == libc::SIGRTMIN() + 1
    });

    let r = env.api(
        "POST",
        "/api/programs",
        r#"{"name": "all", "command": "sleep 1"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("'all' is reserved"), "{}", r.body);
}
