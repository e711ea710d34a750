//! What a page answers when it cannot show what was asked: a sign-in redirect, or a short page
//! in both languages with the right status.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::i18n::{Lang, T};

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No session: to the sign-in page, then back to this path.
    #[error("sign in first")]
    SignIn { next: String },
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    /// A form field broke a rule: the message names the field, the value and the rule.
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Internal(String),
}

pub type PageResult<T> = Result<T, PageError>;

impl From<hub_store::StoreError> for PageError {
    fn from(e: hub_store::StoreError) -> Self {
        match e {
            hub_store::StoreError::NotFound(_) => PageError::NotFound,
            hub_store::StoreError::Conflict(what) => {
                PageError::BadInput(format!("{what} already exists"))
            }
            other => PageError::Internal(other.to_string()),
        }
    }
}

/// An error of the API's shared service functions: its message names the field and the rule.
impl From<hub::error::ApiError> for PageError {
    fn from(e: hub::error::ApiError) -> Self {
        match e.status.as_u16() {
            403 => PageError::Forbidden,
            404 => PageError::NotFound,
            400..=499 => PageError::BadInput(match &e.body.field {
                Some(f) => format!("{f}: {}", e.body.message),
                None => e.body.message,
            }),
            _ => PageError::Internal(e.body.message),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, text) = match &self {
            PageError::SignIn { next } => {
                let to = format!("/login?next={}", encode(next));
                return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
            }
            PageError::Forbidden => (StatusCode::FORBIDDEN, T::Forbidden),
            PageError::NotFound => (StatusCode::NOT_FOUND, T::NotFound),
            PageError::BadInput(_) => (StatusCode::UNPROCESSABLE_ENTITY, T::BadInput),
            PageError::Internal(e) => {
                tracing::error!(error = %e, "console page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, T::ServerError)
            }
        };
        // Which language the visitor reads is not known here: both, Turkish first.
        let detail = match &self {
            PageError::BadInput(m) => Some(m.clone()),
            _ => None,
        };
        let page = html! {
            (maud::DOCTYPE)
            html lang="tr" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (status.as_u16()) " — iyshub" }
                    link rel="stylesheet" href=(crate::CSS_PATH);
                }
                body {
                    main.narrow {
                        h1 { (status.as_u16()) }
                        p { (text.get(Lang::Tr)) }
                        p lang="en" { (text.get(Lang::En)) }
                        @if let Some(d) = detail { p.error { (d) } }
                        p { a href="/" { (T::Back.get(Lang::Tr)) " / " (T::Back.get(Lang::En)) } }
                    }
                }
            }
        };
        (status, maud_response(page)).into_response()
    }
}

/// A page as an HTML answer.
pub fn maud_response(page: maud::Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

/// Percent-encodes `s` for a query string.
pub fn encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|q| q.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}
