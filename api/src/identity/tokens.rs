//! `/v3/auth/*`: issuing, validating and revoking tokens; the caller's projects, domains and catalog.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use strata_actors::identity::RevocationCommand;
use strata_projections::identity::{IdentityView, Scope, UserRow};

use super::domains::Domains;
use super::kind;
use super::projects::Projects;
use super::util::{collection, entity, query_bool};
use super::{Authed, Identity, KeystoneError};
use crate::auth::{self, AuthContext, Claims, TokenScope};
use crate::common::RequestId;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(versions))
        .route("/v3", web::get().to(version_v3))
        .route("/v3/", web::get().to(version_v3))
        .service(
            web::resource("/v3/auth/tokens")
                .route(web::post().to(issue))
                .route(web::get().to(check))
                .route(web::head().to(check_head))
                .route(web::delete().to(revoke)),
        )
        .route("/v3/auth/projects", web::get().to(auth_projects))
        .route("/v3/auth/domains", web::get().to(auth_domains))
        .route("/v3/auth/catalog", web::get().to(auth_catalog))
        .route("/v3/auth/system", web::get().to(auth_system));
}

fn v3_description(req: &HttpRequest) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{ "rel": "self", "href": format!("{}/v3/", crate::common::base_url(req)) }],
        "media-types": [{ "base": "application/json", "type": "application/vnd.openstack.identity-v3+json" }]
    })
}

async fn versions(req: HttpRequest) -> HttpResponse {
    HttpResponse::MultipleChoices()
        .json(json!({ "versions": { "values": [v3_description(&req)] } }))
}

async fn version_v3(req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "version": v3_description(&req) }))
}

fn ts(us: i64) -> String {
    auth::micros_to_time(us).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The service catalog as Keystone puts it in tokens and `/v3/auth/catalog`: endpoint URL templates get
/// the scope's project id in place of `%(project_id)s` / `%(tenant_id)s`; endpoints whose template needs a
/// project are left out of catalogs without one.
pub fn catalog(view: &IdentityView, project_id: Option<&str>) -> Vec<Value> {
    view.services
        .values()
        .filter(|s| s.enabled)
        .map(|s| {
            let endpoints: Vec<Value> = view
                .endpoints
                .values()
                .filter(|e| e.enabled && e.service_id == s.id)
                .filter_map(|e| {
                    let url = fill_url_template(&e.url, project_id)?;
                    Some(json!({ "id": e.id, "interface": e.interface, "region": e.region_id, "region_id": e.region_id, "url": url }))
                })
                .collect();
            json!({ "id": s.id, "type": s.service_type, "name": s.name, "endpoints": endpoints })
        })
        .collect()
}

/// An endpoint URL with the project id substituted; `None` when it needs one and there is none.
fn fill_url_template(url: &str, project_id: Option<&str>) -> Option<String> {
    if !url.contains("%(project_id)s") && !url.contains("%(tenant_id)s") {
        return Some(url.to_string());
    }
    let p = project_id?;
    Some(url.replace("%(project_id)s", p).replace("%(tenant_id)s", p))
}

fn token_body(view: &IdentityView, ctx: &AuthContext, with_catalog: bool) -> Value {
    let mut t = Map::new();
    t.insert("methods".into(), json!(ctx.claims.m));
    t.insert(
        "user".into(),
        json!({
            "id": ctx.user_id,
            "name": ctx.user_name,
            "domain": { "id": ctx.user_domain_id, "name": ctx.user_domain_name },
            "password_expires_at": null
        }),
    );
    t.insert("audit_ids".into(), json!([ctx.claims.a]));
    t.insert("issued_at".into(), json!(ts(ctx.claims.i)));
    t.insert("expires_at".into(), json!(ts(ctx.claims.e)));
    match &ctx.scope {
        TokenScope::Project {
            id,
            name,
            domain_id,
            domain_name,
        } => {
            t.insert("project".into(), json!({ "id": id, "name": name, "domain": { "id": domain_id, "name": domain_name } }));
            t.insert("is_domain".into(), json!(false));
        }
        TokenScope::Domain { id, name } => {
            t.insert("domain".into(), json!({ "id": id, "name": name }));
        }
        TokenScope::Unscoped => {}
    }
    if ctx.scope != TokenScope::Unscoped {
        let roles: Vec<Value> = ctx
            .roles
            .iter()
            .map(|(id, name)| json!({ "id": id, "name": name }))
            .collect();
        t.insert("roles".into(), json!(roles));
        if with_catalog {
            t.insert("catalog".into(), json!(catalog(view, ctx.project_id())));
        }
    }
    json!({ "token": Value::Object(t) })
}

fn bad(msg: &str) -> KeystoneError {
    KeystoneError::bad_request(msg.to_string())
}

fn obj<'a>(v: &'a Value, field: &str) -> Result<Option<&'a Map<String, Value>>, KeystoneError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(bad(&format!(
            "Invalid input for field '{field}': not an object."
        ))),
    }
}

fn s<'a>(m: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, KeystoneError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(&format!(
            "Invalid input for field '{field}': not a string."
        ))),
    }
}

/// A `{"id": ...}` or `{"name": ...}` domain reference.
fn find_domain(view: &IdentityView, m: &Map<String, Value>) -> Result<String, KeystoneError> {
    if let Some(id) = s(m, "id")? {
        return view
            .domains
            .get(id)
            .map(|d| d.id.clone())
            .ok_or_else(KeystoneError::unauthorized);
    }
    if let Some(name) = s(m, "name")? {
        return view
            .domain_by_name(name)
            .map(|d| d.id.clone())
            .ok_or_else(KeystoneError::unauthorized);
    }
    Err(bad("Expecting to find domain id or name in the request."))
}

fn find_user<'a>(
    view: &'a IdentityView,
    m: &Map<String, Value>,
) -> Result<&'a UserRow, KeystoneError> {
    if let Some(id) = s(m, "id")? {
        return view.users.get(id).ok_or_else(KeystoneError::unauthorized);
    }
    let name =
        s(m, "name")?.ok_or_else(|| bad("Expecting to find user id or name in the request."))?;
    let domain = obj(&Value::Object(m.clone()), "domain")?
        .ok_or_else(|| bad("Expecting to find domain in user. The server could not comply with the request since it is either malformed or otherwise incorrect."))?
        .clone();
    let domain_id = find_domain(view, &domain)?;
    view.user_by_name(&domain_id, name)
        .ok_or_else(KeystoneError::unauthorized)
}

/// The requested scope as a claims string. An unknown target is 401, as in Keystone.
fn requested_scope(view: &IdentityView, auth: &Value) -> Result<String, KeystoneError> {
    let Some(scope) = obj(auth, "scope")? else {
        return Ok(String::new());
    };
    let scope = Value::Object(scope.clone());
    if let Some(p) = obj(&scope, "project")? {
        if let Some(id) = s(p, "id")? {
            return view
                .projects
                .get(id)
                .map(|p| format!("p:{}", p.id))
                .ok_or_else(KeystoneError::unauthorized);
        }
        let name = s(p, "name")?
            .ok_or_else(|| bad("Expecting to find project id or name in the request."))?;
        let domain = obj(&Value::Object(p.clone()), "domain")?
            .ok_or_else(|| bad("Expecting to find domain in project."))?
            .clone();
        let domain_id = find_domain(view, &domain)?;
        return view
            .project_by_name(&domain_id, name)
            .map(|p| format!("p:{}", p.id))
            .ok_or_else(KeystoneError::unauthorized);
    }
    if let Some(d) = obj(&scope, "domain")? {
        return Ok(format!("d:{}", find_domain(view, d)?));
    }
    if scope.get("system").is_some() {
        return Err(KeystoneError::new(
            StatusCode::NOT_IMPLEMENTED,
            "System-scoped tokens are not supported.",
        ));
    }
    Err(bad("Expecting to find project or domain in scope."))
}

async fn issue(
    identity: web::Data<Identity>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    let auth_obj = Value::Object(entity(&body, "auth")?);
    let ident = obj(&auth_obj, "identity")?
        .ok_or_else(|| bad("'identity' is a required property"))?
        .clone();
    let methods: Vec<String> = match ident.get("methods") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect(),
        _ => return Err(bad("'methods' is a required property")),
    };
    let ident = Value::Object(ident);
    let now = Utc::now().timestamp_micros();
    // Decide who is authenticating and with what expiry, while holding the view briefly.
    let (user_id, password_check, max_exp) = {
        let view = identity.view.snapshot();
        if methods.iter().any(|m| m == "password") {
            let pw =
                obj(&ident, "password")?.ok_or_else(|| bad("'password' is a required property"))?;
            let pw = Value::Object(pw.clone());
            let user = obj(&pw, "user")?.ok_or_else(|| bad("'user' is a required property"))?;
            let password = s(user, "password")?
                .ok_or_else(KeystoneError::unauthorized)?
                .to_string();
            let row = find_user(&view, user)?;
            (
                row.id.clone(),
                Some((password, row.password_hash.clone())),
                None,
            )
        } else if methods.iter().any(|m| m == "token") {
            let t = obj(&ident, "token")?.ok_or_else(|| bad("'token' is a required property"))?;
            let id = s(t, "id")?.ok_or_else(|| bad("'id' is a required property"))?;
            let ctx = auth::validate(&identity.tokens, &view, id)?;
            (ctx.user_id, None, Some(ctx.claims.e))
        } else {
            return Err(KeystoneError::unauthorized());
        }
    };
    if let Some((password, hash)) = password_check {
        let ok = identity
            .passwords
            .verify(&user_id, &password, &hash)
            .await?;
        if !ok {
            tracing::info!(user_id, "authentication failed: wrong password");
            return Err(KeystoneError::unauthorized());
        }
    }
    let view = identity.view.snapshot();
    let scope = requested_scope(&view, &auth_obj)?;
    let exp = (now
        + identity
            .tokens
            .ttl
            .num_microseconds()
            .unwrap_or(3_600_000_000))
    .min(max_exp.unwrap_or(i64::MAX));
    let claims = Claims {
        u: user_id,
        s: scope,
        i: now,
        e: exp,
        a: audit_id(),
        m: methods,
    };
    let token = identity.tokens.issue(&claims);
    let ctx = auth::validate(&identity.tokens, &view, &token)?;
    let body = token_body(&view, &ctx, query_bool(&req, "nocatalog") != Some(true));
    Ok(HttpResponse::Created()
        .insert_header(("X-Subject-Token", token))
        .json(body))
}

fn audit_id() -> String {
    use base64::Engine;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn subject(req: &HttpRequest) -> Result<String, KeystoneError> {
    req.headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| bad("X-Subject-Token is required."))
}

/// The caller may inspect or revoke its own token; admins any token.
fn subject_context(
    identity: &Identity,
    caller: &Authed,
    req: &HttpRequest,
) -> Result<AuthContext, KeystoneError> {
    let subject = subject(req)?;
    let view = identity.view.snapshot();
    let ctx = auth::validate(&identity.tokens, &view, &subject)
        .map_err(|_| KeystoneError::not_found("token", "the token is invalid or expired"))?;
    if !caller.0.is_admin() && ctx.user_id != caller.0.user_id {
        return Err(KeystoneError::forbidden("identity:validate_token"));
    }
    Ok(ctx)
}

async fn check(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    let ctx = subject_context(&identity, &caller, &req)?;
    let view = identity.view.snapshot();
    let body = token_body(&view, &ctx, query_bool(&req, "nocatalog") != Some(true));
    Ok(HttpResponse::Ok()
        .insert_header(("X-Subject-Token", ctx.token.clone()))
        .json(body))
}

async fn check_head(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    subject_context(&identity, &caller, &req)?;
    Ok(HttpResponse::Ok().finish())
}

async fn revoke(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
) -> Result<HttpResponse, KeystoneError> {
    let ctx = subject_context(&identity, &caller, &req)?;
    let cmd = RevocationCommand::Revoke {
        audit_id: ctx.claims.a.clone(),
        expires_at_micros: ctx.claims.e,
    };
    identity
        .run(
            &identity.revocations,
            &ctx.claims.a,
            cmd,
            &rid.metadata(caller.0.principal()),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Whether the caller holds a role (granted, not implied) on `scope`.
fn has_roles(view: &IdentityView, caller: &Authed, scope: Scope) -> bool {
    !view.direct_roles(&caller.0.user_id, &scope).is_empty()
}

async fn auth_projects(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> HttpResponse {
    let view = identity.view.snapshot();
    kind::list::<Projects>(&req, &view, |p| {
        p.enabled && has_roles(&view, &caller, Scope::Project(p.id.clone()))
    })
}

async fn auth_domains(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> HttpResponse {
    let view = identity.view.snapshot();
    kind::list::<Domains>(&req, &view, |d| {
        d.enabled && has_roles(&view, &caller, Scope::Domain(d.id.clone()))
    })
}

async fn auth_catalog(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    if caller.0.scope == TokenScope::Unscoped {
        return Err(KeystoneError::forbidden(
            "identity:get_auth_catalog (an unscoped token has no catalog)",
        ));
    }
    let view = identity.view.snapshot();
    let entries = catalog(&view, caller.0.project_id());
    Ok(collection(&req, "catalog", entries))
}

async fn auth_system(_caller: Authed, req: HttpRequest) -> HttpResponse {
    collection(&req, "system", vec![])
}
