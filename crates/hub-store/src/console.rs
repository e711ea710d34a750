//! The web console's users, their brand roles and their sessions. Passwords arrive hashed
//! (argon2, by `hub-secrets`) and session tokens as their SHA-256: neither is ever stored plain.

use std::future::Future;
use std::str::FromStr;

use hub_core::BrandCode;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sqlx::Row;

use crate::sql::{corrupt, ms, ts};
use crate::{Result, SqlStore, StoreError};

/// What a console user may do with a brand; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleRole {
    /// See the brand's pages.
    Read,
    /// Also place and lift holds, requeue.
    Write,
    /// Also switch the mode, manage API keys and webhooks.
    Admin,
}

impl ConsoleRole {
    pub const ALL: [ConsoleRole; 3] = [ConsoleRole::Read, ConsoleRole::Write, ConsoleRole::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleRole::Read => "read",
            ConsoleRole::Write => "write",
            ConsoleRole::Admin => "admin",
        }
    }
}

impl FromStr for ConsoleRole {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "read" => Ok(ConsoleRole::Read),
            "write" => Ok(ConsoleRole::Write),
            "admin" => Ok(ConsoleRole::Admin),
            other => Err(format!(
                "unknown role {other:?}: expected read, write or admin"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleUser {
    pub id: i64,
    pub username: String,
    /// Every brand with every role, plus what only the provider may do (users, IYS connections).
    pub global_admin: bool,
    /// The brands a user who is not a global admin may open, with the role on each.
    pub grants: Vec<(BrandCode, ConsoleRole)>,
    pub failed_logins: i64,
    pub locked_until: Option<Timestamp>,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub last_login: Option<Timestamp>,
}

impl ConsoleUser {
    /// The user's role on `brand`, if any.
    pub fn role(&self, brand: BrandCode) -> Option<ConsoleRole> {
        if self.global_admin {
            return Some(ConsoleRole::Admin);
        }
        self.grants
            .iter()
            .find(|(b, _)| *b == brand)
            .map(|(_, r)| *r)
    }

    pub fn may(&self, role: ConsoleRole, brand: BrandCode) -> bool {
        self.role(brand).is_some_and(|r| r >= role)
    }

    pub fn locked(&self, now: Timestamp) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }
}

/// A new console user; `password_hash` is an argon2 PHC string.
#[derive(Debug, Clone)]
pub struct NewConsoleUser {
    pub username: String,
    pub password_hash: String,
    pub global_admin: bool,
    pub grants: Vec<(BrandCode, ConsoleRole)>,
}

/// A live session: who, and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub user: ConsoleUser,
    pub csrf: String,
    pub expires_at: Timestamp,
}

const USER_COLUMNS: &str = "id, username, global_admin, failed_logins, locked_until_ms, disabled, created_at_ms, last_login_ms";

/// The web console's users and sessions.
pub trait ConsoleStore: Send + Sync {
    /// Creates a console user with their brand grants; `Conflict` for a name in use.
    fn create_console_user(
        &self,
        u: NewConsoleUser,
    ) -> impl Future<Output = Result<ConsoleUser>> + Send;

    /// How many console users exist.
    fn console_user_count(&self) -> impl Future<Output = Result<i64>> + Send;

    /// Every console user with their grants, by username.
    fn console_users(&self) -> impl Future<Output = Result<Vec<ConsoleUser>>> + Send;

    /// One console user, by id.
    fn console_user(&self, id: i64) -> impl Future<Output = Result<Option<ConsoleUser>>> + Send;

    /// The user named `username` and their password hash, for a login.
    fn console_login_user(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<(ConsoleUser, String)>>> + Send;

    /// Replaces a user's password and unlocks the account; their sessions end.
    fn set_console_password(
        &self,
        username: &str,
        password_hash: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Counts a failed login; at `limit` failures in a row the account locks for `lock_for`.
    /// Returns when the lock ends, if it is locked now.
    fn console_login_failed(
        &self,
        id: i64,
        now: Timestamp,
        limit: i64,
        lock_for: SignedDuration,
    ) -> impl Future<Output = Result<Option<Timestamp>>> + Send;

    /// Starts a session after a good login: the failure count is reset.
    fn create_console_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The live session with this token hash: not expired, its user neither disabled nor locked.
    fn console_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<ConsoleSession>>> + Send;

    /// Ends a session (logout).
    fn delete_console_session(&self, token_hash: &str) -> impl Future<Output = Result<()>> + Send;
}

impl ConsoleStore for SqlStore {
    async fn create_console_user(&self, u: NewConsoleUser) -> Result<ConsoleUser> {
        let _w = self.writer().await;
        let mut tx = self.begin_writing().await?;
        let taken = sqlx::query("SELECT 1 FROM console_user WHERE username = $1")
            .bind(u.username.clone())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("user {:?}", u.username)));
        }
        let row = sqlx::query(
            "INSERT INTO console_user (username, password_hash, global_admin, created_at_ms) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(u.username.clone())
        .bind(u.password_hash)
        .bind(i64::from(u.global_admin))
        .bind(ms(Timestamp::now()))
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        for (brand, role) in &u.grants {
            sqlx::query(
                "INSERT INTO console_grant (user_id, brand_code, role) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(brand.0 as i64)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        drop(_w);
        self.console_user(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
    }

    async fn console_user_count(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM console_user")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    async fn console_users(&self) -> Result<Vec<ConsoleUser>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM console_user ORDER BY username"
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut users = Vec::with_capacity(rows.len());
        for r in &rows {
            users.push(self.user_from(r).await?);
        }
        Ok(users)
    }

    async fn console_user(&self, id: i64) -> Result<Option<ConsoleUser>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM console_user WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(self.user_from(&r).await?)),
            None => Ok(None),
        }
    }

    async fn console_login_user(&self, username: &str) -> Result<Option<(ConsoleUser, String)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, password_hash FROM console_user WHERE username = $1"
        )))
        .bind(username.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => {
                let hash: String = r.try_get("password_hash")?;
                Ok(Some((self.user_from(&r).await?, hash)))
            }
            None => Ok(None),
        }
    }

    async fn set_console_password(&self, username: &str, password_hash: &str) -> Result<bool> {
        let _w = self.writer().await;
        let mut tx = self.begin_writing().await?;
        let r = sqlx::query(
            "UPDATE console_user SET password_hash = $1, failed_logins = 0, locked_until_ms = NULL WHERE username = $2",
        )
        .bind(password_hash.to_owned())
        .bind(username.to_owned())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM console_session WHERE user_id IN (SELECT id FROM console_user WHERE username = $1)")
            .bind(username.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    async fn console_login_failed(
        &self,
        id: i64,
        now: Timestamp,
        limit: i64,
        lock_for: SignedDuration,
    ) -> Result<Option<Timestamp>> {
        let _w = self.writer().await;
        let mut tx = self.begin_writing().await?;
        let row = sqlx::query(
            "UPDATE console_user SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let failed: i64 = match row {
            Some(r) => r.try_get("failed_logins")?,
            None => return Ok(None),
        };
        let until = (failed >= limit).then(|| now.saturating_add(lock_for).unwrap_or(now));
        if let Some(until) = until {
            sqlx::query(
                "UPDATE console_user SET locked_until_ms = $1, failed_logins = 0 WHERE id = $2",
            )
            .bind(ms(until))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(until)
    }

    async fn create_console_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.begin_writing().await?;
        // Expired sessions of everyone go with each new one: no sweeper needed.
        sqlx::query("DELETE FROM console_session WHERE expires_at_ms <= $1")
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE console_user SET failed_logins = 0, locked_until_ms = NULL, last_login_ms = $1 WHERE id = $2",
        )
        .bind(ms(now))
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO console_session (token_hash, user_id, csrf, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash.to_owned())
        .bind(user_id)
        .bind(csrf.to_owned())
        .bind(ms(now))
        .bind(ms(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn console_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "SELECT user_id, csrf, expires_at_ms FROM console_session WHERE token_hash = $1 AND expires_at_ms > $2",
        )
        .bind(token_hash.to_owned())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let Some(user) = self.console_user(row.try_get("user_id")?).await? else {
            return Ok(None);
        };
        if user.disabled || user.locked(now) {
            return Ok(None);
        }
        Ok(Some(ConsoleSession {
            user,
            csrf: row.try_get("csrf")?,
            expires_at: ts(row.try_get("expires_at_ms")?),
        }))
    }

    async fn delete_console_session(&self, token_hash: &str) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query("DELETE FROM console_session WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl SqlStore {
    async fn user_from(&self, r: &sqlx::any::AnyRow) -> Result<ConsoleUser> {
        let id: i64 = r.try_get("id")?;
        let grants = sqlx::query(
            "SELECT brand_code, role FROM console_grant WHERE user_id = $1 ORDER BY brand_code",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|g| {
            let code: i64 = g.try_get("brand_code")?;
            let role: String = g.try_get("role")?;
            let brand = u64::try_from(code)
                .map(BrandCode)
                .map_err(|e| corrupt("console_grant.brand_code", e))?;
            Ok((
                brand,
                role.parse().map_err(|e| corrupt("console_grant.role", e))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(ConsoleUser {
            id,
            username: r.try_get("username")?,
            global_admin: r.try_get::<i64, _>("global_admin")? != 0,
            grants,
            failed_logins: r.try_get("failed_logins")?,
            locked_until: r.try_get::<Option<i64>, _>("locked_until_ms")?.map(ts),
            disabled: r.try_get::<i64, _>("disabled")? != 0,
            created_at: ts(r.try_get("created_at_ms")?),
            last_login: r.try_get::<Option<i64>, _>("last_login_ms")?.map(ts),
        })
    }
}

/// What a person settles by hand from the console: a movement from IYS set aside, or a
/// consent's conflict flag. Neither changes a consent's status; both are audited.
/// What a person settles by hand from the console: a movement from IYS set aside, or a consent's conflict flag. Neither changes a consent's status; both are audited.
pub trait ReviewStore: Send + Sync {
    /// Marks a quarantined movement as handled by `actor` (it leaves the open list). False when
    /// there is no such open item of the brand.
    fn resolve_quarantine(
        &self,
        brand: BrandCode,
        id: i64,
        actor: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Clears a consent's conflict flag (an equal-date tie that RET won): a person has looked
    /// at it and keeps the RET. False when the consent has no conflict.
    fn acknowledge_conflict(
        &self,
        key: &hub_core::ConsentKey,
        actor: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool>> + Send;
}

impl ReviewStore for SqlStore {
    async fn resolve_quarantine(
        &self,
        brand: BrandCode,
        id: i64,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let _w = self.writer().await;
        let mut tx = self.begin_writing().await?;
        let r = sqlx::query(
            "UPDATE quarantine SET resolved_ms = $1 WHERE id = $2 AND brand_code = $3 AND resolved_ms IS NULL",
        )
        .bind(ms(now))
        .bind(id)
        .bind(brand.0 as i64)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        audit_in(
            &mut tx,
            brand,
            now,
            actor,
            "quarantine_resolved",
            serde_json::json!({"id": id}),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn acknowledge_conflict(
        &self,
        key: &hub_core::ConsentKey,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let _w = self.writer().await;
        let mut tx = self.begin_writing().await?;
        self.lock_brand(&mut tx, key.brand.0 as i64).await?;
        let r = sqlx::query(
            "UPDATE consent SET conflict = 0 WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4 AND conflict = 1",
        )
        .bind(key.brand.0 as i64)
        .bind(key.recipient.clone())
        .bind(key.recipient_type.as_str())
        .bind(key.channel.as_str())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        let detail = serde_json::json!({"recipient": key.recipient, "recipientType": key.recipient_type.as_str(), "channel": key.channel.as_str()});
        audit_in(
            &mut tx,
            key.brand,
            now,
            actor,
            "conflict_acknowledged",
            detail,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

async fn audit_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    brand: BrandCode,
    now: Timestamp,
    actor: &str,
    action: &str,
    detail: serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (brand_code, at_ms, actor, action, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(brand.0 as i64)
    .bind(ms(now))
    .bind(actor.to_owned())
    .bind(action.to_owned())
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
