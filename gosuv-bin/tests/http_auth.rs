//! HTTP transport, basic auth, the allow-list and the refusal to serve an open port
//! without auth; the CLI over `http://`.

mod common;

use base64::Engine;
use common::*;

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[test]
fn every_route_needs_auth() {
    let env = Env::http(true);
    env.programs("- name: p\n  command: [sleep, '300']\n  start_seconds: 0\n");
    let _srv = env.start();
    for path in [
        "/",
        "/metrics",
        "/api/status",
        "/api/programs",
        "/api/programs/p",
        "/api/openapi.json",
        "/api/events",
    ] {
        let r = env.http_req("GET", path, &[], "");
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
        let r = env.http_req(
            "GET",
            path,
            &[("Authorization", &basic("admin", "wrong"))],
            "",
        );
        assert_eq!(r.status, 401, "{path}");
        let r = env.unix_req(
            "GET",
            path,
            &[("Authorization", &basic("admi", "secret"))],
            "",
        );
        assert_eq!(r.status, 401, "{path} over the socket");
    }
    let good = basic("admin", "secret");
    let r = env.http_req("GET", "/api/programs", &[("Authorization", &good)], "");
    assert_eq!(r.status, 200);
    let r = env.http_req("POST", "/api/shutdown", &[], "");
    assert_eq!(r.status, 401);
    let r = env.http_req("GET", "/metrics", &[("Authorization", &good)], "");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("gosuv_programs 1"));

    // The page's own origin may change state; another may not.
    let port = env.setup.http_port.unwrap();
    let own = format!("http://127.0.0.1:{port}");
    let h = [
        ("Authorization", good.as_str()),
        ("Content-Type", "application/json"),
        ("Origin", own.as_str()),
    ];
    let r = env.http_req("POST", "/api/programs/p/start", &h, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let h = [
        ("Authorization", good.as_str()),
        ("Content-Type", "application/json"),
        ("Origin", "http://127.0.0.1:1"),
    ];
    let r = env.http_req("POST", "/api/programs/p/stop", &h, "");
    assert_eq!(r.status, 403);
    let h = [
        ("Authorization", good.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let r = env.http_req("POST", "/api/programs/p/stop", &h, "a=b");
    assert_eq!(r.status, 415);

    // The CLI over HTTP sends client.username/password.
    let out = env.ok(&["status"]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["p", "running"], "{out}");
    let log = std::fs::read_to_string(env.path("logs/gosuv.log")).unwrap();
    assert!(
        log.contains("user=\"admin\"") || log.contains("user=admin"),
        "mutations are logged with who: {log}"
    );
}

#[test]
fn the_cli_reports_bad_credentials() {
    let env = Env::http(true);
    let _srv = env.start();
    let text = std::fs::read_to_string(env.conf()).unwrap();
    let (server, client) = text.split_once("client:").unwrap();
    std::fs::write(
        env.conf(),
        format!(
            "{server}client:{}",
            client.replace("password: secret", "password: nope")
        ),
    )
    .unwrap();
    let err = env.fails(&["status"]);
    assert!(
        err.contains("authentication required") && err.contains("client.password"),
        "{err}"
    );
    std::fs::write(env.conf(), text).unwrap();
}

#[test]
fn allow_list_is_checked_before_auth() {
    let env = Env::new(Setup {
        http_port: Some(free_port()),
        auth: true,
        ipfile: Some("# only this network\n10.9.0.0/16\n".into()),
        ..Setup::default()
    });
    let _srv = env.start();
    let r = env.http_req("GET", "/api/status", &[], "");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.error().contains("allow-list"));
    // The socket is not subject to the allow-list (its file mode protects it).
    let r = env.unix_req(
        "GET",
        "/api/status",
        &[("Authorization", &basic("admin", "secret"))],
        "",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn allow_list_admits_listed_addresses() {
    let env = Env::new(Setup {
        http_port: Some(free_port()),
        auth: true,
        client_http: true,
        ipfile: Some("127.0.0.0/8\n".into()),
        ..Setup::default()
    });
    let _srv = env.start();
    let r = env.http_req(
        "GET",
        "/api/status",
        &[("Authorization", &basic("admin", "secret"))],
        "",
    );
    assert_eq!(r.status, 200);
    env.ok(&["status-server"]);
}

#[test]
fn open_http_without_auth_is_refused() {
    let port = free_port();
    let env = Env::new(Setup {
        http_addr: Some(format!(":{port}")),
        ..Setup::default()
    });
    let err = env.fails(&["start-server"]);
    assert!(
        err.contains("refusing to serve HTTP") && err.contains("enable server.auth"),
        "{err}"
    );
    let err = env.fails(&["start-server", "-f"]);
    assert!(err.contains("refusing"), "{err}");
    assert!(!env.sock().exists());
}

#[test]
fn both_transports_serve_the_same_api() {
    let env = Env::http(false);
    env.programs("- name: p\n  command: [sleep, '300']\n  start_seconds: 0\n");
    let srv = env.start();
    let out = env.ok(&["start", "p"]);
    assert!(out.starts_with("p: running"));
    let over_http = env.http_req("GET", "/api/programs/p", &[], "").json();
    let over_unix = env.api("GET", "/api/programs/p", "").json();
    assert_eq!(over_http["pid"], over_unix["pid"]);
    assert_eq!(over_http["state"], "running");
    let status = env.api("GET", "/api/status", "").json();
    let port = env.setup.http_port.unwrap();
    assert_eq!(
        status["listening"],
        serde_json::json!([
            format!("unix://{}", env.sock().display()),
            format!("http://127.0.0.1:{port}")
        ])
    );
    // A page on a DNS name rebound to 127.0.0.1 is refused when there is no auth.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut s,
        format!("POST /api/programs/p/stop HTTP/1.1\r\nHost: rebound.example:{port}\r\nOrigin: http://rebound.example:{port}\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut buf).unwrap();
    let r = parse_response(&buf);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.error().contains("enable server.auth"));
    assert_eq!(
        env.api("GET", "/api/programs/p", "").json()["state"],
        "running"
    );
    // A shutdown over HTTP.
    srv.shutdown();
}

#[test]
fn http_only_server() {
    let env = Env::new(Setup {
        http_port: Some(free_port()),
        no_unix: true,
        client_http: true,
        ..Setup::default()
    });
    let srv = env.start();
    assert!(!env.sock().exists());
    env.ok(&["status-server"]);
    srv.shutdown();
    let err = env.fails(&["status-server"]);
    assert!(err.contains("http://127.0.0.1:"), "{err}");
}
