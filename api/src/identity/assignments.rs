//! Role assignments: grant/check/revoke/list on projects and domains, and `GET /v3/role_assignments`.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::identity::{assignment_id, AssignmentCommand, Target};
use strata_projections::identity::{IdentityView, Scope};

use super::domains::Domains;
use super::kind::exists;
use super::projects::Projects;
use super::roles::{role_json, Roles};
use super::users::Users;
use super::util::{collection, query, query_bool};
use super::{Authed, Identity, KeystoneError};
use crate::common::{base_url, RequestId};

pub fn configure(cfg: &mut web::ServiceConfig) {
    for kind in ["projects", "domains"] {
        cfg.route(
            &format!("/v3/{kind}/{{target}}/users/{{user}}/roles"),
            web::get().to(list_on_target),
        )
        .service(
            web::resource(format!(
                "/v3/{kind}/{{target}}/users/{{user}}/roles/{{role}}"
            ))
            .route(web::put().to(change_grant))
            .route(web::head().to(check))
            .route(web::get().to(check))
            .route(web::delete().to(change_grant)),
        );
    }
    cfg.route("/v3/role_assignments", web::get().to(list_assignments));
}

/// The target from the request path: `/v3/projects/...` or `/v3/domains/...`.
fn target_of(req: &HttpRequest, target: String) -> Target {
    if req.path().starts_with("/v3/domains/") {
        Target::Domain(target)
    } else {
        Target::Project(target)
    }
}

fn scope_of(t: &Target) -> Scope {
    match t {
        Target::Project(p) => Scope::Project(p.clone()),
        Target::Domain(d) => Scope::Domain(d.clone()),
    }
}

/// 404 unless the user, the role and the target all exist.
fn check_exists(
    view: &IdentityView,
    user: &str,
    role: Option<&str>,
    target: &Target,
) -> Result<(), KeystoneError> {
    exists::<Users>(view, user)?;
    if let Some(role) = role {
        exists::<Roles>(view, role)?;
    }
    match target {
        Target::Project(p) => exists::<Projects>(view, p),
        Target::Domain(d) => exists::<Domains>(view, d),
    }
}

/// `PUT` grants the role to the user on the target, `DELETE` revokes it: admins only
/// (`identity:create_grant`, `identity:revoke_grant`), 404 unless the user, the role and the target exist.
async fn change_grant(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, KeystoneError> {
    let revoking = req.method() == Method::DELETE;
    caller.require_admin(if revoking {
        "identity:revoke_grant"
    } else {
        "identity:create_grant"
    })?;
    let (target, user, role) = path.into_inner();
    let target = target_of(&req, target);
    check_exists(&identity.view.snapshot(), &user, Some(&role), &target)?;
    let id = assignment_id(&user, &target);
    let cmd = if revoking {
        AssignmentCommand::Revoke {
            user_id: user,
            target,
            role_id: role,
        }
    } else {
        AssignmentCommand::Grant {
            user_id: user,
            target,
            role_id: role,
        }
    };
    identity
        .run(
            &identity.assignments,
            &id,
            cmd,
            &rid.metadata(caller.0.principal()),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn check(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:check_grant")?;
    let (target, user, role) = path.into_inner();
    let target = target_of(&req, target);
    let view = identity.view.snapshot();
    check_exists(&view, &user, Some(&role), &target)?;
    if view.direct_roles(&user, &scope_of(&target)).contains(&role) {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(KeystoneError::not_found(
            "role assignment",
            &format!("role {role} for user {user}"),
        ))
    }
}

async fn list_on_target(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:list_grants")?;
    let (target, user) = path.into_inner();
    let target = target_of(&req, target);
    let view = identity.view.snapshot();
    check_exists(&view, &user, None, &target)?;
    let roles: Vec<Value> = view
        .direct_roles(&user, &scope_of(&target))
        .iter()
        .filter_map(|r| view.roles.get(r))
        .map(|r| role_json(&req, r))
        .collect();
    Ok(collection(&req, "roles", roles))
}

fn domain_ref(view: &IdentityView, id: &str) -> Value {
    json!({ "id": id, "name": view.domains.get(id).map(|d| d.name.clone()).unwrap_or_default() })
}

/// `GET /v3/role_assignments` with Keystone's filters: `user.id`, `scope.project.id`, `scope.domain.id`,
/// `role.id`, `effective` (implied roles expanded), `include_names`. Groups do not exist yet, so a
/// `group.id` filter matches nothing.
async fn list_assignments(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    let user_filter = query(&req, "user.id");
    if !caller.0.is_admin() && user_filter.as_deref() != Some(caller.0.user_id.as_str()) {
        return Err(KeystoneError::forbidden("identity:list_role_assignments"));
    }
    let project_filter = query(&req, "scope.project.id");
    let domain_filter = query(&req, "scope.domain.id");
    let role_filter = query(&req, "role.id");
    let effective = query_bool(&req, "effective") == Some(true);
    let names = query_bool(&req, "include_names") == Some(true);
    let groups_only = query(&req, "group.id").is_some();
    let base = base_url(&req);
    let view = identity.view.snapshot();

    // (user, scope, role, prior role when the role is implied)
    let mut rows: Vec<(String, Scope, String, Option<String>)> = Vec::new();
    for a in view.assignments.iter() {
        rows.push((a.user_id.clone(), a.scope.clone(), a.role_id.clone(), None));
        if effective {
            for implied in view.expand_implied(&[a.role_id.clone()].into_iter().collect()) {
                if implied != a.role_id {
                    rows.push((
                        a.user_id.clone(),
                        a.scope.clone(),
                        implied,
                        Some(a.role_id.clone()),
                    ));
                }
            }
        }
    }
    rows.sort();
    rows.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1 && a.2 == b.2);
    let out: Vec<Value> = rows
        .into_iter()
        .filter(|_| !groups_only)
        .filter(|(u, _, _, _)| user_filter.as_ref().is_none_or(|f| f == u))
        .filter(|(_, s, _, _)| match (&project_filter, &domain_filter, s) {
            (Some(p), _, Scope::Project(sp)) => p == sp,
            (Some(_), _, _) => false,
            (None, Some(d), Scope::Domain(sd)) => d == sd,
            (None, Some(_), _) => false,
            _ => true,
        })
        .filter(|(_, _, r, _)| role_filter.as_ref().is_none_or(|f| f == r))
        .map(|(u, s, r, prior)| {
            let (scope_kind, scope_id) = match &s {
                Scope::Project(p) => ("projects", p.clone()),
                Scope::Domain(d) => ("domains", d.clone()),
            };
            let mut role = json!({ "id": r });
            let mut user = json!({ "id": u });
            let mut scope_obj = json!({ "id": scope_id });
            if names {
                if let Some(row) = view.roles.get(&r) {
                    role["name"] = json!(row.name);
                    if !row.domain_id.is_empty() {
                        role["domain"] = domain_ref(&view, &row.domain_id);
                    }
                }
                if let Some(row) = view.users.get(&u) {
                    user["name"] = json!(row.name);
                    user["domain"] = domain_ref(&view, &row.domain_id);
                }
                match &s {
                    Scope::Project(p) => {
                        if let Some(row) = view.projects.get(p) {
                            scope_obj["name"] = json!(row.name);
                            scope_obj["domain"] = domain_ref(&view, &row.domain_id);
                        }
                    }
                    Scope::Domain(d) => {
                        if let Some(row) = view.domains.get(d) {
                            scope_obj["name"] = json!(row.name);
                        }
                    }
                }
            }
            let scope = match &s {
                Scope::Project(_) => json!({ "project": scope_obj }),
                Scope::Domain(_) => json!({ "domain": scope_obj }),
            };
            let granted = prior.as_deref().unwrap_or(&r);
            let mut links = json!({ "assignment": format!("{base}/v3/{scope_kind}/{scope_id}/users/{u}/roles/{granted}") });
            if let Some(p) = &prior {
                links["prior_role"] = json!(format!("{base}/v3/roles/{p}"));
            }
            json!({ "role": role, "user": user, "scope": scope, "links": links })
        })
        .collect();
    Ok(collection(&req, "role_assignments", out))
}
