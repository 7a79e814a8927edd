//! gosuv.log: state changes and API mutations (who, what) are logged, and the file is
//! rotated by `filemax`/`backups`.

mod common;

use common::*;

#[test]
fn gosuv_log_records_changes_and_rotates_by_size() {
    let env = Env::unix();
    let text = std::fs::read_to_string(env.conf()).unwrap();
    std::fs::write(
        env.conf(),
        text.replace(
            "  log:\n    level: debug\n",
            "  log:\n    level: info\n    filemax: 2KB\n    backups: 2\n",
        ),
    )
    .unwrap();
    env.programs("- name: p\n  command: [sleep, '300']\n  start_seconds: 0\n");
    let _srv = env.start();
    env.ok(&["start", "p"]);
    let log = std::fs::read_to_string(env.path("logs/gosuv.log")).unwrap();
    assert!(
        log.contains("start p") && log.contains("peer=unix"),
        "{log}"
    );
    assert!(
        log.contains("from=starting to=running") || log.contains("starting -> running"),
        "{log}"
    );

    for _ in 0..15 {
        env.ok(&["restart", "p"]);
    }
    let logs = env.path("logs");
    let size = |name: &str| std::fs::metadata(logs.join(name)).map(|m| m.len()).ok();
    assert!(size("gosuv.log.1").is_some(), "rotated once at least");
    assert!(size("gosuv.log.2").is_some(), "two backups kept");
    assert!(size("gosuv.log.3").is_none(), "no more than two backups");
    for name in ["gosuv.log", "gosuv.log.1", "gosuv.log.2"] {
        assert!(
            size(name).unwrap() <= 2048,
            "{name} is {:?} bytes",
            size(name)
        );
    }
}
