//! How long `gosuv top` takes to draw one frame with 1,000 programs (each with a minute of
//! CPU history) on a 200x60 terminal: ratatui's `TestBackend`, so the figure is the view's
//! own cost (building the visible rows, the sparklines, the diff), not the terminal's.
//!
//! `cargo bench -p gosuv-bin --bench top_render` (release); `FRAMES=N` sets the count.
//! Prints the median and the 99th percentile per frame.

use std::time::{Duration, Instant};

use gosuv_bin::commands::StatusRow;
use gosuv_bin::top::app::{App, HISTORY};
use gosuv_bin::top::ui;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const PROGRAMS: usize = 1000;

fn rows(tick: usize) -> Vec<StatusRow> {
    let list: Vec<serde_json::Value> = (0..PROGRAMS)
        .map(|i| {
            let state = match i % 10 {
                0 => "stopped",
                1 => "fatal",
                2 => "backoff",
                _ => "running",
            };
            let running = state == "running";
            serde_json::json!({
                "name": format!("program-{i:04}"),
                "state": state,
                "pid": running.then_some(10_000 + i),
                "uptime_secs": running.then_some(3600.0 + tick as f64),
                "restarts": i % 7,
                "cpu_percent": running.then_some(((i * 7 + tick * 13) % 100) as f64),
                "rss_bytes": running.then_some(1_000_000 + i * 4096),
                "last_error": (state == "backoff").then_some("crash loop: 5 exits in 60s"),
            })
        })
        .collect();
    serde_json::from_value(serde_json::Value::Array(list)).expect("rows")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let frames: usize = std::env::var("FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut app = App::new("unix:///tmp/.gosuv.sock");
    for tick in 0..HISTORY {
        app.apply_programs(rows(tick), 0);
    }
    for i in 0..500 {
        app.output.push(&format!(
            "{i} a line of the selected program's output, long enough to be a real one\n"
        ));
    }
    let mut term = Terminal::new(TestBackend::new(200, 60)).expect("terminal");
    let mut times = Vec::with_capacity(frames);
    for i in 0..frames {
        // Move the selection each frame, so each frame differs from the one before (a
        // scroll every page).
        app.move_by(if (i / PROGRAMS).is_multiple_of(2) {
            1
        } else {
            -1
        });
        let t0 = Instant::now();
        term.draw(|f| ui::draw(f, &mut app)).expect("draw");
        times.push(t0.elapsed());
    }
    // One list applied, as each stats tick does (not part of a frame).
    let list = rows(HISTORY);
    let t0 = Instant::now();
    app.apply_programs(list, 0);
    let apply = t0.elapsed();
    times.sort_unstable();
    println!(
        "top_render: {PROGRAMS} programs, 200x60, {frames} frames: median {:.3} ms, p99 {:.3} ms, max {:.3} ms; applying a list of {PROGRAMS}: {:.3} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        percentile(&times, 1.0).as_secs_f64() * 1e3,
        apply.as_secs_f64() * 1e3,
    );
}
