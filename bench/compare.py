#!/usr/bin/env python3
"""gosuv side by side with supervisord (and pm2 when npm is present), in one run.

Run it with `bench/compare.sh` (which builds gosuv and installs the peers), or directly:

    python3 bench/compare.py --gosuv target/release/gosuv --supervisord VENV/bin/supervisord \
        [--pm2 NODE_MODULES/.bin/pm2] [--quick]

Every figure is counted from /proc, not from a supervisor's own API: processes are found by
their command line, daemons' RSS and CPU are read from /proc/<pid>. Each workload runs on
every supervisor in turn (gosuv, supervisord, pm2) before the next workload starts; each
daemon is started in its own temp dir on a unix socket, stopped afterwards, and every process
it started is checked gone.

Workloads (see issue 7):
  W1  launch the daemon until N `sleep` programs exist (N = 200, 1000)
  W2  the daemon's RSS and CPU ms/s over 20 s idle with N programs
  W3  20 x SIGKILL of a running program: median and p90 until the new child exists
  W4  one program (bench/writer.py) writing 512 MiB of 100-byte lines to stdout, 655 lines
      per write, captured to a log file; timed from the writer's own start to the log's
      last write, against the same writer redirected straight to a file
  W5  one program that exits at once, restarting forever at default settings: CPU and restarts/s
  W6  `gosuv status` vs `supervisorctl status` with 1,000 programs (whole command)
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
LOG_BYTES = 512 << 20


# ---------------------------------------------------------------- /proc helpers

def matches(cmdline, argv):
    """Whether a raw /proc cmdline is `argv` (argv[0] compared by its base name, since a
    supervisor may exec it by its full path)."""
    got = cmdline.rstrip(b"\0").split(b"\0")
    return (len(got) == len(argv)
            and os.path.basename(got[0]) == os.path.basename(argv[0]).encode()
            and got[1:] == [a.encode() for a in argv[1:]])


def procs_with_cmdline(argv):
    """Pids whose command line is `argv`."""
    return new_procs_with_cmdline(argv, ())


def new_procs_with_cmdline(argv, known):
    """Like procs_with_cmdline, reading only the pids not in `known` (fast enough to poll)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in known:
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if matches(f.read(), argv):
                    out.append(int(d))
        except OSError:
            pass
    return out


def all_pids():
    return {int(d) for d in os.listdir("/proc") if d.isdigit()}


def live(pids):
    """The pids that exist and are not zombies."""
    alive = []
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                alive.append(p)
        except OSError:
            pass
    return alive


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def wait_until(what, deadline_s, fn, interval=0.002):
    end = time.monotonic() + deadline_s
    while True:
        r = fn()
        if r:
            return r
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def idle_cost(pid, seconds):
    """(RSS MiB at the end, CPU ms per second) of `pid` over `seconds` of idling."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return rss_bytes(pid) / 1048576, (c1 - c0) * 1000 / (t1 - t0)


def median(xs):
    return statistics.median(xs)


def p90(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round((len(xs) - 1) * 0.9))]


# ---------------------------------------------------------------- the supervisors

class Program:
    """A program every supervisor can express."""

    def __init__(self, name, argv, autostart=True, start_seconds=None, retries=None,
                 log_max=None):
        self.name, self.argv, self.autostart = name, argv, autostart
        self.start_seconds, self.retries, self.log_max = start_seconds, retries, log_max


class Gosuv:
    label = "gosuv"

    def __init__(self, binary):
        self.binary = os.path.abspath(binary)

    def start(self, programs, fast_restart=False):
        self.dir = tempfile.mkdtemp(prefix="bench-gosuv-")
        self.logdir = os.path.join(self.dir, "logs")
        with open(os.path.join(self.dir, "config.yml"), "w") as f:
            f.write("server:\n  unixserver:\n    enabled: true\n    sockfile: .gosuv.sock\n"
                    "  log:\n    logpath: logs\n  minfds: 8192\n"
                    "client:\n  server_url: unix://.gosuv.sock\n")
        items = []
        for p in programs:
            item = {"name": p.name, "command": p.argv, "start_auto": p.autostart}
            if p.start_seconds is not None:
                item["start_seconds"] = p.start_seconds
            if p.retries is not None:
                item["start_retries"] = p.retries
            if p.log_max is not None:
                item["log_max_bytes"] = p.log_max
            if fast_restart:
                # W3 measures how fast a restart is, not the crash-loop guard (5 exits in
                # 60 s back off): off, as pm2's restart_delay 0.
                item["start_limit"] = {"burst": 0}
            items.append(item)
        with open(os.path.join(self.dir, "programs.yml"), "w") as f:
            json.dump(items, f)  # JSON is YAML
        self.proc = subprocess.Popen(
            [self.binary, "-c", os.path.join(self.dir, "config.yml"), "start-server", "-f"],
            cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.proc.pid

    def wait_ready(self):
        wait_until("gosuv to answer", 30, lambda: self.ctl(["status-server"], check=False) == 0,
                   interval=0.01)

    def ctl(self, args, check=True):
        r = subprocess.run([self.binary, "-c", os.path.join(self.dir, "config.yml")] + args,
                           cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise RuntimeError(f"gosuv {' '.join(args)} failed")
        return r.returncode

    def status_cmd(self):
        return [self.binary, "-c", os.path.join(self.dir, "config.yml"), "status"]

    def start_program(self, name):
        self.ctl(["start", name, "--no-wait"])

    def logfile(self, name):
        return os.path.join(self.logdir, f"{name}.stdout.log")

    def stop(self):
        self.ctl(["shutdown"], check=False)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Supervisord:
    label = "supervisord"

    def __init__(self, supervisord):
        self.supervisord = os.path.abspath(supervisord)
        self.supervisorctl = os.path.join(os.path.dirname(self.supervisord), "supervisorctl")

    def start(self, programs, fast_restart=False):
        self.dir = tempfile.mkdtemp(prefix="bench-supervisord-")
        self.conf = os.path.join(self.dir, "supervisord.conf")
        sock = os.path.join(self.dir, "supervisor.sock")
        lines = [
            "[unix_http_server]", f"file={sock}",
            "[supervisord]", f"logfile={self.dir}/supervisord.log", f"pidfile={self.dir}/s.pid",
            f"childlogdir={self.dir}", "minfds=8192", "minprocs=4096",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]", f"serverurl=unix://{sock}",
        ]
        for p in programs:
            lines += [
                f"[program:{p.name}]", "command=" + shlex.join(p.argv), "autorestart=true",
                f"autostart={'true' if p.autostart else 'false'}",
                f"stdout_logfile={self.dir}/{p.name}.stdout.log",
                f"stderr_logfile={self.dir}/{p.name}.stderr.log",
            ]
            if p.start_seconds is not None:
                lines.append(f"startsecs={p.start_seconds}")
            if p.retries is not None:
                lines.append(f"startretries={p.retries}")
            if p.log_max is not None:
                lines.append(f"stdout_logfile_maxbytes={p.log_max}")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([self.supervisord, "-n", "-c", self.conf], cwd=self.dir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.proc.pid

    def ctl(self, args, check=True):
        r = subprocess.run([self.supervisorctl, "-c", self.conf] + args,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if check and r.returncode not in (0, 3):  # 3: some program not running
            raise RuntimeError(f"supervisorctl {' '.join(args)} failed: {r.returncode}")
        return r.returncode

    def wait_ready(self):
        wait_until("supervisord to answer", 60,
                   lambda: self.ctl(["pid"], check=False) == 0, interval=0.01)

    def status_cmd(self):
        return [self.supervisorctl, "-c", self.conf, "status"]

    def start_program(self, name):
        self.ctl(["start", name])

    def logfile(self, name):
        return os.path.join(self.dir, f"{name}.stdout.log")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Pm2:
    label = "pm2"

    def __init__(self, pm2):
        self.pm2 = os.path.abspath(pm2)

    def env(self):
        e = dict(os.environ, PM2_HOME=os.path.join(self.dir, "home"))
        return e

    def start(self, programs, fast_restart=False):
        self.dir = tempfile.mkdtemp(prefix="bench-pm2-")
        apps = []
        for p in programs:
            app = {"name": p.name, "script": shutil.which(p.argv[0]) or p.argv[0],
                   "args": p.argv[1:],
                   "interpreter": "none", "autorestart": True,
                   "out_file": os.path.join(self.dir, f"{p.name}.stdout.log"),
                   "error_file": os.path.join(self.dir, f"{p.name}.stderr.log")}
            if fast_restart:
                app["restart_delay"] = 0
            if p.retries is not None:
                app["max_restarts"] = p.retries
            if p.start_seconds is not None:
                app["min_uptime"] = p.start_seconds * 1000
            if p.autostart:
                apps.append(app)
        self.apps = os.path.join(self.dir, "ecosystem.config.json")
        with open(self.apps, "w") as f:
            json.dump({"apps": apps}, f)
        self.all_programs = programs
        # `pm2 start` launches the daemon and the apps, then returns.
        self.proc = subprocess.Popen([self.pm2, "start", self.apps], env=self.env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pidfile = os.path.join(self.dir, "home", "pm2.pid")
        wait_until("pm2 daemon", 60, lambda: os.path.exists(pidfile)
                   and open(pidfile).read().strip().isdigit(), interval=0.01)
        return int(open(pidfile).read().strip())

    def wait_ready(self):
        self.proc.wait(timeout=300)

    def status_cmd(self):
        return [self.pm2, "jlist"]

    def start_program(self, name):
        p = next(p for p in self.all_programs if p.name == name)
        subprocess.run([self.pm2, "start", p.argv[0], "--name", name, "--interpreter", "none",
                        "--output", self.logfile(name), "--no-autorestart", "--"] + p.argv[1:],
                       env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def logfile(self, name):
        return os.path.join(self.dir, f"{name}.stdout.log")

    def stop(self):
        subprocess.run([self.pm2, "kill"], env=self.env(), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- workloads

def check_gone(argv, label):
    left = wait_until_gone(argv)
    if left:
        raise RuntimeError(f"{label} left {len(left)} processes of {argv} running")


def wait_until_gone(argv, secs=30):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        left = live(procs_with_cmdline(argv))
        if not left:
            return []
        time.sleep(0.05)
    return live(procs_with_cmdline(argv))


class Counter:
    """Counts live processes running `argv`, cheaply enough to poll every few ms with a
    thousand of them: a pid seen running `argv` is remembered, and only pids not yet seen
    (or still between fork and exec) have their command line read."""

    def __init__(self, argv):
        self.argv, self.found, self.before = argv, set(), all_pids()

    def count(self):
        pids = all_pids()
        self.found &= pids
        for p in pids - self.found - self.before:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if matches(f.read(), self.argv):
                        self.found.add(p)
            except OSError:
                pass
        return len(self.found)


def w1_w2(sup, n, marker, idle_s):
    argv = ["sleep", str(marker)]
    programs = [Program(f"s{i}", argv) for i in range(n)]
    counter = Counter(argv)
    t0 = time.monotonic()
    daemon = sup.start(programs)
    try:
        wait_until(f"{n} sleeps under {sup.label}", 300, lambda: counter.count() >= n,
                   interval=0.005)
        w1 = time.monotonic() - t0
        sup.wait_ready()
        time.sleep(3)  # let start_seconds pass and the daemon settle
        rss, cpu = idle_cost(daemon, idle_s)
    finally:
        sup.stop()
    check_gone(argv, sup.label)
    return w1, rss, cpu


def w3(sup, marker, kills):
    argv = ["sleep", str(marker)]
    daemon = sup.start([Program("victim", argv, start_seconds=0)], fast_restart=True)
    lat = []
    try:
        sup.wait_ready()
        pid = wait_until("victim", 30, lambda: live(procs_with_cmdline(argv)))[0]
        time.sleep(1)
        for _ in range(kills):
            known = all_pids()
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            new = wait_until("restart", 30,
                             lambda: new_procs_with_cmdline(argv, known), interval=0)
            lat.append((time.monotonic() - t0) * 1000)
            pid = new[0]
            time.sleep(1.2)  # be past any start_seconds / min uptime before the next kill
    finally:
        sup.stop()
    check_gone(argv, sup.label)
    _ = daemon
    return median(lat), p90(lat)


WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "writer.py")


def writer_argv(block, stamp, go):
    """The W4 writer (bench/writer.py): one process, `block` bytes of 100-byte lines per
    write(2), starting once `go` exists and recording its start time in `stamp`."""
    return [sys.executable, WRITER, str(LOG_BYTES), str(block), stamp, go]


def quiesce():
    """Flushes dirty pages left by earlier runs, so that no writeback competes for the two
    cores while the next one is timed."""
    os.sync()


def output_rate(stamp, log):
    """MiB/s from the writer's start (its stamp) to the last write into `log` (its mtime)."""
    with open(stamp) as f:
        t0 = float(f.read())
    return (LOG_BYTES >> 20) / (os.stat(log).st_mtime - t0)


def direct_throughput(block):
    """The same writer with its stdout redirected straight to a file."""
    d = tempfile.mkdtemp(prefix="bench-direct-")
    try:
        out, stamp, go = (os.path.join(d, f) for f in ("direct.log", "stamp", "go"))
        open(go, "w").close()
        quiesce()
        with open(out, "wb") as f:
            subprocess.run(writer_argv(block, stamp, go), stdout=f, check=True)
        assert os.path.getsize(out) == LOG_BYTES
        return output_rate(stamp, out)
    finally:
        shutil.rmtree(d)


def w4(sup, block):
    d = tempfile.mkdtemp(prefix="bench-w4-")
    stamp, go = os.path.join(d, "stamp"), os.path.join(d, "go")
    prog = Program("chatty", writer_argv(block, stamp, go), autostart=False, start_seconds=0,
                   log_max=0)
    sup.start([prog])
    try:
        sup.wait_ready()
        log = sup.logfile("chatty")
        sup.start_program("chatty")  # the client command has exited when this returns
        quiesce()
        open(go, "w").close()
        size = lambda: os.path.getsize(log) if os.path.exists(log) else 0  # noqa: E731
        last, since = -1, time.monotonic()
        end = time.monotonic() + 120
        while size() < LOG_BYTES:
            now, n = time.monotonic(), size()
            if n != last:
                last, since = n, now
            # Only a stalled log is looked into: scanning /proc costs CPU the run needs.
            writer_gone = now - since > 5 and not live(procs_with_cmdline(prog.argv))
            if now > end or writer_gone:
                how = ("finished" if os.path.exists(stamp + ".done") else "was killed"
                       ) if writer_gone else "is still writing"
                raise RuntimeError(f"{sup.label} logged {n} of {LOG_BYTES} bytes; the writer "
                                   f"{how}, the log unchanged for {now - since:.0f} s")
            time.sleep(0.01)
        if os.path.getsize(log) != LOG_BYTES:
            raise RuntimeError(f"{sup.label} logged {os.path.getsize(log)} bytes, "
                               f"not {LOG_BYTES}")
        return output_rate(stamp, log)
    finally:
        sup.stop()
        shutil.rmtree(d, ignore_errors=True)


def w5(sup, secs):
    d = tempfile.mkdtemp(prefix="bench-w5-")
    counter = os.path.join(d, "runs")
    script = os.path.join(d, "crash.sh")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\necho run >> {counter}\nexit 1\n")
    os.chmod(script, 0o755)
    daemon = sup.start([Program("crasher", [script], retries=1000000)])
    try:
        sup.wait_ready()
        wait_until("first run", 30, lambda: os.path.exists(counter))
        c0, t0 = cpu_seconds(daemon), time.monotonic()
        runs0 = sum(1 for _ in open(counter))
        time.sleep(secs)
        c1, t1 = cpu_seconds(daemon), time.monotonic()
        runs1 = sum(1 for _ in open(counter))
    finally:
        sup.stop()
        shutil.rmtree(d, ignore_errors=True)
    return (c1 - c0) * 1000 / (t1 - t0), (runs1 - runs0) / (t1 - t0)


def w6(sup, marker, rounds):
    argv = ["sleep", str(marker)]
    sup.start([Program(f"s{i}", argv) for i in range(1000)])
    times = []
    try:
        sup.wait_ready()
        wait_until("1000 sleeps", 300, lambda: len(live(procs_with_cmdline(argv))) >= 1000,
                   interval=0.01)
        time.sleep(2)
        for _ in range(rounds):
            t0 = time.monotonic()
            subprocess.run(sup.status_cmd(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append((time.monotonic() - t0) * 1000)
    finally:
        sup.stop()
    check_gone(argv, sup.label)
    return median(times)


# ---------------------------------------------------------------- report

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gosuv", required=True)
    ap.add_argument("--supervisord", required=True)
    ap.add_argument("--pm2")
    ap.add_argument("--quick", action="store_true", help="short idle windows, fewer kills")
    ap.add_argument("--only", help="comma-separated workloads, e.g. W1,W3")
    args = ap.parse_args()
    sups = [Gosuv(args.gosuv), Supervisord(args.supervisord)]
    if args.pm2:
        sups.append(Pm2(args.pm2))
    idle_s = 5 if args.quick else 20
    kills = 5 if args.quick else 20
    w4_rounds = 3 if args.quick else 5
    only = set(args.only.split(",")) if args.only else None
    want = lambda w: only is None or w in only  # noqa: E731
    rows = []  # (workload, unit, {label: value}, better)
    marker = 98760 + (os.getpid() % 1000) * 10

    def row(name, unit, values, lower_is_better=True):
        rows.append((name, unit, values, lower_is_better))
        print(f"  {name}: " + ", ".join(f"{k} {v:.3g}" for k, v in values.items()), flush=True)

    for n in (200, 1000):
        if not (want("W1") or want("W2")):
            break
        w1s, rss, cpu = {}, {}, {}
        for s in sups:
            if s.label == "pm2" and n > 200 and args.quick:
                continue
            try:
                w1s[s.label], rss[s.label], cpu[s.label] = w1_w2(s, n, marker + 1, idle_s)
            except (TimeoutError, RuntimeError) as e:
                print(f"  {s.label}: {e}", file=sys.stderr)
        row(f"W1 launch until {n} sleeps exist", "s", w1s)
        row(f"W2 idle RSS, {n} programs", "MiB", rss)
        row(f"W2 idle CPU, {n} programs", "ms/s", cpu)
    if want("W3"):
        med, p = {}, {}
        for s in sups:
            try:
                med[s.label], p[s.label] = w3(s, marker + 2, kills)
            except (TimeoutError, RuntimeError) as e:
                print(f"  {s.label}: {e}", file=sys.stderr)
        row("W3 SIGKILL to new child, median", "ms", med)
        row("W3 SIGKILL to new child, p90", "ms", p)
    if want("W4"):
        # Rounds alternate direct, gosuv, peers; the medians are reported. 65,500-byte
        # writes are the workload; 4,000-byte ones (C stdio's pipe buffer) are shown too,
        # where the writer itself is the limit.
        for block, tag in ((65500, ""), (4000, ", 4 KB writes")):
            if tag and args.quick:
                continue
            direct, tput = [], {}
            for _ in range(w4_rounds):
                direct.append(direct_throughput(block))
                for s in sups:
                    try:
                        tput.setdefault(s.label, []).append(w4(s, block))
                    except (TimeoutError, RuntimeError) as e:
                        print(f"  {s.label}: {e}", file=sys.stderr)
            d = median(direct)
            med = {k: median(v) for k, v in tput.items()}
            print(f"  W4{tag}: direct to file {d:.0f} MiB/s; rounds: " + "; ".join(
                f"{k} " + " ".join(f"{x:.0f}" for x in v) for k, v in tput.items()))
            row(f"W4 512 MiB of output captured{tag}", "MiB/s", med, lower_is_better=False)
            row(f"W4 captured / direct to file{tag}", "%",
                {k: v / d * 100 for k, v in med.items()}, lower_is_better=False)
    if want("W5"):
        cpu, rate = {}, {}
        for s in sups:
            try:
                cpu[s.label], rate[s.label] = w5(s, idle_s)
            except (TimeoutError, RuntimeError) as e:
                print(f"  {s.label}: {e}", file=sys.stderr)
        row("W5 crash loop, daemon CPU", "ms/s", cpu)
        row("W5 crash loop, restarts", "1/s", rate, lower_is_better=False)
    if want("W6"):
        t = {}
        for s in sups:
            if s.label == "pm2" and args.quick:
                continue
            try:
                t[s.label] = w6(s, marker + 3, 5 if args.quick else 11)
            except (TimeoutError, RuntimeError) as e:
                print(f"  {s.label}: {e}", file=sys.stderr)
        row("W6 status command, 1000 programs", "ms", t)

    peers = [s.label for s in sups[1:]]
    head = "| workload | unit | gosuv | " + " | ".join(
        f"{p} | gosuv/{p}" for p in peers) + " |"
    print()
    print(head)
    print("|" + " --- |" * (3 + 2 * len(peers)))
    for name, unit, values, _ in rows:
        g = values.get("gosuv")
        cells = [name, unit, f"{g:.3g}" if g is not None else "n/a"]
        for p in peers:
            v = values.get(p)
            cells.append(f"{v:.3g}" if v is not None else "n/a")
            cells.append(f"{g / v:.2f}" if g is not None and v else "n/a")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
