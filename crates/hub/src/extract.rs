//! Reading requests: path segments, JSON bodies and query strings, each refused in the API's
//! error shape (`{"error":{"code","message","field","value"}}`).
//!
//! A body is read in three steps: its bytes (over [`MAX_BODY`] → 413 `body_too_large`), JSON
//! (not JSON → 400 `invalid_json`; text with NUL → 422 `invalid_value` naming the JSON path),
//! then its DTO through `serde_path_to_error`, so a body that does not fit names the field. How a
//! misfit is answered is the DTO's choice ([`RequestBody::refuse`]); by default 422
//! `invalid_body` with the field and, for a wrong value, the value.

use std::collections::HashMap;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::MAX_BODY;
use crate::error::{ApiError, ApiResult};

/// Path parameters, with rejections in the API's error shape: a segment that is not UTF-8 or
/// holds a NUL character → 400 `invalid_path`.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.path().to_ascii_lowercase().contains("%00") {
            return Err(ApiError::bad_request(
                "invalid_path",
                "the path must not contain the NUL character (%00)",
            ));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::new(e.status(), "invalid_path", e.body_text()))
    }
}

/// The body as JSON, with errors in the API's shape (oversized → 413, unreadable → 400).
pub fn json_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    parse_json(&body_bytes(body)?)
}

/// The body's bytes; oversized → 413, unreadable → 400.
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is over {MAX_BODY} bytes"),
            )
        } else {
            ApiError::bad_request("invalid_body", e.body_text())
        }
    })
}

/// Bytes as JSON; not JSON → 400, text with NUL characters (which PostgreSQL cannot store) → 422.
pub fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    // JSON cannot hold a raw NUL in a string, only the escape `\u0000`: a body without one
    // needs no walk (the walk builds a path for every value; it showed in batch profiles).
    if !bytes
        .split(|&b| b == b'\\')
        .skip(1)
        .any(|after| after.starts_with(b"u0000"))
    {
        return Ok(v);
    }
    if let Some(at) = nul_at(&v, "") {
        let e = ApiError::unprocessable(
            "invalid_value",
            "text must not contain the NUL character (U+0000)",
        );
        return Err(if at.is_empty() { e } else { e.field(at) });
    }
    Ok(v)
}

/// The path (`changes[2].actor`) of the first string or key with a NUL character.
fn nul_at(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::String(s) => s.contains('\0').then(|| path.to_owned()),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_at(x, &format!("{path}[{i}]"))),
        Value::Object(o) => o.iter().find_map(|(k, x)| {
            let p = join(path, k);
            if k.contains('\0') {
                Some(p)
            } else {
                nul_at(x, &p)
            }
        }),
        _ => None,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Why a JSON value does not fit a DTO, as serde said it.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyError {
    pub kind: Misfit,
    /// The JSON path of the offending field (`iys.baseUrl`, `addresses[2]`); empty for the whole
    /// body.
    pub field: String,
    /// serde's message, without the path.
    pub message: String,
    /// The offending value as given, for a wrong type or value.
    pub value: Option<Value>,
}

/// The kinds of misfit a DTO's refusal may tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfit {
    /// A field the DTO does not have (`deny_unknown_fields`).
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A value of the wrong JSON type.
    WrongType,
    /// A value of the right type that is not allowed (an unknown enum value, a negative number).
    WrongValue,
}

impl BodyError {
    /// The default refusal: 422 `invalid_body`, naming the field and the value.
    pub fn invalid_body(self) -> ApiError {
        let mut e = ApiError::unprocessable("invalid_body", self.message);
        if !self.field.is_empty() {
            e = e.field(self.field);
        }
        if let Some(v) = self.value {
            e = e.value(v);
        }
        e
    }

    /// The last segment of the field's path (`baseUrl` of `iys.baseUrl`).
    pub fn name(&self) -> &str {
        self.field.rsplit('.').next().unwrap_or_default()
    }
}

/// A request body DTO: how a body that does not fit it is refused.
pub trait RequestBody: DeserializeOwned {
    fn refuse(e: BodyError) -> ApiError {
        e.invalid_body()
    }
}

/// `v` as `T`, or `T`'s refusal naming the field. Every DTO is a JSON object (serde would
/// otherwise also read a struct from an array of its fields in order).
pub fn typed<T: RequestBody>(v: &Value) -> ApiResult<T> {
    if !v.is_object() {
        return Err(T::refuse(BodyError {
            kind: Misfit::WrongType,
            field: String::new(),
            message: "the body must be a JSON object".into(),
            value: None,
        }));
    }
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| T::refuse(misfit(v, &e)))
}

/// What serde's error says, with the field's path and the offending value.
fn misfit(v: &Value, e: &serde_path_to_error::Error<serde_json::Error>) -> BodyError {
    let message = e.inner().to_string();
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    // serde's own wording (serde::de::Error's provided messages).
    let (kind, field) = if let Some(name) = quoted("missing field `") {
        (Misfit::MissingField, join(&path, &name))
    } else if message.starts_with("unknown field `") {
        (Misfit::UnknownField, path)
    } else if message.starts_with("invalid type: ") {
        (Misfit::WrongType, path)
    } else {
        (Misfit::WrongValue, path)
    };
    let value = match kind {
        Misfit::WrongType | Misfit::WrongValue => at_path(v, e.path()).cloned(),
        _ => None,
    };
    BodyError {
        kind,
        field,
        message,
        value,
    }
}

/// The value at a serde path, if it names one.
fn at_path<'a>(v: &'a Value, path: &serde_path_to_error::Path) -> Option<&'a Value> {
    let mut at = v;
    for segment in path {
        at = match segment {
            serde_path_to_error::Segment::Seq { index } => at.get(index)?,
            serde_path_to_error::Segment::Map { key } => at.get(key)?,
            _ => return None,
        };
    }
    Some(at)
}

/// A JSON body, read by the handler as its DTO `T` with [`JsonBody::parse`] (see the module's
/// documentation) once it has checked the caller, so a caller without the right is refused
/// before its body is looked at.
#[derive(Debug)]
pub struct JsonBody<T> {
    body: Result<Bytes, BytesRejection>,
    _dto: PhantomData<fn() -> T>,
}

impl<T: RequestBody> JsonBody<T> {
    /// The body as `T`, or the error answer.
    pub fn parse(self) -> ApiResult<T> {
        typed(&self.value()?)
    }
}

impl<T> JsonBody<T> {
    /// The body as JSON, for bodies read item by item.
    pub fn value(self) -> ApiResult<Value> {
        parse_json(&self.bytes()?)
    }

    /// The body's bytes (oversized → 413).
    pub fn bytes(self) -> ApiResult<Bytes> {
        body_bytes(self.body)
    }
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(JsonBody {
            body: Bytes::from_request(req, state).await,
            _dto: PhantomData,
        })
    }
}

/// A query string, read by the handler as its DTO `T` with [`Query::parse`] once it has checked
/// the caller: each parameter once (the last one given wins), every value a string, which `T`
/// checks. A parameter `T` does not have is refused as `T` says.
#[derive(Debug)]
pub struct Query<T> {
    query: Option<String>,
    _dto: PhantomData<fn() -> T>,
}

impl<T: RequestBody> Query<T> {
    pub fn parse(self) -> ApiResult<T> {
        let pairs: HashMap<String, String> =
            serde_urlencoded::from_str(self.query.as_deref().unwrap_or_default()).map_err(|e| {
                ApiError::bad_request("invalid_value", format!("unreadable query string: {e}"))
            })?;
        let v = Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        );
        typed(&v)
    }
}

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Query {
            query: parts.uri.query().map(str::to_owned),
            _dto: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        brand_code: u64,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        base_url: String,
    }

    impl RequestBody for Outer {}

    fn refused(v: Value) -> BodyError {
        let e = serde_path_to_error::deserialize::<_, Outer>(&v).expect_err("refused");
        misfit(&v, &e)
    }

    #[test]
    fn misfits_name_the_field_and_the_value() {
        let e = refused(json!({"brandCode": 1, "foo": 2}));
        assert_eq!(
            (e.kind, e.field.as_str(), e.value),
            (Misfit::UnknownField, "foo", None)
        );
        let e = refused(json!({"brandCode": 1, "inner": {"bar": 2}}));
        assert_eq!(
            (e.kind, e.field.as_str(), e.name()),
            (Misfit::UnknownField, "inner.bar", "bar")
        );
        let e = refused(json!({}));
        assert_eq!(
            (e.kind, e.field.as_str()),
            (Misfit::MissingField, "brandCode")
        );
        let e = refused(json!({"brandCode": 1, "inner": {}}));
        assert_eq!(
            (e.kind, e.field.as_str()),
            (Misfit::MissingField, "inner.baseUrl")
        );
        let e = refused(json!({"brandCode": "a"}));
        assert_eq!(
            (e.kind, e.field.as_str(), e.value),
            (Misfit::WrongType, "brandCode", Some(json!("a")))
        );
        let e = refused(json!({"brandCode": -1}));
        assert_eq!((e.kind, e.value), (Misfit::WrongValue, Some(json!(-1))));
        let e = refused(json!({"brandCode": 1, "list": ["a", 5]}));
        assert_eq!(
            (e.kind, e.field.as_str(), e.value),
            (Misfit::WrongType, "list[1]", Some(json!(5)))
        );
        let e = refused(json!([]));
        assert_eq!(e.field, "");
        assert!(!e.message.is_empty());
        let api = refused(json!({"brandCode": true})).invalid_body();
        assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (api.body.code.as_str(), api.body.field.as_deref()),
            ("invalid_body", Some("brandCode"))
        );
    }

    #[test]
    fn nul_characters_are_found_with_their_path() {
        assert_eq!(
            nul_at(&json!({"a": [1, {"b": "x\u{0}"}]}), ""),
            Some("a[1].b".into())
        );
        assert_eq!(nul_at(&json!({"k\u{0}": 1}), ""), Some("k\u{0}".into()));
        assert_eq!(nul_at(&json!("\u{0}"), ""), Some(String::new()));
        assert_eq!(nul_at(&json!({"a": "b"}), ""), None);
    }

    #[test]
    fn bodies_are_walked_for_nul_only_when_they_escape_one() {
        let refused = |body: &str| parse_json(body.as_bytes()).err().map(|e| e.body.field);
        assert_eq!(
            refused(r#"{"changes": [{"a": "b"}, {"actor": "x\u0000"}]}"#),
            Some(Some("changes[1].actor".into()))
        );
        assert_eq!(refused(r#"{"k\u0000": 1}"#), Some(Some("k\u{0}".into())));
        // An escaped backslash followed by "u0000" is six characters of text, not a NUL.
        assert_eq!(refused(r#"{"a": "\\u0000"}"#), None);
        assert_eq!(refused(r#"{"a": "\u0001\n"}"#), None);
    }
}
