//! A consent's state change and its CloudEvents 1.0 envelope.

use std::fmt;
use std::str::FromStr;

use hub_core::{ConsentEvent, InvalidValue};
use iys::ConsentStatus;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

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

/// A consent event's type and CloudEvents envelope.
pub trait CloudEvents {
    fn event_type(&self) -> EventType;
    /// The event in CloudEvents 1.0 structured mode.
    fn cloud_event(&self) -> CloudEvent;
}

impl CloudEvents for ConsentEvent {
    fn event_type(&self) -> EventType {
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
    fn cloud_event(&self) -> CloudEvent {
        CloudEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: self.id.to_string(),
            source: format!("/brands/{}", self.brand),
            ty: format!("{TYPE_PREFIX}{}", self.event_type()),
            subject: self.channel.clone(),
            time: self.at,
            datacontenttype: "application/json".to_owned(),
            data: self.clone(),
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
    /// The change itself.
    pub data: ConsentEvent,
}

impl CloudEvent {
    /// The JSON text, as sent.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

#[cfg(test)]
mod tests {
    use hub_core::BrandCode;

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
            serde_json::from_slice(&e.cloud_event().to_json_bytes().unwrap()).unwrap();
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
        let back: CloudEvent = serde_json::from_slice(&ce.to_json_bytes().unwrap()).unwrap();
        assert_eq!(back, ce);
        let mut envelope = serde_json::to_value(&ce).unwrap();
        envelope.as_object_mut().unwrap().remove("data");
        assert!(!envelope.to_string().contains("+90532"));
    }
}
