//! `/v2.1/flavors`: list, detail, show, create, update (2.55 description), delete, extra specs, access lists.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::compute::FlavorCommand;
use strata_projections::compute::FlavorRow;

use super::common::{links, marker_not_found, parse_json, skip_past_marker};
use super::{Caller, Compute, Microversion, NovaError};
use crate::identity::Identity;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.1/flavors")
            .route(web::get().to(list::<false>))
            .route(web::post().to(create)),
    )
    .route("/v2.1/flavors/detail", web::get().to(list::<true>))
    .service(
        web::resource("/v2.1/flavors/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .route("/v2.1/flavors/{id}/action", web::post().to(action))
    .route(
        "/v2.1/flavors/{id}/os-flavor-access",
        web::get().to(access_list),
    )
    .service(
        web::resource("/v2.1/flavors/{id}/os-extra_specs")
            .route(web::get().to(specs_list))
            .route(web::post().to(specs_set)),
    )
    .service(
        web::resource("/v2.1/flavors/{id}/os-extra_specs/{key}")
            .route(web::get().to(spec_show))
            .route(web::put().to(spec_put))
            .route(web::delete().to(spec_delete)),
    );
}

fn flavor_json(req: &HttpRequest, mv: Microversion, f: &FlavorRow, detail: bool) -> Value {
    let mut v = json!({ "id": f.id, "name": f.name, "links": links(&crate::common::base_url(req), "flavors", &f.id) });
    if detail {
        v["ram"] = json!(f.ram_mb);
        v["vcpus"] = json!(f.vcpus);
        v["disk"] = json!(f.disk_gb);
        v["OS-FLV-EXT-DATA:ephemeral"] = json!(f.ephemeral_gb);
        // Before 2.75 Nova shows a swap of 0 as "".
        v["swap"] = if f.swap_mb == 0 && mv.0 < 75 {
            json!("")
        } else {
            json!(f.swap_mb)
        };
        v["rxtx_factor"] = json!(f.rxtx_factor);
        v["os-flavor-access:is_public"] = json!(f.is_public);
        v["OS-FLV-DISABLED:disabled"] = json!(false);
    }
    if mv.0 >= 55 {
        v["description"] = if f.description.is_empty() {
            Value::Null
        } else {
            json!(f.description)
        };
    }
    v
}

fn visible(compute: &Compute, caller: &Caller, id: &str) -> Result<FlavorRow, NovaError> {
    let view = compute.view.snapshot();
    if view.flavor_visible(id, &caller.project_id, caller.is_admin) {
        if let Some(f) = view.flavors.get(id) {
            return Ok(f.clone());
        }
    }
    Err(NovaError::not_found(format!(
        "Flavor {id} could not be found."
    )))
}

/// Run `cmd` on a flavor the caller can see (404 otherwise); answers the flavor as it was before.
async fn change(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    cmd: FlavorCommand,
) -> Result<FlavorRow, NovaError> {
    let f = visible(compute, caller, id)?;
    compute.run(&compute.flavors, id, cmd, &caller.meta).await?;
    Ok(f)
}

fn listing(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    detail: bool,
) -> Result<HttpResponse, NovaError> {
    let q = crate::common::query_pairs(req);
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let min_ram: u64 = get("minRam")
        .map(|v| v.parse())
        .transpose()
        .map_err(|_| NovaError::bad_request("Invalid minRam filter"))?
        .unwrap_or(0);
    let min_disk: u64 = get("minDisk")
        .map(|v| v.parse())
        .transpose()
        .map_err(|_| NovaError::bad_request("Invalid minDisk filter"))?
        .unwrap_or(0);
    // Admins see all flavors when asking `is_public=None`; everyone sees public ones plus those shared.
    let is_public = get("is_public").map(|v| v.to_lowercase());
    let limit: usize = get("limit")
        .map(|v| v.parse())
        .transpose()
        .map_err(|_| NovaError::bad_request("limit param must be an integer"))?
        .unwrap_or(1000);
    let sort_key = get("sort_key").unwrap_or_else(|| "flavorid".into());
    let desc = get("sort_dir").is_some_and(|d| d == "desc");
    let view = compute.view.snapshot();
    let mut rows: Vec<&FlavorRow> = view
        .flavors
        .values()
        .filter(|f| f.ram_mb >= min_ram && f.disk_gb >= min_disk)
        .filter(|f| match is_public.as_deref() {
            Some("none") if caller.is_admin => true,
            Some("false") | Some("0") => {
                !f.is_public && (caller.is_admin || f.access.contains(&caller.project_id))
            }
            _ => f.is_public || f.access.contains(&caller.project_id),
        })
        .collect();
    let key = |f: &FlavorRow| -> (u64, String) {
        match sort_key.as_str() {
            "memory_mb" => (f.ram_mb, String::new()),
            "vcpus" => (f.vcpus as u64, String::new()),
            "root_gb" => (f.disk_gb, String::new()),
            "name" => (0, f.name.clone()),
            _ => (0, f.id.clone()),
        }
    };
    rows.sort_by(|a, b| {
        if desc {
            key(b).cmp(&key(a))
        } else {
            key(a).cmp(&key(b))
        }
    });
    if let Some(m) = get("marker") {
        skip_past_marker(&mut rows, &m, |f| f.id == m, marker_not_found)?;
    }
    rows.truncate(limit);
    let flavors: Vec<Value> = rows
        .iter()
        .map(|f| flavor_json(req, mv, f, detail))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "flavors": flavors })))
}

/// `GET /flavors` (`DETAIL` false) and `/flavors/detail` (true).
async fn list<const DETAIL: bool>(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    listing(&compute, &caller, &req, mv, DETAIL)
}

async fn show(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let f = visible(&compute, &caller, &path.into_inner())?;
    Ok(HttpResponse::Ok().json(json!({ "flavor": flavor_json(&req, mv, &f, true) })))
}

fn parse_body(body: &[u8], key: &str) -> Result<Map<String, Value>, NovaError> {
    let v = parse_json(body)?;
    match v.get(key) {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {v}. '{key}' is a required property"
        ))),
    }
}

/// A non-negative integer given as a number or a numeric string (Nova accepts both).
fn int_field(m: &Map<String, Value>, key: &str, default: Option<u64>) -> Result<u64, NovaError> {
    match m.get(key) {
        None | Some(Value::Null) => default.ok_or_else(|| {
            NovaError::bad_request(format!(
                "Invalid input for field/attribute flavor. '{key}' is a required property"
            ))
        }),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
            NovaError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {n}."
            ))
        }),
        Some(Value::String(s)) if s.is_empty() && default.is_some() => Ok(default.unwrap_or(0)),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| {
            NovaError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {s}."
            ))
        }),
        Some(other) => Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {other}."
        ))),
    }
}

/// Nova's flavor id pattern, narrowed to what a stream id can hold (`flavor-<id>`: no spaces).
fn valid_flavor_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '))
        && id.trim() == id
        && strata_events::is_valid_stream_id(&format!("flavor-{id}"))
}

async fn create(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:os-flavor-manage:create", &caller.project_id)?;
    let m = parse_body(&body, "flavor")?;
    let name = m
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            NovaError::bad_request(
                "Invalid input for field/attribute flavor. 'name' is a required property",
            )
        })?
        .to_string();
    let id = match m.get("id") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(s)) if s == "auto" => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(s)) if valid_flavor_id(s) => s.clone(),
        Some(other) => {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute id. Value: {other}."
            )))
        }
    };
    let rxtx_factor = match m.get("rxtx_factor") {
        None | Some(Value::Null) => 1.0,
        Some(v) => v.as_f64().ok_or_else(|| {
            NovaError::bad_request("Invalid input for field/attribute rxtx_factor.")
        })?,
    };
    let is_public = match m.get("os-flavor-access:is_public") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute os-flavor-access:is_public. Value: {other}."
            )))
        }
    };
    let description = match m.get("description") {
        Some(_) if mv.0 < 55 => {
            return Err(NovaError::bad_request(
                "Additional properties are not allowed ('description' was unexpected)",
            ))
        }
        Some(Value::String(d)) => d.clone(),
        _ => String::new(),
    };
    let cmd = FlavorCommand::Create {
        flavor_id: id.clone(),
        name: name.clone(),
        ram_mb: int_field(&m, "ram", None)?,
        vcpus: int_field(&m, "vcpus", None)?
            .try_into()
            .map_err(|_| NovaError::bad_request("vcpus is too large"))?,
        disk_gb: int_field(&m, "disk", None)?,
        ephemeral_gb: int_field(&m, "OS-FLV-EXT-DATA:ephemeral", Some(0))?,
        swap_mb: int_field(&m, "swap", Some(0))?,
        rxtx_factor,
        is_public,
        description,
    };
    // Checked before the name is claimed: a claim by an existing flavor's id must not be released below.
    if compute.view.snapshot().flavors.contains_key(&id) {
        return Err(NovaError::conflict(format!(
            "Flavor with ID {id} already exists."
        )));
    }
    let claim = identity
        .claim_name("flavor", "", &name, &id, &caller.meta)
        .await;
    if claim.is_err() {
        return Err(NovaError::conflict(format!(
            "Flavor with name {name} already exists."
        )));
    }
    if let Err(e) = compute.run(&compute.flavors, &id, cmd, &caller.meta).await {
        let e = NovaError::from(e);
        identity
            .release_name("flavor", "", &name, &id, &caller.meta)
            .await;
        if e.status == StatusCode::CONFLICT {
            return Err(NovaError::conflict(format!(
                "Flavor with ID {id} already exists."
            )));
        }
        return Err(e);
    }
    let f = visible(&compute, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "flavor": flavor_json(&req, mv, &f, true) })))
}

async fn update(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    if mv.0 < 55 {
        return Err(NovaError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Updating a flavor needs microversion 2.55 or later.",
        ));
    }
    caller.enforce("os_compute_api:os-flavor-manage:update", &caller.project_id)?;
    let id = path.into_inner();
    let m = parse_body(&body, "flavor")?;
    let description =
        match m.get("description") {
            Some(Value::String(d)) => d.clone(),
            Some(Value::Null) => String::new(),
            _ => return Err(NovaError::bad_request(
                "Invalid input for field/attribute flavor. 'description' is a required property",
            )),
        };
    change(
        &compute,
        &caller,
        &id,
        FlavorCommand::SetDescription { description },
    )
    .await?;
    let f = visible(&compute, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "flavor": flavor_json(&req, mv, &f, true) })))
}

async fn delete(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:os-flavor-manage:delete", &caller.project_id)?;
    let id = path.into_inner();
    let f = change(&compute, &caller, &id, FlavorCommand::Delete).await?;
    identity
        .release_name("flavor", "", &f.name, &id, &caller.meta)
        .await;
    Ok(HttpResponse::Accepted().finish())
}

fn access_json(f: &FlavorRow) -> Value {
    let list: Vec<Value> = f
        .access
        .iter()
        .map(|p| json!({ "flavor_id": f.id, "tenant_id": p }))
        .collect();
    json!({ "flavor_access": list })
}

async fn access_list(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:os-flavor-access", &caller.project_id)?;
    let f = visible(&compute, &caller, &path.into_inner())?;
    if f.is_public {
        return Err(NovaError::not_found(
            "Access list not available for public flavors.",
        ));
    }
    Ok(HttpResponse::Ok().json(access_json(&f)))
}

async fn action(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    let id = path.into_inner();
    let v = parse_json(&body)?;
    let (cmd, policy) = if let Some(a) = v.get("addTenantAccess") {
        let tenant = a["tenant"]
            .as_str()
            .ok_or_else(|| NovaError::bad_request("'tenant' is a required property"))?;
        (
            FlavorCommand::AddAccess {
                project_id: tenant.to_string(),
            },
            "os_compute_api:os-flavor-access:add_tenant_access",
        )
    } else if let Some(a) = v.get("removeTenantAccess") {
        let tenant = a["tenant"]
            .as_str()
            .ok_or_else(|| NovaError::bad_request("'tenant' is a required property"))?;
        (
            FlavorCommand::RemoveAccess {
                project_id: tenant.to_string(),
            },
            "os_compute_api:os-flavor-access:remove_tenant_access",
        )
    } else {
        return Err(NovaError::bad_request("There is no such action"));
    };
    caller.enforce(policy, &caller.project_id)?;
    change(&compute, &caller, &id, cmd).await?;
    Ok(HttpResponse::Ok().json(access_json(&visible(&compute, &caller, &id)?)))
}

async fn specs_list(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let f = visible(&compute, &caller, &path.into_inner())?;
    Ok(HttpResponse::Ok().json(json!({ "extra_specs": f.extra_specs })))
}

fn string_map(v: &Value) -> Result<BTreeMap<String, String>, NovaError> {
    let m = v
        .as_object()
        .ok_or_else(|| NovaError::bad_request("extra_specs must be an object"))?;
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            other => Err(NovaError::bad_request(format!(
                "Invalid extra spec value for {k}: {other}"
            ))),
        })
        .collect()
}

async fn specs_set(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    caller.enforce(
        "os_compute_api:os-flavor-extra-specs:create",
        &caller.project_id,
    )?;
    let id = path.into_inner();
    let v = parse_json(&body)?;
    let specs = string_map(
        v.get("extra_specs")
            .ok_or_else(|| NovaError::bad_request("'extra_specs' is a required property"))?,
    )?;
    set_specs(&compute, &caller, &id, &specs).await?;
    Ok(HttpResponse::Ok().json(json!({ "extra_specs": specs })))
}

/// Set (add or overwrite) `specs` among a visible flavor's extra specs.
async fn set_specs(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    specs: &BTreeMap<String, String>,
) -> Result<(), NovaError> {
    let cmd = FlavorCommand::SetExtraSpecs {
        specs: specs.clone(),
    };
    change(compute, caller, id, cmd).await.map(|_| ())
}

async fn spec_show(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, key) = path.into_inner();
    let f = visible(&compute, &caller, &id)?;
    let value = f.extra_specs.get(&key).ok_or_else(|| {
        NovaError::not_found(format!("Flavor {id} has no extra specs with key {key}."))
    })?;
    let mut m = Map::new();
    m.insert(key, json!(value));
    Ok(HttpResponse::Ok().json(Value::Object(m)))
}

async fn spec_put(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    caller.enforce(
        "os_compute_api:os-flavor-extra-specs:update",
        &caller.project_id,
    )?;
    let (id, key) = path.into_inner();
    let v = parse_json(&body)?;
    let specs = string_map(&v)?;
    if specs.len() != 1 || !specs.contains_key(&key) {
        return Err(NovaError::bad_request("Request body and URI mismatch"));
    }
    set_specs(&compute, &caller, &id, &specs).await?;
    Ok(HttpResponse::Ok().json(json!(specs)))
}

async fn spec_delete(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    caller.enforce(
        "os_compute_api:os-flavor-extra-specs:delete",
        &caller.project_id,
    )?;
    let (id, key) = path.into_inner();
    change(
        &compute,
        &caller,
        &id,
        FlavorCommand::UnsetExtraSpec { key },
    )
    .await?;
    Ok(HttpResponse::Ok().finish())
}
