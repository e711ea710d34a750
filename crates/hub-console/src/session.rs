//! Signing in and out, the session cookie, and the checks every form goes through (CSRF token,
//! same origin).
//!
//! The cookie holds a random token; the database keeps only its SHA-256, the user and the CSRF
//! token that every form of the session must carry back. Cookies are `HttpOnly` and
//! `SameSite=Strict`, and `Secure` unless the hub is reached on a loopback address (where the
//! browser talks to it without a network in between).

use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hub::{HubDb, HubState};
use hub_store::{ConsoleRole, ConsoleUser};
use jiff::{SignedDuration, Timestamp};
use maud::html;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Digest;

use crate::error::{PageError, PageResult, maud_response};
use crate::i18n::{LANG_COOKIE, Lang, T};
use crate::layout;

pub const SESSION_COOKIE: &str = "iyshub_session";
/// How long a session lasts from sign-in.
pub const SESSION_LENGTH: SignedDuration = SignedDuration::from_hours(12);
/// Failed sign-ins in a row that lock an account…
pub const MAX_FAILED_LOGINS: i64 = 5;
/// …for this long.
pub const LOCK_LENGTH: SignedDuration = SignedDuration::from_mins(15);
/// Largest form the console reads.
const MAX_FORM: usize = 64 * 1024;

/// The value of cookie `name` in a request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn random_token() -> PageResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| PageError::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Whether the browser reached us on a loopback address (no `Secure` cookies needed there).
fn loopback(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if loopback(headers) { "" } else { "; Secure" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("iyshub_invalid=; Max-Age=0"))
}

/// A path on this site to go back to after signing in: never another site.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_owned(),
        _ => "/".to_owned(),
    }
}

/// A form may only come from a page of this hub: a cross-site `Origin` or `Sec-Fetch-Site`
/// is refused even before the CSRF token is compared.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s == "cross-site" || s == "same-site")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, h)| h.eq_ignore_ascii_case(host))
}

/// A signed-in user, read from the session cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: ConsoleUser,
    pub csrf: String,
    pub lang: Lang,
}

impl Session {
    /// How the user's actions appear in the audit log and the consent history.
    pub fn actor(&self) -> String {
        format!("console:{}", self.user.username)
    }

    pub fn require(&self, role: ConsoleRole, brand: hub_core::BrandCode) -> PageResult<()> {
        match self.user.role(brand) {
            None => Err(PageError::NotFound),
            Some(r) if r >= role => Ok(()),
            Some(_) => Err(PageError::Forbidden),
        }
    }
}

impl<S: HubDb> FromRequestParts<HubState<S>> for Session {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, hub: &HubState<S>) -> PageResult<Session> {
        let next = || PageError::SignIn {
            next: if parts.method == axum::http::Method::GET {
                parts
                    .uri
                    .path_and_query()
                    .map_or("/".to_owned(), |p| p.as_str().to_owned())
            } else {
                "/".to_owned()
            },
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(next());
        };
        match hub
            .store
            .console_session(&token_hash(&token), Timestamp::now())
            .await?
        {
            Some(s) => Ok(Session {
                user: s.user,
                csrf: s.csrf,
                lang: Lang::of(&parts.headers),
            }),
            None => Err(next()),
        }
    }
}

/// A form posted by a signed-in user from one of our pages: same origin, with the session's
/// CSRF token (field `csrf`), read into `F` (which ignores the `csrf` field).
#[derive(Debug)]
pub struct Posted<F> {
    pub session: Session,
    pub form: F,
}

impl<S: HubDb, F: DeserializeOwned> FromRequest<HubState<S>> for Posted<F> {
    type Rejection = PageError;

    async fn from_request(req: Request, hub: &HubState<S>) -> PageResult<Self> {
        let (mut parts, body) = req.into_parts();
        if !same_origin(&parts.headers) {
            return Err(PageError::Forbidden);
        }
        let session = Session::from_request_parts(&mut parts, hub).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM)
            .await
            .map_err(|_| PageError::BadInput(format!("a form is at most {MAX_FORM} bytes")))?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| PageError::BadInput(format!("the form is not readable: {e}")))?;
        let token = pairs
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !hub_secrets::same(token, &session.csrf) {
            return Err(PageError::Forbidden);
        }
        let form =
            serde_urlencoded::from_bytes(&bytes).map_err(|e| PageError::BadInput(e.to_string()))?;
        Ok(Posted { session, form })
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn login_page(lang: Lang, Query(q): Query<LoginQuery>) -> Response {
    login_form(lang, &local_path(q.next.as_deref()), None, StatusCode::OK)
}

fn login_form(lang: Lang, next: &str, problem: Option<String>, status: StatusCode) -> Response {
    let body = html! {
        main.narrow {
            h1 { (lang.t(T::Title)) }
            @if let Some(p) = problem { p.error role="alert" { (p) } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="username" { (lang.t(T::Username)) }
                input #username name="username" autocomplete="username" required autofocus;
                label for="password" { (lang.t(T::Password)) }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { (lang.t(T::SignIn)) }
            }
            p { (layout::lang_switch(lang, "/login")) }
        }
    };
    (
        status,
        maud_response(layout::bare(lang, lang.t(T::SignIn), body)),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

/// An argon2 hash of nothing anyone knows, verified for unknown user names so that a wrong name
/// takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        hub_secrets::hash_password(&uuid::Uuid::new_v4().to_string()).unwrap_or_default()
    })
}

/// The address a request came from, when the server knows it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

pub async fn login<S: HubDb>(
    State(hub): State<HubState<S>>,
    lang: Lang,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    axum::Form(f): axum::Form<LoginForm>,
) -> PageResult<Response> {
    if !same_origin(&headers) {
        return Err(PageError::Forbidden);
    }
    let next = local_path(f.next.as_deref());
    let now = Timestamp::now();
    // Too many failures from this address: refused before any password is checked.
    if let Some(wait) = ip.and_then(|ip| hub.guards.console_failures.blocked(&ip)) {
        let until = now
            .saturating_add(SignedDuration::from_secs(
                i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
            ))
            .unwrap_or(now);
        return Ok(refused(lang, &next, T::AddressBlocked, until));
    }
    let failed = || {
        if let Some(ip) = ip {
            hub.guards.console_failures.hit(&ip);
        }
    };
    let found = hub.store.console_login_user(f.username.trim()).await?;
    let Some((user, hash)) = found else {
        let (password, decoy) = (f.password, decoy_hash().to_owned());
        let _ = verify(password, decoy).await;
        failed();
        audit_login(&hub, &f.username, "console_login_failed").await;
        return Ok(login_form(
            lang,
            &next,
            Some(lang.t(T::BadLogin).into()),
            StatusCode::UNAUTHORIZED,
        ));
    };
    if let Some(until) = user.locked_until.filter(|t| *t > now) {
        audit_login(&hub, &user.username, "console_login_locked").await;
        return Ok(locked(lang, &next, until));
    }
    if user.disabled || !verify(f.password, hash).await {
        failed();
        let locked_until = hub
            .store
            .console_login_failed(user.id, now, MAX_FAILED_LOGINS, LOCK_LENGTH)
            .await?;
        audit_login(&hub, &user.username, "console_login_failed").await;
        if let Some(until) = locked_until {
            return Ok(locked(lang, &next, until));
        }
        return Ok(login_form(
            lang,
            &next,
            Some(lang.t(T::BadLogin).into()),
            StatusCode::UNAUTHORIZED,
        ));
    }
    let token = random_token()?;
    let csrf = random_token()?;
    let expires = now.saturating_add(SESSION_LENGTH).unwrap_or(now);
    hub.store
        .create_console_session(&token_hash(&token), user.id, &csrf, now, expires)
        .await?;
    audit_login(&hub, &user.username, "console_login").await;
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, &token, SESSION_LENGTH.as_secs()),
    );
    Ok(resp)
}

fn locked(lang: Lang, next: &str, until: Timestamp) -> Response {
    refused(lang, next, T::LockedUntil, until)
}

fn refused(lang: Lang, next: &str, why: T, until: Timestamp) -> Response {
    let msg = format!("{} {}", lang.t(why), layout::when(until));
    login_form(lang, next, Some(msg), StatusCode::TOO_MANY_REQUESTS)
}

/// Argon2 takes tens of milliseconds of CPU: off the async workers.
async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || hub_secrets::verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

async fn audit_login<S: HubDb>(hub: &HubState<S>, username: &str, action: &str) {
    let actor = format!("console:{username}");
    if let Err(e) = hub
        .store
        .audit(None, &actor, action, serde_json::json!({}))
        .await
    {
        tracing::warn!(error = %e, action, "could not record a sign-in in the audit log");
    }
}

#[derive(Debug, Deserialize)]
pub struct Empty {}

pub async fn logout<S: HubDb>(
    State(hub): State<HubState<S>>,
    headers: HeaderMap,
    posted: Posted<Empty>,
) -> PageResult<Response> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        hub.store
            .delete_console_session(&token_hash(&token))
            .await?;
    }
    audit_login(&hub, &posted.session.user.username, "console_logout").await;
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", 0),
    );
    Ok(resp)
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    next: Option<String>,
}

/// Keeps the chosen language in a cookie and goes back to the page it was chosen on.
pub async fn set_lang(
    axum::extract::Path(code): axum::extract::Path<String>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> PageResult<Response> {
    let lang = Lang::parse(&code).ok_or(PageError::NotFound)?;
    let mut resp = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, local_path(q.next.as_deref()))],
    )
        .into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&headers, LANG_COOKIE, lang.code(), 365 * 24 * 3600),
    );
    Ok(resp)
}

/// `/`: the brands, or the sign-in page.
pub async fn home(session: Session) -> Response {
    let _ = session;
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/brands")]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/brands/1")), "/brands/1");
        assert_eq!(local_path(Some("//evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cross_site_forms_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "hub.example:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://hub.example:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn secure_cookies_off_loopback() {
        let mut h = HeaderMap::new();
        for (host, secure) in [
            ("127.0.0.1:8080", false),
            ("localhost:8080", false),
            ("[::1]:8080", false),
            ("hub.example", true),
            ("10.0.0.5:8080", true),
        ] {
            h.insert(header::HOST, host.parse().unwrap());
            let c = set_cookie(&h, SESSION_COOKIE, "x", 10);
            assert_eq!(c.to_str().unwrap().ends_with("; Secure"), secure, "{host}");
        }
    }
}
