//! The web console, served by `iyshub serve` at `/`: server-rendered pages (maud) with htmx for
//! live parts, every asset from the binary, in Turkish and English.
//!
//! People sign in with a console user (argon2 password, session cookie); every form carries
//! the session's CSRF token. Users are global admins or have read, write or admin on chosen
//! brands; a brand they may not read answers 404, as the API does for another brand's key.
//! Pages read the store directly and write through the same store calls as the API, with the
//! user as the actor in the audit log and the consent history.

pub mod chart;
pub mod error;
pub mod i18n;
mod layout;
mod pages;
pub mod session;
pub mod users;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hub::{HubDb, HubState};
use hub_core::BrandCode;
use hub_store::{Brand, ConsoleRole};

use crate::error::{PageError, PageResult};
use crate::session::Session;

pub const CSS_PATH: &str = "/console/assets/console.css";
pub const HTMX_PATH: &str = "/console/assets/htmx-2.0.11.min.js";
const HTMX: &str = include_str!("../assets/htmx.min.js");

/// The console's routes, to be merged into the hub's router.
pub fn routes<S: HubDb>() -> Router<HubState<S>> {
    Router::new()
        .route("/", get(session::home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/lang/{code}", get(session::set_lang))
        .route(CSS_PATH, get(css))
        .route(HTMX_PATH, get(htmx))
        .route("/audit", get(pages::audit::instance_audit))
        .route("/users", get(pages::users::list).post(pages::users::create))
        .route("/users/{id}/password", post(pages::users::reset))
        .route("/brands", get(pages::brands::list))
        .route("/brands/{code}", get(pages::brands::dashboard))
        .route(
            "/brands/{code}/mode",
            get(pages::brands::mode_page).post(pages::brands::switch_mode),
        )
        .route("/brands/{code}/recipients", get(pages::recipients::lookup))
        .route(
            "/brands/{code}/recipients/hold",
            post(pages::recipients::set_hold),
        )
        .route(
            "/brands/{code}/quarantine/{id}/resolve",
            post(pages::brands::resolve_quarantine),
        )
        .route(
            "/brands/{code}/recipients/conflict",
            post(pages::recipients::acknowledge_conflict),
        )
        .route(
            "/brands/{code}/recipients/requeue",
            post(pages::recipients::requeue),
        )
        .route(
            "/brands/{code}/keys",
            get(pages::keys::list).post(pages::keys::create),
        )
        .route("/brands/{code}/keys/{id}/revoke", post(pages::keys::revoke))
        .route("/brands/{code}/keys/{id}/rotate", post(pages::keys::rotate))
        .route("/brands/{code}/audit", get(pages::audit::brand_audit))
        .route(
            "/brands/{code}/settings",
            get(pages::settings::page).post(pages::settings::save),
        )
        .route(
            "/brands/{code}/webhooks",
            get(pages::webhooks::list).post(pages::webhooks::create),
        )
        .route("/brands/{code}/webhooks/{id}", get(pages::webhooks::detail))
        .route(
            "/brands/{code}/webhooks/{id}/redeliver",
            post(pages::webhooks::redeliver),
        )
        .route(
            "/brands/{code}/segments",
            get(pages::segments::list).post(pages::segments::create),
        )
        .route(
            "/brands/{code}/segments/{id}/members.csv",
            get(pages::segments::export),
        )
        .route(
            "/brands/{code}/imports",
            get(pages::imports::list)
                .post(pages::imports::upload)
                .layer(
                    // The file's own limit is checked as it arrives; this lets the form through.
                    axum::extract::DefaultBodyLimit::disable(),
                ),
        )
        .route("/brands/{code}/imports/{id}", get(pages::imports::detail))
        .route(
            "/brands/{code}/imports/{id}/start",
            post(pages::imports::start),
        )
        .route(
            "/brands/{code}/imports/{id}/cancel",
            post(pages::imports::cancel),
        )
        .route(
            "/brands/{code}/imports/{id}/rejects.csv",
            get(pages::imports::rejects),
        )
}

/// Assets never change within a version: cached for a day.
const ASSET_CACHE: &str = "public, max-age=86400";

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        layout::CSS,
    )
}

async fn htmx() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        HTMX,
    )
}

/// The brand in the path, if the user has `role` on it (404 when they may not even read it).
async fn brand_page<S: HubDb>(
    hub: &HubState<S>,
    s: &Session,
    code: &str,
    role: ConsoleRole,
) -> PageResult<Brand> {
    let code = code
        .parse::<u64>()
        .ok()
        .filter(|c| *c > 0)
        .map(BrandCode)
        .ok_or(PageError::NotFound)?;
    s.require(role, code)?;
    hub.store.brand(code).await?.ok_or(PageError::NotFound)
}

/// Records a console user's action in the audit log; a failure to record is logged, the action
/// stands.
async fn audit<S: HubDb>(
    hub: &HubState<S>,
    s: &Session,
    brand: Option<BrandCode>,
    action: &str,
    detail: serde_json::Value,
) {
    if let Err(e) = hub.store.audit(brand, &s.actor(), action, detail).await {
        tracing::warn!(error = %e, action, "could not record a console action in the audit log");
    }
}
