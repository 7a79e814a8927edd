//! Where each key of a YAML document stands, so that every config error can name its line.
//!
//! serde_yaml keeps no positions once a document is a `Value`, so this walks the same text
//! with an event parser and remembers the line of every mapping key and sequence item.
//!
//! Only a file with an error or a warning needs a line: the walk is done when the first
//! line is asked for, not for every file read. It is not small: an entry for every key,
//! and, for a document in flow style (`[{...}, ...]`, JSON), the parser's scanner queues
//! every token of the document before the first event (13.6 MB for 5,000 programs), freed
//! again at once but leaving the heap of a server that reads its programs fragmented.

use std::cell::OnceCell;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// One step of a path into a YAML document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Lines (1-based) of keys and sequence items of a text, by their path, found when first
/// asked for.
#[derive(Debug)]
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    lines: OnceCell<Lines>,
}

impl<'t> LineIndex<'t> {
    /// The index of `text` (nothing is parsed yet).
    pub(crate) fn new(text: &'t str) -> Self {
        LineIndex {
            text,
            lines: OnceCell::new(),
        }
    }

    /// The line of the key or item at `path`, or of the nearest enclosing one.
    pub(crate) fn line(&self, path: &[Seg]) -> Option<usize> {
        self.lines
            .get_or_init(|| Lines::build(self.text))
            .line(path)
    }
}

/// The lines of one text.
#[derive(Debug, Default)]
struct Lines {
    lines: HashMap<Vec<Seg>, usize>,
}

enum Frame {
    Seq {
        next: usize,
    },
    Map {
        expecting_key: bool,
        key: Option<Seg>,
    },
}

impl Lines {
    /// Builds the index; a text the parser rejects gives an empty index (serde_yaml reports
    /// the syntax error itself, with its position).
    fn build(text: &str) -> Self {
        let mut index = Lines::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut path: Vec<Seg> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(Ok((event, span))) = parser.next_event() {
            let line = span.start.line();
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map {
                        expecting_key: true,
                        key,
                    }) = stack.last_mut()
                    {
                        let seg = Seg::Key(value.into_owned());
                        path.push(seg.clone());
                        index.lines.entry(path.clone()).or_insert(line);
                        path.pop();
                        *key = Some(seg);
                        if let Some(Frame::Map { expecting_key, .. }) = stack.last_mut() {
                            *expecting_key = false;
                        }
                    } else {
                        index.enter_value(&mut stack, &mut path, line);
                        index.leave_value(&mut stack, &mut path);
                    }
                }
                Event::Alias(_) => {
                    index.enter_value(&mut stack, &mut path, line);
                    index.leave_value(&mut stack, &mut path);
                }
                Event::SequenceStart(..) => {
                    index.enter_value(&mut stack, &mut path, line);
                    stack.push(Frame::Seq { next: 0 });
                }
                Event::MappingStart(..) => {
                    index.enter_value(&mut stack, &mut path, line);
                    stack.push(Frame::Map {
                        expecting_key: true,
                        key: None,
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    stack.pop();
                    index.leave_value(&mut stack, &mut path);
                }
                _ => {}
            }
        }
        index
    }

    /// A value begins: push its segment on the path (a mapping key used as a complex
    /// key is not tracked).
    fn enter_value(&mut self, stack: &mut [Frame], path: &mut Vec<Seg>, line: usize) {
        match stack.last_mut() {
            Some(Frame::Seq { next }) => {
                path.push(Seg::Index(*next));
                self.lines.entry(path.clone()).or_insert(line);
                *next += 1;
            }
            Some(Frame::Map {
                expecting_key: false,
                key: Some(key),
            }) => path.push(key.clone()),
            Some(Frame::Map { .. }) => path.push(Seg::Key(String::new())),
            // The document's root value has no segment.
            None => {}
        }
    }

    /// A value ended: pop its segment and, in a mapping, expect the next key.
    fn leave_value(&mut self, stack: &mut [Frame], path: &mut Vec<Seg>) {
        if let Some(frame) = stack.last_mut() {
            path.pop();
            if let Frame::Map { expecting_key, .. } = frame {
                *expecting_key = !*expecting_key;
            }
        }
    }

    fn line(&self, path: &[Seg]) -> Option<usize> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.lines.get(&path[..n]).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_items() {
        let text =
            "- name: a\n  command: x\n\n- name: b\n  command: [sleep, '1']\n  environ:\n    K: V\n";
        let idx = LineIndex::new(text);
        let k = |s: &str| Seg::Key(s.into());
        assert_eq!(idx.line(&[Seg::Index(0)]), Some(1));
        assert_eq!(idx.line(&[Seg::Index(0), k("command")]), Some(2));
        assert_eq!(idx.line(&[Seg::Index(1), k("name")]), Some(4));
        assert_eq!(idx.line(&[Seg::Index(1), k("command")]), Some(5));
        assert_eq!(idx.line(&[Seg::Index(1), k("environ"), k("K")]), Some(7));
        // an unknown path falls back to its nearest known parent
        assert_eq!(idx.line(&[Seg::Index(1), k("nope")]), Some(4));
    }

    #[test]
    fn nothing_is_parsed_until_a_line_is_asked_for() {
        // A flow document (JSON) makes the parser queue every token before the first event.
        let text = format!(
            "[{}]",
            (0..100)
                .map(|i| format!("{{\"name\": \"p{i}\", \"command\": [\"sleep\", \"1\"]}}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let idx = LineIndex::new(&text);
        assert!(
            idx.lines.get().is_none(),
            "built before any line was asked for"
        );
        assert_eq!(
            idx.line(&[Seg::Index(99), Seg::Key("name".into())]),
            Some(1)
        );
        assert!(idx.lines.get().is_some());
    }

    #[test]
    fn nested_mappings() {
        let text =
            "server:\n  unixserver:\n    enabled: true\n  pidfile: x\nclient:\n  server_url: u\n";
        let idx = LineIndex::new(text);
        let k = |s: &str| Seg::Key(s.into());
        assert_eq!(
            idx.line(&[k("server"), k("unixserver"), k("enabled")]),
            Some(3)
        );
        assert_eq!(idx.line(&[k("server"), k("pidfile")]), Some(4));
        assert_eq!(idx.line(&[k("client"), k("server_url")]), Some(6));
    }
}
