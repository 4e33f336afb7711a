//! Operational monitoring: per-service and per-client request counts,
//! error counts by X-Road error type, and latency histograms (total and
//! upstream), as Prometheus text and as a snapshot for an admin page.
//!
//! Labels are bounded by the registry: requests that name no registered
//! service count under `service="-"`, unauthenticated ones under
//! `client="-"`, so callers cannot create series at will.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The label used when a service or client is unknown.
pub const UNKNOWN: &str = "-";

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last one is +Inf.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += s;
        self.count += 1;
    }

    /// Estimated quantile in seconds (linear within the bucket).
    fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let target = q * self.count as f64;
        let mut cum = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            if *c > 0 && (cum + c) as f64 >= target {
                let lo = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
                let hi = BUCKETS.get(i).copied().unwrap_or(lo);
                let within = (target - cum as f64) / *c as f64;
                return lo + (hi - lo) * within.clamp(0.0, 1.0);
            }
            cum += c;
        }
        BUCKETS[BUCKETS.len() - 1]
    }
}

#[derive(Debug, Clone, Default)]
struct Series {
    requests: u64,
    errors: u64,
    errors_by_type: BTreeMap<String, u64>,
    latency: Histogram,
    upstream: Histogram,
}

impl Series {
    fn observe(&mut self, o: &Observation<'_>) {
        self.requests += 1;
        if let Some(e) = o.error {
            self.errors += 1;
            match self.errors_by_type.get_mut(e) {
                Some(n) => *n += 1,
                None => {
                    self.errors_by_type.insert(e.to_owned(), 1);
                }
            }
        }
        self.latency.observe(o.total);
        if let Some(u) = o.upstream {
            self.upstream.observe(u);
        }
    }
}

/// One finished exchange, as metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The registered service, if the request named one.
    pub service: Option<&'a str>,
    /// The authenticated client, if any.
    pub client: Option<&'a str>,
    /// The X-Road error type, if the gateway answered with an error.
    pub error: Option<&'a str>,
    pub total: Duration,
    pub upstream: Option<Duration>,
}

#[derive(Debug, Default)]
struct Inner {
    services: HashMap<String, Series>,
    clients: HashMap<String, Series>,
}

/// Gateway metrics; cheap to update (one short lock per exchange).
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// One series of the snapshot.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesSnapshot {
    /// Service or client id (`-` when unknown).
    pub key: String,
    pub requests: u64,
    pub errors: u64,
    pub errors_by_type: BTreeMap<String, u64>,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub upstream_mean_ms: f64,
}

/// All series, sorted by key, for an admin page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricsSnapshot {
    pub requests: u64,
    pub errors: u64,
    pub services: Vec<SeriesSnapshot>,
    pub clients: Vec<SeriesSnapshot>,
}

fn bump(map: &mut HashMap<String, Series>, key: Option<&str>, o: &Observation<'_>) {
    let key = key.unwrap_or(UNKNOWN);
    match map.get_mut(key) {
        Some(s) => s.observe(o),
        None => {
            let mut s = Series::default();
            s.observe(o);
            map.insert(key.to_owned(), s);
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn snapshot_of(map: &HashMap<String, Series>) -> Vec<SeriesSnapshot> {
    let mut v: Vec<SeriesSnapshot> = map
        .iter()
        .map(|(k, s)| SeriesSnapshot {
            key: k.clone(),
            requests: s.requests,
            errors: s.errors,
            errors_by_type: s.errors_by_type.clone(),
            mean_ms: if s.latency.count > 0 {
                s.latency.sum * 1000.0 / s.latency.count as f64
            } else {
                0.0
            },
            p50_ms: s.latency.quantile(0.5) * 1000.0,
            p95_ms: s.latency.quantile(0.95) * 1000.0,
            p99_ms: s.latency.quantile(0.99) * 1000.0,
            upstream_mean_ms: if s.upstream.count > 0 {
                s.upstream.sum * 1000.0 / s.upstream.count as f64
            } else {
                0.0
            },
        })
        .collect();
    v.sort_by(|a, b| a.key.cmp(&b.key));
    v
}

impl Metrics {
    pub fn new() -> Self {
        Metrics::default()
    }

    pub fn observe(&self, o: &Observation<'_>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        bump(&mut inner.services, o.service, o);
        bump(&mut inner.clients, o.client, o);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let services = snapshot_of(&inner.services);
        MetricsSnapshot {
            requests: services.iter().map(|s| s.requests).sum(),
            errors: services.iter().map(|s| s.errors).sum(),
            services,
            clients: snapshot_of(&inner.clients),
        }
    }

    /// Prometheus text exposition (to append to `/metrics`).
    pub fn render_prometheus(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::with_capacity(4096);
        for (dim, map) in [("service", &inner.services), ("client", &inner.clients)] {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let _ = writeln!(
                out,
                "# HELP motcua_exchange_{dim}_requests_total Exchanges through the gateway, per {dim}.\n# TYPE motcua_exchange_{dim}_requests_total counter"
            );
            for k in &keys {
                let _ = writeln!(
                    out,
                    "motcua_exchange_{dim}_requests_total{{{dim}=\"{}\"}} {}",
                    escape(k),
                    map[*k].requests
                );
            }
            let _ = writeln!(
                out,
                "# HELP motcua_exchange_{dim}_errors_total Exchanges answered with an X-Road error, per {dim} and error type.\n# TYPE motcua_exchange_{dim}_errors_total counter"
            );
            for k in &keys {
                for (t, n) in &map[*k].errors_by_type {
                    let _ = writeln!(
                        out,
                        "motcua_exchange_{dim}_errors_total{{{dim}=\"{}\",type=\"{}\"}} {n}",
                        escape(k),
                        escape(t)
                    );
                }
            }
            for (name, help, pick) in [
                (
                    "duration_seconds",
                    "Time from request to response ready",
                    (|s: &Series| &s.latency) as fn(&Series) -> &Histogram,
                ),
                (
                    "upstream_duration_seconds",
                    "Time waiting for the provider",
                    |s: &Series| &s.upstream,
                ),
            ] {
                let metric = format!("motcua_exchange_{dim}_{name}");
                let _ = writeln!(
                    out,
                    "# HELP {metric} {help}, per {dim}.\n# TYPE {metric} histogram"
                );
                for k in &keys {
                    let h = pick(&map[*k]);
                    if h.count == 0 {
                        continue;
                    }
                    let label = escape(k);
                    let mut cum = 0;
                    for (i, b) in BUCKETS.iter().enumerate() {
                        cum += h.counts[i];
                        let _ =
                            writeln!(out, "{metric}_bucket{{{dim}=\"{label}\",le=\"{b}\"}} {cum}");
                    }
                    let _ = writeln!(
                        out,
                        "{metric}_bucket{{{dim}=\"{label}\",le=\"+Inf\"}} {}",
                        h.count
                    );
                    let _ = writeln!(out, "{metric}_sum{{{dim}=\"{label}\"}} {}", h.sum);
                    let _ = writeln!(out, "{metric}_count{{{dim}=\"{label}\"}} {}", h.count);
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_and_histograms() {
        let m = Metrics::new();
        let ms = Duration::from_millis;
        for _ in 0..9 {
            m.observe(&Observation {
                service: Some("VN/GOV/B/S/svc"),
                client: Some("VN/GOV/A/C"),
                error: None,
                total: ms(3),
                upstream: Some(ms(2)),
            });
        }
        m.observe(&Observation {
            service: Some("VN/GOV/B/S/svc"),
            client: Some("VN/GOV/A/C"),
            error: Some("Server.ServerProxy.ServiceFailed.Timeout"),
            total: ms(700),
            upstream: None,
        });
        m.observe(&Observation {
            service: None,
            client: None,
            error: Some("Server.ClientProxy.AuthenticationFailed"),
            total: ms(0),
            upstream: None,
        });
        let s = m.snapshot();
        assert_eq!((s.requests, s.errors), (11, 2));
        let svc = s
            .services
            .iter()
            .find(|x| x.key == "VN/GOV/B/S/svc")
            .unwrap();
        assert_eq!((svc.requests, svc.errors), (10, 1));
        assert!(svc.p50_ms > 2.5 && svc.p50_ms <= 5.0, "{}", svc.p50_ms);
        assert!(svc.p99_ms > 500.0, "{}", svc.p99_ms);
        let text = m.render_prometheus();
        for needle in [
            "motcua_exchange_service_requests_total{service=\"VN/GOV/B/S/svc\"} 10",
            "motcua_exchange_client_requests_total{client=\"-\"} 1",
            "motcua_exchange_service_errors_total{service=\"VN/GOV/B/S/svc\",type=\"Server.ServerProxy.ServiceFailed.Timeout\"} 1",
            "motcua_exchange_service_duration_seconds_bucket{service=\"VN/GOV/B/S/svc\",le=\"0.005\"} 9",
            "motcua_exchange_service_duration_seconds_bucket{service=\"VN/GOV/B/S/svc\",le=\"+Inf\"} 10",
            "motcua_exchange_client_upstream_duration_seconds_count{client=\"VN/GOV/A/C\"} 9",
            "# TYPE motcua_exchange_service_duration_seconds histogram",
        ] {
            assert!(text.contains(needle), "missing {needle}\n{text}");
        }
    }
}
