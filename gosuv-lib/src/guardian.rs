//! The guardian: a tiny watchdog process that kills every supervised process group when the
//! host process dies, however it dies (`os._exit`, SIGKILL, a crash).
//!
//! It is `/bin/sh` running a short script in a session of its own, reading a pipe whose only
//! write end is held (close-on-exec) by this process. gosuv writes `+PGID` when a program's
//! group starts and `-PGID` when it is gone. When this process dies the kernel closes the
//! write end, the guardian reads end-of-file, sends SIGTERM to every group still listed, and
//! SIGKILL a second later. `PR_SET_PDEATHSIG` is not used for this: it follows the *thread*
//! that forked, and it would reach only the leader, not its group.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};

use nix::fcntl::OFlag;

use crate::reaper::reaper;

const SCRIPT: &str = r#"trap '' INT HUP TERM QUIT PIPE
groups=" "
while IFS= read -r line; do
  case "$line" in
    +*) groups="$groups${line#+} " ;;
    -*) pg=${line#-}
        case "$groups" in *" $pg "*) groups="${groups%% $pg *} ${groups#* $pg }" ;; esac ;;
  esac
done
[ -n "${groups# }" ] || exit 0
for g in $groups; do kill -s TERM -- "-$g" 2>/dev/null; done
sleep 1
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
"#;

static GUARDIAN: OnceLock<Mutex<Option<File>>> = OnceLock::new();

fn start() -> Option<File> {
    let (read, write): (OwnedFd, OwnedFd) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot start the guardian: pipe: {e}");
            return None;
        }
    };
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("gosuv-guardian")
        .stdin(Stdio::from(read))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; it keeps terminal signals meant for the host
    // (Ctrl-C) away from the guardian.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            Ok(())
        });
    }
    // Registered with the reaper so that its exit is collected; nobody needs the status.
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    match reaper().spawn_registered(tx, || cmd.spawn().map(|c| (c.id(), ()))) {
        Ok((pid, ())) => {
            tracing::debug!(pid, "guardian started");
            Some(File::from(write))
        }
        Err(e) => {
            tracing::error!("cannot start the guardian /bin/sh: {e}");
            None
        }
    }
}

fn send(line: &str) {
    let slot = GUARDIAN.get_or_init(|| Mutex::new(start()));
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = guard.as_mut() {
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::error!(
                "the guardian is gone ({e}): programs will outlive this process if it dies"
            );
            *guard = None;
        }
    }
}

/// Asks the guardian to kill group `pgid` if this process dies.
pub(crate) fn watch(pgid: u32) {
    send(&format!("+{pgid}\n"));
}

/// The group `pgid` is gone: forget it.
pub(crate) fn unwatch(pgid: u32) {
    send(&format!("-{pgid}\n"));
}
