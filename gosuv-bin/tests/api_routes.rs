//! Every REST route over the unix socket, with good and bad input.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use serde_json::json;

const PROGRAMS: &str = "\
- name: echoer
  command: while true; do echo tick; echo tock >&2; sleep 0.05; done
  start_seconds: 0
  stop_timeout: 2
- name: idle
  command: [sleep, '300']
  start_seconds: 0
";

fn env_with_programs() -> Env {
    let env = Env::unix();
    env.programs(PROGRAMS);
    env
}

#[test]
fn status_and_static_routes() {
    let env = env_with_programs();
    let _srv = env.start();
    let r = env.api("GET", "/api/status", "");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["state"], "running");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["pid"].as_i64(), env.pid().map(i64::from));
    assert_eq!(v["programs"], 2);
    assert!(v["uptime_secs"].as_f64().unwrap() >= 0.0);

    let r = env.api("GET", "/api/openapi.json", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["openapi"].as_str().map(|s| &s[..2]), Some("3."));
    let r = env.api("GET", "/", "");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.body.contains("gosuv"));
    let r = env.api("GET", "/api/nope", "");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("openapi"));
}

#[test]
fn program_crud_and_persistence() {
    let env = env_with_programs();
    let _srv = env.start();
    let body =
        json!({"name": "web", "command": "exec sleep 100", "start_seconds": 0, "environ": ["A=1"]})
            .to_string();
    let r = env.api("POST", "/api/programs", &body);
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(v["name"], "web");
    assert_eq!(v["state"], "stopped");
    assert_eq!(v["environ"], json!(["A=1"]));

    // Saved to programs.yml at once.
    let saved = std::fs::read_to_string(env.path("programs.yml")).unwrap();
    let parsed = gosuv::config::parse_programs(&saved, None, env.dir.path()).unwrap();
    assert_eq!(
        parsed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["echoer", "idle", "web"]
    );

    // Duplicate: 409.
    let r = env.api("POST", "/api/programs", &body);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.error().contains("already exists"));
    // Bad JSON, bad name, missing command, unknown key: 400.
    let r = env.api("POST", "/api/programs", "{not json");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("not valid JSON"), "{}", r.body);
    let r = env.api(
        "POST",
        "/api/programs",
        &json!({"name": "../etc", "command": "x"}).to_string(),
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("invalid name"), "{}", r.body);
    let r = env.api("POST", "/api/programs", &json!({"name": "x"}).to_string());
    assert_eq!(r.status, 400, "{}", r.body);
    let r = env.api(
        "POST",
        "/api/programs",
        &json!({"name": "y", "command": "x", "colour": 1}).to_string(),
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("colour"), "{}", r.body);
    let r = env.api("POST", "/api/programs", "[1]");
    assert_eq!(r.status, 400);

    // Read, with live status.
    let r = env.api("GET", "/api/programs/web", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["restarts"], 0);
    let r = env.api("GET", "/api/programs/nobody", "");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("no program named 'nobody'"));
    let r = env.api("GET", "/api/programs/bad%20name", "");
    assert_eq!(r.status, 400);

    // Replace: a running program is restarted with the new config; status keys read back
    // with GET are accepted and ignored.
    let r = env.api("POST", "/api/programs/web/start", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let pid1 = r.json()["pid"].as_u64().unwrap();
    let mut edited = env.api("GET", "/api/programs/web", "").json();
    edited["environ"] = json!(["A=2"]);
    let r = env.api("PUT", "/api/programs/web", &edited.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["restarted"], true);
    env.wait_state("web", "running");
    let v = env.api("GET", "/api/programs/web", "").json();
    assert_eq!(v["environ"], json!(["A=2"]));
    assert_ne!(v["pid"].as_u64().unwrap(), pid1);
    let r = env.api(
        "PUT",
        "/api/programs/web",
        &json!({"name": "other", "command": "x"}).to_string(),
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("cannot be renamed"));
    let r = env.api(
        "PUT",
        "/api/programs/ghost",
        &json!({"command": "x"}).to_string(),
    );
    assert_eq!(r.status, 404);
    let r = env.api(
        "PUT",
        "/api/programs/web",
        &json!({"command": "x", "start_retries": -1}).to_string(),
    );
    assert_eq!(r.status, 400);
    let saved = std::fs::read_to_string(env.path("programs.yml")).unwrap();
    assert!(saved.contains("A=2"), "{saved}");

    // Delete stops it and removes it from the file.
    let r = env.api("DELETE", "/api/programs/web", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["removed"], "web");
    assert!(!alive(pid1 as i32));
    let r = env.api("DELETE", "/api/programs/web", "");
    assert_eq!(r.status, 404);
    let saved = std::fs::read_to_string(env.path("programs.yml")).unwrap();
    assert!(!saved.contains("web"), "{saved}");
}

#[test]
fn start_stop_restart_and_list() {
    let env = env_with_programs();
    let _srv = env.start();
    let r = env.api("POST", "/api/programs/idle/start", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["state"], "running");
    let pid = v["pid"].as_u64().unwrap() as i32;
    assert!(alive(pid));

    let r = env.api("POST", "/api/programs/idle/restart", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let pid2 = r.json()["pid"].as_u64().unwrap() as i32;
    assert_ne!(pid, pid2);
    assert!(!alive(pid));

    // Memory is read from /proc; a process caught between fork and exec may show none yet.
    let mut list = Vec::new();
    eventually(5, "rss of idle", || {
        let r = env.api("GET", "/api/programs", "");
        assert_eq!(r.status, 200);
        list = r.json().as_array().unwrap().clone();
        list[1]["rss_bytes"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "echoer");
    assert_eq!(list[1]["name"], "idle");
    assert_eq!(list[1]["state"], "running");
    assert_eq!(list[1]["command"], json!(["sleep", "300"]));
    assert!(list[1]["cpu_percent"].is_number());
    assert!(list[0]["rss_bytes"].is_null());

    let r = env.api("GET", "/api/programs/idle/stats", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["pids"], json!([pid2]));

    let r = env.api("POST", "/api/programs/idle/stop?wait=false", "");
    assert_eq!(r.status, 200);
    env.wait_state("idle", "stopped");
    assert!(!alive(pid2));
    let r = env.api("POST", "/api/programs/idle/stop?timeout=abc", "");
    assert_eq!(r.status, 400);
    let r = env.api("POST", "/api/programs/ghost/start", "");
    assert_eq!(r.status, 404);
    let r = env.api("GET", "/api/programs/idle/stats", "");
    assert_eq!(r.json()["pids"], json!([]));

    // Every program at once.
    let r = env.api("POST", "/api/all/start", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(v.as_array().unwrap().iter().all(|x| x["ok"] == true), "{v}");
    let r = env.api("POST", "/api/all/stop", "");
    assert!(r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["state"] == "stopped"));
    let r = env.api("POST", "/api/all/explode", "");
    assert_eq!(r.status, 404);
}

#[test]
fn start_failure_is_reported() {
    let env = Env::unix();
    env.programs("- name: broken\n  command: exit 3\n  start_seconds: 1\n  start_retries: 0\n");
    let _srv = env.start();
    let r = env.api("POST", "/api/programs/broken/start", "");
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.error().contains("could not start"), "{}", r.body);
    let v = env.api("GET", "/api/programs/broken", "").json();
    assert_eq!(v["state"], "fatal");
}

#[test]
fn logs_tail_and_follow() {
    let env = env_with_programs();
    let _srv = env.start();
    env.api("POST", "/api/programs/echoer/start", "");
    eventually(10, "output", || {
        env.api("GET", "/api/programs/echoer/log?lines=3", "")
            .body
            .matches("tick")
            .count()
            == 3
    });
    let r = env.api("GET", "/api/programs/echoer/log?stream=stderr&lines=2", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "tock\ntock\n");
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let r = env.api("GET", "/api/programs/echoer/log?stream=stdin", "");
    assert_eq!(r.status, 400);
    let r = env.api("GET", "/api/programs/echoer/log?lines=-1", "");
    assert_eq!(r.status, 400);
    let r = env.api("GET", "/api/programs/ghost/log", "");
    assert_eq!(r.status, 404);

    // Follow streams live output as Server-Sent Events.
    let mut s = UnixStream::connect(env.sock()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /api/programs/echoer/log/follow?lines=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(s);
    let mut seen = 0;
    let mut line = String::new();
    let mut head = String::new();
    while seen < 3 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended");
        head.push_str(&line);
        if line.starts_with("data: \"tick\\n\"") {
            seen += 1;
        }
    }
    assert!(head.contains("text/event-stream"), "{head}");
    assert!(head.contains("event: log"), "{head}");
}

#[test]
fn events_stream_state_changes() {
    let env = env_with_programs();
    let _srv = env.start();
    let mut s = UnixStream::connect(env.sock()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    // Wait for the headers, so the subscription exists before the change.
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    assert_eq!(env.api("POST", "/api/programs/idle/start", "").status, 200);
    let mut events = Vec::new();
    while events.len() < 2 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0);
        if let Some(data) = line.strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
            events.push((
                v["from"].as_str().unwrap().to_string(),
                v["to"].as_str().unwrap().to_string(),
            ));
            assert_eq!(v["program"], "idle");
        }
    }
    assert_eq!(events[0], ("stopped".into(), "starting".into()));
    assert_eq!(events[1], ("starting".into(), "running".into()));
}

#[test]
fn reload_route() {
    let env = env_with_programs();
    let _srv = env.start();
    env.programs("- name: idle\n  command: [sleep, '300']\n  start_seconds: 0\n- name: fresh\n  command: exec sleep 5\n");
    let r = env.api("POST", "/api/reload", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"added": ["fresh"], "changed": [], "removed": ["echoer"]})
    );
    // A bad file changes nothing and says where it is wrong.
    env.programs(
        "- name: idle\n  command: [sleep, '300']\n- name: idle\n  command: x\n  bogus: 1\n",
    );
    let r = env.api("POST", "/api/reload", "");
    assert_eq!(r.status, 400);
    let e = r.error();
    assert!(
        e.contains("programs.yml:3") && e.contains("duplicate"),
        "{e}"
    );
    assert!(e.contains("programs.yml:5") && e.contains("bogus"), "{e}");
    let list = env.api("GET", "/api/programs", "").json();
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[test]
fn metrics_route() {
    let env = env_with_programs();
    let _srv = env.start();
    env.api("POST", "/api/programs/idle/start", "");
    let r = env.api("GET", "/metrics", "");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let m = r.body;
    for needle in [
        "# TYPE gosuv_program_state gauge",
        "gosuv_program_state{program=\"idle\",state=\"running\"} 1",
        "gosuv_program_state{program=\"idle\",state=\"stopped\"} 0",
        "gosuv_program_state{program=\"echoer\",state=\"stopped\"} 1",
        "gosuv_program_restarts_total{program=\"idle\"} 0",
        "gosuv_program_uptime_seconds{program=\"idle\"} ",
        "gosuv_program_cpu_percent{program=\"idle\"} ",
        "gosuv_program_rss_bytes{program=\"idle\"} ",
        "gosuv_program_log_bytes_total{program=\"echoer\",stream=\"stdout\"} 0",
        "gosuv_programs 2",
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
    // Memory is read from /proc; a process caught between fork and exec may show none yet.
    eventually(5, "rss of idle in /metrics", || {
        let m = env.api("GET", "/metrics", "").body;
        let line = m
            .lines()
            .find(|l| l.starts_with("gosuv_program_rss_bytes{program=\"idle\"}"))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse::<u64>().unwrap() > 0
    });
}

#[test]
fn cross_site_and_malformed_requests_are_refused() {
    let env = env_with_programs();
    let _srv = env.start();
    // No web page reaches the socket: no content type is needed (cross_site.rs has the rule
    // over HTTP), but a body must still be JSON.
    let r = env.unix_req(
        "POST",
        "/api/programs",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "name=x&command=touch+/tmp/pwned",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("not valid JSON"), "{}", r.body);
    let r = env.unix_req(
        "POST",
        "/api/programs/idle/start",
        &[("Content-Type", "text/plain")],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env.unix_req("POST", "/api/programs/idle/stop", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    // A foreign Origin is refused, even with the right content type.
    let r = env.unix_req(
        "POST",
        "/api/programs/idle/start",
        &[
            ("Content-Type", "application/json"),
            ("Origin", "http://evil.example"),
        ],
        "",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = env.unix_req("GET", "/api/programs", &[("Origin", "null")], "");
    assert_eq!(r.status, 403);
    // The same origin is fine.
    let r = env.unix_req(
        "GET",
        "/api/programs",
        &[("Origin", "http://localhost")],
        "",
    );
    assert_eq!(r.status, 200);
    // Bodies are capped.
    let big = format!(
        "{{\"name\":\"big\",\"command\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let r = env.api("POST", "/api/programs", &big);
    assert_eq!(r.status, 413, "{}", &r.body[..r.body.len().min(200)]);
    // Nothing of the above changed anything.
    assert_eq!(
        env.api("GET", "/api/programs/idle", "").json()["state"],
        "stopped"
    );
    assert_eq!(env.api("GET", "/api/status", "").json()["programs"], 2);
}

#[test]
fn shutdown_route_stops_programs_then_exits() {
    let env = env_with_programs();
    let srv = env.start();
    let pid = env.api("POST", "/api/programs/idle/start", "").json()["pid"]
        .as_i64()
        .unwrap() as i32;
    let server_pid = env.pid().unwrap();
    let r = env.api("POST", "/api/shutdown", "");
    assert_eq!(r.status, 202);
    eventually(20, "the server to exit", || !alive(server_pid));
    assert!(!alive(pid), "the program was stopped");
    assert!(!env.sock().exists());
    std::mem::forget(srv);
}
