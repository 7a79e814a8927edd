//! The programs file as the API changes it: edited in place, atomically (a temporary file
//! beside it, fsync, rename), so a crash leaves the old file or the new one.
//!
//! A change rewrites only the block of the program it changes (an added one is appended, a
//! removed one's block deleted): comments, blank lines and key order of every other program
//! stay as the user wrote them. And a change is refused while the file on disk differs
//! from what gosuv last loaded or wrote: saving the live set then would silently drop a
//! hand edit that was not reloaded.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gosuv::ProgramConfig;
use saphyr_parser::{Event, Parser};

const HEADER: &str =
    "# gosuv programs: a YAML list, one program per item (its keys: see docs/config.md).\n\
# Changes made through gosuv's API or web page edit the changed program's block in place.\n";

/// What the file held when gosuv last loaded or wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    /// These bytes (`None`: there was no file).
    Text(Option<Vec<u8>>),
    /// Not known: the file changed while it was being loaded.
    Unknown,
}

/// The programs file of a server: what it last held, and how to change it.
#[derive(Debug)]
pub struct ProgramsFile {
    path: PathBuf,
    base_dir: PathBuf,
    known: Mutex<Known>,
}

/// Why a change cannot be saved.
pub fn changed_by_hand(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    format!("{name} was changed by hand since it was loaded: run 'gosuv reload' first")
}

impl ProgramsFile {
    /// The file at `path`, whose relative paths resolve against `base_dir`; nothing is
    /// known of it until [`ProgramsFile::loaded`].
    pub fn new(path: PathBuf, base_dir: PathBuf) -> Arc<Self> {
        Arc::new(ProgramsFile {
            path,
            base_dir,
            known: Mutex::new(Known::Unknown),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(&self.path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `programs` were just loaded from the file: the file's text counts as
    /// known if it still says exactly that (a hand edit made since the load is not).
    pub fn loaded(&self, programs: &[ProgramConfig]) {
        let mut known = self.known();
        let now = match self.read() {
            Ok(b) => b,
            Err(_) => {
                *known = Known::Unknown;
                return;
            }
        };
        let same = match &now {
            None => programs.is_empty(),
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|t| {
                    gosuv::config::parse_programs(t, Some(&self.path), &self.base_dir).ok()
                })
                .is_some_and(|parsed| same_set(&parsed, programs)),
        };
        *known = if same {
            Known::Text(now)
        } else {
            Known::Unknown
        };
    }

    /// Checks that the file holds what gosuv last loaded or wrote.
    ///
    /// # Errors
    /// It was changed by hand (or cannot be read): what to do.
    pub fn check_unchanged(&self) -> Result<(), String> {
        // Locked before the read: a save in flight has written and recorded its text.
        let known = self.known();
        let now = self
            .read()
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        match &*known {
            Known::Text(t) if *t == now => Ok(()),
            _ => Err(changed_by_hand(&self.path)),
        }
    }

    /// Saves `programs` (the whole live set): only the blocks of the programs that changed
    /// are rewritten; nothing is written when nothing changed.
    ///
    /// # Errors
    /// The file was changed by hand since it was last loaded or written, or it cannot be
    /// written.
    pub fn save(&self, programs: &[ProgramConfig]) -> Result<(), String> {
        let mut known = self.known();
        let now = self
            .read()
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let old_text = now
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("");
        let old = gosuv::config::parse_programs(old_text, Some(&self.path), &self.base_dir);
        // Nothing to write: the file already says this (whoever wrote it).
        if old.as_ref().is_ok_and(|old| same_set(old, programs)) {
            return Ok(());
        }
        match &*known {
            Known::Text(t) if *t == now => {}
            _ => return Err(changed_by_hand(&self.path)),
        }
        let old = old.unwrap_or_default();
        let text = edit_in_place(old_text, &old, programs)
            .map_or_else(|| whole_file(programs), Ok)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        let mode = std::fs::metadata(&self.path)
            .map(|m| m.permissions().mode() & 0o775)
            .unwrap_or(0o600);
        gosuv::files::write_atomic(&self.path, text.as_bytes(), mode, true).map_err(|e| {
            format!(
                "{} could not be saved ({e}): it will be lost at the next restart; fix the \
                 file's directory and repeat the change",
                self.path.display()
            )
        })?;
        *known = Known::Text(Some(text.into_bytes()));
        Ok(())
    }
}

/// Whether two lists hold the same programs, whatever their order.
fn same_set(a: &[ProgramConfig], b: &[ProgramConfig]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut a: Vec<&ProgramConfig> = a.iter().collect();
    let mut b: Vec<&ProgramConfig> = b.iter().collect();
    a.sort_by(|x, y| x.name.cmp(&y.name));
    b.sort_by(|x, y| x.name.cmp(&y.name));
    a == b
}

/// The whole file written from the list (a file gosuv cannot edit in place: none yet, or
/// one in flow style).
fn whole_file(programs: &[ProgramConfig]) -> Result<String, serde_yaml::Error> {
    let body = if programs.is_empty() {
        "[]\n".to_string()
    } else {
        yaml_of(programs)?
    };
    Ok(format!("{HEADER}{body}"))
}

/// Programs as YAML that loads back as the same programs: loading replaces `${VAR}` and
/// `$$`, so every `$` of the (resolved) values is written `$$`.
fn yaml_of(programs: &[ProgramConfig]) -> Result<String, serde_yaml::Error> {
    let mut value = serde_yaml::to_value(programs)?;
    gosuv::config::escape_interpolation_in(&mut value);
    serde_yaml::to_string(&value)
}

/// One item of the top-level list: its lines (0-based, `end` exclusive, trailing comments
/// and blank lines left to what follows) and its name.
#[derive(Debug, PartialEq, Eq)]
struct Item {
    start: usize,
    end: usize,
    name: Option<String>,
}

/// The top-level items of a block-style programs file and the column of their dashes;
/// `None` for a document gosuv cannot edit by lines (flow style, a parse error, more than
/// one document).
fn items_of(text: &str) -> Option<(Vec<Item>, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    let mut docs = 0;
    // Starts of the items (line of the item's first event) and their names.
    let mut starts: Vec<(usize, Option<String>)> = Vec::new();
    let mut key_is_name = false;
    let mut expecting_key = false;
    let mut seq_seen = false;
    while let Some(ev) = parser.next_event() {
        let (event, span) = ev.ok()?;
        let line = span.start.line().checked_sub(1)?;
        match event {
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    return None;
                }
            }
            Event::SequenceStart(..) => {
                if depth == 0 {
                    if seq_seen || text_at(&lines, line, span.start.col()) == Some('[') {
                        return None;
                    }
                    seq_seen = true;
                } else if depth == 1 {
                    starts.push((line, None));
                }
                depth += 1;
            }
            Event::MappingStart(..) => {
                if depth == 0 {
                    return None;
                }
                if depth == 1 {
                    if text_at(&lines, line, span.start.col()) == Some('{') {
                        return None;
                    }
                    starts.push((line, None));
                    expecting_key = true;
                }
                depth += 1;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                depth = depth.saturating_sub(1);
                if depth == 2 {
                    expecting_key = true;
                }
            }
            Event::Scalar(value, ..) => {
                if depth == 1 {
                    starts.push((line, None));
                } else if depth == 2 {
                    if expecting_key {
                        key_is_name = value == "name";
                        expecting_key = false;
                    } else {
                        if key_is_name {
                            if let Some(last) = starts.last_mut() {
                                last.1 = Some(value.into_owned());
                            }
                        }
                        key_is_name = false;
                        expecting_key = true;
                    }
                }
            }
            Event::Alias(_) if depth == 2 && !expecting_key => {
                expecting_key = true;
                key_is_name = false;
            }
            _ => {}
        }
    }
    if !seq_seen && !starts.is_empty() {
        return None;
    }
    let content = |l: &str| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    };
    let mut items = Vec::with_capacity(starts.len());
    for (i, (start, name)) in starts.iter().enumerate() {
        // The dash may stand alone on the line above the mapping's first key.
        let mut start = *start;
        if start > 0 && lines.get(start - 1).map(|l| l.trim()) == Some("-") {
            start -= 1;
        }
        let limit = starts.get(i + 1).map_or(lines.len(), |(s, _)| {
            if *s > 0 && lines.get(s - 1).map(|l| l.trim()) == Some("-") {
                s - 1
            } else {
                *s
            }
        });
        let mut end = limit;
        while end > start + 1 && !lines.get(end - 1).is_some_and(|l| content(l)) {
            end -= 1;
        }
        items.push(Item {
            start,
            end,
            name: name.clone(),
        });
    }
    let indent = items
        .first()
        .and_then(|it| lines.get(it.start))
        .map_or(0, |l| l.len() - l.trim_start().len());
    // Every item must start with its dash at that column.
    for it in &items {
        let l = lines.get(it.start)?;
        if l.len() - l.trim_start().len() != indent || !l.trim_start().starts_with('-') {
            return None;
        }
    }
    Some((items, indent))
}

fn text_at(lines: &[&str], line: usize, col: usize) -> Option<char> {
    lines.get(line)?.chars().nth(col)
}

/// One program as a list item at `indent`.
fn block(p: &ProgramConfig, indent: usize) -> Option<String> {
    let yaml = yaml_of(std::slice::from_ref(p)).ok()?;
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(yaml.len() + indent * 8);
    for l in yaml.lines() {
        out.push_str(&pad);
        out.push_str(l);
        out.push('\n');
    }
    Some(out)
}

/// The file's text with `new` in place of `old`, changing only the blocks of the programs
/// that differ; `None` when the file cannot be edited by lines.
fn edit_in_place(text: &str, old: &[ProgramConfig], new: &[ProgramConfig]) -> Option<String> {
    if text.trim().is_empty() {
        return None;
    }
    let (items, indent) = items_of(text)?;
    // The file's entries in order: a `numprocs` entry is its instances.
    let mut entries: Vec<(&str, Vec<&ProgramConfig>)> = Vec::new();
    for p in old {
        let entry = p.instance_of.as_ref().map_or(p.name.as_str(), |(e, _)| e);
        match entries.last_mut() {
            Some((name, list)) if *name == entry && p.instance_of.is_some() => list.push(p),
            _ => entries.push((entry, vec![p])),
        }
    }
    // Each item must be one entry of the parsed list, in the same order.
    if items.len() != entries.len()
        || items
            .iter()
            .zip(&entries)
            .any(|(it, (name, _))| it.name.as_deref() != Some(*name))
    {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let by_name: std::collections::HashMap<&str, &ProgramConfig> =
        new.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    for (it, (_, before)) in items.iter().zip(&entries) {
        for l in &lines[at..it.start] {
            out.push_str(l);
            out.push('\n');
        }
        let now: Vec<Option<&&ProgramConfig>> = before
            .iter()
            .map(|p| by_name.get(p.name.as_str()))
            .collect();
        if now
            .iter()
            .zip(before)
            .all(|(n, b)| n.is_some_and(|n| *n == *b))
        {
            for l in &lines[it.start..it.end] {
                out.push_str(l);
                out.push('\n');
            }
        } else if now.iter().all(Option::is_none) {
            // Removed.
        } else if before.len() == 1 && before[0].instance_of.is_none() {
            out.push_str(&block(now[0]?, indent)?);
        } else {
            // Some instances of a numprocs entry changed: not an entry any more.
            return None;
        }
        at = it.end;
    }
    for l in &lines[at..] {
        out.push_str(l);
        out.push('\n');
    }
    let had: std::collections::HashSet<&str> = old.iter().map(|p| p.name.as_str()).collect();
    for p in new.iter().filter(|p| !had.contains(p.name.as_str())) {
        out.push_str(&block(p, indent)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, dir: &Path) -> Vec<ProgramConfig> {
        gosuv::config::parse_programs(text, None, dir).unwrap()
    }

    #[test]
    fn a_new_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("programs.yml");
        let file = ProgramsFile::new(path.clone(), dir.path().into());
        file.loaded(&[]);
        let mut p = ProgramConfig::shell("web", "echo hi");
        p.environ = vec![("A".into(), "1".into())];
        p.start_seconds = 0;
        file.save(&[p.clone()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(parse(&text, dir.path()), vec![p]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        file.save(&[]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(parse(&text, dir.path()).is_empty());
    }

    const HAND: &str = "\
# my programs
- name: a   # the first
  command: echo a
  # a note inside a
  start_seconds: 0

# b does things
-   name: b
    command: [sleep, '5']

- name: c
  start_auto: false
  command: echo c
# the end
";

    #[test]
    fn items_and_their_lines() {
        let (items, indent) = items_of(HAND).unwrap();
        assert_eq!(indent, 0);
        let got: Vec<(usize, usize, Option<&str>)> = items
            .iter()
            .map(|i| (i.start, i.end, i.name.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![(1, 5, Some("a")), (7, 9, Some("b")), (10, 13, Some("c"))]
        );
        assert!(items_of("[{name: a, command: x}]").is_none());
        assert!(items_of("- {name: a, command: x}").is_none());
    }

    #[test]
    fn a_change_rewrites_only_its_block() {
        let dir = tempfile::tempdir().unwrap();
        let old = parse(HAND, dir.path());
        let mut new = old.clone();
        new[1].start_seconds = 7;
        let mut d = ProgramConfig::shell("d", "echo d");
        d.start_seconds = 0;
        new.push(d);
        new.remove(2);
        let text = edit_in_place(HAND, &old, &new).unwrap();
        assert!(text.starts_with(
            "# my programs\n- name: a   # the first\n  command: echo a\n  # a note inside a\n  start_seconds: 0\n\n# b does things\n- name: b\n"
        ), "{text}");
        assert!(text.contains("# the end\n- name: d\n"), "{text}");
        assert!(!text.contains("echo c"), "{text}");
        let mut back = parse(&text, dir.path());
        back.sort_by(|x, y| x.name.cmp(&y.name));
        new.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(back, new);
    }

    #[test]
    fn dollars_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("programs.yml");
        let file = ProgramsFile::new(path.clone(), dir.path().into());
        file.loaded(&[]);
        let mut p = ProgramConfig::shell("web", "echo $$ ${HOME} $PATH $");
        p.environ = vec![("A".into(), "${NOT_A_VARIABLE}".into())];
        file.save(&[p.clone()]).unwrap();
        let mut q = ProgramConfig::shell("two", "echo ${X:-y}");
        q.start_seconds = 0;
        file.save(&[p.clone(), q.clone()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(parse(&text, dir.path()), vec![p, q]);
    }

    #[test]
    fn a_numprocs_entry_stays_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        let text = "# workers\n- name: w\n  numprocs: 3\n  command: echo {n}\n- name: solo\n  command: echo solo\n";
        let old = parse(text, dir.path());
        assert_eq!(old.len(), 4);
        let mut new = old.clone();
        new[3].start_seconds = 9;
        let out = edit_in_place(text, &old, &new).unwrap();
        assert!(
            out.starts_with(
                "# workers\n- name: w\n  numprocs: 3\n  command: echo {n}\n- name: solo\n"
            ),
            "{out}"
        );
        assert_eq!(parse(&out, dir.path()), new);
        // The entry removed whole: its lines go.
        let out = edit_in_place(text, &old, &new[3..]).unwrap();
        assert!(!out.contains("numprocs"), "{out}");
        assert_eq!(parse(&out, dir.path()), new[3..].to_vec());
    }

    #[test]
    fn an_indented_list_stays_indented() {
        let dir = tempfile::tempdir().unwrap();
        let text = "  - name: a\n    command: echo a\n  - name: b\n    command: echo b\n";
        let old = parse(text, dir.path());
        let mut new = old.clone();
        new[0].start_seconds = 3;
        let out = edit_in_place(text, &old, &new).unwrap();
        assert!(out.starts_with("  - name: a\n"), "{out}");
        assert!(out.ends_with("  - name: b\n    command: echo b\n"), "{out}");
        assert_eq!(parse(&out, dir.path()), new);
    }

    #[test]
    fn a_hand_edit_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("programs.yml");
        std::fs::write(&path, HAND).unwrap();
        let file = ProgramsFile::new(path.clone(), dir.path().into());
        let loaded = parse(HAND, dir.path());
        file.loaded(&loaded);
        file.check_unchanged().unwrap();
        let edited = HAND.replace("echo c", "echo c2");
        std::fs::write(&path, &edited).unwrap();
        let e = file.check_unchanged().unwrap_err();
        assert!(
            e.contains("changed by hand") && e.contains("gosuv reload"),
            "{e}"
        );
        let mut more = loaded.clone();
        more.push(ProgramConfig::shell("z", "echo z"));
        assert!(file.save(&more).unwrap_err().contains("changed by hand"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
        // Loaded again (a reload): changes are saved again.
        let reloaded = parse(&edited, dir.path());
        file.loaded(&reloaded);
        let mut more = reloaded.clone();
        more.push(ProgramConfig::shell("z", "echo z"));
        file.save(&more).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&edited), "{text}");
        // A file that changed while it was loaded is not known.
        file.loaded(&loaded);
        assert!(file.check_unchanged().is_err());
    }
}
