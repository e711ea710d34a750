//! The OpenAPI document (`src/openapi.json`, served at `/api/openapi.json`) matches the code:
//! every route of the router in `src/api.rs` is documented with exactly its methods and path
//! parameters, every documented path is routed, every `$ref` resolves, and the error codes listed
//! are the ones the hub answers with.
//!
//! The routes are read from the source of `api.rs` at test time, so a route added there without
//! documentation fails here.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

const DOC: &str = include_str!("../src/openapi.json");

/// The operation keys of an OpenAPI path item.
const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    serde_json::from_str(DOC).expect("src/openapi.json is valid JSON")
}

fn api_source() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api.rs"))
        .expect("src/api.rs is readable")
}

/// The source without `//` comment lines, so commented-out code and docs are not read as routes.
fn without_comment_lines(src: &str) -> String {
    src.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The end (exclusive) of the string literal that starts at `start` (a `"`).
fn string_end(s: &str, start: usize) -> usize {
    let bytes = s.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    panic!("unterminated string literal in {s:?}");
}

/// The text between the `(` at `open` and its matching `)`.
fn inside_parens(s: &str, open: usize) -> &str {
    assert_eq!(s.as_bytes()[open], b'(', "expected ( at {open}");
    let bytes = s.as_bytes();
    let (mut depth, mut i) = (0usize, open);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(s, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
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

/// Splits at commas outside brackets and strings.
fn split_args(s: &str) -> Vec<&str> {
    let bytes = s.as_bytes();
    let (mut parts, mut depth, mut from, mut i) = (Vec::new(), 0usize, 0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(s, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(s[from..i].trim());
                from = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = s[from..].trim();
    if !last.is_empty() {
        parts.push(last);
    }
    parts
}

/// The value of a plain string literal (`\"` and `\\` escapes only).
fn unquote(lit: &str) -> String {
    let inner = lit
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a string literal: {lit}"));
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// `let name = "…";` bindings of the file (the router's `let b = "/api/v1/brands/{brandCode}";`).
fn string_bindings(src: &str) -> BTreeMap<String, String> {
    src.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("let ")?;
            let (name, value) = rest.split_once('=')?;
            let value = value.trim().strip_suffix(';')?.trim();
            value
                .starts_with('"')
                .then(|| (name.trim().to_owned(), unquote(value)))
        })
        .collect()
}

/// Expands a `format!` string: `{{`/`}}` escapes and `{name}` from the bindings.
fn expand_format(fmt: &str, bindings: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let value = bindings.get(&name).unwrap_or_else(|| {
                    panic!("format!({fmt:?}) uses {{{name}}}, which is not a `let {name} = \"…\";` of api.rs")
                });
                out.push_str(value);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The path a `.route(` argument denotes: a literal, a binding, or `&format!("…")`.
fn route_path(expr: &str, bindings: &BTreeMap<String, String>) -> String {
    let expr = expr.trim().trim_start_matches('&').trim();
    if expr.starts_with('"') {
        return unquote(expr);
    }
    if let Some(at) = expr.strip_prefix("format!").map(|_| "format!".len()) {
        let args = split_args(inside_parens(expr, at));
        assert_eq!(
            args.len(),
            1,
            "route path {expr}: only format!(\"…\") with inline names is understood"
        );
        return expand_format(&unquote(args[0]), bindings);
    }
    bindings
        .get(expr)
        .cloned()
        .unwrap_or_else(|| panic!("route path {expr}: not a literal, a binding or a format!"))
}

/// The methods of a method router such as `post(create_brand).get(list_brands)`.
fn route_methods(expr: &str) -> BTreeSet<String> {
    let bytes = expr.as_bytes();
    let (mut methods, mut depth, mut i) = (BTreeSet::new(), 0usize, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(expr, i);
                continue;
            }
            b'(' => {
                if depth == 0 {
                    let head = &expr[..i];
                    let start = head
                        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .map_or(0, |p| p + 1);
                    let name = &head[start..];
                    assert!(
                        HTTP_METHODS.contains(&name),
                        "method router {expr:?}: {name:?} is not an HTTP method this test understands"
                    );
                    methods.insert(name.to_owned());
                }
                depth += 1;
            }
            b')' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    methods
}

/// Every `.route(path, methods)` of `api.rs`, paths expanded, with their methods.
fn routes() -> BTreeMap<String, BTreeSet<String>> {
    let src = without_comment_lines(&api_source());
    for unsupported in [".nest(", ".nest_service(", ".merge(", ".route_service("] {
        assert!(
            !src.contains(unsupported),
            "api.rs uses {unsupported}: teach tests/openapi.rs to read those routes"
        );
    }
    let bindings = string_bindings(&src);
    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (at, _) in src.match_indices(".route(") {
        let args = split_args(inside_parens(&src, at + ".route".len()));
        assert_eq!(
            args.len(),
            2,
            "a .route( call with {} arguments: {args:?}",
            args.len()
        );
        let path = route_path(args[0], &bindings);
        let methods = route_methods(args[1]);
        assert!(
            routes.insert(path.clone(), methods).is_none(),
            "{path} is routed twice"
        );
    }
    assert!(
        routes.contains_key("/healthz") && routes.contains_key("/api/v1/brands/{brandCode}"),
        "the route reader found too little in api.rs: {routes:?}"
    );
    routes
}

fn documented_methods(item: &Value) -> BTreeSet<String> {
    item.as_object()
        .expect("a path item is an object")
        .keys()
        .filter(|k| HTTP_METHODS.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// Follows a local `$ref` (`#/components/…`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local references are used: {r}"));
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{r} does not resolve"));
            resolve(doc, target)
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
fn route_reader_understands_the_router_syntax() {
    let bindings: BTreeMap<String, String> = [("b".to_owned(), "/x/{id}".to_owned())].into();
    assert_eq!(
        route_path(r#"&format!("{b}/items/{{item}}")"#, &bindings),
        "/x/{id}/items/{item}"
    );
    assert_eq!(route_path("b", &bindings), "/x/{id}");
    assert_eq!(route_path(r#""/healthz""#, &bindings), "/healthz");
    let methods: Vec<_> = route_methods("get(a).put(b)\n.delete(consents::c)")
        .into_iter()
        .collect();
    assert_eq!(methods, ["delete", "get", "put"]);
    assert_eq!(
        split_args(r#"&format!("{b}/c"), post(x, "a,b").get(y)"#),
        [r#"&format!("{b}/c")"#, r#"post(x, "a,b").get(y)"#]
    );
}

#[test]
fn every_route_is_documented_with_its_methods() {
    let doc = doc();
    let paths = doc["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    for (path, methods) in routes() {
        match paths.get(&path) {
            None => missing.push(format!("{path} ({methods:?}) is routed but not documented")),
            Some(item) => {
                let documented = documented_methods(item);
                for m in methods.difference(&documented) {
                    missing.push(format!(
                        "{} {path} is routed but not documented",
                        m.to_uppercase()
                    ));
                }
                for m in documented.difference(&methods) {
                    missing.push(format!(
                        "{} {path} is documented but not routed",
                        m.to_uppercase()
                    ));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "openapi.json and api.rs differ:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_documented_path_is_routed() {
    let doc = doc();
    let routes = routes();
    let extra: Vec<_> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .filter(|p| !routes.contains_key(*p))
        .cloned()
        .collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

#[test]
fn path_parameters_match_the_routes() {
    let doc = doc();
    let mut wrong = Vec::new();
    for (path, methods) in routes() {
        let Some(item) = doc["paths"].get(&path) else {
            continue; // reported by every_route_is_documented_with_its_methods
        };
        let wanted = path_params(&path);
        for m in methods {
            let Some(op) = item.get(&m) else { continue };
            let mut documented = BTreeSet::new();
            for p in [&item["parameters"], &op["parameters"]]
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
            {
                let p = resolve(&doc, p);
                if p["in"] == "path" {
                    assert_eq!(p["required"], true, "path parameter {p} must be required");
                    documented.insert(p["name"].as_str().expect("parameter name").to_owned());
                }
            }
            if documented != wanted {
                wrong.push(format!(
                    "{} {path}: path parameters {documented:?}, the route has {wanted:?}",
                    m.to_uppercase()
                ));
            }
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{} {path} documents no responses",
                m.to_uppercase()
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_reference_resolves_and_operation_ids_are_unique() {
    fn walk<'a>(v: &'a Value, refs: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    refs.push(r);
                }
                o.values().for_each(|x| walk(x, refs));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, refs)),
            _ => {}
        }
    }
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or(r);
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for m in documented_methods(item) {
            let id = item[&m]["operationId"]
                .as_str()
                .expect("every operation has an operationId");
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        }
    }
}

/// The literal error codes of `ApiError::new(status, "code", …)`, `ApiError::bad_request("code", …)`
/// and `ApiError::unprocessable("code", …)` in the crate's sources.
fn error_codes_in_source() -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut codes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let src = without_comment_lines(&std::fs::read_to_string(&path).expect("readable"));
        for call in [
            "ApiError::new(",
            "ApiError::bad_request(",
            "ApiError::unprocessable(",
        ] {
            for (at, _) in src.match_indices(call) {
                let args = split_args(inside_parens(&src, at + call.len() - 1));
                let code = if call == "ApiError::new(" {
                    args.get(1)
                } else {
                    args.first()
                };
                // Codes passed through (`&e.code`: IYS's H-codes) are not literals.
                if let Some(code) = code.filter(|c| c.starts_with('"')) {
                    codes.insert(unquote(code));
                }
            }
        }
    }
    codes
}

#[test]
fn error_codes_match_the_source() {
    let doc = doc();
    let listed: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["anyOf"]
        .as_array()
        .expect("ErrorCode is anyOf [the hub's codes, H-codes]")
        .iter()
        .filter_map(|s| s["enum"].as_array())
        .flatten()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    let used = error_codes_in_source();
    assert!(
        used.contains("not_found") && used.contains("invalid_json"),
        "{used:?}"
    );
    let undocumented: Vec<_> = used.difference(&listed).collect();
    let unused: Vec<_> = listed.difference(&used).collect();
    assert!(
        undocumented.is_empty() && unused.is_empty(),
        "ErrorCode in openapi.json: add {undocumented:?}, remove {unused:?}"
    );
}
