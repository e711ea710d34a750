//! Push: registration and what IYS posts to a registered URL.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Movement;
use crate::consent_date::ConsentDate;
use crate::enums::{ConsentStatus, ConsentType, RecipientType, Source};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushConnection {
    pub url: String,
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for PushConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConnection")
            .field("url", &self.url)
            .field("type", &self.consent_type)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Body of push registration; unregistration sends one [`PushConnection`] bare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRegistration {
    pub connection: Vec<PushConnection>,
}

/// One row of the push registration list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushRegistrationItem {
    pub url: String,
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    pub register_time: ConsentDate,
    /// Free Turkish text, e.g. "Bağlantı Oluşturuldu".
    pub status: String,
}

/// `{"message": "…"}` answers (push registration and removal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageResponse {
    pub message: String,
}

/// What IYS POSTs to a registered push URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushPayload {
    pub list: Vec<PushItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushItem {
    pub iys_code: u64,
    pub brand_code: u64,
    #[serde(flatten)]
    pub movement: Movement,
}

impl PushPayload {
    /// The fixed payload IYS posts to a URL when it is registered.
    pub fn test_payload() -> PushPayload {
        PushPayload {
            list: vec![PushItem {
                iys_code: 121212,
                brand_code: 121212,
                movement: Movement {
                    consent_date: ConsentDate::parse("2015-05-01 15:00:00").ok(),
                    creation_date: ConsentDate::parse("2015-05-01 15:00:00")
                        .expect("a valid constant"),
                    source: Source::Iys(crate::enums::IysSource::Mobil),
                    recipient: "pushtest@iys.org.tr".into(),
                    recipient_type: RecipientType::Bireysel,
                    status: ConsentStatus::Onay,
                    consent_type: ConsentType::Eposta,
                    transaction_id:
                        "e52ee305e3f16e2bf1e2df3fd93dd9a0f6c0d9b3e7a9d7d8f0c6c1d2a3b4c5d6".into(),
                    citizen_name: None,
                },
            }],
        }
    }
}
