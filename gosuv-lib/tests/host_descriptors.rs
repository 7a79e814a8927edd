//! A child copies a few descriptors of its host, not the host's whole table, and the low
//! descriptor numbers gosuv keeps for that are never written over once they are not its own.
//!
//! One test in this file on purpose: those numbers are the whole process's.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use common::*;
use gosuv::{Autorestart, ProgramConfig, ProgramState};

fn one_shot(name: &str, cmd: &str) -> ProgramConfig {
    let mut p = quick(name, cmd);
    p.autorestart = Autorestart::Never;
    p
}

/// Linux 6.11 or later: where children take a part of the table (before, a copy of all).
fn partial_tables() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (6, 11)
}

async fn run_to_end(env: &Env, p: ProgramConfig) -> String {
    let name = p.name.clone();
    env.sup.add(p).await.expect("add");
    env.sup.start(&name, WAIT).await.expect("start");
    env.sup
        .wait_for(&name, ProgramState::Exited, Duration::from_secs(10))
        .await
        .expect("exits");
    std::fs::read_to_string(env.log(&name, "stdout")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_copies_a_few_of_the_hosts_descriptors_and_none_of_the_host_is_overwritten() {
    let env = Env::new();
    a_program_of_a_host_with_thousands_of_descriptors_copies_a_few(&env).await;
    a_host_that_closes_gosuvs_descriptors_keeps_the_files_it_opens_on_their_numbers(&env).await;
    env.sup.shutdown().await;
}

async fn a_program_of_a_host_with_thousands_of_descriptors_copies_a_few(env: &Env) {
    if !partial_tables() {
        eprintln!("skipped: before Linux 6.11 a child copies the whole table");
        return;
    }
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    let many: Vec<OwnedFd> = (0..3000)
        .map(|_| null.try_clone().expect("dup").into())
        .collect();
    let out = run_to_end(env, one_shot("fds", "grep FDSize /proc/self/status")).await;
    // The size of the child's table is what it copied: a copy of ours would be over 3,000.
    let size: u32 = out
        .trim()
        .strip_prefix("FDSize:")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no FDSize in {out:?}"));
    assert!(size <= 128, "the program's table has {size} entries");
    drop(many);
}

async fn a_host_that_closes_gosuvs_descriptors_keeps_the_files_it_opens_on_their_numbers(
    env: &Env,
) {
    // A host that closes every descriptor it did not open itself (gosuv's kept numbers
    // among them), then opens files of its own on the lowest free numbers.
    let dir = tempfile::tempdir().expect("tmp");
    let ours: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .expect("fd dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .is_ok_and(|l| l.to_string_lossy().contains("gosuv-fd-slot"))
        })
        .collect();
    for fd in &ours {
        // SAFETY: closing descriptors as a careless host would; none is used by this test.
        unsafe { libc::close(*fd) };
    }
    let mine: Vec<(std::fs::File, std::path::PathBuf)> = (0..60)
        .map(|i| {
            let p = dir.path().join(format!("host-{i}"));
            (std::fs::File::create(&p).expect("create"), p)
        })
        .collect();
    let out = run_to_end(env, one_shot("p", "echo hi")).await;
    assert_eq!(out.trim(), "hi", "the program's output arrives");
    for (f, path) in &mine {
        let now = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).ok();
        assert_eq!(
            now.as_deref(),
            Some(path.as_path()),
            "the host's descriptor {} was replaced (gosuv's were {ours:?})",
            f.as_raw_fd()
        );
    }
}
