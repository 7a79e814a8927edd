//! Readiness over the API: `/healthz` and `/readyz` for a container's probes (no auth),
//! `/api/wait` for a script that must not go on before its programs are ready, and the
//! readiness fields of a program's status.

mod common;

use std::time::Instant;

use common::*;

fn free() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

#[test]
fn healthz_readyz_and_wait_follow_the_probes() {
    let env = Env::http(true);
    let web = free();
    let closed = free();
    env.programs(&format!(
        "- name: web\n  command: sleep 1; exec python3 -m http.server {web} --bind 127.0.0.1\n  start_auto: true\n  ready: {{http: \"http://127.0.0.1:{web}/\", interval: 50ms, timeout: 30s}}\n\
         - name: never\n  command: exec sleep 300\n  start_retries: 1\n  ready: {{tcp: \"127.0.0.1:{closed}\", interval: 50ms, timeout: 300ms}}\n\
         - name: oneshot\n  command: exit 0\n  start_auto: true\n  start_seconds: 0\n  autorestart: false\n"
    ));
    let _s = env.start();
    // No auth needed for either probe; /readyz names what is not ready yet.
    assert_eq!(env.http_req("GET", "/healthz", &[], "").status, 200);
    let r = env.http_req("GET", "/readyz", &[], "");
    if r.status == 503 {
        let not_ready = r.json()["not_ready"].clone();
        assert!(
            not_ready == serde_json::json!(["web"])
                || not_ready == serde_json::json!(["oneshot", "web"]),
            "{}",
            r.body
        );
    }
    // Anything else still needs it.
    assert_eq!(env.http_req("GET", "/api/status", &[], "").status, 401);
    // Waiting: answered once web answers.
    let t = Instant::now();
    let r = env.api("GET", "/api/wait?names=web&timeout=20", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["running"][0]["name"], "web");
    assert!(r.json()["running"][0]["ready_at"].is_string(), "{}", r.body);
    assert!(t.elapsed().as_secs() < 20);
    // A start_auto one-shot that exited with one of its exit codes is done, not unready.
    let r = env.api("GET", "/api/wait?names=web&timeout=20", "");
    assert_eq!(r.status, 200, "{}", r.body);
    eventually(10, "the one-shot to finish", || {
        env.api("GET", "/api/programs/oneshot", "").json()["state"] == "exited"
    });
    let r = env.http_req("GET", "/readyz", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    // Time to ready in /metrics (over a second: the server binds after one).
    let m = env.api("GET", "/metrics", "").body;
    let ready: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("gosuv_program_ready_seconds{program=\"web\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no time to ready in /metrics:\n{m}"));
    assert!(ready >= 1.0, "{ready}");
    // A program that never gets ready: 409 with its probe's error, at once when it is fatal.
    assert_eq!(
        env.api("POST", "/api/programs/never/start?wait=false", "")
            .status,
        200
    );
    let r = env.api("GET", "/api/wait?names=web,never&timeout=60", "");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.error().contains("not ready within 300ms (tcp probe)"),
        "{}",
        r.body
    );
    // Unknown names and bad timeouts.
    assert_eq!(env.api("GET", "/api/wait?names=nope", "").status, 404);
    assert_eq!(
        env.api("GET", "/api/wait?names=web&timeout=0", "").status,
        400
    );
    assert_eq!(env.api("GET", "/api/wait", "").status, 400);
}

/// `gosuv wait`: exit 0 once the programs are running, 1 with the reason when one goes fatal.
#[test]
fn the_cli_waits_for_ready() {
    let env = Env::unix();
    let closed = free();
    env.programs(&format!(
        "- name: slow\n  command: sleep 0.5; echo up; exec sleep 300\n  start_auto: true\n  ready: {{log: \"^up$\"}}\n\
         - name: never\n  command: exec sleep 300\n  start_auto: true\n  start_retries: 1\n  ready: {{tcp: \"127.0.0.1:{closed}\", timeout: 300ms}}\n"
    ));
    let _s = env.start();
    let out = env.ok(&["wait", "slow", "--timeout", "20"]);
    assert!(out.contains("slow: running"), "{out}");
    let err = env.fails(&["wait", "slow", "never", "--timeout", "20"]);
    assert!(
        err.contains("'never' could not start") && err.contains("tcp probe"),
        "{err}"
    );
    let err = env.fails(&["wait", "slow", "--timeout", "0"]);
    assert!(err.contains("--timeout"), "{err}");
}

/// A program as read back carries its readiness (`ready_at`, `status_text`), its health
/// record (`health_status`: `health` is the probe's config), its `depends_on` and, while
/// `waiting`, what it waits for; events say why (`reason`). A program read back can be sent
/// back with PUT as it is.
#[test]
fn a_program_shows_readiness_health_and_dependencies_and_events_say_why() {
    let env = Env::unix();
    let closed = free();
    let notify = "import os, socket, time\n\
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                  s.sendto(b'READY=1\\nSTATUS=serving 3 clients', os.environ['NOTIFY_SOCKET'])\n\
                  time.sleep(300)\n";
    env.programs(&format!(
        "- name: db\n  command: exec sleep 300\n  ready: {{tcp: \"127.0.0.1:{closed}\", interval: 50ms, timeout: 60s}}\n\
         - name: cache\n  command: exec sleep 300\n  start_seconds: 0\n\
         - name: web\n  command: exec sleep 300\n  depends_on: [db, {{name: cache, condition: started}}]\n\
         - name: sick\n  command: exec sleep 300\n  start_seconds: 0\n  health: {{tcp: \"127.0.0.1:{closed}\", interval: 100ms, failures: 1000}}\n\
         - name: told\n  command: [python3, -c, {}]\n  ready: {{notify: true, timeout: 30s}}\n",
        serde_json::to_string(notify).unwrap()
    ));
    let _s = env.start();
    let mut events = env.events();
    let get = |name: &str| {
        let r = env.api("GET", &format!("/api/programs/{name}"), "");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };

    // web waits for db (never ready here); cache, `started` only, is soon satisfied.
    let r = env.api("POST", "/api/programs/web/start?wait=false", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = events.next_matching(10, "web -> waiting", |e| {
        e["program"] == "web" && e["to"] == "waiting"
    });
    assert_eq!(ev["reason"], "waiting for db, cache", "{ev}");
    eventually(10, "web waiting for db alone", || {
        get("web")["waiting_for"] == serde_json::json!(["db"])
    });
    let web = get("web");
    assert_eq!(web["state"], "waiting", "{web}");
    assert_eq!(
        web["depends_on"],
        serde_json::json!(["db", {"name": "cache", "condition": "started"}])
    );
    assert!(
        web["ready_at"].is_null() && web["health_status"].is_null(),
        "{web}"
    );
    assert!(web["status_text"].is_null(), "{web}");
    assert_eq!(get("db")["state"], "starting");
    assert_eq!(get("cache")["waiting_for"], serde_json::json!([]));
    // The list has the same fields.
    let list = env.api("GET", "/api/programs?stats=false", "").json();
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "web")
        .unwrap();
    assert_eq!(listed["waiting_for"], serde_json::json!(["db"]), "{listed}");
    assert_eq!(listed["depends_on"], web["depends_on"]);
    // Read back and sent back: the status keys are ignored, nothing changed.
    let r = env.api("PUT", "/api/programs/web", &web.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["restarted"], false, "{}", r.body);

    // A failing health check: counted, and an event of its own (running -> running).
    let r = env.api("POST", "/api/programs/sick/start", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = events.next_matching(10, "sick's failed health check", |e| {
        e["program"] == "sick" && e["from"] == "running" && e["to"] == "running"
    });
    let reason = ev["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("health check failed (1 of 1000 in a row): "),
        "{ev}"
    );
    eventually(10, "two failed health checks in a row", || {
        get("sick")["health_status"]["failing"].as_u64() >= Some(2)
    });
    let health = &get("sick")["health_status"];
    assert!(
        health["failures"].as_u64() >= health["failing"].as_u64(),
        "{health}"
    );
    assert!(
        health["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{health}"
    );
    assert!(get("sick")["ready_at"].is_string());

    // Ready by sd_notify: the event names the probe, and STATUS= is kept.
    let r = env.api("POST", "/api/programs/told/start", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let told = r.json();
    assert_eq!(told["state"], "running", "{told}");
    assert_eq!(told["status_text"], "serving 3 clients", "{told}");
    assert!(told["ready_at"].is_string(), "{told}");
    let ev = events.next_matching(10, "told ready", |e| {
        e["program"] == "told" && e["to"] == "running"
    });
    assert!(
        ev["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("ready: its notify probe passed after ")),
        "{ev}"
    );

    // The dependency is stopped: web will not start, says why, and so does its event.
    let r = env.api("POST", "/api/programs/db/stop", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = events.next_matching(10, "web -> fatal", |e| {
        e["program"] == "web" && e["to"] == "fatal"
    });
    assert_eq!(ev["reason"], "dependency 'db' was stopped", "{ev}");
    let web = get("web");
    assert_eq!(web["last_error"], "dependency 'db' was stopped", "{web}");
    assert_eq!(web["waiting_for"], serde_json::json!([]), "{web}");
    // Once stopped, a program shows no ready time.
    let r = env.api("POST", "/api/programs/told/stop", "");
    assert!(r.json()["ready_at"].is_null(), "{}", r.body);
}
