//! `minfds`/`minprocs` raise the server's soft limits at start-up, and say so clearly when
//! they cannot.

mod common;

use common::*;

fn limits_of(pid: i32, what: &str) -> (u64, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(what))
        .unwrap()
        .to_string();
    let soft = line[what.len()..].split_whitespace().next().unwrap();
    (soft.parse().unwrap_or(u64::MAX), line)
}

fn with_limits(env: &Env, fds: &str, procs: &str) {
    let text = std::fs::read_to_string(env.conf()).unwrap();
    let text = text.replacen(
        "server:\n",
        &format!("server:\n  minfds: {fds}\n  minprocs: {procs}\n"),
        1,
    );
    std::fs::write(env.conf(), text).unwrap();
}

#[test]
fn soft_limits_are_raised() {
    let env = Env::unix();
    let mut hard_fds = 0u64;
    // Ask for the hard limit itself: always allowed, and above most soft limits.
    // SAFETY: getrlimit into a stack struct.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            hard_fds = rl.rlim_max.min(1 << 20);
        }
    }
    with_limits(&env, &hard_fds.to_string(), "64");
    let _srv = env.start();
    let pid = env.pid().unwrap();
    let (soft, line) = limits_of(pid, "Max open files");
    assert!(soft >= hard_fds, "{line}");
}

#[test]
fn impossible_limits_are_a_clear_error() {
    let env = Env::unix();
    with_limits(&env, "4294967295", "64");
    let err = env.fails(&["start-server"]);
    assert!(
        err.contains("cannot raise the open files limit to 4294967295"),
        "{err}"
    );
    assert!(err.contains("server.minfds"), "{err}");
    assert!(!env.sock().exists());
}
