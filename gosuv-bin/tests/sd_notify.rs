//! `gosuv start-server -f` under systemd (`Type=notify`): `READY=1` (with its pid) once it
//! serves and `STOPPING=1` when it shuts down, on the datagram socket `$NOTIFY_SOCKET`
//! names, by path or as an abstract `@name`; its programs do not inherit the variable.

mod common;
use common::*;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::Duration;

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification within 20 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn run_under(env: &Env, sock: &UnixDatagram, notify_socket: &str) {
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = env
        .command(&["start-server", "-f"])
        .env("NOTIFY_SOCKET", notify_socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = recv(sock);
    assert_eq!(ready, format!("READY=1\nMAINPID={}", child.id()));
    // It serves when it says so.
    env.ok(&["status-server"]);
    env.wait_state("env", "running");
    let mut seen = String::new();
    eventually(10, "the program wrote its environment", || {
        seen = std::fs::read_to_string(env.path("env.txt")).unwrap_or_default();
        seen.contains("GOSUV_PROGRAM=env")
    });
    assert!(
        !seen.contains("NOTIFY_SOCKET"),
        "the program inherited it: {seen}"
    );
    env.ok(&["shutdown"]);
    assert_eq!(recv(sock), "STOPPING=1");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

const PROGRAMS: &str = "\
- name: env
  command: env > env.txt; exec sleep 300
  start_auto: true
  start_seconds: 0
";

#[test]
fn ready_and_stopping_on_a_path() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    let path = env.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    run_under(&env, &sock, path.to_str().unwrap());
}

#[test]
fn ready_and_stopping_on_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let env = Env::unix();
    env.programs(PROGRAMS);
    let name = format!("gosuv-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    run_under(&env, &sock, &format!("@{name}"));
}

#[test]
fn restart_server_says_reloading_then_ready_again() {
    let env = Env::unix();
    env.programs(PROGRAMS);
    let path = env.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = env
        .command(&["start-server", "-f"])
        .env("NOTIFY_SOCKET", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(recv(&sock), format!("READY=1\nMAINPID={}", child.id()));
    env.ok(&["restart-server"]);
    let reloading = recv(&sock);
    let usec = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("{reloading:?}"));
    assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{reloading:?}");
    // The same process (systemd's main pid) serves again.
    assert_eq!(recv(&sock), format!("READY=1\nMAINPID={}", child.id()));
    env.ok(&["shutdown"]);
    assert_eq!(recv(&sock), "STOPPING=1");
    assert!(child.wait().unwrap().success());
}
