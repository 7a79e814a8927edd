//! With `kill_on_parent_death`, programs do not outlive their host, even when the host is
//! killed with SIGKILL: the guardian kills their process groups.

mod common;

use std::io::{BufRead, BufReader};
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
    println!("PIDS {leader} {child}");
    std::thread::sleep(Duration::from_secs(60));
}

fn gone(pid: u32) -> bool {
    // Killed processes are reparented to init, which may reap them a little later.
    matches!(proc_state(pid), None | Some('Z'))
}

#[test]
fn programs_die_with_a_sigkilled_host() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut host = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "guardian_host",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOST_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("host");
    let stdout = host.stdout.take().expect("stdout");
    let mut pids = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(rest) = line.split("PIDS ").nth(1) {
            pids = rest
                .split_whitespace()
                .map(|p| p.parse::<u32>().expect("pid"))
                .collect();
            break;
        }
    }
    assert_eq!(pids.len(), 2, "host did not report its program");
    for p in &pids {
        assert!(!gone(*p), "{p} should be running before the host dies");
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill host");
    host.wait().expect("reap host");
    poll(5, "programs of the dead host to die", || {
        pids.iter().all(|p| gone(*p))
    });
}
