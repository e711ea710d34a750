//! A brand's imports with their state and counts, refreshed live while one runs.

use axum::extract::{Path, State};
use axum::response::Response;
use hub::HubState;
use hub_store::{ConsoleRole, ImportState};
use maud::html;

use crate::brand_page;
use crate::error::{PageResult, maud_response};
use crate::i18n::T;
use crate::layout::{self, Tab, when};
use crate::session::Session;

pub async fn list(
    State(hub): State<HubState>,
    s: Session,
    Path(code): Path<String>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Read).await?;
    let lang = s.lang;
    let jobs = hub.store.imports(brand.brand_code, None, 100).await?;
    let path = format!("{}/imports", layout::brand_path(brand.brand_code));
    let running = jobs.iter().any(|j| {
        matches!(
            j.state,
            ImportState::Queued | ImportState::Running | ImportState::Uploading
        )
    });
    let body = html! {
        h1 { (lang.t(T::Imports)) }
        div #imports hx-get=(path) hx-trigger=(if running { "every 3s" } else { "none" }) hx-select="#imports" hx-swap="outerHTML" {
            div.scroll { table {
                thead { tr {
                    th { "#" } th { (lang.t(T::File)) } th { (lang.t(T::State)) } th { (lang.t(T::Progress)) }
                    th { "applied / unchanged / older / rejected" } th { (lang.t(T::Actor)) } th { (lang.t(T::Created)) }
                } }
                tbody { @for j in &jobs { tr data-import=(j.id) {
                    td { (j.id) @if j.dry_run { " (dry run)" } }
                    td { (j.file_name.as_deref().unwrap_or("-")) " " span.muted { (j.format) } }
                    td { (j.state.as_str()) @if let Some(e) = &j.error { br; span.bad { (e) } } }
                    td { (lang.t(T::Rows)) ": " (j.rows_read) }
                    td { (j.counts.applied) " / " (j.counts.unchanged) " / " (j.counts.older) " / "
                        span class=(if j.counts.rejected > 0 { "bad" } else { "" }) { (j.counts.rejected) } }
                    td { (j.actor.as_deref().unwrap_or("-")) }
                    td { (when(j.created_at)) }
                } } }
            } }
        }
        p.muted { "iyshub import FILE --brand " (brand.brand_code) " · POST /api/v1/brands/" (brand.brand_code) "/imports · " (lang.t(T::Rejects)) ": GET …/imports/{id}/rejects.csv" }
    };
    Ok(maud_response(layout::page(
        &s,
        &path,
        lang.t(T::Imports),
        Some((&brand, Tab::Imports)),
        body,
    )))
}
