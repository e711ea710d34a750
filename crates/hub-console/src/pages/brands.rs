//! The brands at a glance, a brand's dashboard, and the mode switch with its confirmation.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hub::{HubDb, HubState};
use hub_core::{BrandCode, Mode};
use hub_store::{Brand, ConsoleRole, DailyRow, OutboxFilter, SyncFigures};
use jiff::Timestamp;
use maud::{Markup, html};
use serde::Deserialize;

use crate::error::{PageError, PageResult, maud_response};
use crate::i18n::{Lang, T};
use crate::layout::{self, Tab, age, csrf, mode_badge, when, when_opt};
use crate::session::{Posted, Session};
use crate::{audit, brand_page, chart};

/// A brand's pulls count as stale after this long without a successful read (IYS keeps its
/// changes feed for 7 days).
const STALE_PULL_SECS: i64 = 6 * 86_400;

/// What the brands list shows of one brand.
struct Glance {
    brand: Brand,
    connected: Result<String, String>,
    figures: SyncFigures,
    pull_age: Option<i64>,
}

impl Glance {
    fn count(&self, state: &str) -> i64 {
        outbox_count(&self.figures, state)
    }

    fn healthy(&self) -> bool {
        self.connected.is_ok()
            && self.figures.paused.is_none()
            && self.figures.at_risk == 0
            && self.figures.quarantined == 0
            && self.count("failed") == 0
            && self.pull_age.is_some_and(|a| a <= STALE_PULL_SECS)
    }
}

fn outbox_count(f: &SyncFigures, state: &str) -> i64 {
    f.outbox
        .iter()
        .filter(|(s, _)| s == state)
        .map(|(_, n)| *n)
        .sum()
}

async fn glance<S: HubDb>(hub: &HubState<S>, brand: Brand, now: Timestamp) -> PageResult<Glance> {
    let figures = hub.store.sync_figures(brand.brand_code, now).await?;
    // The pull that succeeded longest ago: one failing source must not hide behind another.
    let pull_age = figures
        .pulls(brand.mode)
        .filter_map(|c| c.last_success)
        .min()
        .map(|t| now.duration_since(t).as_secs());
    let connected = hub
        .iys
        .resolve(&brand.iys)
        .map(|c| format!("{} ({})", c.base_url, c.username))
        .map_err(|why| why.to_string());
    Ok(Glance {
        brand,
        connected,
        figures,
        pull_age,
    })
}

pub async fn list<S: HubDb>(State(hub): State<HubState<S>>, s: Session) -> PageResult<Response> {
    let lang = s.lang;
    let now = Timestamp::now();
    let mut rows = Vec::new();
    for b in hub.store.brands().await? {
        if s.user.may(ConsoleRole::Read, b.brand_code) {
            rows.push(glance(&hub, b, now).await?);
        }
    }
    let body = html! {
        h1 { (lang.t(T::Brands)) }
        @if rows.is_empty() { p { (lang.t(T::NoBrands)) } }
        @else {
            div.scroll { table {
                thead { tr {
                    th { (lang.t(T::Brand)) } th { (lang.t(T::Mode)) } th { (lang.t(T::Connection)) }
                    th { (lang.t(T::LastPull)) } th { "pending / held / failed" } th { (lang.t(T::Health)) }
                } }
                tbody {
                    @for g in &rows {
                        tr {
                            td { a href=(layout::brand_path(g.brand.brand_code)) { (g.brand.name) } br; span.muted { (g.brand.brand_code) } }
                            td { (mode_badge(lang, g.brand.mode)) }
                            td { @match &g.connected {
                                Ok(_) => span.ok { (lang.t(T::Connected)) },
                                Err(why) => span.bad title=(why) { (lang.t(T::NotConnected)) },
                            } }
                            td { (g.pull_age.map_or_else(|| lang.t(T::Never).to_owned(), age)) }
                            td { (g.count("pending")) " / " (g.count("held")) " / " (g.count("failed")) }
                            td { @if g.healthy() { span.ok { (lang.t(T::Healthy)) } } @else { span.warn { (lang.t(T::NeedsAttention)) } } }
                        }
                    }
                }
            } }
        }
    };
    Ok(maud_response(layout::page(
        &s,
        "/brands",
        lang.t(T::Brands),
        None,
        body,
    )))
}

pub async fn dashboard<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path(code): Path<String>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Read).await?;
    let lang = s.lang;
    let now = Timestamp::now();
    let path = layout::brand_path(brand.brand_code);
    let live = live_part(&hub, &s, &brand, now).await?;
    let stats = stats_part(&hub, lang, brand.brand_code, now).await?;
    let body = html! {
        h1 { (brand.name) " — " (lang.t(T::Dashboard)) }
        (live)
        (stats)
    };
    Ok(maud_response(layout::page(
        &s,
        &path,
        lang.t(T::Dashboard),
        Some((&brand, Tab::Dashboard)),
        body,
    )))
}

/// The part that refreshes itself every 15 seconds (htmx asks for the page again and swaps
/// this element only; without JavaScript the page is complete as served).
async fn live_part<S: HubDb>(
    hub: &HubState<S>,
    s: &Session,
    brand: &Brand,
    now: Timestamp,
) -> PageResult<Markup> {
    let lang = s.lang;
    let g = glance(hub, brand.clone(), now).await?;
    let f = &g.figures;
    let at_risk = hub
        .store
        .outbox_rows(
            brand.brand_code,
            &OutboxFilter {
                at_risk: true,
                ..OutboxFilter::default()
            },
            now,
            0,
            20,
        )
        .await?
        .rows;
    let today = iys::consent_date::ISTANBUL.to_datetime(now).date();
    let from = today
        .checked_sub(jiff::Span::new().days(6))
        .unwrap_or(today);
    let days = hub
        .store
        .reconcile_days(brand.brand_code, from, today)
        .await?;
    let token = match hub.iys.resolve(&brand.iys) {
        Ok(c) => hub
            .store
            .load_token(&c.token_key())
            .await?
            .and_then(|t| hub::dto::sync::TokenState::from_stored(&t)),
        Err(_) => None,
    };
    // A few failing changes per H-code, to show what each error is about.
    let mut examples = Vec::new();
    for (code, _) in &f.errors_last_24h {
        let rows = hub
            .store
            .outbox_rows(
                brand.brand_code,
                &OutboxFilter {
                    hcode: Some(code.clone()),
                    ..OutboxFilter::default()
                },
                now,
                0,
                3,
            )
            .await?
            .rows;
        examples.push(rows);
    }
    let quarantined = hub.store.quarantined(brand.brand_code, 20).await?;
    let may_write = s.user.may(ConsoleRole::Write, brand.brand_code);
    let path = layout::brand_path(brand.brand_code);
    let other = match brand.mode {
        Mode::Sync => Mode::Integrator,
        Mode::Integrator => Mode::Sync,
    };
    Ok(html! {
        div #live hx-get=(path) hx-trigger="every 15s" hx-select="#live" hx-swap="outerHTML" {
            p.muted { (lang.t(T::LiveRefresh)) " " (when(now)) }
            div.grid {
                section.card {
                    h2 { (lang.t(T::SyncHealth)) }
                    p { (lang.t(T::Mode)) ": " (mode_badge(lang, brand.mode)) " "
                        @if s.user.may(ConsoleRole::Admin, brand.brand_code) {
                            a #switch-mode href=(format!("{path}/mode?to={}", other.as_str())) { (lang.t(T::SwitchMode)) }
                        }
                    }
                    p { (lang.t(T::Connection)) ": " @match &g.connected {
                        Ok(c) => span.ok { (lang.t(T::Connected)) " — " (c) },
                        Err(why) => span.bad { (lang.t(T::NotConnected)) " — " (why) },
                    } }
                    p { (lang.t(T::Token)) ": " @match &token {
                        Some(t) if t.halt_until.is_some() => span.bad { (lang.t(T::TokenHalted)) " " (stored_time(t.halt_until.as_deref())) },
                        Some(t) => span { (lang.t(T::TokenValidUntil)) " " (stored_time(t.access_expires.as_deref())) },
                        None => span.muted { (lang.t(T::NoToken)) },
                    } }
                    p { (lang.t(T::LastPull)) ": " (when_opt(lang, f.pulls(brand.mode).filter_map(|c| c.last_success).max())) }
                    p { (lang.t(T::CursorAge)) ": "
                        @match g.pull_age {
                            Some(a) if a > STALE_PULL_SECS => span.bad { (age(a)) " (" (lang.t(T::Stale)) ")" },
                            Some(a) => span { (age(a)) },
                            None => span.warn { (lang.t(T::Never)) },
                        }
                    }
                    @match &f.paused {
                        Some(p) => p.bad { (lang.t(T::Paused)) ": " (p.reason) " (" (when(p.since)) " → " (when(p.until)) ")" },
                        None => p.ok { (lang.t(T::NotPaused)) },
                    }
                    p { (lang.t(T::Quarantined)) ": " strong { (f.quarantined) } }
                }
                section.card {
                    h2 { (lang.t(T::Outbox)) }
                    table #outbox {
                        thead { tr { th { (lang.t(T::State)) } th { (lang.t(T::Count)) } } }
                        tbody { @for (state, n) in &f.outbox { tr { td { (state) } td data-state=(state) { (n) } } } }
                    }
                    @if let Some(d) = f.oldest_pending_deadline { p { (lang.t(T::Deadline)) ": " (when(d)) } }
                }
                section.card {
                    h2 { (lang.t(T::Errors24h)) }
                    @if f.errors_last_24h.is_empty() { p { (lang.t(T::NoErrors)) } }
                    @else {
                        table {
                            thead { tr { th { (lang.t(T::Code)) } th { (lang.t(T::Count)) } th { (lang.t(T::Meaning)) } th { (lang.t(T::Examples)) } } }
                            tbody { @for ((code, n), rows) in f.errors_last_24h.iter().zip(&examples) {
                                tr data-hcode=(code) {
                                    td { code { (code) } } td { (n) } td { (hcode_meaning(lang, code)) }
                                    td { @for r in rows {
                                        a href=(format!("{path}/recipients?q={}", crate::error::encode(&r.recipient))) { (r.recipient) }
                                        " " span.muted { (r.channel.as_str()) " " (r.status.as_str()) } br;
                                    } }
                                }
                            } }
                        }
                    }
                }
            }
            section.card {
                h2 { (lang.t(T::AtRisk)) ": " span class=(if f.at_risk > 0 { "bad" } else { "ok" }) { (f.at_risk) } }
                @if !at_risk.is_empty() {
                    div.scroll { table {
                        thead { tr { th { (lang.t(T::Recipients)) } th { (lang.t(T::Channel)) } th { (lang.t(T::Status)) } th { (lang.t(T::State)) } th { (lang.t(T::Deadline)) } } }
                        tbody { @for r in &at_risk { tr {
                            td { a href=(format!("{path}/recipients?q={}", crate::error::encode(&r.recipient))) { (r.recipient) } }
                            td { (r.channel.as_str()) } td { (r.status.as_str()) } td { (r.state.as_str()) }
                            td class=(if r.deadline <= now { "bad" } else { "warn" }) { (when(r.deadline)) }
                        } } }
                    } }
                }
            }
            @if !quarantined.is_empty() {
                section.card #quarantine {
                    h2 { (lang.t(T::Quarantined)) }
                    div.scroll { table {
                        thead { tr { th { (lang.t(T::When)) } th { (lang.t(T::Reason)) } th { (lang.t(T::Movement)) } @if may_write { th { (lang.t(T::Action)) } } } }
                        tbody { @for q in &quarantined { tr data-quarantine=(q.id) {
                            td { (when(q.at)) br; span.muted { (q.source) } }
                            td { (q.reason) }
                            td { code { (q.movement) } }
                            @if may_write { td { form.inline method="post" action=(format!("{path}/quarantine/{}/resolve", q.id)) {
                                (csrf(s)) button type="submit" { (lang.t(T::MarkHandled)) }
                            } } }
                        } } }
                    } }
                }
            }
            section.card {
                h2 { (lang.t(T::Reconciliation)) }
                @if days.is_empty() { p { (lang.t(T::NoReconciliation)) } }
                @else {
                    div.scroll { table {
                        thead { tr { th { (lang.t(T::Day)) } th { (lang.t(T::State)) } th { "IYS / hub" } th { (lang.t(T::Matched)) } th { (lang.t(T::Remaining)) } th { (lang.t(T::NeedsPerson)) } } }
                        tbody { @for d in &days { tr {
                            td { (d.date) } td { (d.status.as_str()) } td { (d.iys_rows) " / " (d.hub_rows) }
                            td { (d.matched) } td class=(if d.remaining > 0 { "bad" } else { "" }) { (d.remaining) } td { (d.needs_person) }
                        } } }
                    } }
                }
            }
        }
    })
}

/// A time the IYS client stored (RFC 3339), as people read it; other text as it is.
fn stored_time(t: Option<&str>) -> String {
    match t {
        Some(text) => text
            .parse::<Timestamp>()
            .map_or_else(|_| text.to_owned(), when),
        None => "-".to_owned(),
    }
}

/// IYS's own text for an H-code in Turkish, our gloss in English; other reasons as they are.
fn hcode_meaning(lang: Lang, code: &str) -> &'static str {
    match code.parse::<iys::HCode>() {
        Ok(c) => match lang {
            Lang::Tr => c.message_tr(),
            Lang::En => c.gloss_en(),
        },
        Err(_) => "",
    }
}

async fn stats_part<S: HubDb>(
    hub: &HubState<S>,
    lang: Lang,
    brand: BrandCode,
    now: Timestamp,
) -> PageResult<Markup> {
    let today = iys::consent_date::ISTANBUL.to_datetime(now).date();
    let days: Vec<String> = (0..30)
        .rev()
        .filter_map(|back| today.checked_sub(jiff::Span::new().days(back)).ok())
        .map(|d| d.to_string())
        .collect();
    let (Some(from), Some(to)) = (days.first(), days.last()) else {
        return Ok(html! {});
    };
    let tally = hub.store.consent_tally(brand).await?;
    let daily = hub.store.daily_counts(brand, from, to).await?;
    // One chart per channel that moved in the period (all channels together when none did).
    let mut channels: Vec<&str> = daily.iter().map(|d| d.channel.as_str()).collect();
    channels.sort_unstable();
    channels.dedup();
    let charts: Vec<(String, Vec<chart::Day>)> = if channels.is_empty() {
        vec![(lang.t(T::All).to_owned(), chart::by_day(&days, &[]))]
    } else {
        channels
            .iter()
            .map(|c| {
                let rows: Vec<DailyRow> =
                    daily.iter().filter(|d| d.channel == *c).cloned().collect();
                ((*c).to_owned(), chart::by_day(&days, &rows))
            })
            .collect()
    };
    Ok(html! {
        div.grid {
            section.card {
                h2 { (lang.t(T::Consents)) }
                table #tally {
                    thead { tr { th { (lang.t(T::Channel)) } th { (lang.t(T::Status)) } th { (lang.t(T::IysState)) } th { (lang.t(T::Count)) } } }
                    tbody { @for t in &tally { tr { td { (t.channel) } td { (t.status) } td { (t.iys_state) } td { (t.count) } } } }
                }
            }
            @for (channel, series) in &charts {
                @let (ins, outs) = series.iter().fold((0i64, 0i64), |(i, o), d| (i + d.opt_ins, o + d.opt_outs));
                @let title = format!("{} — {channel}", lang.t(T::OptInsOuts));
                section.card.chart data-channel=(channel) {
                    h2 { (title) }
                    (chart::svg(&title, series, lang.t(T::OptIns), lang.t(T::OptOuts)))
                    p { span.ok { (ins) " " (lang.t(T::OptIns)) } " · " span.bad { (outs) " " (lang.t(T::OptOuts)) } }
                }
            }
        }
    })
}

#[derive(Debug, Deserialize)]
pub struct ModeQuery {
    to: Option<String>,
}

fn mode_param(v: Option<&str>) -> PageResult<Mode> {
    match v {
        Some("sync") => Ok(Mode::Sync),
        Some("integrator") => Ok(Mode::Integrator),
        other => Err(PageError::BadInput(format!(
            "to: {:?} is not a mode: expected sync or integrator",
            other.unwrap_or_default()
        ))),
    }
}

/// The confirmation: what the switch will do, with the counts as they are now.
pub async fn mode_page<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path(code): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ModeQuery>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Admin).await?;
    let to = mode_param(q.to.as_deref())?;
    let lang = s.lang;
    let path = layout::brand_path(brand.brand_code);
    if to == brand.mode {
        return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, path)]).into_response());
    }
    let preview = hub.store.mode_switch_preview(brand.brand_code, to).await?;
    let body = html! {
        h1 { (lang.t(T::SwitchMode)) }
        section.card {
            p { (mode_badge(lang, brand.mode)) " → " (mode_badge(lang, to)) }
            p { (lang.t(match to { Mode::Sync => T::SwitchToSyncExplain, Mode::Integrator => T::SwitchToIntegratorExplain })) }
            p.notice #preview {
                @match to {
                    Mode::Sync => { strong #held-count { (preview.held) } " " (lang.t(T::WillHold)) },
                    Mode::Integrator => { strong #release-count { (preview.released) } " " (lang.t(T::WillRelease)) },
                }
            }
            form method="post" action=(format!("{path}/mode")) {
                (csrf(&s))
                input type="hidden" name="to" value=(to.as_str());
                button #confirm type="submit" { (lang.t(T::Confirm)) ": " (lang.t(T::SwitchTo)) " " (to.as_str()) }
                " "
                a href=(path) { (lang.t(T::Cancel)) }
            }
        }
    };
    Ok(maud_response(layout::page(
        &s,
        &format!("{path}/mode?to={}", to.as_str()),
        lang.t(T::SwitchMode),
        Some((&brand, Tab::Dashboard)),
        body,
    )))
}

#[derive(Debug, Deserialize)]
pub struct ModeForm {
    to: String,
}

pub async fn switch_mode<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path(code): Path<String>,
    posted: Posted<ModeForm>,
) -> PageResult<Response> {
    let s = &posted.session;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Admin).await?;
    let to = mode_param(Some(posted.form.to.as_str()))?;
    if to != brand.mode {
        // Recorded in the audit log by the store, in the switch's own transaction.
        hub.store
            .switch_mode(brand.brand_code, to, &s.actor())
            .await?;
        hub.caches.brands.remove(&brand.brand_code);
    } else {
        audit(
            &hub,
            s,
            Some(brand.brand_code),
            "mode_switch_unchanged",
            serde_json::json!({"mode": to.as_str()}),
        )
        .await;
    }
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, layout::brand_path(brand.brand_code))],
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// Marks a quarantined movement as handled (a person took care of it in IYS or the hub).
pub async fn resolve_quarantine<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path((code, id)): Path<(String, i64)>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let s = &posted.session;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Write).await?;
    if !hub
        .store
        .resolve_quarantine(brand.brand_code, id, &s.actor(), Timestamp::now())
        .await?
    {
        return Err(PageError::NotFound);
    }
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, layout::brand_path(brand.brand_code))],
    )
        .into_response())
}
