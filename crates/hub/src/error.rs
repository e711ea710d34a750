//! The API's one error shape: `{"error":{"code","message","field","value"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// What is wrong: a stable code, a message, and the offending field and value when there are.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: an IYS H-code for IYS's rules, else a snake_case name.
    #[schema(value_type = crate::dto::error::ErrorCode)]
    pub code: String,
    /// What is wrong, in English; for IYS rules the English gloss followed by IYS's own Turkish
    /// message. Match on `code`, never on the text.
    pub message: String,
    /// The offending field (`recipient`, `consentDate`, `addresses[2]`, `iys.baseUrl`,
    /// `Idempotency-Key`…), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub field: Option<String>,
    /// The offending value as given (any JSON type), when useful.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Value)]
    pub value: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// Seconds for a `Retry-After` header (429); small, so the error stays small.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                message: message.into(),
                field: None,
                value: None,
            },
            retry_after: None,
        }
    }

    /// 429: over a rate limit; try again in `wait`.
    pub fn too_many(wait: std::time::Duration, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after = Some(u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX));
        e
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    pub fn value(mut self, value: impl Into<Value>) -> Self {
        self.body.value = Some(value.into());
        self
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an API key is required: Authorization: Bearer <key>",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// An internal failure: logged with its cause, answered without details.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the hub's log",
        )
    }

    /// An IYS rule broken by the input, with IYS's code.
    pub fn from_iys(e: &iys::IysError) -> ApiError {
        let gloss = e.hcode().map(|c| c.gloss_en()).unwrap_or_default();
        let mut err = ApiError::unprocessable(&e.code, format!("{gloss} (IYS: {})", e.message));
        err.body.field = e.location.as_ref().map(ToString::to_string);
        err.body.value = e.value.clone();
        err
    }
}

impl From<hub_store::StoreError> for ApiError {
    fn from(e: hub_store::StoreError) -> Self {
        match e {
            hub_store::StoreError::Conflict(what) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            hub_store::StoreError::NotFound(what) => {
                ApiError::not_found(format!("{what} not found"))
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(serde_json::json!({ "error": self.body }))).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        r
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
