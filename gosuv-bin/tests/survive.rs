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
    let script = env.path("counter.py");
    std::fs::write(&script, COUNTER).expect("script");
    env.programs(&format!(
        "- name: counter\n  command: [python3, {}]\n  start_auto: true\n  start_seconds: 0\n",
        script.display()
    ));
    let _srv = env.start();
    env.wait_state("counter", "running");
    let first = program_pid(&env);
    let before = env.api("GET", "/api/programs/counter", "").json();
    eventually(20, "some output", || lines(&env).len() >= 20);

    kill_server(&env);
    // No server: the program keeps printing, and what it prints is logged (about 3 s).
    let at_kill = lines(&env).len();
    eventually(20, "output logged while no server runs", || {
        lines(&env).len() >= at_kill + 250
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
    assert!(numbers.len() > at_kill + 350, "{} lines", numbers.len());
    let said: u64 = last
        .trim_start_matches("stopping ")
        .parse()
        .expect("stopping N");
    assert_eq!(Some(said), numbers.last().map(|n| n + 1));
}

#[test]
fn a_program_changed_while_no_server_ran_is_stopped_and_started_with_its_new_config() {
    let env = Env::unix();
    let script = env.path("counter.py");
    std::fs::write(&script, COUNTER).expect("script");
    let yaml = |flavour: &str| {
        format!(
            "- name: counter\n  command: [python3, {s}]\n  start_auto: true\n  start_seconds: 0\n\
             - name: other\n  command: [sh, -c, 'trap \"echo stopping; exit 0\" TERM; echo flavour $FLAVOUR; while :; do sleep 0.05; done']\n  environ: [FLAVOUR={flavour}]\n  start_auto: true\n  start_seconds: 0\n",
            s = script.display()
        )
    };
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
