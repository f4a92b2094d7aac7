//! `/v3/domains`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::identity::{DomainCommand, ProjectCommand, UserCommand};
use strata_projections::identity::DomainRow;

use super::projects::{merged_extra, DESCRIPTION_MAX};
use super::util::{
    collection_links, entity, extra_json, merge_extra, opt_bool, opt_name, opt_str, query,
    query_bool, req_name, self_link,
};
use super::{new_id, Answer, Authed, Identity, KeystoneError};
use crate::common::RequestId;

const NAME_MAX: usize = 64;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v3/domains")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v3/domains/{id}")
            .route(web::get().to(show))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    );
}

pub fn domain_json(req: &HttpRequest, d: &DomainRow) -> Value {
    let mut v = json!({
        "id": d.id,
        "name": d.name,
        "description": d.description,
        "enabled": d.enabled,
        "tags": [],
        "options": {},
        "links": self_link(req, &format!("domains/{}", d.id)),
    });
    merge_extra(&mut v, &d.extra_json);
    v
}

async fn list(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:list_domains")?;
    let name = query(&req, "name");
    let enabled = query_bool(&req, "enabled");
    let view = identity.view.snapshot();
    let domains: Vec<Value> = view
        .domains
        .values()
        .filter(|d| name.as_ref().is_none_or(|n| &d.name == n))
        .filter(|d| enabled.is_none_or(|e| d.enabled == e))
        .map(|d| domain_json(&req, d))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "domains": domains, "links": collection_links(&req) })))
}

async fn create(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:create_domain")?;
    let mut m = entity(&body, "domain")?;
    let name = req_name(&mut m, "name", NAME_MAX)?;
    let description = opt_str(&mut m, "description", DESCRIPTION_MAX)?.unwrap_or_default();
    let enabled = opt_bool(&mut m, "enabled")?.unwrap_or(true);
    m.remove("tags");
    let extra = extra_json(m);
    let id = new_id();
    let meta = rid.metadata(caller.0.principal());
    let cmd = DomainCommand::Create {
        domain_id: id.clone(),
        name: name.clone(),
        description,
        enabled,
        extra_json: extra,
    };
    identity
        .create_named(&identity.domains, "domain", "", &name, &id, cmd, &meta)
        .await?;
    identity.answer(
        StatusCode::CREATED,
        "domain",
        &id,
        |v| &v.domains,
        |r| domain_json(&req, r),
    )
}

async fn show(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    let id = path.into_inner();
    if !caller.0.is_admin() && caller.0.user_domain_id != id {
        return Err(KeystoneError::forbidden("identity:get_domain"));
    }
    identity.answer(
        StatusCode::OK,
        "domain",
        &id,
        |v| &v.domains,
        |r| domain_json(&req, r),
    )
}

async fn update(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:update_domain")?;
    let id = path.into_inner();
    let mut m = entity(&body, "domain")?;
    let name = opt_name(&mut m, "name", NAME_MAX)?;
    let description = opt_str(&mut m, "description", DESCRIPTION_MAX)?;
    let enabled = opt_bool(&mut m, "enabled")?;
    m.remove("tags");
    let current = identity
        .view
        .snapshot()
        .domains
        .get(&id)
        .cloned()
        .ok_or_else(|| KeystoneError::not_found("domain", &id))?;
    let extra = if m.is_empty() {
        None
    } else {
        Some(merged_extra(&current.extra_json, m))
    };
    let meta = rid.metadata(caller.0.principal());
    let new_name = name.clone();
    let cmd = DomainCommand::Update {
        name,
        description,
        enabled,
        extra_json: extra,
    };
    let old = &current.name;
    identity
        .update_named(
            &identity.domains,
            "domain",
            "",
            old,
            new_name.as_deref(),
            &id,
            cmd,
            &meta,
        )
        .await?;
    identity.answer(
        StatusCode::OK,
        "domain",
        &id,
        |v| &v.domains,
        |r| domain_json(&req, r),
    )
}

/// Deleting a (disabled) domain deletes its projects and users first, as Keystone does.
async fn delete(
    identity: web::Data<Identity>,
    caller: Authed,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:delete_domain")?;
    let id = path.into_inner();
    let (current, projects, users) = {
        let view = identity.view.snapshot();
        let current = view
            .domains
            .get(&id)
            .cloned()
            .ok_or_else(|| KeystoneError::not_found("domain", &id))?;
        let projects: Vec<(String, String)> = view
            .projects
            .values()
            .filter(|p| p.domain_id == id)
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect();
        let users: Vec<(String, String)> = view
            .users
            .values()
            .filter(|u| u.domain_id == id)
            .map(|u| (u.id.clone(), u.name.clone()))
            .collect();
        (current, projects, users)
    };
    if current.enabled {
        return Err(KeystoneError::forbidden("identity:delete_domain (Cannot delete a domain that is enabled, please disable it first.)"));
    }
    let meta = rid.metadata(caller.0.principal());
    for (pid, name) in projects {
        let cmd = ProjectCommand::Delete;
        identity
            .delete_named(&identity.projects, "project", &id, &name, &pid, cmd, &meta)
            .await?;
    }
    for (uid, name) in users {
        let cmd = UserCommand::Delete;
        identity
            .delete_named(&identity.users, "user", &id, &name, &uid, cmd, &meta)
            .await?;
    }
    let cmd = DomainCommand::Delete;
    identity
        .delete_named(
            &identity.domains,
            "domain",
            "",
            &current.name,
            &id,
            cmd,
            &meta,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
