//! Who may use the unix socket: the server's own user and root, checked with `SO_PEERCRED`
//! on every connection, whatever the socket's file mode says; `server.unixserver.allow_uids`
//! and `allow_gids` widen it on purpose.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

/// Opens the socket (and the directories to it) to every user, as someone who widened the
/// mode by hand (or a umask, or a mount option) would have.
fn open_to_everyone(env: &Env) {
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(env.sock(), std::fs::Permissions::from_mode(0o666)).unwrap();
}

/// `curl --unix-socket` as nobody: (HTTP status, body).
fn curl_as_nobody(env: &Env, method: &str, path: &str) -> (String, String) {
    let sock = env.sock();
    let out = as_nobody(&[
        "curl",
        "-sS",
        "--max-time",
        "20",
        "-X",
        method,
        "-u",
        "admin:secret",
        "-H",
        "Content-Type: application/json",
        "-w",
        "\n%{http_code}",
        "--unix-socket",
        sock.to_str().unwrap(),
        &format!("http://localhost{path}"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.to_string(),
        format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn another_user_is_refused_even_when_the_socket_mode_lets_them_connect() {
    let env = Env::new(Setup {
        auth: true,
        ..Setup::default()
    });
    let _srv = env.start();
    open_to_everyone(&env);
    let (code, body) = curl_as_nobody(&env, "GET", "/api/status");
    assert_eq!(code, "403", "{body}");
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("uid {}", nobody_uid())) && error.contains("allow_uids"),
        "{error}"
    );
    let (code, body) = curl_as_nobody(&env, "POST", "/api/shutdown");
    assert_eq!(code, "403", "{body}");
    // The server's own user (root here) still gets in, and the refusal is in the log.
    env.ok(&["status-server"]);
    let log = std::fs::read_to_string(env.path("logs/gosuv.log")).unwrap();
    assert!(
        log.contains("refused a connection on the unix socket")
            && log.contains(&format!("uid={}", nobody_uid())),
        "{log}"
    );
}

#[test]
fn allow_uids_and_allow_gids_admit_another_user() {
    let uid = nobody_uid();
    for extra in [
        format!("    allow_uids: [{uid}]\n"),
        // nobody's primary group (nogroup).
        format!("    allow_gids: [{}]\n", nogroup_gid()),
    ] {
        let env = Env::new(Setup {
            auth: true,
            unix_extra: Some(extra.clone()),
            ..Setup::default()
        });
        let _srv = env.start();
        open_to_everyone(&env);
        let (code, body) = curl_as_nobody(&env, "GET", "/api/status");
        assert_eq!(code, "200", "{extra}: {body}");
        // conftest wants the programs file to exist (start-server does not).
        env.programs("");
        env.ok(&["conftest"]);
    }
    // A bad entry is a config error with its line.
    let env = Env::new(Setup {
        auth: true,
        unix_extra: Some("    allow_uids: [nobody]\n".into()),
        ..Setup::default()
    });
    let err = env.fails(&["conftest"]);
    assert!(
        err.contains("config.yml:8") && err.contains("allow_uids"),
        "{err}"
    );
}

fn nogroup_gid() -> u32 {
    let out = std::process::Command::new("id")
        .args(["-g", "nobody"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
