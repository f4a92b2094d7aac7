//! Version discovery, schemas and the `info` endpoints that clients read before they do anything else.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

/// The image API versions this server speaks; all are served by the same handlers.
const VERSIONS: [(&str, &str); 4] = [
    ("v2.9", "CURRENT"),
    ("v2.8", "SUPPORTED"),
    ("v2.7", "SUPPORTED"),
    ("v2.6", "SUPPORTED"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(versions))
        .route("/versions", web::get().to(versions))
        .route("/v2", web::get().to(versions))
        .route("/v2/", web::get().to(versions))
        .route("/v2/schemas/image", web::get().to(image_schema))
        .route("/v2/schemas/images", web::get().to(images_schema))
        .route("/v2/schemas/member", web::get().to(member_schema))
        .route("/v2/schemas/members", web::get().to(members_schema))
        .route("/v2/info/import", web::get().to(info_import))
        .route("/v2/info/stores", web::get().to(info_stores));
}

async fn versions(req: HttpRequest) -> HttpResponse {
    let base = crate::common::base_url(&req);
    let values: Vec<Value> = VERSIONS
        .iter()
        .map(|(id, status)| json!({ "id": id, "status": status, "links": [{ "rel": "self", "href": format!("{base}/v2/") }] }))
        .collect();
    HttpResponse::MultipleChoices().json(json!({ "versions": values }))
}

fn str_or_null() -> Value {
    json!({ "type": ["null", "string"] })
}

/// The image schema: the attributes Strata keeps, which are read-only, and that extra properties are strings.
pub fn image_schema_json() -> Value {
    let enum_of = |values: &[&str]| json!({ "type": ["null", "string"], "enum": values.iter().map(|v| Value::from(*v)).chain([Value::Null]).collect::<Vec<_>>() });
    json!({
        "name": "image",
        "properties": {
            "id": { "type": "string", "description": "An identifier for the image", "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$" },
            "name": { "type": ["null", "string"], "maxLength": 255 },
            "status": { "type": "string", "readOnly": true, "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"] },
            "visibility": { "type": "string", "enum": ["community", "public", "private", "shared"] },
            "protected": { "type": "boolean" },
            "os_hidden": { "type": "boolean" },
            "checksum": { "type": ["null", "string"], "readOnly": true, "maxLength": 32 },
            "os_hash_algo": { "type": ["null", "string"], "readOnly": true, "maxLength": 64 },
            "os_hash_value": { "type": ["null", "string"], "readOnly": true, "maxLength": 128 },
            "owner": { "type": ["null", "string"], "maxLength": 255 },
            "size": { "type": ["null", "integer"], "readOnly": true },
            "virtual_size": { "type": ["null", "integer"], "readOnly": true },
            "container_format": enum_of(strata_actors::image::CONTAINER_FORMATS),
            "disk_format": enum_of(strata_actors::image::DISK_FORMATS),
            "created_at": { "type": "string", "readOnly": true },
            "updated_at": { "type": "string", "readOnly": true },
            "tags": { "type": "array", "items": { "type": "string", "maxLength": 255 } },
            "direct_url": { "type": "string", "readOnly": true },
            "min_ram": { "type": "integer" },
            "min_disk": { "type": "integer" },
            "self": { "type": "string", "readOnly": true },
            "file": { "type": "string", "readOnly": true },
            "stores": { "type": "string", "readOnly": true },
            "schema": { "type": "string", "readOnly": true },
            "locations": { "type": "array", "items": {} },
            "kernel_id": str_or_null(),
            "ramdisk_id": str_or_null(),
            "instance_uuid": { "type": "string" },
            "architecture": { "type": "string" },
            "os_distro": { "type": "string" },
            "os_version": { "type": "string" },
            "description": { "type": "string" }
        },
        "additionalProperties": { "type": "string" },
        "links": [
            { "href": "{self}", "rel": "self" },
            { "href": "{file}", "rel": "enclosure" },
            { "href": "{schema}", "rel": "describedby" }
        ]
    })
}

async fn image_schema() -> HttpResponse {
    HttpResponse::Ok().json(image_schema_json())
}

async fn images_schema() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "images",
        "properties": {
            "images": { "type": "array", "items": image_schema_json() },
            "schema": { "type": "string" },
            "first": { "type": "string" },
            "next": { "type": "string" }
        },
        "links": [
            { "href": "{first}", "rel": "first" },
            { "href": "{next}", "rel": "next" },
            { "href": "{schema}", "rel": "describedby" }
        ]
    }))
}

fn member_schema_json() -> Value {
    json!({
        "name": "member",
        "properties": {
            "created_at": { "type": "string" },
            "image_id": { "type": "string" },
            "member_id": { "type": "string" },
            "schema": { "type": "string", "readOnly": true },
            "status": { "type": "string", "enum": ["pending", "accepted", "rejected"] },
            "updated_at": { "type": "string" }
        }
    })
}

async fn member_schema() -> HttpResponse {
    HttpResponse::Ok().json(member_schema_json())
}

async fn members_schema() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "members",
        "properties": { "members": { "type": "array", "items": member_schema_json() }, "schema": { "type": "string" } },
        "links": [{ "href": "{schema}", "rel": "describedby" }]
    }))
}

async fn info_import() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "import-methods": { "description": "Import methods available.", "type": "array", "value": ["glance-direct", "web-download"] }
    }))
}

/// The enabled stores (Glance multi-store); `default` only on the default one, as Glance lists it.
async fn info_stores(images: web::Data<super::Images>) -> HttpResponse {
    let stores: Vec<serde_json::Value> = images
        .store
        .list()
        .map(|(id, description, default)| {
            let mut s = json!({ "id": id, "description": description });
            if default {
                s["default"] = json!(true);
            }
            s
        })
        .collect();
    HttpResponse::Ok().json(json!({ "stores": stores }))
}
