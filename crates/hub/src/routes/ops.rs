//! Operations: liveness, readiness, metrics, this document, and the hash chain's verification.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hub_store::Scope;

use crate::api::brand_for;
use crate::auth::Caller;
use crate::dto::ops::{
    ChainReport, DatabaseStatus, EnginesStatus, Health, HealthStatus, Readiness, ReadyStatus,
};
use crate::dto::params::BrandCodePath;
use crate::error::ApiResult;
use crate::extract::Path;
use crate::metrics::Gauge;
use crate::{HubDb, HubState};

/// Liveness
///
/// The process is up. No API key needed.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    security(),
    responses(
        (status = 200, description = "Alive.", body = Health, examples(
            ("ok" = (summary = "Alive", value = json!({"status": "ok"})))
        )),
    )
)]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

/// Readiness
///
/// The database answers and, on instances that run them, the IYS engines' loop is alive. Causes
/// are logged, not answered. No API key needed.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    security(),
    responses(
        (status = 200, description = "Ready.", body = Readiness, examples(
            ("ready" = (summary = "Ready", value = json!({"status": "ready", "database": "ok"}))),
            ("withEngines" = (summary = "Ready, with the IYS engines", value = json!({"status": "ready", "database": "ok", "engines": "ok"})))
        )),
        (status = 503, description = "Not ready: the database does not answer, or the IYS engines' loop has stalled (the cause is in the log).", body = Readiness, examples(
            ("notReady" = (summary = "Database down", value = json!({"status": "not_ready", "database": "unavailable"})))
        )),
    )
)]
pub async fn readyz<S: HubDb>(State(hub): State<HubState<S>>) -> Response {
    let database = match hub.store.ping().await {
        Ok(()) => DatabaseStatus::Ok,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            DatabaseStatus::Unavailable
        }
    };
    let engines = hub.engines.as_ref().map(|hb| {
        if hb.alive() {
            EnginesStatus::Ok
        } else {
            tracing::warn!("readiness: the IYS engines' loop has stalled");
            EnginesStatus::Stalled
        }
    });
    let ready = database == DatabaseStatus::Ok && engines.is_none_or(|e| e == EnginesStatus::Ok);
    let body = Json(Readiness {
        status: if ready {
            ReadyStatus::Ready
        } else {
            ReadyStatus::NotReady
        },
        database,
        engines,
    });
    if ready {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// Prometheus metrics
///
/// Counters since start (`iyshub_consent_changes_total` by brand and outcome,
/// `iyshub_checks_total` by brand and answer), the outbox rows per brand and state
/// (`iyshub_outbox_rows`), changes at risk, the oldest pending deadline, IYS errors of the last
/// 24 hours, paused dispatch, pull cursor ages and the reconciliation's figures, in Prometheus's
/// text format. Scope: the provider's admin key (the figures name every brand). Operators can
/// scrape the same text without a key on the metrics address (IYSHUB_METRICS_BIND, loopback by
/// default).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    security(("apiKey" = ["admin"])),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", body = String, content_type = "text/plain; version=0.0.4",
            example = json!("# TYPE iyshub_checks_total counter\niyshub_checks_total{brand=\"600123\",allowed=\"false\"} 8\niyshub_checks_total{brand=\"600123\",allowed=\"true\"} 4\n# TYPE iyshub_consent_changes_total counter\niyshub_consent_changes_total{brand=\"600123\",outcome=\"applied\"} 4\niyshub_consent_changes_total{brand=\"600123\",outcome=\"hold_changed\"} 1\n# TYPE iyshub_outbox_rows gauge\niyshub_outbox_rows{brand=\"600123\",state=\"pending\"} 2\n")),
        (status = 403, description = "Not the provider's admin key (a key of one brand, or without admin)."),
    )
)]
pub async fn metrics_with_key<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Scope::Admin, None)?;
    Ok(metrics(State(hub)).await)
}

/// `/metrics` itself (also served without a key on the metrics address).
pub(crate) async fn metrics<S: HubDb>(State(hub): State<HubState<S>>) -> Response {
    // The sync status figures of every brand, as gauges.
    let mut extra: Vec<Gauge> = Vec::new();
    let now = jiff::Timestamp::now();
    if let Ok(brands) = hub.store.brands().await {
        for b in brands {
            let Ok(f) = hub.store.sync_figures(b.brand_code, now).await else {
                continue;
            };
            let brand = || vec![("brand", b.brand_code.to_string())];
            let with = |name: &'static str, value: String| {
                let mut labels = brand();
                labels.push((name, value));
                labels
            };
            for (state, n) in &f.outbox {
                extra.push(Gauge {
                    name: "iyshub_outbox_rows",
                    labels: with("state", state.to_string()),
                    value: *n as f64,
                });
            }
            extra.push(Gauge {
                name: "iyshub_changes_at_risk",
                labels: brand(),
                value: f.at_risk as f64,
            });
            if let Some(d) = f.oldest_pending_deadline {
                extra.push(Gauge {
                    name: "iyshub_oldest_pending_deadline_seconds",
                    labels: brand(),
                    value: d.duration_since(now).as_secs_f64(),
                });
            }
            for (code, n) in &f.errors_last_24h {
                extra.push(Gauge {
                    name: "iyshub_iys_errors_24h",
                    labels: with("code", code.to_string()),
                    value: *n as f64,
                });
            }
            extra.push(Gauge {
                name: "iyshub_dispatch_paused",
                labels: brand(),
                value: f64::from(u8::from(f.paused.is_some())),
            });
            for c in f.pulls(b.mode) {
                if let Some(t) = c.last_success {
                    extra.push(Gauge {
                        name: "iyshub_pull_cursor_age_seconds",
                        labels: with("source", c.source.to_string()),
                        value: now.duration_since(t).as_secs_f64(),
                    });
                }
            }
            extra.extend(crate::routes::reconcile::gauges(&hub, b.brand_code).await);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        hub.metrics.render(&extra),
    )
        .into_response()
}

/// This document
///
/// The OpenAPI 3.1 document of the API, generated from the code. No API key needed. A page to
/// browse it is at `/api/docs`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    security(),
    responses(
        (status = 200, description = "The OpenAPI document.", body = Object),
    )
)]
pub async fn openapi() -> Json<&'static serde_json::Value> {
    Json(crate::openapi::document())
}

/// Verify the hash chain
///
/// Scope: read. Recomputes the brand's hash chain over its whole history: any edit or deletion
/// of a past event shows.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/verify",
    tag = "consents",
    operation_id = "verifyChain",
    params(BrandCodePath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The report.", body = ChainReport, examples(
            ("valid" = (summary = "Intact", value = json!({"events": 5, "valid": true, "firstBrokenEvent": null, "head": "903e22159b9e5827046ebd8fba0be822080a86252b2e6632e162a99abd77e7a9"}))),
            ("broken" = (summary = "Event 3 was altered", value = json!({"events": 3, "valid": false, "firstBrokenEvent": 3, "head": "e6f7218467b14ad80aedbe2a8524f3a7f2f0f86683822f7a0e9f3455e32cd897"})))
        )),
    )
)]
pub async fn verify_chain<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<ChainReport>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    Ok(Json(hub.store.verify_chain(brand.brand_code).await?.into()))
}
