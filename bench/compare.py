#!/usr/bin/env python3
"""gosuv side by side with supervisord (and pm2 when npm is present), in one run.

Run it with `bench/compare.sh` (which builds gosuv and installs the peers), or directly:

    python3 bench/compare.py --gosuv target/release/gosuv [--supervisord VENV/bin/supervisord] \
        [--pm2 NODE_MODULES/.bin/pm2] [--quick] [--only W0,W1] [--big 5000]

Every figure is counted from /proc, not from a supervisor's own API: processes are found by
their command line, daemons' RSS and CPU are read from /proc/<pid>. Each workload runs on
every supervisor in turn (gosuv, supervisord, pm2) before the next workload starts; each
daemon is started in its own temp dir on a unix socket, stopped afterwards, and every process
it started is checked gone.

Workloads (see issues 7 and 19):
  W0  the "spawn limit": bench/spawn_limit.c, a bare C loop that posix_spawns N `sleep`s,
      each in a session of its own, timed from outside exactly as W1 (until N sleeps exist
      in /proc), and by its own clock; run alternately with gosuv's rounds of W1 and W7,
      whose launch times are also given as a ratio to it
  W1  launch the daemon until N `sleep` programs exist (N = 200, 1000; gosuv and the spawn
      limit: median of 3 rounds, 5 without --quick; peers: one round)
  W2  the daemon's RSS and CPU ms/s over 20 s idle with N programs
  W3  20 x SIGKILL of a running program: median and p90 until the new child exists
  W4  one program (bench/writer.py) writing 2 GiB of 100-byte lines to stdout, 655 lines
      per write, captured to a log file; timed from the writer's own start to the log's
      last write, against the same writer redirected straight to a file (needs 4 GiB free
      in the temp dir)
  W5  one program that exits at once, restarting forever at default settings: CPU and restarts/s
  W6  `gosuv status` vs `supervisorctl status` with 1,000 programs (whole command)
  W7  gosuv alone at 1,000 and 5,000 programs (--big N; the peers take minutes there): time
      until N sleeps exist, the server's open fds and threads, idle RSS and CPU over 10 s,
      `gosuv status` (whole command), GET /api/programs and /metrics on the unix socket,
      `gosuv shutdown` until the server has exited and every sleep is gone; then a linear
      projection to 10,000 and 100,000 programs against this machine's limits
"""

import argparse
import atexit
import http.client
import json
import math
import resource
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
LOG_BYTES = 2 << 30
HERE = os.path.dirname(os.path.abspath(__file__))


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
            with open(f"/proc/{p}/stat", errors="replace") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                alive.append(p)
        except OSError:
            pass
    return alive


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", errors="replace") as f:
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


def open_fds(pid):
    """How many file descriptors `pid` holds open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def helpers_of(pid, word):
    """The child processes of `pid` whose command line has `word` (gosuv's holder: the
    process that keeps a second read end of every program's output pipes)."""
    kids = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        return []
    out = []
    for k in kids:
        try:
            with open(f"/proc/{k}/cmdline", "rb") as f:
                if word.encode() in f.read().split(b"\0"):
                    out.append(k)
        except OSError:
            pass
    return out


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- this machine's limits

def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def meminfo_bytes(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def kernel_memory():
    """Bytes of the kernel's memory that grows with processes, pipes and cgroups: kernel
    stacks, page tables, slab, per-CPU (from /proc/meminfo; others' work moves it too)."""
    return sum(meminfo_bytes(k) or 0 for k in ("KernelStack", "PageTables", "Slab", "Percpu"))


def pss_bytes(pids, sample=50):
    """The median proportional set size of up to `sample` of `pids` (their own memory,
    shared pages divided among their sharers)."""
    got = []
    for p in sorted(pids)[:sample]:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        got.append(int(line.split()[1]) * 1024)
                        break
        except OSError:
            pass
    return median(got) if got else None


def cgroup_descendants_limit():
    """(the cgroup v2 this process is in, its cgroup.max.descendants), or None."""
    try:
        with open("/proc/self/cgroup") as f:
            path = next(line.split("::", 1)[1].strip() for line in f if line.startswith("0::"))
        with open(f"/sys/fs/cgroup{path.rstrip('/')}/cgroup.max.descendants") as f:
            return path, f.read().strip()
    except (OSError, StopIteration):
        return None


def tasks_now():
    """Processes and threads on the machine now (the 4th field of /proc/loadavg)."""
    with open("/proc/loadavg") as f:
        return int(f.read().split()[3].split("/")[1])


def limit(v):
    """A resource limit, None for unlimited."""
    return None if v == resource.RLIM_INFINITY else v


def machine_limits():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nproc_soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    return {
        "nofile_soft": limit(soft), "nofile_hard": limit(hard),
        "nr_open": read_int("/proc/sys/fs/nr_open"),
        "file_max": read_int("/proc/sys/fs/file-max"),
        "pid_max": read_int("/proc/sys/kernel/pid_max"),
        "threads_max": read_int("/proc/sys/kernel/threads-max"),
        "nproc": None if os.geteuid() == 0 else limit(nproc_soft),
        "mem_total": meminfo_bytes("MemTotal"), "mem_available": meminfo_bytes("MemAvailable"),
        "tasks": tasks_now(),
    }


def process_room(n):
    """Why `n` more processes cannot be started on this machine now, or None."""
    lim, spare = machine_limits(), 200
    for key, what in (("pid_max", "kernel.pid_max"), ("threads_max", "kernel.threads-max"),
                      ("nproc", "RLIMIT_NPROC (ulimit -u)")):
        if lim[key] is not None and lim["tasks"] + n + spare > lim[key]:
            return (f"{n} more processes do not fit: {lim['tasks']} tasks run already and "
                    f"{what} is {lim[key]}")
    return None


# Open files of the gosuv server: a base, and so many a program (two pipes' read ends and a
# pidfd, until a run of this bench has counted them).
FDS_BASE, FDS_PER_PROGRAM = 64, 3


def gosuv_minfds(n, per_program):
    """(the `minfds` to configure for `n` programs, or None; why not, or None)."""
    lim = machine_limits()
    hard = lim["nofile_hard"] or lim["nr_open"] or 1 << 20
    need = math.ceil(FDS_BASE + per_program * n)
    if need > hard:
        return None, (f"{n} programs need about {need} open files in the server "
                      f"({per_program:.2f} a program + {FDS_BASE}), and this process's hard "
                      f"limit of open files (RLIMIT_NOFILE) is {hard}: raise it (as root "
                      f"`ulimit -Hn`, `nofile` in /etc/security/limits.conf, `LimitNOFILE=` "
                      f"in a systemd unit; at most fs.nr_open = {lim['nr_open']}), or pass a "
                      f"smaller --big")
    return min(hard, max(8192, need + 1024)), None


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

    def start(self, programs, fast_restart=False, minfds=8192):
        self.dir = tempfile.mkdtemp(prefix="bench-gosuv-")
        self.logdir = os.path.join(self.dir, "logs")
        self.sock = os.path.join(self.dir, ".gosuv.sock")
        with open(os.path.join(self.dir, "config.yml"), "w") as f:
            f.write("server:\n  unixserver:\n    enabled: true\n    sockfile: .gosuv.sock\n"
                    f"  log:\n    logpath: logs\n  minfds: {minfds}\n"
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
        with open(os.path.join(self.dir, "server.stderr"), "wb") as err:
            self.proc = subprocess.Popen(
                [self.binary, "-c", os.path.join(self.dir, "config.yml"), "start-server", "-f"],
                cwd=self.dir, stdout=subprocess.DEVNULL, stderr=err)
        return self.proc.pid

    def log_tail(self, chars=600):
        try:
            with open(os.path.join(self.logdir, "gosuv.log"), errors="replace") as f:
                return f.read()[-chars:].strip()
        except OSError as e:
            return f"(none: {e})"

    def exited(self):
        """Why the server exited, or None while it runs."""
        if self.proc.poll() is None:
            return None
        try:
            with open(os.path.join(self.dir, "server.stderr"), errors="replace") as f:
                err = f.read().strip()[-600:]
        except OSError:
            err = ""
        return f"the gosuv server exited with {self.proc.returncode}: {err}"

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

    def get(self, path):
        """(milliseconds, body length) of one GET on the unix socket, on a new connection
        (as a client that runs now and then makes it), the whole body read."""
        t0 = time.monotonic()
        c = UnixHTTPConnection(self.sock)
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        took = (time.monotonic() - t0) * 1000
        if r.status != 200:
            raise RuntimeError(f"GET {path} answered {r.status}: {body[:200]!r}")
        return took, len(body)

    def stop(self, timeout=30):
        self.ctl(["shutdown"], check=False)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a unix socket (curl may be missing)."""

    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


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
        self.daemon = int(open(pidfile).read().strip())
        return self.daemon

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
        try:
            subprocess.run([self.pm2, "kill"], env=self.env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120)
        except subprocess.TimeoutExpired:
            # Seen on a loaded machine: the daemon is killed, and check_gone reports and
            # kills the programs it leaves.
            print("  pm2 kill did not finish in 120 s: its daemon is killed", file=sys.stderr)
            try:
                os.kill(self.daemon, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- workloads

def check_gone(argv, label):
    left = wait_until_gone(argv)
    if left:
        for p in left:  # this bench's own marker: no one else's processes
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        raise RuntimeError(f"{label} left {len(left)} processes of {argv} running "
                           "(killed now)")


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
    (or still between fork and exec) have their command line read, but those that ran
    before the counter was made, while they last."""

    def __init__(self, argv):
        self.argv, self.found, self.before = argv, set(), all_pids()

    def count(self):
        pids = all_pids()
        self.found &= pids
        # A pid that was there before and has gone may come back as one of ours (pids wrap
        # around at pid_max, soon on a busy machine).
        self.before &= pids
        for p in pids - self.found - self.before:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if matches(f.read(), self.argv):
                        self.found.add(p)
            except OSError:
                pass
        return len(self.found)


def w1_w2(sup, n, marker, idle_s):
    """(seconds until `n` sleeps exist, and with `idle_s`: idle RSS MiB, CPU ms/s, open fds)."""
    argv = ["sleep", str(marker)]
    programs = [Program(f"s{i}", argv) for i in range(n)]
    counter = Counter(argv)
    t0 = time.monotonic()
    daemon = sup.start(programs)
    rss = cpu = fds = None
    try:
        wait_until(f"{n} sleeps under {sup.label}", 300, lambda: counter.count() >= n,
                   interval=0.005)
        w1 = time.monotonic() - t0
        sup.wait_ready()
        if idle_s:
            time.sleep(3)  # let start_seconds pass and the daemon settle
            fds = open_fds(daemon)
            rss, cpu = idle_cost(daemon, idle_s)
    finally:
        sup.stop()
    check_gone(argv, sup.label)
    return w1, rss, cpu, fds


_spawn_limit = None


def spawn_limit_binary():
    """bench/spawn_limit.c compiled with `cc -O2` into a temp dir (once a run)."""
    global _spawn_limit
    if _spawn_limit is None:
        d = tempfile.mkdtemp(prefix="bench-spawn-limit-")
        atexit.register(shutil.rmtree, d, ignore_errors=True)
        out = os.path.join(d, "spawn_limit")
        r = subprocess.run([os.environ.get("CC", "cc"), "-O2", "-Wall", "-Wextra", "-o", out,
                            os.path.join(HERE, "spawn_limit.c")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"cannot compile bench/spawn_limit.c: {r.stdout.strip()}")
        _spawn_limit = out
    return _spawn_limit


def spawn_limit_round(n, marker):
    """W0: the bare posix_spawn loop timed as W1 times a daemon, from its start until `n`
    sleeps exist. (seconds from outside, seconds by its own clock, {"kmem": the kernel's
    memory a program, "pss": a sleep's own memory} in bytes)."""
    argv = ["sleep", str(marker)]
    binary = spawn_limit_binary()
    counter = Counter(argv)
    kmem0 = kernel_memory()
    t0 = time.monotonic()
    proc = subprocess.Popen([binary, str(n)] + argv, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = False
    try:
        wait_until(f"{n} sleeps of the spawn limit", 300,
                   lambda: counter.count() >= n or proc.poll() is not None, interval=0.005)
        outside = time.monotonic() - t0
        mem = {"kmem": (kernel_memory() - kmem0) / n, "pss": pss_bytes(counter.found)}
        line = proc.stdout.readline().decode()  # "spawned N in S s"
        if proc.poll() is not None and not line:
            raise RuntimeError(f"spawn_limit exited with {proc.returncode}: "
                               f"{proc.stderr.read().decode().strip()}")
        own = float(line.split()[3])
    finally:
        proc.stdin.close()  # it kills and reaps its sleeps
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
        proc.stdout.close()
        proc.stderr.close()
    if killed:
        raise RuntimeError("spawn_limit did not end within 60 s of its stdin closing")
    check_gone(argv, "spawn limit")
    return outside, own, mem


def w7_round(g, n, marker, minfds, idle_s=None, status_rounds=5, get_rounds=11):
    """gosuv with `n` programs: seconds until they exist; with `idle_s` the server's fds,
    threads, idle RSS and CPU, and the medians of `gosuv status`, GET /api/programs and
    /metrics (ms); then `gosuv shutdown` until the server has exited and no sleep is left."""
    argv = ["sleep", str(marker)]
    counter = Counter(argv)
    r = {}
    kmem0 = kernel_memory()
    t0 = time.monotonic()
    daemon = g.start([Program(f"s{i}", argv) for i in range(n)], minfds=minfds)
    try:
        try:
            wait_until(f"{n} sleeps under gosuv", 900,
                       lambda: counter.count() >= n or g.exited(), interval=0.005)
        except TimeoutError:
            raise RuntimeError(f"{counter.count()} of {n} sleeps exist after 900 s; the "
                               f"server's log ends: {g.log_tail()}") from None
        if g.exited():
            raise RuntimeError(g.exited())
        r["running"] = time.monotonic() - t0
        g.wait_ready()
        if idle_s:
            time.sleep(3)  # past start_seconds, the server settled
            r["kmem"], r["pss"] = (kernel_memory() - kmem0) / n, pss_bytes(counter.found)
            r["fds"], r["threads"] = open_fds(daemon), threads(daemon)
            holders = helpers_of(daemon, "__holder")
            if holders:
                r["holder_fds"] = open_fds(holders[0])
                r["holder_rss"] = rss_bytes(holders[0]) / 1048576
            r["rss"], r["cpu"] = idle_cost(daemon, idle_s)
            r["threads_idle"] = threads(daemon)
            st = []
            for _ in range(status_rounds):
                t = time.monotonic()
                subprocess.run(g.status_cmd(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=True)
                st.append((time.monotonic() - t) * 1000)
            r["status"] = median(st)
            for key, path in (("api", "/api/programs"), ("metrics", "/metrics")):
                got = [g.get(path) for _ in range(get_rounds)]
                r[key], r[key + "_bytes"] = median([ms for ms, _ in got]), got[-1][1]
        t = time.monotonic()
        g.ctl(["shutdown"])
        g.proc.wait(timeout=600)
        exit_at = time.monotonic()
        # Gone from /proc; a second after the server's exit, zombies count as gone too
        # (whoever inherited them reaps them), read only then: /proc reads cost CPU.
        wait_until("every sleep gone", 60, lambda: counter.count() == 0 or (
            time.monotonic() - exit_at > 1 and not live(counter.found)), interval=0.005)
        r["shutdown"] = time.monotonic() - t
    finally:
        if g.proc.poll() is None:
            g.stop(timeout=600)
        shutil.rmtree(g.dir, ignore_errors=True)
    check_gone(argv, "gosuv")
    return r


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


WRITER = os.path.join(HERE, "writer.py")


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
        rate = output_rate(stamp, log)
        os.remove(log)  # its space is back once the supervisor closes it (stopped below)
        return rate
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

LIMIT = "spawn limit"


def size_label(b):
    return f"{b >> 30} GiB" if b % (1 << 30) == 0 else f"{b >> 20} MiB"


def fmt(v):
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def extrapolate(points, base_points, lim):
    """Prints, from the two largest sizes at which each figure was measured, its growth a
    program and a linear projection to 10,000 and 100,000 programs; then the limits of this
    machine that bound the number of programs. On paper: nothing is run."""
    targets = (10000, 100000)
    figures = [
        (base_points, "running", "spawn limit: until all sleeps exist", "s", 1),
        (points, "running", "gosuv: until all sleeps exist", "s", 1),
        (points, "fds", "gosuv server: open fds", "", 1),
        (points, "holder_fds", "gosuv holder process: open fds", "", 1),
        (points, "threads", "gosuv server: threads, 3 s after all exist", "", 1),
        (points, "threads_idle", "gosuv server: threads, idle", "", 1),
        (points, "rss", "gosuv server: RSS, idle", "MiB", 1),
        (points, "status", "`gosuv status`, whole command", "ms", 1),
        (points, "api", "GET /api/programs", "ms", 1),
        (points, "metrics", "GET /metrics", "ms", 1),
        (points, "shutdown", "`gosuv shutdown` until all is gone", "s", 1),
        (points, "holder_rss", "gosuv holder process: RSS", "MiB", 1),
        (base_points, "kmem_mib", "kernel memory, spawn limit (stacks, page tables, slab, "
         "per-CPU)", "MiB", 1),
        (points, "kmem_mib", "kernel memory, gosuv (the same: processes, pipes, cgroups)",
         "MiB", 1),
    ]
    print("\n## Extrapolation (on paper: linear from the two largest sizes measured in this "
          "run; nothing is run at 10,000 or 100,000)\n")
    print("| figure | unit | measured | a program, between them | growth exponent | "
          "at 10,000 | at 100,000 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    slopes = {}
    for src, key, what, unit, scale in figures:
        ns = sorted(n for n, m in src.items() if m.get(key) is not None)
        if len(ns) < 2:
            continue
        n1, n2 = ns[-2], ns[-1]
        v1, v2 = src[n1][key] * scale, src[n2][key] * scale
        slope = (v2 - v1) / (n2 - n1)
        slopes[(id(src), key)] = (slope, v2 - slope * n2)
        k = (f"{math.log(v2 / v1) / math.log(n2 / n1):.2f}" if v1 > 0 and v2 > 0 else "n/a")
        proj = ([fmt(v2 + slope * (t - n2)) for t in targets] if slope >= 0
                else ["no growth measured"] * len(targets))
        print(f"| {what} | {unit} | {fmt(v1)} at {n1:,}, {fmt(v2)} at {n2:,} | {slope:.4g} | {k} "
              f"| {proj[0]} | {proj[1]} |")
    if not slopes:
        print("(nothing to project: it needs a figure measured at two sizes, e.g. "
              "--only W7, or W1 at 200 and 1,000)")
    print("\nThe growth exponent is log(v2/v1) / log(n2/n1): 1 when a figure grows in "
          "proportion to the programs, 2 when it grows with their square (then the linear "
          "projection is far too low).")

    print("\n### Limits of this machine\n")
    fits = []
    hard, nr_open = lim["nofile_hard"], lim["nr_open"]
    any_fds = False
    for key, who in (("fds", "the server"), ("holder_fds", "the server's holder process")):
        fds = slopes.get((id(points), key))
        if not fds or fds[0] <= 0:
            continue
        any_fds = True
        per, base = fds
        line = f"- open files: {who} holds {base:.0f} + {per:.2f} a program"
        if hard:
            fit = int((hard - base) / per)
            fits.append((fit, f"the hard limit of open files ({hard:,}) of {who}"))
            line += f"; the hard RLIMIT_NOFILE here is {hard:,}: about {fit:,} programs"
        if nr_open:
            line += (f"; root can raise it up to fs.nr_open = {nr_open:,}: about "
                     f"{int((nr_open - base) / per):,}")
        print(line + f" (fs.file-max, for the whole machine: {lim['file_max']:,})")
    if not any_fds:
        print(f"- open files: hard RLIMIT_NOFILE {hard}, fs.nr_open {nr_open} (no fds "
              "measured at two sizes in this run)")
    thr = slopes.get((id(points), "threads_idle"))
    per_task = 1 + (max(thr[0], 0) if thr else 0)
    for key, what in (("pid_max", "kernel.pid_max"), ("threads_max", "kernel.threads-max"),
                      ("nproc", "RLIMIT_NPROC of this user")):
        if lim[key] is None:
            continue
        fit = int((lim[key] - lim["tasks"]) / per_task)
        fits.append((fit, f"{what} ({lim[key]:,})"))
        print(f"- {what} = {lim[key]:,}, {lim['tasks']:,} tasks running now, one process a "
              f"program (a program that forks uses more): about {fit:,} programs")
    cg = cgroup_descendants_limit()
    if cg:
        print(f"- cgroups: gosuv makes one a program (`cgroup: auto`, where it can) under "
              f"{cg[0]}, whose cgroup.max.descendants is {cg[1]}")
    parts = []
    for src, key, what in ((points, "rss", "the server's RSS"),
                           (points, "holder_rss", "the holder's RSS"),
                           (points, "kmem_mib", "the kernel's (process, pipes, cgroup)")):
        sl = slopes.get((id(src), key))
        if sl and sl[0] > 0:
            parts.append((sl[0], what))
    if not any(w.startswith("the kernel") for _, w in parts):
        sl = slopes.get((id(base_points), "kmem_mib"))
        if sl and sl[0] > 0:
            parts.append((sl[0], "the kernel's (process only, from the spawn limit)"))
    pss = [m["pss"] for src in (base_points, points) for _, m in sorted(src.items())
           if m.get("pss")]
    if pss:
        parts.append((pss[-1] / 1048576, "the `sleep`'s own (PSS)"))
    if parts:
        per = sum(v for v, _ in parts)
        fit = int(lim["mem_available"] / 1048576 / per)
        fits.append((fit, f"memory ({lim['mem_available'] >> 20:,} MiB available)"))
        print(f"- memory: {per * 1024:.0f} KiB a program: " + " + ".join(
            f"{v * 1024:.0f} KiB {w}" for v, w in parts)
            + f"; {lim['mem_available'] >> 20:,} MiB available of {lim['mem_total'] >> 20:,}: "
            f"about {fit:,} programs of `sleep`'s size (the kernel's share is read from "
            "/proc/meminfo, which other work on the machine moves too)")
    if fits:
        fit, what = min(fits)
        print(f"\nThe first limit to bite here: {what}, at about {fit:,} programs.")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gosuv", required=True)
    ap.add_argument("--supervisord", help="without it, gosuv runs alone")
    ap.add_argument("--pm2")
    ap.add_argument("--quick", action="store_true", help="short idle windows, fewer kills")
    ap.add_argument("--only", help="comma-separated workloads, e.g. W0,W1 or W7")
    ap.add_argument("--big", type=int, default=5000,
                    help="the programs of W7's big run (5,000); W7 runs 1,000 and this many")
    args = ap.parse_args()
    if args.big < 1:
        ap.error("--big must be at least 1")
    sups = [Gosuv(args.gosuv)]
    if args.supervisord:
        sups.append(Supervisord(args.supervisord))
    if args.pm2:
        sups.append(Pm2(args.pm2))
    g = sups[0]
    idle_s = 5 if args.quick else 20
    kills = 5 if args.quick else 20
    w4_rounds = 3 if args.quick else 5
    w1_rounds = 3 if args.quick else 5
    w7_rounds = 1 if args.quick else 3
    only = set(args.only.split(",")) if args.only else None
    known = {f"W{i}" for i in range(8)}
    if only and only - known:
        ap.error(f"--only: unknown workload {', '.join(sorted(only - known))} "
                 f"(known: {', '.join(sorted(known))})")
    want = lambda w: only is None or w in only  # noqa: E731
    rows = []  # (workload, unit, {label: value}, lower is better, size of its baseline)
    marker = 98760 + (os.getpid() % 1000) * 10
    base = {}  # n -> [(seconds from outside, own clock, bytes of memory a program)]
    points = {}  # n -> {figure: value} of gosuv, for the extrapolation

    def row(name, unit, values, lower_is_better=True, n_base=None):
        rows.append((name, unit, values, lower_is_better, n_base))
        print(f"  {name}: " + ", ".join(f"{k} {v:.3g}" for k, v in values.items()), flush=True)

    def baseline(n, m):
        try:
            b = spawn_limit_round(n, m)
        except (TimeoutError, RuntimeError) as e:
            print(f"  spawn limit, {n}: {e}", file=sys.stderr)
            return
        base.setdefault(n, []).append(b)
        print(f"  spawn limit, {n} sleeps: {b[0]:.3f} s from outside, {b[1]:.3f} s by its own "
              "clock", flush=True)

    for n in (200, 1000):
        if not (want("W1") or want("W2")):
            break
        problem = process_room(n)
        if problem:
            print(f"  W1 at {n} skipped: {problem}", file=sys.stderr)
            continue
        w1s, rss, cpu, fds = {}, {}, {}, {}
        # gosuv's rounds alternate with the spawn limit's; the peers run once.
        rounds = w1_rounds if want("W1") else 1
        gosuv_w1 = []
        for r in range(rounds):
            if want("W1"):
                baseline(n, marker + 1)
            try:
                w, rs, c, f = w1_w2(g, n, marker + 1, idle_s if r == 0 else None)
            except (TimeoutError, RuntimeError) as e:
                print(f"  gosuv: {e}", file=sys.stderr)
                continue
            gosuv_w1.append(w)
            print(f"  gosuv, {n} sleeps: {w:.3f} s", flush=True)
            if r == 0:
                rss["gosuv"], cpu["gosuv"], fds["gosuv"] = rs, c, f
        if gosuv_w1:
            w1s["gosuv"] = median(gosuv_w1)
            points[n] = {"running": w1s["gosuv"], "rss": rss.get("gosuv"),
                         "fds": fds.get("gosuv")}
        for s in sups[1:]:
            if s.label == "pm2" and n > 200 and args.quick:
                continue
            try:
                w1s[s.label], rss[s.label], cpu[s.label], fds[s.label] = w1_w2(
                    s, n, marker + 1, idle_s)
            except (TimeoutError, RuntimeError) as e:
                print(f"  {s.label}: {e}", file=sys.stderr)
        rounds_note = f", gosuv median of {len(gosuv_w1)}" if len(gosuv_w1) > 1 else ""
        row(f"W1 launch until {n} sleeps exist{rounds_note}", "s", w1s, n_base=n)
        row(f"W2 idle RSS, {n} programs", "MiB", rss)
        row(f"W2 idle CPU, {n} programs", "ms/s", cpu)
        row(f"W2 open fds of the daemon, {n} programs", "fds", fds)
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
        free = shutil.disk_usage(tempfile.gettempdir()).free
        if free < 2 * LOG_BYTES:
            print(f"  W4 skipped: it writes {size_label(LOG_BYTES)} a run and needs twice that "
                  f"free in {tempfile.gettempdir()}, which has {free >> 20} MiB free "
                  "(set TMPDIR to a roomier file system)", file=sys.stderr)
        # Rounds alternate direct, gosuv, peers; the medians are reported. 65,500-byte
        # writes are the workload; 4,000-byte ones (C stdio's pipe buffer) are shown too,
        # where the writer itself is the limit. Each log is deleted once measured.
        for block, tag in ((65500, ""), (4000, ", 4 KB writes")):
            if (tag and args.quick) or free < 2 * LOG_BYTES:
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
            row(f"W4 {size_label(LOG_BYTES)} of output captured{tag}", "MiB/s", med,
                lower_is_better=False)
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
    if want("W7"):
        print(f"  W7: gosuv alone (the peers run at 1,000 in W1, W2 and W6; at {args.big:,} "
              "supervisord would take minutes)", flush=True)
        w7_idle = max(10, idle_s)
        for n in sorted({1000, args.big}):
            measured = sorted(k for k, v in points.items() if v.get("fds"))
            per = ((points[measured[-1]]["fds"] - points[measured[0]]["fds"])
                   / (measured[-1] - measured[0])) if len(measured) >= 2 else FDS_PER_PROGRAM
            minfds, why = gosuv_minfds(n, max(per, FDS_PER_PROGRAM))
            why = process_room(n) or why
            if why:
                print(f"  W7 at {n} programs skipped: {why}", file=sys.stderr)
                continue
            got = []
            for r in range(w7_rounds):
                baseline(n, marker + 4)
                try:
                    res = w7_round(g, n, marker + 4, minfds,
                                   idle_s=w7_idle if r == 0 else None,
                                   status_rounds=5 if args.quick else 11,
                                   get_rounds=11 if args.quick else 21)
                except (TimeoutError, RuntimeError, OSError, http.client.HTTPException,
                        subprocess.CalledProcessError) as e:
                    print(f"  W7 at {n}: {e}", file=sys.stderr)
                    break
                got.append(res)
                print(f"  W7 {n}, round {r}: " + ", ".join(
                    f"{k} {v:.4g}" for k, v in res.items()), flush=True)
            if not got:
                continue
            first = got[0]
            k = len(got)
            med = {key: median([x[key] for x in got]) for key in ("running", "shutdown")}
            points[n] = dict(first, **med)
            points[n]["kmem_mib"] = first["kmem"] * n / 1048576
            each = f", median of {k}" if k > 1 else ""
            row(f"W7 launch until {n} sleeps exist{each}", "s", {"gosuv": med["running"]},
                n_base=n)
            row(f"W7 open fds of the server, {n} programs", "fds", {"gosuv": first["fds"]})
            if "holder_fds" in first:
                row(f"W7 open fds of the server's holder process, {n} programs", "fds",
                    {"gosuv": first["holder_fds"]})
            row(f"W7 threads of the server, {n} programs, 3 s after they exist", "",
                {"gosuv": first["threads"]})
            row(f"W7 threads of the server, {n} programs, {w7_idle} s later", "",
                {"gosuv": first["threads_idle"]})
            row("W7 kernel memory a program (stacks, page tables, slab, per-CPU)", "KiB",
                {"gosuv": first["kmem"] / 1024})
            row(f"W7 idle RSS, {n} programs", "MiB", {"gosuv": first["rss"]})
            if "holder_rss" in first:
                row(f"W7 RSS of the server's holder process, {n} programs", "MiB",
                    {"gosuv": first["holder_rss"]})
            row(f"W7 idle CPU, {n} programs ({w7_idle} s)", "ms/s", {"gosuv": first["cpu"]})
            row(f"W7 `gosuv status`, {n} programs (whole command, median)", "ms",
                {"gosuv": first["status"]})
            row(f"W7 GET /api/programs, {n} programs (unix socket, median, "
                f"{first['api_bytes'] >> 10} KiB)", "ms", {"gosuv": first["api"]})
            row(f"W7 GET /metrics, {n} programs (unix socket, median, "
                f"{first['metrics_bytes'] >> 10} KiB)", "ms", {"gosuv": first["metrics"]})
            row(f"W7 `gosuv shutdown` until the server and all {n} sleeps are gone{each}", "s",
                {"gosuv": med["shutdown"]})
    if want("W0"):
        for n in (1000, args.big):
            if n in base:
                continue
            why = process_room(n)
            if why:
                print(f"  W0 at {n} skipped: {why}", file=sys.stderr)
                continue
            for _ in range(w1_rounds if n <= 1000 else w7_rounds):
                baseline(n, marker + 5)
    base_points = {n: {"running": median([b[0] for b in bs]), "own": median([b[1] for b in bs]),
                       "kmem_mib": median([b[2]["kmem"] for b in bs]) * n / 1048576,
                       "pss": median([b[2]["pss"] or 0 for b in bs])}
                   for n, bs in base.items()}
    w0_rows = []
    for n, b in sorted(base_points.items()):
        k = len(base[n])
        w0_rows += [
            (f"W0 spawn limit: until {n} sleeps exist, timed as W1 (median of {k})", "s",
             {LIMIT: b["running"]}, True, None),
            (f"W0 spawn limit: its own clock, {n} spawns (median of {k})", "s",
             {LIMIT: b["own"]}, True, None)]
    rows = w0_rows + rows

    peers = [s.label for s in sups[1:]]
    head = "| " + " | ".join(["workload", "unit", LIMIT, "gosuv", "gosuv/limit"]
                             + [f"{p} | gosuv/{p}" for p in peers]) + " |"
    print()
    print(head)
    print("|" + " --- |" * (5 + 2 * len(peers)))
    for name, unit, values, _, n_base in rows:
        g_v = values.get("gosuv")
        lim_v = values.get(LIMIT)
        if n_base is not None and n_base in base_points:
            lim_v = base_points[n_base]["running"]
        cells = [name, unit, f"{lim_v:.3g}" if lim_v is not None else "",
                 f"{g_v:.3g}" if g_v is not None else ("" if name.startswith("W0") else "n/a"),
                 f"{g_v / lim_v:.2f}" if g_v is not None and lim_v and n_base else ""]
        for p in peers:
            if name.startswith(("W0", "W7")):  # no peer runs these
                cells += ["", ""]
                continue
            v = values.get(p)
            cells.append(f"{v:.3g}" if v is not None else "n/a")
            cells.append(f"{g_v / v:.2f}" if g_v is not None and v else "n/a")
        print("| " + " | ".join(cells) + " |")
    if want("W7") or (want("W1") and len(points) >= 2):
        extrapolate(points, base_points, machine_limits())


if __name__ == "__main__":
    main()
