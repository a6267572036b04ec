//! Counters for `GET /metrics` (Prometheus text format): what happened since the daemon started. Gauges (the
//! queue by status, events by kind) are read from the database when scraped.

use std::{collections::BTreeMap, fmt::Write, sync::Mutex};

/// The counters Tidings keeps, with their help text and label name.
pub const COUNTERS: &[(&str, &str, &str)] = &[
    ("tidings_delivery_attempts_total", "Delivery attempts by result (delivered, or the failure's class).", "result"),
    ("tidings_token_refreshes_total", "OAuth access-token refreshes by outcome (ok, failed, refused).", "outcome"),
    ("tidings_sign_ins_total", "Web interface sign-ins by outcome (ok, refused, throttled).", "outcome"),
    ("tidings_gateway_sessions_total", "Gateway connections (accepted, refused_busy, refused_per_address).", "outcome"),
    (
        "tidings_gateway_authentications_total",
        "Gateway authentications (ok, failed, refused_busy: locked out or too many at once).",
        "outcome",
    ),
    ("tidings_gateway_messages_total", "Gateway messages (accepted, refused, rate_limited).", "outcome"),
];

/// Counters by name and label value.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Metrics {
    /// Adds one to counter `name` (one of [`COUNTERS`]) for `label`.
    pub fn count(&self, name: &'static str, label: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry((name, label.to_owned())).or_default() += 1;
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for (name, help, label) in COUNTERS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((_, value), n) in counts.range((*name, String::new())..).take_while(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape(value));
            }
        }
    }
}

/// A label value as Prometheus wants it.
pub fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_text_format() {
        let m = Metrics::default();
        m.count("tidings_delivery_attempts_total", "delivered");
        m.count("tidings_delivery_attempts_total", "delivered");
        m.count("tidings_sign_ins_total", "refused");
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("# TYPE tidings_delivery_attempts_total counter\ntidings_delivery_attempts_total{result=\"delivered\"} 2\n"), "{out}");
        assert!(out.contains("tidings_sign_ins_total{outcome=\"refused\"} 1"), "{out}");
        assert!(out.contains("# TYPE tidings_token_refreshes_total counter\n# HELP tidings_sign_ins_total"), "{out}");
    }
}
