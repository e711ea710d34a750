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

#[tokio::test]
async fn story_on_postgres() {
    let Some(admin_url) = hub_store::testkit::admin_url_or_skip("the PostgreSQL story") else {
        return;
    };
    let (url, name) = hub_store::testkit::fresh_postgres(&admin_url, "iyshub_test").await;
    let store = SqlStore::connect(&url).await.unwrap();
    hub_store::story::run(&store).await;
    store.close().await;
    hub_store::testkit::drop_postgres(&admin_url, &name).await;
}
