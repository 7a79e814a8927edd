//! CPU and memory of a program's whole process tree, read from `/proc`.
//!
//! A program's tree is its leader's descendants plus every process still in its process
//! group (a daemonised grandchild reparented to gosuv is found by its group). CPU % is the
//! time used since the previous sample of the same program, so a first sample gives the
//! average since the leader started.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

/// Resource use of one program's process tree.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProcessStats {
    /// Every process of the tree, leader first.
    pub pids: Vec<u32>,
    /// CPU use in percent of one core since the previous sample (may pass 100 on several
    /// cores).
    pub cpu_percent: f64,
    /// Resident memory of the tree, in bytes.
    pub rss_bytes: u64,
    /// User plus system CPU time of the live processes, in seconds.
    pub cpu_seconds: f64,
}

/// One line of `/proc/<pid>/stat`, the fields we use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub pgrp: u32,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// Resident pages.
    pub rss_pages: u64,
    /// Ended, waiting to be reaped.
    pub zombie: bool,
}

fn parse_stat(text: &str) -> Option<ProcInfo> {
    // The command name is in parentheses and may contain anything: split at the last ')'.
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_whitespace().next()?.parse().ok()?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is the state (field 3); field n of proc(5) is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|s| s.parse::<u64>().ok());
    Some(ProcInfo {
        pid,
        ppid: num(4)? as u32,
        pgrp: num(5)? as u32,
        ticks: num(14)? + num(15)?,
        rss_pages: num(24)?,
        zombie: f.first() == Some(&"Z"),
    })
}

/// Reads every process of the machine (one pass over `/proc`).
pub(crate) fn scan() -> Vec<ProcInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(s) = name.to_str() else { continue };
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{s}/stat")) {
            if let Some(info) = parse_stat(&text) {
                out.push(info);
            }
        }
    }
    out
}

/// One pass over `/proc`, indexed by parent and by process group, so that finding a
/// program's tree costs the size of that tree, not of the machine.
pub(crate) struct ProcIndex<'a> {
    by_pid: HashMap<u32, &'a ProcInfo>,
    children: HashMap<u32, Vec<&'a ProcInfo>>,
    groups: HashMap<u32, Vec<&'a ProcInfo>>,
}

impl<'a> ProcIndex<'a> {
    pub(crate) fn new(procs: &'a [ProcInfo]) -> Self {
        let mut idx = ProcIndex {
            by_pid: HashMap::with_capacity(procs.len()),
            children: HashMap::new(),
            groups: HashMap::new(),
        };
        for p in procs {
            idx.by_pid.insert(p.pid, p);
            idx.children.entry(p.ppid).or_default().push(p);
            idx.groups.entry(p.pgrp).or_default().push(p);
        }
        idx
    }

    /// The processes of the tree of `leader` (whose group id is the leader's pid): its
    /// descendants, and whatever is still in its group.
    pub(crate) fn tree(&self, leader: u32) -> Vec<&'a ProcInfo> {
        let mut out: Vec<&ProcInfo> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<&ProcInfo> = self.by_pid.get(&leader).copied().into_iter().collect();
        if let Some(group) = self.groups.get(&leader) {
            stack.extend(group.iter().copied());
        }
        while let Some(p) = stack.pop() {
            if !seen.insert(p.pid) {
                continue;
            }
            out.push(p);
            if let Some(kids) = self.children.get(&p.pid) {
                stack.extend(kids.iter().copied());
            }
        }
        out.sort_by_key(|p| (p.pid != leader, p.pid));
        out
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Remembers each program's previous sample, to turn CPU time into a percentage.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    last: HashMap<String, (Instant, u32, u64)>,
}

impl Sampler {
    /// Stats of `leader`'s tree from `procs`. `since` is when the leader started, used when
    /// there is no earlier sample of this leader.
    pub(crate) fn sample(
        &mut self,
        name: &str,
        leader: u32,
        since: Instant,
        procs: &ProcIndex<'_>,
    ) -> ProcessStats {
        let members = procs.tree(leader);
        let ticks: u64 = members.iter().map(|p| p.ticks).sum();
        let rss_pages: u64 = members.iter().map(|p| p.rss_pages).sum();
        let now = Instant::now();
        let (from, base) = match self.last.get(name) {
            Some(&(t, l, prev)) if l == leader && prev <= ticks => (t, prev),
            _ => (since, 0),
        };
        self.last.insert(name.to_string(), (now, leader, ticks));
        let elapsed = now.duration_since(from).as_secs_f64();
        let hz = clock_ticks();
        let cpu_percent = if elapsed > 0.0 {
            ((ticks - base) as f64 / hz) / elapsed * 100.0
        } else {
            0.0
        };
        ProcessStats {
            pids: members.iter().map(|p| p.pid).collect(),
            cpu_percent,
            rss_bytes: rss_pages * page_size(),
            cpu_seconds: ticks as f64 / hz,
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

    #[test]
    fn parses_a_stat_line_with_odd_names() {
        let line = "4242 (we ird) (name) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 12345 1000000 250 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let p = parse_stat(line).expect("parses");
        assert_eq!(p.pid, 4242);
        assert_eq!(p.ppid, 1);
        assert_eq!(p.pgrp, 4242);
        assert_eq!(p.ticks, 10);
        assert_eq!(p.rss_pages, 250);
    }

    #[test]
    fn tree_follows_parents_and_group() {
        let p = |pid, ppid, pgrp| ProcInfo {
            pid,
            ppid,
            pgrp,
            ticks: 1,
            rss_pages: 1,
            zombie: false,
        };
        // 10 leads; 11 is its child; 12 its grandchild in a new group; 13 an orphan still in
        // group 10 (reparented to 1); 20 is unrelated.
        let procs = [
            p(10, 1, 10),
            p(11, 10, 10),
            p(12, 11, 12),
            p(13, 1, 10),
            p(20, 1, 20),
        ];
        let pids: Vec<u32> = ProcIndex::new(&procs)
            .tree(10)
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(pids, vec![10, 11, 12, 13]);
    }

    #[test]
    fn scan_sees_this_process() {
        let me = std::process::id();
        assert!(scan().iter().any(|p| p.pid == me));
        assert!(self_rss_bytes().unwrap_or(0) > 0);
    }
}
