//! Segments: saved, named definitions of a brand's audience, and their members read page by page
//! in key order. A segment for sending (`sendable`, the default) holds only consents a send-time
//! check allows now, by the same rules as `/check` (`hub_core::check`): the SQL narrows, the
//! check decides.

use std::collections::BTreeMap;
use std::future::Future;

use hub_core::{BrandCode, CategoryKind, Channel, ConsentKey, IysState, Policy, SendState, check};
use iys::{ConsentDate, ConsentStatus, RecipientType};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::listing::Bind;
use crate::sql::{corrupt, ms, parse, ts};
use crate::{Backend, Result, SqlStore, StoreError};

/// Who is in a segment. Every field narrows; absent or empty means any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentDefinition {
    #[serde(default)]
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub status: Option<ConsentStatus>,
    #[serde(default)]
    pub iys_states: Vec<IysState>,
    /// Consent sources (`HS_WEB`, `IYS_MOBIL`, …).
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub recipient_type: Option<RecipientType>,
    #[serde(default)]
    pub consent_date_from: Option<ConsentDate>,
    #[serde(default)]
    pub consent_date_to: Option<ConsentDate>,
    /// Consents whose state changed at or after this instant.
    #[serde(default)]
    pub changed_from: Option<Timestamp>,
    /// Consents whose state changed before this instant.
    #[serde(default)]
    pub changed_to: Option<Timestamp>,
    /// The message category: with `sendable`, recipients (or their profiles) that refused it
    /// are out; a transactional category needs no marketing consent.
    #[serde(default)]
    pub category: Option<String>,
    /// Profile attributes the recipient's profile must have (compared as text).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Only those a message may be sent to now (the send-time check's rules). Default true.
    #[serde(default = "yes")]
    pub sendable: bool,
    /// The check's policy for ONAYs still on their way to IYS. Default strict.
    #[serde(default)]
    pub policy: Policy,
}

fn yes() -> bool {
    true
}

/// A saved segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub id: i64,
    pub brand_code: BrandCode,
    pub name: String,
    pub description: Option<String>,
    pub definition: SegmentDefinition,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One member: a consent of a recipient on a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentMember {
    pub recipient: String,
    pub recipient_type: RecipientType,
    pub channel: Channel,
    pub status: ConsentStatus,
    pub iys_state: IysState,
    pub source: String,
    pub consent_date: String,
    pub updated_at: Timestamp,
}

/// A page of members and where the next page starts (`None`: the last page).
#[derive(Debug, Clone, Default)]
pub struct MemberPage {
    pub members: Vec<SegmentMember>,
    pub next: Option<ConsentKey>,
}

const SEGMENT_COLUMNS: &str =
    "id, brand_code, name, description, definition, created_at_ms, updated_at_ms";

fn segment_from(r: &sqlx::any::AnyRow) -> Result<Segment> {
    let b: i64 = r.try_get("brand_code")?;
    let definition: String = r.try_get("definition")?;
    Ok(Segment {
        id: r.try_get("id")?,
        brand_code: BrandCode(u64::try_from(b).map_err(|e| corrupt("brand_code", e))?),
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        definition: serde_json::from_str(&definition)
            .map_err(|e| corrupt("segment.definition", e))?,
        created_at: ts(r.try_get("created_at_ms")?),
        updated_at: ts(r.try_get("updated_at_ms")?),
    })
}

/// The statement of a page of candidate rows and its values.
fn candidates(
    backend: Backend,
    brand: BrandCode,
    d: &SegmentDefinition,
    after: Option<&ConsentKey>,
    limit: u32,
) -> (String, Vec<Bind>) {
    let mut binds = vec![Bind::Int(brand.0 as i64)];
    let next = |binds: &mut Vec<Bind>, b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    let category_ret = match &d.category {
        Some(c) => {
            let p = next(&mut binds, Bind::Text(c.clone()));
            format!(
                "CASE WHEN EXISTS (SELECT 1 FROM category_consent cc WHERE cc.brand_code = c.brand_code AND cc.category = {p} AND cc.status = 'RET' \
                 AND (cc.subject = c.recipient OR cc.subject IN (SELECT 'profile:' || pa.external_id FROM profile_address pa WHERE pa.brand_code = c.brand_code AND pa.recipient = c.recipient))) THEN 1 ELSE 0 END"
            )
        }
        None => "0".to_owned(),
    };
    let mut sql = format!(
        "SELECT c.recipient, c.recipient_type, c.channel, c.status, c.source, c.iys_state, c.hold, c.consent_date, c.updated_at_ms, {category_ret} AS category_ret \
         FROM consent c WHERE c.brand_code = $1"
    );
    if let Some(k) = after {
        let a = next(&mut binds, Bind::Text(k.recipient.clone()));
        let b = next(&mut binds, Bind::Text(k.recipient_type.as_str().to_owned()));
        let c = next(&mut binds, Bind::Text(k.channel.as_str().to_owned()));
        sql.push_str(&format!(
            " AND (c.recipient, c.recipient_type, c.channel) > ({a}, {b}, {c})"
        ));
    }
    let any_of = |sql: &mut String, binds: &mut Vec<Bind>, column: &str, values: Vec<String>| {
        if values.is_empty() {
            return;
        }
        let list: Vec<String> = values
            .into_iter()
            .map(|v| next(binds, Bind::Text(v)))
            .collect();
        sql.push_str(&format!(" AND c.{column} IN ({})", list.join(", ")));
    };
    any_of(
        &mut sql,
        &mut binds,
        "channel",
        d.channels.iter().map(|c| c.as_str().to_owned()).collect(),
    );
    any_of(
        &mut sql,
        &mut binds,
        "status",
        d.status.iter().map(|s| s.as_str().to_owned()).collect(),
    );
    any_of(
        &mut sql,
        &mut binds,
        "iys_state",
        d.iys_states.iter().map(|s| s.as_str().to_owned()).collect(),
    );
    any_of(&mut sql, &mut binds, "source", d.sources.clone());
    any_of(
        &mut sql,
        &mut binds,
        "recipient_type",
        d.recipient_type
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
    );
    let compare = |sql: &mut String, binds: &mut Vec<Bind>, column: &str, op: &str, v: Bind| {
        let p = next(binds, v);
        sql.push_str(&format!(" AND c.{column} {op} {p}"));
    };
    if let Some(f) = d.consent_date_from {
        compare(
            &mut sql,
            &mut binds,
            "consent_date",
            ">=",
            Bind::Text(f.to_string()),
        );
    }
    if let Some(t) = d.consent_date_to {
        compare(
            &mut sql,
            &mut binds,
            "consent_date",
            "<=",
            Bind::Text(t.to_string()),
        );
    }
    if let Some(f) = d.changed_from {
        compare(
            &mut sql,
            &mut binds,
            "updated_at_ms",
            ">=",
            Bind::Int(ms(f)),
        );
    }
    if let Some(t) = d.changed_to {
        compare(&mut sql, &mut binds, "updated_at_ms", "<", Bind::Int(ms(t)));
    }
    if d.sendable {
        // A hold always denies; the check decides the rest.
        sql.push_str(" AND c.hold = 0");
    }
    for (key, value) in &d.attributes {
        let attr = match backend {
            // Keys are checked at the edge (letters, digits, `_`, `-`, `.`), so quoting is safe.
            Backend::Sqlite => {
                let path = next(&mut binds, Bind::Text(format!("$.\"{key}\"")));
                format!("CAST(json_extract(p.attributes, {path}) AS TEXT)")
            }
            Backend::Postgres => {
                let k = next(&mut binds, Bind::Text(key.clone()));
                format!("(p.attributes::jsonb ->> {k})")
            }
        };
        let v = next(&mut binds, Bind::Text(value.clone()));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM profile_address pa JOIN profile p ON p.brand_code = pa.brand_code AND p.external_id = pa.external_id \
             WHERE pa.brand_code = c.brand_code AND pa.recipient = c.recipient AND {attr} = {v})"
        ));
    }
    let l = next(&mut binds, Bind::Int(i64::from(limit)));
    sql.push_str(&format!(
        " ORDER BY c.recipient, c.recipient_type, c.channel LIMIT {l}"
    ));
    (sql, binds)
}

/// Saved segments and their members.
pub trait SegmentStore: Send + Sync {
    /// Saves a segment; `Conflict` when the brand already has one of that name.
    fn create_segment(
        &self,
        brand: BrandCode,
        name: &str,
        description: Option<&str>,
        definition: &SegmentDefinition,
        now: Timestamp,
    ) -> impl Future<Output = Result<Segment>> + Send;

    /// The brand's saved segments.
    fn segments(&self, brand: BrandCode) -> impl Future<Output = Result<Vec<Segment>>> + Send;

    /// One saved segment of the brand.
    fn segment(
        &self,
        brand: BrandCode,
        id: i64,
    ) -> impl Future<Output = Result<Option<Segment>>> + Send;

    /// Replaces a segment's name, description and definition; `None` when there is none.
    fn update_segment(
        &self,
        brand: BrandCode,
        id: i64,
        name: &str,
        description: Option<&str>,
        definition: &SegmentDefinition,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Segment>>> + Send;

    /// Removes a saved segment; `false` when there was none.
    fn delete_segment(
        &self,
        brand: BrandCode,
        id: i64,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// A page of a definition's members after `after`, reading up to `limit` consents (fewer
    /// members when the check leaves some out). `category` is the definition's category kind.
    fn segment_members(
        &self,
        brand: BrandCode,
        definition: &SegmentDefinition,
        category: Option<CategoryKind>,
        after: Option<&ConsentKey>,
        limit: u32,
    ) -> impl Future<Output = Result<MemberPage>> + Send;

    /// Which of `recipients` belong to a profile that refused `category`: a campaign filter
    /// leaves them out, as a segment does.
    fn refused_by_profile(
        &self,
        brand: BrandCode,
        category: &str,
        recipients: &[String],
    ) -> impl Future<Output = Result<std::collections::HashSet<String>>> + Send;
}

/// The segment member a row of `candidates` makes, if it is one (a sendable segment holds
/// only those a message may go to now).
fn member(
    r: &sqlx::any::AnyRow,
    recipient: String,
    recipient_type: RecipientType,
    channel: Channel,
    definition: &SegmentDefinition,
    category: Option<CategoryKind>,
) -> Result<Option<SegmentMember>> {
    let status: ConsentStatus = parse("consent.status", &r.try_get::<String, _>("status")?)?;
    let iys_state: IysState = parse("consent.iys_state", &r.try_get::<String, _>("iys_state")?)?;
    let source: String = r.try_get("source")?;
    if definition.sendable {
        let from: iys::Source = parse("consent.source", &source)?;
        let state = SendState {
            status,
            from_iys: from.is_iys(),
            iys_state,
            hold: r.try_get::<i64, _>("hold")? != 0,
        };
        let refused = r.try_get::<i64, _>("category_ret")? != 0;
        let cat = category.map(|k| (k, refused.then_some(ConsentStatus::Ret)));
        if !check(channel, Some(&state), cat, definition.policy).allowed {
            return Ok(None);
        }
    }
    Ok(Some(SegmentMember {
        recipient,
        recipient_type,
        channel,
        status,
        iys_state,
        source,
        consent_date: r.try_get("consent_date")?,
        updated_at: ts(r.try_get("updated_at_ms")?),
    }))
}

impl SegmentStore for SqlStore {
    async fn create_segment(
        &self,
        brand: BrandCode,
        name: &str,
        description: Option<&str>,
        definition: &SegmentDefinition,
        now: Timestamp,
    ) -> Result<Segment> {
        let text = serde_json::to_string(definition).map_err(|e| corrupt("definition", e))?;
        let id: i64 = {
            let _w = self.writer().await;
            sqlx::query(
                "INSERT INTO segment (brand_code, name, description, definition, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (brand_code, name) DO NOTHING RETURNING id",
            )
            .bind(brand.0 as i64)
            .bind(name.to_owned())
            .bind(description.map(str::to_owned))
            .bind(text)
            .bind(ms(now))
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::Conflict(format!("segment {name:?}")))?
            .try_get("id")?
        };
        self.segment(brand, id)
            .await?
            .ok_or_else(|| corrupt("segment", "vanished after insert"))
    }

    async fn segments(&self, brand: BrandCode) -> Result<Vec<Segment>> {
        self.brand_rows(
            SEGMENT_COLUMNS,
            "segment",
            "ORDER BY id",
            brand,
            &[],
            segment_from,
        )
        .await
    }

    async fn segment(&self, brand: BrandCode, id: i64) -> Result<Option<Segment>> {
        Ok(self
            .brand_rows(
                SEGMENT_COLUMNS,
                "segment",
                "AND id = $2",
                brand,
                &[id],
                segment_from,
            )
            .await?
            .into_iter()
            .next())
    }

    async fn update_segment(
        &self,
        brand: BrandCode,
        id: i64,
        name: &str,
        description: Option<&str>,
        definition: &SegmentDefinition,
        now: Timestamp,
    ) -> Result<Option<Segment>> {
        let text = serde_json::to_string(definition).map_err(|e| corrupt("definition", e))?;
        let clash =
            sqlx::query("SELECT id FROM segment WHERE brand_code = $1 AND name = $2 AND id <> $3")
                .bind(brand.0 as i64)
                .bind(name.to_owned())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        if clash.is_some() {
            return Err(StoreError::Conflict(format!("segment {name:?}")));
        }
        {
            let _w = self.writer().await;
            sqlx::query(
                "UPDATE segment SET name = $1, description = $2, definition = $3, updated_at_ms = $4 WHERE brand_code = $5 AND id = $6",
            )
            .bind(name.to_owned())
            .bind(description.map(str::to_owned))
            .bind(text)
            .bind(ms(now))
            .bind(brand.0 as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        }
        self.segment(brand, id).await
    }

    async fn delete_segment(&self, brand: BrandCode, id: i64) -> Result<bool> {
        let _w = self.writer().await;
        Ok(
            sqlx::query("DELETE FROM segment WHERE brand_code = $1 AND id = $2")
                .bind(brand.0 as i64)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    async fn segment_members(
        &self,
        brand: BrandCode,
        definition: &SegmentDefinition,
        category: Option<CategoryKind>,
        after: Option<&ConsentKey>,
        limit: u32,
    ) -> Result<MemberPage> {
        let (sql, binds) = candidates(self.backend, brand, definition, after, limit);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = match b {
                Bind::Int(i) => q.bind(i),
                Bind::Text(t) => q.bind(t),
            };
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut page = MemberPage {
            members: Vec::with_capacity(rows.len()),
            next: None,
        };
        for r in &rows {
            let recipient: String = r.try_get("recipient")?;
            let recipient_type: RecipientType = parse(
                "consent.recipient_type",
                &r.try_get::<String, _>("recipient_type")?,
            )?;
            let channel: Channel = parse("consent.channel", &r.try_get::<String, _>("channel")?)?;
            page.next = Some(ConsentKey {
                brand,
                recipient: recipient.clone(),
                recipient_type,
                channel,
            });
            // A row whose state cannot be read is left out (it may not be sent to) and named
            // in the log; the key's own columns are kept readable, so the pages still move on.
            match member(r, recipient, recipient_type, channel, definition, category) {
                Ok(Some(m)) => page.members.push(m),
                Ok(None) => {}
                Err(StoreError::Corrupt(what)) => {
                    if let Some(key) = &page.next {
                        tracing::error!(brand = %brand, recipient = key.recipient, channel = %channel, error = %what, "segment: an unreadable stored consent left out");
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if rows.len() < limit as usize {
            page.next = None;
        }
        Ok(page)
    }

    async fn refused_by_profile(
        &self,
        brand: BrandCode,
        category: &str,
        recipients: &[String],
    ) -> Result<std::collections::HashSet<String>> {
        let mut refused = std::collections::HashSet::new();
        for chunk in recipients.chunks(500) {
            let list = crate::record::in_list(3, chunk.len());
            let sql = crate::sql::positional(
                self.backend,
                format!(
                    "SELECT DISTINCT pa.recipient FROM profile_address pa JOIN category_consent cc \
                 ON cc.brand_code = pa.brand_code AND cc.subject = 'profile:' || pa.external_id \
                 WHERE pa.brand_code = $1 AND cc.category = $2 AND cc.status = 'RET' AND pa.recipient IN ({list})"
                ),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(brand.0 as i64)
                .bind(category.to_owned());
            for r in chunk {
                q = q.bind(r.clone());
            }
            for row in q.fetch_all(&self.pool).await? {
                refused.insert(row.try_get("recipient")?);
            }
        }
        Ok(refused)
    }
}
