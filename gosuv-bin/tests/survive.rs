//! Programs outlive a server killed with SIGKILL: its holder keeps their output pipes and
//! logs what they write while no server runs (none dies of SIGPIPE), and the next
//! `start-server` stops them gracefully before starting anything.

mod common;

use common::*;

/// A program that prints a numbered line every 10 ms and says so when it is stopped.
const COUNTER: &str = "import signal, sys, time\n\
n = 0\n\
def term(*a):\n    print('stopping', n, flush=True)\n    sys.exit(0)\n\
signal.signal(signal.SIGTERM, term)\n\
while True:\n    print(n, flush=True)\n    n += 1\n    time.sleep(0.01)\n";

fn lines(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.path("logs/counter.stdout.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn program_pid(env: &Env) -> i32 {
    env.api("GET", "/api/programs/counter", "").json()["pid"]
        .as_i64()
        .expect("a pid") as i32
}

#[test]
fn a_program_outlives_a_killed_server_and_every_line_is_logged() {
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
    eventually(20, "some output", || lines(&env).len() >= 20);

    let server = env.pid().expect("server pid");
    signal(server, libc::SIGKILL);
    eventually(10, "the server to die", || !alive(server));
    // No server: the program keeps printing, and what it prints is logged.
    let at_kill = lines(&env).len();
    eventually(20, "output logged while no server runs", || {
        lines(&env).len() >= at_kill + 100
    });
    assert!(alive(first), "the program died with its server");

    // The next server stops it gracefully (its TERM handler runs), and starts it again.
    let _srv = env.start();
    env.wait_state("counter", "running");
    assert_ne!(program_pid(&env), first);
    assert!(!alive(first));
    eventually(20, "the new run's output", || {
        lines(&env)
            .iter()
            .skip_while(|l| !l.starts_with("stopping"))
            .count()
            > 5
    });
    // Every number of the first run in order, once; the only lines that may be missing are
    // those the server had read but not yet written when it was killed (at the kill, never
    // during the outage).
    let all = lines(&env);
    let stop = all
        .iter()
        .position(|l| l.starts_with("stopping"))
        .expect("the first run's TERM handler ran");
    let numbers: Vec<u64> = all[..stop]
        .iter()
        .map(|l| l.parse().unwrap_or_else(|_| panic!("not a number: {l:?}")))
        .collect();
    assert!(numbers.len() > at_kill + 100, "{} lines", numbers.len());
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
    let said: u64 = all[stop]
        .trim_start_matches("stopping ")
        .parse()
        .expect("stopping N");
    assert_eq!(
        Some(said),
        numbers.last().map(|n| n + 1),
        "the last number before the stop"
    );
    // The new run counts from 0 again.
    assert_eq!(all.get(stop + 1).map(String::as_str), Some("0"));
}
