//! Python values to and from the core's types: states, streams, timeouts, times, and the
//! YAML-like values that program options are checked as.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gosuv::{ProgramState, Stream};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple, PyType};
use serde_yaml::{Mapping, Value};

use crate::errors::IntoPyResult;

static STATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEZONE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SIGNALS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The `gosuv.State` member for a state.
pub(crate) fn state(py: Python<'_>, s: ProgramState) -> PyResult<Py<PyAny>> {
    let cls = STATE.import(py, "gosuv._state", "State")?;
    Ok(cls.call1((s.as_str(),))?.unbind())
}

/// A state given as a `gosuv.State` or its name (`"running"`).
pub(crate) fn state_arg(v: &Bound<'_, PyAny>) -> PyResult<ProgramState> {
    // `State` is a `str` enum, so both forms extract as the state's name.
    let name: String = v.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "a state is a gosuv.State or its name, not {}",
            type_name(v)
        ))
    })?;
    name.parse().map_err(PyValueError::new_err)
}

/// `"stdout"` or `"stderr"`.
pub(crate) fn stream_arg(s: &str) -> PyResult<Stream> {
    s.parse().map_err(PyValueError::new_err)
}

/// A timeout in seconds, bounded as the core bounds every wait (0 to one day; anything else,
/// NaN and infinities included, is an `InvalidArgument` naming the bound). `None`, no limit,
/// is the longest wait the core accepts, [`gosuv::MAX_WAIT`].
pub(crate) fn timeout_arg(py: Python<'_>, t: Option<f64>) -> PyResult<Duration> {
    Ok(optional_timeout(py, t)?.unwrap_or(gosuv::MAX_WAIT))
}

/// A timeout in seconds bounded as by [`timeout_arg`], or `None` for a wait with no end
/// (for a wait that runs here, in slices, rather than in the core).
pub(crate) fn optional_timeout(py: Python<'_>, t: Option<f64>) -> PyResult<Option<Duration>> {
    t.map(gosuv::wait_limit).transpose().into_py_result(py)
}

/// A time as an aware `datetime` in UTC.
pub(crate) fn datetime(py: Python<'_>, t: SystemTime) -> PyResult<Py<PyAny>> {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    };
    let utc = TIMEZONE
        .import(py, "datetime", "timezone")?
        .getattr("utc")?;
    let dt = DATETIME.import(py, "datetime", "datetime")?;
    Ok(dt.call_method1("fromtimestamp", (secs, utc))?.unbind())
}

/// An absolute path from a `str` or `os.PathLike`; relative ones resolve against the current
/// directory, as Python's own file functions do.
pub(crate) fn abs_path(p: PathBuf) -> PyResult<PathBuf> {
    std::path::absolute(&p)
        .map_err(|e| PyValueError::new_err(format!("cannot make {} absolute: {e}", p.display())))
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an unknown type".into())
}

/// Converts a Python value of a program option into the value the core's validation reads:
/// `None`, `bool`, `int`, `float`, `str`, `os.PathLike`, `signal.Signals` (by name),
/// mappings with `str` keys and lists or tuples of these. `key` names the option in errors.
pub(crate) fn to_value(v: &Bound<'_, PyAny>, key: &str) -> PyResult<Value> {
    let py = v.py();
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.is_instance(SIGNALS.import(py, "signal", "Signals")?)? {
        let name: String = v.getattr("name")?.extract()?;
        return Ok(Value::String(name));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(n) = v.extract::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        if let Ok(n) = v.extract::<u64>() {
            return Ok(Value::Number(n.into()));
        }
        return Err(PyValueError::new_err(format!("`{key}`: {v} is too large")));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Value::Number(f.value().into()));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if v.hasattr("__fspath__")? {
        let p: PathBuf = v.extract()?;
        return Ok(Value::String(p.to_string_lossy().into_owned()));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (i, item) in v.try_iter()?.enumerate() {
            items.push(to_value(&item?, &format!("{key}[{i}]"))?);
        }
        return Ok(Value::Sequence(items));
    }
    if let Ok(m) = v.cast::<PyMapping>() {
        let mut out = Mapping::new();
        for item in m.items()?.try_iter()? {
            let (k, val): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            let k: String = k.extract().map_err(|_| {
                PyTypeError::new_err(format!("`{key}`: keys must be str, not {}", type_name(&k)))
            })?;
            let inner = to_value(&val, &format!("{key}.{k}"))?;
            out.insert(Value::String(k), inner);
        }
        return Ok(Value::Mapping(out));
    }
    Err(PyTypeError::new_err(format!(
        "`{key}`: cannot use a value of type {} (use str, int, bool, a list or a dict)",
        type_name(v)
    )))
}

/// A command is a `str` (a shell command line) or a list or tuple of `str` (an argv); paths
/// (`os.PathLike`) count as `str`. Anything else is a `TypeError`, as for any argument of the
/// wrong type.
fn check_command(command: &Bound<'_, PyAny>) -> PyResult<()> {
    let text = |v: &Bound<'_, PyAny>| -> PyResult<bool> {
        Ok(v.is_instance_of::<PyString>() || v.hasattr("__fspath__")?)
    };
    let ok = if command.is_instance_of::<PyList>() || command.is_instance_of::<PyTuple>() {
        let mut all = true;
        for item in command.try_iter()? {
            all &= text(&item?)?;
        }
        all
    } else {
        text(command)?
    };
    if ok {
        return Ok(());
    }
    Err(PyTypeError::new_err(format!(
        "`command` is a str (a command line run by /bin/sh -c) or a list of str (an argv), \
         not {}",
        describe(command)
    )))
}

/// A value's type for a message; a list's items' types too.
fn describe(v: &Bound<'_, PyAny>) -> String {
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let items: Vec<String> = v
            .try_iter()
            .map(|it| it.filter_map(Result::ok).map(|i| type_name(&i)).collect())
            .unwrap_or_default();
        format!("a {} of {}", type_name(v), items.join(", "))
    } else if v.is_none() {
        "None".into()
    } else {
        type_name(v)
    }
}

/// The options of one program, `name` and `command` first, as the mapping the core checks.
pub(crate) fn program_value(
    name: &str,
    command: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Value> {
    let mut m = Mapping::new();
    m.insert("name".into(), Value::String(name.to_owned()));
    check_command(command)?;
    m.insert("command".into(), to_value(command, "command")?);
    if let Some(opts) = options {
        for (k, v) in opts.iter() {
            let k: String = k.extract()?;
            let value = if k == "umask" && v.is_exact_instance_of::<PyInt>() {
                // Python writes a mode as 0o022; the config's form is its octal digits.
                Value::String(format!("{:o}", v.extract::<u32>()?))
            } else {
                to_value(&v, &k)?
            };
            m.insert(Value::String(k), value);
        }
    }
    Ok(Value::Mapping(m))
}

/// A YAML value as a Python value (for a program's config read back).
pub(crate) fn from_value(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any().unbind()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any().unbind()
            } else {
                n.as_f64()
                    .unwrap_or(f64::NAN)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind()
            }
        }
        Value::String(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Sequence(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(from_value(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Mapping(m) => {
            let dict = PyDict::new(py);
            for (k, val) in m {
                dict.set_item(from_value(py, k)?, from_value(py, val)?)?;
            }
            dict.into_any().unbind()
        }
        Value::Tagged(t) => from_value(py, &t.value)?,
    })
}
