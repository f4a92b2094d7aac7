//! The catalog's resources: `/v3/services`, `/v3/endpoints`, `/v3/regions`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::identity::{
    Endpoint, EndpointCommand, Region, RegionCommand, Service, ServiceCommand,
};
use strata_projections::identity::{EndpointRow, RegionRow, ServiceRow};

use super::kind::{kind, list, run, run_and_answer, show};
use super::util::{entity, opt_bool, opt_name, opt_str, query, req_name, self_link};
use super::{new_id, Authed, Identity, KeystoneError};
use crate::common::RequestId;

/// `/v3/services`.
pub struct Services;
/// `/v3/endpoints`.
pub struct Endpoints;
/// `/v3/regions`.
pub struct Regions;

kind!(Services {
    row: ServiceRow,
    aggregate: Service,
    key: "service",
    collection: "services",
    table: services,
    json: service_json,
});

kind!(Endpoints {
    row: EndpointRow,
    aggregate: Endpoint,
    key: "endpoint",
    collection: "endpoints",
    table: endpoints,
    json: endpoint_json,
});

kind!(Regions {
    row: RegionRow,
    aggregate: Region,
    key: "region",
    collection: "regions",
    table: regions,
    json: region_json,
});

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v3/services")
            .route(web::get().to(list_services))
            .route(web::post().to(create_service)),
    )
    .service(
        web::resource("/v3/services/{id}")
            .route(web::get().to(show::<Services>))
            .route(web::patch().to(update_service))
            .route(web::delete().to(delete_service)),
    )
    .service(
        web::resource("/v3/endpoints")
            .route(web::get().to(list_endpoints))
            .route(web::post().to(create_endpoint)),
    )
    .service(
        web::resource("/v3/endpoints/{id}")
            .route(web::get().to(show::<Endpoints>))
            .route(web::patch().to(update_endpoint))
            .route(web::delete().to(delete_endpoint)),
    )
    .service(
        web::resource("/v3/regions")
            .route(web::get().to(list_regions))
            .route(web::post().to(create_region)),
    )
    .service(
        web::resource("/v3/regions/{id}")
            .route(web::get().to(show::<Regions>))
            .route(web::put().to(put_region))
            .route(web::patch().to(update_region))
            .route(web::delete().to(delete_region)),
    );
}

fn service_json(req: &HttpRequest, s: &ServiceRow) -> Value {
    json!({
        "id": s.id, "type": s.service_type, "name": s.name, "description": s.description, "enabled": s.enabled,
        "links": self_link(req, &format!("services/{}", s.id)),
    })
}

fn endpoint_json(req: &HttpRequest, e: &EndpointRow) -> Value {
    json!({
        "id": e.id, "interface": e.interface, "region": e.region_id, "region_id": e.region_id,
        "service_id": e.service_id, "url": e.url, "enabled": e.enabled,
        "links": self_link(req, &format!("endpoints/{}", e.id)),
    })
}

fn region_json(req: &HttpRequest, r: &RegionRow) -> Value {
    json!({
        "id": r.id, "description": r.description,
        "parent_region_id": if r.parent_region_id.is_empty() { Value::Null } else { json!(r.parent_region_id) },
        "links": self_link(req, &format!("regions/{}", r.id)),
    })
}

// ---- services ----

async fn list_services(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:list_services")?;
    let ty = query(&req, "type");
    let name = query(&req, "name");
    let view = identity.view.snapshot();
    Ok(list::<Services>(&req, &view, |s| {
        ty.as_ref().is_none_or(|t| &s.service_type == t)
            && name.as_ref().is_none_or(|n| &s.name == n)
    }))
}

async fn create_service(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:create_service")?;
    let mut m = entity(&body, "service")?;
    let service_type = req_name(&mut m, "type", 255)?;
    let name = opt_str(&mut m, "name", 255)?.unwrap_or_default();
    let description = opt_str(&mut m, "description", 255)?.unwrap_or_default();
    let enabled = opt_bool(&mut m, "enabled")?.unwrap_or(true);
    let id = new_id();
    let cmd = ServiceCommand::Create {
        service_id: id.clone(),
        service_type,
        name,
        description,
        enabled,
    };
    run_and_answer::<Services>(
        &identity,
        &caller,
        &rid,
        &req,
        StatusCode::CREATED,
        &id,
        cmd,
    )
    .await
}

async fn update_service(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:update_service")?;
    let id = path.into_inner();
    let mut m = entity(&body, "service")?;
    let cmd = ServiceCommand::Update {
        service_type: opt_name(&mut m, "type", 255)?,
        name: opt_str(&mut m, "name", 255)?,
        description: opt_str(&mut m, "description", 255)?,
        enabled: opt_bool(&mut m, "enabled")?,
    };
    run_and_answer::<Services>(&identity, &caller, &rid, &req, StatusCode::OK, &id, cmd).await
}

async fn delete_service(
    identity: web::Data<Identity>,
    caller: Authed,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:delete_service")?;
    let id = path.into_inner();
    let endpoints: Vec<String> = identity
        .view
        .snapshot()
        .endpoints
        .values()
        .filter(|e| e.service_id == id)
        .map(|e| e.id.clone())
        .collect();
    let meta = rid.metadata(caller.0.principal());
    run::<Services>(&identity, &id, ServiceCommand::Delete, &meta).await?;
    // Keystone deletes a service's endpoints with it.
    for e in endpoints {
        run::<Endpoints>(&identity, &e, EndpointCommand::Delete, &meta).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

// ---- endpoints ----

async fn list_endpoints(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:list_endpoints")?;
    let service_id = query(&req, "service_id");
    let interface = query(&req, "interface");
    let region = query(&req, "region_id").or_else(|| query(&req, "region"));
    let view = identity.view.snapshot();
    Ok(list::<Endpoints>(&req, &view, |e| {
        service_id.as_ref().is_none_or(|s| &e.service_id == s)
            && interface.as_ref().is_none_or(|i| &e.interface == i)
            && region.as_ref().is_none_or(|r| &e.region_id == r)
    }))
}

fn check_refs(
    identity: &Identity,
    service_id: Option<&str>,
    region_id: Option<&str>,
) -> Result<(), KeystoneError> {
    let view = identity.view.snapshot();
    if let Some(s) = service_id {
        if !view.services.contains_key(s) {
            return Err(KeystoneError::bad_request(format!(
                "Could not find service: {s}."
            )));
        }
    }
    if let Some(r) = region_id.filter(|r| !r.is_empty()) {
        if !view.regions.contains_key(r) {
            return Err(KeystoneError::bad_request(format!(
                "Could not find region: {r}."
            )));
        }
    }
    Ok(())
}

async fn create_endpoint(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:create_endpoint")?;
    let mut m = entity(&body, "endpoint")?;
    let service_id = req_name(&mut m, "service_id", 64)?;
    let interface = req_name(&mut m, "interface", 32)?;
    let url = req_name(&mut m, "url", 225)?;
    let region_id = match opt_str(&mut m, "region_id", 255)? {
        Some(r) => r,
        None => opt_str(&mut m, "region", 255)?.unwrap_or_default(),
    };
    let enabled = opt_bool(&mut m, "enabled")?.unwrap_or(true);
    check_refs(&identity, Some(&service_id), Some(&region_id))?;
    let id = new_id();
    let cmd = EndpointCommand::Create {
        endpoint_id: id.clone(),
        service_id,
        interface,
        url,
        region_id,
        enabled,
    };
    run_and_answer::<Endpoints>(
        &identity,
        &caller,
        &rid,
        &req,
        StatusCode::CREATED,
        &id,
        cmd,
    )
    .await
}

async fn update_endpoint(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:update_endpoint")?;
    let id = path.into_inner();
    let mut m = entity(&body, "endpoint")?;
    let service_id = opt_name(&mut m, "service_id", 64)?;
    let interface = opt_name(&mut m, "interface", 32)?;
    let url = opt_name(&mut m, "url", 225)?;
    let region_id = match opt_str(&mut m, "region_id", 255)? {
        Some(r) => Some(r),
        None => opt_str(&mut m, "region", 255)?,
    };
    let enabled = opt_bool(&mut m, "enabled")?;
    check_refs(&identity, service_id.as_deref(), region_id.as_deref())?;
    let cmd = EndpointCommand::Update {
        service_id,
        interface,
        url,
        region_id,
        enabled,
    };
    run_and_answer::<Endpoints>(&identity, &caller, &rid, &req, StatusCode::OK, &id, cmd).await
}

async fn delete_endpoint(
    identity: web::Data<Identity>,
    caller: Authed,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:delete_endpoint")?;
    let id = path.into_inner();
    let meta = rid.metadata(caller.0.principal());
    run::<Endpoints>(&identity, &id, EndpointCommand::Delete, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- regions ----

async fn list_regions(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:list_regions")?;
    let parent = query(&req, "parent_region_id");
    let view = identity.view.snapshot();
    Ok(list::<Regions>(&req, &view, |r| {
        parent.as_ref().is_none_or(|p| &r.parent_region_id == p)
    }))
}

async fn create_region_with(
    identity: &Identity,
    caller: &Authed,
    req: &HttpRequest,
    rid: &RequestId,
    body: &[u8],
    path_id: Option<String>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:create_region")?;
    let mut m = entity(body, "region")?;
    let body_id = opt_name(&mut m, "id", 255)?;
    let id = path_id.or(body_id).unwrap_or_else(new_id);
    // Keystone's `id_string`: it also names the region's stream.
    if id.is_empty() || id.len() > 255 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(super::util::invalid(
            "id",
            &format!("'{id}' does not match '^[a-zA-Z0-9-]+$'"),
        ));
    }
    let description = opt_str(&mut m, "description", 255)?.unwrap_or_default();
    let parent_region_id = opt_str(&mut m, "parent_region_id", 255)?.unwrap_or_default();
    if !parent_region_id.is_empty()
        && !identity
            .view
            .snapshot()
            .regions
            .contains_key(&parent_region_id)
    {
        return Err(KeystoneError::bad_request(format!(
            "Could not find region: {parent_region_id}."
        )));
    }
    let cmd = RegionCommand::Create {
        region_id: id.clone(),
        description,
        parent_region_id,
    };
    run::<Regions>(identity, &id, cmd, &rid.metadata(caller.0.principal())).await?;
    let view = identity.view.snapshot();
    let row = view
        .regions
        .get(&id)
        .ok_or_else(|| KeystoneError::internal("region not visible after create"))?;
    Ok(HttpResponse::Created().json(json!({ "region": region_json(req, row) })))
}

async fn create_region(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    create_region_with(&identity, &caller, &req, &rid, &body, None).await
}

async fn put_region(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    create_region_with(
        &identity,
        &caller,
        &req,
        &rid,
        &body,
        Some(path.into_inner()),
    )
    .await
}

async fn update_region(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    rid: RequestId,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:update_region")?;
    let id = path.into_inner();
    let mut m = entity(&body, "region")?;
    let description = opt_str(&mut m, "description", 255)?;
    let parent_region_id = opt_str(&mut m, "parent_region_id", 255)?;
    if let Some(p) = parent_region_id.as_ref().filter(|p| !p.is_empty()) {
        if *p == id || !identity.view.snapshot().regions.contains_key(p) {
            return Err(KeystoneError::bad_request(format!(
                "Invalid parent region: {p}."
            )));
        }
    }
    let cmd = RegionCommand::Update {
        description,
        parent_region_id,
    };
    run_and_answer::<Regions>(&identity, &caller, &rid, &req, StatusCode::OK, &id, cmd).await
}

async fn delete_region(
    identity: web::Data<Identity>,
    caller: Authed,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin("identity:delete_region")?;
    let id = path.into_inner();
    {
        let view = identity.view.snapshot();
        if view.regions.values().any(|r| r.parent_region_id == id)
            || view.endpoints.values().any(|e| e.region_id == id)
        {
            return Err(KeystoneError::conflict(format!(
                "Region {id} still has child regions or endpoints."
            )));
        }
    }
    let meta = rid.metadata(caller.0.principal());
    run::<Regions>(&identity, &id, RegionCommand::Delete, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}
