//! `/v3/domains`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::identity::{Domain, DomainCommand};
use strata_projections::identity::{DomainRow, ProjectRow, UserRow};

use super::kind::{self, answer, create_named, delete_named, kind, row, Command, Named};
use super::projects::{Projects, DESCRIPTION_MAX};
use super::users::Users;
use super::util::{
    entity, extra_json, merge_extra, opt_bool, opt_name, opt_str, query, query_bool, req_name,
    self_link, updated_extra,
};
use super::{new_id, Authed, Identity, KeystoneError};
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
            .route(web::get().to(kind::show::<Domains>))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    );
}

/// `/v3/domains`.
pub struct Domains;

kind!(Domains {
    row: DomainRow,
    aggregate: Domain,
    key: "domain",
    collection: "domains",
    table: domains,
    json: domain_json,
    may_read: may_read_domain,
});

/// Admins read any domain; others the domain of their user.
fn may_read_domain(caller: &Authed, id: &str, action: &'static str) -> Result<(), KeystoneError> {
    if !caller.0.is_admin() && caller.0.user_domain_id != id {
        return Err(KeystoneError::forbidden(action));
    }
    Ok(())
}

impl Named for Domains {
    const DELETE: &'static str = "identity:delete_domain";
    /// Domain names are unique across the deployment.
    fn scope(_: &DomainRow) -> &str {
        ""
    }
    fn name(row: &DomainRow) -> &str {
        &row.name
    }
    fn delete_command() -> Command<Self> {
        DomainCommand::Delete
    }
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
    Ok(kind::list::<Domains>(&req, &view, |d| {
        name.as_ref().is_none_or(|n| &d.name == n) && enabled.is_none_or(|e| d.enabled == e)
    }))
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
    create_named::<Domains>(&identity, "", &name, &id, cmd, &meta).await?;
    answer::<Domains>(&identity, StatusCode::CREATED, &req, &id)
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
    let current = row::<Domains>(&identity, &id)?;
    let extra = updated_extra(&current.extra_json, m);
    let meta = rid.metadata(caller.0.principal());
    let new_name = name.clone();
    let cmd = DomainCommand::Update {
        name,
        description,
        enabled,
        extra_json: extra,
    };
    kind::update_named::<Domains>(&identity, &current, &id, new_name.as_deref(), cmd, &meta)
        .await?;
    answer::<Domains>(&identity, StatusCode::OK, &req, &id)
}

/// Deleting a (disabled) domain deletes its projects and users first, as Keystone does.
async fn delete(
    identity: web::Data<Identity>,
    caller: Authed,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin(Domains::DELETE)?;
    let id = path.into_inner();
    let (current, projects, users) = {
        let view = identity.view.snapshot();
        let current = view
            .domains
            .get(&id)
            .cloned()
            .ok_or_else(|| KeystoneError::not_found("domain", &id))?;
        let projects: Vec<ProjectRow> = view
            .projects
            .values()
            .filter(|p| p.domain_id == id)
            .cloned()
            .collect();
        let users: Vec<UserRow> = view
            .users
            .values()
            .filter(|u| u.domain_id == id)
            .cloned()
            .collect();
        (current, projects, users)
    };
    if current.enabled {
        return Err(KeystoneError::forbidden("identity:delete_domain (Cannot delete a domain that is enabled, please disable it first.)"));
    }
    let meta = rid.metadata(caller.0.principal());
    for p in projects {
        delete_named::<Projects>(&identity, &p, &p.id, &meta).await?;
    }
    for u in users {
        delete_named::<Users>(&identity, &u, &u.id, &meta).await?;
    }
    delete_named::<Domains>(&identity, &current, &id, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}
