//! Console users, for global admins: who may do what on which brand, new users (their password
//! shown once) and new passwords for those who lost theirs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use hub::{HubDb, HubState};
use hub_core::BrandCode;
use hub_store::{ConsoleRole, ConsoleUser};
use jiff::Timestamp;
use maud::html;
use serde::Deserialize;

use crate::error::{PageError, PageResult, maud_response};
use crate::i18n::T;
use crate::layout::{self, csrf, when_opt};
use crate::session::{Posted, Session};
use crate::users::UserError;

impl From<UserError> for PageError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Store(s) => s.into(),
            UserError::Hash(m) | UserError::Random(m) => PageError::Internal(m),
            other => PageError::BadInput(other.to_string()),
        }
    }
}

fn global_admin(s: &Session) -> PageResult<()> {
    if s.user.global_admin {
        Ok(())
    } else {
        Err(PageError::Forbidden)
    }
}

/// The page, with a password to show once when one was just made.
async fn render<S: HubDb>(
    hub: &HubState<S>,
    s: &Session,
    shown: Option<(&str, &str)>,
    status: StatusCode,
) -> PageResult<Response> {
    let lang = s.lang;
    let users = hub.store.console_users().await?;
    let brands = hub.store.brands().await?;
    let now = Timestamp::now();
    let roles = |u: &ConsoleUser| {
        if u.global_admin {
            lang.t(T::GlobalAdmin).to_owned()
        } else if u.grants.is_empty() {
            lang.t(T::None_).to_owned()
        } else {
            u.grants
                .iter()
                .map(|(b, r)| format!("{b}: {}", r.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let body = html! {
        h1 { (lang.t(T::Users)) }
        @if let Some((user, password)) = shown {
            section.card.notice #new-password role="status" {
                p { strong { (user) } " — " (lang.t(T::PasswordShownOnce)) }
                code.key { (password) }
            }
        }
        div.scroll { table #users {
            thead { tr { th { (lang.t(T::Username)) } th { (lang.t(T::BrandsRoles)) } th { (lang.t(T::LastLogin)) } th { (lang.t(T::State)) } th { (lang.t(T::Action)) } } }
            tbody { @for u in &users { tr data-user=(u.username) {
                td { (u.username) }
                td { (roles(u)) }
                td { (when_opt(lang, u.last_login)) }
                td { @if u.locked(now) { span.bad { (lang.t(T::Locked)) } } @else if u.disabled { span.bad { (lang.t(T::Disabled)) } } @else { span.ok { (lang.t(T::Enabled)) } } }
                td { form.inline method="post" action=(format!("/users/{}/password", u.id)) {
                    (csrf(s)) button.reset type="submit" { (lang.t(T::ResetPassword)) }
                } }
            } } }
        } }
        section.card {
            h2 { (lang.t(T::CreateUser)) }
            form #create-user method="post" action="/users" {
                (csrf(s))
                label for="new-username" { (lang.t(T::Username)) }
                input #new-username name="username" required maxlength="64" autocomplete="off";
                label { input type="checkbox" name="globalAdmin" value="on"; " " (lang.t(T::GlobalAdmin)) }
                label for="new-brand" { (lang.t(T::Brand)) }
                select #new-brand name="brand" {
                    option value="" { "—" }
                    @for b in &brands { option value=(b.brand_code) { (b.brand_code) " " (b.name) } }
                }
                label for="new-role" { (lang.t(T::Role)) }
                select #new-role name="role" {
                    @for r in ConsoleRole::ALL { option value=(r.as_str()) { (r.as_str()) } }
                }
                button type="submit" { (lang.t(T::Create)) }
            }
        }
    };
    let mut resp = maud_response(layout::page(s, "/users", lang.t(T::Users), None, body));
    *resp.status_mut() = status;
    Ok(resp)
}

pub async fn list<S: HubDb>(State(hub): State<HubState<S>>, s: Session) -> PageResult<Response> {
    global_admin(&s)?;
    render(&hub, &s, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserForm {
    username: String,
    global_admin: Option<String>,
    brand: Option<String>,
    role: Option<String>,
}

pub async fn create<S: HubDb>(
    State(hub): State<HubState<S>>,
    posted: Posted<UserForm>,
) -> PageResult<Response> {
    let s = &posted.session;
    global_admin(s)?;
    let f = posted.form;
    let global = f.global_admin.is_some();
    let mut grants = Vec::new();
    if let Some(b) = f.brand.as_deref().filter(|b| !b.is_empty()) {
        let code = b
            .parse::<u64>()
            .ok()
            .map(BrandCode)
            .ok_or_else(|| PageError::BadInput(format!("brand: {b:?} is not a brand code")))?;
        if hub.store.brand(code).await?.is_none() {
            return Err(PageError::BadInput(format!("brand: {code} does not exist")));
        }
        let role: ConsoleRole = f
            .role
            .as_deref()
            .unwrap_or("read")
            .parse()
            .map_err(|e: String| PageError::BadInput(format!("role: {e}")))?;
        grants.push((code, role));
    }
    if !global && grants.is_empty() {
        return Err(PageError::BadInput(
            "brand: choose a brand, or make the user a global admin".into(),
        ));
    }
    let username = f.username.trim().to_owned();
    let (user, password) =
        crate::users::create_by(&*hub.store, &s.actor(), &username, None, global, grants).await?;
    let password = password.unwrap_or_default();
    render(
        &hub,
        s,
        Some((&user.username, &password)),
        StatusCode::CREATED,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct NoFields {}

pub async fn reset<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path(id): Path<i64>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let s = &posted.session;
    global_admin(s)?;
    let user = hub
        .store
        .console_user(id)
        .await?
        .ok_or(PageError::NotFound)?;
    let password = crate::users::reset_password_by(&*hub.store, &s.actor(), &user.username, None)
        .await?
        .ok_or(PageError::NotFound)?
        .unwrap_or_default();
    render(&hub, s, Some((&user.username, &password)), StatusCode::OK).await
}
