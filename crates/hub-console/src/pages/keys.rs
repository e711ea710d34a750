//! A brand's API keys: create scoped keys (shown once), revoke, rotate. Brand admins only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use hub::{HubDb, HubState};
use hub_store::{ApiKey, Brand, ConsoleRole, NewApiKey, Scope};
use jiff::Timestamp;
use maud::html;
use serde::Deserialize;

use crate::error::{PageError, PageResult, maud_response};
use crate::i18n::T;
use crate::layout::{self, Tab, csrf, when, when_opt};
use crate::session::{Posted, Session};
use crate::{audit, brand_page};

async fn brand_keys<S: HubDb>(hub: &HubState<S>, brand: &Brand) -> PageResult<Vec<ApiKey>> {
    Ok(hub
        .store
        .api_keys()
        .await?
        .into_iter()
        .filter(|k| k.brand_code == Some(brand.brand_code))
        .collect())
}

/// The page, with a new secret to show once when one was just made.
async fn render<S: HubDb>(
    hub: &HubState<S>,
    s: &Session,
    brand: &Brand,
    created: Option<(&ApiKey, &str)>,
) -> PageResult<Response> {
    let lang = s.lang;
    let keys = brand_keys(hub, brand).await?;
    let base = format!("{}/keys", layout::brand_path(brand.brand_code));
    let now = Timestamp::now();
    let body = html! {
        h1 { (lang.t(T::ApiKeys)) }
        @if let Some((k, secret)) = created {
            section.card.notice #new-key role="status" {
                p { strong { (k.name) } " — " (lang.t(T::KeyShownOnce)) }
                code.key { (secret) }
            }
        }
        div.scroll { table #keys {
            thead { tr {
                th { (lang.t(T::Name)) } th { (lang.t(T::Scopes)) } th { (lang.t(T::Created)) }
                th { (lang.t(T::LastUsed)) } th { (lang.t(T::State)) } th { (lang.t(T::Action)) }
            } }
            tbody { @for k in &keys {
                tr data-key=(k.id) data-name=(k.name) {
                    td { (k.name) }
                    td { (k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                    td { (when(k.created_at)) }
                    td { (when_opt(lang, k.last_used_at)) }
                    td.state { @if k.usable(now) { span.ok { (lang.t(T::Enabled)) } } @else { span.bad { (lang.t(T::Revoked)) } } }
                    td { @if k.usable(now) {
                        form.inline method="post" action=(format!("{base}/{}/rotate", k.id)) {
                            (csrf(s)) button.rotate type="submit" { (lang.t(T::Rotate)) }
                        }
                        " "
                        form.inline method="post" action=(format!("{base}/{}/revoke", k.id)) {
                            (csrf(s)) button.danger.revoke type="submit" { (lang.t(T::Revoke)) }
                        }
                    } }
                }
            } }
        } }
        section.card {
            h2 { (lang.t(T::CreateKey)) }
            form #create-key method="post" action=(base) {
                (csrf(s))
                label for="key-name" { (lang.t(T::Name)) }
                input #key-name name="name" required maxlength="200";
                fieldset {
                    legend { (lang.t(T::Scopes)) }
                    @for scope in [Scope::Read, Scope::Write, Scope::Admin] {
                        label { input type="checkbox" name=(scope.as_str()) value="on" checked[scope == Scope::Read]; " " (scope.as_str()) }
                    }
                }
                button type="submit" { (lang.t(T::Create)) }
            }
        }
    };
    Ok(maud_response(layout::page(
        s,
        &base,
        lang.t(T::ApiKeys),
        Some((brand, Tab::Keys)),
        body,
    )))
}

pub async fn list<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path(code): Path<String>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Admin).await?;
    render(&hub, &s, &brand, None).await
}

#[derive(Debug, Deserialize)]
pub struct KeyForm {
    name: String,
    read: Option<String>,
    write: Option<String>,
    admin: Option<String>,
}

pub async fn create<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path(code): Path<String>,
    posted: Posted<KeyForm>,
) -> PageResult<Response> {
    let s = &posted.session;
    let f = &posted.form;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Admin).await?;
    let name = f.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(PageError::BadInput(format!(
            "name: {name:?} must be 1–200 characters"
        )));
    }
    let scopes: Vec<Scope> = [
        (Scope::Read, &f.read),
        (Scope::Write, &f.write),
        (Scope::Admin, &f.admin),
    ]
    .into_iter()
    .filter(|(_, on)| on.is_some())
    .map(|(s, _)| s)
    .collect();
    if scopes.is_empty() {
        return Err(PageError::BadInput(
            "scopes: give at least one scope: read, write, admin".into(),
        ));
    }
    let secret = hub::new_key();
    let stored = hub
        .store
        .create_api_key(NewApiKey {
            name: name.to_owned(),
            hash: hub::hash_key(&secret),
            brand_code: Some(brand.brand_code),
            scopes,
            expires_at: None,
        })
        .await?;
    audit(
        &hub,
        s,
        Some(brand.brand_code),
        "api_key_created",
        serde_json::json!({"id": stored.id, "name": stored.name, "scopes": stored.scopes}),
    )
    .await;
    let mut resp = render(&hub, s, &brand, Some((&stored, &secret))).await?;
    *resp.status_mut() = StatusCode::CREATED;
    Ok(resp)
}

/// The brand's key `id`; another brand's or a provider key is not found.
async fn brand_key<S: HubDb>(hub: &HubState<S>, brand: &Brand, id: &str) -> PageResult<ApiKey> {
    hub.store
        .api_key(id)
        .await?
        .filter(|k| k.brand_code == Some(brand.brand_code))
        .ok_or(PageError::NotFound)
}

#[derive(Debug, Deserialize)]
pub struct NoFields {}

pub async fn revoke<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path((code, id)): Path<(String, String)>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let s = &posted.session;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Admin).await?;
    let key = brand_key(&hub, &brand, &id).await?;
    hub.store.revoke_api_key(&key.id, Timestamp::now()).await?;
    hub.caches.api_keys.clear();
    audit(
        &hub,
        s,
        Some(brand.brand_code),
        "api_key_revoked",
        serde_json::json!({"id": key.id, "name": key.name}),
    )
    .await;
    render(&hub, s, &brand, None).await
}

pub async fn rotate<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path((code, id)): Path<(String, String)>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let s = &posted.session;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Admin).await?;
    let key = brand_key(&hub, &brand, &id).await?;
    if !key.usable(Timestamp::now()) {
        return Err(PageError::BadInput(
            "a revoked or expired key cannot be rotated; create a new one".into(),
        ));
    }
    let secret = hub::new_key();
    let stored = hub
        .store
        .rotate_api_key(&key.id, &hub::hash_key(&secret))
        .await?
        .ok_or(PageError::NotFound)?;
    hub.caches.api_keys.clear();
    audit(
        &hub,
        s,
        Some(brand.brand_code),
        "api_key_rotated",
        serde_json::json!({"id": key.id, "name": key.name}),
    )
    .await;
    render(&hub, s, &brand, Some((&stored, &secret))).await
}
