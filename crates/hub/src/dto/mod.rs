//! The API's request and response bodies (DTOs), one module per resource. Requests deny unknown
//! fields and are read by [`crate::extract`]; responses are built from the domain's types. Each
//! type's schema is generated into the OpenAPI document (`crate::openapi`).
//!
//! In responses, `Option` fields that are always written (`null` when absent) are marked
//! `#[schema(required = true)]`; those left out when absent (`skip_serializing_if`) are not.

pub mod brands;
pub mod categories;
pub mod checks;
pub mod consents;
pub mod error;
pub mod events;
pub mod imports;
pub mod keys;
pub mod listing;
pub mod ops;
pub mod params;
pub mod profiles;
pub mod reconcile;
pub mod schema;
pub mod segments;
pub mod sync;

/// What the derived schemas cannot say, by component name: which optional fields a body needs
/// at least (or exactly) one of, and what tells one answer from another. The document merges
/// these keywords into the schemas.
pub fn constraints() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        (
            "ConsentChange",
            json!({"allOf": [
                {"anyOf": [{"required": ["type"]}, {"required": ["channel"]}]},
                {"anyOf": [{"required": ["recipient"]}, {"required": ["category", "profileId"]}]},
            ]}),
        ),
        (
            "CheckRequest",
            json!({"allOf": [
                {"oneOf": [{"required": ["recipient"]}, {"required": ["recipients"]}, {"required": ["profileId"]}]},
                {"anyOf": [{"required": ["channel"]}, {"required": ["type"]}]},
            ]}),
        ),
        // A profile's answer has the counts too: only its profileId tells it apart.
        (
            "CheckManyResult",
            json!({"not": {"required": ["profileId"]}}),
        ),
    ]
}

/// Asserts that a DTO answers exactly as the store's type serialises.
#[cfg(test)]
pub(crate) fn same_json<A: serde::Serialize, B: serde::Serialize>(a: &A, b: &B) {
    assert_eq!(
        serde_json::to_value(a).expect("serialises"),
        serde_json::to_value(b).expect("serialises")
    );
}
