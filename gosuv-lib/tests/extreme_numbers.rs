//! Extreme numbers in every numeric key of a program: each is either accepted within its
//! documented bound or refused with an error that names the key and the bound, at parse
//! time, never a panic later. A program given such a number in code (the C and Python
//! front ends build configs this way) is refused by `add`, and a refused key changes
//! nothing.

mod common;

use std::path::Path;

use common::*;
use gosuv::config::parse_programs;
use gosuv::ProgramConfig;
use proptest::prelude::*;

/// Every numeric key of a program, and the largest value it accepts.
const NUMERIC_KEYS: [(&str, u64); 4] = [
    ("start_seconds", 86_400),
    ("stop_timeout", 86_400),
    ("start_retries", 1_000),
    ("log_backups", 1_000),
];

fn extreme() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0".to_string(),
            "1".to_string(),
            "86400".to_string(),
            "86401".to_string(),
            "1000".to_string(),
            "1001".to_string(),
            "4294967295".to_string(),
            "4294967296".to_string(),
            "18446744073709551615".to_string(),
            "18446744073709551616".to_string(),
            "-1".to_string(),
            "-9223372036854775808".to_string(),
            "1e308".to_string(),
            "-1e308".to_string(),
            ".inf".to_string(),
            ".nan".to_string(),
            "0.5".to_string(),
            "0x7fffffff".to_string(),
        ]),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:e}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn every_numeric_key_is_bounded_at_parse_time(
        key in prop::sample::select(NUMERIC_KEYS.to_vec()),
        value in extreme(),
    ) {
        let (key, max) = key;
        let text = format!("- name: p\n  command: sleep 1\n  {key}: {value}\n");
        match parse_programs(&text, Some(Path::new("programs.yml")), Path::new("/tmp")) {
            Ok(ps) => {
                let p = &ps[0];
                let got = match key {
                    "start_seconds" => p.start_seconds,
                    "stop_timeout" => p.stop_timeout,
                    "start_retries" => u64::from(p.start_retries),
                    _ => u64::from(p.log_backups),
                };
                prop_assert!(got <= max, "{key}: {value} accepted as {got}, over {max}");
                // What is accepted validates again (the C and Python paths do that).
                prop_assert!(p.validate().is_ok());
            }
            Err(errs) => {
                let text = errs.to_string();
                prop_assert!(text.contains(key), "the error does not name {key}: {text}");
                prop_assert!(
                    text.contains(&max.to_string()) || text.contains(&format_bound(max)),
                    "the error does not give the bound of {key}: {text}"
                );
            }
        }
    }
}

fn format_bound(max: u64) -> String {
    // 86400 seconds may be written as "1 day" or "86,400".
    match max {
        86_400 => "1 day".into(),
        n => n.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_numbers_given_in_code_are_refused_by_add() {
    let env = Env::new();
    type Set = fn(&mut ProgramConfig);
    let cases: [(&str, Set); 4] = [
        ("stop_timeout", |p| p.stop_timeout = u64::MAX),
        ("start_seconds", |p| p.start_seconds = u64::MAX),
        ("start_retries", |p| p.start_retries = u32::MAX),
        ("stop_timeout", |p| p.stop_timeout = 86_401),
    ];
    for (key, set) in cases {
        let mut p = quick("absurd", "exec sleep 30");
        set(&mut p);
        let err = env
            .sup
            .add(p)
            .await
            .expect_err("an absurd number must be refused");
        let msg = err.to_string();
        assert!(msg.contains(key), "{msg}");
        assert!(env.sup.names().is_empty(), "a refused add changed the set");
    }
    // An update with one is refused too, and the program keeps its config and process.
    env.sup.add(quick("p", "exec sleep 30")).await.expect("add");
    let pid = env.sup.start("p", WAIT).await.expect("start").pid;
    let mut p = quick("p", "exec sleep 30");
    p.stop_timeout = u64::MAX;
    assert!(env.sup.update(p).await.is_err());
    assert_eq!(
        env.sup.config("p").expect("config"),
        quick("p", "exec sleep 30")
    );
    assert_eq!(env.sup.status("p").expect("status").pid, pid);
    // Stopping works (with the old code a stop_timeout of u64::MAX panicked the task here).
    let st = env.sup.stop("p", WAIT).await.expect("stop");
    assert_eq!(st.state, gosuv::ProgramState::Stopped);
    env.sup.shutdown().await;
}
