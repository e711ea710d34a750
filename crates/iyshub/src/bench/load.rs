//! A small closed-loop load generator: `concurrency` workers each run one operation after
//! another until a count or a time is reached, and every operation's latency is kept.
//!
//! The same generator drives HTTP requests (over keep-alive connections: one reqwest client
//! keeps a connection per busy worker) and the baselines' database transactions, so hub and
//! baseline are timed the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::future::BoxFuture;

/// One operation; `n` numbers it (0, 1, 2, … across all workers).
pub type Op = Arc<dyn Fn(u64) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub count: Option<u64>,
    pub time: Option<Duration>,
}

impl Limit {
    pub fn count(n: u64, cap: Duration) -> Limit {
        Limit {
            count: Some(n),
            time: Some(cap),
        }
    }

    pub fn time(d: Duration) -> Limit {
        Limit {
            count: None,
            time: Some(d),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Load {
    pub done: u64,
    pub elapsed: Duration,
    /// Sorted, in milliseconds.
    latencies_ms: Vec<f64>,
}

impl Load {
    pub fn rate(&self) -> f64 {
        super::per_second(self.done as f64, self.elapsed)
    }

    /// The `p`-quantile latency in ms (nearest rank).
    pub fn quantile(&self, p: f64) -> f64 {
        quantile(&self.latencies_ms, p)
    }

    /// "p50 1.2 ms, p99 4.5 ms".
    pub fn latency_note(&self) -> String {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms",
            self.quantile(0.5),
            self.quantile(0.99)
        )
    }
}

/// Nearest-rank quantile of sorted values.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `per_connection` operations per connection, numbered from `from` (so they touch rows
/// of their own), before a measured load: connections opened, pools filled and caches warm,
/// as on a hub that has been serving. Returns how many were done.
pub async fn warm_up(
    concurrency: usize,
    per_connection: u64,
    from: u64,
    op: Op,
) -> anyhow::Result<u64> {
    let shifted: Op = Arc::new(move |k| op(from + k));
    let n = concurrency as u64 * per_connection;
    let load = closed_loop(
        concurrency,
        Limit::count(n, Duration::from_secs(60)),
        shifted,
    )
    .await?;
    Ok(load.done)
}

/// Runs `op` from `concurrency` workers until `limit`. The first failed operation stops the
/// run and is returned: a benchmark with failures measures something else.
pub async fn closed_loop(concurrency: usize, limit: Limit, op: Op) -> anyhow::Result<Load> {
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = limit.time.map(|t| started + t);
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (next, stop, op) = (next.clone(), stop.clone(), op.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if limit.count.is_some_and(|c| n >= c) {
                    break;
                }
                let t0 = Instant::now();
                if let Err(e) = op(n).await {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e.context(format!("operation {n}")));
                }
                latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    let mut first_error = None;
    for w in workers {
        match w.await {
            Ok(Ok(l)) => all.extend(l),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(anyhow::anyhow!("a load worker died: {e}"));
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = first_error {
        return Err(e);
    }
    if all.is_empty() {
        bail!("no operation finished within the time allowed");
    }
    all.sort_by(f64::total_cmp);
    Ok(Load {
        done: all.len() as u64,
        elapsed,
        latencies_ms: all,
    })
}

/// Sends a request and reads the whole answer; anything but a 2xx is an error naming it.
/// Returns the answer's length.
pub async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<usize> {
    let resp = req.send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        bail!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    Ok(body.len())
}

/// Sends a request and decodes its JSON answer (to check what a scenario did, untimed).
pub async fn fetch(req: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
    let resp = req.send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        bail!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
    }

    #[tokio::test]
    async fn the_loop_stops_at_its_count_and_on_the_first_failure() {
        let op: Op = Arc::new(|_| Box::pin(async { Ok(()) }));
        let load = closed_loop(4, Limit::count(100, Duration::from_secs(10)), op)
            .await
            .unwrap();
        assert_eq!(load.done, 100);
        let op: Op = Arc::new(|n| {
            Box::pin(async move {
                if n == 10 {
                    anyhow::bail!("boom")
                }
                Ok(())
            })
        });
        let err = closed_loop(2, Limit::count(100, Duration::from_secs(10)), op)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("boom"));
    }
}
