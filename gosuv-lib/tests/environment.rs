//! What a child gets: environment, working directory, umask, stdin from /dev/null, its own
//! session, no descriptor of gosuv's, and the user switch (as root, with `nobody`).

mod common;

use std::os::fd::AsRawFd;

use common::*;
use gosuv::{Autorestart, ProgramConfig};

fn one_shot(name: &str, cmd: &str) -> ProgramConfig {
    let mut p = quick(name, cmd);
    p.autorestart = Autorestart::Never;
    p
}

async fn output_of(env: &Env, p: ProgramConfig) -> String {
    let name = p.name.clone();
    env.sup.add(p).await.expect("add");
    env.sup.start(&name, WAIT).await.expect("start");
    env.sup
        .wait_for(
            &name,
            gosuv::ProgramState::Exited,
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("exits");
    wait_file_contains(&env.log(&name, "stdout"), "END", 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_directory_umask_stdin_and_session() {
    let env = Env::new();
    let work = env.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let mut p = one_shot(
        "envy",
        "echo \"GREETING=$GREETING\"; echo \"PATHSET=${PATH:+yes}\"; echo \"PWD=$(pwd)\"; \
         echo \"UMASK=$(umask)\"; echo \"STDIN=$(readlink /proc/self/fd/0)\"; \
         echo \"SID=$(cut -d' ' -f6 /proc/self/stat) PID=$$\"; echo END",
    );
    p.environ = vec![("GREETING".into(), "hello world".into())];
    p.directory = Some(work.clone());
    p.umask = Some(0o027);
    let out = output_of(&env, p).await;
    assert!(out.contains("GREETING=hello world\n"), "{out}");
    assert!(
        out.contains("PATHSET=yes\n"),
        "gosuv's environment is inherited: {out}"
    );
    assert!(out.contains(&format!("PWD={}\n", work.display())), "{out}");
    assert!(out.contains("UMASK=0027\n"), "{out}");
    assert!(out.contains("STDIN=/dev/null\n"), "{out}");
    let sid_line = out.lines().find(|l| l.starts_with("SID=")).expect("sid");
    let (sid, pid) = sid_line
        .trim_start_matches("SID=")
        .split_once(" PID=")
        .expect("fmt");
    assert_eq!(sid, pid, "the program leads its own session: {sid_line}");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_descriptor_of_the_host_leaks_into_the_child() {
    let env = Env::new();
    // A descriptor the host opened without close-on-exec must not reach the child either.
    let leaky = std::fs::File::open("/dev/zero").expect("open");
    let raw = leaky.as_raw_fd();
    // SAFETY: clearing FD_CLOEXEC on a descriptor this test owns.
    unsafe { libc::fcntl(raw, libc::F_SETFD, 0) };
    let p = one_shot(
        "fds",
        "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; echo END",
    );
    let out = output_of(&env, p).await;
    let fds: Vec<u32> = out
        .lines()
        .next()
        .expect("line")
        .split_whitespace()
        .map(|s| s.parse().expect("fd"))
        .collect();
    // 0, 1, 2, and the descriptor `ls` opens to read the directory.
    assert!(fds.len() <= 4, "leaked descriptors: {fds:?}");
    assert!(
        !fds.contains(&(raw as u32)) || raw < 4,
        "host fd {raw} leaked: {fds:?}"
    );
    drop(leaky);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environ_as_a_map_and_user_variables() {
    let env = Env::new();
    let progs = gosuv::config::parse_programs(
        "- name: m\n  command: echo \"A=$A B=$B\"; echo END\n  environ: {A: 1, B: two}\n  start_seconds: 0\n  autorestart: false\n",
        None,
        env.path(),
    )
    .expect("parse");
    let out = output_of(&env, progs.into_iter().next().expect("one")).await;
    assert!(out.contains("A=1 B=two"), "{out}");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_as_another_user_when_root() {
    let env = Env::new();
    let mut p = one_shot(
        "who",
        "echo \"ID=$(id -u):$(id -g) HOME=$HOME USER=$USER\"; echo END",
    );
    p.user = Some("nobody".into());
    // nobody cannot write in the temp dir; run it in /.
    p.directory = Some("/".into());
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("nobody exists");
    if nix::unistd::Uid::effective().is_root() {
        let out = output_of(&env, p).await;
        let want = format!(
            "ID={}:{} HOME={} USER=nobody",
            nobody.uid,
            nobody.gid,
            nobody.dir.display()
        );
        assert!(out.contains(&want), "{out}");
    } else {
        // Not root: a clear error, not a silent run as the current user.
        env.sup.add(p).await.expect("add");
        let err = env.sup.start("who", WAIT).await.expect_err("cannot switch");
        assert!(
            err.to_string().contains("only root can switch users"),
            "{err}"
        );
    }
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supplementary_groups_come_from_the_group_database() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    let mut p = one_shot("groups", "echo \"G=$(id -G)\"; echo END");
    p.user = Some("nobody".into());
    p.directory = Some("/".into());
    let out = output_of(&env, p).await;
    let line = out.lines().find(|l| l.starts_with("G=")).expect("groups");
    let groups: Vec<&str> = line[2..].split_whitespace().collect();
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("nobody");
    assert_eq!(groups[0], nobody.gid.to_string(), "{line}");
    assert!(!groups.contains(&"0"), "root's groups kept: {line}");
    env.sup.shutdown().await;
}

#[test]
fn an_impossible_open_files_minimum_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut opts = gosuv::SupervisorOptions::new(dir.path());
    opts.min_fds = Some(u64::MAX);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let _guard = rt.enter();
    let err = gosuv::Supervisor::new(opts).expect_err("above the hard limit");
    assert!(
        err.to_string()
            .contains("cannot raise the open files limit"),
        "{err}"
    );
}
