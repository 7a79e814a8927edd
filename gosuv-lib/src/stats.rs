//! CPU and memory of a program's processes.
//!
//! A program's processes are what its run owns (see `process_group`): its cgroup's, or its
//! process group, session and their descendants. They are read from one process-wide pass
//! over `/proc` (`procfs`), and from the cgroup's own counters where it has them. CPU % is
//! the time used since the previous sample of the same program, so a first sample gives the
//! average since the run started.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::process_group::GroupView;
use crate::procfs::{clock_ticks, page_size, Snapshot};

/// Resource use of one program's processes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProcessStats {
    /// Every process of the program, leader first.
    pub pids: Vec<u32>,
    /// CPU use in percent of one core since the previous sample (may pass 100 on several
    /// cores).
    pub cpu_percent: f64,
    /// Resident memory of the program: its cgroup's memory where the kernel counts it, else
    /// the sum of its processes' RSS, in bytes.
    pub rss_bytes: u64,
    /// User plus system CPU time of the live processes, in seconds.
    pub cpu_seconds: f64,
}

/// A program's previous sample: when, of which run, and its CPU counter (microseconds).
#[derive(Clone, Copy, Debug)]
struct Last {
    at: Instant,
    leader: u32,
    cpu_usec: u64,
}

/// Remembers each program's previous sample, to turn CPU time into a percentage.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    last: HashMap<String, Last>,
}

/// What one sample reads of a run (its processes and its cgroup's counters), made apart
/// from [`Sampler::apply`] so that the reads of many programs can be spread over threads.
#[derive(Debug)]
pub(crate) struct Reading {
    members: Vec<crate::procfs::ProcStat>,
    cgroup_cpu_usec: Option<u64>,
    cgroup_memory: Option<u64>,
    /// When its CPU counters were read (a pass over many programs takes a while: the
    /// time each was read, not the end of the pass, is what its CPU % is counted to).
    at: Instant,
}

impl Reading {
    /// Reads the run `view`: its members (from `snap` when it has no cgroup) and its
    /// cgroup's CPU and memory counters.
    pub(crate) fn of(view: &GroupView, snap: Option<&Snapshot>) -> Reading {
        let cgroup = view.cgroup.as_ref();
        let members = view.members(snap);
        let cgroup_cpu_usec = cgroup.and_then(|c| c.cpu_usage_usec());
        // A /proc snapshot was taken when it was taken; a cgroup's counter, just now.
        let at = match (cgroup_cpu_usec, snap) {
            (None, Some(snap)) => snap.taken,
            _ => Instant::now(),
        };
        Reading {
            members,
            cgroup_cpu_usec,
            cgroup_memory: cgroup.and_then(|c| c.memory_current()),
            at,
        }
    }
}

/// Below this many runs one thread reads them all: a thread costs more than it saves.
const READS_A_THREAD: usize = 256;

/// [`Reading::of`] each run (name, view, start), in order; many runs are read by up to
/// one thread a core (at most 4), each taking a contiguous part.
pub(crate) fn read_all<N: Sync, V: std::ops::Deref<Target = GroupView> + Sync, S: Sync>(
    runs: &[(N, V, S)],
    snap: Option<&Snapshot>,
) -> Vec<Reading> {
    let read = |part: &[(N, V, S)]| -> Vec<Reading> {
        part.iter().map(|(_, v, _)| Reading::of(v, snap)).collect()
    };
    let threads = (runs.len() / READS_A_THREAD).min(4);
    let threads = if threads > 1 {
        // Asked once: std reads the cgroup's CPU limit and the mounts for it.
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let cores = *CORES.get_or_init(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        threads.min(cores)
    } else {
        1
    };
    if threads == 1 {
        return read(runs);
    }
    let part = runs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut parts = runs.chunks(part);
        let first = parts.next().unwrap_or(&[]);
        // A part whose thread cannot be made is read here, after the first.
        let others: Vec<Result<_, _>> = parts
            .map(|p| {
                std::thread::Builder::new()
                    .name("gosuv-stats".into())
                    .spawn_scoped(scope, move || read(p))
                    .map_err(|_| p)
            })
            .collect();
        let mut out = read(first);
        for other in others {
            match other {
                Ok(handle) => match handle.join() {
                    Ok(r) => out.extend(r),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                Err(p) => out.extend(read(p)),
            }
        }
        out
    })
}

impl Sampler {
    /// Stats of the run `view` of program `name`, from `snap`. `since` is when the run
    /// started, used when there is no earlier sample of it.
    #[cfg(test)]
    pub(crate) fn sample(
        &mut self,
        name: &str,
        view: &GroupView,
        since: Instant,
        snap: Option<&Snapshot>,
    ) -> ProcessStats {
        self.apply(name, view.leader, since, Reading::of(view, snap))
    }

    /// Stats of the run led by `leader` of program `name`, from what was read of it.
    /// `since` is when the run started, used when there is no earlier sample of it.
    pub(crate) fn apply(
        &mut self,
        name: &str,
        leader: u32,
        since: Instant,
        read: Reading,
    ) -> ProcessStats {
        let members = read.members;
        let hz = clock_ticks();
        let ticks: u64 = members.iter().map(|p| p.ticks).sum();
        let rss_pages: u64 = members.iter().map(|p| p.rss_pages).sum();
        let tick_usec = |t: u64| t.saturating_mul(1_000_000) / hz.max(1);
        // The cgroup counts every process that ever ran in it, gone ones too.
        let cpu_usec = read.cgroup_cpu_usec.unwrap_or_else(|| tick_usec(ticks));
        let now = read.at;
        let (from, base) = match self.last.get(name) {
            Some(l) if l.leader == leader && l.cpu_usec <= cpu_usec => (l.at, l.cpu_usec),
            // A first sample of this run: its own processes' time since it started (a cgroup
            // also holds the time of earlier runs).
            _ => (since, cpu_usec.saturating_sub(tick_usec(ticks))),
        };
        match self.last.get_mut(name) {
            Some(l) => {
                *l = Last {
                    at: now,
                    leader,
                    cpu_usec,
                }
            }
            None => {
                self.last.insert(
                    name.to_string(),
                    Last {
                        at: now,
                        leader,
                        cpu_usec,
                    },
                );
            }
        }
        let elapsed = now.duration_since(from).as_secs_f64();
        let cpu_percent = if elapsed > 0.0 {
            (cpu_usec - base) as f64 / 1e6 / elapsed * 100.0
        } else {
            0.0
        };
        ProcessStats {
            pids: members.iter().map(|p| p.pid).collect(),
            cpu_percent,
            rss_bytes: read
                .cgroup_memory
                .unwrap_or_else(|| rss_pages.saturating_mul(page_size())),
            cpu_seconds: ticks as f64 / hz as f64,
        }
    }

    pub(crate) fn forget(&mut self, name: &str) {
        self.last.remove(name);
    }
}

/// The resident memory of this process, in bytes (from `/proc/self/statm`).
pub fn self_rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::ProcStat;

    #[test]
    fn cpu_percent_is_the_time_used_between_two_samples() {
        let hz = clock_ticks();
        let snap = |ticks: u64| {
            Snapshot::new(
                vec![ProcStat {
                    pid: 10,
                    state: 'S',
                    ppid: 1,
                    pgrp: 10,
                    session: 10,
                    ticks,
                    start_time: 1,
                    rss_pages: 3,
                }],
                Instant::now(),
            )
        };
        let view = GroupView {
            leader: 10,
            cgroup: None,
        };
        let mut s = Sampler::default();
        let since = Instant::now() - std::time::Duration::from_secs(10);
        let first = s.sample("p", &view, since, Some(&snap(hz * 5)));
        assert_eq!(first.pids, vec![10]);
        assert_eq!(first.rss_bytes, 3 * page_size());
        assert!(
            (first.cpu_percent - 50.0).abs() < 2.0,
            "{}",
            first.cpu_percent
        );
        assert!((first.cpu_seconds - 5.0).abs() < 1e-9);
        assert!(self_rss_bytes().unwrap_or(0) > 0);
    }

    #[test]
    fn many_runs_read_on_several_threads_come_back_in_their_order() {
        // Enough runs for every thread read_all may use; each leader its own session.
        let n = READS_A_THREAD * 4 + 7;
        let procs = (0..n as u32)
            .map(|i| ProcStat {
                pid: 100 + i,
                state: 'S',
                ppid: 1,
                pgrp: 100 + i,
                session: 100 + i,
                ticks: u64::from(i),
                start_time: 1,
                rss_pages: u64::from(i),
            })
            .collect();
        let snap = Snapshot::new(procs, Instant::now());
        let runs: Vec<(String, std::sync::Arc<GroupView>, ())> = (0..n as u32)
            .map(|i| {
                let view = GroupView {
                    leader: 100 + i,
                    cgroup: None,
                };
                (format!("p{i}"), std::sync::Arc::new(view), ())
            })
            .collect();
        let readings = read_all(&runs, Some(&snap));
        assert_eq!(readings.len(), n);
        for ((_, view, _), read) in runs.iter().zip(&readings) {
            let pids: Vec<u32> = read.members.iter().map(|p| p.pid).collect();
            assert_eq!(pids, vec![view.leader]);
            assert_eq!(read.members[0].rss_pages, u64::from(view.leader - 100));
        }
    }
}
