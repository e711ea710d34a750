//! Test support for the crates that deliver events: the independent Standard Webhooks verifier
//! (the reference Python package) and the NATS server's address. A missing package or server
//! skips its tests, except under `CI`.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// The interpreter tried when `IYSHUB_TEST_PYTHON` is unset or lacks the package.
pub const DEFAULT_PYTHON: &str = "/tmp/swvenv/bin/python";

/// Says on stderr (uncaptured, so it shows) that a test skips, or panics under `CI`.
pub fn skip_or_fail(what: &str, why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} must run under CI, but {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPING: {what}: {why} (set CI to turn this skip into a failure)"
    );
}

/// Runs `standardwebhooks.Webhook(secret).verify(body, headers)` from the reference Python
/// package: stdin carries `{"secret", "headers", "body"}` as JSON.
const VERIFY: &str = "\
import json, sys
from standardwebhooks import Webhook
d = json.load(sys.stdin)
Webhook(d['secret']).verify(d['body'], d['headers'])
";

/// The Standard Webhooks reference implementation in Python.
#[derive(Debug, Clone)]
pub struct PyVerifier {
    python: PathBuf,
}

impl PyVerifier {
    /// `IYSHUB_TEST_PYTHON`, else [`DEFAULT_PYTHON`]: the first that imports `standardwebhooks`.
    /// `None` after saying the test skips (a failure under `CI`).
    pub fn find(what: &str) -> Option<PyVerifier> {
        let candidates: Vec<PathBuf> = std::env::var_os("IYSHUB_TEST_PYTHON")
            .map(PathBuf::from)
            .into_iter()
            .chain([PathBuf::from(DEFAULT_PYTHON)])
            .collect();
        for python in &candidates {
            let ok = std::process::Command::new(python)
                .args(["-c", "import standardwebhooks"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Some(PyVerifier {
                    python: python.clone(),
                });
            }
        }
        skip_or_fail(
            what,
            &format!(
                "no Python with the `standardwebhooks` package (tried {candidates:?}); install it \
                 with `python3 -m venv /tmp/swvenv && /tmp/swvenv/bin/pip install standardwebhooks` \
                 or point IYSHUB_TEST_PYTHON at an interpreter that has it"
            ),
        );
        None
    }

    /// `Ok` when the reference implementation accepts the request; else its complaint.
    pub async fn verify(
        &self,
        secret: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), String> {
        let body = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
        let headers: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        let input = serde_json::json!({ "secret": secret, "headers": headers, "body": body });
        let mut child = tokio::process::Command::new(&self.python)
            .args(["-c", VERIFY])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin
            .write_all(input.to_string().as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        drop(stdin);
        let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(stderr.lines().last().unwrap_or("failed").to_owned())
        }
    }
}

/// The NATS server's URL: `IYSHUB_TEST_NATS_URL`, else 127.0.0.1:4222.
pub fn nats_url() -> String {
    std::env::var("IYSHUB_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "127.0.0.1:4222".to_owned())
}
