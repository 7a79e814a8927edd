//! What the real `gosuv` binary makes of its config files: a program whose directory or user
//! is missing spoils only its own start; empty and missing programs files; `${VAR}` and
//! `numprocs` in a served file; "did you mean" for unknown keys; and `conftest` refusing
//! whatever `start-server` refuses.

mod common;

use std::path::Path;
use std::process::Command;

use common::{eventually, Env, BIN};

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_missing_directory_warns_and_fails_only_its_own_start() {
    let env = Env::unix();
    env.programs(
        "- name: good\n  command: sleep 300\n  start_auto: true\n\n- name: lost\n  command: sleep 300\n  start_auto: true\n  start_retries: 1\n  directory: /definitely/not/here\n",
    );
    let out = env.run(&["conftest"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let programs = env.path("programs.yml");
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "warning: {}:9: directory /definitely/not/here does not exist: 'lost' will fail to start",
            programs.display()
        )),
        "{err}"
    );
    assert!(stdout_of(&out).contains("config ok"), "{}", stdout_of(&out));

    let out = env.run(&["start-server"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let _server = common::Server { env: &env };
    assert!(
        stderr_of(&out).contains("directory /definitely/not/here does not exist"),
        "{}",
        stderr_of(&out)
    );
    env.wait_state("good", "running");
    env.wait_state("lost", "fatal");
    let lost = env.api("GET", "/api/programs/lost", "").json();
    let why = lost["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("/definitely/not/here does not exist"),
        "{lost}"
    );
    let status = env.ok(&["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("good") && l.contains("running")),
        "{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("lost") && l.contains("fatal")),
        "{status}"
    );
    // The server's log has the warning too.
    // (The whole file: the failed start's lines follow the warning.)
    eventually(10, "the warning in gosuv.log", || {
        env.server_log_all()
            .contains("directory /definitely/not/here does not exist")
    });
}

#[test]
fn an_unknown_user_warns_and_fails_only_its_own_start() {
    let env = Env::unix();
    env.programs(
        "- name: good\n  command: sleep 300\n  start_auto: true\n- name: stranger\n  command: sleep 300\n  start_auto: true\n  start_retries: 0\n  user: no-such-user-gosuv\n",
    );
    let out = env.run(&["conftest"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(":8: user 'no-such-user-gosuv' does not exist on this machine"),
        "{}",
        stderr_of(&out)
    );
    let _server = env.start();
    env.wait_state("good", "running");
    env.wait_state("stranger", "fatal");
    let p = env.api("GET", "/api/programs/stranger", "").json();
    assert!(
        p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no-such-user-gosuv")),
        "{p}"
    );
}

#[test]
fn reload_applies_changes_beside_a_missing_directory() {
    let env = Env::unix();
    env.programs("- name: a\n  command: sleep 300\n");
    let _server = env.start();
    env.programs(
        "- name: a\n  command: sleep 300\n- name: b\n  command: sleep 300\n- name: c\n  command: sleep 300\n  directory: /definitely/not/here\n",
    );
    let out = env.ok(&["reload"]);
    assert!(out.contains("added: b, c"), "{out}");
    let r = env.api("POST", "/api/programs/c/start", "");
    assert_ne!(r.status, 200, "{}", r.body);
    env.wait_state("c", "fatal");
    eventually(10, "the reload's warning in gosuv.log", || {
        env.server_log_all()
            .matches("directory /definitely/not/here does not exist")
            .count()
            >= 1
    });
}

#[test]
fn reload_of_an_empty_file_says_what_it_removes() {
    let env = Env::unix();
    env.programs("- name: a\n  command: sleep 300\n- name: b\n  command: sleep 300\n");
    let _server = env.start();
    env.programs("# every program is gone for now\n");
    assert!(env.ok(&["conftest"]).contains("(0 programs)"));
    let out = env.ok(&["reload"]);
    assert!(out.contains("load config success"), "{out}");
    assert!(out.contains("removed: a, b"), "{out}");
    let st = env.api("GET", "/api/programs", "");
    assert_eq!(st.status, 200, "{}", st.body);
    assert!(!st.body.contains("\"a\""), "{}", st.body);
    env.programs("");
    assert!(env.ok(&["reload"]).contains("no changes"));
}

#[test]
fn a_missing_programs_file_is_fine_to_start_but_conftest_names_it() {
    let env = Env::unix();
    let err = env.fails(&["conftest"]);
    let programs = env.path("programs.yml");
    assert!(
        err.contains(&format!(
            "{}: the programs file does not exist: create it (an empty file, or one of comments only, means no programs)",
            programs.display()
        )),
        "{err}"
    );
    let server = env.start();
    assert!(env.ok(&["status"]).contains("no programs"));
    server.shutdown();
    std::fs::write(&programs, "").expect("write");
    env.ok(&["conftest"]);
}

#[test]
fn a_fresh_directory_starts_and_passes_conftest() {
    let dir = tempfile::Builder::new()
        .prefix("gs")
        .tempdir_in("/tmp")
        .expect("tmp");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .current_dir(dir.path())
            .arg("-c")
            .arg("config.yml")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run gosuv")
    };
    let out = run(&["start-server"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    struct Stop<'a>(&'a dyn Fn(&[&str]) -> std::process::Output);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["shutdown"]);
        }
    }
    let _stop = Stop(&run);
    assert!(
        stderr_of(&out).contains("wrote an empty programs file to"),
        "{}",
        stderr_of(&out)
    );
    let text = std::fs::read_to_string(dir.path().join("programs.yml")).expect("written");
    assert!(text.contains("docs/config.md"), "{text}");
    // Private, whatever the umask: programs added through the API may hold secrets.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("programs.yml"))
            .expect("stat")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let out = run(&["conftest"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("(0 programs)"),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn variables_and_numprocs_in_a_served_file() {
    let env = Env::unix();
    env.programs(
        "- name: w\n  numprocs: 3\n  start_auto: true\n  environ: [\"SLOT=slot{n}\"]\n  command: \"echo ${GOSUV_T_GREETING} ${GOSUV_T_UNSET:-fallback} $$SLOT > out-{n}.txt; exec sleep 300\"\n",
    );
    let err = env.fails(&["conftest"]);
    assert!(
        err.contains(":5: [0].command: `${GOSUV_T_GREETING}` is not set in gosuv's environment"),
        "{err}"
    );
    let out = env
        .command(&["start-server"])
        .env("GOSUV_T_GREETING", "hello")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let _server = common::Server { env: &env };
    for n in 0..3 {
        let file = env.path(&format!("out-{n}.txt"));
        eventually(15, "an instance's output", || {
            std::fs::read_to_string(&file).is_ok_and(|t| t.ends_with('\n'))
        });
        assert_eq!(
            std::fs::read_to_string(&file).expect("read"),
            format!("hello fallback slot{n}\n")
        );
        env.wait_state(&format!("w-{n}"), "running");
    }
    let status = env.ok(&["status"]);
    for n in 0..3 {
        assert!(status.contains(&format!("w-{n}")), "{status}");
    }
}

#[test]
fn unknown_keys_get_a_did_you_mean() {
    let env = Env::unix();
    env.programs("- name: a\n  command: x\n  autostart: true\n  comand: y\n  colour: red\n");
    let mut conf = std::fs::read_to_string(env.conf()).expect("read");
    conf = conf.replace("  pidfile", "  pidfil");
    conf.push_str("  passwrd: x\n");
    std::fs::write(env.conf(), conf).expect("write");
    let err = env.fails(&["conftest"]);
    for want in [
        "[0].autostart: unknown key `autostart`: gosuv calls it `start_auto` (see docs/config.md)",
        "[0].comand: unknown key `comand`: did you mean `command`? (see docs/config.md)",
        "[0].colour: unknown key `colour`; a program's keys are: name, command",
        "client.passwrd: unknown key `passwrd`: did you mean `password`? (see docs/config.md)",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
    assert!(!err.contains("SPEC"), "{err}");
}

/// conftest and start-server both refuse `setup`'s config, with `want` in the message.
fn both_refuse(env: &Env, want: &str) {
    let err = env.fails(&["conftest"]);
    assert!(err.contains(want), "conftest: missing {want:?} in\n{err}");
    let err = env.fails(&["start-server"]);
    assert!(
        err.contains(want),
        "start-server: missing {want:?} in\n{err}"
    );
}

fn edit_config(env: &Env, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(env.conf()).expect("read");
    std::fs::write(env.conf(), f(text)).expect("write");
    env.programs("");
}

#[test]
fn conftest_refuses_a_socket_path_too_long() {
    let env = Env::unix();
    let long = format!("{}/s.sock", "d".repeat(120));
    edit_config(&env, |t| {
        t.replace("sockfile: .gosuv.sock", &format!("sockfile: {long}"))
    });
    both_refuse(&env, "a unix socket path holds at most 107");
}

#[test]
fn conftest_refuses_a_socket_path_taken_by_a_file() {
    let env = Env::unix();
    std::fs::write(env.path("taken"), "not a socket").expect("write");
    edit_config(&env, |t| {
        t.replace("sockfile: .gosuv.sock", "sockfile: taken")
    });
    both_refuse(&env, "exists and is not a socket");
}

#[test]
fn conftest_refuses_an_http_host_that_does_not_resolve() {
    let env = Env::unix();
    edit_config(&env, |t| {
        t.replace(
            "enabled: false\n    addr: \"127.0.0.1:1\"",
            "enabled: true\n    addr: \"no-such-host.invalid:11333\"",
        )
        .replace("  auth:\n    enabled: false", "  auth:\n    enabled: true")
    });
    both_refuse(
        &env,
        "server.httpserver.addr no-such-host.invalid:11333: cannot resolve it",
    );
}

#[test]
fn conftest_refuses_a_log_path_that_is_a_file() {
    let env = Env::unix();
    std::fs::write(env.path("logs"), "a file").expect("write");
    let err = env.fails(&["conftest"]);
    assert!(
        err.contains("is not a directory: move it away or change server.log.logpath"),
        "{err}"
    );
    let err = env.fails(&["start-server"]);
    assert!(err.contains("server.log.logpath"), "{err}");
    assert!(!Path::new(&env.path(".gosuv.pid")).exists() || env.pid().is_none());
}

#[test]
fn conftest_refuses_minfds_no_one_can_grant() {
    let env = Env::unix();
    edit_config(&env, |t| {
        t.replace("  log:\n", "  minfds: 4294967295\n  log:\n")
    });
    let err = env.fails(&["conftest"]);
    assert!(
        err.contains("cannot raise the open files limit to 4294967295 (server.minfds)"),
        "{err}"
    );
    let err = env.fails(&["start-server"]);
    assert!(err.contains("server.minfds"), "{err}");
}

#[test]
fn restart_server_goes_ahead_beside_a_missing_directory() {
    let env = Env::unix();
    env.programs("- name: good\n  command: sleep 300\n  start_auto: true\n");
    let _server = env.start();
    env.wait_state("good", "running");
    env.programs(
        "- name: good\n  command: sleep 300\n  start_auto: true\n- name: lost\n  command: sleep 300\n  directory: /definitely/not/here\n",
    );
    let out = env.run(&["restart-server"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    env.wait_state("good", "running");
    let r = env.api("GET", "/api/programs/lost", "");
    assert_eq!(r.status, 200, "{}", r.body);
}
