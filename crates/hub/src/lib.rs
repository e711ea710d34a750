//! The hub's HTTP side: the consent ledger's REST API, send-time checks, API keys, health and
//! metrics. The ledger rules live in `hub-core`, the data in `hub-store`.

mod api;
pub mod audiences;
mod auth;
pub mod cache;
pub mod dto;
pub mod error;
pub mod events;
pub mod exports;
pub mod extract;
mod guard;
pub mod imports;
pub mod input;
pub mod metrics;
pub mod openapi;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hub_store::{NewApiKey, Scope, SqlStore, Store};
use sha2::Digest;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::hash_key;
pub use guard::{DEFAULT_RATE_LIMIT, Guards};
/// Defined in `hub-core` so the IYS engines implement them without depending on the API.
pub use hub_core::{Backfill, Heartbeat};
pub use metrics::Metrics;
pub use routes::brands::update_brand_settings;
pub use routes::events::register_webhook;
pub use routes::imports::{MAX_IMPORT_BYTES, store_upload, streamed};
pub use routes::segments::{save_segment, saved_kind};

/// Most changes in one request.
pub const MAX_CHANGES: usize = 10_000;
/// Most recipients in one check request.
pub const MAX_CHECKS: usize = 10_000;
/// Longest a request may take before it is answered 503.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long an import's upload may take.
pub const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);
/// Requests served at once per instance.
pub const MAX_CONCURRENT_REQUESTS: usize = 512;
/// Largest request body (10,000 changes with evidence).
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// What the API needs of the database: the ledger ([`Store`]), the engines' and the daily
/// reconciliation's tables (sync status, mode switches, quarantine), change events and
/// webhooks, imports, segments, listings, tallies and the console's users. [`SqlStore`]
/// implements it on SQLite and PostgreSQL (a cheap handle: clones share its pools); the
/// handlers call nothing outside these traits.
pub trait HubDb:
    Store
    + hub_store::EngineStore
    + hub_store::ReconcileStore
    + hub_store::EventStore
    + hub_store::ImportStore
    + hub_store::SegmentStore
    + hub_store::ListingStore
    + hub_store::StatsStore
    + hub_store::ConsoleStore
    + hub_store::ReviewStore
    + Clone
    + std::fmt::Debug
    + 'static
{
}

impl HubDb for SqlStore {}

/// The API's shared state, on a store `S` ([`SqlStore`] in the hub's binary).
#[derive(Debug)]
pub struct Hub<S = SqlStore> {
    /// Shared with the IYS engines of the same instance.
    pub store: Arc<S>,
    pub metrics: Metrics,
    /// Runs sync mode's backfill; absent on API-only instances.
    pub backfill: Option<Arc<dyn Backfill>>,
    /// Which IYS base URLs connections may use, and the key that seals their passwords.
    pub iys: hub_store::IysPolicy,
    /// Throttles for push logins and per-key request rates.
    pub guards: Guards,
    /// The IYS engines' heartbeat, on instances that run them (for `/readyz`).
    pub engines: Option<Arc<Heartbeat>>,
    /// API keys, brands and categories read by every request.
    pub caches: cache::Caches,
    /// Woken when an upload is queued, so a worker on this instance starts it at once.
    pub imports_waiting: Arc<tokio::sync::Notify>,
    /// Woken when a webhook is created, enabled or asked to redeliver.
    pub webhooks_waiting: Arc<tokio::sync::Notify>,
}

impl<S: HubDb> Hub<S> {
    /// A hub on `store` with the defaults: no backfill runner, IYS's own hosts only, no secret
    /// key (connection passwords cannot be stored).
    pub fn new(store: Arc<S>) -> Hub<S> {
        Hub {
            store,
            metrics: Metrics::default(),
            backfill: None,
            iys: hub_store::IysPolicy::default(),
            guards: Guards::default(),
            engines: None,
            caches: cache::Caches::default(),
            imports_waiting: Arc::default(),
            webhooks_waiting: Arc::default(),
        }
    }
}

pub type HubState<S = SqlStore> = Arc<Hub<S>>;

pub fn router<S: HubDb>(hub: HubState<S>) -> Router {
    api::router(hub, Router::new())
}

/// The API's router with `extra` routes (the web console) behind the same layers: limits,
/// timeouts, compression, tracing and request ids.
pub fn router_with<S: HubDb>(hub: HubState<S>, extra: Router<HubState<S>>) -> Router {
    api::router(hub, extra)
}

pub use api::DOCS_PATH;

/// Serves `/metrics` only, without a key, on `listener` (the metrics address) until `cancel`.
pub async fn serve_metrics<S: HubDb>(
    hub: HubState<S>,
    listener: TcpListener,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", axum::routing::get(routes::ops::metrics))
        .fallback(api::not_found)
        .with_state(hub);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

/// Serves the API on `listener` until `cancel` fires, finishing in-flight requests.
pub async fn serve<S: HubDb>(
    hub: HubState<S>,
    listener: TcpListener,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    serve_router(router(hub), listener, cancel).await
}

/// Serves `app` (from [`router`] or [`router_with`]) on `listener` until `cancel` fires.
pub async fn serve_router(
    app: Router,
    listener: TcpListener,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { cancel.cancelled().await })
    .await
}

/// A new random API key: `ihk_` and 64 hex characters.
pub fn new_key() -> String {
    let bytes: [u8; 32] = sha2::Sha256::digest(
        uuid::Uuid::new_v4()
            .as_bytes()
            .iter()
            .chain(uuid::Uuid::new_v4().as_bytes())
            .copied()
            .collect::<Vec<u8>>(),
    )
    .into();
    format!("ihk_{}", hex::encode(bytes))
}

/// Makes sure an admin key exists: `wanted` (from `IYSHUB_ADMIN_KEY`) is registered if it is not
/// yet; with no key at all, a new one is created. Returns a key to print once, if one was made.
pub async fn bootstrap_admin_key<S: HubDb>(
    store: &S,
    wanted: Option<&str>,
) -> Result<Option<String>, hub_store::StoreError> {
    if let Some(key) = wanted {
        if store.api_key_by_hash(&hash_key(key)).await?.is_none() {
            store
                .create_api_key(NewApiKey {
                    name: "bootstrap-admin".into(),
                    hash: hash_key(key),
                    brand_code: None,
                    scopes: vec![Scope::Admin],
                    expires_at: None,
                })
                .await?;
        }
        return Ok(None);
    }
    if !store.api_keys().await?.is_empty() {
        return Ok(None);
    }
    let key = new_key();
    store
        .create_api_key(NewApiKey {
            name: "bootstrap-admin".into(),
            hash: hash_key(&key),
            brand_code: None,
            scopes: vec![Scope::Admin],
            expires_at: None,
        })
        .await?;
    Ok(Some(key))
}
