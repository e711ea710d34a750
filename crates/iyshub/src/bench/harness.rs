//! The hub under test: an API-only instance (like `IYSHUB_ROLE=api`) on a loopback socket, one
//! brand and an admin key; and the data the scenarios generate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hub::Hub;
use hub_core::{BrandCode, Change, Channel, ConsentKey, Mode, Origin};
use hub_store::{Brand, IysConnection, NewBrand, SqlStore, Store};
use iys::{ConsentDate, ConsentStatus, ConsentType, HsSource, RecipientType, Source};
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

pub const BRAND: BrandCode = BrandCode(600_123);
pub const ADMIN_KEY: &str = "ihk_bench_0000000000000000000000000000000000000000000000000000000000";
/// What each change carries as evidence (about the size a web form's proof takes).
pub const EVIDENCE: &str = r#"{"ip":"203.0.113.7","form":"signup-v3"}"#;

/// Recipient number `n`: distinct phone numbers +90532NNNNNNN.
pub fn recipient(n: u64) -> String {
    format!("+90532{:07}", n % 10_000_000)
}

/// A consent date a minute ago: valid for IYS's rules, and older than anything IYS adds later.
pub fn recent_date() -> ConsentDate {
    ConsentDate::from_timestamp(
        Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(60))
            .unwrap_or_else(|_| Timestamp::now()),
    )
}

/// Change `n` as the API receives it.
pub fn change_json(n: u64, date: &str) -> String {
    format!(
        r#"{{"recipient":"{}","type":"MESAJ","status":"ONAY","source":"HS_WEB","consentDate":"{date}","evidence":{EVIDENCE}}}"#,
        recipient(n)
    )
}

/// A batch body `{"changes":[…]}` of changes `from..to`.
pub fn batch_json(from: u64, to: u64, date: &str) -> String {
    let mut s = String::with_capacity(((to - from) * 160) as usize + 16);
    s.push_str(r#"{"changes":["#);
    for n in from..to {
        if n > from {
            s.push(',');
        }
        s.push_str(&change_json(n, date));
    }
    s.push_str("]}");
    s
}

/// Change `n` for the store directly (to prepare data before a measurement).
pub fn change(n: u64, date: ConsentDate) -> Change {
    Change {
        key: ConsentKey {
            brand: BRAND,
            recipient: recipient(n),
            recipient_type: RecipientType::Bireysel,
            channel: Channel::Iys(ConsentType::Mesaj),
        },
        status: ConsentStatus::Onay,
        consent_date: date,
        source: Source::Hs(HsSource::HsWeb),
        origin: Origin::Api,
        actor: Some("bench".into()),
        evidence: serde_json::from_str(EVIDENCE).ok(),
        category: None,
        profile_id: None,
        hold: None,
        iys_transaction_id: None,
        iys_creation_date: None,
        received_at: Timestamp::now(),
    }
}

/// The brand every scenario uses, in integrator mode (every change is queued for IYS).
pub async fn create_brand(store: &SqlStore, iys: IysConnection) -> anyhow::Result<Brand> {
    store
        .create_brand(NewBrand {
            brand_code: BRAND,
            iys_code: BRAND.0,
            name: "bench".into(),
            mode: Mode::Integrator,
            iys,
        })
        .await
        .context("creating the brand")
}

/// Stores `count` consents (recipients 0..count) through the ledger, 1,000 per transaction.
pub async fn seed_consents(store: &SqlStore, brand: &Brand, count: u64) -> anyhow::Result<()> {
    let date = recent_date();
    let mut from = 0;
    while from < count {
        let to = (from + 1000).min(count);
        store
            .apply(brand, (from..to).map(|n| change(n, date)).collect(), None)
            .await
            .context("storing consents before the measurement")?;
        from = to;
    }
    Ok(())
}

/// An API-only hub serving on 127.0.0.1.
#[derive(Debug)]
pub struct ApiHub {
    pub base: String,
    /// Keeps up to `connections` connections alive.
    pub http: reqwest::Client,
    hub: Arc<Hub>,
    cancel: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ApiHub {
    pub async fn start(store: Arc<SqlStore>, connections: usize) -> anyhow::Result<ApiHub> {
        hub::bootstrap_admin_key(&*store, Some(ADMIN_KEY))
            .await
            .context("creating the admin key")?;
        // No per-key rate limit: one key drives all the load here, and the limit (2,000
        // requests/s by default) would measure itself instead of the hub.
        let hub = Arc::new(Hub {
            guards: hub::Guards::new(0),
            ..Hub::new(store)
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port for the hub")?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let server = tokio::spawn(hub::serve(hub.clone(), listener, cancel.clone()));
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(ApiHub {
            base: format!("http://{addr}"),
            http,
            hub,
            cancel,
            server,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn brand_url(&self, rest: &str) -> String {
        format!("{}/api/v1/brands/{}{rest}", self.base, BRAND.0)
    }

    /// Stops serving and closes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        drop(self.http);
        match tokio::time::timeout(Duration::from_secs(30), self.server).await {
            Ok(joined) => joined
                .context("the hub's server task")?
                .context("the hub's server")?,
            Err(_) => anyhow::bail!("the hub did not stop within 30 s"),
        }
        self.hub.store.close().await;
        Ok(())
    }
}
