//! `/v2/images`: create, list (filters, sorting, paging), show, JSON-patch update, delete, tags, and the
//! deactivate/reactivate actions.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::image::ImageCommand;
use strata_projections::image::ImageRow;

use super::{Caller, GlanceError, Images, ImagesExt};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2/images")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v2/images/{id}")
            .route(web::get().to(show))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    )
    .service(
        web::resource("/v2/images/{id}/tags/{tag}")
            .route(web::put().to(add_tag))
            .route(web::delete().to(remove_tag)),
    )
    .route(
        "/v2/images/{id}/actions/deactivate",
        web::post().to(deactivate),
    )
    .route(
        "/v2/images/{id}/actions/reactivate",
        web::post().to(reactivate),
    );
}

/// Attributes a client can never set (Glance answers 403 for them).
const READ_ONLY: &[&str] = &[
    "checksum",
    "created_at",
    "direct_url",
    "file",
    "id",
    "locations",
    "os_hash_algo",
    "os_hash_value",
    "schema",
    "self",
    "size",
    "status",
    "stores",
    "updated_at",
    "virtual_size",
    "location",
    "deleted",
    "deleted_at",
];

fn opt_str(v: Option<&str>) -> Value {
    match v {
        Some(s) if !s.is_empty() => json!(s),
        _ => Value::Null,
    }
}

pub fn image_json(r: &ImageRow) -> Value {
    let mut o = Map::new();
    for (k, v) in &r.properties {
        o.insert(k.clone(), v.clone());
    }
    let fields = json!({
        "id": r.id,
        "name": opt_str(Some(&r.name)),
        "status": r.status,
        "visibility": r.visibility,
        "protected": r.protected,
        "os_hidden": r.os_hidden,
        "owner": r.owner,
        "disk_format": opt_str(Some(&r.disk_format)),
        "container_format": opt_str(Some(&r.container_format)),
        "checksum": opt_str(Some(&r.checksum)),
        "os_hash_algo": opt_str(Some(&r.os_hash_algo)),
        "os_hash_value": opt_str(Some(&r.os_hash_value)),
        "size": r.size,
        "virtual_size": r.virtual_size,
        "min_disk": r.min_disk,
        "min_ram": r.min_ram,
        "tags": r.tags,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "self": format!("/v2/images/{}", r.id),
        "file": format!("/v2/images/{}/file", r.id),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(f) = fields {
        o.extend(f);
    }
    if !r.store.is_empty() {
        o.insert("stores".into(), json!(r.store));
    }
    Value::Object(o)
}

fn parse_json(body: &[u8]) -> Result<Value, GlanceError> {
    serde_json::from_slice(body)
        .map_err(|e| GlanceError::bad_request(format!("Malformed JSON in request body: {e}")))
}

fn validate_id(id: &str) -> Result<(), GlanceError> {
    uuid::Uuid::parse_str(id).map(|_| ()).map_err(|_| {
        GlanceError::bad_request(format!(
            "Provided object does not match schema 'image': '{id}' is not a valid UUID"
        ))
    })
}

fn u64_field(field: &str, v: &Value) -> Result<u64, GlanceError> {
    v.as_u64().ok_or_else(|| {
        GlanceError::bad_request(format!(
            "Invalid value for '{field}': must be a non-negative integer"
        ))
    })
}

fn bool_field(field: &str, v: &Value) -> Result<bool, GlanceError> {
    v.as_bool().ok_or_else(|| {
        GlanceError::bad_request(format!("Invalid value for '{field}': must be a boolean"))
    })
}

fn str_field(field: &str, v: &Value) -> Result<String, GlanceError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null if matches!(field, "name" | "disk_format" | "container_format") => {
            Ok(String::new())
        }
        _ => Err(GlanceError::bad_request(format!(
            "Invalid value for '{field}': must be a string"
        ))),
    }
}

fn tags_field(v: &Value) -> Result<Vec<String>, GlanceError> {
    let arr = v
        .as_array()
        .ok_or_else(|| GlanceError::bad_request("Invalid value for 'tags': must be a list"))?;
    arr.iter().map(|t| str_field("tags", t)).collect()
}

fn check_visibility(caller: &Caller, visibility: &str) -> Result<(), GlanceError> {
    match visibility {
        "public" => caller.enforce("publicize_image"),
        "community" => caller.enforce("communitize_image"),
        _ => Ok(()),
    }
}

async fn create(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("add_image")?;
    let Value::Object(mut m) = parse_json(&body)? else {
        return Err(GlanceError::bad_request(
            "Request body must be a JSON object",
        ));
    };
    for k in READ_ONLY {
        if *k != "id" && m.contains_key(*k) {
            return Err(GlanceError::forbidden(format!(
                "Attribute '{k}' is read-only."
            )));
        }
    }
    let id = match m.remove("id") {
        Some(Value::String(s)) => {
            validate_id(&s)?;
            s
        }
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(_) => return Err(GlanceError::bad_request("Invalid value for 'id'")),
    };
    let owner = match m.remove("owner") {
        Some(Value::String(o)) if caller.is_admin => o,
        Some(Value::String(o)) if o == caller.project_id => o,
        Some(Value::String(_)) => {
            return Err(GlanceError::forbidden(
                "You are not permitted to create images owned by another project.",
            ))
        }
        _ => caller.project_id.clone(),
    };
    let take = |m: &mut Map<String, Value>, k: &str| m.remove(k).filter(|v| !v.is_null());
    let name = take(&mut m, "name")
        .map(|v| str_field("name", &v))
        .transpose()?
        .unwrap_or_default();
    let disk_format = take(&mut m, "disk_format")
        .map(|v| str_field("disk_format", &v))
        .transpose()?
        .unwrap_or_default();
    let container_format = take(&mut m, "container_format")
        .map(|v| str_field("container_format", &v))
        .transpose()?
        .unwrap_or_default();
    let visibility = take(&mut m, "visibility")
        .map(|v| str_field("visibility", &v))
        .transpose()?
        .unwrap_or_else(|| "shared".into());
    check_visibility(&caller, &visibility)?;
    let min_disk = take(&mut m, "min_disk")
        .map(|v| u64_field("min_disk", &v))
        .transpose()?
        .unwrap_or(0);
    let min_ram = take(&mut m, "min_ram")
        .map(|v| u64_field("min_ram", &v))
        .transpose()?
        .unwrap_or(0);
    let protected = take(&mut m, "protected")
        .map(|v| bool_field("protected", &v))
        .transpose()?
        .unwrap_or(false);
    let os_hidden = take(&mut m, "os_hidden")
        .map(|v| bool_field("os_hidden", &v))
        .transpose()?
        .unwrap_or(false);
    let tags = take(&mut m, "tags")
        .map(|v| tags_field(&v))
        .transpose()?
        .unwrap_or_default();
    let mut properties = BTreeMap::new();
    for (k, v) in m {
        if !v.is_string() && !v.is_null() {
            return Err(GlanceError::bad_request(format!("Provided object does not match schema 'image': {v} is not of type 'string' for '{k}'")));
        }
        if k.len() > 255 {
            return Err(GlanceError::bad_request(
                "Property names are at most 255 characters.",
            ));
        }
        properties.insert(k, v);
    }
    let meta = caller.metadata(&req);
    images.take_slot(&owner, &id, &meta).await?;
    let cmd = ImageCommand::Create {
        image_id: id.clone(),
        owner: owner.clone(),
        name,
        disk_format,
        container_format,
        visibility,
        min_disk,
        min_ram,
        protected,
        os_hidden,
        tags,
        properties,
    };
    if let Err(e) = images.run(&id, cmd, &meta).await {
        images.free(&owner, &id, &meta).await;
        return Err(e.into());
    }
    let row = images.readable(&caller, &id)?;
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("{}/v2/images/{id}", crate::common::base_url(&req)),
        ))
        .json(image_json(&row)))
}

/// `key=value` or `key=in:"a",b` / `gt:N` style filters as Glance reads them.
fn size_filter(value: &str) -> Option<u64> {
    value.parse().ok()
}

/// Glance's time comparison operators for `created_at` / `updated_at` filters.
#[derive(Clone, Copy)]
enum TimeOp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

impl TimeOp {
    fn holds(self, t: chrono::DateTime<chrono::Utc>, when: chrono::DateTime<chrono::Utc>) -> bool {
        match self {
            TimeOp::Gt => t > when,
            TimeOp::Gte => t >= when,
            TimeOp::Lt => t < when,
            TimeOp::Lte => t <= when,
            TimeOp::Eq => t == when,
            TimeOp::Neq => t != when,
        }
    }
}

/// `gt:2026-11-26T10:00:00Z` and friends (a bare time means `eq`).
fn time_filter(v: &str) -> Result<(TimeOp, chrono::DateTime<chrono::Utc>), GlanceError> {
    let (op, rest) = match v.split_once(':') {
        Some(("gt", r)) => (TimeOp::Gt, r),
        Some(("gte", r)) => (TimeOp::Gte, r),
        Some(("lt", r)) => (TimeOp::Lt, r),
        Some(("lte", r)) => (TimeOp::Lte, r),
        Some(("eq", r)) => (TimeOp::Eq, r),
        Some(("neq", r)) => (TimeOp::Neq, r),
        _ => (TimeOp::Eq, v),
    };
    let when = chrono::DateTime::parse_from_rfc3339(rest)
        .map_err(|_| GlanceError::bad_request(format!("Invalid time format for filter: {v}")))?;
    Ok((op, when.with_timezone(&chrono::Utc)))
}

async fn list(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, GlanceError> {
    let q = crate::common::query_pairs(&req);
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let limit: usize = match get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| GlanceError::bad_request("limit param must be an integer"))?,
        None => 25,
    };
    let limit = limit.min(1000);
    let marker = get("marker");
    let mut sort: Vec<(String, bool)> = Vec::new();
    if let Some(s) = get("sort") {
        for part in s.split(',') {
            let (k, dir) = part.split_once(':').unwrap_or((part, "desc"));
            sort.push((k.trim().to_string(), dir.trim() != "asc"));
        }
    } else {
        let keys: Vec<String> = q
            .iter()
            .filter(|(k, _)| k == "sort_key")
            .map(|(_, v)| v.clone())
            .collect();
        let dirs: Vec<String> = q
            .iter()
            .filter(|(k, _)| k == "sort_dir")
            .map(|(_, v)| v.clone())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let dir = dirs
                .get(i)
                .or(dirs.first())
                .map(String::as_str)
                .unwrap_or("desc");
            sort.push((k.clone(), dir != "asc"));
        }
    }
    if sort.is_empty() {
        sort.push(("created_at".into(), true));
    }
    for (k, _) in &sort {
        if !matches!(
            k.as_str(),
            "name"
                | "status"
                | "container_format"
                | "disk_format"
                | "size"
                | "id"
                | "created_at"
                | "updated_at"
                | "min_disk"
                | "min_ram"
                | "visibility"
                | "owner"
                | "virtual_size"
        ) {
            return Err(GlanceError::bad_request(format!("Invalid sort key: {k}.")));
        }
    }
    let tags: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v.clone())
        .collect();
    let member_status = get("member_status").unwrap_or_else(|| "accepted".into());
    let view = images.view.snapshot();
    let mut rows: Vec<&ImageRow> = view
        .images
        .values()
        .filter(|r| {
            if caller.is_admin {
                return true;
            }
            match view.member_status(&r.id, &caller.project_id) {
                Some(s) if r.owner != caller.project_id => {
                    member_status == "all" || s == member_status
                }
                _ => {
                    r.owner == caller.project_id
                        || matches!(r.visibility.as_str(), "public" | "community")
                }
            }
        })
        .collect();
    let mut reserved = vec![
        "limit",
        "marker",
        "sort",
        "sort_key",
        "sort_dir",
        "tag",
        "member_status",
    ];
    for (k, v) in &q {
        if reserved.contains(&k.as_str()) {
            continue;
        }
        let values: Vec<String> = match v.strip_prefix("in:") {
            Some(list) => list
                .split(',')
                .map(|s| s.trim_matches('"').to_string())
                .collect(),
            None => vec![v.clone()],
        };
        match k.as_str() {
            "size_min" => {
                let n = size_filter(v)
                    .ok_or_else(|| GlanceError::bad_request("size_min must be an integer"))?;
                rows.retain(|r| r.size.is_some_and(|s| s >= n));
            }
            "size_max" => {
                let n = size_filter(v)
                    .ok_or_else(|| GlanceError::bad_request("size_max must be an integer"))?;
                rows.retain(|r| r.size.is_some_and(|s| s <= n));
            }
            "visibility" if v == "all" => {}
            "created_at" | "updated_at" => {
                let (op, when) = time_filter(v)?;
                let created = k == "created_at";
                rows.retain(|r| {
                    let at = if created {
                        &r.created_at
                    } else {
                        &r.updated_at
                    };
                    chrono::DateTime::parse_from_rfc3339(at)
                        .is_ok_and(|t| op.holds(t.with_timezone(&chrono::Utc), when))
                });
            }
            "os_hidden" => {
                let hidden = v == "true";
                rows.retain(|r| r.os_hidden == hidden);
            }
            _ => rows.retain(|r| {
                let value = match k.as_str() {
                    "name" => r.name.clone(),
                    "status" => r.status.clone(),
                    "visibility" => r.visibility.clone(),
                    "owner" => r.owner.clone(),
                    "disk_format" => r.disk_format.clone(),
                    "container_format" => r.container_format.clone(),
                    "id" => r.id.clone(),
                    "protected" => r.protected.to_string(),
                    other => match r.properties.get(other) {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => return false,
                    },
                };
                values.contains(&value)
            }),
        }
    }
    reserved.clear();
    if !q.iter().any(|(k, _)| k == "os_hidden") {
        rows.retain(|r| !r.os_hidden);
    }
    if !q.iter().any(|(k, _)| k == "visibility") && !caller.is_admin {
        // Glance leaves community images of other projects out of the default listing.
        rows.retain(|r| r.visibility != "community" || r.owner == caller.project_id);
    }
    rows.retain(|r| tags.iter().all(|t| r.tags.contains(t)));
    let key = |r: &ImageRow, k: &str| -> (u64, String) {
        match k {
            "size" => (r.size.unwrap_or(0), String::new()),
            "virtual_size" => (r.virtual_size.unwrap_or(0), String::new()),
            "min_disk" => (r.min_disk, String::new()),
            "min_ram" => (r.min_ram, String::new()),
            "name" => (0, r.name.clone()),
            "status" => (0, r.status.clone()),
            "container_format" => (0, r.container_format.clone()),
            "disk_format" => (0, r.disk_format.clone()),
            "visibility" => (0, r.visibility.clone()),
            "owner" => (0, r.owner.clone()),
            "updated_at" => (0, r.updated_at.clone()),
            "id" => (0, r.id.clone()),
            _ => (0, r.created_at.clone()),
        }
    };
    rows.sort_by(|a, b| {
        for (k, desc) in &sort {
            let ord = key(a, k).cmp(&key(b, k));
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        b.id.cmp(&a.id)
    });
    if let Some(m) = &marker {
        let pos = rows.iter().position(|r| &r.id == m).ok_or_else(|| {
            GlanceError::bad_request(format!("Invalid marker. Image {m} could not be found."))
        })?;
        rows.drain(..=pos);
    }
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut body = json!({
        "images": rows.iter().map(|r| image_json(r)).collect::<Vec<_>>(),
        "schema": "/v2/schemas/images",
        "first": "/v2/images",
    });
    if more {
        if let Some(last) = rows.last() {
            let mut pairs: Vec<(String, String)> =
                q.iter().filter(|(k, _)| k != "marker").cloned().collect();
            pairs.push(("marker".into(), last.id.clone()));
            let qs: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", crate::common::encode(k), crate::common::encode(v)))
                .collect();
            body["next"] = json!(format!("/v2/images?{}", qs.join("&")));
        }
    }
    Ok(HttpResponse::Ok().json(body))
}

async fn show(
    images: web::Data<Images>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, GlanceError> {
    let row = images.readable(&caller, &path.into_inner())?;
    Ok(HttpResponse::Ok().json(image_json(&row)))
}

/// `PATCH /v2/images/{id}` with `application/openstack-images-v2.1-json-patch` (or v2.0) operations.
async fn update(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("modify_image")?;
    let id = path.into_inner();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/openstack-images-v2.") {
        return Err(GlanceError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Content-Type: use application/openstack-images-v2.1-json-patch",
        ));
    }
    let row = images.owned(&caller, &id)?;
    let ops = parse_json(&body)?;
    let ops = ops
        .as_array()
        .ok_or_else(|| GlanceError::bad_request("A JSON-patch body is a list of operations"))?;
    let mut props = row.properties.clone();
    let mut tags: Option<Vec<String>> = None;
    let mut cmd_fields = Map::new();
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| GlanceError::bad_request("Each operation needs 'op'"))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| GlanceError::bad_request("Each operation needs 'path'"))?;
        let attr = path
            .strip_prefix('/')
            .ok_or_else(|| GlanceError::bad_request(format!("Invalid JSON pointer: {path}")))?;
        if attr.is_empty() || attr.contains('/') {
            return Err(GlanceError::bad_request(format!(
                "Invalid JSON pointer: {path}"
            )));
        }
        if READ_ONLY.contains(&attr) || (attr == "owner" && !caller.is_admin) {
            return Err(GlanceError::forbidden(format!(
                "Attribute '{attr}' is read-only."
            )));
        }
        let value = op.get("value").cloned();
        let core = matches!(
            attr,
            "name"
                | "visibility"
                | "protected"
                | "min_ram"
                | "min_disk"
                | "disk_format"
                | "container_format"
                | "os_hidden"
        );
        match (kind, attr) {
            ("add" | "replace", "tags") => tags = Some(tags_field(&value.unwrap_or(Value::Null))?),
            ("remove", "tags") => {
                return Err(GlanceError::forbidden("Property tags may not be removed."))
            }
            ("add" | "replace", a) if core => {
                cmd_fields.insert(
                    a.to_string(),
                    value.ok_or_else(|| GlanceError::bad_request("'value' is required"))?,
                );
            }
            ("remove", a) if core => {
                return Err(GlanceError::forbidden(format!(
                    "Attribute '{a}' is required and cannot be removed."
                )))
            }
            ("add", a) => {
                let v = value.ok_or_else(|| GlanceError::bad_request("'value' is required"))?;
                if !v.is_string() {
                    return Err(GlanceError::bad_request(format!(
                        "Value of property '{a}' must be a string"
                    )));
                }
                props.insert(a.to_string(), v);
            }
            ("replace", a) => {
                let v = value.ok_or_else(|| GlanceError::bad_request("'value' is required"))?;
                if !props.contains_key(a) {
                    return Err(GlanceError::conflict(format!(
                        "Property {a} does not exist."
                    )));
                }
                if !v.is_string() {
                    return Err(GlanceError::bad_request(format!(
                        "Value of property '{a}' must be a string"
                    )));
                }
                props.insert(a.to_string(), v);
            }
            ("remove", a) => {
                if props.remove(a).is_none() {
                    return Err(GlanceError::conflict(format!(
                        "Property {a} does not exist."
                    )));
                }
            }
            (other, _) => {
                return Err(GlanceError::bad_request(format!(
                    "Unsupported JSON-patch operation: {other}"
                )))
            }
        }
    }
    let get = |k: &str| cmd_fields.get(k);
    let visibility = get("visibility")
        .map(|v| str_field("visibility", v))
        .transpose()?;
    if let Some(v) = &visibility {
        if *v != row.visibility {
            check_visibility(&caller, v)?;
        }
    }
    let cmd = ImageCommand::Update {
        name: get("name").map(|v| str_field("name", v)).transpose()?,
        disk_format: get("disk_format")
            .map(|v| str_field("disk_format", v))
            .transpose()?,
        container_format: get("container_format")
            .map(|v| str_field("container_format", v))
            .transpose()?,
        visibility,
        min_disk: get("min_disk")
            .map(|v| u64_field("min_disk", v))
            .transpose()?,
        min_ram: get("min_ram")
            .map(|v| u64_field("min_ram", v))
            .transpose()?,
        protected: get("protected")
            .map(|v| bool_field("protected", v))
            .transpose()?,
        os_hidden: get("os_hidden")
            .map(|v| bool_field("os_hidden", v))
            .transpose()?,
        tags,
        properties: (props != row.properties).then_some(props),
    };
    images.run(&id, cmd, &caller.metadata(&req)).await?;
    Ok(HttpResponse::Ok().json(image_json(&images.readable(&caller, &id)?)))
}

async fn delete(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("delete_image")?;
    let id = path.into_inner();
    let row = images.owned(&caller, &id)?;
    let meta = caller.metadata(&req);
    images.run(&id, ImageCommand::Delete, &meta).await?;
    images.free(&row.owner, &id, &meta).await;
    // The event is the truth; the bytes go after it. A failure here leaves an orphan file, never a
    // visible image without data.
    if let Err(e) =
        strata_actors::image::store::ImageStore::delete(images.store.as_ref(), &id).await
    {
        tracing::warn!(image = %id, error = %e, "deleting image bytes failed");
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn add_tag(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("modify_image")?;
    let (id, tag) = path.into_inner();
    let row = images.owned(&caller, &id)?;
    if !row.tags.contains(&tag) {
        let mut tags = row.tags.clone();
        tags.push(tag);
        images
            .run(&id, tags_update(tags), &caller.metadata(&req))
            .await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn remove_tag(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("modify_image")?;
    let (id, tag) = path.into_inner();
    let row = images.owned(&caller, &id)?;
    if !row.tags.contains(&tag) {
        return Err(GlanceError::not_found(format!(
            "Tag {tag} not found on image {id}."
        )));
    }
    let tags = row.tags.iter().filter(|t| **t != tag).cloned().collect();
    images
        .run(&id, tags_update(tags), &caller.metadata(&req))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

fn tags_update(tags: Vec<String>) -> ImageCommand {
    ImageCommand::Update {
        name: None,
        disk_format: None,
        container_format: None,
        visibility: None,
        min_disk: None,
        min_ram: None,
        protected: None,
        os_hidden: None,
        tags: Some(tags),
        properties: None,
    }
}

async fn deactivate(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("deactivate")?;
    let id = path.into_inner();
    images.owned(&caller, &id)?;
    images
        .run(&id, ImageCommand::Deactivate, &caller.metadata(&req))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn reactivate(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("reactivate")?;
    let id = path.into_inner();
    images.owned(&caller, &id)?;
    images
        .run(&id, ImageCommand::Reactivate, &caller.metadata(&req))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
