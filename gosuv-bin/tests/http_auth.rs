//! HTTP transport, basic auth, the allow-list and the refusal to serve HTTP without auth
//! (loopback included); the CLI over `http://`; the login URL `start-server` prints.

mod common;

use std::io::Write;

use common::*;

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
        err.contains("refusing to serve HTTP") && err.contains("server.auth.enabled: true"),
        "{err}"
    );
    let err = env.fails(&["start-server", "-f"]);
    assert!(err.contains("refusing"), "{err}");
    assert!(!env.sock().exists());
}

/// Loopback is no protection: every local user can connect to 127.0.0.1, and without auth
/// the API would run their commands as the server's user.
#[test]
fn loopback_http_without_auth_is_refused_too() {
    let env = Env::new(Setup {
        http_port: Some(free_port()),
        ..Setup::default()
    });
    // Stops a server that should not have started, should one have.
    let _guard = Server { env: &env };
    for args in [&["start-server"][..], &["start-server", "-f"]] {
        let err = env.fails(args);
        assert!(
            err.contains("refusing to serve HTTP on 127.0.0.1:")
                && err.contains("any local user")
                && err.contains("server.auth.enabled: true"),
            "{args:?}: {err}"
        );
        assert!(!env.sock().exists(), "{args:?} started a server");
    }
    // An empty password is no auth either.
    let text = std::fs::read_to_string(env.conf()).unwrap().replacen(
        "enabled: false\n    username: admin\n    password: secret",
        "enabled: true\n    username: admin\n    password: \"\"",
        1,
    );
    std::fs::write(env.conf(), text).unwrap();
    let err = env.fails(&["start-server"]);
    assert!(err.contains("empty password"), "{err}");
    assert!(!env.sock().exists());
}

#[test]
fn both_transports_serve_the_same_api() {
    let env = Env::http(true);
    env.programs("- name: p\n  command: [sleep, '300']\n  start_seconds: 0\n");
    let srv = env.start();
    let out = env.ok(&["start", "p"]);
    assert!(out.starts_with("p: running"));
    let auth = [("Authorization", admin())];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let over_http = env.http_req("GET", "/api/programs/p", &auth, "").json();
    let over_unix = env.unix_req("GET", "/api/programs/p", &auth, "").json();
    assert_eq!(over_http["pid"], over_unix["pid"]);
    assert_eq!(over_http["state"], "running");
    let status = env.unix_req("GET", "/api/status", &auth, "").json();
    let port = env.setup.http_port.unwrap();
    assert_eq!(
        status["listening"],
        serde_json::json!([
            format!("unix://{}", env.sock().display()),
            format!("http://127.0.0.1:{port}")
        ])
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
        auth: true,
        ..Setup::default()
    });
    let srv = env.start();
    assert!(!env.sock().exists());
    env.ok(&["status-server"]);
    srv.shutdown();
    let err = env.fails(&["status-server"]);
    assert!(err.contains("http://127.0.0.1:"), "{err}");
}

/// RFC 7235: the scheme name is case-insensitive (`BASIC`, `basic`, `bAsIc`).
#[test]
fn the_auth_scheme_is_case_insensitive() {
    let env = Env::http(true);
    let _srv = env.start();
    let token = admin().trim_start_matches("Basic ").to_string();
    for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
        let header = format!("{scheme} {token}");
        let r = env.http_req("GET", "/api/status", &[("Authorization", &header)], "");
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
    }
    let r = env.http_req(
        "GET",
        "/api/status",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    );
    assert_eq!(r.status, 401, "another scheme is not basic auth");
}

/// A request over `[::]` from 127.0.0.1 has the peer `::ffff:127.0.0.1`; an entry
/// written either way matches a peer of either form, addresses and networks alike.
#[test]
fn mapped_ipv4_addresses_match_the_allow_list_both_ways() {
    for entry in [
        "::ffff:127.0.0.1",
        "::ffff:127.0.0.0/104",
        "127.0.0.1",
        "127.0.0.0/8",
    ] {
        let port = free_port();
        let env = Env::new(Setup {
            http_addr: Some(format!("[::]:{port}")),
            http_port: Some(port),
            auth: true,
            ipfile: Some(format!("{entry}\n")),
            ..Setup::default()
        });
        let _srv = env.start();
        // Over IPv4 (a plain IPv4 peer where the dual-stack socket reports it mapped).
        let r = env.http_req("GET", "/api/status", &[("Authorization", &admin())], "");
        assert_eq!(r.status, 200, "entry {entry}, IPv4 peer: {}", r.body);
        // Over an IPv4-mapped IPv6 address.
        let mut s = std::net::TcpStream::connect(format!("[::ffff:127.0.0.1]:{port}")).unwrap();
        write!(
            s,
            "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            admin()
        )
        .unwrap();
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut buf).unwrap();
        let r = parse_response(&buf);
        assert_eq!(r.status, 200, "entry {entry}, mapped peer: {}", r.body);
    }
    // A listed IPv4 network does not let other mapped addresses in.
    let port = free_port();
    let env = Env::new(Setup {
        http_addr: Some(format!("[::]:{port}")),
        http_port: Some(port),
        auth: true,
        ipfile: Some("::ffff:10.0.0.0/104\n".into()),
        ..Setup::default()
    });
    let _srv = env.start();
    let r = env.http_req("GET", "/api/status", &[("Authorization", &admin())], "");
    assert_eq!(r.status, 403, "{}", r.body);
}

/// `reload` (the CLI and `POST /api/reload`) reads the ipfile again; a bad one is an error
/// that changes nothing.
#[test]
fn the_ipfile_is_read_again_on_reload() {
    let env = Env::new(Setup {
        http_port: Some(free_port()),
        auth: true,
        ipfile: Some("10.9.0.0/16\n".into()),
        ..Setup::default()
    });
    let _srv = env.start();
    let get = || env.http_req("GET", "/api/status", &[("Authorization", &admin())], "");
    assert_eq!(get().status, 403);
    std::fs::write(env.path("allow.txt"), "# now this host\n127.0.0.1\n").unwrap();
    let out = env.ok(&["reload"]);
    assert!(out.contains("load config success"), "{out}");
    assert_eq!(get().status, 200, "the new ipfile is in force");

    // A bad ipfile: the reload fails, says why, and the list in force stays.
    std::fs::write(env.path("allow.txt"), "127.0.0.1\nnot-an-address\n").unwrap();
    let err = env.fails(&["reload"]);
    assert!(
        err.contains("allow.txt:2") && err.contains("not-an-address"),
        "{err}"
    );
    assert_eq!(get().status, 200);
    std::fs::remove_file(env.path("allow.txt")).unwrap();
    let r = env.unix_req(
        "POST",
        "/api/reload",
        &[
            ("Authorization", &admin()),
            ("Content-Type", "application/json"),
        ],
        "",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("cannot read the ipfile"), "{}", r.body);
    assert_eq!(get().status, 200);

    // Over the API too: back to a list without this host.
    std::fs::write(env.path("allow.txt"), "10.9.0.0/16\n").unwrap();
    let r = env.unix_req(
        "POST",
        "/api/reload",
        &[
            ("Authorization", &admin()),
            ("Content-Type", "application/json"),
        ],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get().status, 403);
}

/// With HTTP on, `start-server` prints a URL that logs in to the web page (the credentials
/// of `server.auth` in it), in the background and in the foreground; the server's log never
/// has it.
#[test]
fn start_server_prints_a_login_url_that_opens_the_page() {
    let env = Env::http(true);
    let port = env.setup.http_port.unwrap();
    let url = format!("http://admin:secret@127.0.0.1:{port}/");
    // In the background: the URL comes after `server started`, and it opens the page.
    let out = env.ok(&["start-server"]);
    let srv = Server { env: &env };
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("server started, listening"), "{out}");
    assert_eq!(
        lines.get(1),
        Some(&format!("web page: {url}").as_str()),
        "{out}"
    );
    assert_eq!(curl_status(&[&url]), "200");
    srv.shutdown();

    // In the foreground, on the terminal.
    let mut child = env
        .command(&["start-server", "-f"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _srv = Server { env: &env };
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    let mut second = String::new();
    std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
    std::io::BufRead::read_line(&mut reader, &mut second).unwrap();
    assert!(first.starts_with("server started, listening"), "{first}");
    assert_eq!(second.trim_end(), format!("web page: {url}"));
    signal(child.id() as i32, libc::SIGTERM);
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(env.path("logs/gosuv.log")).unwrap();
    assert!(
        !log.contains("secret"),
        "the password is in gosuv.log: {log}"
    );
}

/// A client without the password keeps no connection: the 401 closes it (a client asking
/// again every few seconds held its connections for ever, and a few addresses filled the
/// listener).
#[test]
fn a_refused_login_closes_its_connection() {
    use std::io::Read;
    let env = Env::http(true);
    let _s = env.start();
    let port = env.setup.http_port.unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "the connection stayed open after a 401 ({e}): {}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
}
