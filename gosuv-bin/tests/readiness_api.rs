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
         - name: never\n  command: exec sleep 300\n  start_retries: 1\n  ready: {{tcp: \"127.0.0.1:{closed}\", interval: 50ms, timeout: 300ms}}\n"
    ));
    let _s = env.start();
    // No auth needed for either probe; /readyz names what is not ready yet.
    assert_eq!(env.http_req("GET", "/healthz", &[], "").status, 200);
    let r = env.http_req("GET", "/readyz", &[], "");
    if r.status == 503 {
        assert_eq!(
            r.json()["not_ready"],
            serde_json::json!(["web"]),
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
    assert_eq!(env.http_req("GET", "/readyz", &[], "").status, 200);
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
