//! The error answer (`{"error":{"code","message","field","value"}}`) and its codes, for the
//! document; the answer itself is [`crate::error::ApiError`].

use iys::HCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};

use crate::error::ErrorBody;

/// The IYS codes the hub answers with when an input breaks one of IYS's rules (422), checked
/// before any IYS quota is spent.
pub const HCODES: [(HCode, &str); 15] = [
    (HCode::H110, "status is missing."),
    (
        HCode::H113,
        "source is missing (required on the IYS channels MESAJ, ARAMA, EPOSTA).",
    ),
    (
        HCode::H114,
        "recipient is missing (and not a category consent of a profile).",
    ),
    (HCode::H115, "status must be ONAY or RET."),
    (HCode::H116, "recipientType must be BIREYSEL or TACIR."),
    (
        HCode::H117,
        "type is not a valid channel (ARAMA, MESAJ, EPOSTA; the hub also takes its own channel names here).",
    ),
    (HCode::H119, "source is not one of the 13 HS_* values."),
    (
        HCode::H120,
        "recipient is not an e-mail address IYS accepts (ASCII letters, digits and . _ - + only).",
    ),
    (
        HCode::H121,
        "recipient is not a valid phone number (E.164, e.g. +905321234567).",
    ),
    (
        HCode::H155,
        "source HS_2015 requires consentDate 2015-05-01 00:00:00.",
    ),
    (HCode::H156, "consentDate is before 2015-05-01."),
    (
        HCode::H157,
        "consentDate has the right shape but is not a real date and time.",
    ),
    (
        HCode::H158,
        "consentDate is not in the format YYYY-MM-DD HH:MM:SS.",
    ),
    (HCode::H162, "consentDate is in the future."),
    (HCode::H408, "source HS_KARAR requires status RET."),
];

/// The hub's own codes: code, statuses, meaning.
pub const CODES: [(&str, &str, &str); 23] = [
    (
        "unknown_field",
        "400",
        "A field the body does not have (a change, a check, or a batch body with more than `changes`).",
    ),
    (
        "missing_field",
        "422",
        "A required field is absent: `type`/`channel` of a change or `channel` of a check.",
    ),
    (
        "invalid_value",
        "400/422",
        "A value breaks its rule (`field` and `value` say which). 400 for a bad `brandCode` (path or body) and a bad `Idempotency-Key` header, 422 otherwise.",
    ),
    (
        "invalid_type",
        "422",
        "A field has the wrong JSON type (e.g. a number where a string is expected, `changes` not an array, `recipients` not an array).",
    ),
    ("invalid_json", "400", "The body is not valid JSON."),
    (
        "invalid_path",
        "400",
        "A path segment is not valid percent-encoded UTF-8, or the path holds a NUL character (%00).",
    ),
    (
        "invalid_body",
        "400/422",
        "The body has the wrong shape: 400 when it cannot be read or a change is not a JSON object; 422 when a body does not match its schema (`field` names the offending field as a JSON path such as `iys.baseUrl`, `value` the value when it has the wrong type or value), or a check gives not exactly one of recipient/recipients/profileId.",
    ),
    (
        "body_too_large",
        "413",
        "The body is over 32 MiB (33,554,432 bytes).",
    ),
    (
        "too_many_changes",
        "413",
        "More than 10,000 changes in one request.",
    ),
    (
        "too_many_recipients",
        "413",
        "More than 10,000 recipients in one check.",
    ),
    (
        "unknown_category",
        "422",
        "The category is not defined for this brand.",
    ),
    (
        "unreadable_state",
        "422",
        "In a check's item only (reason `unreadable_state`, never allowed): the recipient's stored consent (or its consent to the check's category) cannot be read, e.g. a value outside its set written to the database by hand; the message names the column and value. The request's other recipients are decided as usual.",
    ),
    (
        "idempotency_conflict",
        "422",
        "The `Idempotency-Key` was used before with a different body.",
    ),
    (
        "unauthorized",
        "401",
        "No API key, an unknown key, a revoked key or an expired key.",
    ),
    (
        "forbidden",
        "403",
        "The key lacks the scope the operation needs (a brand's admin key setting an IYS connection or IYS code: only the provider's admin key may).",
    ),
    (
        "not_found",
        "404",
        "No such brand, recipient, category, profile or endpoint. A key of another brand also gets 404 for a brand, so keys cannot probe which brands exist.",
    ),
    (
        "method_not_allowed",
        "405",
        "The path exists but does not take this method; the `Allow` header lists the methods it takes.",
    ),
    (
        "conflict",
        "409",
        "The brand or category already exists; or the key is the last usable provider admin key (revoke), or revoked/expired (rotate).",
    ),
    (
        "internal",
        "500",
        "An internal failure (logged by the hub; no details in the answer).",
    ),
    (
        "engines_not_running",
        "503",
        "This instance runs no IYS engines (`--role api`); a backfill needs a worker.",
    ),
    (
        "url_not_allowed",
        "422",
        "An IYS base URL that is not on the instance's allowed list (IYS production, IYS sandbox, the built-in simulator, IYSHUB_IYS_ALLOWED_URLS).",
    ),
    (
        "no_secret_key",
        "422",
        "An IYS password was given but the instance has no secret key (IYSHUB_SECRET_KEY) to seal it with.",
    ),
    (
        "rate_limited",
        "429",
        "Over a rate limit (requests per API key per second, or failed push logins); `Retry-After` says when to try again.",
    ),
];

/// An error's code: one of the hub's, or an IYS H-code.
#[derive(Debug)]
pub struct ErrorCode;

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        let hcodes: String = HCODES
            .iter()
            .map(|(c, what)| format!("- `{}`: {what}\n", c.as_str()))
            .collect();
        let codes: String = CODES
            .iter()
            .map(|(c, status, what)| format!("- `{c}` ({status}): {what}\n"))
            .collect();
        AnyOfBuilder::new()
            .description(Some(format!(
                "A stable code. IYS's own H-code (status 422) where the input breaks one of \
                 IYS's rules, checked before any IYS quota is spent; otherwise a snake_case \
                 name.\n\nIYS H-codes the hub answers with:\n\n{hcodes}\nThe hub's own \
                 codes:\n\n{codes}"
            )))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(CODES.map(|(c, _, _)| c))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^H[0-9]{3}$"))
                    .description(Some("An IYS H-code."))
                    .examples(HCODES.map(|(c, _)| c.as_str())),
            )
            .into()
    }
}

impl ToSchema for ErrorCode {}

/// The one error shape of the API.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    as = Error,
    examples(json!({"error": {"code": "H121", "message": "recipient must be an E.164 phone number, e.g. +905992000000. (IYS: …)", "field": "recipient", "value": "12345"}}))
)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcodes_are_ones_iys_answers_with_422() {
        for (c, _) in HCODES {
            assert_eq!(c.http_status(), 422, "{c:?}");
        }
    }
}
