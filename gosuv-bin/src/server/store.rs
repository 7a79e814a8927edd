//! The programs file as the API changes it: edited in place, atomically (a temporary file
//! beside it, fsync, rename), so a crash leaves the old file or the new one.
//!
//! A change rewrites only the block of the program it changes (an added one is appended, a
//! removed one's block deleted): comments, blank lines and key order of every other program
//! stay as the user wrote them. And a change is refused while the file on disk differs
//! from what gosuv last loaded or wrote: saving the live set then would silently drop a
//! hand edit that was not reloaded.

use std::borrow::Borrow;
use std::collections::HashMap;
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
    /// Not loaded yet: the programs being added from it are not saved back.
    Loading,
}

#[derive(Debug)]
struct State {
    known: Known,
    /// The programs as of that load or write: a change is what differs from them. The
    /// supervisor's own configs, shared (not a second copy of every program).
    last: Vec<Arc<ProgramConfig>>,
}

/// The programs file of a server: what it last held, and how to change it.
#[derive(Debug)]
pub struct ProgramsFile {
    path: PathBuf,
    base_dir: PathBuf,
    state: Mutex<State>,
}

/// Why a change cannot be saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveError {
    /// The file holds a hand edit not loaded: saving would drop it.
    ChangedByHand(String),
    /// The file cannot be changed in place (or read, or written): why, and what to do.
    Cannot(String),
}

impl std::fmt::Display for SaveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveError::ChangedByHand(m) | SaveError::Cannot(m) => f.write_str(m),
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

impl ProgramsFile {
    /// The file at `path`, whose relative paths resolve against `base_dir`; nothing is
    /// known of it until [`ProgramsFile::loaded`].
    pub fn new(path: PathBuf, base_dir: PathBuf) -> Arc<Self> {
        Arc::new(ProgramsFile {
            path,
            base_dir,
            state: Mutex::new(State {
                known: Known::Loading,
                last: Vec::new(),
            }),
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

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn parse(&self, text: &str) -> Result<Vec<ProgramConfig>, gosuv::config::ConfigErrors> {
        gosuv::config::parse_programs(text, Some(&self.path), &self.base_dir)
    }

    /// Records that `programs` were just loaded from the file and that `live` is the set
    /// now running (the same, unless some could not be added): the file's text counts as
    /// known if it still says exactly `programs` (a hand edit made since the load is not).
    /// It reads and parses the file: call it where blocking is fine.
    pub fn loaded(&self, programs: &[ProgramConfig], live: &[Arc<ProgramConfig>]) {
        let mut state = self.state();
        state.last = live.to_vec();
        let now = match self.read() {
            Ok(b) => b,
            Err(_) => {
                state.known = Known::Unknown;
                return;
            }
        };
        let same = match &now {
            None => programs.is_empty(),
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|t| self.parse(t).ok())
                .is_some_and(|parsed| same_set(&refs(&parsed), &refs(programs))),
        };
        state.known = if same {
            Known::Text(now)
        } else {
            Known::Unknown
        };
    }

    /// Checks that changing the programs to `programs` could be saved now (the file holds
    /// what gosuv last loaded or wrote, and the change can be made in it), writing nothing.
    /// It reads and parses the file: call it where blocking is fine.
    ///
    /// # Errors
    /// Why it could not be saved, and what to do.
    pub fn check<P: Borrow<ProgramConfig>>(&self, programs: &[P]) -> Result<(), SaveError> {
        let state = self.state();
        self.plan(&state, &refs(programs)).map(|_| ())
    }

    /// Saves `programs` (the whole live set): only the blocks of the programs that changed
    /// since the last load or save are rewritten; nothing is written when nothing changed.
    ///
    /// # Errors
    /// The file was changed by hand since it was last loaded or written, cannot be changed
    /// in place, or cannot be written.
    pub fn save<P>(&self, programs: &[P]) -> Result<(), SaveError>
    where
        P: Borrow<ProgramConfig> + Clone + Into<Arc<ProgramConfig>>,
    {
        let mut state = self.state();
        if state.known == Known::Loading {
            return Ok(());
        }
        let shared = || programs.iter().cloned().map(Into::into).collect();
        let Some(text) = self.plan(&state, &refs(programs))? else {
            state.last = shared();
            return Ok(());
        };
        let mode = std::fs::metadata(&self.path)
            .map(|m| m.permissions().mode() & 0o775)
            .unwrap_or(0o600);
        gosuv::files::write_atomic(&self.path, text.as_bytes(), mode, true).map_err(|e| {
            SaveError::Cannot(format!(
                "{} could not be written ({e}): fix the file's directory and repeat the change",
                self.path.display()
            ))
        })?;
        state.known = Known::Text(Some(text.into_bytes()));
        state.last = shared();
        Ok(())
    }

    /// The file's new text for `programs`, `None` when there is nothing to write.
    fn plan(
        &self,
        state: &State,
        programs: &[&ProgramConfig],
    ) -> Result<Option<String>, SaveError> {
        let last = refs(&state.last);
        if same_set(&last, programs) {
            return Ok(None);
        }
        let name = file_name(&self.path);
        let cannot = |why: String| {
            SaveError::Cannot(format!(
                "{name} cannot be changed in place ({why}): make the change in the file and run 'gosuv reload'"
            ))
        };
        // Never written through a link (the rename would replace it with a file of gosuv's
        // that the link's target never sees).
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(cannot(format!(
                "it is a symbolic link, which gosuv does not write through; or set `include:` in \
                 config.yml to {}",
                std::fs::canonicalize(&self.path).map_or_else(
                    |_| "the file it points to".to_string(),
                    |p| p.display().to_string()
                )
            )));
        }
        let now = self
            .read()
            .map_err(|e| cannot(format!("it cannot be read: {e}")))?;
        match &state.known {
            Known::Text(t) if *t == now => {}
            _ => {
                return Err(SaveError::ChangedByHand(format!(
                    "{name} was changed by hand since it was loaded: run 'gosuv reload' first"
                )))
            }
        }
        let text = match now.as_deref().map(std::str::from_utf8) {
            None => "",
            Some(Ok(t)) => t,
            Some(Err(_)) => return Err(cannot("it is not UTF-8 text".into())),
        };
        let old = self
            .parse(text)
            .map_err(|e| cannot(format!("it does not load now: {e}")))?;
        let new_text = if old.is_empty() && items_of(text).is_none_or(|(i, _)| i.is_empty()) {
            // No program in it yet (missing, empty, comments only, `[]`): written whole
            // when it has no line to keep, else appended to.
            if text.lines().all(|l| l.trim().is_empty()) || text.trim() == "[]" {
                whole_file(programs).map_err(|e| cannot(e.to_string()))?
            } else {
                edit_in_place(text, &old, &last, programs).map_err(cannot)?
            }
        } else {
            edit_in_place(text, &old, &last, programs).map_err(cannot)?
        };
        // What was written must load as exactly the change.
        let back = self
            .parse(&new_text)
            .map_err(|e| cannot(format!("the changed file would not load: {e}")))?;
        verify(&back, &last, programs).map_err(cannot)?;
        Ok(Some(new_text))
    }
}

/// Checks that `back` (the changed file, loaded) holds every changed or added program as
/// it is live, and none of the removed ones.
fn verify(
    back: &[ProgramConfig],
    last: &[&ProgramConfig],
    new: &[&ProgramConfig],
) -> Result<(), String> {
    let back_by: HashMap<&str, &ProgramConfig> =
        back.iter().map(|p| (p.name.as_str(), p)).collect();
    let last_by: HashMap<&str, &ProgramConfig> =
        last.iter().map(|p| (p.name.as_str(), *p)).collect();
    let new_by: HashMap<&str, &ProgramConfig> = new.iter().map(|p| (p.name.as_str(), *p)).collect();
    for &p in new {
        if last_by.get(p.name.as_str()) != Some(&p) && back_by.get(p.name.as_str()) != Some(&p) {
            return Err(format!("'{}' would not load back as it is", p.name));
        }
    }
    for p in last {
        if !new_by.contains_key(p.name.as_str()) && back_by.contains_key(p.name.as_str()) {
            return Err(format!("'{}' would still be in it", p.name));
        }
    }
    Ok(())
}

/// The programs of a list, by reference.
fn refs<P: Borrow<ProgramConfig>>(programs: &[P]) -> Vec<&ProgramConfig> {
    programs.iter().map(Borrow::borrow).collect()
}

/// Whether two lists hold the same programs, whatever their order.
fn same_set(a: &[&ProgramConfig], b: &[&ProgramConfig]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(|x, y| x.name.cmp(&y.name));
    b.sort_by(|x, y| x.name.cmp(&y.name));
    a == b
}

/// The whole file written from the list (a file gosuv cannot edit in place: none yet, or
/// one in flow style).
fn whole_file(programs: &[&ProgramConfig]) -> Result<String, serde_yaml::Error> {
    let body = if programs.is_empty() {
        "[]\n".to_string()
    } else {
        yaml_of(programs)?
    };
    Ok(format!("{HEADER}{body}"))
}

/// Programs as YAML that loads back as the same programs: loading replaces `${VAR}` and
/// `$$`, so every `$` of the (resolved) values is written `$$`.
fn yaml_of(programs: &[&ProgramConfig]) -> Result<String, serde_yaml::Error> {
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
    let yaml = yaml_of(&[p]).ok()?;
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(yaml.len() + indent * 8);
    for l in yaml.lines() {
        out.push_str(&pad);
        out.push_str(l);
        out.push('\n');
    }
    Some(out)
}

/// The file's text with the change from `last` to `new` made in place: a changed
/// program's block rewritten, a removed one's deleted, an added one appended; every other
/// line kept as it is. `old` is the file as it loads now (its entries, in order).
///
/// # Errors
/// Why the file cannot be changed by lines.
fn edit_in_place(
    text: &str,
    old: &[ProgramConfig],
    last: &[&ProgramConfig],
    new: &[&ProgramConfig],
) -> Result<String, String> {
    let (items, indent) = items_of(text).ok_or_else(|| {
        "it is not a block-style YAML list gosuv can change by lines (flow style, several \
         documents, a name given by an alias...)"
            .to_string()
    })?;
    // The file's entries in order: a `numprocs` entry is its instances.
    let mut entries: Vec<(&str, Vec<&ProgramConfig>)> = Vec::new();
    for p in old {
        let entry = p.instance_of.as_ref().map_or(p.name.as_str(), |(e, _)| e);
        match entries.last_mut() {
            Some((name, list)) if *name == entry && p.instance_of.is_some() => list.push(p),
            _ => entries.push((entry, vec![p])),
        }
    }
    // Each item must be one entry of the parsed list, in the same order (a name written
    // with `${VAR}` shows its raw text here).
    if items.len() != entries.len()
        || items.iter().zip(&entries).any(|(it, (name, _))| {
            it.name
                .as_deref()
                .is_none_or(|raw| raw != *name && !raw.contains('$'))
        })
    {
        return Err("its items could not be matched with its programs".into());
    }
    let last_by: HashMap<&str, &ProgramConfig> =
        last.iter().map(|p| (p.name.as_str(), *p)).collect();
    let new_by: HashMap<&str, &ProgramConfig> = new.iter().map(|p| (p.name.as_str(), *p)).collect();
    let crlf = text.contains("\r\n");
    let eol = if crlf { "\r\n" } else { "\n" };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len() + 256);
    let push_lines = |out: &mut String, ls: &[&str]| {
        for l in ls {
            out.push_str(l);
            out.push_str(eol);
        }
    };
    let push_block = |out: &mut String, p: &ProgramConfig| -> Result<(), String> {
        let b =
            block(p, indent).ok_or_else(|| format!("'{}' cannot be written as YAML", p.name))?;
        if crlf {
            out.push_str(&b.replace('\n', "\r\n"));
        } else {
            out.push_str(&b);
        }
        Ok(())
    };
    let mut at = 0;
    for (it, (entry, programs)) in items.iter().zip(&entries) {
        push_lines(&mut out, &lines[at..it.start]);
        at = it.end;
        let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
        let changed = |n: &str| match (last_by.get(n), new_by.get(n)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        };
        let removed = |n: &str| last_by.contains_key(n) && !new_by.contains_key(n);
        let is_entry = programs.len() > 1 || programs.iter().any(|p| p.instance_of.is_some());
        if is_entry {
            if names.iter().all(|n| removed(n)) {
                continue;
            }
            if let Some(n) = names.iter().find(|n| changed(n) || removed(n)) {
                return Err(format!(
                    "'{n}' is one of the instances of '{entry}' (numprocs): change the entry"
                ));
            }
            push_lines(&mut out, &lines[it.start..it.end]);
        } else if removed(entry) {
            continue;
        } else if changed(entry) {
            match new_by.get(*entry) {
                Some(p) => push_block(&mut out, p)?,
                None => return Err(format!("'{entry}' is missing")),
            }
        } else {
            push_lines(&mut out, &lines[it.start..it.end]);
        }
    }
    push_lines(&mut out, &lines[at..]);
    if !text.is_empty() && !text.ends_with('\n') && out.ends_with(eol) && at >= lines.len() {
        // The file had no newline at its end: keep it so when nothing is appended.
        out.truncate(out.len() - eol.len());
    }
    let added: Vec<&ProgramConfig> = new
        .iter()
        .copied()
        .filter(|p| !last_by.contains_key(p.name.as_str()))
        .collect();
    if !added.is_empty() && !out.is_empty() && !out.ends_with('\n') {
        out.push_str(eol);
    }
    for p in added {
        push_block(&mut out, p)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(programs: &[ProgramConfig]) -> Vec<Arc<ProgramConfig>> {
        programs.iter().cloned().map(Arc::new).collect()
    }

    fn parse(text: &str, dir: &Path) -> Vec<ProgramConfig> {
        gosuv::config::parse_programs(text, None, dir).unwrap()
    }

    #[test]
    fn a_new_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("programs.yml");
        let file = ProgramsFile::new(path.clone(), dir.path().into());
        file.loaded(&[], &[]);
        let mut p = ProgramConfig::shell("web", "echo hi");
        p.environ = vec![("A".into(), "1".into())];
        p.start_seconds = 0;
        file.save(&[p.clone()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(parse(&text, dir.path()), vec![p]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        file.save::<ProgramConfig>(&[]).unwrap();
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
        let text = edit_in_place(HAND, &old, &refs(&old), &refs(&new)).unwrap();
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
        file.loaded(&[], &[]);
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
        let out = edit_in_place(text, &old, &refs(&old), &refs(&new)).unwrap();
        assert!(
            out.starts_with(
                "# workers\n- name: w\n  numprocs: 3\n  command: echo {n}\n- name: solo\n"
            ),
            "{out}"
        );
        assert_eq!(parse(&out, dir.path()), new);
        // The entry removed whole: its lines go.
        let out = edit_in_place(text, &old, &refs(&old), &refs(&new[3..])).unwrap();
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
        let out = edit_in_place(text, &old, &refs(&old), &refs(&new)).unwrap();
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
        file.loaded(&loaded, &shared(&loaded));
        let mut more = loaded.clone();
        more.push(ProgramConfig::shell("z", "echo z"));
        file.check(&more).unwrap();
        let edited = HAND.replace("echo c", "echo c2");
        std::fs::write(&path, &edited).unwrap();
        let e = file.check(&more).unwrap_err();
        assert!(matches!(e, SaveError::ChangedByHand(_)), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("changed by hand") && e.contains("gosuv reload"),
            "{e}"
        );
        assert!(matches!(file.save(&more), Err(SaveError::ChangedByHand(_))));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
        // Loaded again (a reload): changes are saved again.
        let reloaded = parse(&edited, dir.path());
        file.loaded(&reloaded, &shared(&reloaded));
        let mut more = reloaded.clone();
        more.push(ProgramConfig::shell("z", "echo z"));
        file.save(&more).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&edited), "{text}");
        // A file that changed while it was loaded is not known.
        file.loaded(&loaded, &shared(&loaded));
        assert!(file.check(&reloaded).is_err());
    }

    /// What a change must never do: leave a file that does not load, or drop what the
    /// user wrote. Each of these files is refused (nothing written) or changed exactly.
    #[test]
    fn adversarial_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("programs.yml");
        let run = |text: &str, change: &dyn Fn(&mut Vec<ProgramConfig>)| {
            std::fs::write(&path, text).unwrap();
            let file = ProgramsFile::new(path.clone(), dir.path().into());
            let loaded = parse(text, dir.path());
            file.loaded(&loaded, &shared(&loaded));
            let mut new = loaded.clone();
            change(&mut new);
            let r = file.save(&new);
            let now = std::fs::read_to_string(&path).unwrap();
            match &r {
                Ok(()) => {
                    let mut back = parse(&now, dir.path());
                    back.sort_by(|a, b| a.name.cmp(&b.name));
                    new.sort_by(|a, b| a.name.cmp(&b.name));
                    assert_eq!(back, new, "{now}");
                }
                Err(_) => assert_eq!(now, text, "a refused change wrote"),
            }
            (r, now)
        };
        let add = |v: &mut Vec<ProgramConfig>| v.push(ProgramConfig::shell("zz", "echo z"));
        let change_a = |v: &mut Vec<ProgramConfig>| v[0].start_seconds = 9;
        // An anchor defined in the changed program, used by another: refused.
        let anchors = "- name: a\n  command: x\n  environ: &e {X: \"1\"}\n- name: b\n  command: y\n  environ: *e\n";
        let (r, _) = run(anchors, &change_a);
        assert!(matches!(r, Err(SaveError::Cannot(_))), "{r:?}");
        // A document end marker: an addition after it would be a second document (run()
        // checks it is refused or exact).
        let _ = run("---\n- name: a\n  command: x\n...\n", &add);
        // A name that is an existing numprocs entry's: refused (the file would not load).
        let (r, _) = run(
            "- name: w\n  numprocs: 2\n  command: x\n",
            &|v: &mut Vec<ProgramConfig>| v.push(ProgramConfig::shell("w", "echo w")),
        );
        assert!(matches!(r, Err(SaveError::Cannot(_))), "{r:?}");
        // Flow style with programs: refused, never rewritten whole.
        let (r, _) = run("[{name: a, command: x}]\n", &add);
        assert!(matches!(r, Err(SaveError::Cannot(_))), "{r:?}");
        // CRLF kept, no trailing newline handled, tabs and comments kept.
        let (r, now) = run("# c\r\n- name: a\r\n  command: x\r\n", &add);
        assert!(r.is_ok(), "{r:?}");
        assert!(
            now.starts_with("# c\r\n- name: a\r\n  command: x\r\n- name: zz\r\n"),
            "{now:?}"
        );
        let (r, now) = run("- name: a\n  command: x", &add);
        assert!(r.is_ok(), "{r:?}");
        assert!(
            now.starts_with("- name: a\n  command: x\n- name: zz\n"),
            "{now:?}"
        );
        let (r, now) = run("- name: a\n  command: x", &change_a);
        assert!(r.is_ok(), "{r:?}");
        assert!(now.contains("start_seconds: 9"), "{now:?}");
        // A `${VAR}` elsewhere stays as written.
        std::env::set_var("GOSUV_STORE_T", "sleep 5");
        let (r, now) = run(
            "- name: a\n  command: x\n- name: b\n  command: ${GOSUV_STORE_T}\n",
            &change_a,
        );
        assert!(r.is_ok(), "{r:?}");
        assert!(now.contains("command: ${GOSUV_STORE_T}\n"), "{now}");
        // A link: refused, the link and its target left as they are.
        let real = dir.path().join("real.yml");
        std::fs::write(&real, "- name: a\n  command: x\n").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let file = ProgramsFile::new(path.clone(), dir.path().into());
        let loaded = parse("- name: a\n  command: x\n", dir.path());
        file.loaded(&loaded, &shared(&loaded));
        let mut more = loaded.clone();
        add(&mut more);
        let e = file.save(&more).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(&real).unwrap(),
            "- name: a\n  command: x\n"
        );
        std::fs::remove_file(&path).unwrap();
        // A comment-only file: appended to.
        let (r, now) = run("# nothing yet\n", &add);
        assert!(r.is_ok(), "{r:?}");
        assert!(now.starts_with("# nothing yet\n- name: zz\n"), "{now:?}");
    }
}
