//! A stored consent that cannot be read (a value written by hand outside its set) is that
//! recipient's trouble alone: its check answers `unreadable_state`, never "allowed", while the
//! other recipients of the same request, and checks running beside it, are decided as usual.

mod common;

use hub_store::Store;
use serde_json::{Value, json};
use sqlx::Connection;

const KEY: &str = "unreadable-admin-key";
const BRAND: u64 = 650_001;
const BROKEN: &str = "+905320000007";

fn phone(n: usize) -> String {
    format!("+90532{n:07}")
}

async fn post(served: &common::Served, path: &str, body: Value) -> (u16, Value) {
    let r = served
        .http
        .post(format!("{}{path}", served.base))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn check(served: &common::Served, body: Value) -> (u16, Value) {
    post(served, &format!("/api/v1/brands/{BRAND}/check"), body).await
}

async fn unreadable_consent_answers_alone(served: common::Served) {
    let (status, body) = post(
        &served,
        "/api/v1/brands",
        json!({"brandCode": BRAND, "name": "Unreadable"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let changes: Vec<Value> = (0..40)
        .map(|n| {
            json!({"recipient": phone(n), "type": "MESAJ", "status": "ONAY",
                   "source": "HS_WEB", "consentDate": "2026-11-30 10:00:00"})
        })
        .collect();
    let (status, body) = post(
        &served,
        &format!("/api/v1/brands/{BRAND}/consents"),
        json!({ "changes": changes }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut conn = sqlx::AnyConnection::connect(&served.url).await.unwrap();
    let written = sqlx::query("UPDATE consent SET source = 'garbage' WHERE recipient = $1")
        .bind(BROKEN)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(written.rows_affected(), 1);

    // The broken one alone: an answer, not a 500.
    let (status, one) = check(
        &served,
        json!({"recipient": BROKEN, "channel": "MESAJ", "policy": "lenient"}),
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["allowed"], false);
    assert_eq!(one["reason"], "unreadable_state");
    assert_eq!(one["error"]["code"], "unreadable_state");
    assert!(
        one["error"]["message"]
            .as_str()
            .unwrap()
            .contains("garbage"),
        "{one}"
    );

    // In a list, beside an invalid recipient: every other recipient decided as before, each
    // answer in its place.
    let mut all: Vec<String> = (0..40).map(phone).collect();
    all.insert(3, "not a phone".to_owned());
    let (status, many) = check(
        &served,
        json!({"recipients": all, "channel": "MESAJ", "policy": "lenient"}),
    )
    .await;
    assert_eq!(status, 200, "{many}");
    assert_eq!(many["allowedCount"], 39, "{many}");
    let results = many["results"].as_array().unwrap();
    assert_eq!(results.len(), all.len());
    for (item, asked) in results.iter().zip(&all) {
        assert_eq!(item["recipient"], asked.as_str(), "{item}");
        let reason = match asked.as_str() {
            BROKEN => "unreadable_state",
            "not a phone" => "invalid_recipient",
            _ => "pending_allowed",
        };
        assert_eq!(item["reason"], reason, "{item}");
        assert_eq!(item["allowed"], reason == "pending_allowed", "{item}");
    }

    // Single checks running together share reads: only the broken recipient's fails.
    let checks = (0..40).map(|n| {
        let served = &served;
        async move {
            let body = json!({"recipient": phone(n), "channel": "MESAJ", "policy": "lenient"});
            (n, check(served, body).await)
        }
    });
    for (n, (status, answer)) in futures_util::future::join_all(checks).await {
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["allowed"], phone(n) != BROKEN, "{answer}");
    }
    // Long lists (read through the send-state mirror, which keeps the row as unreadable) are
    // answered the same way; twice, so the second runs after the mirror's build.
    let long: Vec<String> = (0..2_000).map(phone).collect();
    for _ in 0..2 {
        let (status, many) = check(
            &served,
            json!({"recipients": long, "channel": "MESAJ", "policy": "lenient"}),
        )
        .await;
        assert_eq!(status, 200, "{many}");
        assert_eq!(many["allowedCount"], 39, "{many}");
        let results = many["results"].as_array().unwrap();
        let unreadable: Vec<&Value> = results
            .iter()
            .filter(|i| i["reason"] == "unreadable_state")
            .collect();
        assert_eq!(unreadable.len(), 1, "{unreadable:?}");
        assert_eq!(unreadable[0]["recipient"], BROKEN);
    }
    campaign_filter_denies_only_the_unreadable(&served).await;
    segments_leave_out_only_the_unreadable(&served).await;
    export_breaks_off_naming_the_row(&served).await;
    unreadable_category_consent_answers_alone(&served).await;
    served.stop().await;
}

/// A category consent that cannot be read is its recipient's trouble alone too, in `/check`
/// and in the campaign filter.
async fn unreadable_category_consent_answers_alone(served: &common::Served) {
    let (status, body) = post(
        served,
        &format!("/api/v1/brands/{BRAND}/categories"),
        json!({"code": "kampanya", "name": "Kampanya", "kind": "marketing"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let changes: Vec<Value> = [1, 2]
        .map(|n| {
            json!({"recipient": phone(n), "type": "MESAJ", "status": "ONAY", "category": "kampanya",
                   "source": "HS_WEB", "consentDate": "2026-11-30 11:00:00"})
        })
        .into();
    let (status, body) = post(
        served,
        &format!("/api/v1/brands/{BRAND}/consents"),
        json!({ "changes": changes }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut conn = sqlx::AnyConnection::connect(&served.url).await.unwrap();
    if served.url.starts_with("postgres") {
        // PostgreSQL refuses the bad value outright (migration 0019); only a database older
        // than its check could hold one.
        sqlx::query("ALTER TABLE category_consent DROP CONSTRAINT category_consent_status_check")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let written = sqlx::query("UPDATE category_consent SET status = 'garbage' WHERE subject = $1")
        .bind(phone(2))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(written.rows_affected(), 1);

    let (status, many) = check(
        served,
        json!({"recipients": [phone(1), phone(2)], "channel": "MESAJ", "category": "kampanya", "policy": "lenient"}),
    )
    .await;
    assert_eq!(status, 200, "{many}");
    let results = many["results"].as_array().unwrap();
    assert_eq!(results[0]["allowed"], true, "{many}");
    assert_eq!(results[1]["allowed"], false, "{many}");
    assert_eq!(results[1]["reason"], "unreadable_state", "{many}");
    assert!(
        results[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("category_consent.status"),
        "{many}"
    );

    let list: String = (0..40).map(|n| format!("{}\n", phone(n))).collect();
    let (status, text) = served
        .post_text(
            KEY,
            &format!(
                "/api/v1/brands/{BRAND}/check/stream?channel=MESAJ&category=kampanya&policy=lenient"
            ),
            "text/csv",
            list,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (allowed, summary) = common::filter_answer(&text);
    let want: Vec<String> = (0..40)
        .map(phone)
        .filter(|p| p != BROKEN && *p != phone(2))
        .collect();
    assert_eq!(allowed, want);
    assert_eq!(
        summary["denied"],
        json!({"unreadable_state": 2}),
        "{summary}"
    );
}

/// An export is a faithful copy: it breaks off rather than leave the row out (never a silent
/// cut), and the error names the row to mend.
async fn export_breaks_off_naming_the_row(served: &common::Served) {
    let r = served
        .http
        .get(format!("{}/api/v1/brands/{BRAND}/exports", served.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.is_err(), "the export ended as if complete");
    let store = hub_store::SqlStore::connect(&served.url).await.unwrap();
    let error = store
        .list_consents(
            hub_core::BrandCode(BRAND),
            &hub_store::ConsentFilter::default(),
            None,
            100,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("garbage") && error.contains(BROKEN),
        "{error}"
    );
    store.close().await;
}

/// The campaign filter streams every other recipient as allowed and counts the broken one as
/// `unreadable_state`, also when the list spells it in national form.
async fn campaign_filter_denies_only_the_unreadable(served: &common::Served) {
    let mut list = String::from("recipient\n");
    for n in 0..40 {
        list.push_str(&phone(n));
        list.push('\n');
    }
    list.push_str(&BROKEN.replace("+90", "0"));
    list.push('\n');
    let (status, text) = served
        .post_text(
            KEY,
            &format!("/api/v1/brands/{BRAND}/check/stream?channel=MESAJ&policy=lenient"),
            "text/csv",
            list,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (allowed, summary) = common::filter_answer(&text);
    let want: Vec<String> = (0..40).map(phone).filter(|p| p != BROKEN).collect();
    assert_eq!(allowed, want);
    assert_eq!(summary["received"], 41, "{summary}");
    assert_eq!(summary["allowed"], 39, "{summary}");
    assert_eq!(
        summary["denied"],
        json!({"unreadable_state": 2}),
        "{summary}"
    );
}

/// A segment for sending leaves the broken consent out of its members and count (it may not be
/// sent to); a listing segment, which does not judge the source, shows it as stored.
async fn segments_leave_out_only_the_unreadable(served: &common::Served) {
    for (name, sendable) in [("sendable", true), ("listing", false)] {
        let (status, seg) = post(
            served,
            &format!("/api/v1/brands/{BRAND}/segments"),
            json!({"name": name, "definition": {"channels": ["MESAJ"], "policy": "lenient", "sendable": sendable}}),
        )
        .await;
        assert_eq!(status, 201, "{seg}");
        let id = seg["id"].as_i64().unwrap();
        let get = |path: String| async move {
            let r = served
                .http
                .get(format!(
                    "{}/api/v1/brands/{BRAND}/segments/{id}{path}",
                    served.base
                ))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{name}{path}");
            r.text().await.unwrap()
        };
        let count: Value = serde_json::from_str(&get("/count".into()).await).unwrap();
        let want: Vec<String> = (0..40)
            .map(phone)
            .filter(|p| !sendable || p != BROKEN)
            .collect();
        assert_eq!(count["count"], want.len(), "{name}: {count}");
        let members = get("/members".into()).await;
        let listed: Vec<&str> = members
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(listed, want, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    unreadable_consent_answers_alone(common::Served::start_sqlite(KEY, |_| {}).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_when_set() {
    unreadable_consent_answers_alone(
        common::Served::start("iyshub_unreadable_test", KEY, |_| {}).await,
    )
    .await;
}
