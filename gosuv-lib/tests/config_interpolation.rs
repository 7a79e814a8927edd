//! `${VAR}`, `${VAR:-default}` and `$$` in the string values of programs.yml, replaced from
//! gosuv's environment, then from the entry's `env_file`, when the file is loaded.

use std::path::Path;

use gosuv::config::{parse_programs, Command};

fn parse_in(dir: &Path, text: &str) -> Result<Vec<gosuv::ProgramConfig>, String> {
    parse_programs(text, Some(Path::new("programs.yml")), dir).map_err(|e| e.to_string())
}

fn parse(text: &str) -> Result<Vec<gosuv::ProgramConfig>, String> {
    parse_in(Path::new("/srv"), text)
}

#[test]
fn every_form_in_every_string_value() {
    std::env::set_var("GOSUV_IT_APP", "shop");
    std::env::set_var("GOSUV_IT_PORT", "8080");
    std::env::set_var("GOSUV_IT_EMPTY", "");
    let ps = parse(
        "- name: ${GOSUV_IT_APP}-web\n  command: serve --port ${GOSUV_IT_PORT} --x ${GOSUV_IT_NONE:-dflt} --pid $$ --home $HOME\n  environ: [\"PORT=${GOSUV_IT_PORT}\", \"E=${GOSUV_IT_EMPTY:-was empty}\"]\n  directory: /srv/${GOSUV_IT_APP}\n  stop_signal: ${GOSUV_IT_SIG:-INT}\n  ready:\n    tcp: 127.0.0.1:${GOSUV_IT_PORT}\n- name: argv\n  command: [\"${GOSUV_IT_APP}\", \"$${literal}\", \"a$$b\"]\n",
    )
    .expect("valid");
    let web = &ps[0];
    assert_eq!(web.name, "shop-web");
    assert_eq!(
        web.command,
        Command::Shell("serve --port 8080 --x dflt --pid $ --home $HOME".into())
    );
    assert_eq!(
        web.environ,
        vec![
            ("PORT".into(), "8080".into()),
            ("E".into(), "was empty".into())
        ]
    );
    assert_eq!(web.directory.as_deref(), Some(Path::new("/srv/shop")));
    assert_eq!(web.stop_signal.name(), "INT");
    let ready = serde_json::to_string(&web.ready).expect("json");
    assert!(ready.contains("127.0.0.1:8080"), "{ready}");
    assert_eq!(
        ps[1].command,
        Command::Argv(vec!["shop".into(), "${literal}".into(), "a$b".into()])
    );
}

#[test]
fn an_unset_variable_is_an_error_naming_it_and_its_line() {
    let e = parse("- name: a\n  command: x\n- name: b\n  command: run ${GOSUV_IT_NEVER_SET}\n")
        .unwrap_err();
    assert!(
        e.contains("programs.yml:4: [1].command: `${GOSUV_IT_NEVER_SET}` is not set in gosuv's environment"),
        "{e}"
    );
    assert!(e.contains("`${GOSUV_IT_NEVER_SET:-value}`"), "{e}");
    // Only the one error: the entry is not parsed further with the text left as it was.
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn malformed_references_are_errors() {
    for (bad, want) in [
        ("x ${OPEN", "without its closing"),
        ("${}", "is not a variable"),
        ("${9LIVES}", "is not a variable"),
        ("${A-B}", "is not a variable"),
        ("${A:=b}", "is not a variable"),
    ] {
        let e = parse(&format!("- name: a\n  command: 'echo {bad}'\n")).unwrap_err();
        assert!(e.contains("programs.yml:2: [0].command: "), "{bad}: {e}");
        assert!(e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn env_file_is_read_after_the_environment() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("env")).expect("mkdir");
    std::fs::write(
        dir.path().join("env/app.env"),
        "# settings\nGOSUV_IT_FROM_FILE=file-value\nGOSUV_IT_SHADOWED=\"file\"\n",
    )
    .expect("write");
    std::env::set_var("GOSUV_IT_SHADOWED", "environment");
    std::env::set_var("GOSUV_IT_ENVDIR", "env");
    // `env_file` is read raw here (relative to the config's directory, itself expanded from
    // the environment): whether the key is accepted is the parser's business.
    let mut item: serde_yaml::Value = serde_yaml::from_str(
        "name: a\ncommand: run ${GOSUV_IT_FROM_FILE} ${GOSUV_IT_SHADOWED}\nenv_file: ${GOSUV_IT_ENVDIR}/app.env\n",
    )
    .expect("yaml");
    let text = serde_yaml::to_string(&vec![item.clone()]).expect("yaml");
    let ps = parse_in(dir.path(), &text).expect("valid");
    assert_eq!(
        ps[0].command,
        Command::Shell("run file-value environment".into())
    );
    // Without the env_file, the variable only it has is unset.
    item.as_mapping_mut().expect("map").remove("env_file");
    let text = serde_yaml::to_string(&vec![item]).expect("yaml");
    let e = parse_in(dir.path(), &text).unwrap_err();
    assert!(e.contains("`${GOSUV_IT_FROM_FILE}` is not set"), "{e}");
}

#[test]
fn an_unreadable_env_file_is_named_when_a_variable_is_missing() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = parse_in(
        dir.path(),
        "- name: a\n  command: run ${GOSUV_IT_NOWHERE}\n  env_file: missing.env\n",
    )
    .unwrap_err();
    assert!(e.contains("`${GOSUV_IT_NOWHERE}` is not set"), "{e}");
    assert!(
        e.contains("cannot read env_file") && e.contains("missing.env"),
        "{e}"
    );
}

#[test]
fn a_program_built_in_code_is_taken_literally() {
    // What the API and the embedding crates send is the resolved program: no second
    // expansion (a shell's `${X:+y}` or `$$` stays the shell's).
    let p = gosuv::ProgramConfig::shell("lit", "echo $$ ${PATH:+yes} ${GOSUV_IT_NEVER_SET}");
    p.validate().expect("taken as it is");
    let back = gosuv::config::parse_program_value(
        serde_yaml::to_value(&p).expect("value"),
        Path::new("/"),
    )
    .expect("valid");
    assert_eq!(back.command, p.command);
}
