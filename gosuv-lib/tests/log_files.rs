//! `stdout_logfile`, `stderr_logfile` and `log_timestamps`: where a program's output is
//! written, and each line stamped with its time.

mod common;

use std::time::Duration;

use common::*;
use gosuv::config::parse_programs;
use gosuv::{Autorestart, ProgramConfig, ProgramState, Stream};

fn one_shot(name: &str, cmd: &str) -> ProgramConfig {
    let mut p = quick(name, cmd);
    p.autorestart = Autorestart::Never;
    p
}

/// A one-shot program whose stdout goes to `file` under `dir`.
fn logging_to(dir: &std::path::Path, name: &str, file: &str) -> ProgramConfig {
    let mut p = one_shot(name, "echo x");
    p.stdout_logfile = Some(dir.join(file));
    p
}

async fn run_to_exit(env: &Env, p: ProgramConfig) {
    let name = p.name.clone();
    env.sup.add(p).await.expect("add");
    env.sup.start(&name, WAIT).await.expect("start");
    env.sup
        .wait_for(&name, ProgramState::Exited, Duration::from_secs(10))
        .await
        .expect("exits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_lands_at_the_configured_paths() {
    let env = Env::new();
    let abs = tempfile::tempdir().expect("tmp");
    let mut p = one_shot(
        "custom",
        "echo to-out; echo to-err >&2; echo END; echo END >&2",
    );
    // Relative to the config file's directory; absolute as given.
    p.stdout_logfile = Some("mine/out.log".into());
    p.stderr_logfile = Some(abs.path().join("err.log"));
    run_to_exit(&env, p).await;
    let out = wait_file_contains(&env.path().join("mine/out.log"), "END", 10);
    assert_eq!(out, "to-out\nEND\n");
    let err = wait_file_contains(&abs.path().join("err.log"), "END", 10);
    assert_eq!(err, "to-err\nEND\n");
    assert!(!env.log("custom", "stdout").exists());
    assert!(!env.log("custom", "stderr").exists());
    // The tail is as before.
    let tail = env.sup.tail("custom", Stream::Stdout, 1024).expect("tail");
    assert_eq!(tail, b"to-out\nEND\n");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_stderr_puts_both_in_the_stdout_file() {
    let env = Env::new();
    let mut p = one_shot("merged", "echo one; echo two >&2; echo END");
    p.stdout_logfile = Some("both.log".into());
    p.stderr_logfile = Some("unused.log".into());
    p.redirect_stderr = true;
    run_to_exit(&env, p).await;
    let text = wait_file_contains(&env.path().join("both.log"), "END", 10);
    assert_eq!(text, "one\ntwo\nEND\n");
    assert!(!env.path().join("unused.log").exists());
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_log_rotates_where_it_is() {
    let env = Env::new();
    let mut p = one_shot(
        "rotor",
        "for i in 1 2 3 4 5 6 7 8; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; sleep 0.01; done; echo END",
    );
    p.stdout_logfile = Some("rot/out.log".into());
    p.log_max_bytes = 100;
    p.log_backups = 2;
    run_to_exit(&env, p).await;
    let dir = env.path().join("rot");
    wait_file_contains(&dir.join("out.log"), "END", 10);
    let backup = std::fs::read_to_string(dir.join("out.log.1")).expect("out.log.1");
    assert!(backup.contains("line-"), "{backup}");
    assert!(dir.join("out.log.2").exists());
    assert!(!dir.join("out.log.3").exists(), "log_backups 2 keeps two");
    for f in ["out.log", "out.log.1", "out.log.2"] {
        let len = std::fs::metadata(dir.join(f)).expect("file").len();
        assert!(len <= 100, "{f} is {len} bytes");
    }
    env.sup.shutdown().await;
}

/// Whether `line` starts with `YYYY-MM-DDTHH:MM:SS.mmmZ `; the rest of it.
fn strip_stamp(line: &str) -> Option<&str> {
    let re = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z ").expect("re");
    re.find(line).map(|m| &line[m.end()..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_the_file_gets_one_timestamp() {
    let env = Env::new();
    // Lines written in pieces, with the pipe read between them.
    let mut p = one_shot(
        "stamped",
        "printf 'abc'; sleep 0.3; printf 'def\\nghi\\n'; printf 'jk'; sleep 0.3; printf 'l\\n\\n'; echo END",
    );
    p.log_timestamps = true;
    run_to_exit(&env, p).await;
    let text = wait_file_contains(&env.log("stamped", "stdout"), "END", 10);
    let lines: Vec<&str> = text.lines().collect();
    let bare: Vec<&str> = lines
        .iter()
        .map(|l| strip_stamp(l).unwrap_or_else(|| panic!("no timestamp on {l:?} in {text:?}")))
        .collect();
    assert_eq!(bare, ["abcdef", "ghi", "jkl", "", "END"], "{text:?}");
    assert!(
        bare.iter().all(|l| strip_stamp(l).is_none()),
        "one stamp a line: {text:?}"
    );
    // The tail is as the program wrote it.
    let tail = env.sup.tail("stamped", Stream::Stdout, 1024).expect("tail");
    assert_eq!(tail, b"abcdef\nghi\njkl\n\nEND\n");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_timestamps_the_file_is_as_written() {
    let env = Env::new();
    run_to_exit(
        &env,
        one_shot("plain", "printf 'a'; sleep 0.1; printf 'b\\n'; echo END"),
    )
    .await;
    let text = wait_file_contains(&env.log("plain", "stdout"), "END", 10);
    assert_eq!(text, "ab\nEND\n");
    env.sup.shutdown().await;
}

#[test]
fn two_programs_on_one_log_file_is_an_error_naming_both() {
    let base = std::path::Path::new("/srv/app");
    let text = "- name: a\n  command: x\n  stdout_logfile: logs/shared.log\n- name: b\n  command: x\n  stderr_logfile: /srv/app/logs/shared.log\n";
    let err = parse_programs(text, Some(std::path::Path::new("programs.yml")), base)
        .expect_err("shared")
        .to_string();
    assert!(
        err.contains("programs.yml:4: [1]: the stderr_logfile of 'b', /srv/app/logs/shared.log, is also the stdout_logfile of 'a'"),
        "{err}"
    );
    // One program's two streams in one file too (redirect_stderr is the way).
    let text = "- name: a\n  command: x\n  stdout_logfile: one.log\n  stderr_logfile: one.log\n";
    let err = parse_programs(text, None, base)
        .expect_err("same")
        .to_string();
    assert!(err.contains("redirect_stderr"), "{err}");
    // With redirect_stderr its stderr_logfile is unused, and with log_disable neither.
    for ok in [
        "- name: a\n  command: x\n  stdout_logfile: one.log\n  stderr_logfile: one.log\n  redirect_stderr: true\n",
        "- name: a\n  command: x\n  stdout_logfile: one.log\n  log_disable: true\n- name: b\n  command: x\n  stdout_logfile: one.log\n",
    ] {
        parse_programs(ok, None, base).expect(ok);
    }
}

#[test]
fn programs_added_together_may_not_share_a_log_file() {
    let mut a = ProgramConfig::shell("a", "x");
    a.stdout_logfile = Some("/tmp/gosuv-shared.log".into());
    let mut b = ProgramConfig::shell("b", "x");
    b.stdout_logfile = a.stdout_logfile.clone();
    let err = gosuv::config::check_set(&[a.clone(), b])
        .expect_err("shared")
        .to_string();
    assert!(
        err.contains(
            "the stdout_logfile of 'b', /tmp/gosuv-shared.log, is also the stdout_logfile of 'a'"
        ),
        "{err}"
    );
    let mut c = ProgramConfig::shell("c", "x");
    c.stdout_logfile = Some("/tmp/gosuv-other.log".into());
    gosuv::config::check_set(&[a, c]).expect("apart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_at_a_configured_path_is_not_followed() {
    let env = Env::new();
    let target = env.path().join("target.txt");
    std::fs::write(&target, "untouched\n").expect("target");
    std::os::unix::fs::symlink(&target, env.path().join("link.log")).expect("link");
    let mut p = one_shot("linked", "echo through-the-link; echo END");
    p.stdout_logfile = Some("link.log".into());
    run_to_exit(&env, p).await;
    poll(10, "the failed write to be counted", || {
        env.sup
            .log_status("linked")
            .is_ok_and(|s| s.stdout.write_errors > 0)
    });
    assert_eq!(
        std::fs::read_to_string(&target).expect("target"),
        "untouched\n"
    );
    env.sup.shutdown().await;
}

#[test]
fn log_keys_are_read_resolved_and_written_back() {
    let base = std::path::Path::new("/srv/app");
    let ps = parse_programs(
        "- name: a\n  command: x\n  stdout_logfile: out/a.log\n  stderr_logfile: /var/log/a.err\n  log_timestamps: true\n  env_file: ./conf/a.env\n",
        None,
        base,
    )
    .expect("valid");
    let a = &ps[0];
    assert_eq!(
        a.stdout_logfile.as_deref(),
        Some(std::path::Path::new("/srv/app/out/a.log"))
    );
    assert_eq!(
        a.stderr_logfile.as_deref(),
        Some(std::path::Path::new("/var/log/a.err"))
    );
    assert_eq!(
        a.env_file.as_deref(),
        Some(std::path::Path::new("/srv/app/conf/a.env"))
    );
    assert!(a.log_timestamps);
    let text = serde_yaml::to_string(&ps).expect("yaml");
    assert_eq!(parse_programs(&text, None, base).expect("reads back"), ps);
    // A program without them writes none of the optional ones.
    let plain = serde_json::to_value(ProgramConfig::shell("p", "x")).expect("json");
    for key in ["env_file", "stdout_logfile", "stderr_logfile"] {
        assert!(plain.get(key).is_none(), "{key} in {plain}");
    }
    for bad in [
        "stdout_logfile: ''",
        "env_file: [a]",
        "log_timestamps: sometimes",
    ] {
        let text = format!("- name: a\n  command: x\n  {bad}\n");
        parse_programs(&text, None, base).expect_err(bad);
    }
}

#[test]
fn paths_that_are_one_file_as_written_differently_are_refused() {
    let base = std::path::Path::new("/srv/app");
    let text = "- name: a\n  command: x\n  stdout_logfile: x/../shared.log\n- name: b\n  command: x\n  stdout_logfile: shared.log\n";
    let err = parse_programs(text, None, base)
        .expect_err("one file")
        .to_string();
    assert!(
        err.contains(
            "the stdout_logfile of 'b', /srv/app/shared.log, is also the stdout_logfile of 'a'"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_program_may_not_write_another_programs_log_or_gosuvs() {
    let env = Env::new();
    let log_dir = env.sup.log_dir().to_path_buf();
    env.sup.add(one_shot("first", "echo x")).await.expect("add");
    // Its default file, written as a custom path (and through a `..`).
    let mut p = one_shot("second", "echo x");
    p.stdout_logfile = Some(log_dir.join("sub/../first.stdout.log"));
    let err = env.sup.add(p).await.expect_err("first's log").to_string();
    assert!(
        err.contains(&format!(
            "the stdout_logfile of 'second', {}, is also the stdout_logfile of 'first'",
            log_dir.join("first.stdout.log").display()
        )),
        "{err}"
    );
    assert!(env.sup.status("second").is_err(), "not added");
    // A custom path of the one that is there, taken by a new one's default.
    let mut p = one_shot("third", "echo x");
    p.stderr_logfile = Some(log_dir.join("fourth.stdout.log"));
    env.sup.add(p).await.expect("add");
    let err = env
        .sup
        .add(one_shot("fourth", "echo x"))
        .await
        .expect_err("its default is third's")
        .to_string();
    assert!(
        err.contains("is also the stderr_logfile of 'third'"),
        "{err}"
    );
    // gosuv's own log.
    let mut p = one_shot("fifth", "echo x");
    p.stdout_logfile = Some(log_dir.join("gosuv.log"));
    let err = env.sup.add(p).await.expect_err("gosuv.log").to_string();
    assert!(err.contains("is gosuv's own log"), "{err}");
    // An update that would take another's file is refused too, and changes nothing.
    let mut p = one_shot("first", "echo x");
    p.stdout_logfile = Some(log_dir.join("fourth.stdout.log"));
    env.sup.update(p).await.expect_err("third's file");
    assert_eq!(
        env.sup.config("first").expect("config").stdout_logfile,
        None
    );
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_may_not_hand_a_log_file_over_while_its_writer_runs() {
    let env = Env::new();
    let dir = env.sup.log_dir().to_path_buf();
    let with_log = |name: &str, file: &str| logging_to(&dir, name, file);
    env.sup
        .add_all(vec![with_log("a", "a.log"), with_log("b", "b.log")])
        .await
        .expect("add");
    // Swapped in one reload: for a moment the new 'a' and the stopping 'b' would both
    // write b.log. Refused, nothing changed.
    let err = env
        .sup
        .reload(vec![with_log("a", "b.log"), with_log("b", "a.log")])
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("'a' would write") && err.contains("which 'b' writes"),
        "{err}"
    );
    assert_eq!(
        env.sup.config("a").expect("a").stdout_logfile,
        Some(dir.join("a.log"))
    );
    // Taking the file of a program the same reload removes: refused too.
    let err = env
        .sup
        .reload(vec![with_log("a", "a.log"), with_log("c", "b.log")])
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("which 'b' writes"), "{err}");
    assert!(env.sup.status("b").is_ok(), "b still there");
    // In two reloads it goes.
    env.sup
        .reload(vec![with_log("a", "a.log")])
        .await
        .expect("b removed");
    env.sup
        .reload(vec![with_log("a", "a.log"), with_log("c", "b.log")])
        .await
        .expect("c takes b.log");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_is_free_again_once_its_writer_is_removed_or_moved() {
    // The files in use are kept as programs come, change and go: each change must free or
    // take exactly its own.
    let env = Env::new();
    let dir = env.sup.log_dir().to_path_buf();
    let with_log = |name: &str, file: &str| logging_to(&dir, name, file);
    env.sup.add(with_log("a", "x.log")).await.expect("add a");
    env.sup
        .add(with_log("b", "x.log"))
        .await
        .expect_err("a writes x.log");
    // Moved by an update: x.log is free, y.log is taken.
    env.sup
        .update(with_log("a", "y.log"))
        .await
        .expect("move a");
    env.sup
        .add(with_log("b", "x.log"))
        .await
        .expect("x.log free");
    env.sup
        .add(with_log("c", "y.log"))
        .await
        .expect_err("a writes y.log now");
    // A refused update takes nothing and frees nothing.
    env.sup
        .update(with_log("a", "x.log"))
        .await
        .expect_err("b writes x.log");
    env.sup
        .add(with_log("c", "y.log"))
        .await
        .expect_err("a still writes y.log");
    // Removed: its file is free.
    env.sup.remove("a").await.expect("remove a");
    env.sup
        .add(with_log("c", "y.log"))
        .await
        .expect("y.log free");
    // A group moving its files among themselves is checked as it will be.
    let err = env
        .sup
        .add_group(vec![with_log("d", "z.log"), with_log("e", "z.log")])
        .await
        .expect_err("one file for two")
        .to_string();
    assert!(err.contains("is also the stdout_logfile of 'd'"), "{err}");
    env.sup
        .update_group(vec![with_log("b", "y.log"), with_log("c", "x.log")])
        .await
        .expect("a swap within one group");
    env.sup
        .add(with_log("d", "x.log"))
        .await
        .expect_err("c writes x.log now");
    env.sup
        .add(with_log("d", "y.log"))
        .await
        .expect_err("b writes y.log now");
    // A reload that drops 'b' frees its file for the next change.
    env.sup
        .reload(vec![with_log("c", "x.log")])
        .await
        .expect("b removed");
    env.sup
        .add(with_log("d", "y.log"))
        .await
        .expect("y.log free");
    // Its own two streams in one file.
    let mut p = with_log("f", "f.log");
    p.stderr_logfile = Some(dir.join("f.log"));
    let err = env.sup.add(p).await.expect_err("both streams").to_string();
    assert!(
        err.contains("the stderr_logfile of 'f'") && err.contains("stdout_logfile of 'f'"),
        "{err}"
    );
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_update_whose_caller_goes_away_still_moves_its_log_files() {
    // A client that hangs up (or a timeout) once the update is sent: the program takes the
    // new files, and so must the check of the next programs.
    use std::future::Future;
    use std::task::Poll;
    let env = Env::new();
    let dir = env.sup.log_dir().to_path_buf();
    let with_log = |name: &str, file: &str| logging_to(&dir, name, file);
    env.sup.add(with_log("a", "x.log")).await.expect("add a");
    let moved =
        || env.sup.config("a").ok().and_then(|c| c.stdout_logfile) == Some(dir.join("y.log"));
    let mut update = Box::pin(env.sup.update(with_log("a", "y.log")));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // Polled by hand, with the program's task running in between (one thread), until the
    // task has applied it; then dropped without being polled again.
    loop {
        let pending =
            std::future::poll_fn(|cx| Poll::Ready(update.as_mut().poll(cx).is_pending())).await;
        assert!(pending, "answered before the task ran");
        tokio::time::sleep(Duration::from_millis(1)).await;
        if moved() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never applied");
    }
    drop(update);
    env.sup
        .add(with_log("c", "y.log"))
        .await
        .expect_err("'a' writes y.log now");
    env.sup
        .add(with_log("d", "x.log"))
        .await
        .expect("x.log is free");
    env.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_streams_on_another_programs_file_blame_that_program() {
    let env = Env::new();
    let dir = env.sup.log_dir().to_path_buf();
    let mut x = one_shot("x", "echo x");
    x.stdout_logfile = Some(dir.join("x.log"));
    env.sup.add(x).await.expect("add x");
    let mut f = one_shot("f", "echo f");
    f.stdout_logfile = Some(dir.join("x.log"));
    f.stderr_logfile = Some(dir.join("x.log"));
    let err = env.sup.add(f).await.expect_err("clash").to_string();
    assert!(
        err.contains("the stdout_logfile of 'f'") && err.contains("stderr_logfile of 'f'"),
        "{err}"
    );
    assert!(!err.contains("of 'f': give"), "blames 'f' itself: {err}");
    assert_eq!(
        err.matches("is also the stdout_logfile of 'x'").count(),
        2,
        "{err}"
    );
    env.sup.shutdown().await;
}
