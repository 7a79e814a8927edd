//! A host that changes its credentials with glibc (`setgid`, `setuid`) after gosuv started a
//! program: glibc has every thread of the process answer a signal of its own (33) first, so
//! no thread gosuv started may have that signal blocked, or the call never returns (and the
//! host's next thread creation hangs behind it).
//!
//! The host is this test binary run again, in a process of its own, so a hang is killed.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use gosuv::ProgramState::*;

const HOST_ENV: &str = "GOSUV_TEST_SETUID_HOST";

/// The host: starts a program, then calls setgid().
#[test]
fn setuid_host() {
    if std::env::var(HOST_ENV).is_err() {
        return;
    }
    let rt = runtime();
    rt.block_on(async {
        let env = Env::new();
        env.sup
            .add(quick("one", "exec sleep 300"))
            .await
            .expect("add");
        let st = env.sup.start("one", WAIT).await.expect("start");
        assert_eq!(st.state, Running);
        // The same group: nothing changes, but glibc still asks every thread.
        // SAFETY: setgid to this process's own group.
        let r = unsafe { libc::setgid(libc::getgid()) };
        assert_eq!(r, 0, "setgid: {}", std::io::Error::last_os_error());
        println!("SETGID RETURNED");
        env.sup.shutdown().await;
    });
}

#[test]
fn the_host_can_change_its_credentials_after_a_start() {
    let mut host = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "setuid_host", "--nocapture", "--test-threads=1"])
        .env(HOST_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("host");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = host.try_wait().expect("try_wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = host.kill();
            let _ = host.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = host.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.is_some_and(|s| s.success()) && stdout.contains("SETGID RETURNED"),
        "the host's setgid() {}:\n{stdout}\n{}",
        if status.is_none() {
            "hung (a thread of gosuv blocks glibc's signal 33)"
        } else {
            "failed"
        },
        String::from_utf8_lossy(&out.stderr)
    );
}
