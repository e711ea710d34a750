//! Standard Webhooks (<https://www.standardwebhooks.com/>): the signing secret, the signature and
//! one delivery attempt.

use std::error::Error as _;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use sha2::Sha256;

use crate::{CloudEvents, ConsentEvent, EventsError};

const PREFIX: &str = "whsec_";
/// The spec asks for 24 to 64 bytes of key.
const KEY_LEN: std::ops::RangeInclusive<usize> = 24..=64;
/// Bounds one attempt, connecting and reading the answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an answer the delivery log keeps.
pub const EXCERPT_BYTES: usize = 512;

/// A webhook's signing secret: `whsec_` + the base64 of the key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
    text: String,
}

impl WebhookSecret {
    /// A new secret of 32 random bytes.
    pub fn generate() -> Result<Self, EventsError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| EventsError::Random)?;
        Ok(Self::from_key(key.to_vec()))
    }

    /// Reads `whsec_<base64>` (padding optional, as the reference libraries accept it).
    pub fn parse(text: &str) -> Result<Self, EventsError> {
        let key = text
            .strip_prefix(PREFIX)
            .and_then(|b64| STANDARD_PAD_INDIFFERENT.decode(b64).ok())
            .filter(|key| KEY_LEN.contains(&key.len()))
            .ok_or(EventsError::InvalidSecret)?;
        Ok(Self {
            key,
            text: text.to_owned(),
        })
    }

    fn from_key(key: Vec<u8>) -> Self {
        let text = format!("{PREFIX}{}", STANDARD.encode(&key));
        Self { key, text }
    }

    /// The secret as the receiver configures it: `whsec_…`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(whsec_<redacted>)")
    }
}

/// The `webhook-signature` value: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret.key)
        .expect("HMAC takes a key of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The outcome of one delivery attempt, as the delivery log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The answer's HTTP status, if one came.
    pub status: Option<u16>,
    /// Why no answer came (bad URL, connection refused, timeout…).
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The first [`EXCERPT_BYTES`] bytes of the answer's body, if it had one.
    pub response_excerpt: Option<String>,
}

impl Delivery {
    /// The receiver answered 2xx.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// A client for [`deliver`]: redirects are not followed (a receiver that moved must be
/// reconfigured, and a redirect could point the signed body anywhere) and connecting is bounded
/// by 5 s; [`deliver`] bounds each whole attempt by [`REQUEST_TIMEOUT`] whatever the client.
pub fn webhook_client() -> Result<reqwest::Client, EventsError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("iyshub-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| EventsError::Client(describe(&e)))
}

/// POSTs `event` as its CloudEvent JSON to `url`, signed with `secret`. The `webhook-id` is the
/// event id, the same on every retry and redelivery, so receivers can drop repeats. Never fails:
/// whatever goes wrong is in the returned [`Delivery`]. Give it a [`webhook_client`].
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    secret: &WebhookSecret,
    event: &ConsentEvent,
    now: Timestamp,
) -> Delivery {
    let body = match event.cloud_event().to_json_bytes() {
        Ok(b) => b,
        Err(e) => {
            return Delivery {
                status: None,
                error: Some(format!("the event cannot be written as JSON: {e}")),
                duration_ms: 0,
                response_excerpt: None,
            };
        }
    };
    let msg_id = event.id.to_string();
    let timestamp = now.as_second();
    let signature = sign(secret, &msg_id, timestamp, &body);
    let started = Instant::now();
    let sent = client
        .post(url)
        .timeout(REQUEST_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let (status, error, response_excerpt) = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            (Some(status), None, excerpt(response).await)
        }
        Err(e) => (None, Some(describe(&e)), None),
    };
    Delivery {
        status,
        error,
        duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        response_excerpt,
    }
}

/// The start of the answer's body, read no further than needed. A body that breaks off keeps
/// what came: the status is the receiver's verdict.
async fn excerpt(mut response: reqwest::Response) -> Option<String> {
    let mut head = Vec::new();
    while head.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    head.truncate(EXCERPT_BYTES);
    (!head.is_empty()).then(|| String::from_utf8_lossy(&head).into_owned())
}

/// A transport error with its causes, without the URL (the log already names the webhook, and a
/// URL may carry a token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_builder() {
        "invalid request"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_redirect() {
        "redirect"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_reference_vector() {
        // From the Standard Webhooks reference libraries; checked with the Python package.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn generated_secrets_parse_back_and_stay_out_of_debug() {
        let a = WebhookSecret::generate().unwrap();
        let b = WebhookSecret::generate().unwrap();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("whsec_"));
        assert_eq!(a.key.len(), 32);
        assert_eq!(WebhookSecret::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.to_string(), a.as_str());
        let debug = format!("{a:?}");
        assert!(!debug.contains(&a.as_str()[6..]), "{debug}");
    }

    #[test]
    fn parse_refuses_what_is_not_a_secret() {
        for bad in [
            "",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            &format!("whsec_{}", STANDARD.encode([7u8; 65])),
        ] {
            assert!(
                matches!(WebhookSecret::parse(bad), Err(EventsError::InvalidSecret)),
                "{bad:?}"
            );
        }
        // Unpadded base64, as the reference libraries accept it.
        let padded = WebhookSecret::generate().unwrap();
        let unpadded = padded.as_str().trim_end_matches('=');
        assert_eq!(WebhookSecret::parse(unpadded).unwrap().key, padded.key);
    }

    #[test]
    fn only_2xx_succeeds() {
        let d = |status| Delivery {
            status,
            error: None,
            duration_ms: 1,
            response_excerpt: None,
        };
        assert!(d(Some(200)).succeeded());
        assert!(d(Some(204)).succeeded());
        assert!(!d(Some(301)).succeeded());
        assert!(!d(Some(500)).succeeded());
        assert!(!d(None).succeeded());
    }
}
