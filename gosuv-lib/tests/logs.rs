//! Output capture: files per stream, redirect, disable, rotation, tail, followers, and a
//! failing disk that must neither block the child nor stop logging for good.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use gosuv::{logs::last_lines, Autorestart, LogEvent, ProgramState::*, Stream};

fn seq(n: usize) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_byte_reaches_the_file_in_order() {
    let env = Env::new();
    let mut p = quick("counter", "seq 1 300000; echo err-line >&2");
    p.autorestart = Autorestart::Never;
    env.sup.add(p).await.expect("add");
    env.sup.start("counter", WAIT).await.expect("start");
    env.sup
        .wait_for("counter", Exited, Duration::from_secs(20))
        .await
        .expect("exits");
    let expected = seq(300_000);
    poll(10, "the whole output in the file", || {
        std::fs::metadata(env.log("counter", "stdout"))
            .map(|m| m.len())
            .unwrap_or(0) as usize
            >= expected.len()
    });
    let got = std::fs::read_to_string(env.log("counter", "stdout")).expect("log");
    assert!(
        got == expected,
        "stdout log differs from the program's output"
    );
    assert_eq!(
        std::fs::read_to_string(env.log("counter", "stderr")).expect("stderr log"),
        "err-line\n"
    );
    let tail = env
        .sup
        .tail("counter", Stream::Stdout, 64 * 1024)
        .expect("tail");
    assert_eq!(tail.len(), 64 * 1024);
    assert!(expected.as_bytes().ends_with(&tail));
    assert_eq!(last_lines(&tail, 2), b"299999\n300000\n");
    let counters = env.sup.log_status("counter").expect("counters");
    assert_eq!(counters.stdout.bytes, expected.len() as u64);
    assert_eq!(counters.stdout.write_errors, 0);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_stderr_and_log_disable() {
    let env = Env::new();
    let mut merged = quick("merged", "echo out; echo err >&2; exec sleep 30");
    merged.redirect_stderr = true;
    let mut silent = quick("silent", "echo hush; exec sleep 30");
    silent.log_disable = true;
    env.sup.add(merged).await.expect("add");
    env.sup.add(silent).await.expect("add");
    env.sup.start_all(WAIT).await;
    let text = wait_file_contains(&env.log("merged", "stdout"), "err", 5);
    assert!(text.contains("out\n"), "{text}");
    assert!(!env.log("merged", "stderr").exists());
    poll(5, "tail of the silent program", || {
        env.sup.tail("silent", Stream::Stdout, 100).expect("tail") == b"hush\n"
    });
    assert!(
        !env.log("silent", "stdout").exists(),
        "log_disable wrote a file"
    );
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotates_at_log_max_bytes_keeping_log_backups() {
    let env = Env::new();
    // 40 writes of 1000 bytes, each its own chunk: rotation at 4000 bytes, 2 backups.
    let mut p = quick(
        "rot",
        "for i in $(seq 1 40); do printf \"%0999d\\n\" $i; sleep 0.005; done",
    );
    p.autorestart = Autorestart::Never;
    p.log_max_bytes = 4000;
    p.log_backups = 2;
    env.sup.add(p).await.expect("add");
    env.sup.start("rot", WAIT).await.expect("start");
    env.sup
        .wait_for("rot", Exited, Duration::from_secs(20))
        .await
        .expect("exits");
    let last = format!("{:0999}\n", 40);
    wait_file_contains(&env.log("rot", "stdout"), &last, 5);
    let base = env.log("rot", "stdout");
    let b1 = base.with_extension("log.1");
    let b2 = base.with_extension("log.2");
    assert!(b1.exists() && b2.exists(), "backups missing");
    assert!(
        !base.with_extension("log.3").exists(),
        "more backups than log_backups"
    );
    for f in [&base, &b1, &b2] {
        let len = std::fs::metadata(f).expect("meta").len();
        assert!(len > 0 && len <= 4000, "{} is {len} bytes", f.display());
    }
    // The newest lines are in the current file, older ones in .1, then .2, with no gap.
    let all = [&b2, &b1, &base]
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .collect::<String>();
    let numbers: Vec<u32> = all.lines().map(|l| l.parse().expect("number")).collect();
    assert_eq!(*numbers.last().expect("some"), 40);
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "gap or reorder: {numbers:?}"
    );
    env.sup.shutdown().await;
}

async fn read_until(needle: &str, text: &mut String, f: &mut gosuv::LogFollower) {
    while !text.contains(needle) {
        match tokio::time::timeout(Duration::from_secs(5), f.recv()).await {
            Ok(Some(LogEvent::Data(d))) => text.push_str(&String::from_utf8_lossy(&d)),
            other => panic!("waiting for {needle:?}, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_see_live_output_across_restarts() {
    let env = Env::new();
    let gate = env.path().join("gate");
    let cmd = format!(
        "echo start-$$; while [ ! -e {} ]; do sleep 0.01; done; exit 1",
        gate.display()
    );
    env.sup.add(quick("live", &cmd)).await.expect("add");
    let mut follower = env.sup.follow("live", Stream::Stdout).expect("follow");
    let first = env
        .sup
        .start("live", WAIT)
        .await
        .expect("start")
        .pid
        .expect("pid");
    let mut text = String::new();
    read_until(&format!("start-{first}"), &mut text, &mut follower).await;
    let mut events = env.sup.subscribe();
    std::fs::write(&gate, "").expect("gate");
    let seen = events_until(&mut events, "live", Running, 5).await;
    std::fs::remove_file(&gate).expect("close gate");
    let second = seen.last().and_then(|e| e.pid).expect("new pid");
    read_until(&format!("start-{second}"), &mut text, &mut follower).await;
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_never_reads_loses_nothing_in_the_file() {
    let env = Env::new();
    let mut p = quick("firehose", "seq 1 200000");
    p.autorestart = Autorestart::Never;
    env.sup.add(p).await.expect("add");
    let mut idle = env.sup.follow("firehose", Stream::Stdout).expect("follow");
    env.sup.start("firehose", WAIT).await.expect("start");
    env.sup
        .wait_for("firehose", Exited, Duration::from_secs(20))
        .await
        .expect("exits");
    let expected = seq(200_000);
    poll(10, "whole file", || {
        std::fs::read_to_string(env.log("firehose", "stdout"))
            .unwrap_or_default()
            .len()
            >= expected.len()
    });
    assert!(std::fs::read_to_string(env.log("firehose", "stdout")).expect("log") == expected);
    // The idle follower now reads: what it gets plus what it is told it missed is exactly
    // the output, and what it gets is a suffix of it.
    let mut got = Vec::new();
    let mut missed = 0u64;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), idle.recv()).await {
        match ev {
            LogEvent::Data(d) => got.extend_from_slice(&d),
            LogEvent::Missed(n) => {
                assert!(got.is_empty(), "a gap after data");
                missed += n;
            }
        }
    }
    assert_eq!(missed + got.len() as u64, expected.len() as u64);
    assert!(expected.as_bytes().ends_with(&got));
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_log_file_is_counted_and_logging_resumes() {
    let env = Env::new();
    let logs = env.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let link = logs.join("full.stdout.log");
    if !full_device(&link) {
        return;
    }
    let gate = env.path().join("gate");
    let cmd = format!(
        "i=0; while [ ! -e {g} ]; do i=$((i+1)); echo line-$i; sleep 0.01; done; echo after-fault; exec sleep 30",
        g = gate.display()
    );
    env.sup.add(quick("full", &cmd)).await.expect("add");
    env.sup.start("full", WAIT).await.expect("start");
    poll(5, "write errors counted", || {
        env.sup.status("full").expect("s").log_errors >= 3
    });
    // The child is not blocked: it keeps producing output (seen in the tail).
    let before = env.sup.log_status("full").expect("c").stdout.bytes;
    poll(5, "more output while the disk fails", || {
        env.sup.log_status("full").expect("c").stdout.bytes > before + 50
    });
    let counters = env.sup.log_status("full").expect("c");
    let err = counters.stdout.last_write_error.expect("error kept");
    assert!(
        err.contains("full.stdout.log") && err.contains("No space left"),
        "{err}"
    );
    // The fault clears: the file is a regular file again and logging resumes.
    std::fs::remove_file(&link).expect("unlink");
    std::fs::write(&gate, "").expect("gate");
    let text = wait_file_contains(&link, "after-fault", 5);
    assert!(text.ends_with("after-fault\n"), "{text}");
    // The gap is said, once, where it is: the first line after the fault.
    let first = text.lines().next().unwrap_or_default();
    let lost: u64 = first
        .strip_prefix("[gosuv: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no marker of the gap: {first}"));
    assert!(lost > 0, "{first}");
    assert!(
        first.ends_with(" bytes lost: No space left on device (os error 28)]"),
        "{first}"
    );
    assert_eq!(text.matches("[gosuv: ").count(), 1, "{text}");
    assert_eq!(env.sup.status("full").expect("s").state, Running);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_end_when_the_program_is_removed() {
    let env = Env::new();
    env.sup
        .add(quick("gone", "exec sleep 30"))
        .await
        .expect("add");
    let mut f = env.sup.follow("gone", Stream::Stdout).expect("follow");
    env.sup.start("gone", WAIT).await.expect("start");
    env.sup.remove("gone").await.expect("remove");
    let end = tokio::time::timeout(Duration::from_secs(5), f.recv())
        .await
        .expect("ends");
    assert_eq!(end, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_followers_and_a_flat_out_writer_lose_nothing_in_the_file() {
    let env = Env::new();
    let mut p = quick("flood", "seq 1 400000");
    p.autorestart = Autorestart::Never;
    env.sup.add(p).await.expect("add");
    // Ten followers that read as fast as they can, ten that never read.
    let mut readers = Vec::new();
    let mut idle = Vec::new();
    for i in 0..20 {
        let mut f = env.sup.follow("flood", Stream::Stdout).expect("follow");
        if i % 2 == 0 {
            readers.push(tokio::spawn(async move {
                let (mut data, mut missed) = (0u64, 0u64);
                while let Ok(Some(ev)) =
                    tokio::time::timeout(Duration::from_secs(2), f.recv()).await
                {
                    match ev {
                        LogEvent::Data(d) => data += d.len() as u64,
                        LogEvent::Missed(n) => missed += n,
                    }
                }
                (data, missed)
            }));
        } else {
            idle.push(f);
        }
    }
    env.sup.start("flood", WAIT).await.expect("start");
    env.sup
        .wait_for("flood", Exited, Duration::from_secs(30))
        .await
        .expect("exits");
    let expected = seq(400_000);
    poll(10, "whole file", || {
        std::fs::metadata(env.log("flood", "stdout"))
            .map(|m| m.len())
            .unwrap_or(0) as usize
            >= expected.len()
    });
    assert!(std::fs::read_to_string(env.log("flood", "stdout")).expect("log") == expected);
    for r in readers {
        let (data, missed) = r.await.expect("reader");
        // Every byte is either delivered or reported missed, never silently dropped.
        assert_eq!(data + missed, expected.len() as u64);
    }
    drop(idle);
    env.sup.shutdown().await;
}

/// The size of the pipe a process has on `fd`, opened again through /proc.
fn pipe_size(pid: u32, fd: u32) -> i32 {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/{pid}/fd/{fd}"))
        .expect("open the pipe through /proc");
    // SAFETY: F_GETPIPE_SZ on a descriptor we own.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETPIPE_SZ) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatty_stream_gets_a_big_pipe_and_a_quiet_one_keeps_the_default() {
    let env = Env::new();
    // 32 writes of 60,000 bytes back to back: the pipe is found at least half full.
    env.sup
        .add(quick(
            "chatty",
            "dd if=/dev/zero bs=60000 count=32 2>/dev/null; exec sleep 30",
        ))
        .await
        .expect("add");
    env.sup
        .add(quick("quiet", "echo hello; exec sleep 30"))
        .await
        .expect("add");
    let chatty = env.sup.start("chatty", WAIT).await.expect("start").pid;
    let quiet = env.sup.start("quiet", WAIT).await.expect("start").pid;
    poll(10, "the output captured", || {
        env.sup.log_status("chatty").expect("c").stdout.bytes == 32 * 60_000
            && env.sup.log_status("quiet").expect("c").stdout.bytes == 6
    });
    assert_eq!(pipe_size(chatty.expect("pid"), 1), 1 << 20);
    assert_eq!(pipe_size(quiet.expect("pid"), 1), 64 * 1024);
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_get_big_reads_in_bounded_pieces_with_nothing_lost() {
    let env = Env::new();
    let mut p = quick("bulk", "dd if=/dev/zero bs=1M count=16 2>/dev/null");
    p.autorestart = Autorestart::Never;
    env.sup.add(p).await.expect("add");
    let mut f = env.sup.follow("bulk", Stream::Stdout).expect("follow");
    env.sup.start("bulk", WAIT).await.expect("start");
    let (mut data, mut missed, mut biggest) = (0usize, 0u64, 0usize);
    while data as u64 + missed < 16 << 20 {
        match tokio::time::timeout(Duration::from_secs(10), f.recv()).await {
            Ok(Some(LogEvent::Data(d))) => {
                assert!(d.iter().all(|&b| b == 0));
                biggest = biggest.max(d.len());
                data += d.len();
            }
            Ok(Some(LogEvent::Missed(n))) => missed += n,
            other => panic!("after {data} bytes and {missed} missed: {other:?}"),
        }
    }
    assert_eq!(data as u64 + missed, 16 << 20);
    // 64 KiB pieces: 128 of them, the follower ring, pin at most 8 MiB.
    assert!(biggest <= 64 * 1024, "a chunk of {biggest} bytes");
    env.sup.shutdown().await;
}

/// A log "disk" that takes 64 KiB every 4 ms: a named pipe in place of the log file.
struct SlowFile {
    got: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    reader: std::thread::JoinHandle<std::fs::File>,
}

impl SlowFile {
    fn new(path: &std::path::Path) -> SlowFile {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let (got, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (g, st, path) = (got.clone(), stop.clone(), path.to_owned());
        let reader = std::thread::spawn(move || {
            let mut f = std::fs::File::open(&path).expect("open the fifo");
            let mut buf = vec![0u8; 64 * 1024];
            while !st.load(Ordering::SeqCst) {
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => g.fetch_add(n as u64, Ordering::SeqCst),
                };
                std::thread::sleep(Duration::from_millis(4));
            }
            f
        });
        SlowFile { got, stop, reader }
    }

    fn got(&self) -> u64 {
        self.got.load(Ordering::SeqCst)
    }

    /// Stops reading; what was written is what was read plus what waits in the pipe.
    fn written(self) -> u64 {
        use std::os::fd::AsRawFd;
        self.stop.store(true, Ordering::SeqCst);
        let f = self.reader.join().expect("reader");
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        assert_eq!(
            unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut queued) },
            0
        );
        self.got.load(Ordering::SeqCst) + queued as u64
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_log_file_holds_the_program_back_and_shutdown_waits_for_it() {
    let env = Env::new();
    std::fs::create_dir_all(env.path().join("logs")).expect("logs");
    let disk = SlowFile::new(&env.log("slow", "stdout"));
    let mut p = quick(
        "slow",
        "dd if=/dev/zero bs=1M count=16 2>/dev/null; exec sleep 30",
    );
    p.log_max_bytes = 0;
    env.sup.add(p).await.expect("add");
    env.sup.start("slow", WAIT).await.expect("start");
    let total = 16u64 << 20;
    let mut ahead_seen = 0;
    poll_async(30, "16 MiB read", || {
        let read = env.sup.log_status("slow").expect("c").stdout.bytes;
        // Reads run a few MiB ahead of the file at most: then the pipe is left unread and
        // the program waits. (The tail and the counters never wait for the file.)
        let ahead = read.saturating_sub(disk.got());
        ahead_seen = ahead_seen.max(ahead);
        assert!(ahead <= 4 << 20, "{ahead} bytes read but not written");
        read == total
    })
    .await;
    assert_eq!(
        env.sup.tail("slow", Stream::Stdout, 3).expect("tail"),
        [0; 3]
    );
    assert!(ahead_seen >= 1 << 20, "reads never ran ahead of the file");
    env.sup.shutdown().await;
    assert_eq!(
        disk.written(),
        total,
        "shutdown returned before the file had it all"
    );
}

/// Whoever sees `exited` or `stopped` finds every byte of the run's output in the log file:
/// the state changes only once the pipes are read to the end and the log writers are done.
/// (dd writes 1 MiB at a time, so the reads are big enough to go through the writer threads.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_is_complete_when_the_state_says_exited_or_stopped() {
    const MIB: u64 = 1024 * 1024;
    let env = Env::new();
    let mut burst = quick("burst", "dd if=/dev/zero bs=1M count=24 status=none");
    burst.autorestart = Autorestart::Never;
    burst.log_max_bytes = 0;
    env.sup.add(burst).await.expect("add");
    let mut last_words = quick(
        "last-words",
        "trap 'dd if=/dev/zero bs=1M count=24 status=none; exit 0' TERM; echo trapped >&2; while :; do sleep 0.05; done",
    );
    last_words.autorestart = Autorestart::Never;
    last_words.log_max_bytes = 0;
    env.sup.add(last_words).await.expect("add");
    let size = |name: &str| {
        std::fs::metadata(env.log(name, "stdout"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    for round in 1..=4 {
        env.sup.start("burst", WAIT).await.expect("start");
        env.sup
            .wait_for("burst", Exited, Duration::from_secs(20))
            .await
            .expect("exits");
        assert_eq!(size("burst"), round * 24 * MIB, "at exited, round {round}");

        env.sup.start("last-words", WAIT).await.expect("start");
        // Stopped only once its trap is set: it writes its last words when told to stop.
        poll(10, "the trap to be set", || {
            std::fs::read_to_string(env.log("last-words", "stderr"))
                .unwrap_or_default()
                .matches("trapped")
                .count()
                == round as usize
        });
        let st = env.sup.stop("last-words", WAIT).await.expect("stop");
        assert_eq!(st.state, Stopped);
        assert_eq!(
            size("last-words"),
            round * 24 * MIB,
            "at stopped, round {round}"
        );
    }
    env.sup.shutdown().await;
}

/// Rotation by another tool. The program copies a FIFO the test writes into, so the test
/// knows each byte; the log file is compared with its path at most once a second while it
/// is written, so each step waits that second out before writing again.
/// - logrotate's `create` (a move, then an empty file at the path): what came before stays in
///   the moved file, what comes after goes to the new file, nothing lost or doubled, and the
///   old file's size does not count (no rotation of the new file as `.1`);
/// - `rm`: a new file at the path;
/// - `copytruncate` (truncated in place): the size counted towards `log_max_bytes` starts
///   again, so no early rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rotated_by_another_tool_is_followed() {
    let env = Env::new();
    let fifo = env.path().join("input");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let mut p = quick("copier", &format!("exec cat '{}'", fifo.display()));
    p.log_max_bytes = 64 * 1024;
    p.log_backups = 2;
    env.sup.add(p).await.expect("add");
    env.sup.start("copier", WAIT).await.expect("start");
    let mut input = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open the fifo");
    let log = env.log("copier", "stdout");
    let backup = |n: u32| std::path::PathBuf::from(format!("{}.{n}", log.display()));
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let a_second = Duration::from_millis(1200);

    // 60 KB: close to log_max_bytes (64 KiB).
    let a = "a\n".repeat(30_000);
    input.write_all(a.as_bytes()).expect("write");
    poll(10, "the first part in the file", || read(&log) == a);

    // logrotate's `create`: moved away, and a new empty file in its place.
    let moved = env.path().join("logs").join("copier.moved");
    std::fs::rename(&log, &moved).expect("move");
    std::fs::File::create(&log).expect("create");
    tokio::time::sleep(a_second).await;
    let b = "b\n".repeat(5000);
    input.write_all(b.as_bytes()).expect("write");
    poll(10, "the new file written", || read(&log) == b);
    assert_eq!(read(&moved), a, "the moved file lost or gained bytes");
    assert!(
        !backup(1).exists(),
        "rotated: the old file's size was counted"
    );

    // Deleted.
    std::fs::remove_file(&log).expect("rm");
    tokio::time::sleep(a_second).await;
    let c = "c\n".repeat(20_000);
    input.write_all(c.as_bytes()).expect("write");
    poll(10, "a new file after rm", || read(&log) == c);

    // `copytruncate`: 40 KB counted, the file emptied in place, 30 KB more: under 64 KiB.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open the log")
        .set_len(0)
        .expect("truncate");
    tokio::time::sleep(a_second).await;
    let d = "d\n".repeat(15_000);
    input.write_all(d.as_bytes()).expect("write");
    poll(10, "the writes after the truncation", || {
        read(&log) == d || backup(1).exists()
    });
    assert!(
        !backup(1).exists(),
        "rotated at {} bytes written into a truncated file",
        d.len()
    );
    // And rotation at log_max_bytes still works.
    let e = "e\n".repeat(20_000);
    input.write_all(e.as_bytes()).expect("write");
    poll(10, "rotation past log_max_bytes", || read(&log) == e);
    assert_eq!(read(&backup(1)), d);
    drop(input);
    env.sup.shutdown().await;
}

/// A log disk that hangs outright (here a FIFO nobody reads in place of the log file, so
/// opening it blocks for ever) holds back only the output that goes to it. With more such
/// programs than the runtime has worker threads, the supervisor still stops and starts
/// programs and another program's output still reaches its file. Then the disk "comes back"
/// and the held output arrives, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_log_disk_holds_back_only_its_own_output() {
    // A frozen runtime would freeze this test too: a plain thread ends the process instead.
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watchdog.recv_timeout(Duration::from_secs(60)).is_err() {
            eprintln!("the supervisor froze behind a hung log file");
            std::process::abort();
        }
    });
    let env = Env::new();
    std::fs::create_dir_all(env.path().join("logs")).expect("logs dir");
    let hung: Vec<String> = (0..4).map(|i| format!("hung{i}")).collect();
    for name in &hung {
        nix::unistd::mkfifo(
            &env.log(name, "stdout"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
        let p = quick(
            name,
            "i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done",
        );
        env.sup.add(p).await.expect("add");
        env.sup.start(name, WAIT).await.expect("start");
    }
    let ticker = quick(
        "ticker",
        "i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done",
    );
    env.sup.add(ticker).await.expect("add");
    env.sup.start("ticker", WAIT).await.expect("start");
    let lines = |name: &str| {
        std::fs::read_to_string(env.log(name, "stdout"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    poll(20, "the ticker's output in its file", || {
        lines("ticker") >= 100
    });
    env.sup.stop("ticker", WAIT).await.expect("stop");
    let before = lines("ticker");
    env.sup.start("ticker", WAIT).await.expect("start again");
    poll(20, "the restarted ticker's output", || {
        lines("ticker") >= before + 50
    });
    for name in &hung {
        assert_eq!(env.sup.status(name).expect("status").state, Running);
    }

    // The disk comes back: what was held arrives, counting up from 1 with no gap, up to the
    // last line each program wrote before it was stopped.
    let received: Vec<Arc<std::sync::Mutex<String>>> = hung
        .iter()
        .map(|name| {
            let got = Arc::new(std::sync::Mutex::new(String::new()));
            let (path, g) = (env.log(name, "stdout"), got.clone());
            // Reads until the file is closed, at shutdown.
            std::thread::spawn(move || {
                let mut f = std::fs::File::open(path).expect("open the fifo");
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = f.read(&mut buf) {
                    g.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            got
        })
        .collect();
    for (name, got) in hung.iter().zip(&received) {
        env.sup.stop(name, WAIT).await.expect("stop");
        let tail = env.sup.tail(name, Stream::Stdout, 100).expect("tail");
        let last: usize = String::from_utf8_lossy(&tail)
            .lines()
            .last()
            .and_then(|l| l.parse().ok())
            .expect("a last line");
        assert!(last >= 100, "{name} wrote only {last} lines");
        poll(20, "the held output", || {
            got.lock().unwrap().lines().count() >= last
        });
        let text = got.lock().unwrap().clone();
        let want: String = (1..=last).map(|i| format!("{i}\n")).collect();
        assert!(
            text == want,
            "{name}: the held output differs from what it wrote"
        );
    }
    env.sup.shutdown().await;
    let _ = done.send(());
}

/// New log settings take effect at the next write, whether it is made on the runtime or by a
/// log writer: output after `log_disable` is set no longer reaches the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_log_settings_apply_to_the_next_write() {
    let env = Env::new();
    let mut p = quick("greeter", "echo hello");
    p.autorestart = Autorestart::Never;
    env.sup.add(p.clone()).await.expect("add");
    for round in 1..=3 {
        env.sup.start("greeter", WAIT).await.expect("start");
        env.sup
            .wait_for("greeter", Exited, Duration::from_secs(10))
            .await
            .expect("exits");
        assert_eq!(
            env.sup
                .log_status("greeter")
                .expect("counters")
                .stdout
                .bytes,
            6 * round
        );
        if round == 1 {
            p.log_disable = true;
            env.sup.update(p.clone()).await.expect("update");
        }
    }
    assert_eq!(
        std::fs::read_to_string(env.log("greeter", "stdout")).expect("log"),
        "hello\n",
        "written after log_disable"
    );
    env.sup.shutdown().await;
}

/// The tail and a follower taken together: what was said and what is said next join
/// without a gap or a repeat, even while the program writes without pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_and_follow_join_without_gap_or_repeat() {
    let env = Env::new();
    let p = quick(
        "counter",
        // Paced a little, so the follower (a bounded queue) keeps up on a busy machine.
        "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo $i; [ $((i % 50)) = 0 ] && sleep 0.01; done; exec sleep 300",
    );
    env.sup.add(p).await.expect("add");
    env.sup.start("counter", WAIT).await.expect("start");
    // Taken while it counts.
    poll_async(10, "some output", || {
        env.sup
            .log_status("counter")
            .is_ok_and(|s| s.stdout.bytes > 1000)
    })
    .await;
    let (tail, mut follower) = env
        .sup
        .tail_and_follow("counter", Stream::Stdout, 4096)
        .expect("tail and follow");
    let mut text = String::from_utf8_lossy(&tail).into_owned();
    while !text.ends_with("\n3000\n") {
        match tokio::time::timeout(Duration::from_secs(20), follower.recv()).await {
            Ok(Some(LogEvent::Data(d))) => text.push_str(&String::from_utf8_lossy(&d)),
            Ok(Some(LogEvent::Missed(n))) => panic!("the follower missed {n} bytes"),
            other => panic!("no more output: {other:?}"),
        }
    }
    // The first line of the tail may be cut; from the second on, every number follows
    // the one before.
    let nums: Vec<u32> = text
        .lines()
        .skip(1)
        .map(|l| l.parse().expect("a number"))
        .collect();
    assert!(nums.len() > 10, "{nums:?}");
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap or a repeat at {}", w[0]);
    }
    env.sup.shutdown().await;
}

/// A program's stdout file that hangs (a FIFO nobody reads, as above) does not hold back its
/// stderr, which goes to a file of its own: each pipe is read by a task of its own (when
/// one task read both, the stdout drain's write stuck on the runtime, an inline write,
/// stopped the stderr drain too, and its file stayed empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_stdout_file_does_not_hold_back_stderr() {
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watchdog.recv_timeout(Duration::from_secs(90)).is_err() {
            eprintln!("the supervisor froze behind a hung log file");
            std::process::abort();
        }
    });
    let env = Env::new();
    std::fs::create_dir_all(env.path().join("logs")).expect("logs dir");
    let fifo = env.log("split", "stdout");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let p = quick(
        "split",
        "i=0; while :; do i=$((i+1)); echo $i; echo $i >&2; sleep 0.01; done",
    );
    env.sup.add(p).await.expect("add");
    env.sup.start("split", WAIT).await.expect("start");
    let stderr_lines = || {
        std::fs::read_to_string(env.log("split", "stderr"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while stderr_lines() < 100 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = stderr_lines();
    // The disk comes back, so that the run can end.
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::open(fifo).expect("open the fifo");
        let mut buf = [0u8; 4096];
        while let Ok(1..) = f.read(&mut buf) {}
    });
    env.sup.shutdown().await;
    let _ = reader.join();
    let _ = done.send(());
    assert!(
        seen >= 100,
        "only {seen} stderr lines reached their file in 15 s while the stdout file hung"
    );
}
