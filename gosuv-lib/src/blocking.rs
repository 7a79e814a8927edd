//! A blocking facade over [`crate::Supervisor`] that owns its tokio runtime: what the C ABI
//! and the Python module use.
//!
//! Every method blocks the calling thread until done. Do not call them from inside a tokio
//! runtime (that panics in tokio); use the async [`crate::Supervisor`] there. The supervisor
//! and every handle from it are `Send + Sync`: any thread may call them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::config::{ProgramConfig, ServerConfig};
use crate::error::{Error, Result};
use crate::events::ProgramState;
use crate::logs::{LogEvent, Stream};
use crate::program::ProgramStatus;
use crate::stats::ProcessStats;
use crate::supervisor::{self, EventNotice, LogStatus, ReloadReport, SupervisorOptions};

/// A supervisor with its own runtime (two worker threads named `gosuv-worker`).
/// Dropping it shuts it down: every program is stopped and waited for. When the last such
/// supervisor of the process is dropped, the threads gosuv shares between supervisors are
/// ended and joined too (the guardian's, the log writers', the orphan reaper's...), so
/// that no gosuv thread outlives them; they start again with the next supervisor.
pub struct Supervisor {
    // Declared before the runtime so it is dropped first.
    inner: supervisor::Supervisor,
    rt: Runtime,
    // Last: the shared threads end once the runtime and its tasks are gone.
    _in_use: crate::process_wide::InUse,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gosuv-worker")
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the supervisor's runtime", e))
}

impl Supervisor {
    /// A supervisor with no programs.
    ///
    /// # Errors
    /// As [`crate::Supervisor::new`], or the runtime cannot start.
    pub fn new(options: SupervisorOptions) -> Result<Self> {
        let in_use = crate::process_wide::InUse::new();
        let rt = runtime()?;
        let inner = {
            let _guard = rt.enter();
            supervisor::Supervisor::new(options)?
        };
        Ok(Supervisor {
            inner,
            rt,
            _in_use: in_use,
        })
    }

    /// A supervisor for a `config.yml` file and its programs file; `start_auto` programs
    /// are started.
    ///
    /// # Errors
    /// Every config error, or as [`Supervisor::new`].
    pub fn from_config_file(path: &Path) -> Result<Self> {
        let in_use = crate::process_wide::InUse::new();
        let rt = runtime()?;
        let inner = rt.block_on(supervisor::Supervisor::from_config_file(path))?;
        Ok(Supervisor {
            inner,
            rt,
            _in_use: in_use,
        })
    }

    /// A supervisor for programs given as the text of a programs file (a YAML list);
    /// relative directories resolve against `options.base_dir`.
    ///
    /// # Errors
    /// Every config error, or as [`Supervisor::new`].
    pub fn from_programs_yaml(text: &str, options: SupervisorOptions) -> Result<Self> {
        let programs = crate::config::parse_programs(text, None, &options.base_dir)?;
        let sup = Self::new(options)?;
        for p in programs {
            sup.add(p)?;
        }
        Ok(sup)
    }

    /// A supervisor with `options` and `programs` (for example from a loaded config, with
    /// [`SupervisorOptions::from_config`] changed as needed); `start_auto` programs start.
    ///
    /// # Errors
    /// As [`crate::Supervisor::with_programs`].
    pub fn with_programs(options: SupervisorOptions, programs: Vec<ProgramConfig>) -> Result<Self> {
        let in_use = crate::process_wide::InUse::new();
        let rt = runtime()?;
        let inner = rt.block_on(supervisor::Supervisor::with_programs(options, programs))?;
        Ok(Supervisor {
            inner,
            rt,
            _in_use: in_use,
        })
    }

    /// A supervisor from a loaded config and its programs.
    ///
    /// # Errors
    /// As [`crate::Supervisor::from_config`].
    pub fn from_config(config: &ServerConfig, programs: Vec<ProgramConfig>) -> Result<Self> {
        let in_use = crate::process_wide::InUse::new();
        let rt = runtime()?;
        let inner = rt.block_on(supervisor::Supervisor::from_config(config, programs))?;
        Ok(Supervisor {
            inner,
            rt,
            _in_use: in_use,
        })
    }

    /// The async supervisor inside, for code that has a runtime of its own.
    pub fn as_async(&self) -> &supervisor::Supervisor {
        &self.inner
    }

    /// See [`crate::Supervisor::add`].
    ///
    /// # Errors
    /// As there.
    pub fn add(&self, config: ProgramConfig) -> Result<()> {
        self.rt.block_on(self.inner.add(config))
    }

    /// See [`crate::Supervisor::add_all`].
    ///
    /// # Errors
    /// As there.
    pub fn add_all(&self, programs: Vec<ProgramConfig>) -> Result<Vec<(String, crate::Error)>> {
        self.rt.block_on(self.inner.add_all(programs))
    }

    /// See [`crate::Supervisor::update`].
    ///
    /// # Errors
    /// As there.
    pub fn update(&self, config: ProgramConfig) -> Result<bool> {
        self.rt.block_on(self.inner.update(config))
    }

    /// See [`crate::Supervisor::remove`].
    ///
    /// # Errors
    /// As there.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.rt.block_on(self.inner.remove(name))
    }

    /// See [`crate::Supervisor::start`].
    ///
    /// # Errors
    /// As there.
    pub fn start(&self, name: &str, wait: Option<Duration>) -> Result<ProgramStatus> {
        self.rt.block_on(self.inner.start(name, wait))
    }

    /// See [`crate::Supervisor::stop`].
    ///
    /// # Errors
    /// As there.
    pub fn stop(&self, name: &str, wait: Option<Duration>) -> Result<ProgramStatus> {
        self.rt.block_on(self.inner.stop(name, wait))
    }

    /// See [`crate::Supervisor::restart`].
    ///
    /// # Errors
    /// As there.
    pub fn restart(&self, name: &str, wait: Option<Duration>) -> Result<ProgramStatus> {
        self.rt.block_on(self.inner.restart(name, wait))
    }

    /// See [`crate::Supervisor::wait`].
    ///
    /// # Errors
    /// As there.
    pub fn wait(&self, name: &str, timeout: Duration) -> Result<ProgramStatus> {
        self.rt.block_on(self.inner.wait(name, timeout))
    }

    /// See [`crate::Supervisor::wait_for`].
    ///
    /// # Errors
    /// As there.
    pub fn wait_for(
        &self,
        name: &str,
        state: ProgramState,
        timeout: Duration,
    ) -> Result<ProgramStatus> {
        self.rt.block_on(self.inner.wait_for(name, state, timeout))
    }

    /// See [`crate::Supervisor::signal`].
    ///
    /// # Errors
    /// As there.
    pub fn signal(&self, name: &str, signal: i32) -> Result<()> {
        self.rt.block_on(self.inner.signal(name, signal))
    }

    /// See [`crate::Supervisor::write_stdin_within`].
    ///
    /// # Errors
    /// As there.
    pub fn write_stdin(&self, name: &str, data: &[u8], timeout: Duration) -> Result<usize> {
        self.rt
            .block_on(self.inner.write_stdin_within(name, data, timeout))
    }

    /// See [`crate::Supervisor::add_group`].
    ///
    /// # Errors
    /// As there.
    pub fn add_group(&self, programs: Vec<ProgramConfig>) -> Result<()> {
        self.rt.block_on(self.inner.add_group(programs))
    }

    /// See [`crate::Supervisor::update_group`].
    ///
    /// # Errors
    /// As there.
    pub fn update_group(&self, programs: Vec<ProgramConfig>) -> Result<bool> {
        self.rt.block_on(self.inner.update_group(programs))
    }

    /// See [`crate::Supervisor::write_stdin_counted`]: `written` holds the bytes written,
    /// also after a pipe that broke part way.
    ///
    /// # Errors
    /// As there.
    pub fn write_stdin_counted(
        &self,
        name: &str,
        data: &[u8],
        timeout: Duration,
        written: &mut usize,
    ) -> Result<()> {
        self.rt
            .block_on(self.inner.write_stdin_counted(name, data, timeout, written))
    }

    /// See [`crate::Supervisor::close_stdin`].
    ///
    /// # Errors
    /// As there.
    pub fn close_stdin(&self, name: &str) -> Result<()> {
        self.rt.block_on(self.inner.close_stdin(name))
    }

    /// See [`crate::Supervisor::status`].
    ///
    /// # Errors
    /// As there.
    pub fn status(&self, name: &str) -> Result<ProgramStatus> {
        self.inner.status(name)
    }

    /// See [`crate::Supervisor::list`].
    pub fn list(&self) -> Vec<ProgramStatus> {
        self.inner.list()
    }

    /// See [`crate::Supervisor::config`].
    ///
    /// # Errors
    /// As there.
    pub fn config(&self, name: &str) -> Result<ProgramConfig> {
        self.inner.config(name)
    }

    /// See [`crate::Supervisor::configs`].
    pub fn configs(&self) -> Vec<ProgramConfig> {
        self.inner.configs()
    }

    /// See [`crate::Supervisor::reload`].
    ///
    /// # Errors
    /// As there.
    pub fn reload(&self, programs: Vec<ProgramConfig>) -> Result<ReloadReport> {
        self.rt.block_on(self.inner.reload(programs))
    }

    /// See [`crate::Supervisor::tail`].
    ///
    /// # Errors
    /// As there.
    pub fn tail(&self, name: &str, stream: Stream, max_bytes: usize) -> Result<Vec<u8>> {
        self.inner.tail(name, stream, max_bytes)
    }

    /// See [`crate::Supervisor::log_status`].
    ///
    /// # Errors
    /// As there.
    pub fn log_status(&self, name: &str) -> Result<LogStatus> {
        self.inner.log_status(name)
    }

    /// See [`crate::Supervisor::stats`].
    ///
    /// # Errors
    /// As there.
    pub fn stats(&self, name: &str) -> Result<ProcessStats> {
        self.rt.block_on(self.inner.stats(name))
    }

    /// See [`crate::Supervisor::stats_all`].
    pub fn stats_all(&self) -> BTreeMap<String, ProcessStats> {
        self.rt.block_on(self.inner.stats_all())
    }

    /// Subscribes to state changes; see [`Events`].
    pub fn subscribe(&self) -> Events {
        Events {
            inner: self.inner.subscribe(),
            rt: self.rt.handle().clone(),
        }
    }

    /// Follows a program's output; see [`LogFollower`].
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn follow(&self, name: &str, stream: Stream) -> Result<LogFollower> {
        Ok(LogFollower {
            inner: self.inner.follow(name, stream)?,
            rt: self.rt.handle().clone(),
        })
    }

    /// See [`crate::Supervisor::tail_and_follow`].
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn tail_and_follow(
        &self,
        name: &str,
        stream: Stream,
        max_bytes: usize,
    ) -> Result<(Vec<u8>, LogFollower)> {
        let (tail, inner) = self.inner.tail_and_follow(name, stream, max_bytes)?;
        Ok((
            tail,
            LogFollower {
                inner,
                rt: self.rt.handle().clone(),
            },
        ))
    }

    /// Stops every program and waits until all are gone.
    pub fn shutdown(&self) {
        self.rt.block_on(self.inner.shutdown());
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if !self.inner.is_shut_down() {
            self.rt.block_on(self.inner.shutdown());
        }
    }
}

/// What a blocking receive returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recv<T> {
    /// An item.
    Item(T),
    /// Nothing came within the timeout; try again.
    Timeout,
    /// The source is gone (supervisor shut down, program removed): nothing more will come.
    Closed,
}

/// A blocking subscription to state changes.
#[derive(Debug)]
pub struct Events {
    inner: supervisor::Events,
    rt: tokio::runtime::Handle,
}

impl Events {
    /// Waits up to `timeout` for the next event. Short timeouts in a loop keep a caller
    /// responsive (to Ctrl-C, say).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Recv<EventNotice> {
        // The timer must be created inside the runtime: the caller's thread has none.
        let inner = &mut self.inner;
        match self
            .rt
            .block_on(async { tokio::time::timeout(timeout, inner.recv()).await })
        {
            Ok(Some(n)) => Recv::Item(n),
            Ok(None) => Recv::Closed,
            Err(_) => Recv::Timeout,
        }
    }
}

/// A blocking follower of one program's output.
#[derive(Debug)]
pub struct LogFollower {
    inner: crate::logs::LogFollower,
    rt: tokio::runtime::Handle,
}

impl LogFollower {
    /// Waits up to `timeout` for more output.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Recv<LogEvent> {
        let inner = &mut self.inner;
        match self
            .rt
            .block_on(async { tokio::time::timeout(timeout, inner.recv()).await })
        {
            Ok(Some(ev)) => Recv::Item(ev),
            Ok(None) => Recv::Closed,
            Err(_) => Recv::Timeout,
        }
    }
}
