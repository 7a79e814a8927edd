//! `env_file`: a dotenv file read at each start, under `environ`.

mod common;

use std::time::Duration;

use common::*;
use gosuv::{Autorestart, ProgramConfig, ProgramState};

fn one_shot(name: &str, cmd: &str) -> ProgramConfig {
    let mut p = quick(name, cmd);
    p.autorestart = Autorestart::Never;
    p
}

/// Runs `name` once more and returns what its run added to its stdout log.
async fn run_once(env: &Env, name: &str) -> String {
    let log = env.log(name, "stdout");
    let before = std::fs::read_to_string(&log).unwrap_or_default().len();
    env.sup.start(name, WAIT).await.expect("start");
    env.sup
        .wait_for(name, ProgramState::Exited, Duration::from_secs(10))
        .await
        .expect("exits");
    let text = wait_file_contains(&log, "END", 10);
    poll(10, "this run's END", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t[before.min(t.len())..].contains("END"))
    });
    let text = std::fs::read_to_string(&log).unwrap_or(text);
    text[before..].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_reach_the_program_under_environ_and_a_change_is_read_at_the_next_start() {
    let env = Env::new();
    // Relative to the supervisor's base directory (the config file's).
    std::fs::write(
        env.path().join("app.env"),
        "# settings\nA=from-file\n\nexport B='single quoted'\nC=\"double # quoted\" # note\nD=file\n",
    )
    .expect("env file");
    let mut p = one_shot("dotenv", "echo \"A=$A|B=$B|C=$C|D=$D\"; echo END");
    p.env_file = Some("app.env".into());
    p.environ = vec![("D".into(), "environ".into())];
    env.sup.add(p).await.expect("add");
    let out = run_once(&env, "dotenv").await;
    assert!(
        out.contains("A=from-file|B=single quoted|C=double # quoted|D=environ\n"),
        "{out}"
    );
    // Changed between two starts, without a reload.
    std::fs::write(env.path().join("app.env"), "A=changed\n").expect("env file");
    let out = run_once(&env, "dotenv").await;
    assert!(out.contains("A=changed|B=|C=|D=environ\n"), "{out}");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_is_a_failed_start_naming_it() {
    let env = Env::new();
    let mut p = one_shot("nofile", "echo END");
    p.env_file = Some(env.path().join("missing.env"));
    p.start_retries = 2;
    env.sup.add(p).await.expect("add");
    let err = env
        .sup
        .start("nofile", WAIT)
        .await
        .expect_err("cannot start");
    let st = env.sup.status("nofile").expect("status");
    assert_eq!(st.state, ProgramState::Fatal, "backoff, then fatal: {err}");
    assert_eq!(st.restarts, 1, "retried once after a backoff");
    let why = st.last_error.unwrap_or_default();
    assert_eq!(
        why,
        format!(
            "cannot read env_file {}: No such file or directory: fix `env_file` (see docs/config.md)",
            env.path().join("missing.env").display()
        )
    );
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_is_a_failed_start_naming_the_line() {
    let env = Env::new();
    let file = env.path().join("bad.env");
    std::fs::write(&file, "A=1\n# fine\nnot a variable\n").expect("env file");
    let mut p = one_shot("badline", "echo END");
    p.env_file = Some(file.clone());
    p.start_retries = 1;
    env.sup.add(p).await.expect("add");
    env.sup
        .start("badline", WAIT)
        .await
        .expect_err("cannot start");
    let st = env.sup.status("badline").expect("status");
    assert_eq!(st.state, ProgramState::Fatal);
    assert_eq!(
        st.last_error.as_deref(),
        Some(format!("env_file {}, line 3: expected KEY=VALUE", file.display()).as_str())
    );
    // Fixed, it starts.
    std::fs::write(&file, "A=1\n").expect("env file");
    let out = run_once(&env, "badline").await;
    assert!(out.contains("END"), "{out}");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_is_refused_and_never_blocks_the_program() {
    let env = Env::new();
    let fifo = env.path().join("pipe.env");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let mut p = one_shot("fifo", "echo END");
    p.env_file = Some(fifo.clone());
    p.start_retries = 1;
    env.sup.add(p).await.expect("add");
    // No writer ever comes: a blocking open would hold the start (and the stop) for ever.
    let started = tokio::time::timeout(Duration::from_secs(20), env.sup.start("fifo", WAIT))
        .await
        .expect("the start must not hang on a FIFO");
    assert!(started.is_err(), "{started:?}");
    let st = env.sup.status("fifo").expect("status");
    assert_eq!(st.state, ProgramState::Fatal);
    assert_eq!(
        st.last_error.as_deref(),
        Some(
            format!(
                "env_file {} is a FIFO, not a file: fix `env_file` (see docs/config.md)",
                fifo.display()
            )
            .as_str()
        )
    );
    tokio::time::timeout(Duration::from_secs(20), env.sup.shutdown())
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_the_programs_user_may_not_read_is_refused() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!(
            "SKIPPED a_file_the_programs_user_may_not_read_is_refused: needs root to switch users"
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    // gosuv's (root's) own secrets, reached through a link the config names.
    let secret = env.path().join("root-only.env");
    std::fs::write(&secret, "TOKEN=root-only\n").expect("env file");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let link = env.path().join("app.env");
    std::os::unix::fs::symlink(&secret, &link).expect("symlink");
    let mut p = one_shot("as-nobody", "echo \"TOKEN=$TOKEN\"; echo END");
    p.user = Some("nobody".into());
    p.directory = Some("/".into());
    p.env_file = Some(link.clone());
    p.start_retries = 1;
    env.sup.add(p).await.expect("add");
    env.sup
        .start("as-nobody", WAIT)
        .await
        .expect_err("cannot start");
    let st = env.sup.status("as-nobody").expect("status");
    assert_eq!(st.state, ProgramState::Fatal);
    let why = st.last_error.unwrap_or_default();
    assert!(
        why.starts_with(&format!(
            "env_file {} is not readable by the program's user (uid ",
            link.display()
        )),
        "{why}"
    );
    let log = std::fs::read_to_string(env.log("as-nobody", "stdout")).unwrap_or_default();
    assert!(!log.contains("root-only"), "{log}");
    // Readable by all, but in a directory that user may not enter (a tempdir is 0700):
    // still refused, as the user's own read would be.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    env.sup
        .start("as-nobody", WAIT)
        .await
        .expect_err("cannot start");
    let why = env
        .sup
        .status("as-nobody")
        .expect("status")
        .last_error
        .unwrap_or_default();
    assert!(why.contains("it may not enter"), "{why}");
    // Readable by all, on a way it may walk: it is read.
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = run_once(&env, "as-nobody").await;
    assert!(out.contains("TOKEN=root-only\n"), "{out}");
    env.sup.shutdown().await;
}
