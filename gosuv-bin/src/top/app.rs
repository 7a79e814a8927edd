//! What `gosuv top` shows, as plain data: the programs (in the server's order), each one's
//! CPU over the last minute, the filter, the selection, the mode the keys are in, and the
//! output pane. No I/O here: the loop in [`super`] feeds it what the server says and the
//! keys pressed, and [`super::ui`] draws it.

use std::collections::HashMap;
use std::ops::Range;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use gosuv::Stream;
use serde::Deserialize;

use super::output::Output;
use crate::commands::StatusRow;

/// Seconds of CPU samples kept for a program's sparkline (one sample a stats tick).
pub const HISTORY: usize = 60;

/// The blocks of a sparkline, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline's scale never goes under this many % of a core: a program that idles (under
/// 1 %) stays a low bar instead of filling the cell with its noise.
pub const SPARK_FLOOR: f32 = 10.0;

/// A program's CPU use over the last [`HISTORY`] samples, oldest first. A sample is `NaN`
/// while the program has no process.
#[derive(Clone, Debug)]
pub struct CpuHistory {
    samples: [f32; HISTORY],
    /// Where the next sample goes.
    next: usize,
    len: usize,
}

impl Default for CpuHistory {
    fn default() -> Self {
        CpuHistory {
            samples: [f32::NAN; HISTORY],
            next: 0,
            len: 0,
        }
    }
}

impl CpuHistory {
    /// Adds a sample: % of one core, or `None` when the program has no process.
    pub fn push(&mut self, cpu: Option<f64>) {
        // Any number the server sends becomes a finite, non-negative sample.
        let v = match cpu {
            Some(c) if c.is_finite() => c.clamp(0.0, 1e9) as f32,
            Some(c) if c == f64::INFINITY => 1e9,
            Some(_) => 0.0,
            None => f32::NAN,
        };
        self.samples[self.next] = v;
        self.next = (self.next + 1) % HISTORY;
        self.len = (self.len + 1).min(HISTORY);
    }

    /// How many samples it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The samples, oldest first (`None`: no process then).
    pub fn samples(&self) -> impl Iterator<Item = Option<f32>> + '_ {
        let start = (self.next + HISTORY - self.len) % HISTORY;
        (0..self.len).map(move |i| {
            let v = self.samples[(start + i) % HISTORY];
            (!v.is_nan()).then_some(v)
        })
    }

    /// The sparkline of the last minute in at most `width` cells, the newest at the right
    /// end: each cell is the highest of the seconds it covers, scaled to the window's peak
    /// (at least [`SPARK_FLOOR`] %); a blank where the program had no process, and blanks on
    /// the left for the seconds not seen yet. With fewer than [`HISTORY`] cells, each cell
    /// covers several seconds.
    pub fn sparkline(&self, width: usize) -> String {
        if width == 0 {
            return String::new();
        }
        let per = HISTORY.div_ceil(width);
        let cells = HISTORY.div_ceil(per);
        let samples: Vec<Option<f32>> = self.samples().collect();
        let peak = samples
            .iter()
            .flatten()
            .fold(SPARK_FLOOR, |a, &b| if b > a { b } else { a });
        let mut out = vec![' '; cells];
        // Buckets of `per` seconds counted back from the newest sample.
        for (i, chunk) in samples.rchunks(per).enumerate() {
            if i >= cells {
                break;
            }
            let top = chunk.iter().flatten().fold(None, |a: Option<f32>, &b| {
                Some(a.map_or(b, |a| if b > a { b } else { a }))
            });
            if let Some(v) = top {
                let level = ((v / peak) * (BARS.len() - 1) as f32).round();
                let level = if level.is_finite() {
                    (level.max(0.0) as usize).min(BARS.len() - 1)
                } else {
                    0
                };
                out[cells - 1 - i] = BARS[level];
            }
        }
        out.into_iter().collect()
    }
}

/// One program as `top` knows it: what the last list said, updated by the events since.
#[derive(Debug)]
pub struct Program {
    /// Its fields as the list sends them.
    pub row: StatusRow,
    /// Its CPU over the last minute.
    pub history: CpuHistory,
    /// The number of the last event applied to it (0: none): a list asked for before that
    /// event does not undo it.
    event_seq: u64,
}

/// A state change as `GET /api/events` sends it (the fields `top` reads).
#[derive(Debug, Deserialize)]
pub struct StateEvent {
    /// The program.
    pub program: String,
    /// The state it entered.
    pub to: String,
    /// Its process, when it has one.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The exit code, on a change caused by an exit.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that ended it, on a change caused by one.
    #[serde(default)]
    pub exit_signal: Option<i32>,
}

/// The other stream of a program's output (what `l` switches to).
fn other_stream(stream: Stream) -> Stream {
    match stream {
        Stream::Stdout => Stream::Stderr,
        Stream::Stderr => Stream::Stdout,
    }
}

/// What the keys do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Select and act.
    Normal,
    /// Typing the filter.
    Filter,
    /// Asking whether to stop this program.
    ConfirmStop(String),
    /// The help is shown.
    Help,
}

/// An action on a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `POST .../start`.
    Start,
    /// `POST .../stop`.
    Stop,
    /// `POST .../restart`.
    Restart,
}

impl Action {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }

    /// What the status line says while it runs.
    fn doing(self) -> &'static str {
        match self {
            Action::Start => "starting",
            Action::Stop => "stopping",
            Action::Restart => "restarting",
        }
    }
}

/// What a key asks of the loop, besides what it changed here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing more.
    None,
    /// Leave `top`.
    Quit,
    /// Send an action to the server.
    Act(String, Action),
    /// Draw the whole screen again (Ctrl-L: something else wrote on it).
    Redraw,
}

/// Whether the server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Not asked yet.
    Connecting,
    /// The last request was answered.
    Live,
    /// The server did not answer (why); `top` keeps trying.
    Down(String),
}

/// The status line's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// What it says.
    pub text: String,
    /// Whether it reports a failure.
    pub error: bool,
}

/// Where the output pane's stream stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Follow {
    /// No program selected.
    Idle,
    /// Output comes as the program writes it.
    Live,
    /// The stream ended (why); it is opened again.
    Broken(String),
}

/// Everything `top` shows.
#[derive(Debug)]
pub struct App {
    /// The server's URL (the header shows it).
    pub server: String,
    programs: Vec<Program>,
    by_name: HashMap<String, usize>,
    /// Indices into `programs` of those the filter shows, in order.
    view: Vec<usize>,
    /// The selected row: an index into `view`.
    selected: usize,
    /// The first row of `view` on screen.
    offset: usize,
    /// The name to keep selected when the list changes.
    selected_name: Option<String>,
    filter: String,
    /// The width of the longest name (for the NAME column).
    name_width: usize,
    /// How many programs are in each state.
    counts: Vec<(String, usize)>,
    /// How many table rows the last frame had room for (PgUp/PgDn move by that).
    page: usize,
    /// What the keys do now.
    pub mode: Mode,
    /// The stream the pane follows.
    pub stream: Stream,
    /// The output pane: the lines of `output_of`.
    pub output: Output,
    /// Which program and stream the pane's lines are from.
    pub output_of: Option<(String, Stream)>,
    /// Where the pane's stream stands.
    pub follow: Follow,
    /// The status line's message.
    pub notice: Option<Notice>,
    /// Whether the server answers.
    pub link: Link,
    /// Something changed since the last frame.
    pub dirty: bool,
}

/// The NAME column's width at most (names are up to 64 characters).
const MAX_NAME_WIDTH: usize = 32;

impl App {
    /// An empty view of the server at `server`.
    pub fn new(server: &str) -> Self {
        App {
            server: server.to_string(),
            programs: Vec::new(),
            by_name: HashMap::new(),
            view: Vec::new(),
            selected: 0,
            offset: 0,
            selected_name: None,
            filter: String::new(),
            name_width: 4,
            counts: Vec::new(),
            page: 10,
            mode: Mode::Normal,
            stream: Stream::Stdout,
            output: Output::default(),
            output_of: None,
            follow: Follow::Idle,
            notice: None,
            link: Link::Connecting,
            dirty: true,
        }
    }

    /// Every program, in the server's order.
    pub fn programs(&self) -> &[Program] {
        &self.programs
    }

    /// How many programs the filter shows.
    pub fn shown(&self) -> usize {
        self.view.len()
    }

    /// The filter's text (empty: none).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The NAME column's width.
    pub fn name_width(&self) -> usize {
        self.name_width
    }

    /// The selected program, if any is shown.
    pub fn selected(&self) -> Option<&Program> {
        self.view
            .get(self.selected)
            .and_then(|&i| self.programs.get(i))
    }

    /// The position of the selected row among the shown ones.
    pub fn selected_row(&self) -> usize {
        self.selected
    }

    /// What the output pane should follow now: the selected program's chosen stream.
    pub fn log_target(&self) -> Option<(String, Stream)> {
        self.selected().map(|p| (p.row.name.clone(), self.stream))
    }

    /// Takes a new program list (asked for when the event counter was at `seq`): programs
    /// come and go as the server says, each one's CPU history gets a sample, and a state an
    /// event set after the list was asked for is kept.
    pub fn apply_programs(&mut self, rows: Vec<StatusRow>, seq: u64) {
        let mut old: HashMap<String, Program> = std::mem::take(&mut self.programs)
            .into_iter()
            .map(|p| (p.row.name.clone(), p))
            .collect();
        let mut programs = Vec::with_capacity(rows.len());
        let mut by_name = HashMap::with_capacity(rows.len());
        for mut row in rows {
            if by_name.contains_key(&row.name) {
                continue;
            }
            let (mut history, event_seq) = match old.remove(&row.name) {
                Some(before) => {
                    if before.event_seq > seq {
                        row.state = before.row.state;
                        row.pid = before.row.pid;
                        if row.pid.is_none() {
                            row.cpu_percent = None;
                            row.rss_bytes = None;
                            row.uptime_secs = None;
                        }
                    }
                    (before.history, before.event_seq)
                }
                None => (CpuHistory::default(), 0),
            };
            history.push(row.cpu_percent.filter(|_| row.pid.is_some()));
            by_name.insert(row.name.clone(), programs.len());
            programs.push(Program {
                row,
                history,
                event_seq,
            });
        }
        self.programs = programs;
        self.by_name = by_name;
        self.counts.clear();
        for i in 0..self.programs.len() {
            let state = self.programs[i].row.state.clone();
            self.count_state(&state, true);
        }
        self.name_width = self
            .programs
            .iter()
            .map(|p| p.row.name.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(4, MAX_NAME_WIDTH);
        self.link = Link::Live;
        self.refilter();
        self.dirty = true;
    }

    /// Applies a state change (event number `seq`); a program not listed yet waits for the
    /// next list.
    pub fn apply_event(&mut self, ev: StateEvent, seq: u64) {
        let Some(&i) = self.by_name.get(&ev.program) else {
            return;
        };
        let Some(p) = self.programs.get_mut(i) else {
            return;
        };
        let row = &mut p.row;
        // As the web page does: a process is shown while the program has one.
        let has_process = matches!(ev.to.as_str(), "starting" | "running" | "stopping");
        if ev.to == "starting" && row.state != "starting" {
            row.uptime_secs = Some(0.0);
        }
        row.pid = if has_process { ev.pid } else { None };
        if row.pid.is_none() {
            row.cpu_percent = None;
            row.rss_bytes = None;
            row.uptime_secs = None;
        }
        if ev.exit_code.is_some() || ev.exit_signal.is_some() {
            row.exit_code = ev.exit_code;
            row.exit_signal = ev.exit_signal;
        }
        let before = std::mem::replace(&mut row.state, ev.to);
        let after = row.state.clone();
        p.event_seq = seq;
        self.count_state(&before, false);
        self.count_state(&after, true);
        self.dirty = true;
    }

    /// Notes that a stats tick brought no list (`why`): each program's CPU history gets a
    /// gap for that second, and the last list stays shown.
    pub fn list_missed(&mut self, why: String) {
        for p in &mut self.programs {
            p.history.push(None);
        }
        self.link_down(why);
        self.dirty = true;
    }

    /// Notes that the server did not answer (`why`); the last list stays shown.
    pub fn link_down(&mut self, why: String) {
        if self.link != Link::Down(why.clone()) {
            self.link = Link::Down(why);
            self.dirty = true;
        }
    }

    /// Sets the status line.
    pub fn say(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            error,
        });
        self.dirty = true;
    }

    /// Rebuilds the shown rows after the list or the filter changed, keeping the selected
    /// program selected when it is still shown.
    fn refilter(&mut self) {
        let needle = self.filter.to_lowercase();
        self.view = self
            .programs
            .iter()
            .enumerate()
            .filter(|(_, p)| needle.is_empty() || p.row.name.to_lowercase().contains(&needle))
            .map(|(i, _)| i)
            .collect();
        let keep = self.selected_name.as_ref().and_then(|n| {
            self.view
                .iter()
                .position(|&i| self.programs.get(i).is_some_and(|p| &p.row.name == n))
        });
        self.selected =
            keep.unwrap_or_else(|| self.selected.min(self.view.len().saturating_sub(1)));
        self.remember_selection();
    }

    fn remember_selection(&mut self) {
        self.selected_name = self.selected().map(|p| p.row.name.clone());
    }

    /// Moves the selection by `delta` rows, within the shown ones.
    pub fn move_by(&mut self, delta: isize) {
        if self.view.is_empty() {
            return;
        }
        let last = self.view.len() - 1;
        self.selected = self.selected.saturating_add_signed(delta).min(last);
        self.remember_selection();
        self.dirty = true;
    }

    /// Selects the first (`false`) or the last (`true`) shown row.
    pub fn move_to_end(&mut self, last: bool) {
        self.selected = if last {
            self.view.len().saturating_sub(1)
        } else {
            0
        };
        self.remember_selection();
        self.dirty = true;
    }

    /// The rows of the view that fit in `rows` lines, scrolled so the selected one is in
    /// them; remembered as the page size.
    pub fn visible(&mut self, rows: usize) -> Range<usize> {
        self.page = rows.max(1);
        let len = self.view.len();
        if rows == 0 || len == 0 {
            self.offset = 0;
            return 0..0;
        }
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset.saturating_add(rows) {
            self.offset = self.selected + 1 - rows;
        }
        // No blank rows at the end while rows above are hidden (after a resize, a filter).
        self.offset = self.offset.min(len.saturating_sub(rows));
        self.offset..self.offset.saturating_add(rows).min(len)
    }

    /// The program shown at row `at` of the view.
    pub fn shown_at(&self, at: usize) -> Option<&Program> {
        self.view.get(at).and_then(|&i| self.programs.get(i))
    }

    /// Handles a key press; returns what the loop must do besides.
    pub fn key(&mut self, key: KeyEvent) -> Effect {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
            return Effect::Quit;
        }
        self.dirty = true;
        if ctrl && matches!(key.code, KeyCode::Char('l') | KeyCode::Char('L')) {
            return Effect::Redraw;
        }
        // Ctrl-R is not `r`: only a key without Ctrl, Alt or Super acts (Shift is a
        // letter's case).
        let plain = !key.modifiers.intersects(
            KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SUPER | KeyModifiers::META,
        );
        match self.mode.clone() {
            Mode::Help => {
                self.mode = Mode::Normal;
                Effect::None
            }
            Mode::ConfirmStop(name) => {
                self.mode = Mode::Normal;
                if plain && matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    self.say(format!("stopping {name}…"), false);
                    Effect::Act(name, Action::Stop)
                } else {
                    self.say(format!("{name}: not stopped"), false);
                    Effect::None
                }
            }
            Mode::Filter => {
                match key.code {
                    KeyCode::Enter => self.mode = Mode::Normal,
                    KeyCode::Esc => {
                        self.mode = Mode::Normal;
                        self.set_filter(String::new());
                    }
                    KeyCode::Backspace => {
                        let mut f = self.filter.clone();
                        f.pop();
                        self.set_filter(f);
                    }
                    KeyCode::Char(c) if !ctrl && !c.is_control() => {
                        if self.filter.chars().count() < 64 {
                            let mut f = self.filter.clone();
                            f.push(c);
                            self.set_filter(f);
                        }
                    }
                    _ => self.navigate(key.code),
                }
                Effect::None
            }
            Mode::Normal if plain => self.normal_key(key.code),
            Mode::Normal => Effect::None,
        }
    }

    fn normal_key(&mut self, code: KeyCode) -> Effect {
        match code {
            KeyCode::Char('q') | KeyCode::Esc => return Effect::Quit,
            KeyCode::Char('?') | KeyCode::F(1) => self.mode = Mode::Help,
            KeyCode::Char('/') => self.mode = Mode::Filter,
            KeyCode::Char('l') => {
                self.stream = other_stream(self.stream);
            }
            KeyCode::Char('s') => return self.act(Action::Start),
            KeyCode::Char('r') => return self.act(Action::Restart),
            KeyCode::Char('x') => match self.selected() {
                Some(p) => self.mode = Mode::ConfirmStop(p.row.name.clone()),
                None => self.say("no program selected", true),
            },
            other => self.navigate(other),
        }
        Effect::None
    }

    fn navigate(&mut self, code: KeyCode) {
        let page = self.page as isize;
        match code {
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::PageUp => self.move_by(-page),
            KeyCode::PageDown => self.move_by(page),
            KeyCode::Home | KeyCode::Char('g') => self.move_to_end(false),
            KeyCode::End | KeyCode::Char('G') => self.move_to_end(true),
            _ => {}
        }
    }

    fn act(&mut self, action: Action) -> Effect {
        match self.selected() {
            Some(p) => {
                let name = p.row.name.clone();
                self.say(format!("{} {name}…", action.doing()), false);
                Effect::Act(name, action)
            }
            None => {
                self.say("no program selected", true);
                Effect::None
            }
        }
    }

    /// Sets the filter: names that contain `text`, ignoring case.
    pub fn set_filter(&mut self, text: String) {
        self.filter = text;
        self.refilter();
        self.dirty = true;
    }

    /// How many programs are in each state, in the order the states first appeared (kept up
    /// to date as lists and events come, so a frame does not count them).
    pub fn state_counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str(), *n))
    }

    fn count_state(&mut self, state: &str, up: bool) {
        match self.counts.iter_mut().find(|(s, _)| s == state) {
            Some((_, n)) if up => *n += 1,
            Some((_, n)) => *n = n.saturating_sub(1),
            None if up => self.counts.push((state.to_string(), 1)),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: &str, pid: Option<u32>, cpu: Option<f64>) -> StatusRow {
        serde_json::from_value(serde_json::json!({
            "name": name, "state": state, "pid": pid, "cpu_percent": cpu,
        }))
        .unwrap()
    }

    fn app(names: &[&str]) -> App {
        let mut a = App::new("unix:///x");
        a.apply_programs(
            names
                .iter()
                .map(|n| row(n, "running", Some(1), Some(0.0)))
                .collect(),
            0,
        );
        a
    }

    fn press(a: &mut App, code: KeyCode) -> Effect {
        a.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn typed(a: &mut App, text: &str) {
        for c in text.chars() {
            press(a, KeyCode::Char(c));
        }
    }

    fn shown(a: &App) -> Vec<String> {
        (0..a.shown())
            .filter_map(|i| a.shown_at(i).map(|p| p.row.name.clone()))
            .collect()
    }

    #[test]
    fn the_filter_keeps_matching_names_and_esc_clears_it() {
        let mut a = app(&["web-1", "Web-2", "db", "cache"]);
        press(&mut a, KeyCode::Char('/'));
        typed(&mut a, "web");
        assert_eq!(shown(&a), ["web-1", "Web-2"]);
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.mode, Mode::Normal);
        assert_eq!(a.filter(), "web");
        // Kept after Enter, and through a new list.
        a.apply_programs(vec![row("web-3", "stopped", None, None)], 0);
        assert_eq!(shown(&a), ["web-3"]);
        press(&mut a, KeyCode::Char('/'));
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.filter(), "");
        assert_eq!(shown(&a), ["web-3"]);
        // Esc outside the filter quits.
        assert_eq!(press(&mut a, KeyCode::Esc), Effect::Quit);
    }

    #[test]
    fn selection_stays_in_bounds_on_an_empty_list() {
        let mut a = App::new("unix:///x");
        for code in [
            KeyCode::Up,
            KeyCode::Down,
            KeyCode::PageDown,
            KeyCode::PageUp,
            KeyCode::End,
            KeyCode::Home,
        ] {
            press(&mut a, code);
        }
        assert!(a.selected().is_none());
        assert_eq!(a.visible(10), 0..0);
        assert_eq!(a.visible(0), 0..0);
        assert_eq!(press(&mut a, KeyCode::Char('s')), Effect::None);
        press(&mut a, KeyCode::Char('x'));
        assert_eq!(a.mode, Mode::Normal);
        assert!(a.notice.as_ref().is_some_and(|n| n.error));
        assert_eq!(a.log_target(), None);
        // A filter that matches nothing is an empty list too.
        let mut a = app(&["a", "b"]);
        a.set_filter("zzz".into());
        press(&mut a, KeyCode::Down);
        assert!(a.selected().is_none());
    }

    #[test]
    fn selection_moves_within_bounds_and_scrolls() {
        let names: Vec<String> = (0..100).map(|i| format!("p{i:03}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut a = app(&refs);
        assert_eq!(a.visible(10), 0..10);
        press(&mut a, KeyCode::Up);
        assert_eq!(a.selected_row(), 0);
        press(&mut a, KeyCode::PageDown);
        assert_eq!(a.selected_row(), 10);
        assert_eq!(a.visible(10), 1..11);
        press(&mut a, KeyCode::End);
        assert_eq!(a.selected_row(), 99);
        assert_eq!(a.visible(10), 90..100);
        press(&mut a, KeyCode::Down);
        assert_eq!(a.selected_row(), 99);
        press(&mut a, KeyCode::PageUp);
        assert_eq!(a.selected_row(), 89);
        press(&mut a, KeyCode::Home);
        assert_eq!(a.visible(10), 0..10);
        // A bigger window shows no blank rows under the last.
        press(&mut a, KeyCode::End);
        a.visible(10);
        assert_eq!(a.visible(40), 60..100);
    }

    #[test]
    fn selection_follows_the_program_when_the_list_changes() {
        let mut a = app(&["a", "b", "c"]);
        press(&mut a, KeyCode::Down);
        press(&mut a, KeyCode::Down);
        assert_eq!(a.log_target(), Some(("c".to_string(), Stream::Stdout)));
        a.apply_programs(
            vec![
                row("new", "stopped", None, None),
                row("a", "running", Some(1), None),
                row("c", "running", Some(1), None),
            ],
            0,
        );
        assert_eq!(a.selected().map(|p| p.row.name.as_str()), Some("c"));
        press(&mut a, KeyCode::Char('l'));
        assert_eq!(a.log_target(), Some(("c".to_string(), Stream::Stderr)));
        // The selected program removed: the row at its place.
        a.apply_programs(vec![row("a", "running", Some(1), None)], 0);
        assert_eq!(a.selected().map(|p| p.row.name.as_str()), Some("a"));
    }

    #[test]
    fn stop_asks_first_and_only_y_confirms() {
        let mut a = app(&["web"]);
        assert_eq!(press(&mut a, KeyCode::Char('x')), Effect::None);
        assert_eq!(a.mode, Mode::ConfirmStop("web".into()));
        assert_eq!(press(&mut a, KeyCode::Char('n')), Effect::None);
        assert_eq!(a.mode, Mode::Normal);
        press(&mut a, KeyCode::Char('x'));
        assert_eq!(press(&mut a, KeyCode::Enter), Effect::None);
        press(&mut a, KeyCode::Char('x'));
        assert_eq!(
            press(&mut a, KeyCode::Char('y')),
            Effect::Act("web".into(), Action::Stop)
        );
        assert_eq!(
            press(&mut a, KeyCode::Char('r')),
            Effect::Act("web".into(), Action::Restart)
        );
        assert_eq!(
            a.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Effect::Quit
        );
    }

    #[test]
    fn keys_with_ctrl_or_alt_do_not_act() {
        let mut a = app(&["web"]);
        let with =
            |a: &mut App, c: char, m: KeyModifiers| a.key(KeyEvent::new(KeyCode::Char(c), m));
        assert_eq!(with(&mut a, 'r', KeyModifiers::CONTROL), Effect::None);
        assert_eq!(with(&mut a, 's', KeyModifiers::ALT), Effect::None);
        assert_eq!(with(&mut a, 'x', KeyModifiers::CONTROL), Effect::None);
        assert_eq!(a.mode, Mode::Normal);
        assert_eq!(with(&mut a, 'l', KeyModifiers::CONTROL), Effect::Redraw);
        assert_eq!(
            a.stream,
            Stream::Stdout,
            "Ctrl-L redraws, it does not switch streams"
        );
        // A stop is confirmed by a plain y only.
        press(&mut a, KeyCode::Char('x'));
        assert_eq!(with(&mut a, 'y', KeyModifiers::ALT), Effect::None);
        assert_eq!(a.mode, Mode::Normal);
    }

    #[test]
    fn an_event_newer_than_the_list_wins() {
        let mut a = app(&["web"]);
        a.apply_event(
            StateEvent {
                program: "web".into(),
                to: "stopped".into(),
                pid: None,
                exit_code: None,
                exit_signal: None,
            },
            5,
        );
        assert_eq!(a.programs()[0].row.state, "stopped");
        assert_eq!(a.state_counts().collect::<Vec<_>>(), [("stopped", 1)]);
        // A list asked for before event 5 still says running: the event stays.
        a.apply_programs(vec![row("web", "running", Some(9), Some(3.0))], 4);
        assert_eq!(a.programs()[0].row.state, "stopped");
        assert_eq!(a.programs()[0].row.pid, None);
        // One asked for after it is believed.
        a.apply_programs(
            vec![
                row("web", "starting", Some(9), Some(3.0)),
                row("db", "running", Some(8), None),
                row("cache", "running", Some(7), None),
            ],
            5,
        );
        assert_eq!(a.programs()[0].row.state, "starting");
        assert_eq!(
            a.state_counts().collect::<Vec<_>>(),
            [("starting", 1), ("running", 2)]
        );
        // An event for a program not listed yet changes nothing.
        a.apply_event(
            StateEvent {
                program: "other".into(),
                to: "running".into(),
                pid: Some(3),
                exit_code: None,
                exit_signal: None,
            },
            6,
        );
        assert_eq!(a.programs().len(), 3);
    }

    #[test]
    fn sparkline_scales_to_the_peak_and_marks_gaps() {
        let mut h = CpuHistory::default();
        assert_eq!(h.sparkline(60), " ".repeat(60));
        assert_eq!(h.sparkline(0), "");
        for v in [0.0, 50.0, 100.0] {
            h.push(Some(v));
        }
        h.push(None);
        let s = h.sparkline(60);
        assert_eq!(s.chars().count(), 60);
        assert!(s.ends_with("▁▅█ "), "{s:?}");
        // Idle noise stays low: the scale is at least SPARK_FLOOR.
        let mut idle = CpuHistory::default();
        idle.push(Some(0.6));
        idle.push(Some(f64::from(SPARK_FLOOR) / 2.0));
        assert!(
            idle.sparkline(60).ends_with("▁▅"),
            "{:?}",
            idle.sparkline(60)
        );
        // Fewer cells than seconds: each cell is the highest of its seconds.
        let mut h = CpuHistory::default();
        for i in 0..HISTORY {
            h.push(Some(if i == HISTORY - 2 { 80.0 } else { 0.0 }));
        }
        let s = h.sparkline(20);
        assert_eq!(s.chars().count(), 20);
        assert!(s.ends_with('█'), "{s:?}");
        assert_eq!(s.matches('█').count(), 1);
        // It keeps the last minute only.
        for _ in 0..HISTORY {
            h.push(Some(0.0));
        }
        assert_eq!(h.len(), HISTORY);
        assert!(!h.sparkline(7).contains('█'));
    }

    #[test]
    fn extreme_numbers_neither_panic_nor_overflow() {
        let mut h = CpuHistory::default();
        for v in [
            Some(f64::MAX),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            Some(-5.0),
            Some(1e300),
            Some(f64::MIN_POSITIVE),
            None,
        ] {
            h.push(v);
        }
        for w in [1, 2, 7, 59, 60, 61, usize::MAX / 2] {
            let s = h.sparkline(w.min(1000));
            assert!(s.chars().count() <= HISTORY);
        }
        let mut a = App::new("unix:///x");
        let huge: StatusRow = serde_json::from_value(serde_json::json!({
            "name": "x".repeat(64), "state": "running", "pid": u32::MAX,
            "uptime_secs": 1e300, "restarts": u64::MAX, "cpu_percent": 1e300,
            "rss_bytes": u64::MAX, "exit_code": i32::MIN,
        }))
        .unwrap();
        a.apply_programs(vec![huge], u64::MAX);
        assert_eq!(a.name_width(), MAX_NAME_WIDTH);
        a.move_by(isize::MIN);
        a.move_by(isize::MAX);
        assert_eq!(a.selected_row(), 0);
        assert_eq!(a.visible(usize::MAX), 0..1);
    }
}
