//! `ready`, `health` and `depends_on`: how gosuv knows a start succeeded, that a running
//! program is still well, and what must run before it.
//!
//! ```yaml
//! ready:                 # exactly one of http / tcp / exec / log / notify
//!   http: http://127.0.0.1:8080/healthz   # any 2xx or 3xx
//!   interval: 100ms      # between attempts (not for log/notify, which are pushed)
//!   timeout: 60s         # not ready by then: a failed start
//! health:                # while running: http / tcp / exec
//!   tcp: 127.0.0.1:8080
//!   interval: 10s
//!   timeout: 2s          # one attempt
//!   failures: 3          # in a row: restart
//! depends_on: [db, {name: migrate, condition: exited_ok}]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_yaml::Value;

use super::program::{describe, parse_command, want_string, Command, ProgramConfig};
use super::{Collector, Seg, MAX_DURATION_SECS};

/// What a probe checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeCheck {
    /// An HTTP GET of this `http://` URL answers 2xx or 3xx.
    Http(String),
    /// A connection to `host:port`, or `unix:/path`, succeeds.
    Tcp(String),
    /// This command (run like the program's, with its environment, directory and user)
    /// exits 0.
    Exec(Command),
    /// A line of the program's stdout or stderr matches this regex (ready only).
    Log(String),
    /// The program sends `READY=1` on `$NOTIFY_SOCKET` (sd_notify; ready only).
    Notify,
}

impl ProbeCheck {
    /// The key it is written with.
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeCheck::Http(_) => "http",
            ProbeCheck::Tcp(_) => "tcp",
            ProbeCheck::Exec(_) => "exec",
            ProbeCheck::Log(_) => "log",
            ProbeCheck::Notify => "notify",
        }
    }

    /// Whether the program tells (log, notify) rather than gosuv asking at intervals.
    pub fn is_pushed(&self) -> bool {
        matches!(self, ProbeCheck::Log(_) | ProbeCheck::Notify)
    }

    fn serialize_into<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        match self {
            ProbeCheck::Http(u) => m.serialize_entry("http", u),
            ProbeCheck::Tcp(t) => m.serialize_entry("tcp", t),
            ProbeCheck::Exec(c) => m.serialize_entry("exec", c),
            ProbeCheck::Log(r) => m.serialize_entry("log", r),
            ProbeCheck::Notify => m.serialize_entry("notify", &true),
        }
    }
}

/// The `ready` probe: a start has succeeded when it first passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyProbe {
    pub check: ProbeCheck,
    /// Between attempts of an asked probe (http, tcp, exec); each attempt is bounded by it
    /// too, so attempts never overlap.
    pub interval: Duration,
    /// Not ready by then (from the spawn): a failed start.
    pub timeout: Duration,
}

impl ReadyProbe {
    /// The defaults but the check.
    pub fn new(check: ProbeCheck) -> Self {
        ReadyProbe {
            check,
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(60),
        }
    }
}

/// The `health` probe, while the program is running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthProbe {
    pub check: ProbeCheck,
    /// Between attempts.
    pub interval: Duration,
    /// One attempt's limit.
    pub timeout: Duration,
    /// Failed attempts in a row that restart the program.
    pub failures: u32,
}

impl HealthProbe {
    /// The defaults but the check.
    pub fn new(check: ProbeCheck) -> Self {
        HealthProbe {
            check,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            failures: 3,
        }
    }
}

impl Serialize for ReadyProbe {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        self.check.serialize_into(&mut m)?;
        if !self.check.is_pushed() {
            m.serialize_entry("interval", &format_duration(self.interval))?;
        }
        m.serialize_entry("timeout", &format_duration(self.timeout))?;
        m.end()
    }
}

impl Serialize for HealthProbe {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        self.check.serialize_into(&mut m)?;
        m.serialize_entry("interval", &format_duration(self.interval))?;
        m.serialize_entry("timeout", &format_duration(self.timeout))?;
        m.serialize_entry("failures", &self.failures)?;
        m.end()
    }
}

/// When a dependency counts as satisfied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// It is `running` (ready, where it has a `ready` probe).
    #[default]
    Ready,
    /// Its process exists (`starting` or `running`).
    Started,
    /// It ran and exited with one of its `exit_codes`.
    ExitedOk,
}

impl Condition {
    /// Its name in the config: `ready`, `started` or `exited_ok`.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Ready => "ready",
            Condition::Started => "started",
            Condition::ExitedOk => "exited_ok",
        }
    }
}

/// One entry of `depends_on`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// The program depended on.
    pub name: String,
    /// When it counts as satisfied.
    pub condition: Condition,
}

impl Serialize for Dependency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.condition == Condition::Ready {
            return s.serialize_str(&self.name);
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("condition", &self.condition)?;
        m.end()
    }
}

/// `250ms`, `10s`, `2m`, `1h` (or a plain number of seconds).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        format!("{ms}ms")
    } else {
        let s = d.as_secs();
        if s >= 3600 && s % 3600 == 0 {
            format!("{}h", s / 3600)
        } else if s >= 60 && s % 60 == 0 {
            format!("{}m", s / 60)
        } else {
            format!("{s}s")
        }
    }
}

/// Reads a duration: a number of seconds, or a string with a unit (`250ms`, `10s`, `2m`,
/// `1h`). `None` with the reason when it is not one, or is over a day.
pub fn parse_duration(v: &Value) -> Result<Duration, String> {
    let found = || {
        format!(
            "expected a duration such as 250ms, 10s, 2m or 1h, found {}",
            short(v)
        )
    };
    let d = match v {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(s), _) => Duration::from_secs(s.min(MAX_DURATION_SECS + 1)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 => {
                Duration::try_from_secs_f64(f.min((MAX_DURATION_SECS + 1) as f64))
                    .map_err(|_| found())?
            }
            _ => return Err(found()),
        },
        Value::String(s) => {
            let t = s.trim();
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let n: f64 = num.parse().map_err(|_| found())?;
            let secs = match unit.trim() {
                "ms" => n / 1000.0,
                "" | "s" => n,
                "m" => n * 60.0,
                "h" => n * 3600.0,
                _ => return Err(found()),
            };
            if !secs.is_finite() {
                return Err(found());
            }
            Duration::try_from_secs_f64(secs.min((MAX_DURATION_SECS + 1) as f64))
                .map_err(|_| found())?
        }
        _ => return Err(found()),
    };
    if d > Duration::from_secs(MAX_DURATION_SECS) {
        return Err(format!(
            "{} is too long: at most {MAX_DURATION_SECS}s (one day)",
            short(v)
        ));
    }
    // Kept, and written back, in whole milliseconds: finer would change on a round trip.
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "{} is finer than a millisecond: give whole milliseconds (250ms, 1.5s)",
            short(v)
        ));
    }
    Ok(d)
}

fn short(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        other => describe(other).to_string(),
    }
}

fn want_duration(
    c: &mut Collector<'_>,
    path: &[Seg],
    v: &Value,
    at_least: Duration,
) -> Option<Duration> {
    match parse_duration(v) {
        Ok(d) if d < at_least => {
            c.error(
                path,
                format!(
                    "{} is too short: at least {}",
                    format_duration(d),
                    format_duration(at_least)
                ),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            c.error(path, e);
            None
        }
    }
}

/// The shortest interval between asked attempts (a shorter one would be a busy loop).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Reads the check of a probe mapping: exactly one of the kinds `allowed`; the other keys
/// are returned for the caller.
fn parse_check(
    c: &mut Collector<'_>,
    path: &[Seg],
    map: &serde_yaml::Mapping,
    allowed: &[&str],
    base: &std::path::Path,
) -> Option<ProbeCheck> {
    let kinds: Vec<(&str, &Value)> = map
        .iter()
        .filter_map(|(k, v)| k.as_str().map(|k| (k, v)))
        .filter(|(k, _)| ["http", "tcp", "exec", "log", "notify"].contains(k))
        .collect();
    let what = allowed.join(", ");
    let [(kind, v)] = kinds.as_slice() else {
        if kinds.is_empty() {
            c.error(path, format!("give exactly one of: {what}"));
        } else {
            let names: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
            c.error(
                path,
                format!("{} given: give exactly one of {what}", names.join(" and ")),
            );
        }
        return None;
    };
    let kp: Vec<Seg> = path
        .iter()
        .cloned()
        .chain([Seg::Key((*kind).into())])
        .collect();
    if !allowed.contains(kind) {
        c.error(
            &kp,
            format!("`{kind}` cannot be used here: use one of {what}"),
        );
        return None;
    }
    let _ = base;
    match *kind {
        "http" => {
            let url = want_string(c, &kp, v)?;
            match crate::probe::check_http_url(&url) {
                Ok(()) => Some(ProbeCheck::Http(url)),
                Err(e) => {
                    c.error(&kp, e);
                    None
                }
            }
        }
        "tcp" => {
            let target = want_string(c, &kp, v)?;
            match crate::probe::check_tcp_target(&target) {
                Ok(()) => Some(ProbeCheck::Tcp(target)),
                Err(e) => {
                    c.error(&kp, e);
                    None
                }
            }
        }
        "exec" => parse_command(c, &kp, (*v).clone()).map(ProbeCheck::Exec),
        "log" => {
            let re = want_string(c, &kp, v)?;
            match crate::probe::check_log_regex(&re) {
                Ok(_) => Some(ProbeCheck::Log(re)),
                Err(e) => {
                    c.error(&kp, e);
                    None
                }
            }
        }
        _ => match v {
            Value::Bool(true) => Some(ProbeCheck::Notify),
            _ => {
                c.error(&kp, "notify: true is the only value");
                None
            }
        },
    }
}

fn want_map<'v>(
    c: &mut Collector<'_>,
    path: &[Seg],
    v: &'v Value,
    key: &str,
) -> Option<&'v serde_yaml::Mapping> {
    match v {
        Value::Mapping(m) => Some(m),
        other => {
            c.error(
                path,
                format!(
                    "`{key}` is a mapping with one probe (http, tcp, exec ...), found {}",
                    describe(other)
                ),
            );
            None
        }
    }
}

/// Reads `ready`.
pub(crate) fn parse_ready(
    c: &mut Collector<'_>,
    path: &[Seg],
    v: &Value,
    base: &std::path::Path,
) -> Option<Option<ReadyProbe>> {
    if v.is_null() {
        return Some(None);
    }
    let map = want_map(c, path, v, "ready")?;
    let before = c.errors.len();
    let check = parse_check(
        c,
        path,
        map,
        &["http", "tcp", "exec", "log", "notify"],
        base,
    );
    let mut p = ReadyProbe::new(check.clone().unwrap_or(ProbeCheck::Notify));
    for (k, val) in map {
        let key = k.as_str().unwrap_or_default();
        let kp: Vec<Seg> = path.iter().cloned().chain([Seg::Key(key.into())]).collect();
        match key {
            "http" | "tcp" | "exec" | "log" | "notify" => {}
            // Told probes (log, notify) are not asked at intervals: a value would be
            // ignored, so it is refused.
            "interval" if check.as_ref().is_some_and(ProbeCheck::is_pushed) => c.error(
                &kp,
                "`interval` is for http, tcp and exec probes: log and notify are told, not asked",
            ),
            "interval" => {
                if let Some(d) = want_duration(c, &kp, val, MIN_INTERVAL) {
                    p.interval = d;
                }
            }
            "timeout" => {
                if let Some(d) = want_duration(c, &kp, val, Duration::from_millis(1)) {
                    p.timeout = d;
                }
            }
            other => c.error(
                &kp,
                super::keys::unknown_key(
                    other,
                    &[
                        "http", "tcp", "exec", "log", "notify", "interval", "timeout",
                    ],
                    "`ready`'s keys",
                ),
            ),
        }
    }
    (c.errors.len() == before && check.is_some()).then_some(Some(p))
}

/// Reads `health`.
pub(crate) fn parse_health(
    c: &mut Collector<'_>,
    path: &[Seg],
    v: &Value,
    base: &std::path::Path,
) -> Option<Option<HealthProbe>> {
    if v.is_null() {
        return Some(None);
    }
    let map = want_map(c, path, v, "health")?;
    let before = c.errors.len();
    let check = parse_check(c, path, map, &["http", "tcp", "exec"], base);
    let mut p = HealthProbe::new(check.clone().unwrap_or(ProbeCheck::Notify));
    for (k, val) in map {
        let key = k.as_str().unwrap_or_default();
        let kp: Vec<Seg> = path.iter().cloned().chain([Seg::Key(key.into())]).collect();
        match key {
            "http" | "tcp" | "exec" | "log" | "notify" => {}
            "interval" => {
                if let Some(d) = want_duration(c, &kp, val, MIN_INTERVAL) {
                    p.interval = d;
                }
            }
            "timeout" => {
                if let Some(d) = want_duration(c, &kp, val, Duration::from_millis(1)) {
                    p.timeout = d;
                }
            }
            "failures" => match val.as_u64() {
                Some(n @ 1..=1000) => p.failures = n as u32,
                _ => c.error(
                    &kp,
                    format!(
                        "expected a whole number from 1 to 1000, found {}",
                        short(val)
                    ),
                ),
            },
            other => c.error(
                &kp,
                super::keys::unknown_key(
                    other,
                    &["http", "tcp", "exec", "interval", "timeout", "failures"],
                    "`health`'s keys",
                ),
            ),
        }
    }
    (c.errors.len() == before && check.is_some()).then_some(Some(p))
}

/// The most dependencies one program may list.
const MAX_DEPENDENCIES: usize = 1000;

/// Reads `depends_on`: names, or `{name, condition}`.
pub(crate) fn parse_depends_on(
    c: &mut Collector<'_>,
    path: &[Seg],
    v: &Value,
) -> Option<Vec<Dependency>> {
    let single;
    let items: &[Value] = match v {
        Value::Null => return Some(Vec::new()),
        Value::Sequence(items) => items,
        Value::String(_) => {
            single = [v.clone()];
            &single
        }
        other => {
            c.error(
                path,
                format!(
                    "`depends_on` is a list of program names (or {{name, condition}}), found {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    let before = c.errors.len();
    if items.len() > MAX_DEPENDENCIES {
        c.error(
            path,
            format!("{} dependencies: at most {MAX_DEPENDENCIES}", items.len()),
        );
        return None;
    }
    let mut out: Vec<Dependency> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let ip: Vec<Seg> = path.iter().cloned().chain([Seg::Index(i)]).collect();
        let dep = match item {
            Value::String(name) => Some(Dependency {
                name: name.clone(),
                condition: Condition::Ready,
            }),
            Value::Mapping(m) => {
                let mut name = None;
                let mut condition = Condition::Ready;
                for (k, val) in m {
                    let key = k.as_str().unwrap_or_default();
                    let kp: Vec<Seg> = ip.iter().cloned().chain([Seg::Key(key.into())]).collect();
                    match (key, val.as_str()) {
                        ("name", Some(n)) => name = Some(n.to_string()),
                        ("condition", Some("ready")) => condition = Condition::Ready,
                        ("condition", Some("started")) => condition = Condition::Started,
                        ("condition", Some("exited_ok")) => condition = Condition::ExitedOk,
                        ("condition", _) => c.error(
                            &kp,
                            format!(
                                "condition is ready, started or exited_ok, found {}",
                                short(val)
                            ),
                        ),
                        ("name", _) => c.error(&kp, "name is a program's name"),
                        (other, _) => c.error(
                            &kp,
                            super::keys::unknown_key(
                                other,
                                &["name", "condition"],
                                "a dependency's keys",
                            ),
                        ),
                    }
                }
                if name.is_none() {
                    c.error(&ip, "a dependency needs a `name`");
                }
                name.map(|name| Dependency { name, condition })
            }
            other => {
                c.error(
                    &ip,
                    format!(
                        "a dependency is a program name or {{name, condition}}, found {}",
                        describe(other)
                    ),
                );
                None
            }
        };
        if let Some(d) = dep {
            if let Err(e) = super::program::validate_name(&d.name) {
                c.error(&ip, e);
            } else if !seen.insert(d.name.clone()) {
                c.error(&ip, format!("'{}' is listed twice", d.name));
            } else {
                out.push(d);
            }
        }
    }
    (c.errors.len() == before).then_some(out)
}

/// Checks the dependencies of a whole set of programs: every name is a program of the set
/// (or of `others`, programs that exist already), none depends on itself, and there is no
/// cycle. Each problem is `(index of the program in `programs`, message)`.
pub fn check_dependencies(
    programs: &[&ProgramConfig],
    others: &BTreeSet<String>,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let by_name: BTreeMap<&str, usize> = programs
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    for (i, p) in programs.iter().enumerate() {
        for d in &p.depends_on {
            if d.name == p.name {
                out.push((i, format!("'{}' depends on itself", p.name)));
            } else if let Some(j) = by_name
                .get(d.name.as_str())
                .filter(|_| d.condition == Condition::ExitedOk)
                .filter(|j| programs[**j].autorestart == super::Autorestart::Always)
            {
                out.push((
                    i,
                    format!(
                        "depends on '{}' exiting (exited_ok), but it restarts after every exit (autorestart: always): give '{}' autorestart: false or unexpected",
                        d.name, programs[*j].name
                    ),
                ));
            } else if !by_name.contains_key(d.name.as_str()) && !others.contains(&d.name) {
                out.push((
                    i,
                    format!(
                        "depends on '{}', which is no program: add it or remove the dependency",
                        d.name
                    ),
                ));
            }
        }
    }
    // Cycles among the set (programs outside it cannot depend back on it through it).
    let mut state = vec![0u8; programs.len()]; // 0 new, 1 on the path, 2 done
    let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
    for start in 0..programs.len() {
        let mut path: Vec<(usize, usize)> = Vec::new(); // (program, next dependency index)
        if state[start] != 0 {
            continue;
        }
        state[start] = 1;
        path.push((start, 0));
        while let Some((at, next)) = path.last().copied() {
            let deps = &programs[at].depends_on;
            if next >= deps.len() {
                state[at] = 2;
                path.pop();
                continue;
            }
            if let Some(last) = path.last_mut() {
                last.1 += 1;
            }
            let Some(&to) = by_name.get(deps[next].name.as_str()) else {
                continue;
            };
            match state[to] {
                0 => {
                    state[to] = 1;
                    path.push((to, 0));
                }
                1 => {
                    let from = path.iter().position(|(p, _)| *p == to).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[from..].iter().map(|(p, _)| *p).collect();
                    let mut key = cycle.clone();
                    key.sort_unstable();
                    if reported.insert(key) {
                        cycle.push(to);
                        let names: Vec<&str> =
                            cycle.iter().map(|i| programs[*i].name.as_str()).collect();
                        out.push((to, format!("dependency cycle: {}", names.join(" -> "))));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        let d = |s: &str| parse_duration(&Value::String(s.into()));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(d("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(d("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(d("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(
            parse_duration(&Value::Number(5.into())),
            Ok(Duration::from_secs(5))
        );
        assert!(d("25h").is_err_and(|e| e.contains("too long")));
        assert!(d("1e400s").is_err());
        assert!(d("-1s").is_err());
        assert!(d("soon").is_err());
        assert!(parse_duration(&Value::Number(u64::MAX.into())).is_err());
        for (d, s) in [
            (250, "250ms"),
            (10_000, "10s"),
            (120_000, "2m"),
            (3_600_000, "1h"),
        ] {
            assert_eq!(format_duration(Duration::from_millis(d)), s);
        }
    }

    fn parse(text: &str) -> Result<Vec<ProgramConfig>, String> {
        crate::config::parse_programs(text, None, std::path::Path::new("/"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn probes_are_read_and_written_back_the_same() {
        let text = "- name: a\n  command: x\n  ready: {http: \"http://127.0.0.1:8080/healthz\", interval: 250ms, timeout: 2m}\n  health: {tcp: \"unix:/run/a.sock\", interval: 5s, timeout: 1s, failures: 2}\n  start_seconds: 1m\n";
        let ps = parse(text).expect("valid");
        let r = ps[0].ready.clone().expect("ready");
        assert_eq!(
            r.check,
            ProbeCheck::Http("http://127.0.0.1:8080/healthz".into())
        );
        assert_eq!(
            (r.interval, r.timeout),
            (Duration::from_millis(250), Duration::from_secs(120))
        );
        let h = ps[0].health.clone().expect("health");
        assert_eq!(h.check, ProbeCheck::Tcp("unix:/run/a.sock".into()));
        assert_eq!(h.failures, 2);
        assert_eq!(ps[0].start_seconds, 60);
        // Written back (the server's programs.yml), it reads the same.
        let yaml = serde_yaml::to_string(&ps).expect("yaml");
        assert_eq!(parse(&yaml).expect("again"), ps);
        for text in [
            "- name: a\n  command: x\n  ready: {log: \"listening on .*\"}\n",
            "- name: a\n  command: x\n  ready: {notify: true, timeout: 10s}\n",
            "- name: a\n  command: x\n  ready: {exec: [pg_isready, -q]}\n",
        ] {
            let ps = parse(text).expect(text);
            let yaml = serde_yaml::to_string(&ps).expect("yaml");
            assert_eq!(parse(&yaml).expect("again"), ps, "{yaml}");
        }
    }

    /// What would not survive a round trip is refused: an interval on a told probe (it
    /// would be ignored), a duration finer than a millisecond (it would be rounded).
    #[test]
    fn ignored_or_rounded_values_are_refused() {
        let err = parse("- name: a\n  command: x\n  ready: {log: up, interval: 5s}\n")
            .expect_err("interval on log");
        assert!(
            err.to_string()
                .contains("`interval` is for http, tcp and exec probes"),
            "{err}"
        );
        let err = parse("- name: a\n  command: x\n  ready: {notify: true, interval: 1s}\n")
            .expect_err("interval on notify");
        assert!(err.to_string().contains("told, not asked"), "{err}");
        for d in ["1.0005s", "0.0015", "2.5ms"] {
            let text = format!(
                "- name: a\n  command: x\n  ready: {{tcp: \"127.0.0.1:1\", timeout: {d}}}\n"
            );
            let err = parse(&text).expect_err(d);
            assert!(
                err.to_string().contains("finer than a millisecond"),
                "{d}: {err}"
            );
        }
        parse("- name: a\n  command: x\n  ready: {tcp: \"127.0.0.1:1\", timeout: 1.5s, interval: 0.25}\n")
            .expect("whole milliseconds");
    }

    #[test]
    fn every_probe_mistake_is_named_with_its_line() {
        let text = "- name: a\n  command: x\n  ready: {http: \"http://x:1/\", tcp: \"x:1\"}\n- name: b\n  command: x\n  ready:\n    log: \"(\"\n- name: c\n  command: x\n  health: {log: hi}\n- name: d\n  command: x\n  ready: {tcp: nowhere, interval: 1ms}\n- name: e\n  command: x\n  ready: {http: \"https://x/\", colour: red}\n- name: f\n  command: x\n  health: {exec: \"true\", failures: 0}\n- name: g\n  command: x\n  start_seconds: 250ms\n";
        let err = parse(text).expect_err("all wrong");
        for says in [
            "line 3: [0].ready: http and tcp given",
            "line 7: [1].ready.log: invalid log regex",
            "line 10: [2].health.log: `log` cannot be used here",
            "line 13: [3].ready.tcp:",
            "line 13: [3].ready.interval: 1ms is too short",
            "line 16: [4].ready.http:",
            "line 16: [4].ready.colour: unknown key",
            "line 19: [5].health.failures:",
            "line 22: [6].start_seconds: '250ms' is not a whole number of seconds",
        ] {
            assert!(err.contains(says), "missing {says:?} in:\n{err}");
        }
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_found() {
        let mk = |name: &str, deps: &[&str]| {
            let mut p = ProgramConfig::shell(name, "x");
            p.depends_on = deps
                .iter()
                .map(|d| Dependency {
                    name: (*d).into(),
                    condition: Condition::Ready,
                })
                .collect();
            p
        };
        let ps = [
            mk("a", &["b"]),
            mk("b", &["c"]),
            mk("c", &["a"]),
            mk("d", &["zz", "d"]),
        ];
        let refs: Vec<&ProgramConfig> = ps.iter().collect();
        let found: Vec<String> = check_dependencies(&refs, &BTreeSet::new())
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert!(
            found
                .iter()
                .any(|m| m == "dependency cycle: a -> b -> c -> a"),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|m| m.contains("'zz', which is no program")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|m| m.contains("'d' depends on itself")),
            "{found:?}"
        );
    }
}
