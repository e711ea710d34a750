//! `iyshub reconcile --brand B --date D [--dry-run]`: one day of IYS's movement file, compared
//! with the ledger by hand, repaired and confirmed like the engines do (or only compared).
//!
//! Exit codes for scripts: 0 the day agrees (agreed, nothing that day, or a dry run that found
//! no difference), 1 drift is left, 2 an error (IYS not reachable or not ready, a file that does
//! not match IYS's hash, a day IYS no longer serves, a bad setting).

use std::process::ExitCode;

use hub_store::{DayResult, DayStatus, DriftItem};

use crate::flags::EngineFlags;

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    flags: EngineFlags,
    #[arg(long)]
    brand: u64,
    /// The day, `YYYY-MM-DD` (Istanbul). IYS serves the files of the last 7 days.
    #[arg(long)]
    date: jiff::civil::Date,
    /// Only compare: repair nothing, confirm nothing, store nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON instead of a report.
    #[arg(long)]
    json: bool,
}

/// Runs the command; every failure is exit code 2, as documented.
pub async fn run(args: ReconcileArgs) -> ExitCode {
    match reconcile(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn reconcile(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let (store, brand, engines) = crate::setup::one_off(&args.flags, args.brand).await?;
    let result = engines.reconcile_day(&brand, args.date, args.dry_run).await;
    store.close().await;
    let day = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&day)?);
    } else {
        print!("{}", report(&day, args.dry_run));
    }
    Ok(ExitCode::from(exit_code(day.status)))
}

fn exit_code(status: DayStatus) -> u8 {
    match status {
        DayStatus::Agreed | DayStatus::Empty | DayStatus::Consistent => 0,
        DayStatus::Drift => 1,
        DayStatus::Pending
        | DayStatus::HashMismatch
        | DayStatus::NotReady
        | DayStatus::Error
        | DayStatus::Expired => 2,
    }
}

fn example(x: &DriftItem) -> String {
    let kind = serde_json::to_value(x.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let action = serde_json::to_value(x.action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let fields: Vec<&str> = [
        &x.recipient,
        &x.consent_type,
        &x.status,
        &x.consent_date,
        &x.source,
    ]
    .into_iter()
    .filter_map(|f| f.as_deref())
    .collect();
    let mut line = format!("  {kind:<15} {}", fields.join(" "));
    if let Some(tx) = &x.transaction_id {
        line.push_str(&format!("  tx {}…", tx.get(..12).unwrap_or(tx)));
    }
    line.push_str(&format!("  → {action}"));
    if let Some(r) = &x.reason {
        line.push_str(&format!(": {r}"));
    }
    line
}

/// What the last comparison found.
fn figures(d: &DayResult, dry_run: bool) -> String {
    let hash = d
        .hash
        .as_deref()
        .map_or("none (no movement that day)".to_owned(), |h| {
            format!("{}…", h.get(..16).unwrap_or(h))
        });
    let mut out = format!("  IYS file     {} rows, SHA-384 {hash}\n", d.iys_rows);
    out.push_str(&format!("  hub          {} movements\n", d.hub_rows));
    out.push_str(&format!("  matched      {}\n", d.matched));
    out.push_str(&format!(
        "  differences  missing in the hub {}, missing in IYS {}, mismatched {}, unreadable {}\n",
        d.missing_in_hub, d.missing_in_iys, d.mismatched, d.unreadable
    ));
    if !dry_run {
        out.push_str(&format!(
            "  repaired     applied {}, requeued {} (this day, all runs)\n",
            d.applied, d.requeued
        ));
    }
    out.push_str(&format!(
        "  left         {} ({} for a person)\n",
        d.remaining, d.needs_person
    ));
    out
}

/// The result for people.
fn report(d: &DayResult, dry_run: bool) -> String {
    let mut out = format!("reconciliation of brand {} for {}\n", d.brand_code, d.date);
    // Only a comparison has figures; a refused or missing file has its reason instead.
    if matches!(
        d.status,
        DayStatus::Agreed | DayStatus::Empty | DayStatus::Consistent | DayStatus::Drift
    ) {
        out.push_str(&figures(d, dry_run));
    }
    let verdict = match d.status {
        DayStatus::Agreed => "AGREED: confirmed to IYS",
        DayStatus::Empty => "AGREED: no movement on either side, nothing to confirm",
        DayStatus::Consistent => "IN AGREEMENT (dry run: not confirmed)",
        DayStatus::Drift if dry_run => "DRIFT (dry run: nothing repaired)",
        DayStatus::Drift => "DRIFT: not confirmed; the engines try again later",
        DayStatus::HashMismatch => "REFUSED: the file does not match IYS's hash",
        DayStatus::NotReady => "NOT READY: IYS has not published the day yet",
        DayStatus::Expired => "EXPIRED: IYS no longer serves the day",
        DayStatus::Error | DayStatus::Pending => "ERROR",
    };
    out.push_str(&format!("  result       {verdict}\n"));
    if let Some(e) = &d.error {
        out.push_str(&format!("  why          {e}\n"));
    }
    if !d.examples.is_empty() {
        // With nothing left, the examples are what was repaired (this run or an earlier one).
        out.push_str(if d.remaining == 0 {
            "differences repaired:\n"
        } else {
            "differences:\n"
        });
        for x in &d.examples {
            out.push_str(&example(x));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::BrandCode;
    use hub_store::{DriftAction, DriftKind};

    #[test]
    fn scripts_can_tell_agreement_drift_and_errors_apart() {
        assert_eq!(exit_code(DayStatus::Agreed), 0);
        assert_eq!(exit_code(DayStatus::Empty), 0);
        assert_eq!(exit_code(DayStatus::Consistent), 0);
        assert_eq!(exit_code(DayStatus::Drift), 1);
        for s in [
            DayStatus::HashMismatch,
            DayStatus::NotReady,
            DayStatus::Error,
            DayStatus::Expired,
        ] {
            assert_eq!(exit_code(s), 2, "{s:?}");
        }
    }

    #[test]
    fn the_report_names_each_difference_and_what_was_done() {
        let date: jiff::civil::Date = "2026-11-28".parse().unwrap();
        let mut d = DayResult::pending(BrandCode(600_123), date, jiff::Timestamp::UNIX_EPOCH);
        d.status = DayStatus::Drift;
        d.iys_rows = 3;
        d.missing_in_iys = 1;
        d.remaining = 1;
        d.needs_person = 1;
        d.examples.push(DriftItem {
            kind: DriftKind::MissingInIys,
            action: DriftAction::NeedsPerson,
            transaction_id: Some("ab".repeat(32)),
            recipient: Some("+905321234567".into()),
            recipient_type: Some("BIREYSEL".into()),
            consent_type: Some("MESAJ".into()),
            status: Some("ONAY".into()),
            consent_date: Some("2026-11-28 10:00:00".into()),
            source: Some("HS_WEB".into()),
            creation_date: None,
            event_id: Some(7),
            reason: Some("overtaken".into()),
        });
        let text = report(&d, false);
        assert!(text.contains("for 2026-11-28"), "{text}");
        assert!(text.contains("DRIFT: not confirmed"), "{text}");
        assert!(text.contains("1 (1 for a person)"), "{text}");
        assert!(
            !report(
                &DayResult {
                    status: DayStatus::Expired,
                    ..d.clone()
                },
                false
            )
            .contains("matched")
        );
        assert!(
            text.contains(
                "missing_in_iys  +905321234567 MESAJ ONAY 2026-11-28 10:00:00 HS_WEB  tx abababababab…  → needs_person: overtaken"
            ),
            "{text}"
        );
    }
}
