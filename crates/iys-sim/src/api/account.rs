//! The provider's brands and subscription.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use iys::wire::{Brand, BrandStats, RetailerCounts, Subscription};
use iys::{ConsentDate, HCode, IysError};

use super::{ApiResult, SimState, ok};

pub(super) async fn brands(
    State(sim): SimState,
    headers: HeaderMap,
    Path(iys_code): Path<String>,
) -> ApiResult<Response> {
    let user = sim.authenticate(&headers)?;
    sim.authorize(&user, &iys_code, None)?;
    let cfg = sim.config();
    let state = sim.state.lock().expect("state lock");
    let list: Vec<Brand> = cfg
        .brands
        .iter()
        .filter(|b| sim.may_act_for(&cfg, &user, b.brand_code))
        .map(|b| Brand {
            brand_code: b.brand_code,
            name: b.name.clone(),
            master: b.master,
            stats: BrandStats {
                consents: state.counts(b.brand_code),
                retailers: RetailerCounts {
                    total: state.dealer_count(b.brand_code),
                },
            },
        })
        .collect();
    ok(StatusCode::OK, list)
}

pub(super) async fn subscription(
    State(sim): SimState,
    headers: HeaderMap,
    Path(iys_code): Path<String>,
) -> ApiResult<Response> {
    let _user = sim.authenticate(&headers)?;
    let cfg = sim.config();
    if iys_code.parse::<u64>().ok() != Some(cfg.iys_code) {
        return Err(IysError::new(HCode::H353).into());
    }
    let (start, end) = subscription_period(sim.now());
    let used = sim.state.lock().expect("state lock").consent_count() as u64;
    ok(
        StatusCode::OK,
        Subscription {
            subscription_id: Some(format!("sim-{}", cfg.iys_code)),
            start_date: start,
            expiration_date: end,
            subscription_package_name: cfg.subscription.package_name.clone(),
            status: cfg.subscription.status,
            consent_limit: Some(
                cfg.subscription
                    .consent_limit
                    .unwrap_or(u64::from(u32::MAX)),
            ),
            consent_limit_exceed: Some(cfg.subscription.consent_limit_exceed),
            used_consent_limit: Some(used),
            iys_code: None,
            via_subscription_package: None,
            via_pass_subscription_package: None,
        },
    )
}

/// The simulated subscriptions run for the current calendar year.
pub(super) fn subscription_period(now: jiff::Timestamp) -> (ConsentDate, ConsentDate) {
    let now = ConsentDate::from_timestamp(now);
    let year = now.civil().year();
    let start = ConsentDate::parse(&format!("{year:04}-01-01 00:00:00")).unwrap_or(now);
    let end = ConsentDate::parse(&format!("{year:04}-12-31 23:59:59")).unwrap_or(now);
    (start, end)
}
