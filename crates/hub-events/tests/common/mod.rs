//! Test helpers: sample events, the independent Standard Webhooks verifier (Python), the NATS
//! server. A missing Python package or NATS server skips its tests, except under `CI`.
#![allow(dead_code)]

use hub_core::BrandCode;
use hub_events::ConsentEvent;
use jiff::Timestamp;

pub use hub_events::testkit::*;

pub fn event(id: i64, brand: BrandCode) -> ConsentEvent {
    ConsentEvent {
        id,
        brand,
        recipient: "+905321234567".into(),
        recipient_type: "BIREYSEL".into(),
        channel: "MESAJ".into(),
        // Non-ASCII on purpose: the signature covers the body's UTF-8 bytes.
        category: Some("kampanya-ğüşıöç".into()),
        old: Some("RET".into()),
        new: "ONAY".into(),
        origin: "api".into(),
        iys_state: None,
        at: "2026-03-01T09:30:00.250Z".parse().unwrap(),
    }
}

/// A brand code no other run uses, so old stream data never collides.
pub fn unique_brand() -> BrandCode {
    BrandCode(fastrand::u64(9_000_000_000_000..u64::MAX / 2))
}

/// Event ids unique across runs too: JetStream de-duplicates ids across the whole stream.
pub fn unique_first_id() -> i64 {
    fastrand::i64(1 << 40..1 << 60)
}

pub fn now() -> Timestamp {
    Timestamp::now()
}
