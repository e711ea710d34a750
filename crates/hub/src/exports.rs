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

/// One consent's fields in [`COLUMNS`] order.
fn fields(row: &ConsentRow) -> [Option<String>; 8] {
    let (iys_type, channel) = type_or_channel(row.key.channel);
    [
        Some(row.key.recipient.clone()),
        iys_type,
        channel,
        Some(row.key.recipient_type.as_str().to_owned()),
        Some(row.state.status.as_str().to_owned()),
        Some(row.state.consent_date.to_string()),
        Some(row.state.source.as_str().to_owned()),
        Some(row.state.iys_state.as_str().to_owned()),
    ]
}

/// The IYS type or the hub's channel of a change, in the column the importer reads it from.
fn type_or_channel(channel: Channel) -> (Option<String>, Option<String>) {
    match channel.iys_type() {
        Some(t) => (Some(t.as_str().to_owned()), None),
        None => (None, Some(channel.as_str().to_owned())),
    }
}

/// One category consent's fields in [`CATEGORY_COLUMNS`] order.
fn category_fields(row: &CategoryExportRow) -> [Option<String>; 9] {
    let c = &row.consent;
    let (recipient, profile) = match c.subject.strip_prefix("profile:") {
        Some(p) => (None, Some(p.to_owned())),
        None => (Some(c.subject.clone()), row.profile_id.clone()),
    };
    let (iys_type, channel) = match row.channel.parse::<Channel>() {
        Ok(ch) => type_or_channel(ch),
        Err(_) => (None, Some(row.channel.clone())),
    };
    [
        recipient,
        profile,
        iys_type,
        channel,
        Some(row.recipient_type.clone()),
        Some(c.status.as_str().to_owned()),
        Some(c.consent_date.to_string()),
        Some(c.source.as_str().to_owned()),
        Some(c.category.clone()),
    ]
}

fn write(out: &mut Vec<u8>, format: ExportFormat, columns: &[&str], values: &[Option<String>]) {
    match format {
        ExportFormat::Csv => {
            let refs: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
            csv_line(out, &refs);
        }
        ExportFormat::Ndjson => {
            let object: serde_json::Map<String, serde_json::Value> = columns
                .iter()
                .zip(values)
                .filter_map(|(k, v)| {
                    v.as_ref()
                        .map(|v| ((*k).to_owned(), serde_json::Value::String(v.clone())))
                })
                .collect();
            // A map of strings always serialises.
            if serde_json::to_writer(&mut *out, &object).is_ok() {
                out.push(b'\n');
            }
        }
    }
}

/// Streams what `source` names of `brand` to `tx`, a page at a time. A failure is sent as the
/// stream's last item (the client sees a broken-off body, never a silent cut). Returns the rows
/// written.
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
    let mut after_key = None;
    let mut after_subject: Option<String> = None;
    let mut written = 0u64;
    loop {
        let page = match source {
            ExportSource::Consents(filter) => store
                .list_consents(brand, filter, after_key.as_ref(), PAGE)
                .await
                .map(|page| {
                    for row in &page {
                        write(&mut out, format, columns, &fields(row));
                    }
                    let n = page.len();
                    after_key = page.into_iter().last().map(|r| r.key);
                    n
                }),
            ExportSource::Category { code, status } => store
                .category_consents_page(brand, code, *status, after_subject.as_deref(), PAGE)
                .await
                .map(|page| {
                    for row in &page {
                        write(&mut out, format, columns, &category_fields(row));
                    }
                    let n = page.len();
                    after_subject = page.into_iter().last().map(|r| r.consent.subject);
                    n
                }),
        };
        let n = match page {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return written;
            }
        };
        written += n as u64;
        let last = n < PAGE as usize;
        if tx
            .send(Ok(std::mem::replace(&mut out, Vec::with_capacity(1 << 20))))
            .await
            .is_err()
            || last
        {
            return written;
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
