//! The `tcp` probes of a supervisor whose target is a loopback address, run by one task:
//! every attempt due at the same moment is answered by one read of the kernel's table of
//! listening sockets (see [`crate::listening`]), without a timer or a task per probe. A
//! thousand programs probed ten times a second then cost one wake-up per tick, not ten
//! thousand.
//!
//! The table is trusted only when it shows the target accepting: anything else (nothing
//! listening there, a full accept queue, a table that cannot be read) is checked by a real
//! connect, on a task of its own, bounded by the probe's timeout, so loopback NAT (a
//! container's published port) and a queue that drains in time are seen as a connect sees
//! them; a probe's attempts never overlap.
//!
//! Each probe keeps its own schedule (first attempt, then one `interval` after the last)
//! and its own report channel; a probe whose receiver is gone (its run ended) is dropped
//! at its next turn. Health attempts are rounded up to a grid of a tenth of their interval
//! (at most 100 ms), so that attempts due close together share one wake-up and one read;
//! ready attempts run when due, to the millisecond.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::probes::Report;

/// One probe.
pub(crate) struct Entry {
    /// The addresses a connect would try (two for `localhost`).
    pub ips: Vec<IpAddr>,
    pub port: u16,
    /// The target, for a real connect (and its messages).
    pub target: Arc<crate::probe::TcpTarget>,
    /// The longest an attempt by connect may take.
    pub timeout: Duration,
    /// When the first attempt is due.
    pub first_at: Instant,
    pub interval: Duration,
    /// Attempts are rounded up to a multiple of this (zero: not rounded).
    pub grid: Duration,
    pub reports: mpsc::Sender<Report>,
}

/// The handle to a supervisor's batch task.
pub(crate) struct Batch {
    tx: mpsc::UnboundedSender<Entry>,
}

impl Batch {
    /// Starts the task on the current runtime. It ends once the handle is dropped.
    pub(crate) fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx));
        Batch { tx }
    }

    /// Adds a probe; false when the task is gone (then probe another way).
    pub(crate) fn add(&self, entry: Entry) -> bool {
        self.tx.send(entry).is_ok()
    }
}

/// The grid a health attempt is rounded to.
pub(crate) fn health_grid(interval: Duration) -> Duration {
    (interval / 10).clamp(Duration::from_millis(1), Duration::from_millis(100))
}

/// `t` rounded up to the next multiple of `grid` since `epoch`.
fn on_grid(t: Instant, grid: Duration, epoch: Instant) -> Instant {
    if grid.is_zero() {
        return t;
    }
    let since = t.saturating_duration_since(epoch).as_nanos();
    let step = grid.as_nanos().max(1);
    let up = since.div_ceil(step).saturating_mul(step);
    let up = u64::try_from(up).unwrap_or(u64::MAX);
    epoch + Duration::from_nanos(up)
}

struct Probe {
    entry: Entry,
    /// The last report sent was a pass (a pass after a pass is not sent).
    passing: Arc<AtomicBool>,
    /// An attempt by connect is under way.
    busy: Arc<AtomicBool>,
}

/// Sends `report` unless it is a pass after a pass; false when the probe is gone.
fn tell(reports: &mpsc::Sender<Report>, passing: &AtomicBool, report: Report) -> bool {
    let pass = report == Report::Passed;
    if pass && passing.load(Ordering::Relaxed) {
        return true;
    }
    match reports.try_send(report) {
        Ok(()) => {
            passing.store(pass, Ordering::Relaxed);
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
        // The program's task is behind: this attempt's word is dropped, the next one says
        // it again.
        Err(mpsc::error::TrySendError::Full(_)) => true,
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Entry>) {
    let epoch = Instant::now();
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut probes: HashMap<u64, Probe> = HashMap::new();
    let mut next_id: u64 = 0;
    loop {
        let next = due.peek().map(|Reverse((t, _))| *t);
        tokio::select! {
            e = rx.recv() => {
                let Some(entry) = e else { return };
                next_id = next_id.wrapping_add(1);
                // Probes whose run ended leave at their next turn; a sweep now and then keeps
                // those of long intervals from piling up (amortized: at each doubling).
                if probes.len() >= 64 && probes.len().is_power_of_two() {
                    probes.retain(|_, p| !p.entry.reports.is_closed());
                }
                due.push(Reverse((on_grid(entry.first_at, entry.grid, epoch), next_id)));
                probes.insert(next_id, Probe {
                    entry,
                    passing: Arc::new(AtomicBool::new(false)),
                    busy: Arc::new(AtomicBool::new(false)),
                });
            }
            () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                // One read for every attempt due now, made after all of them were due.
                let mut table = None;
                while let Some(&Reverse((at, id))) = due.peek() {
                    if at > now {
                        break;
                    }
                    due.pop();
                    let Some(p) = probes.get_mut(&id) else { continue };
                    if p.entry.reports.is_closed() {
                        probes.remove(&id);
                        continue;
                    }
                    let again = on_grid(now + p.entry.interval, p.entry.grid, epoch);
                    // The last connect is still under way: this turn is skipped.
                    if p.busy.load(Ordering::Acquire) {
                        due.push(Reverse((again, id)));
                        continue;
                    }
                    let read = table.get_or_insert_with(|| crate::listening::table_since(now.into_std()));
                    let accepts = read.as_ref().is_some_and(|t| accepting(t, &p.entry));
                    if accepts {
                        if !tell(&p.entry.reports, &p.passing, Report::Passed) {
                            probes.remove(&id);
                            continue;
                        }
                    } else {
                        // What the table cannot confirm, a connect decides.
                        p.busy.store(true, Ordering::Release);
                        let (target, timeout) = (p.entry.target.clone(), p.entry.timeout);
                        let (reports, passing, busy) =
                            (p.entry.reports.clone(), p.passing.clone(), p.busy.clone());
                        tokio::spawn(async move {
                            let report = match target.connect(timeout).await {
                                Ok(()) => Report::Passed,
                                Err(e) => Report::Failed(e),
                            };
                            tell(&reports, &passing, report);
                            busy.store(false, Ordering::Release);
                        });
                    }

                    due.push(Reverse((again, id)));
                }
            }
        }
    }
}

/// Whether the table shows a socket accepting at one of the entry's addresses.
fn accepting(table: &crate::listening::Table, e: &Entry) -> bool {
    e.ips
        .iter()
        .any(|ip| table.answer(*ip, e.port) == crate::listening::Answer::Accepts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rounded_up_to_the_grid() {
        let epoch = Instant::now();
        let g = Duration::from_millis(10);
        assert_eq!(on_grid(epoch, g, epoch), epoch);
        assert_eq!(
            on_grid(epoch + Duration::from_millis(1), g, epoch),
            epoch + g
        );
        assert_eq!(on_grid(epoch + g, g, epoch), epoch + g);
        let t = epoch + Duration::from_micros(10_001);
        assert_eq!(on_grid(t, g, epoch), epoch + Duration::from_millis(20));
        assert_eq!(on_grid(t, Duration::ZERO, epoch), t);
        assert_eq!(
            health_grid(Duration::from_secs(10)),
            Duration::from_millis(100)
        );
        assert_eq!(health_grid(Duration::from_millis(100)), g);
    }
}
