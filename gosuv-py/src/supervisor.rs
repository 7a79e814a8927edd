//! `gosuv.Supervisor`: the blocking facade of the core, as a Python class.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use gosuv::blocking;
use gosuv::config::{parse_program_value, parse_programs};
use gosuv::{ConfigErrors, ProgramConfig, ServerConfig, SupervisorOptions};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyMapping, PyString, PyTuple, PyType};
use pyo3::IntoPyObjectExt;
use serde_yaml::Value;

use crate::aio::{self, AioHub, Call, Held};
use crate::convert::{self, abs_path};
use crate::errors::{IntoPyResult, GOSUV_ERROR, SUPERVISOR_CLOSED};
use crate::interrupt::{self, Stopping};
use crate::line_wait::{self, LineWait, Wanted, TAIL_BYTES};
use crate::log_dir::LogDir;
use crate::objects::{ReloadReport, Stats, Status};
use crate::scoped::ScopedProgram;
use crate::streams::{Events, LogFollower};

/// One supervisor of this process, as `shutdown_all` sees it.
struct Live {
    pid: u32,
    sup: Weak<blocking::Supervisor>,
    logs: Arc<LogDir>,
}

/// Every supervisor made in this process, so that `shutdown_all` (run by `atexit`) can stop
/// their programs gracefully when the interpreter exits normally.
static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<Live>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The message of a call made after `shutdown()`.
const SHUT_DOWN: &str = "the supervisor is shut down: its programs are stopped and it accepts \
                         no more calls about them; create a new Supervisor";

/// Stops the programs of every supervisor of this process that is still open, and waits.
/// `gosuv/__init__.py` registers it with `atexit`.
#[pyfunction]
pub fn shutdown_all(py: Python<'_>) -> PyResult<()> {
    let me = std::process::id();
    let (sups, logs): (Vec<Arc<blocking::Supervisor>>, Vec<Arc<LogDir>>) = {
        let mut list = live();
        list.retain(|l| l.sup.strong_count() > 0);
        list.iter()
            .filter(|l| l.pid == me)
            .filter_map(|l| Some((l.sup.upgrade()?, l.logs.clone())))
            .unzip()
    };
    if sups.is_empty() {
        return Ok(());
    }
    let all = sups.clone();
    interrupt::run_stopping(py, sups.clone(), Stopping::All, move || {
        std::thread::scope(|s| {
            for sup in &all {
                s.spawn(move || sup.shutdown());
            }
        });
    })?;
    for l in logs {
        l.release();
    }
    Ok(())
}

/// Programs read from a file, a mapping or YAML text, and where they came from.
pub(crate) struct Loaded {
    programs: Vec<ProgramConfig>,
    base_dir: PathBuf,
    /// `server.log.logpath` of a `config.yml`.
    log_dir: Option<PathBuf>,
    /// The file, when they came from one.
    source: Option<PathBuf>,
}

/// Reads a `config.yml` (a YAML mapping; its programs file too) or a programs file (a YAML
/// list). Relative paths resolve against `base_dir`, else the file's directory.
fn load_file(path: &Path, base_dir: Option<&Path>) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::single(Some(path), format!("cannot read the config file: {e}"))
    })?;
    let dir = match base_dir {
        Some(d) => d.to_path_buf(),
        None => path.parent().unwrap_or(Path::new("/")).to_path_buf(),
    };
    let is_server_config = matches!(
        gosuv::config::parse_yaml(&text, Some(path)),
        Ok(Value::Mapping(_))
    );
    if is_server_config {
        let mut cfg = ServerConfig::parse(&text, Some(path), &dir)?;
        cfg.path = Some(path.to_path_buf());
        Ok(Loaded {
            programs: cfg.load_programs()?,
            log_dir: Some(cfg.server.log.logpath),
            base_dir: dir,
            source: Some(path.to_path_buf()),
        })
    } else {
        Ok(Loaded {
            programs: parse_programs(&text, Some(path), &dir)?,
            base_dir: dir,
            log_dir: None,
            source: Some(path.to_path_buf()),
        })
    }
}

/// Checks one program given as Python options; errors name the program.
fn program_from_py(
    label: &str,
    name: Option<String>,
    options: &Bound<'_, PyAny>,
    base_dir: &Path,
    errors: &mut Vec<gosuv::ConfigError>,
) -> PyResult<Option<ProgramConfig>> {
    let mut value = convert::to_value(options, label)?;
    let Value::Mapping(m) = &mut value else {
        return Err(PyTypeError::new_err(format!(
            "program {label}: its options are a mapping such as {{\"command\": \"sleep 10\"}}"
        )));
    };
    if let Some(name) = name {
        match m.get("name") {
            Some(Value::String(n)) if *n != name => {
                return Err(PyValueError::new_err(format!(
                    "program {label} has `name: {n}`: leave `name` out, the key is the name"
                )))
            }
            _ => {
                m.insert("name".into(), Value::String(name));
            }
        }
    }
    match parse_program_value(value, base_dir) {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            errors.extend(under(label, e).0);
            Ok(None)
        }
    }
}

/// Errors of one program, their keys prefixed with the program's label (its name).
fn under(label: &str, errors: ConfigErrors) -> ConfigErrors {
    ConfigErrors(
        errors
            .0
            .into_iter()
            .map(|mut e| {
                e.key = if e.key.is_empty() {
                    label.to_string()
                } else {
                    format!("{label}.{}", e.key)
                };
                e
            })
            .collect(),
    )
}

/// Programs given as `{name: {option: value}}` or `[{"name": ..., option: value}]`.
fn programs_from_py(config: &Bound<'_, PyAny>, base_dir: &Path) -> PyResult<Vec<ProgramConfig>> {
    let py = config.py();
    let mut programs = Vec::new();
    let mut errors = Vec::new();
    if let Ok(map) = config.cast::<PyMapping>() {
        for item in map.items()?.try_iter()? {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            let name: String = k.extract().map_err(|_| {
                PyTypeError::new_err("program names (the keys of config) must be str")
            })?;
            if let Some(p) = program_from_py(&name, Some(name.clone()), &v, base_dir, &mut errors)?
            {
                programs.push(p);
            }
        }
    } else if config.is_instance_of::<PyList>() || config.is_instance_of::<PyTuple>() {
        for (i, item) in config.try_iter()?.enumerate() {
            if let Some(p) =
                program_from_py(&format!("[{i}]"), None, &item?, base_dir, &mut errors)?
            {
                programs.push(p);
            }
        }
    } else {
        return Err(PyTypeError::new_err(format!(
            "config is None, a path to config.yml or programs.yml, a dict {{name: options}} or a list of dicts, not {}",
            config.get_type().name()?
        )));
    }
    if errors.is_empty() {
        Ok(programs)
    } else {
        Err(crate::errors::config_error(py, &ConfigErrors(errors)))
    }
}

/// Programs from the `config` argument: `None`, a path, a mapping or a list.
pub(crate) fn load(config: Option<&Bound<'_, PyAny>>, base_dir: Option<&Path>) -> PyResult<Loaded> {
    let Some(config) = config.filter(|c| !c.is_none()) else {
        let base = match base_dir {
            Some(d) => d.to_path_buf(),
            None => abs_path(PathBuf::from("."))?,
        };
        return Ok(Loaded {
            programs: Vec::new(),
            base_dir: base,
            log_dir: None,
            source: None,
        });
    };
    let py = config.py();
    if config.is_instance_of::<PyString>() || config.hasattr("__fspath__")? {
        let path = abs_path(config.extract()?)?;
        return load_file(&path, base_dir).into_py_result(py);
    }
    let base = match base_dir {
        Some(d) => d.to_path_buf(),
        None => abs_path(PathBuf::from("."))?,
    };
    Ok(Loaded {
        programs: programs_from_py(config, &base)?,
        base_dir: base,
        log_dir: None,
        source: None,
    })
}

/// A process supervisor for Python programs and test harnesses.
///
/// Each program runs in its own session and process group, and in a cgroup of its own where
/// gosuv can make one (`Status.ownership` says which owns it); its output is captured into
/// rotating log files and an in-memory tail, and it is restarted by its retry policy. Leaving
/// a `with` block (or `shutdown()`) stops every program and waits until none of their
/// processes is left. With `kill_on_parent_death` (the default), the programs are killed
/// even when this Python process dies without cleaning up (`os._exit`, SIGKILL, a crash).
/// `subreaper` (off by default) makes gosuv adopt orphans, which it then reaps only if they
/// came from its programs.
#[pyclass(frozen, module = "gosuv")]
pub struct Supervisor {
    /// `None` only while it is dropped.
    inner: Option<Arc<blocking::Supervisor>>,
    owner_pid: u32,
    base_dir: PathBuf,
    pub(crate) logs: Arc<LogDir>,
    /// The constructor's `base_dir`, used again when a file is reloaded.
    base_override: Option<PathBuf>,
    /// The file the programs came from, for `reload()`.
    source: Option<PathBuf>,
}

/// A supervisor being made: what is prepared with the GIL, before the core's supervisor is
/// made without it ([`Prepared::make`]), and what [`Prepared::finish`] needs afterwards.
pub(crate) struct Prepared {
    logs: Arc<LogDir>,
    opts: SupervisorOptions,
    programs: Vec<ProgramConfig>,
    base_dir: PathBuf,
    base_override: Option<PathBuf>,
    source: Option<PathBuf>,
}

impl Prepared {
    pub(crate) fn new(
        py: Python<'_>,
        loaded: Loaded,
        log_dir: Option<PathBuf>,
        base_override: Option<PathBuf>,
        subreaper: bool,
        kill_on_parent_death: bool,
    ) -> PyResult<Self> {
        let logs = match log_dir.map(abs_path).transpose()?.or(loaded.log_dir) {
            Some(d) => LogDir::explicit(py, d)?,
            None => LogDir::temp(py)?,
        };
        let logs = Arc::new(logs);
        let mut opts = SupervisorOptions::new(loaded.base_dir.clone());
        opts.log_dir = logs.path().to_path_buf();
        opts.subreaper = subreaper;
        opts.kill_on_parent_death = kill_on_parent_death;
        Ok(Prepared {
            logs,
            opts,
            programs: loaded.programs,
            base_dir: loaded.base_dir,
            base_override,
            source: loaded.source,
        })
    }

    /// Makes the core's supervisor and adds the programs (without the GIL). On an error the
    /// log directory is let go.
    pub(crate) fn make(&mut self) -> gosuv::Result<blocking::Supervisor> {
        let programs = std::mem::take(&mut self.programs);
        let opts = self.opts.clone();
        let made = (|| {
            // The whole set first: a bad program must not leave the others started.
            gosuv::config::check_set(&programs).map_err(gosuv::Error::Config)?;
            let sup = blocking::Supervisor::new(opts)?;
            if let Some((_, e)) = sup.add_all(programs)?.into_iter().next() {
                return Err(e);
            }
            Ok(sup)
        })();
        if made.is_err() {
            self.logs.release();
        }
        made
    }

    /// The Python object around a supervisor that `make` made.
    pub(crate) fn finish(self, sup: blocking::Supervisor) -> Supervisor {
        let inner = Arc::new(sup);
        let owner_pid = std::process::id();
        {
            let mut list = live();
            list.retain(|l| l.sup.strong_count() > 0);
            list.push(Live {
                pid: owner_pid,
                sup: Arc::downgrade(&inner),
                logs: self.logs.clone(),
            });
        }
        Supervisor {
            inner: Some(inner),
            owner_pid,
            base_dir: self.base_dir,
            logs: self.logs,
            base_override: self.base_override,
            source: self.source,
        }
    }
}

impl Supervisor {
    fn build(
        py: Python<'_>,
        loaded: Loaded,
        log_dir: Option<PathBuf>,
        base_override: Option<PathBuf>,
        subreaper: bool,
        kill_on_parent_death: bool,
    ) -> PyResult<Self> {
        let mut prepared = Prepared::new(
            py,
            loaded,
            log_dir,
            base_override,
            subreaper,
            kill_on_parent_death,
        )?;
        let sup = py.detach(|| prepared.make()).into_py_result(py)?;
        Ok(prepared.finish(sup))
    }

    /// The core supervisor, unless this object was inherited through `fork()`.
    pub(crate) fn sup(&self, py: Python<'_>) -> PyResult<&Arc<blocking::Supervisor>> {
        let me = std::process::id();
        if me != self.owner_pid {
            return Err(GOSUV_ERROR.err(
                py,
                format!(
                    "this Supervisor belongs to process {}, and this is process {me} (a fork): \
                     create a new Supervisor here instead",
                    self.owner_pid
                ),
                &[],
            ));
        }
        Ok(self.inner.as_ref().expect("only None while dropped"))
    }

    /// The core supervisor for a call about programs: `SupervisorClosed` once it is shut
    /// down (its programs are gone then, and "no program named ..." would mislead).
    pub(crate) fn open(&self, py: Python<'_>) -> PyResult<&Arc<blocking::Supervisor>> {
        let sup = self.sup(py)?;
        if sup.as_async().is_shut_down() {
            return Err(SUPERVISOR_CLOSED.err(py, SHUT_DOWN.into(), &[]));
        }
        Ok(sup)
    }

    /// Runs a call that may wait on its own thread, interruptibly.
    fn waiting<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&blocking::Supervisor) -> gosuv::Result<T> + Send + 'static,
    {
        let sup = self.open(py)?.clone();
        interrupt::run(py, move || f(&sup))?.into_py_result(py)
    }

    /// As `waiting`, for a call that waits for programs to stop: Ctrl-C kills them.
    fn stopping<T, F>(&self, py: Python<'_>, targets: Stopping, f: F) -> PyResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&blocking::Supervisor) -> gosuv::Result<T> + Send + 'static,
    {
        let sup = self.open(py)?.clone();
        let sups = vec![sup.clone()];
        interrupt::run_stopping(py, sups, targets, move || f(&sup))?.into_py_result(py)
    }

    /// Stops every program and waits (Ctrl-C kills them), then lets go of the log
    /// directory. Calling it again does nothing.
    fn shut_down(&self, py: Python<'_>) -> PyResult<()> {
        let sup = self.sup(py)?.clone();
        let sups = vec![sup.clone()];
        interrupt::run_stopping(py, sups, Stopping::All, move || sup.shutdown())?;
        self.logs.release();
        Ok(())
    }

    /// The programs of `reload(config, yaml=...)`.
    pub(crate) fn reload_programs(
        &self,
        py: Python<'_>,
        config: Option<&Bound<'_, PyAny>>,
        yaml: Option<&str>,
    ) -> PyResult<Vec<ProgramConfig>> {
        let config = config.filter(|c| !c.is_none());
        let programs = match (config, yaml) {
            (Some(_), Some(_)) => {
                return Err(PyTypeError::new_err("give config or yaml, not both"));
            }
            (None, Some(text)) => parse_programs(text, None, &self.base_dir).into_py_result(py)?,
            (Some(c), None) => {
                if c.is_instance_of::<PyString>() || c.hasattr("__fspath__")? {
                    load(Some(c), self.base_override.as_deref())?.programs
                } else {
                    programs_from_py(c, &self.base_dir)?
                }
            }
            (None, None) => match &self.source {
                Some(path) => {
                    load_file(path, self.base_override.as_deref())
                        .into_py_result(py)?
                        .programs
                }
                None => {
                    let e = ConfigErrors::single(
                        None,
                        "nothing to reload from: this supervisor was not made from a file; \
                         pass reload(config) or reload(yaml=...)",
                    );
                    return Err(crate::errors::config_error(py, &e));
                }
            },
        };
        Ok(programs)
    }

    /// Keeps a temp log directory when a `with` block raised `exc`, and says where it is
    /// (a note on the exception).
    pub(crate) fn note_kept_logs(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<()> {
        if !exc.is_none() && self.logs.is_temp() && !self.logs.kept() {
            // The failed run is the one whose logs are wanted.
            self.logs.keep();
            let note = format!(
                "gosuv: the programs' logs are kept in {}",
                self.logs.path().display()
            );
            if exc.hasattr("add_note")? {
                exc.call_method1("add_note", (note,))?;
            } else {
                // Python < 3.11 has no notes: say it where the traceback goes.
                let stderr = py.import("sys")?.getattr("stderr")?;
                stderr.call_method1("write", (format!("{note}\n"),))?;
            }
        }
        Ok(())
    }

    /// The work of `gosuv.aio`'s call `op`: arguments checked and converted here, on the
    /// loop's thread; the closure holds only Rust values.
    fn aio_work(&self, py: Python<'_>, op: &str, args: &Bound<'_, PyTuple>) -> PyResult<Call> {
        use aio::finish_with;
        fn none(py: Python<'_>, (): ()) -> PyResult<Py<PyAny>> {
            Ok(py.None())
        }
        fn status(py: Python<'_>, st: gosuv::ProgramStatus) -> PyResult<Py<PyAny>> {
            Status::new(py, st)?.into_py_any(py)
        }
        let work: aio::Work = match op {
            "add" | "update" => {
                let (name, command, options): (
                    String,
                    Bound<'_, PyAny>,
                    Option<Bound<'_, PyDict>>,
                ) = args.extract()?;
                let config = self.program_config(py, &name, &command, options.as_ref())?;
                let sup = self.open(py)?.clone();
                if op == "add" {
                    Box::new(move |_| finish_with(sup.add(config), none))
                } else {
                    Box::new(move |_| {
                        finish_with(sup.update(config), |py, changed| changed.into_py_any(py))
                    })
                }
            }
            "remove" => {
                let (name,): (String,) = args.extract()?;
                let sup = self.open(py)?.clone();
                Box::new(move |_| finish_with(sup.remove(&name), none))
            }
            "start" | "stop" | "restart" => {
                let (name, wait, timeout): (String, bool, Option<f64>) = args.extract()?;
                let wait = wait_arg(py, wait, timeout)?;
                let sup = Held::new(self.open(py)?.clone());
                let op = op.to_string();
                // On the runtime: a cancelled await drops the wait (the request carries on).
                return Ok(Call::Waiting(Box::pin(async move {
                    let core = sup.as_async();
                    let st = match op.as_str() {
                        "start" => core.start(&name, wait).await,
                        "stop" => core.stop(&name, wait).await,
                        _ => core.restart(&name, wait).await,
                    };
                    finish_with(st, status)
                })));
            }
            "wait" => {
                let (name, timeout): (String, Option<f64>) = args.extract()?;
                let timeout = convert::timeout_arg(py, timeout)?;
                let sup = Held::new(self.open(py)?.clone());
                return Ok(Call::Waiting(Box::pin(async move {
                    finish_with(sup.as_async().wait(&name, timeout).await, status)
                })));
            }
            "wait_for" => {
                let (name, state, timeout): (String, Bound<'_, PyAny>, Option<f64>) =
                    args.extract()?;
                let state = convert::state_arg(&state)?;
                let timeout = convert::timeout_arg(py, timeout)?;
                let sup = Held::new(self.open(py)?.clone());
                return Ok(Call::Waiting(Box::pin(async move {
                    let st = sup.as_async().wait_for(&name, state, timeout).await;
                    finish_with(st, status)
                })));
            }
            "status" => {
                let (name,): (String,) = args.extract()?;
                let sup = self.open(py)?.clone();
                Box::new(move |_| finish_with(sup.status(&name), status))
            }
            "list" => {
                let sup = self.sup(py)?.clone();
                Box::new(move |_| {
                    finish_with(Ok(sup.list()), |py, all: Vec<gosuv::ProgramStatus>| {
                        let all = all
                            .into_iter()
                            .map(|s| Status::new(py, s))
                            .collect::<PyResult<Vec<Status>>>()?;
                        all.into_py_any(py)
                    })
                })
            }
            "config" => {
                let (name,): (String,) = args.extract()?;
                let sup = self.open(py)?.clone();
                Box::new(move |_| {
                    let value = sup.config(&name).map(|cfg| serde_yaml::to_value(&cfg));
                    finish_with(value, |py, value| match value {
                        Ok(v) => convert::from_value(py, &v),
                        Err(e) => Err(PyValueError::new_err(format!(
                            "cannot represent the config: {e}"
                        ))),
                    })
                })
            }
            "reload" => {
                let (config, yaml): (Option<Bound<'_, PyAny>>, Option<String>) = args.extract()?;
                let programs = self.reload_programs(py, config.as_ref(), yaml.as_deref())?;
                let sup = self.open(py)?.clone();
                Box::new(move |_| {
                    finish_with(sup.reload(programs), |py, report| {
                        ReloadReport::from(report).into_py_any(py)
                    })
                })
            }
            "tail" => {
                let (name, stream, lines): (String, String, Option<usize>) = args.extract()?;
                let stream = convert::stream_arg(&stream)?;
                let sup = self.open(py)?.clone();
                Box::new(move |_| {
                    let text = sup
                        .tail(&name, stream, TAIL_BYTES)
                        .map(|bytes| tail_text(&bytes, lines));
                    finish_with(text, |py, text| text.into_py_any(py))
                })
            }
            "stats" => {
                let (name,): (String,) = args.extract()?;
                let sup = self.open(py)?.clone();
                Box::new(move |_| {
                    finish_with(sup.stats(&name), |py, st| Stats::from(st).into_py_any(py))
                })
            }
            "stats_all" => {
                let sup = self.sup(py)?.clone();
                Box::new(move |_| {
                    let all: std::collections::BTreeMap<String, Stats> = sup
                        .stats_all()
                        .into_iter()
                        .map(|(k, v)| (k, v.into()))
                        .collect();
                    aio::give(all)
                })
            }
            "shutdown" | "exit" => {
                if op == "exit" {
                    let (exc,): (Bound<'_, PyAny>,) = args.extract()?;
                    self.note_kept_logs(py, &exc)?;
                }
                let sup = self.sup(py)?.clone();
                let logs = self.logs.clone();
                Box::new(move |_| {
                    sup.shutdown();
                    logs.release();
                    finish_with(Ok(()), none)
                })
            }
            _ => {
                return Err(PyValueError::new_err(format!(
                    "gosuv.aio: no call named {op:?} (a bug of gosuv.aio)"
                )))
            }
        };
        Ok(Call::Blocking(work))
    }

    /// One program's config from the arguments of `add`, `update` and `program`.
    pub(crate) fn program_config(
        &self,
        py: Python<'_>,
        name: &str,
        command: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<ProgramConfig> {
        if let Err(e) = gosuv::config::validate_name(name) {
            return Err(crate::errors::config_error(
                py,
                &ConfigErrors::single(None, e),
            ));
        }
        let value = convert::program_value(name, command, options)?;
        parse_program_value(value, &self.base_dir)
            .map_err(|e| under(name, e))
            .into_py_result(py)
    }
}

#[pymethods]
impl Supervisor {
    /// A supervisor for the programs of `config`: `None` (no programs), the path of a
    /// `config.yml` or a programs file, a dict `{name: {option: value}}` or a list of dicts
    /// with `name`. Programs with `start_auto` are started (without waiting).
    #[new]
    #[pyo3(signature = (config = None, *, base_dir = None, log_dir = None, subreaper = false, kill_on_parent_death = true))]
    fn new(
        py: Python<'_>,
        config: Option<&Bound<'_, PyAny>>,
        base_dir: Option<PathBuf>,
        log_dir: Option<PathBuf>,
        subreaper: bool,
        kill_on_parent_death: bool,
    ) -> PyResult<Self> {
        let base_override = base_dir.map(abs_path).transpose()?;
        let loaded = load(config, base_override.as_deref())?;
        Self::build(
            py,
            loaded,
            log_dir,
            base_override,
            subreaper,
            kill_on_parent_death,
        )
    }

    /// A supervisor for programs given as the text of a programs file (a YAML list).
    #[classmethod]
    #[pyo3(signature = (text, *, base_dir = None, log_dir = None, subreaper = false, kill_on_parent_death = true))]
    fn from_yaml(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        text: &str,
        base_dir: Option<PathBuf>,
        log_dir: Option<PathBuf>,
        subreaper: bool,
        kill_on_parent_death: bool,
    ) -> PyResult<Self> {
        let base_override = base_dir.map(abs_path).transpose()?;
        let base = match &base_override {
            Some(d) => d.clone(),
            None => abs_path(PathBuf::from("."))?,
        };
        let programs = parse_programs(text, None, &base).into_py_result(py)?;
        let loaded = Loaded {
            programs,
            base_dir: base,
            log_dir: None,
            source: None,
        };
        Self::build(
            py,
            loaded,
            log_dir,
            base_override,
            subreaper,
            kill_on_parent_death,
        )
    }

    /// Where relative paths resolve, and the programs' default working directory.
    #[getter]
    fn base_dir(&self) -> PathBuf {
        self.base_dir.clone()
    }

    /// Where `<name>.stdout.log` and `<name>.stderr.log` are written.
    #[getter]
    fn log_dir(&self) -> PathBuf {
        self.logs.path().to_path_buf()
    }

    /// Whether `shutdown()` has been called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.sup(py)?.as_async().is_shut_down())
    }

    /// Adds a program, stopped (started at once, without waiting, with `start_auto=True`).
    #[pyo3(signature = (name, command, **options))]
    fn add(
        &self,
        py: Python<'_>,
        name: &str,
        command: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let config = self.program_config(py, name, command, options)?;
        let sup = self.open(py)?;
        py.detach(|| sup.add(config)).into_py_result(py)
    }

    /// Replaces a program's config; restarts it if it changed and had a process. Returns
    /// whether it was restarted.
    #[pyo3(signature = (name, command, **options))]
    fn update(
        &self,
        py: Python<'_>,
        name: &str,
        command: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        let config = self.program_config(py, name, command, options)?;
        self.waiting(py, move |s| s.update(config))
    }

    /// A context manager for a program that lives for one `with` block: entering adds it,
    /// starts it and waits until it is `running` (ready, with a `ready` probe), at most
    /// `timeout` seconds (default 60; `None`: no limit), and gives its `Status`; leaving
    /// stops it (waiting until none of its processes is left) and removes it, also when the
    /// block raised. A start that fails raises `StartError` (with the probe's last failure)
    /// or `Timeout`, and the program is removed again. The options are those of `add`,
    /// checked here.
    #[pyo3(
        signature = (name, command, *, timeout = Some(60.0), **options),
        text_signature = "(self, /, name, command, *, timeout=60.0, **options)"
    )]
    fn program(
        slf: &Bound<'_, Self>,
        name: &str,
        command: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<ScopedProgram> {
        let py = slf.py();
        let this = slf.get();
        this.open(py)?;
        let timeout = convert::timeout_arg(py, timeout)?;
        let config = this.program_config(py, name, command, options)?;
        Ok(ScopedProgram::new(slf.clone().unbind(), config, timeout))
    }

    /// Stops a program (waiting until none of its processes is left) and removes it.
    fn remove(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let targets = Stopping::Named(vec![name.clone()]);
        self.stopping(py, targets, move |s| s.remove(&name))
    }

    /// Starts a program. With `wait`, returns once it is running (up for `start_seconds`),
    /// waiting at most `timeout` seconds (0 to 86400; `None`: no limit).
    #[pyo3(signature = (name, *, wait = true, timeout = None))]
    fn start(
        &self,
        py: Python<'_>,
        name: String,
        wait: bool,
        timeout: Option<f64>,
    ) -> PyResult<Status> {
        let wait = wait_arg(py, wait, timeout)?;
        let st = self.waiting(py, move |s| s.start(&name, wait))?;
        Status::new(py, st)
    }

    /// Stops a program: `stop_signal` to its processes, SIGKILL after `stop_timeout`.
    /// With `wait`, returns once none of them is left.
    #[pyo3(signature = (name, *, wait = true, timeout = None))]
    fn stop(
        &self,
        py: Python<'_>,
        name: String,
        wait: bool,
        timeout: Option<f64>,
    ) -> PyResult<Status> {
        let wait = wait_arg(py, wait, timeout)?;
        let targets = Stopping::Named(vec![name.clone()]);
        let st = self.stopping(py, targets, move |s| s.stop(&name, wait))?;
        Status::new(py, st)
    }

    /// Stops a program if it has a process, then starts it; waits like `start`.
    #[pyo3(signature = (name, *, wait = true, timeout = None))]
    fn restart(
        &self,
        py: Python<'_>,
        name: String,
        wait: bool,
        timeout: Option<f64>,
    ) -> PyResult<Status> {
        let wait = wait_arg(py, wait, timeout)?;
        let st = self.waiting(py, move |s| s.restart(&name, wait))?;
        Status::new(py, st)
    }

    /// Waits until a program is `running` (ready, when it has a `ready` probe), at most
    /// `timeout` seconds (default 30; `None`: no limit): raises `StartError` with its last
    /// error as soon as it goes `fatal`, `Timeout` after the timeout. Starts nothing.
    #[pyo3(
        signature = (name, timeout = Some(30.0)),
        text_signature = "(self, /, name, timeout=30.0)"
    )]
    fn wait(&self, py: Python<'_>, name: String, timeout: Option<f64>) -> PyResult<Status> {
        let timeout = convert::timeout_arg(py, timeout)?;
        let st = self.waiting(py, move |s| s.wait(&name, timeout))?;
        Status::new(py, st)
    }

    /// Waits until a program is in `state` (at once if it is), at most `timeout` seconds.
    #[pyo3(signature = (name, state, timeout = None))]
    fn wait_for(
        &self,
        py: Python<'_>,
        name: String,
        state: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Status> {
        let state = convert::state_arg(state)?;
        let timeout = convert::timeout_arg(py, timeout)?;
        let st = self.waiting(py, move |s| s.wait_for(&name, state, timeout))?;
        Status::new(py, st)
    }

    /// One program's status.
    fn status(&self, py: Python<'_>, name: &str) -> PyResult<Status> {
        let st = self.open(py)?.status(name).into_py_result(py)?;
        Status::new(py, st)
    }

    /// Every program's status, sorted by name.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<Status>> {
        let all = self.sup(py)?.list();
        all.into_iter().map(|s| Status::new(py, s)).collect()
    }

    /// One program's config: a dict with the keys of `programs.yml`.
    fn config(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        let cfg = self.open(py)?.config(name).into_py_result(py)?;
        let value = serde_yaml::to_value(&cfg)
            .map_err(|e| PyValueError::new_err(format!("cannot represent the config: {e}")))?;
        convert::from_value(py, &value)
    }

    /// Makes the set of programs equal to `config` (as for the constructor) or to `yaml` (the
    /// text of a programs file); with neither, re-reads the file the supervisor was made
    /// from. Adds new programs, restarts changed ones that were running, removes missing
    /// ones. An invalid config changes nothing.
    #[pyo3(signature = (config = None, *, yaml = None))]
    fn reload(
        &self,
        py: Python<'_>,
        config: Option<&Bound<'_, PyAny>>,
        yaml: Option<&str>,
    ) -> PyResult<ReloadReport> {
        let programs = self.reload_programs(py, config, yaml)?;
        let report = self.waiting(py, move |s| s.reload(programs))?;
        Ok(report.into())
    }

    /// The last `lines` lines of a program's output (`None`: all that is kept, up to 64 KiB),
    /// from memory; bytes that are not UTF-8 are replaced by U+FFFD.
    #[pyo3(
        signature = (name, stream = "stdout", lines = Some(100)),
        text_signature = "(self, /, name, stream='stdout', lines=100)"
    )]
    fn tail(
        &self,
        py: Python<'_>,
        name: &str,
        stream: &str,
        lines: Option<usize>,
    ) -> PyResult<String> {
        let stream = convert::stream_arg(stream)?;
        let bytes = self
            .open(py)?
            .tail(name, stream, TAIL_BYTES)
            .into_py_result(py)?;
        Ok(tail_text(&bytes, lines))
    }

    /// Follows a program's output live, from now on, as an iterator of lines.
    #[pyo3(signature = (name, stream = "stdout"))]
    fn follow(&self, py: Python<'_>, name: &str, stream: &str) -> PyResult<LogFollower> {
        let stream = convert::stream_arg(stream)?;
        let sup = self.open(py)?;
        let inner = sup.follow(name, stream).into_py_result(py)?;
        LogFollower::new(inner, Arc::downgrade(sup))
    }

    /// The first line of a program's output that `regex` matches (Python `re`, with
    /// `search`: anywhere in the line), without its line ending. Looks first through the
    /// output kept in memory (up to 64 KiB), so a line written before the call is found,
    /// then follows new output, at most `timeout` seconds (default 30; `None`: no limit).
    /// A line counts once its newline is written. Raises `Timeout` (a `TimeoutError`)
    /// naming the program and the regex when no line matched in time, `ProgramNotFound`
    /// when the program is removed meanwhile.
    #[pyo3(
        signature = (name, regex, stream = "stdout", timeout = Some(30.0)),
        text_signature = "(self, /, name, regex, stream='stdout', timeout=30.0)"
    )]
    fn wait_for_line(
        &self,
        py: Python<'_>,
        name: &str,
        regex: &Bound<'_, PyAny>,
        stream: &str,
        timeout: Option<f64>,
    ) -> PyResult<String> {
        let stream = convert::stream_arg(stream)?;
        let timeout = convert::optional_timeout(py, timeout)?;
        let pattern = py.import("re")?.call_method1("compile", (regex,))?;
        let sup = self.open(py)?;
        line_wait::wait_for_line(py, sup, name, stream, &pattern, timeout)
    }

    /// Every program's state changes from now on, as an iterator of `Event`.
    fn events(&self, py: Python<'_>) -> PyResult<Events> {
        let sup = self.sup(py)?;
        Events::new(sup.subscribe(), Arc::downgrade(sup))
    }

    /// CPU % and memory of a program's whole process tree (empty when it has no process).
    fn stats(&self, py: Python<'_>, name: &str) -> PyResult<Stats> {
        let sup = self.open(py)?;
        let st = py.detach(|| sup.stats(name)).into_py_result(py)?;
        Ok(st.into())
    }

    /// Stats of every program that has a process, by name.
    fn stats_all(&self, py: Python<'_>) -> PyResult<std::collections::BTreeMap<String, Stats>> {
        let sup = self.sup(py)?;
        let all = py.detach(|| sup.stats_all());
        Ok(all.into_iter().map(|(k, v)| (k, v.into())).collect())
    }

    /// Stops every program and waits until none of their processes is left. Afterwards the
    /// supervisor accepts no more changes. Calling it again does nothing.
    ///
    /// A temp log directory (no `log_dir` given) is removed then, unless a `with` block
    /// around the supervisor raised. Ctrl-C while it waits kills the programs at once
    /// (SIGKILL) instead of waiting out their `stop_timeout`.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        self.shut_down(py)
    }

    /// `gosuv.aio`'s calls: checks the arguments of the call `op` (`args` as the blocking
    /// call's, positional), runs the call on a native thread that never takes the GIL, and
    /// returns its id; `hub` gives its result.
    fn _aio(
        &self,
        py: Python<'_>,
        hub: &AioHub,
        op: &str,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<u64> {
        let call = self.aio_work(py, op, args)?;
        hub.submit_call(py, call)
    }

    /// `gosuv.aio`'s constructor: checks the arguments as `Supervisor(...)` does, makes the
    /// supervisor on a native thread that never takes the GIL, and returns the call's id;
    /// `hub` gives the `Supervisor`.
    #[staticmethod]
    #[pyo3(signature = (hub, config, base_dir, log_dir, subreaper, kill_on_parent_death))]
    fn _aio_new(
        py: Python<'_>,
        hub: &AioHub,
        config: Option<&Bound<'_, PyAny>>,
        base_dir: Option<PathBuf>,
        log_dir: Option<PathBuf>,
        subreaper: bool,
        kill_on_parent_death: bool,
    ) -> PyResult<u64> {
        let base_override = base_dir.map(abs_path).transpose()?;
        let loaded = load(config, base_override.as_deref())?;
        let mut prepared = Prepared::new(
            py,
            loaded,
            log_dir,
            base_override,
            subreaper,
            kill_on_parent_death,
        )?;
        hub.submit(
            py,
            Box::new(move |_| {
                let made = prepared.make();
                aio::finish_with(made, move |py, sup| prepared.finish(sup).into_py_any(py))
            }),
        )
    }

    /// `wait_for_line` for `gosuv.aio`: a `LineWait` whose batches of lines the event loop's
    /// thread matches with `regex` (compiled).
    fn _line_wait(
        &self,
        py: Python<'_>,
        name: String,
        regex: &Bound<'_, PyAny>,
        stream: &str,
        timeout: Option<f64>,
    ) -> PyResult<LineWait> {
        let stream = convert::stream_arg(stream)?;
        let timeout = convert::optional_timeout(py, timeout)?;
        let sup = self.open(py)?.clone();
        let wanted = Wanted {
            name,
            stream,
            regex: Wanted::regex_repr(regex),
            timeout,
        };
        Ok(LineWait::new(sup, wanted))
    }

    /// Sends SIGKILL to the processes of the programs `names` (`None`: every program), on a
    /// native thread, and returns at once: what a Ctrl-C during a `gosuv.aio` stop does.
    #[pyo3(signature = (names = None))]
    fn _kill_now(&self, py: Python<'_>, names: Option<Vec<String>>) -> PyResult<()> {
        let sup = self.sup(py)?.clone();
        let targets = match names {
            Some(n) => Stopping::Named(n),
            None => Stopping::All,
        };
        std::thread::Builder::new()
            .name("gosuv-aio".into())
            .spawn(move || interrupt::kill_now(&[sup], &targets))
            .map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!("cannot start a thread: {e}"))
            })?;
        Ok(())
    }

    fn __contains__(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        Ok(self.sup(py)?.status(name).is_ok())
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.note_kept_logs(py, exc)?;
        self.shut_down(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let names: Vec<String> = match self.sup(py) {
            Ok(s) => s.as_async().names(),
            Err(_) => Vec::new(),
        };
        format!(
            "<gosuv.Supervisor programs={names:?} log_dir={:?}>",
            self.logs.path().display().to_string()
        )
    }
}

/// The last `lines` lines of kept output (`None`: all), as `tail()` gives them.
pub(crate) fn tail_text(bytes: &[u8], lines: Option<usize>) -> String {
    let mut text: &[u8] = match lines {
        Some(n) => gosuv::logs::last_lines(bytes, n),
        None => bytes,
    };
    // A full buffer starts inside a line: leave that partial line out.
    if bytes.len() >= TAIL_BYTES && text.len() == bytes.len() {
        if let Some(i) = text.iter().position(|&b| b == b'\n') {
            text = &text[i + 1..];
        }
    }
    String::from_utf8_lossy(text).into_owned()
}

/// The wait of a start, stop or restart: `None` without `wait`. The timeout is checked
/// either way, so a bad one is refused whether or not it would be used.
fn wait_arg(py: Python<'_>, wait: bool, timeout: Option<f64>) -> PyResult<Option<Duration>> {
    let t = convert::timeout_arg(py, timeout)?;
    Ok(wait.then_some(t))
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if std::process::id() != self.owner_pid {
            // A forked child holds a copy without the runtime's threads: shutting it down
            // would hang, and the programs belong to the parent.
            std::mem::forget(inner);
            return;
        }
        // The programs stop with this object, whoever else still holds the core (a call
        // under way, one a Ctrl-C gave up on): shut down explicitly, then the logs go.
        let logs = self.logs.clone();
        let shut = move || {
            inner.shutdown();
            drop(inner);
            logs.release();
        };
        // Never on an event loop's thread (it would stall for the whole shutdown), and
        // never waiting for a call that holds the core: the reaper thread does it then.
        let elsewhere = Python::try_attach(on_event_loop).unwrap_or(false);
        let shut: Box<dyn FnOnce() + Send> = Box::new(shut);
        let shut = if elsewhere {
            match aio::reap(shut) {
                Ok(()) => return,
                Err(shut) => shut,
            }
        } else {
            shut
        };
        // Stops every program and waits: not with the GIL held.
        let mut slot = Some(shut);
        Python::try_attach(|py| {
            if let Some(shut) = slot.take() {
                py.detach(shut);
            }
        });
        if let Some(shut) = slot {
            shut();
        }
    }
}

/// Whether this thread runs an asyncio event loop (`asyncio._get_running_loop()`).
fn on_event_loop(py: Python<'_>) -> bool {
    py.import("asyncio")
        .and_then(|m| m.call_method0("_get_running_loop"))
        .map(|l| !l.is_none())
        .unwrap_or(false)
}
