//! API keys: `Authorization: Bearer <key>`; only the SHA-256 of a key is stored.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use hub_core::BrandCode;
use hub_store::{ApiKey, Scope};
use sha2::Digest;

use crate::error::ApiError;
use crate::{HubDb, HubState};

pub fn hash_key(key: &str) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// The caller, identified by its API key.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiKey);

impl Caller {
    /// 403 unless the key has `scope` for `brand`. A key of another brand gets 404 for the
    /// brand, so keys cannot probe which brands exist.
    pub fn require(&self, scope: Scope, brand: Option<BrandCode>) -> Result<(), ApiError> {
        if self.0.allows(scope, brand) {
            return Ok(());
        }
        if let (Some(mine), Some(b)) = (self.0.brand_code, brand)
            && mine != b
        {
            return Err(ApiError::not_found(format!("brand {b} not found")));
        }
        Err(ApiError::forbidden(format!(
            "this API key lacks the {} scope",
            scope.as_str()
        )))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }
}

impl<S: HubDb> FromRequestParts<HubState<S>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        hub: &HubState<S>,
    ) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let now = jiff::Timestamp::now();
        // Cached briefly: a key revoked through this instance is refused at once, through
        // another within the cache TTL. Expiry is checked on every request.
        let hash = hash_key(key);
        let key = match hub.caches.api_keys.get(&hash) {
            Some(k) => Some(k),
            None => {
                let k = hub.store.api_key_by_hash(&hash).await?;
                if let Some(k) = &k {
                    hub.caches.api_keys.insert(hash, k.clone());
                }
                k
            }
        };
        let key = match key {
            Some(k) if k.usable(now) => k,
            _ => return Err(ApiError::unauthorized()),
        };
        if let Some(limit) = &hub.guards.per_key
            && let Some(wait) = limit.hit(&key.id)
        {
            return Err(ApiError::too_many(
                wait,
                "this API key is over its request rate; slow down",
            ));
        }
        if hub.guards.should_touch(&key.id)
            && let Err(e) = hub.store.touch_api_key(&key.id, now).await
        {
            tracing::warn!(error = %e, "could not record an API key's last use");
        }
        Ok(Caller(key))
    }
}
