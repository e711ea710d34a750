//! Delivery of the hub's automation events.
//!
//! A [`ConsentEvent`] is one state change of a consent (a history event that changed its
//! consent's status: a row of the hub's `change_event` view). This crate turns it into a
//! CloudEvents 1.0 JSON event ([`ConsentEvent::cloud_event`]) and delivers it two ways:
//!
//! - webhooks, signed per Standard Webhooks ([`WebhookSecret`], [`sign`], [`deliver`] with a
//!   [`webhook_client`]), retried on the [`RetrySchedule`] by the hub's worker, which keeps the
//!   cursor and the delivery log;
//! - NATS JetStream ([`JetStreamSink`]), on `iyshub.<brandCode>.consent`, de-duplicated by event
//!   id.
//!
//! Both de-duplicate on the event id, so ids must be unique across brands, not only per brand.
//! No storage here: the hub reads the events and records how far each sink got.

mod event;
mod nats;
mod schedule;
#[cfg(feature = "testkit")]
pub mod testkit;
mod webhook;

pub use event::{CloudEvent, CloudEvents, EventType, SPEC_VERSION, TYPE_PREFIX};
pub use hub_core::ConsentEvent;
pub use nats::{DUPLICATE_WINDOW, JetStreamSink, STREAM_NAME, SUBJECTS, message_id, subject};
pub use schedule::RetrySchedule;
pub use webhook::{
    Delivery, EXCERPT_BYTES, REQUEST_TIMEOUT, WebhookSecret, deliver, sign, webhook_client,
};

/// What can go wrong outside a webhook delivery (whose failures are a [`Delivery`]).
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("a webhook secret is `whsec_` followed by the base64 of 24 to 64 bytes")]
    InvalidSecret,
    #[error("event {id} cannot be written as JSON: {why}")]
    Encode { id: i64, why: String },
    #[error("the system's random source failed")]
    Random,
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
    #[error("cannot connect to NATS: {0}")]
    Connect(#[source] async_nats::ConnectError),
    #[error("JetStream: cannot {step}: {source}")]
    Stream {
        step: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "JetStream stream {stream} captures some of iyshub.> but not every brand's subject \
         (its subjects: {subjects:?}); give it iyshub.> or remove it"
    )]
    StreamSubjects {
        stream: String,
        subjects: Vec<String>,
    },
    #[error("JetStream did not take event {id}: {source}")]
    Publish {
        id: i64,
        #[source]
        source: async_nats::jetstream::context::PublishError,
    },
}
