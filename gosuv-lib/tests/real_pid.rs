//! The pid shown for a program started from a string is the program's own process, not a
//! `/bin/sh -c` wrapper: a signal sent to it reaches the program.

mod common;

use common::*;
use gosuv::{Autorestart, ProgramState};

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

async fn pid_of(env: &Env, name: &str, cmd: &str) -> u32 {
    env.sup.add(quick(name, cmd)).await.expect("add");
    let st = env.sup.start(name, WAIT).await.expect("start");
    st.pid.expect("a running program has a pid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_hup_of_the_status_pid_reaches_the_program() {
    let env = Env::new();
    let script = env.path().join("hup.sh");
    std::fs::write(
        &script,
        "trap 'echo got-hup' HUP\necho ready\nwhile :; do sleep 0.05; done\n",
    )
    .expect("script");
    let cmd = format!("sh {}", script.display());
    let pid = pid_of(&env, "huppy", &cmd).await;
    wait_file_contains(&env.log("huppy", "stdout"), "ready", 10);
    // SAFETY: kill(2) on a pid this test started.
    let r = unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    assert_eq!(r, 0, "kill -HUP {pid}");
    wait_file_contains(&env.log("huppy", "stdout"), "got-hup", 10);
    let st = env.sup.status("huppy").expect("status");
    assert_eq!(
        st.state,
        ProgramState::Running,
        "the HUP did not end it: {st:?}"
    );
    assert_eq!(st.pid, Some(pid), "the same process still runs");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_command_is_execd_directly() {
    let env = Env::new();
    let pid = pid_of(&env, "plain", "sleep 30").await;
    assert_eq!(comm(pid), "sleep");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_command_with_shell_features_does_not_keep_the_shell() {
    let env = Env::new();
    // The shell runs first, then becomes the program: the same pid.
    let pid = pid_of(&env, "redir", "sleep 30 > /dev/null").await;
    poll(10, "the shell to exec sleep", || comm(pid) == "sleep");
    let pid = pid_of(&env, "expand", "sleep ${GOSUV_NO_SUCH_VAR:-30}").await;
    poll(10, "the shell to exec sleep", || comm(pid) == "sleep");
    let st = env.sup.status("expand").expect("status");
    assert_eq!(st.pid, Some(pid), "{st:?}");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_list_still_runs_in_the_shell() {
    let env = Env::new();
    let pid = pid_of(&env, "list", "echo a; sleep 30").await;
    wait_file_contains(&env.log("list", "stdout"), "a\n", 10);
    assert_eq!(comm(pid), "sh", "a list needs the shell to run it");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quoted_arguments_are_split_like_the_shell() {
    let env = Env::new();
    let mut p = quick("quoted", r"printf '%s\n' 'a b' 'c'\''d' ");
    p.autorestart = Autorestart::Never;
    env.sup.add(p).await.expect("add");
    env.sup.start("quoted", WAIT).await.expect("start");
    env.sup
        .wait_for(
            "quoted",
            ProgramState::Exited,
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("exits");
    let out = wait_file_contains(&env.log("quoted", "stdout"), "c'd", 10);
    assert_eq!(out, "a b\nc'd\n");
    let st = env.sup.status("quoted").expect("status");
    assert_eq!(st.exit_code, Some(0));
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quoted_arguments_of_a_program_execd_directly() {
    let env = Env::new();
    // Not a shell builtin: split by gosuv and exec'd.
    let mut p = quick(
        "direct",
        r"/usr/bin/printf '%s|
' 'a b' c",
    );
    p.autorestart = Autorestart::Never;
    env.sup.add(p).await.expect("add");
    env.sup.start("direct", WAIT).await.expect("start");
    env.sup
        .wait_for(
            "direct",
            ProgramState::Exited,
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("exits");
    let out = wait_file_contains(&env.log("direct", "stdout"), "c|", 10);
    assert_eq!(out, "a b|\nc|\n");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_not_found_is_a_failed_start_naming_it() {
    let env = Env::new();
    let mut p = quick("nope", "gosuv-no-such-command-xyz --flag");
    p.start_retries = 1;
    env.sup.add(p).await.expect("add");
    let err = env.sup.start("nope", WAIT).await.expect_err("cannot start");
    let st = env.sup.status("nope").expect("status");
    assert_eq!(st.state, ProgramState::Fatal, "{err}");
    let why = st.last_error.unwrap_or_default();
    assert!(
        why.contains("cannot run 'gosuv-no-such-command-xyz': no such file or command"),
        "{why}"
    );
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_without_a_shebang_still_runs() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let script = env.path().join("plain-script");
    std::fs::write(&script, "echo from-the-script\n").expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut p = quick("noshebang", "./plain-script");
    p.autorestart = Autorestart::Never;
    env.sup.add(p).await.expect("add");
    env.sup.start("noshebang", WAIT).await.expect("start");
    env.sup
        .wait_for(
            "noshebang",
            ProgramState::Exited,
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("exits");
    wait_file_contains(&env.log("noshebang", "stdout"), "from-the-script\n", 10);
    let st = env.sup.status("noshebang").expect("status");
    assert_eq!(st.exit_code, Some(0), "{st:?}");
    env.sup.shutdown().await;
}
