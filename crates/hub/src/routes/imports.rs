//! Bulk imports (a streamed upload, run by a worker, with progress and rejects) and exports
//! (streamed, in the importer's own columns).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hub_store::{ImportState, ImportVia, NewImport, Scope};

use crate::api::brand_for;
use crate::auth::Caller;
use crate::dto::error::ErrorResponse;
use crate::dto::imports::{ExportQuery, ImportInfo, ImportPage, ImportPath, ImportQuery};
use crate::dto::listing::NewestFirstQuery;
use crate::dto::params::BrandCodePath;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::routes::listing::{FilterText, consent_filter, newest_first, next_id, param};
use crate::{HubDb, HubState};

/// The largest file an upload may be.
pub const MAX_IMPORT_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Uploads are kept in pieces of this size.
const CHUNK_BYTES: usize = 1024 * 1024;

/// `column=field,column=field`: the mapping's overrides.
pub fn parse_map(text: &str) -> ApiResult<Vec<(String, String)>> {
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((c, f)) if !c.trim().is_empty() && !f.trim().is_empty() => {
                Ok((c.trim().to_owned(), f.trim().to_owned()))
            }
            _ => Err(ApiError::unprocessable(
                "invalid_value",
                "map must be column=field pairs separated by commas",
            )
            .field("map")
            .value(pair)),
        })
        .collect()
}

fn import_id(text: &str) -> ApiResult<i64> {
    text.parse::<i64>().map_err(|_| {
        ApiError::bad_request("invalid_value", "importId must be a number")
            .field("importId")
            .value(text)
    })
}

/// Start an import
///
/// Scope: write. The body is the file itself (CSV, NDJSON or XLSX, up to 2 GiB), streamed; the
/// answer (202) comes once it is stored, with the import's id, and a worker applies its rows in
/// batches through the same rules as `POST …/consents`. Good rows are stored while bad ones are
/// rejected one by one (`GET …/imports/{importId}/rejects.csv`). An import survives a restart:
/// it resumes after its last recorded window of rows, never applying a row twice. See docs/bulk.md for
/// the columns and their Turkish names.
#[utoipa::path(
    post,
    path = "/api/v1/brands/{brandCode}/imports",
    tag = "imports",
    operation_id = "createImport",
    params(BrandCodePath, ImportQuery),
    security(("apiKey" = ["write"])),
    request_body(content = String, content_type = "text/csv", description = "The file: CSV (header row; `,` `;` or tab), NDJSON (one change a line) or XLSX (first sheet)."),
    responses(
        (status = 202, description = "Stored and queued.", body = ImportInfo),
        (status = 413, description = "Over 2 GiB.", body = ErrorResponse),
        (status = 422, description = "A bad query parameter, named in field.", body = ErrorResponse),
    )
)]
pub async fn create_import<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    query: Query<ImportQuery>,
    body: Body,
) -> ApiResult<Response> {
    let brand = brand_for(&hub, &caller, &code, Scope::Write).await?;
    let q = query.parse()?;
    let format = param::<hub_bulk::Format>("format", q.format.as_deref(), "csv, ndjson or xlsx")?;
    let dry_run = param::<bool>("dryRun", q.dry_run.as_deref(), "true or false")?.unwrap_or(false);
    let mapping = q
        .map
        .as_deref()
        .map(parse_map)
        .transpose()?
        .unwrap_or_default();
    if let Some(name) = &q.file_name
        && (name.len() > 200 || name.chars().any(char::is_control))
    {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "fileName must be up to 200 characters without control characters",
        )
        .field("fileName")
        .value(name.as_str()));
    }
    let job = hub
        .store
        .create_import(
            NewImport {
                brand_code: brand.brand_code,
                file_name: q.file_name.clone(),
                file_hash: None,
                format: format.map_or("auto", |f| f.as_str()).to_owned(),
                mapping,
                actor: Some(caller.name().to_owned()),
                via: ImportVia::Api,
                dry_run,
                state: ImportState::Uploading,
            },
            jiff::Timestamp::now(),
        )
        .await?;
    store_upload(
        &hub,
        job.id,
        format,
        q.file_name.as_deref(),
        body.into_data_stream(),
    )
    .await?;
    hub.store
        .set_import_state(job.id, ImportState::Queued, None, jiff::Timestamp::now())
        .await?;
    hub.imports_waiting.notify_waiters();
    let job = hub
        .store
        .import_job(brand.brand_code, job.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("import {}", job.id)))?;
    Ok((StatusCode::ACCEPTED, Json(ImportInfo::from(job))).into_response())
}

/// Keeps an upload as import `job`'s pieces as it arrives, then records its format: as given,
/// else from the file name or the first bytes. A broken or oversized upload fails the job (its
/// pieces are dropped) and answers the error. Shared by the API and the console.
pub async fn store_upload<S: HubDb, St, E>(
    hub: &HubState<S>,
    job: i64,
    format: Option<hub_bulk::Format>,
    file_name: Option<&str>,
    mut stream: St,
) -> ApiResult<hub_bulk::Format>
where
    St: futures_util::Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (mut pending, mut seq, mut total, mut head) = (Vec::new(), 0i64, 0u64, Vec::new());
    let failed = |why: String| async move {
        let _ = hub
            .store
            .set_import_state(job, ImportState::Failed, Some(&why), jiff::Timestamp::now())
            .await;
        let _ = hub.store.drop_import_file(job).await;
    };
    while let Some(piece) = stream.next().await {
        let piece = match piece {
            Ok(p) => p,
            Err(e) => {
                failed(format!("the upload broke off: {e}")).await;
                return Err(ApiError::bad_request(
                    "invalid_body",
                    format!("the upload broke off: {e}"),
                ));
            }
        };
        total += piece.len() as u64;
        if total > MAX_IMPORT_BYTES {
            failed("the file is over 2 GiB".into()).await;
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "an import file may be at most 2 GiB; split it",
            ));
        }
        if head.len() < 512 {
            head.extend(piece.iter().take(512 - head.len()));
        }
        pending.extend_from_slice(&piece);
        while pending.len() >= CHUNK_BYTES {
            let rest = pending.split_off(CHUNK_BYTES);
            hub.store.append_import_chunk(job, seq, &pending).await?;
            pending = rest;
            seq += 1;
        }
    }
    if !pending.is_empty() {
        hub.store.append_import_chunk(job, seq, &pending).await?;
    }
    let format = format.unwrap_or_else(|| hub_bulk::Format::detect(file_name, &head));
    hub.store.set_import_format(job, format.as_str()).await?;
    Ok(format)
}

/// List imports
///
/// Scope: read. The brand's imports, newest first, with their state and counts.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/imports",
    tag = "imports",
    operation_id = "listImports",
    params(BrandCodePath, NewestFirstQuery),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "A page of imports.", body = ImportPage),
        (status = 422, description = "A bad query parameter, named in field.", body = ErrorResponse),
    )
)]
pub async fn list_imports<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    query: Query<NewestFirstQuery>,
) -> ApiResult<Json<ImportPage>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let (before, limit) = newest_first(&query.parse()?)?;
    let jobs = hub.store.imports(brand.brand_code, before, limit).await?;
    let next_cursor = next_id(jobs.len(), limit, jobs.last().map(|j| j.id));
    Ok(Json(ImportPage {
        imports: jobs.into_iter().map(ImportInfo::from).collect(),
        next_cursor,
    }))
}

/// An import's state and progress
///
/// Scope: read. Rows read, the last committed line and what the rows did so far.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/imports/{importId}",
    tag = "imports",
    operation_id = "getImport",
    params(ImportPath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The import.", body = ImportInfo),
        (status = 404, description = "No such import for this brand.", body = ErrorResponse),
    )
)]
pub async fn get_import<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
) -> ApiResult<Json<ImportInfo>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let id = import_id(&id)?;
    let job = hub
        .store
        .import_job(brand.brand_code, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("import {id} not found")))?;
    Ok(Json(job.into()))
}

/// An import's rejected rows
///
/// Scope: read. CSV with one rejected row a line: its line number in the file, the H-code or
/// rule (`code`), the field, the value and the message; streamed in line order.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/imports/{importId}/rejects.csv",
    tag = "imports",
    operation_id = "getImportRejects",
    params(ImportPath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "line,code,field,value,message", content_type = "text/csv", body = String),
        (status = 404, description = "No such import for this brand.", body = ErrorResponse),
    )
)]
pub async fn get_import_rejects<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let id = import_id(&id)?;
    hub.store
        .import_job(brand.brand_code, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("import {id} not found")))?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let store = hub.store.clone();
    tokio::spawn(async move { crate::exports::rejects(&*store, id, tx).await });
    Ok(streamed(
        rx,
        "text/csv; charset=utf-8",
        &format!("rejects-{id}.csv"),
    ))
}

/// A body from chunks sent on `rx`.
pub fn streamed(
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
    content_type: &'static str,
    file_name: &str,
) -> Response {
    // A channel's receiver answers `None` for good once closed, so the body may poll it again
    // after the end (a stream like `unfold` would panic there).
    let mut rx = rx;
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    (headers, Body::from_stream(stream)).into_response()
}

/// Export consents
///
/// Scope: read. The brand's consents matching the filters, streamed as CSV (default) or NDJSON
/// in the importer's own columns, so an export imports back to the same state: `recipient`,
/// `type` (IYS channels) or `channel` (the hub's own), `recipientType`, `status`, `consentDate`,
/// `source`, and `iysState` and `updatedAt` for information (the importer ignores them).
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/exports",
    tag = "imports",
    operation_id = "exportConsents",
    params(BrandCodePath, ExportQuery),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The consents, streamed.", content_type = "text/csv", body = String),
        (status = 422, description = "A bad query parameter, named in field.", body = ErrorResponse),
    )
)]
pub async fn export_consents<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    query: Query<ExportQuery>,
) -> ApiResult<Response> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let q = query.parse()?;
    let format = match q.format.as_deref() {
        None | Some("csv") => crate::exports::ExportFormat::Csv,
        Some("ndjson") => crate::exports::ExportFormat::Ndjson,
        Some(other) => {
            return Err(
                ApiError::unprocessable("invalid_value", "format must be csv or ndjson")
                    .field("format")
                    .value(other),
            );
        }
    };
    let filter = consent_filter(&FilterText {
        channel: q.channel.as_deref(),
        recipient_type: q.recipient_type.as_deref(),
        status: q.status.as_deref(),
        iys_state: q.iys_state.as_deref(),
        source: q.source.as_deref(),
        changed_since: q.changed_since.as_deref(),
    })?;
    let source = match q.category {
        None => crate::exports::ExportSource::Consents(filter),
        Some(category) => {
            // Category consents have a status, and nothing else these filters read.
            let only_status = hub_store::ConsentFilter {
                status: filter.status,
                ..hub_store::ConsentFilter::default()
            };
            if filter != only_status {
                return Err(ApiError::unprocessable(
                    "invalid_value",
                    "with category, only status may filter the export",
                )
                .field("category")
                .value(category));
            }
            let known = crate::api::cached_categories(&hub, brand.brand_code)
                .await?
                .iter()
                .any(|c| c.code == category);
            if !known {
                return Err(ApiError::unprocessable(
                    "unknown_category",
                    format!("category {category:?} is not defined for this brand"),
                )
                .field("category")
                .value(category));
            }
            crate::exports::ExportSource::Category {
                code: category,
                status: filter.status,
            }
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let store = hub.store.clone();
    let code = brand.brand_code;
    tokio::spawn(async move {
        crate::exports::export(&*store, code, &source, format, tx).await;
    });
    let (content_type, ext) = match format {
        crate::exports::ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        crate::exports::ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    Ok(streamed(
        rx,
        content_type,
        &format!("consents-{code}.{ext}"),
    ))
}
