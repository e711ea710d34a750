//! Exports: a brand's consents by filter, page by page in key order, written as CSV or NDJSON in
//! the importer's own columns while they are read, so no export is held in memory.

use hub_core::{BrandCode, Channel};
use hub_store::{CategoryExportRow, ConsentFilter, ConsentRow};
use tokio::sync::mpsc::{Receiver, Sender};

use crate::HubDb;

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

/// Reads a category export's pages on a task of its own, sent on the answer (an error last),
/// so the next page is read while this one is written.
fn category_pages<S: HubDb>(
    store: &S,
    brand: BrandCode,
    code: String,
    status: Option<iys::ConsentStatus>,
) -> Receiver<hub_store::Result<Page>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let store = store.clone();
    tokio::spawn(async move {
        let mut after: Option<String> = None;
        loop {
            let page = store
                .category_consents_page(brand, &code, status, after.as_deref(), PAGE)
                .await;
            let last = match &page {
                Ok(rows) => {
                    after = rows.last().map(|r| r.consent.subject.clone());
                    rows.len() < PAGE as usize
                }
                Err(_) => true,
            };
            if tx.send(page.map(Page::Category)).await.is_err() || last {
                return;
            }
        }
    });
    rx
}

/// Streams what `source` names of `brand` to `tx` while it is read (the reading runs ahead on
/// a task of its own). A failure is sent as the stream's last item (the client sees a
/// broken-off body, never a silent cut). Returns the rows written.
pub async fn export<S: HubDb>(
    store: &S,
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
    let mut pages = match source {
        ExportSource::Consents(filter) => {
            let (pages_tx, pages) = tokio::sync::mpsc::channel(1);
            let mut chunks = store.consent_chunks(brand, filter.clone(), PAGE);
            tokio::spawn(async move {
                while let Some(chunk) = chunks.recv().await {
                    if pages_tx.send(chunk.map(Page::Consents)).await.is_err() {
                        return;
                    }
                }
            });
            pages
        }
        ExportSource::Category { code, status } => {
            category_pages(store, brand, code.clone(), *status)
        }
    };
    let mut written = 0u64;
    let mut date = String::new();
    while let Some(page) = pages.recv().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                // The client sees only a broken-off body: the reason goes to the log.
                tracing::error!(brand = brand.0, rows = written, error = %e, "export: stopped");
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return written;
            }
        };
        match &page {
            Page::Consents(rows) => {
                written += rows.len() as u64;
                for row in rows {
                    write_consent(&mut out, format, row, &mut date);
                }
            }
            Page::Category(rows) => {
                written += rows.len() as u64;
                for row in rows {
                    write_category(&mut out, format, row);
                }
            }
        }
        if tx
            .send(Ok(std::mem::replace(&mut out, Vec::with_capacity(1 << 20))))
            .await
            .is_err()
        {
            return written;
        }
    }
    // The header alone, for an export that found nothing.
    if !out.is_empty() {
        let _ = tx.send(Ok(out)).await;
    }
    written
}

/// Streams an import's rejected rows as CSV (`line,code,field,value,message`) to `tx`, in line
/// order, a page at a time.
pub async fn rejects<S: HubDb>(
    store: &S,
    import: i64,
    tx: Sender<Result<Vec<u8>, std::io::Error>>,
) {
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
