//! `/v3/projects`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::identity::{Project, ProjectCommand};
use strata_projections::identity::ProjectRow;

use super::domains::Domains;
use super::kind::{self, answer, create_named, exists, kind, row, Command, Named};
use super::util::{
    entity, extra_json, merge_extra, opt_bool, opt_name, opt_str, opt_tags, query, query_bool,
    req_name, same_domain, self_link, updated_extra,
};
use super::{new_id, Authed, Identity, KeystoneError};
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
            .route(web::get().to(kind::show::<Projects>))
            .route(web::patch().to(update))
            .route(web::delete().to(kind::delete::<Projects>)),
    );
}

/// `/v3/projects`.
pub struct Projects;

kind!(Projects {
    row: ProjectRow,
    aggregate: Project,
    key: "project",
    collection: "projects",
    table: projects,
    json: project_json,
    may_read: may_read_project,
});

/// Members may read the project their token is scoped to; admins any project.
fn may_read_project(caller: &Authed, id: &str, action: &'static str) -> Result<(), KeystoneError> {
    if !caller.0.is_admin() && caller.0.project_id() != Some(id) {
        return Err(KeystoneError::forbidden(action));
    }
    Ok(())
}

impl Named for Projects {
    const DELETE: &'static str = "identity:delete_project";
    fn scope(row: &ProjectRow) -> &str {
        &row.domain_id
    }
    fn name(row: &ProjectRow) -> &str {
        &row.name
    }
    fn delete_command() -> Command<Self> {
        ProjectCommand::Delete
    }
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
    Ok(kind::list::<Projects>(&req, &view, |p| {
        let parent = if p.parent_id.is_empty() {
            &p.domain_id
        } else {
            &p.parent_id
        };
        name.as_ref().is_none_or(|n| &p.name == n)
            && domain_id.as_ref().is_none_or(|d| &p.domain_id == d)
            && parent_id.as_ref().is_none_or(|d| parent == d)
            && enabled.is_none_or(|e| p.enabled == e)
            && is_domain != Some(true)
    }))
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
        exists::<Domains>(&view, &domain_id)?;
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
    create_named::<Projects>(&identity, &domain_id, &name, &id, cmd, &meta).await?;
    answer::<Projects>(&identity, StatusCode::CREATED, &req, &id)
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
    let current = row::<Projects>(&identity, &id)?;
    same_domain(&mut m, &current.domain_id)?;
    m.remove("parent_id");
    m.remove("is_domain");
    let extra = updated_extra(&current.extra_json, m);
    let meta = rid.metadata(caller.0.principal());
    let new_name = name.clone();
    let cmd = ProjectCommand::Update {
        name,
        description,
        enabled,
        tags,
        extra_json: extra,
    };
    kind::update_named::<Projects>(&identity, &current, &id, new_name.as_deref(), cmd, &meta)
        .await?;
    answer::<Projects>(&identity, StatusCode::OK, &req, &id)
}
