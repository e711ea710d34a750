//! `iyshub bench` at a tiny size: every scenario runs on SQLite (and on PostgreSQL when
//! `IYSHUB_TEST_DATABASE_URL` is set) and prints its line with a figure, a baseline and a
//! ratio, and the JSON file holds the same. Behaviour only: the figures of a debug build on a
//! shared machine say nothing, so no threshold is checked.

use std::process::Command;

use serde_json::Value;

const SCENARIOS: [&str; 10] = [
    "ledger-batch",
    "ledger-single",
    "check-single",
    "check-batch",
    "pull-apply",
    "dispatch",
    "import",
    "export",
    "campaign-filter",
    "stats",
];

/// The first number after `word ` in `line` ("12,345" → 12345).
fn number_after(line: &str, word: &str) -> f64 {
    line.split(&format!("{word} "))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no number after {word:?} in: {line}"))
}

#[test]
fn every_scenario_prints_a_figure_a_baseline_and_a_ratio() {
    let postgres = hub_store::testkit::admin_url_or_skip("the bench smoke run on PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iyshub"));
    cmd.args(["bench", "--quick", "--scale", "0.01", "--json"])
        .arg(&json)
        .env_remove("IYSHUB_BENCH_POSTGRES_URL")
        .env_remove("IYSHUB_TEST_DATABASE_URL");
    let backends: &[&str] = match &postgres {
        Some(url) => {
            cmd.args(["--backend", "both", "--postgres-url", url]);
            &["sqlite", "postgres"]
        }
        None => {
            cmd.args(["--backend", "sqlite"]);
            &["sqlite"]
        }
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "iyshub bench failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    for header in ["machine ", "build ", "date "] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(header)),
            "no {header:?} in the header:\n{stdout}"
        );
    }

    for scenario in SCENARIOS {
        for backend in backends {
            let lines: Vec<&str> = stdout
                .lines()
                .filter(|l| {
                    l.starts_with(scenario) && l.split_whitespace().nth(1) == Some(*backend)
                })
                .collect();
            assert!(
                !lines.is_empty(),
                "no line for {scenario} on {backend}:\n{stdout}"
            );
            for line in lines {
                let figure: f64 = line
                    .split_whitespace()
                    .nth(2)
                    .and_then(|f| f.replace(',', "").parse().ok())
                    .unwrap_or_else(|| panic!("no figure in: {line}"));
                assert!(figure > 0.0, "{line}");
                assert!(number_after(line, "baseline") > 0.0, "{line}");
                // Printed with two decimals, a debug build's ratio can read 0.00; the JSON below
                // carries it unrounded and must be positive.
                let ratio = number_after(line, "ratio");
                assert!(ratio >= 0.0 && ratio.is_finite(), "{line}");
                assert!(line.contains("target "), "{line}");
            }
        }
    }

    // The import runs twice: a file in phone order and one with the phones scattered.
    for backend in backends {
        assert!(
            stdout.lines().any(|l| l.starts_with("import/scattered")
                && l.split_whitespace().nth(1) == Some(*backend)),
            "no scattered import on {backend}:\n{stdout}"
        );
    }

    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let results = doc["results"].as_array().unwrap();
    for scenario in SCENARIOS {
        for backend in backends {
            let mine: Vec<&Value> = results
                .iter()
                .filter(|r| r["scenario"] == *scenario && r["backend"] == *backend)
                .collect();
            assert!(
                !mine.is_empty(),
                "no JSON result for {scenario} on {backend}"
            );
            for r in mine {
                for field in ["figure", "baseline", "ratio"] {
                    let v = r[field].as_f64().unwrap_or(0.0);
                    assert!(v > 0.0 && v.is_finite(), "{field} of {r}");
                }
                assert!(r["met"].is_boolean(), "{r}");
            }
        }
    }
    // Two pull-apply runs of different sizes, for linearity.
    let pulls = results
        .iter()
        .filter(|r| r["scenario"] == "pull-apply" && r["backend"] == "sqlite")
        .count();
    assert_eq!(pulls, 2);
    assert_eq!(doc["failures"].as_array().map(Vec::len), Some(0));
}
