//! `iyshub reconcile` as a script runs it: the binary against the simulator and a SQLite
//! database, its report and its exit codes (0 agreed, 1 drift left, 2 error).

use std::process::Command;

use hub_core::{BrandCode, Mode};
use hub_store::{IysConnection, NewBrand, SqlStore, Store};
use serde_json::{Value, json};

const BRAND: u64 = 600_123;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn reconcile(dir: &std::path::Path, sim_url: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_iyshub"))
        .env_clear()
        .env("IYSHUB_IYS_URL", sim_url)
        .env("IYSHUB_IYS_PASSWORD", "demo-password")
        .arg("reconcile")
        .arg("--data-dir")
        .arg(dir)
        .args(["--brand", &BRAND.to_string()])
        .args(args)
        .output()
        .expect("iyshub runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn control(sim: &iys_sim::SimServer, path: &str, body: Value) {
    sim.control(reqwest::Method::POST, path, body)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_drift_agreement_and_errors_apart() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = iys_sim::SimServer::start(
        iys_sim::SimConfig::for_profile(iys_sim::Profile::Fast),
        listener,
        None,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::connect(&SqlStore::sqlite_url(&dir.path().join("iyshub.db")).unwrap())
        .await
        .unwrap();
    store
        .create_brand(NewBrand {
            brand_code: BrandCode(BRAND),
            iys_code: BRAND,
            name: "cli".into(),
            mode: Mode::Integrator,
            iys: IysConnection {
                base_url: Some(sim.base_url()),
                username: Some("demo".into()),
                ..IysConnection::default()
            },
        })
        .await
        .unwrap();
    store.close().await;
    // A citizen's ONAY on day D, which the hub never saw; then D is over.
    let d = iys::ConsentDate::from_timestamp(jiff::Timestamp::now())
        .civil()
        .date();
    control(
        &sim,
        "/_sim/clock/set",
        json!({"now": format!("{d} 10:00:00")}),
    )
    .await;
    control(
        &sim,
        "/_sim/citizen",
        json!({"brandCode": BRAND, "recipient": "+905321234567", "type": "MESAJ", "status": "ONAY"}),
    )
    .await;
    control(&sim, "/_sim/clock/advance", json!({"seconds": 86_400})).await;
    let url = sim.base_url();
    let date = d.to_string();
    let path = dir.path().to_owned();
    let run = move |args: Vec<String>| {
        let (path, url) = (path.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            reconcile(&path, &url, &args)
        })
    };

    let dry = run(vec!["--date".into(), date.clone(), "--dry-run".into()])
        .await
        .unwrap();
    assert_eq!(
        dry.code,
        Some(1),
        "drift left: {}{}",
        dry.stdout,
        dry.stderr
    );
    assert!(
        dry.stdout.contains("missing in the hub 1"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("+905321234567 MESAJ ONAY"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("→ would_apply"), "{}", dry.stdout);

    let real = run(vec!["--date".into(), date.clone(), "--json".into()])
        .await
        .unwrap();
    assert_eq!(real.code, Some(0), "{}{}", real.stdout, real.stderr);
    let v: Value = serde_json::from_str(&real.stdout).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["applied"].as_u64()),
        (Some("agreed"), Some(1)),
        "{v}"
    );

    let again = run(vec!["--date".into(), date.clone()]).await.unwrap();
    assert_eq!(again.code, Some(0), "{}{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("AGREED: confirmed to IYS"),
        "{}",
        again.stdout
    );

    let old = d
        .checked_sub(jiff::Span::new().days(30))
        .unwrap()
        .to_string();
    let expired = run(vec!["--date".into(), old]).await.unwrap();
    assert_eq!(
        expired.code,
        Some(2),
        "{}{}",
        expired.stdout,
        expired.stderr
    );
    assert!(expired.stdout.contains("EXPIRED"), "{}", expired.stdout);

    let nobrand = tokio::task::spawn_blocking({
        let (path, url) = (dir.path().to_owned(), sim.base_url());
        move || {
            let out = Command::new(env!("CARGO_BIN_EXE_iyshub"))
                .env_clear()
                .env("IYSHUB_IYS_URL", &url)
                .args(["reconcile", "--data-dir"])
                .arg(&path)
                .args(["--brand", "999", "--date", "2026-11-28"])
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(nobrand.0, Some(2), "{}", nobrand.1);
    assert!(nobrand.1.contains("no brand 999"), "{}", nobrand.1);
}
