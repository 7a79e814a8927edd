//! What one more program costs the supervisor's process in memory, measured as the growth
//! of the process's anonymous resident memory (`RssAnon` in /proc/self/status) when 2,000
//! stopped programs are added at once. A server with thousands of programs holds this much
//! for each of them for as long as it runs; a program's task future once alone held 4 KB,
//! and everything a program keeps adds up here. Its own process (one test in this file):
//! the resident memory of a process running other tests at the same time says nothing.

mod common;

use common::*;

/// The process's anonymous resident memory, in KiB.
fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/self/status")
}

fn stopped(name: String) -> gosuv::ProgramConfig {
    let mut p = quick(&name, "exec sleep 1000");
    p.start_auto = false;
    p
}

/// How many programs are added for the measure.
const PROGRAMS: u64 = 2_000;

/// The most one stopped program may add, in bytes. Measured in a debug build (this test's):
/// 10.1-10.5 KB when a program's task future held every step of a start and a stop (3.9 KB
/// alone) and its log sinks a spare copy of a file's settings; 7.4-7.6 KB with tokio's
/// channel for its commands (~1.3 KB each), tokio's watch for its status and a log index
/// holding every path and name several times; 5.2-5.3 KB since. The rest is its task, its
/// status, its log sinks, its config and the supervisor's records of it. A release build
/// needs less.
const MAX_BYTES_PER_PROGRAM: u64 = 6_144;

#[test]
fn an_added_program_costs_the_process_a_few_kib() {
    let rt = runtime();
    rt.block_on(async {
        let env = Env::new();
        // The runtime's, the supervisor's and the allocator's first allocations are not a
        // program's.
        let warm: Vec<_> = (0..100).map(|i| stopped(format!("warm{i}"))).collect();
        let failed = env.sup.add_all(warm).await.expect("add the first programs");
        assert!(failed.is_empty(), "{failed:?}");
        let before = rss_anon_kib();
        let programs: Vec<_> = (0..PROGRAMS).map(|i| stopped(format!("p{i}"))).collect();
        let failed = env.sup.add_all(programs).await.expect("add the programs");
        assert!(failed.is_empty(), "{failed:?}");
        let after = rss_anon_kib();
        let per_program = after.saturating_sub(before) * 1024 / PROGRAMS;
        eprintln!(
            "RssAnon {before} KiB -> {after} KiB for {PROGRAMS} programs: {per_program} bytes a program"
        );
        assert!(
            per_program <= MAX_BYTES_PER_PROGRAM,
            "a stopped program costs {per_program} bytes of resident memory (at most \
             {MAX_BYTES_PER_PROGRAM}): something kept for each program grew"
        );
        env.sup.shutdown().await;
    });
}
