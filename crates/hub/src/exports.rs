//! Exports: a brand's consents by filter, page by page in key order, written as CSV or NDJSON in
//! the importer's own columns while they are read, so no export is held in memory.

use hub_core::BrandCode;
use hub_store::{ConsentFilter, ConsentRow, SqlStore, Store};
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
    let (iys_type, channel) = match row.key.channel.iys_type() {
        Some(t) => (Some(t.as_str().to_owned()), None),
        None => (None, Some(row.key.channel.as_str().to_owned())),
    };
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

fn write(out: &mut Vec<u8>, format: ExportFormat, row: &ConsentRow) {
    let values = fields(row);
    match format {
        ExportFormat::Csv => {
            let refs: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
            csv_line(out, &refs);
        }
        ExportFormat::Ndjson => {
            let object: serde_json::Map<String, serde_json::Value> = COLUMNS
                .iter()
                .zip(values)
                .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), serde_json::Value::String(v))))
                .collect();
            // A map of strings always serialises.
            if serde_json::to_writer(&mut *out, &object).is_ok() {
                out.push(b'\n');
            }
        }
    }
}

/// Streams the consents of `brand` matching `filter` to `tx`, a page at a time. A failure is
/// sent as the stream's last item (the client sees a broken-off body, never a silent cut).
pub async fn export(
    store: &SqlStore,
    brand: BrandCode,
    filter: &ConsentFilter,
    format: ExportFormat,
    tx: Sender<Result<Vec<u8>, std::io::Error>>,
) -> u64 {
    let mut out = Vec::with_capacity(1 << 20);
    if format == ExportFormat::Csv {
        let header: Vec<Option<&str>> = COLUMNS.iter().map(|c| Some(*c)).collect();
        csv_line(&mut out, &header);
    }
    let mut after = None;
    let mut written = 0u64;
    loop {
        let page = match store
            .list_consents(brand, filter, after.as_ref(), PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return written;
            }
        };
        for row in &page {
            write(&mut out, format, row);
        }
        written += page.len() as u64;
        let last = page.len() < PAGE as usize;
        after = page.into_iter().last().map(|r| r.key);
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
