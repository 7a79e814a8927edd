//! `GET /metrics`: Prometheus text format.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use gosuv::ProgramState;

use super::AppState;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders every metric. Program names are `[A-Za-z0-9._-]`, so they need no escaping as
/// label values.
pub async fn render(st: &AppState) -> String {
    let sup = st.sup();
    let statuses = sup.list();
    let stats = st.stats_snapshot().await;
    let mut out = String::with_capacity(256 + statuses.len() * 900);

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
    for s in &statuses {
        for state in ProgramState::ALL {
            let v = u8::from(s.state == state);
            let _ = writeln!(
                out,
                "gosuv_program_state{{program=\"{}\",state=\"{state}\"}} {v}",
                s.name
            );
        }
    }
    family(
        &mut out,
        "gosuv_program_restarts_total",
        "counter",
        "Automatic restarts and retries since the program was added.",
    );
    for s in &statuses {
        let _ = writeln!(
            out,
            "gosuv_program_restarts_total{{program=\"{}\"}} {}",
            s.name, s.restarts
        );
    }
    family(
        &mut out,
        "gosuv_program_uptime_seconds",
        "gauge",
        "Seconds since the program's current process started (0 without one).",
    );
    for s in &statuses {
        let _ = writeln!(
            out,
            "gosuv_program_uptime_seconds{{program=\"{}\"}} {:.3}",
            s.name,
            s.uptime_secs.unwrap_or(0.0)
        );
    }
    family(
        &mut out,
        "gosuv_program_cpu_percent",
        "gauge",
        "CPU use of the program's process tree, in percent of one core.",
    );
    for s in &statuses {
        let v = stats
            .get(&s.name)
            .filter(|_| s.pid.is_some())
            .map_or(0.0, |x| x.cpu_percent);
        let _ = writeln!(
            out,
            "gosuv_program_cpu_percent{{program=\"{}\"}} {v:.1}",
            s.name
        );
    }
    family(
        &mut out,
        "gosuv_program_rss_bytes",
        "gauge",
        "Resident memory of the program's process tree.",
    );
    for s in &statuses {
        let v = stats
            .get(&s.name)
            .filter(|_| s.pid.is_some())
            .map_or(0, |x| x.rss_bytes);
        let _ = writeln!(out, "gosuv_program_rss_bytes{{program=\"{}\"}} {v}", s.name);
    }
    family(
        &mut out,
        "gosuv_program_log_bytes_total",
        "counter",
        "Bytes of output received from the program, by stream.",
    );
    let logs: Vec<_> = statuses
        .iter()
        .filter_map(|s| sup.log_status(&s.name).ok().map(|l| (s.name.as_str(), l)))
        .collect();
    for (name, l) in &logs {
        let _ = writeln!(
            out,
            "gosuv_program_log_bytes_total{{program=\"{name}\",stream=\"stdout\"}} {}",
            l.stdout.bytes
        );
        let _ = writeln!(
            out,
            "gosuv_program_log_bytes_total{{program=\"{name}\",stream=\"stderr\"}} {}",
            l.stderr.bytes
        );
    }
    family(
        &mut out,
        "gosuv_program_log_write_errors_total",
        "counter",
        "Failed writes to the program's log files, by stream.",
    );
    for (name, l) in &logs {
        let _ = writeln!(
            out,
            "gosuv_program_log_write_errors_total{{program=\"{name}\",stream=\"stdout\"}} {}",
            l.stdout.write_errors
        );
        let _ = writeln!(
            out,
            "gosuv_program_log_write_errors_total{{program=\"{name}\",stream=\"stderr\"}} {}",
            l.stderr.write_errors
        );
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
            let _ = writeln!(
                out,
                "gosuv_program_ready_seconds{{program=\"{}\"}} {v:.3}",
                s.name
            );
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
            let _ = writeln!(
                out,
                "gosuv_program_health_failures_total{{program=\"{}\"}} {}",
                s.name, h.failures
            );
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
