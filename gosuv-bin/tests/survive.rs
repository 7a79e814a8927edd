//! Programs outlive a server killed with SIGKILL: its holder keeps their output pipes and
//! logs what they write while no server runs (none dies of SIGPIPE); the next
//! `start-server` takes over those whose config is unchanged (same pid, every line logged)
//! and stops the others gracefully before starting anything.

mod common;

use common::*;

/// A program that prints a numbered line every 10 ms and says so when it is stopped.
const COUNTER: &str = "import signal, sys, time\n\
n = 0\n\
def term(*a):\n    print('stopping', n, flush=True)\n    sys.exit(0)\n\
signal.signal(signal.SIGTERM, term)\n\
while True:\n    print(n, flush=True)\n    n += 1\n    time.sleep(0.01)\n";

/// Writes the counter script into the env; returns its `programs.yml` entry (`counter`,
/// start_auto, start_seconds 0), with `extra` lines after.
fn counter_entry(env: &Env, extra: &str) -> String {
    let script = env.path("counter.py");
    std::fs::write(&script, COUNTER).expect("script");
    format!(
        "- name: counter\n  command: [python3, {}]\n  start_auto: true\n  start_seconds: 0\n{extra}",
        script.display()
    )
}

/// `other`'s entry: says its flavour (an `environ` value) when it starts, and `stopping`
/// on SIGTERM.
fn other_entry(flavour: &str, auto: bool) -> String {
    format!(
        "- name: other\n  command: [sh, -c, 'trap \"echo stopping; exit 0\" TERM; echo flavour $FLAVOUR; while :; do sleep 0.05; done']\n  environ: [FLAVOUR={flavour}]\n  start_seconds: 0\n{}",
        if auto { "  start_auto: true\n" } else { "" }
    )
}

fn lines_of(env: &Env, name: &str) -> Vec<String> {
    std::fs::read_to_string(env.path(&format!("logs/{name}.stdout.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn lines(env: &Env) -> Vec<String> {
    lines_of(env, "counter")
}

fn pid_of(env: &Env, name: &str) -> i32 {
    env.api("GET", &format!("/api/programs/{name}"), "").json()["pid"]
        .as_i64()
        .expect("a pid") as i32
}

fn program_pid(env: &Env) -> i32 {
    pid_of(env, "counter")
}

/// The counter's numbers, which must run 0, 1, 2 ... in order, none twice; the only gap
/// allowed is one at line `at_kill` or before (what the killed server had read from the
/// pipe but not yet written when it died). Returns them.
fn check_numbers(lines: &[String], at_kill: usize) -> Vec<u64> {
    let numbers: Vec<u64> = lines
        .iter()
        .map(|l| l.parse().unwrap_or_else(|_| panic!("not a number: {l:?}")))
        .collect();
    assert_eq!(numbers.first(), Some(&0));
    let gaps: Vec<usize> = (1..numbers.len())
        .filter(|&i| numbers[i] != numbers[i - 1] + 1)
        .collect();
    for &i in &gaps {
        assert!(
            numbers[i] > numbers[i - 1],
            "line {i} out of order or twice: {:?}",
            &numbers[i - 1..=i]
        );
    }
    assert!(
        gaps.len() <= 1 && gaps.iter().all(|&i| i <= at_kill),
        "lines missing other than at the kill (line {at_kill}): gaps at {gaps:?}"
    );
    if let Some(&i) = gaps.first() {
        println!(
            "lost at the kill: {} line(s), {}..{}",
            numbers[i] - numbers[i - 1] - 1,
            numbers[i - 1] + 1,
            numbers[i] - 1
        );
    }
    numbers
}

/// Kills the env's server with SIGKILL and waits until it is gone.
fn kill_server(env: &Env) {
    let server = env.pid().expect("server pid");
    signal(server, libc::SIGKILL);
    eventually(10, "the server to die", || !alive(server));
}

#[test]
fn a_program_outlives_a_killed_server_and_the_next_server_takes_it_over() {
    let env = Env::unix();
    env.programs(&counter_entry(&env, ""));
    let _srv = env.start();
    env.wait_state("counter", "running");
    let first = program_pid(&env);
    let before = env.api("GET", "/api/programs/counter", "").json();
    eventually(20, "some output", || lines(&env).len() >= 20);

    kill_server(&env);
    // No server for 3 s: the program keeps printing, and what it prints is logged.
    let at_kill = lines(&env).len();
    eventually(20, "output logged while no server runs", || {
        lines(&env).len() >= at_kill + 300
    });
    assert!(alive(first), "the program died with its server");

    // The next server takes it over: same pid, running, its start kept.
    let _srv = env.start();
    env.wait_state("counter", "running");
    let after = env.api("GET", "/api/programs/counter", "").json();
    assert_eq!(program_pid(&env), first, "{after}");
    assert_eq!(after["started_at"], before["started_at"], "{after}");
    assert!(
        env.server_log().contains("taking over"),
        "{}",
        env.server_log()
    );
    let taken = lines(&env).len();
    eventually(20, "output logged by the new server", || {
        lines(&env).len() >= taken + 100
    });
    // A stop now is the new server's, gracefully: the TERM handler's line ends the file.
    env.ok(&["stop", "counter"]);
    assert!(!alive(first));
    let all = lines(&env);
    let last = all.last().expect("lines").clone();
    assert!(last.starts_with("stopping"), "{last:?}");
    let numbers = check_numbers(&all[..all.len() - 1], at_kill);
    assert!(numbers.len() > at_kill + 400, "{} lines", numbers.len());
    let said: u64 = last
        .trim_start_matches("stopping ")
        .parse()
        .expect("stopping N");
    assert_eq!(Some(said), numbers.last().map(|n| n + 1));
}

#[test]
fn a_program_changed_while_no_server_ran_is_stopped_and_started_with_its_new_config() {
    let env = Env::unix();
    let counter = counter_entry(&env, "");
    let yaml = |flavour: &str| format!("{counter}{}", other_entry(flavour, true));
    env.programs(&yaml("old"));
    let _srv = env.start();
    env.wait_state("counter", "running");
    env.wait_state("other", "running");
    let (counter, other) = (program_pid(&env), pid_of(&env, "other"));
    eventually(10, "other's first line", || {
        lines_of(&env, "other") == ["flavour old"]
    });
    kill_server(&env);
    env.programs(&yaml("new"));
    let _srv = env.start();
    env.wait_state("counter", "running");
    env.wait_state("other", "running");
    // Unchanged: taken over. Changed: stopped (its TERM handler ran) before it started again.
    assert_eq!(program_pid(&env), counter);
    assert_ne!(pid_of(&env, "other"), other);
    assert!(!alive(other));
    eventually(10, "other's new run", || {
        lines_of(&env, "other") == ["flavour old", "stopping", "flavour new"]
    });
}

fn start_counter(env: &Env) -> Server<'_> {
    env.programs(&counter_entry(env, ""));
    let srv = env.start();
    env.wait_state("counter", "running");
    eventually(20, "some output", || lines(env).len() >= 20);
    srv
}

#[test]
fn restart_server_keeps_the_programs_and_every_line() {
    let env = Env::unix();
    let _srv = start_counter(&env);
    let first = program_pid(&env);
    let server = env.pid().expect("server pid");
    let before = env.api("GET", "/api/programs/counter", "").json();
    let out = env.ok(&["restart-server"]);
    assert!(out.contains("programs kept running"), "{out}");
    // The same process re-executed: same server pid, same program pid and start.
    assert_eq!(env.pid(), Some(server));
    let after = env.api("GET", "/api/programs/counter", "").json();
    assert_eq!(after["state"], "running", "{after}");
    assert_eq!(program_pid(&env), first);
    assert_eq!(after["started_at"], before["started_at"]);
    let at = lines(&env).len();
    eventually(20, "output after the restart", || {
        lines(&env).len() >= at + 50
    });
    // Still the server's child: a kill shows its real signal, and it is restarted.
    signal(first, libc::SIGKILL);
    eventually(10, "the restart after the kill", || {
        let v = env.api("GET", "/api/programs/counter", "").json();
        v["restarts"] == 1 && v["state"] == "running"
    });
    let v = env.api("GET", "/api/programs/counter", "").json();
    assert_eq!(v["exit_signal"], 9, "{v}");
    // Every number of the first run, in order, none missing: nothing was killed here.
    let all = lines(&env);
    let end = all
        .iter()
        .skip(1)
        .position(|l| l == "0")
        .map_or(all.len(), |p| p + 1);
    check_numbers(&all[..end], 0);
}

#[test]
fn restart_server_runs_the_new_binary_and_keeps_the_programs() {
    let env = Env::unix();
    let _srv = start_counter(&env);
    let first = program_pid(&env);
    let server = env.pid().expect("server pid");
    // An upgrade: another binary file, run from its own path.
    let new = env.path("bin/gosuv-new");
    std::fs::create_dir_all(new.parent().expect("dir")).expect("dir");
    std::fs::copy(BIN, &new).expect("copy the binary");
    let out = std::process::Command::new(&new)
        .current_dir(env.path(""))
        .arg("-c")
        .arg(env.conf())
        .arg("restart-server")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the new binary");
    assert!(
        out.status.success(),
        "{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        env.server_log()
    );
    assert_eq!(env.pid(), Some(server));
    let exe = std::fs::read_link(format!("/proc/{server}/exe")).expect("exe");
    assert_eq!(exe, std::fs::canonicalize(&new).expect("path"));
    assert_eq!(program_pid(&env), first);
    env.wait_state("counter", "running");
}

#[test]
fn restart_server_with_a_refused_config_changes_nothing() {
    let env = Env::unix();
    let _srv = start_counter(&env);
    let first = program_pid(&env);
    let server = env.pid().expect("server pid");
    // A binary that runs but refuses every config is refused by the server's own check.
    let fake = env.path("bin/gosuv-broken");
    std::fs::create_dir_all(fake.parent().expect("dir")).expect("dir");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'broken: no config is good enough' >&2\nexit 1\n",
    )
    .expect("fake");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let r = env.api(
        "POST",
        "/api/server/restart",
        &format!("{{\"exe\": \"{}\"}}", fake.display()),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("no config is good enough"), "{}", r.body);
    // A relative path, an unknown key: refused too.
    assert_eq!(
        env.api("POST", "/api/server/restart", "{\"exe\": \"gosuv\"}")
            .status,
        400
    );
    assert_eq!(
        env.api("POST", "/api/server/restart", "{\"x\": 1}").status,
        400
    );
    assert_eq!(env.pid(), Some(server));
    assert_eq!(program_pid(&env), first);
    let v = env.api("GET", "/api/status", "").json();
    assert_eq!(v["state"], "running", "{v}");
}

#[test]
fn restart_server_waits_for_no_program_to_be_stopping() {
    let env = Env::unix();
    env.programs(
        "- name: slow\n  command: [sh, -c, \"trap 'sleep 2; exit 0' TERM; echo up; while :; do sleep 0.05; done\"]\n  start_auto: true\n  start_seconds: 0\n  stop_timeout: 10\n",
    );
    let _srv = env.start();
    env.wait_state("slow", "running");
    eventually(10, "slow's first line", || lines_of(&env, "slow") == ["up"]);
    let pid = pid_of(&env, "slow");
    let r = env.api("POST", "/api/programs/slow/stop?wait=false", "");
    assert_eq!(r.status, 200, "{}", r.body);
    // Its stop would be lost in a restart (the new server would take it over as running).
    let r = env.api("POST", "/api/server/restart", "");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.error().contains("slow is starting or stopping"),
        "{}",
        r.body
    );
    env.wait_state("slow", "stopped");
    assert!(!alive(pid));
    env.ok(&["restart-server"]);
    env.wait_state("slow", "stopped");
}

#[test]
fn restart_server_refuses_a_binary_others_can_change() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::unix();
    let _srv = start_counter(&env);
    let first = program_pid(&env);
    // In a directory every user can write to (not sticky): another user could swap it.
    let open_dir = env.path("open");
    std::fs::create_dir(&open_dir).expect("dir");
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let exe = open_dir.join("gosuv");
    std::fs::copy(BIN, &exe).expect("copy");
    let r = env.api(
        "POST",
        "/api/server/restart",
        &format!("{{\"exe\": \"{}\"}}", exe.display()),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("another user can change"), "{}", r.body);
    // Setuid: refused too.
    let safe_dir = env.path("safe");
    std::fs::create_dir(&safe_dir).expect("dir");
    let suid = safe_dir.join("gosuv");
    std::fs::copy(BIN, &suid).expect("copy");
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let r = env.api(
        "POST",
        "/api/server/restart",
        &format!("{{\"exe\": \"{}\"}}", suid.display()),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("setuid"), "{}", r.body);
    assert_eq!(program_pid(&env), first);
}

/// The soft open-files limit of a process.
fn nofile_soft(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .expect("limits")
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        .expect("Max open files")
}

#[test]
fn programs_started_after_restart_server_get_the_same_limits() {
    let env = Env::unix();
    env.programs(&counter_entry(&env, ""));
    // A server started with a soft open-files limit below its hard one (a login shell's).
    let out = std::process::Command::new("sh")
        .current_dir(env.path(""))
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 1000 && exec {BIN} -c {} start-server",
            env.conf().display()
        ))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("start-server");
    assert!(out.status.success(), "{out:?}");
    let _srv = Server { env: &env };
    env.wait_state("counter", "running");
    let before = nofile_soft(program_pid(&env));
    let hard = nofile_soft(std::process::id() as i32);
    assert_ne!(before, hard, "the program got the hard limit");
    env.ok(&["restart-server"]);
    env.ok(&["restart", "counter"]);
    env.wait_state("counter", "running");
    assert_eq!(nofile_soft(program_pid(&env)), before);
}

#[test]
fn an_adopted_group_owned_run_leaves_nothing_when_its_leader_dies() {
    let env = Env::unix();
    let mark = env.dir.path().display().to_string();
    let _cleanup = KillMarked(mark.clone());
    // No cgroup: owned by its process group; a child in the group outlives the leader.
    env.programs(&format!(
        "- name: grp\n  command: [sh, -c, \"sleep 100000 & echo child $!; wait\"]\n  start_auto: true\n  start_seconds: 0\n  cgroup: 'off'\n  environ: [\"{MARK_VAR}={mark}\", \"PROGRAM=grp\"]\n"
    ));
    let _srv = env.start();
    env.wait_state("grp", "running");
    let leader = pid_of(&env, "grp");
    kill_server(&env);
    let _srv = env.start();
    env.wait_state("grp", "running");
    assert_eq!(pid_of(&env, "grp"), leader, "taken over");
    // The leader dies (not the new server's child: its exit status is unknown); its child
    // must not outlive it beside the next run.
    signal(leader, libc::SIGKILL);
    eventually(15, "the next run", || {
        let v = env.api("GET", "/api/programs/grp", "").json();
        v["state"] == "running" && v["pid"].as_i64() != Some(i64::from(leader))
    });
    let new = pid_of(&env, "grp");
    eventually(
        10,
        "one instance: the new run's leader and child only",
        || {
            let procs = marked(&mark);
            procs.len() == 2 && procs.iter().all(|(_, s)| s.pgrp == new)
        },
    );
}

#[test]
fn restart_server_restarts_a_changed_program_and_keeps_the_rest() {
    let env = Env::unix();
    let counter = counter_entry(&env, "");
    // `other` has no start_auto: it runs because it was started by hand.
    let yaml = |flavour: &str| format!("{counter}{}", other_entry(flavour, false));
    env.programs(&yaml("old"));
    let _srv = env.start();
    env.ok(&["start", "other"]);
    env.wait_state("counter", "running");
    let (counter, other) = (program_pid(&env), pid_of(&env, "other"));
    env.programs(&yaml("new"));
    let out = env.ok(&["restart-server"]);
    assert!(out.contains("programs kept running"), "{out}");
    env.wait_state("other", "running");
    assert_eq!(program_pid(&env), counter);
    assert_ne!(pid_of(&env, "other"), other);
    eventually(10, "other's new run", || {
        lines_of(&env, "other") == ["flavour old", "stopping", "flavour new"]
    });
}

#[test]
fn with_the_holder_killed_no_program_runs_twice() {
    let env = Env::unix();
    let mark = env.dir.path().display().to_string();
    let _cleanup = KillMarked(mark.clone());
    env.programs(&counter_entry(
        &env,
        &format!("  environ: [\"{MARK_VAR}={mark}\", \"PROGRAM=counter\"]\n"),
    ));
    let _srv = env.start();
    env.wait_state("counter", "running");
    let first = program_pid(&env);
    let holder: i32 = std::fs::read_to_string(env.path(".gosuv.pid.holder"))
        .expect("the holder's record")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the holder's pid");
    // The holder alone: the server still reads and logs everything.
    signal(holder, libc::SIGKILL);
    eventually(10, "the holder to die", || !alive(holder));
    let at = lines(&env).len();
    eventually(10, "output logged without the holder", || {
        lines(&env).len() >= at + 50
    });
    // Then the server: nobody reads the pipe any more, so the program dies of SIGPIPE at its
    // next line (what is lost: everything after the server's death).
    kill_server(&env);
    eventually(10, "the program to die of SIGPIPE", || !alive(first));
    let logged = lines(&env).len();
    let _srv = env.start();
    env.wait_state("counter", "running");
    assert_ne!(
        program_pid(&env),
        first,
        "nothing to take over: started anew"
    );
    eventually(10, "one instance", || groups_by_program(&mark).len() == 1);
    println!(
        "lost: the program's output after the server's death (it died at its next write); {logged} lines were logged before"
    );
    let all = lines(&env);
    let restart = all
        .iter()
        .skip(1)
        .position(|l| l == "0")
        .map_or(all.len(), |p| p + 1);
    // Before the deaths, nothing was lost.
    check_numbers(&all[..restart], restart);
}

#[test]
fn restart_server_refuses_a_config_that_moves_the_pidfile() {
    let env = Env::unix();
    let _srv = start_counter(&env);
    let first = program_pid(&env);
    let conf = std::fs::read_to_string(env.conf()).expect("config");
    let moved = if conf.contains("pidfile:") {
        conf.replace("pidfile:", "pidfile: other.pid\n  old_pidfile_was:")
    } else {
        conf.replacen("server:\n", "server:\n  pidfile: other.pid\n", 1)
    };
    std::fs::write(env.conf(), &moved).expect("config");
    // The conftest of the new config passes; taking the programs over could not.
    let out = env.run(&["restart-server"]);
    let err = String::from_utf8_lossy(&out.stderr);
    std::fs::write(env.conf(), &conf).expect("config back");
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("moves server.pidfile"), "{err}");
    assert_eq!(program_pid(&env), first);
}

/// The cgroup v2 directory of a process (`None` without cgroup v2).
fn cgroup_dir(pid: i32) -> Option<std::path::PathBuf> {
    let rel = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))?;
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split(' ').nth(4).map(str::to_string))
                .flatten()
        })?;
    Some(std::path::PathBuf::from(format!("{mount}{rel}")))
}

#[test]
fn repeated_restart_server_leaves_no_empty_cgroups() {
    let env = Env::unix();
    let _srv = start_counter(&env);
    let server = env.pid().expect("server pid");
    if env.api("GET", "/api/programs/counter", "").json()["ownership"] != "cgroup" {
        println!("skipped: no writable cgroup v2 here, programs are owned by process group");
        return;
    }
    let base = cgroup_dir(server).expect("the server's cgroup");
    let roots = || {
        std::fs::read_dir(&base)
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("gosuv-{server}-"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    for _ in 0..3 {
        env.ok(&["restart-server"]);
        // A new run: in a cgroup of the new image's; the old image's is left empty.
        env.ok(&["restart", "counter"]);
        env.wait_state("counter", "running");
    }
    env.ok(&["restart-server"]);
    assert!(
        roots() <= 2,
        "{} cgroups of the server left under {}",
        roots(),
        base.display()
    );
}

#[test]
fn a_program_in_backoff_is_started_again_after_restart_server() {
    let env = Env::unix();
    // Started by hand (no start_auto); it fails at once, so it is in backoff (1 s, 2 s ...).
    env.programs(
        "- name: flaky\n  command: [sh, -c, 'echo try; exit 3']\n  start_seconds: 1\n  start_retries: 50\n",
    );
    let _srv = env.start();
    let r = env.api("POST", "/api/programs/flaky/start?wait=false", "");
    assert_eq!(r.status, 200, "{}", r.body);
    env.wait_state("flaky", "backoff");
    let tries = lines_of(&env, "flaky").len();
    env.ok(&["restart-server"]);
    // The new image starts it again: it wanted a run, and gets more tries.
    eventually(15, "more tries after the restart", || {
        lines_of(&env, "flaky").len() > tries
    });
    let v = env.api("GET", "/api/programs/flaky", "").json();
    assert_ne!(v["state"], "stopped", "{v}");
}

#[test]
fn log_timestamps_are_kept_while_no_server_runs() {
    let env = Env::unix();
    env.programs(&counter_entry(&env, "  log_timestamps: true\n"));
    let _srv = env.start();
    env.wait_state("counter", "running");
    eventually(20, "some output", || lines(&env).len() >= 20);
    kill_server(&env);
    // What the holder writes while no server runs has its time too, one a line.
    let at_kill = lines(&env).len();
    eventually(20, "output logged while no server runs", || {
        lines(&env).len() >= at_kill + 100
    });
    let _srv = env.start();
    env.wait_state("counter", "running");
    let taken = lines(&env).len();
    eventually(20, "output logged by the new server", || {
        lines(&env).len() >= taken + 50
    });
    let all = lines(&env);
    let stamped = |l: &str| {
        let b = l.as_bytes();
        b.len() > 25
            && b[4] == b'-'
            && b[10] == b'T'
            && l[..24].ends_with('Z')
            && b[24] == b' '
            && l[25..].parse::<u64>().is_ok()
    };
    let bad: Vec<&String> = all.iter().filter(|l| !stamped(l)).collect();
    assert!(bad.is_empty(), "lines without their time: {bad:?}");
}
