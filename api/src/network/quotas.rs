//! `/v2.0/quotas`: show (with `/details`: used, limit, reserved), defaults, update, reset, the admin list;
//! and [`reserve_quota`] / [`release_quota`], which every networking resource uses (the routers, floating
//! IPs and security groups too): usage is reservations on the project's `network-usage-<project>` stream,
//! appended with its expected version, so concurrent creates never pass a limit.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::network::{NetworkQuotaCommand, NETWORK_QUOTA_DEFAULTS};

use super::{body_object, Caller, Networks, NeutronError};
#[allow(unused_imports)]
use strata_network::quotas::*;

fn limits_json(limits: &BTreeMap<String, i64>) -> Value {
    Value::Object(
        NETWORK_QUOTA_DEFAULTS
            .iter()
            .map(|(k, _)| (k.to_string(), json!(limits.get(*k).copied().unwrap_or(-1))))
            .collect(),
    )
}

fn check_project(caller: &Caller, project_id: &str) -> Result<(), NeutronError> {
    if caller.owns(project_id) {
        Ok(())
    } else {
        Err(NeutronError::policy("get_quota"))
    }
}

async fn show(
    networks: web::Data<Networks>,
    caller: Caller,
    project: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    let project = project.into_inner();
    if project == "tenant" {
        return Ok(HttpResponse::Ok().json(json!({"tenant": {"tenant_id": caller.project_id}})));
    }
    check_project(&caller, &project)?;
    Ok(HttpResponse::Ok().json(json!({ "quota": limits_json(&networks.limits(&project)) })))
}

async fn details(
    networks: web::Data<Networks>,
    caller: Caller,
    project: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    check_project(&caller, &project)?;
    let limits = networks.limits(&project);
    let view = networks.view.snapshot();
    let body: Map<String, Value> = NETWORK_QUOTA_DEFAULTS
        .iter()
        .map(|(k, _)| {
            (
                k.to_string(),
                json!({
                    "used": view.used(&project, k),
                    "limit": limits.get(*k).copied().unwrap_or(-1),
                    "reserved": 0,
                }),
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "quota": body })))
}

async fn defaults(
    networks: web::Data<Networks>,
    _caller: Caller,
    _project: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    Ok(HttpResponse::Ok().json(json!({ "quota": limits_json(&networks.default_limits) })))
}

async fn list(networks: web::Data<Networks>, caller: Caller) -> Result<HttpResponse, NeutronError> {
    let projects: Vec<String> = {
        let view = networks.view.snapshot();
        view.quotas
            .iter()
            .filter(|(p, q)| !q.limits.is_empty() && caller.owns(p))
            .map(|(p, _)| p.clone())
            .collect()
    };
    let all: Vec<Value> = projects
        .iter()
        .map(|p| {
            let mut v = limits_json(&networks.limits(p));
            v["project_id"] = json!(p);
            v["tenant_id"] = json!(p);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "quotas": all })))
}

async fn update(
    networks: web::Data<Networks>,
    caller: Caller,
    project: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("update_quota")?;
    let m = body_object(&body, "quota")?;
    let mut check_limit = false;
    let mut limits = BTreeMap::new();
    for (k, v) in &m {
        match k.as_str() {
            "force" => {}
            "check_limit" => check_limit = v.as_bool().unwrap_or(false),
            _ => {
                if !NETWORK_QUOTA_DEFAULTS.iter().any(|(n, _)| n == k) {
                    return Err(NeutronError::bad_request(format!(
                        "Unrecognized attribute(s) '{k}'"
                    )));
                }
                let n = v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|n| *n >= -1)
                    .ok_or_else(|| {
                        NeutronError::invalid_input(format!(
                            "'{v}' is not a valid quota limit for {k}"
                        ))
                    })?;
                limits.insert(k.clone(), n);
            }
        }
    }
    if check_limit {
        let view = networks.view.snapshot();
        for (k, v) in &limits {
            let used = view.used(&project, k);
            if *v >= 0 && *v < used {
                return Err(NeutronError::bad_request(format!(
                    "Quota limit {v} for {k} must be greater than or equal to already used and reserved {used}."
                )));
            }
        }
    }
    networks
        .run(
            &networks.quotas,
            &project,
            NetworkQuotaCommand::Set(limits),
            &caller.meta,
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "quota": limits_json(&networks.limits(&project)) })))
}

async fn reset(
    networks: web::Data<Networks>,
    caller: Caller,
    project: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("delete_quota")?;
    networks
        .run(
            &networks.quotas,
            &project,
            NetworkQuotaCommand::Reset,
            &caller.meta,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v2.0/quotas", web::get().to(list))
        .service(
            web::resource("/v2.0/quotas/{project_id}")
                .route(web::get().to(show))
                .route(web::put().to(update))
                .route(web::delete().to(reset)),
        )
        .route("/v2.0/quotas/{project_id}/details", web::get().to(details))
        .route("/v2.0/quotas/{project_id}/default", web::get().to(defaults));
}
