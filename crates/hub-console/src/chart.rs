//! Opt-ins and opt-outs per day as a server-rendered SVG bar chart: no script, readable with
//! a screen reader through its title and the table beside it.

use std::collections::BTreeMap;

use hub_store::DailyRow;
use maud::{Markup, html};

/// Opt-ins and opt-outs of one day, over the channels asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Day {
    pub day: String,
    pub opt_ins: i64,
    pub opt_outs: i64,
}

/// One bar pair per day in `days` (every day, in order, zero where nothing happened), summed over
/// channels and origins.
pub fn by_day(days: &[String], rows: &[DailyRow]) -> Vec<Day> {
    let mut sums: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for r in rows {
        let e = sums.entry(r.day.as_str()).or_default();
        e.0 = e.0.saturating_add(r.opt_ins);
        e.1 = e.1.saturating_add(r.opt_outs);
    }
    days.iter()
        .map(|d| {
            let (i, o) = sums.get(d.as_str()).copied().unwrap_or_default();
            Day {
                day: d.clone(),
                opt_ins: i,
                opt_outs: o,
            }
        })
        .collect()
}

const WIDTH: i64 = 720;
const HEIGHT: i64 = 180;
const BOTTOM: i64 = 20;

/// Opt-ins (green, up) and opt-outs (red, down from the same line) per day.
pub fn svg(title: &str, days: &[Day], ins: &str, outs: &str) -> Markup {
    let top = days
        .iter()
        .map(|d| d.opt_ins.max(d.opt_outs))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = i64::try_from(days.len()).unwrap_or(1).max(1);
    let slot = WIDTH / n;
    let bar = (slot / 2 - 1).max(1);
    let half = (HEIGHT - BOTTOM) / 2;
    let scale = |v: i64| v.saturating_mul(half) / top;
    html! {
        svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) width="100%" role="img" aria-label=(title) {
            title { (title) }
            line x1="0" x2=(WIDTH) y1=(half) y2=(half) stroke="#8a93a3" {}
            @for (i, d) in days.iter().enumerate() {
                @let x = i64::try_from(i).unwrap_or(0) * slot;
                @let up = scale(d.opt_ins);
                @let down = scale(d.opt_outs);
                rect x=(x) y=(half - up) width=(bar) height=(up) fill="#11693a" {
                    title { (d.day) ": " (d.opt_ins) " " (ins) }
                }
                rect x=(x + bar + 1) y=(half) width=(bar) height=(down) fill="#a01c1c" {
                    title { (d.day) ": " (d.opt_outs) " " (outs) }
                }
            }
            @if let Some(first) = days.first() {
                text x="0" y=(HEIGHT - 4) { (first.day) }
            }
            @if let Some(last) = days.last() {
                text x=(WIDTH) y=(HEIGHT - 4) text-anchor="end" { (last.day) }
            }
            text x="2" y="12" { (top) " " (ins) }
            text x="2" y=(HEIGHT - BOTTOM - 4) { (top) " " (outs) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: &str, channel: &str, i: i64, o: i64) -> DailyRow {
        DailyRow {
            day: day.into(),
            channel: channel.into(),
            origin: "api".into(),
            opt_ins: i,
            opt_outs: o,
        }
    }

    #[test]
    fn every_day_is_a_bar_and_channels_add_up() {
        let days: Vec<String> = ["2026-11-27", "2026-11-28", "2026-11-29"]
            .map(String::from)
            .to_vec();
        let rows = [
            row("2026-11-27", "MESAJ", 3, 1),
            row("2026-11-27", "EPOSTA", 2, 0),
            row("2026-11-29", "MESAJ", 0, 4),
        ];
        let d = by_day(&days, &rows);
        assert_eq!(
            d.iter()
                .map(|d| (d.opt_ins, d.opt_outs))
                .collect::<Vec<_>>(),
            vec![(5, 1), (0, 0), (0, 4)]
        );
        let svg = svg("t", &d, "in", "out").into_string();
        assert_eq!(svg.matches("<rect").count(), 6);
        assert!(svg.contains("2026-11-29: 4 out"), "{svg}");
    }

    #[test]
    fn no_days_is_an_empty_chart() {
        let svg = svg("t", &[], "in", "out").into_string();
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<rect").count(), 0);
    }
}
