//! `iyshub serve` as a child process for the end-to-end tests.
#![allow(dead_code)]

pub mod webdriver;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;

/// A running `iyshub serve`; killed when dropped, so a failing test leaves no process behind.
#[derive(Debug)]
pub struct HubProcess {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl HubProcess {
    /// SIGKILL (what `Child::kill` sends on Unix), then reap it. Returns its log.
    pub fn kill(mut self) -> String {
        self.child.kill().expect("SIGKILL iyshub serve");
        self.child.wait().expect("reap iyshub serve");
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- iyshub serve log ({}) ---\n{}",
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

/// Two distinct free ports (both held while probing, so the OS cannot hand out one twice).
pub fn free_ports() -> (SocketAddr, SocketAddr) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    (
        a.local_addr().expect("local address"),
        b.local_addr().expect("local address"),
    )
}

/// `iyshub serve` on `dir` (SQLite, the built-in simulator, free ports) with `env` on top, once
/// `/readyz` answers. Returns the hub and the simulator's address.
pub async fn serve_ready(
    dir: &Path,
    env: &[(&str, &str)],
    http: &reqwest::Client,
) -> (HubProcess, SocketAddr) {
    use std::time::{Duration, Instant};
    for attempt in 0..5 {
        let (api, sim) = free_ports();
        let log = dir.join(format!("serve-{attempt}.log"));
        let out = std::fs::File::create(&log).expect("create the log");
        let err = out.try_clone().expect("clone the log");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_iyshub"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("IYSHUB_") {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(dir)
            .arg("serve")
            .env("IYSHUB_DATA_DIR", dir.join("data"))
            .env("IYSHUB_BIND", api.to_string())
            .env("IYSHUB_SIM_BIND", sim.to_string())
            .env("IYSHUB_METRICS_BIND", "off")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut hub = HubProcess {
            child: cmd.spawn().expect("spawn iyshub serve"),
            base: format!("http://{api}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = hub.child.try_wait().expect("poll iyshub serve") {
                let log = tail(&hub.log, 40);
                // Someone took a port between our probe and the bind: try others.
                assert!(
                    log.contains("binding"),
                    "iyshub serve exited ({status}):\n{log}"
                );
                break;
            }
            if let Ok(r) = http.get(format!("{}/readyz", hub.base)).send().await
                && r.status().is_success()
            {
                return (hub, sim);
            }
            assert!(
                Instant::now() < deadline,
                "iyshub serve not ready after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("iyshub serve did not start");
}
