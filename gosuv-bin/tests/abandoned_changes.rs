//! A change of the program set is carried through (saved, and the `gosuv-config-version`
//! header changed) even when the client that asked for it goes away before the answer.
//!
//! `DELETE /api/programs/{name}` waits until the program has stopped (here: it ignores
//! SIGTERM, so `stop_timeout`). A client that disconnects meanwhile (Ctrl-C of `gosuv
//! remove`, a closed browser tab, a proxy's timeout) makes hyper drop the handler's future.
//! That used to leave the program listed for ever as `stopped` with no task (`start`
//! answered "no program named"), programs.yml unsaved, and the version unchanged.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PROGRAMS: &str = "\
- name: slow
  command: trap '' TERM; touch slow.trapped; exec sleep 300
  start_seconds: 0
  start_auto: true
  stop_timeout: 3
";

fn list(env: &Env) -> (String, Vec<Value>) {
    let r = env.api("GET", "/api/programs?fields=name,state", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let version = r
        .header("gosuv-config-version")
        .expect("a gosuv-config-version header")
        .to_string();
    (version, r.json().as_array().expect("an array").clone())
}

#[test]
fn a_removal_whose_client_went_away_is_carried_through() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    let _srv = env.start();
    env.wait_state("slow", "running");
    // A TERM before the trap is set would end it at once, not after stop_timeout.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.path("slow.trapped").exists() {
        assert!(Instant::now() < deadline, "the program never set its trap");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (before, _) = list(&env);

    // The removal, from a client that leaves while the program stops.
    let mut s = UnixStream::connect(env.sock()).expect("connect");
    write!(
        s,
        "DELETE /api/programs/slow HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAuthorization: {}\r\nContent-Length: 0\r\n\r\n",
        admin()
    )
    .expect("send");
    env.wait_state("slow", "stopping");
    drop(s);

    // The stop ends after stop_timeout (3 s): the removal is done well within 20 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (version, programs) = list(&env);
        if programs.is_empty() && version != before {
            break;
        }
        if Instant::now() >= deadline {
            let start = env.api("POST", "/api/programs/slow/start?wait=false", "");
            let saved = std::fs::read_to_string(env.path("programs.yml")).unwrap_or_default();
            panic!(
                "20 s after a DELETE whose client went away: the list is {programs:?} with \
                 config version {version} (before: {before}); start answers {} {}; \
                 programs.yml:\n{saved}",
                start.status, start.body
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
