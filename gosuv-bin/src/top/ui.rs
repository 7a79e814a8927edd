//! Draws an [`App`]: a header line, the table of programs (only the rows that fit are
//! built, so a frame costs the same with 10 programs or 10,000), the selected program's
//! output, and a status line; the help over it all on `?`.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::app::{App, Follow, Link, Mode, Program};
use crate::commands::{format_uptime, human_size};

/// The sparkline column's width at most: one cell a second of the last minute.
const SPARK_MAX: u16 = super::app::HISTORY as u16;

/// Columns after NAME: (title, width).
const COLUMNS: [(&str, u16); 6] = [
    ("STATE", 10),
    ("PID", 8),
    ("UPTIME", 8),
    ("RESTARTS", 8),
    ("CPU", 7),
    ("MEM", 7),
];

/// The keys, as the help lists them.
const HELP: [(&str, &str); 10] = [
    ("↑ ↓  k j", "select a program"),
    ("PgUp PgDn", "a page up or down"),
    ("Home End", "the first or the last"),
    ("s", "start the selected program"),
    ("x", "stop it (asks first: y stops)"),
    ("r", "restart it"),
    ("l", "show its stdout or its stderr"),
    ("/", "filter by name (Enter keeps, Esc clears)"),
    ("?", "this help (any key closes it)"),
    ("q  Esc  Ctrl-C", "quit"),
];

/// The colour of a state, as the web page shows it.
pub fn state_style(state: &str) -> Style {
    let colour = match state {
        "running" => Color::Green,
        "starting" => Color::LightBlue,
        "backoff" | "stopping" => Color::Yellow,
        "fatal" => Color::LightRed,
        "waiting" => Color::Magenta,
        "exited" => Color::Gray,
        "stopped" => Color::DarkGray,
        _ => Color::Reset,
    };
    Style::new().fg(colour)
}

/// A crash loop: backoff's colour on fatal's (the web page stripes its badge so).
fn crash_loop_style() -> Style {
    Style::new()
        .fg(Color::Yellow)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD)
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &mut App) {
    let area = frame.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    let header = Rect { height: 1, ..area };
    frame.render_widget(Paragraph::new(header_line(app)), header);
    if area.height < 2 {
        return;
    }
    let status = Rect {
        y: area.y + area.height - 1,
        height: 1,
        ..area
    };
    frame.render_widget(Paragraph::new(status_line(app)), status);
    let body_height = area.height.saturating_sub(2);
    let shown = u16::try_from(app.shown()).unwrap_or(u16::MAX);
    let table_height = if body_height < 8 {
        body_height
    } else {
        shown.saturating_add(1).min(body_height * 3 / 5).max(3)
    };
    let table = Rect {
        y: area.y + 1,
        height: table_height,
        ..area
    };
    draw_table(frame, app, table);
    let log_height = body_height - table_height;
    if log_height >= 2 {
        let log = Rect {
            y: table.y + table_height,
            height: log_height,
            ..area
        };
        draw_output(frame, app, log);
    }
    if app.mode == Mode::Help {
        draw_help(frame, area);
    }
}

fn header_line(app: &App) -> Line<'static> {
    let dim = Style::new().fg(Color::DarkGray);
    let mut spans = vec![
        Span::styled("gosuv top", Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(" · ", dim),
        Span::raw(app.server.clone()),
        Span::styled(" · ", dim),
    ];
    let total = app.programs().len();
    spans.push(Span::raw(format!(
        "{total} program{}",
        if total == 1 { "" } else { "s" }
    )));
    for (i, (state, n)) in app.state_counts().enumerate() {
        spans.push(Span::raw(if i == 0 { ": " } else { ", " }));
        spans.push(Span::styled(format!("{n} {state}"), state_style(state)));
    }
    if !app.filter().is_empty() {
        spans.push(Span::styled(" · ", dim));
        spans.push(Span::styled(
            format!("filter '{}': {} shown", app.filter(), app.shown()),
            Style::new().fg(Color::Cyan),
        ));
    }
    let warn = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    match &app.link {
        Link::Live => {}
        Link::Connecting => {
            spans.push(Span::styled(" · ", dim));
            spans.push(Span::styled("connecting…", warn));
        }
        Link::Down(why) => {
            spans.push(Span::styled(" · ", dim));
            spans.push(Span::styled("reconnecting…", warn));
            spans.push(Span::styled(format!(" ({why})"), dim));
        }
    }
    Line::from(spans)
}

fn status_line(app: &App) -> Line<'static> {
    let key = Style::new().add_modifier(Modifier::BOLD);
    let dim = Style::new().fg(Color::DarkGray);
    match &app.mode {
        Mode::Filter => Line::from(vec![
            Span::styled("/", key),
            Span::raw(app.filter().to_string()),
            Span::styled("▏", key),
            Span::styled("  Enter keeps the filter · Esc clears it", dim),
        ]),
        Mode::ConfirmStop(name) => Line::from(Span::styled(
            format!("stop {name}? y/n"),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        )),
        Mode::Normal | Mode::Help => match &app.notice {
            Some(n) => Line::from(Span::styled(
                n.text.replace('\n', " "),
                if n.error {
                    Style::new().fg(Color::LightRed)
                } else {
                    Style::new()
                },
            )),
            None => {
                let mut spans = Vec::new();
                for (k, what) in [
                    ("↑↓", "select"),
                    ("s", "start"),
                    ("x", "stop"),
                    ("r", "restart"),
                    ("l", "stdout/stderr"),
                    ("/", "filter"),
                    ("?", "help"),
                    ("q", "quit"),
                ] {
                    spans.push(Span::styled(k, key));
                    spans.push(Span::styled(format!(" {what}  "), dim));
                }
                Line::from(spans)
            }
        },
    }
}

/// The CPU cell: `12.5%`, bounded in width whatever the server says.
fn cpu_cell(p: &Program) -> String {
    match (p.row.pid, p.row.cpu_percent) {
        (Some(_), Some(c)) if c.is_finite() && c < 10_000.0 => format!("{:.1}%", c.max(0.0)),
        (Some(_), Some(_)) => ">9999%".into(),
        _ => "-".into(),
    }
}

fn table_row(p: &Program, spark_width: u16) -> Row<'static> {
    let r = &p.row;
    let live = |v: Option<String>| v.filter(|_| r.pid.is_some()).unwrap_or_else(|| "-".into());
    let state = match r.crash_loop() {
        Some(_) => Cell::from(Span::styled("crash loop", crash_loop_style())),
        None => Cell::from(Span::styled(r.state.clone(), state_style(&r.state))),
    };
    let mut cells = vec![
        Cell::from(r.name.clone()),
        state,
        Cell::from(r.pid.map_or_else(|| "-".into(), |p| p.to_string())),
        Cell::from(live(r.uptime_secs.map(format_uptime))),
        Cell::from(r.restarts.to_string()),
        Cell::from(cpu_cell(p)),
        Cell::from(live(r.rss_bytes.map(human_size))),
    ];
    if spark_width > 0 {
        cells.push(Cell::from(Span::styled(
            p.history.sparkline(usize::from(spark_width)),
            Style::new().fg(Color::LightBlue),
        )));
    }
    Row::new(cells)
}

fn draw_table(frame: &mut Frame, app: &mut App, area: Rect) {
    if area.height == 0 {
        return;
    }
    let name_width = u16::try_from(app.name_width()).unwrap_or(u16::MAX);
    let fixed: u16 = COLUMNS.iter().map(|c| c.1 + 1).sum::<u16>() + name_width + 1;
    let spark_width = area.width.saturating_sub(fixed).min(SPARK_MAX);
    // Too narrow to be worth drawing.
    let spark_width = if spark_width < 5 { 0 } else { spark_width };
    let mut widths = vec![Constraint::Length(name_width)];
    widths.extend(COLUMNS.iter().map(|c| Constraint::Length(c.1)));
    let mut titles: Vec<&str> = vec!["NAME"];
    titles.extend(COLUMNS.iter().map(|c| c.0));
    if spark_width > 0 {
        widths.push(Constraint::Length(spark_width));
        titles.push("CPU (1 min)");
    }
    let rows_room = usize::from(area.height.saturating_sub(1));
    let range = app.visible(rows_room);
    let selected = app.selected_row().checked_sub(range.start);
    let rows: Vec<Row> = range
        .filter_map(|i| app.shown_at(i))
        .map(|p| table_row(p, spark_width))
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(rows, widths)
        .header(Row::new(titles).style(Style::new().add_modifier(Modifier::BOLD)))
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::new().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
    if empty && area.height > 1 {
        let why = if app.programs().is_empty() {
            match app.link {
                Link::Live => "no programs: add some to the programs file, then run 'gosuv reload'",
                _ => "",
            }
        } else {
            "no program matches the filter (/ then Esc clears it)"
        };
        let line = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        frame.render_widget(
            Paragraph::new(Span::styled(why, Style::new().fg(Color::DarkGray))),
            line,
        );
    }
}

fn draw_output(frame: &mut Frame, app: &App, area: Rect) {
    let dim = Style::new().fg(Color::DarkGray);
    let title = match &app.output_of {
        Some((name, stream)) => {
            let mut spans = vec![
                Span::styled(
                    format!(" {name} "),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!("{} ", stream.as_str())),
            ];
            match &app.follow {
                Follow::Broken(why) => spans.push(Span::styled(
                    format!("· reconnecting ({why}) "),
                    Style::new().fg(Color::Yellow),
                )),
                Follow::Live | Follow::Idle => {}
            }
            Line::from(spans)
        }
        None => Line::from(Span::raw(" output ")),
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(dim)
        .title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = app
        .output
        .rows(usize::from(inner.width), usize::from(inner.height));
    let text: Vec<Line> = if rows.is_empty() && app.output_of.is_none() {
        vec![Line::styled("no program selected", dim)]
    } else {
        rows.into_iter().map(Line::raw).collect()
    };
    frame.render_widget(Paragraph::new(text), inner);
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let width = area.width.min(72);
    let height = area.height.min(HELP.len() as u16 + 4);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let key = Style::new().add_modifier(Modifier::BOLD);
    let spark = format!(
        "a bar a second, scaled to the peak ({} % at least)",
        super::app::SPARK_FLOOR
    );
    let lines: Vec<Line> = HELP
        .iter()
        .copied()
        .chain([("", ""), ("CPU (1 min)", spark.as_str())])
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<15} "), key),
                Span::raw(what.to_string()),
            ])
        })
        .collect();
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" gosuv top: keys ")),
        rect,
    );
}
