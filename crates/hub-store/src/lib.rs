//! The hub's store: every consent change lands here, with its history event, current state and
//! outbox row in one transaction.
//!
//! [`Store`] is what the rest of the hub needs. [`SqlStore`] implements it on SQLite (the
//! embedded default, WAL) and on PostgreSQL (for several instances), through sqlx's `Any`
//! driver with per-dialect migrations; the few statements that differ per dialect are chosen by
//! [`Backend`]. The [`story`] module is the conformance suite both backends must pass.

mod check_queue;
mod checkpoint;
mod connection;
mod console;
mod engine;
mod events;
mod group;
mod imports;
mod listing;
mod mirror;
mod pg_mirror;
mod pg_read;
mod reconcile;
mod record;
mod segments;
mod sql;
mod sql_engine;
mod sqlite_read;
mod state;
mod statistics;
mod stats;
#[cfg(any(test, feature = "testkit"))]
pub mod story;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
mod tx;
mod types;
mod unreadable;

use std::future::Future;

/// Every trait of the store, for code that calls its methods on a concrete store.
pub mod prelude {
    pub use crate::{
        ConsoleStore, EngineStore, EventStore, ImportStore, ListingStore, ReconcileStore,
        ReviewStore, SegmentStore, StatsStore, Store,
    };
}

pub use connection::*;
pub use console::*;
pub use engine::*;
pub use events::*;
pub use imports::*;
pub use listing::{CategoryExportRow, ListingStore};
pub use mirror::DEFAULT_BUDGET as DEFAULT_MIRROR_BUDGET;
pub use reconcile::*;
pub use segments::*;
pub use sql::SqlStore;
pub use sql_engine::mode::ModePreview;
pub use state::OutboxState;
pub use stats::*;
pub use types::*;
pub use unreadable::{category_statuses_apart, send_states_apart};

use hub_core::{BrandCode, Change};
use jiff::Timestamp;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: use sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database: {0}")]
    Sqlite(String),
    #[error("the write was not recorded: {0}")]
    GroupCommit(String),
    /// A read shared by several requests failed (its error, as text, goes to each of them).
    #[error("database: {0}")]
    Coalesced(String),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Everything the hub asks of its database. Each write is one transaction.
pub trait Store: Send + Sync {
    fn backend(&self) -> Backend;
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;

    fn create_brand(&self, brand: NewBrand) -> impl Future<Output = Result<Brand>> + Send;
    fn brands(&self) -> impl Future<Output = Result<Vec<Brand>>> + Send;
    fn brand(&self, code: BrandCode) -> impl Future<Output = Result<Option<Brand>>> + Send;
    fn update_brand(
        &self,
        code: BrandCode,
        patch: BrandPatch,
    ) -> impl Future<Output = Result<Option<Brand>>> + Send;

    /// Records a batch: for each change, a history event (whatever its outcome), the new current
    /// state and an outbox row where needed; with `idempotency`, the rendered answer too. All in
    /// one transaction: either everything is stored or nothing.
    fn apply(
        &self,
        brand: &Brand,
        changes: Vec<Change>,
        idempotency: Option<Idempotency>,
    ) -> impl Future<Output = Result<Vec<Applied>>> + Send;
    /// The stored answer of an earlier write with this key.
    fn idempotent_answer(
        &self,
        brand: BrandCode,
        key: &str,
    ) -> impl Future<Output = Result<Option<StoredAnswer>>> + Send;

    /// Current state of every channel of a recipient.
    fn consents(
        &self,
        brand: BrandCode,
        recipient: &str,
    ) -> impl Future<Output = Result<Vec<ConsentRow>>> + Send;
    /// What a send-time check needs of many recipients' consents on one channel and recipient
    /// type (one query per 500 recipients). Recipients with no consent are absent.
    fn send_states(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        recipients: &[String],
    ) -> impl Future<Output = Result<std::collections::HashMap<String, hub_core::SendState>>> + Send;
    /// The send states of `recipients` on one channel and recipient type, in the list's order
    /// (`None` where the hub has no consent): what checks and the campaign filter read.
    fn send_states_aligned(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        recipients: std::sync::Arc<[String]>,
    ) -> impl Future<Output = Result<Vec<Option<hub_core::SendState>>>> + Send;
    /// The status of one category for many subjects (recipients or `profile:<id>`).
    fn category_statuses(
        &self,
        brand: BrandCode,
        category: &str,
        subjects: &[String],
    ) -> impl Future<Output = Result<std::collections::HashMap<String, iys::ConsentStatus>>> + Send;
    /// Category consents of a recipient or a profile (`profile:<id>`).
    fn category_consents(
        &self,
        brand: BrandCode,
        subject: &str,
    ) -> impl Future<Output = Result<Vec<CategoryConsentRow>>> + Send;
    /// Consents of a brand matching `filter`, `limit` at a time in key order (recipient,
    /// recipient type, channel), after the key `after` (the last one of the previous page).
    fn list_consents(
        &self,
        brand: BrandCode,
        filter: &ConsentFilter,
        after: Option<&hub_core::ConsentKey>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ConsentRow>>> + Send;
    /// History of a recipient, newest first, from before event `before` (the last id of the
    /// previous page).
    fn history_page(
        &self,
        brand: BrandCode,
        recipient: &str,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send;
    /// The newest `limit` events of a recipient's history.
    fn history(
        &self,
        brand: BrandCode,
        recipient: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send {
        self.history_page(brand, recipient, None, limit)
    }
    /// The audit log of a brand, or with `None` of the whole instance, newest first, from before
    /// entry `before`.
    fn audit_log(
        &self,
        brand: Option<BrandCode>,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditEntry>>> + Send;
    /// Records who did what (an administrative action: keys, connections, categories, modes).
    fn audit(
        &self,
        brand: Option<BrandCode>,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Recomputes the brand's hash chain.
    fn verify_chain(&self, brand: BrandCode) -> impl Future<Output = Result<ChainReport>> + Send;
    /// Outbox rows per state.
    fn outbox_counts(
        &self,
        brand: BrandCode,
    ) -> impl Future<Output = Result<Vec<(String, i64)>>> + Send;

    fn upsert_category(&self, category: Category) -> impl Future<Output = Result<Category>> + Send;
    fn categories(&self, brand: BrandCode) -> impl Future<Output = Result<Vec<Category>>> + Send;
    fn delete_category(
        &self,
        brand: BrandCode,
        code: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn upsert_profile(&self, profile: Profile) -> impl Future<Output = Result<Profile>> + Send;
    fn profile(
        &self,
        brand: BrandCode,
        external_id: &str,
    ) -> impl Future<Output = Result<Option<Profile>>> + Send;
    fn delete_profile(
        &self,
        brand: BrandCode,
        external_id: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn create_api_key(&self, key: NewApiKey) -> impl Future<Output = Result<ApiKey>> + Send;
    fn api_key_by_hash(&self, hash: &str) -> impl Future<Output = Result<Option<ApiKey>>> + Send;
    fn api_keys(&self) -> impl Future<Output = Result<Vec<ApiKey>>> + Send;
    fn api_key(&self, id: &str) -> impl Future<Output = Result<Option<ApiKey>>> + Send;
    /// Revokes a key at once. Refused (`Conflict`) for the last usable provider admin key, so the
    /// hub can never lock its operator out. Returns false when there is no such key.
    fn revoke_api_key(&self, id: &str, now: Timestamp)
    -> impl Future<Output = Result<bool>> + Send;
    /// Gives a key a new secret (its SHA-256 `hash`); the old secret stops working at once.
    fn rotate_api_key(
        &self,
        id: &str,
        hash: &str,
    ) -> impl Future<Output = Result<Option<ApiKey>>> + Send;
    /// Notes that a key was used.
    fn touch_api_key(&self, id: &str, now: Timestamp) -> impl Future<Output = Result<()>> + Send;
}
