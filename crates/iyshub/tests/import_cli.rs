//! `iyshub import` and `iyshub export` as an operator runs them, on SQLite: 100,000 rows in
//! Turkish columns with planted bad rows (exactly those rejected, with their codes and lines),
//! an import killed with SIGKILL mid-file and run again (the same end state as an uninterrupted
//! import, no history event twice), a dry run that writes nothing, and an export that imports
//! back to the same state.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hub_core::{BrandCode, Mode};
use hub_store::{IysConnection, NewBrand, SqlStore, Store};

const BRAND: u64 = 600_123;
const ROWS: usize = 100_000;

/// The file's bad rows: line → (code, field).
type Planted = BTreeMap<u64, (&'static str, Option<&'static str>)>;

/// Writes the test file: `;`-separated, Turkish headers, a BOM, CRLF line ends, one quoted
/// value with a line break (an evidence note), and bad rows every few thousand lines.
fn write_file(path: &Path) -> Planted {
    let mut planted = Planted::new();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(
        "\u{feff}ALICI;İZİN TÜRÜ;DURUM;İZİN KAYNAĞI;İZİN TARİHİ;ALICI TİPİ;evidence.not\r\n"
            .as_bytes(),
    )
    .unwrap();
    let mut line = 1u64;
    for i in 0..ROWS {
        line += 1;
        let phone = format!("0532 {:07}", i % 90_000);
        // Later rows for the same number come with a later date: the last one wins.
        let date = format!("{:02}.11.2025 10:{:02}:00", 1 + i / 90_000, i % 60);
        let status = if i % 3 == 0 { "0" } else { "1" };
        let row: Vec<u8> = match i {
            _ if i % 9_973 == 17 => {
                planted.insert(line, ("H115", Some("status")));
                format!("{phone};MESAJ;BELKI;HS_WEB;{date};BIREYSEL;\r\n").into_bytes()
            }
            _ if i % 9_973 == 18 => {
                planted.insert(line, ("H121", Some("recipient")));
                format!("12345;MESAJ;ONAY;HS_WEB;{date};BIREYSEL;\r\n").into_bytes()
            }
            _ if i % 9_973 == 19 => {
                planted.insert(line, ("H119", Some("source")));
                format!("{phone};MESAJ;ONAY;WEB;{date};BIREYSEL;\r\n").into_bytes()
            }
            _ if i % 9_973 == 20 => {
                planted.insert(line, ("column_count", None));
                format!("{phone};MESAJ;ONAY\r\n").into_bytes()
            }
            _ if i % 9_973 == 21 => {
                planted.insert(line, ("invalid_encoding", Some("evidence.not")));
                let mut r = format!("{phone};MESAJ;ONAY;HS_WEB;{date};BIREYSEL;").into_bytes();
                r.extend_from_slice(&[0xff, 0xfe, b'\r', b'\n']);
                r
            }
            _ if i == 5 => {
                // A quoted note over two lines: the record starts on this line, the next is its.
                let r = format!(
                    "{phone};MESAJ;{status};HS_WEB;{date};BIREYSEL;\"imzalı form,\r\nikinci sayfa\"\r\n"
                );
                line += 1;
                r.into_bytes()
            }
            _ => {
                format!("{phone};mesaj;{status};HS_WEB;{date};BIREYSEL;Şube İzmir\r\n").into_bytes()
            }
        };
        out.write_all(&row).unwrap();
    }
    out.flush().unwrap();
    planted
}

fn iyshub(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iyshub"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("IYSHUB_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("IYSHUB_DATA_DIR", data).current_dir(data);
    cmd
}

async fn with_brand(data: &Path) -> SqlStore {
    std::fs::create_dir_all(data).unwrap();
    let store = SqlStore::connect(&SqlStore::sqlite_url(&data.join("iyshub.db")).unwrap())
        .await
        .unwrap();
    store
        .create_brand(NewBrand {
            brand_code: BrandCode(BRAND),
            iys_code: BRAND,
            name: "import".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap();
    store
}

fn import(data: &Path, file: &Path, extra: &[&str]) -> Output {
    iyshub(data)
        .arg("import")
        .arg(file)
        .args(["--brand", &BRAND.to_string()])
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// line → (code, field) of a rejects file.
fn rejects(path: &Path) -> BTreeMap<u64, (String, Option<String>)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let field = Some(r[2].to_owned()).filter(|f| !f.is_empty());
            (r[0].parse().unwrap(), (r[1].to_owned(), field))
        })
        .collect()
}

fn export(data: &Path) -> String {
    let out = iyshub(data)
        .args(["export", "--brand", &BRAND.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Counts from the database file directly.
async fn count(data: &Path, sql: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let url = SqlStore::sqlite_url(&data.join("iyshub.db")).unwrap();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

fn good_rows(planted: &Planted) -> i64 {
    (ROWS - planted.len()) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_mid_file_resumes_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("izinler.csv");
    let planted = write_file(&file);
    let (whole, killed) = (dir.path().join("whole"), dir.path().join("killed"));
    with_brand(&whole).await.close().await;
    with_brand(&killed).await.close().await;

    // Uninterrupted.
    let out = import(&whole, &file, &["--rejects", "whole.rejects.csv"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rows were rejected: {}",
        text(&out)
    );
    let got = rejects(&whole.join("whole.rejects.csv"));
    let want: BTreeMap<u64, (String, Option<String>)> = planted
        .iter()
        .map(|(l, (c, f))| (*l, ((*c).to_owned(), f.map(str::to_owned))))
        .collect();
    assert_eq!(
        got, want,
        "exactly the planted rows are rejected, with their codes"
    );
    let events = count(&whole, "SELECT COUNT(*) FROM consent_event").await;
    assert_eq!(
        events,
        good_rows(&planted),
        "one history event per good row"
    );

    // Killed once its first window is recorded and a batch of a later one is committed (the
    // history holds more events than the recorded rows), then run again: the resumed run cuts
    // that window again and replays its written batches.
    let child = iyshub(&killed)
        .arg("import")
        .arg(&file)
        .args(["--brand", &BRAND.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let recorded = count(
            &killed,
            "SELECT COALESCE(MAX(rows_read), 0) FROM import_job WHERE state = 'running'",
        )
        .await;
        let events = count(&killed, "SELECT COUNT(*) FROM consent_event").await;
        if recorded > 0 && events > recorded {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it was killed"
        );
        assert!(Instant::now() < deadline, "no batch committed in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = count(&killed, "SELECT COUNT(*) FROM consent_event").await;
    assert!(partial < good_rows(&planted), "killed before the end");

    let out = import(&killed, &file, &["--rejects", "killed.rejects.csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resuming import"),
        "{}",
        text(&out)
    );
    assert_eq!(rejects(&killed.join("killed.rejects.csv")), want);
    assert_eq!(
        count(&killed, "SELECT COUNT(*) FROM consent_event").await,
        good_rows(&planted),
        "no history event twice"
    );
    let counts = "SELECT applied * 1000000000 + unchanged * 1000000 + older * 1000 + rejected FROM import_job";
    assert_eq!(
        count(&killed, counts).await,
        count(&whole, counts).await,
        "same counts"
    );
    assert_eq!(export(&killed), export(&whole), "same consents");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing_and_an_export_imports_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("izinler.csv");
    write_file(&file);
    let data = dir.path().join("data");
    with_brand(&data).await.close().await;

    let dry = import(&data, &file, &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry));
    assert_eq!(count(&data, "SELECT COUNT(*) FROM consent_event").await, 0);
    let real = import(&data, &file, &[]);
    assert_eq!(real.status.code(), Some(1), "{}", text(&real));
    // The dry run predicted what the import did.
    let summary = |o: &Output| {
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        s[s.find(": applied").unwrap()..]
            .lines()
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        summary(&dry),
        summary(&real),
        "{}\n{}",
        text(&dry),
        text(&real)
    );

    let exported = export(&data);
    let csv_path = dir.path().join("export.csv");
    std::fs::write(&csv_path, &exported).unwrap();
    let consents = count(&data, "SELECT COUNT(*) FROM consent").await;
    assert_eq!(
        exported.lines().count() as i64,
        consents + 1,
        "a header and a line each"
    );
    let again = import(&data, &csv_path, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let s = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(
        s.contains(&format!(
            "applied 0, unchanged {consents}, older 0, rejected 0"
        )),
        "{s}"
    );
    assert_eq!(export(&data), exported, "the same state");
}

/// Two free loopback ports (the hub's API and its simulator).
fn free_ports() -> (std::net::SocketAddr, std::net::SocketAddr) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap(), b.local_addr().unwrap())
}

/// `iyshub import --url`: the file uploaded to a running hub, followed to its end, its rejects
/// downloaded; a key without write scope is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_through_a_running_hub() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let file = dir.path().join("izinler.csv");
    std::fs::write(
        &file,
        "ALICI,IZIN TURU,DURUM,IZIN KAYNAGI,IZIN TARIHI\n\
         0532 111 11 11,MESAJ,1,HS_WEB,01.11.2025 10:00\n\
         0532 222 22 22,MESAJ,0,HS_WEB,01.11.2025 10:00\n\
         0532 333 33 33,MESAJ,BELKI,HS_WEB,01.11.2025 10:00\n",
    )
    .unwrap();
    let (api, sim) = free_ports();
    let mut hub = iyshub(&data)
        .arg("serve")
        .env("IYSHUB_BIND", api.to_string())
        .env("IYSHUB_SIM_BIND", sim.to_string())
        .env("IYSHUB_METRICS_BIND", "off")
        .env("IYSHUB_ADMIN_KEY", "cli-admin-key")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://{api}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the hub did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let upload = |key: &'static str| {
        let (file, base) = (file.clone(), base.clone());
        let mut cmd = iyshub(&data);
        cmd.arg("import")
            .arg(file)
            .args(["--brand", &BRAND.to_string(), "--url", &base])
            .env("IYSHUB_API_KEY", key);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let refused = upload("not-a-key").await.unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));

    let out = upload("cli-admin-key").await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "one row rejected: {}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("3 rows") && stdout.contains("applied 2, unchanged 0, older 0, rejected 1"),
        "{}",
        text(&out)
    );
    let rejects = rejects(&dir.path().join("izinler.csv.rejects.csv"));
    assert_eq!(
        rejects.into_iter().collect::<Vec<_>>(),
        [(4, ("H115".to_owned(), Some("status".to_owned())))]
    );
    let state: serde_json::Value = http
        .get(format!(
            "{base}/api/v1/brands/{BRAND}/recipients/%2B905322222222"
        ))
        .bearer_auth("cli-admin-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["channels"][0]["status"], "RET", "{state}");
    hub.kill().unwrap();
    hub.wait().unwrap();
}
