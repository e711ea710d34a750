//! Webhook deliveries to a real receiver on a local socket, whose signature check is the
//! Standard Webhooks reference implementation (Python), not this crate's own code.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::PyVerifier;
use hub_core::BrandCode;
use hub_events::{CloudEvent, CloudEvents, EXCERPT_BYTES, WebhookSecret, deliver, webhook_client};
use tokio::sync::Mutex;

/// What the receiver saw, request by request.
type Seen = Arc<Mutex<Vec<(Vec<(String, String)>, Bytes)>>>;

#[derive(Clone)]
struct Receiver {
    verifier: Option<PyVerifier>,
    secret: String,
    seen: Seen,
}

/// Answers 204 when the reference implementation accepts the signature, 401 with its complaint
/// otherwise.
async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let verdict = match &r.verifier {
        Some(v) => v.verify(&r.secret, &headers, &body).await,
        None => Err("no verifier".to_owned()),
    };
    r.seen.lock().await.push((headers, body));
    match verdict {
        Ok(()) => (StatusCode::NO_CONTENT, String::new()),
        Err(why) => (StatusCode::UNAUTHORIZED, why),
    }
}

async fn failing() -> (StatusCode, String) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("x{}", "é".repeat(1000)),
    )
}

/// Serves the receiver on 127.0.0.1 and returns its base URL.
async fn serve(receiver: Receiver) -> String {
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/fail", post(failing))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

#[tokio::test]
async fn the_reference_implementation_verifies_our_deliveries() {
    let Some(verifier) = PyVerifier::find("webhook delivery checked by the Python reference")
    else {
        return;
    };
    let secret = WebhookSecret::generate().unwrap();
    let seen = Seen::default();
    let base = serve(Receiver {
        verifier: Some(verifier),
        secret: secret.to_string(),
        seen: seen.clone(),
    })
    .await;
    let client = webhook_client().unwrap();
    let event = common::event(7_000_001, BrandCode(600123));
    let now = common::now();

    let first = deliver(&client, &format!("{base}/hook"), &secret, &event, now).await;
    assert_eq!(first.status, Some(204), "{first:?}");
    assert!(first.succeeded() && first.error.is_none(), "{first:?}");
    assert_eq!(first.response_excerpt, None);

    // A redelivery carries the same webhook-id, so the receiver can drop it.
    let again = deliver(&client, &format!("{base}/hook"), &secret, &event, now).await;
    assert!(again.succeeded(), "{again:?}");

    // A receiver with another secret refuses: the reference check is not a rubber stamp.
    let other = WebhookSecret::generate().unwrap();
    let refused = deliver(&client, &format!("{base}/hook"), &other, &event, now).await;
    assert_eq!(refused.status, Some(401), "{refused:?}");
    assert!(!refused.succeeded());
    assert!(
        refused
            .response_excerpt
            .as_deref()
            .is_some_and(|e| e.contains("No matching signature")),
        "{refused:?}"
    );

    let seen = seen.lock().await;
    assert_eq!(seen.len(), 3);
    let (headers, body) = &seen[0];
    assert_eq!(header(headers, "webhook-id"), "7000001");
    assert_eq!(header(&seen[1].0, "webhook-id"), "7000001");
    assert_eq!(
        header(headers, "webhook-timestamp"),
        now.as_second().to_string()
    );
    assert!(header(headers, "webhook-signature").starts_with("v1,"));
    assert_eq!(header(headers, "content-type"), "application/json");
    let sent: CloudEvent = serde_json::from_slice(body).unwrap();
    assert_eq!(sent, event.cloud_event());
}

#[tokio::test]
async fn a_failing_receiver_is_a_failed_delivery_with_its_status() {
    let base = serve(Receiver {
        verifier: None,
        secret: String::new(),
        seen: Seen::default(),
    })
    .await;
    let secret = WebhookSecret::generate().unwrap();
    let event = common::event(7_000_002, BrandCode(600123));
    let d = deliver(
        &webhook_client().unwrap(),
        &format!("{base}/fail"),
        &secret,
        &event,
        common::now(),
    )
    .await;
    assert_eq!(d.status, Some(500));
    assert!(!d.succeeded());
    assert_eq!(d.error, None);
    let excerpt = d.response_excerpt.unwrap();
    // The first 512 bytes end inside a two-byte character, which becomes U+FFFD.
    let kept: String = std::iter::once('x')
        .chain(std::iter::repeat_n('é', 255))
        .collect();
    assert_eq!(kept.len(), EXCERPT_BYTES - 1);
    assert_eq!(excerpt, format!("{kept}\u{FFFD}"));
    assert!(d.duration_ms >= 0);
}

#[tokio::test]
async fn no_receiver_or_a_bad_url_is_an_error_not_a_panic() {
    // A port just freed: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let secret = WebhookSecret::generate().unwrap();
    let event = common::event(7_000_003, BrandCode(600123));
    let client = webhook_client().unwrap();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        "not a url".to_owned(),
        "ftp://127.0.0.1/hook".to_owned(),
        "http://".to_owned(),
        String::new(),
    ] {
        let d = deliver(&client, &url, &secret, &event, common::now()).await;
        assert_eq!(d.status, None, "{url}: {d:?}");
        assert!(!d.succeeded());
        let error = d.error.unwrap_or_else(|| panic!("{url}: no error"));
        assert!(!error.is_empty());
        if url.contains(&port.to_string()) {
            assert!(error.starts_with("cannot connect"), "{error}");
        }
    }
}
