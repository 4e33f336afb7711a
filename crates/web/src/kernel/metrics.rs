//! Prometheus text metrics, kept in memory.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<(String, String, u16), Series>>,
    submitted: AtomicU64,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        let mut m = self.http.lock().unwrap_or_else(|p| p.into_inner());
        let s = m
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    pub fn dossier_submitted(&self) {
        self.submitted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, by_status: &BTreeMap<String, u64>, pending_events: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP motcua_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE motcua_http_requests_total counter");
        let m = self.http.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, route, status), s) in m.iter() {
            let _ = writeln!(
                out,
                "motcua_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP motcua_http_request_duration_seconds Request latency."
        );
        let _ = writeln!(out, "# TYPE motcua_http_request_duration_seconds histogram");
        for ((method, route, status), s) in m.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "motcua_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "motcua_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "motcua_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "motcua_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        drop(m);
        let _ = writeln!(
            out,
            "# HELP motcua_dossiers_submitted_total Dossiers submitted through this node since it started."
        );
        let _ = writeln!(out, "# TYPE motcua_dossiers_submitted_total counter");
        let _ = writeln!(
            out,
            "motcua_dossiers_submitted_total {}",
            self.submitted.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP motcua_dossiers Dossiers by status.");
        let _ = writeln!(out, "# TYPE motcua_dossiers gauge");
        for (status, n) in by_status {
            let _ = writeln!(out, "motcua_dossiers{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP motcua_outbox_pending Outbox events not yet processed."
        );
        let _ = writeln!(out, "# TYPE motcua_outbox_pending gauge");
        let _ = writeln!(out, "motcua_outbox_pending {pending_events}");
        out
    }
}

pub async fn track_requests(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let res = next.run(req).await;
    st.metrics.observe(
        &method,
        &route,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}
