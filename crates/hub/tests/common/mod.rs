//! A hub served on a real socket for the API tests: on a fresh PostgreSQL database (dropped at
//! the end) when `IYSHUB_TEST_DATABASE_URL` is set, else on SQLite in a temporary directory.
#![allow(dead_code)]

use std::sync::Arc;

use hub::Hub;
use hub_store::SqlStore;
use hub_store::testkit::{drop_postgres, fresh_postgres};
use tokio_util::sync::CancellationToken;

pub struct Served {
    pub base: String,
    /// The database's URL, for a test that writes to it by hand.
    pub url: String,
    pub http: reqwest::Client,
    pub hub: Arc<Hub>,
    pub cancel: CancellationToken,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl Served {
    /// A hub with `admin_key` as its bootstrap key, set up by `configure` before it serves;
    /// `prefix` names its PostgreSQL database.
    pub async fn start(prefix: &str, admin_key: &str, configure: impl FnOnce(&mut Hub)) -> Served {
        Served::start_on(true, prefix, admin_key, configure).await
    }

    /// As `start`, on SQLite whatever the environment says.
    pub async fn start_sqlite(admin_key: &str, configure: impl FnOnce(&mut Hub)) -> Served {
        Served::start_on(false, "", admin_key, configure).await
    }

    async fn start_on(
        postgres_if_set: bool,
        prefix: &str,
        admin_key: &str,
        configure: impl FnOnce(&mut Hub),
    ) -> Served {
        let admin = std::env::var("IYSHUB_TEST_DATABASE_URL").ok();
        let (url, dir, postgres) = match admin.filter(|a| postgres_if_set && !a.is_empty()) {
            Some(admin) => {
                let (url, name) = fresh_postgres(&admin, prefix).await;
                (url, None, Some((admin, name)))
            }
            None => {
                let dir = tempfile::tempdir().unwrap();
                let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
                (url, Some(dir), None)
            }
        };
        let store = SqlStore::connect(&url).await.unwrap();
        hub::bootstrap_admin_key(&store, Some(admin_key))
            .await
            .unwrap();
        let mut hub = Hub::new(store.into());
        configure(&mut hub);
        let hub = Arc::new(hub);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let cancel = CancellationToken::new();
        tokio::spawn(hub::serve(hub.clone(), listener, cancel.clone()));
        Served {
            base,
            url,
            http: reqwest::Client::new(),
            hub,
            cancel,
            _dir: dir,
            postgres,
        }
    }

    /// A streamed POST with `key`: the body as given; the answer's status and text.
    pub async fn post_text(
        &self,
        key: &str,
        path: &str,
        content_type: &str,
        body: String,
    ) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        // A body broken off by an error fails here.
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Stops serving and drops the PostgreSQL database.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        self.hub.store.close().await;
        if let Some((admin, name)) = self.postgres.take() {
            drop_postgres(&admin, &name).await;
        }
    }
}

/// The campaign filter's NDJSON answer: the allowed recipients in order, and the summary.
pub fn filter_answer(text: &str) -> (Vec<String>, serde_json::Value) {
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.pop().expect("the summary line");
    let allowed = lines
        .iter()
        .map(|l| l["recipient"].as_str().unwrap().to_owned())
        .collect();
    (allowed, summary["summary"].clone())
}
