//! The audit log: who did what and when, per brand, or for the whole instance (global admins).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use hub::{HubDb, HubState};
use hub_store::{AuditEntry, ConsoleRole};
use maud::{Markup, html};
use serde::Deserialize;

use crate::brand_page;
use crate::error::{PageError, PageResult, maud_response};
use crate::i18n::{Lang, T};
use crate::layout::{self, Tab, when};
use crate::session::Session;

/// Entries per page.
const PAGE: u32 = 100;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
}

fn table(lang: Lang, path: &str, entries: &[AuditEntry]) -> Markup {
    let older = (entries.len() == PAGE as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    html! {
        div.scroll { table #audit {
            thead { tr {
                th { (lang.t(T::When)) } th { (lang.t(T::Brand)) } th { (lang.t(T::Actor)) }
                th { (lang.t(T::Action)) } th { (lang.t(T::Detail)) }
            } }
            tbody { @for e in entries { tr data-action=(e.action) {
                td { (when(e.at)) }
                td { @if let Some(b) = e.brand_code { (b) } }
                td { (e.actor) }
                td { code { (e.action) } }
                td { @if let Some(d) = &e.detail { code { (d) } } }
            } } }
        } }
        @if let Some(id) = older { p { a href=(format!("{path}?before={id}")) { "→ " (lang.t(T::Back)) } } }
    }
}

pub async fn brand_audit<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path(code): Path<String>,
    Query(q): Query<AuditQuery>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Read).await?;
    let entries = hub
        .store
        .audit_log(Some(brand.brand_code), q.before, PAGE)
        .await?;
    let path = format!("{}/audit", layout::brand_path(brand.brand_code));
    let lang = s.lang;
    let body = html! { h1 { (lang.t(T::Audit)) } (table(lang, &path, &entries)) };
    Ok(maud_response(layout::page(
        &s,
        &path,
        lang.t(T::Audit),
        Some((&brand, Tab::Audit)),
        body,
    )))
}

/// Every entry of the instance: sign-ins, provider actions and every brand's.
pub async fn instance_audit<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Query(q): Query<AuditQuery>,
) -> PageResult<Response> {
    if !s.user.global_admin {
        return Err(PageError::Forbidden);
    }
    let entries = hub.store.audit_log(None, q.before, PAGE).await?;
    let lang = s.lang;
    let body = html! { h1 { (lang.t(T::Audit)) } (table(lang, "/audit", &entries)) };
    Ok(maud_response(layout::page(
        &s,
        "/audit",
        lang.t(T::Audit),
        None,
        body,
    )))
}
