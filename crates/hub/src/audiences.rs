//! Audiences: a segment's members streamed, and the campaign filter, which streams a list of
//! recipients through the send-time check and answers the allowed ones with deny counts by
//! reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use futures_util::StreamExt;
use hub_core::{BrandCode, CategoryKind, Channel, Policy, Reason, check};
use hub_store::{SegmentDefinition, SegmentMember, category_statuses_apart, send_states_apart};
use iys::{ConsentStatus, RecipientType};
use serde::Serialize;
use tokio::sync::mpsc::Sender;

use crate::exports::csv_line;
use crate::input::normalise_recipient;
use crate::{HubDb, HubState};

/// How a streamed answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// Consents read per page of a segment.
const MEMBER_PAGE: u32 = 5_000;
/// Bytes sent per piece of a streamed answer.
const PIECE: usize = 256 * 1024;

type Piece = Result<Vec<u8>, std::io::Error>;

const MEMBER_COLUMNS: [&str; 8] = [
    "recipient",
    "recipientType",
    "channel",
    "status",
    "iysState",
    "source",
    "consentDate",
    "updatedAt",
];

fn member_line(out: &mut Vec<u8>, m: &SegmentMember, format: Format) {
    let updated = m.updated_at.to_string();
    match format {
        Format::Csv => csv_line(
            out,
            &[
                Some(&m.recipient),
                Some(m.recipient_type.as_str()),
                Some(m.channel.as_str()),
                Some(m.status.as_str()),
                Some(m.iys_state.as_str()),
                Some(&m.source),
                Some(&m.consent_date),
                Some(&updated),
            ],
        ),
        Format::Ndjson => {
            if serde_json::to_writer(&mut *out, m).is_ok() {
                out.push(b'\n');
            }
        }
    }
}

/// Counts a definition's members, page by page.
pub async fn count_members<S: HubDb>(
    store: &S,
    brand: BrandCode,
    definition: &SegmentDefinition,
    category: Option<CategoryKind>,
) -> hub_store::Result<u64> {
    let mut count = 0u64;
    let mut after = None;
    loop {
        let page = store
            .segment_members(brand, definition, category, after.as_ref(), MEMBER_PAGE)
            .await?;
        count += page.members.len() as u64;
        match page.next {
            Some(k) => after = Some(k),
            None => return Ok(count),
        }
    }
}

/// Streams a definition's members to `tx` until the last page or the receiver goes away. A
/// store error ends the body with an error, so the client sees a broken transfer, never a
/// short list that looks complete.
pub async fn stream_members<S: HubDb>(
    store: &S,
    brand: BrandCode,
    definition: &SegmentDefinition,
    category: Option<CategoryKind>,
    format: Format,
    tx: Sender<Piece>,
) {
    let mut out = Vec::with_capacity(PIECE + 4096);
    if format == Format::Csv {
        csv_line(&mut out, &MEMBER_COLUMNS.map(Some));
    }
    let mut after = None;
    loop {
        let page = match store
            .segment_members(brand, definition, category, after.as_ref(), MEMBER_PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(brand = brand.0, error = %e, "segment members: stopped");
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return;
            }
        };
        for m in &page.members {
            member_line(&mut out, m, format);
            if out.len() >= PIECE && tx.send(Ok(std::mem::take(&mut out))).await.is_err() {
                return;
            }
        }
        match page.next {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    if !out.is_empty() {
        let _ = tx.send(Ok(out)).await;
    }
}

/// What the campaign filter is asked.
#[derive(Debug, Clone)]
pub struct CampaignFilter {
    pub brand: BrandCode,
    pub channel: Channel,
    pub recipient_type: RecipientType,
    /// The category's code and kind.
    pub category: Option<(String, CategoryKind)>,
    pub policy: Policy,
    /// How the list is written: one recipient a line (CSV's first column, or plain), or NDJSON
    /// (`"…"` or `{"recipient": "…"}` a line).
    pub input: Format,
    pub output: Format,
}

/// The campaign filter's figures, the last line of its answer.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterSummary {
    /// Recipients read (blank lines and a header left out).
    pub received: u64,
    pub allowed: u64,
    /// Denied ones by reason (`invalid_recipient` for ones that are not a valid address,
    /// `unreadable_state` for ones whose stored consent cannot be read).
    pub denied: BTreeMap<String, u64>,
}

/// Recipients decided per round.
const ROUND: usize = 10_000;

/// The recipient a line of the list gives; `None` for a blank line.
fn recipient_of(line: &[u8], input: Format) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match input {
        Format::Ndjson => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::String(s)) => Some(s),
            Ok(serde_json::Value::Object(o)) => Some(
                o.get("recipient")
                    .and_then(|r| r.as_str())
                    .unwrap_or_default()
                    .to_owned(),
            ),
            // Not JSON, or not a recipient: kept, so it is counted as invalid.
            _ => Some(text.to_owned()),
        },
        Format::Csv => {
            let first = text.split([',', ';', '\t']).next().unwrap_or_default();
            Some(first.trim().trim_matches('"').trim().to_owned())
        }
    }
}

/// What every round of one filter shares; rounds run as tasks of their own, so the CPU work of
/// one (normalising, checking) runs beside another's on the second core.
struct Round<S> {
    hub: HubState<S>,
    filter: CampaignFilter,
}

/// The filter's answer for one recipient of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Allowed, stored as given in the list.
    Allowed,
    /// Allowed, stored under its normalised form.
    AllowedAs(String),
    Denied(Reason),
    /// Not a valid address for the channel.
    Invalid,
    /// The stored consent cannot be read: never allowed until it is mended.
    Unreadable,
}

/// How a recipient of the list is known to the store.
enum Stored {
    AsGiven,
    As(String),
    Invalid,
    /// Its stored consent cannot be read.
    Unreadable,
}

impl Stored {
    /// The name the store knows the recipient by, given the list's; none for an invalid one.
    fn name<'a>(&'a self, given: &'a str) -> Option<&'a str> {
        match self {
            Stored::AsGiven => Some(given),
            Stored::As(n) => Some(n),
            Stored::Invalid | Stored::Unreadable => None,
        }
    }
}

impl<S: HubDb> Round<S> {
    /// Decides `list` in order. Most lists hold recipients as the hub stores them, so they are
    /// looked up as given first; only those not found are normalised (a phone through
    /// libphonenumber) and looked up again.
    async fn decide(&self, list: Arc<[String]>) -> hub_store::Result<Vec<Verdict>> {
        let f = &self.filter;
        let store = &self.hub.store;
        let (mut states, unreadable) =
            send_states_apart(&**store, f.brand, f.channel, f.recipient_type, list.clone()).await?;
        let mut stored: Vec<Stored> = states
            .iter()
            .map(|s| match s {
                Some(_) => Stored::AsGiven,
                None => Stored::Invalid,
            })
            .collect();
        for (at, _) in unreadable {
            if let Some(slot) = stored.get_mut(at) {
                *slot = Stored::Unreadable;
            }
        }
        let (missing_at, missing): (Vec<usize>, Vec<String>) = states
            .iter()
            .zip(list.iter())
            .zip(&stored)
            .enumerate()
            .filter(|(_, ((s, _), how))| s.is_none() && !matches!(how, Stored::Unreadable))
            .map(|(i, ((_, r), _))| (i, r.clone()))
            .unzip();
        let normalised =
            self.hub
                .caches
                .recipients
                .normalise_all(&missing, f.channel, normalise_recipient);
        let mut again_at = Vec::new();
        let mut again = Vec::new();
        for ((at, raw), n) in missing_at.into_iter().zip(&missing).zip(normalised) {
            let Some(slot) = stored.get_mut(at) else {
                continue;
            };
            match n {
                Ok(n) if &n == raw => *slot = Stored::AsGiven,
                Ok(n) => {
                    again_at.push(at);
                    again.push(n.clone());
                    *slot = Stored::As(n);
                }
                Err(_) => *slot = Stored::Invalid,
            }
        }
        if !again.is_empty() {
            let (found, unreadable) =
                send_states_apart(&**store, f.brand, f.channel, f.recipient_type, again.into())
                    .await?;
            for (at, state) in again_at.iter().zip(found) {
                if let Some(slot) = states.get_mut(*at) {
                    *slot = state;
                }
            }
            for (place, _) in unreadable {
                if let Some(slot) = again_at.get(place).and_then(|at| stored.get_mut(*at)) {
                    *slot = Stored::Unreadable;
                }
            }
        }
        let (categories, by_profile) = match &f.category {
            Some((code, CategoryKind::Marketing)) => {
                let known: Vec<String> = stored
                    .iter()
                    .zip(list.iter())
                    .filter_map(|(s, given)| s.name(given).map(str::to_owned))
                    .collect();
                let (statuses, unreadable) =
                    category_statuses_apart(&**store, f.brand, code, &known).await?;
                if !unreadable.is_empty() {
                    for (slot, given) in stored.iter_mut().zip(list.iter()) {
                        if slot.name(given).is_some_and(|n| unreadable.contains_key(n)) {
                            *slot = Stored::Unreadable;
                        }
                    }
                }
                (
                    statuses,
                    store.refused_by_profile(f.brand, code, &known).await?,
                )
            }
            _ => Default::default(),
        };
        Ok(stored
            .into_iter()
            .zip(states)
            .zip(list.iter())
            .map(|((s, state), given)| {
                let recipient = match (&s, s.name(given)) {
                    (Stored::Unreadable, _) => return Verdict::Unreadable,
                    (_, Some(recipient)) => recipient,
                    (_, None) => return Verdict::Invalid,
                };
                let cat = f.category.as_ref().map(|(_, kind)| {
                    let refused = by_profile.contains(recipient)
                        || categories.get(recipient) == Some(&ConsentStatus::Ret);
                    (*kind, refused.then_some(ConsentStatus::Ret))
                });
                let d = check(f.channel, state.as_ref(), cat, f.policy);
                match (d.allowed, s) {
                    (false, _) => Verdict::Denied(d.reason),
                    (true, Stored::As(n)) => Verdict::AllowedAs(n),
                    (true, _) => Verdict::Allowed,
                }
            })
            .collect())
    }
}

/// A deny reason's name, as the answer's summary and `/check` spell it.
fn reason_name(reason: Reason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "denied".into())
}

fn allowed_line(out: &mut Vec<u8>, recipient: &str, format: Format) {
    match format {
        Format::Csv => csv_line(out, &[Some(recipient)]),
        Format::Ndjson => {
            if serde_json::to_writer(&mut *out, &serde_json::json!({ "recipient": recipient }))
                .is_ok()
            {
                out.push(b'\n');
            }
        }
    }
}

/// Rounds decided at once: while one waits for its lookups (on a blocking thread, or the
/// database server), the next is normalised and looked up.
const ROUNDS_AT_ONCE: usize = 2;

/// Splits `body` into rounds of up to [`ROUND`] recipients, sent on `rounds`. `Err` when the
/// upload broke off.
async fn read_rounds(body: Body, input: Format, rounds: Sender<Vec<String>>) -> Result<(), String> {
    let mut stream = body.into_data_stream();
    let mut rest: Vec<u8> = Vec::new();
    let mut list: Vec<String> = Vec::with_capacity(ROUND);
    let mut first_line = true;
    let mut ended = false;
    while !ended {
        match stream.next().await {
            Some(Ok(piece)) => rest.extend_from_slice(&piece),
            Some(Err(e)) => return Err(format!("the list broke off: {e}")),
            None => {
                ended = true;
                rest.push(b'\n');
            }
        }
        let mut start = 0;
        while let Some(end) = rest
            .get(start..)
            .and_then(|r| r.iter().position(|b| *b == b'\n'))
        {
            let line = rest.get(start..start + end).unwrap_or_default();
            start += end + 1;
            let Some(r) = recipient_of(line, input) else {
                continue;
            };
            // A CSV list may start with its header.
            if std::mem::take(&mut first_line)
                && input == Format::Csv
                && r.eq_ignore_ascii_case("recipient")
            {
                continue;
            }
            list.push(r);
            if list.len() >= ROUND
                && rounds
                    .send(std::mem::replace(&mut list, Vec::with_capacity(ROUND)))
                    .await
                    .is_err()
            {
                return Ok(());
            }
        }
        rest.drain(..start);
    }
    if !list.is_empty() {
        let _ = rounds.send(list).await;
    }
    Ok(())
}

/// Runs the campaign filter over `body`, sending the allowed recipients in input order and,
/// last, the summary (`{"summary": …}` in NDJSON; a `# summary {…}` line in CSV).
pub async fn run_filter<S: HubDb>(
    hub: HubState<S>,
    filter: CampaignFilter,
    body: Body,
    tx: Sender<Piece>,
) {
    let round = Arc::new(Round {
        hub,
        filter: filter.clone(),
    });
    let (rounds_tx, rounds_rx) = tokio::sync::mpsc::channel::<Vec<String>>(ROUNDS_AT_ONCE);
    let reading = read_rounds(body, filter.input, rounds_tx);
    let deciding = async {
        let mut summary = FilterSummary::default();
        // Counted by reason and named once at the end.
        let mut denied: std::collections::HashMap<Reason, u64> = Default::default();
        let mut invalid = 0u64;
        let mut unreadable = 0u64;
        let mut out = Vec::with_capacity(PIECE + 4096);
        if filter.output == Format::Csv {
            csv_line(&mut out, &[Some("recipient")]);
        }
        let mut decided = futures_util::stream::poll_fn({
            let mut rx = rounds_rx;
            move |cx| rx.poll_recv(cx)
        })
        .map(|list| {
            let round = round.clone();
            let list: Arc<[String]> = list.into();
            tokio::spawn(async move { (list.clone(), round.decide(list).await) })
        })
        .buffered(ROUNDS_AT_ONCE);
        while let Some(joined) = decided.next().await {
            let (list, result) = match joined {
                Ok(done) => done,
                Err(e) => return Err(format!("a round of the filter failed: {e}")),
            };
            let decisions = match result {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(brand = filter.brand.0, error = %e, "campaign filter: stopped");
                    return Err(e.to_string());
                }
            };
            summary.received += list.len() as u64;
            for (given, verdict) in list.iter().zip(decisions) {
                match verdict {
                    Verdict::Allowed => {
                        summary.allowed += 1;
                        allowed_line(&mut out, given, filter.output);
                    }
                    Verdict::AllowedAs(stored) => {
                        summary.allowed += 1;
                        allowed_line(&mut out, &stored, filter.output);
                    }
                    Verdict::Denied(reason) => *denied.entry(reason).or_default() += 1,
                    Verdict::Invalid => invalid += 1,
                    Verdict::Unreadable => unreadable += 1,
                }
            }
            if out.len() >= PIECE && tx.send(Ok(std::mem::take(&mut out))).await.is_err() {
                return Ok(None);
            }
        }
        for (reason, n) in denied {
            *summary.denied.entry(reason_name(reason)).or_default() += n;
        }
        for (name, n) in [
            ("invalid_recipient", invalid),
            ("unreadable_state", unreadable),
        ] {
            if n > 0 {
                summary.denied.insert(name.to_owned(), n);
            }
        }
        Ok(Some((summary, out)))
    };
    let (read, decided) = tokio::join!(reading, deciding);
    let ended = match (read, decided) {
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(()), Ok(None)) => return,
        (Ok(()), Ok(Some(done))) => Ok(done),
    };
    let (summary, mut out) = match ended {
        Ok(done) => done,
        Err(e) => {
            let _ = tx.send(Err(std::io::Error::other(e))).await;
            return;
        }
    };
    let summary = serde_json::json!({ "summary": summary }).to_string();
    match filter.output {
        Format::Ndjson => out.extend_from_slice(summary.as_bytes()),
        Format::Csv => {
            out.extend_from_slice(b"# summary ");
            out.extend_from_slice(summary.as_bytes());
        }
    }
    out.push(b'\n');
    let _ = tx.send(Ok(out)).await;
}
