//! Segments: build one from a form (channels, status, IYS states, category, recipient type,
//! consent dates, sendable and policy), count its members, export them as CSV.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hub::dto::segments::SegmentInput;
use hub::{HubDb, HubState};
use hub_core::{Channel, IysState, Policy};
use hub_store::{Brand, ConsoleRole, Segment, SegmentDefinition};
use iys::{ConsentDate, ConsentStatus, RecipientType};
use maud::{Markup, html};
use serde::Deserialize;

use crate::brand_page;
use crate::error::{PageError, PageResult, maud_response};
use crate::i18n::T;
use crate::layout::{self, Tab, csrf, when};
use crate::session::{Posted, Session};

#[derive(Debug, Deserialize)]
pub struct SegmentsQuery {
    /// A segment whose members to count now.
    count: Option<i64>,
}

fn segments_path(brand: &Brand) -> String {
    format!("{}/segments", layout::brand_path(brand.brand_code))
}

async fn find<S: HubDb>(hub: &HubState<S>, brand: &Brand, id: &str) -> PageResult<Segment> {
    let id = id.parse::<i64>().map_err(|_| PageError::NotFound)?;
    hub.store
        .segment(brand.brand_code, id)
        .await?
        .ok_or(PageError::NotFound)
}

pub async fn list<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path(code): Path<String>,
    Query(q): Query<SegmentsQuery>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Read).await?;
    let lang = s.lang;
    let segments = hub.store.segments(brand.brand_code).await?;
    let path = segments_path(&brand);
    let mut counted = None;
    if let Some(id) = q.count
        && let Some(seg) = segments.iter().find(|g| g.id == id)
    {
        let kind = hub::saved_kind(&hub, brand.brand_code, &seg.definition).await?;
        let n = hub::audiences::count_members(&*hub.store, brand.brand_code, &seg.definition, kind)
            .await?;
        counted = Some((id, n));
    }
    let categories = hub.store.categories(brand.brand_code).await?;
    let body = html! {
        h1 { (lang.t(T::Segments)) }
        div.scroll { table #segments {
            thead { tr { th { (lang.t(T::Name)) } th { (lang.t(T::Definition)) } th { (lang.t(T::Created)) } th { (lang.t(T::Members)) } } }
            tbody { @for g in &segments { tr data-segment=(g.id) {
                td { strong { (g.name) } @if let Some(d) = &g.description { br; span.muted { (d) } } }
                td { code { (serde_json::to_string(&g.definition).unwrap_or_default()) } }
                td { (when(g.created_at)) }
                td {
                    @match counted {
                        Some((id, n)) if id == g.id => strong.count { (n) },
                        _ => a.count href=(format!("{path}?count={}", g.id)) { (lang.t(T::Count)) },
                    }
                    " · "
                    a.export href=(format!("{path}/{}/members.csv", g.id)) download { (lang.t(T::Export)) " CSV" }
                }
            } } }
        } }
        @if s.user.may(ConsoleRole::Write, brand.brand_code) {
            (builder(&s, &path, &categories))
        }
    };
    Ok(maud_response(layout::page(
        &s,
        &path,
        lang.t(T::Segments),
        Some((&brand, Tab::Segments)),
        body,
    )))
}

fn builder(s: &Session, path: &str, categories: &[hub_store::Category]) -> Markup {
    let lang = s.lang;
    html! {
        section.card {
            h2 { (lang.t(T::NewSegment)) }
            form #new-segment method="post" action=(path) {
                (csrf(s))
                label for="seg-name" { (lang.t(T::Name)) }
                input #seg-name name="name" required maxlength="200";
                label for="seg-description" { (lang.t(T::Description)) }
                input #seg-description name="description" maxlength="500";
                fieldset { legend { (lang.t(T::Channels)) " (" (lang.t(T::All)) ")" }
                    @for c in Channel::ALL { label { input type="checkbox" name="channel" value=(c.as_str()); " " (c.as_str()) } }
                }
                label for="seg-status" { (lang.t(T::Status)) }
                select #seg-status name="status" {
                    option value="" { (lang.t(T::All)) }
                    option value="ONAY" { "ONAY" } option value="RET" { "RET" }
                }
                fieldset { legend { (lang.t(T::IysState)) " (" (lang.t(T::All)) ")" }
                    @for st in IysState::ALL { label { input type="checkbox" name="iysState" value=(st.as_str()); " " (st.as_str()) } }
                }
                label for="seg-category" { (lang.t(T::Category)) }
                select #seg-category name="category" {
                    option value="" { "—" }
                    @for c in categories { option value=(c.code) { (c.code) } }
                }
                label for="seg-type" { "recipientType" }
                select #seg-type name="recipientType" {
                    option value="" { (lang.t(T::All)) }
                    option value="BIREYSEL" { "BIREYSEL" } option value="TACIR" { "TACIR" }
                }
                label for="seg-from" { (lang.t(T::ConsentDate)) " ≥ (YYYY-MM-DD HH:MM:SS)" }
                input #seg-from name="consentDateFrom" placeholder="2026-01-01 00:00:00";
                label for="seg-to" { (lang.t(T::ConsentDate)) " ≤" }
                input #seg-to name="consentDateTo" placeholder="2026-12-31 23:59:59";
                label { input type="checkbox" name="sendable" value="on" checked; " " (lang.t(T::SendableOnly)) }
                label for="seg-policy" { (lang.t(T::Policy)) }
                select #seg-policy name="policy" {
                    option value="strict" selected { "strict" } option value="lenient" { "lenient" }
                }
                button type="submit" { (lang.t(T::Create)) }
            }
        }
    }
}

/// The builder's form as a definition; a bad value names its field.
fn definition(
    form: &[(String, String)],
) -> PageResult<(String, Option<String>, SegmentDefinition)> {
    let one = |k: &str| {
        form.iter()
            .find(|(f, v)| f == k && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
    };
    let all = |k: &'static str| {
        form.iter()
            .filter(move |(f, _)| f == k)
            .map(|(_, v)| v.as_str())
    };
    let bad = |field: &str, value: &str, rule: &str| {
        PageError::BadInput(format!("{field}: {value:?} {rule}"))
    };
    let channels = all("channel")
        .map(|c| {
            c.parse::<Channel>()
                .map_err(|_| bad("channel", c, "is not a channel"))
        })
        .collect::<PageResult<Vec<_>>>()?;
    let iys_states = all("iysState")
        .map(|c| {
            c.parse::<IysState>()
                .map_err(|_| bad("iysState", c, "is not an IYS state"))
        })
        .collect::<PageResult<Vec<_>>>()?;
    let status = one("status")
        .map(|v| {
            v.parse::<ConsentStatus>()
                .map_err(|_| bad("status", &v, "must be ONAY or RET"))
        })
        .transpose()?;
    let recipient_type = one("recipientType")
        .map(|v| {
            v.parse::<RecipientType>()
                .map_err(|_| bad("recipientType", &v, "must be BIREYSEL or TACIR"))
        })
        .transpose()?;
    let date = |k: &str| {
        one(k)
            .map(|v| {
                ConsentDate::parse(&v).map_err(|_| bad(k, &v, "is not a date YYYY-MM-DD HH:MM:SS"))
            })
            .transpose()
    };
    let policy = match one("policy").as_deref() {
        None | Some("strict") => Policy::Strict,
        Some("lenient") => Policy::Lenient,
        Some(other) => return Err(bad("policy", other, "must be strict or lenient")),
    };
    let d = SegmentDefinition {
        channels,
        status,
        iys_states,
        sources: Vec::new(),
        recipient_type,
        consent_date_from: date("consentDateFrom")?,
        consent_date_to: date("consentDateTo")?,
        changed_from: None,
        changed_to: None,
        category: one("category"),
        attributes: BTreeMap::new(),
        sendable: one("sendable").is_some(),
        policy,
    };
    Ok((one("name").unwrap_or_default(), one("description"), d))
}

pub async fn create<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path(code): Path<String>,
    posted: Posted<Vec<(String, String)>>,
) -> PageResult<Response> {
    let s = &posted.session;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Write).await?;
    let (name, description, definition) = definition(&posted.form)?;
    let input = SegmentInput {
        name,
        description,
        definition,
    };
    let segment = hub::save_segment(&hub, brand.brand_code, &input, &s.actor()).await?;
    let to = format!("{}?count={}", segments_path(&brand), segment.id);
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
}

/// The members as CSV, streamed as the API streams them.
pub async fn export<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path((code, id)): Path<(String, String)>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Read).await?;
    let segment = find(&hub, &brand, &id).await?;
    let kind = hub::saved_kind(&hub, brand.brand_code, &segment.definition).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let store = hub.store.clone();
    let b = brand.brand_code;
    let definition = segment.definition.clone();
    let format = hub::audiences::Format::Csv;
    tokio::spawn(async move {
        hub::audiences::stream_members(&*store, b, &definition, kind, format, tx).await;
    });
    Ok(hub::streamed(
        rx,
        format.content_type(),
        &format!("segment-{}.{}", segment.id, format.extension()),
    ))
}
