//! `/v2.0/{collection}/{id}/tags` (list, replace, add one, check one, remove one, remove all) for any
//! resource kind that registers a [`TagResource`]: networks, subnets and ports here; routers, floating IPs
//! and security groups register theirs with [`Networks::register_tags`].

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{check_tag, Caller, Networks, NeutronError};
#[allow(unused_imports)]
use strata_network::tags::*;

fn resource(networks: &Networks, collection: &str) -> Result<Arc<dyn TagResource>, NeutronError> {
    networks
        .tag_resource(collection)
        .ok_or_else(|| NeutronError::not_found("HTTPNotFound", "The resource could not be found."))
}

async fn list(
    networks: web::Data<Networks>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NeutronError> {
    let (collection, id) = path.into_inner();
    let tags = resource(&networks, &collection)?
        .tags(&networks, &caller, &id)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "tags": tags })))
}

async fn replace(
    networks: web::Data<Networks>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    tag_policy(&caller, &path.0, "update")?;
    let (collection, id) = path.into_inner();
    let r = resource(&networks, &collection)?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|_| NeutronError::bad_request("The request body could not be parsed as JSON."))?;
    let tags: Vec<String> = match v.get("tags") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| NeutronError::invalid_input(format!("'{t}' is not a valid tag")))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(NeutronError::bad_request(
                "The body must hold a list 'tags'.",
            ))
        }
    };
    let tags = normalized(tags)?;
    r.tags(&networks, &caller, &id).await?;
    r.set_tags(&networks, &caller, &id, tags.clone()).await?;
    Ok(HttpResponse::Ok().json(json!({ "tags": tags })))
}

async fn remove_all(
    networks: web::Data<Networks>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NeutronError> {
    tag_policy(&caller, &path.0, "delete")?;
    let (collection, id) = path.into_inner();
    let r = resource(&networks, &collection)?;
    r.tags(&networks, &caller, &id).await?;
    r.set_tags(&networks, &caller, &id, vec![]).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn check_one(
    networks: web::Data<Networks>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, NeutronError> {
    let (collection, id, tag) = path.into_inner();
    let tags = resource(&networks, &collection)?
        .tags(&networks, &caller, &id)
        .await?;
    if tags.contains(&tag) {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(tag_not_found(&tag))
    }
}

fn tag_not_found(tag: &str) -> NeutronError {
    NeutronError::not_found("TagNotFound", format!("Tag {tag} could not be found."))
}

async fn add_one(
    networks: web::Data<Networks>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, NeutronError> {
    tag_policy(&caller, &path.0, "update")?;
    let (collection, id, tag) = path.into_inner();
    check_tag(&tag)?;
    let r = resource(&networks, &collection)?;
    let mut tags = r.tags(&networks, &caller, &id).await?;
    if !tags.contains(&tag) {
        tags.push(tag);
        r.set_tags(&networks, &caller, &id, normalized(tags)?)
            .await?;
    }
    Ok(HttpResponse::Created().finish())
}

async fn remove_one(
    networks: web::Data<Networks>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, NeutronError> {
    tag_policy(&caller, &path.0, "delete")?;
    let (collection, id, tag) = path.into_inner();
    let r = resource(&networks, &collection)?;
    let tags = r.tags(&networks, &caller, &id).await?;
    if !tags.contains(&tag) {
        return Err(tag_not_found(&tag));
    }
    let rest: Vec<String> = tags.into_iter().filter(|t| *t != tag).collect();
    r.set_tags(&networks, &caller, &id, rest).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Neutron's policy for changing a resource's tags (`update_<resource>:tags`, `delete_<resource>:tags`);
/// an unknown collection is left to the lookup that answers 404.
fn tag_policy(caller: &Caller, collection: &str, verb: &str) -> Result<(), NeutronError> {
    match super::policy::resource_of(collection) {
        Some(r) => caller.enforce(&format!("{verb}_{r}:tags")),
        None => Ok(()),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.0/{collection}/{id}/tags")
            .route(web::get().to(list))
            .route(web::put().to(replace))
            .route(web::delete().to(remove_all)),
    )
    .service(
        web::resource("/v2.0/{collection}/{id}/tags/{tag}")
            .route(web::get().to(check_one))
            .route(web::put().to(add_one))
            .route(web::delete().to(remove_one)),
    );
}
