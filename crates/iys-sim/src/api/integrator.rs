//! Partners (integrators): their brands and their own subscription.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use iys::wire::{Code, IntegratorBrand, IntegratorBrands, Subscription, SubscriptionStatus};
use iys::{HCode, IysError};

use super::account::subscription_period;
use super::{ApiResult, SimState, ok, page_of, pagination, paging};
use crate::Sim;

/// A partner user's own integratorCode checked: 422 H190-style for a non-integer code, 400
/// H363 for a provider's user, 403 H353 for another partner's code, then the partner's
/// subscription (H521/H520).
fn open_integrator(sim: &Sim, headers: &HeaderMap, code: &str) -> ApiResult<crate::SimConfig> {
    let user = sim.authenticate(headers)?;
    let cfg = sim.config();
    let integrator: u64 = code.parse().map_err(|_| {
        IysError::new(HCode::H190)
            .with_message("integratorCode integer bir değer olmalıdır.")
            .at("integratorCode")
            .with_value(code)
    })?;
    if !cfg.integrator.users.iter().any(|u| u.username == user) {
        return Err(IysError::new(HCode::H363).into());
    }
    if integrator != cfg.integrator.integrator_code {
        let message = HCode::H353
            .message_tr()
            .replacen("iysCode", "integratorIysCode", 1);
        return Err(IysError::new(HCode::H353).with_message(message).into());
    }
    match cfg.integrator.status {
        SubscriptionStatus::Closed => Err(IysError::new(HCode::H521).into()),
        SubscriptionStatus::Paused | SubscriptionStatus::Expired => {
            Err(IysError::new(HCode::H520).into())
        }
        SubscriptionStatus::Active => Ok(cfg),
    }
}

fn integrator_list(
    sim: &Sim,
    headers: &HeaderMap,
    code: &str,
    iys_code: Option<&str>,
    q: &HashMap<String, String>,
) -> ApiResult<Response> {
    let cfg = open_integrator(sim, headers, code)?;
    let (limit, offset) = paging(q, 100, 100)?;
    if let Some(iys) = iys_code {
        let iys: u64 = iys
            .parse()
            .map_err(|_| IysError::new(HCode::H190).at("iysCode").with_value(iys))?;
        if iys != cfg.iys_code {
            return Err(IysError::new(HCode::H353).into());
        }
    }
    let user = sim.authenticate(headers)?;
    let all: Vec<IntegratorBrand> = cfg
        .brands
        .iter()
        .filter(|b| sim.may_act_for(&cfg, &user, b.brand_code))
        .map(|b| IntegratorBrand {
            brand_code: Code::Number(b.brand_code),
            name: b.name.clone(),
            master: b.master,
            title: cfg.provider_title.clone(),
            iys_code: Code::Number(cfg.iys_code),
            agreement_control: true,
            mesaj: Some("write".into()),
            arama: Some("write".into()),
            eposta: Some("write".into()),
            via_control: false,
        })
        .collect();
    let list: Vec<IntegratorBrand> = page_of(&all, limit, offset).cloned().collect();
    ok(
        StatusCode::OK,
        IntegratorBrands {
            pagination: pagination(all.len(), list.len(), offset),
            list,
        },
    )
}

pub(super) async fn integrator_brands(
    State(sim): SimState,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    integrator_list(&sim, &headers, &code, None, &q)
}

pub(super) async fn integrator_brands_of(
    State(sim): SimState,
    headers: HeaderMap,
    Path((code, iys_code)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    integrator_list(&sim, &headers, &code, Some(&iys_code), &q)
}

/// The partner's own subscription; usable in every subscription state, as IYS's H520 says.
pub(super) async fn integrator_subscription(
    State(sim): SimState,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let user = sim.authenticate(&headers)?;
    let cfg = sim.config();
    if !cfg.integrator.users.iter().any(|u| u.username == user) {
        return Err(IysError::new(HCode::H522).into());
    }
    let partner = &cfg.integrator;
    if code.parse::<u64>().ok() != Some(partner.integrator_code) {
        let message = HCode::H437.message_tr().replace("{{iysCode}}", &code);
        return Err(IysError::new(HCode::H437).with_message(message).into());
    }
    let (start, end) = subscription_period(sim.now());
    ok(
        StatusCode::OK,
        Subscription {
            subscription_id: Some(format!("sim-{}", partner.integrator_code)),
            start_date: start,
            expiration_date: end,
            subscription_package_name: partner.package_name.clone(),
            status: partner.status,
            consent_limit: None,
            consent_limit_exceed: None,
            used_consent_limit: None,
            // The schema types it a string (the example has a number).
            iys_code: Some(Code::Text(partner.integrator_code.to_string())),
            via_subscription_package: None,
            via_pass_subscription_package: None,
        },
    )
}
