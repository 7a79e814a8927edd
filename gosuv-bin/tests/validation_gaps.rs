//! What the API and `reload` refuse that they took before: NUL bytes in a command, an
//! argument or an environment value, an empty program in argv, a stop signal that never
//! stops a program, and a programs file nested so deep that refusing it took most of a
//! minute. Each refusal is a 400 that names the key, and changes nothing.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[test]
fn the_api_refuses_what_no_program_can_use() {
    let env = Env::unix();
    let _s = env.start();
    let bodies = [
        (json!({"name": "a", "command": "sleep\u{0} 1"}), "NUL byte"),
        (
            json!({"name": "a", "command": ["sleep", "1\u{0}"]}),
            "NUL byte",
        ),
        (
            json!({"name": "a", "command": "x", "environ": ["A=b\u{0}"]}),
            "NUL byte",
        ),
        (
            json!({"name": "a", "command": ["", "x"]}),
            "first item is the program",
        ),
        (
            json!({"name": "a", "command": "x", "stop_signal": "STOP"}),
            "never stops it",
        ),
        (
            json!({"name": "a", "command": "x", "stop_signal": "CHLD"}),
            "ignored",
        ),
    ];
    for (body, says) in bodies {
        let r = env.api("POST", "/api/programs", &body.to_string());
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.error().contains(says), "{body}: {}", r.body);
    }
    let list = env.api("GET", "/api/programs", "").json();
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
}

#[test]
fn a_deeply_nested_programs_file_is_refused_at_once_on_reload() {
    let env = Env::unix();
    env.programs("- name: keep\n  command: sleep 300\n");
    let _s = env.start();
    env.programs(&"[".repeat(200_000));
    let t = Instant::now();
    let r = env.api("POST", "/api/reload", "");
    let took = t.elapsed();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error().contains("more than 1000 [ or { open"),
        "{}",
        r.body
    );
    assert!(took < Duration::from_secs(5), "refusing took {took:?}");
    // Nothing changed.
    let list = env.api("GET", "/api/programs", "").json();
    assert_eq!(list[0]["name"], "keep", "{list}");
}
