//! A program whose `directory` or `user` does not exist spoils only its own start: the file
//! stays valid and says so in its warnings.

use std::path::Path;

use gosuv::config::{parse_programs_checked, ServerConfig};

#[test]
fn missing_directory_and_user_are_warnings_with_their_lines() {
    let loaded = parse_programs_checked(
        "- name: ok\n  command: x\n- name: lost\n  command: y\n  directory: /definitely/not/here\n- name: nobody-home\n  command: z\n  user: no-such-user-gosuv\n",
        Some(Path::new("programs.yml")),
        Path::new("/srv"),
    )
    .expect("still valid");
    assert_eq!(loaded.programs.len(), 3);
    assert_eq!(
        loaded.programs[1].directory.as_deref(),
        Some(Path::new("/definitely/not/here"))
    );
    assert_eq!(
        loaded.programs[2].user.as_deref(),
        Some("no-such-user-gosuv")
    );
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(
        w[0].starts_with("programs.yml:5: directory /definitely/not/here does not exist: 'lost' will fail to start"),
        "{}",
        w[0]
    );
    assert!(
        w[1].starts_with("programs.yml:8: user 'no-such-user-gosuv' does not exist on this machine: 'nobody-home' will fail to start"),
        "{}",
        w[1]
    );
}

#[test]
fn a_file_in_place_of_the_directory_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("plain"), "").expect("write");
    let loaded = parse_programs_checked(
        "- name: a\n  command: x\n  directory: plain\n",
        None,
        dir.path(),
    )
    .expect("valid");
    assert!(
        loaded.warnings[0]
            .message
            .contains("plain is not a directory"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn instances_sharing_a_missing_directory_share_one_warning() {
    let loaded = parse_programs_checked(
        "- name: w\n  command: x\n  numprocs: 3\n  directory: /definitely/not/here\n- name: v\n  command: x\n  numprocs: 2\n  directory: /definitely/not/{n}\n",
        None,
        Path::new("/"),
    )
    .expect("valid");
    let w: Vec<&str> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(w[0].contains("'w' will fail"), "{w:?}");
    assert!(w[1].contains("/definitely/not/0"), "{w:?}");
    assert!(w[2].contains("/definitely/not/1"), "{w:?}");
}

#[test]
fn empty_and_missing_programs_files_are_no_programs() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("config.yml"), "").expect("write");
    let cfg = ServerConfig::load(&dir.path().join("config.yml")).expect("valid");
    let loaded = cfg.load_programs_checked().expect("missing is no programs");
    assert!(loaded.programs.is_empty() && loaded.warnings.is_empty());
    for text in ["", "\n\n", "# only a comment\n# and another\n", "---\n"] {
        std::fs::write(dir.path().join("programs.yml"), text).expect("write");
        let loaded = cfg.load_programs_checked().expect(text);
        assert!(loaded.programs.is_empty(), "{text:?}");
    }
    std::fs::write(
        dir.path().join("programs.yml"),
        b"- name: a\n  command: \xff\n",
    )
    .expect("write");
    let e = cfg.load_programs_checked().unwrap_err().to_string();
    assert!(e.contains("not UTF-8 text"), "{e}");
}
