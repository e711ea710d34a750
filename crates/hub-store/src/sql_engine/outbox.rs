//! Outbox rows for people: listed by filter, and queued again.

use hub_core::{BrandCode, IysState, Mode};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::item_from;
use crate::engine::{OutboxFilter, OutboxPage, OutboxRow, RequeueReport};
use crate::sql::{ms, parse, positional, ts};
use crate::state::{OutboxState, Sql, sql_list};
use crate::{Result, SqlStore, StoreError};

impl SqlStore {
    pub(crate) async fn outbox_rows(
        &self,
        brand: BrandCode,
        filter: &OutboxFilter,
        now: Timestamp,
        after: i64,
        limit: i64,
    ) -> Result<OutboxPage> {
        let limit = limit.clamp(1, 1000);
        let (clause, binds) = filter_sql(filter, now);
        let sql = format!(
            "SELECT * FROM outbox WHERE brand_code = $1 AND id > $2{clause} ORDER BY id LIMIT {limit}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, sql)))
            .bind(brand.0 as i64)
            .bind(after);
        for v in binds {
            q = v.bind_to(q);
        }
        let found = q.fetch_all(&self.pool).await?;
        let mut page = OutboxPage {
            rows: Vec::with_capacity(found.len()),
            next: None,
        };
        for r in &found {
            match row_from(r) {
                Ok(row) => page.rows.push(row),
                Err(StoreError::Corrupt(what)) => {
                    tracing::error!(brand = %brand, error = %what, "outbox listing: an unreadable row left out")
                }
                Err(e) => return Err(e),
            }
        }
        if found.len() as i64 == limit
            && let Some(last) = found.last()
        {
            page.next = Some(last.try_get("id")?);
        }
        Ok(page)
    }

    pub(crate) async fn requeue(
        &self,
        brand: BrandCode,
        filter: &OutboxFilter,
        dry_run: bool,
        actor: &str,
        now: Timestamp,
    ) -> Result<RequeueReport> {
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let mut tx = self.begin_writing().await?;
        self.lock_brand(&mut tx, brand.0 as i64).await?;
        let (clause, binds) = filter_sql(filter, now);
        // Sync mode never creates IYS records: its held ONAYs wait for IYS to know the recipient.
        let states = if self
            .brand_mode(&mut crate::tx::Tx::Any(&mut tx, self.backend), b)
            .await?
            == Some(Mode::Sync)
        {
            sql_list(&[OutboxState::Failed])
        } else {
            sql_list(&[OutboxState::Failed, OutboxState::Held])
        };
        // Only rows that failed (or were held) can go again; each only while it still carries
        // its consent's current state, so an overtaken change never reaches IYS after a later one.
        let sql = format!(
            "SELECT o.id, o.event_id, (SELECT COUNT(*) FROM consent c WHERE c.brand_code = o.brand_code AND c.recipient = o.recipient \
             AND c.recipient_type = o.recipient_type AND c.channel = o.channel AND c.last_event_id = o.event_id) AS current \
             FROM outbox o WHERE o.brand_code = $1 AND o.id > $2 AND o.state IN {states}{clause} ORDER BY o.id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, sql)))
            .bind(b)
            .bind(0_i64);
        for v in binds {
            q = v.bind_to(q);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        let mut report = RequeueReport {
            matched: rows.len() as u64,
            dry_run,
            ..RequeueReport::default()
        };
        let mut ids = Vec::new();
        let mut events = Vec::new();
        for r in &rows {
            if r.try_get::<i64, _>("current")? > 0 {
                ids.push(r.try_get::<i64, _>("id")?);
                events.push(r.try_get::<i64, _>("event_id")?);
            } else {
                report.overtaken += 1;
            }
        }
        report.requeued = ids.len() as u64;
        if dry_run {
            return Ok(report);
        }
        for (ids, events) in ids.chunks(500).zip(events.chunks(500)) {
            let list = |xs: &[i64]| xs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
            sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, format!(
                "UPDATE outbox SET state = {}, attempts = 0, next_attempt_at_ms = $1, last_error = NULL, lease_owner = NULL, lease_until_ms = NULL, \
                 request_id = NULL, sub_request_id = NULL, bulk_index = NULL, submitted_at_ms = NULL WHERE brand_code = $2 AND id IN ({})",
                OutboxState::Pending.sql(),
                list(ids)
            ))))
            .bind(ms(now))
            .bind(b)
            .execute(&mut *tx)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, format!(
                "UPDATE consent SET iys_state = {}, iys_error = NULL WHERE brand_code = $1 AND last_event_id IN ({})",
                IysState::Pending.sql(),
                list(events)
            ))))
            .bind(b)
            .execute(&mut *tx)
            .await?;
        }
        let detail = serde_json::json!({
            "filter": {
                "state": filter.state.map(OutboxState::as_str),
                "hcode": filter.hcode,
                "recipient": filter.recipient,
                "from": filter.from,
                "to": filter.to,
                "atRisk": filter.at_risk,
            },
            "matched": report.matched,
            "requeued": report.requeued,
            "overtaken": report.overtaken,
        });
        sqlx::query("INSERT INTO audit_log (brand_code, at_ms, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(b)
            .bind(ms(now))
            .bind(actor.to_owned())
            .bind("outbox_requeue")
            .bind(detail.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(report)
    }
}

/// A value bound to a filter's placeholder.
enum Bind {
    Text(String),
    Int(i64),
}

impl Bind {
    fn bind_to<'q>(
        self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        match self {
            Bind::Text(s) => q.bind(s),
            Bind::Int(n) => q.bind(n),
        }
    }
}

/// The filter as SQL conditions on outbox columns (placeholders from `$3`), with their values.
/// Column names are unqualified so the conditions fit `outbox` with or without an alias.
fn filter_sql(f: &OutboxFilter, now: Timestamp) -> (String, Vec<Bind>) {
    let mut clause = String::new();
    let mut binds = Vec::new();
    let mut add = |cond: &str, v: Bind| {
        binds.push(v);
        clause.push_str(&cond.replace('?', &format!("${}", binds.len() + 2)));
    };
    if let Some(state) = f.state {
        add(" AND state = ?", Bind::Text(state.as_str().to_owned()));
    }
    if let Some(code) = &f.hcode {
        add(" AND last_error = ?", Bind::Text(code.clone()));
    }
    if let Some(r) = &f.recipient {
        add(" AND recipient = ?", Bind::Text(r.clone()));
    }
    if let Some(t) = f.from {
        add(" AND created_at_ms >= ?", Bind::Int(ms(t)));
    }
    if let Some(t) = f.to {
        add(" AND created_at_ms < ?", Bind::Int(ms(t)));
    }
    if f.at_risk {
        add(
            &format!(
                " AND state IN {} AND deadline_ms < ?",
                sql_list(&OutboxState::OPEN)
            ),
            Bind::Int(ms(now) + 86_400_000),
        );
    }
    (clause, binds)
}

/// An outbox row for people; the error of one that cannot be read names it, so the row to mend
/// can be found.
fn row_from(r: &AnyRow) -> Result<OutboxRow> {
    row_fields(r).map_err(|e| match (e, r.try_get::<i64, _>("id")) {
        (StoreError::Corrupt(what), Ok(id)) => {
            StoreError::Corrupt(format!("{what}, in outbox row {id}"))
        }
        (e, _) => e,
    })
}

fn row_fields(r: &AnyRow) -> Result<OutboxRow> {
    let item = item_from(r)?;
    Ok(OutboxRow {
        id: item.id,
        event_id: item.event_id,
        recipient: item.recipient,
        recipient_type: item.recipient_type,
        channel: item.channel,
        status: item.status,
        consent_date: item.consent_date,
        state: parse("outbox.state", &r.try_get::<String, _>("state")?)?,
        attempts: item.attempts,
        last_error: r.try_get("last_error")?,
        deadline: item.deadline,
        created_at: ts(r.try_get("created_at_ms")?),
        request_id: item.request_id,
        superseded_by: r.try_get("superseded_by")?,
    })
}
