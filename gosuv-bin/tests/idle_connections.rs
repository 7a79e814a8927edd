//! Connections that never send a request: at most 256 are held open per listener, each is
//! closed if its first request head has not arrived within 10 s, and while the listeners are
//! full, supervision goes on (the server keeps the descriptors its programs' pipes need).
//! A live stream opened with a complete request is not cut by that deadline.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn connections_that_send_nothing_cannot_starve_the_server() {
    let env = Env::http(true);
    let mark = env.dir.path().display().to_string();
    let _cleanup = KillMarked(mark.clone());
    env.programs(&format!(
        "- name: looping\n  command: [/bin/sh, -c, 'sleep 0.2; exit 1']\n  start_auto: true\n  start_seconds: 0\n  start_limit: {{burst: 0}}\n  environ: [\"{MARK_VAR}={mark}\"]\n"
    ));
    let _srv = env.start();
    let server = env.pid().unwrap();
    let port = env.setup.http_port.unwrap();
    let fds_before = fd_count(server);

    // A live event stream, opened properly: it must outlive the head deadline.
    let mut events = UnixStream::connect(env.sock()).unwrap();
    write!(
        events,
        "GET /api/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\r\n",
        admin()
    )
    .unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut events = BufReader::new(events);
    let mut status = String::new();
    events.read_line(&mut status).unwrap();
    assert!(status.contains("200"), "{status}");

    // One connection that stalls mid-head, then 300 silent ones on each listener.
    let opened = Instant::now();
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stalled
        .write_all(b"GET /api/status HTTP/1.1\r\nHost: 127")
        .unwrap();
    let mut silent_tcp: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let silent_unix: Vec<UnixStream> = (0..300)
        .map(|_| UnixStream::connect(env.sock()).unwrap())
        .collect();

    // Supervision goes on: the looping program is restarted again and again meanwhile.
    let mut pids = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        pids.extend(marked(&mark).into_iter().map(|(pid, _)| pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        pids.len() >= 5,
        "only {} restarts while the listeners were full",
        pids.len()
    );
    let held = fd_count(server);
    assert!(
        held <= fds_before + 2 * 256 + 16,
        "{held} descriptors: the limit did not hold"
    );

    // The server closes the silent ones once their 10 s are up: each sees end-of-file.
    let mut buf = [0u8; 1];
    let first = &mut silent_tcp[0];
    first
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(first.read(&mut buf).unwrap_or(0), 0);
    let closed_after = opened.elapsed();
    assert!(
        closed_after >= Duration::from_secs(9) && closed_after < Duration::from_secs(20),
        "closed after {closed_after:?}"
    );
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(stalled.read(&mut buf).unwrap_or(0), 0, "the stalled head");
    drop(silent_tcp);
    drop(silent_unix);
    eprintln!("silent connections closed by the server after {closed_after:?}");

    // The API answers again, and the stream opened before is still live.
    eventually(30, "the API to answer again", || {
        env.http_req("GET", "/api/status", &[("Authorization", &admin())], "")
            .status
            == 200
    });
    assert_eq!(env.api("GET", "/api/status", "").status, 200);
    eprintln!(
        "API answers again {:?} after they were opened",
        opened.elapsed()
    );
    let r = env.api("POST", "/api/programs/looping/stop", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let mut line = String::new();
    let mut seen = false;
    while events.read_line(&mut line).unwrap_or(0) > 0 {
        if line.contains("\"to\":\"stopped\"") {
            seen = true;
            break;
        }
        line.clear();
    }
    assert!(seen, "the event stream was cut");
    eprintln!("event seen {:?} after", opened.elapsed());
    eventually(15, "the descriptors to come back", || {
        fd_count(server) <= fds_before + 2
    });
}

/// Sends a keep-alive request and reads exactly its answer (the body has a Content-Length),
/// leaving the connection open.
fn keep_alive_request(s: &mut std::net::TcpStream, port: u16, path: &str) -> Resp {
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {}\r\n\r\n",
        admin()
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "the answer's head was cut");
        buf.push(byte[0]);
    }
    let len: usize = parse_response(&buf)
        .header("content-length")
        .expect("a Content-Length")
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    buf.extend_from_slice(&body);
    parse_response(&buf)
}

/// Keep-alive connections are kept between requests, but not forever: the deadline for the
/// next head starts again at the end of each answer. A handler slower than the deadline (a
/// stop that waits 13 s for its program) is not cut by it.
#[test]
fn idle_keep_alive_connections_are_closed_but_slow_answers_are_not() {
    let env = Env::http(true);
    let mark = env.dir.path().display().to_string();
    let _cleanup = KillMarked(mark.clone());
    env.programs(&format!(
        "- name: slowstop\n  command: [/bin/sh, -c, 'trap \"sleep 13; exit 0\" TERM; while :; do sleep 0.1; done']\n  start_auto: true\n  stop_timeout: 30\n  environ: [\"{MARK_VAR}={mark}\"]\n"
    ));
    let _srv = env.start();
    env.wait_state("slowstop", "running");
    let port = env.setup.http_port.unwrap();

    let slow = std::thread::spawn({
        let sock = env.sock();
        move || {
            let mut s = UnixStream::connect(sock).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
            let started = Instant::now();
            write!(
                s,
                "POST /api/programs/slowstop/stop HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                admin()
            )
            .unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            (parse_response(&buf), started.elapsed())
        }
    });

    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(keep_alive_request(&mut s, port, "/api/status").status, 200);
    // Six seconds later, on the same connection: still open, and it answers.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(keep_alive_request(&mut s, port, "/api/status").status, 200);
    let answered = Instant::now();
    // Now idle: the server closes it once HEAD_TIMEOUT has passed since that answer, though
    // the connection as a whole is older than that by then.
    let mut byte = [0u8; 1];
    assert_eq!(s.read(&mut byte).unwrap_or(0), 0, "sent bytes unasked");
    let idle = answered.elapsed();
    eprintln!("an idle keep-alive connection was closed after {idle:?}");
    assert!(
        idle >= Duration::from_secs(9) && idle < Duration::from_secs(20),
        "closed after {idle:?} of idleness"
    );

    let (r, took) = slow.join().unwrap();
    eprintln!("the slow stop answered after {took:?}");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(took >= Duration::from_secs(12), "the stop took {took:?}");
    assert_eq!(r.json()["state"], "stopped", "{}", r.body);
}
