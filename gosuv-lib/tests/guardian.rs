//! With `kill_on_parent_death`, programs do not outlive their host, even when the host is
//! killed with SIGKILL: the guardian kills their process groups.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use gosuv::blocking::Supervisor;
use gosuv::{ProgramConfig, SupervisorOptions};

const HOST_ENV: &str = "GOSUV_TEST_GUARDIAN_HOST";

/// Run as a child process by the test below: supervises one program and waits to be killed.
#[test]
fn guardian_host() {
    let Ok(dir) = std::env::var(HOST_ENV) else {
        return;
    };
    let mut opts = SupervisorOptions::new(&dir);
    opts.kill_on_parent_death = true;
    opts.subreaper = false;
    let sup = Supervisor::new(opts).expect("supervisor");
    let mut p = ProgramConfig::shell("victim", "sleep 300 & echo child=$!; wait");
    p.start_seconds = 0;
    sup.add(p).expect("add");
    let leader = sup.start("victim", WAIT).expect("start").pid.expect("pid");
    poll(5, "child pid", || {
        String::from_utf8_lossy(
            &sup.tail("victim", gosuv::Stream::Stdout, 100)
                .expect("tail"),
        )
        .contains("child=")
    });
    let tail = sup
        .tail("victim", gosuv::Stream::Stdout, 100)
        .expect("tail");
    let child = String::from_utf8_lossy(&tail)
        .trim()
        .trim_start_matches("child=")
        .to_string();
    // The guardian: this process's child that runs the guardian's script.
    let guardian = children_of(std::process::id())
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("gosuv-guardian"))
        })
        .expect("the guardian is a child of its host");
    println!("GUARDIAN {guardian}");
    println!("PIDS {leader} {child}");
    std::thread::sleep(Duration::from_secs(60));
}

fn gone(pid: u32) -> bool {
    // Killed processes are reparented to init, which may reap them a little later.
    proc_dead(pid)
}

/// Starts the host (the test above in a process of its own) with `env`; returns it, its
/// guardian's pid and the pids of its program (the leader and its child).
fn start_host(
    dir: &std::path::Path,
    env: &[(String, String)],
) -> (std::process::Child, u32, Vec<u32>) {
    let mut host = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "guardian_host",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOST_ENV, dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("host");
    let stdout = host.stdout.take().expect("stdout");
    let mut pids = Vec::new();
    let mut guardian = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(rest) = line.split("GUARDIAN ").nth(1) {
            guardian = rest.trim().parse().expect("guardian pid");
        }
        if let Some(rest) = line.split("PIDS ").nth(1) {
            pids = rest
                .split_whitespace()
                .map(|p| p.parse::<u32>().expect("pid"))
                .collect();
            break;
        }
    }
    assert_eq!(pids.len(), 2, "host did not report its program");
    assert!(guardian > 0, "host did not report its guardian");
    (host, guardian, pids)
}

fn kill_host(mut host: std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill host");
    host.wait().expect("reap host");
}

#[test]
fn programs_die_with_a_sigkilled_host() {
    let dir = tempfile::tempdir().expect("tmp");
    let (host, _, pids) = start_host(dir.path(), &[]);
    for p in &pids {
        assert!(!gone(*p), "{p} should be running before the host dies");
    }
    kill_host(host);
    poll(5, "programs of the dead host to die", || {
        pids.iter().all(|p| gone(*p))
    });
}

/// The guardian kills only the groups gosuv told it of: a variable of the host's
/// environment that looks like one of its own names (`g_<number>`) is not a group to kill.
#[test]
fn the_guardian_kills_no_group_named_by_the_hosts_environment() {
    let dir = tempfile::tempdir().expect("tmp");
    // A bystander in a process group of its own, which the host does not own.
    let mut bystander = Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .expect("bystander");
    let pgid = bystander.id();
    let env: Vec<(String, String)> = ["g_", "gosuv_pg_", "__gosuv_g_"]
        .iter()
        .map(|p| (format!("{p}{pgid}"), "1".to_string()))
        .collect();
    let (host, guardian, pids) = start_host(dir.path(), &env);
    kill_host(host);
    poll(5, "programs of the dead host to die", || {
        pids.iter().all(|p| gone(*p))
    });
    // The guardian is done once it has sent its SIGKILLs and exited.
    poll(10, "the guardian to finish", || gone(guardian));
    let alive = bystander.try_wait().expect("try_wait").is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert!(
        alive,
        "the guardian killed a process group named by the host's environment"
    );
}
