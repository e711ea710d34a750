//! Exports: a brand's consents by filter, page by page in key order, written as CSV or NDJSON in
//! the importer's own columns while they are read, so no export is held in memory.

use hub_core::{BrandCode, Channel};
use hub_store::{CategoryExportRow, ConsentFilter, ConsentRow, SqlStore, Store};
use tokio::sync::mpsc::Sender;

/// Rows read per page (one indexed range read each).
const PAGE: u32 = 5_000;

/// The columns of an export, in order; the importer reads each of them by default and ignores
/// the informational `iysState` and `updatedAt`.
pub const COLUMNS: [&str; 8] = [
    "recipient",
    "type",
    "channel",
    "recipientType",
    "status",
    "consentDate",
    "source",
    "iysState",
];

/// The columns of a category export: a recipient's (or a profile's) consent to one message
/// category, with the channel of the change that set it, as the importer reads them.
pub const CATEGORY_COLUMNS: [&str; 9] = [
    "recipient",
    "profileId",
    "type",
    "channel",
    "recipientType",
    "status",
    "consentDate",
    "source",
    "category",
];

/// What an export lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportSource {
    /// Channel consents matching a filter.
    Consents(ConsentFilter),
    /// Consents to one message category (of one status, when given).
    Category {
        code: String,
        status: Option<iys::ConsentStatus>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

/// Appends one CSV record (RFC 4180: quoted when it holds a comma, a quote or a line break).
pub fn csv_line(out: &mut Vec<u8>, fields: &[Option<&str>]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let f = f.unwrap_or("");
        if f.contains([',', '"', '\n', '\r']) {
            out.push(b'"');
            out.extend_from_slice(f.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(f.as_bytes());
        }
    }
    out.push(b'\n');
}

/// Writes one consent in [`COLUMNS`] order; `date` is a buffer kept across rows.
fn write_consent(out: &mut Vec<u8>, format: ExportFormat, row: &ConsentRow, date: &mut String) {
    use std::fmt::Write as _;
    date.clear();
    // Writing into a String cannot fail.
    let _ = write!(date, "{}", row.state.consent_date);
    let (iys_type, channel) = type_or_channel(row.key.channel);
    write(
        out,
        format,
        &COLUMNS,
        &[
            Some(&row.key.recipient),
            iys_type,
            channel,
            Some(row.key.recipient_type.as_str()),
            Some(row.state.status.as_str()),
            Some(date),
            Some(row.state.source.as_str()),
            Some(row.state.iys_state.as_str()),
        ],
    );
}

/// The IYS type or the hub's channel of a change, in the column the importer reads it from.
fn type_or_channel(channel: Channel) -> (Option<&'static str>, Option<&'static str>) {
    match channel.iys_type() {
        Some(t) => (Some(t.as_str()), None),
        None => (None, Some(channel.as_str())),
    }
}

/// Writes one category consent in [`CATEGORY_COLUMNS`] order.
fn write_category(out: &mut Vec<u8>, format: ExportFormat, row: &CategoryExportRow) {
    let c = &row.consent;
    let (recipient, profile) = match c.subject.strip_prefix("profile:") {
        Some(p) => (None, Some(p)),
        None => (Some(c.subject.as_str()), row.profile_id.as_deref()),
    };
    let (iys_type, channel) = match row.channel.parse::<Channel>() {
        Ok(ch) => type_or_channel(ch),
        Err(_) => (None, Some(row.channel.as_str())),
    };
    let date = c.consent_date.to_string();
    write(
        out,
        format,
        &CATEGORY_COLUMNS,
        &[
            recipient,
            profile,
            iys_type,
            channel,
            Some(&row.recipient_type),
            Some(c.status.as_str()),
            Some(&date),
            Some(c.source.as_str()),
            Some(&c.category),
        ],
    );
}

fn write(out: &mut Vec<u8>, format: ExportFormat, columns: &[&str], values: &[Option<&str>]) {
    match format {
        ExportFormat::Csv => csv_line(out, values),
        ExportFormat::Ndjson => {
            let object: serde_json::Map<String, serde_json::Value> = columns
                .iter()
                .zip(values)
                .filter_map(|(k, v)| {
                    v.map(|v| ((*k).to_owned(), serde_json::Value::String(v.to_owned())))
                })
                .collect();
            // A map of strings always serialises.
            if serde_json::to_writer(&mut *out, &object).is_ok() {
                out.push(b'\n');
            }
        }
    }
}

/// One page of an export, read.
enum Page {
    Consents(Vec<ConsentRow>),
    Category(Vec<CategoryExportRow>),
}

impl Page {
    fn len(&self) -> usize {
        match self {
            Page::Consents(rows) => rows.len(),
            Page::Category(rows) => rows.len(),
        }
    }
}

/// Where the next page starts: after the last key (or subject) of the one before.
enum After {
    Start,
    Key(hub_core::ConsentKey),
    Subject(String),
}

/// Reads the page of `source` after `after`.
async fn read_page(
    store: SqlStore,
    brand: BrandCode,
    source: ExportSource,
    after: After,
) -> hub_store::Result<Page> {
    match &source {
        ExportSource::Consents(filter) => {
            let key = match &after {
                After::Key(k) => Some(k),
                _ => None,
            };
            let rows = store.list_consents(brand, filter, key, PAGE).await?;
            Ok(Page::Consents(rows))
        }
        ExportSource::Category { code, status } => {
            let subject = match &after {
                After::Subject(s) => Some(s.as_str()),
                _ => None,
            };
            let rows = store
                .category_consents_page(brand, code, *status, subject, PAGE)
                .await?;
            Ok(Page::Category(rows))
        }
    }
}

/// Streams what `source` names of `brand` to `tx`, a page at a time; the next page is read
/// while this one is written (keyset pages: its start is this page's last key). A failure is
/// sent as the stream's last item (the client sees a broken-off body, never a silent cut).
/// Returns the rows written.
pub async fn export(
    store: &SqlStore,
    brand: BrandCode,
    source: &ExportSource,
    format: ExportFormat,
    tx: Sender<Result<Vec<u8>, std::io::Error>>,
) -> u64 {
    let columns: &[&str] = match source {
        ExportSource::Consents(_) => &COLUMNS,
        ExportSource::Category { .. } => &CATEGORY_COLUMNS,
    };
    let mut out = Vec::with_capacity(1 << 20);
    if format == ExportFormat::Csv {
        let header: Vec<Option<&str>> = columns.iter().map(|c| Some(*c)).collect();
        csv_line(&mut out, &header);
    }
    let read = |after| tokio::spawn(read_page(store.clone(), brand, source.clone(), after));
    let mut reading = read(After::Start);
    let mut written = 0u64;
    let mut date = String::new();
    loop {
        let page = match reading.await {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return written;
            }
            Err(e) => {
                let _ = tx
                    .send(Err(std::io::Error::other(format!(
                        "an export read failed: {e}"
                    ))))
                    .await;
                return written;
            }
        };
        let n = page.len();
        let last = n < PAGE as usize;
        let next = match &page {
            Page::Consents(rows) => rows.last().map(|r| After::Key(r.key.clone())),
            Page::Category(rows) => rows
                .last()
                .map(|r| After::Subject(r.consent.subject.clone())),
        };
        let following = match next {
            Some(after) if !last => Some(read(after)),
            _ => None,
        };
        match &page {
            Page::Consents(rows) => {
                for row in rows {
                    write_consent(&mut out, format, row, &mut date);
                }
            }
            Page::Category(rows) => {
                for row in rows {
                    write_category(&mut out, format, row);
                }
            }
        }
        written += n as u64;
        if tx
            .send(Ok(std::mem::replace(&mut out, Vec::with_capacity(1 << 20))))
            .await
            .is_err()
        {
            return written;
        }
        match following {
            Some(f) => reading = f,
            None => return written,
        }
    }
}

/// Streams an import's rejected rows as CSV (`line,code,field,value,message`) to `tx`, in line
/// order, a page at a time.
pub async fn rejects(store: &SqlStore, import: i64, tx: Sender<Result<Vec<u8>, std::io::Error>>) {
    const PAGE: u32 = 5_000;
    let mut out = b"line,code,field,value,message\n".to_vec();
    let mut after = 0u64;
    loop {
        let page = match store.import_rejects(import, after, PAGE).await {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return;
            }
        };
        for r in &page {
            let line = r.line.to_string();
            csv_line(
                &mut out,
                &[
                    Some(line.as_str()),
                    Some(r.code.as_str()),
                    r.field.as_deref(),
                    r.value.as_deref(),
                    Some(r.message.as_str()),
                ],
            );
        }
        let last = page.len() < PAGE as usize;
        after = page.last().map_or(after, |r| r.line);
        if tx.send(Ok(std::mem::take(&mut out))).await.is_err() || last {
            return;
        }
    }
}
