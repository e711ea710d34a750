//! `POST /oauth2/token`: password and refresh-token grants, in OAuth's error shape.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use iys::OAuthError;
use iys::wire::{INVALID_CREDENTIALS, TokenRequest, TokenRequestFields};

use super::{ApiResult, SimState, ok};

pub(super) async fn token(
    State(sim): SimState,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    // The token endpoint answers in OAuth's shape only: a body it cannot read (empty, not JSON,
    // fields of the wrong type) names no grant type.
    let unreadable = || OAuthError::invalid_request("Giriş yöntemi belirtilmemiş.");
    let fields: TokenRequestFields = if is_form {
        serde_urlencoded::from_bytes(&body).map_err(|_| unreadable())?
    } else {
        serde_json::from_slice(&body).map_err(|_| unreadable())?
    };
    let cfg = sim.config();
    let now = sim.now();
    let username = match fields.parse()? {
        TokenRequest::Password { username, password } => {
            let known = cfg
                .users
                .iter()
                .chain(&cfg.integrator.users)
                .any(|u| u.username == username && u.password == password);
            if !known {
                return Err(OAuthError::invalid_request(INVALID_CREDENTIALS).into());
            }
            username
        }
        TokenRequest::RefreshToken { refresh_token } => sim
            .auth
            .lock()
            .expect("auth lock")
            .take_refresh(&refresh_token, now)
            .ok_or_else(|| OAuthError::invalid_grant("Geçersiz yenileme jetonu."))?,
    };
    let t = &cfg.timing;
    let tokens = sim.auth.lock().expect("auth lock").issue(
        &username,
        now,
        t.access_token_ttl_s as i64,
        t.refresh_token_ttl_s as i64,
    );
    ok(StatusCode::OK, tokens)
}
