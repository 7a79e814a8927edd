//! The child shares the host's memory until `execve`, and a credential change marks that
//! memory not dumpable: the host must stay dumpable (core dumps, ptrace, profilers) after
//! starting programs as another user, however many start at once.
//!
//! A test file of its own: nothing else in this process may start programs meanwhile (the
//! flag is off for the moment each such child changes its credentials). Needs root (it runs
//! programs as `nobody`); elsewhere it says so and checks nothing.

mod common;

use common::*;
use gosuv::ProgramState::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_stays_dumpable_after_starts_as_another_user() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED the_host_stays_dumpable...: needs root to switch users");
        return;
    }
    // SAFETY: prctl reads a flag of this process.
    let dumpable = || unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
    assert_eq!(dumpable(), 1, "the test process starts dumpable");
    let env = Env::new();
    for i in 0..8 {
        let mut p = quick(&format!("as-nobody-{i}"), "exec sleep 300");
        p.user = Some("nobody".into());
        env.sup.add(p).await.expect("add");
    }
    // One, then eight at once.
    let st = env.sup.start("as-nobody-0", WAIT).await.expect("start");
    assert_eq!(st.state, Running);
    assert_eq!(dumpable(), 1, "the host lost its dumpable flag");
    env.sup.stop("as-nobody-0", WAIT).await.expect("stop");
    for (name, r) in env.sup.start_all(WAIT).await {
        assert_eq!(r.expect("start").state, Running, "{name}");
    }
    assert_eq!(
        dumpable(),
        1,
        "the host lost its dumpable flag after concurrent starts"
    );
    env.sup.shutdown().await;
}
