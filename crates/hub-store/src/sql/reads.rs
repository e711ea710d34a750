//! Send-time reads: many recipients' consents on one channel, and category statuses. On SQLite
//! files and on PostgreSQL they go through native connections (see `sqlite_read`, `pg_read`).

use std::sync::Arc;

use hub_core::BrandCode;
use sqlx::Row;

use super::{parse, positional};
use crate::{Result, SqlStore, StoreError};

/// Largest native SQLite read done in place: a few microseconds, less than handing it to another
/// thread. Larger ones go to the blocking pool so they do not hold up other requests.
const INLINE_READ: usize = 64;

/// Runs a large native SQLite read on the blocking pool.
async fn blocking<T: Send + 'static>(
    readers: &Arc<crate::sqlite_read::Readers>,
    read: impl FnOnce(&crate::sqlite_read::Readers) -> Result<T> + Send + 'static,
) -> Result<T> {
    let readers = readers.clone();
    tokio::task::spawn_blocking(move || read(&readers))
        .await
        .map_err(|e| StoreError::Sqlite(format!("a read was interrupted: {e}")))?
}

impl SqlStore {
    /// [`SqlStore::send_states_aligned`] as a map (recipients with no consent are absent).
    pub(crate) async fn send_states(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        recipients: &[String],
    ) -> Result<std::collections::HashMap<String, hub_core::SendState>> {
        let states = self
            .send_states_aligned(brand, channel, recipient_type, recipients.into())
            .await?;
        Ok(recipients
            .iter()
            .zip(states)
            .filter_map(|(r, s)| Some((r.clone(), s?)))
            .collect())
    }

    /// The send states of `recipients` on one channel and recipient type, in the list's order
    /// (`None` where the hub has no consent): what checks and the campaign filter read. On a
    /// SQLite file and on PostgreSQL neither copies nor hashes a recipient.
    pub(crate) async fn send_states_aligned(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        recipients: Arc<[String]>,
    ) -> Result<Vec<Option<hub_core::SendState>>> {
        if let Some(readers) = &self.readers {
            if recipients.len() <= crate::sqlite_read::COMBINED
                && let Some(checks) = &self.sqlite_checks
                && let Some(answer) = checks
                    .queue
                    .ask(brand, channel, recipient_type, &recipients)
                    .await
            {
                return answer;
            }
            if recipients.len() <= INLINE_READ {
                return readers.send_states_aligned(brand, channel, recipient_type, &recipients);
            }
            return blocking(readers, move |r| {
                r.send_states_aligned(brand, channel, recipient_type, &recipients)
            })
            .await;
        }
        if let Some(checks) = &self.pg_checks {
            if recipients.len() <= crate::pg_read::COALESCED
                && let Some(answer) = checks
                    .queue
                    .ask(brand, channel, recipient_type, &recipients)
                    .await
            {
                return answer;
            }
            if let Some(mirrors) = &self.pg_mirrors
                && let Some(states) = mirrors
                    .send_states_pg(brand, channel, recipient_type, &recipients)
                    .await?
            {
                return Ok(states);
            }
            return crate::pg_read::send_states(
                checks.pool(),
                brand,
                channel,
                recipient_type,
                &recipients,
            )
            .await;
        }
        let mut states = Vec::with_capacity(recipients.len());
        for chunk in recipients.chunks(500) {
            let list = crate::record::in_list(4, chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, format!(
                "SELECT recipient, status, source, iys_state, hold FROM consent WHERE brand_code = $1 AND channel = $2 AND recipient_type = $3 AND recipient IN ({list})"
            ))))
            .bind(brand.0 as i64)
            .bind(channel.as_str())
            .bind(recipient_type.as_str());
            for r in chunk {
                q = q.bind(r.clone());
            }
            let mut found = std::collections::HashMap::new();
            for row in q.fetch_all(&self.pool).await? {
                let source: iys::Source =
                    parse("consent.source", &row.try_get::<String, _>("source")?)?;
                found.insert(
                    row.try_get::<String, _>("recipient")?,
                    hub_core::SendState {
                        status: parse("consent.status", &row.try_get::<String, _>("status")?)?,
                        from_iys: source.is_iys(),
                        iys_state: parse(
                            "consent.iys_state",
                            &row.try_get::<String, _>("iys_state")?,
                        )?,
                        hold: row.try_get::<i64, _>("hold")? != 0,
                    },
                );
            }
            states.extend(chunk.iter().map(|r| found.get(r).copied()));
        }
        Ok(states)
    }

    /// The in-memory send-state mirrors: of the SQLite file, or of PostgreSQL (none for an
    /// in-memory SQLite database).
    fn mirrors(&self) -> Option<&Arc<crate::mirror::Mirrors>> {
        match &self.readers {
            Some(readers) => Some(&readers.mirrors),
            None => self.pg_mirrors.as_ref(),
        }
    }

    /// Sets how many consents this instance's in-memory send-state mirrors may hold in all
    /// (0: lists always read the table).
    pub fn set_mirror_budget(&self, consents: usize) {
        if let Some(mirrors) = self.mirrors() {
            mirrors.set_budget(consents);
        }
    }

    /// Sets how many of the send-state log's keys a mirror applies before a list at most; one
    /// further behind is built again (default 200,000).
    pub fn set_mirror_catch_up(&self, keys: usize) {
        if let Some(mirrors) = self.mirrors() {
            mirrors.set_catch_up(keys);
        }
    }

    /// Whether the brand's send-state mirror is built, asking for it when it is not (always
    /// false for in-memory SQLite). Lists of recipients ask for it themselves; this lets a
    /// caller build it ahead of a campaign and know when it is there.
    pub fn send_state_mirror_ready(&self, brand: BrandCode) -> bool {
        self.mirrors().is_some_and(|m| m.is_ready(brand))
    }

    /// The consents the brand's send-state mirror holds and about how many bytes of memory
    /// they take; none when it is not built.
    pub fn send_state_mirror_size(&self, brand: BrandCode) -> Option<(usize, usize)> {
        self.mirrors()?.size(brand)
    }

    pub(crate) async fn category_statuses(
        &self,
        brand: BrandCode,
        category: &str,
        subjects: &[String],
    ) -> Result<std::collections::HashMap<String, iys::ConsentStatus>> {
        if let Some(readers) = &self.readers {
            if subjects.len() <= INLINE_READ {
                return readers.category_statuses(brand, category, subjects);
            }
            return blocking(readers, {
                let (category, subjects) = (category.to_owned(), subjects.to_vec());
                move |r| r.category_statuses(brand, &category, &subjects)
            })
            .await;
        }
        if let Some(checks) = &self.pg_checks {
            return crate::pg_read::category_statuses(checks.pool(), brand, category, subjects)
                .await;
        }
        let mut statuses = std::collections::HashMap::new();
        for chunk in subjects.chunks(500) {
            let list = crate::record::in_list(3, chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, format!(
                "SELECT subject, status FROM category_consent WHERE brand_code = $1 AND category = $2 AND subject IN ({list})"
            ))))
            .bind(brand.0 as i64)
            .bind(category.to_owned());
            for s in chunk {
                q = q.bind(s.clone());
            }
            for row in q.fetch_all(&self.pool).await? {
                statuses.insert(
                    row.try_get("subject")?,
                    parse(
                        "category_consent.status",
                        &row.try_get::<String, _>("status")?,
                    )?,
                );
            }
        }
        Ok(statuses)
    }
}
