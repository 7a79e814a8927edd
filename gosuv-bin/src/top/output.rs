//! The output pane's text: the last lines of one stream, made safe to draw. A program's
//! output is not trusted to be text a terminal should interpret: escape sequences (colours,
//! cursor moves, titles) are dropped, other control characters too, a carriage return
//! starts the line over (as a progress bar means it), and a tab becomes spaces.

use std::collections::VecDeque;

use unicode_width::UnicodeWidthChar;

/// Lines kept (older ones are dropped).
pub const MAX_LINES: usize = 2000;

/// Characters in one stored line: a longer line goes on in the next.
const MAX_LINE_CHARS: usize = 4096;

/// The longest escape sequence read as one: past it, what follows is text again.
const MAX_ESCAPE: usize = 4096;

/// Where a half-read escape sequence stands (it may end in the next piece of output).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// In `ESC [ ...`, until its final byte.
    Csi,
    /// In `ESC ( B` and the like (intermediate bytes), until its final byte.
    Intermediate,
    /// In `ESC ] ...` (and DCS, APC, PM, SOS), until BEL or `ESC \`.
    String,
    /// ESC inside a string: `\` ends it.
    StringEsc,
}

/// The last lines of a stream.
#[derive(Debug, Default)]
pub struct Output {
    lines: VecDeque<String>,
    /// The line being written (no newline yet).
    partial: String,
    partial_chars: usize,
    /// A carriage return was read: the next character starts the line over.
    carriage: bool,
    escape: Escape,
    /// Characters of the escape sequence under way.
    escape_len: usize,
}

impl Output {
    /// Forgets every line.
    pub fn clear(&mut self) {
        *self = Output::default();
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.partial.is_empty()
    }

    /// Adds output as the program wrote it.
    pub fn push(&mut self, text: &str) {
        for c in text.chars() {
            // A newline, CAN or SUB ends any escape sequence left unfinished (a program's
            // half-written title must not hide the rest of its output), and so does length.
            if self.escape != Escape::None {
                self.escape_len += 1;
                if matches!(c, '\n' | '\u{18}' | '\u{1a}') || self.escape_len > MAX_ESCAPE {
                    self.escape = Escape::None;
                }
                if c != '\n' && self.escape == Escape::None {
                    continue;
                }
            }
            match self.escape {
                Escape::None => {}
                Escape::Start => {
                    self.escape = match c {
                        '[' => Escape::Csi,
                        ']' | 'P' | '_' | '^' | 'X' => Escape::String,
                        ' '..='/' => Escape::Intermediate,
                        _ => Escape::None,
                    };
                    continue;
                }
                Escape::Csi => {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        self.escape = Escape::None;
                    }
                    continue;
                }
                Escape::Intermediate => {
                    if ('\u{30}'..='\u{7e}').contains(&c) {
                        self.escape = Escape::None;
                    }
                    continue;
                }
                Escape::String => {
                    match c {
                        '\u{7}' => self.escape = Escape::None,
                        '\u{1b}' => self.escape = Escape::StringEsc,
                        _ => {}
                    }
                    continue;
                }
                Escape::StringEsc => {
                    self.escape = if c == '\\' {
                        Escape::None
                    } else {
                        Escape::String
                    };
                    continue;
                }
            }
            match c {
                '\n' => {
                    self.carriage = false;
                    self.end_line();
                }
                '\r' => self.carriage = true,
                '\u{1b}' => {
                    self.escape = Escape::Start;
                    self.escape_len = 0;
                }
                '\t' => {
                    let pad = 8 - self.partial_chars % 8;
                    for _ in 0..pad {
                        self.put(' ');
                    }
                }
                c if c.is_control() => {}
                c => self.put(c),
            }
        }
    }

    fn put(&mut self, c: char) {
        if self.carriage {
            self.carriage = false;
            self.partial.clear();
            self.partial_chars = 0;
        }
        if self.partial_chars >= MAX_LINE_CHARS {
            self.end_line();
        }
        self.partial.push(c);
        self.partial_chars += 1;
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.partial);
        self.partial_chars = 0;
        if self.lines.len() >= MAX_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// Adds a line of gosuv's own (output skipped, stream ended), on a line of its own.
    pub fn note(&mut self, text: &str) {
        if !self.partial.is_empty() {
            self.end_line();
        }
        self.partial = text.to_string();
        self.partial_chars = text.chars().count();
        self.end_line();
    }

    /// The last `height` screen rows of the text cut at `width` columns (long lines take
    /// several rows), oldest first. Only the lines that show are looked at.
    pub fn rows(&self, width: usize, height: usize) -> Vec<String> {
        if width == 0 || height == 0 {
            return Vec::new();
        }
        let partial = (!self.partial.is_empty()).then_some(&self.partial);
        let mut rows: Vec<String> = Vec::with_capacity(height);
        for line in partial.into_iter().chain(self.lines.iter().rev()) {
            let pieces = wrap(line, width);
            for piece in pieces.into_iter().rev() {
                rows.push(piece);
                if rows.len() == height {
                    rows.reverse();
                    return rows;
                }
            }
        }
        rows.reverse();
        rows
    }
}

/// `line` cut into pieces of at most `width` columns (an empty line is one empty piece).
fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let mut used = 0;
    for c in line.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width && used > 0 {
            pieces.push(String::new());
            used = 0;
        }
        if let Some(p) = pieces.last_mut() {
            p.push(c);
        }
        used += w;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(o: &Output) -> Vec<String> {
        o.rows(1000, 1000)
    }

    #[test]
    fn an_unfinished_escape_sequence_ends_at_the_line() {
        let mut o = Output::default();
        // A title never ended, a CSI never ended, a lone ESC before a newline.
        o.push("before\n\u{1b}]0;title\nafter-osc\n\u{1b}[12\nafter-csi\n\u{1b}\nafter-esc\n");
        assert_eq!(
            all(&o),
            vec!["before", "", "after-osc", "", "after-csi", "", "after-esc"]
        );
        // A string without end or newline stops being one after 4 KiB.
        let mut o = Output::default();
        o.push(&format!("\u{1b}]{}visible\n", "x".repeat(MAX_ESCAPE)));
        assert_eq!(all(&o), vec!["visible"]);
    }

    #[test]
    fn escape_sequences_and_control_characters_are_dropped() {
        let mut o = Output::default();
        o.push("\u{1b}[1;31mred\u{1b}[0m plain\u{7}\u{1b}]0;title\u{7}\u{1b}(B!\n");
        // A sequence split across two pieces of output.
        o.push("a\u{1b}[3");
        o.push("8;5;1mb\u{1b}]8;;http://x\u{1b}\\c\n");
        assert_eq!(all(&o), ["red plain!", "abc"]);
    }

    #[test]
    fn carriage_return_starts_the_line_over_but_crlf_ends_it() {
        let mut o = Output::default();
        o.push("10%\r50%\r100%\nwindows\r\nnext\r");
        o.push("\n");
        assert_eq!(all(&o), ["100%", "windows", "next"]);
    }

    #[test]
    fn the_last_rows_wrap_long_lines_and_show_the_partial_one() {
        let mut o = Output::default();
        o.push("one\ntwo\nabcdefghij\nhalf");
        assert_eq!(o.rows(4, 3), ["efgh", "ij", "half"]);
        assert_eq!(o.rows(80, 10), ["one", "two", "abcdefghij", "half"]);
        assert!(o.rows(0, 5).is_empty());
        assert!(o.rows(5, 0).is_empty());
        // Wide characters take two columns.
        let mut o = Output::default();
        o.push("日本語\n");
        assert_eq!(o.rows(4, 5), ["日本", "語"]);
        // A character wider than the pane still shows.
        assert_eq!(o.rows(1, 5), ["日", "本", "語"]);
    }

    #[test]
    fn tabs_become_spaces_and_lines_are_bounded() {
        let mut o = Output::default();
        o.push("a\tb\n");
        assert_eq!(all(&o), ["a       b"]);
        let mut o = Output::default();
        for i in 0..MAX_LINES + 10 {
            o.push(&format!("{i}\n"));
        }
        assert_eq!(o.rows(10, 1), [format!("{}", MAX_LINES + 9)]);
        assert_eq!(o.lines.len(), MAX_LINES);
        let mut o = Output::default();
        o.push(&"x".repeat(MAX_LINE_CHARS * 2 + 1));
        assert_eq!(o.lines.len(), 2);
        o.note("[skipped]");
        assert_eq!(o.rows(10, 1), ["[skipped]"]);
        o.clear();
        assert!(o.is_empty());
    }
}
