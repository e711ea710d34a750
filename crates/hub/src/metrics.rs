//! A few counters in Prometheus's text format, kept by hand: the hub needs no more yet.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Metrics {
    pub fn inc(&self, name: &'static str, labels: String, by: u64) {
        *self
            .counters
            .lock()
            .expect("metrics lock")
            .entry((name, labels))
            .or_default() += by;
    }

    pub fn render(&self, extra: &[(String, String, f64)]) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().expect("metrics lock");
        let mut last = "";
        for ((name, labels), v) in counters.iter() {
            if *name != last {
                out.push_str(&format!("# TYPE {name} counter\n"));
                last = name;
            }
            out.push_str(&format!("{name}{{{labels}}} {v}\n"));
        }
        let mut last_gauge = "";
        for (name, labels, v) in extra {
            // One TYPE line per metric: Prometheus refuses repeats.
            if name != last_gauge {
                out.push_str(&format!("# TYPE {name} gauge\n"));
                last_gauge = name;
            }
            out.push_str(&format!("{name}{{{labels}}} {v}\n"));
        }
        out
    }
}
