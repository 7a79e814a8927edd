//! `GET /api/programs?fields=`: each program's object with only the keys asked for, the
//! keys checked; and `gosuv status`, which asks for the keys of its table only, shows what
//! the whole list shows.

mod common;

use common::*;
use serde_json::{json, Value};

const PROGRAMS: &str = "\
- name: idle
  command: [sleep, '300']
  start_seconds: 0
  start_auto: true
- name: probed
  command: [sleep, '300']
  start_auto: false
  ready: {log: up}
  health: {tcp: '127.0.0.1:1', failures: 3}
- name: quits
  command: exit 3
  start_seconds: 0
  start_auto: true
  autorestart: false
";

/// The list, as an array.
fn list(env: &Env, query: &str) -> Vec<Value> {
    let r = env.api("GET", &format!("/api/programs{query}"), "");
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.json().as_array().expect("an array").clone()
}

/// `whole` with only the keys of `fields`, in its order.
fn only(whole: &Value, fields: &str) -> Value {
    let kept: serde_json::Map<String, Value> = whole
        .as_object()
        .expect("an object")
        .iter()
        .filter(|(k, _)| fields.split(',').any(|f| f == k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

/// The keys of each object of a JSON array, in the order they are written (a `Value`
/// sorts them).
fn written_keys(body: &str) -> Vec<Vec<String>> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    let all: Vec<Keys> = serde_json::from_str(body).expect("an array of objects");
    all.into_iter().map(|k| k.0).collect()
}

#[test]
fn fields_keep_only_the_keys_asked_for() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    let _srv = env.start();
    env.wait_state("idle", "running");
    env.wait_state("quits", "exited");

    let whole_body = env.api("GET", "/api/programs?stats=false", "").body;
    let whole: Vec<Value> = serde_json::from_str(&whole_body).expect("a list");
    let whole_keys = written_keys(&whole_body);
    assert_eq!(whole.len(), 3);
    for fields in [
        "name",
        "name,state,pid",
        "pid,name",
        "ready,health,name,exit_code",
        "command,waiting_for,restarts,ownership",
        // idle has no user: the key stays out, as in the whole object.
        "user,name",
    ] {
        let r = env.api(
            "GET",
            &format!("/api/programs?stats=false&fields={fields}"),
            "",
        );
        assert_eq!(r.status, 200, "fields={fields}: {}", r.body);
        let got: Vec<Value> = serde_json::from_str(&r.body).expect("a list");
        assert_eq!(got.len(), whole.len(), "fields={fields}");
        for ((g, w), (g_keys, w_keys)) in got
            .iter()
            .zip(&whole)
            .zip(written_keys(&r.body).iter().zip(&whole_keys))
        {
            assert_eq!(*g, only(w, fields), "fields={fields}");
            // In the whole object's order, whatever the order asked for.
            let order: Vec<&String> = w_keys
                .iter()
                .filter(|k| g.get(k.as_str()).is_some())
                .collect();
            assert_eq!(g_keys.iter().collect::<Vec<_>>(), order, "fields={fields}");
        }
    }
    let got = list(&env, "?stats=false&fields=ready,health,name");
    assert_eq!(got[0], json!({"name": "idle"}));
    assert_eq!(got[1]["ready"]["log"], "up");
    assert_eq!(got[1]["health"]["failures"], 3);
    assert_eq!(got[2], json!({"name": "quits"}));
    // A key named twice, spaces around: the same list.
    assert_eq!(
        list(&env, "?stats=false&fields=name,%20state%20,name"),
        list(&env, "?stats=false&fields=name,state")
    );

    // CPU and memory, when asked for (and stats not turned off); only for a program with a
    // process. Memory is read from /proc: a process caught between fork and exec may show
    // none yet.
    eventually(5, "rss of idle", || {
        let body = env
            .api("GET", "/api/programs?fields=rss_bytes,name,cpu_percent", "")
            .body;
        assert_eq!(
            written_keys(&body)[0],
            ["name", "cpu_percent", "rss_bytes"],
            "{body}"
        );
        let got: Vec<Value> = serde_json::from_str(&body).expect("a list");
        assert!(got[2]["rss_bytes"].is_null(), "{got:?}");
        got[0]["rss_bytes"].as_u64().unwrap_or(0) > 0 && got[0]["cpu_percent"].is_number()
    });
    let got = list(&env, "?stats=false&fields=name,rss_bytes,cpu_percent");
    assert!(got[0]["rss_bytes"].is_null(), "{got:?}");
    assert!(got[0]["cpu_percent"].is_null(), "{got:?}");
}

#[test]
fn unknown_or_no_fields_are_refused() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    let _srv = env.start();
    for query in [
        "fields=name,bogus",
        "stats=false&fields=bogus",
        "fields=Name",
    ] {
        let r = env.api("GET", &format!("/api/programs?{query}"), "");
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let e = r.error();
        assert!(e.contains("is not a key of a program"), "{query}: {e}");
        // The message lists the keys there are, config and status.
        for k in [
            "name",
            "command",
            "memory_max",
            "state",
            "rss_bytes",
            "waiting_for",
        ] {
            assert!(e.contains(k), "{query}: {e} does not list {k}");
        }
    }
    let e = env
        .api("GET", "/api/programs?fields=name,bogus", "")
        .error();
    assert!(e.contains("'bogus'"), "{e}");
    for query in ["fields=", "fields=,", "fields=%20"] {
        let r = env.api("GET", &format!("/api/programs?{query}"), "");
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert!(r.error().contains("names no key"), "{query}: {}", r.body);
    }
}

/// A list of some fields is kept a moment, like the whole list: a change made through the
/// API shows in the next one at once, and a list of other fields is not answered with it.
#[test]
fn a_list_of_fields_is_fresh_after_a_change() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    let _srv = env.start();
    env.wait_state("idle", "running");
    let got = list(&env, "?fields=name,state");
    assert_eq!(got[0], json!({"name": "idle", "state": "running"}));
    let r = env.api("POST", "/api/programs/idle/stop", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let got = list(&env, "?fields=name,state");
    assert_eq!(got[0], json!({"name": "idle", "state": "stopped"}));
    // The same keys asked for in another order: the same list.
    assert_eq!(list(&env, "?fields=state,name"), got);
    let got = list(&env, "?fields=state");
    assert_eq!(got[0], json!({"state": "stopped"}));
    let got = list(&env, "?fields=name");
    assert_eq!(got[0], json!({"name": "idle"}));
    // A program added through the API is in the next list.
    let body = json!({"name": "added", "command": "sleep 300", "start_auto": false}).to_string();
    let r = env.api("POST", "/api/programs", &body);
    assert_eq!(r.status, 201, "{}", r.body);
    let names: Vec<Value> = list(&env, "?fields=name")
        .into_iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, ["added", "idle", "probed", "quits"]);
}

/// `gosuv status` reads only the keys of its table: the table is the one the whole list
/// makes, the READY IN and HEALTH columns (which come from the config) included. Programs
/// without a process, so that nothing in the table moves between the two reads.
#[test]
fn status_shows_what_the_whole_list_shows() {
    let env = Env::unix();
    env.programs(
        "\
- name: probed
  command: [sleep, '300']
  start_auto: false
  ready: {log: up}
  health: {tcp: '127.0.0.1:1', failures: 3}
- name: quits
  command: exit 3
  start_seconds: 0
  start_auto: true
  autorestart: false
- name: missing
  command: [/nonexistent/gosuv-test-binary]
  start_auto: true
  start_retries: 0
",
    );
    let _srv = env.start();
    env.wait_state("quits", "exited");
    env.wait_state("missing", "fatal");
    let table = env.ok(&["status"]);
    let whole = env.api("GET", "/api/programs", "");
    assert_eq!(whole.status, 200);
    let rows: Vec<gosuv_bin::commands::StatusRow> =
        serde_json::from_str(&whole.body).expect("the whole list reads as status rows");
    assert_eq!(table, gosuv_bin::commands::status_table(&rows));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("READY IN") && lines[0].contains("HEALTH"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("probed ") && lines[2].contains("stopped"),
        "{table}"
    );
    assert!(lines[3].contains("exit 3"), "{table}");
    assert!(
        lines[1].starts_with("missing") && lines[1].contains("fatal"),
        "{table}"
    );
}

/// The config version of a list answer (`gosuv-config-version`), asked with `query`.
fn config_version(env: &Env, query: &str) -> String {
    let r = env.api("GET", &format!("/api/programs{query}"), "");
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.header("gosuv-config-version")
        .unwrap_or_else(|| panic!("{query}: no gosuv-config-version header: {:?}", r.headers))
        .to_string()
}

/// A client that reads status keys only (the web page, every 2 s) learns from the header
/// when the configs changed: the same text while only states change, another one after a
/// program is added, given another config, removed, or the file reloaded.
#[test]
fn the_config_version_changes_with_the_configs_only() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    let _srv = env.start();
    env.wait_state("idle", "running");
    let status = "?fields=name,state,cpu_percent";
    let queries = ["", "?stats=false", status, "?stats=false&fields=name,state"];
    let versions =
        |env: &Env| -> Vec<String> { queries.iter().map(|q| config_version(env, q)).collect() };
    let first = versions(&env);
    assert!(
        first.iter().all(|v| *v == first[0]),
        "one version for every form of the list: {first:?}"
    );

    // States change, through the API and on their own: the same version.
    assert_eq!(
        env.api("POST", "/api/programs/probed/start?wait=false", "")
            .status,
        200
    );
    assert_eq!(
        env.api("POST", "/api/programs/idle/restart", "").status,
        200
    );
    env.wait_state("idle", "running");
    assert_eq!(versions(&env), first, "after starts and restarts");

    let mut seen = vec![first[0].clone()];
    let mut changed = |env: &Env, what: &str| {
        let now = versions(env);
        assert!(now.iter().all(|v| *v == now[0]), "{what}: {now:?}");
        assert!(
            !seen.contains(&now[0]),
            "{what}: the version {} was seen before ({seen:?})",
            now[0]
        );
        seen.push(now[0].clone());
    };
    let add = json!({"name": "added", "command": "sleep 300", "start_auto": false});
    assert_eq!(
        env.api("POST", "/api/programs", &add.to_string()).status,
        201
    );
    changed(&env, "after an add");
    let edit = json!({"name": "added", "command": "sleep 301", "start_auto": false});
    assert_eq!(
        env.api("PUT", "/api/programs/added", &edit.to_string())
            .status,
        200
    );
    changed(&env, "after an edit of a stopped program");
    assert_eq!(env.api("DELETE", "/api/programs/added", "").status, 200);
    changed(&env, "after a delete");
    env.programs(&format!(
        "{PROGRAMS}- name: by-hand\n  command: [sleep, '300']\n"
    ));
    assert_eq!(env.api("POST", "/api/reload", "").status, 200);
    changed(&env, "after a reload");
}
