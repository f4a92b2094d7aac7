//! `/v3/users`, including a user changing its own password and listing its projects.

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::identity::{password, User, UserCommand};
use strata_events::Metadata;
use strata_projections::identity::{Scope, UserRow};

use super::domains::Domains;
use super::kind::{self, answer, create_named, exists, kind, row, run, Command, Named};
use super::projects::{Projects, DESCRIPTION_MAX};
use super::util::{
    collection, entity, extra_json, merge_extra, opt_bool, opt_name, opt_str, query, query_bool,
    req_name, same_domain, self_link, updated_extra,
};
use super::{new_id, Authed, Identity, KeystoneError};
use crate::common::RequestId;

pub const NAME_MAX: usize = 255;
const PASSWORD_MAX: usize = 4096;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v3/users")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v3/users/{id}")
            .route(web::get().to(kind::show::<Users>))
            .route(web::patch().to(update))
            .route(web::delete().to(kind::delete::<Users>)),
    )
    .route("/v3/users/{id}/password", web::post().to(change_password))
    .route("/v3/users/{id}/projects", web::get().to(projects))
    .route("/v3/users/{id}/groups", web::get().to(groups));
}

/// `/v3/users`.
pub struct Users;

kind!(Users {
    row: UserRow,
    aggregate: User,
    key: "user",
    collection: "users",
    table: users,
    json: user_json,
    // A user reads itself; admins any user.
    may_read: self_or_admin,
});

impl Named for Users {
    const DELETE: &'static str = "identity:delete_user";
    fn scope(row: &UserRow) -> &str {
        &row.domain_id
    }
    fn name(row: &UserRow) -> &str {
        &row.name
    }
    fn delete_command() -> Command<Self> {
        UserCommand::Delete
    }
    /// An admin may not delete itself.
    fn may_delete(caller: &Authed, id: &str) -> Result<(), KeystoneError> {
        if id == caller.0.user_id {
            return Err(KeystoneError::forbidden(
                "identity:delete_user (you cannot delete yourself)",
            ));
        }
        Ok(())
    }
}

pub fn user_json(req: &HttpRequest, u: &UserRow) -> Value {
    let mut v = json!({
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "enabled": u.enabled,
        "password_expires_at": null,
        "options": {},
        "links": self_link(req, &format!("users/{}", u.id)),
    });
    for (k, val) in [
        ("description", &u.description),
        ("email", &u.email),
        ("default_project_id", &u.default_project_id),
    ] {
        if !val.is_empty() {
            v[k] = json!(val);
        }
    }
    merge_extra(&mut v, &u.extra_json);
    v
}

fn self_or_admin(caller: &Authed, user_id: &str, action: &str) -> Result<(), KeystoneError> {
    if caller.0.is_admin() || caller.0.user_id == user_id {
        Ok(())
    } else {
        Err(KeystoneError::forbidden(action))
    }
}

async fn hash(plain: String) -> Result<String, KeystoneError> {
    web::block(move || password::hash_password(&plain))
        .await
        .map_err(|_| KeystoneError::internal("password hashing failed"))?
        .map_err(KeystoneError::from)
}

async fn list(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:list_users")?;
    let name = query(&req, "name");
    let domain_id = query(&req, "domain_id");
    let enabled = query_bool(&req, "enabled");
    let view = identity.view.snapshot();
    Ok(kind::list::<Users>(&req, &view, |u| {
        name.as_ref().is_none_or(|n| &u.name == n)
            && domain_id.as_ref().is_none_or(|d| &u.domain_id == d)
            && enabled.is_none_or(|e| u.enabled == e)
    }))
}

async fn create(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:create_user")?;
    let mut m = entity(&body, "user")?;
    let name = req_name(&mut m, "name", NAME_MAX)?;
    let plain = opt_str(&mut m, "password", PASSWORD_MAX)?;
    let enabled = opt_bool(&mut m, "enabled")?.unwrap_or(true);
    let description = opt_str(&mut m, "description", DESCRIPTION_MAX)?.unwrap_or_default();
    let email = opt_str(&mut m, "email", 255)?.unwrap_or_default();
    let default_project_id = opt_str(&mut m, "default_project_id", 64)?.unwrap_or_default();
    let domain_id =
        opt_str(&mut m, "domain_id", 64)?.unwrap_or_else(|| caller.0.user_domain_id.clone());
    {
        let view = identity.view.snapshot();
        exists::<Domains>(&view, &domain_id)?;
        if !default_project_id.is_empty() {
            exists::<Projects>(&view, &default_project_id)?;
        }
    }
    let extra = extra_json(m);
    let password_hash = match plain {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let id = new_id();
    let meta = rid.metadata(caller.0.principal());
    let cmd = UserCommand::Create {
        user_id: id.clone(),
        domain_id: domain_id.clone(),
        name: name.clone(),
        password_hash,
        enabled,
        description,
        email,
        default_project_id,
        extra_json: extra,
    };
    create_named::<Users>(&identity, &domain_id, &name, &id, cmd, &meta).await?;
    answer::<Users>(&identity, StatusCode::CREATED, &req, &id)
}

async fn update(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:update_user")?;
    let id = path.into_inner();
    let mut m = entity(&body, "user")?;
    let name = opt_name(&mut m, "name", NAME_MAX)?;
    let plain = opt_str(&mut m, "password", PASSWORD_MAX)?;
    let enabled = opt_bool(&mut m, "enabled")?;
    let description = opt_str(&mut m, "description", DESCRIPTION_MAX)?;
    let email = opt_str(&mut m, "email", 255)?;
    let default_project_id = opt_str(&mut m, "default_project_id", 64)?;
    let current = row::<Users>(&identity, &id)?;
    same_domain(&mut m, &current.domain_id)?;
    if let Some(p) = default_project_id.as_ref().filter(|p| !p.is_empty()) {
        exists::<Projects>(&identity.view.snapshot(), p)?;
    }
    let extra = updated_extra(&current.extra_json, m);
    let new_hash = match plain {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let meta = rid.metadata(caller.0.principal());
    let new_name = name.clone();
    let cmd = UserCommand::Update {
        name,
        enabled,
        description,
        email,
        default_project_id,
        extra_json: extra,
    };
    kind::update_named::<Users>(&identity, &current, &id, new_name.as_deref(), cmd, &meta).await?;
    if let Some(new_hash) = new_hash {
        set_password(&identity, &id, new_hash, &meta).await?;
    }
    answer::<Users>(&identity, StatusCode::OK, &req, &id)
}

/// `POST /v3/users/{id}/password`: a user changes its own password, proving the old one. Every token the
/// user holds stops working (the projection records when the password changed).
async fn change_password(
    identity: web::Data<Identity>,
    req: HttpRequest,
    rid: RequestId,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    let id = path.into_inner();
    let mut m = entity(&body, "user")?;
    let original = opt_str(&mut m, "original_password", PASSWORD_MAX)?
        .ok_or_else(|| KeystoneError::bad_request("'original_password' is a required property"))?;
    let new = opt_str(&mut m, "password", PASSWORD_MAX)?
        .ok_or_else(|| KeystoneError::bad_request("'password' is a required property"))?;
    // A token, if sent, must be the user's own (Keystone lets users do this without one).
    if req.headers().contains_key("x-auth-token") {
        let caller = Authed::extract(&req).await?;
        if caller.0.user_id != id {
            return Err(KeystoneError::forbidden("identity:change_password"));
        }
    }
    let row = row::<Users>(&identity, &id)?;
    let stored = row.password_hash.clone();
    let ok = web::block(move || password::verify_password(&original, &stored))
        .await
        .map_err(|_| KeystoneError::internal("password check failed"))?;
    if !ok {
        return Err(KeystoneError::unauthorized());
    }
    let new_hash = hash(new).await?;
    let principal = strata_events::Principal {
        user_id: row.id.clone(),
        user_name: row.name.clone(),
        domain_id: row.domain_id.clone(),
        ..Default::default()
    };
    let meta = rid.metadata(principal);
    set_password(&identity, &id, new_hash, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Record a new password hash for user `id` (which also ends the validity of its earlier tokens).
async fn set_password(
    identity: &Identity,
    id: &str,
    new_hash: String,
    meta: &Metadata,
) -> Result<(), KeystoneError> {
    run::<Users>(identity, id, UserCommand::ChangePassword { new_hash }, meta).await
}

async fn projects(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    let id = path.into_inner();
    self_or_admin(&caller, &id, "identity:list_user_projects")?;
    let view = identity.view.snapshot();
    exists::<Users>(&view, &id)?;
    Ok(kind::list::<Projects>(&req, &view, |p| {
        !view
            .direct_roles(&id, &Scope::Project(p.id.clone()))
            .is_empty()
    }))
}

async fn groups(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    let id = path.into_inner();
    self_or_admin(&caller, &id, "identity:list_groups_for_user")?;
    exists::<Users>(&identity.view.snapshot(), &id)?;
    // Groups are not implemented yet: every user belongs to none.
    Ok(collection(&req, "groups", vec![]))
}
