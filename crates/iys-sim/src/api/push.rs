//! Push registrations: register (IYS posts a test payload first), list, unregister.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use iys::wire::{MessageResponse, PushConnection, PushRegistrationItem};
use iys::{ConsentDate, ConsentType, HCode, IysError};

use super::{ApiResult, Brand, BrandJson, SimState, ok};
use crate::state::PushRegistration;

fn push_connection(v: &Value, allow_http: bool) -> Result<PushConnection, IysError> {
    let text = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let consent_type = match v.get("type") {
        None | Some(Value::Null) => return Err(IysError::new(HCode::H111).at("type")),
        Some(t) => t
            .as_str()
            .and_then(|s| s.parse::<ConsentType>().ok())
            .ok_or_else(|| IysError::new(HCode::H117).at("type").with_value(t.clone()))?,
    };
    let (Some(username), Some(password)) = (text("username"), text("password")) else {
        return Err(IysError::new(HCode::H093)
            .with_message("Kullanıcı adı (username) ve şifre (password) verilmelidir."));
    };
    let url = text("url").ok_or_else(|| IysError::new(HCode::H531).at("url"))?;
    let scheme_ok = url.starts_with("https://") || (allow_http && url.starts_with("http://"));
    if !scheme_ok {
        return Err(IysError::new(HCode::H531).at("url").with_value(url));
    }
    Ok(PushConnection {
        url: url.to_owned(),
        consent_type,
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

pub(super) async fn push_register(
    State(sim): SimState,
    BrandJson { brand, body }: BrandJson,
) -> ApiResult<Response> {
    let allow_http = sim.config().allow_insecure_push;
    let list = body
        .get("connection")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| IysError::new(HCode::H530).at("connection"))?;
    let conns = list
        .iter()
        .map(|c| push_connection(c, allow_http))
        .collect::<Result<Vec<_>, _>>()?;
    {
        let state = sim.state.lock().expect("state lock");
        let existing = state.push.get(&brand).map_or(&[][..], Vec::as_slice);
        for c in &conns {
            let same_type = existing
                .iter()
                .filter(|r| r.connection.consent_type == c.consent_type)
                .count()
                + conns
                    .iter()
                    .filter(|x| x.consent_type == c.consent_type)
                    .count();
            if same_type > 2 {
                return Err(IysError::new(HCode::H530)
                    .with_message("Her izin tipi için en fazla iki aktif bağlantı olabilir.")
                    .into());
            }
        }
    }
    // IYS posts its test payload; the URL must answer within 5 s.
    let http = crate::push::client();
    for c in &conns {
        if let Err(reason) =
            crate::push::deliver(&http, c, &iys::wire::PushPayload::test_payload()).await
        {
            let code = if reason == "timeout" {
                HCode::H191
            } else {
                HCode::H530
            };
            let message = if code == HCode::H191 {
                "Bağlantı zaman aşımına uğradı."
            } else {
                HCode::H530.message_tr()
            };
            return Err(IysError::new(code)
                .with_message(message)
                .at("url")
                .with_value(c.url.as_str())
                .into());
        }
    }
    let registered = ConsentDate::from_timestamp(sim.now());
    let mut state = sim.state.lock().expect("state lock");
    let regs = state.push.entry(brand).or_default();
    for connection in conns {
        regs.retain(|r| {
            !(r.connection.url == connection.url
                && r.connection.consent_type == connection.consent_type)
        });
        regs.push(PushRegistration {
            connection,
            registered,
        });
    }
    ok(
        StatusCode::OK,
        MessageResponse {
            message: "Bağlantı oluşturuldu".into(),
        },
    )
}

pub(super) async fn push_list(State(sim): SimState, Brand(brand): Brand) -> ApiResult<Response> {
    let state = sim.state.lock().expect("state lock");
    let list: Vec<PushRegistrationItem> = state
        .push
        .get(&brand)
        .map(|regs| {
            regs.iter()
                .map(|r| PushRegistrationItem {
                    url: r.connection.url.clone(),
                    consent_type: r.connection.consent_type,
                    register_time: r.registered,
                    status: "Bağlantı Oluşturuldu".into(),
                })
                .collect()
        })
        .unwrap_or_default();
    ok(StatusCode::OK, list)
}

pub(super) async fn push_unregister(
    State(sim): SimState,
    BrandJson { brand, body }: BrandJson,
) -> ApiResult<Response> {
    let conn = push_connection(&body, true)?;
    let mut state = sim.state.lock().expect("state lock");
    let regs = state.push.entry(brand).or_default();
    let before = regs.len();
    regs.retain(|r| {
        !(r.connection.url == conn.url && r.connection.consent_type == conn.consent_type)
    });
    if regs.len() == before {
        return Err(IysError::new(HCode::H530)
            .with_message("Bağlantı kaldırılamadı.")
            .into());
    }
    ok(
        StatusCode::OK,
        MessageResponse {
            message: "Bağlantı Kaldırıldı".into(),
        },
    )
}
