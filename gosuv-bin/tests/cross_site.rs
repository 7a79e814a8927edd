//! The rule against forged requests, on both transports. Over HTTP a POST or PUT needs
//! a JSON content type or `X-Gosuv: 1` (a form or `text/plain` POST is what any web page can
//! send without a CORS preflight), and a foreign `Origin` is refused; a DELETE needs
//! neither (no page can send one without a preflight, which gosuv never answers). On the
//! unix socket (mode 0600, no browser reaches it) no content type is needed at all.

mod common;

use common::*;

const PROGRAMS: &str = "\
- name: p
  command: [sleep, '300']
  start_seconds: 0
- name: gone1
  command: [sleep, '300']
- name: gone2
  command: [sleep, '300']
";

const JSON_BODY: &str = r#"{"command": ["sleep", "301"], "start_seconds": 0}"#;

#[test]
fn post_and_put_over_http_need_json_or_x_gosuv_and_delete_needs_neither() {
    let env = Env::http(true);
    env.programs(PROGRAMS);
    let _srv = env.start();
    let auth = ("Authorization", ADMIN_AUTH);

    // What a foreign page can send: refused, saying what to send instead.
    for headers in [
        vec![auth],
        vec![auth, ("Content-Type", "text/plain")],
        vec![auth, ("Content-Type", "application/x-www-form-urlencoded")],
        vec![auth, ("X-Gosuv", "0")],
    ] {
        let r = env.http_req("POST", "/api/programs/p/start", &headers, "");
        assert_eq!(r.status, 415, "{headers:?}: {}", r.body);
        assert!(
            r.error().contains("application/json") && r.error().contains("X-Gosuv: 1"),
            "{}",
            r.body
        );
        let r = env.http_req("PUT", "/api/programs/p", &headers, JSON_BODY);
        assert_eq!(r.status, 415, "PUT {headers:?}: {}", r.body);
    }
    // JSON, or X-Gosuv: 1 whatever the content type.
    let r = env.http_req(
        "POST",
        "/api/programs/p/start",
        &[auth, ("Content-Type", "application/json; charset=utf-8")],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env.http_req(
        "POST",
        "/api/programs/p/stop",
        &[auth, ("X-Gosuv", "1")],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env.http_req(
        "PUT",
        "/api/programs/p",
        &[auth, ("X-Gosuv", "1"), ("Content-Type", "text/plain")],
        JSON_BODY,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A DELETE needs no content type.
    let r = env.http_req("DELETE", "/api/programs/gone1", &[auth], "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["removed"], "gone1");
    // A foreign Origin is refused whatever the method and headers.
    let evil = ("Origin", "http://evil.example");
    for (method, path) in [
        ("DELETE", "/api/programs/gone2"),
        ("POST", "/api/programs/p/start"),
        ("GET", "/api/programs"),
    ] {
        let r = env.http_req(
            method,
            path,
            &[
                auth,
                evil,
                ("Content-Type", "application/json"),
                ("X-Gosuv", "1"),
            ],
            "",
        );
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
    }
    assert_eq!(
        env.http_req("GET", "/api/programs/gone2", &[auth], "")
            .status,
        200,
        "the refused DELETE removed nothing"
    );

    // The unix socket: neither is needed.
    let r = env.unix_req("POST", "/api/programs/p/start", &[auth], "");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env.unix_req(
        "PUT",
        "/api/programs/p",
        &[auth, ("Content-Type", "text/plain")],
        JSON_BODY,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env.unix_req("DELETE", "/api/programs/gone2", &[auth], "");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env.unix_req("GET", "/api/programs", &[auth], "");
    let list = r.json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["p"], "{}", r.body);
}
