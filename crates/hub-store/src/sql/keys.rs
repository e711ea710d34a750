//! API keys: created, looked up, revoked, rotated, touched.

use jiff::Timestamp;

use super::{api_key_from, ms, ts};
use crate::types::{ApiKey, NewApiKey};
use crate::{Result, SqlStore, StoreError};

impl SqlStore {
    pub(crate) async fn create_api_key(&self, k: NewApiKey) -> Result<ApiKey> {
        let _w = self.writer().await;
        let id = uuid::Uuid::new_v4().to_string();
        // Stored to the millisecond; answer what a later read will see.
        let now = ts(ms(Timestamp::now()));
        let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
        let expires = k.expires_at.map(|t| ts(ms(t)));
        sqlx::query("INSERT INTO api_key (id, hash, name, brand_code, scopes, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id.clone())
            .bind(k.hash.clone())
            .bind(k.name.clone())
            .bind(k.brand_code.map(|b| b.0 as i64))
            .bind(scopes.join(","))
            .bind(ms(now))
            .bind(expires.map(ms))
            .execute(&self.pool)
            .await?;
        Ok(ApiKey {
            id,
            name: k.name,
            brand_code: k.brand_code,
            scopes: k.scopes,
            created_at: now,
            revoked: false,
            last_used_at: None,
            expires_at: expires,
        })
    }

    pub(crate) async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        sqlx::query("SELECT * FROM api_key WHERE hash = $1")
            .bind(hash.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(api_key_from)
            .transpose()
    }

    pub(crate) async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        sqlx::query("SELECT * FROM api_key ORDER BY created_at_ms")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(api_key_from)
            .collect()
    }

    pub(crate) async fn api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        sqlx::query("SELECT * FROM api_key WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(api_key_from)
            .transpose()
    }

    pub(crate) async fn revoke_api_key(&self, id: &str, now: Timestamp) -> Result<bool> {
        let _w = self.writer().await;
        let mut tx = self.begin_writing().await?;
        let Some(key) = sqlx::query("SELECT * FROM api_key WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(api_key_from)
            .transpose()?
        else {
            return Ok(false);
        };
        if key.is_provider_admin() && key.usable(now) {
            let others = sqlx::query("SELECT * FROM api_key WHERE id <> $1 AND brand_code IS NULL AND revoked_at_ms IS NULL")
                .bind(id.to_owned())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(api_key_from)
                .collect::<Result<Vec<_>>>()?;
            if !others
                .iter()
                .any(|k| k.is_provider_admin() && k.usable(now))
            {
                return Err(StoreError::Conflict(
                    "the last usable provider admin key: create another admin key first; this key"
                        .into(),
                ));
            }
        }
        sqlx::query(
            "UPDATE api_key SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(ms(now))
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(crate) async fn rotate_api_key(&self, id: &str, hash: &str) -> Result<Option<ApiKey>> {
        let _w = self.writer().await;
        let r = sqlx::query("UPDATE api_key SET hash = $1 WHERE id = $2 AND revoked_at_ms IS NULL")
            .bind(hash.to_owned())
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        drop(_w);
        self.api_key(id).await
    }

    pub(crate) async fn touch_api_key(&self, id: &str, now: Timestamp) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query("UPDATE api_key SET last_used_at_ms = $1 WHERE id = $2")
            .bind(ms(now))
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
