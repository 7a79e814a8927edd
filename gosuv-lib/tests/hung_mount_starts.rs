//! Programs whose working directory is on a hung mount hold up neither the starts (and
//! stops) of every other program of the process, nor its blocking threads.
//!
//! A FUSE mount that nobody serves stands for the hung mount: every lookup under it blocks
//! (killably) until the connection is closed. Root only (it mounts); skipped otherwise.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::*;
use gosuv::{Autorestart, ProgramState};

/// The tests of this file one at a time: the bounds they test are the whole process's.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A FUSE mount nobody answers; unmounted and aborted when dropped.
struct HungMount {
    dir: std::path::PathBuf,
    fuse: Option<OwnedFd>,
}

impl HungMount {
    fn new(dir: &std::path::Path) -> Option<HungMount> {
        std::fs::create_dir_all(dir).ok()?;
        let fuse: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .ok()?
            .into();
        let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
        let target = c(dir.to_str()?);
        let opts = c(&format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            fuse.as_raw_fd()
        ));
        // SAFETY: valid NUL-terminated strings.
        let r = unsafe {
            libc::mount(
                c("gosuv-review-hung").as_ptr(),
                target.as_ptr(),
                c("fuse").as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if r != 0 {
            eprintln!("mount: {}", std::io::Error::last_os_error());
            return None;
        }
        Some(HungMount {
            dir: dir.to_path_buf(),
            fuse: Some(fuse),
        })
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.dir.to_str().unwrap_or_default()).expect("no NUL");
        // SAFETY: a valid path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        // Closing the device aborts the connection: blocked lookups fail with ENOTCONN.
        drop(self.fuse.take());
    }
}

/// A supervisor with a hung mount in its directory; `None` (and why, on stderr) where this
/// process may not mount (not root, no FUSE).
fn hung_env() -> Option<(Env, HungMount)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting needs root");
        return None;
    }
    let env = Env::new();
    let Some(mount) = HungMount::new(&env.path().join("hung")) else {
        eprintln!("skipped: cannot mount FUSE here");
        return None;
    };
    Some((env, mount))
}

/// Adds `n` programs started at once whose working directory is under the hung mount.
async fn add_stuck(env: &Env, mount: &HungMount, n: usize) {
    let stuck: Vec<_> = (0..n)
        .map(|i| {
            let mut p = quick(&format!("stuck{i}"), "exec sleep 1000");
            p.directory = Some(mount.dir.join("work"));
            p.autorestart = Autorestart::Never;
            p.start_retries = 0;
            p.start_auto = true;
            p
        })
        .collect();
    let failed = env
        .sup
        .add_all(stuck)
        .await
        .expect("add the stuck programs");
    assert!(failed.is_empty(), "{failed:?}");
}

/// How many threads of this process wait on the FUSE mount: blocked killably (state `D`),
/// in the FUSE request or on the lock of the directory a first lookup holds.
fn threads_on_fuse() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("stat")).is_ok_and(|s| {
                s.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('D'))
            })
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_mount_under_16_programs_does_not_hold_up_the_others() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((env, mount)) = hung_env() else {
        return;
    };
    const STUCK: usize = 16;
    add_stuck(&env, &mount, STUCK).await;
    // Each one's start is blocked in its preparation (a stat of its directory).
    poll_async(10, "16 starts blocked on the mount", || {
        threads_on_fuse() >= STUCK
    })
    .await;

    // Two programs that have nothing to do with the mount: one is waited for, the other
    // stopped at once.
    let t = Instant::now();
    env.sup
        .add_all(
            ["ok", "late"]
                .map(|n| {
                    let mut p = quick(n, "exec sleep 1000");
                    p.start_auto = true;
                    p
                })
                .to_vec(),
        )
        .await
        .expect("add ok and late");
    let (running, stopped) = tokio::join!(
        async {
            let r = env
                .sup
                .wait_for("ok", ProgramState::Running, Duration::from_secs(45))
                .await;
            (r.map(|_| ()), t.elapsed())
        },
        async {
            let s = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(45), env.sup.stop("late", WAIT)).await;
            (r.map(|r| r.map(|st| st.state)), s.elapsed())
        }
    );
    eprintln!(
        "'ok' reached running after {:?}: {:?}",
        running.1, running.0
    );
    eprintln!(
        "'late' stop answered after {:?}: {:?}",
        stopped.1, stopped.0
    );
    drop(mount);
    assert!(
        running.1 < Duration::from_secs(10),
        "a program unrelated to the hung mount took {:?} to start: the 16 starts stuck in \
         their preparation held every permit of the process-wide semaphore (STARTS_IN_FLIGHT)",
        running.1
    );
    assert!(
        matches!(stopped.0, Ok(Ok(ProgramState::Stopped))) && stopped.1 < Duration::from_secs(10),
        "the stop of a program unrelated to the hung mount took {:?}: its task waited for a \
         start permit and read no command meanwhile",
        stopped.1
    );
    tokio::time::timeout(Duration::from_secs(60), env.sup.shutdown())
        .await
        .expect("shutdown");
}

/// How many preparations may be stuck at once (`PREPARING_MAX` in program/run.rs).
const PREPARING_MAX: usize = 128;

/// More programs on a hung mount than preparations may be stuck at once: the rest wait, and
/// the runtime's blocking pool (512 threads) keeps room for everything else. Before, a
/// preparation slower than 100 ms gave its place back and took a new thread each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_programs_on_a_hung_mount_than_may_prepare_leave_the_blocking_pool_free() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((env, mount)) = hung_env() else {
        return;
    };
    add_stuck(&env, &mount, PREPARING_MAX + 32).await;
    poll_async(20, "the most preparations that may be stuck", || {
        threads_on_fuse() >= PREPARING_MAX
    })
    .await;
    // The others are waiting for a place, not on threads of their own: none comes after a
    // while (without the bound, all 32 more were stuck within milliseconds).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stuck_now = threads_on_fuse();
    // The rest of the process still has blocking threads: a programs-file save, stats, an
    // unrelated program added.
    let probe =
        tokio::time::timeout(Duration::from_secs(5), tokio::task::spawn_blocking(|| ())).await;
    let added = tokio::time::timeout(
        Duration::from_secs(10),
        env.sup.add(quick("unrelated", "exec sleep 1000")),
    )
    .await;
    drop(mount);
    assert!(
        stuck_now <= PREPARING_MAX,
        "{stuck_now} threads stuck on the mount, over {PREPARING_MAX}"
    );
    assert!(probe.is_ok(), "a blocking call waited 5 s");
    assert!(matches!(added, Ok(Ok(()))), "add: {added:?}");
    tokio::time::timeout(Duration::from_secs(60), env.sup.shutdown())
        .await
        .expect("shutdown");
}
