//! Imports: upload a file, preview it with the detected column mapping, adjust the mapping,
//! start (or cancel), follow the progress live, and download the rejected rows.
//!
//! An upload is kept in the database as the API's are, in state `uploading` until a person
//! starts it from the preview; then any instance's import worker runs it (resumable).

use std::io::Read;

use axum::extract::{FromRequest, FromRequestParts, Multipart, Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hub::{HubDb, HubState};
use hub_store::{Brand, ConsoleRole, ImportJob, ImportState, ImportVia, NewImport};
use jiff::Timestamp;
use maud::{Markup, html};
use serde::Deserialize;

use crate::error::{PageError, PageResult, maud_response};
use crate::i18n::{Lang, T};
use crate::layout::{self, Tab, csrf, when};
use crate::session::{Posted, Session, same_origin};
use crate::{audit, brand_page};

/// Rows shown in a preview.
const PREVIEW_ROWS: usize = 10;
/// An XLSX file is read whole to preview it; larger ones are started without a preview.
const MAX_XLSX_PREVIEW: usize = 64 * 1024 * 1024;

fn imports_path(brand: &Brand) -> String {
    format!("{}/imports", layout::brand_path(brand.brand_code))
}

fn running(j: &ImportJob) -> bool {
    matches!(j.state, ImportState::Queued | ImportState::Running)
}

fn job_row(lang: Lang, base: &str, j: &ImportJob) -> Markup {
    html! {
        tr data-import=(j.id) {
            td { a href=(format!("{base}/{}", j.id)) { (j.id) } @if j.dry_run { " (dry run)" } }
            td { (j.file_name.as_deref().unwrap_or("-")) " " span.muted { (j.format) } }
            td.state { (j.state.as_str()) @if let Some(e) = &j.error { br; span.bad { (e) } } }
            td { (lang.t(T::Rows)) ": " span.rows { (j.rows_read) } }
            td { (j.counts.applied) " / " (j.counts.unchanged) " / " (j.counts.older) " / "
                span class=(if j.counts.rejected > 0 { "bad" } else { "" }) { (j.counts.rejected) } }
            td { (j.actor.as_deref().unwrap_or("-")) }
            td { (when(j.created_at)) }
        }
    }
}

fn jobs_table(lang: Lang, base: &str, jobs: &[ImportJob]) -> Markup {
    html! {
        div.scroll { table #jobs {
            thead { tr {
                th { "#" } th { (lang.t(T::File)) } th { (lang.t(T::State)) } th { (lang.t(T::Progress)) }
                th { "applied / unchanged / older / rejected" } th { (lang.t(T::Actor)) } th { (lang.t(T::Created)) }
            } }
            tbody { @for j in jobs { (job_row(lang, base, j)) } }
        } }
    }
}

pub async fn list<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path(code): Path<String>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Read).await?;
    let lang = s.lang;
    let jobs = hub.store.imports(brand.brand_code, None, 100).await?;
    let base = imports_path(&brand);
    let live = jobs.iter().any(running);
    let body = html! {
        h1 { (lang.t(T::Imports)) }
        @if s.user.may(ConsoleRole::Write, brand.brand_code) {
            section.card {
                h2 { (lang.t(T::Upload)) }
                form #upload method="post" action=(base) enctype="multipart/form-data" {
                    (csrf(&s))
                    label { input type="checkbox" name="dryRun" value="on"; " " (lang.t(T::DryRun)) }
                    label for="file" { (lang.t(T::File)) " (CSV, NDJSON, XLSX)" }
                    input #file type="file" name="file" required accept=".csv,.txt,.ndjson,.jsonl,.xlsx";
                    button type="submit" { (lang.t(T::Upload)) }
                }
            }
        }
        div #imports hx-get=(base) hx-trigger=(if live { "every 3s" } else { "none" }) hx-select="#imports" hx-swap="outerHTML" {
            (jobs_table(lang, &base, &jobs))
        }
        p.muted { "iyshub import FILE --brand " (brand.brand_code) " · POST /api/v1/brands/" (brand.brand_code) "/imports" }
    };
    Ok(maud_response(layout::page(
        &s,
        &base,
        lang.t(T::Imports),
        Some((&brand, Tab::Imports)),
        body,
    )))
}

/// The upload form: `csrf`, then `dryRun`, then `file`, in that order (as the page sends them),
/// so the token is checked before a byte of the file is kept.
pub async fn upload<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path(code): Path<String>,
    req: Request,
) -> PageResult<Response> {
    let (mut parts, body) = req.into_parts();
    if !same_origin(&parts.headers) {
        return Err(PageError::Forbidden);
    }
    let s = Session::from_request_parts(&mut parts, &hub).await?;
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Write).await?;
    let mut form = Multipart::from_request(Request::from_parts(parts, body), &hub)
        .await
        .map_err(|e| PageError::BadInput(format!("file: {}", e.body_text())))?;
    let bad = |e: axum::extract::multipart::MultipartError| {
        PageError::BadInput(format!("file: {}", e.body_text()))
    };
    let (mut token_ok, mut dry_run) = (false, false);
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name().unwrap_or_default() {
            "csrf" => token_ok = hub_secrets::same(&field.text().await.map_err(bad)?, &s.csrf),
            "dryRun" => dry_run = true,
            "file" if token_ok => {
                let file_name = field
                    .file_name()
                    .map(|n| {
                        n.chars()
                            .filter(|c| !c.is_control())
                            .take(200)
                            .collect::<String>()
                    })
                    .filter(|n| !n.is_empty());
                let job = hub
                    .store
                    .create_import(
                        NewImport {
                            brand_code: brand.brand_code,
                            file_name: file_name.clone(),
                            file_hash: None,
                            format: "auto".into(),
                            mapping: Vec::new(),
                            actor: Some(s.actor()),
                            via: ImportVia::Api,
                            dry_run,
                            state: ImportState::Uploading,
                        },
                        Timestamp::now(),
                    )
                    .await?;
                hub::store_upload(&hub, job.id, None, file_name.as_deref(), field).await?;
                let to = format!("{}/{}", imports_path(&brand), job.id);
                return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response());
            }
            // A file before the token: refused before any of it is kept.
            "file" => return Err(PageError::Forbidden),
            _ => {}
        }
    }
    Err(PageError::BadInput("file: choose a file to upload".into()))
}

async fn brand_job<S: HubDb>(hub: &HubState<S>, brand: &Brand, id: &str) -> PageResult<ImportJob> {
    let id = id.parse::<i64>().map_err(|_| PageError::NotFound)?;
    hub.store
        .import_job(brand.brand_code, id)
        .await?
        .ok_or(PageError::NotFound)
}

/// The mapping chosen on the preview: fields `m.<column>` of a form or a query; an empty one
/// leaves the column to the importer's own reading of its header.
fn chosen_mapping(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, v)| k.strip_prefix("m.").map(|c| (c.to_owned(), v.clone())))
        .collect()
}

/// Why a file cannot be read with a mapping, and its header row when that was read (so the
/// person can map its columns).
struct Unreadable {
    why: String,
    columns: Vec<String>,
}

impl From<String> for Unreadable {
    fn from(why: String) -> Self {
        Unreadable {
            why,
            columns: Vec::new(),
        }
    }
}

/// What the preview found: the mapping (column → field) and the first rows, or why the file
/// cannot be read with that mapping.
struct Preview {
    mapping: Vec<(String, String)>,
    ignored: Vec<String>,
    rows: Vec<Result<hub_bulk::Row, String>>,
}

async fn preview<S: HubDb>(
    hub: &HubState<S>,
    job: &ImportJob,
    overrides: Vec<(String, String)>,
) -> PageResult<Result<Preview, Unreadable>> {
    let format: hub_bulk::Format = match job.format.parse() {
        Ok(f) => f,
        Err(_) => return Ok(Err(format!("unknown format {:?}", job.format).into())),
    };
    // CSV and NDJSON: the first piece holds the first rows; XLSX needs the whole workbook.
    let mut bytes = Vec::new();
    let mut seq = 0;
    while let Some(piece) = hub.store.import_chunk(job.id, seq).await? {
        bytes.extend_from_slice(&piece);
        seq += 1;
        if format != hub_bulk::Format::Xlsx {
            break;
        }
        if bytes.len() > MAX_XLSX_PREVIEW {
            return Ok(Err(
                String::from("the workbook is too large to preview").into()
            ));
        }
    }
    let read = tokio::task::spawn_blocking(move || {
        let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(bytes));
        let mut rows = hub_bulk::read(format, input, &overrides).map_err(|e| {
            let columns = match &e {
                hub_bulk::FileError::MissingColumns { found, .. }
                | hub_bulk::FileError::UnknownColumn { found, .. } => found.clone(),
                _ => Vec::new(),
            };
            Unreadable {
                why: e.to_string(),
                columns,
            }
        })?;
        let (mapping, ignored) = rows
            .mapping()
            .map(|m| (m.columns(), m.ignored_columns()))
            .unwrap_or_default();
        let rows = rows
            .by_ref()
            .take(PREVIEW_ROWS)
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
        Ok(Preview {
            mapping,
            ignored,
            rows,
        })
    })
    .await
    .map_err(|e| PageError::Internal(e.to_string()))?;
    Ok(read)
}

pub async fn detail<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path((code, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Read).await?;
    let job = brand_job(&hub, &brand, &id).await?;
    let lang = s.lang;
    let base = imports_path(&brand);
    let path = format!("{base}/{}", job.id);
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let staged = job.state == ImportState::Uploading && job.file_bytes > 0;
    let found = if staged {
        Some(preview(&hub, &job, chosen_mapping(&pairs)).await?)
    } else {
        None
    };
    let may_write = s.user.may(ConsoleRole::Write, brand.brand_code);
    let body = html! {
        h1 { (lang.t(T::Imports)) " #" (job.id) }
        div #job hx-get=(path) hx-trigger=(if running(&job) { "every 2s" } else { "none" }) hx-select="#job" hx-swap="outerHTML" {
            (jobs_table(lang, &base, std::slice::from_ref(&job)))
            @if job.counts.rejected > 0 {
                p { a #rejects href=(format!("{path}/rejects.csv")) download { (lang.t(T::Rejects)) " (CSV)" } }
            }
        }
        @match &found {
            Some(Ok(p)) => (preview_part(&s, &path, p, may_write)),
            Some(Err(u)) => {
                p.error role="alert" { (u.why) }
                @if !u.columns.is_empty() {
                    @let chosen = chosen_mapping(&pairs);
                    @let columns: Vec<(String, String)> = u.columns.iter().map(|c| {
                        let field = chosen.iter().find(|(k, _)| k == c).map(|(_, f)| f.clone()).unwrap_or_default();
                        (c.clone(), field)
                    }).collect();
                    (mapping_form(lang, &path, &columns))
                }
            },
            None => {},
        }
    };
    Ok(maud_response(layout::page(
        &s,
        &path,
        lang.t(T::Imports),
        Some((&brand, Tab::Imports)),
        body,
    )))
}

/// The column → field choices, sent back as a query to preview again.
fn mapping_form(lang: Lang, path: &str, mapping: &[(String, String)]) -> Markup {
    html! {
        form #mapping.card method="get" action=(path) {
            h2 { (lang.t(T::Mapping)) }
            table {
                thead { tr { th { (lang.t(T::Column)) } th { (lang.t(T::Field)) } } }
                tbody { @for (column, field) in mapping { tr {
                    td { label for=(format!("m-{column}")) { (column) } }
                    td { select id=(format!("m-{column}")) name=(format!("m.{column}")) {
                        option value="" selected[field.is_empty()] { "(" (lang.t(T::Automatic)) ")" }
                        @for f in hub_bulk::field_names().chain(["-"]) { option value=(f) selected[f == field.as_str()] { (f) } }
                    } }
                } } }
            }
            button type="submit" { (lang.t(T::PreviewAgain)) }
        }
    }
}

fn preview_part(s: &Session, path: &str, p: &Preview, may_write: bool) -> Markup {
    let lang = s.lang;
    // Every column with its field, the ignored ones as `-`, so the form can change any.
    let mut all = p.mapping.clone();
    all.extend(p.ignored.iter().map(|c| (c.clone(), "-".to_owned())));
    html! {
        (mapping_form(lang, path, &all))
        section.card {
            h2 { (lang.t(T::PreviewRows)) }
            div.scroll { table #preview {
                thead { tr { th { "#" } @for (_, f) in &p.mapping { th { (f) } } } }
                tbody { @for r in &p.rows { @match r {
                    Ok(row) => tr {
                        td { (row.line) }
                        @for (_, f) in &p.mapping {
                            td { @match row.fields.get(f.split('.').next().unwrap_or_default()) {
                                Some(serde_json::Value::String(v)) => (v),
                                Some(v) => (v),
                                None => "",
                            } }
                        }
                    },
                    Err(e) => tr { td.bad colspan=(p.mapping.len() + 1) { (e) } },
                } } }
            } }
            @if may_write {
                form.inline #start method="post" action=(format!("{path}/start")) {
                    (csrf(s))
                    @for (column, field) in &all { input type="hidden" name=(format!("m.{column}")) value=(field); }
                    button type="submit" { (lang.t(T::Start)) }
                }
                " "
                form.inline method="post" action=(format!("{path}/cancel")) {
                    (csrf(s))
                    button.danger type="submit" { (lang.t(T::Cancel)) }
                }
            }
        }
    }
}

/// The brand's import `id`, uploaded and not started, for a user who may write.
async fn staged<S: HubDb>(
    hub: &HubState<S>,
    s: &Session,
    code: &str,
    id: &str,
) -> PageResult<(Brand, ImportJob)> {
    let brand = brand_page(hub, s, code, ConsoleRole::Write).await?;
    let job = brand_job(hub, &brand, id).await?;
    if job.state != ImportState::Uploading {
        return Err(PageError::BadInput(format!(
            "import {}: already {}",
            job.id,
            job.state.as_str()
        )));
    }
    Ok((brand, job))
}

/// Starts an uploaded import with the mapping chosen on the preview (checked again first).
pub async fn start<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path((code, id)): Path<(String, String)>,
    posted: Posted<Vec<(String, String)>>,
) -> PageResult<Response> {
    let s = &posted.session;
    let (brand, job) = staged(&hub, s, &code, &id).await?;
    let mapping = chosen_mapping(&posted.form);
    if let Err(u) = preview(&hub, &job, mapping.clone()).await? {
        return Err(PageError::BadInput(format!("mapping: {}", u.why)));
    }
    if !hub.store.set_import_mapping(job.id, &mapping).await? {
        return Err(PageError::BadInput(format!(
            "import {}: already started",
            job.id
        )));
    }
    hub.store
        .set_import_state(job.id, ImportState::Queued, None, Timestamp::now())
        .await?;
    hub.imports_waiting.notify_waiters();
    audit(
        &hub,
        s,
        Some(brand.brand_code),
        "import_started",
        serde_json::json!({"id": job.id, "fileName": job.file_name, "dryRun": job.dry_run, "mapping": mapping}),
    )
    .await;
    let to = format!("{}/{}", imports_path(&brand), job.id);
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
}

#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// Drops an uploaded import that was not started.
pub async fn cancel<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path((code, id)): Path<(String, String)>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let s = &posted.session;
    let (brand, job) = staged(&hub, s, &code, &id).await?;
    let why = format!("cancelled by {}", s.actor());
    hub.store
        .set_import_state(job.id, ImportState::Failed, Some(&why), Timestamp::now())
        .await?;
    hub.store.drop_import_file(job.id).await?;
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, imports_path(&brand))],
    )
        .into_response())
}

/// The rejected rows as CSV: line, code, field, message and the row as read.
pub async fn rejects<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path((code, id)): Path<(String, String)>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Read).await?;
    let job = brand_job(&hub, &brand, &id).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let store = hub.store.clone();
    tokio::spawn(async move { hub::exports::rejects(&*store, job.id, tx).await });
    Ok(hub::streamed(
        rx,
        "text/csv; charset=utf-8",
        &format!("rejects-{id}.csv"),
    ))
}
