//! `GET …/reconciliation`, and the reconciliation figures of `/sync` and `/metrics`, over real
//! sockets. The days are stored as the reconciler stores them (`ReconcileStore`); the engine
//! tests show how they come about. SQLite, or PostgreSQL when `IYSHUB_TEST_DATABASE_URL` is set.

mod common;

use hub_core::BrandCode;
use hub_store::{DayResult, DayStatus, DriftAction, DriftItem, DriftKind, ReconcileStore};
use iys::ConsentDate;
use jiff::Timestamp;
use jiff::civil::Date;
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN_KEY: &str = "test-admin-key-reconciliation";
const BRAND: u64 = 600_123;
const OTHER: u64 = 600_124;

/// The served hub, with this file's request helper.
struct TestHub(common::Served);

impl std::ops::Deref for TestHub {
    type Target = common::Served;
    fn deref(&self) -> &common::Served {
        &self.0
    }
}

impl TestHub {
    async fn start() -> TestHub {
        TestHub(common::Served::start("iyshub_reconcile_api", ADMIN_KEY, |_| {}).await)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, ADMIN_KEY, None).await
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

fn today() -> Date {
    ConsentDate::from_timestamp(Timestamp::now()).civil().date()
}

fn days_ago(n: i64) -> Date {
    today().checked_sub(jiff::Span::new().days(n)).unwrap()
}

fn day(brand: u64, date: Date, status: DayStatus) -> DayResult {
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).unwrap();
    let mut d = DayResult::pending(BrandCode(brand), date, now);
    d.status = status;
    d.attempts = 1;
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_day_s_result_is_listed_and_summed_up() {
    let t = TestHub::start().await;
    for b in [BRAND, OTHER] {
        let (s, _) = t
            .call(
                reqwest::Method::POST,
                "/api/v1/brands",
                ADMIN_KEY,
                Some(json!({"brandCode": b, "name": format!("brand {b}")})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let store = &t.hub.store;
    let mut agreed = day(BRAND, days_ago(3), DayStatus::Agreed);
    agreed.hash = Some("ab".repeat(48));
    agreed.iys_rows = 41;
    agreed.hub_rows = 41;
    agreed.matched = 41;
    agreed.applied = 2;
    agreed.agreed_at = Some(agreed.updated_at);
    let mut drift = day(BRAND, days_ago(1), DayStatus::Drift);
    drift.missing_in_iys = 1;
    drift.remaining = 1;
    drift.needs_person = 1;
    drift.examples.push(DriftItem {
        kind: DriftKind::MissingInIys,
        action: DriftAction::NeedsPerson,
        transaction_id: Some("cd".repeat(32)),
        recipient: Some("+905321234567".into()),
        recipient_type: Some("BIREYSEL".into()),
        consent_type: Some("MESAJ".into()),
        status: Some("ONAY".into()),
        consent_date: Some(format!("{} 10:00:00", days_ago(1))),
        source: Some("HS_WEB".into()),
        creation_date: None,
        event_id: Some(12),
        reason: Some("overtaken".into()),
    });
    for d in [
        &agreed,
        &drift,
        &day(BRAND, days_ago(2), DayStatus::HashMismatch),
        &day(BRAND, days_ago(40), DayStatus::Expired),
        &day(OTHER, days_ago(1), DayStatus::Agreed),
    ] {
        store.save_reconcile_day(d, "test").await.unwrap();
    }
    let path = format!("/api/v1/brands/{BRAND}/reconciliation");

    // By default the last 30 days, newest first, each as stored.
    let (s, v) = t.get(&path).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let days = v["days"].as_array().unwrap();
    let dates: Vec<&str> = days.iter().map(|d| d["date"].as_str().unwrap()).collect();
    let want = [days_ago(1), days_ago(2), days_ago(3)].map(|d| d.to_string());
    assert_eq!(dates, want.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(v["to"], today().to_string());
    assert_eq!(days[0]["status"], "drift");
    assert_eq!(days[0]["examples"][0]["kind"], "missing_in_iys");
    assert_eq!(days[0]["examples"][0]["action"], "needs_person");
    assert_eq!(days[0]["examples"][0]["type"], "MESAJ");
    assert_eq!(
        (
            days[0]["remaining"].as_u64(),
            days[0]["needsPerson"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(days[1]["status"], "hash_mismatch");
    assert_eq!(days[2]["hash"], "ab".repeat(48));
    assert_eq!(days[2]["applied"], 2);
    let stored: DayResult = serde_json::from_value(days[2].clone()).unwrap();
    assert_eq!(stored, agreed, "answered as stored");

    // A range.
    let (s, v) = t
        .get(&format!("{path}?from={}&to={}", days_ago(45), days_ago(2)))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let statuses: Vec<&str> = v["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["hash_mismatch", "agreed", "expired"]);

    // Bad queries, named.
    for (q, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        (&*format!("from={}&to={}", days_ago(1), days_ago(2)), "from"),
        (
            &*format!("from={}&to={}", days_ago(400), days_ago(1)),
            "from",
        ),
        ("day=2026-11-01", "day"),
    ] {
        let (s, v) = t.get(&format!("{path}?{q}")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {v}");
        assert_eq!(
            (v["error"]["code"].as_str(), v["error"]["field"].as_str()),
            (Some("invalid_value"), Some(field)),
            "{q}: {v}"
        );
    }

    // A key of the other brand sees nothing of this one; a read key of this one does.
    let (_, other) = t
        .call(
            reqwest::Method::POST,
            "/api/v1/api-keys",
            ADMIN_KEY,
            Some(json!({"name": "other", "brandCode": OTHER, "scopes": ["read"]})),
        )
        .await;
    let other_key = other["key"].as_str().unwrap();
    let (s, _) = t.call(reqwest::Method::GET, &path, other_key, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = t
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/brands/{OTHER}/reconciliation"),
            other_key,
            None,
        )
        .await;
    assert_eq!(
        (s, v["days"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (s, _) = t
        .call(reqwest::Method::GET, &path, "no-such-key", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // /sync: the last agreed day and the days with drift among the 7 IYS serves.
    let (s, v) = t.get(&format!("/api/v1/brands/{BRAND}/sync")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = &v["reconciliation"];
    assert_eq!(r["lastAgreedDay"], days_ago(3).to_string(), "{v}");
    assert_eq!(r["daysWithDrift"], 2, "drift and a refused file: {v}");
    assert_eq!(
        r["days"],
        json!({"agreed": 1, "drift": 1, "hash_mismatch": 1})
    );

    // /metrics: the same, as gauges.
    let text = t
        .http
        .get(format!("{}/metrics", t.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!(
            "iyshub_reconcile_days_with_drift{{brand=\"{BRAND}\"}} 2"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "iyshub_reconcile_days_with_drift{{brand=\"{OTHER}\"}} 0"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "iyshub_reconcile_days{{brand=\"{BRAND}\",status=\"hash_mismatch\"}} 1"
        )),
        "{text}"
    );
    let start = ConsentDate::from_civil(days_ago(3).to_datetime(jiff::civil::Time::midnight()))
        .to_timestamp()
        .as_second();
    assert!(
        text.contains(&format!(
            "iyshub_reconcile_last_agreed_day_timestamp_seconds{{brand=\"{BRAND}\"}} {start}"
        )),
        "{text}"
    );
    assert_eq!(
        text.matches("# TYPE iyshub_reconcile_days gauge").count(),
        1,
        "{text}"
    );
    t.stop().await;
}
