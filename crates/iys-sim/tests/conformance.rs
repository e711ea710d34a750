//! The simulator's answers, checked against the JSON schemas of IYS's own OpenAPI document.
//!
//! The simulator runs in-process (fast profile) and every operation it implements is driven over
//! real HTTP, for its success answer and for its documented error answers. Each answer must carry
//! a status the document lists for the operation, and its body must conform to the schema the
//! document gives for that operation and status.
//!
//! The checker below covers the OpenAPI 3.0 subset the document uses (`$ref`, `type`,
//! `properties`, `required`, `items`, `enum`, `nullable`, `allOf`/`oneOf`/`anyOf`,
//! `additionalProperties` when `false` or a schema; `format` and other annotations ignored). A
//! schema keyword it does not know is reported, so it cannot pass by not looking.
//!
//! Where IYS's schema contradicts IYS's own examples (REFERENCE.md §2, §5.1), the defect is listed
//! in [`EXCEPTIONS`] with the reason; each must still be met by an answer, so the list cannot
//! go stale silently. Known defects that cannot fail a check are not listed: date fields
//! declared `format: date-time` (formats are ignored), `TownSchema.cityCode` where IYS sends
//! `city_code` and `AgreementCaptured.aggrementCaptured` (neither is required, and undeclared
//! keys are allowed).
//!
//! The document is IYS's, kept next to the workspace in `../shared/iys/` and never copied into
//! the repository. Without it the test says so and passes, except under CI, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use iys::ConsentDate;
use iys_sim::{Profile, SimConfig, SimServer};
use serde_json::{Value, json};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------------
// The document

/// Whether IYS's document is there (see `iys::testkit`: a loud skip, a failure under CI).
fn document_available() -> bool {
    iys::testkit::openapi_document().is_some()
}

fn doc() -> &'static Value {
    iys::testkit::openapi_document().expect("every test returns early when the document is absent")
}

/// The method, path template and operation object of an `operationId`; a renamed operation
/// fails here.
fn locate(op_id: &str) -> (&'static str, &'static str, &'static Value) {
    let paths = doc()["paths"]
        .as_object()
        .expect("the document has `paths`");
    let mut found = paths.iter().flat_map(|(path, methods)| {
        methods
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, op)| op.get("operationId").and_then(Value::as_str) == Some(op_id))
            .map(move |(method, op)| (method.as_str(), path.as_str(), op))
    });
    let hit = found
        .next()
        .unwrap_or_else(|| panic!("no operation {op_id:?} in IYS's document: renamed?"));
    assert!(
        found.next().is_none(),
        "operationId {op_id:?} is not unique"
    );
    hit
}

/// A response object, with a `$ref` to `#/components/responses/…` followed.
fn response(op_id: &str, status: u16) -> Option<&'static Value> {
    let r = locate(op_id).2.get("responses")?.get(status.to_string())?;
    match r.get("$ref").and_then(Value::as_str) {
        Some(reference) => Some(
            reference
                .strip_prefix('#')
                .and_then(|p| doc().pointer(p))
                .unwrap_or_else(|| panic!("dangling $ref {reference}")),
        ),
        None => Some(r),
    }
}

/// The HTTP statuses an operation documents.
fn statuses(op_id: &str) -> Vec<String> {
    locate(op_id)
        .2
        .get("responses")
        .and_then(Value::as_object)
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Where IYS's schemas are wrong

/// How a listed schema defect is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    /// A violation reported at this path is the schema's fault: it is not reported.
    Skip,
    /// The schema declares one object where IYS answers an array of them: each element is
    /// checked against the declared schema instead.
    ArrayDeclaredAsObject,
    /// The schema declares an array where IYS answers one object: the object is checked against
    /// the declared `items` instead.
    ObjectDeclaredAsArray,
}

#[derive(Debug)]
struct Exception {
    op: &'static str,
    status: u16,
    /// JSON path of the answer; `[*]` stands for any index.
    path: &'static str,
    defect: Defect,
    reason: &'static str,
}

const ERRORS_ARRAY: &str = "InvalidErrorFor422 declares `errors` as one object (InvalidError); \
    every 422 example of this operation, and IYS's error shape everywhere, is an array of \
    errors (REFERENCE.md §5.1)";

const DEALER_CODES: &str = "Code-Name declares `code` an integer (right for /info/city); but \
    a dealer's city and town codes are strings in IYS's create request (CreateRetailerType, \
    example `\"code\": \"34\"`), and IYS's dealer answers echo them as strings (examples \
    `\"code\": \"1\"`, `\"2\"`; REFERENCE.md §2.14)";

/// Defects of IYS's schemas, each contradicted by IYS's own examples and REFERENCE.md.
const EXCEPTIONS: &[Exception] = &[
    Exception {
        op: "getBrandsDetails",
        status: 200,
        path: "$",
        defect: Defect::ArrayDeclaredAsObject,
        reason: "the 200 schema is one brand object, but the operation lists the provider's \
                 brands: IYS's example is an array of brands (REFERENCE.md §2.12)",
    },
    Exception {
        op: "getBrandsDetails",
        status: 200,
        path: "$[*].stats",
        defect: Defect::ObjectDeclaredAsArray,
        reason: "BrandStats is declared `type: array`; IYS's example has one object \
                 {consents, retailers} (REFERENCE.md §2.12: \"Schema text says `stats` is an \
                 array; examples show an object — use object.\")",
    },
    Exception {
        op: "getBrandsDetails",
        status: 200,
        path: "$[*].stats.consents",
        defect: Defect::ObjectDeclaredAsArray,
        reason: "BrandStats.consents is declared an array of counters; IYS's example has one \
                 object {approval, rejection, total} (REFERENCE.md §2.12)",
    },
    Exception {
        op: "searchRetailers",
        status: 200,
        path: "$.list",
        defect: Defect::ArrayDeclaredAsObject,
        reason: "`list` refers to RetailerSearchList, one dealer object; IYS's examples have an \
                 array of dealers, as a paginated list must (REFERENCE.md §2.14)",
    },
    Exception {
        op: "searchRetailers",
        status: 200,
        path: "$.list[*].city.code",
        defect: Defect::Skip,
        reason: DEALER_CODES,
    },
    Exception {
        op: "searchRetailers",
        status: 200,
        path: "$.list[*].town.code",
        defect: Defect::Skip,
        reason: DEALER_CODES,
    },
    Exception {
        op: "searchSingleRetailer",
        status: 200,
        path: "$.city.code",
        defect: Defect::Skip,
        reason: DEALER_CODES,
    },
    Exception {
        op: "searchSingleRetailer",
        status: 200,
        path: "$.town.code",
        defect: Defect::Skip,
        reason: DEALER_CODES,
    },
    Exception {
        op: "consentDetail",
        status: 422,
        path: "$.errors",
        defect: Defect::ArrayDeclaredAsObject,
        reason: ERRORS_ARRAY,
    },
    Exception {
        op: "consentsHistory",
        status: 422,
        path: "$.errors",
        defect: Defect::ArrayDeclaredAsObject,
        reason: ERRORS_ARRAY,
    },
    Exception {
        op: "PullPerBrandCode",
        status: 422,
        path: "$.errors",
        defect: Defect::ArrayDeclaredAsObject,
        reason: ERRORS_ARRAY,
    },
    Exception {
        op: "agreementTimeStamp",
        status: 422,
        path: "$.errors",
        defect: Defect::ArrayDeclaredAsObject,
        reason: ERRORS_ARRAY,
    },
    Exception {
        op: "integratorList",
        status: 422,
        path: "$.errors[*].value",
        defect: Defect::Skip,
        reason: "ConsentError types `value` a string; every paging example of the operation \
                 echoes the number it refused (`\"value\": -1`, `101`, `0`), as the simulator does",
    },
    Exception {
        op: "get-subscription",
        status: 200,
        path: "$.subsciprtionId",
        defect: Defect::Skip,
        reason: "the schema requires the misspelt key `subsciprtionId`; IYS's examples write \
                 `subscipritionId` and, newest, `subscriptionId`, which the simulator sends \
                 (checked separately) (REFERENCE.md §2.13)",
    },
];

// ---------------------------------------------------------------------------------------------
// The schema checker

/// Keywords that only annotate (or are outside what we check) and are ignored.
const ANNOTATIONS: &[&str] = &[
    "format",
    "title",
    "description",
    "example",
    "default",
    "readOnly",
    "writeOnly",
    "deprecated",
    "externalDocs",
];

/// Keywords the checker enforces (`$ref` is followed before the others are read).
const ENFORCED: &[&str] = &[
    "$ref",
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "nullable",
    "allOf",
    "oneOf",
    "anyOf",
    "additionalProperties",
];

/// What checking one answer found: violations as `path: message`, and which exceptions (by
/// index in the list given to the checker) were met.
#[derive(Debug, Default)]
struct Outcome {
    violations: Vec<String>,
    hits: BTreeSet<usize>,
}

#[derive(Debug)]
struct Checker<'a> {
    doc: &'a Value,
    /// The exceptions for the operation and status being checked, with their list index.
    exceptions: Vec<(usize, &'a Exception)>,
}

/// `$[3].stats` → `$[*].stats`.
fn generalise(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        match rest.find(']') {
            Some(close) if close > 0 && rest[..close].bytes().all(|b| b.is_ascii_digit()) => {
                out.push('*');
                rest = &rest[close..];
            }
            _ => {}
        }
    }
    out.push_str(rest);
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(t: &str, v: &Value) -> Option<bool> {
    Some(match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => return None,
    })
}

/// A value for a message, shortened.
fn brief(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

impl<'a> Checker<'a> {
    fn new(doc: &'a Value, exceptions: &'a [Exception], op: &str, status: u16) -> Self {
        Checker {
            doc,
            exceptions: exceptions
                .iter()
                .enumerate()
                .filter(|(_, e)| e.op == op && e.status == status)
                .collect(),
        }
    }

    /// Checks `value` against `schema`.
    fn check_root(&self, schema: &'a Value, value: &Value) -> Outcome {
        let mut out = Outcome::default();
        self.check(schema, value, "$", &mut out);
        out
    }

    fn exception(&self, path: &str, defect: Defect) -> Option<usize> {
        let path = generalise(path);
        self.exceptions
            .iter()
            .find(|(_, e)| e.defect == defect && e.path == path)
            .map(|(i, _)| *i)
    }

    fn violation(&self, out: &mut Outcome, path: &str, message: String) {
        match self.exception(path, Defect::Skip) {
            Some(i) => {
                out.hits.insert(i);
            }
            None => out.violations.push(format!("{path}: {message}")),
        }
    }

    /// Follows `$ref`s to the schema they name.
    fn resolve(&self, mut schema: &'a Value, path: &str, out: &mut Outcome) -> Option<&'a Value> {
        for _ in 0..32 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                return Some(schema);
            };
            match reference
                .strip_prefix('#')
                .and_then(|p| self.doc.pointer(p))
            {
                Some(target) => schema = target,
                None => {
                    self.violation(out, path, format!("schema has a dangling $ref {reference}"));
                    return None;
                }
            }
        }
        self.violation(out, path, "schema $refs loop".into());
        None
    }

    fn check(&self, schema: &'a Value, value: &Value, path: &str, out: &mut Outcome) {
        let Some(schema) = self.resolve(schema, path, out) else {
            return;
        };
        let s = match schema {
            Value::Object(s) => s,
            Value::Bool(true) => return,
            other => {
                self.violation(
                    out,
                    path,
                    format!("schema is not an object: {}", brief(other)),
                );
                return;
            }
        };
        for key in s.keys() {
            let k = key.as_str();
            if !(ENFORCED.contains(&k) || ANNOTATIONS.contains(&k) || k.starts_with("x-")) {
                self.violation(
                    out,
                    path,
                    format!("schema keyword {k:?} is not supported by this checker"),
                );
            }
        }

        if value.is_null() {
            if s.get("nullable") == Some(&Value::Bool(true)) {
                return;
            }
            if let Some(t) = s.get("type").and_then(Value::as_str) {
                self.violation(
                    out,
                    path,
                    format!("null where {t} is expected (not nullable)"),
                );
                return;
            }
        }

        if let Some(t) = s.get("type") {
            let Some(t) = t.as_str() else {
                self.violation(
                    out,
                    path,
                    format!("schema type {} is not a string", brief(t)),
                );
                return;
            };
            match type_matches(t, value) {
                None => {
                    self.violation(out, path, format!("schema type {t:?} is unknown"));
                    return;
                }
                Some(true) => {}
                Some(false) => {
                    if let (Some(items), Some(i)) = (
                        value.as_array().filter(|_| t == "object"),
                        self.exception(path, Defect::ArrayDeclaredAsObject),
                    ) {
                        out.hits.insert(i);
                        for (n, item) in items.iter().enumerate() {
                            self.check(schema, item, &format!("{path}[{n}]"), out);
                        }
                        return;
                    }
                    if t == "array"
                        && value.is_object()
                        && let Some(i) = self.exception(path, Defect::ObjectDeclaredAsArray)
                    {
                        out.hits.insert(i);
                        match s.get("items") {
                            Some(items) => self.check(items, value, path, out),
                            None => self.violation(out, path, "array schema without items".into()),
                        }
                        return;
                    }
                    self.violation(
                        out,
                        path,
                        format!("expected {t}, found {}: {}", kind(value), brief(value)),
                    );
                    return;
                }
            }
        }

        if let Some(options) = s.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            self.violation(
                out,
                path,
                format!(
                    "{} is not one of {}",
                    brief(value),
                    brief(&Value::from(options.clone()))
                ),
            );
        }

        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check(sub, value, path, out);
            }
        }
        for (keyword, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            let Some(alternatives) = s.get(keyword).and_then(Value::as_array) else {
                continue;
            };
            let tries: Vec<Outcome> = alternatives
                .iter()
                .map(|alt| {
                    let mut o = Outcome::default();
                    self.check(alt, value, path, &mut o);
                    o
                })
                .collect();
            let passing: Vec<&Outcome> = tries.iter().filter(|o| o.violations.is_empty()).collect();
            match passing.len() {
                0 => {
                    let why: Vec<String> = tries
                        .iter()
                        .enumerate()
                        .map(|(i, o)| format!("#{i}: {}", o.violations.join("; ")))
                        .collect();
                    self.violation(
                        out,
                        path,
                        format!(
                            "matches none of the {keyword} alternatives ({})",
                            why.join(" | ")
                        ),
                    );
                }
                n if n > 1 && exactly_one => self.violation(
                    out,
                    path,
                    format!("matches {n} of the oneOf alternatives, not exactly one"),
                ),
                _ => out.hits.extend(passing[0].hits.iter().copied()),
            }
        }

        if let Some(map) = value.as_object() {
            let properties = s.get("properties").and_then(Value::as_object);
            for name in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(name) {
                    self.violation(out, &format!("{path}.{name}"), "required, missing".into());
                }
            }
            for (key, v) in map {
                let child = format!("{path}.{key}");
                match (
                    properties.and_then(|p| p.get(key)),
                    s.get("additionalProperties"),
                ) {
                    (Some(sub), _) => self.check(sub, v, &child, out),
                    (None, Some(Value::Bool(false))) => self.violation(
                        out,
                        &child,
                        "not a declared property (additionalProperties: false)".into(),
                    ),
                    (None, Some(extra @ Value::Object(_))) => self.check(extra, v, &child, out),
                    (None, _) => {}
                }
            }
        }

        if let (Some(items), Some(list)) = (s.get("items"), value.as_array()) {
            for (n, item) in list.iter().enumerate() {
                self.check(items, item, &format!("{path}[{n}]"), out);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Driving the simulator

/// Every operation × status this test must have validated.
const COVERAGE: &[(&str, &[u16])] = &[
    ("createToken2", &[200, 400]),
    ("getBrandsDetails", &[200, 401, 403]),
    ("addConsent", &[200, 400, 401, 403, 422]),
    ("addConsentV2", &[200, 400, 401, 403, 422]),
    ("addBatchConsent", &[202, 422]),
    ("addBatchConsentV2", &[202, 422]),
    ("searchRequestDetails", &[200]),
    ("searchRequestDetailsV2", &[200]),
    ("consentDetail", &[200, 422]),
    ("batchConsentStatus", &[200, 422]),
    ("consentsHistory", &[200, 422]),
    ("PullPerBrandCode", &[200, 422]),
    ("pushRegistration", &[200]),
    ("getPushRegistration", &[200]),
    ("pushUnregistration", &[200]),
    ("createRetailer", &[201, 400]),
    ("searchRetailers", &[200]),
    ("searchSingleRetailer", &[200]),
    ("addRetailers", &[200]),
    ("changeSummary", &[200]),
    ("agreementsDate", &[200]),
    ("agreementDatePut", &[200]),
    ("get-subscription", &[200]),
    ("getCities", &[200]),
    ("cityDetails", &[200]),
    ("getTowns", &[200]),
    ("townDetails", &[200]),
    ("integratorList", &[200, 400, 401, 403, 422]),
    ("integratorListByiysCode", &[200, 403]),
    ("getIntegratorSubscription", &[200, 400, 404]),
    ("agreementTimeStamp", &[401, 422]),
];

#[derive(Debug)]
struct Conformance {
    http: reqwest::Client,
    base: String,
    iys_code: String,
    brand_code: String,
    token: String,
    /// Operation × status validated, with how many answers.
    validated: BTreeMap<(&'static str, u16), usize>,
    failures: Vec<String>,
    hits: BTreeSet<usize>,
}

impl Conformance {
    fn new(base: String, iys_code: u64) -> Self {
        Conformance {
            http: reqwest::Client::new(),
            base,
            iys_code: iys_code.to_string(),
            brand_code: iys_code.to_string(),
            token: String::new(),
            validated: BTreeMap::new(),
            failures: Vec::new(),
            hits: BTreeSet::new(),
        }
    }

    /// A request to the operation's documented path; `iysCode` and `brandCode` default to the
    /// simulator's provider and master brand.
    fn request(&self, op: &str, params: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let (method, template, _) = locate(op);
        let mut path = template.to_owned();
        for (name, value) in params.iter().copied().chain([
            ("iysCode", self.iys_code.as_str()),
            ("brandCode", self.brand_code.as_str()),
        ]) {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        assert!(
            !path.contains('{'),
            "{op}: a path parameter is not filled in: {path}"
        );
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .expect("an HTTP method");
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// The same, with the bearer token.
    fn authed(&self, op: &str, params: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.request(op, params).bearer_auth(&self.token)
    }

    /// Sends, expects `want`, validates the answer against the document; returns the body.
    async fn expect(&mut self, op: &'static str, req: reqwest::RequestBuilder, want: u16) -> Value {
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{op}: request failed: {e}"));
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = resp.text().await.expect("an answer body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    self.failures.push(format!(
                        "{op} HTTP {status}: the body is not JSON ({e}): {text}"
                    ));
                    return Value::Null;
                }
            }
        };
        if status != want {
            self.failures.push(format!(
                "{op}: expected HTTP {want}, got {status}: {}",
                brief(&body)
            ));
            return body;
        }
        let Some(documented) = response(op, status) else {
            self.failures.push(format!(
                "{op}: HTTP {status} is not a status IYS documents for it (documented: {})",
                statuses(op).join(", ")
            ));
            return body;
        };
        let Some(schema) = documented.pointer("/content/application~1json/schema") else {
            self.failures.push(format!(
                "{op} HTTP {status}: the document gives no application/json schema"
            ));
            return body;
        };
        if !content_type.starts_with("application/json") {
            self.failures.push(format!(
                "{op} HTTP {status}: Content-Type {content_type:?}, the document says application/json"
            ));
        }
        let outcome = Checker::new(doc(), EXCEPTIONS, op, status).check_root(schema, &body);
        self.hits.extend(outcome.hits);
        self.failures.extend(
            outcome
                .violations
                .into_iter()
                .map(|v| format!("{op} HTTP {status}: {v}")),
        );
        *self.validated.entry((op, status)).or_default() += 1;
        body
    }

    /// Polls a bulk result (unvalidated) until every item is settled, then validates it.
    async fn settled_bulk(&mut self, op: &'static str, request_id: &str) -> Value {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body: Value = self
                .authed(op, &[("requestId", request_id)])
                .send()
                .await
                .expect("a bulk result")
                .json()
                .await
                .expect("a JSON bulk result");
            let done = body.as_array().is_some_and(|items| {
                !items.is_empty() && items.iter().all(|i| i["status"] != "enqueue")
            });
            if done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{op}: bulk {request_id} not settled after 10 s: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let req = self.authed(op, &[("requestId", request_id)]);
        self.expect(op, req, 200).await
    }

    /// A `/_sim/…` control call (not IYS, not validated).
    async fn control(&self, path: &str, body: &Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(resp.status().is_success(), "{path}: HTTP {}", resp.status());
        resp.json().await.unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    async fn new_token(&mut self) {
        let req = self.request("createToken2", &[]).json(&json!({
            "grant_type": "password", "username": "demo", "password": "demo-password",
        }));
        let body = self.expect("createToken2", req, 200).await;
        self.token = body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned();
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    /// Fails with every failure at once; then checks coverage and that every exception was met.
    fn finish(self) {
        let mut report = String::new();
        for ((op, status), n) in &self.validated {
            report.push_str(&format!("  {op} {status} ×{n}\n"));
        }
        report.push_str("IYS schema defects met and worked around:\n");
        for (i, e) in EXCEPTIONS.iter().enumerate() {
            if self.hits.contains(&i) {
                report.push_str(&format!(
                    "  {} {} {} ({:?}): {}\n",
                    e.op, e.status, e.path, e.defect, e.reason
                ));
            }
        }
        let _ = writeln!(
            std::io::stderr(),
            "validated against IYS's schemas:\n{report}"
        );
        assert!(
            self.failures.is_empty(),
            "{} answer(s) do not conform to IYS's document:\n  {}",
            self.failures.len(),
            self.failures.join("\n  ")
        );
        let missing: Vec<String> = COVERAGE
            .iter()
            .flat_map(|(op, codes)| codes.iter().map(move |c| (*op, *c)))
            .filter(|k| !self.validated.contains_key(k))
            .map(|(op, c)| format!("{op} {c}"))
            .collect();
        assert!(missing.is_empty(), "not validated: {missing:?}");
        let stale: Vec<String> = EXCEPTIONS
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.hits.contains(i))
            .map(|(_, e)| {
                format!(
                    "{} {} {} ({:?}: {})",
                    e.op, e.status, e.path, e.defect, e.reason
                )
            })
            .collect();
        assert!(
            stale.is_empty(),
            "listed schema defects no answer met (fixed in the document, or no longer \
             exercised?): {stale:?}"
        );
    }
}

/// A push receiver that accepts any POST with Basic auth, and counts them.
async fn push_receiver() -> (String, Arc<AtomicUsize>) {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/push",
        axum::routing::post(move |headers: HeaderMap| {
            let counter = counter.clone();
            async move {
                let basic = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("Basic "));
                if basic {
                    counter.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/push"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_conforms_to_iys_schemas() {
    if !document_available() {
        return;
    }
    let config = SimConfig::for_profile(Profile::Fast);
    let iys_code = config.iys_code;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let server = SimServer::start(config, listener, None)
        .await
        .expect("the simulator starts");
    let mut t = Conformance::new(server.base_url(), iys_code);
    // A consent date IYS accepts: just before the simulator's now.
    let date = ConsentDate::from_timestamp(
        server
            .sim
            .now()
            .checked_sub(jiff::SignedDuration::from_secs(120))
            .expect("a time"),
    )
    .to_string();
    let consent = |recipient: &str, kind: &str, status: &str| {
        json!({
            "recipient": recipient, "type": kind, "source": "HS_WEB", "status": status,
            "consentDate": date, "recipientType": "BIREYSEL",
        })
    };

    // Token
    let req = t.request("createToken2", &[]).json(&json!({
        "grant_type": "password", "username": "demo", "password": "not-the-password",
    }));
    t.expect("createToken2", req, 400).await;
    t.new_token().await;

    // Brands
    let req = t.request("getBrandsDetails", &[]);
    t.expect("getBrandsDetails", req, 401).await;
    let req = t.authed("getBrandsDetails", &[("iysCode", "999999")]);
    t.expect("getBrandsDetails", req, 403).await;
    let req = t.authed("getBrandsDetails", &[]);
    t.expect("getBrandsDetails", req, 200).await;

    // Dealers
    let req = t.authed("createRetailer", &[]).json(&json!({
        "name": "Ayşe Yılmaz", "tckn": "12345678901", "tin": "1234567890",
        "city": {"code": "34", "name": "İSTANBUL"}, "town": {"code": "1", "name": "ADALAR"},
    }));
    t.expect("createRetailer", req, 400).await;
    let req = t.authed("createRetailer", &[]).json(&json!({
        "title": "Örnek Bayi", "name": "Ayşe Yılmaz", "tckn": "12345678901",
        "tin": "1234567890", "mersis": "0123456789012345", "alias": "Kadıköy",
        "mobile": "+905321234567", "status": "active",
        // Codes as IYS's request schema and example give them: strings.
        "city": {"code": "34", "name": "İSTANBUL"}, "town": {"code": "1", "name": "ADALAR"},
    }));
    let created = t.expect("createRetailer", req, 201).await;
    let dealer = created["retailerCode"].as_u64().expect("a retailerCode");
    let dealer_s = dealer.to_string();
    let req = t.authed("searchRetailers", &[]);
    t.expect("searchRetailers", req, 200).await;
    let req = t.authed("searchSingleRetailer", &[("retailerCode", &dealer_s)]);
    t.expect("searchSingleRetailer", req, 200).await;

    // Single adds, v1 and v2
    let phone1 = "+905321000001";
    let mut with_dealer = consent(phone1, "MESAJ", "ONAY");
    with_dealer["retailerCode"] = json!(dealer);
    let req = t.authed("addConsent", &[]).json(&with_dealer);
    let added = t.expect("addConsent", req, 200).await;
    let req = t
        .authed("addConsentV2", &[])
        .json(&consent("+905321000002", "MESAJ", "ONAY"));
    t.expect("addConsentV2", req, 200).await;
    for (op, first_ret) in [
        ("addConsent", "+905321000003"),
        ("addConsentV2", "+905321000004"),
    ] {
        let req = t.authed(op, &[]).json(&consent(first_ret, "MESAJ", "RET"));
        let body = t.expect(op, req, 400).await;
        t.check(
            body["errors"][0]["code"] == "H175",
            format!("{op}: a first RET must be H175: {body}"),
        );
        let req = t
            .authed(op, &[])
            .json(&consent("+905321000005", "EPOSTAa", "ONAY"));
        let body = t.expect(op, req, 422).await;
        t.check(
            body["errors"][0]["code"] == "H117",
            format!("{op}: an unknown type must be H117: {body}"),
        );
        let req = t
            .request(op, &[])
            .json(&consent("+905321000006", "MESAJ", "ONAY"));
        t.expect(op, req, 401).await;
        let req = t.authed(op, &[("brandCode", "999999")]).json(&consent(
            "+905321000007",
            "MESAJ",
            "ONAY",
        ));
        t.expect(op, req, 403).await;
    }

    // Dealer access to a consent
    let req = t.authed("addRetailers", &[]).json(&json!({
        "type": "MESAJ", "recipient": phone1, "recipientType": "BIREYSEL",
        "retailerAccess": [dealer],
    }));
    t.expect("addRetailers", req, 200).await;

    // Single status, multi status, history
    let query = json!({"recipient": phone1, "recipientType": "BIREYSEL", "type": "MESAJ"});
    let req = t.authed("consentDetail", &[]).json(&query);
    let detail = t.expect("consentDetail", req, 200).await;
    t.check(
        detail["retailerCode"] == json!(dealer) && detail["retailerAccessCount"] == 1,
        format!("consentDetail: the dealer fields are exercised: {detail}"),
    );
    let req = t.authed("consentDetail", &[]).json(&json!({
        "recipient": phone1, "recipientType": "BIREYSEL", "type": "ARAMAA",
    }));
    t.expect("consentDetail", req, 422).await;
    let multi = [("recipientType", "BIREYSEL"), ("type", "MESAJ")];
    let req = t
        .authed("batchConsentStatus", &multi)
        .json(&json!({"recipients": [phone1, "+905321000003"]}));
    let body = t.expect("batchConsentStatus", req, 200).await;
    t.check(
        body["list"] == json!([phone1]),
        format!("batchConsentStatus: only the ONAY recipient: {body}"),
    );
    let req = t
        .authed("batchConsentStatus", &multi)
        .json(&json!({"recipients": ["ornek@example.com"]}));
    t.expect("batchConsentStatus", req, 422).await;
    let req = t.authed("consentsHistory", &[]).json(&query);
    t.expect("consentsHistory", req, 200).await;
    let req = t
        .authed("consentsHistory", &[])
        .json(&json!({"recipient": phone1, "recipientType": "BIREYSEL"}));
    t.expect("consentsHistory", req, 422).await;

    // Bulk adds and their results, v1 and v2
    let req = t.authed("addBatchConsent", &[]).json(&json!([
        consent("bulk1@example.com", "EPOSTA", "ONAY"),
        consent("bulk2@example.com", "EPOSTA", "RET"),
    ]));
    let v1 = t.expect("addBatchConsent", req, 202).await;
    let req = t.authed("addBatchConsent", &[]).json(&json!([consent(
        "bulk3@example.com",
        "EPOSTAa",
        "ONAY"
    )]));
    t.expect("addBatchConsent", req, 422).await;
    let v2_item = consent("bulk4@example.com", "EPOSTA", "ONAY");
    let req = t.authed("addBatchConsentV2", &[]).json(&json!([v2_item]));
    let v2 = t.expect("addBatchConsentV2", req, 202).await;
    let req = t.authed("addBatchConsentV2", &[]).json(&json!([consent(
        "bulk5@example.com",
        "EPOSTAa",
        "ONAY"
    )]));
    t.expect("addBatchConsentV2", req, 422).await;
    let id = v1["requestId"].as_str().unwrap_or_default().to_owned();
    let result = t.settled_bulk("searchRequestDetails", &id).await;
    t.check(
        result[0]["status"] == "success" && result[1]["status"] == "failure",
        format!("searchRequestDetails: one success, one failure: {result}"),
    );
    let id = v2["requestId"].as_str().unwrap_or_default().to_owned();
    t.settled_bulk("searchRequestDetailsV2", &id).await;
    // The same consent again through v2: the result names the request that wrote it.
    let req = t.authed("addBatchConsentV2", &[]).json(&json!([v2_item]));
    let again = t.expect("addBatchConsentV2", req, 202).await;
    let id = again["requestId"].as_str().unwrap_or_default().to_owned();
    let result = t.settled_bulk("searchRequestDetailsV2", &id).await;
    t.check(
        result[0]["originalRequestInformation"].is_object(),
        format!("searchRequestDetailsV2: originalRequestInformation is exercised: {result}"),
    );

    // Push, and a citizen's movement for the changes feed
    let (url, received) = push_receiver().await;
    let connection = json!({"url": url, "type": "MESAJ", "username": "hub", "password": "s3cret"});
    let req = t
        .authed("pushRegistration", &[])
        .json(&json!({"connection": [connection]}));
    t.expect("pushRegistration", req, 200).await;
    let req = t.authed("getPushRegistration", &[]);
    t.expect("getPushRegistration", req, 200).await;
    let citizen = t
        .control(
            "/_sim/citizen",
            &json!({
                "brandCode": iys_code, "recipient": "+905321000008", "type": "MESAJ",
                "status": "ONAY", "source": "IYS_WEB_YENI", "citizenName": "Mehmet Kaya",
            }),
        )
        .await;
    t.check(
        citizen["errors"] == json!([]),
        format!("/_sim/citizen: {citizen}"),
    );
    // The feed serves a second once it is over.
    t.control("/_sim/clock/advance", &json!({"seconds": 1}))
        .await;
    let req = t.authed("PullPerBrandCode", &[]);
    let pulled = t.expect("PullPerBrandCode", req, 200).await;
    t.check(
        pulled["list"][0]["citizenName"] == "Mehmet Kaya",
        format!("PullPerBrandCode: citizenName is exercised: {pulled}"),
    );
    let req = t.authed("PullPerBrandCode", &[]).query(&[("source", "SH")]);
    t.expect("PullPerBrandCode", req, 422).await;
    let req = t
        .authed("PullPerBrandCode", &[])
        .query(&[("limit", "1500")]);
    let body = t.expect("PullPerBrandCode", req, 422).await;
    t.check(
        body["errors"][0]["code"] == "H507",
        format!("PullPerBrandCode: limit over 1000 is H507: {body}"),
    );
    let req = t.authed("pushUnregistration", &[]).json(&connection);
    t.expect("pushUnregistration", req, 200).await;
    t.check(
        received.load(Ordering::SeqCst) >= 1,
        "the push receiver got no POST",
    );

    // Subscription and info services
    let req = t.authed("get-subscription", &[]);
    let sub = t.expect("get-subscription", req, 200).await;
    t.check(
        sub["subscriptionId"].is_string(),
        format!("get-subscription: subscriptionId (correctly spelt) is sent: {sub}"),
    );
    let req = t.authed("getCities", &[]);
    t.expect("getCities", req, 200).await;
    let req = t.authed("cityDetails", &[("code", "34")]);
    t.expect("cityDetails", req, 200).await;
    let req = t.authed("getTowns", &[]);
    t.expect("getTowns", req, 200).await;
    let req = t.authed("townDetails", &[("code", "1")]);
    t.expect("townDetails", req, 200).await;

    // Partners: the configured partner's own views, and a provider's user refused.
    let integrator = [("integratorCode", "700001")];
    let req = t.authed("integratorList", &integrator);
    t.expect("integratorList", req, 400).await;
    let req = t.authed("getIntegratorSubscription", &integrator);
    t.expect("getIntegratorSubscription", req, 400).await;
    let req = t.request("integratorList", &integrator);
    t.expect("integratorList", req, 401).await;
    let provider_token = std::mem::take(&mut t.token);
    let req = t.request("createToken2", &[]).json(&json!({
        "grant_type": "password", "username": "partner", "password": "partner-password",
    }));
    let body = t.expect("createToken2", req, 200).await;
    t.token = body["access_token"].as_str().unwrap_or_default().to_owned();
    let req = t.authed("integratorList", &integrator);
    let list = t.expect("integratorList", req, 200).await;
    t.check(
        list["list"].as_array().is_some_and(|l| l.len() == 2),
        format!("integratorList: both brands: {list}"),
    );
    let req = t
        .authed("integratorList", &integrator)
        .query(&[("limit", "0")]);
    t.expect("integratorList", req, 422).await;
    let req = t.authed("integratorList", &[("integratorCode", "700002")]);
    t.expect("integratorList", req, 403).await;
    let req = t.authed("integratorListByiysCode", &integrator);
    t.expect("integratorListByiysCode", req, 200).await;
    let req = t.authed(
        "integratorListByiysCode",
        &[("integratorCode", "700001"), ("iysCode", "999999")],
    );
    t.expect("integratorListByiysCode", req, 403).await;
    let req = t.authed("getIntegratorSubscription", &integrator);
    t.expect("getIntegratorSubscription", req, 200).await;
    let req = t.authed("getIntegratorSubscription", &[("integratorCode", "700002")]);
    t.expect("getIntegratorSubscription", req, 404).await;
    t.token = provider_token;

    // Reconciliation of the day of the movements above, once that day is over.
    let day = added["creationDate"]
        .as_str()
        .and_then(|d| d.get(..10))
        .expect("a creationDate")
        .to_owned();
    t.control("/_sim/clock/advance", &json!({"seconds": 86_400}))
        .await;
    t.new_token().await; // the old one expired with the day
    let req = t.authed(
        "changeSummary",
        &[("reportDate", &day), ("recipientType", "BIREYSEL")],
    );
    t.expect("changeSummary", req, 200).await;
    let req = t.authed("agreementsDate", &[("reportDate", &day)]);
    let hash = t.expect("agreementsDate", req, 200).await;
    t.check(
        hash["processStatus"] == "completed",
        format!("agreementsDate: the day is over, the hash is there: {hash}"),
    );
    let req = t
        .authed("agreementDatePut", &[("reportDate", &day)])
        .json(&json!({"agreementStatus": true}));
    t.expect("agreementDatePut", req, 200).await;
    // The time stamp file itself is binary (text/plain per the document; scenarios check it).
    let req = t.authed("agreementTimeStamp", &[("reportDate", "2020.01.01")]);
    t.expect("agreementTimeStamp", req, 422).await;
    let req = t.request("agreementTimeStamp", &[("reportDate", &day)]);
    t.expect("agreementTimeStamp", req, 401).await;

    server.shutdown().await.expect("the simulator stops");
    t.finish();
}

// ---------------------------------------------------------------------------------------------
// The checker itself (no document needed)

mod checker {
    use super::*;

    fn run(doc: &Value, schema: &Value, value: Value) -> Vec<String> {
        Checker::new(doc, &[], "op", 200)
            .check_root(schema, &value)
            .violations
    }

    #[test]
    fn it_reports_types_required_enums_and_paths() {
        let doc = json!({"components": {"schemas": {
            "Item": {"type": "object", "required": ["code"], "properties": {
                "code": {"type": "integer"},
                "status": {"type": "string", "enum": ["success", "failure"]},
                "note": {"type": "string", "nullable": true},
            }},
        }}});
        let schema = json!({"type": "array", "items": {"$ref": "#/components/schemas/Item"}});
        assert!(
            run(
                &doc,
                &schema,
                json!([{"code": 1, "status": "success", "note": null}])
            )
            .is_empty()
        );
        let v = run(
            &doc,
            &schema,
            json!([{"code": 1}, {"code": "1", "status": "done"}, {"status": "failure"}, {"code": 2, "note": 3}]),
        );
        assert_eq!(
            v,
            [
                "$[1].code: expected integer, found string: \"1\"",
                "$[1].status: \"done\" is not one of [\"success\",\"failure\"]",
                "$[2].code: required, missing",
                "$[3].note: expected string, found integer: 3",
            ]
        );
        assert_eq!(
            run(&doc, &json!({"type": "integer"}), json!(null)),
            ["$: null where integer is expected (not nullable)"]
        );
        assert_eq!(
            run(&doc, &json!({"type": "integer"}), json!(1.5)),
            ["$: expected integer, found number: 1.5"]
        );
    }

    #[test]
    fn it_follows_combinators_and_additional_properties() {
        let doc = json!({});
        let one_of =
            json!({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}]});
        assert!(run(&doc, &one_of, json!([1, 2])).is_empty());
        assert_eq!(run(&doc, &one_of, json!([true])).len(), 1);
        let both = json!({"oneOf": [{"type": "integer"}, {"type": "number"}]});
        assert_eq!(
            run(&doc, &both, json!(3)),
            ["$: matches 2 of the oneOf alternatives, not exactly one"]
        );
        let any_of = json!({"anyOf": [{"type": "integer"}, {"type": "number"}]});
        assert!(run(&doc, &any_of, json!(3)).is_empty());
        let all_of = json!({"allOf": [
            {"type": "object", "required": ["a"]},
            {"type": "object", "required": ["b"]},
        ]});
        assert_eq!(
            run(&doc, &all_of, json!({"a": 1})),
            ["$.b: required, missing"]
        );
        let closed =
            json!({"type": "object", "properties": {"a": {}}, "additionalProperties": false});
        assert_eq!(
            run(&doc, &closed, json!({"a": 1, "b": 2})),
            ["$.b: not a declared property (additionalProperties: false)"]
        );
        let map = json!({"type": "object", "additionalProperties": {"type": "integer"}});
        assert_eq!(
            run(&doc, &map, json!({"a": 1, "b": "x"})),
            ["$.b: expected integer, found string: \"x\""]
        );
        let open = json!({"type": "object", "properties": {"a": {}}});
        assert!(run(&doc, &open, json!({"b": 2})).is_empty());
    }

    #[test]
    fn it_reports_what_it_cannot_check() {
        assert_eq!(
            run(
                &json!({}),
                &json!({"$ref": "#/components/schemas/Gone"}),
                json!(1)
            ),
            ["$: schema has a dangling $ref #/components/schemas/Gone"]
        );
        assert_eq!(
            run(
                &json!({}),
                &json!({"type": "string", "pattern": "^H"}),
                json!("H1")
            ),
            ["$: schema keyword \"pattern\" is not supported by this checker"]
        );
        assert!(
            run(
                &json!({}),
                &json!({"type": "string", "format": "date-time", "x-y": 1}),
                json!("x")
            )
            .is_empty()
        );
    }

    #[test]
    fn exceptions_apply_only_where_listed_and_are_recorded() {
        const LISTED: &[Exception] = &[
            Exception {
                op: "op",
                status: 200,
                path: "$",
                defect: Defect::ArrayDeclaredAsObject,
                reason: "test",
            },
            Exception {
                op: "op",
                status: 200,
                path: "$[*].stats",
                defect: Defect::ObjectDeclaredAsArray,
                reason: "test",
            },
            Exception {
                op: "op",
                status: 200,
                path: "$[*].id",
                defect: Defect::Skip,
                reason: "test",
            },
            Exception {
                op: "other",
                status: 200,
                path: "$[*].n",
                defect: Defect::Skip,
                reason: "test",
            },
        ];
        let schema = &json!({
            "type": "object", "required": ["id"], "properties": {
                "n": {"type": "integer"},
                "stats": {"type": "array", "items": {"type": "object", "properties": {
                    "total": {"type": "integer"},
                }}},
            },
        });
        let doc = &json!({});
        let out = Checker::new(doc, LISTED, "op", 200).check_root(
            schema,
            &json!([{"n": 1, "stats": {"total": 2}}, {"n": "x", "stats": {"total": "y"}}]),
        );
        assert_eq!(
            out.violations,
            [
                "$[1].n: expected integer, found string: \"x\"",
                "$[1].stats.total: expected integer, found string: \"y\"",
            ]
        );
        assert_eq!(out.hits, BTreeSet::from([0, 1, 2]));
        let out = Checker::new(doc, LISTED, "op", 422).check_root(schema, &json!([]));
        assert_eq!(out.violations, ["$: expected object, found array: []"]);
        assert!(out.hits.is_empty());
    }

    #[test]
    fn paths_generalise_indexes_only() {
        assert_eq!(generalise("$[12].stats[0].a"), "$[*].stats[*].a");
        assert_eq!(generalise("$.list"), "$.list");
        assert_eq!(generalise("$.a[x]"), "$.a[x]");
    }
}
