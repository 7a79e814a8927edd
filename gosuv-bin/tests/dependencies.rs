//! `depends_on` through the server: start-server starts a programs file in dependency order
//! (whatever order the file lists it in), shutdown stops it in reverse; a cycle or an unknown
//! name is refused with its line; a program whose dependency fails says which.

mod common;

use common::*;

/// The start time of a process, in clock ticks since boot (field 22 of /proc/PID/stat).
fn start_ticks(pid: i32) -> u64 {
    stat(pid)
        .unwrap_or_else(|| panic!("no process {pid}"))
        .start_time
}

fn pid_of(env: &Env, name: &str) -> i32 {
    let r = env.api("GET", &format!("/api/programs/{name}"), "");
    r.json()["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("{name} has no pid: {}", r.body)) as i32
}

#[test]
fn start_server_starts_in_dependency_order_and_stop_all_and_shutdown_stop_in_reverse() {
    let env = Env::unix();
    let stops = env.path("stops");
    let program = |name: &str, extra: &str, before: &str| {
        format!(
            "- name: {name}\n  command: trap 'echo {name} >> {}; exit 0' TERM; {before}sleep 300 & wait\n  start_auto: true\n{extra}",
            stops.display()
        )
    };
    // Listed dependents first: the file's order must not matter.
    env.programs(&format!(
        "{}{}{}",
        program("web", "  depends_on: [api]\n", ""),
        program("api", "  depends_on: [db]\n", ""),
        program(
            "db",
            "  ready: {log: '^db ready$'}\n",
            "sleep 0.5; echo db ready; "
        ),
    ));
    let server = env.start();
    let out = env.ok(&["wait", "web", "api", "db", "--timeout", "30"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    let (db, api, web) = (
        start_ticks(pid_of(&env, "db")),
        start_ticks(pid_of(&env, "api")),
        start_ticks(pid_of(&env, "web")),
    );
    assert!(
        db < api && api < web,
        "start times: db {db}, api {api}, web {web}"
    );
    // api started once db was ready (half a second after its start), not merely after it.
    let ms = |ticks: u64| ticks * 1000 / ticks_per_sec();
    assert!(
        ms(api - db) >= 400,
        "api started {} ms after db",
        ms(api - db)
    );

    // `stop all` goes dependents first too, each waited for.
    env.ok(&["stop", "all"]);
    let order = std::fs::read_to_string(&stops).unwrap();
    assert_eq!(order, "web\napi\ndb\n", "stop all");
    std::fs::write(&stops, "").unwrap();
    env.ok(&["start", "all"]);
    server.shutdown();
    let order = std::fs::read_to_string(&stops).unwrap();
    assert_eq!(order, "web\napi\ndb\n", "shutdown");
}

#[test]
fn a_cycle_or_an_unknown_dependency_is_refused_with_its_line() {
    let env = Env::unix();
    env.programs(
        "- name: a\n  command: exec sleep 300\n  depends_on: [b]\n\
         - name: b\n  command: exec sleep 300\n  depends_on:\n    - {name: a, condition: started}\n\
         - name: c\n  command: exec sleep 300\n  depends_on: [ghost]\n",
    );
    for args in [&["conftest"][..], &["start-server"]] {
        let err = env.fails(args);
        assert!(
            err.contains("programs.yml:3: [0].depends_on: dependency cycle: a -> b -> a")
                || err.contains("programs.yml:6: [1].depends_on: dependency cycle: b -> a -> b"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(
                "programs.yml:10: [2].depends_on: depends on 'ghost', which is no program"
            ),
            "{args:?}: {err}"
        );
    }
    assert!(!env.sock().exists(), "start-server refused the file");

    // A reload of such a file changes nothing.
    env.programs("- name: a\n  command: exec sleep 300\n");
    let _s = env.start();
    env.programs(
        "- name: a\n  command: exec sleep 300\n  depends_on: [b]\n\
         - name: b\n  command: exec sleep 300\n  depends_on: [a]\n",
    );
    let err = env.fails(&["reload"]);
    assert!(err.contains("dependency cycle"), "{err}");
    assert!(err.contains("programs.yml:3"), "{err}");
    let status = env.ok(&["status"]);
    assert_eq!(status.lines().count(), 2, "{status}");
}

/// A program whose dependency goes fatal goes fatal too, and `wait`, `start` and `status`
/// name the dependency and quote its error.
#[test]
fn a_failed_dependency_is_named_by_wait_start_and_status() {
    let env = Env::unix();
    let closed = free_port();
    env.programs(&format!(
        "- name: db\n  command: exec sleep 300\n  start_retries: 0\n  ready: {{tcp: \"127.0.0.1:{closed}\", interval: 50ms, timeout: 300ms}}\n\
         - name: web\n  command: exec sleep 300\n  start_auto: true\n  depends_on: [db]\n"
    ));
    let _s = env.start();
    let err = env.fails(&["wait", "web", "--timeout", "20"]);
    assert!(
        err.contains(
            "'web' could not start: dependency 'db' is fatal: not ready within 300ms (tcp probe)"
        ),
        "{err}"
    );
    // A start by hand starts db again, and fails for the same reason.
    let err = env.fails(&["start", "web"]);
    assert!(
        err.contains(
            "'web' could not start: dependency 'db' is fatal: not ready within 300ms (tcp probe)"
        ),
        "{err}"
    );
    let table = env.ok(&["status"]);
    let row = table.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(row.contains(" fatal "), "{table}");
    assert!(row.contains("dependency 'db' is fatal: "), "{table}");
}
