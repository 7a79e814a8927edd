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
