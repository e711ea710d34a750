//! Mode switches, and what IYS is known to have: both release or hold outbox rows.

use hub_core::{BrandCode, IysState, Mode};
use iys::ConsentStatus;
use jiff::Timestamp;

use crate::sql::ms;
use crate::state::{OutboxState, Sql};
use crate::{Brand, Result, SqlStore};

/// The changes a mode switch would move, counted before it is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModePreview {
    /// Held changes that would be queued for IYS.
    pub released: i64,
    /// Waiting ONAYs that would be held until IYS knows their recipient.
    pub held: i64,
}

impl SqlStore {
    pub(crate) async fn switch_mode(
        &self,
        brand: BrandCode,
        mode: Mode,
        actor: &str,
    ) -> Result<Option<Brand>> {
        let Some(current) = self.brand(brand).await? else {
            return Ok(None);
        };
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let now = ms(Timestamp::now());
        let mut tx = self.begin_writing().await?;
        self.lock_brand(&mut tx, brand.0 as i64).await?;
        sqlx::query("UPDATE brand SET mode = $1, updated_at_ms = $2 WHERE brand_code = $3")
            .bind(mode.as_str())
            .bind(now)
            .bind(b)
            .execute(&mut *tx)
            .await?;
        let (released, held) = match mode {
            Mode::Integrator => {
                let r = sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE outbox SET state = {}, next_attempt_at_ms = $1 WHERE brand_code = $2 AND state = {}", OutboxState::Pending.sql(), OutboxState::Held.sql())))
                    .bind(now)
                    .bind(b)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE consent SET iys_state = {} WHERE brand_code = $1 AND iys_state = {}",
                    IysState::Pending.sql(),
                    IysState::Held.sql()
                )))
                .bind(b)
                .execute(&mut *tx)
                .await?;
                (r.rows_affected(), 0)
            }
            Mode::Sync => {
                // A waiting ONAY that no longer carries its consent's state (it came back from
                // IYS unsent after a later change was queued behind it) is superseded, not held:
                // held, it would let the later row go first and follow it once released.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE outbox SET state = {} WHERE brand_code = $1 AND state = {} AND status = {} AND (lease_until_ms IS NULL OR lease_until_ms < $2) \
                     AND NOT EXISTS (SELECT 1 FROM consent c WHERE c.brand_code = outbox.brand_code AND c.recipient = outbox.recipient AND c.recipient_type = outbox.recipient_type AND c.channel = outbox.channel AND (c.iys_known = 1 OR c.last_event_id = outbox.event_id))",
                    OutboxState::Superseded.sql(),
                    OutboxState::Pending.sql(),
                    ConsentStatus::Onay.sql()
                )))
                .bind(b)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE outbox SET state = {} WHERE brand_code = $1 AND state = {} AND status = {} AND (lease_until_ms IS NULL OR lease_until_ms < $2) \
                     AND NOT EXISTS (SELECT 1 FROM consent c WHERE c.brand_code = outbox.brand_code AND c.recipient = outbox.recipient AND c.recipient_type = outbox.recipient_type AND c.channel = outbox.channel AND c.iys_known = 1)",
                    OutboxState::Held.sql(),
                    OutboxState::Pending.sql(),
                    ConsentStatus::Onay.sql()
                )))
                .bind(b)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                // Every such consent, also one whose ONAY is already on its way (leased, or
                // awaiting IYS's bulk result): until IYS answers, sync mode's rule holds and a
                // check says "may not send"; the answer then settles it (in IYS, or held).
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE consent SET iys_state = {} WHERE brand_code = $1 AND iys_state = {} AND status = {} AND iys_known = 0", IysState::Held.sql(), IysState::Pending.sql(), ConsentStatus::Onay.sql())))
                    .bind(b)
                    .execute(&mut *tx)
                    .await?;
                (0, r.rows_affected())
            }
        };
        let detail = serde_json::json!({"from": current.mode.as_str(), "to": mode.as_str(), "released": released, "held": held}).to_string();
        sqlx::query("INSERT INTO audit_log (brand_code, at_ms, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(b)
            .bind(now)
            .bind(actor.to_owned())
            .bind("mode_switch")
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.brand(brand).await
    }

    /// See [`crate::EngineStore::mode_switch_preview`].
    pub(crate) async fn mode_switch_preview(
        &self,
        brand: BrandCode,
        to: Mode,
    ) -> Result<ModePreview> {
        let b = brand.0 as i64;
        let count = |sql: String| async move {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(b)
                .fetch_one(&self.pool)
                .await?;
            Ok::<i64, crate::StoreError>(sqlx::Row::try_get(&row, "n")?)
        };
        Ok(match to {
            Mode::Integrator => ModePreview {
                released: count(format!(
                    "SELECT COUNT(*) AS n FROM outbox WHERE brand_code = $1 AND state = {}",
                    OutboxState::Held.sql()
                ))
                .await?,
                held: 0,
            },
            Mode::Sync => ModePreview {
                released: 0,
                held: count(format!(
                    "SELECT COUNT(*) AS n FROM outbox WHERE brand_code = $1 AND state = {} AND status = {} \
                     AND NOT EXISTS (SELECT 1 FROM consent c WHERE c.brand_code = outbox.brand_code AND c.recipient = outbox.recipient AND c.recipient_type = outbox.recipient_type AND c.channel = outbox.channel AND c.iys_known = 1)",
                    OutboxState::Pending.sql(),
                    ConsentStatus::Onay.sql()
                ))
                .await?,
            },
        })
    }

    pub(crate) async fn mark_known(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        recipients: &[String],
    ) -> Result<u64> {
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let mut released = 0;
        let mut tx = self.begin_writing().await?;
        self.lock_brand(&mut tx, brand.0 as i64).await?;
        let sync = self
            .brand_mode(&mut crate::tx::Tx::Any(&mut tx, self.backend), b)
            .await?
            == Some(Mode::Sync);
        for r in recipients {
            sqlx::query("UPDATE consent SET iys_known = 1 WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4")
                .bind(b)
                .bind(r.clone())
                .bind(recipient_type.as_str())
                .bind(channel.as_str())
                .execute(&mut *tx)
                .await?;
            if sync {
                released += sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE outbox SET state = {}, next_attempt_at_ms = $1 WHERE brand_code = $2 AND recipient = $3 AND recipient_type = $4 AND channel = $5 AND state = {}", OutboxState::Pending.sql(), OutboxState::Held.sql())))
                    .bind(ms(Timestamp::now()))
                    .bind(b)
                    .bind(r.clone())
                    .bind(recipient_type.as_str())
                    .bind(channel.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE consent SET iys_state = {} WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4 AND iys_state = {}", IysState::Pending.sql(), IysState::Held.sql())))
                    .bind(b)
                    .bind(r.clone())
                    .bind(recipient_type.as_str())
                    .bind(channel.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(released)
    }
}
