//! Consent events published to NATS JetStream.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::context::{GetStreamByNameErrorKind, PublishAckFuture};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use hub_core::BrandCode;

use crate::{CloudEvents, ConsentEvent, EventsError};

/// The stream created when none captures [`SUBJECTS`] yet.
pub const STREAM_NAME: &str = "IYSHUB";
/// Every subject the hub publishes on.
pub const SUBJECTS: &str = "iyshub.>";
/// The de-duplication window of a stream this sink creates: a publisher that crashed after
/// publishing and before saving how far it got republishes within it.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Publishes awaiting their ack at most. async-nats holds one of its 5,000 ack permits per
/// unawaited publish, so an unbounded pipeline of a large batch would wait on itself.
const IN_FLIGHT: usize = 512;

/// The subject of a brand's consent events: `iyshub.<brandCode>.consent`.
pub fn subject(brand: BrandCode) -> String {
    format!("iyshub.{brand}.consent")
}

/// A JetStream publisher of consent events as CloudEvent JSON.
#[derive(Debug, Clone)]
pub struct JetStreamSink {
    js: jetstream::Context,
    stream: String,
}

impl JetStreamSink {
    /// Connects and makes sure a stream captures every brand's subject: the one that already
    /// captures [`SUBJECTS`] (an operator may create it with retention limits of their own), else
    /// a new [`STREAM_NAME`] with a [`DUPLICATE_WINDOW`].
    pub async fn connect(url: &str) -> Result<Self, EventsError> {
        let client = async_nats::ConnectOptions::new()
            .name("iyshub")
            .connect(url)
            .await
            .map_err(EventsError::Connect)?;
        let js = jetstream::new(client);
        let stream = ensure_stream(&js).await?;
        Ok(Self { js, stream })
    }

    /// The stream that receives the events.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Publishes the events in order, each with header `Nats-Msg-Id` = [`message_id`] (JetStream drops
    /// a repeat within the duplicate window), and returns once every one is acknowledged by the
    /// stream. Publishes are pipelined: up to 512 are sent ahead of their acks, which are awaited
    /// in order. On an error some of the events may be stored: publish them again from the first.
    pub async fn publish(&self, events: &[ConsentEvent]) -> Result<(), EventsError> {
        let mut pending = VecDeque::with_capacity(IN_FLIGHT.min(events.len()));
        let mut duplicates = 0usize;
        for event in events {
            if pending.len() >= IN_FLIGHT
                && let Some((id, ack)) = pending.pop_front()
            {
                duplicates += usize::from(confirm(id, ack).await?);
            }
            let payload = event
                .cloud_event()
                .to_json_bytes()
                .map_err(|e| EventsError::Encode {
                    id: event.id,
                    why: e.to_string(),
                })?;
            let message = PublishMessage::build()
                .payload(payload.into())
                .message_id(message_id(event));
            let ack = self
                .js
                .send_publish(subject(event.brand), message)
                .await
                .map_err(|source| EventsError::Publish {
                    id: event.id,
                    source,
                })?;
            pending.push_back((event.id, ack));
        }
        while let Some((id, ack)) = pending.pop_front() {
            duplicates += usize::from(confirm(id, ack).await?);
        }
        if duplicates > 0 {
            tracing::debug!(
                stream = %self.stream,
                duplicates,
                published = events.len(),
                "JetStream dropped events it already had"
            );
        }
        Ok(())
    }
}

/// The message's `Nats-Msg-Id`: the brand and the event id. The id alone is unique in one hub's
/// database; with the brand, hubs that share a server (staging beside production, test runs)
/// do not drop each other's events as repeats.
pub fn message_id(event: &ConsentEvent) -> String {
    format!("{}-{}", event.brand.0, event.id)
}

/// Waits for one ack; `true` when the stream already had the event.
async fn confirm(id: i64, ack: PublishAckFuture) -> Result<bool, EventsError> {
    ack.await
        .map(|ack| ack.duplicate)
        .map_err(|source| EventsError::Publish { id, source })
}

async fn ensure_stream(js: &jetstream::Context) -> Result<String, EventsError> {
    // Two rounds: another hub instance may create the stream between our lookup and create.
    for round in 0..2 {
        match js.stream_by_subject(SUBJECTS).await {
            Ok(name) => return check_existing(js, name).await,
            Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => {}
            Err(e) => return Err(stream_error("look up the stream", e)),
        }
        let config = stream::Config {
            name: STREAM_NAME.to_owned(),
            description: Some("iyshub consent events (CloudEvents JSON)".to_owned()),
            subjects: vec![SUBJECTS.to_owned()],
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        match js.create_stream(config).await {
            Ok(_) => {
                tracing::info!(
                    stream = STREAM_NAME,
                    subjects = SUBJECTS,
                    "created JetStream stream"
                );
                return Ok(STREAM_NAME.to_owned());
            }
            Err(e) if round == 0 => {
                tracing::debug!(error = %e, "creating the stream failed; looking it up again");
            }
            Err(e) => return Err(stream_error("create the stream", e)),
        }
    }
    Err(EventsError::Stream {
        step: "create the stream",
        source: "no stream after two rounds".into(),
    })
}

/// Accepts a stream that captures [`SUBJECTS`] if it captures every brand's subject.
async fn check_existing(js: &jetstream::Context, name: String) -> Result<String, EventsError> {
    let found = js
        .get_stream(&name)
        .await
        .map_err(|e| stream_error("read the stream", e))?;
    let config = &found.cached_info().config;
    if !config.subjects.iter().any(|s| covers_every_brand(s)) {
        return Err(EventsError::StreamSubjects {
            stream: name,
            subjects: config.subjects.clone(),
        });
    }
    if config.duplicate_window < DUPLICATE_WINDOW {
        tracing::warn!(
            stream = %name,
            window_s = config.duplicate_window.as_secs(),
            "the stream's duplicate window is under 2 minutes: a publisher resuming after a crash may repeat events"
        );
    }
    Ok(name)
}

/// Whether a stream subject captures `iyshub.<n>.consent` for every brand `n`.
fn covers_every_brand(filter: &str) -> bool {
    // `None` stands for the brand token, which only a wildcard covers.
    let mut want = [Some("iyshub"), None, Some("consent")].into_iter();
    for token in filter.split('.') {
        match (token, want.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (literal, Some(Some(w))) if literal == w => {}
            _ => return false,
        }
    }
    want.next().is_none()
}

fn stream_error(
    step: &'static str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> EventsError {
    EventsError::Stream {
        step,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_per_brand() {
        assert_eq!(subject(BrandCode(600123)), "iyshub.600123.consent");
    }

    #[test]
    fn stream_subjects_that_cover_every_brand() {
        for yes in [
            ">",
            "iyshub.>",
            "iyshub.*.consent",
            "iyshub.*.>",
            "*.*.consent",
            "iyshub.*.*",
        ] {
            assert!(covers_every_brand(yes), "{yes}");
        }
        for no in [
            "iyshub",
            "iyshub.*",
            "iyshub.600123.consent",
            "iyshub.*.consent.x",
            "iyshub.*.category",
            "other.>",
        ] {
            assert!(!covers_every_brand(no), "{no}");
        }
    }
}
