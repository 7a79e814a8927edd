//! `GET /api/programs`: every program as JSON, written straight into one buffer; whole, or
//! only the keys a caller asks for with `?fields=` (what `gosuv status` shows is a fifth of
//! a program's object, which is mostly its config).

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use gosuv::{ProcessStats, ProgramConfig, ProgramStatus};
use serde::ser::{Impossible, SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

use super::api::{StatusView, STATUS_KEYS};
use super::error::{ApiError, ApiResult};
use super::AppState;

/// The keys `?fields=` keeps of each program (`fields=name,state,pid`): any of a program's
/// keys, config or status.
#[derive(Debug)]
pub struct Fields {
    keys: Vec<&'static str>,
    /// The keys, in the order of a program's keys, comma-separated: the same for the same
    /// set of keys however it was asked for.
    key: String,
    /// Whether a key of the config other than `name` is asked for.
    config: bool,
}

impl Fields {
    /// Reads a comma-separated list of keys.
    ///
    /// # Errors
    /// 400 for a key that is not one of a program's, or a list with no key.
    pub fn parse(list: &str) -> ApiResult<Self> {
        let mut keys: Vec<&'static str> = Vec::new();
        for item in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            let known = gosuv::config::PROGRAM_KEYS
                .iter()
                .chain(STATUS_KEYS.iter())
                .find(|k| **k == item);
            match known {
                Some(k) if !keys.contains(k) => keys.push(k),
                Some(_) => {}
                None => {
                    return Err(ApiError::bad_request(format!(
                        "fields: '{item}' is not a key of a program; the keys are {}, {}",
                        gosuv::config::PROGRAM_KEYS.join(", "),
                        STATUS_KEYS.join(", ")
                    )))
                }
            }
        }
        if keys.is_empty() {
            return Err(ApiError::bad_request(
                "fields= names no key: list the keys wanted, e.g. fields=name,state,pid",
            ));
        }
        let config = keys
            .iter()
            .any(|k| *k != "name" && gosuv::config::PROGRAM_KEYS.contains(k));
        let key = gosuv::config::PROGRAM_KEYS
            .iter()
            .chain(STATUS_KEYS.iter())
            .filter(|k| keys.contains(k))
            .copied()
            .collect::<Vec<_>>()
            .join(",");
        Ok(Fields { keys, key, config })
    }

    /// The set of keys as one text, equal for equal sets.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn contains(&self, key: &str) -> bool {
        self.keys.contains(&key)
    }

    /// Whether CPU or memory is asked for (else no stats are taken).
    pub fn wants_stats(&self) -> bool {
        self.contains("cpu_percent") || self.contains("rss_bytes")
    }
}

/// Each program's config as JSON (`{...}`), kept while the config is the same one: a
/// config changes only through an update, while the list is rebuilt twice a second.
#[derive(Default)]
pub struct ConfigJsonCache {
    entries: HashMap<String, ConfigJson>,
    /// Counts the lists made: an entry the last one did not use is dropped.
    pass: u64,
}

struct ConfigJson {
    config: Arc<ProgramConfig>,
    json: Box<[u8]>,
    pass: u64,
}

impl ConfigJsonCache {
    /// How many configs it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The JSON of `c`, kept or made now (`None`, logged, if it cannot be encoded).
    fn json(&mut self, c: &Arc<ProgramConfig>) -> Option<&[u8]> {
        let pass = self.pass;
        let kept = self
            .entries
            .get(&c.name)
            .is_some_and(|e| Arc::ptr_eq(&e.config, c));
        if !kept {
            match serde_json::to_vec(&**c) {
                Ok(json) => {
                    let e = ConfigJson {
                        config: c.clone(),
                        json: json.into_boxed_slice(),
                        pass,
                    };
                    self.entries.insert(c.name.clone(), e);
                }
                Err(e) => {
                    tracing::error!(program = %c.name, "cannot encode the program's config: {e}");
                    return None;
                }
            }
        }
        let e = self.entries.get_mut(&c.name)?;
        e.pass = pass;
        Some(&e.json)
    }
}

/// The config and the status of each program in both lists (sorted by name, both: a
/// program added or removed between the two reads is in one only, and left out).
fn joined<'a>(
    configs: &'a [Arc<ProgramConfig>],
    statuses: &'a [ProgramStatus],
) -> impl Iterator<Item = (&'a Arc<ProgramConfig>, &'a ProgramStatus)> + 'a {
    let mut c = configs.iter().peekable();
    let mut s = statuses.iter().peekable();
    std::iter::from_fn(move || loop {
        let (cn, sn) = (c.peek()?, s.peek()?);
        match cn.name.as_str().cmp(sn.name.as_str()) {
            Ordering::Less => {
                c.next();
            }
            Ordering::Greater => {
                s.next();
            }
            Ordering::Equal => return Some((c.next()?, s.next()?)),
        }
    })
}

/// The stats of programs asked for by name in ascending order: a walk along the map, not a
/// search from its root for each (linear in the number of programs, not n log n).
pub struct StatsByName<'a> {
    stats: std::iter::Peekable<std::collections::btree_map::Iter<'a, String, ProcessStats>>,
}

impl<'a> StatsByName<'a> {
    /// A walk from the first program of `stats`.
    pub fn new(stats: &'a BTreeMap<String, ProcessStats>) -> Self {
        StatsByName {
            stats: stats.iter().peekable(),
        }
    }

    /// The stats of `name`, which must not come before a name asked for earlier.
    pub fn get(&mut self, name: &str) -> Option<&'a ProcessStats> {
        while let Some((n, _)) = self.stats.peek() {
            match n.as_str().cmp(name) {
                Ordering::Less => {
                    self.stats.next();
                }
                Ordering::Equal => return self.stats.next().map(|(_, s)| s),
                Ordering::Greater => return None,
            }
        }
        None
    }
}

/// Builds the `GET /api/programs` body from one snapshot of configs, statuses and stats
/// (each list sorted by name). Each config's JSON comes from `cache` while its config is
/// the same one (the cache then holds the listed programs only).
pub fn programs_json(
    configs: &[Arc<ProgramConfig>],
    statuses: &[ProgramStatus],
    stats: &BTreeMap<String, ProcessStats>,
    cache: &mut ConfigJsonCache,
) -> Vec<u8> {
    cache.pass += 1;
    let mut by_name = StatsByName::new(stats);
    let mut out = Vec::with_capacity(700 * configs.len() + 2);
    out.push(b'[');
    for (c, s) in joined(configs, statuses) {
        let Some(config) = cache.json(c) else {
            continue;
        };
        // `{config}` and `{status}` join as one `{config, status}`: the config without its
        // `}`, then the status with its `{` made a comma.
        let Some((b'}', head)) = config.split_last() else {
            continue;
        };
        let mark = out.len();
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(head);
        let at = out.len();
        if let Err(e) = serde_json::to_writer(&mut out, &StatusView::new(s, by_name.get(&c.name))) {
            tracing::error!(program = %c.name, "cannot encode the program's status: {e}");
            out.truncate(mark);
            continue;
        }
        if out.len() - at <= 2 {
            // An empty status (`{}`): the config's object is closed alone.
            out.truncate(at);
            out.push(b'}');
        } else if head.len() > 1 {
            out[at] = b',';
        } else {
            // An empty config: the status's object alone.
            out.remove(at);
        }
    }
    out.push(b']');
    let pass = cache.pass;
    cache.entries.retain(|_, e| e.pass == pass);
    out
}

/// The programs' list with only the keys of `fields` in each program's object (in the
/// order of the whole object; a key the whole object leaves out stays out).
pub fn selected_json(
    configs: &[Arc<ProgramConfig>],
    statuses: &[ProgramStatus],
    stats: &BTreeMap<String, ProcessStats>,
    fields: &Fields,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(64 * fields.keys.len() * statuses.len() + 2);
    let mut ser = serde_json::Serializer::new(&mut out);
    let mut seq = ser.serialize_seq(Some(statuses.len()))?;
    let plans = Plans::default();
    let mut by_name = StatsByName::new(stats);
    for (config, status) in joined(configs, statuses) {
        seq.serialize_element(&Selected {
            config,
            status: StatusView::new(status, by_name.get(&status.name)),
            fields,
            plans: &plans,
        })?;
    }
    SerializeSeq::end(seq)?;
    Ok(out)
}

/// The answer to `GET /api/programs?stats=false`, whole or with some `fields`: made now
/// (it costs no pass over the processes, and is not kept).
pub fn without_stats(st: &AppState, fields: Option<&Fields>) -> ApiResult<Response> {
    let version = st.config_version();
    let configs = st.sup().configs_shared();
    let statuses = st.sup().list();
    let body = match fields {
        None => programs_json(&configs, &statuses, &BTreeMap::new(), &mut st.config_json()),
        Some(f) => selected_json(&configs, &statuses, &BTreeMap::new(), f)
            .map_err(|e| ApiError::internal(format!("cannot encode the programs: {e}")))?,
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::HeaderName::from_static(super::CONFIG_VERSION_HEADER),
                version,
            ),
        ],
        body,
    )
        .into_response())
}

/// One program's object with only some of its keys.
struct Selected<'a> {
    config: &'a ProgramConfig,
    status: StatusView<'a>,
    fields: &'a Fields,
    plans: &'a Plans,
}

/// Whether each field of the config and of the status is kept, in the order a struct
/// gives its fields (the same every time): learned from the first program, so that the
/// others cost a comparison of pointers a field, not a search among the keys asked for.
#[derive(Default)]
struct Plans {
    config: RefCell<Vec<(&'static str, bool)>>,
    status: RefCell<Vec<(&'static str, bool)>>,
}

impl Serialize for Selected<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if self.fields.config {
            self.config.serialize(KeptFields {
                map: &mut map,
                fields: self.fields,
                plan: &mut self.plans.config.borrow_mut(),
                at: 0,
            })?;
        } else if self.fields.contains("name") {
            map.serialize_entry("name", &self.config.name)?;
        }
        self.status.serialize(KeptFields {
            map: &mut map,
            fields: self.fields,
            plan: &mut self.plans.status.borrow_mut(),
            at: 0,
        })?;
        map.end()
    }
}

/// Serializes a struct as the entries of `map` that `fields` keeps: what [`Selected`]
/// passes the config and the status through. Anything but a struct is an error.
struct KeptFields<'a, M> {
    map: &'a mut M,
    fields: &'a Fields,
    /// What was decided for each field so far, in order (see [`Plans`]).
    plan: &'a mut Vec<(&'static str, bool)>,
    /// The place of the next field.
    at: usize,
}

impl<M> KeptFields<'_, M> {
    /// Whether the next field, `key`, is kept.
    fn keeps(&mut self, key: &'static str) -> bool {
        let at = self.at;
        self.at += 1;
        match self.plan.get(at) {
            Some((k, keep)) if std::ptr::eq(*k, key) => *keep,
            _ => {
                let keep = self.fields.contains(key);
                if at < self.plan.len() {
                    self.plan[at] = (key, keep);
                } else if at == self.plan.len() {
                    self.plan.push((key, keep));
                }
                keep
            }
        }
    }
}

impl<M: SerializeMap> SerializeStruct for KeptFields<'_, M> {
    type Ok = ();
    type Error = M::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), M::Error> {
        if self.keeps(key) {
            self.map.serialize_entry(key, value)?;
        }
        Ok(())
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), M::Error> {
        self.keeps(key);
        Ok(())
    }

    fn end(self) -> Result<(), M::Error> {
        Ok(())
    }
}

/// What [`KeptFields`] answers for a value that is not a struct.
fn not_a_struct<E: serde::ser::Error>() -> E {
    E::custom("only a struct's fields can be selected")
}

impl<'a, M: SerializeMap> Serializer for KeptFields<'a, M> {
    type Ok = ();
    type Error = M::Error;
    type SerializeSeq = Impossible<(), M::Error>;
    type SerializeTuple = Impossible<(), M::Error>;
    type SerializeTupleStruct = Impossible<(), M::Error>;
    type SerializeTupleVariant = Impossible<(), M::Error>;
    type SerializeMap = Impossible<(), M::Error>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), M::Error>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, M::Error> {
        Ok(self)
    }

    fn serialize_bool(self, _: bool) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_i8(self, _: i8) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_i16(self, _: i16) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_i32(self, _: i32) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_i64(self, _: i64) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_u8(self, _: u8) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_u16(self, _: u16) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_u32(self, _: u32) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_u64(self, _: u64) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_f32(self, _: f32) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_f64(self, _: f64) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_char(self, _: char) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_str(self, _: &str) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_none(self) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_unit(self) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), M::Error> {
        Err(not_a_struct())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, M::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, M::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, M::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, M::Error> {
        Err(not_a_struct())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, M::Error> {
        Err(not_a_struct())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, M::Error> {
        Err(not_a_struct())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::api::ProgramView;
    use gosuv::ProgramState;
    use serde_json::Value;

    fn status(name: &str) -> ProgramStatus {
        ProgramStatus {
            name: name.into(),
            state: ProgramState::Stopped,
            pid: None,
            started_at: None,
            uptime_secs: None,
            exit_code: Some(3),
            exit_signal: None,
            restarts: 2,
            last_error: Some("went wrong".into()),
            log_errors: 0,
            ownership: None,
            ready_at: None,
            status_text: None,
            health: None,
            waiting_for: Vec::new(),
        }
    }

    fn config(name: &str, cmd: &str) -> Arc<ProgramConfig> {
        Arc::new(ProgramConfig::new(name, gosuv::Command::Shell(cmd.into())))
    }

    /// Each program's whole object, made in one piece.
    fn whole(configs: &[Arc<ProgramConfig>], statuses: &[ProgramStatus]) -> Value {
        let views: Vec<Value> = configs
            .iter()
            .zip(statuses)
            .map(|(c, s)| serde_json::to_value(ProgramView::new(c, s, None)).unwrap())
            .collect();
        Value::Array(views)
    }

    /// The list made from cached config texts is the list made in one piece, and a changed
    /// config is encoded again.
    #[test]
    fn the_list_joins_configs_and_statuses_as_one_object_each() {
        let statuses = vec![status("a"), status("b")];
        let mut configs = vec![config("a", "true"), config("b", "false")];
        let mut cache = ConfigJsonCache::default();
        let first = programs_json(&configs, &statuses, &BTreeMap::new(), &mut cache);
        let first: Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(first, whole(&configs, &statuses));
        assert_eq!(first[1]["restarts"], 2);
        assert_eq!(first[1]["command"], "false");
        assert_eq!(cache.len(), 2);
        // b's config is replaced: its text is made again; a's comes from the cache.
        configs[1] = config("b", "sleep 1");
        let second = programs_json(&configs, &statuses, &BTreeMap::new(), &mut cache);
        let second: Value = serde_json::from_slice(&second).unwrap();
        assert_eq!(second, whole(&configs, &statuses));
        assert_eq!(second[1]["command"], "sleep 1");
        // A program gone from the list leaves the cache.
        programs_json(&configs[..1], &statuses[..1], &BTreeMap::new(), &mut cache);
        assert_eq!(cache.len(), 1);
    }

    /// A program in one list only (added or removed between the two reads) is left out,
    /// and the others keep their own status.
    #[test]
    fn a_program_in_one_list_only_is_left_out() {
        let configs = vec![config("a", "x"), config("b", "x"), config("d", "x")];
        let statuses = vec![status("a"), status("c"), status("d")];
        let listed: Value = serde_json::from_slice(&programs_json(
            &configs,
            &statuses,
            &BTreeMap::new(),
            &mut ConfigJsonCache::default(),
        ))
        .unwrap();
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "d"]);
        let fields = Fields::parse("name,state").unwrap();
        let selected: Value = serde_json::from_slice(
            &selected_json(&configs, &statuses, &BTreeMap::new(), &fields).unwrap(),
        )
        .unwrap();
        assert_eq!(
            selected,
            serde_json::json!([{"name": "a", "state": "stopped"}, {"name": "d", "state": "stopped"}])
        );
    }

    /// `fields=` keeps exactly those keys of the whole object, whichever keys are asked
    /// for: every key of a program is known (the order is checked by the API's tests).
    #[test]
    fn fields_keep_those_keys_of_the_whole_object() {
        let v: serde_yaml::Value = serde_yaml::from_str(
            "{name: web, command: [x, y], environ: {A: b}, directory: /, user: root, umask: '022', \
             memory_max: 1G, ready: {log: up}, health: {http: 'http://127.0.0.1:1/'}, \
             env_file: /e, stdout_logfile: /o, stderr_logfile: /r, \
             depends_on: [db], numprocs: 2}",
        )
        .unwrap();
        let c = gosuv::config::parse_program_value(v, std::path::Path::new("/")).unwrap();
        let configs = vec![Arc::new(c)];
        let mut s = status("web");
        s.status_text = Some("up".into());
        let statuses = vec![s];
        let all = whole(&configs, &statuses);
        let obj = all[0].as_object().unwrap();
        // Every key the whole object has can be asked for.
        for k in obj.keys() {
            assert!(
                gosuv::config::PROGRAM_KEYS.contains(&k.as_str())
                    || STATUS_KEYS.contains(&k.as_str()),
                "{k} cannot be asked for"
            );
        }
        for list in [
            "name",
            "state",
            "pid,name",
            "command,environ,waiting_for,ready,health",
            "numprocs,depends_on,memory_max,umask,cpu_percent,status_text",
            &obj.keys().cloned().collect::<Vec<_>>().join(","),
        ] {
            let fields = Fields::parse(list).unwrap();
            let got: Value = serde_json::from_slice(
                &selected_json(&configs, &statuses, &BTreeMap::new(), &fields).unwrap(),
            )
            .unwrap();
            let wanted: serde_json::Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| list.split(',').any(|f| f == k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(
                got,
                Value::Array(vec![Value::Object(wanted)]),
                "fields={list}"
            );
        }
        // A key the whole object leaves out (no user) stays out.
        let bare = vec![config("bare", "x")];
        let fields = Fields::parse("name,user").unwrap();
        let got: Value = serde_json::from_slice(
            &selected_json(&bare, &[status("bare")], &BTreeMap::new(), &fields).unwrap(),
        )
        .unwrap();
        assert_eq!(got, serde_json::json!([{"name": "bare"}]));
    }

    /// Stats asked for in ascending order are found, skipped ones and missing ones too.
    #[test]
    fn stats_are_found_walking_the_map() {
        let stats: BTreeMap<String, ProcessStats> = ["b", "d", "e", "g"]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let s = ProcessStats {
                    rss_bytes: i as u64,
                    ..ProcessStats::default()
                };
                (n.to_string(), s)
            })
            .collect();
        let mut by_name = StatsByName::new(&stats);
        let rss = |s: Option<&ProcessStats>| s.map(|s| s.rss_bytes);
        assert_eq!(rss(by_name.get("a")), None);
        assert_eq!(rss(by_name.get("b")), Some(0));
        assert_eq!(rss(by_name.get("c")), None);
        assert_eq!(rss(by_name.get("e")), Some(2));
        assert_eq!(rss(by_name.get("g")), Some(3));
        assert_eq!(rss(by_name.get("h")), None);
    }

    #[test]
    fn fields_are_checked() {
        assert!(Fields::parse("name, state ,pid").is_ok());
        assert!(Fields::parse("name,name").is_ok());
        for bad in ["", ",", "nme", "name,bogus", "Name"] {
            let e = Fields::parse(bad).expect_err(bad);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
        let e = Fields::parse("name,bogus").unwrap_err();
        assert!(e.message.contains("'bogus'"), "{}", e.message);
        assert!(e.message.contains("waiting_for"), "{}", e.message);
        let f = Fields::parse("name,rss_bytes").unwrap();
        assert!(f.wants_stats());
        assert!(!Fields::parse("name,state").unwrap().wants_stats());
    }
}
