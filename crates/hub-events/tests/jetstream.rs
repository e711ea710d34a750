//! The JetStream sink against a real NATS server (`IYSHUB_TEST_NATS_URL`, else 127.0.0.1:4222).

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use hub_events::{CloudEvent, EventsError, JetStreamSink, subject};

/// The sink, or `None` after saying the test skips when no server answers (a failure under CI).
async fn sink(what: &str) -> Option<JetStreamSink> {
    let url = common::nats_url();
    match JetStreamSink::connect(&url).await {
        Ok(sink) => Some(sink),
        Err(EventsError::Connect(e)) => {
            common::skip_or_fail(
                what,
                &format!(
                    "no NATS server at {url} ({e}); run `nats-server -js` or set IYSHUB_TEST_NATS_URL"
                ),
            );
            None
        }
        Err(e) => panic!("NATS at {url} answers but the sink cannot start: {e}"),
    }
}

#[tokio::test]
async fn a_resumed_publisher_leaves_each_event_once_and_in_order() {
    let Some(sink) = sink("JetStream publishing").await else {
        return;
    };
    let brand = common::unique_brand();
    let first = common::unique_first_id();
    let events: Vec<_> = (first..first + 2_000)
        .map(|id| common::event(id, brand))
        .collect();

    sink.publish(&events).await.unwrap();
    // A crash before the cursor was saved: the resumed publisher sends the first 500 again.
    sink.publish(&events[..500]).await.unwrap();

    // A second connection finds the same stream rather than making another.
    let again = JetStreamSink::connect(&common::nats_url()).await.unwrap();
    assert_eq!(again.stream(), sink.stream());

    let client = async_nats::connect(common::nats_url()).await.unwrap();
    let js = jetstream::new(client);
    let mut stream = js.get_stream(sink.stream()).await.unwrap();
    let info = stream.info().await.unwrap();
    assert!(info.config.duplicate_window >= Duration::from_secs(120));

    let consumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: subject(brand),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    loop {
        let mut batch = consumer.fetch().max_messages(500).messages().await.unwrap();
        let before = ids.len();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            let event: CloudEvent = serde_json::from_slice(&message.payload).unwrap();
            let msg_id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned());
            let want = format!("{}-{}", brand.0, event.id);
            assert_eq!(msg_id.as_deref(), Some(want.as_str()));
            assert_eq!(event.source, format!("/brands/{brand}"));
            ids.push(event.data.id);
        }
        if ids.len() == before {
            break;
        }
    }
    let expected: Vec<i64> = (first..first + 2_000).collect();
    assert_eq!(ids.len(), expected.len(), "each event exactly once");
    assert_eq!(ids, expected, "in order");

    // The test brand's events are of no use to anyone now.
    stream.purge().filter(subject(brand)).await.unwrap();
}

#[tokio::test]
async fn an_empty_batch_is_fine() {
    let Some(sink) = sink("JetStream publishing").await else {
        return;
    };
    sink.publish(&[]).await.unwrap();
}
