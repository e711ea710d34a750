//! `iyshub serve` as a child process for the end-to-end tests.
#![allow(dead_code)]

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
