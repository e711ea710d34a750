//! The conformance story: one scenario every [`Store`] must pass, run against SQLite and
//! PostgreSQL (see `tests/story.rs`).

use hub_core::{BrandCode, CategoryKind, Change, Channel, IysState, Mode, Origin, Outcome};
use iys::{ConsentStatus, ConsentType, IysSource, RecipientType, Source};

use crate::OutboxState;
use crate::testkit;
use crate::types::*;
use crate::{Store, StoreError};

fn change(
    brand: u64,
    recipient: &str,
    channel: Channel,
    status: ConsentStatus,
    date: &str,
) -> Change {
    Change {
        actor: Some("story".into()),
        evidence: Some(serde_json::json!({"ip": "192.0.2.1", "form": "signup-v3"})),
        ..testkit::change(
            BrandCode(brand),
            recipient,
            channel,
            status,
            testkit::date(date),
        )
    }
}

const SMS: Channel = Channel::Iys(ConsentType::Mesaj);

/// The whole story; panics with a message on the first difference.
pub async fn run<S: Store>(store: &S) {
    // Brands.
    let brand = store
        .create_brand(NewBrand {
            brand_code: BrandCode(600_123),
            iys_code: 600_123,
            name: "Örnek Marka".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .expect("create brand");
    assert!(matches!(
        store
            .create_brand(NewBrand {
                brand_code: BrandCode(600_123),
                iys_code: 600_123,
                name: "again".into(),
                mode: Mode::Sync,
                iys: IysConnection::default(),
            })
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.brands().await.unwrap().len(), 1);
    let patched = store
        .update_brand(
            brand.brand_code,
            BrandPatch {
                name: Some("Yeni Ad".into()),
                ..BrandPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (patched.name.as_str(), patched.mode),
        ("Yeni Ad", Mode::Integrator)
    );
    assert!(store.brand(BrandCode(1)).await.unwrap().is_none());

    // A batch: ONAY, older RET (history only), same status (no-op), first RET elsewhere (sent to
    // IYS, which may hold an ONAY the hub never saw), a hub-only channel.
    let p = "+905321234567";
    let applied = store
        .apply(
            &patched,
            vec![
                change(600_123, p, SMS, ConsentStatus::Onay, "2026-11-20 10:00:00"),
                change(600_123, p, SMS, ConsentStatus::Ret, "2026-11-19 10:00:00"),
                change(600_123, p, SMS, ConsentStatus::Onay, "2026-11-21 10:00:00"),
                change(
                    600_123,
                    "+905329999999",
                    SMS,
                    ConsentStatus::Ret,
                    "2026-11-21 10:00:00",
                ),
                change(
                    600_123,
                    p,
                    Channel::Push,
                    ConsentStatus::Onay,
                    "2026-11-21 10:00:00",
                ),
            ],
            None,
        )
        .await
        .unwrap();
    let outcomes: Vec<&str> = applied.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["applied", "older", "noop", "applied", "applied"]);
    assert_eq!(applied[0].outbox.map(OutboxState::as_str), Some("pending"));
    assert_eq!(
        applied[3].outbox.map(OutboxState::as_str),
        Some("pending"),
        "a first RET goes to IYS"
    );
    assert!(applied[1..3].iter().all(|a| a.outbox.is_none()));
    assert!(applied[4].outbox.is_none());
    let rows = store.consents(BrandCode(600_123), p).await.unwrap();
    assert_eq!(rows.len(), 2);
    let sms = rows.iter().find(|r| r.key.channel == SMS).unwrap();
    assert_eq!(
        (sms.state.status, sms.state.iys_state),
        (ConsentStatus::Onay, IysState::Pending)
    );
    assert_eq!(sms.state.consent_date.to_string(), "2026-11-20 10:00:00");
    assert!(sms.state.deadline.is_some());
    let push = rows
        .iter()
        .find(|r| r.key.channel == Channel::Push)
        .unwrap();
    assert_eq!(push.state.iys_state, IysState::LocalOnly);
    assert_eq!(
        store.outbox_counts(BrandCode(600_123)).await.unwrap(),
        vec![("pending".to_owned(), 2)]
    );

    // History: every event, newest first, with evidence.
    let history = store
        .history_page(BrandCode(600_123), p, None, 100)
        .await
        .unwrap();
    assert_eq!(history.len(), 4);
    assert!(history.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(history[3].evidence.as_ref().unwrap()["form"], "signup-v3");
    assert_eq!(history[2].outcome, Outcome::Older);

    // A citizen's RET from IYS is applied, never queued, and deduplicated by transactionId.
    let mut citizen = change(600_123, p, SMS, ConsentStatus::Ret, "2026-11-22 09:00:00");
    citizen.origin = Origin::IysPull;
    citizen.source = Source::Iys(IysSource::Mobil);
    citizen.iys_transaction_id = Some("a".repeat(64));
    let first = store
        .apply(&patched, vec![citizen.clone()], None)
        .await
        .unwrap();
    assert_eq!(
        (
            first[0].outcome.as_str(),
            first[0].outbox.map(OutboxState::as_str)
        ),
        ("applied", None)
    );
    let again = store.apply(&patched, vec![citizen], None).await.unwrap();
    assert_eq!(
        (again[0].event_id, again[0].outcome.as_str()),
        (None, "duplicate")
    );
    let sms = store
        .consents(BrandCode(600_123), p)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.key.channel == SMS)
        .unwrap();
    assert_eq!(
        (sms.state.status, sms.state.iys_state),
        (ConsentStatus::Ret, IysState::InIys)
    );
    // The hub's unsent ONAY was overtaken by the citizen's later RET: it never goes.
    assert_eq!(
        store.outbox_counts(BrandCode(600_123)).await.unwrap(),
        vec![("pending".to_owned(), 1), ("superseded".to_owned(), 1)]
    );

    // Same-second movements of one address share IYS's transactionId: both are recorded
    // (deduplicated on content, never on the id alone) and the tie rule keeps the RET.
    let p2 = "+905327654321";
    let pair: Vec<Change> = [ConsentStatus::Onay, ConsentStatus::Ret]
        .into_iter()
        .map(|status| {
            let mut m = change(600_123, p2, SMS, status, "2026-11-23 10:00:00");
            m.origin = Origin::IysPull;
            m.source = Source::Iys(IysSource::Mobil);
            m.iys_transaction_id = Some("b".repeat(64));
            m
        })
        .collect();
    let first = store.apply(&patched, pair.clone(), None).await.unwrap();
    let outcomes: Vec<&str> = first.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["applied", "conflict"]);
    let replay = store.apply(&patched, pair, None).await.unwrap();
    assert!(replay.iter().all(|a| a.outcome == Outcome::Duplicate));
    let state = &store.consents(BrandCode(600_123), p2).await.unwrap()[0].state;
    assert_eq!(
        (state.status, state.conflict, state.iys_known),
        (ConsentStatus::Ret, true, true)
    );

    // Categories and category consent, per recipient and per profile.
    store
        .upsert_category(Category {
            brand_code: Some(BrandCode(600_123)),
            code: "campaigns".into(),
            name: "Kampanyalar".into(),
            kind: CategoryKind::Marketing,
        })
        .await
        .unwrap();
    assert_eq!(store.categories(BrandCode(600_123)).await.unwrap().len(), 1);
    let mut cat = change(600_123, p, SMS, ConsentStatus::Ret, "2026-11-22 10:00:00");
    cat.category = Some("campaigns".into());
    let r = store.apply(&patched, vec![cat], None).await.unwrap();
    assert_eq!(
        (r[0].outcome.as_str(), r[0].outbox.map(OutboxState::as_str)),
        ("applied", None)
    );
    let cats = store
        .category_consents(BrandCode(600_123), p)
        .await
        .unwrap();
    assert_eq!(
        (cats[0].category.as_str(), cats[0].status),
        ("campaigns", ConsentStatus::Ret)
    );
    // The send-time check's bulk reads: only recipients with a consent come back.
    let many = store
        .send_states(
            BrandCode(600_123),
            SMS,
            RecipientType::Bireysel,
            &[p.to_owned(), "+905320000000".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(many.len(), 1);
    assert_eq!(many[p].status, ConsentStatus::Ret);
    let statuses = store
        .category_statuses(BrandCode(600_123), "campaigns", &[p.to_owned()])
        .await
        .unwrap();
    assert_eq!(statuses.get(p), Some(&ConsentStatus::Ret));
    store
        .upsert_profile(Profile {
            brand_code: Some(BrandCode(600_123)),
            external_id: "user-42".into(),
            addresses: vec![p.into(), "ayse@example.com".into()],
            attributes: None,
        })
        .await
        .unwrap();
    let profile = store
        .profile(BrandCode(600_123), "user-42")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profile.addresses, ["+905321234567", "ayse@example.com"]);
    assert!(
        store
            .delete_profile(BrandCode(600_123), "user-42")
            .await
            .unwrap()
    );
    assert!(
        store
            .profile(BrandCode(600_123), "user-42")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .delete_category(BrandCode(600_123), "campaigns")
            .await
            .unwrap()
    );

    // Idempotency: the answer is stored in the same transaction.
    let idem = Idempotency {
        key: "key-1".into(),
        request_hash: "h1".into(),
        render: Box::new(|applied: &[Applied]| StoredAnswer {
            request_hash: "h1".into(),
            status: 200,
            body: format!("{} items", applied.len()),
        }),
    };
    store
        .apply(
            &patched,
            vec![change(
                600_123,
                "+905321111111",
                SMS,
                ConsentStatus::Onay,
                "2026-11-22 10:00:00",
            )],
            Some(idem),
        )
        .await
        .unwrap();
    let stored = store
        .idempotent_answer(BrandCode(600_123), "key-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.status, stored.body.as_str()), (200, "1 items"));
    assert!(
        store
            .idempotent_answer(BrandCode(600_123), "key-2")
            .await
            .unwrap()
            .is_none()
    );

    // The hash chain verifies.
    let report = store.verify_chain(BrandCode(600_123)).await.unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.events, 10);

    // API keys are stored hashed and scoped.
    let key = store
        .create_api_key(NewApiKey {
            name: "crm".into(),
            hash: "f".repeat(64),
            brand_code: Some(BrandCode(600_123)),
            scopes: vec![Scope::Read, Scope::Write],
            expires_at: None,
        })
        .await
        .unwrap();
    let found = store
        .api_key_by_hash(&"f".repeat(64))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, key);
    assert!(found.allows(Scope::Write, Some(BrandCode(600_123))));
    assert!(!found.allows(Scope::Admin, Some(BrandCode(600_123))));
    assert!(!found.allows(Scope::Read, Some(BrandCode(600_124))));
    store.ping().await.unwrap();
}
