//! IYS's own OpenAPI examples, round-tripped through our wire types.
//!
//! Every example of every operation we model is read into our type, written back and compared
//! with the original JSON. That catches a misspelt key, a field we drop (most types ignore
//! unknown keys, so a missing field only shows in the comparison) and a wrong type.
//!
//! The document is IYS's, kept next to the workspace in `../shared/iys/` and never copied into
//! the repository. Without it the tests say so and pass, except under CI, where they fail.
//!
//! Examples that are wrong in IYS's document are listed in [`EXPECTED_FAILURES`] with the
//! reason; those must fail to deserialise, so the list cannot go stale silently.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use iys::wire::{
    AddConsentResponse, AgreementCaptured, AgreementConfirm, AgreementHash, Brand, BulkAccepted,
    BulkResultItem, ChangeSummary, ChangesResponse, City, Consent, ConsentQuery,
    ConsentStatusResponse, HistoryResponse, IntegratorBrands, MessageResponse, MultiStatusResponse,
    PushConnection, PushRegistration, PushRegistrationItem, RecipientList, Retailer,
    RetailerAccessBulk, RetailerAccessGrant, RetailerCreated, RetailerList, Subscription,
    TokenRequest, TokenResponse, Town, TransactionReceipt,
};
use iys::{IysErrors, OAuthError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The document

/// Whether IYS's document is there (see `iys::testkit`: a loud skip, a failure under CI).
fn document_available() -> bool {
    iys::testkit::openapi_document().is_some()
}

fn doc() -> &'static Value {
    iys::testkit::openapi_document().expect("every test returns early when the document is absent")
}

/// The operation with this `operationId`; a renamed operation fails here.
fn operation(op_id: &str) -> &'static Value {
    let paths = doc()["paths"]
        .as_object()
        .expect("the document has `paths`");
    let mut found = paths
        .values()
        .filter_map(Value::as_object)
        .flat_map(|methods| methods.values())
        .filter(|op| op.get("operationId").and_then(Value::as_str) == Some(op_id));
    let op = found
        .next()
        .unwrap_or_else(|| panic!("no operation {op_id:?} in IYS's document: renamed?"));
    assert!(
        found.next().is_none(),
        "operationId {op_id:?} is not unique"
    );
    op
}

/// A response object, with a `$ref` to `#/components/responses/…` followed.
fn response(op_id: &str, status: u16) -> Option<&'static Value> {
    let r = operation(op_id).get("responses")?.get(status.to_string())?;
    match r.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            Some(
                doc()
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {reference}")),
            )
        }
        None => Some(r),
    }
}

/// The HTTP statuses an operation documents.
fn statuses(op_id: &str) -> Vec<u16> {
    operation(op_id)["responses"]
        .as_object()
        .map(|r| r.keys().filter_map(|k| k.parse().ok()).collect())
        .unwrap_or_default()
}

/// Which examples of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Request body, `application/json`.
    Request,
    /// Request body, `application/x-www-form-urlencoded`.
    FormRequest,
    /// Response body of this status, `application/json`.
    Response(u16),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Request => f.write_str("request"),
            Kind::FormRequest => f.write_str("form request"),
            Kind::Response(status) => write!(f, "{status}"),
        }
    }
}

/// The examples of one kind, as `(name, value)`: `examples[name].value` of the media type, and
/// its `example` (named `"example"`) when it has one. An example without a `value` reads as
/// `null`, so it cannot pass unnoticed.
fn examples(op_id: &str, kind: Kind) -> Vec<(String, Value)> {
    let (content, media_type) = match kind {
        Kind::Request => (
            operation(op_id).pointer("/requestBody/content"),
            "application/json",
        ),
        Kind::FormRequest => (
            operation(op_id).pointer("/requestBody/content"),
            "application/x-www-form-urlencoded",
        ),
        Kind::Response(status) => (
            response(op_id, status).and_then(|r| r.get("content")),
            "application/json",
        ),
    };
    let Some(media) = content.and_then(|c| c.get(media_type)) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if let Some(value) = media.get("example") {
        found.push(("example".to_owned(), value.clone()));
    }
    if let Some(named) = media.get("examples").and_then(Value::as_object) {
        for (name, example) in named {
            let value = example.get("value").cloned().unwrap_or(Value::Null);
            found.push((name.clone(), value));
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// Known-wrong examples and key aliases

/// An example of IYS's document that is wrong and must fail to deserialise.
#[derive(Debug)]
struct Exception {
    op: &'static str,
    kind: Kind,
    example: &'static str,
    reason: &'static str,
}

const EXPECTED_FAILURES: &[Exception] = &[Exception {
    op: "searchRetailers",
    kind: Kind::Response(200),
    example: "IfShortParameterGiven",
    reason: "placeholders, not values: status is the literal \"<active | passive | suspended >\" \
             (title \"str\", city {\"name\":\"cityName\",\"code\":\"cityCode\"})",
}];

/// Misspelt keys in IYS's examples that our types read through a serde alias and write under
/// the right name. The expected value is renamed the same way before comparing.
const KEY_ALIASES: &[(&str, &str)] = &[
    // IysError: `{"code:": "H353", …}` in the 403 examples.
    ("code:", "code"),
    // SubRequest, BulkResultItem: the schema's spelling; the examples mix both.
    ("subrequestId", "subRequestId"),
    // Subscription: the examples' and the schema's misspellings.
    ("subscipritionId", "subscriptionId"),
    ("subsciprtionId", "subscriptionId"),
];

/// Renames [`KEY_ALIASES`] keys at any depth; returns how many were renamed.
fn normalise_aliases(value: &mut Value) -> usize {
    match value {
        Value::Object(map) => {
            let mut renamed = 0;
            for (alias, canonical) in KEY_ALIASES {
                if let Some(v) = map.remove(*alias) {
                    assert!(
                        !map.contains_key(*canonical),
                        "both {alias:?} and {canonical:?} in one object"
                    );
                    map.insert((*canonical).to_owned(), v);
                    renamed += 1;
                }
            }
            renamed + map.values_mut().map(normalise_aliases).sum::<usize>()
        }
        Value::Array(items) => items.iter_mut().map(normalise_aliases).sum(),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Round trip

/// How an example body is read and written.
#[derive(Debug, Clone, Copy)]
enum Codec {
    Json,
    /// The example object (all strings) as an `application/x-www-form-urlencoded` body.
    Form,
}

impl Codec {
    fn decode<T: DeserializeOwned>(self, value: &Value) -> Result<T, String> {
        match self {
            Codec::Json => serde_json::from_value(value.clone()).map_err(|e| e.to_string()),
            Codec::Form => {
                let fields: BTreeMap<String, String> = serde_json::from_value(value.clone())
                    .map_err(|e| format!("not a flat object of strings: {e}"))?;
                let body = serde_urlencoded::to_string(&fields).map_err(|e| e.to_string())?;
                serde_urlencoded::from_str(&body).map_err(|e| format!("{e} (body {body:?})"))
            }
        }
    }

    fn encode<T: Serialize>(self, value: &T) -> Value {
        match self {
            Codec::Json => serde_json::to_value(value).expect("wire types serialise to JSON"),
            Codec::Form => {
                let body = serde_urlencoded::to_string(value).expect("serialises as a form");
                let fields: BTreeMap<String, String> =
                    serde_urlencoded::from_str(&body).expect("our own form body reads back");
                serde_json::to_value(fields).expect("a map of strings")
            }
        }
    }
}

/// What one set of examples gave.
#[derive(Debug, Default, Clone, Copy)]
struct Outcome {
    /// Deserialised, serialised back and equal to the example.
    round_tripped: usize,
    /// Listed in [`EXPECTED_FAILURES`] and failing as expected.
    expected_failures: usize,
    /// Round-tripped after renaming [`KEY_ALIASES`] keys in the expected value.
    with_aliases: usize,
}

/// Path of the first difference between two JSON values, for readable failures.
fn first_difference(actual: &Value, expected: &Value, path: &str) -> Option<String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            let keys: BTreeSet<&String> = a.keys().chain(e.keys()).collect();
            keys.into_iter().find_map(|k| match (a.get(k), e.get(k)) {
                (Some(av), Some(ev)) => first_difference(av, ev, &format!("{path}.{k}")),
                (None, Some(ev)) => Some(format!("{path}.{k}: dropped (expected {ev})")),
                (Some(av), None) => Some(format!("{path}.{k}: added ({av})")),
                (None, None) => None,
            })
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => a
            .iter()
            .zip(e)
            .enumerate()
            .find_map(|(i, (av, ev))| first_difference(av, ev, &format!("{path}[{i}]"))),
        _ if actual == expected => None,
        _ => Some(format!("{path}: {actual} instead of {expected}")),
    }
}

/// Round-trips the given examples of `op_id`/`kind` through `T`.
fn check<T: DeserializeOwned + Serialize>(
    op_id: &str,
    kind: Kind,
    codec: Codec,
    examples: Vec<(String, Value)>,
) -> Outcome {
    let type_name = std::any::type_name::<T>();
    let mut outcome = Outcome::default();
    let names: HashSet<&str> = examples.iter().map(|(name, _)| name.as_str()).collect();
    for (name, value) in &examples {
        let exception = EXPECTED_FAILURES
            .iter()
            .find(|x| x.op == op_id && x.kind == kind && x.example == name);
        match (codec.decode::<T>(value), exception) {
            (Ok(_), Some(x)) => panic!(
                "{op_id} {kind} example {name:?} is listed as an expected failure ({}) but now \
                 deserialises into {type_name}: remove it from EXPECTED_FAILURES",
                x.reason
            ),
            (Err(_), Some(_)) => outcome.expected_failures += 1,
            (Err(e), None) => panic!(
                "{op_id} {kind} example {name:?} does not deserialise into {type_name}: {e}\n\
                 {value:#}"
            ),
            (Ok(parsed), None) => {
                let actual = codec.encode(&parsed);
                let mut expected = value.clone();
                if normalise_aliases(&mut expected) > 0 {
                    outcome.with_aliases += 1;
                }
                if let Some(difference) = first_difference(&actual, &expected, "$") {
                    panic!(
                        "{op_id} {kind} example {name:?} does not round-trip through \
                         {type_name}: {difference}\nexpected: {expected:#}\nactual: {actual:#}"
                    );
                }
                outcome.round_tripped += 1;
            }
        }
    }
    for x in EXPECTED_FAILURES
        .iter()
        .filter(|x| x.op == op_id && x.kind == kind)
    {
        assert!(
            names.contains(x.example),
            "EXPECTED_FAILURES lists {op_id} {kind} example {:?}, which the document no \
             longer has: remove it",
            x.example
        );
    }
    outcome
}

/// Round-trips every example of `op_id`/`kind` through `T` and requires at least one to pass,
/// so a renamed operation or a moved example cannot pass silently.
fn round_trip<T: DeserializeOwned + Serialize>(op_id: &str, kind: Kind) -> Outcome {
    let codec = match kind {
        Kind::FormRequest => Codec::Form,
        Kind::Request | Kind::Response(_) => Codec::Json,
    };
    let outcome = check::<T>(op_id, kind, codec, examples(op_id, kind));
    report(op_id, &kind.to_string(), outcome);
    assert!(
        outcome.round_tripped >= 1,
        "{op_id} {kind}: no example round-tripped through {} ({outcome:?})",
        std::any::type_name::<T>()
    );
    outcome
}

fn report(op_id: &str, what: &str, outcome: Outcome) {
    eprintln!(
        "{op_id:>44} {what:<12} {:>3} round-tripped, {} expected failures, {} via key aliases",
        outcome.round_tripped, outcome.expected_failures, outcome.with_aliases
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

/// Every operation whose examples are checked; the error test covers all of them.
const OPERATIONS: &[&str] = &[
    "createToken2",
    "addConsent",
    "addConsentV2",
    "addBatchConsent",
    "addBatchConsentV2",
    "searchRequestDetails",
    "searchRequestDetailsV2",
    "consentDetail",
    "batchConsentStatus",
    "consentsHistory",
    "PullPerBrandCode",
    "pushRegistration",
    "getPushRegistration",
    "pushUnregistration",
    "getBrandsDetails",
    "get-subscription",
    "integratorList",
    "integratorListByiysCode",
    "getIntegratorSubscription",
    "createRetailer",
    "searchRetailers",
    "searchSingleRetailer",
    "addRetailers",
    "overrideRetailers",
    "removeRelationBetweenRetailer",
    "removeRelationsBetweenRetailersAndConsents",
    "changeSummary",
    "agreementsDate",
    "agreementDatePut",
    "getCities",
    "cityDetails",
    "getTowns",
    "townDetails",
];

#[test]
fn token() {
    if !document_available() {
        return;
    }
    let json = round_trip::<TokenRequest>("createToken2", Kind::Request);
    let form = round_trip::<TokenRequest>("createToken2", Kind::FormRequest);
    assert!(
        json.round_tripped >= 2 && form.round_tripped >= 2,
        "both grants, as JSON and as a form"
    );
    round_trip::<TokenResponse>("createToken2", Kind::Response(200));
    round_trip::<OAuthError>("createToken2", Kind::Response(400));
    round_trip::<IysErrors>("createToken2", Kind::Response(500));
}

#[test]
fn consents() {
    if !document_available() {
        return;
    }
    for op in ["addConsent", "addConsentV2"] {
        round_trip::<Consent>(op, Kind::Request);
        round_trip::<AddConsentResponse>(op, Kind::Response(200));
    }
    for op in ["addBatchConsent", "addBatchConsentV2"] {
        round_trip::<Vec<Consent>>(op, Kind::Request);
        round_trip::<BulkAccepted>(op, Kind::Response(202));
    }
    for op in ["searchRequestDetails", "searchRequestDetailsV2"] {
        round_trip::<Vec<BulkResultItem>>(op, Kind::Response(200));
    }
}

#[test]
fn status_history_changes() {
    if !document_available() {
        return;
    }
    round_trip::<ConsentQuery>("consentDetail", Kind::Request);
    round_trip::<ConsentStatusResponse>("consentDetail", Kind::Response(200));
    round_trip::<RecipientList>("batchConsentStatus", Kind::Request);
    round_trip::<MultiStatusResponse>("batchConsentStatus", Kind::Response(200));
    round_trip::<ConsentQuery>("consentsHistory", Kind::Request);
    round_trip::<HistoryResponse>("consentsHistory", Kind::Response(200));
    round_trip::<ChangesResponse>("PullPerBrandCode", Kind::Response(200));
}

#[test]
fn push() {
    if !document_available() {
        return;
    }
    round_trip::<PushRegistration>("pushRegistration", Kind::Request);
    round_trip::<MessageResponse>("pushRegistration", Kind::Response(200));
    round_trip::<Vec<PushRegistrationItem>>("getPushRegistration", Kind::Response(200));
    round_trip::<PushConnection>("pushUnregistration", Kind::Request);
    round_trip::<MessageResponse>("pushUnregistration", Kind::Response(200));
}

#[test]
fn brands_subscription() {
    if !document_available() {
        return;
    }
    round_trip::<Vec<Brand>>("getBrandsDetails", Kind::Response(200));
    round_trip::<Subscription>("get-subscription", Kind::Response(200));
    round_trip::<IntegratorBrands>("integratorList", Kind::Response(200));
    round_trip::<IntegratorBrands>("integratorListByiysCode", Kind::Response(200));
    round_trip::<Subscription>("getIntegratorSubscription", Kind::Response(200));
}

#[test]
fn retailers() {
    if !document_available() {
        return;
    }
    round_trip::<Retailer>("createRetailer", Kind::Request);
    round_trip::<RetailerCreated>("createRetailer", Kind::Response(201));
    round_trip::<RetailerList>("searchRetailers", Kind::Response(200));
    round_trip::<Retailer>("searchSingleRetailer", Kind::Response(200));
    round_trip::<RetailerAccessGrant>("addRetailers", Kind::Request);
    round_trip::<TransactionReceipt>("addRetailers", Kind::Response(200));
    for op in [
        "overrideRetailers",
        "removeRelationBetweenRetailer",
        "removeRelationsBetweenRetailersAndConsents",
    ] {
        round_trip::<RetailerAccessBulk>(op, Kind::Request);
    }
}

#[test]
fn reconciliation() {
    if !document_available() {
        return;
    }
    round_trip::<ChangeSummary>("changeSummary", Kind::Response(200));
    round_trip::<AgreementHash>("agreementsDate", Kind::Response(200));
    round_trip::<AgreementConfirm>("agreementDatePut", Kind::Request);
    round_trip::<AgreementCaptured>("agreementDatePut", Kind::Response(200));
}

#[test]
fn info() {
    if !document_available() {
        return;
    }
    round_trip::<Vec<City>>("getCities", Kind::Response(200));
    round_trip::<City>("cityDetails", Kind::Response(200));
    round_trip::<Vec<Town>>("getTowns", Kind::Response(200));
    round_trip::<Town>("townDetails", Kind::Response(200));
}

/// Every 4xx/5xx JSON example with an `errors` key, of every operation above, as [`IysErrors`].
#[test]
fn errors() {
    if !document_available() {
        return;
    }
    let mut total = Outcome::default();
    for op in OPERATIONS {
        let mut per_op = Outcome::default();
        for status in statuses(op).into_iter().filter(|s| *s >= 400) {
            let kind = Kind::Response(status);
            let with_errors: Vec<(String, Value)> = examples(op, kind)
                .into_iter()
                .filter(|(_, value)| value.get("errors").is_some())
                .collect();
            let outcome = check::<IysErrors>(op, kind, Codec::Json, with_errors);
            per_op.round_tripped += outcome.round_tripped;
            per_op.expected_failures += outcome.expected_failures;
            per_op.with_aliases += outcome.with_aliases;
        }
        report(op, "errors", per_op);
        assert!(
            per_op.round_tripped >= 1,
            "{op}: no error example round-tripped ({per_op:?})"
        );
        total.round_tripped += per_op.round_tripped;
        total.expected_failures += per_op.expected_failures;
        total.with_aliases += per_op.with_aliases;
    }
    report("all operations", "errors", total);
}

/// The harness itself, without the document: a dropped field and a changed value are caught,
/// and only the listed aliases are renamed.
#[test]
fn harness_catches_differences() {
    let example = serde_json::json!({"errors": [{"code:": "H353", "message": "m", "index": 0}]});
    let mut expected = example.clone();
    assert_eq!(normalise_aliases(&mut expected), 1);
    assert_eq!(
        expected,
        serde_json::json!({"errors": [{"code": "H353", "message": "m", "index": 0}]})
    );
    let dropped = serde_json::json!({"errors": [{"code": "H353", "message": "m"}]});
    assert_eq!(
        first_difference(&dropped, &expected, "$").as_deref(),
        Some("$.errors[0].index: dropped (expected 0)")
    );
    let changed = serde_json::json!({"errors": [{"code": "H353", "message": "m", "index": "0"}]});
    assert!(first_difference(&changed, &expected, "$").is_some());
    assert_eq!(first_difference(&expected, &expected, "$"), None);
    let mut untouched = serde_json::json!({"viaSubscipritionId": "1"});
    assert_eq!(normalise_aliases(&mut untouched), 0);
}
