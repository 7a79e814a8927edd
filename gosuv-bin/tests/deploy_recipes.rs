//! The deployment recipes in deploy/, as far as this machine can run them: the Kubernetes
//! manifest's config.yml and programs.yml pass `conftest`, and a server on them answers the
//! manifest's probes without credentials and its metrics with them; the command lines of
//! the systemd unit and of the Dockerfile are ones the CLI accepts. (Type=notify itself is
//! tested in sd_notify.rs, gosuv as PID 1 in pid1.rs; no image is built here.)

mod common;
use common::*;

use serde::Deserialize;

const BIN: &str = env!("CARGO_BIN_EXE_gosuv");

fn deploy(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The string values of `stringData`/`data` of the manifest's Secret and ConfigMap.
fn manifest_files() -> (String, String) {
    let text = deploy("kubernetes/gosuv.yaml");
    let mut config = None;
    let mut programs = None;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = serde_yaml::Value::deserialize(doc).unwrap();
        for key in ["stringData", "data"] {
            if let Some(s) = v[key]["config.yml"].as_str() {
                config = Some(s.to_string());
            }
            if let Some(s) = v[key]["programs.yml"].as_str() {
                programs = Some(s.to_string());
            }
        }
    }
    (config.unwrap(), programs.unwrap())
}

#[test]
fn the_kubernetes_config_starts_and_answers_its_probes() {
    let env = Env::unix();
    let (config, programs) = manifest_files();
    let port = free_port();
    let root = env.path("");
    let root = root.to_str().unwrap().trim_end_matches('/');
    // The pod's paths, moved into the test's directory; the port, a free one.
    let config = config
        .replace("/etc/gosuv", &format!("{root}/etc"))
        .replace("/run/gosuv", &format!("{root}/run"))
        .replace("/var/log/gosuv", &format!("{root}/log"))
        .replace(":11333", &format!("127.0.0.1:{port}"));
    for d in ["etc/programs", "run", "log"] {
        std::fs::create_dir_all(env.path(d)).unwrap();
    }
    // The manifest's program, on loopback only and a free port.
    assert!(programs.contains("ready: {tcp: \"127.0.0.1:8080\"}"));
    let programs = programs
        .replace("8080", &free_port().to_string())
        .replace("http.server", "http.server --bind 127.0.0.1");
    let conf = env.path("etc/config.yml");
    std::fs::write(&conf, &config).unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(env.path("etc/programs/programs.yml"), &programs).unwrap();
    let gosuv = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("-c")
            .arg(&conf)
            .args(args)
            .current_dir(env.path(""))
            .output()
            .unwrap()
    };
    let out = gosuv(&["conftest"]);
    assert!(out.status.success(), "{out:?}");
    let out = gosuv(&["start-server"]);
    assert!(out.status.success(), "{out:?}");
    let stop = scopeguard(|| {
        let _ = gosuv(&["shutdown"]);
    });
    let get = |path: &str, auth: bool| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let cred = basic("admin", "CHANGE-ME-to-a-long-random-password");
        let mut headers = vec![];
        if auth {
            headers.push(("Authorization", cred.as_str()));
        }
        common::raw(&mut s, "127.0.0.1", "GET", path, &headers, "")
    };
    assert_eq!(get("/healthz", false).status, 200);
    eventually(20, "/readyz says ready once web listens", || {
        get("/readyz", false).status == 200
    });
    assert_eq!(get("/metrics", false).status, 401);
    let m = get("/metrics", true);
    assert_eq!(m.status, 200);
    assert!(m.body.contains("gosuv_"), "{}", m.body);
    drop(stop);
}

/// Runs `f` when dropped (the server is shut down even when an assertion fails).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// The arguments of a command line of a recipe, after the binary (`gosuv -c ... cmd`).
fn args_after_binary(line: &str) -> Vec<String> {
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    let at = words.iter().position(|w| w.ends_with("gosuv")).unwrap();
    words[at + 1..].to_vec()
}

fn accepted(args: &[String]) {
    // `--help` after the command: clap checks every argument before it, runs nothing.
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "gosuv {args:?}: {out:?}");
}

#[test]
fn the_systemd_unit_and_the_dockerfile_use_real_commands() {
    let unit = deploy("gosuv.service");
    assert!(unit.contains("\nType=notify\n"), "{unit}");
    for key in ["ExecStart=", "ExecReload="] {
        let line = unit
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key}"));
        accepted(&args_after_binary(line));
    }
    let docker = deploy("Dockerfile");
    let json_args = |key: &str| -> Vec<String> {
        let line = docker.lines().find(|l| l.starts_with(key)).unwrap();
        serde_json::from_str(line[key.len()..].trim()).unwrap()
    };
    let mut args = json_args("ENTRYPOINT");
    args.remove(0);
    args.extend(json_args("CMD"));
    accepted(&args);
    let mut health = json_args("HEALTHCHECK --interval=10s --timeout=3s CMD");
    health.remove(0);
    accepted(&health);
}
