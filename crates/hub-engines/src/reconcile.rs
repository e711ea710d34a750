//! The daily reconciler (mutabakat): for each of the last days IYS keeps, once the day is over,
//! download IYS's movement file of the brand, verify it against IYS's SHA-384 (a mismatch is
//! refused: nothing is acted on), compare it with the hub's record of that day, repair what can
//! be repaired, and confirm the day to IYS only when both sides then agree.
//!
//! - IYS movements the hub lacks are applied through the ledger (origin `reconcile`), with the
//!   ordering and tie rules of pulled movements, and are never sent back.
//! - Deliveries of the hub that IYS has no record of are queued for IYS again (only while they
//!   still carry the consent's current state).
//! - Everything else (a movement the hub recorded from IYS that IYS's file lacks, the same
//!   transaction with other contents, an overtaken or refused delivery, an unreadable line) is
//!   listed for a person, and the day is not confirmed.
//!
//! Each day's result is stored (`reconcile_day`), so a restart resumes: agreed days are never
//! fetched again, others are tried again after `retry_after`. A lease keeps two instances off
//! the same day.

mod compare;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use hub_core::BrandCode;
use hub_store::{
    Brand, DayResult, DayStatus, DriftAction, DriftItem, DriftKind, HubDay, HubMovement,
    OutboxState, StoreError, UnreadableEvent,
};
use iys::ConsentDate;
use iys::wire::{DailyCsvRow, ProcessStatus};
use iys_client::{ClientError, IysClient};
use jiff::Timestamp;
use jiff::civil::Date;
use sha2::Digest;

use compare::{Comparison, IysRow, compare};

use crate::{EngineDb, Engines, later};

/// When and how the reconciler runs.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    pub enabled: bool,
    /// Days back from yesterday that are reconciled (IYS serves the last 7).
    pub days: u32,
    /// How long after a day's end (Istanbul) it is first reconciled: IYS's changes feed hides
    /// the last hour, and deliveries of the day's last seconds settle meanwhile.
    pub grace: Duration,
    /// A day with drift, a refused file or an error is tried again after this.
    pub retry_after: Duration,
    /// How often a brand with nothing due is looked at.
    pub check_every: Duration,
    /// How long a day stays with the instance reconciling it.
    pub lease: Duration,
    /// Differences kept as examples per day (the counts are always complete).
    pub max_examples: usize,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            enabled: true,
            days: 7,
            grace: Duration::from_secs(3600),
            retry_after: Duration::from_secs(1800),
            check_every: Duration::from_secs(300),
            lease: Duration::from_secs(600),
            max_examples: 50,
        }
    }
}

/// The reconciler's part of the engines: its settings and when each brand was last found idle.
#[derive(Debug, Default)]
pub(crate) struct Reconciler {
    config: ReconcileConfig,
    idle_since: std::sync::Mutex<HashMap<BrandCode, tokio::time::Instant>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the brand cannot reach IYS: {0}")]
    NoConnection(String),
    #[error("another instance is reconciling this day; try again in a few minutes")]
    Busy,
}

/// A day's file as IYS gave it, verified against IYS's hash.
struct DayFile {
    /// `None`, with an empty text, when IYS has no movement that day.
    hash: Option<String>,
    text: String,
    /// IYS already has the day confirmed.
    agreed_at_iys: bool,
}

/// What IYS gave for a day.
enum Fetched {
    File(DayFile),
    NotReady(String),
    HashMismatch { expected: String, actual: String },
    Expired(String),
    Failed(String),
}

/// One comparison with what was (or would be) done about each difference.
#[derive(Debug, Default)]
struct Pass {
    comparison: Comparison,
    unreadable: usize,
    items: Vec<DriftItem>,
    needs_person: usize,
}

/// 00:00 in Istanbul at the start of `date`.
fn day_start(date: Date) -> Timestamp {
    ConsentDate::from_civil(date.to_datetime(jiff::civil::Time::midnight())).to_timestamp()
}

/// To the millisecond, as the store keeps instants: a result reads back as it was answered.
fn to_ms(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t)
}

fn today(now: Timestamp) -> Date {
    ConsentDate::from_timestamp(now).civil().date()
}

fn days_before(date: Date, n: u32) -> Option<Date> {
    date.checked_sub(jiff::Span::new().days(i64::from(n))).ok()
}

fn iys_item(
    kind: DriftKind,
    row: &IysRow,
    action: DriftAction,
    reason: Option<String>,
) -> DriftItem {
    let k = &row.key;
    DriftItem {
        kind,
        action,
        transaction_id: Some(k.transaction_id.clone()),
        recipient: Some(k.recipient.clone()),
        recipient_type: Some(k.recipient_type.as_str().to_owned()),
        consent_type: Some(k.consent_type.as_str().to_owned()),
        status: Some(k.status.as_str().to_owned()),
        consent_date: Some(k.consent_date.to_string()),
        source: Some(k.source.clone()).filter(|s| !s.is_empty()),
        creation_date: Some(row.creation_date.to_string()),
        event_id: None,
        reason,
    }
}

fn hub_item(
    kind: DriftKind,
    m: &HubMovement,
    action: DriftAction,
    reason: Option<String>,
) -> DriftItem {
    DriftItem {
        kind,
        action,
        transaction_id: Some(m.transaction_id.clone()),
        recipient: Some(m.recipient.clone()),
        recipient_type: Some(m.recipient_type.as_str().to_owned()),
        consent_type: Some(m.channel.as_str().to_owned()),
        status: Some(m.status.as_str().to_owned()),
        consent_date: Some(m.consent_date.to_string()),
        source: Some(m.source.clone()),
        creation_date: m.creation_date.map(|d| d.to_string()),
        event_id: Some(m.event_id),
        reason,
    }
}

/// What to do about a hub movement IYS's file lacks.
fn hub_only_action(m: &HubMovement, dry_run: bool) -> (DriftAction, Option<String>) {
    let person = |reason: String| (DriftAction::NeedsPerson, Some(reason));
    if !m.delivered {
        return person(format!(
            "recorded from IYS (origin {}) but IYS's file of the day does not list it",
            m.origin
        ));
    }
    match (m.outbox_state, &m.outbox_error) {
        (Some(OutboxState::Done), None) if m.current => {
            let action = if dry_run {
                DriftAction::WouldRequeue
            } else {
                DriftAction::Requeued
            };
            (action, Some("IYS has no record of this delivery".into()))
        }
        (Some(OutboxState::Done), None) => person(
            "IYS has no record of this delivery, and a later change of the consent overtook it: \
             sending it now would reach IYS after the later one"
                .into(),
        ),
        (Some(OutboxState::Done), Some(e)) => person(format!(
            "IYS has no record of this delivery; sent again, IYS answered {e}"
        )),
        (Some(OutboxState::Pending | OutboxState::AwaitingResult), _) => (
            DriftAction::AwaitingRedelivery,
            Some("queued for IYS again; not delivered yet".into()),
        ),
        (Some(OutboxState::Failed), e) => person(format!(
            "IYS has no record of this delivery; sent again, IYS refused it ({})",
            e.as_deref().unwrap_or("no reason given")
        )),
        (state, _) => person(format!(
            "IYS has no record of this delivery (outbox row {})",
            state.map_or("missing", OutboxState::as_str)
        )),
    }
}

/// The (transactionId, recipient) of the day's hub events that cannot be read: IYS's rows of
/// these are not applied, as the hub may hold them already in the row it cannot read.
fn unreadable_transactions(hub: &HubDay) -> BTreeSet<(&str, &str)> {
    hub.unreadable
        .iter()
        .map(|u| (u.transaction_id.as_str(), u.recipient.as_str()))
        .collect()
}

fn behind_unreadable(blocked: &BTreeSet<(&str, &str)>, row: &IysRow) -> bool {
    !blocked.is_empty()
        && blocked.contains(&(row.key.transaction_id.as_str(), row.key.recipient.as_str()))
}

/// Classifies a comparison's differences. `applied` says, per IYS row index, whether the ledger
/// already recorded it in this run (a row still missing after that needs a person).
fn classify(
    c: Comparison,
    iys: &[IysRow],
    hub_day: &HubDay,
    unreadable: &[(String, String)],
    dry_run: bool,
    applied: Option<&BTreeSet<usize>>,
) -> Pass {
    let hub = &hub_day.movements;
    let blocked = unreadable_transactions(hub_day);
    let mut items = Vec::with_capacity(c.drift() + unreadable.len() + hub_day.unreadable.len());
    for &i in &c.missing_in_hub {
        let Some(row) = iys.get(i) else { continue };
        let (action, reason) = match (&row.change, applied) {
            (_, _) if behind_unreadable(&blocked, row) => (
                DriftAction::NeedsPerson,
                Some(
                    "the hub holds an event of this transaction that cannot be read; the row is \
                     not applied until that event is mended"
                        .into(),
                ),
            ),
            (Err(why), _) => (DriftAction::NeedsPerson, Some(why.clone())),
            (Ok(_), Some(done)) if done.contains(&i) => (
                DriftAction::NeedsPerson,
                Some("recorded through the ledger, yet the hub's record still differs".into()),
            ),
            (Ok(_), _) if dry_run => (DriftAction::WouldApply, None),
            (Ok(_), _) => (DriftAction::Applied, None),
        };
        items.push(iys_item(DriftKind::MissingInHub, row, action, reason));
    }
    for &j in &c.missing_in_iys {
        let Some(m) = hub.get(j) else { continue };
        let (action, reason) = hub_only_action(m, dry_run);
        items.push(hub_item(DriftKind::MissingInIys, m, action, reason));
    }
    for &(j, i) in &c.mismatched {
        let (Some(m), Some(row)) = (hub.get(j), iys.get(i)) else {
            continue;
        };
        let k = &row.key;
        let reason = format!(
            "IYS recorded this transaction as {} {} {}",
            k.status,
            k.consent_date,
            if k.source.is_empty() {
                "(no source)"
            } else {
                &k.source
            }
        );
        items.push(hub_item(
            DriftKind::Mismatch,
            m,
            DriftAction::NeedsPerson,
            Some(reason),
        ));
    }
    for (line, reason) in unreadable {
        items.push(unreadable_item(None, format!("{reason}: {line}")));
    }
    for u in &hub_day.unreadable {
        let reason = format!(
            "the hub's history event cannot be read ({}); it is left out of the comparison",
            u.error
        );
        items.push(unreadable_item(Some(u), reason));
    }
    let needs_person = items
        .iter()
        .filter(|i| i.action == DriftAction::NeedsPerson)
        .count();
    Pass {
        comparison: c,
        unreadable: unreadable.len() + hub_day.unreadable.len(),
        items,
        needs_person,
    }
}

/// A difference nobody can act on automatically: a line of IYS's file, or (`event`) a history
/// event of the hub's, that cannot be read.
fn unreadable_item(event: Option<&UnreadableEvent>, reason: String) -> DriftItem {
    DriftItem {
        kind: DriftKind::Unreadable,
        action: DriftAction::NeedsPerson,
        transaction_id: event.map(|u| u.transaction_id.clone()),
        recipient: event.map(|u| u.recipient.clone()),
        recipient_type: None,
        consent_type: None,
        status: None,
        consent_date: None,
        source: None,
        creation_date: None,
        event_id: event.map(|u| u.event_id),
        reason: Some(reason),
    }
}

/// Reads the file: rows in file order, and the lines that cannot be read.
fn read_file(brand: BrandCode, text: &str, now: Timestamp) -> (Vec<IysRow>, Vec<(String, String)>) {
    let mut rows = Vec::new();
    let mut unreadable = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match DailyCsvRow::parse_line(line) {
            Ok(r) => rows.push(IysRow::new(brand, &r, now)),
            Err(e) => unreadable.push((line.to_owned(), e.reason)),
        }
    }
    (rows, unreadable)
}

impl<S: EngineDb> Engines<S> {
    /// The engines with these reconciler settings.
    pub fn with_reconcile(mut self, config: ReconcileConfig) -> Self {
        self.reconciler = Reconciler {
            config,
            idle_since: Default::default(),
        };
        self
    }

    /// The engines' daily step: reconciles one due day of the brand (oldest first: it leaves
    /// IYS's window soonest). True if a day was run. A brand with nothing due is looked at again
    /// after `check_every`; IYS's answers are recorded in the day's result, not returned.
    pub async fn reconcile_due(
        &self,
        brand: &Brand,
        client: &IysClient,
    ) -> Result<bool, StoreError> {
        let cfg = &self.reconciler.config;
        let code = brand.brand_code;
        if !cfg.enabled {
            return Ok(false);
        }
        {
            let idle = self
                .reconciler
                .idle_since
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if idle
                .get(&code)
                .is_some_and(|t| t.elapsed() < cfg.check_every)
            {
                return Ok(false);
            }
        }
        let now = self.now();
        let today = today(now);
        for back in (1..=cfg.days).rev() {
            let Some(date) = days_before(today, back) else {
                continue;
            };
            let over = date.tomorrow().map(day_start).unwrap_or(now);
            if now < later(over, cfg.grace) {
                continue;
            }
            let stored = self.store.reconcile_day(code, date).await?;
            if stored
                .as_ref()
                .is_some_and(|s| s.status.is_final() || s.next_at.is_some_and(|t| t > now))
            {
                continue;
            }
            match self.run_day(brand, client, date, false, stored).await {
                Ok(_) => return Ok(true),
                Err(ReconcileError::Store(e)) => return Err(e),
                Err(ReconcileError::Busy | ReconcileError::NoConnection(_)) => continue,
            }
        }
        self.reconciler
            .idle_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(code, tokio::time::Instant::now());
        Ok(false)
    }

    /// Reconciles one day now, whatever its stored state (`iyshub reconcile`). A dry run only
    /// compares: nothing is repaired, confirmed or stored.
    pub async fn reconcile_day(
        &self,
        brand: &Brand,
        date: Date,
        dry_run: bool,
    ) -> Result<DayResult, ReconcileError> {
        let client = self
            .client(brand)
            .await
            .map_err(|e| ReconcileError::NoConnection(e.to_string()))?;
        let stored = self.store.reconcile_day(brand.brand_code, date).await?;
        self.run_day(brand, &client, date, dry_run, stored).await
    }

    async fn run_day(
        &self,
        brand: &Brand,
        client: &IysClient,
        date: Date,
        dry_run: bool,
        stored: Option<DayResult>,
    ) -> Result<DayResult, ReconcileError> {
        let cfg = &self.reconciler.config;
        let code = brand.brand_code;
        let now = to_ms(self.now());
        if !dry_run
            && !self
                .store
                .claim_reconcile_day(code, date, &self.owner, now, cfg.lease.as_millis() as i64)
                .await?
        {
            return Err(ReconcileError::Busy);
        }
        // A dry run reports only what it finds now; a real run carries the day's history on.
        let mut day = match stored {
            Some(d) if !dry_run => d,
            _ => DayResult::pending(code, date, now),
        };
        day.attempts += u64::from(!dry_run);
        day.error = None;
        day.updated_at = now;
        match fetch(client, code, date).await {
            Fetched::File(file) => {
                self.settle_day(brand, client, &mut day, file, dry_run)
                    .await?;
            }
            Fetched::NotReady(why) => {
                day.status = DayStatus::NotReady;
                day.error = Some(why);
            }
            Fetched::HashMismatch { expected, actual } => {
                tracing::error!(brand = %code, %date, %expected, %actual, "IYS's movement file does not match IYS's SHA-384: refused, nothing acted on");
                day.status = DayStatus::HashMismatch;
                day.hash = Some(expected.clone());
                day.error = Some(format!(
                    "the file's SHA-384 is {actual}, IYS published {expected}: the file was refused and nothing was acted on"
                ));
            }
            Fetched::Expired(why) => {
                day.status = DayStatus::Expired;
                day.error = Some(why);
            }
            Fetched::Failed(why) => {
                tracing::warn!(brand = %code, %date, error = %why, "reconciliation: IYS could not be asked; will retry");
                day.status = DayStatus::Error;
                day.error = Some(why);
            }
        }
        day.next_at = (!day.status.is_final()).then(|| later(now, cfg.retry_after));
        if !dry_run {
            self.store.save_reconcile_day(&day, &self.owner).await?;
        }
        Ok(day)
    }

    /// Compares, repairs, compares again, and confirms the day to IYS when nothing differs.
    async fn settle_day(
        &self,
        brand: &Brand,
        client: &IysClient,
        day: &mut DayResult,
        file: DayFile,
        dry_run: bool,
    ) -> Result<(), ReconcileError> {
        let DayFile {
            hash,
            text,
            agreed_at_iys,
        } = file;
        let cfg = &self.reconciler.config;
        let code = brand.brand_code;
        let date = day.date;
        let (rows, unreadable) = read_file(code, &text, self.now());
        let txids: Vec<String> = rows.iter().map(|r| r.key.transaction_id.clone()).collect();
        let hub = self.store.hub_movements(code, date, &txids).await?;
        let first = classify(
            compare(&rows, &hub.movements),
            &rows,
            &hub,
            &unreadable,
            dry_run,
            None,
        );
        day.missing_in_hub = first.comparison.missing_in_hub.len() as u64;
        day.missing_in_iys = first.comparison.missing_in_iys.len() as u64;
        day.mismatched = first.comparison.mismatched.len() as u64;
        day.unreadable = first.unreadable as u64;
        day.hash = hash.clone();
        let mut last = first.comparison.clone();
        let mut remaining = first.comparison.drift() + first.unreadable;
        let mut needs_person = first.needs_person;
        let mut items = first.items;
        if !dry_run && remaining > 0 {
            let done = self
                .repair(brand, date, &rows, &hub, &first.comparison)
                .await?;
            day.applied += done.recorded as u64;
            day.requeued += done.requeued.len() as u64;
            for item in &mut items {
                if item.action == DriftAction::Requeued
                    && !item.event_id.is_some_and(|e| done.requeued.contains(&e))
                {
                    item.action = DriftAction::NeedsPerson;
                    item.reason =
                        Some("could not be queued again: its outbox row changed meanwhile".into());
                }
            }
            let hub = self.store.hub_movements(code, date, &txids).await?;
            let second = classify(
                compare(&rows, &hub.movements),
                &rows,
                &hub,
                &unreadable,
                false,
                Some(&done.attempted),
            );
            remaining = second.comparison.drift() + second.unreadable;
            needs_person = second.needs_person;
            last = second.comparison;
        }
        day.iys_rows = last.iys_rows as u64;
        day.hub_rows = last.hub_rows as u64;
        day.matched = last.matched as u64;
        day.remaining = remaining as u64;
        day.needs_person = needs_person as u64;
        if !items.is_empty() {
            items.truncate(cfg.max_examples);
            day.examples = items;
        }
        if remaining > 0 {
            tracing::warn!(brand = %code, %date, remaining, needs_person, applied = day.applied, requeued = day.requeued, "reconciliation: drift remains; the day is not confirmed");
            day.status = DayStatus::Drift;
            return Ok(());
        }
        day.status = match (&hash, dry_run) {
            (None, _) if last.hub_rows == 0 => DayStatus::Empty,
            (_, true) => DayStatus::Consistent,
            (None, false) => DayStatus::Drift,
            (Some(_), false) if agreed_at_iys => DayStatus::Agreed,
            (Some(_), false) => match client.agreement_confirm(code.0, date).await {
                Ok(_) => DayStatus::Agreed,
                Err(e) if e.codes().contains(&"H502") => {
                    day.error = Some(format!("IYS no longer serves the day: {e}"));
                    DayStatus::Expired
                }
                Err(e) => {
                    day.error = Some(format!(
                        "both sides agree, but confirming the day to IYS failed: {e}"
                    ));
                    DayStatus::Error
                }
            },
        };
        if day.status == DayStatus::Agreed {
            day.agreed_at = Some(to_ms(self.now()));
            tracing::info!(brand = %code, %date, rows = last.iys_rows, "reconciliation: the day agrees with IYS and is confirmed");
        }
        Ok(())
    }

    /// Applies IYS's movements the hub lacks (file order, through the ledger) and queues the
    /// hub's unrecorded deliveries again.
    async fn repair(
        &self,
        brand: &Brand,
        date: Date,
        rows: &[IysRow],
        hub_day: &HubDay,
        c: &Comparison,
    ) -> Result<Repairs, StoreError> {
        let hub = &hub_day.movements;
        let blocked = unreadable_transactions(hub_day);
        let to_apply: Vec<(usize, hub_core::Change)> = c
            .missing_in_hub
            .iter()
            .filter_map(|&i| {
                let row = rows.get(i).filter(|r| !behind_unreadable(&blocked, r))?;
                Some((i, row.change.clone().ok()?))
            })
            .collect();
        let mut attempted = BTreeSet::new();
        let mut recorded = 0;
        for chunk in to_apply.chunks(1000) {
            let changes = chunk.iter().map(|(_, ch)| ch.clone()).collect();
            let outcomes = self.store.apply(brand, changes, None).await?;
            // An outcome without an event: the ledger already had it (its own de-duplication).
            recorded += outcomes.iter().filter(|a| a.event_id.is_some()).count();
            attempted.extend(chunk.iter().map(|(i, _)| *i));
        }
        let requeue: Vec<i64> = c
            .missing_in_iys
            .iter()
            .filter_map(|&j| hub.get(j))
            .filter(|m| hub_only_action(m, false).0 == DriftAction::Requeued)
            .map(|m| m.event_id)
            .collect();
        let requeued = if requeue.is_empty() {
            Vec::new()
        } else {
            self.store
                .requeue_deliveries(brand.brand_code, date, &requeue, self.now())
                .await?
        };
        Ok(Repairs {
            attempted,
            recorded,
            requeued,
        })
    }
}

/// What one repair did.
#[derive(Debug)]
struct Repairs {
    /// IYS rows given to the ledger.
    attempted: BTreeSet<usize>,
    /// Of those, rows the ledger recorded as new events.
    recorded: usize,
    /// Events whose delivery was queued again.
    requeued: Vec<i64>,
}

/// Asks IYS for a day's hash and file, and verifies one against the other.
async fn fetch(client: &IysClient, brand: BrandCode, date: Date) -> Fetched {
    let expired = |e: &ClientError| e.codes().contains(&"H502");
    let hash = match client.agreement(brand.0, date).await {
        Ok(None) => {
            // No movement at all that day.
            return Fetched::File(DayFile {
                hash: None,
                text: String::new(),
                agreed_at_iys: false,
            });
        }
        Ok(Some(h)) => h,
        Err(e) if expired(&e) => return Fetched::Expired(e.to_string()),
        Err(e) => return Fetched::Failed(e.to_string()),
    };
    let Some(expected) = hash
        .hash_value
        .clone()
        .filter(|_| hash.process_status == ProcessStatus::Completed)
    else {
        return Fetched::NotReady(format!(
            "IYS has not published the day's hash yet (processStatus {:?})",
            hash.process_status
        ));
    };
    let text = match client.daily_file(brand.0, date).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Fetched::NotReady("IYS published a hash but no file for the day".into());
        }
        Err(e) if expired(&e) => return Fetched::Expired(e.to_string()),
        Err(e) => return Fetched::Failed(e.to_string()),
    };
    let actual = hex::encode(sha2::Sha384::digest(text.as_bytes()));
    if !actual.eq_ignore_ascii_case(&expected) {
        return Fetched::HashMismatch { expected, actual };
    }
    Fetched::File(DayFile {
        hash: Some(expected.to_ascii_lowercase()),
        text,
        agreed_at_iys: hash.agreement_status,
    })
}
