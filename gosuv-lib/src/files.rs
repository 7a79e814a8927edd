//! Files and directories gosuv makes, often as root in directories other users may write to:
//! never opened through a symbolic link (`O_NOFOLLOW`: a link planted at a log's or a
//! pidfile's path would make gosuv append to, or truncate, whatever it points to), always
//! close-on-exec (no program inherits one), directories made `0750` whatever the umask, and
//! state written atomically (a temporary file made exclusively, then renamed).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of every directory gosuv makes (the umask can only take more away).
pub const DIR_MODE: u32 = 0o750;

/// Makes `dir` and its missing parents, each `0750`.
///
/// # Errors
/// A directory cannot be made.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// A warning when `dir` exists and other users may write to it (group or world writable):
/// they could plant files or links where gosuv writes.
pub fn loose_dir_warning(dir: &Path) -> Option<String> {
    let m = std::fs::metadata(dir).ok()?;
    let mode = m.permissions().mode();
    (m.is_dir() && mode & 0o022 != 0).then(|| {
        format!(
            "{} is writable by {} (mode {:o}): other users could plant files or links there; \
             make it 0750 (chmod 750 {})",
            dir.display(),
            if mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            },
            mode & 0o7777,
            dir.display()
        )
    })
}

/// Options that open or create a file without following a symbolic link, close-on-exec,
/// and without waiting (a FIFO planted at the path would hold the open for ever): use
/// [`checked`] on what they open.
pub fn options(mode: u32) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    o
}

/// What [`options`] opened, if it is a regular file (or a character device, such as
/// /dev/null, which only root can make): blocking again. A FIFO, a socket or a directory is
/// refused.
///
/// # Errors
/// It is not such a file, or its flags cannot be read or set.
pub fn checked(f: File) -> io::Result<File> {
    use std::os::unix::fs::FileTypeExt;
    let t = f.metadata()?.file_type();
    if !(t.is_file() || t.is_char_device()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (gosuv writes to no FIFO, socket or directory)",
        ));
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// Opens `path` for appending (made with `mode` when missing), never through a link, and
/// only if it is a regular file.
///
/// # Errors
/// It cannot be opened; a symbolic link at `path` fails with "too many levels of symbolic
/// links" (ELOOP), which [`describe`] words for a user.
pub fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    checked(options(mode).create(true).append(true).open(path)?)
}

/// Reads `path` if it is state this user wrote: a regular file (not a link) owned by this
/// user, with one name, that no one else may write. Checked on the open file, so it cannot
/// be swapped between the check and the read.
///
/// # Errors
/// It cannot be read, or is not such a file (the message says why).
pub fn read_trusted(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = options(0)
        .read(true)
        .open(path)
        .map_err(|e| describe(path, &e))?;
    let m = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: geteuid has no arguments and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !m.file_type().is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if m.uid() != me {
        return Err(format!(
            "{} is owned by uid {}, not by this server's uid {me}",
            path.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 || m.nlink() != 1 {
        return Err(format!(
            "{} is writable by other users, or has other names (mode {:o}, {} links)",
            path.display(),
            m.mode() & 0o7777,
            m.nlink()
        ));
    }
    let mut f = checked(f).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}

/// An open error, worded for a user where it is a link gosuv refused to follow.
pub fn describe(path: &Path, e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::ELOOP) {
        format!(
            "{} is a symbolic link, which gosuv does not follow (it could point anywhere): \
             remove it",
            path.display()
        )
    } else {
        format!("{}: {e}", path.display())
    }
}

/// The temporary file [`write_atomic`] uses for `path` in this process.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gosuv".into());
    let mut r = [0u8; 8];
    // SAFETY: getrandom fills the buffer we own; on failure the time and a counter stand in.
    let got = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) };
    let tag = if got == 8 {
        u64::from_ne_bytes(r)
    } else {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ N
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .rotate_left(32)
    };
    // Nobody can make this name in advance (one made by someone else would stop the save).
    path.with_file_name(format!(".{name}.tmp-{}{tag:016x}", std::process::id()))
}

/// Replaces `path` with `body` atomically: a new temporary file beside it (made
/// exclusively, so nothing planted at its name is followed), written (and with `sync`,
/// synced to disk with its directory), then renamed over `path` (a link at `path` is
/// replaced, not followed). Without `sync` a crash of the process still leaves the old
/// file or the new one; a power cut may leave neither.
///
/// # Errors
/// The temporary file cannot be made, written or renamed; it is removed then.
pub fn write_atomic(path: &Path, body: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    let tmp = temp_path(path);
    let r = (|| {
        let mut f = checked(options(mode).write(true).create_new(true).open(&tmp)?)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(body)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| sync && !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Removes the temporary files that saves of `path` interrupted by a kill left beside it
/// (`.<name>.tmp-<pid>`, regular files owned by this user); returns how many. Call it where
/// no other process saves `path` (the server, holding its pidfile).
pub fn remove_stale_temps(path: &Path) -> usize {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return 0;
    };
    let prefix = format!(".{name}.tmp-");
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    // SAFETY: geteuid has no arguments and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut removed = 0;
    for e in entries.flatten() {
        let n = e.file_name();
        let Some(rest) = n.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let ours = std::fs::symlink_metadata(e.path())
            .is_ok_and(|m| (m.is_file() || m.file_type().is_symlink()) && m.uid() == me);
        if ours && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_never_followed_and_dirs_are_0750() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").expect("target");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("link");
        let e = open_append(&link, 0o640).expect_err("a link is refused");
        assert!(describe(&link, &e).contains("symbolic link"), "{e}");
        write_atomic(&link, b"new", 0o600, true).expect("replaces the link");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep");
        assert_eq!(std::fs::read_to_string(&link).expect("read"), "new");
        assert!(!std::fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink());
        // SAFETY: umask only swaps this process's mask (restored below).
        let old = unsafe { libc::umask(0) };
        let made = create_dir_all(&dir.path().join("a/b"));
        unsafe { libc::umask(old) };
        made.expect("dirs");
        for d in ["a", "a/b"] {
            let mode = std::fs::metadata(dir.path().join(d)).expect("meta").mode() & 0o777;
            assert_eq!(mode, 0o750, "{d}");
        }
    }

    #[test]
    fn stale_temps_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("programs.yml");
        for n in [
            ".programs.yml.tmp-123",
            ".programs.yml.tmp-",
            ".programs.yml.tmp-1x",
            "x",
        ] {
            std::fs::write(dir.path().join(n), "").expect("write");
        }
        assert_eq!(remove_stale_temps(&path), 1);
        assert!(!dir.path().join(".programs.yml.tmp-123").exists());
        assert!(dir.path().join(".programs.yml.tmp-1x").exists());
    }
}
