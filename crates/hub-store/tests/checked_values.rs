//! On PostgreSQL the columns that hold one of a closed set of values refuse any other
//! (migration 0019): the sets are exactly the hub's enums, a value written by hand fails, and
//! a database holding a bad row still upgrades, that check left to new rows until it is mended.

use std::collections::BTreeSet;

use hub_core::ledger::Outcome;
use hub_core::{BrandCode, CategoryKind, Channel, IysState, Mode, Origin};
use hub_store::testkit;
use hub_store::{ConsoleRole, DayStatus, ImportState, ImportVia, OutboxState, SqlStore, Store};
use iys::{ConsentStatus, ConsentType, RecipientType};
use sqlx::Connection;
use strum::VariantNames;

const BRAND: BrandCode = BrandCode(640_001);

/// Every checked text column and the values the hub may write into it.
fn text_checks() -> Vec<(&'static str, BTreeSet<String>)> {
    fn set<'a>(values: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        values.into_iter().map(str::to_owned).collect()
    }
    let recipient_types = set(RecipientType::ALL.iter().map(|t| t.as_str()));
    let channels = set(Channel::ALL.iter().map(|c| c.as_str()));
    let statuses = set(ConsentStatus::ALL.iter().map(|s| s.as_str()));
    let iys_states = set(IysState::ALL.iter().map(|s| s.as_str()));
    let mut changed_from = statuses.clone();
    changed_from.insert(String::new());
    vec![
        ("consent_recipient_type_check", recipient_types.clone()),
        ("consent_channel_check", channels.clone()),
        ("consent_status_check", statuses.clone()),
        ("consent_iys_state_check", iys_states.clone()),
        (
            "consent_event_recipient_type_check",
            recipient_types.clone(),
        ),
        ("consent_event_channel_check", channels),
        ("consent_event_status_check", statuses.clone()),
        (
            "consent_event_origin_check",
            set(Origin::VARIANTS.iter().copied()),
        ),
        (
            "consent_event_outcome_check",
            set(Outcome::VARIANTS.iter().copied()),
        ),
        ("consent_event_changed_from_check", changed_from),
        ("consent_event_changed_iys_state_check", iys_states),
        ("outbox_recipient_type_check", recipient_types),
        (
            "outbox_channel_check",
            set(ConsentType::ALL.iter().map(|t| t.as_str())),
        ),
        ("outbox_status_check", statuses.clone()),
        (
            "outbox_state_check",
            set(OutboxState::ALL.iter().map(|s| s.as_str())),
        ),
        ("brand_mode_check", set(Mode::VARIANTS.iter().copied())),
        (
            "category_kind_check",
            set(CategoryKind::VARIANTS.iter().copied()),
        ),
        ("category_consent_status_check", statuses),
        (
            "import_job_state_check",
            set(ImportState::ALL.iter().map(|s| s.as_str())),
        ),
        (
            "import_job_via_check",
            set([ImportVia::Api, ImportVia::Cli].map(ImportVia::as_str)),
        ),
        (
            "reconcile_day_status_check",
            set(DayStatus::ALL.iter().map(|s| s.as_str())),
        ),
        (
            "console_grant_role_check",
            set(ConsoleRole::ALL.iter().map(|r| r.as_str())),
        ),
    ]
}

/// The 0/1 flags' checks.
const FLAG_CHECKS: [&str; 9] = [
    "consent_conflict_check",
    "consent_hold_check",
    "consent_iys_known_check",
    "consent_event_hold_check",
    "import_job_dry_run_check",
    "webhook_enabled_check",
    "webhook_delivery_manual_check",
    "console_user_global_admin_check",
    "console_user_disabled_check",
];

/// The quoted literals of a constraint's definition, as PostgreSQL prints it back
/// (`CHECK ((status = ANY (ARRAY['ONAY'::text, 'RET'::text])))`).
fn literals(definition: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut chars = definition.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut literal = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    literal.push('\'');
                } else {
                    break;
                }
            } else {
                literal.push(c);
            }
        }
        found.insert(literal);
    }
    found
}

/// Each check's definition and whether PostgreSQL has validated it against the existing rows.
async fn checks(conn: &mut sqlx::PgConnection) -> Vec<(String, String, bool)> {
    sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid), convalidated FROM pg_constraint \
         WHERE contype = 'c' AND connamespace = 'public'::regnamespace ORDER BY conname",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

async fn refused(conn: &mut sqlx::PgConnection, sql: &str) {
    let err = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .expect_err(sql);
    let code = err.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("23514"), "{sql}: {err}");
}

async fn record_some(store: &SqlStore, from: usize, to: usize, date: &str) {
    let b = store.brand(BRAND).await.unwrap().unwrap();
    let date = testkit::date(date);
    let changes = (from..to)
        .map(|n| {
            let status = if n % 2 == 0 {
                ConsentStatus::Onay
            } else {
                ConsentStatus::Ret
            };
            let channel = Channel::ALL[n % Channel::ALL.len()];
            testkit::change(BRAND, &format!("+90533{n:07}"), channel, status, date)
        })
        .collect();
    store.apply(&b, changes, None).await.unwrap();
}

/// A store whose brand holds `n` consents, and a connection of its own to the database.
async fn with_consents(url: &str, n: usize) -> (SqlStore, sqlx::PgConnection) {
    let store = SqlStore::connect(url).await.unwrap();
    testkit::create_brand(&store, BRAND, "checked").await;
    record_some(&store, 0, n, "2026-03-02 10:00:00").await;
    (store, sqlx::PgConnection::connect(url).await.unwrap())
}

async fn with_postgres(prefix: &str, test: impl AsyncFnOnce(&str)) {
    let Some(admin) = testkit::admin_url_or_skip("checked values on PostgreSQL") else {
        return;
    };
    let (url, name) = testkit::fresh_postgres(&admin, prefix).await;
    test(&url).await;
    testkit::drop_postgres(&admin, &name).await;
}

#[tokio::test]
async fn the_checked_sets_are_the_hubs_enums() {
    with_postgres("iyshub_checked_sets", async |url| {
        let store = SqlStore::connect(url).await.unwrap();
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let found = checks(&mut conn).await;
        let expected = text_checks();
        for (name, values) in &expected {
            let Some((_, definition, validated)) = found.iter().find(|(n, ..)| n == name) else {
                panic!("no check {name}");
            };
            assert!(validated, "{name} validated on a fresh database");
            assert_eq!(&literals(definition), values, "{name}: {definition}");
        }
        for name in FLAG_CHECKS {
            let Some((_, definition, _)) = found.iter().find(|(n, ..)| n == name) else {
                panic!("no check {name}");
            };
            assert!(
                definition.ends_with(" = ANY (ARRAY[(0)::bigint, (1)::bigint])))"),
                "{name}: {definition}"
            );
        }
        assert_eq!(found.len(), expected.len() + FLAG_CHECKS.len(), "{found:?}");
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn values_outside_the_sets_are_refused_and_the_hub_writes_on() {
    with_postgres("iyshub_checked_refused", async |url| {
        let (store, mut conn) = with_consents(url, 40).await;
        for sql in [
            "UPDATE consent SET status = 'onay'",
            "UPDATE consent SET channel = 'SMS'",
            "UPDATE consent SET iys_state = 'limbo'",
            "UPDATE consent SET hold = 2",
            "UPDATE consent SET recipient_type = 'KURUMSAL'",
            "UPDATE consent_event SET outcome = 'maybe'",
            "UPDATE consent_event SET changed_from = 'RED'",
            "UPDATE outbox SET channel = 'PUSH'",
            "UPDATE outbox SET state = 'sent'",
            "UPDATE brand SET mode = 'master'",
        ] {
            refused(&mut conn, sql).await;
        }
        // Flips, first records on new keys and a repeat: every value the ledger writes passes.
        record_some(&store, 0, 40, "2026-03-03 10:00:00").await;
        record_some(&store, 20, 80, "2026-03-04 10:00:00").await;
        let consents: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM consent WHERE brand_code = $1")
                .bind(BRAND.0 as i64)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(consents, 80);
        assert!(store.verify_chain(BRAND).await.unwrap().valid);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_bad_row_does_not_stop_the_upgrade() {
    with_postgres("iyshub_checked_upgrade", async |url| {
        let (store, mut conn) = with_consents(url, 20).await;
        store.close().await;
        // Back to before migration 0019, with one consent in a state the hub never writes.
        let drops: Vec<(String, String)> = sqlx::query_as(
            "SELECT conrelid::regclass::text, conname::text FROM pg_constraint \
             WHERE contype = 'c' AND connamespace = 'public'::regnamespace",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for (table, name) in drops {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {table} DROP CONSTRAINT {name}"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 19")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE consent SET iys_state = 'limbo' WHERE recipient = '+905330000003' \
             AND recipient_type = 'BIREYSEL'",
        )
        .execute(&mut conn)
        .await
        .unwrap();

        let store = SqlStore::connect(url).await.unwrap();
        let found = checks(&mut conn).await;
        assert_eq!(found.len(), text_checks().len() + FLAG_CHECKS.len());
        for (name, _, validated) in &found {
            // Only the broken check waits for the row to be mended; the table's others hold.
            assert_eq!(*validated, name != "consent_iys_state_check", "{name}");
        }
        assert_eq!(
            store.unvalidated_checks().await.unwrap(),
            [("consent".to_owned(), "consent_iys_state_check".to_owned())]
        );
        refused(&mut conn, "UPDATE consent SET iys_state = 'limbo'").await;
        // The brand writes on, and once the row is mended the check validates (docs/deployment.md).
        record_some(&store, 20, 30, "2026-03-03 10:00:00").await;
        sqlx::query("UPDATE consent SET iys_state = 'pending' WHERE iys_state = 'limbo'")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("ALTER TABLE consent VALIDATE CONSTRAINT consent_iys_state_check")
            .execute(&mut conn)
            .await
            .unwrap();
        assert!(checks(&mut conn).await.iter().all(|(_, _, v)| *v));
        assert!(store.unvalidated_checks().await.unwrap().is_empty());
        store.close().await;
    })
    .await;
}
