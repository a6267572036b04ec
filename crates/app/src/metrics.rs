//! The process's own metrics for `GET /metrics`: counters and histograms of what happened since the daemon
//! started, kept with `prometheus-client`, which also writes the exposition format. Gauges (the queue by status,
//! events by kind, the relay's and the token's state) are read when scraped and registered beside these.

use prometheus_client::{
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};
use std::time::Duration;

/// Labels as name and value pairs.
pub type Labels = Vec<(String, String)>;

/// The counters Tidings keeps (their names end in `_total` when exposed), with their help text and label name.
pub const COUNTERS: &[(&str, &str, &str)] = &[
    ("tidings_delivery_attempts", "Delivery attempts by result (delivered, or the failure's class).", "result"),
    ("tidings_token_refreshes", "OAuth access-token refreshes by outcome (ok, failed, refused).", "outcome"),
    ("tidings_sign_ins", "Web interface sign-ins by outcome (ok, refused, throttled).", "outcome"),
    ("tidings_gateway_sessions", "Gateway connections (accepted, refused_busy, refused_per_address).", "outcome"),
    (
        "tidings_gateway_authentications",
        "Gateway authentications (ok, failed, refused_busy: locked out or too many at once).",
        "outcome",
    ),
    ("tidings_gateway_messages", "Gateway messages (accepted, refused, rate_limited).", "outcome"),
];

/// Seconds, from a tenth of a second to an hour and more: the relay's replies and the time mail waits.
const LATENCY: [f64; 14] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0];
/// Seconds, from 5 ms to two minutes: one attempt, one refresh.
const STEP: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 120.0];
/// Seconds, from a tenth of a second to half an hour: a gateway session.
const SESSION: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0];

fn step_histogram() -> Histogram {
    Histogram::new(STEP)
}

/// The counters and histograms.
#[derive(Debug)]
pub struct Metrics {
    counters: Vec<Family<Labels, Counter>>,
    /// From acceptance to the relay's (or the API's) acceptance of the message.
    delivery_latency: Histogram,
    /// One attempt's duration by the stage it ended at (`complete` when delivered).
    attempt_duration: Family<Labels, Histogram, fn() -> Histogram>,
    token_refresh_duration: Histogram,
    gateway_session_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            counters: COUNTERS.iter().map(|_| Family::default()).collect(),
            delivery_latency: Histogram::new(LATENCY),
            attempt_duration: Family::new_with_constructor(step_histogram),
            token_refresh_duration: Histogram::new(STEP),
            gateway_session_duration: Histogram::new(SESSION),
        }
    }
}

impl Metrics {
    /// Adds one to counter `name` (one of [`COUNTERS`], with or without its `_total`) for `label`.
    pub fn count(&self, name: &str, label: &str) {
        let name = name.strip_suffix("_total").unwrap_or(name);
        if let Some(i) = COUNTERS.iter().position(|(n, _, _)| *n == name) {
            self.counters[i].get_or_create(&vec![(COUNTERS[i].2.to_owned(), label.to_owned())]).inc();
        }
    }

    /// A message accepted `waited` ago was delivered now.
    pub fn delivered(&self, waited: Duration) {
        self.delivery_latency.observe(waited.as_secs_f64());
    }

    /// An attempt that took `took`, ending at `stage` (`complete` when it delivered).
    pub fn attempt(&self, stage: &str, took: Duration) {
        self.attempt_duration.get_or_create(&vec![("stage".to_owned(), stage.to_owned())]).observe(took.as_secs_f64());
    }

    pub fn token_refreshed(&self, took: Duration) {
        self.token_refresh_duration.observe(took.as_secs_f64());
    }

    pub fn gateway_session(&self, took: Duration) {
        self.gateway_session_duration.observe(took.as_secs_f64());
    }

    /// Puts these metrics in `registry` (sharing their values), beside the gauges read at the scrape.
    pub fn register(&self, registry: &mut Registry) {
        for ((name, help, _), family) in COUNTERS.iter().zip(&self.counters) {
            registry.register(*name, *help, family.clone());
        }
        registry.register_with_unit(
            "tidings_delivery_latency",
            "From a message's acceptance to the relay's acceptance of it.",
            Unit::Seconds,
            self.delivery_latency.clone(),
        );
        registry.register_with_unit(
            "tidings_attempt_duration",
            "One delivery attempt's duration, by the stage it ended at (complete: delivered).",
            Unit::Seconds,
            self.attempt_duration.clone(),
        );
        registry.register_with_unit(
            "tidings_token_refresh_duration",
            "One OAuth token refresh, whatever its outcome.",
            Unit::Seconds,
            self.token_refresh_duration.clone(),
        );
        registry.register_with_unit(
            "tidings_gateway_session_duration",
            "One SMTP gateway session, from connection to close.",
            Unit::Seconds,
            self.gateway_session_duration.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_exposition_format() {
        let m = Metrics::default();
        m.count("tidings_delivery_attempts_total", "delivered");
        m.count("tidings_delivery_attempts", "delivered");
        m.count("tidings_sign_ins_total", "refused");
        m.delivered(Duration::from_millis(700));
        m.attempt("rcpt_to", Duration::from_millis(30));
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("# TYPE tidings_delivery_attempts counter\n"), "{out}");
        assert!(out.contains("tidings_delivery_attempts_total{result=\"delivered\"} 2\n"), "{out}");
        assert!(out.contains("tidings_sign_ins_total{outcome=\"refused\"} 1"), "{out}");
        assert!(out.contains("# TYPE tidings_delivery_latency_seconds histogram"), "{out}");
        assert!(out.contains("tidings_delivery_latency_seconds_bucket{le=\"1.0\"} 1"), "{out}");
        assert!(out.contains("tidings_attempt_duration_seconds_count{stage=\"rcpt_to\"} 1"), "{out}");
    }
}
