//! The README's quick start, end to end with the real binary: start-server on the default
//! config it writes, add a program to programs.yml, reload, status, stop, shutdown; and its
//! web page setup (HTTP turned on in that config), which another local user cannot use.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::*;

/// An empty directory where the README's commands run as written (no `-c`), whose server
/// is shut down when it goes, whatever happened.
struct Bare(tempfile::TempDir);

impl Bare {
    fn new() -> Bare {
        Bare(
            tempfile::Builder::new()
                .prefix("gs")
                .tempdir_in("/tmp")
                .unwrap(),
        )
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(BIN)
            .current_dir(self.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.run(&["shutdown"]);
    }
}

/// The password of a default config.yml: on, random, the same for the server and the client.
fn default_password(text: &str) -> String {
    let cfg = gosuv::ServerConfig::parse(text, None, std::path::Path::new("/")).unwrap();
    let auth = &cfg.server.auth;
    assert!(auth.enabled, "{text}");
    assert_eq!(auth.username, "admin");
    assert_eq!(cfg.client.username, "admin");
    assert_eq!(
        cfg.client.password, auth.password,
        "the CLI uses the same file"
    );
    assert!(
        auth.password.len() >= 24
            && auth
                .password
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{:?} is not a random url-safe password",
        auth.password
    );
    auth.password.clone()
}

#[test]
fn quick_start_from_an_empty_directory() {
    let dir = Bare::new();
    let run = |args: &[&str]| dir.run(args);

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
    let password = default_password(&text);
    assert_eq!(text, gosuv::config::default_config_yml(&password));
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

/// The README's web page setup: `start-server` in an empty directory, then
/// `server.httpserver.enabled: true` in the config it wrote and `restart-server`. Another
/// local user (`nobody`) who posts a program to 127.0.0.1 and starts it must not run a
/// command as the server's user (root here): without auth it did.
#[test]
fn the_readme_web_setup_is_closed_to_other_local_users() {
    let dir = Bare::new();
    let run = |args: &[&str]| dir.run(args);
    let out = run(&["start-server"]);
    assert!(out.status.success(), "{out:?}");
    let conf = dir.path().join("config.yml");
    let text = std::fs::read_to_string(&conf).unwrap();
    let port = free_port();
    let http = "  httpserver:\n";
    let at = text.find(http).expect("an httpserver section") + http.len();
    let section_end = text[at..].find("  unixserver:").unwrap() + at;
    let section = text[at..section_end]
        .replace("enabled: false", "enabled: true")
        .replace("127.0.0.1:11333", &format!("127.0.0.1:{port}"));
    std::fs::write(
        &conf,
        format!("{}{section}{}", &text[..at], &text[section_end..]),
    )
    .unwrap();
    let out = run(&["restart-server"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Another local user, on loopback, without the password.
    let base = format!("http://127.0.0.1:{port}");
    let add = as_nobody(&curl_args(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name": "pwn", "command": "id > pwned.txt"}"#,
        &format!("{base}/api/programs"),
    ]));
    let start = as_nobody(&curl_args(&[
        "-H",
        "Content-Type: application/json",
        "-X",
        "POST",
        &format!("{base}/api/programs/pwn/start"),
    ]));
    assert!(
        !dir.path().join("pwned.txt").exists(),
        "nobody ran a command as root"
    );
    assert_eq!(String::from_utf8_lossy(&add.stdout), "401", "{add:?}");
    assert_eq!(String::from_utf8_lossy(&start.stdout), "401", "{start:?}");
    let out = run(&["status"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("pwn"),
        "{out:?}"
    );

    // The owner, with the password from config.yml (and the URL restart-server printed),
    // gets in.
    let password = default_password(&text);
    assert!(
        stdout.contains(&format!(
            "web page: http://admin:{password}@127.0.0.1:{port}/"
        )),
        "{stdout}"
    );
    let own = curl_status(&[
        "-u",
        &format!("admin:{password}"),
        &format!("{base}/api/programs"),
    ]);
    assert_eq!(own, "200");
}

/// Two directories get different passwords (from the OS's random source).
#[test]
fn each_default_config_has_its_own_password() {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::Builder::new()
            .prefix("gs")
            .tempdir_in("/tmp")
            .unwrap();
        let conf = dir.path().join("config.yml");
        // `conftest` on a missing file does not write one; `start-server` with a config
        // that cannot start writes it, then fails: stop the attempt at the programs file.
        std::fs::create_dir(dir.path().join("programs.yml")).unwrap();
        let out = std::process::Command::new(BIN)
            .current_dir(dir.path())
            .arg("start-server")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let text = std::fs::read_to_string(&conf).unwrap();
        seen.push(default_password(&text));
        let mode = std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "config.yml" && n != "programs.yml")
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
    assert_ne!(seen[0], seen[1]);
}
