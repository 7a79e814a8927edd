//! Every CLI command against a real server, and the messages and exit codes scripts rely on.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::*;

const PROGRAMS: &str = "\
- name: alpha
  command: echo out-alpha; echo err-alpha >&2; exec sleep 300
  start_seconds: 0
- name: beta
  command: [sleep, '300']
  start_seconds: 0
";

#[test]
fn help_says_what_commands_do() {
    let env = Env::unix();
    let out = env.ok(&["--help"]);
    for cmd in [
        "start-server",
        "shutdown",
        "status-server",
        "restart-server",
        "kill",
        "reload",
        "conftest",
        "edit",
        "status",
        "start",
        "stop",
        "restart",
        "tail",
        "version",
    ] {
        assert!(out.contains(cmd), "--help lacks {cmd}:\n{out}");
    }
    assert!(out.contains("-c, --conf"), "{out}");
    let out = env.ok(&["status", "--help"]);
    assert!(out.contains("restarts, CPU, memory"), "{out}");
    let out = env.ok(&["version"]);
    assert_eq!(out.trim(), format!("gosuv {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn client_errors_say_what_to_do() {
    let env = Env::unix();
    let sock = env.sock();
    for args in [
        &["status"][..],
        &["reload"],
        &["start", "x"],
        &["tail", "x"],
        &["shutdown"],
    ] {
        let err = env.fails(args);
        assert!(
            err.contains(&format!(
                "cannot reach gosuv at unix://{}: is the server running? try 'gosuv start-server'",
                sock.display()
            )),
            "{args:?}: {err}"
        );
    }
    let err = env.fails(&["status-server"]);
    assert!(err.contains("server is not running"), "{err}");
    let err = env.fails(&["kill"]);
    assert!(err.contains("gosuv is not running"), "{err}");
    let missing = env.path("nope.yml");
    let out = std::process::Command::new(BIN)
        .args(["-c", missing.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no config file at"));
}

#[test]
fn conftest_reports_every_error_with_its_line() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    let out = env.ok(&["conftest"]);
    assert!(
        out.contains("config ok") && out.contains("(2 programs)"),
        "{out}"
    );
    let out = env.ok(&["t"]);
    assert!(out.contains("config ok"), "{out}");

    env.programs(
        "- name: ok\n  command: x\n- name: bad name\n  command: x\n- name: z\n  comand: x\n",
    );
    let err = env.fails(&["conftest"]);
    assert!(err.contains("programs.yml:3"), "{err}");
    assert!(
        err.contains("programs.yml:6") && err.contains("comand"),
        "{err}"
    );

    std::fs::write(env.conf(), "server:\n  pidfil: x\n").unwrap();
    let err = env.fails(&["t"]);
    assert!(
        err.contains("config.yml:2") && err.contains("pidfil"),
        "{err}"
    );
}

#[test]
fn edit_runs_the_editor_then_conftest() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    let editor = env.path("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf -- '- name: gamma\\n  command: x\\n' >> \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env
        .command(&["edit"])
        .env("EDITOR", &editor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("(3 programs)") && stdout.contains("gosuv reload"),
        "{stdout}"
    );

    // An edit that breaks the file is reported.
    std::fs::write(&editor, "#!/bin/sh\necho '- name: gamma' >> \"$1\"\n").unwrap();
    let out = env
        .command(&["edit"])
        .env("EDITOR", &editor)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("duplicate"));
    let out = env
        .command(&["edit"])
        .env("EDITOR", "false")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the editor 'false' failed"));
}

#[test]
fn program_commands() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    let _srv = env.start();
    let out = env.ok(&["status"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "NAME   STATE    PID  UPTIME  RESTARTS  CPU  MEM  LAST EXIT  OWNED BY  LAST ERROR"
    );
    assert_eq!(
        lines[1],
        "alpha  stopped  -    -       0         -    -    -          -         -"
    );

    let out = env.ok(&["start", "alpha"]);
    assert!(out.starts_with("alpha: running (pid "), "{out}");
    let out = env.ok(&["st"]);
    let row = out.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..2], ["alpha", "running"]);
    assert!(cells[2].parse::<u32>().is_ok());
    assert!(cells[3].ends_with('s'));
    assert_eq!(cells[4], "0", "{row}");
    assert!(cells[5].ends_with('%'), "{row}");
    assert!(matches!(cells[8], "cgroup" | "group"), "{row}");

    eventually(5, "output", || env.ok(&["tail", "alpha"]) == "out-alpha\n");
    assert_eq!(env.ok(&["tail", "alpha", "--stderr"]), "err-alpha\n");
    assert_eq!(env.ok(&["tail", "-n", "0", "alpha"]), "");

    let out = env.ok(&["restart", "alpha"]);
    assert!(out.starts_with("alpha: running (pid "), "{out}");
    let out = env.ok(&["stop", "alpha"]);
    assert_eq!(out.trim(), "alpha: stopped");
    let out = env.ok(&["start", "beta", "--no-wait"]);
    assert!(out.starts_with("beta: "), "{out}");
    env.wait_state("beta", "running");

    let out = env.ok(&["start", "all"]);
    assert!(
        out.contains("alpha: running") && out.contains("beta: running"),
        "{out}"
    );
    let out = env.ok(&["restart", "all"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let out = env.ok(&["stop", "all"]);
    assert!(
        out.contains("alpha: stopped") && out.contains("beta: stopped"),
        "{out}"
    );

    let err = env.fails(&["start", "ghost"]);
    assert!(err.contains("no program named 'ghost'"), "{err}");
    let err = env.fails(&["stop", "../x"]);
    assert!(err.contains("invalid name"), "{err}");
    let err = env.fails(&["tail", "ghost"]);
    assert!(err.contains("no program named"), "{err}");

    let out = env.ok(&["reload"]);
    assert_eq!(out, "load config success\nno changes\n");
    env.programs("- name: beta\n  command: [sleep, '300']\n  start_seconds: 2\n- name: delta\n  command: x\n");
    let out = env.ok(&["reload"]);
    assert_eq!(
        out,
        "load config success\nadded: delta\nchanged: beta\nremoved: alpha\n"
    );
    env.programs("- name: [\n");
    let err = env.fails(&["reload"]);
    assert!(err.contains("programs.yml"), "{err}");

    let out = env.ok(&["version"]);
    assert!(out.contains("server "), "{out}");
}

#[test]
fn tail_follow_prints_live_output() {
    let env = Env::unix();
    env.programs("- name: ticker\n  command: i=0; while true; do i=$((i+1)); echo line$i; sleep 0.05; done\n  start_seconds: 0\n");
    let _srv = env.start();
    env.ok(&["start", "ticker"]);
    let mut child = env
        .command(&["tail", "-f", "-n", "1", "ticker"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut numbers = Vec::new();
    let mut line = String::new();
    while numbers.len() < 4 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "tail -f ended");
        let n: u32 = line.trim().trim_start_matches("line").parse().unwrap();
        numbers.push(n);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
}

#[test]
fn start_server_reports_a_bad_programs_file() {
    let env = Env::unix();
    env.programs("- name: a\n  command: x\n  start_seconds: soon\n");
    let err = env.fails(&["start-server"]);
    assert!(
        err.contains("programs.yml:3") && err.contains("start_seconds"),
        "{err}"
    );
    assert!(!env.sock().exists());
}

#[test]
fn the_example_configs_are_valid() {
    let conf =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs/config.yml");
    let out = std::process::Command::new(BIN)
        .args(["-c", conf.to_str().unwrap(), "conftest"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(3 programs)"), "{stdout}");
}

/// `conftest` refuses what `start-server` refuses: HTTP without auth (loopback or not), an
/// empty password, an ipfile that is missing or has a bad line, an HTTP address that is not
/// one; and says all of them at once.
#[test]
fn conftest_runs_every_check_start_server_runs() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    // Stops a server that should not have started, should one have.
    let _guard = Server { env: &env };
    let port = free_port();
    let cases = [
        (
            format!("server:\n  httpserver:\n    enabled: true\n    addr: 127.0.0.1:{port}\n"),
            vec!["refusing to serve HTTP on 127.0.0.1:", "any local user"],
        ),
        (
            format!("server:\n  httpserver:\n    enabled: true\n    addr: 0.0.0.0:{port}\n"),
            vec!["refusing to serve HTTP on 0.0.0.0:"],
        ),
        (
            "server:\n  auth:\n    enabled: true\n    password: \"\"\n".to_string(),
            vec!["empty password"],
        ),
        (
            "server:\n  auth:\n    enabled: true\n    password: pw\n    ipfile: missing.txt\n"
                .to_string(),
            vec!["cannot read the ipfile", "missing.txt"],
        ),
        (
            format!("server:\n  httpserver:\n    enabled: true\n    addr: \"no such host!:{port}\"\n  auth:\n    enabled: true\n    password: pw\n"),
            vec!["no such host!", "server.httpserver.addr"],
        ),
        (
            "server:\n  unixserver:\n    enabled: false\n".to_string(),
            vec!["neither server.unixserver nor server.httpserver"],
        ),
    ];
    for (config, wanted) in &cases {
        std::fs::write(env.conf(), config).unwrap();
        let err = env.fails(&["conftest"]);
        for w in wanted {
            assert!(err.contains(w), "{config}\nlacks {w:?}: {err}");
        }
        let start = env.fails(&["start-server"]);
        for w in wanted {
            assert!(
                start.contains(w),
                "start-server: {config}\nlacks {w:?}: {start}"
            );
        }
        assert!(!env.sock().exists());
    }
    // Every problem at once.
    std::fs::write(
        env.conf(),
        format!("server:\n  httpserver:\n    enabled: true\n    addr: 127.0.0.1:{port}\n  auth:\n    ipfile: gone.txt\n"),
    )
    .unwrap();
    let err = env.fails(&["conftest"]);
    assert!(
        err.contains("refusing to serve HTTP") && err.contains("gone.txt"),
        "{err}"
    );
    std::fs::write(env.path("allow.txt"), "127.0.0.1\n").unwrap();
    std::fs::write(
        env.conf(),
        format!("server:\n  httpserver:\n    enabled: true\n    addr: 127.0.0.1:{port}\n  auth:\n    enabled: true\n    password: pw\n    ipfile: allow.txt\nclient:\n  password: pw\n"),
    )
    .unwrap();
    let out = env.ok(&["conftest"]);
    assert!(out.contains("config ok"), "{out}");
}

/// `shutdown`, `kill` and `status-server` need only the client settings (and the pidfile):
/// a config.yml broken elsewhere (an unknown key, a bad programs include, a server section
/// that would not start) must not lock the operator out of a running server.
#[test]
fn shutdown_kill_and_status_server_need_only_the_client_settings() {
    let env = Env::unix();
    let good = std::fs::read_to_string(env.conf()).unwrap();
    let broken = good
        .replacen(
            "server:\n",
            "include: [not, a, path]\nserver:\n  bogus: 1\n",
            1,
        )
        .replacen("    level: debug\n", "    level: loud\n  minfds: lots\n", 1)
        .replacen(
            "    enabled: true\n    sockfile",
            "    enabled: yes-please\n    sockfile",
            1,
        );
    assert_ne!(broken, good);

    let srv = env.start();
    std::fs::write(env.conf(), &broken).unwrap();
    assert!(env.fails(&["conftest"]).contains("bogus"));
    let out = env.ok(&["status-server"]);
    assert!(out.contains("server is running"), "{out}");
    let out = env.ok(&["shutdown"]);
    assert!(out.contains("server stopped"), "{out}");
    std::mem::forget(srv);

    std::fs::write(env.conf(), &good).unwrap();
    let srv = env.start();
    let pid = env.pid().unwrap();
    std::fs::write(env.conf(), &broken).unwrap();
    let out = env.ok(&["kill"]);
    assert_eq!(out.trim(), format!("server stopped (pid {pid})"));
    std::mem::forget(srv);
    let err = env.fails(&["status-server"]);
    assert!(err.contains("server is not running"), "{err}");

    // A broken client section is still an error, naming the key.
    std::fs::write(
        env.conf(),
        broken.replacen(
            "server_url: \"unix://.gosuv.sock\"",
            "server_url: ftp://x",
            1,
        ),
    )
    .unwrap();
    let err = env.fails(&["status-server"]);
    assert!(err.contains("client.server_url"), "{err}");
}
