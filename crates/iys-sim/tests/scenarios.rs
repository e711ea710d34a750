//! Scenario tests of the simulator over real HTTP: each test starts a simulator in-process on
//! port 0, talks to it with reqwest like an IYS client would, and asserts IYS's exact status
//! codes, H-codes and bodies. Time-dependent behaviour uses the `/_sim/clock` control API, so
//! no test sleeps for longer than about a second.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::net::TcpListener;

use iys::HCode;
use iys_sim::{Profile, SimConfig, SimServer};

// ---------------------------------------------------------------------------------------------
// Support

const IYS: u64 = 600_123;
const BRAND: u64 = 600_123;
const USER: &str = "demo";
const PASSWORD: &str = "demo-password";

/// A Wednesday with no holiday around it (Istanbul wall clock).
const DAY: &str = "2026-06-10";

fn fast() -> SimConfig {
    SimConfig::for_profile(Profile::Fast)
}

async fn start_server(config: SimConfig, state_file: Option<PathBuf>) -> SimServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    SimServer::start(config, listener, state_file)
        .await
        .expect("the simulator starts")
}

/// An HTTP answer: status and JSON body (`Null` when empty, a string when not JSON).
#[derive(Debug, Clone)]
struct Resp {
    status: StatusCode,
    body: Value,
}

impl Resp {
    async fn read(resp: reqwest::Response) -> Resp {
        let status = resp.status();
        let bytes = resp.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp { status, body }
    }

    fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("")
    }

    /// Asserts an IYS business error: HTTP status and the first item's H-code.
    #[track_caller]
    fn expect_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "body: {}",
            self.body
        );
        self
    }

    /// Asserts an IYS error whose only item is exactly `code` with IYS's own message.
    #[track_caller]
    fn expect_exact_error(&self, code: HCode) {
        assert_eq!(
            self.status.as_u16(),
            code.http_status(),
            "body: {}",
            self.body
        );
        assert_eq!(
            self.body,
            json!({"errors": [{"code": code.as_str(), "message": code.message_tr()}]})
        );
    }

    /// Asserts a one-item IYS error on `consentDate`, with IYS's own message.
    #[track_caller]
    fn expect_exact_error_at(&self, code: HCode) {
        assert_eq!(
            self.status.as_u16(),
            code.http_status(),
            "body: {}",
            self.body
        );
        assert_eq!(self.code(), code.as_str(), "body: {}", self.body);
        assert_eq!(self.body["errors"][0]["message"], code.message_tr());
        assert_eq!(self.body["errors"][0]["location"], json!(["consentDate"]));
        assert_eq!(self.body["errors"].as_array().map(Vec::len), Some(1));
    }

    #[track_caller]
    fn expect_ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }
}

/// A client of one simulator, holding an access token.
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn new(server: &SimServer) -> Client {
        let mut c = Client {
            http: reqwest::Client::new(),
            base: server.base_url(),
            token: String::new(),
        };
        c.token = c.token().await;
        c
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `/sps/{iysCode}/brands/{brandCode}{rest}`.
    fn brand_url(&self, rest: &str) -> String {
        self.url(&format!("/sps/{IYS}/brands/{BRAND}{rest}"))
    }

    async fn token_request(&self, body: Value) -> Resp {
        Resp::read(
            self.http
                .post(self.url("/oauth2/token"))
                .json(&body)
                .send()
                .await
                .expect("token request"),
        )
        .await
    }

    /// A fresh access token through the password grant.
    async fn token(&self) -> String {
        let r = self
            .token_request(
                json!({"grant_type": "password", "username": USER, "password": PASSWORD}),
            )
            .await;
        r.expect_ok(200)["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    async fn send(&self, method: Method, url: String, body: Option<&Value>) -> Resp {
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        Resp::read(req.send().await.expect("request")).await
    }

    async fn post(&self, rest: &str, body: &Value) -> Resp {
        self.send(Method::POST, self.brand_url(rest), Some(body))
            .await
    }

    async fn get(&self, rest: &str) -> Resp {
        self.send(Method::GET, self.brand_url(rest), None).await
    }

    async fn add(&self, v2: bool, body: &Value) -> Resp {
        let prefix = if v2 { "/v2" } else { "" };
        let url = self.url(&format!("{prefix}/sps/{IYS}/brands/{BRAND}/consents"));
        self.send(Method::POST, url, Some(body)).await
    }

    async fn bulk(&self, v2: bool, items: &Value) -> Resp {
        let prefix = if v2 { "/v2" } else { "" };
        let url = self.url(&format!(
            "{prefix}/sps/{IYS}/brands/{BRAND}/consents/request"
        ));
        self.send(Method::POST, url, Some(items)).await
    }

    async fn bulk_result(&self, v2: bool, request_id: &str) -> Resp {
        let prefix = if v2 { "/v2" } else { "" };
        let url = self.url(&format!(
            "{prefix}/sps/{IYS}/brands/{BRAND}/consents/request/{request_id}"
        ));
        self.send(Method::GET, url, None).await
    }

    async fn status(&self, recipient: &str, consent_type: &str) -> Resp {
        self.post(
            "/consents/status",
            &json!({"recipient": recipient, "recipientType": "BIREYSEL", "type": consent_type}),
        )
        .await
    }

    async fn history(&self, recipient: &str, query: &str) -> Resp {
        self.post(
            &format!("/consents/history{query}"),
            &json!({"recipient": recipient, "recipientType": "BIREYSEL", "type": "MESAJ"}),
        )
        .await
    }

    /// The control API (`/_sim/...`), no token.
    /// `PUT /_sim/{section}`: lays `patch` over one section of the simulator's configuration.
    async fn put_config(&self, section: &str, patch: Value) -> Resp {
        self.control(Method::PUT, section, Some(patch)).await
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, self.url(&format!("/_sim/{path}")));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = Resp::read(req.send().await.expect("control request")).await;
        assert!(
            r.status.is_success(),
            "/_sim/{path}: {} {}",
            r.status,
            r.body
        );
        r
    }

    async fn stats(&self) -> Value {
        self.control(Method::GET, "stats", None).await.body
    }

    /// Sets the simulator's clock to an Istanbul wall-clock time (frozen there or running
    /// from there), without touching the token.
    async fn set_clock(&self, now: &str, freeze: bool) {
        if freeze {
            self.control(Method::POST, "clock/freeze", None).await;
        }
        self.control(Method::POST, "clock/set", Some(json!({"now": now})))
            .await;
    }

    /// Freezes the clock at `now` and takes a token valid at that time.
    async fn freeze_at(&mut self, now: &str) {
        self.set_clock(now, true).await;
        self.token = self.token().await;
    }

    async fn advance(&self, seconds: i64) {
        self.control(
            Method::POST,
            "clock/advance",
            Some(json!({"seconds": seconds})),
        )
        .await;
    }

    async fn citizen(&self, actions: Value) -> Vec<Value> {
        let r = self.control(Method::POST, "citizen", Some(actions)).await;
        assert_eq!(r.body["errors"], json!([]), "citizen actions: {}", r.body);
        r.body["movements"].as_array().expect("movements").clone()
    }
}

/// A consent body on MESAJ from the provider's web site.
fn consent(recipient: &str, status: &str, consent_date: &str) -> Value {
    json!({
        "recipient": recipient,
        "type": "MESAJ",
        "source": "HS_WEB",
        "status": status,
        "consentDate": consent_date,
        "recipientType": "BIREYSEL"
    })
}

fn at(time: &str) -> String {
    format!("{DAY} {time}")
}

fn phone(n: u32) -> String {
    format!("+90532{n:07}")
}

#[track_caller]
fn tx_of(v: &Value) -> String {
    let tx = v["transactionId"].as_str().expect("a transactionId");
    assert!(
        tx.len() == 64 && tx.bytes().all(|b| b.is_ascii_hexdigit()),
        "transactionId {tx:?} is not 64 hex characters"
    );
    tx.to_owned()
}

fn txs(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|m| {
            m["transactionId"]
                .as_str()
                .expect("transactionId")
                .to_owned()
        })
        .collect()
}

/// Polls until `check` holds (at most `within`).
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

// ---------------------------------------------------------------------------------------------
// 1. The life of one consent

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_life_cycle_history_status_and_replays() {
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    c.freeze_at(&at("12:00:00")).await;
    let a = phone(1_110_001);

    let onay1 = c.add(false, &consent(&a, "ONAY", &at("10:00:00"))).await;
    let tx1 = tx_of(onay1.expect_ok(200));
    assert_eq!(onay1.body["creationDate"], at("12:00:00"));
    c.advance(60).await;
    let ret = c.add(false, &consent(&a, "RET", &at("10:30:00"))).await;
    let tx2 = tx_of(ret.expect_ok(200));
    c.advance(60).await;
    let third = consent(&a, "ONAY", &at("11:00:00"));
    let onay2 = c.add(true, &third).await;
    let tx3 = tx_of(onay2.expect_ok(200));
    assert_eq!(onay2.body["creationDate"], at("12:02:00"));
    assert_eq!(HashSet::from([&tx1, &tx2, &tx3]).len(), 3);

    // An older consentDate than the stored one.
    c.add(false, &consent(&a, "RET", &at("09:00:00")))
        .await
        .expect_exact_error(HCode::H178);
    // A first-ever RET.
    let b = phone(1_110_002);
    c.add(false, &consent(&b, "RET", &at("10:00:00")))
        .await
        .expect_exact_error(HCode::H175);
    // RET over RET.
    let d = phone(1_110_003);
    c.add(false, &consent(&d, "ONAY", &at("10:00:00")))
        .await
        .expect_ok(200);
    c.add(false, &consent(&d, "RET", &at("10:10:00")))
        .await
        .expect_ok(200);
    c.add(false, &consent(&d, "RET", &at("10:20:00")))
        .await
        .expect_exact_error(HCode::H174);
    // Refused movements leave no trace.
    c.status(&b, "MESAJ").await.expect_error(404, "H401");

    // History: newest consentDate first, paged.
    let page1 = c.history(&a, "?limit=2").await;
    let page1 = page1.expect_ok(200);
    assert_eq!(txs(&page1["list"]), [tx3.clone(), tx2.clone()]);
    assert_eq!(
        page1["pagination"],
        json!({"totalCount": 3, "pageSize": 2, "offset": 0})
    );
    assert_eq!(
        page1["list"][0],
        json!({
            "consentDate": at("11:00:00"),
            "creationDate": at("12:02:00"),
            "source": "HS_WEB",
            "recipient": a,
            "recipientType": "BIREYSEL",
            "status": "ONAY",
            "type": "MESAJ",
            "transactionId": tx3,
        })
    );
    assert_eq!(page1["list"][1]["status"], "RET");
    let page2 = c.history(&a, "?limit=2&offset=2").await;
    let page2 = page2.expect_ok(200);
    assert_eq!(txs(&page2["list"]), std::slice::from_ref(&tx1));
    assert_eq!(
        page2["pagination"],
        json!({"totalCount": 3, "pageSize": 1, "offset": 2})
    );
    c.history(&a, "?limit=101").await.expect_error(422, "H186");

    // Single status: the current state and its transactionId.
    let status = c.status(&a, "MESAJ").await;
    assert_eq!(
        *status.expect_ok(200),
        json!({
            "consentDate": at("11:00:00"),
            "creationDate": at("12:02:00"),
            "source": "HS_WEB",
            "recipient": a,
            "recipientType": "BIREYSEL",
            "status": "ONAY",
            "type": "MESAJ",
            "transactionId": tx3,
        })
    );

    // v2: an identical replay answers the original transaction, no new movement.
    let before = c.stats().await;
    c.advance(60).await;
    let replay = c.add(true, &third).await;
    assert_eq!(*replay.expect_ok(200), onay2.body);
    let after = c.stats().await;
    assert_eq!(after["movements"], before["movements"]);
    assert_eq!(after["duplicateMovements"], before["duplicateMovements"]);

    // v1: replaying ONAY is a new movement, counted as a duplicate.
    let replay = c.add(false, &third).await;
    let tx4 = tx_of(replay.expect_ok(200));
    assert_ne!(tx4, tx3);
    let after = c.stats().await;
    assert_eq!(
        after["movements"].as_u64().unwrap(),
        before["movements"].as_u64().unwrap() + 1
    );
    assert_eq!(
        after["duplicateMovements"].as_u64().unwrap(),
        before["duplicateMovements"].as_u64().unwrap() + 1
    );
    let status = c.status(&a, "MESAJ").await;
    assert_eq!(status.expect_ok(200)["transactionId"], tx4.as_str());
    let history = c.history(&a, "").await;
    assert_eq!(history.expect_ok(200)["pagination"]["totalCount"], 4);
}

// ---------------------------------------------------------------------------------------------
// 2. Bulk requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_with_mixed_items() {
    let mut config = fast();
    config.timing.bulk_delay_ms = 300;
    config.timing.bulk_item_ms = 0;
    config.timing.bulk_min_poll_age_ms = 300;
    let server = start_server(config, None).await;
    let mut c = Client::new(&server).await;
    c.freeze_at(&at("12:00:00")).await;
    let (a, b, x) = (phone(2_220_001), phone(2_220_002), phone(2_220_003));
    let email = json!({
        "recipient": "Ayse.Kaya@Example.com",
        "type": "EPOSTA",
        "source": "HS_WEB",
        "status": "ONAY",
        "consentDate": at("10:00:00"),
        "recipientType": "BIREYSEL"
    });
    let items = json!([
        consent(&a, "ONAY", &at("10:00:00")),
        email,
        consent(&b, "RET", &at("10:00:00")),
    ]);

    // A list with a duplicate consent is refused, pointing at the repeat.
    let dup = json!([
        consent(&a, "ONAY", &at("10:00:00")),
        consent(&x, "ONAY", &at("10:00:00")),
        consent(&a, "RET", &at("11:00:00")),
    ]);
    let r = c.bulk(false, &dup).await;
    r.expect_error(422, "H194");
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["errors"][0]["index"], 2);
    assert_eq!(r.body["errors"][0]["message"], HCode::H194.message_tr());
    // A list with an invalid item is refused as a whole, with that item's index.
    let bad = json!([
        consent(&a, "ONAY", &at("10:00:00")),
        consent(&x, "ONAY", &at("10:00:00")),
        consent("+90532", "ONAY", &at("10:00:00")),
    ]);
    let r = c.bulk(false, &bad).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let errors = r.body["errors"].as_array().unwrap();
    assert!(!errors.is_empty());
    assert!(errors.iter().all(|e| e["index"] == 2), "{}", r.body);
    assert_eq!(errors[0]["location"], json!(["recipient"]));
    assert_eq!(errors[0]["value"], "+90532");
    let bad_date = json!([
        consent(&a, "ONAY", &at("10:00:00")),
        consent(&x, "ONAY", "2026-06-10T10:00:00Z"),
    ]);
    let r = c.bulk(false, &bad_date).await;
    r.expect_error(422, "H158");
    assert_eq!(r.body["errors"][0]["index"], 1);
    assert_eq!(
        c.stats().await["movements"],
        0,
        "nothing of a refused list is written"
    );

    // A valid list: 202, one sub-request per item, in order.
    let accepted = c.bulk(false, &items).await;
    let accepted = accepted.expect_ok(202).clone();
    let request_id = accepted["requestId"].as_str().unwrap().to_owned();
    let subs = accepted["subRequests"].as_array().unwrap();
    assert_eq!(subs.len(), 3);
    let recipients: Vec<&str> = subs
        .iter()
        .map(|s| s["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(
        recipients,
        [a.as_str(), "ayse.kaya@example.com", b.as_str()]
    );
    for (s, (t, st)) in subs
        .iter()
        .zip([("MESAJ", "ONAY"), ("EPOSTA", "ONAY"), ("MESAJ", "RET")])
    {
        assert_eq!(
            (s["type"].as_str(), s["status"].as_str()),
            (Some(t), Some(st))
        );
        assert_eq!(s["source"], "HS_WEB");
        assert_eq!(s["consentDate"], at("10:00:00"));
        assert_eq!(s["recipientType"], "BIREYSEL");
        assert_eq!(s["creationDate"], at("12:00:00"));
        assert_eq!(s["subRequestId"].as_str().unwrap().len(), 36);
    }

    // Before IYS starts processing: an empty array (and an early poll).
    let r = c.bulk_result(false, &request_id).await;
    assert_eq!(*r.expect_ok(200), json!([]));
    assert_eq!(c.stats().await["earlyBulkPolls"], 1);
    c.advance(1).await;
    let r = c.bulk_result(false, &request_id).await;
    let results = r.expect_ok(200).as_array().unwrap().clone();
    assert_eq!(results.len(), 3);
    for (i, item) in results.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["requestId"], request_id.as_str());
        assert_eq!(item["subRequestId"], subs[i]["subRequestId"]);
    }
    for item in &results[..2] {
        assert_eq!(item["status"], "success", "{item}");
        tx_of(item);
        assert_eq!(item["creationDate"], at("12:00:00"));
        assert!(item.get("error").is_none());
    }
    assert_eq!(
        results[2],
        json!({
            "index": 2,
            "status": "failure",
            "subRequestId": subs[2]["subRequestId"],
            "requestId": request_id,
            "error": {
                "code": "H175",
                "message": "İlk izin kayıt işlemlerinde RET durum (status) bilgisi içeren izinler kaydedilmez."
            }
        })
    );
    let status = c.status(&a, "MESAJ").await;
    assert_eq!(
        status.expect_ok(200)["transactionId"],
        results[0]["transactionId"]
    );
    assert_eq!(
        c.stats().await["earlyBulkPolls"],
        1,
        "a late poll is not early"
    );
    // E-mails are stored in lower case and found whatever the case of the query.
    let r = c.status("AYSE.KAYA@example.COM", "EPOSTA").await;
    let r = r.expect_ok(200);
    assert_eq!(r["recipient"], "ayse.kaya@example.com");
    assert_eq!(r["transactionId"], results[1]["transactionId"]);

    // A request part-way through: items not yet done are `enqueue`.
    let mut timing = c.control(Method::GET, "timing", None).await.body;
    timing["bulk_item_ms"] = json!(1000);
    c.put_config("timing", timing).await;
    let slow = json!([
        consent(&phone(2_220_011), "ONAY", &at("11:00:00")),
        consent(&phone(2_220_012), "ONAY", &at("11:00:00")),
        consent(&phone(2_220_013), "ONAY", &at("11:00:00")),
    ]);
    let slow_id = c.bulk(false, &slow).await.expect_ok(202)["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    let statuses = |r: &Resp| -> Vec<String> {
        r.body
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["status"].as_str().unwrap().to_owned())
            .collect()
    };
    c.advance(1).await;
    let r = c.bulk_result(false, &slow_id).await;
    assert_eq!(statuses(&r), ["success", "enqueue", "enqueue"]);
    assert!(r.body[1].get("transactionId").is_none());
    assert!(r.body[1].get("creationDate").is_none());
    c.advance(1).await;
    let r = c.bulk_result(false, &slow_id).await;
    assert_eq!(statuses(&r), ["success", "success", "enqueue"]);
    c.advance(1).await;
    let r = c.bulk_result(false, &slow_id).await;
    assert_eq!(statuses(&r), ["success", "success", "success"]);

    // v2: re-sending a stored consent points at the request that wrote it.
    let movements = c.stats().await["movements"].clone();
    let again = json!([consent(&a, "ONAY", &at("10:00:00"))]);
    let r = c.bulk(true, &again).await;
    let again_id = r.expect_ok(202)["requestId"].as_str().unwrap().to_owned();
    assert_ne!(again_id, request_id);
    c.advance(2).await;
    let r = c.bulk_result(true, &again_id).await;
    let item = &r.expect_ok(200)[0];
    assert_eq!(item["status"], "success");
    assert_eq!(item["transactionId"], results[0]["transactionId"]);
    assert_eq!(
        item["originalRequestInformation"],
        json!({"requestId": request_id, "subRequestId": subs[0]["subRequestId"]})
    );
    assert_eq!(item["isAddConsentV2Service"], true);
    assert_eq!(c.stats().await["movements"], movements, "no new movement");
}

/// `bulk_result_order` lists a bulk result's items reversed or shuffled (v1 and v2), each with
/// its own `index`, `subRequestId` and outcome; a request part-way through too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_results_in_another_order_keep_each_items_index_and_outcome() {
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    c.freeze_at(&at("12:00:00")).await;
    assert_eq!(
        c.control(Method::GET, "timing", None).await.body["bulk_result_order"],
        "submitted",
        "IYS's own order by default"
    );
    // Every third item a first RET: IYS refuses it with H175 when it processes the item.
    let items = |base: u32| -> Value {
        (0..40)
            .map(|n| {
                let status = if n % 3 == 1 { "RET" } else { "ONAY" };
                consent(&phone(base + n), status, &at("10:00:00"))
            })
            .collect()
    };
    // The outcome IYS must report at submission index `i`.
    let expected = |i: usize| if i % 3 == 1 { "failure" } else { "success" };
    // (index, subRequestId, status, H-code) of each result item, checked against the sub-requests.
    let check = |accepted: &Value, results: &Value| -> Vec<usize> {
        let subs = accepted["subRequests"].as_array().unwrap();
        let results = results.as_array().unwrap();
        assert_eq!(results.len(), subs.len());
        let order: Vec<usize> = results
            .iter()
            .map(|r| r["index"].as_u64().unwrap() as usize)
            .collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..subs.len()).collect::<Vec<_>>(),
            "each index once"
        );
        for r in results {
            let i = r["index"].as_u64().unwrap() as usize;
            assert_eq!(r["subRequestId"], subs[i]["subRequestId"], "{r}");
            assert_eq!(r["requestId"], accepted["requestId"]);
            assert_eq!(r["status"], expected(i), "{r}");
            if expected(i) == "failure" {
                assert_eq!(r["error"]["code"], "H175", "{r}");
            } else {
                tx_of(r);
            }
        }
        order
    };
    let submit = async |c: &Client, v2: bool, base: u32| -> (Value, Value) {
        let accepted = c.bulk(v2, &items(base)).await.expect_ok(202).clone();
        c.advance(1).await;
        let id = accepted["requestId"].as_str().unwrap().to_owned();
        let results = c.bulk_result(v2, &id).await.expect_ok(200).clone();
        (accepted, results)
    };
    let submitted: Vec<usize> = (0..40).collect();
    let reversed: Vec<usize> = (0..40).rev().collect();

    let (accepted, results) = submit(&c, false, 4_400_000).await;
    assert_eq!(check(&accepted, &results), submitted);

    c.put_config("timing", json!({"bulk_result_order": "reversed"}))
        .await;
    for (v2, base) in [(false, 4_400_100), (true, 4_400_200)] {
        let (accepted, results) = submit(&c, v2, base).await;
        assert_eq!(check(&accepted, &results), reversed, "v2: {v2}");
    }
    // The order belongs to the answer, not to the stored request: the first one comes reversed now.
    let first = accepted["requestId"].as_str().unwrap();
    let again = c.bulk_result(false, first).await.expect_ok(200).clone();
    assert_eq!(check(&accepted, &again), reversed);

    c.put_config("timing", json!({"bulk_result_order": "shuffled"}))
        .await;
    for (v2, base) in [(false, 4_400_300), (true, 4_400_400)] {
        let (accepted, results) = submit(&c, v2, base).await;
        let order = check(&accepted, &results);
        // 40! orders: the odds of drawing the submitted or reversed one are nil.
        assert_ne!(order, submitted, "v2: {v2}");
        assert_ne!(order, reversed, "v2: {v2}");
        let id = accepted["requestId"].as_str().unwrap();
        let again = c.bulk_result(v2, id).await.expect_ok(200).clone();
        assert_ne!(
            check(&accepted, &again),
            order,
            "a fresh order on every poll"
        );
    }

    // Part-way through, the items still queued are `enqueue` wherever they appear.
    c.put_config(
        "timing",
        json!({"bulk_result_order": "reversed", "bulk_item_ms": 1000}),
    )
    .await;
    let slow: Value = (0..3)
        .map(|n| consent(&phone(4_400_500 + n), "ONAY", &at("11:00:00")))
        .collect();
    let accepted = c.bulk(true, &slow).await.expect_ok(202).clone();
    let id = accepted["requestId"].as_str().unwrap().to_owned();
    c.advance(1).await;
    let r = c.bulk_result(true, &id).await;
    let seen: Vec<(u64, &str)> = r
        .expect_ok(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["index"].as_u64().unwrap(), i["status"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [(2, "enqueue"), (1, "enqueue"), (0, "success")]);

    // An unknown order is refused and changes nothing.
    let r = c
        .http
        .put(c.url("/_sim/timing"))
        .json(&json!({"bulk_result_order": "backwards"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        c.control(Method::GET, "timing", None).await.body["bulk_result_order"],
        "reversed"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The changes feed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_feed_pages_with_the_cursor() {
    let server = start_server(fast(), None).await;
    let c = Client::new(&server).await;
    // 2,500 citizen movements (ONAY then RET per recipient), with three HS movements between.
    let actions = |from: u32, to: u32| -> Value {
        let list: Vec<Value> = (from..to)
            .flat_map(|n| {
                ["ONAY", "RET"].map(|status| {
                    json!({"brandCode": BRAND, "recipient": phone(3_000_000 + n), "type": "MESAJ", "status": status})
                })
            })
            .collect();
        Value::Array(list)
    };
    let mut citizen_txs = txs(&Value::Array(c.citizen(actions(0, 600)).await));
    let mut hs_txs = Vec::new();
    let now = c.control(Method::GET, "clock", None).await.body["istanbul"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..3 {
        let r = c
            .add(false, &consent(&phone(3_900_000 + n), "ONAY", &now))
            .await;
        hs_txs.push(tx_of(r.expect_ok(200)));
    }
    citizen_txs.extend(txs(&Value::Array(c.citizen(actions(600, 1250)).await)));
    assert_eq!(citizen_txs.len(), 2500);
    // The feed serves a second once it is over.
    c.advance(1).await;

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let mut query = vec![("source", "IYS".to_owned()), ("limit", "1000".to_owned())];
        if let Some(a) = &after {
            query.push(("after", a.clone()));
        }
        let resp = c
            .http
            .get(c.brand_url("/consents/changes"))
            .bearer_auth(&c.token)
            .query(&query)
            .send()
            .await
            .unwrap();
        let r = Resp::read(resp).await;
        if r.status == StatusCode::NO_CONTENT {
            assert_eq!(r.body, Value::Null, "204 has no body");
            break;
        }
        let page = r.expect_ok(200);
        let list = page["list"].as_array().unwrap();
        pages.push(list.len());
        assert!(
            list.iter().all(|m| m["source"] == "IYS_WEB"),
            "only IYS movements"
        );
        let last = list.last().unwrap()["transactionId"].as_str().unwrap();
        let cursor = page["after"].as_str().unwrap();
        assert!(cursor.ends_with(last), "{cursor}");
        seen.extend(txs(&page["list"]));
        after = Some(cursor.to_owned());
        assert!(pages.len() <= 4, "the feed does not end");
    }
    assert_eq!(pages, [1000, 1000, 500]);
    assert_eq!(seen, citizen_txs, "no gap, no repeat, oldest first");

    // IYS is the default source. (An odd limit would end inside a recipient's ONAY/RET pair,
    // which shares a transactionId when made in one second; the page would then run on.)
    let first = c.get("/consents/changes?limit=2").await;
    assert_eq!(txs(&first.expect_ok(200)["list"]), citizen_txs[..2]);
    // The provider's own movements.
    let hs = c.get("/consents/changes?source=HS").await;
    let hs = hs.expect_ok(200);
    assert_eq!(txs(&hs["list"]), hs_txs);
    assert!(
        hs["list"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["source"] == "HS_WEB")
    );
    let hs_after = hs["after"].as_str().unwrap().to_owned();
    let r = c
        .http
        .get(c.brand_url("/consents/changes"))
        .bearer_auth(&c.token)
        .query(&[("source", "HS"), ("after", hs_after.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let r = c.get("/consents/changes?source=SH").await;
    r.expect_error(422, "H506");
    assert_eq!(r.body["errors"][0]["message"], HCode::H506.message_tr());
    c.get("/consents/changes?limit=1001")
        .await
        .expect_error(422, "H507");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_feed_hides_the_last_hour_and_keeps_seven_days() {
    let mut config = fast();
    config.timing.hide_last_hour = true;
    let server = start_server(config, None).await;
    let mut c = Client::new(&server).await;
    c.freeze_at(&at("12:00:00")).await;
    let m = c
        .citizen(json!({"brandCode": BRAND, "recipient": phone(3_100_001), "type": "MESAJ", "status": "ONAY"}))
        .await;
    assert_eq!(m[0]["creationDate"], at("12:00:00"));
    assert_eq!(m[0]["consentDate"], at("12:00:00"));
    let tx = tx_of(&m[0]);

    let r = c.get("/consents/changes").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "made now: hidden");
    c.advance(59 * 60).await;
    let r = c.get("/consents/changes").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "59 minutes old: hidden");
    c.advance(60).await;
    let r = c.get("/consents/changes").await;
    assert_eq!(txs(&r.expect_ok(200)["list"]), [tx]);
    c.advance(8 * 86_400).await;
    c.token = c.token().await;
    let r = c.get("/consents/changes").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "older than 7 days");
}

// ---------------------------------------------------------------------------------------------
// 3b. Movements of one consent in one second share a transactionId (REFERENCE §2.3, §4.4)

impl Client {
    /// Every page of the changes feed from the start, `limit` at a time, until 204.
    async fn all_changes(&self, source: &str, limit: usize) -> (Vec<Value>, usize) {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut query = vec![("source", source.to_owned()), ("limit", limit.to_string())];
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let resp = self
                .http
                .get(self.brand_url("/consents/changes"))
                .bearer_auth(&self.token)
                .query(&query)
                .send()
                .await
                .expect("changes request");
            let r = Resp::read(resp).await;
            if r.status == StatusCode::NO_CONTENT {
                return (seen, pages);
            }
            let page = r.expect_ok(200);
            let list = page["list"].as_array().expect("a list");
            let last = list.last().expect("a page is never empty");
            let cursor = page["after"].as_str().expect("a cursor");
            let expected_cursor = format!(
                "{}_{}",
                cursor.split('_').next().unwrap_or(""),
                last["transactionId"].as_str().unwrap_or("")
            );
            assert_eq!(
                cursor, expected_cursor,
                "the cursor names the last movement"
            );
            seen.extend(list.iter().cloned());
            after = Some(cursor.to_owned());
            pages += 1;
            assert!(pages <= 100, "the feed does not end");
        }
    }
}

fn citizen_action(recipient: &str, status: &str) -> Value {
    json!({"brandCode": BRAND, "recipient": recipient, "type": "MESAJ", "status": status})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizen_movements_in_one_second_share_a_transaction_id() {
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    c.freeze_at(&at("12:00:00")).await;
    let (a, b) = (phone(3_200_001), phone(3_200_002));
    let m = c
        .citizen(json!([
            citizen_action(&a, "ONAY"),
            citizen_action(&b, "ONAY"),
            citizen_action(&a, "RET"),
        ]))
        .await;
    let (a_onay, b_onay, a_ret) = (tx_of(&m[0]), tx_of(&m[1]), tx_of(&m[2]));
    assert_eq!(
        a_onay, a_ret,
        "same consent, same second: one transactionId"
    );
    assert_ne!(a_onay, b_onay, "another recipient has its own");

    // A later second starts a new transactionId.
    c.advance(1).await;
    let m = c.citizen(citizen_action(&a, "ONAY")).await;
    let a_again = tx_of(&m[0]);
    assert_ne!(a_again, a_onay);
    assert_eq!(m[0]["creationDate"], at("12:00:01"));

    // Another type of the same address, in the same second, is another consent.
    let m = c
        .citizen(json!({"brandCode": BRAND, "recipient": a, "type": "ARAMA", "status": "ONAY"}))
        .await;
    assert_eq!(m[0]["creationDate"], at("12:00:01"));
    assert_ne!(tx_of(&m[0]), a_again);

    // The current second is not served yet: a later movement could still join its groups.
    let (feed, _) = c.all_changes("IYS", 1000).await;
    assert_eq!(feed.len(), 3, "only 12:00:00 is over");
    let late = c.citizen(citizen_action(&a, "RET")).await;
    assert_eq!(tx_of(&late[0]), a_again, "joins the 12:00:01 group");
    c.advance(1).await;

    // Every movement appears in the feed, in order, each with its shared id.
    let (feed, _) = c.all_changes("IYS", 1000).await;
    let of_a: Vec<(String, String)> = feed
        .iter()
        .filter(|x| x["recipient"] == a.as_str() && x["type"] == "MESAJ")
        .map(|x| {
            (
                x["status"].as_str().unwrap().to_owned(),
                x["transactionId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        of_a,
        [
            ("ONAY".to_owned(), a_onay.clone()),
            ("RET".to_owned(), a_onay.clone()),
            ("ONAY".to_owned(), a_again.clone()),
            ("RET".to_owned(), a_again.clone()),
        ]
    );
    // History lists both, with the same id.
    let h = c.history(&a, "").await;
    let h = h.expect_ok(200);
    assert_eq!(h["pagination"]["totalCount"], 4);
    assert_eq!(txs(&h["list"]).iter().filter(|t| **t == a_onay).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_add_and_a_citizen_ret_in_one_second_share_a_transaction_id() {
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    c.freeze_at(&at("12:00:00")).await;
    let a = phone(3_300_001);

    // v2 add, then its identical replay in the same second: the same transaction, no movement.
    let body = consent(&a, "ONAY", &at("11:00:00"));
    let added = c.add(true, &body).await;
    let tx = tx_of(added.expect_ok(200));
    let before = c.stats().await;
    let replay = c.add(true, &body).await;
    assert_eq!(*replay.expect_ok(200), added.body);
    assert_eq!(c.stats().await["movements"], before["movements"]);

    // The citizen withdraws in the same second.
    let m = c.citizen(citizen_action(&a, "RET")).await;
    assert_eq!(tx_of(&m[0]), tx);
    let status = c.status(&a, "MESAJ").await;
    let status = status.expect_ok(200);
    assert_eq!(
        (&status["status"], &status["transactionId"]),
        (&json!("RET"), &json!(tx))
    );

    // A bulk item for the same consent, processed within the same second, joins the group.
    let bulk = c
        .bulk(false, &json!([consent(&a, "ONAY", &at("12:00:00"))]))
        .await;
    let request_id = bulk.expect_ok(202)["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    c.advance(1).await;
    let results = c.bulk_result(false, &request_id).await;
    let item = &results.expect_ok(200)[0];
    assert_eq!(item["status"], "success", "{item}");
    assert_eq!(item["creationDate"], at("12:00:00"));
    assert_eq!(tx_of(item), tx);

    // A v1 add one second later has a transactionId of its own.
    let later = c.add(false, &consent(&a, "RET", &at("12:00:01"))).await;
    assert_ne!(tx_of(later.expect_ok(200)), tx);

    // Each feed shows its own side's movements under the shared id, once their second is over.
    c.advance(1).await;
    let (hs, _) = c.all_changes("HS", 1000).await;
    let (iys, _) = c.all_changes("IYS", 1000).await;
    assert_eq!(
        txs(&Value::Array(hs[..2].to_vec())),
        [tx.clone(), tx.clone()]
    );
    assert_eq!(hs.len(), 3);
    assert_eq!(c.all_changes("HS", 1).await.0, hs, "paging one at a time");
    assert_eq!(
        (&iys[0]["status"], iys[0]["transactionId"].as_str()),
        (&json!("RET"), Some(tx.as_str()))
    );

    // The daily file: separate rows with the same id.
    c.set_clock("2026-06-11 10:00:00", true).await;
    c.token = c.token().await;
    let resp = c
        .http
        .get(c.brand_url(&format!("/changes/{DAY}/file")))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let file = resp.text().await.unwrap();
    let shared: Vec<Vec<&str>> = file
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|r| r[1] == tx)
        .collect();
    let statuses: Vec<(&str, &str)> = shared.iter().map(|r| (r[5], r[7])).collect();
    assert_eq!(
        statuses,
        [("ONAY", "HS_WEB"), ("RET", "IYS_WEB"), ("ONAY", "HS_WEB")],
        "one row per movement, in creation order"
    );
    assert!(shared.iter().all(|r| r[0] == at("12:00:00")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_over_shared_transaction_ids_loses_nothing() {
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    c.freeze_at(&at("12:00:00")).await;
    let (a, b, d, e) = (
        phone(3_400_001),
        phone(3_400_002),
        phone(3_400_003),
        phone(3_400_004),
    );
    // Interleaved groups in one second: a ×3, b ×2, d ×1; then a second with a and e.
    let mut expected = c
        .citizen(json!([
            citizen_action(&a, "ONAY"),
            citizen_action(&b, "ONAY"),
            citizen_action(&a, "RET"),
            citizen_action(&d, "ONAY"),
            citizen_action(&b, "RET"),
            citizen_action(&a, "ONAY"),
        ]))
        .await;
    c.advance(1).await;
    expected.extend(
        c.citizen(json!([
            citizen_action(&a, "RET"),
            citizen_action(&e, "ONAY")
        ]))
        .await,
    );
    assert_eq!(tx_of(&expected[0]), tx_of(&expected[5]));
    assert_eq!(tx_of(&expected[1]), tx_of(&expected[4]));
    let order = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|m| format!("{} {} {}", m["recipient"], m["status"], m["transactionId"]))
            .collect()
    };

    c.advance(1).await;
    // Whatever the page size: every movement once, in creation order. A page that reaches a
    // group runs past the limit to its end, since the cursor could not resume inside it.
    for (limit, pages) in [(1000, 1), (1, 3), (2, 2), (6, 2), (7, 2), (8, 1)] {
        let (seen, got_pages) = c.all_changes("IYS", limit).await;
        assert_eq!(order(&seen), order(&expected), "limit {limit}");
        assert_eq!(got_pages, pages, "limit {limit}");
    }

    // A cursor naming a group resumes after the group's last movement, and a cursor whose
    // transactionId is unknown resumes at the start of its second (repeats, never losses).
    let first = c.get("/consents/changes?limit=1").await;
    let first = first.expect_ok(200);
    assert_eq!(first["list"].as_array().unwrap().len(), 6);
    let secs = first["after"]
        .as_str()
        .unwrap()
        .split('_')
        .next()
        .unwrap()
        .to_owned();
    let unknown = format!("{secs}_{}", "0".repeat(64));
    let r = c.get(&format!("/consents/changes?after={unknown}")).await;
    assert_eq!(
        order(r.expect_ok(200)["list"].as_array().unwrap()),
        order(&expected)
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Push

#[derive(Debug, Default)]
struct Receiver {
    bodies: Mutex<Vec<Value>>,
    refused: Mutex<u32>,
}

/// A push receiver that demands HTTP Basic `hook:s3cret` and records what it gets.
async fn start_receiver() -> (String, Arc<Receiver>) {
    use axum::http::HeaderMap;
    use base64::Engine;
    let rec = Arc::new(Receiver::default());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("hook:s3cret")
    );
    let state = rec.clone();
    let app = axum::Router::new().route(
        "/iys-push",
        axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let state = state.clone();
            let expected = expected.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if auth != expected {
                    *state.refused.lock().unwrap() += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                state.bodies.lock().unwrap().push(body.0);
                StatusCode::OK
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/iys-push"), rec)
}

fn connection(url: &str, password: &str) -> Value {
    json!({"connection": [{"url": url, "type": "MESAJ", "username": "hook", "password": password}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_registration_and_delivery() {
    let (url, rec) = start_receiver().await;
    let server = start_server(fast(), None).await;
    let c = Client::new(&server).await;

    // Registration posts IYS's test payload to the URL.
    let r = c
        .post("/push/registration", &connection(&url, "s3cret"))
        .await;
    assert_eq!(
        *r.expect_ok(200),
        json!({"message": "Bağlantı oluşturuldu"})
    );
    assert_eq!(
        *rec.bodies.lock().unwrap(),
        [serde_json::to_value(iys::wire::PushPayload::test_payload()).unwrap()]
    );
    let list = c.get("/push/registration").await;
    let list = list.expect_ok(200);
    assert_eq!(list[0]["url"], url.as_str());
    assert_eq!(list[0]["type"], "MESAJ");
    assert_eq!(list[0]["status"], "Bağlantı Oluşturuldu");

    // A receiver that answers 401 cannot be registered.
    let r = c
        .post("/push/registration", &connection(&url, "wrong"))
        .await;
    r.expect_error(422, "H530");
    assert_eq!(r.body["errors"][0]["message"], HCode::H530.message_tr());
    assert_eq!(*rec.refused.lock().unwrap(), 1);

    // The provider's own movement is not pushed; a citizen's is, with Basic auth.
    let now = c.control(Method::GET, "clock", None).await.body["istanbul"]
        .as_str()
        .unwrap()
        .to_owned();
    c.add(false, &consent(&phone(4_000_001), "ONAY", &now))
        .await
        .expect_ok(200);
    c.citizen(json!({"brandCode": BRAND, "recipient": "citizen@example.com", "type": "EPOSTA", "status": "ONAY"}))
        .await;
    let m = c
        .citizen(json!({"brandCode": BRAND, "recipient": phone(4_000_002), "type": "MESAJ", "status": "RET", "source": "IYS_MOBIL"}))
        .await;
    let delivered = eventually(Duration::from_secs(5), || {
        rec.bodies.lock().unwrap().len() >= 2
    })
    .await;
    assert!(delivered, "the citizen's RET was not pushed");
    let m = &m[0];
    assert_eq!(
        rec.bodies.lock().unwrap()[1],
        json!({"list": [{
            "iysCode": IYS,
            "brandCode": BRAND,
            "consentDate": m["consentDate"],
            "creationDate": m["creationDate"],
            "source": "IYS_MOBIL",
            "recipient": phone(4_000_002),
            "recipientType": "BIREYSEL",
            "status": "RET",
            "type": "MESAJ",
            "transactionId": m["transactionId"],
        }]})
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rec.bodies.lock().unwrap().len(),
        2,
        "HS movements and other types are not pushed"
    );
    // A citizen's first access to the brand: the push item has the same fields (citizenName
    // belongs to the changes feed only).
    let m = c
        .citizen(json!({"brandCode": BRAND, "recipient": phone(4_000_003), "type": "MESAJ", "status": "ONAY", "source": "IYS_WEB_YENI", "citizenName": "Ayşe Kaya"}))
        .await
        .remove(0);
    assert_eq!(m["citizenName"], "Ayşe Kaya");
    let delivered = eventually(Duration::from_secs(5), || {
        rec.bodies.lock().unwrap().len() >= 3
    })
    .await;
    assert!(delivered, "the citizen's ONAY was not pushed");
    let item = rec.bodies.lock().unwrap()[2]["list"][0].clone();
    let mut expected = m.clone();
    expected.as_object_mut().unwrap().remove("citizenName");
    expected["iysCode"] = json!(IYS);
    expected["brandCode"] = json!(BRAND);
    assert_eq!(item, expected);
    c.advance(1).await;
    let feed = c.get("/consents/changes").await;
    let feed = feed.expect_ok(200)["list"].as_array().unwrap().clone();
    let named = feed.iter().find(|x| x["source"] == "IYS_WEB_YENI").unwrap();
    assert_eq!(named["citizenName"], "Ayşe Kaya");
    let history = c
        .post(
            "/consents/history",
            &json!({"recipient": phone(4_000_003), "recipientType": "BIREYSEL", "type": "MESAJ"}),
        )
        .await;
    assert!(
        history.expect_ok(200)["list"][0]
            .get("citizenName")
            .is_none(),
        "history has no citizenName"
    );
    // The delivery is counted once the receiver has answered.
    let started = Instant::now();
    let stats = loop {
        let stats = c.stats().await;
        if stats["pushDelivered"] == 2 || started.elapsed() > Duration::from_secs(3) {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (
            stats["pushDelivered"].as_u64(),
            stats["pushFailed"].as_u64()
        ),
        (Some(2), Some(0))
    );

    // Without insecure push, a URL must be https.
    let mut config = fast();
    config.allow_insecure_push = false;
    let strict = start_server(config, None).await;
    let s = Client::new(&strict).await;
    let r = s
        .post("/push/registration", &connection(&url, "s3cret"))
        .await;
    r.expect_error(422, "H531");
    assert_eq!(r.body["errors"][0]["message"], HCode::H531.message_tr());
    assert_eq!(rec.bodies.lock().unwrap().len(), 3, "nothing was posted");
}

// ---------------------------------------------------------------------------------------------
// 5. Usage limits

fn limited(requests_per_second: u32, token: u32, status: u32, history: u32) -> SimConfig {
    let mut config = fast();
    config.limits.enabled = true;
    config.limits.requests_per_second = requests_per_second;
    config.limits.token_per_hour = token;
    config.limits.status_per_hour = status;
    config.limits.history_per_hour = history;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_per_second() {
    let server = start_server(limited(10, 100, 1000, 100), None).await;
    let c = Client::new(&server).await;
    let brands = c.url(&format!("/sps/{IYS}/brands"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut statuses = Vec::new();
    let mut last = None;
    let burst = Instant::now();
    for _ in 0..11 {
        let r = c.send(Method::GET, brands.clone(), None).await;
        statuses.push(r.status.as_u16());
        last = Some(r);
    }
    assert!(
        burst.elapsed() < Duration::from_secs(1),
        "the burst took over a second"
    );
    assert_eq!(statuses[..10], [200; 10]);
    last.unwrap().expect_exact_error(HCode::H124);
    assert_eq!(c.stats().await["rateLimited"], 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.send(Method::GET, brands, None).await.expect_ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_limit_restarts_the_hour_when_called_early() {
    let server = start_server(limited(1000, 3, 1000, 100), None).await;
    let c = Client::new(&server).await; // 1st token call
    let password = json!({"grant_type": "password", "username": USER, "password": PASSWORD});
    for round in ["calling again after 30+59 minutes", "waiting out the hour"] {
        if round == "waiting out the hour" {
            c.control(Method::POST, "reset", None).await;
            c.set_clock(&at("12:00:00"), true).await;
            c.token_request(password.clone()).await.expect_ok(200);
        } else {
            c.set_clock(&at("12:00:00"), true).await;
        }
        c.token_request(password.clone()).await.expect_ok(200);
        c.token_request(password.clone()).await.expect_ok(200);
        c.token_request(password.clone())
            .await
            .expect_exact_error(HCode::H084);
        c.advance(30 * 60).await;
        c.token_request(password.clone())
            .await
            .expect_error(429, "H084");
        if round == "calling again after 30+59 minutes" {
            // The first hour ended at 60 minutes, but the call at 30 restarted it.
            c.advance(59 * 60).await;
            c.token_request(password.clone())
                .await
                .expect_error(429, "H084");
            // ... and that call restarted it once more.
            c.advance(59 * 60).await;
            c.token_request(password.clone())
                .await
                .expect_error(429, "H084");
            c.advance(60 * 60).await;
        } else {
            // 30 + 60 minutes: the hour restarted at 30 minutes is over.
            c.advance(60 * 60).await;
        }
        c.token_request(password.clone()).await.expect_ok(200);
    }
    assert_eq!(c.stats().await["tokenCalls"], 6, "since the reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_history_hourly_limits() {
    // Limits set at run time through the control API.
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    let limits = json!({
        "enabled": true,
        "requests_per_second": 1000,
        "token_per_hour": 100,
        "status_per_hour": 2,
        "history_per_hour": 2
    });
    c.put_config("limits", limits.clone()).await;
    assert_eq!(c.control(Method::GET, "limits", None).await.body, limits);
    c.freeze_at(&at("12:00:00")).await;
    let a = phone(5_000_001);
    c.add(false, &consent(&a, "ONAY", &at("10:00:00")))
        .await
        .expect_ok(200);
    for _ in 0..2 {
        c.status(&a, "MESAJ").await.expect_ok(200);
        c.history(&a, "").await.expect_ok(200);
    }
    c.status(&a, "MESAJ").await.expect_exact_error(HCode::H086);
    c.history(&a, "").await.expect_exact_error(HCode::H089);
    // Other endpoints are not limited by these budgets.
    c.add(false, &consent(&a, "RET", &at("11:00:00")))
        .await
        .expect_ok(200);
    c.advance(59 * 60).await;
    c.status(&a, "MESAJ").await.expect_error(429, "H086");
    c.history(&a, "").await.expect_error(429, "H089");
    c.advance(60).await;
    assert_eq!(c.status(&a, "MESAJ").await.expect_ok(200)["status"], "RET");
    c.history(&a, "").await.expect_ok(200);
    assert_eq!(c.stats().await["rateLimited"], 4);
}

// ---------------------------------------------------------------------------------------------
// 6. Authentication

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_tokens() {
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    let a = phone(6_000_001);
    let brands = c.url(&format!("/sps/{IYS}/brands"));

    // Missing and garbage tokens.
    let r = Resp::read(c.http.get(&brands).send().await.unwrap()).await;
    r.expect_exact_error(HCode::H351);
    let r = Resp::read(
        c.http
            .get(&brands)
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.expect_exact_error(HCode::H351);
    let brand_list = c.send(Method::GET, brands.clone(), None).await;
    assert_eq!(brand_list.expect_ok(200).as_array().unwrap().len(), 2);

    // The password grant, as JSON and as a form.
    let password = json!({"grant_type": "password", "username": USER, "password": PASSWORD});
    let r = c.token_request(password.clone()).await;
    let tokens = r.expect_ok(200).clone();
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 7200);
    assert_eq!(tokens["refresh_expires_in"], 14_400);
    let r = Resp::read(
        c.http
            .post(c.url("/oauth2/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", USER),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    c.token = r.expect_ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    c.status(&a, "MESAJ").await.expect_error(404, "H401");

    // Wrong password.
    let r = c
        .token_request(json!({"grant_type": "password", "username": USER, "password": "nope"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error": "invalid_request", "error_description": "Kullanıcı kimlik bilgileri geçersiz."})
    );

    // Tokens expire by IYS's clock after 2 hours.
    c.token = tokens["access_token"].as_str().unwrap().to_owned();
    c.advance(2 * 3600 - 5).await;
    c.status(&a, "MESAJ").await.expect_error(404, "H401");
    c.advance(5).await;
    c.status(&a, "MESAJ").await.expect_exact_error(HCode::H351);

    // The refresh grant gives a new pair; refresh tokens rotate.
    let refresh =
        |t: &Value| json!({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]});
    let r = c.token_request(refresh(&tokens)).await;
    let renewed = r.expect_ok(200).clone();
    assert_ne!(renewed["refresh_token"], tokens["refresh_token"]);
    c.token = renewed["access_token"].as_str().unwrap().to_owned();
    c.status(&a, "MESAJ").await.expect_error(404, "H401");
    let r = c.token_request(refresh(&tokens)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "invalid_grant");

    // Forced expiry from the control API; the newest refresh token still works.
    c.control(Method::POST, "tokens/expire", None).await;
    c.status(&a, "MESAJ").await.expect_exact_error(HCode::H351);
    let r = c.token_request(refresh(&renewed)).await;
    c.token = r.expect_ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    c.status(&a, "MESAJ").await.expect_error(404, "H401");

    // Refresh tokens live 4 hours; `refreshToo` expires them as well.
    let r = c.token_request(password.clone()).await;
    let fresh = r.expect_ok(200).clone();
    c.advance(4 * 3600).await;
    let r = c.token_request(refresh(&fresh)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "invalid_grant");
    let r = c.token_request(password.clone()).await;
    let fresh = r.expect_ok(200).clone();
    c.control(
        Method::POST,
        "tokens/expire",
        Some(json!({"refreshToo": true})),
    )
    .await;
    let r = c.token_request(refresh(&fresh)).await;
    assert_eq!(r.body["error"], "invalid_grant");
    c.token = c.token().await;

    // A brand the user has no rights to.
    let other = c.url(&format!("/sps/{IYS}/brands/600125/consents/status"));
    let body = json!({"recipient": a, "recipientType": "BIREYSEL", "type": "MESAJ"});
    let r = c.send(Method::POST, other, Some(&body)).await;
    r.expect_error(403, "H353");
    assert_eq!(
        r.body["errors"][0]["message"],
        "brandCode, kullanıcı izinleriyle eşleştiriliemiyor"
    );
    let r = c.send(Method::GET, c.url("/sps/600999/brands"), None).await;
    r.expect_error(403, "H353");
}

// ---------------------------------------------------------------------------------------------
// 7. Faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults() {
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    c.freeze_at(&at("12:00:00")).await;
    let body = consent(&phone(7_000_001), "ONAY", &at("10:00:00"));

    c.put_config(
        "faults",
        json!({"add": {"errorRate": 1.0, "status": 500, "code": "H015"}}),
    )
    .await;
    c.add(false, &body).await.expect_exact_error(HCode::H015);
    // Other endpoints are untouched.
    c.status(&phone(7_000_001), "MESAJ")
        .await
        .expect_error(404, "H401");

    c.put_config("faults", json!({"add": {"dropRate": 1.0}}))
        .await;
    let cut = match c
        .http
        .post(c.url(&format!("/sps/{IYS}/brands/{BRAND}/consents")))
        .bearer_auth(&c.token)
        .json(&body)
        .send()
        .await
    {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(cut, "the connection was not cut");

    c.put_config("faults", json!({"add": {"latencyMs": 300}}))
        .await;
    let started = Instant::now();
    c.add(false, &body).await.expect_ok(200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let stats = c.stats().await;
    assert_eq!(stats["faultsInjected"], 2);
    assert_eq!(stats["movements"], 1, "faulted requests wrote nothing");
    c.control(Method::DELETE, "faults", None).await;
    let faults = c.control(Method::GET, "faults", None).await;
    assert_eq!(faults.body, json!({}));
}

// ---------------------------------------------------------------------------------------------
// 8. Reconciliation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_of_a_day() {
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    c.set_clock(&at("09:00:00"), false).await;
    c.token = c.token().await;
    let (a, b, d) = (phone(8_000_001), phone(8_000_002), phone(8_000_003));
    let mut hs = Vec::new();
    for body in [
        consent(&a, "ONAY", &at("08:00:00")),
        consent(&b, "ONAY", &at("08:00:00")),
        consent(&a, "RET", &at("08:30:00")),
        json!({"recipient": "Mail@Example.com", "type": "EPOSTA", "source": "HS_EPOSTA", "status": "ONAY", "consentDate": at("08:00:00"), "recipientType": "BIREYSEL"}),
    ] {
        hs.push(c.add(false, &body).await.expect_ok(200).clone());
    }
    let iys = c
        .citizen(json!([
            {"brandCode": BRAND, "recipient": b, "type": "MESAJ", "status": "RET"},
            {"brandCode": BRAND, "recipient": d, "type": "MESAJ", "status": "ONAY", "source": "IYS_MOBIL"},
        ]))
        .await;
    // Today's hash is not ready yet.
    let r = c.get(&format!("/agreements/{DAY}")).await;
    assert_eq!(
        *r.expect_ok(200),
        json!({"processStatus": "inprogress", "agreementStatus": false})
    );

    // The day ends at midnight in Istanbul.
    c.set_clock(&at("23:59:59"), true).await;
    let late = json!({"brandCode": BRAND, "recipient": "late@example.com", "type": "EPOSTA", "status": "ONAY"});
    let late_onay = c.citizen(late.clone()).await.remove(0);
    c.advance(1).await;
    let mut late_ret = late;
    late_ret["status"] = json!("RET");
    let late_ret = c.citizen(late_ret).await.remove(0);
    assert_eq!(late_ret["creationDate"], "2026-06-11 00:00:00");
    c.set_clock("2026-06-11 10:00:00", true).await;
    c.token = c.token().await;
    let r = c.get("/changes/2026-06-11/recipients/BIREYSEL").await;
    assert_eq!(
        *r.expect_ok(200),
        json!({"changeStats": [{"type": "EPOSTA", "consents": [
            {"source": "IYS", "approval": 0, "rejection": 1, "pending": 0, "total": 1}
        ]}]})
    );
    let r = c.get("/agreements/2026-06-11").await;
    assert_eq!(r.expect_ok(200)["processStatus"], "inprogress");

    let r = c.get(&format!("/changes/{DAY}/recipients/BIREYSEL")).await;
    let stats = r.expect_ok(200)["changeStats"].as_array().unwrap().clone();
    let counts = |t: &str, source: &str| -> Value {
        stats
            .iter()
            .filter(|s| s["type"] == t)
            .flat_map(|s| s["consents"].as_array().unwrap().clone())
            .find(|x| x["source"] == source)
            .unwrap_or(Value::Null)
    };
    assert_eq!(stats.len(), 2, "{stats:?}");
    assert_eq!(
        counts("MESAJ", "HS"),
        json!({"source": "HS", "approval": 2, "rejection": 1, "pending": 0, "total": 3})
    );
    assert_eq!(
        counts("MESAJ", "IYS"),
        json!({"source": "IYS", "approval": 1, "rejection": 1, "pending": 0, "total": 2})
    );
    assert_eq!(
        counts("EPOSTA", "HS"),
        json!({"source": "HS", "approval": 1, "rejection": 0, "pending": 0, "total": 1})
    );
    assert_eq!(
        counts("EPOSTA", "IYS"),
        json!({"source": "IYS", "approval": 1, "rejection": 0, "pending": 0, "total": 1})
    );
    let r = c.get(&format!("/changes/{DAY}/recipients/TACIR")).await;
    assert_eq!(*r.expect_ok(200), json!({"changeStats": []}));

    // The daily file.
    let resp = c
        .http
        .get(c.brand_url(&format!("/changes/{DAY}/file")))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let file = resp.text().await.unwrap();
    assert!(file.ends_with('\n'));
    let rows: Vec<Vec<&str>> = file.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 7);
    assert_eq!(
        rows[6],
        [
            at("23:59:59").as_str(),
            late_onay["transactionId"].as_str().unwrap(),
            "late@example.com",
            "BIREYSEL",
            "EPOSTA",
            "ONAY",
            at("23:59:59").as_str(),
            "IYS_WEB"
        ]
    );
    assert!(rows.iter().all(|r| r.len() == 8));
    let mut sorted = rows.clone();
    sorted.sort_by(|x, y| (x[0], x[1]).cmp(&(y[0], y[1])));
    assert_eq!(rows, sorted, "sorted by creationDate, then transactionId");
    // A movement's row: movements of one consent in one second share their transactionId.
    let row_of = |m: &Value| {
        rows.iter()
            .find(|r| {
                r[0] == m["creationDate"] && r[1] == m["transactionId"] && r[5] == m["status"]
            })
            .cloned()
            .unwrap()
    };
    let mut hs2 = hs[2].clone();
    hs2["status"] = json!("RET");
    let row = row_of(&hs2);
    assert_eq!(
        row,
        [
            hs[2]["creationDate"].as_str().unwrap(),
            hs[2]["transactionId"].as_str().unwrap(),
            a.as_str(),
            "BIREYSEL",
            "MESAJ",
            "RET",
            at("08:30:00").as_str(),
            "HS_WEB"
        ]
    );
    let mut hs3 = hs[3].clone();
    hs3["status"] = json!("ONAY");
    let row = row_of(&hs3);
    assert_eq!(
        row[2..],
        [
            "mail@example.com",
            "BIREYSEL",
            "EPOSTA",
            "ONAY",
            at("08:00:00").as_str(),
            "HS_EPOSTA"
        ]
    );
    let row = row_of(&iys[1]);
    assert_eq!(row[0], iys[1]["creationDate"].as_str().unwrap());
    assert_eq!(
        row[2..],
        [
            d.as_str(),
            "BIREYSEL",
            "MESAJ",
            "ONAY",
            iys[1]["consentDate"].as_str().unwrap(),
            "IYS_MOBIL"
        ]
    );
    let all_txs: HashSet<&str> = rows.iter().map(|r| r[1]).collect();
    let expected: HashSet<&str> = hs
        .iter()
        .chain(&iys)
        .chain([&late_onay])
        .map(|m| m["transactionId"].as_str().unwrap())
        .collect();
    assert_eq!(all_txs, expected);

    // The hash is SHA-384 of the file, in lower-case hex.
    let digest = sha2::Sha384::digest(file.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let r = c.get(&format!("/agreements/{DAY}")).await;
    assert_eq!(
        *r.expect_ok(200),
        json!({"processStatus": "completed", "hashValue": hex, "hashMethod": "SHA-384", "agreementStatus": false})
    );

    // Agreement.
    let url = c.brand_url(&format!("/agreements/{DAY}"));
    let r = c
        .send(
            Method::PUT,
            url.clone(),
            Some(&json!({"agreementStatus": false})),
        )
        .await;
    r.expect_error(422, "H512");
    let r = c
        .send(
            Method::PUT,
            url.clone(),
            Some(&json!({"agreementStatus": true})),
        )
        .await;
    assert_eq!(*r.expect_ok(200), json!({"agreementCaptured": true}));
    let r = c.get(&format!("/agreements/{DAY}")).await;
    assert_eq!(r.expect_ok(200)["agreementStatus"], true);

    // A day without movements, too old a day, a malformed date.
    let r = c
        .send(
            Method::PUT,
            c.brand_url("/agreements/2026-06-09"),
            Some(&json!({"agreementStatus": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for path in ["/agreements/2026-06-09", "/changes/2026-06-09/file"] {
        assert_eq!(c.get(path).await.status, StatusCode::NO_CONTENT, "{path}");
    }
    c.get("/changes/2026-06-04/recipients/BIREYSEL")
        .await
        .expect_ok(200);
    for path in [
        "/agreements/2026-06-03",
        "/changes/2026-06-03/file",
        "/changes/2026-06-03/recipients/BIREYSEL",
        "/agreements/2026-06-12",
    ] {
        c.get(path).await.expect_error(422, "H502");
    }
    for path in [
        "/agreements/2026-6-10",
        "/agreements/10-06-2026",
        "/changes/2026.06.10/file",
        "/agreements/2026-02-30",
    ] {
        c.get(path).await.expect_error(422, "H501");
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Multi status

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_status() {
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    c.freeze_at(&at("12:00:00")).await;
    let (a, b, x) = (phone(9_000_001), phone(9_000_002), phone(9_000_003));
    c.add(false, &consent(&a, "ONAY", &at("10:00:00")))
        .await
        .expect_ok(200);
    c.add(false, &consent(&b, "ONAY", &at("10:00:00")))
        .await
        .expect_ok(200);
    c.add(false, &consent(&b, "RET", &at("11:00:00")))
        .await
        .expect_ok(200);
    let path = "/consents/BIREYSEL/status/MESAJ";

    let r = c.post(path, &json!({"recipients": [x, b, a]})).await;
    let body = r.expect_ok(200);
    assert_eq!(
        body["list"],
        json!([a]),
        "only ONAY; RET and unknown are absent"
    );
    assert_eq!(body["requestId"].as_str().unwrap().len(), 36);
    let r = c
        .post(
            "/consents/BIREYSEL/status/ARAMA",
            &json!({"recipients": [a]}),
        )
        .await;
    assert_eq!(r.expect_ok(200)["list"], json!([]));

    let r = c.post(path, &json!({"recipients": [a, b, a]})).await;
    r.expect_error(422, "H193");
    assert_eq!(r.body["errors"][0]["location"], json!(["recipients", 2]));
    let r = c
        .post(path, &json!({"recipients": [a, "someone@example.com"]}))
        .await;
    r.expect_error(422, "H464");
    assert_eq!(r.body["errors"][0]["location"], json!(["recipients", 1]));
    assert_eq!(r.body["errors"][0]["message"], HCode::H464.message_tr());
    let r = c
        .post(
            "/consents/BIREYSEL/status/EPOSTA",
            &json!({"recipients": [a]}),
        )
        .await;
    r.expect_error(422, "H464");
    let many: Vec<String> = (0..1001).map(|n| phone(9_100_000 + n)).collect();
    let r = c.post(path, &json!({ "recipients": many })).await;
    assert_eq!(r.status, 422, "{}", r.body);
    c.post(path, &json!({ "recipients": many[..1000] }))
        .await
        .expect_ok(200);
    c.post(path, &json!({"recipients": []}))
        .await
        .expect_error(422, "H164");
    c.post(path, &json!({})).await.expect_error(422, "H168");
}

// ---------------------------------------------------------------------------------------------
// 10. Persistence

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("iys-sim-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    let (a, b) = (phone(1_000_001), phone(1_000_002));
    let now;
    let pending;

    let (status, history) = {
        let server = start_server(fast(), Some(file.clone())).await;
        let c = Client::new(&server).await;
        now = c.control(Method::GET, "clock", None).await.body["istanbul"]
            .as_str()
            .unwrap()
            .to_owned();
        c.add(false, &consent(&a, "ONAY", &now))
            .await
            .expect_ok(200);
        c.add(false, &consent(&a, "RET", &now)).await.expect_ok(200);
        let status = c.status(&a, "MESAJ").await.expect_ok(200).clone();
        let history = c.history(&a, "").await.expect_ok(200).clone();
        // A bulk request still waiting for IYS when the simulator stops.
        let r = c.bulk(false, &json!([consent(&b, "ONAY", &now)])).await;
        pending = r.expect_ok(202)["requestId"].as_str().unwrap().to_owned();
        drop(c);
        server.shutdown().await.expect("saved on shutdown");
        (status, history)
    };
    assert!(file.exists());

    let server = start_server(fast(), Some(file.clone())).await;
    let c = Client::new(&server).await;
    assert_eq!(*c.status(&a, "MESAJ").await.expect_ok(200), status);
    assert_eq!(*c.history(&a, "").await.expect_ok(200), history);
    assert_eq!(history["pagination"]["totalCount"], 2);
    let started = Instant::now();
    let result = loop {
        let r = c.bulk_result(false, &pending).await;
        if r.body != json!([]) || started.elapsed() > Duration::from_secs(3) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        result.expect_ok(200)[0]["status"],
        "success",
        "{}",
        result.body
    );
    assert_eq!(c.status(&b, "MESAJ").await.expect_ok(200)["status"], "ONAY");

    // The rules still apply to what was loaded.
    c.add(false, &consent(&a, "RET", &now))
        .await
        .expect_exact_error(HCode::H174);
    drop(c);
    server.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 11. Subscription quota

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_quota() {
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    c.freeze_at(&at("12:00:00")).await;
    let mut sub = c.control(Method::GET, "subscription", None).await.body;
    sub["consent_limit"] = json!(1);
    let r = c.put_config("subscription", sub).await;
    assert_eq!(r.body["consent_limit"], 1);

    let a = phone(1_100_001);
    c.add(false, &consent(&a, "ONAY", &at("10:00:00")))
        .await
        .expect_ok(200);
    c.add(false, &consent(&phone(1_100_002), "ONAY", &at("10:00:00")))
        .await
        .expect_exact_error(HCode::H525);
    c.bulk(
        false,
        &json!([consent(&phone(1_100_003), "ONAY", &at("10:00:00"))]),
    )
    .await
    .expect_error(422, "H525");
    // Updates of a known recipient are not new consents.
    c.add(false, &consent(&a, "RET", &at("11:00:00")))
        .await
        .expect_ok(200);
    let r = c
        .send(
            Method::GET,
            c.url(&format!("/sps/{IYS}/subscription")),
            None,
        )
        .await;
    let body = r.expect_ok(200);
    assert_eq!(body["consentLimit"], 1);
    assert_eq!(body["usedConsentLimit"], 1);
}

// ---------------------------------------------------------------------------------------------
// 12. Partners (integrators)

const PARTNER: u64 = 700_001;

impl Client {
    /// A client logged in as the configured partner's API user.
    async fn partner(server: &SimServer) -> Client {
        let mut c = Client::new(server).await;
        let r = c
            .token_request(json!({"grant_type": "password", "username": "partner", "password": "partner-password"}))
            .await;
        c.token = r.expect_ok(200)["access_token"]
            .as_str()
            .expect("a token")
            .to_owned();
        c
    }

    async fn get_path(&self, path: &str) -> Resp {
        self.send(Method::GET, self.url(path), None).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_list_their_brands_and_subscription() {
    let mut config = fast();
    config.integrator.brands = vec![BRAND];
    let server = start_server(config, None).await;
    let p = Client::partner(&server).await;
    let hs = Client::new(&server).await;

    let r = p.get_path(&format!("/integrator/{PARTNER}/sps")).await;
    assert_eq!(
        *r.expect_ok(200),
        json!({
            "pagination": {"offset": 0, "pageSize": 1, "totalCount": 1},
            "list": [{
                "brandCode": BRAND, "name": "Örnek Marka", "master": true, "title": "ÖRNEK A.Ş.",
                "iysCode": IYS, "agreementControl": true, "MESAJ": "write", "ARAMA": "write",
                "EPOSTA": "write", "viaControl": false,
            }],
        })
    );
    let r = p
        .get_path(&format!("/integrator/{PARTNER}/sps/{IYS}"))
        .await;
    assert_eq!(r.expect_ok(200)["list"][0]["brandCode"], BRAND);
    p.get_path(&format!("/integrator/{PARTNER}/sps/999999"))
        .await
        .expect_error(403, "H353");
    let r = p.get_path("/integrator/700002/sps").await;
    r.expect_error(403, "H353");
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("integratorIysCode")
    );
    p.get_path(&format!("/integrator/{PARTNER}/sps?limit=101"))
        .await
        .expect_error(422, "H186");
    p.get_path("/integrator/abc/sps")
        .await
        .expect_error(422, "H190");
    hs.get_path(&format!("/integrator/{PARTNER}/sps"))
        .await
        .expect_exact_error(HCode::H363);
    let anonymous = Resp::read(
        p.http
            .get(p.url(&format!("/integrator/{PARTNER}/sps")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    anonymous.expect_error(401, "H351");

    // The partner acts for its brand, not for the other one.
    let now = hs.control(Method::GET, "clock", None).await.body["istanbul"]
        .as_str()
        .unwrap()
        .to_owned();
    p.add(true, &consent(&phone(9_100_001), "ONAY", &now))
        .await
        .expect_ok(200);
    let other = p
        .send(
            Method::POST,
            p.url(&format!("/sps/{IYS}/brands/600124/consents")),
            Some(&consent(&phone(9_100_002), "ONAY", &now)),
        )
        .await;
    other.expect_error(403, "H353");
    let brands = p.get_path(&format!("/sps/{IYS}/brands")).await;
    assert_eq!(brands.expect_ok(200).as_array().unwrap().len(), 1);

    // Its own subscription; a provider's user may not ask.
    let r = p
        .get_path(&format!("/integrator/{PARTNER}/subscription"))
        .await;
    let sub = r.expect_ok(200);
    assert_eq!(sub["iysCode"], PARTNER.to_string());
    assert_eq!(sub["status"], "ACTIVE");
    assert_eq!(sub["subscriptionPackageName"], "IO - API Kullanım Lisansı");
    assert!(sub["subscriptionId"].is_string() && sub.get("consentLimit").is_none());
    hs.get_path(&format!("/integrator/{PARTNER}/subscription"))
        .await
        .expect_exact_error(HCode::H522);
    let r = p.get_path("/integrator/700002/subscription").await;
    r.expect_error(404, "H437");
    assert_eq!(
        r.body["errors"][0]["message"],
        "IYS numarası:700002 ile abonelik bulunamadı."
    );

    // A paused partner may only ask for its subscription.
    server.sim.config.write().unwrap().integrator.status = iys::wire::SubscriptionStatus::Paused;
    p.get_path(&format!("/integrator/{PARTNER}/sps"))
        .await
        .expect_error(403, "H520");
    let r = p
        .get_path(&format!("/integrator/{PARTNER}/subscription"))
        .await;
    assert_eq!(r.expect_ok(200)["status"], "PAUSED");
}

// ---------------------------------------------------------------------------------------------
// 13. Fidelity details

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_rules_at_the_edges() {
    let server = start_server(fast(), None).await;
    let mut c = Client::new(&server).await;
    c.freeze_at(&at("12:00:00")).await;
    let a = phone(9_200_001);

    // A far-future consentDate is H162 on every add, never a dropped connection.
    for date in ["9999-12-31 23:59:59", "9999-12-31 01:00:01"] {
        let body = consent(&a, "ONAY", date);
        for v2 in [false, true] {
            let r = c.add(v2, &body).await;
            assert_eq!(
                r.body,
                json!({"errors": [{"code": "H162", "location": ["consentDate"], "value": date,
                    "message": HCode::H162.message_tr()}]})
            );
        }
        let r = c.bulk(false, &json!([body])).await;
        r.expect_error(422, "H162");
        assert_eq!(r.body["errors"][0]["index"], 0);
    }

    // HS_2015 before 1 May 2015 breaks both date rules at once.
    let mut early = consent(&a, "ONAY", "2015-02-10 09:30:00");
    early["source"] = json!("HS_2015");
    let r = c.add(false, &early).await;
    r.expect_error(422, "H156");
    assert_eq!(r.body["errors"][1]["code"], "H155");
    let r = c
        .bulk(true, &json!([consent(&a, "ONAY", &at("10:00:00")), early]))
        .await;
    let codes: Vec<(&str, u64)> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["code"].as_str().unwrap(), e["index"].as_u64().unwrap()))
        .collect();
    assert_eq!(codes, [("H156", 1), ("H155", 1)]);

    // IYS's minimum e-mail shape is {1}@{2}.{2}.
    let mut mail = consent("a@b.co", "ONAY", &at("10:00:00"));
    mail["type"] = json!("EPOSTA");
    c.add(false, &mail).await.expect_error(422, "H120");
    mail["recipient"] = json!("a@bc.co");
    c.add(false, &mail).await.expect_ok(200);

    // TACIR: source and consentDate may be left out, not sent empty.
    let tacir = |recipient: &str| json!({"recipient": recipient, "type": "MESAJ", "status": "ONAY", "recipientType": "TACIR"});
    for (field, value, code) in [
        ("source", Value::Null, "H119"),
        ("source", json!(""), "H119"),
        ("consentDate", Value::Null, "H158"),
        ("consentDate", json!(""), "H158"),
    ] {
        let mut body = tacir(&phone(9_200_002));
        body[field] = value.clone();
        let r = c.add(true, &body).await;
        assert_eq!(
            (r.status.as_u16(), r.code(), &r.body["errors"][0]["value"]),
            (422, code, &value),
            "{field} = {value}: {}",
            r.body
        );
    }
    // Stored without a source, reported without one: no invented value anywhere.
    let t = phone(9_200_003);
    let added = c.add(false, &tacir(&t)).await;
    let tx = tx_of(added.expect_ok(200));
    let status = c
        .post(
            "/consents/status",
            &json!({"recipient": t, "recipientType": "TACIR", "type": "MESAJ"}),
        )
        .await;
    let status = status.expect_ok(200);
    assert_eq!(status["transactionId"], tx.as_str());
    assert!(status.get("source").is_none(), "{status}");
    assert!(status.get("consentDate").is_none(), "{status}");
    let history = c
        .post(
            "/consents/history",
            &json!({"recipient": t, "recipientType": "TACIR", "type": "MESAJ"}),
        )
        .await;
    let item = &history.expect_ok(200)["list"][0];
    assert_eq!(item["transactionId"], tx.as_str());
    assert!(item.get("source").is_none(), "{item}");
    c.advance(1).await;
    let feed = c.get("/consents/changes?source=HS").await;
    let feed = feed.expect_ok(200)["list"].as_array().unwrap().clone();
    let item = feed
        .iter()
        .find(|m| m["transactionId"] == tx.as_str())
        .unwrap();
    assert!(item.get("source").is_none(), "{item}");

    // Today's movement file does not exist yet; tomorrow it does, with an empty source column.
    c.get(&format!("/changes/{DAY}/file")).await.expect_ok(204);
    c.get(&format!("/agreements/{DAY}/timestamp"))
        .await
        .expect_ok(204);
    c.freeze_at("2026-06-11 09:00:00").await;
    let resp = c
        .http
        .get(c.brand_url(&format!("/changes/{DAY}/file")))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let file = resp.text().await.unwrap();
    let row = file
        .lines()
        .find(|l| l.contains(&tx))
        .expect("the TACIR row");
    assert_eq!(
        row,
        format!("{},{tx},{t},TACIR,MESAJ,ONAY,,", at("12:00:00"))
    );

    // The day's time stamp: RFC 3161 DER over the file's SHA-384.
    let resp = c
        .http
        .get(c.brand_url(&format!("/agreements/{DAY}/timestamp")))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .ends_with(".tsr\"")
    );
    let tsr = resp.bytes().await.unwrap();
    assert_eq!(tsr[0], 0x30, "a DER SEQUENCE");
    let digest = sha2::Sha384::digest(file.as_bytes());
    assert!(
        tsr.windows(digest.len()).any(|w| w == digest.as_slice()),
        "the file's imprint is in the stamp"
    );
    assert!(
        tsr.windows(15).any(|w| w == b"20260610210000Z"),
        "stamped when the day ended (00:00 Istanbul)"
    );
    c.get("/agreements/2026-06-09/timestamp")
        .await
        .expect_ok(204);
    c.get("/agreements/2026.06.10/timestamp")
        .await
        .expect_error(422, "H501");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_readable_answers() {
    let server = start_server(fast(), None).await;
    let c = Client::new(&server).await;

    // The token endpoint answers in OAuth's shape, whatever the body.
    let missing =
        json!({"error": "invalid_request", "error_description": "Giriş yöntemi belirtilmemiş."});
    for (content_type, body) in [
        ("application/json", ""),
        ("application/json", "not json"),
        ("application/json", "{\"grant_type\": 5}"),
        ("application/x-www-form-urlencoded", ""),
        ("text/plain", "grant_type=password"),
    ] {
        let r = Resp::read(
            c.http
                .post(c.url("/oauth2/token"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), &r.body),
            (400, &missing),
            "{content_type} {body:?}"
        );
    }

    // A retailerCode that is not an integer is invalid input, for GET and DELETE alike.
    for method in [Method::GET, Method::DELETE] {
        let r = c
            .send(method.clone(), c.brand_url("/retailers/abc"), None)
            .await;
        r.expect_error(400, "H016");
        assert_eq!(r.body["errors"][0]["location"], json!(["retailerCode"]));
        assert_eq!(r.body["errors"][0]["value"], "abc");
    }

    // Unknown paths and methods answer JSON in IYS's error shape.
    for (method, path, status, code) in [
        (
            Method::GET,
            "/sps/600123/brands/600123/nothing",
            404,
            "NOT_FOUND",
        ),
        (Method::GET, "/oauth/token", 404, "NOT_FOUND"),
        (Method::DELETE, "/oauth2/token", 405, "METHOD_NOT_ALLOWED"),
    ] {
        let resp = c
            .http
            .request(method.clone(), c.url(path))
            .bearer_auth(&c.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], code);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{method} {path}"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_h467_reading_of_eves_is_configurable() {
    // Tuesday 2026-03-17 10:00; Thursday 19 March is the eve of Ramazan Bayramı. Counting the
    // eve as a business day the deadline is Monday 23 March 10:00, as half a day Tuesday 24th.
    let body = consent(&phone(9_300_001), "ONAY", "2026-03-17 10:00:00");
    for (eves, expected) in [
        (iys::calendar::EveRule::BusinessDay, 422),
        (iys::calendar::EveRule::HalfDay, 200),
    ] {
        let mut config = fast();
        config.deadline_eves = eves;
        let server = start_server(config, None).await;
        let mut c = Client::new(&server).await;
        c.freeze_at("2026-03-23 10:00:01").await;
        let r = c.add(false, &body).await;
        assert_eq!(r.status.as_u16(), expected, "{eves:?}: {}", r.body);
        if expected == 422 {
            r.expect_exact_error_at(HCode::H467);
        }
    }
}
