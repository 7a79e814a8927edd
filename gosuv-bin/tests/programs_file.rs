//! The programs file as the API changes it, through the real server: a change edits the
//! changed program's block in place (comments, blank lines and key order of the others
//! stay), and a change is refused (409) while the file holds a hand edit that was not
//! reloaded, leaving the file and the programs as they were.

mod common;
use common::*;

const HAND: &str = "\
# the team's programs: keep this comment
- name: alpha   # first
  start_seconds: 0
  command: sleep 300
  # a note about alpha's stop
  stop_timeout: 2

# beta runs once
- command: [echo, beta]
  name: beta
  autorestart: false
  start_seconds: 0
";

#[test]
fn api_changes_keep_the_hand_written_file() {
    let env = Env::unix();
    env.programs(HAND);
    let _server = env.start();
    let file = env.path("programs.yml");

    // Added: appended, everything above kept byte for byte.
    let r = env.api(
        "POST",
        "/api/programs",
        r#"{"name": "gamma", "command": "sleep 300", "start_seconds": 0}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(HAND), "{text}");
    assert!(text[HAND.len()..].starts_with("- name: gamma\n"), "{text}");

    // Changed: only beta's block is rewritten.
    let r = env.api(
        "PUT",
        "/api/programs/beta",
        r#"{"name": "beta", "command": ["echo", "beta2"], "autorestart": false, "start_seconds": 0}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let text = std::fs::read_to_string(&file).unwrap();
    let alpha_block = &HAND[..HAND.find("- command").unwrap()];
    assert!(text.starts_with(alpha_block), "{text}");
    assert!(
        text.contains("beta2") && !text.contains("[echo, beta]"),
        "{text}"
    );
    assert!(text.contains("- name: gamma\n"), "{text}");

    // Removed: its block goes, the rest stays.
    let r = env.api("DELETE", "/api/programs/gamma", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with(alpha_block) && !text.contains("gamma"),
        "{text}"
    );
}

#[test]
fn a_hand_edit_not_reloaded_refuses_api_changes() {
    let env = Env::unix();
    env.programs(HAND);
    let _server = env.start();
    let file = env.path("programs.yml");
    let edited = HAND.replace("stop_timeout: 2", "stop_timeout: 5");
    std::fs::write(&file, &edited).unwrap();

    for (method, path, body) in [
        (
            "POST",
            "/api/programs",
            r#"{"name": "gamma", "command": "sleep 300"}"#,
        ),
        (
            "PUT",
            "/api/programs/beta",
            r#"{"name": "beta", "command": "echo x"}"#,
        ),
        ("DELETE", "/api/programs/beta", ""),
    ] {
        let r = env.api(method, path, body);
        assert_eq!(r.status, 409, "{method} {path}: {}", r.body);
        assert!(
            r.error().contains("changed by hand") && r.error().contains("gosuv reload"),
            "{}",
            r.body
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), edited);
    }
    // Nothing changed live either.
    let list = env.api("GET", "/api/programs", "").json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(
        env.api("GET", "/api/programs/beta", "").json()["command"],
        serde_json::json!(["echo", "beta"])
    );

    // After a reload the hand edit is live, and changes are saved again, on top of it.
    env.ok(&["reload"]);
    let r = env.api(
        "POST",
        "/api/programs",
        r#"{"name": "gamma", "command": "sleep 300", "start_seconds": 0}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(&edited), "{text}");
}

#[test]
fn numprocs_entries_are_kept_and_their_instances_not_edited_alone() {
    let env = Env::unix();
    let text = "# workers\n- name: w\n  numprocs: 2\n  command: sleep 300 # {n}\n";
    env.programs(text);
    let _server = env.start();
    let file = env.path("programs.yml");
    for (method, body) in [
        ("PUT", r#"{"name": "w-1", "command": "sleep 1"}"#),
        ("DELETE", ""),
    ] {
        let r = env.api(method, "/api/programs/w-1", body);
        assert_eq!(r.status, 409, "{method}: {}", r.body);
        assert!(r.error().contains("instance of 'w'"), "{}", r.body);
    }
    let r = env.api(
        "POST",
        "/api/programs",
        r#"{"name": "x", "command": "sleep 300", "numprocs": 3}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("programs.yml"), "{}", r.body);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    // Another program added: the entry stays one entry.
    let r = env.api(
        "POST",
        "/api/programs",
        r#"{"name": "x", "command": "sleep 300"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let now = std::fs::read_to_string(&file).unwrap();
    assert!(now.starts_with(text), "{now}");
}
