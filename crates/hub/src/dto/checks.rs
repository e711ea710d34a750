//! Send-time checks: may a message on this channel (and category) go to these recipients?
//!
//! The request is typed; its values (channel, recipientType, policy) are read by the domain's
//! parsers so their errors name the field and the value. Recipients are loosely typed items: an
//! invalid one is an answer item (`invalid_recipient`), not an error of the whole check.

use hub_core::{Channel, Reason};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::dto::schema;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{BodyError, Misfit, RequestBody};

/// The fields a check has, in the order an unknown field's error lists them.
pub const CHECK_FIELDS: [&str; 8] = [
    "recipient",
    "recipients",
    "profileId",
    "channel",
    "type",
    "recipientType",
    "category",
    "policy",
];

/// A check: exactly one of `recipient`, `recipients` or `profileId` (else invalid_body, 422), and
/// `channel` or `type`. Unknown fields are refused (unknown_field, 400).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckRequest {
    /// One recipient, normalised as in a change.
    #[serde(default)]
    #[schema(examples("+905321234567"))]
    pub recipient: Option<String>,
    /// Up to 10,000 recipients (else 413 too_many_recipients). One that is not valid for the
    /// channel (or not a string) is answered `invalid_recipient` in its item.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, max_items = 10000)]
    pub recipients: Option<Vec<Value>>,
    /// Every address of this profile that fits the channel (phones for MESAJ/ARAMA/WHATSAPP,
    /// e-mails for EPOSTA, anything on PUSH/WEB_PUSH/IN_APP).
    #[serde(default)]
    #[schema(examples("musteri-48213"))]
    pub profile_id: Option<String>,
    /// The channel of the message (or give it as `type`; `channel` wins when both are given).
    #[serde(default)]
    #[schema(value_type = Option<schema::Channel>)]
    pub channel: Option<String>,
    /// IYS's name for `channel`.
    #[serde(default, rename = "type")]
    #[schema(value_type = Option<schema::Channel>)]
    pub type_: Option<String>,
    /// Defaults to BIREYSEL.
    #[serde(default)]
    #[schema(value_type = Option<schema::RecipientType>)]
    pub recipient_type: Option<String>,
    /// The message's category (must be defined for the brand): transactional ones need no
    /// marketing consent; marketing ones are also denied when the recipient (or, in a profile
    /// check, the profile) refused the category.
    #[serde(default)]
    pub category: Option<String>,
    /// Defaults to strict.
    #[serde(default)]
    #[schema(value_type = Option<schema::Policy>)]
    pub policy: Option<String>,
}

impl RequestBody for CheckRequest {
    fn refuse(e: BodyError) -> ApiError {
        match e.kind {
            _ if e.field.is_empty() => {
                ApiError::bad_request("invalid_body", "the body must be a JSON object")
            }
            Misfit::UnknownField => ApiError::bad_request(
                "unknown_field",
                format!(
                    "unknown field {:?}; a check has: {}",
                    e.name(),
                    CHECK_FIELDS.join(", ")
                ),
            )
            .field(e.name()),
            Misfit::WrongType => {
                let what = if e.field == "recipients" {
                    "an array of strings"
                } else {
                    "a string"
                };
                let mut err =
                    ApiError::unprocessable("invalid_type", format!("{} must be {what}", e.field))
                        .field(e.field);
                if let Some(v) = e.value {
                    err = err.value(v);
                }
                err
            }
            _ => e.invalid_body(),
        }
    }
}

/// Why a send is allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CheckReason {
    Decided(Reason),
    Invalid(InvalidRecipient),
}

/// The reason of an item the hub could not decide (never allowed; see the item's `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidRecipient {
    /// The recipient is not valid for the channel.
    InvalidRecipient,
    /// The stored consent, or category consent, could not be read (a value outside its set,
    /// written by hand).
    UnreadableState,
}

/// The decision for one recipient.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckItem {
    /// Normalised (as given when invalid).
    pub recipient: String,
    pub allowed: bool,
    #[schema(value_type = schema::CheckReason)]
    pub reason: CheckReason,
    /// Only with reason invalid_recipient or unreadable_state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = ErrorBody)]
    pub error: Option<ErrorBody>,
}

/// The answer to a check of one recipient: its item and the channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckOneResult {
    #[serde(flatten)]
    pub item: CheckItem,
    #[schema(value_type = schema::Channel)]
    pub channel: Channel,
}

/// The answer to a check of several recipients.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckManyResult {
    #[schema(value_type = schema::Channel)]
    pub channel: Channel,
    pub allowed_count: usize,
    pub denied_count: usize,
    /// In request order.
    pub results: Vec<CheckItem>,
}

/// The answer to a check of a profile's addresses.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckProfileResult {
    #[schema(value_type = schema::Channel)]
    pub channel: Channel,
    pub allowed_count: usize,
    pub denied_count: usize,
    /// In the profile's address order.
    pub results: Vec<CheckItem>,
    pub profile_id: String,
    /// Whether at least one address may be sent to.
    pub allowed: bool,
}

/// A recipient check answers with one item; recipients with counts and items; a profile also
/// with profileId and allowed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CheckResult {
    One(CheckOneResult),
    Profile(CheckProfileResult),
    Many(CheckManyResult),
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    #[test]
    fn an_unknown_field_lists_the_documented_ones() {
        let schema = serde_json::to_value(CheckRequest::schema()).unwrap();
        let documented: std::collections::BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(documented, CHECK_FIELDS.into_iter().collect());
    }
}
