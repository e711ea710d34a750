//! A production-grade async client of the IYS API.
//!
//! - One access token for all callers, refreshed ~5 minutes early by a single caller (refresh
//!   grant, falling back to the password grant); a 401 re-authenticates once; after H084 no
//!   token call is made until the hour has passed. Token state goes through [`TokenStore`].
//! - Rate budgets (requests per second, status/history/token per hour): callers wait for budget.
//! - Transient failures retry with exponential back-off and jitter, honouring `Retry-After`;
//!   permanent answers come back at once as [`ClientError::Iys`] with every IYS error item.
//!   Adds and bulk submits use IYS's v2 endpoints, whose replays IYS deduplicates, so a retry
//!   never creates a second movement.
//! - Recipients are masked in logs.

mod budget;
mod config;
mod error;
mod token;

use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Digest;
use tracing::Instrument;

use iys::wire::{
    AddConsentResponse, AgreementCaptured, AgreementConfirm, AgreementHash, Brand, BulkAccepted,
    BulkItemStatus, BulkResultItem, ChangeSource, ChangeSummary, ChangesResponse, City, Consent,
    ConsentQuery, ConsentStatusResponse, HistoryResponse, MessageResponse, Movement,
    MultiStatusResponse, PushConnection, PushRegistration, PushRegistrationItem, RecipientList,
    Retailer, RetailerAccessBulk, RetailerAccessGrant, RetailerCreated, RetailerList, Subscription,
    Town, TransactionReceipt,
};
use iys::{ConsentType, IysErrors, RecipientType};

pub use budget::{HourlyWindow, Window};
pub use config::{Budgets, BulkPolling, ClientConfig, RetryPolicy, Secret};
pub use error::ClientError;
pub use token::{MemoryTokenStore, StoreFuture, TokenState, TokenStore};

/// Where the client reads the time (tests drive it together with the simulator's clock).
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Which hourly budget a call draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hourly {
    Status,
    History,
}

/// Whether a call may be sent again when its answer is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Reads and IYS-deduplicated writes (v2).
    Safe,
    /// Resend only when the request surely never left (connection refused).
    Unsafe,
}

/// One HTTP call to IYS.
struct Call<'a> {
    endpoint: &'static str,
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    /// Serialised once, in the wire types' field order (IYS's own).
    body: Option<Vec<u8>>,
    brand: Option<u64>,
    hourly: Option<Hourly>,
    replay: Replay,
    /// A recipient to name (masked) in logs.
    recipient: Option<&'a str>,
    /// A bulk request the call is about.
    request_id: Option<&'a str>,
}

impl<'a> Call<'a> {
    fn new(endpoint: &'static str, method: Method, path: String) -> Call<'a> {
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

    fn brand(mut self, brand: u64) -> Self {
        self.brand = Some(brand);
        self
    }

    fn json(mut self, body: &impl Serialize) -> Result<Self, ClientError> {
        self.body =
            Some(serde_json::to_vec(body).map_err(|e| ClientError::Invalid(e.to_string()))?);
        Ok(self)
    }
}

/// A successful answer: status and raw body.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Decode {
            status: self.status.as_u16(),
            message: e.to_string(),
        })
    }

    fn is_empty(&self) -> bool {
        self.status == StatusCode::NO_CONTENT || self.body.iter().all(u8::is_ascii_whitespace)
    }
}

/// A page of the changes feed whose movements are not decoded yet.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RawChangesPage {
    /// The cursor after the page's last movement.
    pub after: String,
    pub list: Vec<serde_json::Value>,
}

/// The masked form of a recipient for logs (`+90532*****67`, `a***@example.com`).
pub fn mask(recipient: &str) -> String {
    iys::Recipient::normalise(recipient)
        .map(|r| r.masked())
        .unwrap_or_else(|_| "***".into())
}

/// The IYS client. Cheap to clone; clones share token, budgets and connections.
#[derive(Debug, Clone)]
pub struct IysClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    http: reqwest::Client,
    tokens: token::TokenManager,
    per_second: Arc<Window>,
    status_budget: HourlyWindow,
    history_budget: HourlyWindow,
    clock: Arc<dyn Clock>,
}

impl IysClient {
    /// A client with an in-memory token store and the system clock.
    pub fn new(config: ClientConfig) -> Result<IysClient, ClientError> {
        IysClient::with_parts(
            config,
            Arc::new(MemoryTokenStore::default()),
            Arc::new(SystemClock),
        )
    }

    /// A client with its token kept in `store` and time read from `clock`.
    pub fn with_parts(
        config: ClientConfig,
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<IysClient, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("iyshub/", env!("CARGO_PKG_VERSION")))
            .build()?;
        // A little over a second: network and scheduling jitter must not squeeze N+1 requests into
        // IYS's sliding second (5 % below IYS's rate is the price).
        let per_second = Arc::new(Window::new(
            config.budgets.per_second,
            Duration::from_millis(1050),
        ));
        let tokens = token::TokenManager {
            http: http.clone(),
            url: format!("{}/oauth2/token", config.base_url),
            username: config.username.clone(),
            password: config.password.clone(),
            store,
            clock: clock.clone(),
            margin: jiff::SignedDuration::try_from(config.refresh_margin)
                .unwrap_or(jiff::SignedDuration::from_mins(5)),
            budget: HourlyWindow::new(config.budgets.token_per_hour, clock.clone()),
            per_second: per_second.clone(),
            flight: tokio::sync::Mutex::new(()),
        };
        Ok(IysClient {
            inner: Arc::new(Inner {
                status_budget: HourlyWindow::new(config.budgets.status_per_hour, clock.clone()),
                history_budget: HourlyWindow::new(config.budgets.history_per_hour, clock.clone()),
                http,
                tokens,
                per_second,
                clock,
                config,
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn sps(&self, brand: u64) -> String {
        format!("/sps/{}/brands/{brand}", self.inner.config.iys_code)
    }

    /// Gets a token now (or reports why not): for operators checking a setup.
    pub async fn check_token(&self) -> Result<TokenState, ClientError> {
        self.inner.tokens.access_token().await?;
        self.inner.tokens.state().await
    }

    pub async fn token_state(&self) -> Result<TokenState, ClientError> {
        self.inner.tokens.state().await
    }

    /// Sends one call with budgets, token, retries and logging.
    async fn send(&self, call: Call<'_>) -> Result<Answer, ClientError> {
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
                Some(Hourly::Status) => inner.status_budget.acquire().await,
                Some(Hourly::History) => inner.history_budget.acquire().await,
                None => {}
            }
            let token = inner.tokens.access_token().await?;
            inner.per_second.acquire().await;
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

    async fn json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, ClientError> {
        self.send(call).await?.json()
    }

    // ---------------------------------------------------------------------------------------
    // Consents

    /// Adds or updates one consent (v2: a replay returns the same transaction, never a second movement).
    pub async fn add_consent(
        &self,
        brand: u64,
        consent: &Consent,
    ) -> Result<AddConsentResponse, ClientError> {
        let mut call = Call::new(
            "add_v2",
            Method::POST,
            format!("/v2{}/consents", self.sps(brand)),
        )
        .brand(brand)
        .json(consent)?;
        call.recipient = Some(&consent.recipient);
        self.json(call).await
    }

    /// The v1 add: not deduplicated by IYS, so never resent once it may have arrived.
    pub async fn add_consent_v1(
        &self,
        brand: u64,
        consent: &Consent,
    ) -> Result<AddConsentResponse, ClientError> {
        let mut call = Call::new("add", Method::POST, format!("{}/consents", self.sps(brand)))
            .brand(brand)
            .json(consent)?;
        call.recipient = Some(&consent.recipient);
        call.replay = Replay::Unsafe;
        self.json(call).await
    }

    /// Submits consents as v2 async bulk requests of at most 1000. A recipient may appear once
    /// per request (IYS's H194), so duplicates are refused before anything is sent.
    pub async fn submit_bulk(
        &self,
        brand: u64,
        consents: &[Consent],
    ) -> Result<Vec<BulkAccepted>, ClientError> {
        let chunks: Vec<&[Consent]> = consents.chunks(iys::rules::MAX_BULK).collect();
        for (n, chunk) in chunks.iter().enumerate() {
            let mut seen = std::collections::HashSet::new();
            for (i, c) in chunk.iter().enumerate() {
                let key = (
                    c.recipient_type.unwrap_or_default(),
                    c.consent_type,
                    c.recipient.as_str(),
                );
                if !seen.insert(key) {
                    return Err(ClientError::Invalid(format!(
                        "bulk item {} ({}) repeats a recipient and type already in request {n} (IYS: H194)",
                        n * iys::rules::MAX_BULK + i,
                        mask(&c.recipient)
                    )));
                }
            }
        }
        let mut accepted = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let call = Call::new(
                "bulk_v2",
                Method::POST,
                format!("/v2{}/consents/request", self.sps(brand)),
            )
            .brand(brand)
            .json(&chunk)?;
            let a: BulkAccepted = self.json(call).await?;
            tracing::info!(request_id = %a.request_id, items = chunk.len(), "bulk request accepted");
            accepted.push(a);
        }
        Ok(accepted)
    }

    /// The current result array of a bulk request (`[]` until IYS starts processing it).
    pub async fn bulk_result(
        &self,
        brand: u64,
        request_id: &str,
    ) -> Result<Vec<BulkResultItem>, ClientError> {
        let mut call = Call::new(
            "bulk_result_v2",
            Method::GET,
            format!("/v2{}/consents/request/{request_id}", self.sps(brand)),
        )
        .brand(brand);
        call.request_id = Some(request_id);
        self.json(call).await
    }

    /// Waits until the request is old enough to poll, then polls on the configured schedule until
    /// every item is settled (`success`/`failure`).
    pub async fn wait_bulk(
        &self,
        brand: u64,
        request_id: &str,
        submitted: Timestamp,
    ) -> Result<Vec<BulkResultItem>, ClientError> {
        let polling = &self.inner.config.bulk;
        let age = self.inner.clock.now().duration_since(submitted);
        let min_age = jiff::SignedDuration::try_from(polling.min_age).unwrap_or_default();
        if age < min_age {
            tokio::time::sleep((min_age - age).unsigned_abs()).await;
        }
        for poll in 0..polling.max_polls {
            let items = self.bulk_result(brand, request_id).await?;
            let done =
                !items.is_empty() && items.iter().all(|i| i.status != BulkItemStatus::Enqueue);
            if done {
                return Ok(items);
            }
            let idx = (poll as usize).min(polling.schedule.len().saturating_sub(1));
            let wait = polling
                .schedule
                .get(idx)
                .copied()
                .unwrap_or(Duration::from_secs(60));
            tokio::time::sleep(wait).await;
        }
        Err(ClientError::BulkNotFinished {
            request_id: request_id.to_owned(),
            polls: polling.max_polls,
        })
    }

    /// Single status (1000 per hour); `None` when IYS does not have the consent.
    pub async fn status(
        &self,
        brand: u64,
        query: &ConsentQuery,
    ) -> Result<Option<ConsentStatusResponse>, ClientError> {
        let mut call = Call::new(
            "status",
            Method::POST,
            format!("{}/consents/status", self.sps(brand)),
        )
        .brand(brand)
        .json(query)?;
        call.hourly = Some(Hourly::Status);
        call.recipient = Some(&query.recipient);
        match self.send(call).await {
            Ok(a) if a.is_empty() || a.body == b"{}" => Ok(None),
            Ok(a) => a.json().map(Some),
            Err(ClientError::Iys { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Which of `recipients` are ONAY, asking 1000 at a time.
    pub async fn multi_status(
        &self,
        brand: u64,
        recipient_type: RecipientType,
        consent_type: ConsentType,
        recipients: &[String],
    ) -> Result<Vec<String>, ClientError> {
        let mut onay = Vec::new();
        for chunk in recipients.chunks(iys::rules::MAX_BULK) {
            let call = Call::new(
                "multi_status",
                Method::POST,
                format!(
                    "{}/consents/{recipient_type}/status/{consent_type}",
                    self.sps(brand)
                ),
            )
            .brand(brand)
            .json(&RecipientList {
                recipients: chunk.to_vec(),
            })?;
            let r: MultiStatusResponse = self.json(call).await?;
            onay.extend(r.list);
        }
        Ok(onay)
    }

    /// Every movement of one consent (all pages, 100 per call, 100 calls per hour).
    pub async fn history(
        &self,
        brand: u64,
        query: &ConsentQuery,
    ) -> Result<Vec<Movement>, ClientError> {
        let mut all = Vec::new();
        loop {
            let mut call = Call::new(
                "history",
                Method::POST,
                format!("{}/consents/history", self.sps(brand)),
            )
            .brand(brand)
            .json(query)?;
            call.query = vec![("limit", "100".into()), ("offset", all.len().to_string())];
            call.hourly = Some(Hourly::History);
            call.recipient = Some(&query.recipient);
            let page: HistoryResponse = self.json(call).await?;
            let n = page.list.len();
            all.extend(page.list);
            if n == 0 || all.len() as u64 >= page.pagination.total_count {
                return Ok(all);
            }
        }
    }

    fn changes_call<'a>(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<&str>,
        limit: u32,
    ) -> Call<'a> {
        let mut call = Call::new(
            "changes",
            Method::GET,
            format!("{}/consents/changes", self.sps(brand)),
        )
        .brand(brand);
        call.query = vec![
            ("source", source.as_str().into()),
            ("limit", limit.to_string()),
        ];
        if let Some(a) = after {
            call.query.push(("after", a.to_owned()));
        }
        call
    }

    /// One page of the changes feed; `None` when IYS has nothing (204).
    pub async fn changes_page(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Option<ChangesResponse>, ClientError> {
        self.changes_page_as(brand, source, after, limit).await
    }

    /// One page of the changes feed with its items undecoded, so one unreadable movement does
    /// not hold up the rest (the caller decodes each and sets aside what it cannot read);
    /// `None` when IYS has nothing (204).
    pub async fn changes_page_raw(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Option<RawChangesPage>, ClientError> {
        self.changes_page_as(brand, source, after, limit).await
    }

    async fn changes_page_as<T: DeserializeOwned>(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Option<T>, ClientError> {
        let a = self
            .send(self.changes_call(brand, source, after, limit))
            .await?;
        if a.is_empty() {
            return Ok(None);
        }
        a.json().map(Some)
    }

    /// The changes feed from `after` as a stream of pages, each with the cursor to store, until
    /// IYS answers 204 or a short page.
    pub fn changes(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<String>,
        limit: u32,
    ) -> impl Stream<Item = Result<ChangesResponse, ClientError>> + '_ {
        futures_util::stream::unfold(Some(after), move |cursor| async move {
            let cursor = cursor?;
            match self
                .changes_page(brand, source, cursor.as_deref(), limit)
                .await
            {
                Ok(None) => None,
                Ok(Some(page)) => {
                    let next = (page.list.len() as u32 >= limit).then(|| Some(page.after.clone()));
                    Some((Ok(page), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    // ---------------------------------------------------------------------------------------
    // Push

    pub async fn push_register(
        &self,
        brand: u64,
        connections: Vec<PushConnection>,
    ) -> Result<MessageResponse, ClientError> {
        let call = Call::new(
            "push_register",
            Method::POST,
            format!("{}/push/registration", self.sps(brand)),
        )
        .brand(brand)
        .json(&PushRegistration {
            connection: connections,
        })?;
        self.json(call).await
    }

    pub async fn push_list(&self, brand: u64) -> Result<Vec<PushRegistrationItem>, ClientError> {
        self.json(
            Call::new(
                "push_list",
                Method::GET,
                format!("{}/push/registration", self.sps(brand)),
            )
            .brand(brand),
        )
        .await
    }

    pub async fn push_unregister(
        &self,
        brand: u64,
        connection: &PushConnection,
    ) -> Result<MessageResponse, ClientError> {
        let call = Call::new(
            "push_unregister",
            Method::POST,
            format!("{}/push/unregistration", self.sps(brand)),
        )
        .brand(brand)
        .json(connection)?;
        self.json(call).await
    }

    // ---------------------------------------------------------------------------------------
    // Brands, subscription, info

    pub async fn brands(&self) -> Result<Vec<Brand>, ClientError> {
        self.json(Call::new(
            "brands",
            Method::GET,
            format!("/sps/{}/brands", self.inner.config.iys_code),
        ))
        .await
    }

    pub async fn subscription(&self) -> Result<Subscription, ClientError> {
        self.json(Call::new(
            "subscription",
            Method::GET,
            format!("/sps/{}/subscription", self.inner.config.iys_code),
        ))
        .await
    }

    pub async fn cities(&self) -> Result<Vec<City>, ClientError> {
        self.json(Call::new("info", Method::GET, "/info/city".into()))
            .await
    }

    pub async fn towns(&self) -> Result<Vec<Town>, ClientError> {
        self.json(Call::new("info", Method::GET, "/info/town".into()))
            .await
    }

    // ---------------------------------------------------------------------------------------
    // Dealers

    pub async fn retailer_create(
        &self,
        brand: u64,
        retailer: &Retailer,
    ) -> Result<RetailerCreated, ClientError> {
        let call = Call::new(
            "retailers",
            Method::POST,
            format!("{}/retailers", self.sps(brand)),
        )
        .brand(brand)
        .json(retailer)?;
        self.json(call).await
    }

    pub async fn retailer_list(
        &self,
        brand: u64,
        offset: u64,
        limit: u64,
    ) -> Result<RetailerList, ClientError> {
        let mut call = Call::new(
            "retailers",
            Method::GET,
            format!("{}/retailers", self.sps(brand)),
        )
        .brand(brand);
        call.query = vec![("offset", offset.to_string()), ("limit", limit.to_string())];
        self.json(call).await
    }

    pub async fn retailer_get(
        &self,
        brand: u64,
        code: u64,
    ) -> Result<Option<Retailer>, ClientError> {
        let a = self
            .send(
                Call::new(
                    "retailers",
                    Method::GET,
                    format!("{}/retailers/{code}", self.sps(brand)),
                )
                .brand(brand),
            )
            .await?;
        if a.is_empty() || a.body == b"{}" {
            return Ok(None);
        }
        a.json().map(Some)
    }

    pub async fn retailer_delete(&self, brand: u64, code: u64) -> Result<(), ClientError> {
        self.send(
            Call::new(
                "retailers",
                Method::DELETE,
                format!("{}/retailers/{code}", self.sps(brand)),
            )
            .brand(brand),
        )
        .await
        .map(|_| ())
    }

    pub async fn retailer_access_grant(
        &self,
        brand: u64,
        grant: &RetailerAccessGrant,
    ) -> Result<TransactionReceipt, ClientError> {
        let call = Call::new(
            "retailer_access",
            Method::POST,
            format!("{}/consents/retailers/access", self.sps(brand)),
        )
        .brand(brand)
        .json(grant)?;
        self.json(call).await
    }

    pub async fn retailer_access_replace(
        &self,
        brand: u64,
        body: &RetailerAccessBulk,
    ) -> Result<(), ClientError> {
        let call = Call::new(
            "retailer_access",
            Method::PUT,
            format!("{}/consents/retailers/access", self.sps(brand)),
        )
        .brand(brand)
        .json(body)?;
        self.send(call).await.map(|_| ())
    }

    pub async fn retailer_access_list(
        &self,
        brand: u64,
        query: &ConsentQuery,
    ) -> Result<RetailerList, ClientError> {
        let call = Call::new(
            "retailer_access",
            Method::POST,
            format!("{}/consent/retailers/access/list", self.sps(brand)),
        )
        .brand(brand)
        .json(query)?;
        self.json(call).await
    }

    /// Removes the given dealers' access, or every dealer's when `retailerAccess` is absent.
    pub async fn retailer_access_remove(
        &self,
        brand: u64,
        body: &RetailerAccessBulk,
    ) -> Result<(), ClientError> {
        let path = match body.retailer_access {
            Some(_) => format!("{}/consents/retailers/access/remove", self.sps(brand)),
            None => format!("{}/consents/retailers/access/remove/all", self.sps(brand)),
        };
        let call = Call::new("retailer_access", Method::POST, path)
            .brand(brand)
            .json(body)?;
        self.send(call).await.map(|_| ())
    }

    // ---------------------------------------------------------------------------------------
    // Reconciliation

    pub async fn day_summary(
        &self,
        brand: u64,
        date: jiff::civil::Date,
        recipient_type: RecipientType,
    ) -> Result<ChangeSummary, ClientError> {
        let call = Call::new(
            "reconciliation",
            Method::GET,
            format!(
                "{}/changes/{date}/recipients/{recipient_type}",
                self.sps(brand)
            ),
        )
        .brand(brand);
        self.json(call).await
    }

    /// The daily hash; `None` when the day has no movements (204).
    pub async fn agreement(
        &self,
        brand: u64,
        date: jiff::civil::Date,
    ) -> Result<Option<AgreementHash>, ClientError> {
        let a = self
            .send(
                Call::new(
                    "reconciliation",
                    Method::GET,
                    format!("{}/agreements/{date}", self.sps(brand)),
                )
                .brand(brand),
            )
            .await?;
        if a.is_empty() {
            return Ok(None);
        }
        a.json().map(Some)
    }

    pub async fn agreement_confirm(
        &self,
        brand: u64,
        date: jiff::civil::Date,
    ) -> Result<Option<AgreementCaptured>, ClientError> {
        let call = Call::new(
            "reconciliation",
            Method::PUT,
            format!("{}/agreements/{date}", self.sps(brand)),
        )
        .brand(brand)
        .json(&AgreementConfirm {
            agreement_status: true,
        })?;
        let a = self.send(call).await?;
        if a.is_empty() {
            return Ok(None);
        }
        a.json().map(Some)
    }

    /// The daily movement file; `None` when the day has no movements (204).
    pub async fn daily_file(
        &self,
        brand: u64,
        date: jiff::civil::Date,
    ) -> Result<Option<String>, ClientError> {
        let a = self
            .send(
                Call::new(
                    "reconciliation",
                    Method::GET,
                    format!("{}/changes/{date}/file", self.sps(brand)),
                )
                .brand(brand),
            )
            .await?;
        if a.status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        String::from_utf8(a.body)
            .map(Some)
            .map_err(|e| ClientError::Decode {
                status: 200,
                message: e.to_string(),
            })
    }

    /// Downloads the daily file and checks it against IYS's SHA-384; `None` when the day is
    /// empty or IYS has not computed its hash yet.
    pub async fn verified_daily_file(
        &self,
        brand: u64,
        date: jiff::civil::Date,
    ) -> Result<Option<String>, ClientError> {
        let Some(hash) = self
            .agreement(brand, date)
            .await?
            .and_then(|h| h.hash_value)
        else {
            return Ok(None);
        };
        let Some(file) = self.daily_file(brand, date).await? else {
            return Ok(None);
        };
        let actual = hex::encode(sha2::Sha384::digest(file.as_bytes()));
        if !actual.eq_ignore_ascii_case(&hash) {
            return Err(ClientError::HashMismatch {
                date: date.to_string(),
                expected: hash,
                actual,
            });
        }
        Ok(Some(file))
    }
}

fn exhausted(attempts: u32, last: ClientError) -> ClientError {
    ClientError::RetriesExhausted {
        attempts,
        last: Box::new(last),
    }
}
