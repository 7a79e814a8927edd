//! `GET /metrics`: Prometheus text format.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use gosuv::ProgramState;

use super::listing::StatsByName;
use super::AppState;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `NAME{program="P"` + `labels` + `} `: the start of one program's sample, its value
/// written next. Written piece by piece: `/metrics` of thousands of programs is tens of
/// thousands of lines, and the formatting machinery was most of its cost.
fn sample(out: &mut String, name: &str, program: &str, labels: &str) {
    out.push_str(name);
    out.push_str("{program=\"");
    out.push_str(program);
    out.push('"');
    out.push_str(labels);
    out.push_str("} ");
}

/// Renders every metric. Program names are `[A-Za-z0-9._-]`, so they need no escaping as
/// label values. One pass over the programs for each family: linear in their number.
pub async fn render(st: &AppState) -> String {
    let sup = st.sup();
    let statuses = sup.list();
    let stats = st.stats_snapshot().await;
    let logs = sup.log_status_all();
    let mut out = String::with_capacity(2048 + statuses.len() * 1100);

    family(
        &mut out,
        "gosuv_info",
        "gauge",
        "The gosuv server's version.",
    );
    let _ = writeln!(out, "gosuv_info{{version=\"{}\"}} 1", gosuv::VERSION);
    family(
        &mut out,
        "gosuv_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
    );
    let _ = writeln!(
        out,
        "gosuv_uptime_seconds {:.3}",
        sup.uptime().as_secs_f64()
    );
    family(&mut out, "gosuv_programs", "gauge", "Programs configured.");
    let _ = writeln!(out, "gosuv_programs {}", statuses.len());
    if let Some(rss) = gosuv::stats::self_rss_bytes() {
        family(
            &mut out,
            "gosuv_server_rss_bytes",
            "gauge",
            "Resident memory of the gosuv server.",
        );
        let _ = writeln!(out, "gosuv_server_rss_bytes {rss}");
    }

    family(
        &mut out,
        "gosuv_program_state",
        "gauge",
        "1 for the program's current state, 0 for the others.",
    );
    let labels = ProgramState::ALL.map(|state| (state, format!(",state=\"{state}\"")));
    for s in &statuses {
        for (state, label) in &labels {
            sample(&mut out, "gosuv_program_state", &s.name, label);
            out.push_str(if s.state == *state { "1\n" } else { "0\n" });
        }
    }
    family(
        &mut out,
        "gosuv_program_restarts_total",
        "counter",
        "Automatic restarts and retries since the program was added.",
    );
    for s in &statuses {
        sample(&mut out, "gosuv_program_restarts_total", &s.name, "");
        let _ = writeln!(out, "{}", s.restarts);
    }
    family(
        &mut out,
        "gosuv_program_uptime_seconds",
        "gauge",
        "Seconds since the program's current process started (0 without one).",
    );
    for s in &statuses {
        sample(&mut out, "gosuv_program_uptime_seconds", &s.name, "");
        let _ = writeln!(out, "{:.3}", s.uptime_secs.unwrap_or(0.0));
    }
    family(
        &mut out,
        "gosuv_program_cpu_percent",
        "gauge",
        "CPU use of the program's process tree, in percent of one core.",
    );
    let mut by_name = StatsByName::new(&stats);
    for s in &statuses {
        let v = by_name
            .get(&s.name)
            .filter(|_| s.pid.is_some())
            .map_or(0.0, |x| x.cpu_percent);
        sample(&mut out, "gosuv_program_cpu_percent", &s.name, "");
        let _ = writeln!(out, "{v:.1}");
    }
    family(
        &mut out,
        "gosuv_program_rss_bytes",
        "gauge",
        "Resident memory of the program's process tree.",
    );
    let mut by_name = StatsByName::new(&stats);
    for s in &statuses {
        let v = by_name
            .get(&s.name)
            .filter(|_| s.pid.is_some())
            .map_or(0, |x| x.rss_bytes);
        sample(&mut out, "gosuv_program_rss_bytes", &s.name, "");
        let _ = writeln!(out, "{v}");
    }
    family(
        &mut out,
        "gosuv_program_log_bytes_total",
        "counter",
        "Bytes of output received from the program, by stream.",
    );
    for (name, l) in &logs {
        sample(
            &mut out,
            "gosuv_program_log_bytes_total",
            name,
            ",stream=\"stdout\"",
        );
        let _ = writeln!(out, "{}", l.stdout.bytes);
        sample(
            &mut out,
            "gosuv_program_log_bytes_total",
            name,
            ",stream=\"stderr\"",
        );
        let _ = writeln!(out, "{}", l.stderr.bytes);
    }
    family(
        &mut out,
        "gosuv_program_log_write_errors_total",
        "counter",
        "Failed writes to the program's log files, by stream.",
    );
    for (name, l) in &logs {
        sample(
            &mut out,
            "gosuv_program_log_write_errors_total",
            name,
            ",stream=\"stdout\"",
        );
        let _ = writeln!(out, "{}", l.stdout.write_errors);
        sample(
            &mut out,
            "gosuv_program_log_write_errors_total",
            name,
            ",stream=\"stderr\"",
        );
        let _ = writeln!(out, "{}", l.stderr.write_errors);
    }
    family(
        &mut out,
        "gosuv_program_ready_seconds",
        "gauge",
        "How long the current run took from its spawn to ready (running), for a running program.",
    );
    for s in &statuses {
        if let (Some(started), Some(ready)) = (s.started_at, s.ready_at) {
            let v = ready
                .duration_since(started)
                .map_or(0.0, |d| d.as_secs_f64());
            sample(&mut out, "gosuv_program_ready_seconds", &s.name, "");
            let _ = writeln!(out, "{v:.3}");
        }
    }
    family(
        &mut out,
        "gosuv_program_health_failures_total",
        "counter",
        "Failed attempts of the program's health probe.",
    );
    for s in &statuses {
        if let Some(h) = &s.health {
            sample(&mut out, "gosuv_program_health_failures_total", &s.name, "");
            let _ = writeln!(out, "{}", h.failures);
        }
    }
    out
}

/// The handler.
pub async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&st).await,
    )
        .into_response()
}
