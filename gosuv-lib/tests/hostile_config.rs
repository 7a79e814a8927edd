//! Hostile input to the config parsers: arbitrary text and arbitrary values never panic,
//! and every failure is a list of errors that name a line or a key.

use std::path::Path;

use gosuv::config::{parse_program_value, parse_programs, ServerConfig};
use proptest::prelude::*;
use serde_yaml::Value;

fn yamlish() -> impl Strategy<Value = String> {
    // Text built from YAML's own punctuation and the real keys, so that many inputs get past
    // the syntax check and reach validation.
    let atoms = prop::sample::select(vec![
        "- ",
        "name: ",
        "command: ",
        "environ: ",
        "directory: ",
        "umask: ",
        "exit_codes: ",
        "stop_signal: ",
        "log_max_bytes: ",
        "start_retries: ",
        "autorestart: ",
        "user: ",
        "server:\n  ",
        "log:\n    ",
        "include: ",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "\n",
        "  ",
        "\"",
        "'",
        "&a ",
        "*a ",
        "!!str ",
        "-1",
        "0",
        "99999999999999999999",
        "022",
        "TERM",
        "../x",
        "a",
        "true",
        "~",
        "#",
        "\t",
        "é",
        "\u{0}",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Value::Number(f.into())),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "../etc/passwd",
            "a",
            "KILL",
            "sleep 1",
            "unexpected",
            "10MB"
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "name",
                        "command",
                        "environ",
                        "directory",
                        "start_auto",
                        "start_seconds",
                        "start_retries",
                        "autorestart",
                        "exit_codes",
                        "stop_signal",
                        "stop_timeout",
                        "user",
                        "umask",
                        "redirect_stderr",
                        "log_disable",
                        "log_max_bytes",
                        "log_backups",
                        "bogus",
                    ]),
                    inner
                ),
                0..6
            )
            .prop_map(|kv| {
                Value::Mapping(
                    kv.into_iter()
                        .map(|(k, v)| (Value::String(k.into()), v))
                        .collect(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn programs_text_never_panics(text in yamlish()) {
        if let Err(errs) = parse_programs(&text, Some(Path::new("p.yml")), Path::new("/tmp")) {
            prop_assert!(!errs.0.is_empty());
            for e in &errs.0 {
                prop_assert!(!e.message.is_empty());
                prop_assert!(e.to_string().starts_with("p.yml"));
            }
        }
    }

    #[test]
    fn config_text_never_panics(text in yamlish()) {
        let _ = ServerConfig::parse(&text, Some(Path::new("c.yml")), Path::new("/tmp"));
    }

    #[test]
    fn program_values_never_panic_and_names_stay_safe(v in value()) {
        match parse_program_value(v, Path::new("/tmp")) {
            Ok(p) => {
                prop_assert!(gosuv::config::validate_name(&p.name).is_ok());
                prop_assert!(!p.name.contains('/') && !p.name.starts_with('.'));
            }
            Err(errs) => prop_assert!(!errs.0.is_empty()),
        }
    }
}

/// What no program can use is refused when read, not when it would run: a NUL byte in a
/// command, argument, environment value or path; an empty program in argv; a stop signal
/// that never stops a program; flow collections nested so deep that the YAML parser would
/// spend minutes refusing them (refused at once, with the line).
#[test]
fn unusable_values_and_deep_nesting_are_refused_when_read() {
    let dir = Path::new("/");
    let refused = |text: &str, says: &str| {
        let errs = parse_programs(text, None, dir).expect_err(text);
        let msg = errs.to_string();
        assert!(msg.contains(says), "{text:?}: {msg}");
    };
    refused("- name: a\n  command: \"sleep\\0 1\"\n", "NUL byte");
    refused("- name: a\n  command: [sleep, \"1\\0\"]\n", "NUL byte");
    refused(
        "- name: a\n  command: x\n  environ: [\"A=b\\0c\"]\n",
        "NUL byte",
    );
    refused(
        "- name: a\n  command: x\n  environ: {A: \"b\\0c\"}\n",
        "NUL byte",
    );
    refused(
        "- name: a\n  command: x\n  directory: \"/tmp\\0x\"\n",
        "NUL byte",
    );
    refused(
        "- name: a\n  command: [\"\", x]\n",
        "first item is the program",
    );
    for sig in ["STOP", "SIGTSTP", "ttin", "CONT"] {
        refused(
            &format!("- name: a\n  command: x\n  stop_signal: {sig}\n"),
            "never stops it",
        );
    }
    for sig in ["CHLD", "WINCH", "URG"] {
        refused(
            &format!("- name: a\n  command: x\n  stop_signal: {sig}\n"),
            "ignored",
        );
    }
    // Still fine: an empty argument after the program, KILL, a bracket in a quoted string.
    parse_programs("- name: a\n  command: [printf, \"%s\", \"\"]\n  stop_signal: KILL\n  environ: [\"A=[[[\"]\n", None, dir)
        .expect("valid");
    // 200 KB of nesting, of each kind: refused at once (it took most of a minute).
    for deep in ["[".repeat(200_000), "{a: ".repeat(50_000)] {
        let t = std::time::Instant::now();
        let errs = parse_programs(&deep, None, dir).expect_err("too deep");
        assert!(
            errs.to_string().contains("more than 1000 [ or { open"),
            "{errs}"
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
        let t = std::time::Instant::now();
        assert!(ServerConfig::parse(&deep, None, dir).is_err());
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }
    // 64 levels are read by the YAML parser (and refused for what they are, a list where a
    // number belongs), not for their depth.
    let deep64 = format!(
        "- name: a\n  command: x\n  exit_codes: {}0{}\n",
        "[".repeat(63),
        "]".repeat(63)
    );
    let errs = parse_programs(&deep64, None, dir).expect_err("not numbers");
    assert!(!errs.to_string().contains("open at once"), "{errs}");
    // A quote inside a plain string (`it's`) or YAML's doubled quote cannot hide the
    // nesting that follows (a scanner that skipped quoted strings was fooled by both).
    for hide in ["command: echo it 's\n  args: ", "command: 'x'' '\n  args: "] {
        let text = format!("- name: a\n  {hide}{}\n", "[".repeat(100_000));
        let t = std::time::Instant::now();
        let errs = parse_programs(&text, None, dir).expect_err("too deep");
        assert!(errs.to_string().contains("open at once"), "{errs}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }
    // Unclosed brackets in the strings of many programs are still read (65 of them
    // were refused by the first version of the check).
    let many: String = (0..70)
        .map(|i| format!("- name: p{i}\n  command: echo [x\n"))
        .collect();
    assert_eq!(parse_programs(&many, None, dir).expect("valid").len(), 70);
}
