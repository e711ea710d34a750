//! A brand's settings: its name and IYS code (brand admins), and its IYS connection (global
//! admins only, as with the API's provider key). Passwords are write-only: the page says whether
//! one is set, never what it is.

use axum::extract::{Path, State};
use axum::response::Response;
use hub::dto::brands::IysConnectionInput;
use hub::{HubDb, HubState};
use hub_store::{Brand, ConsoleRole};
use maud::{Markup, html};
use serde::Deserialize;

use crate::brand_page;
use crate::error::{PageError, PageResult, maud_response};
use crate::i18n::{Lang, T};
use crate::layout::{self, Tab, csrf};
use crate::session::{Posted, Session};

fn secret_field(lang: Lang, id: &str, label: T, set: bool) -> Markup {
    html! {
        label for=(id) { (lang.t(label)) " " span.muted { "(" (lang.t(if set { T::SecretIsSet } else { T::SecretNotSet })) ")" } }
        input id=(id) name=(id) type="password" autocomplete="new-password" maxlength="256";
        @if set {
            label { input type="checkbox" name=(format!("{id}Clear")) value="on"; " " (lang.t(T::ClearSecret)) }
        }
    }
}

fn render<S: HubDb>(hub: &HubState<S>, s: &Session, brand: &Brand, saved: bool) -> Response {
    let lang = s.lang;
    let path = format!("{}/settings", layout::brand_path(brand.brand_code));
    let c = &brand.iys;
    let current_url = c.base_url.clone().unwrap_or_default();
    let body = html! {
        h1 { (lang.t(T::Settings)) }
        @if saved { p.notice role="status" { (lang.t(T::Saved)) } }
        form.card #settings method="post" action=(path) {
            (csrf(s))
            label for="name" { (lang.t(T::Name)) }
            input #name name="name" value=(brand.name) required maxlength="200";
            label for="iysCode" { (lang.t(T::IysCode)) }
            input #iysCode name="iysCode" value=(brand.iys_code) inputmode="numeric" required;
            h2 { (lang.t(T::Connection)) }
            @if s.user.global_admin {
                label for="baseUrl" { (lang.t(T::BaseUrl)) }
                select #baseUrl name="baseUrl" {
                    option value="" selected[current_url.is_empty()] { "— " (lang.t(T::InstanceDefault)) }
                    @for u in &hub.iys.allowed_urls {
                        option value=(u) selected[*u == current_url] { (u) }
                    }
                }
                label for="username" { (lang.t(T::IysUser)) }
                input #username name="username" value=(c.username.clone().unwrap_or_default()) maxlength="256" autocomplete="off";
                (secret_field(lang, "password", T::IysPassword, c.password_sealed.is_some()))
                label for="pushUsername" { (lang.t(T::PushUser)) }
                input #pushUsername name="pushUsername" value=(c.push_username.clone().unwrap_or_default()) maxlength="256" autocomplete="off";
                (secret_field(lang, "pushPassword", T::PushPassword, c.push_password_hash.is_some()))
            } @else {
                p { (lang.t(T::BaseUrl)) ": " (if current_url.is_empty() { lang.t(T::InstanceDefault) } else { current_url.as_str() }) }
                p { (lang.t(T::IysUser)) ": " (c.username.as_deref().unwrap_or("-")) }
                p.muted { (lang.t(T::OnlyProvider)) }
            }
            button type="submit" { (lang.t(T::Save)) }
        }
    };
    maud_response(layout::page(
        s,
        &path,
        lang.t(T::Settings),
        Some((brand, Tab::Settings)),
        body,
    ))
}

pub async fn page<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path(code): Path<String>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Admin).await?;
    Ok(render(&hub, &s, &brand, false))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsForm {
    name: String,
    iys_code: String,
    base_url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_clear: Option<String>,
    push_username: Option<String>,
    push_password: Option<String>,
    push_password_clear: Option<String>,
}

/// A password field: empty keeps the stored one, the checkbox removes it.
fn secret(value: Option<String>, clear: Option<String>) -> Option<String> {
    if clear.is_some() {
        return Some(String::new());
    }
    value.filter(|v| !v.is_empty())
}

pub async fn save<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path(code): Path<String>,
    posted: Posted<SettingsForm>,
) -> PageResult<Response> {
    let s = &posted.session;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Admin).await?;
    let f = posted.form;
    let iys_code = f
        .iys_code
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| {
            PageError::BadInput(format!(
                "iysCode: {:?} is not a positive whole number",
                f.iys_code
            ))
        })?;
    // Only global admins send the connection's fields; from anyone else they are refused.
    let connection = [&f.base_url, &f.username, &f.push_username]
        .iter()
        .any(|v| v.is_some());
    let iys = match (connection, s.user.global_admin) {
        (false, _) => None,
        (true, false) => return Err(PageError::Forbidden),
        (true, true) => Some(IysConnectionInput {
            base_url: f.base_url,
            username: f.username.map(|u| u.trim().to_owned()),
            password: secret(f.password, f.password_clear),
            push_username: f.push_username.map(|u| u.trim().to_owned()),
            push_password: secret(f.push_password, f.push_password_clear),
        }),
    };
    let name = (f.name != brand.name).then_some(f.name);
    let iys_code = (iys_code != brand.iys_code).then_some(iys_code);
    // The IYS code is the provider's, as the connection is.
    if iys_code.is_some() && !s.user.global_admin {
        return Err(PageError::Forbidden);
    }
    let updated = hub::update_brand_settings(&hub, &brand, name, iys_code, iys, &s.actor()).await?;
    Ok(render(&hub, s, &updated, true))
}
