//! The token manager: one access token shared by every caller (and, through [`TokenStore`], by
//! every instance), refreshed by a single caller shortly before it expires, and no token call
//! at all while IYS's H084 halt lasts — calling early would restart IYS's hour.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use iys::wire::{TokenRequest, TokenResponse};
use iys::{IysErrors, OAuthError};

use crate::{ClientError, Clock};

/// What is known about the API user's tokens.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenState {
    pub access_token: Option<String>,
    pub access_expires: Option<Timestamp>,
    pub refresh_token: Option<String>,
    pub refresh_expires: Option<Timestamp>,
    /// After H084: no token request before this moment.
    pub halt_until: Option<Timestamp>,
}

impl fmt::Debug for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenState")
            .field("access_token", &self.access_token.as_ref().map(|_| "***"))
            .field("access_expires", &self.access_expires)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("refresh_expires", &self.refresh_expires)
            .field("halt_until", &self.halt_until)
            .finish()
    }
}

impl TokenState {
    fn access_usable(&self, now: Timestamp, margin: SignedDuration) -> Option<&str> {
        let expires = self.access_expires?;
        (now.saturating_add(margin).ok()? < expires)
            .then_some(self.access_token.as_deref())
            .flatten()
    }

    fn access_alive(&self, now: Timestamp) -> Option<&str> {
        self.access_usable(now, SignedDuration::ZERO)
    }

    fn refresh_usable(&self, now: Timestamp) -> Option<&str> {
        (now < self.refresh_expires?)
            .then_some(self.refresh_token.as_deref())
            .flatten()
    }

    /// The end of an H084 halt still in force.
    pub fn halted(&self, now: Timestamp) -> Option<Timestamp> {
        self.halt_until.filter(|h| now < *h)
    }
}

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Where the token lives. The hub backs it with its database so all instances share one token
/// and an H084 halt survives restarts.
pub trait TokenStore: Send + Sync + fmt::Debug {
    fn load(&self) -> StoreFuture<'_, TokenState>;
    fn save(&self, state: TokenState) -> StoreFuture<'_, ()>;
}

/// A token store in memory, for one process.
#[derive(Debug, Default)]
pub struct MemoryTokenStore(std::sync::Mutex<TokenState>);

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> StoreFuture<'_, TokenState> {
        let s = self.0.lock().map(|g| g.clone()).map_err(|e| e.to_string());
        Box::pin(async move { s })
    }

    fn save(&self, state: TokenState) -> StoreFuture<'_, ()> {
        let r = self
            .0
            .lock()
            .map(|mut g| *g = state)
            .map_err(|e| e.to_string());
        Box::pin(async move { r })
    }
}

#[derive(Debug)]
pub(crate) struct TokenManager {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
    pub(crate) username: String,
    pub(crate) password: crate::Secret,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) margin: SignedDuration,
    pub(crate) limits: Arc<crate::budget::Limits>,
    /// Single flight: one caller talks to the token endpoint at a time.
    pub(crate) flight: Mutex<()>,
    /// The state last read from or written to the store, and when: calls that only need a
    /// usable access token reuse it for [`RECENT`].
    pub(crate) recent: std::sync::Mutex<Option<(Instant, TokenState)>>,
    /// One read of the store at a time for callers that found no recent state: the others wait
    /// for it and reuse what it read.
    pub(crate) reading: Mutex<()>,
}

/// How long a call may reuse the token state another call read. The store is shared by
/// instances (a database), so every call read it before: a round of ten bulk requests made ten
/// reads, and on a busy machine those spread the round's requests over some 20 ms, which IYS's
/// sliding second then saw. A token another instance replaced meanwhile still works at IYS or is
/// answered 401, which reads the store afresh ([`TokenManager::invalidate`]).
const RECENT: Duration = Duration::from_secs(1);

enum Grant {
    Ok(TokenResponse),
    Refused(ClientError),
    Halted,
}

impl TokenManager {
    async fn load(&self) -> Result<TokenState, ClientError> {
        let state = self.store.load().await.map_err(ClientError::Store)?;
        self.remember(&state);
        Ok(state)
    }

    async fn save(&self, s: TokenState) -> Result<(), ClientError> {
        self.store
            .save(s.clone())
            .await
            .map_err(ClientError::Store)?;
        self.remember(&s);
        Ok(())
    }

    fn remember(&self, state: &TokenState) {
        if let Ok(mut recent) = self.recent.lock() {
            *recent = Some((Instant::now(), state.clone()));
        }
    }

    /// The usable access token of the state read or written within [`RECENT`], if any.
    fn recent_access(&self, now: Timestamp) -> Option<String> {
        let recent = self.recent.lock().ok()?;
        let (at, state) = recent.as_ref()?;
        if at.elapsed() >= RECENT {
            return None;
        }
        state.access_usable(now, self.margin).map(str::to_owned)
    }

    /// A usable access token, refreshing it when it is about to expire.
    pub(crate) async fn access_token(&self) -> Result<String, ClientError> {
        let now = self.clock.now();
        if let Some(t) = self.recent_access(now) {
            return Ok(t);
        }
        {
            let _reading = self.reading.lock().await;
            if let Some(t) = self.recent_access(now) {
                return Ok(t);
            }
            if let Some(t) = self.load().await?.access_usable(now, self.margin) {
                return Ok(t.to_owned());
            }
        }
        let _flight = self.flight.lock().await;
        let mut state = self.load().await?;
        let now = self.clock.now();
        if let Some(t) = state.access_usable(now, self.margin) {
            return Ok(t.to_owned());
        }
        if let Some(until) = state.halted(now) {
            // Within the refresh margin the old token still works; use it while halted.
            return match state.access_alive(now) {
                Some(t) => Ok(t.to_owned()),
                None => Err(ClientError::TokenHalted { until }),
            };
        }
        let mut outcome = Grant::Refused(ClientError::Invalid("no grant tried".into()));
        if let Some(refresh) = state.refresh_usable(now).map(str::to_owned) {
            outcome = self
                .grant(TokenRequest::RefreshToken {
                    refresh_token: refresh,
                })
                .await;
        }
        if let Grant::Refused(ref e) = outcome {
            tracing::debug!(error = %e, "refresh grant not usable, using the password grant");
            outcome = self
                .grant(TokenRequest::Password {
                    username: self.username.clone(),
                    password: self.password.expose().to_owned(),
                })
                .await;
        }
        let now = self.clock.now();
        match outcome {
            Grant::Ok(tok) => {
                let at = |secs: u64| {
                    now.saturating_add(SignedDuration::from_secs(secs as i64))
                        .ok()
                };
                state = TokenState {
                    access_token: Some(tok.access_token.clone()),
                    access_expires: at(tok.expires_in),
                    refresh_token: Some(tok.refresh_token),
                    refresh_expires: at(tok.refresh_expires_in),
                    halt_until: None,
                };
                self.save(state).await?;
                Ok(tok.access_token)
            }
            Grant::Halted => {
                let until = now
                    .saturating_add(SignedDuration::from_hours(1))
                    .unwrap_or(now);
                tracing::warn!(%until, "IYS limited token requests (H084); halting token calls");
                state.halt_until = Some(until);
                let alive = state.access_alive(now).map(str::to_owned);
                self.save(state).await?;
                alive.ok_or(ClientError::TokenHalted { until })
            }
            Grant::Refused(e) => Err(e),
        }
    }

    /// Forgets an access token IYS refused (401), unless another caller already replaced it.
    pub(crate) async fn invalidate(&self, token: &str) -> Result<(), ClientError> {
        let _flight = self.flight.lock().await;
        let mut state = self.load().await?;
        if state.access_token.as_deref() == Some(token) {
            state.access_token = None;
            state.access_expires = None;
            self.save(state).await?;
        }
        Ok(())
    }

    /// The current token state (for status pages and tests).
    pub(crate) async fn state(&self) -> Result<TokenState, ClientError> {
        self.load().await
    }

    async fn grant(&self, req: TokenRequest) -> Grant {
        let kind = match req {
            TokenRequest::Password { .. } => "password",
            TokenRequest::RefreshToken { .. } => "refresh_token",
        };
        // Two tries for a transient failure; each one is a token call IYS counts.
        for attempt in 0..2u32 {
            self.limits.token.acquire().await;
            self.limits.per_second.acquire().await;
            tracing::debug!(grant = kind, attempt, "IYS token request");
            let resp = match self.http.post(&self.url).json(&req).send().await {
                Ok(r) => r,
                Err(e) if attempt == 0 && (e.is_connect() || e.is_timeout() || e.is_request()) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => return Grant::Refused(ClientError::Transport(e)),
            };
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap_or_default();
            match status {
                200 => {
                    return match serde_json::from_slice::<TokenResponse>(&body) {
                        Ok(t) => Grant::Ok(t),
                        Err(e) => Grant::Refused(ClientError::Decode {
                            status,
                            message: e.to_string(),
                        }),
                    };
                }
                429 => {
                    let errors = serde_json::from_slice::<IysErrors>(&body)
                        .map(|e| e.errors)
                        .unwrap_or_default();
                    if errors.is_empty() || errors.iter().any(|e| e.code == "H084") {
                        return Grant::Halted;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                s if s >= 500 && attempt == 0 => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                _ => {
                    return Grant::Refused(match serde_json::from_slice::<OAuthError>(&body) {
                        Ok(error) => ClientError::OAuth { status, error },
                        Err(_) => match serde_json::from_slice::<IysErrors>(&body) {
                            Ok(e) => ClientError::Iys {
                                status,
                                errors: e.errors,
                            },
                            Err(e) => ClientError::Decode {
                                status,
                                message: e.to_string(),
                            },
                        },
                    });
                }
            }
        }
        Grant::Refused(ClientError::Invalid(
            "the token endpoint kept failing".into(),
        ))
    }
}
