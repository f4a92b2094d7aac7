//! `/v3/types`: volume types (admins write them; names unique through the identity `NameClaim`, kind
//! "volume_type"), their extra specs, private types' access lists, and the default type.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::volume::VolumeTypeCommand;
use strata_projections::volume::VolumeTypeRow;

use super::{
    body_object, metadata_filter, param, parse_bool, parse_json, query_value, resource, Caller,
    CinderError, Volumes, DEFAULT_TYPE_ID, DEFAULT_TYPE_NAME,
};
use crate::identity::Identity;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/types")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(resource("/types/default").route(web::get().to(show_default)))
    .service(
        resource("/types/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .service(
        resource("/types/{id}/extra_specs")
            .route(web::get().to(specs_list))
            .route(web::post().to(specs_set)),
    )
    .service(
        resource("/types/{id}/extra_specs/{key}")
            .route(web::get().to(spec_show))
            .route(web::put().to(spec_put))
            .route(web::delete().to(spec_delete)),
    )
    .service(resource("/types/{id}/action").route(web::post().to(action)))
    .service(resource("/types/{id}/os-volume-type-access").route(web::get().to(access_list)));
}

pub(super) fn type_json(t: &VolumeTypeRow, _admin: bool) -> Value {
    let s = &t.state;
    json!({
        "id": t.id,
        "name": s.name,
        "description": super::nullable(&s.description),
        "is_public": s.is_public,
        "os-volume-type-access:is_public": s.is_public,
        "extra_specs": s.extra_specs,
        "qos_specs_id": Value::Null,
    })
}

/// An admin-only action of Cinder's policy table.
fn admin(caller: &Caller, action: &str) -> Result<(), CinderError> {
    caller.enforce(action)
}

/// The type `id` if `caller` may see it (404 otherwise).
fn visible(vols: &Volumes, caller: &Caller, id: &str) -> Result<VolumeTypeRow, CinderError> {
    vols.all_types()
        .into_iter()
        .find(|t| t.id == id)
        .filter(|t| {
            caller.is_admin || t.state.is_public || t.state.access.contains(&caller.project_id)
        })
        .ok_or_else(|| CinderError::type_not_found(id))
}

/// Make sure the default type is recorded before writing to it.
async fn materialize(
    vols: &Volumes,
    identity: &Identity,
    caller: &Caller,
    id: &str,
) -> Result<(), CinderError> {
    if id == DEFAULT_TYPE_ID {
        vols.default_type(identity, &caller.meta).await?;
    }
    Ok(())
}

fn in_use(vols: &Volumes, id: &str) -> bool {
    let view = vols.view.snapshot();
    view.volumes.values().any(|v| v.state.volume_type_id == id)
}

async fn list(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    let q = crate::common::query_pairs(&req);
    let get = |k: &str| query_value(&q, k);
    // Admins choose: public (default), private (`false`) or all (`None`); everyone else sees the public
    // types and the private ones shared with their project.
    let is_public: Option<bool> = match get("is_public") {
        _ if !caller.is_admin => Some(true),
        None => Some(true),
        Some(v) if v.eq_ignore_ascii_case("none") => None,
        Some(v) => Some(parse_bool(&json!(v), "is_public")?),
    };
    let specs = get("extra_specs").map(metadata_filter).transpose()?;
    let mut rows: Vec<VolumeTypeRow> = vols
        .all_types()
        .into_iter()
        .filter(|t| match is_public {
            None => true,
            Some(true) => t.state.is_public || t.state.access.contains(&caller.project_id),
            Some(false) => !t.state.is_public,
        })
        .filter(|t| {
            specs
                .as_ref()
                .is_none_or(|s| s.iter().all(|(k, v)| t.state.extra_specs.get(k) == Some(v)))
        })
        .collect();
    rows.sort_by(|a, b| a.state.name.cmp(&b.state.name));
    let types: Vec<Value> = rows.iter().map(|t| type_json(t, caller.is_admin)).collect();
    Ok(HttpResponse::Ok().json(json!({ "volume_types": types })))
}

async fn show(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    let t = visible(&vols, &caller, &param(&req, "id"))?;
    Ok(HttpResponse::Ok().json(json!({ "volume_type": type_json(&t, caller.is_admin) })))
}

async fn show_default(
    vols: web::Data<Volumes>,
    caller: Caller,
) -> Result<HttpResponse, CinderError> {
    let t = vols
        .visible_type(&caller, DEFAULT_TYPE_NAME)
        .ok_or_else(|| CinderError::not_found("Default volume type can not be found."))?;
    Ok(HttpResponse::Ok().json(json!({ "volume_type": type_json(&t, caller.is_admin) })))
}

fn name_field(m: &Map<String, Value>, required: bool) -> Result<Option<String>, CinderError> {
    match m.get("name") {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 255 => {
            Ok(Some(s.trim().to_string()))
        }
        Some(Value::String(s)) if s.trim().is_empty() => Err(CinderError::bad_request(
            "Volume type name can not be empty.",
        )),
        other => Err(CinderError::bad_request(format!(
            "Invalid input for field/attribute name. Value: {}. 'name' must be a string of 1 to 255 characters",
            other.cloned().unwrap_or(Value::Null)
        ))),
    }
}

fn description_field(m: &Map<String, Value>) -> Result<Option<String>, CinderError> {
    match m.get("description") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(String::new())),
        Some(Value::String(s)) if s.chars().count() <= 255 => Ok(Some(s.clone())),
        Some(other) => Err(CinderError::bad_request(format!(
            "Invalid input for field/attribute description. Value: {other}. 'description' must be a string of at most 255 characters"
        ))),
    }
}

/// Extra specs: string keys to strings (numbers and booleans are taken as their text).
fn specs_map(v: &Value) -> Result<BTreeMap<String, String>, CinderError> {
    let m = v.as_object().ok_or_else(|| {
        CinderError::bad_request(format!(
            "Invalid input for field/attribute extra_specs. Value: {v}. is not of type 'object'"
        ))
    })?;
    m.iter()
        .map(|(k, val)| {
            if k.is_empty() || k.chars().count() > 255 {
                return Err(CinderError::bad_request(format!(
                    "Invalid input for field/attribute extra_specs. Key '{k}' must be 1 to 255 characters"
                )));
            }
            let s = match val {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(CinderError::bad_request(format!(
                        "Invalid input for field/attribute extra_specs. Value: {other}. is not a string"
                    )))
                }
            };
            if s.chars().count() > 255 {
                return Err(CinderError::bad_request(format!(
                    "Invalid input for field/attribute extra_specs. The value of {k} is longer than 255 characters"
                )));
            }
            Ok((k.clone(), s))
        })
        .collect()
}

/// Cinder's 409 for a volume type name another type has.
fn name_taken(name: &str) -> CinderError {
    CinderError::conflict(format!("Volume Type {name} already exists."))
}

/// Claim `name` for the volume type `id` (identity's `NameClaim`, kind "volume_type", keeps type names
/// unique): [`name_taken`] when another type holds it.
async fn claim_name(
    identity: &Identity,
    caller: &Caller,
    name: &str,
    id: &str,
) -> Result<(), CinderError> {
    identity
        .claim_name("volume_type", "", name, id, &caller.meta)
        .await
        .map_err(|_| name_taken(name))
}

/// Give up the volume type `id`'s claim on `name`.
async fn release_name(identity: &Identity, caller: &Caller, name: &str, id: &str) {
    identity
        .release_name("volume_type", "", name, id, &caller.meta)
        .await;
}

async fn create(
    vols: web::Data<Volumes>,
    identity: web::Data<Identity>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    admin(&caller, "volume_extension:types_manage")?;
    let v = parse_json(&body)?;
    let m = body_object(&v, "volume_type")?;
    let name = name_field(m, true)?.unwrap_or_default();
    let description = description_field(m)?.unwrap_or_default();
    let is_public = match m
        .get("os-volume-type-access:is_public")
        .or(m.get("is_public"))
    {
        None | Some(Value::Null) => true,
        Some(p) => parse_bool(p, "is_public")?,
    };
    let extra_specs = match m.get("extra_specs") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(s) => specs_map(s)?,
    };
    if name == DEFAULT_TYPE_NAME
        && vols
            .view
            .snapshot()
            .volume_type(DEFAULT_TYPE_NAME)
            .is_none()
    {
        // The default type already exists (as listed): creating it again is the same conflict.
        return Err(name_taken(&name));
    }
    let id = uuid::Uuid::new_v4().to_string();
    claim_name(&identity, &caller, &name, &id).await?;
    let cmd = VolumeTypeCommand::Create {
        name: name.clone(),
        description,
        is_public,
        extra_specs,
    };
    if let Err(e) = vols.run(&vols.types, &id, cmd, &caller.meta).await {
        release_name(&identity, &caller, &name, &id).await;
        return Err(e.into());
    }
    let t = visible(&vols, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "volume_type": type_json(&t, true) })))
}

async fn update(
    vols: web::Data<Volumes>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    admin(&caller, "volume_extension:types_manage")?;
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    let m = body_object(&v, "volume_type")?;
    let name = name_field(m, false)?;
    let description = description_field(m)?;
    let is_public = match m.get("is_public") {
        None | Some(Value::Null) => None,
        Some(p) => Some(parse_bool(p, "is_public")?),
    };
    if name.is_none() && description.is_none() && is_public.is_none() {
        return Err(CinderError::bad_request(
            "Specify volume type name, description, is_public or a combination thereof.",
        ));
    }
    let t = visible(&vols, &caller, &id)?;
    if id == DEFAULT_TYPE_ID && name.as_deref().is_some_and(|n| n != DEFAULT_TYPE_NAME) {
        return Err(CinderError::bad_request(format!(
            "The volume type {id} is a default volume type and cannot be renamed."
        )));
    }
    materialize(&vols, &identity, &caller, &id).await?;
    let new_name = name.clone().unwrap_or(t.state.name.clone());
    let renamed = new_name != t.state.name;
    if renamed {
        claim_name(&identity, &caller, &new_name, &id).await?;
    }
    let cmd = VolumeTypeCommand::Update {
        name: new_name.clone(),
        description: description.unwrap_or(t.state.description.clone()),
        is_public: is_public.unwrap_or(t.state.is_public),
    };
    if let Err(e) = vols.run(&vols.types, &id, cmd, &caller.meta).await {
        if renamed {
            release_name(&identity, &caller, &new_name, &id).await;
        }
        return Err(e.into());
    }
    if renamed {
        release_name(&identity, &caller, &t.state.name, &id).await;
    }
    let t = visible(&vols, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "volume_type": type_json(&t, true) })))
}

async fn delete(
    vols: web::Data<Volumes>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    admin(&caller, "volume_extension:types_manage")?;
    let id = param(&req, "id");
    let t = visible(&vols, &caller, &id)?;
    if id == DEFAULT_TYPE_ID || t.state.name == DEFAULT_TYPE_NAME {
        return Err(CinderError::bad_request(format!(
            "The volume type {id} is a default volume type and cannot be deleted."
        )));
    }
    if in_use(&vols, &id) {
        return Err(CinderError::bad_request(
            "Target volume type is still in use.",
        ));
    }
    vols.run(&vols.types, &id, VolumeTypeCommand::Delete, &caller.meta)
        .await?;
    release_name(&identity, &caller, &t.state.name, &id).await;
    Ok(HttpResponse::Accepted().finish())
}

// ---------------------------------------------------------------------------------------------------------
// Extra specs

/// Cinder refuses to change the extra specs of a type volumes use.
fn allow_spec_update(vols: &Volumes, id: &str) -> Result<(), CinderError> {
    if in_use(vols, id) {
        return Err(CinderError::bad_request("Volume Type is currently in use."));
    }
    Ok(())
}

async fn specs_list(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    let t = visible(&vols, &caller, &param(&req, "id"))?;
    Ok(HttpResponse::Ok().json(json!({ "extra_specs": t.state.extra_specs })))
}

async fn specs_set(
    vols: web::Data<Volumes>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    admin(&caller, "volume_extension:types_extra_specs:create")?;
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    let specs = specs_map(v.get("extra_specs").ok_or_else(|| {
        CinderError::bad_request("Malformed request body: 'extra_specs' is a required property")
    })?)?;
    visible(&vols, &caller, &id)?;
    allow_spec_update(&vols, &id)?;
    materialize(&vols, &identity, &caller, &id).await?;
    vols.run(
        &vols.types,
        &id,
        VolumeTypeCommand::SetExtraSpecs(specs.clone()),
        &caller.meta,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "extra_specs": specs })))
}

async fn spec_show(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    let (id, key) = (param(&req, "id"), param(&req, "key"));
    let t = visible(&vols, &caller, &id)?;
    let value = t.state.extra_specs.get(&key).ok_or_else(|| {
        CinderError::not_found(format!(
            "Volume Type {id} has no extra specs with key {key}."
        ))
    })?;
    Ok(HttpResponse::Ok().json(json!({ key: value })))
}

async fn spec_put(
    vols: web::Data<Volumes>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    admin(&caller, "volume_extension:types_extra_specs:update")?;
    let (id, key) = (param(&req, "id"), param(&req, "key"));
    let specs = specs_map(&parse_json(&body)?)?;
    if specs.len() > 1 {
        return Err(CinderError::bad_request(
            "Request body contains too many items",
        ));
    }
    if !specs.contains_key(&key) {
        return Err(CinderError::bad_request("Request body and URI mismatch"));
    }
    visible(&vols, &caller, &id)?;
    allow_spec_update(&vols, &id)?;
    materialize(&vols, &identity, &caller, &id).await?;
    vols.run(
        &vols.types,
        &id,
        VolumeTypeCommand::SetExtraSpecs(specs.clone()),
        &caller.meta,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!(specs)))
}

async fn spec_delete(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    admin(&caller, "volume_extension:types_extra_specs:delete")?;
    let (id, key) = (param(&req, "id"), param(&req, "key"));
    let t = visible(&vols, &caller, &id)?;
    if !t.state.extra_specs.contains_key(&key) {
        return Err(CinderError::not_found(format!(
            "Volume Type {id} has no extra specs with key {key}."
        )));
    }
    allow_spec_update(&vols, &id)?;
    vols.run(
        &vols.types,
        &id,
        VolumeTypeCommand::UnsetExtraSpec(key),
        &caller.meta,
    )
    .await?;
    Ok(HttpResponse::Accepted().finish())
}

// ---------------------------------------------------------------------------------------------------------
// Access lists of private types

async fn access_list(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    admin(&caller, "volume_extension:volume_type_access")?;
    let t = visible(&vols, &caller, &param(&req, "id"))?;
    if t.state.is_public {
        return Err(CinderError::not_found(
            "Access list not available for public volume types.",
        ));
    }
    let list: Vec<Value> = t
        .state
        .access
        .iter()
        .map(|p| json!({ "volume_type_id": t.id, "project_id": p }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "volume_type_access": list })))
}

async fn action(
    vols: web::Data<Volumes>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    let project = |key: &str| -> Result<String, CinderError> {
        v[key]["project"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                CinderError::bad_request(format!(
                    "Invalid input for field/attribute {key}. 'project' is a required property"
                ))
            })
    };
    let (cmd, policy) = if v.get("addProjectAccess").is_some() {
        (
            VolumeTypeCommand::AddAccess(project("addProjectAccess")?),
            "volume_extension:volume_type_access:addProjectAccess",
        )
    } else if v.get("removeProjectAccess").is_some() {
        (
            VolumeTypeCommand::RemoveAccess(project("removeProjectAccess")?),
            "volume_extension:volume_type_access:removeProjectAccess",
        )
    } else {
        return Err(CinderError::bad_request("There is no such action"));
    };
    admin(&caller, policy)?;
    let t = visible(&vols, &caller, &id)?;
    materialize(&vols, &identity, &caller, &id).await?;
    match vols.run(&vols.types, &id, cmd, &caller.meta).await {
        Ok(_) => Ok(HttpResponse::Accepted().finish()),
        Err(strata_actors::CommandError::Domain(strata_actors::DomainError::NotFound {
            id: p,
            ..
        })) => Err(CinderError::not_found(format!(
            "Volume type access not found for {} / {p} combination.",
            t.id
        ))),
        Err(e) => {
            let e = CinderError::from(e);
            if e.status == StatusCode::CONFLICT {
                Err(CinderError::conflict(format!(
                    "Volume type access for {} / {} combination already exists.",
                    t.id,
                    v.get("addProjectAccess")
                        .and_then(|a| a["project"].as_str())
                        .unwrap_or_default()
                )))
            } else {
                Err(e)
            }
        }
    }
}
