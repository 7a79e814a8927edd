//! The log files the programs write, by path, kept as programs come, change and go: a new
//! or changed program's files are checked against it in O(log n), so adding n programs
//! costs O(n log n), not O(n² log n) as when every add rebuilt the map of every program.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{lexical, log_clash_message, own_log_message, ProgramConfig};
use crate::logs::Stream;

/// A program's log files: the key that sets each (`stdout_logfile`, `stderr_logfile`) and
/// the file, lexically normalised (`x/../a.log` is `a.log`), as the clash checks compare
/// them. A discarded or disabled stream has none.
pub(super) type Files = Vec<(&'static str, PathBuf)>;

/// Where `config`'s streams are really written, under `base_dir` and `log_dir`.
pub(super) fn files_of(config: &ProgramConfig, base_dir: &Path, log_dir: &Path) -> Files {
    [
        ("stdout_logfile", Stream::Stdout),
        ("stderr_logfile", Stream::Stderr),
    ]
    .into_iter()
    .filter_map(|(key, stream)| {
        crate::program::log_path(config, stream, base_dir, log_dir)
            .map(|file| (key, lexical(&file)))
    })
    .collect()
}

/// Who writes a log file: a program (shared with its other entries) and its key.
type Writer = (Arc<str>, &'static str);

/// A program's files as the index keeps them: each path shared with `writers`.
type Kept = Box<[(&'static str, Arc<Path>)]>;

/// A log file's writers: one, normally.
enum Writers {
    One(Writer),
    Many(Vec<Writer>),
}

impl Writers {
    fn as_slice(&self) -> &[Writer] {
        match self {
            Writers::One(w) => std::slice::from_ref(w),
            Writers::Many(v) => v,
        }
    }
}

/// Every program's log files, and the program (and key) writing each. Each program's name
/// and each file's path is held once, shared by both maps: with thousands of programs, the
/// index held five paths and three names a program in allocations of their own.
#[derive(Default)]
pub(super) struct LogIndex {
    /// Normally one writer a file; a list so that the index never loses one even if two
    /// were let in (a program taken over from a previous server is not refused for that).
    writers: HashMap<Arc<Path>, Writers>,
    files: HashMap<Arc<str>, Kept>,
}

impl LogIndex {
    /// Records that program `name` writes `files` (and no longer what it wrote before).
    pub(super) fn set(&mut self, name: &str, files: Files) {
        self.remove(name);
        let name: Arc<str> = Arc::from(name);
        let files: Kept = files
            .into_iter()
            .map(|(key, file)| (key, Arc::from(file)))
            .collect();
        for (key, file) in files.iter() {
            let writer = (name.clone(), *key);
            match self.writers.entry(file.clone()) {
                Entry::Vacant(e) => {
                    e.insert(Writers::One(writer));
                }
                Entry::Occupied(mut e) => {
                    let all = e.get_mut();
                    match all {
                        Writers::One(first) => {
                            let first = first.clone();
                            *all = Writers::Many(vec![first, writer]);
                        }
                        Writers::Many(v) => v.push(writer),
                    }
                }
            }
        }
        self.files.insert(name, files);
    }

    /// Forgets program `name`'s files.
    pub(super) fn remove(&mut self, name: &str) {
        let Some(files) = self.files.remove(name) else {
            return;
        };
        for (_, file) in files.iter() {
            if let Entry::Occupied(mut e) = self.writers.entry(file.clone()) {
                let gone = match e.get_mut() {
                    Writers::One((n, _)) => &**n == name,
                    Writers::Many(v) => {
                        v.retain(|(n, _)| &**n != name);
                        v.is_empty()
                    }
                };
                if gone {
                    e.remove();
                }
            }
        }
    }

    /// Forgets every program.
    pub(super) fn clear(&mut self) {
        self.writers.clear();
        self.files.clear();
    }

    /// The program (and its key) writing `file`, but `name` itself and those `replaced`
    /// says go (or change) at the same time.
    pub(super) fn writer(
        &self,
        file: &Path,
        name: &str,
        replaced: impl Fn(&str) -> bool,
    ) -> Option<(String, &'static str)> {
        self.writers
            .get(file)?
            .as_slice()
            .iter()
            .find(|(n, _)| &**n != name && !replaced(n))
            .map(|(n, key)| (n.to_string(), *key))
    }
}

/// What is wrong with program `name` writing `files`, stream by stream as the check of a
/// whole file does it: a file that is gosuv's own log (`reserved`), else one another
/// program writes (as `writer` says), else its other stream's.
pub(super) fn clashes(
    name: &str,
    files: &Files,
    reserved: &Path,
    writer: impl Fn(&Path) -> Option<(String, &'static str)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (key, file)) in files.iter().enumerate() {
        if file == reserved {
            out.push(own_log_message(key, name, file));
        } else if let Some((other, other_key)) = writer(file) {
            out.push(log_clash_message(key, name, file, other_key, &other));
        } else if let Some((other_key, _)) = files[..i].iter().find(|(_, f)| f == file) {
            out.push(log_clash_message(key, name, file, other_key, name));
        }
    }
    out
}
