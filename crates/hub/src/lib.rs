//! The hub's HTTP side: the consent ledger's REST API, send-time checks, API keys, health and
//! metrics. The ledger rules live in `hub-core`, the data in `hub-store`.

mod api;
mod auth;
mod consents;
pub mod error;
pub mod input;
mod metrics;
mod sync;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hub_store::{NewApiKey, Scope, SqlStore, Store};
use sha2::Digest;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::hash_key;
pub use metrics::Metrics;

/// Most changes in one request.
pub const MAX_CHANGES: usize = 10_000;
/// Most recipients in one check request.
pub const MAX_CHECKS: usize = 10_000;
/// Largest request body (10,000 changes with evidence).
pub const MAX_BODY: usize = 32 * 1024 * 1024;

#[derive(Debug)]
pub struct Hub {
    /// Shared with the IYS engines of the same instance.
    pub store: Arc<SqlStore>,
    pub metrics: Metrics,
    /// Runs sync mode's backfill; absent on API-only instances.
    pub backfill: Option<Arc<dyn Backfill>>,
}

/// Starts and reports backfills (the IYS engines implement it; the API only triggers it).
pub trait Backfill: Send + Sync + std::fmt::Debug {
    /// Starts a backfill of the brand in the background; false if one is already running.
    fn start(&self, brand: hub_store::Brand) -> bool;
    /// Whether one is running, and the last report.
    fn report(&self, brand: hub_core::BrandCode) -> serde_json::Value;
}

pub type HubState = Arc<Hub>;

pub fn router(hub: HubState) -> Router {
    api::router(hub)
}

/// Serves the API on `listener` until `cancel` fires, finishing in-flight requests.
pub async fn serve(
    hub: HubState,
    listener: TcpListener,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = router(hub);
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
pub async fn bootstrap_admin_key(
    store: &SqlStore,
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
        })
        .await?;
    Ok(Some(key))
}
