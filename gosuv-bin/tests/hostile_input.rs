//! Hostile input to the API. Property tests drive the router without a socket with random
//! path parameters, query strings, bodies and headers on every route: never a panic, never a
//! 5xx, and every refusal a 4xx with a JSON `error` that says what is wrong. Then, over a
//! real server: a 10 MiB body is refused with 413 before it is read, program names that try
//! path traversal never create a file outside `logpath`, and a brute force on basic auth
//! gets exactly the answer of one wrong password, does not lock the right user out, and is
//! logged in gosuv.log. (The config parsers have their own property tests in the core:
//! gosuv-lib/tests/hostile_config.rs.)

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request};
use base64::Engine;
use common::*;
use gosuv::{ProgramConfig, ServerConfig, Supervisor};
use gosuv_bin::server::api::router;
use gosuv_bin::server::security::{Security, Transport};
use gosuv_bin::server::AppState;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

/// Every route with a path parameter, and the methods tried on each.
const TEMPLATES: [&str; 9] = [
    "/api/programs/{}",
    "/api/programs/{}/start",
    "/api/programs/{}/stop",
    "/api/programs/{}/restart",
    "/api/programs/{}/log",
    "/api/programs/{}/log/follow",
    "/api/programs/{}/stats",
    "/api/all/{}",
    "/{}",
];
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

/// The keys of programs.yml and of a program's status, and a few that mean nothing.
const KEYS: [&str; 26] = [
    "name",
    "command",
    "environ",
    "directory",
    "start_auto",
    "start_seconds",
    "start_retries",
    "autorestart",
    "exit_codes",
    "stop_signal",
    "stop_timeout",
    "user",
    "umask",
    "redirect_stderr",
    "log_disable",
    "log_max_bytes",
    "log_backups",
    "state",
    "pid",
    "restarts",
    "cpu_percent",
    "",
    "colour",
    "__proto__",
    "name\u{0}",
    "command ",
];

/// A supervisor and its router in a directory of their own, `outer/srv`, so that anything
/// written outside `srv/logs` shows.
struct Rig {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    outer: tempfile::TempDir,
}

impl Rig {
    fn new() -> Rig {
        let outer = tempfile::tempdir().unwrap();
        let srv = outer.path().join("srv");
        std::fs::create_dir(&srv).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = rt.block_on(async {
            let config = ServerConfig::defaults(&srv);
            let file =
                gosuv_bin::server::ProgramsFile::new(config.include.clone(), config.dir.clone());
            file.loaded(&[], &[]);
            let mut options = gosuv_bin::server::supervisor_options(&config, &file);
            options.subreaper = false;
            options.kill_on_parent_death = true;
            let sup = Supervisor::new(options).unwrap();
            let mut p1 = ProgramConfig::shell("p1", "exit 0");
            p1.start_seconds = 0;
            p1.autorestart = gosuv::Autorestart::Never;
            sup.add(p1).await.unwrap();
            router(AppState::new(
                sup,
                config,
                Security::default(),
                vec!["test".into()],
                file,
            ))
            .layer(axum::Extension(Transport::Unix))
        });
        Rig { rt, app, outer }
    }

    /// Sends a request; returns the status and the body (at most 64 KiB of it, within a
    /// second: a live stream is cut there).
    fn send(&self, req: Request<Body>) -> (u16, Vec<u8>) {
        let app = self.app.clone();
        self.rt.block_on(async move {
            let resp = tokio::time::timeout(Duration::from_secs(30), app.oneshot(req))
                .await
                .expect("the router answered within 30 s")
                .unwrap();
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut out = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while out.len() < 65536 {
                match tokio::time::timeout_at(deadline, body.frame()).await {
                    Ok(Some(Ok(f))) => {
                        if let Some(d) = f.data_ref() {
                            out.extend_from_slice(d);
                        }
                    }
                    _ => break,
                }
            }
            (status, out)
        })
    }

    /// Every file under `outer`, relative to it.
    fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&p, base, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().to_path_buf());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.outer.path(), self.outer.path(), &mut out);
        out
    }

    /// Files may only be `srv/programs.yml` (and its temporary file) and
    /// `srv/logs/<valid name>.std{out,err}.log`.
    fn assert_files_stay_inside(&self) {
        for f in self.files() {
            let s = f.to_string_lossy();
            let ok = s == "srv/programs.yml"
                || s.starts_with("srv/.programs.yml.tmp-")
                || s.strip_prefix("srv/logs/").is_some_and(|rest| {
                    rest.strip_suffix(".stdout.log")
                        .or_else(|| rest.strip_suffix(".stderr.log"))
                        .is_some_and(|n| gosuv::config::validate_name(n).is_ok())
                });
            assert!(ok, "a file outside logpath: {}", f.display());
        }
    }
}

/// A JSON value of any shape, strings from the nastiest alphabet.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        "[./a-zA-Z0-9_%-]{0,70}".prop_map(Value::String),
        prop_oneof![
            Just("../../etc/passwd"),
            Just(".."),
            Just("a/../../b"),
            Just("/tmp/x"),
            Just("p1"),
            Just("50MB"),
            Just("TERM"),
            Just("unexpected"),
            Just("022"),
            Just("K=V"),
            Just("-1"),
            Just("1e400"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(("[a-z_]{0,10}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A program body: the real keys (and some junk) with values of any shape. Whatever it
/// says, its command can never run anything but `exit 0`/`true`: the parser sees the random
/// text, the shell never does.
fn program_body() -> impl Strategy<Value = Value> {
    proptest::collection::vec((proptest::sample::select(KEYS.to_vec()), value()), 0..10).prop_map(
        |kv| {
            let mut m = Map::new();
            for (k, mut v) in kv {
                if k == "command" {
                    v = match v {
                        Value::String(s) => Value::String(format!("exit 0\n{s}")),
                        Value::Array(mut a) => {
                            a.insert(0, json!("true"));
                            Value::Array(a)
                        }
                        other => other,
                    };
                }
                m.insert(k.to_string(), v);
            }
            Value::Object(m)
        },
    )
}

/// A path segment: random bytes, percent-encoded, or text sent as it is.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80)
            .prop_map(|b| { b.iter().map(|c| format!("%{c:02X}")).collect::<String>() }),
        "[a-zA-Z0-9._~-]{0,70}",
        "[a-zA-Z0-9._%/-]{0,70}",
        prop_oneof![
            Just("..".to_string()),
            Just("..%2F..%2Fetc%2Fpasswd".to_string()),
            Just("%2e%2e".to_string()),
            Just("a%00b".to_string()),
            Just("start".to_string()),
            Just("x".repeat(65)),
        ],
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("wait"),
        Just("timeout"),
        Just("stream"),
        Just("lines"),
        Just("stats"),
        Just("x"),
    ];
    let val = prop_oneof![
        "[a-z0-9.+-]{0,12}",
        Just("NaN".to_string()),
        Just("-1".to_string()),
        Just("1e309".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("%FF%00".to_string()),
    ];
    proptest::collection::vec((key, val), 0..4).prop_map(|kv| {
        kv.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// The property every answer must have: no 5xx, and a refusal says why in JSON.
fn check_answer(what: &str, status: u16, body: &[u8]) {
    assert!(
        status < 500,
        "{what}: {status} {}",
        String::from_utf8_lossy(body)
    );
    // A HEAD answer has no body by definition.
    if status >= 400 && !what.starts_with("HEAD ") {
        let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{what}: {status} with a body that is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        });
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(
            msg.len() > 10,
            "{what}: {status} without a clear error: {v}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn path_parameters_and_queries_on_every_route(
        seg in segment(),
        q in query(),
        t in 0..TEMPLATES.len(),
        m in 0..METHODS.len(),
        json_type in any::<bool>(),
    ) {
        thread_local!(static RIG: Rig = Rig::new());
        RIG.with(|rig| {
            // p1 would be a live stream or a real start; random names are the point here.
            let seg = if seg == "p1" { "p2".to_string() } else { seg };
            let path = TEMPLATES[t].replace("{}", &seg);
            let uri = if q.is_empty() { path } else { format!("{path}?{q}") };
            let Ok(uri) = uri.parse::<axum::http::Uri>() else { return };
            let mut req = Request::builder().method(METHODS[m]).uri(uri.clone());
            if json_type {
                req = req.header(header::CONTENT_TYPE, "application/json");
            }
            let (status, body) = rig.send(req.body(Body::from("{}")).unwrap());
            check_answer(&format!("{} {uri}", METHODS[m]), status, &body);
            rig.assert_files_stay_inside();
        });
    }

    #[test]
    fn program_bodies_to_post_and_put(body in program_body(), put in any::<bool>(), raw in any::<bool>()) {
        thread_local!(static RIG: Rig = Rig::new());
        RIG.with(|rig| {
            let mut text = body.to_string().into_bytes();
            if raw {
                // JSON cut short, maybe inside a character: not even UTF-8.
                text.truncate(text.len() / 2);
            }
            let (method, uri) = if put { ("PUT", "/api/programs/p1") } else { ("POST", "/api/programs") };
            let req = Request::builder()
                .method(method)
                .uri(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(text.clone()))
                .unwrap();
            let (status, answer) = rig.send(req);
            check_answer(&format!("{method} {uri} {}", String::from_utf8_lossy(&text)), status, &answer);
            if status == 201 {
                // Keep the set small: the name it was added under goes again.
                let name = serde_json::from_slice::<Value>(&answer).unwrap()["name"]
                    .as_str()
                    .unwrap()
                    .to_string();
                assert!(gosuv::config::validate_name(&name).is_ok());
                let req = Request::delete(format!("/api/programs/{name}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::empty())
                    .unwrap();
                let (status, answer) = rig.send(req);
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
            }
            rig.assert_files_stay_inside();
        });
    }

    #[test]
    fn headers_and_content_types(
        ctype in prop_oneof![Just("application/json".to_string()), Just("text/plain".to_string()), ".{0,30}"],
        auth in ".{0,60}",
        origin in prop_oneof![Just(None), ".{0,30}".prop_map(Some)],
    ) {
        thread_local!(static RIG: Rig = Rig::new());
        RIG.with(|rig| {
            let mut req = Request::post("/api/programs");
            if let Ok(v) = header::HeaderValue::from_str(&ctype) {
                req = req.header(header::CONTENT_TYPE, v);
            }
            if let Ok(v) = header::HeaderValue::from_str(&auth) {
                req = req.header(header::AUTHORIZATION, v);
            }
            if let Some(o) = origin.as_deref().and_then(|o| header::HeaderValue::from_str(o).ok()) {
                req = req.header(header::ORIGIN, o);
            }
            let (status, body) = rig.send(req.body(Body::from("{\"name\": 1}")).unwrap());
            check_answer("POST /api/programs with odd headers", status, &body);
            assert_ne!(status / 100, 2);
        });
    }
}

/// Writes a request head over TCP and returns the stream.
fn open_request(port: u16, head: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

fn read_answer(s: &mut std::net::TcpStream) -> Resp {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    // The head and the short JSON body arrive together; stop at the end of the body.
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
    }
    parse_response(&buf)
}

#[test]
fn a_10_mib_body_is_refused_before_it_is_read() {
    let env = Env::http(true);
    let _srv = env.start();
    let port = env.setup.http_port.unwrap();
    let ten_mib = 10 * 1024 * 1024;
    let auth = basic("admin", "secret");

    // With a Content-Length: the answer comes right after the head, no byte of the body sent.
    let t = Instant::now();
    let mut s = open_request(
        port,
        &format!("POST /api/programs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {ten_mib}\r\n\r\n"),
    );
    let r = read_answer(&mut s);
    let took = t.elapsed();
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.error().contains("larger than 65536 bytes"), "{}", r.body);
    assert!(took < Duration::from_secs(2), "413 took {took:?}");
    eprintln!("413 with Content-Length: {took:?}");

    // Chunked, with no length: 80 KiB of chunks and no end. Had the server wanted the
    // whole body it would wait for the rest; it answers once it has read past 64 KiB.
    let t = Instant::now();
    let mut s = open_request(
        port,
        &format!("POST /api/programs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"),
    );
    let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
    for _ in 0..5 {
        let _ = s.write_all(chunk.as_bytes());
    }
    let r = read_answer(&mut s);
    let took = t.elapsed();
    assert_eq!(r.status, 413, "{r:?}");
    assert!(took < Duration::from_secs(2), "413 took {took:?}");
    eprintln!("413 chunked, 80 KiB sent of an endless body: {took:?}");

    // The server is as it was.
    assert_eq!(env.api("GET", "/api/status", "").status, 200);
}

/// Requests the HTTP parser itself refuses (hyper answers them before any route could) and
/// the limits on a request's head: each answered with its status and a JSON error that says
/// what is wrong, on both transports.
#[test]
fn framing_errors_are_answered_in_json() {
    let env = Env::http(true);
    let _srv = env.start();
    let port = env.setup.http_port.unwrap();
    let host = format!("127.0.0.1:{port}");
    let auth = format!("Authorization: {ADMIN_AUTH}\r\n");
    let big_header = format!("X-Big: {}\r\n", "b".repeat(40 * 1024));
    let many_headers: String = (0..150).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "a Content-Length that is not a number",
            format!("POST /api/programs HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: abc\r\n\r\n{{}}"),
            400,
            "Content-Length",
        ),
        (
            "two Content-Lengths that differ",
            format!("POST /api/programs HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}"),
            400,
            "Content-Length",
        ),
        (
            "a request line that is not HTTP",
            "GARBAGE\r\n\r\n".to_string(),
            400,
            "HTTP/1.1",
        ),
        (
            "a 40 KiB header",
            format!("GET /api/status HTTP/1.1\r\nHost: {host}\r\n{auth}{big_header}\r\n"),
            431,
            "larger than",
        ),
        (
            "150 headers",
            format!("GET /api/status HTTP/1.1\r\nHost: {host}\r\n{auth}{many_headers}\r\n"),
            431,
            "headers",
        ),
        (
            "a 10 KiB URL",
            format!("GET /api/programs/{} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n", "u".repeat(10 * 1024)),
            414,
            "URL",
        ),
        (
            "a 100 KiB URL",
            format!("GET /api/programs/{} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n", "u".repeat(100 * 1024)),
            431,
            "larger than",
        ),
        (
            "a body over the limit",
            format!("POST /api/programs HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"),
            413,
            "larger than 65536 bytes",
        ),
    ];
    for (what, request, status, says) in &cases {
        for unix in [false, true] {
            let buf = if unix {
                let mut s = std::os::unix::net::UnixStream::connect(env.sock()).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let _ = s.write_all(request.as_bytes());
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                buf
            } else {
                let mut s = open_request(port, request);
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                buf
            };
            let r = parse_response(&buf);
            let on = if unix { "unix socket" } else { "HTTP" };
            assert_eq!(r.status, *status, "{what} ({on}): {r:?}");
            let v: Value = serde_json::from_str(&r.body)
                .unwrap_or_else(|e| panic!("{what} ({on}): not JSON ({e}): {r:?}"));
            let msg = v["error"].as_str().unwrap_or_default();
            assert!(msg.contains(says), "{what} ({on}): {msg}");
            assert_eq!(
                r.header("content-type"),
                Some("application/json"),
                "{what} ({on})"
            );
        }
    }
    // The server is as it was.
    let r = env.http_req("GET", "/api/status", &[("Authorization", ADMIN_AUTH)], "");
    assert_eq!(r.status, 200, "{}", r.body);
}

/// serde_json keeps the last of two equal keys: `{"command": "true", "command": "rm -rf
/// ~"}` would look harmless to a reviewer of the first and run the second. Such a body is
/// refused with 400 naming the key, at any depth.
#[test]
fn duplicate_keys_are_refused_naming_the_key() {
    let env = Env::unix();
    env.programs("- name: p\n  command: [sleep, '300']\n");
    let _srv = env.start();
    let cases = [
        (
            "POST",
            "/api/programs",
            r#"{"name": "dup", "command": "true", "command": "false"}"#,
            "\"command\"",
        ),
        (
            "POST",
            "/api/programs",
            r#"{"name": "dup", "name": "dup", "command": "true"}"#,
            "\"name\"",
        ),
        (
            "POST",
            "/api/programs",
            r#"{"name": "dup", "command": "true", "environ": {"A": "1", "B": "2", "A": "3"}}"#,
            "\"environ.A\"",
        ),
        (
            "PUT",
            "/api/programs/p",
            r#"{"command": ["sleep", "1"], "start_seconds": 0, "start_seconds": 5}"#,
            "\"start_seconds\"",
        ),
        (
            "PUT",
            "/api/programs/p",
            r#"{"command": ["sleep", "1"], "x": [{"k": 1, "k": 2}]}"#,
            "\"x[0].k\"",
        ),
    ];
    for (method, path, body, key) in cases {
        let r = env.api(method, path, body);
        assert_eq!(r.status, 400, "{method} {path} {body}: {}", r.body);
        let msg = r.error();
        assert!(msg.contains(key) && msg.contains("twice"), "{body}: {msg}");
    }
    // Nothing was added or changed; the same keys once each are fine.
    assert_eq!(env.api("GET", "/api/programs/dup", "").status, 404);
    assert_eq!(
        env.api("GET", "/api/programs/p", "").json()["command"],
        json!(["sleep", "300"])
    );
    let r = env.api(
        "POST",
        "/api/programs",
        r#"{"name": "dup", "command": "true", "environ": {"A": "1", "B": "2"}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn traversal_names_never_create_a_file_outside_logpath() {
    let env = Env::unix();
    let _srv = env.start();
    let before: Vec<_> = std::fs::read_dir(env.dir.path().parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let names = [
        "../evil",
        "../../tmp/evil",
        "..",
        ".",
        "a/b",
        "/tmp/evil",
        "logs/../../evil",
        "evil\u{0}",
        "e\nvil",
        ".hidden",
        "-rf",
        "ок",
        "%2e%2e%2fevil",
    ];
    for name in names {
        let body = json!({"name": name, "command": "echo pwned", "start_auto": true}).to_string();
        let r = env.api("POST", "/api/programs", &body);
        assert_eq!(r.status, 400, "{name:?}: {}", r.body);
        assert!(r.error().contains("name"), "{name:?}: {}", r.body);
    }
    for path in [
        "/api/programs/..%2Fevil/log",
        "/api/programs/..%2F..%2Fetc%2Fpasswd",
        "/api/programs/%2e%2e/start",
        "/api/programs/a%2Fb/log/follow",
        "/api/programs/%00/stats",
    ] {
        let method = if path.ends_with("start") {
            "POST"
        } else {
            "GET"
        };
        let r = env.api(method, path, "");
        assert_eq!(r.status, 400, "{path}: {}", r.body);
    }
    // A program under a valid name writes where it should, and nothing else appeared.
    let ok = json!({"name": "fine", "command": "echo hi", "start_auto": true, "start_seconds": 0, "autorestart": false}).to_string();
    assert_eq!(env.api("POST", "/api/programs", &ok).status, 201);
    eventually(10, "fine's log", || {
        std::fs::read_to_string(env.path("logs/fine.stdout.log")).is_ok_and(|t| t == "hi\n")
    });
    let mut logs: Vec<String> = std::fs::read_dir(env.path("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    logs.retain(|f| f != "fine.stderr.log");
    logs.sort();
    assert_eq!(logs, ["fine.stdout.log", "gosuv.log"]);
    let after: Vec<_> = std::fs::read_dir(env.dir.path().parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("evil"))
        .collect();
    assert!(after.is_empty(), "{after:?}");
    assert!(!before.iter().any(|n| n.to_string_lossy().contains("evil")));
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[test]
fn brute_force_gets_the_wrong_password_answer_and_is_logged() {
    let env = Env::http(true);
    let _srv = env.start();
    let one_wrong = env.http_req(
        "GET",
        "/api/status",
        &[("Authorization", &basic("admin", "wrong"))],
        "",
    );
    assert_eq!(one_wrong.status, 401);
    let attempts = 300;
    let t = Instant::now();
    for i in 0..attempts {
        let auth = match i % 6 {
            0 => basic("admin", &format!("guess{i}")),
            1 => basic("root", "secret"),
            2 => basic("admin", "secre"),
            3 => basic("admin", "secret\0"),
            4 => "Basic !!!not-base64".to_string(),
            _ => basic("", ""),
        };
        let r = env.http_req("GET", "/api/status", &[("Authorization", &auth)], "");
        assert_eq!(r.status, 401, "attempt {i}");
        assert_eq!(r.body, one_wrong.body, "attempt {i}");
        assert_eq!(
            r.header("www-authenticate"),
            one_wrong.header("www-authenticate")
        );
    }
    let took = t.elapsed();
    // No lockout: the right password works at once.
    let r = env.http_req(
        "GET",
        "/api/status",
        &[("Authorization", &basic("admin", "secret"))],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // On record, with the peer and the user tried, without one line per attempt forever.
    let log = std::fs::read_to_string(env.path("logs/gosuv.log")).unwrap();
    let lines = log.lines().filter(|l| l.contains("failed login")).count();
    assert!(lines >= 20, "{lines} failed-login lines");
    assert!(
        log.contains("peer=127.0.0.1:") && log.contains("user=root"),
        "{log}"
    );
    let secs = took.as_secs() + 2;
    assert!(
        lines as u64 <= secs * 21,
        "{lines} lines in {took:?}: not rate-limited"
    );
    if lines < attempts + 1 {
        assert!(
            log.contains("failed logins in a second (a brute force?)"),
            "{log}"
        );
    }
    eprintln!("{attempts} failed logins in {took:?}: {lines} log lines");
}

/// Numbers at and past every bound, and ones no bound was written for.
fn extreme_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            json!(0),
            json!(1),
            json!(86_400),
            json!(86_401),
            json!(1_000),
            json!(1_001),
            json!(4_294_967_295u64),
            json!(u64::MAX),
            json!(-1),
            json!(i64::MIN),
            json!(1e308),
            json!(0.5),
            json!("18446744073709551615"),
            json!("1e308"),
        ]),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
    ]
}

fn extreme_query_number() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "1e308".to_string(),
            "86400".to_string(),
            "86401".to_string(),
            "1.7976931348623157e308".to_string(),
            "18446744073709551615".to_string(),
            "0.000000001".to_string(),
            "4e-324".to_string(),
        ]),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        any::<u64>().prop_map(|n| n.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every numeric key of a program, through the API: accepted within its bound, or
    /// refused with 400 naming the key and the bound; never a 5xx or a panic.
    #[test]
    fn extreme_numbers_in_program_keys(
        key in prop::sample::select(vec![
            ("start_seconds", 86_400u64),
            ("stop_timeout", 86_400),
            ("start_retries", 1_000),
            ("log_backups", 1_000),
        ]),
        n in extreme_number(),
    ) {
        thread_local!(static RIG: Rig = Rig::new());
        RIG.with(|rig| {
            let (key, max) = key;
            let body = json!({"name": "n1", "command": "exit 0", key: n});
            let req = Request::post("/api/programs")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            let (status, answer) = rig.send(req);
            check_answer(&format!("POST {body}"), status, &answer);
            let text = String::from_utf8_lossy(&answer).to_string();
            if status == 201 {
                let v: Value = serde_json::from_slice(&answer).unwrap();
                let got = v[key].as_u64().unwrap();
                assert!(got <= max, "{key}={n} accepted as {got}, over {max}");
                let (status, answer) = rig.send(
                    Request::delete("/api/programs/n1")
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::empty())
                        .unwrap(),
                );
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
            } else {
                assert_eq!(status, 400, "{text}");
                assert!(text.contains(key), "the refusal does not name {key}: {text}");
            }
        });
    }

    /// `?timeout=` on start, stop and restart: never a panic; past a day, a clear 400.
    #[test]
    fn extreme_request_timeouts(
        action in prop::sample::select(vec!["start", "stop", "restart"]),
        t in extreme_query_number(),
    ) {
        thread_local!(static RIG: Rig = Rig::new());
        RIG.with(|rig| {
            let uri = format!("/api/programs/p1/{action}?timeout={t}");
            let req = Request::post(uri.as_str())
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::empty())
                .unwrap();
            let (status, answer) = rig.send(req);
            // A wait that ends before the program gets there is answered 504, as defined.
            let shown = if status == 504 { 409 } else { status };
            check_answer(&format!("POST {uri}"), shown, &answer);
            let secs: f64 = t.parse().unwrap_or(f64::NAN);
            if !(secs > 0.0 && secs <= 86_400.0) {
                assert_eq!(status, 400, "{uri}: {}", String::from_utf8_lossy(&answer));
            }
        });
    }
}

/// What a client sends (a user name, a path, an `Origin`) reaches gosuv.log with its
/// newlines and other control characters escaped: a line break in a failed login's user
/// name cannot forge a line of the log.
#[test]
fn control_characters_from_clients_cannot_forge_log_lines() {
    let env = Env::http(true);
    let _srv = env.start();
    let forged = "2099-01-01T00:00:00.000000Z  INFO gosuv_bin::server: FORGED shutdown by admin";
    for user in [
        format!("x\n{forged}"),
        format!("x\r\n{forged}"),
        format!("x\r{forged}"),
        format!("x\u{2028}{forged}"),
        format!("x\u{85}{forged}\u{1b}[2K"),
    ] {
        let r = env.http_req(
            "GET",
            "/api/status",
            &[("Authorization", &basic(&user, "wrong"))],
            "",
        );
        assert_eq!(r.status, 401);
    }
    // An Origin with a tab and a path with an encoded newline, for good measure.
    let r = env.http_req(
        "GET",
        "/api/programs/a%0AFORGED",
        &[
            ("Authorization", &basic("admin", "secret")),
            ("Origin", "http://evil\t.example"),
        ],
        "",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let log = std::fs::read_to_string(env.path("logs/gosuv.log")).unwrap();
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("failed login")).collect();
    assert_eq!(failed.len(), 5, "{log}");
    for line in log.split(['\n', '\r', '\u{2028}', '\u{85}']) {
        assert!(!line.starts_with("2099-"), "a forged line: {line:?}\n{log}");
    }
    assert!(!log.contains('\u{1b}') && !log.contains('\t'), "{log:?}");
    assert!(log.contains("x\\n2099-01-01"), "{log}");
}
