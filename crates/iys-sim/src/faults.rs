//! Fault injection per endpoint: errors with a chosen status and H-code, added latency and
//! dropped connections. `"*"` applies to every endpoint without its own entry.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Fault {
    /// Share of requests answered with `status`/`code` (0.0–1.0).
    pub error_rate: f64,
    pub status: u16,
    pub code: String,
    /// Added before answering.
    pub latency_ms: u64,
    /// Share of requests whose connection is cut before IYS acts on them (0.0–1.0).
    pub drop_rate: f64,
    /// Share of requests IYS acts on but whose answer is lost (connection cut after the work):
    /// the case that makes blind retries create duplicates.
    pub lost_answer_rate: f64,
}

impl Default for Fault {
    fn default() -> Self {
        Fault {
            error_rate: 0.0,
            status: 500,
            code: "H015".into(),
            latency_ms: 0,
            drop_rate: 0.0,
            lost_answer_rate: 0.0,
        }
    }
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass,
    Error { status: u16, code: String },
    Drop,
    LoseAnswer,
}

#[derive(Debug)]
pub struct Faults {
    pub by_endpoint: BTreeMap<String, Fault>,
    rng: fastrand::Rng,
}

impl Faults {
    pub fn new(seed: Option<u64>) -> Faults {
        Faults {
            by_endpoint: BTreeMap::new(),
            rng: seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
        }
    }

    pub fn roll(&mut self, endpoint: &str) -> (Duration, Verdict) {
        let Some(f) = self
            .by_endpoint
            .get(endpoint)
            .or_else(|| self.by_endpoint.get("*"))
        else {
            return (Duration::ZERO, Verdict::Pass);
        };
        let latency = Duration::from_millis(f.latency_ms);
        let dice = self.rng.f64();
        let verdict = if dice < f.drop_rate {
            Verdict::Drop
        } else if dice < f.drop_rate + f.lost_answer_rate {
            Verdict::LoseAnswer
        } else if dice < f.drop_rate + f.lost_answer_rate + f.error_rate {
            Verdict::Error {
                status: f.status,
                code: f.code.clone(),
            }
        } else {
            Verdict::Pass
        };
        (latency, verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_honoured_roughly_and_specific_entries_win() {
        let mut f = Faults::new(Some(7));
        f.by_endpoint.insert(
            "*".into(),
            Fault {
                error_rate: 0.3,
                ..Fault::default()
            },
        );
        f.by_endpoint.insert("token".into(), Fault::default());
        let errors = (0..10_000)
            .filter(|_| matches!(f.roll("add").1, Verdict::Error { .. }))
            .count();
        assert!((2500..3500).contains(&errors), "{errors}");
        assert!((0..100).all(|_| f.roll("token").1 == Verdict::Pass));
    }
}
