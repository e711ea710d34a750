//! The hub's metrics in Prometheus's text format, through the `metrics` crate.
//!
//! Each hub has its own recorder (counters and latency histograms of its API), so hubs sharing a
//! process (tests, or an embedding) never mix their figures. What the rest of the process
//! records through the `metrics` macros (the IYS client's call latencies, on an instance that
//! installs a global recorder) is rendered with it. Figures read from the database at scrape
//! time (outbox rows, deadlines, cursors) are gauges rendered from a fresh recorder each time,
//! so a series that no longer exists is not shown with a stale value.

use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Latency buckets in seconds: from a cached check to a 10,000-change batch or a slow IYS.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static METADATA: Metadata<'static> = Metadata::new("iyshub", Level::INFO, None);

/// A metric's labels: names and values.
pub type Labels<'a> = &'a [(&'static str, String)];

/// A figure read at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

pub struct Metrics {
    recorder: PrometheusRecorder,
    /// The process's global recorder, when the binary installed one.
    process: Option<PrometheusHandle>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            recorder: recorder(),
            process: None,
        }
    }
}

/// Buckets of a change's time from the ledger to IYS's answer, in seconds: from the fast
/// simulator's moments to IYS's three business days (and the long weekends around them).
const AGE_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3_600.0, 14_400.0, 43_200.0, 86_400.0, 259_200.0, 432_000.0,
];

/// A recorder with the hub's histogram buckets.
pub fn recorder() -> PrometheusRecorder {
    let builder = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("iyshub_outbox_age_seconds".into()),
                &AGE_BUCKETS,
            )
        });
    match builder {
        Ok(b) => b.build_recorder(),
        // Only refused for an empty list, which neither is.
        Err(_) => PrometheusBuilder::new().build_recorder(),
    }
}

fn key(name: &'static str, labels: Labels<'_>) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect::<Vec<_>>(),
    )
}

impl Metrics {
    /// Also renders what the process records through the global recorder.
    pub fn with_process(mut self, handle: PrometheusHandle) -> Metrics {
        self.process = Some(handle);
        self
    }

    pub fn inc(&self, name: &'static str, labels: Labels<'_>, by: u64) {
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
            .increment(by);
    }

    /// Records one observation (seconds, for latencies) in a histogram.
    pub fn observe(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        self.recorder
            .register_histogram(&key(name, labels), &METADATA)
            .record(value);
    }

    /// Everything, in Prometheus's text format.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = self.recorder.handle().render();
        let now = recorder();
        for g in gauges {
            now.register_gauge(&key(g.name, &g.labels), &METADATA)
                .set(g.value);
        }
        out.push_str(&now.handle().render());
        if let Some(process) = &self.process {
            out.push_str(&process.render());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histograms_and_gauges_render_in_prometheus_format() {
        let m = Metrics::default();
        m.inc("iyshub_checks_total", &[("brand", "600123".into())], 2);
        m.inc("iyshub_checks_total", &[("brand", "600123".into())], 1);
        m.observe(
            "iyshub_http_request_duration_seconds",
            &[("route", "/healthz".into())],
            0.003,
        );
        let text = m.render(&[Gauge {
            name: "iyshub_outbox_rows",
            labels: vec![("brand", "600123".into()), ("state", "pending".into())],
            value: 4.0,
        }]);
        assert!(
            text.contains("# TYPE iyshub_checks_total counter"),
            "{text}"
        );
        assert!(
            text.contains("iyshub_checks_total{brand=\"600123\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "iyshub_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("iyshub_outbox_rows{brand=\"600123\",state=\"pending\"} 4"),
            "{text}"
        );
        // Gauges are read afresh at every scrape: gone when not given.
        assert!(!m.render(&[]).contains("iyshub_outbox_rows"));
    }
}
