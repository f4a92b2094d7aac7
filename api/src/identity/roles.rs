//! `/v3/roles`, implied roles and `/v3/role_inferences`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::identity::{Role, RoleCommand};
use strata_projections::identity::{IdentityView, RoleRow};

use super::kind::{self, answer, create_named, kind, row, run, Command, Named};
use super::util::{collection, entity, opt_name, opt_str, query, req_name, self_link};
use super::{new_id, Authed, Identity, KeystoneError};
use crate::common::RequestId;

const NAME_MAX: usize = 255;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v3/roles")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v3/roles/{id}")
            .route(web::get().to(kind::show::<Roles>))
            .route(web::patch().to(update))
            .route(web::delete().to(kind::delete::<Roles>)),
    )
    .route("/v3/roles/{prior}/implies", web::get().to(list_implied))
    .service(
        web::resource("/v3/roles/{prior}/implies/{implied}")
            .route(web::put().to(add_implied))
            .route(web::get().to(get_implied))
            .route(web::head().to(check_implied))
            .route(web::delete().to(remove_implied)),
    )
    .route("/v3/role_inferences", web::get().to(inferences));
}

/// `/v3/roles`.
pub struct Roles;

kind!(Roles {
    row: RoleRow,
    aggregate: Role,
    key: "role",
    collection: "roles",
    table: roles,
    json: role_json,
});

impl Named for Roles {
    const DELETE: &'static str = "identity:delete_role";
    /// Global roles (no domain) share one scope; domain-specific roles are unique in their domain.
    fn scope(row: &RoleRow) -> &str {
        &row.domain_id
    }
    fn name(row: &RoleRow) -> &str {
        &row.name
    }
    fn delete_command() -> Command<Self> {
        RoleCommand::Delete
    }
}

pub fn role_json(req: &HttpRequest, r: &RoleRow) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "domain_id": if r.domain_id.is_empty() { Value::Null } else { json!(r.domain_id) },
        "description": r.description,
        "options": {},
        "links": self_link(req, &format!("roles/{}", r.id)),
    })
}

fn role_ref(req: &HttpRequest, r: &RoleRow) -> Value {
    json!({ "id": r.id, "name": r.name, "links": self_link(req, &format!("roles/{}", r.id)) })
}

async fn list(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:list_roles")?;
    let name = query(&req, "name");
    let domain_id = query(&req, "domain_id").unwrap_or_default();
    let view = identity.view.snapshot();
    Ok(kind::list::<Roles>(&req, &view, |r| {
        name.as_ref().is_none_or(|n| &r.name == n) && r.domain_id == domain_id
    }))
}

async fn create(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:create_role")?;
    let mut m = entity(&body, "role")?;
    let name = req_name(&mut m, "name", NAME_MAX)?;
    let description = opt_str(&mut m, "description", 255)?.unwrap_or_default();
    let domain_id = opt_str(&mut m, "domain_id", 64)?.unwrap_or_default();
    if !domain_id.is_empty() && !identity.view.snapshot().domains.contains_key(&domain_id) {
        return Err(KeystoneError::not_found("domain", &domain_id));
    }
    let id = new_id();
    let meta = rid.metadata(caller.0.principal());
    let cmd = RoleCommand::Create {
        role_id: id.clone(),
        name: name.clone(),
        domain_id: domain_id.clone(),
        description,
    };
    create_named::<Roles>(&identity, &domain_id, &name, &id, cmd, &meta).await?;
    answer::<Roles>(&identity, StatusCode::CREATED, &req, &id)
}

async fn update(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:update_role")?;
    let id = path.into_inner();
    let mut m = entity(&body, "role")?;
    let name = opt_name(&mut m, "name", NAME_MAX)?;
    let description = opt_str(&mut m, "description", 255)?;
    let current = row::<Roles>(&identity, &id)?;
    let meta = rid.metadata(caller.0.principal());
    let new_name = name.clone();
    let cmd = RoleCommand::Update { name, description };
    kind::update_named::<Roles>(&identity, &current, &id, new_name.as_deref(), cmd, &meta).await?;
    answer::<Roles>(&identity, StatusCode::OK, &req, &id)
}

fn pair(
    view: &IdentityView,
    prior: &str,
    implied: &str,
) -> Result<(RoleRow, RoleRow), KeystoneError> {
    let role = |id: &str| {
        view.roles
            .get(id)
            .cloned()
            .ok_or_else(|| KeystoneError::not_found("role", id))
    };
    Ok((role(prior)?, role(implied)?))
}

/// The two roles of an existing implication `prior` implies `implied`; 404 for either role or the rule.
fn implication(
    view: &IdentityView,
    prior: &str,
    implied: &str,
) -> Result<(RoleRow, RoleRow), KeystoneError> {
    let (p, i) = pair(view, prior, implied)?;
    if !p.implies.contains(implied) {
        return Err(KeystoneError::not_found(
            "implied role",
            &format!("{prior} implies {implied}"),
        ));
    }
    Ok((p, i))
}

fn inference_json(req: &HttpRequest, prior: &RoleRow, implied: &RoleRow) -> Value {
    json!({
        "role_inference": { "prior_role": role_ref(req, prior), "implies": role_ref(req, implied) },
        "links": self_link(req, &format!("roles/{}/implies/{}", prior.id, implied.id)),
    })
}

async fn add_implied(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:create_implied_role")?;
    let (prior, implied) = path.into_inner();
    let (p, i) = pair(&identity.view.snapshot(), &prior, &implied)?;
    if identity
        .view
        .snapshot()
        .expand_implied(&[implied.clone()].into_iter().collect())
        .contains(&prior)
    {
        return Err(KeystoneError::forbidden(
            "identity:create_implied_role (this would create a cycle of implied roles)",
        ));
    }
    let meta = rid.metadata(caller.0.principal());
    let cmd = RoleCommand::AddImplication {
        implied_role_id: implied,
    };
    run::<Roles>(&identity, &prior, cmd, &meta).await?;
    Ok(HttpResponse::Created().json(inference_json(&req, &p, &i)))
}

async fn get_implied(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:get_implied_role")?;
    let (prior, implied) = path.into_inner();
    let (p, i) = implication(&identity.view.snapshot(), &prior, &implied)?;
    Ok(HttpResponse::Ok().json(inference_json(&req, &p, &i)))
}

async fn check_implied(
    identity: web::Data<Identity>,
    caller: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:check_implied_role")?;
    let (prior, implied) = path.into_inner();
    implication(&identity.view.snapshot(), &prior, &implied)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn remove_implied(
    identity: web::Data<Identity>,
    caller: Authed,
    rid: RequestId,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:delete_implied_role")?;
    let (prior, implied) = path.into_inner();
    pair(&identity.view.snapshot(), &prior, &implied)?;
    let meta = rid.metadata(caller.0.principal());
    let cmd = RoleCommand::RemoveImplication {
        implied_role_id: implied,
    };
    run::<Roles>(&identity, &prior, cmd, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

fn inference_list(req: &HttpRequest, view: &IdentityView, prior: &RoleRow) -> Value {
    let implies: Vec<Value> = prior
        .implies
        .iter()
        .filter_map(|i| view.roles.get(i))
        .map(|r| role_ref(req, r))
        .collect();
    json!({ "prior_role": role_ref(req, prior), "implies": implies })
}

async fn list_implied(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:list_implied_roles")?;
    let prior = path.into_inner();
    let view = identity.view.snapshot();
    let p = view
        .roles
        .get(&prior)
        .ok_or_else(|| KeystoneError::not_found("role", &prior))?;
    Ok(HttpResponse::Ok().json(json!({
        "role_inference": inference_list(&req, &view, p),
        "links": self_link(&req, &format!("roles/{prior}/implies")),
    })))
}

async fn inferences(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:list_role_inference_rules")?;
    let view = identity.view.snapshot();
    let rules: Vec<Value> = view
        .roles
        .values()
        .filter(|r| !r.implies.is_empty())
        .map(|r| inference_list(&req, &view, r))
        .collect();
    Ok(collection(&req, "role_inferences", rules))
}
