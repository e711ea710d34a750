//! What every answer gets from the HTTP stack, over a real socket: a request id (the caller's
//! own, or a new one) and gzip for large answers when the caller accepts it.

use std::io::Read;
use std::sync::Arc;

use hub::Hub;
use hub_store::SqlStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Server {
    base: String,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::connect(&SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap())
        .await
        .unwrap();
    let hub = Arc::new(Hub::new(store.into()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let cancel = CancellationToken::new();
    tokio::spawn(hub::serve(hub, listener, cancel.clone()));
    Server {
        base,
        cancel,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id() {
    let server = start().await;
    let http = reqwest::Client::new();

    let given = http
        .get(format!("{}/healthz", server.base))
        .header("x-request-id", "campaign-42/req-7")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "campaign-42/req-7");

    let mut seen = Vec::new();
    for path in ["/healthz", "/no/such/endpoint", "/api/v1/brands"] {
        let r = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        let id = r
            .headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{path} has no request id"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path}: {id}");
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "each request gets its own id");
    server.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_gzipped_for_callers_that_accept_it() {
    let server = start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/openapi.json", server.base);

    let plain = http.get(&url).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain: serde_json::Value = plain.json().await.unwrap();

    let zipped = http
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let bytes = zipped.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(bytes.len() * 3 < text.len(), "gzip shrinks the document");
    let unzipped: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(unzipped, plain);

    // A small answer is not worth compressing.
    let small = http
        .get(format!("{}/healthz", server.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(small.headers().get("content-encoding").is_none());
    assert_eq!(small.text().await.unwrap(), r#"{"status":"ok"}"#);
    server.cancel.cancel();
}
