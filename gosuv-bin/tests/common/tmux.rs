//! A real terminal for the tests of the interactive front ends (`gosuv shell`, `gosuv top`):
//! a detached tmux session on a private server socket, driven with `send-keys` and read with
//! `capture-pane`. Every wait polls the pane with a deadline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Why the tmux tests cannot run here, or None when they can. Tests print this and return
/// (tmux is installed by test.sh; a machine without it says so instead of passing quietly).
pub fn unavailable() -> Option<String> {
    match Command::new("tmux").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "tmux -V failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!(
            "tmux is not installed ({e}): ./test.sh installs it"
        )),
    }
}

/// One tmux server and session, killed on drop.
pub struct Tmux {
    socket: PathBuf,
    /// The session's name (and its only window's target).
    pub target: String,
}

impl Tmux {
    /// Starts `command` (run by `sh -c`) in a new detached session of `width` x `height`,
    /// with `env` set and `dir` as its directory; the pane stays after the command exits so
    /// its exit status can be read ([`Tmux::exit_status`]).
    pub fn start(dir: &Path, width: u16, height: u16, env: &[(&str, &str)], command: &str) -> Tmux {
        let socket = dir.join(format!("tmux-{}.sock", std::process::id()));
        let t = Tmux {
            socket,
            target: "t".to_string(),
        };
        // The pane's shell environment: a known TERM, no inherited colours setting.
        let mut full = String::new();
        for (k, v) in env {
            full.push_str(&format!("{k}={} ", shell_quote(v)));
        }
        full.push_str(command);
        // remain-on-exit from the start (a config file of its own), so that a command that
        // exits at once still leaves its pane and status.
        let conf = dir.join(format!("tmux-{}.conf", std::process::id()));
        std::fs::write(&conf, "set -g remain-on-exit on\n").expect("write tmux.conf");
        let out = t
            .cmd()
            .arg("-f")
            .arg(&conf)
            .args(["new-session", "-d", "-s", &t.target])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .args(["-c", &dir.to_string_lossy()])
            .args(["env", "TERM=xterm-256color", "sh", "-c", &full])
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    /// Runs a tmux command against this server and returns its stdout.
    pub fn tmux(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `keys` literally (no key names).
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", &self.target, "-l", text]);
    }

    /// Sends tmux key names (`Enter`, `Tab`, `C-c`, `C-d`, `Down`, `Escape`...).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.target];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Types a line and Enter.
    pub fn line(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }

    /// The visible screen, one string per line (trailing spaces trimmed).
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.target])
    }

    /// The screen and the history above it.
    pub fn history(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-S", "-2000", "-t", &self.target])
    }

    /// Waits until `f(screen)` holds; panics with the last screen after `secs`.
    pub fn wait_for(&self, secs: u64, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.history();
            if f(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the terminal shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the screen contains `text`.
    pub fn wait_text(&self, secs: u64, text: &str) -> String {
        self.wait_for(secs, &format!("{text:?}"), |s| s.contains(text))
    }

    /// Whether the pane shows the alternate screen (a full-screen program is drawing).
    pub fn alternate_on(&self) -> bool {
        self.tmux(&[
            "display-message",
            "-p",
            "-t",
            &self.target,
            "#{alternate_on}",
        ])
        .trim()
            == "1"
    }

    /// The pane's command exit status once it has exited (None while it runs); 128 + N
    /// for a command killed by signal N, as a shell says it.
    pub fn exit_status(&self) -> Option<i32> {
        let s = self.tmux(&[
            "display-message",
            "-p",
            "-t",
            &self.target,
            "#{pane_dead} status=#{pane_dead_status} signal=#{pane_dead_signal}",
        ]);
        let mut it = s.split_whitespace();
        if it.next()? != "1" {
            return None;
        }
        let status = it.next()?.strip_prefix("status=")?;
        let signal = it
            .next()
            .and_then(|s| s.strip_prefix("signal="))
            .unwrap_or("");
        match (status.parse::<i32>(), signal.parse::<i32>()) {
            (Ok(code), _) => Some(code),
            (_, Ok(sig)) => Some(128 + sig),
            _ => None,
        }
    }

    /// Waits for the pane's command to exit and returns its status.
    pub fn wait_exit(&self, secs: u64) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let pid = self.pane_pid();
        loop {
            if let Some(code) = self.exit_status() {
                return code;
            }
            // Debian's tmux is built with libutempter, whose own SIGCHLD handler can swallow
            // the one tmux waits for (tmux issues 311 and 4559): the command has exited (a
            // zombie) and tmux never reaps it. A SIGCHLD of our own makes tmux look again.
            if let Some((state, parent)) = proc_state(pid) {
                if state == 'Z' {
                    let _ = Command::new("kill")
                        .args(["-CHLD", &parent.to_string()])
                        .status();
                }
            }
            if Instant::now() > deadline {
                let ps = Command::new("ps")
                    .args([
                        "-o",
                        "pid,ppid,stat,wchan:32,args",
                        "--pid",
                        &pid.to_string(),
                    ])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                panic!(
                    "the command did not exit:\n{ps}\nthe terminal shows:\n{}",
                    self.history()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the pane's command (`sh -c`, which execs the last command when it can).
    pub fn pane_pid(&self) -> i32 {
        self.tmux(&["display-message", "-p", "-t", &self.target, "#{pane_pid}"])
            .trim()
            .parse()
            .expect("pane pid")
    }

    /// Resizes the window.
    pub fn resize(&self, width: u16, height: u16) {
        self.tmux(&[
            "resize-window",
            "-t",
            &self.target,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A process's state letter and parent pid, from /proc.
pub fn proc_state(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok()?;
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let parent = rest.next()?.parse().ok()?;
    Some((state, parent))
}

/// `s` quoted for sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
