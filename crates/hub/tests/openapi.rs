//! The OpenAPI document the hub generates (served at `/api/openapi.json`) is a well-formed
//! OpenAPI 3.1 document and matches the router it is built with:
//!
//! - its structure (operations, parameters, responses, references, security, schemas' types) is
//!   checked here;
//! - every documented operation is routed: a real hub answers it (never the fallback's 404 or a
//!   405), and every other method of a documented path answers 405;
//! - the only routes the document leaves out are the reference page's (`/api/docs`), which is
//!   served from the binary and refers to nothing outside it;
//! - the error codes it lists are the ones the hub's sources answer with.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use hub::Hub;
use hub_store::SqlStore;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The operation keys of an OpenAPI path item.
const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> &'static Value {
    hub::openapi::document()
}

/// Every documented operation: (path, method, operation, its path item).
fn operations() -> Vec<(&'static str, &'static str, &'static Value, &'static Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc()["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item is an object") {
            if HTTP_METHODS.contains(&method.as_str()) {
                ops.push((path.as_str(), method.as_str(), op, item));
            }
        }
    }
    ops
}

/// Follows a local `$ref` (`#/components/…`).
fn resolve(v: &Value) -> &Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local references are used: {r}"));
            resolve(
                doc()
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("{r} does not resolve")),
            )
        }
        None => v,
    }
}

fn path_params(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_document_is_openapi_3_1() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "iyshub");
    assert!(doc["info"]["version"].is_string());
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["name"].as_str().expect("a tag's name"))
        .collect();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let mut ids = BTreeSet::new();
    let mut wrong = Vec::new();
    for (path, method, op, item) in operations() {
        let at = format!("{} {path}", method.to_uppercase());
        assert!(path.starts_with('/'), "{at}");
        let id = op["operationId"].as_str().unwrap_or_default();
        if id.is_empty() || !ids.insert(id) {
            wrong.push(format!("{at}: operationId {id:?} missing or used twice"));
        }
        if op["summary"].as_str().is_none_or(str::is_empty) {
            wrong.push(format!("{at}: no summary"));
        }
        for t in op["tags"].as_array().into_iter().flatten() {
            if !tags.contains(t.as_str().unwrap_or_default()) {
                wrong.push(format!("{at}: tag {t} is not declared"));
            }
        }
        // Parameters: known locations, path ones required and exactly the template's.
        let mut documented = BTreeSet::new();
        for p in [&item["parameters"], &op["parameters"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
        {
            let p = resolve(p);
            let location = p["in"].as_str().unwrap_or_default();
            if !["path", "query", "header", "cookie"].contains(&location) {
                wrong.push(format!("{at}: parameter {p} is in {location:?}"));
            }
            if p["schema"].is_null() {
                wrong.push(format!("{at}: parameter {} has no schema", p["name"]));
            }
            if location == "path" {
                if p["required"] != true {
                    wrong.push(format!(
                        "{at}: path parameter {} is not required",
                        p["name"]
                    ));
                }
                documented.insert(p["name"].as_str().unwrap_or_default().to_owned());
            }
        }
        if documented != path_params(path) {
            wrong.push(format!(
                "{at}: path parameters {documented:?}, the path has {:?}",
                path_params(path)
            ));
        }
        if let Some(body) = op.get("requestBody")
            && body["content"].as_object().is_none_or(|c| c.is_empty())
        {
            wrong.push(format!("{at}: a request body without content"));
        }
        // Responses: valid status keys, each with a description.
        let responses = op["responses"].as_object().expect("responses");
        if !responses.keys().any(|s| s.starts_with('2')) {
            wrong.push(format!("{at}: no success response"));
        }
        for (status, r) in responses {
            let valid = status == "default"
                || (status.len() == 3
                    && status.starts_with(['1', '2', '3', '4', '5'])
                    && (status[1..].bytes().all(|b| b.is_ascii_digit()) || &status[1..] == "XX"));
            if !valid {
                wrong.push(format!("{at}: response status {status:?}"));
            }
            if !resolve(r)["description"].is_string() {
                wrong.push(format!("{at}: response {status} has no description"));
            }
        }
        // Security: defined schemes; keyed operations document 401 and 429 with Retry-After.
        let security = op.get("security").unwrap_or(&doc["security"]);
        for requirement in security.as_array().expect("security is a list") {
            for (scheme, roles) in requirement.as_object().expect("a requirement") {
                if !schemes.contains_key(scheme) {
                    wrong.push(format!("{at}: security scheme {scheme} is not defined"));
                }
                assert!(roles.is_array(), "{at}");
                if scheme == "apiKey" {
                    for status in ["401", "429"] {
                        if !responses.contains_key(status) {
                            wrong.push(format!("{at}: keyed, without {status}"));
                        }
                    }
                    if resolve(&responses["429"])["headers"]["Retry-After"].is_null() {
                        wrong.push(format!("{at}: 429 without Retry-After"));
                    }
                }
            }
        }
        if !responses.contains_key("503") {
            wrong.push(format!("{at}: without 503 (the request timeout)"));
        }
        if op.get("requestBody").is_some() && !responses.contains_key("413") {
            wrong.push(format!("{at}: takes a body, without 413"));
        }
        if !path_params(path).is_empty() && !responses.contains_key("400") {
            wrong.push(format!(
                "{at}: has path parameters, without 400 (invalid_path)"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_reference_resolves_and_every_schema_is_typed_as_json_schema_allows() {
    fn walk(v: &Value, at: &str, wrong: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    let resolved = r
                        .strip_prefix('#')
                        .and_then(|pointer| doc().pointer(pointer));
                    if resolved.is_none() {
                        wrong.push(format!("{at}: {r} does not resolve"));
                    }
                }
                for (k, x) in o {
                    walk(x, &format!("{at}/{k}"), wrong);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{at}/{i}"), wrong);
                }
            }
            _ => {}
        }
    }
    /// Every `type` of a schema (and of the schemas inside it) is one of JSON Schema's.
    fn types(schema: &Value, at: &str, wrong: &mut Vec<String>) {
        const TYPES: [&str; 7] = [
            "string", "number", "integer", "boolean", "array", "object", "null",
        ];
        let Some(o) = schema.as_object() else { return };
        match o.get("type") {
            None => {}
            Some(Value::String(t)) if TYPES.contains(&t.as_str()) => {}
            Some(Value::Array(ts))
                if ts
                    .iter()
                    .all(|t| TYPES.contains(&t.as_str().unwrap_or_default())) => {}
            Some(t) => wrong.push(format!("{at}: type {t}")),
        }
        if let Some(props) = o.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                types(p, &format!("{at}.{k}"), wrong);
            }
            for r in o
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !props.contains_key(r.as_str().unwrap_or_default()) {
                    wrong.push(format!("{at}: required {r} is not a property"));
                }
            }
        }
        for k in ["items", "additionalProperties", "not"] {
            if let Some(x) = o.get(k) {
                types(x, &format!("{at}/{k}"), wrong);
            }
        }
        for k in ["allOf", "anyOf", "oneOf"] {
            for (i, x) in o
                .get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                types(x, &format!("{at}/{k}/{i}"), wrong);
            }
        }
    }
    let doc = doc();
    let mut wrong = Vec::new();
    walk(doc, "#", &mut wrong);
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for (name, schema) in schemas {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "component name {name}"
        );
        types(schema, name, &mut wrong);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A hub on a temporary SQLite database, served on a free port.
struct Served {
    base: String,
    http: reqwest::Client,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Served {
    async fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
        let store = Arc::new(SqlStore::connect(&url).await.unwrap());
        let hub = Arc::new(Hub::new(store));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        tokio::spawn(hub::serve(hub, listener, cancel.clone()));
        Served {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            cancel,
            _dir: dir,
        }
    }

    /// Calls `method path` without credentials, with an empty JSON object as the body.
    async fn call(&self, method: &str, path: &str) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }
}

/// A documented path with values for its parameters.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some("brandCode") => "600123".to_owned(),
                Some(_) => "x".to_owned(),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed_and_no_other_method() {
    let hub = Served::start().await;
    let mut wrong = Vec::new();
    let mut documented: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (path, method, _, _) in operations() {
        documented.entry(path).or_default().insert(method);
    }
    for (path, methods) in &documented {
        let url = concrete(path);
        for method in HTTP_METHODS {
            // axum answers HEAD wherever it answers GET.
            if method == "head" && methods.contains("get") {
                continue;
            }
            let (status, body) = hub.call(method, &url).await;
            let fallback = status == 404 && body.contains("no such endpoint");
            if methods.contains(method) {
                if fallback || status == 405 {
                    wrong.push(format!(
                        "{} {path} is documented but answers {status}: {body}",
                        method.to_uppercase()
                    ));
                }
            } else if status != 405 {
                wrong.push(format!(
                    "{} {path} is not documented but answers {status} (not 405)",
                    method.to_uppercase()
                ));
            }
        }
    }
    // A path nobody documented is not routed.
    let (status, body) = hub.call("get", "/api/v1/nothing-here").await;
    assert!(
        status == 404 && body.contains("no such endpoint"),
        "{status} {body}"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    hub.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_page_is_served_from_the_binary() {
    let hub = Served::start().await;
    let (status, _) = hub.call("get", hub::DOCS_PATH).await;
    assert_eq!(status, 200, "{} redirects to the page", hub::DOCS_PATH);
    let (status, page) = hub.call("get", &format!("{}/", hub::DOCS_PATH)).await;
    assert_eq!(status, 200);
    assert!(page.contains("swagger-ui"), "{page}");
    let (status, init) = hub
        .call("get", &format!("{}/swagger-initializer.js", hub::DOCS_PATH))
        .await;
    assert_eq!(status, 200);
    assert!(init.contains("/api/openapi.json"), "{init}");
    assert!(init.contains("validatorUrl"), "no validator badge: {init}");
    // Everything the page loads is its own: no absolute URL in its markup.
    for attr in ["src=\"", "href=\""] {
        for (at, _) in page.match_indices(attr) {
            let target = &page[at + attr.len()..];
            assert!(
                !target.starts_with("http") && !target.starts_with("//"),
                "the page loads {}",
                &target[..target.find('"').unwrap_or(target.len())]
            );
        }
    }
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js"] {
        let (status, _) = hub
            .call("get", &format!("{}/{asset}", hub::DOCS_PATH))
            .await;
        assert_eq!(status, 200, "{asset}");
    }
    // The document it reads is this one.
    let (status, served) = hub.call("get", "/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(&serde_json::from_str::<Value>(&served).unwrap(), doc());
    hub.cancel.cancel();
}

/// The source files of the crate (`src/` and below).
fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text between the `(` at `open` and its matching `)`, strings skipped.
fn inside_parens(s: &str, open: usize) -> &str {
    let bytes = s.as_bytes();
    let (mut depth, mut i, mut in_string) = (0usize, open, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'(' if !in_string => depth += 1,
            b')' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return &s[open + 1..i];
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced parentheses after {:?}", &s[open..]);
}

/// The literal error codes of `ApiError::new(status, "code", …)`,
/// `ApiError::bad_request("code", …)` and `ApiError::unprocessable("code", …)` in the sources.
fn error_codes_in_source() -> BTreeSet<String> {
    let mut files = Vec::new();
    sources(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut files,
    );
    let mut codes = BTreeSet::new();
    for file in files {
        let src: String = std::fs::read_to_string(&file)
            .expect("readable")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for call in [
            "ApiError::new(",
            "ApiError::bad_request(",
            "ApiError::unprocessable(",
        ] {
            for (at, _) in src.match_indices(call) {
                let args = inside_parens(&src, at + call.len() - 1);
                let code = if call == "ApiError::new(" {
                    args.split_once(',').map(|(_, rest)| rest)
                } else {
                    Some(args)
                };
                // Codes passed through (`&e.code`: IYS's H-codes) are not literals.
                if let Some(lit) = code
                    .map(str::trim_start)
                    .and_then(|c| c.strip_prefix('"'))
                    .and_then(|c| c.split_once('"'))
                {
                    codes.insert(lit.0.to_owned());
                }
            }
        }
    }
    codes
}

#[test]
fn error_codes_match_the_source() {
    let listed: BTreeSet<String> = resolve(&doc()["components"]["schemas"]["ErrorCode"])["anyOf"]
        .as_array()
        .expect("ErrorCode is anyOf [the hub's codes, H-codes]")
        .iter()
        .filter_map(|s| s["enum"].as_array())
        .flatten()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    let used = error_codes_in_source();
    assert!(
        used.contains("not_found")
            && used.contains("invalid_json")
            && used.contains("rate_limited"),
        "{used:?}"
    );
    let undocumented: Vec<_> = used.difference(&listed).collect();
    let unused: Vec<_> = listed.difference(&used).collect();
    assert!(
        undocumented.is_empty() && unused.is_empty(),
        "ErrorCode (dto/error.rs): add {undocumented:?}, remove {unused:?}"
    );
}
