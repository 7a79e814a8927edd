//! Files another local user can plant where a root server writes: a link at a log's path or
//! at the pidfile's, a groups file of someone else's making, a log directory made under a
//! permissive umask, temporary files left by an interrupted save. gosuv follows no link,
//! trusts only state it wrote, and makes its directories 0750.
//!
//! The tests plant as root what `nobody` could plant, and hand it to `nobody` where the
//! owner is what matters (they need root for that; elsewhere those parts say so and skip).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::*;

fn root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

const NOBODY: u32 = 65534;

/// A file only root may read, with what must stay in it.
fn victim(env: &Env) -> std::path::PathBuf {
    let p = env.path("root-only");
    std::fs::write(&p, "secret\n").expect("victim");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

#[test]
fn a_link_planted_at_a_log_path_is_not_followed() {
    let env = Env::unix();
    let target = victim(&env);
    std::fs::create_dir_all(env.path("logs")).expect("logs");
    std::os::unix::fs::symlink(&target, env.path("logs/web.stdout.log")).expect("plant");
    env.programs(
        "- name: web\n  command: [/bin/sh, -c, 'while :; do echo appended; sleep 0.05; done']\n  start_auto: true\n  start_seconds: 0\n",
    );
    let _s = env.start();
    env.wait_state("web", "running");
    // The program's output fails to reach its log: counted as write errors.
    eventually(10, "the refused log to be reported", || {
        env.api("GET", "/api/programs/web", "").json()["log_errors"]
            .as_u64()
            .is_some_and(|n| n > 0)
    });
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "secret\n",
        "gosuv appended to the file a planted link points to"
    );
    assert!(
        env.server_log().contains("symbolic link"),
        "the log should say why: {}",
        env.server_log()
    );
}

#[test]
fn a_link_planted_at_the_pidfile_is_not_followed() {
    let env = Env::unix();
    let target = victim(&env);
    std::os::unix::fs::symlink(&target, env.path(".gosuv.pid")).expect("plant");
    let err = env.fails(&["start-server"]);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "secret\n",
        "gosuv truncated the file a planted pidfile link points to"
    );
    // Nothing else was made either: no server runs.
    assert!(!env.sock().exists());
}

#[test]
fn directories_are_0750_whatever_the_umask() {
    let env = Env::unix();
    // The server, started with umask 000, makes logs/ itself.
    let mut c = env.command(&["start-server"]);
    // SAFETY: umask is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let out = c.output().expect("start");
    assert!(out.status.success(), "{out:?}");
    let _s = Server { env: &env };
    let mode = std::fs::metadata(env.path("logs")).expect("logs").mode() & 0o777;
    assert_eq!(mode, 0o750, "logs/ made {mode:o} under umask 000");
}

#[test]
fn a_log_directory_others_may_write_to_is_warned_about() {
    let env = Env::unix();
    std::fs::create_dir_all(env.path("logs")).expect("logs");
    std::fs::set_permissions(env.path("logs"), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    let _s = env.start();
    eventually(5, "the warning", || {
        env.server_log().contains("writable by every user")
    });
    let out = env.run(&["conftest"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("writable by every user"), "{text}");
}

/// A groups file planted by another user, naming a root process (its start time is public
/// in /proc): start-server must not take it for its own and kill that process.
#[test]
fn a_groups_file_someone_else_wrote_is_not_trusted() {
    if !root() {
        eprintln!(
            "SKIPPED a_groups_file_someone_else_wrote...: needs root to hand a file to nobody"
        );
        return;
    }
    for how in ["owned by nobody", "world-writable"] {
        let env = Env::unix();
        let mut bystander = Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .expect("bystander");
        let pid = bystander.id();
        let st = stat(pid as i32).expect("stat");
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
        let file = serde_json::json!({
            "boot_id": boot.trim(),
            "server_pid": 4_194_999,
            "groups": [{"pgid": pid, "program": "x", "start_time": st.start_time,
                        "stop_signal": 9, "stop_timeout": 1}],
        });
        let path = env.path(".gosuv.pid.groups");
        std::fs::write(&path, file.to_string()).expect("plant");
        if how == "owned by nobody" {
            std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).expect("chown");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        }
        let s = env.start();
        let alive = bystander.try_wait().expect("try_wait").is_none();
        let _ = bystander.kill();
        let _ = bystander.wait();
        assert!(
            alive,
            "{how}: start-server killed a process a planted groups file named"
        );
        assert!(
            env.server_log().contains("not trusted"),
            "{how}: the log should say why: {}",
            env.server_log()
        );
        s.shutdown();
    }
}

#[test]
fn temporary_files_of_an_interrupted_save_are_removed_at_start() {
    let env = Env::unix();
    env.programs("[]\n");
    for name in [
        ".programs.yml.tmp-4194999",
        "..gosuv.pid.groups.tmp-4194998",
    ] {
        std::fs::write(env.path(name), "half a save").expect("leftover");
    }
    let _s = env.start();
    for name in [
        ".programs.yml.tmp-4194999",
        "..gosuv.pid.groups.tmp-4194998",
    ] {
        assert!(!env.path(name).exists(), "{name} stayed");
    }
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo");
}

/// A FIFO planted at a program's log path is written as a slow or hung disk would be (only
/// that program's output waits); one at gosuv.log is refused: start-server does not wait for
/// a reader for ever.
#[test]
fn a_fifo_planted_at_a_log_path_holds_nothing_up() {
    let env = Env::unix();
    std::fs::create_dir_all(env.path("logs")).expect("logs");
    mkfifo(&env.path("logs/web.stdout.log"));
    env.programs(
        "- name: web\n  command: [/bin/sh, -c, 'while :; do echo tick; sleep 0.05; done']\n  start_auto: true\n  start_seconds: 0\n",
    );
    let _s = env.start();
    env.wait_state("web", "running");
    // The server still answers, and the program can be stopped and started, while nothing
    // reads its log.
    assert_eq!(env.api("GET", "/api/status", "").status, 200);
    assert_eq!(env.api("POST", "/api/programs/web/stop", "").status, 200);
    assert_eq!(env.api("POST", "/api/programs/web/start", "").status, 200);
    drop(_s);

    let env = Env::unix();
    std::fs::create_dir_all(env.path("logs")).expect("logs");
    mkfifo(&env.path("logs/gosuv.log"));
    let t = std::time::Instant::now();
    let mut c = env.command(&["start-server"]);
    let mut child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("start-server hung on a FIFO at gosuv.log");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _s = Server { env: &env };
    assert!(!status.success(), "started on a FIFO log");
}

/// `gosuv kill` signals only a gosuv server named by a pidfile this user (or root) owns:
/// not a process a pidfile someone else wrote names, not a process that is no server.
#[test]
fn kill_signals_only_a_server_from_a_pidfile_of_its_own() {
    if !root() {
        eprintln!("SKIPPED kill_signals_only_a_server...: needs root to hand a file to nobody");
        return;
    }
    for how in ["owned by nobody", "names no server"] {
        let env = Env::unix();
        let mut bystander = Command::new("sleep").arg("300").spawn().expect("bystander");
        let path = env.path(".gosuv.pid");
        std::fs::write(&path, format!("{}\n", bystander.id())).expect("plant");
        if how == "owned by nobody" {
            std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).expect("chown");
        }
        // Held locked, as a live server's is.
        let held = std::fs::File::open(&path).expect("open");
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_EX) };
        let _ = env.run(&["kill"]);
        let alive = bystander.try_wait().expect("try_wait").is_none();
        let _ = bystander.kill();
        let _ = bystander.wait();
        drop(held);
        assert!(
            alive,
            "{how}: gosuv kill signalled the process a planted pidfile named"
        );
    }
}

/// The CLI sends its credentials only to a server of its own user (or root): a process of
/// another user listening at the socket's path gets nothing.
#[test]
fn the_cli_sends_no_credentials_to_another_users_socket() {
    if !root() {
        eprintln!(
            "SKIPPED the_cli_sends_no_credentials...: needs root to run a listener as nobody"
        );
        return;
    }
    if !std::path::Path::new("/usr/bin/python3").exists() {
        eprintln!("SKIPPED the_cli_sends_no_credentials...: no /usr/bin/python3 for the listener");
        return;
    }
    let env = Env::unix();
    std::fs::set_permissions(env.path(""), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let got = env.path("got");
    let script = format!(
        "import socket; s=socket.socket(socket.AF_UNIX); s.bind('{sock}'); s.listen(); \
         c,_=s.accept(); open('{got}','wb').write(c.recv(65536)); c.close()",
        sock = env.sock().display(),
        got = got.display()
    );
    let mut thief = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            &script,
        ])
        .spawn()
        .expect("listener as nobody");
    eventually(10, "the listener", || env.sock().exists());
    let out = env.run(&["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = thief.kill();
    let _ = thief.wait();
    assert!(
        !out.status.success(),
        "status talked to another user's socket"
    );
    assert!(stderr.contains("not as you or root"), "{stderr}");
    let sent = std::fs::read_to_string(&got).unwrap_or_default();
    assert!(!sent.contains("Authorization"), "credentials sent: {sent}");
}
