//! Brands and their hash-chain head.

use hub_core::BrandCode;
use hub_core::chain::ChainHash;
use jiff::Timestamp;

use super::{brand_from, corrupt, ms, ts};
use crate::types::{Brand, BrandPatch, NewBrand};
use crate::{Result, SqlStore, StoreError};

impl SqlStore {
    pub(crate) async fn create_brand(&self, b: NewBrand) -> Result<Brand> {
        let _w = self.writer().await;
        let now = ms(Timestamp::now());
        let mut tx = self.begin_writing().await?;
        let exists = sqlx::query("SELECT 1 FROM brand WHERE brand_code = $1")
            .bind(b.brand_code.0 as i64)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("brand {}", b.brand_code)));
        }
        let conn = serde_json::to_string(&b.iys).map_err(|e| corrupt("iys connection", e))?;
        sqlx::query("INSERT INTO brand (brand_code, iys_code, name, mode, iys_connection, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(b.brand_code.0 as i64)
            .bind(b.iys_code as i64)
            .bind(b.name.clone())
            .bind(b.mode.as_str())
            .bind(conn)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO chain_head (brand_code, last_hash, last_event_id) VALUES ($1, $2, 0)",
        )
        .bind(b.brand_code.0 as i64)
        .bind(ChainHash::GENESIS.as_bytes().to_vec())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Brand {
            brand_code: b.brand_code,
            iys_code: b.iys_code,
            name: b.name,
            mode: b.mode,
            iys: b.iys,
            created_at: ts(now),
            updated_at: ts(now),
        })
    }

    pub(crate) async fn brands(&self) -> Result<Vec<Brand>> {
        sqlx::query("SELECT * FROM brand ORDER BY brand_code")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(brand_from)
            .collect()
    }

    pub(crate) async fn brand(&self, code: BrandCode) -> Result<Option<Brand>> {
        sqlx::query("SELECT * FROM brand WHERE brand_code = $1")
            .bind(code.0 as i64)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(brand_from)
            .transpose()
    }

    pub(crate) async fn update_brand(
        &self,
        code: BrandCode,
        patch: BrandPatch,
    ) -> Result<Option<Brand>> {
        let _w = self.writer().await;
        let conn = patch
            .iys
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| corrupt("iys connection", e))?;
        // Only the fields given change: a concurrent mode switch is never undone by a rename.
        let r = sqlx::query("UPDATE brand SET name = COALESCE($1, name), iys_code = COALESCE($2, iys_code), mode = COALESCE($3, mode), iys_connection = COALESCE($4, iys_connection), updated_at_ms = $5 WHERE brand_code = $6")
            .bind(patch.name)
            .bind(patch.iys_code.map(|i| i as i64))
            .bind(patch.mode.map(|m| m.as_str()))
            .bind(conn)
            .bind(ms(Timestamp::now()))
            .bind(code.0 as i64)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        drop(_w);
        self.brand(code).await
    }
}
