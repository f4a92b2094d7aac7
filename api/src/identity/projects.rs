//! `/v3/projects`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::identity::ProjectCommand;
use strata_projections::identity::ProjectRow;

use super::util::{
    collection_links, entity, extra_json, merge_extra, opt_bool, opt_name, opt_str, opt_tags,
    query, query_bool, req_name, self_link,
};
use super::{new_id, Answer, Authed, Identity, KeystoneError};
use crate::common::RequestId;

pub const NAME_MAX: usize = 64;
pub const DESCRIPTION_MAX: usize = 65_535;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v3/projects")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v3/projects/{id}")
            .route(web::get().to(show))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    );
}

pub fn project_json(req: &HttpRequest, p: &ProjectRow) -> Value {
    let parent = if p.parent_id.is_empty() {
        p.domain_id.clone()
    } else {
        p.parent_id.clone()
    };
    let mut v = json!({
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "description": p.description,
        "enabled": p.enabled,
        "parent_id": parent,
        "is_domain": false,
        "tags": p.tags,
        "options": {},
        "links": self_link(req, &format!("projects/{}", p.id)),
    });
    merge_extra(&mut v, &p.extra_json);
    v
}

async fn list(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:list_projects")?;
    let name = query(&req, "name");
    let domain_id = query(&req, "domain_id");
    let parent_id = query(&req, "parent_id");
    let enabled = query_bool(&req, "enabled");
    let is_domain = query_bool(&req, "is_domain");
    let view = identity.view.snapshot();
    let projects: Vec<Value> = view
        .projects
        .values()
        .filter(|p| name.as_ref().is_none_or(|n| &p.name == n))
        .filter(|p| domain_id.as_ref().is_none_or(|d| &p.domain_id == d))
        .filter(|p| {
            parent_id.as_ref().is_none_or(|d| {
                (if p.parent_id.is_empty() {
                    &p.domain_id
                } else {
                    &p.parent_id
                }) == d
            })
        })
        .filter(|p| enabled.is_none_or(|e| p.enabled == e))
        .filter(|_| is_domain != Some(true))
        .map(|p| project_json(&req, p))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "projects": projects, "links": collection_links(&req) })))
}

async fn create(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:create_project")?;
    let mut m = entity(&body, "project")?;
    let name = req_name(&mut m, "name", NAME_MAX)?;
    let description = opt_str(&mut m, "description", DESCRIPTION_MAX)?.unwrap_or_default();
    let enabled = opt_bool(&mut m, "enabled")?.unwrap_or(true);
    let tags = opt_tags(&mut m)?.unwrap_or_default();
    let domain_id =
        opt_str(&mut m, "domain_id", 64)?.unwrap_or_else(|| caller.0.user_domain_id.clone());
    let parent_id = opt_str(&mut m, "parent_id", 64)?.unwrap_or_default();
    if opt_bool(&mut m, "is_domain")? == Some(true) {
        return Err(KeystoneError::bad_request(
            "Projects acting as domains are not supported; create a domain instead.",
        ));
    }
    {
        let view = identity.view.snapshot();
        if !view.domains.contains_key(&domain_id) {
            return Err(KeystoneError::not_found("domain", &domain_id));
        }
        if !parent_id.is_empty() && parent_id != domain_id {
            match view.projects.get(&parent_id) {
                None => return Err(KeystoneError::not_found("project", &parent_id)),
                Some(parent) if parent.domain_id != domain_id => {
                    return Err(KeystoneError::bad_request(
                        "The parent project must be in the same domain.",
                    ))
                }
                Some(_) => {}
            }
        }
    }
    let parent_id = if parent_id == domain_id {
        String::new()
    } else {
        parent_id
    };
    let extra = extra_json(m);
    let id = new_id();
    let meta = rid.metadata(caller.0.principal());
    let cmd = ProjectCommand::Create {
        project_id: id.clone(),
        domain_id: domain_id.clone(),
        name: name.clone(),
        description,
        enabled,
        parent_id,
        tags,
        extra_json: extra,
    };
    identity
        .create_named(
            &identity.projects,
            "project",
            &domain_id,
            &name,
            &id,
            cmd,
            &meta,
        )
        .await?;
    identity.answer(
        StatusCode::CREATED,
        "project",
        &id,
        |v| &v.projects,
        |r| project_json(&req, r),
    )
}

async fn show(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    let id = path.into_inner();
    // Members may read the project their token is scoped to; admins any project.
    if !caller.0.is_admin() && caller.0.project_id() != Some(id.as_str()) {
        return Err(KeystoneError::forbidden("identity:get_project"));
    }
    identity.answer(
        StatusCode::OK,
        "project",
        &id,
        |v| &v.projects,
        |r| project_json(&req, r),
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
    caller.require_admin("identity:update_project")?;
    let id = path.into_inner();
    let mut m = entity(&body, "project")?;
    let name = opt_name(&mut m, "name", NAME_MAX)?;
    let description = opt_str(&mut m, "description", DESCRIPTION_MAX)?;
    let enabled = opt_bool(&mut m, "enabled")?;
    let tags = opt_tags(&mut m)?;
    let current = identity
        .view
        .snapshot()
        .projects
        .get(&id)
        .cloned()
        .ok_or_else(|| KeystoneError::not_found("project", &id))?;
    if let Some(d) = opt_str(&mut m, "domain_id", 64)? {
        if d != current.domain_id {
            return Err(KeystoneError::bad_request(
                "Update of `domain_id` is not allowed.",
            ));
        }
    }
    m.remove("parent_id");
    m.remove("is_domain");
    let extra = if m.is_empty() {
        None
    } else {
        Some(merged_extra(&current.extra_json, m))
    };
    let meta = rid.metadata(caller.0.principal());
    let new_name = name.clone();
    let cmd = ProjectCommand::Update {
        name,
        description,
        enabled,
        tags,
        extra_json: extra,
    };
    let (domain, old) = (&current.domain_id, &current.name);
    identity
        .update_named(
            &identity.projects,
            "project",
            domain,
            old,
            new_name.as_deref(),
            &id,
            cmd,
            &meta,
        )
        .await?;
    identity.answer(
        StatusCode::OK,
        "project",
        &id,
        |v| &v.projects,
        |r| project_json(&req, r),
    )
}

/// Extra properties after an update: the old ones with the new ones laid over them.
pub fn merged_extra(old: &str, new: serde_json::Map<String, Value>) -> String {
    let mut base = match serde_json::from_str::<Value>(old) {
        Ok(Value::Object(o)) => o,
        _ => serde_json::Map::new(),
    };
    let new = extra_json(new);
    if let Ok(Value::Object(n)) = serde_json::from_str::<Value>(&new) {
        base.extend(n);
    }
    if base.is_empty() {
        String::new()
    } else {
        Value::Object(base).to_string()
    }
}

async fn delete(
    identity: web::Data<Identity>,
    caller: Authed,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:delete_project")?;
    let id = path.into_inner();
    let current = identity
        .view
        .snapshot()
        .projects
        .get(&id)
        .cloned()
        .ok_or_else(|| KeystoneError::not_found("project", &id))?;
    let meta = rid.metadata(caller.0.principal());
    let (domain, name) = (&current.domain_id, &current.name);
    identity
        .delete_named(
            &identity.projects,
            "project",
            domain,
            name,
            &id,
            ProjectCommand::Delete,
            &meta,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
