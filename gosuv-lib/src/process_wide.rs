//! The process-wide threads and the guardian process that supervisors share, and their end
//! when no supervisor is left.
//!
//! A supervisor that owns its runtime ([`crate::blocking::Supervisor`], which the C ABI
//! and the Python module use) holds an [`InUse`] for its whole life, released after its
//! runtime is gone. When the last one is released, each shared thread that has nothing to
//! do is told to end and joined: the guardian (whose process then exits, with no program
//! listed to kill), the log writers (once what is queued is written), the spawn watchdog,
//! the `/proc` pass thread and, last, the orphan reaper (once the processes it waits for,
//! the guardian among them, have ended). So a host that freed every supervisor has no
//! gosuv thread left, and a leak checker such as valgrind finds nothing of gosuv's at its
//! exit. Whatever still has work (a program run still listed with the guardian, output to a
//! hung file) keeps its thread. Each is started again when it is next needed.
//!
//! The subreaper thread of [`crate::enable_subreaper`] (the `gosuv` server, not embedders)
//! runs until the process exits.

use std::sync::Mutex;
use std::time::Duration;

/// Live holders of an [`InUse`]. Held while the threads are ended, so a supervisor made
/// meanwhile waits until they are.
static USERS: Mutex<usize> = Mutex::new(0);

/// How long the log writers may take to write what is queued, and the guardian to exit,
/// before their threads are left running.
const END_LIMIT: Duration = Duration::from_secs(2);

/// Held by a supervisor that owns its runtime: the shared threads end when the last one
/// is dropped.
#[derive(Debug)]
pub(crate) struct InUse(());

impl InUse {
    pub(crate) fn new() -> InUse {
        *USERS.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        InUse(())
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut users = USERS.lock().unwrap_or_else(|p| p.into_inner());
        *users = users.saturating_sub(1);
        if *users == 0 {
            end_idle_threads();
        }
    }
}

/// Ends and joins every shared thread that has nothing to do (see the module's text).
fn end_idle_threads() {
    crate::guardian::end_if_idle();
    crate::logs::end_idle_writers(END_LIMIT);
    crate::spawn::end_watchdog();
    crate::procfs::end_passes();
    crate::reaper::end_orphanage(END_LIMIT);
}
