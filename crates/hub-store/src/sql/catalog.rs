//! A brand's message categories and profiles.

use hub_core::{BrandCode, CategoryKind};
use jiff::Timestamp;
use sqlx::Row;

use super::{corrupt, ms, parse};
use crate::types::{Category, Profile};
use crate::{Result, SqlStore, StoreError};

impl SqlStore {
    pub(crate) async fn upsert_category(&self, c: Category) -> Result<Category> {
        let _w = self.writer().await;
        let brand = c
            .brand_code
            .ok_or_else(|| StoreError::NotFound("brand".into()))?;
        sqlx::query("INSERT INTO category (brand_code, code, name, kind, created_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (brand_code, code) DO UPDATE SET name = excluded.name, kind = excluded.kind")
            .bind(brand.0 as i64)
            .bind(c.code.clone())
            .bind(c.name.clone())
            .bind(c.kind.as_str())
            .bind(ms(Timestamp::now()))
            .execute(&self.pool)
            .await?;
        Ok(c)
    }

    pub(crate) async fn categories(&self, brand: BrandCode) -> Result<Vec<Category>> {
        sqlx::query("SELECT * FROM category WHERE brand_code = $1 ORDER BY code")
            .bind(brand.0 as i64)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(Category {
                    brand_code: Some(brand),
                    code: r.try_get("code")?,
                    name: r.try_get("name")?,
                    kind: parse::<CategoryKind>("category.kind", &r.try_get::<String, _>("kind")?)?,
                })
            })
            .collect()
    }

    pub(crate) async fn delete_category(&self, brand: BrandCode, code: &str) -> Result<bool> {
        let _w = self.writer().await;
        let r = sqlx::query("DELETE FROM category WHERE brand_code = $1 AND code = $2")
            .bind(brand.0 as i64)
            .bind(code.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub(crate) async fn upsert_profile(&self, p: Profile) -> Result<Profile> {
        let _w = self.writer().await;
        let brand = p
            .brand_code
            .ok_or_else(|| StoreError::NotFound("brand".into()))?;
        let now = ms(Timestamp::now());
        let attrs = p.attributes.as_ref().map(|a| a.to_string());
        let mut tx = self.begin_writing().await?;
        sqlx::query("INSERT INTO profile (brand_code, external_id, attributes, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (brand_code, external_id) DO UPDATE SET attributes = excluded.attributes, updated_at_ms = excluded.updated_at_ms")
            .bind(brand.0 as i64)
            .bind(p.external_id.clone())
            .bind(attrs)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM profile_address WHERE brand_code = $1 AND external_id = $2")
            .bind(brand.0 as i64)
            .bind(p.external_id.clone())
            .execute(&mut *tx)
            .await?;
        for a in &p.addresses {
            sqlx::query("INSERT INTO profile_address (brand_code, external_id, recipient) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(brand.0 as i64)
                .bind(p.external_id.clone())
                .bind(a.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(p)
    }

    pub(crate) async fn profile(
        &self,
        brand: BrandCode,
        external_id: &str,
    ) -> Result<Option<Profile>> {
        let Some(row) = sqlx::query(
            "SELECT attributes FROM profile WHERE brand_code = $1 AND external_id = $2",
        )
        .bind(brand.0 as i64)
        .bind(external_id.to_owned())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let attrs: Option<String> = row.try_get("attributes")?;
        let addresses = sqlx::query("SELECT recipient FROM profile_address WHERE brand_code = $1 AND external_id = $2 ORDER BY recipient")
            .bind(brand.0 as i64)
            .bind(external_id.to_owned())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("recipient"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Some(Profile {
            brand_code: Some(brand),
            external_id: external_id.to_owned(),
            addresses,
            attributes: attrs
                .map(|a| serde_json::from_str(&a).map_err(|e| corrupt("profile.attributes", e)))
                .transpose()?,
        }))
    }

    pub(crate) async fn delete_profile(&self, brand: BrandCode, external_id: &str) -> Result<bool> {
        let _w = self.writer().await;
        let mut tx = self.begin_writing().await?;
        sqlx::query("DELETE FROM profile_address WHERE brand_code = $1 AND external_id = $2")
            .bind(brand.0 as i64)
            .bind(external_id.to_owned())
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM profile WHERE brand_code = $1 AND external_id = $2")
            .bind(brand.0 as i64)
            .bind(external_id.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }
}
