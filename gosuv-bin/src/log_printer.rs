//! How `gosuv logs` prints the output of many programs: each line prefixed `name | `, the
//! names padded to one width, in colour only where that is wanted.

/// How `logs` writes lines: `name | ` padded to the widest name, in colour on a terminal.
pub struct LogPrinter {
    width: usize,
    colour: bool,
    /// Each program's colour, by first sight.
    colours: std::collections::HashMap<String, &'static str>,
    /// What came after the last newline of each stream, until its line ends.
    partial: std::collections::HashMap<(String, String), String>,
}

/// The longest unended line kept; a program that writes without newlines gets its output
/// printed in lines this long rather than held for ever.
pub const MAX_PARTIAL: usize = 64 * 1024;

/// One colour a program (none is red: red marks standard error).
const PALETTE: [&str; 6] = ["36", "32", "33", "35", "34", "96"];

impl LogPrinter {
    /// A printer for names up to `width` wide; colours when `colour`.
    pub fn new(width: usize, colour: bool) -> Self {
        LogPrinter {
            width,
            colour,
            colours: std::collections::HashMap::new(),
            partial: std::collections::HashMap::new(),
        }
    }

    /// Whether `logs` colours its output: stdout is a terminal and `NO_COLOR` is unset or
    /// empty.
    pub fn wants_colour() -> bool {
        use std::io::IsTerminal;
        std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }

    /// The complete lines of `text` (what came before it in the same stream first), each
    /// with its prefix; a line not yet ended waits for the rest, up to [`MAX_PARTIAL`] bytes,
    /// and is printed as a line when it reaches that. Only `text` is searched for `\n`, so
    /// a long unended line costs nothing more per piece.
    pub fn lines(&mut self, name: &str, stream: &str, text: &str) -> String {
        let key = (name.to_string(), stream.to_string());
        let mut out = String::new();
        let mut rest = text;
        while let Some(end) = rest.find('\n') {
            let mut line = self.partial.remove(&key).unwrap_or_default();
            line.push_str(&rest[..end]);
            self.line(&mut out, name, stream, &line);
            rest = &rest[end + 1..];
        }
        while !rest.is_empty() {
            let mut buf = self.partial.remove(&key).unwrap_or_default();
            let mut cut = rest.len().min(MAX_PARTIAL - buf.len());
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            buf.push_str(&rest[..cut]);
            rest = &rest[cut..];
            // Full (or the next character does not fit): out as a line of its own.
            if rest.is_empty() && buf.len() < MAX_PARTIAL {
                self.partial.insert(key, buf);
                break;
            }
            self.line(&mut out, name, stream, &buf);
        }
        out
    }

    /// Forgets the unended line of one stream: after skipped output, its rest belongs to a
    /// line that was never seen.
    pub fn missed(&mut self, name: &str, stream: &str) {
        self.partial.remove(&(name.to_string(), stream.to_string()));
    }

    /// What is left of unended lines, each as a line.
    pub fn rest(&mut self) -> String {
        let mut out = String::new();
        let mut left: Vec<((String, String), String)> = self.partial.drain().collect();
        left.sort();
        for ((name, stream), text) in left {
            self.line(&mut out, &name, &stream, &text);
        }
        out
    }

    fn line(&mut self, out: &mut String, name: &str, stream: &str, text: &str) {
        let pad = self.width.saturating_sub(name.chars().count());
        if !self.colour {
            out.push_str(&format!("{name}{} | {text}\n", " ".repeat(pad)));
            return;
        }
        let n = self.colours.len();
        let c = *self
            .colours
            .entry(name.to_string())
            .or_insert(PALETTE[n % PALETTE.len()]);
        let text = if stream == "stderr" {
            format!("\x1b[31m{text}\x1b[0m")
        } else {
            text.to_string()
        };
        out.push_str(&format!(
            "\x1b[{c}m{name}{}\x1b[0m | {text}\n",
            " ".repeat(pad)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_prefixed_and_pieces_joined() {
        let mut p = LogPrinter::new(5, false);
        assert_eq!(p.lines("a", "stdout", "one\ntw"), "a     | one\n");
        // Another stream's piece does not join a's unended line.
        assert_eq!(p.lines("web", "stderr", "x\n"), "web   | x\n");
        assert_eq!(
            p.lines("a", "stdout", "o\n\nthree"),
            "a     | two\na     | \n"
        );
        assert_eq!(p.rest(), "a     | three\n");
        assert_eq!(p.rest(), "");
        // A name longer than the width (added later) is not cut.
        assert_eq!(p.lines("longer-name", "stdout", "z\n"), "longer-name | z\n");
    }

    #[test]
    fn an_unended_line_is_capped_and_a_miss_drops_it() {
        let mut p = LogPrinter::new(1, false);
        let chunk = "x".repeat(1000);
        let mut out = String::new();
        for _ in 0..200 {
            out.push_str(&p.lines("a", "stdout", &chunk));
        }
        // 200,000 bytes without a newline: three full lines of MAX_PARTIAL, the rest waits.
        assert_eq!(out.lines().count(), 3, "{}", out.len());
        assert!(out.lines().all(|l| l.len() == "a | ".len() + MAX_PARTIAL));
        assert_eq!(
            p.lines("a", "stdout", "\n").len(),
            "a | ".len() + 200_000 - 3 * MAX_PARTIAL + 1
        );
        // A character is never split to fit.
        let mut p = LogPrinter::new(1, false);
        let _ = p.lines("a", "stdout", &"x".repeat(MAX_PARTIAL - 1));
        let out = p.lines("a", "stdout", "é");
        assert_eq!(out, format!("a | {}\n", "x".repeat(MAX_PARTIAL - 1)));
        assert_eq!(p.lines("a", "stdout", "\n"), "a | é\n");
        // Skipped output: the unended line before it is dropped.
        let _ = p.lines("a", "stdout", "before");
        p.missed("a", "stdout");
        assert_eq!(p.lines("a", "stdout", "after\n"), "a | after\n");
        assert_eq!(p.rest(), "");
    }

    #[test]
    fn colours_name_each_program_and_mark_stderr() {
        let mut p = LogPrinter::new(2, true);
        assert_eq!(p.lines("a", "stdout", "x\n"), "\x1b[36ma \x1b[0m | x\n");
        assert_eq!(
            p.lines("bb", "stderr", "e\n"),
            "\x1b[32mbb\x1b[0m | \x1b[31me\x1b[0m\n"
        );
        assert_eq!(p.lines("a", "stdout", "y\n"), "\x1b[36ma \x1b[0m | y\n");
    }
}
