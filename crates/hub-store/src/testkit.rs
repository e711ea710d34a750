//! Test support shared by the crates' tests and benches: consent changes to write, and fresh
//! PostgreSQL databases on a real server.

use hub_core::{BrandCode, Change, Channel, ConsentKey, Origin};
use iys::{ConsentDate, ConsentStatus, HsSource, RecipientType, Source};
use jiff::Timestamp;
use sqlx::Connection;

/// Creates a brand in integrator mode with no IYS account, its IYS code its brand code; panics
/// if the store refuses it.
pub async fn create_brand(store: &crate::SqlStore, code: BrandCode, name: &str) {
    store
        .create_brand(crate::NewBrand {
            brand_code: code,
            iys_code: code.0,
            name: name.into(),
            mode: hub_core::Mode::Integrator,
            iys: crate::IysConnection::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("brand {code}: {e}"));
}

/// A consentDate in IYS's form (`2026-03-02 10:00:00`); panics on a malformed one.
pub fn date(s: &str) -> ConsentDate {
    ConsentDate::parse(s).unwrap_or_else(|e| panic!("consentDate {s:?}: {e}"))
}

/// A change made through the API on a person's (BIREYSEL) consent, received now, from the
/// brand's web site. Tests set any other field with struct update syntax.
pub fn change(
    brand: BrandCode,
    recipient: &str,
    channel: Channel,
    status: ConsentStatus,
    consent_date: ConsentDate,
) -> Change {
    Change {
        key: ConsentKey {
            brand,
            recipient: recipient.into(),
            recipient_type: RecipientType::Bireysel,
            channel,
        },
        status,
        consent_date,
        source: Source::Hs(HsSource::HsWeb),
        origin: Origin::Api,
        actor: None,
        evidence: None,
        category: None,
        profile_id: None,
        hold: None,
        iys_transaction_id: None,
        iys_creation_date: None,
        received_at: Timestamp::now(),
    }
}

/// The server's admin URL from `IYSHUB_TEST_DATABASE_URL`. Without it the PostgreSQL test says
/// it skips (and fails under CI, where PostgreSQL tests must run).
pub fn admin_url_or_skip(what: &str) -> Option<String> {
    match std::env::var("IYSHUB_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("IYSHUB_TEST_DATABASE_URL must be set in CI: {what} may not be skipped")
        }
        _ => {
            eprintln!(
                "SKIPPING: {what} (set IYSHUB_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres)"
            );
            None
        }
    }
}

/// Creates a database named `<prefix>_<uuid>`; returns its URL and name.
pub async fn fresh_postgres(admin_url: &str, prefix: &str) -> (String, String) {
    sqlx::any::install_default_drivers();
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::AnyConnection::connect(admin_url)
        .await
        .expect("connect to the PostgreSQL test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let (base, _) = admin_url.rsplit_once('/').expect("a database URL");
    (format!("{base}/{name}"), name)
}

/// Drops a test database, closing connections that linger.
pub async fn drop_postgres(admin_url: &str, name: &str) {
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(admin_url)
        .await
        .expect("connect to the PostgreSQL test server");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop the test database");
}
