//! Simulator benchmark: is the simulator ever the bottleneck?
//!
//! 1. Single adds per second (v2) over loopback with limits off, from our own load generator,
//!    against a baseline in the same run: an axum handler that only parses and answers JSON,
//!    driven by the same generator. The ratio shows what IYS's rules and state cost on top of HTTP.
//! 2. Memory for N stored consents (default 10 million; `SIM_BENCH_CONSENTS`), as resident set
//!    size before and after seeding, against the bare size of the recipients' text.
//!
//! Run: `cargo bench -p iys-sim --bench sim_throughput` (`SIM_BENCH_SECONDS`, `SIM_BENCH_CONCURRENCY`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use iys::ConsentDate;
use iys_sim::{Profile, SimConfig, SimServer};
use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of this process in bytes (Linux).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

struct Figures {
    requests: u64,
    errors: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// Closed-loop load: `concurrency` workers post consents as fast as answers come back.
async fn load(url: String, token: Option<String>, seconds: u64, concurrency: u64) -> Figures {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency as usize)
        .build()
        .unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let date = ConsentDate::from_timestamp(jiff::Timestamp::now()).to_string();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token, counter, errors, date) = (
            client.clone(),
            url.clone(),
            token.clone(),
            counter.clone(),
            errors.clone(),
            date.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let body = json!({
                    "recipient": format!("+90532{:07}", n % 10_000_000),
                    "type": "MESAJ", "source": "HS_WEB", "status": "ONAY",
                    "consentDate": date, "recipientType": "BIREYSEL",
                });
                let mut req = client.post(&url).json(&body);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let t0 = Instant::now();
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Figures {
        requests: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

fn print(label: &str, f: &Figures) {
    println!(
        "{label:<34} {:>9.0} req/s  {:>8} requests  {:>5} errors  p50 {:>6.2} ms  p99 {:>6.2} ms",
        f.rate(),
        f.requests,
        f.errors,
        f.p50_ms,
        f.p99_ms
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds = env_or("SIM_BENCH_SECONDS", 5);
    let concurrency = env_or("SIM_BENCH_CONCURRENCY", 32);
    let consents = env_or("SIM_BENCH_CONSENTS", 10_000_000);
    println!(
        "simulator benchmark: {seconds} s per run, {concurrency} concurrent clients, loopback"
    );

    // Baseline: HTTP + JSON only.
    let baseline = Router::new().route(
        "/baseline",
        post(|Json(v): Json<Value>| async move {
            Json(json!({"transactionId": v["recipient"], "creationDate": "2026-01-01 00:00:00"}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, baseline).await });
    let base = load(
        format!("http://{base_addr}/baseline"),
        None,
        seconds,
        concurrency,
    )
    .await;
    print("baseline (axum JSON echo)", &base);

    // The simulator, limits off.
    let mut config = SimConfig::for_profile(Profile::Fast);
    config.limits.enabled = false;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = SimServer::start(config, listener, None).await.unwrap();
    let token: Value = reqwest::Client::new()
        .post(format!("{}/oauth2/token", server.base_url()))
        .json(&json!({"grant_type": "password", "username": "demo", "password": "demo-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let url = format!("{}/v2/sps/600123/brands/600123/consents", server.base_url());
    let sim = load(url, Some(token), seconds, concurrency).await;
    print("simulator v2 single add", &sim);
    let stored = server.sim.state.lock().unwrap().movement_count();
    println!(
        "simulator's own count of stored movements: {stored} (load generator sent {})",
        sim.requests
    );
    println!(
        "ratio simulator / baseline: {:.2}",
        sim.rate() / base.rate()
    );
    server.shutdown().await.unwrap();

    // Memory for stored consents.
    let config = SimConfig::for_profile(Profile::Fast);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = SimServer::start(config, listener, None).await.unwrap();
    let before = rss_bytes();
    let t0 = Instant::now();
    let now = jiff::Timestamp::now();
    {
        let mut state = server.sim.state.lock().unwrap();
        let phones = consents.min(10_000_000);
        state.seed(600_123, iys::ConsentType::Mesaj, phones, 0, now);
        if consents > phones {
            state.seed(600_123, iys::ConsentType::Eposta, consents - phones, 0, now);
        }
    }
    let seeded = t0.elapsed();
    let after = rss_bytes();
    let per = (after.saturating_sub(before)) as f64 / consents as f64;
    let raw = "+905321234567".len() as f64;
    println!(
        "memory: {consents} consents seeded in {:.1} s; RSS {:.0} MiB → {:.0} MiB; {:.0} bytes per consent (recipient text alone: {raw:.0} bytes, ratio {:.1})",
        seeded.as_secs_f64(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per,
        per / raw
    );
    server.shutdown().await.unwrap();
}
