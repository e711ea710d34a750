//! Imports and exports over the API, on a real socket, on SQLite and (with
//! `IYSHUB_TEST_DATABASE_URL`) PostgreSQL: an upload in Turkish columns with bad rows, its
//! progress, its rejects file, a dry run, an import a worker resumes after another stopped, and
//! an export that imports back unchanged.

mod common;

use std::time::Duration;

use hub_store::prelude::*;
use hub_store::{ImportState, ImportVia, NewImport};
use serde_json::{Value, json};

const KEY: &str = "imports-admin-key";
const BRAND: u64 = 600_123;

/// The served hub with an import worker, and this file's helpers.
struct Server(common::Served);

impl std::ops::Deref for Server {
    type Target = common::Served;
    fn deref(&self) -> &common::Served {
        &self.0
    }
}

impl Server {
    async fn start() -> Server {
        let served = common::Served::start("iyshub_imports_test", KEY, |_| {}).await;
        tokio::spawn(hub::imports::work(
            served.hub.store.clone(),
            served.hub.imports_waiting.clone(),
            served.cancel.clone(),
        ));
        let server = Server(served);
        let r = server
            .http
            .post(format!("{}/api/v1/brands", server.base))
            .bearer_auth(KEY)
            .json(&json!({"brandCode": BRAND, "name": "İçe Aktarım"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        server
    }

    async fn brand(&self) -> hub_store::Brand {
        self.hub
            .store
            .brand(hub_core::BrandCode(BRAND))
            .await
            .unwrap()
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/brands/{BRAND}{path}", self.base)
    }

    async fn upload(&self, query: &str, body: Vec<u8>) -> Value {
        let r = self
            .http
            .post(self.url(&format!("/imports?{query}")))
            .bearer_auth(KEY)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{:?}", r.text().await);
        r.json().await.unwrap()
    }

    /// Waits for the import to finish and gives its final state.
    async fn finished(&self, id: i64) -> Value {
        for _ in 0..600 {
            let job: Value = self
                .http
                .get(self.url(&format!("/imports/{id}")))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if job["state"] == "done" || job["state"] == "failed" {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("import {id} did not finish");
    }

    async fn get_text(&self, path: &str) -> String {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

/// A new CSV import of `name` into `BRAND`.
async fn csv_job(
    store: &hub_store::SqlStore,
    name: &str,
    via: ImportVia,
    state: ImportState,
) -> hub_store::ImportJob {
    store
        .create_import(
            NewImport {
                brand_code: hub_core::BrandCode(BRAND),
                file_name: Some(name.into()),
                file_hash: None,
                format: "csv".into(),
                mapping: Vec::new(),
                actor: None,
                via,
                dry_run: false,
                state,
            },
            jiff::Timestamp::now(),
        )
        .await
        .unwrap()
}

/// The rows of `csv` that `job` has still to read.
async fn csv_rows(csv: &str, job: &hub_store::ImportJob) -> hub_bulk::Rows {
    hub::imports::open_rows(
        Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
        hub_bulk::Format::Csv,
        job,
    )
    .await
    .unwrap()
}

/// Four good rows (one a later change of another's key), and five bad ones.
fn file() -> Vec<u8> {
    let mut f = "ALICI;İZİN TÜRÜ;DURUM;İZİN KAYNAĞI;İZİN TARİHİ\r\n\
        0532 111 11 11;MESAJ;ONAY;HS_WEB;01.11.2025 10:00\r\n\
        ayse@example.com;EPOSTA;1;HS_WEB;2025-11-01 10:00:00\r\n\
        0532 111 11 11;MESAJ;RET;HS_CAGRI_MERKEZI;02.11.2025 10:00\r\n\
        12345;MESAJ;ONAY;HS_WEB;01.11.2025 10:00\r\n\
        0532 222 22 22;ARAMA;BELKI;HS_WEB;01.11.2025 10:00\r\n\
        0532 333 33 33;ARAMA;ONAY;HS_WEB;01.11.2030 10:00\r\n\
        0532 444 44 44;ARAMA;0;HS_WEB\r\n"
        .as_bytes()
        .to_vec();
    f.extend_from_slice(b"0532 555 55 55;MESAJ;ONAY;HS_WEB;01.11.2025 10:00\xff\r\n");
    f.extend_from_slice("0532 666 66 66;MESAJ;ONAY;HS_WEB;01.11.2025 10:00\r\n".as_bytes());
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_stores_the_good_rows_and_lists_the_bad_ones() {
    let server = Server::start().await;
    let dry = server
        .upload("fileName=izinler.csv&dryRun=true", file())
        .await;
    let dry = server.finished(dry["id"].as_i64().unwrap()).await;
    assert_eq!(dry["state"], "done", "{dry}");
    assert_eq!(
        (
            &dry["applied"],
            &dry["unchanged"],
            &dry["older"],
            &dry["rejected"]
        ),
        (&json!(4), &json!(0), &json!(0), &json!(5)),
        "{dry}"
    );
    let none = server.get_text("/consents").await;
    assert_eq!(
        serde_json::from_str::<Value>(&none).unwrap()["consents"],
        json!([])
    );

    let job = server.upload("fileName=izinler.csv", file()).await;
    assert_eq!(job["format"], "csv");
    let id = job["id"].as_i64().unwrap();
    let job = server.finished(id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["rowsRead"], 9);
    assert_eq!(
        (
            &job["applied"],
            &job["unchanged"],
            &job["older"],
            &job["rejected"]
        ),
        (&json!(4), &json!(0), &json!(0), &json!(5)),
        "{job}"
    );
    let rejects = server.get_text(&format!("/imports/{id}/rejects.csv")).await;
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines[0], "line,code,field,value,message");
    let codes: Vec<(String, String)> = lines[1..]
        .iter()
        .map(|l| {
            let mut parts = l.splitn(3, ',');
            (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("5".into(), "H121".into()),
            ("6".into(), "H115".into()),
            ("7".into(), "H162".into()),
            ("8".into(), "column_count".into()),
            ("9".into(), "invalid_encoding".into()),
        ],
        "{rejects}"
    );
    let phone: Value =
        serde_json::from_str(&server.get_text("/recipients/+905321111111").await).unwrap();
    assert_eq!(
        phone["channels"][0]["status"], "RET",
        "the later row wins: {phone}"
    );

    let listed: Value = serde_json::from_str(&server.get_text("/imports").await).unwrap();
    assert_eq!(listed["imports"].as_array().unwrap().len(), 2);

    // An export imports back to the same state.
    let exported = server.get_text("/exports").await;
    // The export says what the listing says, in the importer's columns.
    let listed: Value = serde_json::from_str(&server.get_text("/consents").await).unwrap();
    let mut expected =
        String::from("recipient,type,channel,recipientType,status,consentDate,source,iysState\n");
    for c in listed["consents"].as_array().unwrap() {
        let channel = c["channel"].as_str().unwrap();
        let iys = ["MESAJ", "ARAMA", "EPOSTA"].contains(&channel);
        expected.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            c["recipient"].as_str().unwrap(),
            if iys { channel } else { "" },
            if iys { "" } else { channel },
            c["recipientType"].as_str().unwrap(),
            c["status"].as_str().unwrap(),
            c["consentDate"].as_str().unwrap(),
            c["source"].as_str().unwrap(),
            c["iysState"].as_str().unwrap(),
        ));
    }
    assert_eq!(exported, expected);
    assert_eq!(
        exported.lines().count(),
        4,
        "a header and three consents: {exported}"
    );
    let again = server
        .upload("fileName=export.csv", exported.clone().into_bytes())
        .await;
    let again = server.finished(again["id"].as_i64().unwrap()).await;
    assert_eq!(
        (&again["applied"], &again["unchanged"], &again["rejected"]),
        (&json!(0), &json!(3), &json!(0)),
        "{again}"
    );
    assert_eq!(server.get_text("/exports").await, exported);
    let ndjson = server
        .get_text("/exports?format=ndjson&channel=MESAJ")
        .await;
    let rows: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{ndjson}");
    assert!(rows.iter().all(|r| r["type"] == "MESAJ"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_resumes_an_import_another_left_mid_file() {
    let server = Server::start().await;
    let store = server.hub.store.clone();
    let brand = server.brand().await;
    // 12,000 rows: three windows (5,000, 5,000 and the last 2,000).
    let mut csv = String::from("recipient,type,status,source,consentDate\n");
    for i in 0..12_000 {
        csv.push_str(&format!(
            "+90532{:07},MESAJ,ONAY,HS_WEB,2025-11-01 10:00:00\n",
            i
        ));
    }
    let job = csv_job(&store, "big.csv", ImportVia::Api, ImportState::Uploading).await;
    for (seq, piece) in csv.as_bytes().chunks(64 * 1024).enumerate() {
        store
            .append_import_chunk(job.id, seq as i64, piece)
            .await
            .unwrap();
    }
    // A runner that stops (its instance dies) right after its first batch is committed.
    let claimed = store
        .claim_import("gone", 4_000, jiff::Timestamp::now())
        .await
        .unwrap();
    assert!(claimed.is_none(), "an uploading import is not run");
    store
        .set_import_state(job.id, ImportState::Queued, None, jiff::Timestamp::now())
        .await
        .unwrap();
    let mine = store
        .claim_import("gone", 4_000, jiff::Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    let rows = csv_rows(&csv, &mine).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let run =
        hub::imports::run_import(&store, &brand, &mine, rows, Some("gone"), 4_000, move |p| {
            let _ = tx.send(p);
        });
    tokio::select! {
        done = run => panic!("the first runner was to stop after a batch: {done:?}"),
        p = rx.recv() => assert_eq!(p.map(|p| p.line), Some(5_001)),
    }
    let half = store
        .import_job(brand.brand_code, job.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (half.state, half.line, half.rows_read),
        (ImportState::Running, 5_001, 5_000)
    );
    // Its lease runs out; a worker takes the import over.
    tokio::time::sleep(Duration::from_millis(4_100)).await;
    server.hub.imports_waiting.notify_waiters();
    let done = server.finished(job.id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["rowsRead"], 12_000, "{done}");
    assert_eq!(done["applied"], 12_000, "{done}");
    let events: Value =
        serde_json::from_str(&server.get_text("/recipients/+905320000001/history").await).unwrap();
    assert_eq!(
        events["events"].as_array().unwrap().len(),
        1,
        "no row twice"
    );
    // A large export, gzipped for a caller that accepts it, streams to its end.
    let zipped = server
        .http
        .get(server.url("/exports"))
        .bearer_auth(KEY)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let bytes = zipped.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .unwrap();
    assert_eq!(text.lines().count(), 12_001, "a header and every consent");
    server.stop().await;
}

#[tokio::test]
async fn category_consents_export_and_import_back_unchanged() {
    let s = Server::start().await;
    let post =
        |path: &str, body: Value| s.http.post(s.url(path)).bearer_auth(KEY).json(&body).send();
    for code in ["kampanya", "bulten"] {
        let r = post(
            "/categories",
            json!({"code": code, "name": code, "kind": "marketing"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
    }
    let changes = json!({"changes": [
        {"recipient": "0532 111 11 11", "type": "MESAJ", "status": "RET", "source": "HS_WEB", "consentDate": "2025-11-01 10:00:00", "category": "kampanya"},
        {"recipient": "ayse@example.com", "type": "EPOSTA", "status": "ONAY", "source": "HS_WEB", "consentDate": "2025-11-01 10:00:00", "category": "kampanya"},
        {"profileId": "u-42", "channel": "PUSH", "status": "RET", "consentDate": "2025-11-01 10:00:00", "category": "kampanya"},
        {"recipient": "0532 222 22 22", "type": "MESAJ", "status": "RET", "source": "HS_WEB", "consentDate": "2025-11-01 10:00:00", "category": "bulten"}
    ]});
    let r = post("/consents", changes).await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    let csv = s.get_text("/exports?category=kampanya").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("recipient,profileId,type,channel,recipientType,status,consentDate,source,category")
    );
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines.contains(&"+905321111111,,MESAJ,,BIREYSEL,RET,2025-11-01 10:00:00,HS_WEB,kampanya"),
        "{csv}"
    );
    assert!(
        lines.contains(&",u-42,,PUSH,BIREYSEL,RET,2025-11-01 10:00:00,HS_EORTAM,kampanya"),
        "{csv}"
    );
    assert!(
        !csv.contains("bulten") && !csv.contains("0532 222"),
        "{csv}"
    );
    let rets = s
        .get_text("/exports?category=kampanya&status=RET&format=ndjson")
        .await;
    assert_eq!(rets.lines().count(), 2, "{rets}");

    // The export imports back as the same state: every row unchanged.
    let job = s.upload("fileName=kampanya.csv", csv.into_bytes()).await;
    let done = s.finished(job["id"].as_i64().unwrap()).await;
    assert_eq!(
        (
            done["unchanged"].as_u64(),
            done["rejected"].as_u64(),
            done["applied"].as_u64()
        ),
        (Some(3), Some(0), Some(0)),
        "{done}"
    );

    // Only status filters a category export; an unknown category is named.
    for (query, field) in [
        ("category=kampanya&channel=MESAJ", "category"),
        ("category=yok", "category"),
    ] {
        let r = s
            .http
            .get(s.url(&format!("/exports?{query}")))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["field"], field, "{query}: {e}");
    }
    s.stop().await;
}

/// A file in scattered key order, each key on many rows with a later date and the other status
/// each time: the windows are written in key order, yet every key's rows apply in the file's
/// order (none is "older"). A runner stopped after a batch in the middle of a window leaves
/// that window unrecorded; the next run cuts it again, replays the written batch and applies
/// the rest: the same counts and states as one run, and no history event twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scattered_file_stopped_mid_window_resumes_with_each_keys_rows_in_file_order() {
    const KEYS: u64 = 3_000;
    const ROUNDS: u64 = 12;
    let server = Server::start().await;
    let store = server.hub.store.clone();
    let brand = server.brand().await;
    let mut csv = String::from("recipient,type,status,source,consentDate\n");
    for r in 0..KEYS * ROUNDS {
        let (round, k) = (r / KEYS, (r % KEYS) * 1_777 % KEYS);
        let status = if round.is_multiple_of(2) {
            "ONAY"
        } else {
            "RET"
        };
        csv.push_str(&format!(
            "+90533{k:07},MESAJ,{status},HS_WEB,2025-11-01 {:02}:00:00\n",
            round + 1
        ));
    }
    let job = csv_job(
        &store,
        "scattered.csv",
        ImportVia::Cli,
        ImportState::Running,
    )
    .await;

    // The first runner: windows of 5,000, 5,000 and 10,000 rows; it stops after the first
    // batch of the third window (a progress report that records no line).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let run = hub::imports::run_import(
        &store,
        &brand,
        &job,
        csv_rows(&csv, &job).await,
        None,
        0,
        move |p| {
            let _ = tx.send(p);
        },
    );
    let interim = async {
        let mut recorded = 0;
        while let Some(p) = rx.recv().await {
            if p.line == recorded {
                return p;
            }
            recorded = p.line;
        }
        panic!("the runner ended without a report");
    };
    tokio::select! {
        done = run => panic!("the first runner was to stop mid-window: {done:?}"),
        p = interim => assert_eq!((p.line, p.rows), (10_001, 15_000)),
    }
    let half = store
        .import_job(brand.brand_code, job.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((half.line, half.rows_read), (10_001, 10_000));

    // The second runner resumes after the recorded windows.
    let done = hub::imports::run_import(
        &store,
        &brand,
        &half,
        csv_rows(&csv, &half).await,
        None,
        0,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(done.rows, KEYS * ROUNDS);
    assert_eq!(
        (
            done.counts.applied,
            done.counts.unchanged,
            done.counts.older,
            done.counts.rejected
        ),
        (KEYS * ROUNDS, 0, 0, 0),
        "every row changed its key's status, none came out of order"
    );
    for k in [0, 1, 1_234, KEYS - 1] {
        let recipient = format!("+90533{k:07}");
        let history: Value = serde_json::from_str(
            &server
                .get_text(&format!("/recipients/{recipient}/history"))
                .await,
        )
        .unwrap();
        let events = history["events"].as_array().unwrap();
        assert_eq!(events.len() as u64, ROUNDS, "{recipient}: no row twice");
        let consents = store.consents(brand.brand_code, &recipient).await.unwrap();
        assert_eq!(consents.len(), 1);
        let last = if (ROUNDS - 1).is_multiple_of(2) {
            "ONAY"
        } else {
            "RET"
        };
        assert_eq!(consents[0].state.status.as_str(), last, "{recipient}");
    }
    server.stop().await;
}

/// A file holds past consents: an ONAY without its date is refused (stamped with the import's
/// time it would be newer than any RET the person made since, in IYS too, and re-subscribe
/// them), while a RET without one takes the import's time, which is only ever safe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undated_onay_is_refused_and_an_undated_ret_goes_through() {
    let server = Server::start().await;
    let csv = "ALICI;İZİN TÜRÜ;DURUM;İZİN KAYNAĞI;İZİN TARİHİ\n\
        0532 111 11 11;MESAJ;ONAY;HS_WEB;01.11.2025 10:00\n\
        0532 222 22 22;MESAJ;ONAY;HS_WEB;\n\
        0532 333 33 33;MESAJ;RET;HS_WEB;\n";
    let job = server.upload("fileName=tarihsiz.csv", csv.into()).await;
    let id = job["id"].as_i64().unwrap();
    let job = server.finished(id).await;
    assert_eq!(
        (&job["applied"], &job["rejected"]),
        (&json!(2), &json!(1)),
        "{job}"
    );
    let rejects = server.get_text(&format!("/imports/{id}/rejects.csv")).await;
    let line = rejects.lines().nth(1).unwrap_or_default();
    assert!(line.starts_with("3,H112,consentDate,"), "{rejects}");
    assert!(line.contains("override"), "{rejects}");
    let undated = server
        .http
        .get(server.url("/recipients/+905322222222"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        undated.status(),
        404,
        "nothing recorded for the undated ONAY"
    );
    let ret: Value =
        serde_json::from_str(&server.get_text("/recipients/+905323333333").await).unwrap();
    assert_eq!(ret["channels"][0]["status"], "RET", "{ret}");
    // The same through NDJSON, where the date may also be null.
    let ndjson = concat!(
        r#"{"recipient":"+905324444444","type":"MESAJ","status":"ONAY","source":"HS_WEB","consentDate":null}"#,
        "\n",
        r#"{"recipient":"+905325555555","type":"MESAJ","status":"RET","source":"HS_WEB"}"#,
        "\n"
    );
    let job = server.upload("format=ndjson", ndjson.into()).await;
    let job = server.finished(job["id"].as_i64().unwrap()).await;
    assert_eq!(
        (&job["applied"], &job["rejected"]),
        (&json!(1), &json!(1)),
        "{job}"
    );
    server.stop().await;
}
