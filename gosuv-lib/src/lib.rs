//! gosuv: an embeddable process supervisor.
//!
//! One [`Supervisor`] spawns programs (each in its own session and process group), restarts
//! them by a retry policy, captures and rotates their output, stops them (signal to the
//! group, SIGKILL after a timeout), reloads their configs, reports state-change events and
//! CPU/memory of their process trees. The `gosuv` binary, the C ABI and the Python module are
//! thin adapters over it.
//!
//! ```no_run
//! use std::time::Duration;
//! use gosuv::{ProgramConfig, Supervisor, SupervisorOptions, Stream};
//!
//! # async fn demo() -> gosuv::Result<()> {
//! let sup = Supervisor::new(SupervisorOptions::new("/tmp/demo"))?;
//! let mut web = ProgramConfig::shell("web", "python3 -m http.server 8000");
//! web.start_seconds = 1;
//! sup.add(web).await?;
//! sup.start("web", Some(Duration::from_secs(5))).await?;
//! println!("{:?}", sup.status("web")?);
//! let out = sup.tail("web", Stream::Stderr, 4096)?;
//! print!("{}", String::from_utf8_lossy(&out));
//! sup.shutdown().await;
//! # Ok(()) }
//! ```

pub mod blocking;
mod cgroup;
pub mod config;
mod error;
pub mod events;
pub mod files;
mod guardian;
mod listening;
pub mod logs;
mod probe;
mod process_group;
mod process_wide;
pub mod procfs;
mod program;
mod reaper;
mod spawn;
pub mod stats;
mod stdin;
mod supervisor;

pub use cgroup::{populated_leftovers, remove_own_stale_cgroups};
pub use config::{
    Autorestart, CgroupMode, Command, ConfigError, ConfigErrors, HostFd, OutputMode, ProgramConfig,
    ProgramIo, ServerConfig, StdinMode,
};
pub use error::{Error, Result};
pub use events::{Event, ExitStatus, ProgramState};
pub use logs::{LogEvent, LogFollower, Stream};
pub use process_group::{Adoption, GroupInfo, GroupObserver, Ownership, RunPipe};
pub use program::{backoff_delay, trim_memory_after_start_bursts, HealthStatus, ProgramStatus};
pub use reaper::{enable_subreaper, forget_helper, reap_every_orphan, spawn_helper};
pub use spawn::{restore_nofile, PROGRAM_VAR};
pub use stats::ProcessStats;
pub use supervisor::{
    parse_signal, signal_name, signal_names, wait_limit, EventNotice, Events, LogStatus, Released,
    ReloadReport, Store, StoreFn, Supervisor, SupervisorOptions, MAX_WAIT, STATS_MAX_AGE,
    WAIT_FOREVER,
};

/// The crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
