//! PID 1 mode: `gosuv start-server -f` as the init of a PID namespace (a container's
//! entrypoint), run with `unshare --pid --fork --mount-proc`. It reaps every orphan that is
//! reparented to it, from its programs and from processes that entered the namespace from
//! outside (`nsenter`, like `docker exec`), and SIGTERM is a graceful shutdown: programs get
//! their `stop_signal`, not the kernel's SIGKILL that ends a namespace whose init exits.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The namespace: `unshare` and, under it, gosuv as PID 1. Killed on drop (SIGKILL to
/// the init ends the whole namespace).
struct Namespace {
    unshare: Child,
    init: Option<i32>,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Some(pid) = self.init {
            signal(pid, libc::SIGKILL);
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn as_pid_1_it_reaps_every_orphan_and_shuts_down_gracefully_on_sigterm() {
    if !unshare_works() {
        eprintln!("SKIPPED: unshare --pid --fork --mount-proc is not permitted here (needs root or user namespaces)");
        return;
    }
    let env = Env::unix();
    let mark = env.dir.path().display().to_string();
    let _cleanup = KillMarked(mark.clone());
    let stopped_file = env.path("graceful.txt");
    env.programs(&format!(
        "- name: orphans\n  command: [/bin/sh, -c, 'for i in 1 2 3 4 5; do (sleep 1 &); done; sleep 100000 & wait']\n  start_auto: true\n  start_seconds: 0\n  environ: [\"{MARK_VAR}={mark}\"]\n\
         - name: graceful\n  command: [/bin/sh, -c, 'trap \"echo TERM > {}; exit 0\" TERM; sleep 100000 & wait']\n  start_auto: true\n  start_seconds: 0\n  environ: [\"{MARK_VAR}={mark}\"]\n",
        stopped_file.display()
    ));
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(BIN)
        .arg("-c")
        .arg(env.conf())
        .args(["start-server", "-f"])
        .current_dir(env.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run unshare");
    let mut ns = Namespace {
        unshare,
        init: None,
    };
    let unshare_pid = ns.unshare.id() as i32;
    eventually(15, "gosuv to answer inside the namespace", || {
        env.sock().exists()
            && std::os::unix::net::UnixStream::connect(env.sock()).is_ok()
            && env.api("GET", "/api/status", "").status == 200
    });
    assert_eq!(env.api("GET", "/api/status", "").json()["pid"], 1);
    let init = all_pids()
        .into_iter()
        .find(|p| stat(*p).is_some_and(|s| s.ppid == unshare_pid))
        .expect("gosuv under unshare");
    ns.init = Some(init);
    env.wait_state("orphans", "running");
    env.wait_state("graceful", "running");

    // Orphans from outside: a shell entered into the namespace forks sleeps and exits.
    let entered = Command::new("nsenter")
        .args(["-t", &init.to_string(), "-p", "-m", "--", "/bin/sh", "-c"])
        .arg("for i in 1 2 3 4 5; do (sleep 1 &); done")
        .env(MARK_VAR, &mark)
        .status()
        .expect("nsenter");
    assert!(entered.success());
    // Both kinds are reparented to gosuv while they run...
    let sleepers = |pid: i32| -> usize {
        all_pids()
            .into_iter()
            .filter(|p| {
                stat(*p).is_some_and(|s| s.ppid == pid && s.state != 'Z')
                    && std::fs::read_to_string(format!("/proc/{p}/comm"))
                        .is_ok_and(|c| c.trim() == "sleep")
            })
            .count()
    };
    let n = sleepers(init);
    assert!(n >= 5, "only {n} orphans were reparented to gosuv");
    // ...and once they exit, none is left a zombie.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let zombies = zombie_children(init);
        if sleepers(init) == 0 && zombies.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "orphans left as zombies of PID 1: {zombies:?}\n{}",
            env.server_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // SIGTERM (what `docker stop` sends) is a graceful shutdown.
    signal(init, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = ns.unshare.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "gosuv did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "unshare exited with {status}");
    assert_eq!(
        std::fs::read_to_string(&stopped_file).unwrap_or_default(),
        "TERM\n",
        "the program did not get its stop signal"
    );
    assert!(marked(&mark).is_empty());
    let log = std::fs::read_to_string(env.path("logs/gosuv.log")).unwrap();
    assert!(log.contains("running as PID 1"), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("server stopped"), "{log}");
}
