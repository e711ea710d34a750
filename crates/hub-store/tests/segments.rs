//! Segments on both backends against brute force: random consents (channels, statuses, IYS
//! states after deliveries settle, holds, category refusals by recipients and by profiles,
//! profile attributes) and random definitions; the members read page by page must be exactly
//! those a brute-force pass over every consent selects with `hub_core::check`'s rules. A citizen
//! RET pulled from IYS then takes the recipient out of every sendable segment at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hub_core::{
    BrandCode, CategoryKind, Channel, IysState, Mode, Origin, Policy, SendState, check,
};
use hub_store::SegmentStore;
use hub_store::testkit;
use hub_store::{
    Category, ConsentFilter, EngineStore, IysConnection, NewBrand, Profile, SegmentDefinition,
    Settlement, SqlStore, Store,
};
use iys::{ConsentStatus, ConsentType};
use jiff::Timestamp;

const BRAND: BrandCode = BrandCode(700_654);
const CHANNELS: [Channel; 3] = [
    Channel::Iys(ConsentType::Mesaj),
    Channel::Iys(ConsentType::Arama),
    Channel::Push,
];
const CITIES: [&str; 3] = ["İstanbul", "Ankara", "İzmir"];

fn phone(n: u8) -> String {
    format!("+90532{n:07}")
}

async fn members(
    store: &SqlStore,
    d: &SegmentDefinition,
    kind: Option<CategoryKind>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut after = None;
    loop {
        let page = store
            .segment_members(BRAND, d, kind, after.as_ref(), 7)
            .await
            .unwrap();
        for m in page.members {
            assert!(
                out.insert((m.recipient, m.channel.as_str().to_owned())),
                "a member twice"
            );
        }
        match page.next {
            Some(k) => after = Some(k),
            None => return out,
        }
    }
}

/// Every consent, with the rules applied by hand.
async fn brute(
    store: &SqlStore,
    d: &SegmentDefinition,
    kind: Option<CategoryKind>,
) -> BTreeSet<(String, String)> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_consents(BRAND, &ConsentFilter::default(), after.as_ref(), 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        all.extend(page);
    }
    let mut profiles: HashMap<String, Vec<(String, Option<serde_json::Value>)>> = HashMap::new();
    for i in 0..20u8 {
        if let Some(p) = store.profile(BRAND, &format!("p{i}")).await.unwrap() {
            for a in &p.addresses {
                profiles
                    .entry(a.clone())
                    .or_default()
                    .push((p.external_id.clone(), p.attributes.clone()));
            }
        }
    }
    let mut out = BTreeSet::new();
    for row in all {
        let s = &row.state;
        let r = &row.key.recipient;
        let ok = (d.channels.is_empty() || d.channels.contains(&row.key.channel))
            && d.status.is_none_or(|x| x == s.status)
            && (d.iys_states.is_empty() || d.iys_states.contains(&s.iys_state))
            && d.consent_date_from.is_none_or(|f| s.consent_date >= f)
            && d.attributes.iter().all(|(k, v)| {
                profiles.get(r).is_some_and(|ps| {
                    ps.iter().any(|(_, attrs)| {
                        attrs
                            .as_ref()
                            .and_then(|a| a.get(k))
                            .and_then(|x| x.as_str())
                            == Some(v)
                    })
                })
            });
        if !ok {
            continue;
        }
        if d.sendable {
            let mut refused = false;
            if let Some(c) = &d.category {
                let mut subjects = vec![r.clone()];
                for (id, _) in profiles.get(r).into_iter().flatten() {
                    subjects.push(format!("profile:{id}"));
                }
                for subject in subjects {
                    refused |= store
                        .category_consents(BRAND, &subject)
                        .await
                        .unwrap()
                        .iter()
                        .any(|cc| &cc.category == c && cc.status == ConsentStatus::Ret);
                }
            }
            let state = SendState::from(s);
            let cat = kind.map(|k| (k, refused.then_some(ConsentStatus::Ret)));
            if !check(row.key.channel, Some(&state), cat, d.policy).allowed {
                continue;
            }
        }
        out.insert((r.clone(), row.key.channel.as_str().to_owned()));
    }
    out
}

async fn random_segments(url: &str, seed: u64) {
    let store = SqlStore::connect(url).await.unwrap();
    let brand = store
        .create_brand(NewBrand {
            brand_code: BRAND,
            iys_code: 700_654,
            name: "segments".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap();
    for (code, kind) in [
        ("kampanya", CategoryKind::Marketing),
        ("bilgi", CategoryKind::Transactional),
    ] {
        store
            .upsert_category(Category {
                brand_code: Some(BRAND),
                code: code.into(),
                name: code.into(),
                kind,
            })
            .await
            .unwrap();
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    for i in 0..20u8 {
        let addresses = (0..rng.usize(1..3)).map(|_| phone(rng.u8(..40))).collect();
        let city = CITIES[rng.usize(..CITIES.len())];
        store
            .upsert_profile(Profile {
                brand_code: Some(BRAND),
                external_id: format!("p{i}"),
                addresses,
                attributes: Some(serde_json::json!({"city": city, "tier": i % 3})),
            })
            .await
            .unwrap();
    }
    for _ in 0..12 {
        let changes = (0..rng.usize(5..40))
            .map(|_| {
                let channel = CHANNELS[rng.usize(..CHANNELS.len())];
                let status = if rng.u8(..3) == 0 {
                    ConsentStatus::Ret
                } else {
                    ConsentStatus::Onay
                };
                let date = testkit::date(&format!("2026-03-{:02} 10:00:00", rng.u8(1..28)));
                let mut ch = testkit::change(BRAND, &phone(rng.u8(..40)), channel, status, date);
                match rng.u8(..10) {
                    0 => ch.hold = Some(true),
                    1 => {
                        ch.category = Some("kampanya".into());
                        if rng.bool() {
                            ch.profile_id = Some(format!("p{}", rng.u8(..20)));
                        }
                    }
                    2 => {
                        ch.origin = Origin::IysPull;
                        ch.source = iys::Source::Iys(iys::IysSource::Mobil);
                    }
                    _ => {}
                }
                ch
            })
            .collect();
        store.apply(&brand, changes, None).await.unwrap();
        // Some deliveries settle: IYS states vary.
        let claimed = store
            .claim_pending(BRAND, "t", Timestamp::now(), 60_000, 15)
            .await
            .unwrap();
        let settled = claimed
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let s = if i % 4 == 0 {
                    Settlement::Refused {
                        code: "H174".into(),
                        message: "no".into(),
                    }
                } else {
                    Settlement::Delivered {
                        transaction_id: format!("tx-{seed}-{i}-{}", rng.u64(..)),
                        creation_date: None,
                    }
                };
                (item, s)
            })
            .collect();
        store
            .settle(BRAND, "t", settled, Timestamp::now())
            .await
            .unwrap();
    }

    let mut checked = 0;
    for _ in 0..40 {
        let mut d = SegmentDefinition {
            sendable: rng.u8(..4) != 0,
            policy: if rng.bool() {
                Policy::Strict
            } else {
                Policy::Lenient
            },
            ..Default::default()
        };
        for c in CHANNELS {
            if rng.bool() {
                d.channels.push(c);
            }
        }
        match rng.u8(..4) {
            0 => d.status = Some(ConsentStatus::Onay),
            1 => d.status = Some(ConsentStatus::Ret),
            _ => {}
        }
        if rng.u8(..3) == 0 {
            d.iys_states = vec![IysState::InIys, IysState::Pending];
        }
        if rng.u8(..3) == 0 {
            d.consent_date_from = Some(testkit::date("2026-03-14 00:00:00"));
        }
        let kind = match rng.u8(..3) {
            0 => {
                d.category = Some("kampanya".into());
                Some(CategoryKind::Marketing)
            }
            1 => {
                d.category = Some("bilgi".into());
                Some(CategoryKind::Transactional)
            }
            _ => None,
        };
        if rng.u8(..3) == 0 {
            d.attributes = BTreeMap::from([("city".to_owned(), CITIES[rng.usize(..3)].to_owned())]);
        }
        let got = members(&store, &d, kind).await;
        let want = brute(&store, &d, kind).await;
        assert_eq!(got, want, "definition {d:?}");
        checked += usize::from(!want.is_empty());
    }
    assert!(checked > 10, "most definitions select someone ({checked})");

    // A citizen's RET from IYS: out of every sendable segment at once.
    let d = SegmentDefinition {
        channels: vec![Channel::Iys(ConsentType::Mesaj)],
        sendable: true,
        policy: Policy::Lenient,
        ..Default::default()
    };
    let before = members(&store, &d, None).await;
    let (victim, _) = before
        .iter()
        .next()
        .cloned()
        .expect("someone may be sent to");
    let mut ret = testkit::change(
        BRAND,
        &victim,
        Channel::Iys(ConsentType::Mesaj),
        ConsentStatus::Ret,
        testkit::date("2026-03-28 12:00:00"),
    );
    ret.origin = Origin::IysPull;
    ret.source = iys::Source::Iys(iys::IysSource::Kisamesaj);
    store.apply(&brand, vec![ret], None).await.unwrap();
    let after = members(&store, &d, None).await;
    assert!(!after.iter().any(|(r, _)| r == &victim));
    assert_eq!(after.len(), before.len() - 1);
}

#[tokio::test]
async fn sqlite() {
    for seed in [11, 12] {
        let dir = tempfile::tempdir().unwrap();
        let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
        random_segments(&url, seed).await;
    }
}

#[tokio::test]
async fn postgres() {
    let Some(admin) = testkit::admin_url_or_skip("segments on PostgreSQL") else {
        return;
    };
    for seed in [11, 12] {
        let (url, name) = testkit::fresh_postgres(&admin, "iyshub_segments").await;
        random_segments(&url, seed).await;
        testkit::drop_postgres(&admin, &name).await;
    }
}
