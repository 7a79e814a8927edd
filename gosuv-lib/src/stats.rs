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

impl Sampler {
    /// Stats of the run `view` of program `name`, from `snap`. `since` is when the run
    /// started, used when there is no earlier sample of it.
    pub(crate) fn sample(
        &mut self,
        name: &str,
        view: &GroupView,
        since: Instant,
        snap: Option<&Snapshot>,
    ) -> ProcessStats {
        let members = view.members(snap);
        let hz = clock_ticks();
        let ticks: u64 = members.iter().map(|p| p.ticks).sum();
        let rss_pages: u64 = members.iter().map(|p| p.rss_pages).sum();
        let tick_usec = |t: u64| t.saturating_mul(1_000_000) / hz.max(1);
        // The cgroup counts every process that ever ran in it, gone ones too.
        let cgroup = view.cgroup.as_ref();
        let cpu_usec = cgroup
            .and_then(|c| c.cpu_usage_usec())
            .unwrap_or_else(|| tick_usec(ticks));
        let now = Instant::now();
        let (from, base) = match self.last.get(name) {
            Some(l) if l.leader == view.leader && l.cpu_usec <= cpu_usec => (l.at, l.cpu_usec),
            // A first sample of this run: its own processes' time since it started (a cgroup
            // also holds the time of earlier runs).
            _ => (since, cpu_usec.saturating_sub(tick_usec(ticks))),
        };
        self.last.insert(
            name.to_string(),
            Last {
                at: now,
                leader: view.leader,
                cpu_usec,
            },
        );
        let elapsed = now.duration_since(from).as_secs_f64();
        let cpu_percent = if elapsed > 0.0 {
            (cpu_usec - base) as f64 / 1e6 / elapsed * 100.0
        } else {
            0.0
        };
        ProcessStats {
            pids: members.iter().map(|p| p.pid).collect(),
            cpu_percent,
            rss_bytes: cgroup
                .and_then(|c| c.memory_current())
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
}
