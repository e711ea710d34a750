//! Rows as the hub's types, and the fields an event's hash covers.

use hub_core::chain::{ChainHash, link};
use hub_core::{BrandCode, ConsentKey, ConsentState, IysState};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{corrupt, parse, ts};
use crate::Result;
use crate::tx::Columns;
use crate::types::*;

pub(crate) fn brand_from(row: &AnyRow) -> Result<Brand> {
    let conn: Option<String> = row.try_get("iys_connection")?;
    Ok(Brand {
        brand_code: BrandCode(row.try_get::<i64, _>("brand_code")? as u64),
        iys_code: row.try_get::<i64, _>("iys_code")? as u64,
        name: row.try_get("name")?,
        mode: parse("brand.mode", &row.try_get::<String, _>("mode")?)?,
        iys: conn
            .map(|c| serde_json::from_str(&c).map_err(|e| corrupt("brand.iys_connection", e)))
            .transpose()?
            .unwrap_or_default(),
        created_at: ts(row.try_get("created_at_ms")?),
        updated_at: ts(row.try_get("updated_at_ms")?),
    })
}

pub(crate) fn state_from(row: &impl Columns) -> Result<ConsentState> {
    Ok(ConsentState {
        status: parse("consent.status", &row.text("status")?)?,
        consent_date: parse("consent.consent_date", &row.text("consent_date")?)?,
        source: parse("consent.source", &row.text("source")?)?,
        last_event_id: row.int("last_event_id")?,
        iys_state: parse("consent.iys_state", &row.text("iys_state")?)?,
        iys_error: row.opt_text("iys_error")?,
        conflict: row.int("conflict")? != 0,
        hold: row.int("hold")? != 0,
        deadline: row.opt_int("deadline_ms")?.map(ts),
        iys_known: row.int("iys_known")? != 0,
        updated_at: ts(row.int("updated_at_ms")?),
    })
}

pub(crate) fn consent_row_from(row: &AnyRow) -> Result<ConsentRow> {
    Ok(ConsentRow {
        key: key_from(row)?,
        state: state_from(row)?,
    })
}

pub(crate) fn key_from(row: &impl Columns) -> Result<ConsentKey> {
    Ok(ConsentKey {
        brand: BrandCode(row.int("brand_code")? as u64),
        recipient: row.text("recipient")?,
        recipient_type: parse("recipient_type", &row.text("recipient_type")?)?,
        channel: parse("channel", &row.text("channel")?)?,
    })
}

pub(crate) fn category_from(row: &impl Columns) -> Result<CategoryConsentRow> {
    Ok(CategoryConsentRow {
        subject: row.text("subject")?,
        category: row.text("category")?,
        status: parse("category_consent.status", &row.text("status")?)?,
        consent_date: parse("category_consent.consent_date", &row.text("consent_date")?)?,
        source: parse("category_consent.source", &row.text("source")?)?,
        last_event_id: row.int("last_event_id")?,
    })
}

/// The fields an event's hash covers, in a fixed order.
pub(crate) struct EventFields<'a> {
    pub(crate) brand: i64,
    pub(crate) recipient: &'a str,
    pub(crate) recipient_type: &'a str,
    pub(crate) channel: &'a str,
    pub(crate) category: Option<&'a str>,
    pub(crate) profile_id: Option<&'a str>,
    pub(crate) status: &'a str,
    pub(crate) consent_date: &'a str,
    pub(crate) source: &'a str,
    pub(crate) origin: &'a str,
    pub(crate) actor: Option<&'a str>,
    pub(crate) evidence: Option<&'a str>,
    pub(crate) hold: Option<i64>,
    pub(crate) outcome: &'a str,
    pub(crate) received_at_ms: i64,
    pub(crate) iys_transaction_id: Option<&'a str>,
}

impl EventFields<'_> {
    pub(crate) fn hash(&self, prev: &ChainHash) -> ChainHash {
        let brand = self.brand.to_string();
        let hold = self.hold.map(|h| h.to_string());
        let received = self.received_at_ms.to_string();
        link(
            prev,
            &[
                &brand,
                self.recipient,
                self.recipient_type,
                self.channel,
                self.category.unwrap_or(""),
                self.profile_id.unwrap_or(""),
                self.status,
                self.consent_date,
                self.source,
                self.origin,
                self.actor.unwrap_or(""),
                self.evidence.unwrap_or(""),
                hold.as_deref().unwrap_or(""),
                self.outcome,
                &received,
                self.iys_transaction_id.unwrap_or(""),
            ],
        )
    }
}

pub(crate) fn event_from(row: &AnyRow) -> Result<Event> {
    let evidence: Option<String> = row.try_get("evidence")?;
    Ok(Event {
        id: row.try_get("id")?,
        key: key_from(row)?,
        category: row.try_get("category")?,
        profile_id: row.try_get("profile_id")?,
        status: parse("event.status", &row.try_get::<String, _>("status")?)?,
        consent_date: parse(
            "event.consent_date",
            &row.try_get::<String, _>("consent_date")?,
        )?,
        source: parse("event.source", &row.try_get::<String, _>("source")?)?,
        origin: parse("event.origin", &row.try_get::<String, _>("origin")?)?,
        actor: row.try_get("actor")?,
        evidence: evidence
            .map(|e| serde_json::from_str(&e).map_err(|x| corrupt("event.evidence", x)))
            .transpose()?,
        hold: row.try_get::<Option<i64>, _>("hold")?.map(|h| h != 0),
        outcome: parse("event.outcome", &row.try_get::<String, _>("outcome")?)?,
        received_at: ts(row.try_get("received_at_ms")?),
        iys_transaction_id: row.try_get("iys_transaction_id")?,
        delivered_transaction_id: row.try_get("delivered_transaction_id")?,
        iys_creation_date: row.try_get("iys_creation_date")?,
        iys_error: row.try_get("iys_error")?,
        hash: shown_hash(row)?,
    })
}

/// An event's hash as the history shows it: the stored bytes in hex. A value altered by hand (of
/// another length, or text the upgrade could not read as hex) shows as it is, for
/// `iyshub verify` to name, instead of failing the recipient's history.
fn shown_hash(row: &AnyRow) -> Result<String> {
    match row.try_get::<Vec<u8>, _>("hash") {
        Ok(bytes) => Ok(ChainHash::from_bytes(&bytes)
            .map(|h| h.to_hex())
            .unwrap_or_else(|| bytes.iter().map(|b| format!("{b:02x}")).collect())),
        Err(_) => Ok(row.try_get("hash")?),
    }
}

pub(crate) fn category_state(c: &CategoryConsentRow, updated_at: Timestamp) -> ConsentState {
    ConsentState {
        status: c.status,
        consent_date: c.consent_date,
        source: c.source.clone(),
        last_event_id: c.last_event_id,
        iys_state: IysState::LocalOnly,
        iys_error: None,
        conflict: false,
        hold: false,
        deadline: None,
        iys_known: false,
        updated_at,
    }
}

pub(crate) fn api_key_from(r: &AnyRow) -> Result<ApiKey> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        brand_code: r
            .try_get::<Option<i64>, _>("brand_code")?
            .map(|b| BrandCode(b as u64)),
        scopes: scopes.split(',').filter_map(Scope::parse).collect(),
        created_at: ts(r.try_get("created_at_ms")?),
        revoked: r.try_get::<Option<i64>, _>("revoked_at_ms")?.is_some(),
        last_used_at: r.try_get::<Option<i64>, _>("last_used_at_ms")?.map(ts),
        expires_at: r.try_get::<Option<i64>, _>("expires_at_ms")?.map(ts),
    })
}

impl crate::SqlStore {
    /// `columns` of the brand's rows in `table`, narrowed and ordered by `rest` (which binds
    /// `values` from `$2`), each mapped by `map`.
    pub(crate) async fn brand_rows<T>(
        &self,
        columns: &str,
        table: &str,
        rest: &str,
        brand: BrandCode,
        values: &[i64],
        map: fn(&AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let sql = format!("SELECT {columns} FROM {table} WHERE brand_code = $1 {rest}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(brand.0 as i64);
        for v in values {
            q = q.bind(*v);
        }
        q.fetch_all(&self.pool).await?.iter().map(map).collect()
    }
}
