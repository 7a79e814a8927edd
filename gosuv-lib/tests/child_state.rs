//! The exact state a program starts in, read by the program itself from /proc: whatever the
//! host process did to its own signals (an ignored one, a handled one, a blocked one) and
//! however gosuv makes the child, the program leads its own session and process group, runs
//! as its user with that user's groups, has the configured umask, no blocked, ignored or
//! handled signal, only descriptors 0, 1 and 2, the open-files limit the host had before
//! gosuv raised its own, and (where cgroups can be owned) sits in its run's cgroup.
//!
//! One test in this file on purpose: it changes the signal state of the whole test process.

mod common;

use std::collections::BTreeMap;

use common::*;
use gosuv::{Autorestart, ProgramConfig, ProgramState};

extern "C" fn ignore(_: libc::c_int) {}

/// The host's signal state at its worst: SIGHUP ignored, a handler on SIGUSR1, and SIGUSR2
/// blocked in this thread (and so in every runtime thread made from it). (A test process
/// may also inherit an ignored real-time signal that glibc keeps for itself, 32 or 33: its
/// `sigaction` refuses to touch those, so gosuv must reset them otherwise.)
fn hostile_signals() {
    // SAFETY: sigaction/pthread_sigmask with structs on the stack; the handler does nothing.
    unsafe {
        let mut ign: libc::sigaction = std::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        assert_eq!(libc::sigaction(libc::SIGHUP, &ign, std::ptr::null_mut()), 0);
        let mut handled: libc::sigaction = std::mem::zeroed();
        handled.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &handled, std::ptr::null_mut()),
            0
        );
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
}

fn nofile_soft() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a struct on the stack.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
    rl.rlim_cur
}

fn root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The `Key:\tvalue` lines of /proc/<pid>/status as a map.
fn status_fields(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim()))
        .collect()
}

async fn run_to_end(env: &Env, name: &str, argv: &[&str], as_nobody: bool) -> String {
    let mut p = ProgramConfig::new(
        name,
        gosuv::Command::Argv(argv.iter().map(|s| s.to_string()).collect()),
    );
    p.start_seconds = 0;
    p.autorestart = Autorestart::Never;
    p.umask = Some(0o027);
    if as_nobody {
        p.user = Some("nobody".into());
    }
    env.sup.add(p).await.expect("add");
    env.sup.start(name, WAIT).await.expect("start");
    env.sup
        .wait_for(
            name,
            ProgramState::Exited,
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("exits");
    let status = env.sup.status(name).expect("status");
    assert_eq!(status.exit_code, Some(0), "{name}: {status:?}");
    std::fs::read_to_string(env.log(name, "stdout")).expect("log")
}

#[test]
fn a_program_starts_in_exactly_the_state_it_should() {
    hostile_signals();
    let host_soft = nofile_soft();
    let rt = runtime();
    rt.block_on(async {
        let env = Env::new();
        let cgroups = cgroups_available("a_program_starts_in_exactly_the_state_it_should");
        let as_nobody = root();
        if !as_nobody {
            eprintln!("SKIPPED the user part: not root, so no switch to nobody");
        }
        // `cat` is what gosuv executes: what it reports is the state gosuv gave it.
        let out = run_to_end(
            &env,
            "state",
            &[
                "cat",
                "/proc/self/status",
                "/proc/self/stat",
                "/proc/self/cgroup",
                "/proc/self/limits",
            ],
            as_nobody,
        )
        .await;
        let fields = status_fields(&out);
        let pid = fields["Pid"];
        assert_eq!(fields["NSsid"], pid, "leads its own session: {out}");
        assert_eq!(fields["NSpgid"], pid, "leads its own process group: {out}");
        assert_eq!(fields["Umask"], "0027", "{out}");
        assert_eq!(
            fields["SigBlk"], "0000000000000000",
            "no signal blocked: {out}"
        );
        assert_eq!(
            fields["SigIgn"], "0000000000000000",
            "no signal ignored: {out}"
        );
        assert_eq!(fields["SigCgt"], "0000000000000000", "no handler: {out}");
        if as_nobody {
            let ids = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
            assert_eq!(ids(fields["Uid"]), ["65534"; 4], "{out}");
            let gid = nix::unistd::User::from_name("nobody")
                .expect("lookup")
                .expect("nobody exists")
                .gid
                .as_raw()
                .to_string();
            assert_eq!(ids(fields["Gid"]), [gid.as_str(); 4], "{out}");
            let groups = std::process::Command::new("id")
                .args(["-G", "nobody"])
                .output()
                .expect("id");
            let mut want = ids(&String::from_utf8_lossy(&groups.stdout));
            want.sort();
            let mut got = ids(fields["Groups"]);
            got.sort();
            assert_eq!(got, want, "nobody's groups, none of root's: {out}");
        }
        // The parent is gosuv (nobody else took the child in between).
        let stat = out
            .lines()
            .find(|l| l.starts_with(&format!("{pid} (cat)")))
            .expect("stat line");
        let ppid = stat.split(' ').nth(3).expect("ppid");
        assert_eq!(ppid, std::process::id().to_string(), "{stat}");
        let limit = out
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("limits");
        let soft = limit.split_whitespace().nth(3).expect("soft limit");
        assert_eq!(
            soft,
            host_soft.to_string(),
            "the host's own limit, not gosuv's raised one: {limit}"
        );
        if cgroups {
            let line = out.lines().find(|l| l.starts_with("0::")).expect("cgroup");
            let leaf = line.rsplit('/').next().expect("leaf");
            assert!(
                leaf == "prog-state" || leaf.starts_with("prog-state."),
                "born in its run's cgroup: {line}"
            );
        }

        // Descriptors: `ls` lists its own, which are gosuv's 0, 1, 2 and the directory it
        // reads.
        let out = run_to_end(&env, "fds", &["ls", "/proc/self/fd"], false).await;
        let fds: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(fds, ["0", "1", "2", "3"], "nothing of gosuv's leaks: {out}");
        env.sup.shutdown().await;
    });
}
