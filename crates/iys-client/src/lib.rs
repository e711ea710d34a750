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

mod account;
mod budget;
mod bulk;
mod changes;
mod config;
mod consents;
mod dealers;
mod error;
mod push;
mod reconciliation;
mod token;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::Method;

use transport::Call;

pub use budget::{HourlyWindow, Limits, Window};
pub use bulk::PreparedBulk;
pub use changes::RawChangesPage;
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
    limits: Arc<Limits>,
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

    /// A client with its token kept in `store` and time read from `clock`, with budgets of its
    /// own (`config.budgets`).
    pub fn with_parts(
        config: ClientConfig,
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<IysClient, ClientError> {
        let limits = Limits::new(&config.budgets, clock.clone());
        IysClient::with_limits(config, store, clock, limits)
    }

    /// A client drawing on `limits`, which other clients leaving through the same IP share
    /// (`config.budgets` is then not read).
    pub fn with_limits(
        config: ClientConfig,
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
        limits: Arc<Limits>,
    ) -> Result<IysClient, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("iyshub/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let tokens = token::TokenManager {
            http: http.clone(),
            url: format!("{}/oauth2/token", config.base_url),
            username: config.username.clone(),
            password: config.password.clone(),
            store,
            clock: clock.clone(),
            margin: jiff::SignedDuration::try_from(config.refresh_margin)
                .unwrap_or(jiff::SignedDuration::from_mins(5)),
            limits: limits.clone(),
            flight: tokio::sync::Mutex::new(()),
            recent: std::sync::Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
        };
        Ok(IysClient {
            inner: Arc::new(Inner {
                http,
                tokens,
                limits,
                clock,
                config,
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// How much the client now stretches IYS's second by: the configured guard, wider for a
    /// while after IYS refused the pace.
    pub async fn pace_guard(&self) -> Duration {
        self.inner.limits.pace_guard().await
    }

    fn sps(&self, brand: u64) -> String {
        format!("/sps/{}/brands/{brand}", self.inner.config.iys_code)
    }

    /// A call on one of the brand's (v1) endpoints: `path` follows `/sps/{iysCode}/brands/{brand}`.
    fn brand_call<'a>(
        &self,
        endpoint: &'static str,
        method: Method,
        brand: u64,
        path: impl std::fmt::Display,
    ) -> Call<'a> {
        Call::new(endpoint, method, format!("{}{path}", self.sps(brand))).brand(brand)
    }

    /// Gets a token now (or reports why not): for operators checking a setup.
    pub async fn check_token(&self) -> Result<TokenState, ClientError> {
        self.inner.tokens.access_token().await?;
        self.inner.tokens.state().await
    }

    pub async fn token_state(&self) -> Result<TokenState, ClientError> {
        self.inner.tokens.state().await
    }
}
