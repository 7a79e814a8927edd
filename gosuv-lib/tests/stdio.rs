//! A program's standard streams as a host embedding gosuv chooses them (`ProgramIo`): stdin
//! from a pipe the host writes through the supervisor, or the host's own; output also
//! copied to a host descriptor, or discarded.

mod common;

use std::io::Read;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::*;
use gosuv::{
    Autorestart, Command, Error, HostFd, OutputMode, ProgramConfig, ProgramState, StdinMode,
    Stream, WAIT_FOREVER,
};

fn argv(name: &str, args: &[&str]) -> ProgramConfig {
    let mut p = ProgramConfig::new(
        name,
        Command::Argv(args.iter().map(|a| a.to_string()).collect()),
    );
    p.start_seconds = 0;
    p.stop_timeout = 5;
    p.autorestart = Autorestart::Never;
    p
}

async fn tail_contains(env: &Env, name: &str, stream: Stream, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tail =
            String::from_utf8_lossy(&env.sup.tail(name, stream, 65536).expect("tail")).into_owned();
        if tail.contains(needle) {
            return tail;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the tail of {name}: {tail:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdin_pipe_carries_what_the_host_writes_and_its_close_is_end_of_file() {
    let env = Env::new();
    let mut p = argv("cat", &["cat"]);
    p.io.stdin = StdinMode::Pipe;
    env.sup.add(p).await.expect("add");
    // No process yet: a clear error naming the state.
    match env.sup.write_stdin("cat", b"early\n").await {
        Err(Error::Invalid(m)) => assert!(m.contains("stopped") && m.contains("no process"), "{m}"),
        other => panic!("a write before the start gave {other:?}"),
    }
    env.sup.start("cat", WAIT).await.expect("start");
    env.sup
        .write_stdin("cat", b"it's here\n")
        .await
        .expect("write");
    env.sup
        .write_stdin("cat", "grep -r 'foo' /etc\n".as_bytes())
        .await
        .expect("write");
    tail_contains(
        &env,
        "cat",
        Stream::Stdout,
        "it's here\ngrep -r 'foo' /etc\n",
    )
    .await;
    env.sup.close_stdin("cat").await.expect("close");
    // cat reads end-of-file and exits 0.
    let st = env
        .sup
        .wait_for("cat", ProgramState::Exited, Duration::from_secs(10))
        .await
        .expect("cat exits once its stdin is closed");
    assert_eq!(st.exit_code, Some(0));
    match env.sup.write_stdin("cat", b"late\n").await {
        Err(Error::Invalid(m)) => assert!(m.contains("exited"), "{m}"),
        other => panic!("a write after the exit gave {other:?}"),
    }
    // With no run, there is no pipe to close: closing does nothing, however often.
    env.sup
        .close_stdin("cat")
        .await
        .expect("a close after the exit");
    env.sup.close_stdin("cat").await.expect("and again");
    // The next run gets a fresh pipe.
    env.sup.start("cat", WAIT).await.expect("start again");
    env.sup
        .write_stdin("cat", b"second run\n")
        .await
        .expect("write");
    tail_contains(&env, "cat", Stream::Stdout, "second run\n").await;
    env.sup.shutdown().await;
}

/// A task writing `data` to the stdin of `deaf` (which never reads), returned once the
/// write waits: its first poll was pending.
async fn waiting_writer(env: &Env, data: Vec<u8>) -> tokio::task::JoinHandle<Result<(), Error>> {
    let sup = env.sup.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn(async move {
        let mut write = std::pin::pin!(sup.write_stdin("deaf", &data));
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(write.as_mut(), cx))
        })
        .await;
        let waits = first.is_pending();
        let _ = tx.send(waits);
        match first {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => write.await,
        }
    });
    assert!(
        rx.await.expect("the writer reports"),
        "a write into a pipe nobody reads did not wait"
    );
    writer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stdin_pipe_holds_up_the_writer_only() {
    let env = Env::new();
    let mut p = argv("deaf", &["sleep", "60"]);
    p.io.stdin = StdinMode::Pipe;
    env.sup.add(p).await.expect("add");
    env.sup.start("deaf", WAIT).await.expect("start");
    // A pipe holds 64 KiB: 4 MiB never fits, and the write gives up after its time.
    let big = vec![b'x'; 4 << 20];
    let started = Instant::now();
    let n = env
        .sup
        .write_stdin_within("deaf", &big, Duration::from_millis(300))
        .await
        .expect("a write that runs out of time");
    assert!(n > 0 && n < big.len(), "{n} bytes written");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Zero: only what fits now (nothing, the pipe is full).
    let none = env
        .sup
        .write_stdin_within("deaf", b"more", Duration::ZERO)
        .await
        .expect("a write that does not wait");
    assert_eq!(none, 0);
    // While a writer waits for ever on the full pipe, the program's task answers: status,
    // and a stop, which ends the run (and so the pipe: the writer gets its error).
    let writer = waiting_writer(&env, big).await;
    let t = Instant::now();
    assert_eq!(
        env.sup.status("deaf").expect("status").state,
        ProgramState::Running
    );
    env.sup.stop("deaf", WAIT).await.expect("stop");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the stop took {:?}",
        t.elapsed()
    );
    let r = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the writer returns once the run ended")
        .expect("join");
    assert!(r.is_err(), "a write into a run that ended: {r:?}");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_ends_a_write_that_waits() {
    let env = Env::new();
    let mut p = argv("deaf", &["sleep", "60"]);
    p.io.stdin = StdinMode::Pipe;
    env.sup.add(p).await.expect("add");
    env.sup.start("deaf", WAIT).await.expect("start");
    let writer = waiting_writer(&env, vec![0u8; 1 << 20]).await;
    env.sup.close_stdin("deaf").await.expect("close");
    let r = tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .expect("the waiting write gives up at the close")
        .expect("join");
    match r {
        Err(Error::Invalid(m)) => assert!(m.contains("closed"), "{m}"),
        other => panic!("{other:?}"),
    }
    env.sup
        .close_stdin("deaf")
        .await
        .expect("a second close does nothing");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_closed_its_stdin_gives_a_broken_pipe() {
    let env = Env::new();
    let mut p = quick("closer", "exec 0<&-; echo closed; exec sleep 60");
    p.io.stdin = StdinMode::Pipe;
    env.sup.add(p).await.expect("add");
    env.sup.start("closer", WAIT).await.expect("start");
    tail_contains(&env, "closer", Stream::Stdout, "closed").await;
    match env.sup.write_stdin("closer", b"x").await {
        Err(Error::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(libc::EPIPE)),
        other => panic!("{other:?}"),
    }
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_pipe_a_write_says_so() {
    let env = Env::new();
    env.sup
        .add(quick("plain", "exec sleep 60"))
        .await
        .expect("add");
    env.sup.start("plain", WAIT).await.expect("start");
    match env.sup.write_stdin("plain", b"x").await {
        Err(Error::Invalid(m)) => assert!(m.contains("no stdin pipe"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        env.sup.write_stdin("nosuch", b"x").await,
        Err(Error::NotFound(_))
    ));
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inherited_stdin_is_the_hosts() {
    let env = Env::new();
    let mut p = quick("inherit", "readlink /proc/self/fd/0; echo END");
    p.autorestart = Autorestart::Never;
    p.io.stdin = StdinMode::Inherit;
    env.sup.add(p).await.expect("add");
    env.sup.start("inherit", WAIT).await.expect("start");
    let tail = tail_contains(&env, "inherit", Stream::Stdout, "END").await;
    let host = std::fs::read_link("/proc/self/fd/0")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/dev/null".into());
    assert_eq!(tail.lines().next(), Some(host.as_str()), "{tail}");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_copied_to_a_host_descriptor_and_still_logged() {
    let env = Env::new();
    let (r, w) = nix::unistd::pipe().expect("pipe");
    let mut p = quick("teed", "echo to-both; echo to-err >&2; echo END");
    p.autorestart = Autorestart::Never;
    p.io.stdout = OutputMode::Tee(HostFd::dup(w.as_fd()).expect("dup"));
    // The host's own copy goes: gosuv holds its own.
    drop(w);
    env.sup.add(p).await.expect("add");
    env.sup.start("teed", WAIT).await.expect("start");
    tail_contains(&env, "teed", Stream::Stdout, "END").await;
    wait_file_contains(&env.log("teed", "stdout"), "END", 10);
    // Removing the program drops gosuv's copy: the pipe reaches end-of-file.
    env.sup.remove("teed").await.expect("remove");
    let mut copied = String::new();
    std::fs::File::from(r)
        .read_to_string(&mut copied)
        .expect("read the copy");
    assert_eq!(copied, "to-both\nEND\n", "stderr is not copied");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discarded_output_leaves_no_file_no_tail_and_goes_to_dev_null() {
    let env = Env::new();
    let mut p = quick(
        "quiet",
        "echo lost; exec 3>&1; readlink /proc/self/fd/3 >&2; echo END >&2",
    );
    p.autorestart = Autorestart::Never;
    p.io.stdout = OutputMode::Discard;
    env.sup.add(p).await.expect("add");
    let mut follower = env.sup.follow("quiet", Stream::Stdout).expect("follow");
    env.sup.start("quiet", WAIT).await.expect("start");
    let err = tail_contains(&env, "quiet", Stream::Stderr, "END").await;
    assert!(err.starts_with("/dev/null\n"), "{err}");
    env.sup
        .wait_for("quiet", ProgramState::Exited, Duration::from_secs(10))
        .await
        .expect("exits");
    assert!(env
        .sup
        .tail("quiet", Stream::Stdout, 100)
        .expect("tail")
        .is_empty());
    assert!(!env.log("quiet", "stdout").exists());
    assert!(env.log("quiet", "stderr").exists());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), follower.recv())
            .await
            .is_err(),
        "a follower of a discarded stream gets nothing"
    );
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_probe_on_discarded_output_is_refused() {
    let env = Env::new();
    let mut p = quick("blind", "echo ready; sleep 60");
    p.ready = Some(gosuv::config::ReadyProbe::new(
        gosuv::config::ProbeCheck::Log("ready".into()),
    ));
    p.io.stdout = OutputMode::Discard;
    p.redirect_stderr = true;
    match env.sup.add(p).await {
        Err(Error::Config(e)) => {
            let m = e.to_string();
            assert!(m.contains("ready") && m.contains("discarded"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(env.sup.names().is_empty(), "nothing was added");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_ever_is_taken_and_one_just_over_a_day_is_not() {
    let env = Env::new();
    env.sup
        .add(quick("forever", "exec sleep 60"))
        .await
        .expect("add");
    env.sup
        .start("forever", Some(WAIT_FOREVER))
        .await
        .expect("a start that waits for ever returns once running");
    env.sup
        .wait("forever", WAIT_FOREVER)
        .await
        .expect("wait for ever");
    env.sup
        .wait_for("forever", ProgramState::Running, WAIT_FOREVER)
        .await
        .expect("wait_for for ever");
    let over = gosuv::MAX_WAIT + Duration::from_millis(1);
    assert!(matches!(
        env.sup.start("forever", Some(over)).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        env.sup
            .start("forever", Some(WAIT_FOREVER - Duration::from_nanos(1)))
            .await,
        Err(Error::Invalid(_))
    ));
    env.sup
        .stop("forever", Some(WAIT_FOREVER))
        .await
        .expect("a stop that waits for ever");
    env.sup.shutdown().await;
}

/// The descriptors of this process open on the pipe `fd` is an end of.
fn fds_on_pipe_of(fd: &std::os::fd::OwnedFd) -> usize {
    use std::os::fd::AsRawFd;
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("link");
    std::fs::read_dir("/proc/self/fd")
        .expect("fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| *t == target)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tee_nobody_reads_holds_up_neither_the_log_nor_a_removal() {
    let env = Env::new();
    let (r, w) = nix::unistd::pipe().expect("pipe");
    // Far more than the pipe and the 2 MiB queue hold, then a marker.
    let mut p = quick(
        "flood",
        "head -c 6000000 /dev/zero | tr '\\0' x; echo; echo FLOOD-END; exec sleep 60",
    );
    p.autorestart = Autorestart::Never;
    p.io.stdout = OutputMode::Tee(HostFd::dup(w.as_fd()).expect("dup"));
    drop(w);
    env.sup.add(p).await.expect("add");
    env.sup
        .add(quick(
            "other",
            "for i in 1 2 3 4 5; do echo line$i; sleep 0.05; done; echo OTHER-END; exec sleep 60",
        ))
        .await
        .expect("add");
    env.sup.start("flood", WAIT).await.expect("start");
    env.sup.start("other", WAIT).await.expect("start");
    // The copy stalls; the program's own log and the other program's go on.
    wait_file_contains(&env.log("other", "stdout"), "OTHER-END", 10);
    wait_file_contains(&env.log("flood", "stdout"), "FLOOD-END", 10);
    let st = env.sup.status("flood").expect("status");
    assert!(st.log_errors > 0, "the bytes not copied are counted");
    // The removal does not wait for the copy, and lets go of the descriptor.
    let t = Instant::now();
    env.sup.remove("flood").await.expect("remove");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the removal took {:?}",
        t.elapsed()
    );
    poll_async(1, "gosuv lets go of the tee's descriptor", || {
        fds_on_pipe_of(&r) == 1
    })
    .await;
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tee_to_a_read_only_descriptor_is_refused() {
    let env = Env::new();
    let (r, _w) = nix::unistd::pipe().expect("pipe");
    let mut p = quick("backwards", "echo hi");
    p.io.stdout = OutputMode::Tee(HostFd::dup(r.as_fd()).expect("dup"));
    match env.sup.add(p).await {
        Err(Error::Config(e)) => {
            let m = e.to_string();
            assert!(m.contains("stdout") && m.contains("read"), "{m}");
        }
        other => panic!("a tee to a pipe's read end gave {other:?}"),
    }
    assert!(env.sup.names().is_empty(), "nothing was added");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_choice_with_redirect_stderr_is_refused() {
    let env = Env::new();
    let mut p = quick("merged", "echo hi");
    p.redirect_stderr = true;
    p.io.stderr = OutputMode::Discard;
    match env.sup.add(p).await {
        Err(Error::Config(e)) => {
            let m = e.to_string();
            assert!(m.contains("redirect_stderr"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(env.sup.names().is_empty(), "nothing was added");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_pipe_breaks_under_says_what_went() {
    let env = Env::new();
    // Reads 100000 bytes, then closes its stdin.
    let mut p = quick(
        "sip",
        "head -c 100000 >/dev/null; exec 0<&-; echo closed; exec sleep 60",
    );
    p.io.stdin = StdinMode::Pipe;
    env.sup.add(p).await.expect("add");
    env.sup.start("sip", WAIT).await.expect("start");
    let mut written = 0;
    let r = env
        .sup
        .write_stdin_counted("sip", &vec![b'x'; 4 << 20], WAIT_FOREVER, &mut written)
        .await;
    match r {
        Err(Error::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(libc::EPIPE)),
        other => panic!("{other:?}"),
    }
    assert!(
        (100_000..4 << 20).contains(&written),
        "{written} bytes reported written"
    );
    env.sup.shutdown().await;
}
