//! Recipient lookup by phone, e-mail or profile id: the state per channel and category, holds
//! and conflicts with their actions, and the full history timeline.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hub::{HubDb, HubState};
use hub_core::{Change, Channel, ConsentKey, IysState, Origin};
use hub_store::{ConsoleRole, OutboxFilter, OutboxState};
use iys::RecipientType;
use jiff::Timestamp;
use maud::{Markup, html};
use serde::Deserialize;

use crate::error::{PageError, PageResult, encode, maud_response};
use crate::i18n::T;
use crate::layout::{self, Tab, csrf, when, yes_no};
use crate::session::{Posted, Session};
use crate::{audit, brand_page};

/// Newest history events shown.
const HISTORY: u32 = 200;

#[derive(Debug, Deserialize)]
pub struct LookupQuery {
    q: Option<String>,
}

pub async fn lookup<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path(code): Path<String>,
    Query(query): Query<LookupQuery>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Read).await?;
    let lang = s.lang;
    let base = layout::brand_path(brand.brand_code);
    let q = query.q.unwrap_or_default().trim().to_owned();
    let mut found = Vec::new();
    let mut profile = None;
    if !q.is_empty() {
        // A profile id names several addresses; anything else is one recipient.
        let p = hub.store.profile(brand.brand_code, &q).await?;
        let addresses = match &p {
            Some(p) => p.addresses.clone(),
            None => vec![hub::input::lookup_form(&q)],
        };
        profile = p;
        for r in addresses {
            found.push(recipient(&hub, &s, brand.brand_code, &r).await?);
        }
    }
    let nothing = !q.is_empty() && found.iter().all(Option::is_none);
    let body = html! {
        h1 { (lang.t(T::Lookup)) }
        form.card method="get" action=(format!("{base}/recipients")) role="search" {
            label for="q" { (lang.t(T::LookupHint)) }
            input #q name="q" value=(q) required inputmode="email" autocomplete="off";
            button type="submit" { (lang.t(T::Search)) }
        }
        @if let Some(p) = &profile {
            p { (lang.t(T::Profile)) ": " strong { (p.external_id) } " — " (p.addresses.join(", ")) }
        }
        @if nothing { p.notice { (lang.t(T::NothingFound)) " " (q) } }
        @for part in found.into_iter().flatten() { (part) }
    };
    Ok(maud_response(layout::page(
        &s,
        &format!("{base}/recipients?q={}", encode(&q)),
        lang.t(T::Recipients),
        Some((&brand, Tab::Recipients)),
        body,
    )))
}

/// One recipient's states and timeline, or `None` when nothing is recorded for it.
async fn recipient<S: HubDb>(
    hub: &HubState<S>,
    s: &Session,
    brand: hub_core::BrandCode,
    r: &str,
) -> PageResult<Option<Markup>> {
    let lang = s.lang;
    let rows = hub.store.consents(brand, r).await?;
    let cats = hub.store.category_consents(brand, r).await?;
    let events = hub.store.history_page(brand, r, None, HISTORY).await?;
    if rows.is_empty() && cats.is_empty() && events.is_empty() {
        return Ok(None);
    }
    let may_write = s.user.may(ConsoleRole::Write, brand);
    let base = layout::brand_path(brand);
    Ok(Some(html! {
        section.card.recipient data-recipient=(r) {
            h2 { (r) }
            h3 { (lang.t(T::Channels)) }
            div.scroll { table #channels {
                thead { tr {
                    th { (lang.t(T::Channel)) } th { (lang.t(T::Status)) } th { (lang.t(T::ConsentDate)) }
                    th { (lang.t(T::Source)) } th { (lang.t(T::IysState)) } th { (lang.t(T::Hold)) } th { (lang.t(T::Conflict)) }
                    @if may_write { th { (lang.t(T::Action)) } }
                } }
                tbody { @for row in &rows {
                    @let st = &row.state;
                    tr data-channel=(row.key.channel.as_str()) {
                        td { (row.key.channel.as_str()) " " span.muted { (row.key.recipient_type.as_str()) } }
                        td class=(status_class(st.status)) { (st.status.as_str()) }
                        td { (st.consent_date) }
                        td { (st.source) }
                        td { (st.iys_state.as_str()) @if let Some(e) = &st.iys_error { br; span.bad { (e) } } }
                        td.hold { (yes_no(lang, st.hold)) }
                        td.conflict { @if st.conflict {
                            span.bad { (lang.t(T::Yes)) }
                            @if may_write {
                                br;
                                form.inline method="post" action=(format!("{base}/recipients/conflict")) {
                                    (csrf(s))
                                    input type="hidden" name="recipient" value=(r);
                                    input type="hidden" name="channel" value=(row.key.channel.as_str());
                                    input type="hidden" name="recipientType" value=(row.key.recipient_type.as_str());
                                    button.acknowledge type="submit" { (lang.t(T::AcknowledgeConflict)) }
                                }
                            }
                        } @else { (lang.t(T::No)) } }
                        @if may_write { td {
                            form.inline method="post" action=(format!("{base}/recipients/hold")) {
                                (csrf(s))
                                input type="hidden" name="recipient" value=(r);
                                input type="hidden" name="channel" value=(row.key.channel.as_str());
                                input type="hidden" name="recipientType" value=(row.key.recipient_type.as_str());
                                input type="hidden" name="hold" value=(if st.hold { "false" } else { "true" });
                                @if st.hold {
                                    button.lift type="submit" { (lang.t(T::LiftHold)) }
                                } @else {
                                    button.danger.set type="submit" { (lang.t(T::SetHold)) }
                                }
                            }
                            @if st.iys_state == IysState::Rejected {
                                " "
                                form.inline method="post" action=(format!("{base}/recipients/requeue")) {
                                    (csrf(s))
                                    input type="hidden" name="recipient" value=(r);
                                    button.requeue type="submit" { (lang.t(T::Requeue)) }
                                }
                            }
                        } }
                    }
                } }
            } }
            @if !cats.is_empty() {
                h3 { (lang.t(T::Categories)) }
                table {
                    thead { tr { th { (lang.t(T::Category)) } th { (lang.t(T::Status)) } th { (lang.t(T::ConsentDate)) } th { (lang.t(T::Source)) } } }
                    tbody { @for c in &cats { tr {
                        td { (c.category) } td class=(status_class(c.status)) { (c.status.as_str()) } td { (c.consent_date) } td { (c.source) }
                    } } }
                }
            }
            h3 { (lang.t(T::History)) }
            ol.timeline reversed {
                @for e in &events {
                    li data-origin=(e.origin.as_str()) {
                        strong class=(status_class(e.status)) { (e.status.as_str()) }
                        " " (e.key.channel.as_str())
                        @if let Some(c) = &e.category { " · " (lang.t(T::Category)) " " (c) }
                        " — " (e.outcome.as_str())
                        br;
                        span.muted {
                            (when(e.received_at)) " · " (lang.t(T::Origin)) ": " span.origin { (e.origin.as_str()) }
                            @if let Some(a) = &e.actor { " · " (lang.t(T::Actor)) ": " (a) }
                            " · " (lang.t(T::ConsentDate)) ": " (e.consent_date) " · " (e.source)
                            @if let Some(h) = e.hold { " · " (lang.t(T::Hold)) ": " (yes_no(lang, h)) }
                        }
                        @if let Some(ev) = &e.evidence { br; span.muted { (lang.t(T::Evidence)) ": " code { (ev) } } }
                        @if e.iys_transaction_id.is_some() || e.delivered_transaction_id.is_some() || e.iys_error.is_some() {
                            br;
                            span.muted { (lang.t(T::IysOutcome)) ": "
                                @if let Some(t) = e.iys_transaction_id.as_ref().or(e.delivered_transaction_id.as_ref()) { "transactionId " code { (t) } }
                                @if let Some(err) = &e.iys_error { " " span.bad { (err) } }
                            }
                        }
                    }
                }
            }
        }
    }))
}

fn status_class(s: iys::ConsentStatus) -> &'static str {
    match s {
        iys::ConsentStatus::Onay => "ok",
        iys::ConsentStatus::Ret => "bad",
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldForm {
    recipient: String,
    channel: String,
    recipient_type: String,
    hold: String,
}

/// Sets or lifts a manual hold: a change through the ledger with the consent's current status,
/// so history, outbox and events see it as they would from the API.
pub async fn set_hold<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path(code): Path<String>,
    posted: Posted<HoldForm>,
) -> PageResult<Response> {
    let s = &posted.session;
    let f = &posted.form;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Write).await?;
    let (channel, recipient_type) = channel_and_type(&f.channel, &f.recipient_type)?;
    let hold = match f.hold.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(PageError::BadInput(format!(
                "hold: {other:?} must be true or false"
            )));
        }
    };
    let row = hub
        .store
        .consents(brand.brand_code, &f.recipient)
        .await?
        .into_iter()
        .find(|r| r.key.channel == channel && r.key.recipient_type == recipient_type)
        .ok_or(PageError::NotFound)?;
    let change = Change {
        key: ConsentKey {
            brand: brand.brand_code,
            recipient: row.key.recipient.clone(),
            recipient_type,
            channel,
        },
        status: row.state.status,
        consent_date: row.state.consent_date,
        source: row.state.source.clone(),
        origin: Origin::Console,
        actor: Some(s.actor()),
        evidence: None,
        category: None,
        profile_id: None,
        hold: Some(hold),
        iys_transaction_id: None,
        iys_creation_date: None,
        received_at: Timestamp::now(),
    };
    let applied = hub.store.apply(&brand, vec![change], None).await?;
    let outcome = applied
        .first()
        .map(|a| a.outcome.as_str())
        .unwrap_or_default();
    audit(
        &hub,
        s,
        Some(brand.brand_code),
        if hold { "hold_set" } else { "hold_lifted" },
        serde_json::json!({"recipient": row.key.recipient, "channel": channel.as_str(), "recipientType": recipient_type.as_str(), "outcome": outcome}),
    )
    .await;
    Ok(back_to(brand.brand_code, &f.recipient))
}

#[derive(Debug, Deserialize)]
pub struct RequeueForm {
    recipient: String,
}

/// Queues a recipient's failed changes for IYS again, unless a later change overtook them; the
/// store records it in the audit log.
pub async fn requeue<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path(code): Path<String>,
    posted: Posted<RequeueForm>,
) -> PageResult<Response> {
    let s = &posted.session;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Write).await?;
    let recipient = posted.form.recipient;
    let filter = OutboxFilter {
        state: Some(OutboxState::Failed),
        recipient: Some(recipient.clone()),
        ..OutboxFilter::default()
    };
    hub.store
        .requeue(
            brand.brand_code,
            &filter,
            false,
            &s.actor(),
            Timestamp::now(),
        )
        .await?;
    Ok(back_to(brand.brand_code, &recipient))
}

/// Back to the recipient's page after an action.
fn back_to(brand: hub_core::BrandCode, recipient: &str) -> Response {
    let to = format!(
        "{}/recipients?q={}",
        layout::brand_path(brand),
        encode(recipient)
    );
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn channel_and_type(channel: &str, recipient_type: &str) -> PageResult<(Channel, RecipientType)> {
    let c = channel
        .parse()
        .map_err(|_| PageError::BadInput(format!("channel: {channel:?} is not a channel")))?;
    let t = recipient_type.parse().map_err(|_| {
        PageError::BadInput(format!(
            "recipientType: {recipient_type:?} is not BIREYSEL or TACIR"
        ))
    })?;
    Ok((c, t))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictForm {
    recipient: String,
    channel: String,
    recipient_type: String,
}

/// Clears a consent's conflict flag: a person looked at the tie and keeps the RET that won it.
pub async fn acknowledge_conflict<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path(code): Path<String>,
    posted: Posted<ConflictForm>,
) -> PageResult<Response> {
    let s = &posted.session;
    let f = &posted.form;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Write).await?;
    let (channel, recipient_type) = channel_and_type(&f.channel, &f.recipient_type)?;
    let key = ConsentKey {
        brand: brand.brand_code,
        recipient: f.recipient.clone(),
        recipient_type,
        channel,
    };
    if !hub
        .store
        .acknowledge_conflict(&key, &s.actor(), Timestamp::now())
        .await?
    {
        return Err(PageError::NotFound);
    }
    Ok(back_to(brand.brand_code, &f.recipient))
}
