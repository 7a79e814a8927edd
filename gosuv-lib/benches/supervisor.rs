//! The core's performance figures (issue 2), run on demand:
//!
//! ```sh
//! cargo bench -p gosuv --bench supervisor            # everything
//! cargo bench -p gosuv --bench supervisor -- spawn   # one workload: spawn|idle|restart|logs|lines
//! ```
//!
//! - spawn: time to bring 1,000 `sleep` programs (start_seconds 0) to `running`, then the
//!   same with 5,000 (`BENCH_BIG=N` for another number); the open files the supervisor holds
//!   a program are printed too. The open files soft limit is raised to the hard limit first:
//!   when that is too low for 5,000 programs (about 3 a program), the bench says so, skips
//!   that run and exits with 1;
//! - idle: the supervisor's RSS and CPU ms per second while those 1,000 (and then 5,000)
//!   idle for 10 s;
//! - restart: SIGKILL of a running program until its new child exists (median, p90);
//! - logs: one child writing 512 MiB of 100-byte lines, captured, against the same writer
//!   redirected straight to a file (MiB/s and ratio);
//! - lines: the same with 32 MiB written 100 bytes a write(2), as a line-by-line logger does:
//!   the supervisor's CPU per MiB is the figure to watch.
//!
//! - ready: how long after a program says it is ready (a line of output, an sd_notify
//!   `READY=1`) its `running` event comes, from the program's own clock (median, p90, max);
//! - probes: 1,000 programs, each with a `tcp` health probe every 100 ms to one listener (a
//!   process of its own): the supervisor's CPU while they probe (loopback targets are
//!   answered by one task from the kernel's table of listening sockets, one read for the
//!   attempts due at the same moment).
//!
//! Each figure is the median of several rounds; the machine's noise shows in min..max.
//!
//! Two switches measure what ownership costs: `BENCH_CGROUP_OFF=1` runs the spawn, idle and
//! restart programs with `cgroup: off` (owned by their process group only), and
//! `BENCH_NO_GUARDIAN=1` runs spawn and idle without the guardian
//! (`kill_on_parent_death: false`).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gosuv::{
    stats::self_rss_bytes, Autorestart, Command, EventNotice, ProgramConfig, ProgramState,
    Supervisor, SupervisorOptions,
};

const PROGRAMS: usize = 1000;
/// The big spawn run (`BENCH_BIG` overrides it).
const BIG: usize = 5000;
/// Open files the supervisor holds a program (two pipes' read ends and a pidfd), and besides.
const FDS_PER_PROGRAM: u64 = 3;
const FDS_BESIDES: u64 = 256;
const LOG_BYTES: u64 = 512 << 20;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into a zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn sleeper(name: String) -> ProgramConfig {
    let mut p = ProgramConfig::new(name, Command::Argv(vec!["sleep".into(), "3600".into()]));
    p.start_seconds = 0;
    p.stop_timeout = 5;
    if std::env::var("BENCH_CGROUP_OFF").is_ok() {
        p.cgroup = gosuv::CgroupMode::Off;
    }
    p
}

/// Raises the open files soft limit to the hard limit; the hard limit.
fn raise_nofile_to_hard() -> Result<u64, String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| format!("cannot read the open files limit: {e}"))?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(|e| {
            format!(
                "cannot raise the open files soft limit from {soft} to the hard limit {hard}: {e}"
            )
        })?;
    }
    Ok(hard)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

async fn spawn_and_idle(dir: &Path, programs: usize, rounds: usize, idle: bool) {
    let mut times = Vec::new();
    for round in 0..rounds {
        let mut o = SupervisorOptions::new(dir);
        if std::env::var("BENCH_NO_GUARDIAN").is_ok() {
            o.kill_on_parent_death = false;
        }
        let sup = Supervisor::new(o).expect("supervisor");
        let fds0 = open_fds();
        let t_add = Instant::now();
        for i in 0..programs {
            sup.add(sleeper(format!("s{i}"))).await.expect("add");
        }
        let added = t_add.elapsed();
        let t0 = Instant::now();
        let results = sup.start_all(Some(Duration::from_secs(600))).await;
        let took = t0.elapsed();
        let failed = results.iter().filter(|(_, r)| r.is_err()).count();
        assert_eq!(failed, 0, "{failed} programs failed to start");
        assert!(sup.list().iter().all(|s| s.state == ProgramState::Running));
        let fds = open_fds().saturating_sub(fds0);
        times.push(took.as_secs_f64());
        println!(
            "spawn   round {round}: {programs} programs running in {:.3} s (added in {:.3} s, not timed; {fds} more open files = {:.2} a program)",
            took.as_secs_f64(),
            added.as_secs_f64(),
            fds as f64 / programs as f64
        );
        if idle && round == rounds - 1 {
            // Let the start-up settle, then measure 10 s of doing nothing.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let rss0 = self_rss_bytes().unwrap_or(0);
            let c0 = cpu_time();
            let w0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(10)).await;
            let cpu_ms_per_s =
                (cpu_time() - c0).as_secs_f64() * 1000.0 / w0.elapsed().as_secs_f64();
            let rss1 = self_rss_bytes().unwrap_or(0);
            println!(
                "idle    {programs} programs: RSS {:.1} MiB (at start of window {:.1} MiB), CPU {:.3} ms/s",
                rss1 as f64 / 1048576.0,
                rss0 as f64 / 1048576.0,
                cpu_ms_per_s
            );
        }
        let t_down = Instant::now();
        sup.shutdown().await;
        println!(
            "spawn   round {round}: shut down in {:.3} s",
            t_down.elapsed().as_secs_f64()
        );
    }
    let min = times.iter().copied().fold(f64::MAX, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    println!(
        "RESULT spawn-{programs}: median {:.3} s (min {min:.3}, max {max:.3}, {rounds} rounds)",
        median(&mut times)
    );
}

/// From a program's own timestamp of its ready line (or of its `READY=1`, or of its
/// `listen()`) to its `running` event, for `log`, `notify` and `tcp` probes (`tcp` asked
/// every 100 ms: its bound is the interval and 5 ms).
async fn ready_latency(dir: &Path, rounds: usize) {
    use gosuv::config::{ProbeCheck, ReadyProbe};
    for kind in ["log", "notify", "tcp"] {
        let sup = Supervisor::new(SupervisorOptions::new(dir)).expect("supervisor");
        let mut lat = Vec::new();
        for i in 0..rounds {
            let name = format!("{kind}{i}");
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("port");
            let script = match kind {
                "log" => "import time\ntime.sleep(0.3)\nprint('ready %.6f' % time.time(), flush=True)\ntime.sleep(300)".to_string(),
                "notify" => "import os, socket, time\ntime.sleep(0.3)\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.connect(os.environ['NOTIFY_SOCKET'])\nt = time.time()\ns.send(b'READY=1')\nprint('ready %.6f' % t, flush=True)\ntime.sleep(300)".to_string(),
                // Listens at a moment unrelated to the probe's schedule.
                _ => format!("import random, socket, time\ntime.sleep(0.3 + random.random() / 10)\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\ns.listen()\nt = time.time()\nprint('ready %.6f' % t, flush=True)\ntime.sleep(300)"),
            };
            let mut p = ProgramConfig::new(
                name.clone(),
                Command::Argv(vec!["python3".into(), "-c".into(), script]),
            );
            p.ready = Some(ReadyProbe::new(match kind {
                "log" => ProbeCheck::Log("^ready ".into()),
                "notify" => ProbeCheck::Notify,
                _ => ProbeCheck::Tcp(format!("127.0.0.1:{port}")),
            }));
            sup.add(p).await.expect("add");
            let mut events = sup.subscribe();
            sup.start(&name, None).await.expect("start");
            let at = loop {
                match events.recv().await {
                    Some(EventNotice::Changed(e))
                        if e.program == name && e.to == ProgramState::Running =>
                    {
                        break e.at;
                    }
                    Some(_) => {}
                    None => panic!("events closed"),
                }
            };
            // The program's own time, from its line (written at once after the fact).
            let said = loop {
                let tail = sup.tail(&name, gosuv::Stream::Stdout, 4096).expect("tail");
                let text = String::from_utf8_lossy(&tail).into_owned();
                if let Some(t) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("ready "))
                    .and_then(|t| t.trim().parse::<f64>().ok())
                {
                    break t;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            let event = at.duration_since(UNIX_EPOCH).expect("clock").as_secs_f64();
            lat.push((event - said) * 1000.0);
            sup.remove(&name).await.expect("remove");
        }
        sup.shutdown().await;
        let max = lat.iter().copied().fold(f64::MIN, f64::max);
        println!(
            "RESULT ready-{kind}: median {:.3} ms, p90 {:.3} ms, max {max:.3} ms ({rounds} programs, from the program's own timestamp to the running event)",
            median(&mut lat),
            pct(&mut lat, 0.9)
        );
    }
}

/// 1,000 programs with a `tcp` health probe every 100 ms: the supervisor's CPU.
async fn probe_cpu(dir: &Path) {
    use gosuv::config::{HealthProbe, ProbeCheck};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    // The listener is a process of its own: its accepts are not the supervisor's CPU.
    let mut listener = std::process::Command::new("python3")
        .args([
            "-c",
            &format!(
                "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', {port}))\ns.listen(4096)\nwhile True:\n    c, _ = s.accept()\n    c.close()"
            ),
        ])
        .spawn()
        .expect("listener");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the listener did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sup = Supervisor::new(SupervisorOptions::new(dir)).expect("supervisor");
    for i in 0..PROGRAMS {
        let mut p = sleeper(format!("p{i}"));
        let mut h = HealthProbe::new(ProbeCheck::Tcp(format!("127.0.0.1:{port}")));
        h.interval = Duration::from_millis(100);
        h.timeout = Duration::from_secs(1);
        p.health = Some(h);
        sup.add(p).await.expect("add");
    }
    let results = sup.start_all(Some(Duration::from_secs(60))).await;
    assert!(results.iter().all(|(_, r)| r.is_ok()), "a start failed");
    // Past the first round of probes, then 10 s of steady probing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c0 = cpu_time();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = (cpu_time() - c0).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0;
    let failures: u64 = sup
        .list()
        .iter()
        .map(|s| s.health.as_ref().map_or(0, |h| h.failures))
        .sum();
    sup.shutdown().await;
    let _ = listener.kill();
    let _ = listener.wait();
    println!(
        "RESULT probes-1000: supervisor CPU {cpu:.1} % of one core with {PROGRAMS} tcp probes every 100 ms ({failures} failed attempts)"
    );
}

async fn restart_latency(dir: &Path, kills: usize) {
    let sup = Supervisor::new(SupervisorOptions::new(dir)).expect("supervisor");
    let mut victim = sleeper("victim".into());
    // The restart itself is measured, not the crash-loop guard (5 exits in 60 s back off).
    victim.start_limit.burst = 0;
    sup.add(victim).await.expect("add");
    let mut pid = sup
        .start("victim", Some(Duration::from_secs(5)))
        .await
        .expect("start")
        .pid
        .expect("pid");
    let mut events = sup.subscribe();
    let mut lat = Vec::new();
    for _ in 0..kills {
        let t0 = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
        loop {
            match events.recv().await {
                Some(EventNotice::Changed(e)) if e.to == ProgramState::Starting => {
                    // The event is sent after the new child was forked.
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                    pid = e.pid.expect("pid");
                    break;
                }
                Some(_) => {}
                None => panic!("events closed"),
            }
        }
        sup.wait_for("victim", ProgramState::Running, Duration::from_secs(5))
            .await
            .expect("running");
    }
    sup.shutdown().await;
    println!(
        "RESULT restart-after-sigkill: median {:.3} ms, p90 {:.3} ms ({kills} kills)",
        median(&mut lat),
        pct(&mut lat, 0.9)
    );
}

/// The W4 writer of `bench/compare.py` (`bench/writer.py`): one process writing 100-byte
/// lines, 655 to a write(2), that records its start time in `stamp`.
/// A writer of `bytes` in 100-byte lines, `per_write` bytes a write(2).
fn writer(stamp: &Path, bytes: u64, per_write: usize) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/writer.py");
    [
        "python3".to_string(),
        script.display().to_string(),
        bytes.to_string(),
        per_write.to_string(),
        stamp.display().to_string(),
    ]
    .into()
}

/// Seconds from the writer's start (its stamp, wall clock) to `end`.
fn since_stamp(stamp: &Path, end: SystemTime) -> f64 {
    let t0: f64 = std::fs::read_to_string(stamp)
        .expect("stamp")
        .trim()
        .parse()
        .expect("stamp is a time");
    end.duration_since(UNIX_EPOCH).expect("clock").as_secs_f64() - t0
}

async fn log_throughput(dir: &Path, rounds: usize, label: &str, bytes: u64, per_write: usize) {
    let mut direct = Vec::new();
    let mut captured = Vec::new();
    let mut cpus = Vec::new();
    let out = dir.join("direct.log");
    let stamp = dir.join("stamp");
    for round in 0..rounds {
        // Straight to a file.
        let _ = std::fs::remove_file(&out);
        let argv = writer(&stamp, bytes, per_write);
        let st = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(std::fs::File::create(&out).expect("direct.log"))
            .status()
            .expect("direct writer");
        assert!(st.success());
        let meta = std::fs::metadata(&out).expect("meta");
        assert_eq!(meta.len(), bytes);
        let d = since_stamp(&stamp, meta.modified().expect("mtime"));
        std::fs::remove_file(&out).expect("rm");

        // Captured by gosuv.
        let logdir = dir.join(format!("logs{round}"));
        let mut opts = SupervisorOptions::new(dir).log_dir(&logdir);
        opts.subreaper = false;
        let sup = Supervisor::new(opts).expect("supervisor");
        let mut p = ProgramConfig::new("chatty", Command::Argv(writer(&stamp, bytes, per_write)));
        p.start_seconds = 0;
        p.autorestart = Autorestart::Never;
        p.log_max_bytes = 0;
        sup.add(p).await.expect("add");
        let cpu0 = cpu_time();
        sup.start("chatty", Some(Duration::from_secs(5)))
            .await
            .expect("start");
        // Done when the file has it all (reads run up to a few MiB ahead of the file).
        let file = logdir.join("chatty.stdout.log");
        let len = || std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        while len() < bytes {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let meta = std::fs::metadata(&file).expect("meta");
        let c = since_stamp(&stamp, meta.modified().expect("mtime"));
        let cpu = (cpu_time() - cpu0).as_secs_f64();
        assert_eq!(meta.len(), bytes);
        sup.shutdown().await;
        std::fs::remove_dir_all(&logdir).expect("rm");
        let mib = (bytes >> 20) as f64;
        println!(
            "{label:<7} round {round}: direct {:.0} MiB/s, captured {:.0} MiB/s, supervisor CPU {:.0} ms ({:.2} ms/MiB)",
            mib / d,
            mib / c,
            cpu * 1000.0,
            cpu * 1000.0 / mib
        );
        direct.push(mib / d);
        captured.push(mib / c);
        cpus.push(cpu * 1000.0 / mib);
    }
    let (d, c) = (median(&mut direct), median(&mut captured));
    println!(
        "RESULT {label}: captured {c:.0} MiB/s vs direct {d:.0} MiB/s = {:.0} %, supervisor CPU {:.2} ms/MiB ({rounds} rounds, medians)",
        c / d * 100.0,
        median(&mut cpus)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; anything else selects workloads.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |w: &str| args.is_empty() || args.iter().any(|a| a == w);
    let big = match std::env::var("BENCH_BIG") {
        Err(_) => BIG,
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("BENCH_BIG must be a whole number of programs above 0, not '{v}'");
                std::process::exit(2);
            }
        },
    };
    // The big run needs about 3 open files a program: raised now, checked before it runs.
    let big_problem = match raise_nofile_to_hard() {
        Err(e) => Some(e),
        Ok(hard) if hard != nix::sys::resource::RLIM_INFINITY
            && hard < FDS_BESIDES + FDS_PER_PROGRAM * big as u64 =>
        {
            Some(format!(
                "{big} programs need about {} open files ({FDS_PER_PROGRAM} a program + {FDS_BESIDES}) and the hard limit of open files is {hard}: raise it (as root `ulimit -Hn`, `nofile` in /etc/security/limits.conf, `LimitNOFILE=` in a systemd unit) or set BENCH_BIG lower",
                FDS_BESIDES + FDS_PER_PROGRAM * big as u64
            ))
        }
        Ok(_) => None,
    };
    let mut failed = false;
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if want("spawn") || want("idle") {
            spawn_and_idle(dir.path(), PROGRAMS, 5, want("idle")).await;
            match &big_problem {
                None => spawn_and_idle(dir.path(), big, 3, want("idle")).await,
                Some(e) => {
                    eprintln!("RESULT spawn-{big}: not run: {e}");
                    failed = true;
                }
            }
        }
        if want("restart") {
            restart_latency(dir.path(), 50).await;
        }
        if want("logs") {
            log_throughput(dir.path(), 3, "logs", LOG_BYTES, 65500).await;
        }
        if want("ready") {
            ready_latency(dir.path(), 20).await;
        }
        if want("probes") {
            probe_cpu(dir.path()).await;
        }
        if want("lines") {
            log_throughput(dir.path(), 5, "lines", 32 << 20, 100).await;
        }
    });
    // exit() runs no destructor: the runtime and the temp dir go first.
    drop(rt);
    drop(dir);
    if failed {
        std::process::exit(1);
    }
}
