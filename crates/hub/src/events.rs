//! Delivering the brands' change events: to their webhooks (signed, in order, retried with
//! growing delays, disabled after a long failure streak) and to NATS JetStream.
//!
//! Both read the status changes the ledger marks in its own transaction and keep a cursor
//! in the store, moved only after the receiver acknowledged: an event is delivered at least
//! once whatever crashes, and a repeat carries the same id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hub_events::{
    CloudEvents, ConsentEvent, Delivery, EventType, JetStreamSink, RetrySchedule, WebhookSecret,
};
use hub_secrets::SecretKey;
use hub_store::{AttemptRecord, Failure, RoundProgress, StoreError, Webhook};
use jiff::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::HubDb;

/// How long a worker holds a webhook (a crashed worker's webhooks wait this long). A round stops
/// taking new events after `ROUND`; one delivery takes at most 10 s, so a round ends well within
/// its lease and two workers never deliver to the same webhook at once.
const LEASE: Duration = Duration::from_secs(30);
const ROUND: Duration = Duration::from_secs(10);
/// Events read per round for one webhook.
const PAGE: u32 = 100;
/// Successful deliveries recorded per transaction, at the latest after `RECORD_AFTER`.
const RECORD_EVERY: usize = 50;
const RECORD_AFTER: Duration = Duration::from_secs(1);
/// Webhooks served at once by one worker.
const AT_ONCE: u32 = 16;
/// How long the delivery log keeps an attempt, and how often it is pruned.
const DELIVERY_LOG_DAYS: i64 = 30;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often a worker looks for work when nothing woke it.
const POLL: Duration = Duration::from_millis(250);

/// Delivers webhooks until `cancel`. `wake` is notified when a webhook is created, enabled or
/// asked to redeliver; new events are found by polling (they may come from any instance).
pub async fn deliver_webhooks<S: HubDb>(
    store: Arc<S>,
    key: Option<SecretKey>,
    schedule: RetrySchedule,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let client = match hub_events::webhook_client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot build the HTTP client; not delivering");
            return;
        }
    };
    // SQLite: only this process delivers from its data directory, so leases left by a process
    // that was killed are stale; without this its webhooks would wait for them to run out.
    if worker_store_is_local(&*store)
        && let Err(e) = store.release_webhook_leases().await
    {
        tracing::warn!(error = %e, "webhooks: cannot release the leases of an earlier run");
    }
    let worker = Worker {
        store,
        key,
        schedule,
        client,
        owner: format!("webhooks-{}", uuid::Uuid::new_v4()),
    };
    let mut pruned: Option<Instant> = None;
    loop {
        if pruned.is_none_or(|at| at.elapsed() > PRUNE_EVERY) {
            pruned = Some(Instant::now());
            let before = Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_hours(24 * DELIVERY_LOG_DAYS))
                .unwrap_or(Timestamp::UNIX_EPOCH);
            match worker.store.prune_webhook_deliveries(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    removed = n,
                    "webhooks: delivery log entries past 30 days removed"
                ),
                Err(e) => tracing::warn!(error = %e, "webhooks: cannot prune the delivery log"),
            }
        }
        let woken = wake.notified();
        let lease_ms = LEASE.as_millis() as i64;
        match worker
            .store
            .claim_webhooks(&worker.owner, Timestamp::now(), lease_ms, AT_ONCE)
            .await
        {
            Ok(hooks) if !hooks.is_empty() => {
                let rounds = hooks.into_iter().map(|h| worker.serve(h));
                tokio::select! {
                    _ = join_all(rounds) => {}
                    _ = cancel.cancelled() => return,
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhooks: cannot look for work"),
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

fn worker_store_is_local<S: HubDb>(store: &S) -> bool {
    store.backend() == hub_store::Backend::Sqlite
}

#[derive(Debug)]
struct Worker<S> {
    store: Arc<S>,
    key: Option<SecretKey>,
    schedule: RetrySchedule,
    client: reqwest::Client,
    owner: String,
}

fn record(event_id: i64, attempt: i64, d: &Delivery, at: Timestamp) -> AttemptRecord {
    AttemptRecord {
        event_id,
        attempt,
        status_code: d.status.map(i64::from),
        error: d.error.clone(),
        response: d.response_excerpt.clone(),
        duration_ms: d.duration_ms,
        at,
    }
}

/// Counts an attempt for `/metrics`: `kind` is `stream` or `redelivered`.
fn count(kind: &'static str, delivered: bool) {
    let outcome = if delivered { "delivered" } else { "failed" };
    metrics::counter!("iyshub_webhook_attempts_total", "kind" => kind, "outcome" => outcome)
        .increment(1);
}

/// Whether the webhook takes this event (no types: every one).
fn wanted(hook: &Webhook, e: &ConsentEvent) -> bool {
    let ty: EventType = e.event_type();
    hook.event_types.is_empty() || hook.event_types.iter().any(|t| t == ty.as_str())
}

/// What a failed attempt says, for the delivery log's reader and a disabled webhook's reason.
fn failure(d: &Delivery) -> String {
    match (d.status, &d.error) {
        (Some(s), _) => format!("HTTP {s}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "no answer".into(),
    }
}

impl<S: HubDb> Worker<S> {
    /// One round for one claimed webhook: its redeliveries, then its events in order until one
    /// fails or the page ends. Errors are logged: one webhook's trouble never stops another's.
    async fn serve(&self, hook: Webhook) {
        let id = hook.id;
        if let Err(e) = self.round(hook).await {
            tracing::warn!(webhook = id, error = %e, "webhooks: a delivery round failed");
        }
        if let Err(e) = self.store.release_webhook(id, &self.owner).await {
            tracing::warn!(webhook = id, error = %e, "webhooks: cannot release the webhook");
        }
    }

    fn secret(&self, sealed: &str) -> Result<WebhookSecret, String> {
        let key = self.key.as_ref().ok_or(
            "this instance has no secret key (IYSHUB_SECRET_KEY) to open the signing secret",
        )?;
        let text = key.open(sealed).map_err(|e| {
            format!("the signing secret cannot be opened with this instance's key: {e}")
        })?;
        WebhookSecret::parse(&text)
            .map_err(|e| format!("the stored signing secret is not valid: {e}"))
    }

    async fn round(&self, hook: Webhook) -> Result<(), StoreError> {
        let started = Instant::now();
        let sealed = self
            .store
            .webhook_secret(hook.id)
            .await?
            .unwrap_or_default();
        let secret = match self.secret(&sealed) {
            Ok(s) => s,
            Err(why) => {
                // Nothing can be signed on this instance; another with the right key may. Back
                // off without counting a failure against the receiver.
                tracing::warn!(webhook = hook.id, "webhooks: {why}");
                return Ok(());
            }
        };

        for r in self.store.redeliveries(hook.id, 20).await? {
            let event = self.store.change_event(hook.brand_code, r.event_id).await?;
            let now = Timestamp::now();
            let d = match &event {
                Some(e) => hub_events::deliver(&self.client, &hook.url, &secret, e, now).await,
                None => Delivery {
                    status: None,
                    error: Some(format!("event {} no longer exists", r.event_id)),
                    duration_ms: 0,
                    response_excerpt: None,
                },
            };
            let attempt = record(r.event_id, 1, &d, now);
            count("redelivered", d.succeeded());
            if !self
                .store
                .record_redelivery(hook.id, &self.owner, r.id, &attempt)
                .await?
            {
                return Ok(());
            }
        }

        if hook.next_attempt_at > Timestamp::now() {
            return Ok(());
        }
        let events = self
            .store
            .change_events(hook.brand_code, hook.cursor, PAGE)
            .await?;
        // Successes are recorded together (one transaction per `RECORD_EVERY` or per second),
        // a failure at once with those before it.
        let mut progress = RoundProgress::default();
        let mut recorded = Instant::now();
        // Failed attempts in a row before the next one (the stored streak until a success).
        let mut streak = hook.failures;
        for e in &events {
            if !wanted(&hook, e) {
                progress.cursor = Some(e.id);
                continue;
            }
            if started.elapsed() > ROUND {
                break;
            }
            let now = Timestamp::now();
            let d = hub_events::deliver(&self.client, &hook.url, &secret, e, now).await;
            count("stream", d.succeeded());
            if d.succeeded() {
                progress.delivered.push(record(e.id, streak + 1, &d, now));
                progress.cursor = Some(e.id);
                streak = 0;
                if progress.delivered.len() >= RECORD_EVERY || recorded.elapsed() > RECORD_AFTER {
                    let done = std::mem::take(&mut progress);
                    if !self
                        .store
                        .record_progress(hook.id, &self.owner, &done, now)
                        .await?
                    {
                        return Ok(());
                    }
                    recorded = Instant::now();
                }
                continue;
            }
            let failures = streak + 1;
            let delay = self
                .schedule
                .next_delay(u32::try_from(failures).unwrap_or(u32::MAX));
            let since = match hook.failing_since {
                Some(since) if streak > 0 => since,
                _ => now,
            };
            let disable = self.schedule.should_disable(since, now).then(|| {
                format!(
                    "disabled after failing without a break since {since} ({failures} attempts; last: {})",
                    failure(&d)
                )
            });
            if disable.is_some() {
                tracing::warn!(
                    webhook = hook.id,
                    "webhooks: disabled after a failure streak"
                );
            }
            progress.failure = Some(Failure {
                attempt: record(e.id, failures, &d, now),
                retry_at: now.checked_add(delay).unwrap_or(now),
                disable,
            });
            break;
        }
        self.store
            .record_progress(hook.id, &self.owner, &progress, Timestamp::now())
            .await?;
        Ok(())
    }
}

/// The cursor name of the NATS publisher.
const NATS_SINK: &str = "nats";
/// Events published per brand per round (the sink pipelines them).
const NATS_PAGE: u32 = 512;

/// Publishes every brand's events to NATS JetStream (`iyshub.<brandCode>.consent`) until
/// `cancel`, reconnecting with growing delays when the server is away.
pub async fn publish_to_nats<S: HubDb>(store: Arc<S>, url: String, cancel: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let sink = tokio::select! {
            s = JetStreamSink::connect(&url) => s,
            _ = cancel.cancelled() => return,
        };
        match sink {
            Ok(sink) => {
                tracing::info!(stream = sink.stream(), "nats: publishing change events");
                backoff = Duration::from_secs(1);
                tokio::select! {
                    e = publish_rounds(&*store, &sink) => {
                        tracing::warn!(error = %e, "nats: publishing stopped; reconnecting");
                    }
                    _ = cancel.cancelled() => return,
                }
            }
            Err(e) => tracing::warn!(error = %e, "nats: cannot connect"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = cancel.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Publishes until a publish fails (returned; the caller reconnects). A store error is logged
/// and retried: the server is fine, the database will be back.
async fn publish_rounds<S: HubDb>(store: &S, sink: &JetStreamSink) -> hub_events::EventsError {
    loop {
        // A brand with a full page has more: go on at once.
        let mut more = false;
        match store.brands_behind(NATS_SINK).await {
            Ok(behind) => {
                for (brand, cursor) in behind {
                    let events = match store.change_events(brand, cursor, NATS_PAGE).await {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::warn!(brand = brand.0, error = %e, "nats: cannot read events");
                            continue;
                        }
                    };
                    let Some(last) = events.last().map(|e| e.id) else {
                        continue;
                    };
                    more |= events.len() == NATS_PAGE as usize;
                    if let Err(e) = sink.publish(&events).await {
                        return e;
                    }
                    metrics::counter!("iyshub_nats_events_published_total")
                        .increment(events.len() as u64);
                    if let Err(e) = store.set_event_cursor(NATS_SINK, brand, last).await {
                        tracing::warn!(brand = brand.0, error = %e, "nats: cannot record progress");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "nats: cannot look for events"),
        }
        if !more {
            tokio::time::sleep(POLL).await;
        }
    }
}
