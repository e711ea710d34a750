//! A consent's state change and its CloudEvents 1.0 envelope.

use std::fmt;
use std::str::FromStr;

use hub_core::{BrandCode, InvalidValue};
use iys::ConsentStatus;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One state change of a consent, as the hub records it (one row of its `change_event` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEvent {
    /// Unique across all brands and increasing per brand: it is the de-duplication key of both
    /// sinks (`webhook-id`, `Nats-Msg-Id`), and the JetStream stream de-duplicates across brands.
    pub id: i64,
    pub brand: BrandCode,
    pub recipient: String,
    /// `BIREYSEL` or `TACIR`, as stored.
    pub recipient_type: String,
    /// `MESAJ`, `ARAMA`, `EPOSTA` or a hub-only channel.
    pub channel: String,
    /// Set for a category consent change.
    pub category: Option<String>,
    /// The previous status (`ONAY`/`RET`); `None` for a first record.
    pub old: Option<String>,
    pub new: String,
    /// `api`, `import`, `console`, `iys_pull`, `iys_push`, `reconcile` or `mode_switch`.
    pub origin: String,
    pub iys_state: Option<String>,
    pub at: Timestamp,
}

/// What happened, as subscribers filter on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "consent.granted")]
    ConsentGranted,
    #[serde(rename = "consent.revoked")]
    ConsentRevoked,
    #[serde(rename = "category.granted")]
    CategoryGranted,
    #[serde(rename = "category.revoked")]
    CategoryRevoked,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::ConsentGranted,
        EventType::ConsentRevoked,
        EventType::CategoryGranted,
        EventType::CategoryRevoked,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::ConsentGranted => "consent.granted",
            EventType::ConsentRevoked => "consent.revoked",
            EventType::CategoryGranted => "category.granted",
            EventType::CategoryRevoked => "category.revoked",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| InvalidValue {
                field: "event type",
                value: s.to_owned(),
                expected: "consent.granted, consent.revoked, category.granted or category.revoked",
            })
    }
}

/// The CloudEvents `specversion` written.
pub const SPEC_VERSION: &str = "1.0";
/// Prefix of the CloudEvents `type`: `tr.iyshub.consent.granted` and so on.
pub const TYPE_PREFIX: &str = "tr.iyshub.";

impl ConsentEvent {
    pub fn event_type(&self) -> EventType {
        let granted = self.new == ConsentStatus::Onay.as_str();
        match (self.category.is_some(), granted) {
            (false, true) => EventType::ConsentGranted,
            (false, false) => EventType::ConsentRevoked,
            (true, true) => EventType::CategoryGranted,
            (true, false) => EventType::CategoryRevoked,
        }
    }

    /// The event in CloudEvents 1.0 structured mode. The envelope carries no personal data (the
    /// subject is the channel), so brokers and logs that read envelopes only never see a
    /// recipient.
    pub fn cloud_event(&self) -> CloudEvent {
        CloudEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: self.id.to_string(),
            source: format!("/brands/{}", self.brand),
            ty: format!("{TYPE_PREFIX}{}", self.event_type()),
            subject: self.channel.clone(),
            time: self.at,
            datacontenttype: "application/json".to_owned(),
            data: EventData {
                id: self.id,
                brand: self.brand,
                recipient: self.recipient.clone(),
                recipient_type: self.recipient_type.clone(),
                channel: self.channel.clone(),
                category: self.category.clone(),
                old: self.old.clone(),
                new: self.new.clone(),
                origin: self.origin.clone(),
                iys_state: self.iys_state.clone(),
                at: self.at,
            },
        }
    }
}

/// A CloudEvents 1.0 event in JSON structured mode: what webhooks and NATS carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    /// The event id as decimal text.
    pub id: String,
    /// `/brands/<brandCode>`.
    pub source: String,
    /// `tr.iyshub.` + the [`EventType`].
    #[serde(rename = "type")]
    pub ty: String,
    /// The channel.
    pub subject: String,
    /// When the change happened (RFC 3339).
    pub time: Timestamp,
    pub datacontenttype: String,
    pub data: EventData,
}

/// The change itself. Absent values are written as `null`, so every event has the same keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventData {
    pub id: i64,
    pub brand: BrandCode,
    pub recipient: String,
    pub recipient_type: String,
    pub channel: String,
    pub category: Option<String>,
    pub old: Option<String>,
    pub new: String,
    pub origin: String,
    pub iys_state: Option<String>,
    pub at: Timestamp,
}

impl CloudEvent {
    /// The JSON text, as sent.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a CloudEvent is plain data: string keys, no floats")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(category: Option<&str>, new: &str) -> ConsentEvent {
        ConsentEvent {
            id: 42,
            brand: BrandCode(600123),
            recipient: "+905321234567".into(),
            recipient_type: "BIREYSEL".into(),
            channel: "MESAJ".into(),
            category: category.map(Into::into),
            old: None,
            new: new.into(),
            origin: "api".into(),
            iys_state: Some("pending".into()),
            at: "2026-03-01T09:30:00.250Z".parse().unwrap(),
        }
    }

    #[test]
    fn event_type_follows_category_and_status() {
        assert_eq!(event(None, "ONAY").event_type(), EventType::ConsentGranted);
        assert_eq!(event(None, "RET").event_type(), EventType::ConsentRevoked);
        assert_eq!(
            event(Some("kampanya"), "ONAY").event_type(),
            EventType::CategoryGranted
        );
        assert_eq!(
            event(Some("kampanya"), "RET").event_type(),
            EventType::CategoryRevoked
        );
    }

    #[test]
    fn event_type_round_trips() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), t);
        }
        let err = "consent.changed"
            .parse::<EventType>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"consent.changed\""), "{err}");
        for t in EventType::ALL {
            assert!(err.contains(t.as_str()), "{err}");
        }
    }

    #[test]
    fn cloud_event_shape() {
        let mut e = event(None, "ONAY");
        e.old = Some("RET".into());
        let json: serde_json::Value =
            serde_json::from_slice(&e.cloud_event().to_json_bytes()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "specversion": "1.0",
                "id": "42",
                "source": "/brands/600123",
                "type": "tr.iyshub.consent.granted",
                "subject": "MESAJ",
                "time": "2026-03-01T09:30:00.25Z",
                "datacontenttype": "application/json",
                "data": {
                    "id": 42,
                    "brand": 600123,
                    "recipient": "+905321234567",
                    "recipientType": "BIREYSEL",
                    "channel": "MESAJ",
                    "category": null,
                    "old": "RET",
                    "new": "ONAY",
                    "origin": "api",
                    "iysState": "pending",
                    "at": "2026-03-01T09:30:00.25Z",
                }
            })
        );
    }

    #[test]
    fn cloud_event_round_trips_and_keeps_pii_out_of_the_envelope() {
        let ce = event(Some("kampanya"), "RET").cloud_event();
        assert_eq!(ce.ty, "tr.iyshub.category.revoked");
        let back: CloudEvent = serde_json::from_slice(&ce.to_json_bytes()).unwrap();
        assert_eq!(back, ce);
        let mut envelope = serde_json::to_value(&ce).unwrap();
        envelope.as_object_mut().unwrap().remove("data");
        assert!(!envelope.to_string().contains("+90532"));
    }
}
