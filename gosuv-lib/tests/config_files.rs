//! Loading config.yml and programs.yml from disk: defaults, `include`, relative paths, and
//! every error of both files reported together.

mod common;

use std::path::Path;

use gosuv::config::{validate, ServerConfig};
use gosuv::{ProgramState, Supervisor};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn include_and_relative_paths_resolve_against_the_config_dir() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("conf/work")).expect("mkdir");
    let cfg = write(
        dir.path(),
        "config.yml",
        "include: conf/progs.yml\nserver:\n  log:\n    logpath: var/log\n",
    );
    write(
        &dir.path().join("conf"),
        "progs.yml",
        "- name: w\n  command: pwd\n  directory: conf/work\n",
    );
    let v = validate(&cfg).expect("valid");
    assert_eq!(v.server.server.log.logpath, dir.path().join("var/log"));
    assert_eq!(v.programs.len(), 1);
    assert_eq!(
        v.programs[0].directory.as_deref(),
        Some(dir.path().join("conf/work").as_path())
    );
}

#[test]
fn a_missing_programs_file_is_no_programs() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write(dir.path(), "config.yml", "");
    let v = validate(&cfg).expect("valid");
    assert!(v.programs.is_empty());
    assert_eq!(v.server.include, dir.path().join("programs.yml"));
}

#[test]
fn errors_of_both_files_are_listed_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write(dir.path(), "config.yml", "server:\n  colour: blue\n");
    write(
        dir.path(),
        "programs.yml",
        "- name: a\n  command: x\n  stop_timeout: -2\n- name: a\n  command: y\n",
    );
    let errs = validate(&cfg).expect_err("invalid");
    let text = errs.to_string();
    assert!(
        text.contains("programs.yml:3: [0].stop_timeout: -2 is negative"),
        "{text}"
    );
    assert!(
        text.contains("programs.yml:4: [1].name: duplicate name 'a'"),
        "{text}"
    );
    assert!(
        text.contains("config.yml:2: server.colour: unknown key"),
        "{text}"
    );
    assert_eq!(errs.0.len(), 3, "{text}");
}

/// A dependency cycle and a dependency on no program are refused at load, each with its
/// file and line, together with the file's other errors.
#[test]
fn dependency_cycles_and_unknown_names_are_named_with_their_lines() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write(dir.path(), "config.yml", "");
    write(
        dir.path(),
        "programs.yml",
        "- name: a\n  command: x\n  depends_on: [b]\n\
         - name: b\n  command: x\n  depends_on:\n    - {name: a, condition: started}\n\
         - name: c\n  command: x\n  depends_on: [ghost]\n\
         - name: d\n  command: x\n  ready: {log: '('}\n",
    );
    let errs = validate(&cfg).expect_err("invalid");
    let text = errs.to_string();
    assert!(
        text.contains("programs.yml:10: [2].depends_on: depends on 'ghost', which is no program"),
        "{text}"
    );
    assert!(
        text.contains("programs.yml:3: [0].depends_on: dependency cycle: "),
        "{text}"
    );
    assert!(
        text.contains("a -> b -> a") || text.contains("b -> a -> b"),
        "{text}"
    );
    assert!(text.contains("programs.yml:13: [3].ready.log"), "{text}");
    assert_eq!(errs.0.len(), 3, "{text}");
}

#[test]
fn unreadable_config_is_a_clear_error() {
    let errs = ServerConfig::load(Path::new("/no/such/config.yml")).expect_err("missing");
    assert!(
        errs.to_string().contains("cannot read the config file"),
        "{errs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_config_file_starts_start_auto_programs() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write(
        dir.path(),
        "config.yml",
        "server:\n  log:\n    logpath: out\n",
    );
    write(
        dir.path(),
        "programs.yml",
        "- name: auto\n  command: exec sleep 30\n  start_auto: true\n  start_seconds: 0\n- name: manual\n  command: exec sleep 30\n",
    );
    let sup = Supervisor::from_config_file(&cfg)
        .await
        .expect("supervisor");
    sup.wait_for(
        "auto",
        ProgramState::Running,
        std::time::Duration::from_secs(5),
    )
    .await
    .expect("auto runs");
    assert_eq!(
        sup.status("manual").expect("m").state,
        ProgramState::Stopped
    );
    assert_eq!(sup.log_dir(), dir.path().join("out"));
    sup.shutdown().await;
}
