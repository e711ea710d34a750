//! One call to IYS: budgets, token, retries with back-off, logging and metrics.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use iys::IysErrors;

use crate::{ClientError, IysClient, mask};

/// Which hourly budget a call draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hourly {
    Status,
    History,
}

/// Whether a call may be sent again when its answer is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Reads and IYS-deduplicated writes (v2).
    Safe,
    /// Resend only when the request surely never left (connection refused).
    Unsafe,
}

/// One HTTP call to IYS.
pub(crate) struct Call<'a> {
    pub(crate) endpoint: &'static str,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(&'static str, String)>,
    /// Serialised once, in the wire types' field order (IYS's own).
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) brand: Option<u64>,
    pub(crate) hourly: Option<Hourly>,
    pub(crate) replay: Replay,
    /// A recipient to name (masked) in logs.
    pub(crate) recipient: Option<&'a str>,
    /// A bulk request the call is about.
    pub(crate) request_id: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(endpoint: &'static str, method: Method, path: String) -> Call<'a> {
        Call {
            endpoint,
            method,
            path,
            query: Vec::new(),
            body: None,
            brand: None,
            hourly: None,
            replay: Replay::Safe,
            recipient: None,
            request_id: None,
        }
    }

    pub(crate) fn brand(mut self, brand: u64) -> Self {
        self.brand = Some(brand);
        self
    }

    pub(crate) fn json(mut self, body: &impl Serialize) -> Result<Self, ClientError> {
        self.body =
            Some(serde_json::to_vec(body).map_err(|e| ClientError::Invalid(e.to_string()))?);
        Ok(self)
    }
}

/// A successful answer: status and raw body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Decode {
            status: self.status.as_u16(),
            message: e.to_string(),
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.status == StatusCode::NO_CONTENT || self.body.iter().all(u8::is_ascii_whitespace)
    }

    /// Whether IYS answered "nothing" with 204, a blank body or `{}` (single status, one dealer).
    pub(crate) fn is_absent(&self) -> bool {
        self.is_empty() || self.body == b"{}"
    }

    /// The body decoded, or `None` for an answer without one (204 or blank).
    pub(crate) fn json_if_any<T: DeserializeOwned>(&self) -> Result<Option<T>, ClientError> {
        if self.is_empty() {
            return Ok(None);
        }
        self.json().map(Some)
    }
}

impl IysClient {
    /// Sends one call with budgets, token, retries and logging.
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Answer, ClientError> {
        let span = tracing::info_span!(
            "iys",
            endpoint = call.endpoint,
            brand = call.brand,
            recipient = call.recipient.map(mask),
            status = tracing::field::Empty,
            codes = tracing::field::Empty,
            request_id = call.request_id,
        );
        // Entered only while polled: an `enter()` guard held across awaits stays entered on a
        // worker thread the task has left, where other tasks then find a closed span as their
        // parent (tracing-subscriber panics on it, e.g. inside a SQLite query of the API).
        let endpoint = call.endpoint;
        let started = std::time::Instant::now();
        let result = self.send_in(call, &span).instrument(span.clone()).await;
        // Per endpoint and outcome, retries and budget waits included: what a caller waited.
        metrics::histogram!(
            "iyshub_iys_request_duration_seconds",
            "endpoint" => endpoint,
            "outcome" => if result.is_ok() { "ok" } else { "error" },
        )
        .record(started.elapsed().as_secs_f64());
        result
    }

    async fn send_in(&self, call: Call<'_>, span: &tracing::Span) -> Result<Answer, ClientError> {
        let inner = &self.inner;
        let url = format!("{}{}", inner.config.base_url, call.path);
        let policy = &inner.config.retry;
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        loop {
            match call.hourly {
                Some(Hourly::Status) => inner.limits.status.acquire().await,
                Some(Hourly::History) => inner.limits.history.acquire().await,
                None => {}
            }
            let token = inner.tokens.access_token().await?;
            inner.limits.per_second.acquire().await;
            let mut req = inner
                .http
                .request(call.method.clone(), &url)
                .bearer_auth(&token);
            if !call.query.is_empty() {
                req = req.query(&call.query);
            }
            if let Some(body) = &call.body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let failure = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let body = match resp.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) => {
                            // The answer was cut mid-way: IYS may have acted on the request.
                            if call.replay == Replay::Unsafe {
                                return Err(ClientError::Ambiguous(e.to_string()));
                            }
                            attempt += 1;
                            if attempt >= policy.max_attempts {
                                return Err(exhausted(attempt, ClientError::Transport(e)));
                            }
                            tokio::time::sleep(policy.delay(attempt - 1, None)).await;
                            continue;
                        }
                    };
                    span.record("status", status.as_u16());
                    if status.is_success() {
                        return Ok(Answer { status, body });
                    }
                    let errors = serde_json::from_slice::<IysErrors>(&body)
                        .map(|e| e.errors)
                        .unwrap_or_default();
                    let err = ClientError::Iys {
                        status: status.as_u16(),
                        errors,
                    };
                    span.record("codes", err.codes().join(",").as_str());
                    if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                        tracing::info!("IYS refused the token (401); re-authenticating once");
                        reauthenticated = true;
                        inner.tokens.invalidate(&token).await?;
                        continue;
                    }
                    if !err.is_transient() {
                        return Err(err);
                    }
                    if err.is_over_pace() {
                        inner.limits.per_second.refused().await;
                        let guard = inner.limits.per_second.guard().await;
                        metrics::counter!("iyshub_iys_pace_refusals_total").increment(1);
                        tracing::info!(
                            guard_ms = guard.as_millis() as u64,
                            "IYS refused the pace (per-second limit); the client's guard widens"
                        );
                    }
                    (err, retry_after)
                }
                Err(e) => {
                    let never_sent = e.is_connect();
                    if call.replay == Replay::Unsafe && !never_sent {
                        return Err(ClientError::Ambiguous(e.to_string()));
                    }
                    (ClientError::Transport(e), None)
                }
            };
            let (err, retry_after) = failure;
            attempt += 1;
            if attempt >= policy.max_attempts {
                return Err(exhausted(attempt, err));
            }
            let wait = policy.delay(attempt - 1, retry_after);
            tracing::warn!(error = %err, attempt, wait_ms = wait.as_millis() as u64, "transient IYS failure; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, ClientError> {
        self.send(call).await?.json()
    }

    /// [`IysClient::json`] for endpoints that answer 204 when they have nothing.
    pub(crate) async fn json_if_any<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<Option<T>, ClientError> {
        self.send(call).await?.json_if_any()
    }
}

fn exhausted(attempts: u32, last: ClientError) -> ClientError {
    ClientError::RetriesExhausted {
        attempts,
        last: Box::new(last),
    }
}
