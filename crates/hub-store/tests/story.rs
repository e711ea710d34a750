//! The conformance story on both backends: SQLite in a temporary directory, and PostgreSQL for
//! real when `IYSHUB_TEST_DATABASE_URL` is set (CI sets it; elsewhere the test says it skips).

use hub_store::{SqlStore, Store};

#[tokio::test]
async fn story_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
    let store = SqlStore::connect(&url).await.unwrap();
    hub_store::story::run(&store).await;
    // The data survives a reconnect.
    store.close().await;
    let again = SqlStore::connect(&url).await.unwrap();
    assert_eq!(again.brands().await.unwrap().len(), 1);
    assert!(
        again
            .verify_chain(hub_core::BrandCode(600_123))
            .await
            .unwrap()
            .valid
    );
}

/// A fresh PostgreSQL database for one test, dropped at the end.
pub async fn fresh_postgres(admin_url: &str) -> (String, String) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("iyshub_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::AnyConnection::connect(admin_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    (format!("{base}/{name}"), name)
}

#[tokio::test]
async fn story_on_postgres() {
    let Ok(admin_url) = std::env::var("IYSHUB_TEST_DATABASE_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "IYSHUB_TEST_DATABASE_URL must be set in CI: the PostgreSQL story may not be skipped"
            );
        }
        eprintln!(
            "SKIPPING: PostgreSQL story (set IYSHUB_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres)"
        );
        return;
    };
    let (url, name) = fresh_postgres(&admin_url).await;
    let store = SqlStore::connect(&url).await.unwrap();
    hub_store::story::run(&store).await;
    store.close().await;
    use sqlx::Connection;
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
}
