//! The README's quick start, end to end with the real binary: start-server on the default
//! config it writes, add a program to programs.yml, reload, status, stop, shutdown.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::*;

#[test]
fn quick_start_from_an_empty_directory() {
    let dir = tempfile::Builder::new()
        .prefix("gs")
        .tempdir_in("/tmp")
        .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .current_dir(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // A guard for this directory's server, whatever happens below.
    struct Guard<'a>(&'a std::path::Path);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new(BIN)
                .current_dir(self.0)
                .arg("shutdown")
                .output();
        }
    }
    let _guard = Guard(dir.path());

    let out = run(&["start-server"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sock = dir.path().join(".gosuv.sock");
    assert_eq!(
        stdout.trim(),
        format!("server started, listening unix://{}", sock.display())
    );
    let conf = dir.path().join("config.yml");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert_eq!(text, gosuv::config::DEFAULT_CONFIG_YML);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&conf), 0o600, "config.yml holds a password");
    assert_eq!(mode(&sock), 0o600, "the socket is private");
    assert!(dir.path().join("logs/gosuv.log").exists());

    let out = run(&["status-server"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "server is running"
    );

    std::fs::write(
        dir.path().join("programs.yml"),
        "- name: hello\n  command: echo hello; exec sleep 60\n  start_auto: true\n  start_seconds: 0\n",
    )
    .unwrap();
    let out = run(&["reload"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "load config success\nadded: hello\n"
    );

    // start_auto starts a program that reload added.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let table = loop {
        let out = run(&["status"]);
        let t = String::from_utf8_lossy(&out.stdout).into_owned();
        if t.contains("running") || std::time::Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME   STATE    PID"), "{table}");
    assert!(lines[1].starts_with("hello  running  "), "{table}");

    let out = run(&["tail", "hello"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");

    let out = run(&["stop", "hello"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello: stopped"
    );

    let out = run(&["shutdown"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "server stopped"
    );
    assert!(!sock.exists(), "the socket is removed");
    assert!(
        !dir.path().join(".gosuv.pid").exists(),
        "the pidfile is removed"
    );

    let out = run(&["status-server"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server is not running"), "{err}");
}
