//! A brand's saved segments, each with its member count on request.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use hub::HubState;
use hub_core::CategoryKind;
use hub_store::{ConsoleRole, Store};
use maud::html;
use serde::Deserialize;

use crate::brand_page;
use crate::error::{PageResult, maud_response};
use crate::i18n::T;
use crate::layout::{self, Tab, when};
use crate::session::Session;

#[derive(Debug, Deserialize)]
pub struct SegmentsQuery {
    /// A segment whose members to count now.
    count: Option<i64>,
}

pub async fn list(
    State(hub): State<HubState>,
    s: Session,
    Path(code): Path<String>,
    Query(q): Query<SegmentsQuery>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Read).await?;
    let lang = s.lang;
    let segments = hub.store.segments(brand.brand_code).await?;
    let path = format!("{}/segments", layout::brand_path(brand.brand_code));
    let mut counted = None;
    if let Some(id) = q.count
        && let Some(seg) = segments.iter().find(|g| g.id == id)
    {
        // A category deleted since the segment was saved counts as marketing (the stricter).
        let kind = match &seg.definition.category {
            Some(c) => Some(
                hub.store
                    .categories(brand.brand_code)
                    .await?
                    .iter()
                    .find(|k| &k.code == c)
                    .map_or(CategoryKind::Marketing, |k| k.kind),
            ),
            None => None,
        };
        let n = hub::audiences::count_members(&hub.store, brand.brand_code, &seg.definition, kind)
            .await?;
        counted = Some((id, n));
    }
    let body = html! {
        h1 { (lang.t(T::Segments)) }
        div.scroll { table #segments {
            thead { tr { th { (lang.t(T::Name)) } th { (lang.t(T::Definition)) } th { (lang.t(T::Created)) } th { (lang.t(T::Members)) } } }
            tbody { @for g in &segments { tr data-segment=(g.id) {
                td { strong { (g.name) } @if let Some(d) = &g.description { br; span.muted { (d) } } }
                td { code { (serde_json::to_string(&g.definition).unwrap_or_default()) } }
                td { (when(g.created_at)) }
                td { @match counted {
                    Some((id, n)) if id == g.id => strong.count { (n) },
                    _ => a href=(format!("{path}?count={}", g.id)) { (lang.t(T::Count)) },
                } }
            } } }
        } }
        p.muted { "GET /api/v1/brands/" (brand.brand_code) "/segments/{id}/members?format=csv — " (lang.t(T::Export)) }
    };
    Ok(maud_response(layout::page(
        &s,
        &path,
        lang.t(T::Segments),
        Some((&brand, Tab::Segments)),
        body,
    )))
}
