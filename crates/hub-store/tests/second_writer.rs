//! SQLite with a second process writing: the CLI (`iyshub admin create`, `iyshub import`) opens
//! the same file as a running hub. A write that reads first must wait for the other process's
//! transaction, not fail with "database is locked" (a deferred transaction cannot wait once it
//! has read: SQLite refuses its upgrade to a writer at once).

use std::time::Duration;

use hub_core::{BrandCode, Mode};
use hub_store::prelude::*;
use hub_store::{ConsoleRole, IysConnection, NewBrand, NewConsoleUser, SqlStore};

/// Another process's connection holding SQLite's write lock with a change not yet committed.
fn other_process_writing(path: &std::path::Path, username: &str) -> rusqlite::Connection {
    let other = rusqlite::Connection::open(path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    other
        .execute(
            "INSERT INTO console_user (username, password_hash, global_admin, created_at_ms) \
             VALUES (?1, 'x', 0, 0)",
            [username],
        )
        .unwrap();
    other
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_another_process_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    let store = std::sync::Arc::new(
        SqlStore::connect(&SqlStore::sqlite_url(&path).unwrap())
            .await
            .unwrap(),
    );

    // A brand: `create_brand` reads whether the code is taken, then inserts.
    let other = other_process_writing(&path, "other-1");
    let s = store.clone();
    let brand = tokio::spawn(async move {
        s.create_brand(NewBrand {
            brand_code: BrandCode(700_456),
            iys_code: 700_456,
            name: "Deneme".into(),
            mode: Mode::Sync,
            iys: IysConnection::default(),
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    let brand = brand
        .await
        .unwrap()
        .expect("the brand waits for the other writer");
    assert_eq!(brand.brand_code, BrandCode(700_456));

    // A console user with a grant: the write of `iyshub admin create` that failed beside a hub.
    let other = other_process_writing(&path, "other-2");
    let s = store.clone();
    let user = tokio::spawn(async move {
        s.create_console_user(NewConsoleUser {
            username: "okur".into(),
            password_hash: "h".into(),
            global_admin: false,
            grants: vec![(BrandCode(700_456), ConsoleRole::Read)],
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    let user = user
        .await
        .unwrap()
        .expect("the user waits for the other writer");
    assert_eq!(user.username, "okur");

    // Both processes' rows are there, each once.
    let names: Vec<String> = store
        .console_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["okur", "other-1", "other-2"]);
}
