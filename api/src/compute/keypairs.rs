//! `/v2.1/os-keypairs`: import, list, show, delete. Keypairs belong to the calling user (admins may name
//! another user with `user_id`, 2.10+).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::compute::quota::UsageCommand;
use strata_actors::compute::{keypair_id, ssh, KeypairCommand};
use strata_projections::compute::KeypairRow;

use super::{Caller, Compute, Microversion, NovaError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.1/os-keypairs")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v2.1/os-keypairs/{name}")
            .route(web::get().to(show))
            .route(web::delete().to(delete)),
    );
}

fn keypair_json(k: &KeypairRow, mv: Microversion, full: bool) -> Value {
    let mut v = json!({ "name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint });
    if mv.0 >= 2 {
        v["type"] = json!(k.key_type);
    }
    if full {
        v["user_id"] = json!(k.user_id);
        v["created_at"] = json!(k.created_at);
        v["deleted"] = json!(false);
        v["deleted_at"] = Value::Null;
        v["updated_at"] = Value::Null;
        v["id"] = json!(1);
    }
    v
}

/// The user whose keypairs a request is about: the caller, or (admins, 2.10+) `?user_id=`.
fn target_user(caller: &Caller, req: &HttpRequest, mv: Microversion) -> Result<String, NovaError> {
    match crate::common::query_pairs(req)
        .into_iter()
        .find(|(k, _)| k == "user_id")
        .map(|(_, v)| v)
    {
        Some(u) if mv.0 >= 10 && (caller.is_admin || u == caller.auth.user_id) => Ok(u),
        Some(_) if mv.0 >= 10 => Err(NovaError::policy("os_compute_api:os-keypairs:index")),
        _ => Ok(caller.auth.user_id.clone()),
    }
}

fn find(compute: &Compute, user: &str, name: &str) -> Result<KeypairRow, NovaError> {
    compute
        .view
        .snapshot()
        .keypairs_of(user)
        .find(|k| k.name == name)
        .cloned()
        .ok_or_else(|| NovaError::not_found(format!("Keypair {name} not found for user {user}")))
}

async fn list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    let user = target_user(&caller, &req, mv)?;
    let view = compute.view.snapshot();
    let keypairs: Vec<Value> = view
        .keypairs_of(&user)
        .map(|k| json!({ "keypair": keypair_json(k, mv, false) }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "keypairs": keypairs })))
}

async fn show(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let user = target_user(&caller, &req, mv)?;
    let k = find(&compute, &user, &path.into_inner())?;
    Ok(HttpResponse::Ok().json(json!({ "keypair": keypair_json(&k, mv, true) })))
}

async fn create(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    let v = super::common::parse_json(&body)?;
    let kp = v
        .get("keypair")
        .and_then(Value::as_object)
        .ok_or_else(|| NovaError::bad_request("'keypair' is a required property"))?;
    let name = kp
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            NovaError::bad_request(
                "Invalid input for field/attribute keypair. 'name' is a required property",
            )
        })?
        .to_string();
    check_name(&name)?;
    let key_type = match kp.get("type") {
        Some(_) if mv.0 < 2 => {
            return Err(NovaError::bad_request(
                "Additional properties are not allowed ('type' was unexpected)",
            ))
        }
        Some(Value::String(t)) if t == "ssh" || t == "x509" => t.clone(),
        Some(other) => {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute type. Value: {other}."
            )))
        }
        None => "ssh".to_string(),
    };
    let user = match kp.get("user_id").and_then(Value::as_str) {
        Some(u) if mv.0 >= 10 && caller.is_admin => u.to_string(),
        Some(_) if mv.0 >= 10 => {
            return Err(NovaError::policy("os_compute_api:os-keypairs:create"))
        }
        _ => caller.auth.user_id.clone(),
    };
    // Without a public key Nova generates the pair and returns the private half once (until 2.92, which this
    // server does not reach). Strata generates ed25519 keys.
    let (public_key, private_key) = match kp.get("public_key").and_then(Value::as_str) {
        Some(k) => (k.trim().to_string(), None),
        None => {
            let comment = name.clone();
            let (private, public) = web::block(move || ssh::generate_ed25519(&comment))
                .await
                .map_err(|_| {
                    NovaError::new(StatusCode::INTERNAL_SERVER_ERROR, "key generation failed")
                })??;
            (public, Some(private))
        }
    };
    let fingerprint = ssh::fingerprint(&public_key)?;
    let id = keypair_id(&user, &name);
    let cmd = KeypairCommand::Create {
        user_id: user.clone(),
        name: name.clone(),
        key_type,
        public_key,
        fingerprint,
    };
    // The key_pairs quota counts the user's keypairs: a counted holder on the user's `keypairs.<user>` usage
    // stream, taken with the expected version, so concurrent imports cannot both take the last slot.
    let limit = compute
        .limits(&caller.project_id)
        .get("key_pairs")
        .copied()
        .unwrap_or(-1);
    let quota_stream = format!("keypairs.{user}");
    let holder = format!("keypair:{}", keypair_id(&user, &name));
    compute
        .usage
        .execute(
            &quota_stream,
            UsageCommand::Count {
                holder: holder.clone(),
                resource: "key_pairs".into(),
                scope: user.clone(),
                limit,
            },
            caller.meta.clone(),
        )
        .await?;
    let created = compute.run(&compute.keypairs, &id, cmd, &caller.meta).await;
    if let Err(e) = created {
        let e = NovaError::from(e);
        if e.status == StatusCode::CONFLICT {
            // The existing keypair keeps its (same) holder.
            return Err(NovaError::conflict(format!(
                "Key pair '{name}' already exists."
            )));
        }
        super::usage::release_counted(&compute, &quota_stream, &holder, &caller).await;
        return Err(e);
    }
    let k = find(&compute, &user, &name)?;
    let status = if mv.0 >= 2 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut body = keypair_json(&k, mv, false);
    body["user_id"] = json!(k.user_id);
    if let Some(private) = private_key {
        body["private_key"] = json!(private);
    }
    Ok(HttpResponse::build(status).json(json!({ "keypair": body })))
}

async fn delete(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let user = target_user(&caller, &req, mv)?;
    let name = path.into_inner();
    find(&compute, &user, &name)?;
    compute
        .run(
            &compute.keypairs,
            &keypair_id(&user, &name),
            KeypairCommand::Delete,
            &caller.meta,
        )
        .await?;
    let holder = format!("keypair:{}", keypair_id(&user, &name));
    super::usage::release_counted(&compute, &format!("keypairs.{user}"), &holder, &caller).await;
    Ok(if mv.0 >= 2 {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::Accepted().finish()
    })
}

/// Nova's schema for keypair names (2.1 to 2.91): 1 to 255 of `[_- a-zA-Z0-9]`, no space at either end.
/// Checked before the name becomes part of the keypair's stream id.
fn check_name(name: &str) -> Result<(), NovaError> {
    let invalid = |why: String| {
        NovaError::bad_request(format!(
            "Invalid input for field/attribute name. Value: {name}. {why}"
        ))
    };
    if name.is_empty() {
        return Err(invalid(format!("'{name}' is too short")));
    }
    if name.chars().count() > 255 {
        return Err(invalid(format!("'{name}' is too long")));
    }
    if name.trim() != name {
        return Err(invalid(format!("'{name}' is not a 'name'")));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
    {
        return Err(invalid(format!(
            "'{name}' does not match '^[_\\- a-zA-Z0-9]+$'"
        )));
    }
    Ok(())
}
