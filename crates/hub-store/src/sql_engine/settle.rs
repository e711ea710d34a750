//! Settling deliveries: how each outbox row ended, and what it tells about its consent.

use hub_core::{BrandCode, IysState, Mode};
use iys::{ConsentStatus, HCode};
use jiff::Timestamp;
use sqlx::Row;

use crate::engine::{OutboxItem, Settlement};
use crate::sql::ms;
use crate::state::{OutboxState, Sql};
use crate::{Result, SqlStore};

impl SqlStore {
    pub(crate) async fn settle(
        &self,
        brand: BrandCode,
        owner: &str,
        settlements: Vec<(OutboxItem, Settlement)>,
        now: Timestamp,
    ) -> Result<()> {
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let mut tx = self.pool.begin().await?;
        self.lock_brand(&mut tx, brand.0 as i64).await?;
        // The mode as it is now, under the lock: the brand may have switched to sync mode while
        // these rows were on their way.
        let sync = self.brand_mode(&mut tx, b).await? == Some(Mode::Sync);
        for (item, s) in settlements {
            let key = (
                item.recipient.clone(),
                item.recipient_type.as_str(),
                item.channel.as_str(),
            );
            // The row's outcome, and what it says about the consent when it still carries the
            // consent's current state: (outbox state, last error, consent's IYS state, known).
            let (row_state, last_error, consent_state, known) = match &s {
                Settlement::Delivered { .. } => {
                    (OutboxState::Done, None, Some((IysState::InIys, None)), true)
                }
                Settlement::Refused { code, .. } => match code.parse::<HCode>() {
                    // IYS already holds this RET.
                    Ok(HCode::H174) if item.status == ConsentStatus::Ret => (
                        OutboxState::Done,
                        Some(code.clone()),
                        Some((IysState::InIys, None)),
                        true,
                    ),
                    // A RET for a recipient IYS never had: nothing to withdraw, not an error.
                    Ok(HCode::H175) if item.status == ConsentStatus::Ret => (
                        OutboxState::Done,
                        Some(code.clone()),
                        Some((IysState::NotInIys, None)),
                        false,
                    ),
                    _ => (
                        OutboxState::Failed,
                        Some(code.clone()),
                        Some((IysState::Rejected, Some(code.clone()))),
                        false,
                    ),
                },
                Settlement::Retry { error, .. } => {
                    (OutboxState::Pending, Some(error.clone()), None, false)
                }
                Settlement::Submitted { .. } | Settlement::StillQueued { .. } => {
                    (OutboxState::AwaitingResult, None, None, false)
                }
                Settlement::Paused { .. } => (OutboxState::Pending, None, None, false),
            };
            let next_ms = match &s {
                Settlement::Retry { at, .. } => Some(ms(*at)),
                Settlement::Submitted { poll_at, .. } | Settlement::StillQueued { poll_at } => {
                    Some(ms(*poll_at))
                }
                Settlement::Paused { until } => Some(ms(*until)),
                // The refusal time is kept for the 24-hour error figures.
                Settlement::Refused { .. } => Some(ms(now)),
                Settlement::Delivered { .. } => None,
            };
            // Sync mode never gives IYS a new record: an ONAY that comes back unsent (a retry, a
            // pause) after a switch to sync mode is held, as the switch holds the rows it finds
            // waiting, unless IYS is known to have the consent. If a later change came while it
            // was on its way (the consent's state is no longer its event's), it is superseded
            // instead: held, it would no longer keep the later row waiting behind it, and would
            // reach IYS after it once released.
            let row_state = if sync
                && row_state == OutboxState::Pending
                && item.status == ConsentStatus::Onay
            {
                let consent = sqlx::query("SELECT iys_known, last_event_id FROM consent WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4")
                    .bind(b)
                    .bind(key.0.clone())
                    .bind(key.1)
                    .bind(key.2)
                    .fetch_optional(&mut *tx)
                    .await?;
                let (iys_has_it, current) = match consent {
                    Some(r) => (
                        r.try_get::<i64, _>("iys_known")? != 0,
                        r.try_get::<i64, _>("last_event_id")? == item.event_id,
                    ),
                    None => (false, true),
                };
                match (iys_has_it, current) {
                    (true, _) => OutboxState::Pending,
                    (false, true) => OutboxState::Held,
                    (false, false) => OutboxState::Superseded,
                }
            } else {
                row_state
            };
            let counts_attempt = !matches!(
                s,
                Settlement::StillQueued { .. } | Settlement::Paused { .. }
            );
            let (request_id, sub_request_id, index, submitted) = match &s {
                Settlement::Submitted {
                    request_id,
                    sub_request_id,
                    index,
                    ..
                } => (
                    Some(request_id.clone()),
                    Some(sub_request_id.clone()),
                    Some(*index),
                    Some(ms(now)),
                ),
                _ => (None, None, None, None),
            };
            let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET state = $1, lease_owner = NULL, lease_until_ms = NULL, \
                 last_error = CASE WHEN $2 = {} THEN last_error ELSE $3 END, \
                 next_attempt_at_ms = COALESCE($4, next_attempt_at_ms), attempts = attempts + $5, \
                 request_id = COALESCE($6, request_id), sub_request_id = COALESCE($7, sub_request_id), \
                 bulk_index = COALESCE($8, bulk_index), submitted_at_ms = COALESCE($9, submitted_at_ms) \
                 WHERE id = $10 AND brand_code = $11 AND lease_owner = $12",
                OutboxState::AwaitingResult.sql()
            )))
            .bind(row_state.as_str())
            .bind(row_state.as_str())
            .bind(last_error.clone())
            .bind(next_ms)
            .bind(i64::from(counts_attempt))
            .bind(request_id)
            .bind(sub_request_id)
            .bind(index)
            .bind(submitted)
            .bind(item.id)
            .bind(b)
            .bind(owner.to_owned())
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                tracing::warn!(
                    outbox = item.id,
                    "not settled: the row's lease passed to another owner"
                );
                continue;
            }
            if row_state == OutboxState::Held {
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE consent SET iys_state = {} WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4 AND last_event_id = $5 AND iys_state = {}", IysState::Held.sql(), IysState::Pending.sql())))
                    .bind(b)
                    .bind(key.0.clone())
                    .bind(key.1)
                    .bind(key.2)
                    .bind(item.event_id)
                    .execute(&mut *tx)
                    .await?;
            }
            match &s {
                Settlement::Delivered {
                    transaction_id,
                    creation_date,
                } => {
                    sqlx::query("UPDATE consent_event SET delivered_transaction_id = $1, iys_creation_date = $2, iys_error = NULL WHERE id = $3")
                        .bind(transaction_id.clone())
                        .bind(creation_date.map(|d| d.to_string()))
                        .bind(item.event_id)
                        .execute(&mut *tx)
                        .await?;
                }
                Settlement::Refused { code, message } => {
                    sqlx::query("UPDATE consent_event SET iys_error = $1 WHERE id = $2")
                        .bind(format!("{code}: {message}"))
                        .bind(item.event_id)
                        .execute(&mut *tx)
                        .await?;
                }
                _ => {}
            }
            if known {
                sqlx::query("UPDATE consent SET iys_known = 1 WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4")
                    .bind(b)
                    .bind(key.0.clone())
                    .bind(key.1)
                    .bind(key.2)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some((state, error)) = consent_state {
                sqlx::query("UPDATE consent SET iys_state = $1, iys_error = $2, deadline_ms = NULL WHERE brand_code = $3 AND recipient = $4 AND recipient_type = $5 AND channel = $6 AND last_event_id = $7")
                    .bind(state.as_str())
                    .bind(error)
                    .bind(b)
                    .bind(key.0.clone())
                    .bind(key.1)
                    .bind(key.2)
                    .bind(item.event_id)
                    .execute(&mut *tx)
                    .await?;
                // The key's next movement waits a second: IYS gives movements of one address and
                // type in the same second one shared transactionId.
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE outbox SET next_attempt_at_ms = $1 WHERE brand_code = $2 AND recipient = $3 AND recipient_type = $4 AND channel = $5 AND state = {} AND next_attempt_at_ms < $1", OutboxState::Pending.sql())))
                    .bind(ms(now) + 1_000)
                    .bind(b)
                    .bind(key.0.clone())
                    .bind(key.1)
                    .bind(key.2)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
