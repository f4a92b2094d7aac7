//! `/v3/snapshots`: create (quota first, holder `snapshot:<id>`), list, detail, show, update, delete, and
//! metadata (`metadata.rs`). The volume service takes and deletes the snapshots on the backends.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::volume::{status as st, SnapshotCommand};
use strata_projections::volume::SnapshotRow;

use super::{
    body_object, check_filters, list_route, metadata_filter, metadata_map, nullable, only_keys,
    param, parse_bool, parse_json, query_flag, query_value, resource, text_matches, text_or_legacy,
    Caller, CinderError, Listed, Microversion, Page, SortValue, Volumes,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/snapshots")
            .route(list_route(listing, false))
            .route(web::post().to(create)),
    )
    .service(resource("/snapshots/detail").route(list_route(listing, true)))
    .service(
        resource("/snapshots/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    );
    super::metadata::configure::<super::metadata::SnapshotMetadata>(cfg, "snapshots");
    cfg.service(resource("/snapshots/{id}/action").route(web::post().to(action)));
}

fn progress(status: &str) -> &'static str {
    match status {
        "available" => "100%",
        _ => "0%",
    }
}

fn snapshot_json(mv: Microversion, row: &SnapshotRow, detail: bool) -> Value {
    let s = &row.state;
    let mut out = json!({
        "id": row.id,
        "created_at": row.created_at,
        "updated_at": nullable(&row.updated_at),
        "name": nullable(&s.name),
        "description": nullable(&s.description),
        "volume_id": s.volume_id,
        "status": s.status,
        "size": s.size_gb,
        "metadata": s.metadata,
    });
    if detail {
        out["os-extended-snapshot-attributes:progress"] = json!(progress(&s.status));
        out["os-extended-snapshot-attributes:project_id"] = json!(s.project_id);
        if mv.at_least(14) {
            out["group_snapshot_id"] = Value::Null;
        }
        if mv.at_least(41) {
            out["user_id"] = json!(s.user_id);
        }
        if mv.at_least(65) {
            out["consumes_quota"] = json!(true);
        }
    }
    out
}

const SNAPSHOT_FILTERS: &[&str] = &[
    "name",
    "status",
    "volume_id",
    "metadata",
    "availability_zone",
    "consumes_quota",
];

const SNAPSHOT_SORT_KEYS: &[&str] = &[
    "id",
    "name",
    "display_name",
    "status",
    "size",
    "volume_size",
    "created_at",
    "updated_at",
    "volume_id",
    "project_id",
];

impl Listed for SnapshotRow {
    const SORT_KEYS: &'static [&'static str] = SNAPSHOT_SORT_KEYS;
    fn id(&self) -> &str {
        &self.id
    }
    fn sort_value(&self, key: &str) -> Option<SortValue> {
        let s = &self.state;
        Some(match key {
            "id" => SortValue::Text(self.id.clone()),
            "name" | "display_name" => SortValue::Text(s.name.clone()),
            "status" => SortValue::Text(s.status.clone()),
            "size" | "volume_size" => SortValue::Int(s.size_gb as i64),
            "created_at" => SortValue::Text(self.created_at.clone()),
            "updated_at" => SortValue::Text(self.updated_at.clone()),
            "volume_id" => SortValue::Text(s.volume_id.clone()),
            "project_id" => SortValue::Text(s.project_id.clone()),
            _ => return None,
        })
    }
}

fn listing(
    vols: &Volumes,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    detail: bool,
) -> Result<HttpResponse, CinderError> {
    let q = crate::common::query_pairs(req);
    check_filters(caller, mv, &q, SNAPSHOT_FILTERS)?;
    let page = Page::parse(&q, mv)?;
    let get = |k: &str| query_value(&q, k);
    let all_tenants = caller.is_admin && query_flag(&q, "all_tenants")?;
    let metadata = get("metadata").map(metadata_filter).transpose()?;
    let az = get("availability_zone");
    let rows: Vec<SnapshotRow> = {
        let view = vols.view.snapshot();
        view.snapshots
            .values()
            .filter(|r| {
                let s = &r.state;
                (if all_tenants {
                    get("project_id").is_none_or(|p| p == s.project_id)
                } else {
                    s.project_id == caller.project_id
                }) && text_matches(&q, "name", &s.name)
                    && text_matches(&q, "status", &s.status)
                    && text_matches(&q, "volume_id", &s.volume_id)
                    && metadata
                        .as_ref()
                        .is_none_or(|m| m.iter().all(|(k, v)| s.metadata.get(k) == Some(v)))
                    && az.is_none_or(|z| {
                        view.volume(&s.volume_id)
                            .is_some_and(|v| v.state.availability_zone == z)
                    })
            })
            .cloned()
            .collect()
    };
    page.answer(req, &q, "snapshots", rows, |r| snapshot_json(mv, r, detail))
}

async fn show(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    let row = vols.snapshot(&caller, &param(&req, "id"))?;
    Ok(HttpResponse::Ok().json(json!({ "snapshot": snapshot_json(mv, &row, true) })))
}

const CREATE_KEYS: &[&str] = &[
    "name",
    "display_name",
    "description",
    "display_description",
    "volume_id",
    "force",
    "metadata",
];

async fn create(
    vols: web::Data<Volumes>,
    caller: Caller,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:create_snapshot")?;
    let v = parse_json(&body)?;
    let m = body_object(&v, "snapshot")?;
    only_keys(m, CREATE_KEYS)?;
    let volume_id =
        match m.get("volume_id") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(CinderError::bad_request(
                "Invalid input for field/attribute snapshot. 'volume_id' is a required property",
            )),
        };
    let force = match m.get("force") {
        None | Some(Value::Null) => None,
        Some(f) => Some(parse_bool(f, "force")?),
    };
    if mv.at_least(66) && force == Some(false) {
        return Err(CinderError::bad_request(
            "Since microversion 3.66 the 'force' flag is invalid for this request.  For backward compatability, however, when the 'force' flag is passed with a value evaluating to True, it is silently ignored.",
        ));
    }
    let name = text_or_legacy(m, "name", "display_name")?.unwrap_or_default();
    let description = text_or_legacy(m, "description", "display_description")?.unwrap_or_default();
    let metadata = m
        .get("metadata")
        .map(|x| metadata_map(x, "metadata"))
        .transpose()?
        .unwrap_or_default();
    let volume = vols.volume(&caller, &volume_id)?;
    let vs = &volume.state;
    if vs.host.is_empty() {
        return Err(CinderError::invalid_volume(
            "The snapshot cannot be created because volume has not been scheduled to any host.",
        ));
    }
    if vs.status == st::ERROR {
        return Err(CinderError::invalid_volume(
            "The snapshot cannot be created when the volume is in error status.",
        ));
    }
    let allowed: &[&str] = if force == Some(true) || mv.at_least(66) {
        &[st::AVAILABLE, st::IN_USE]
    } else {
        &[st::AVAILABLE]
    };
    if !allowed.contains(&vs.status.as_str()) {
        return Err(CinderError::invalid_volume(format!(
            "Volume {volume_id} status must be {}, but current status is: {}.",
            allowed.join(", "),
            vs.status
        )));
    }
    let request = strata_volume::service::NewSnapshot {
        name,
        description,
        metadata,
    };
    let id = strata_volume::service::create_snapshot(&vols, &caller, &volume, request).await?;
    let row = vols.snapshot(&caller, &id)?;
    Ok(HttpResponse::Accepted().json(json!({ "snapshot": snapshot_json(mv, &row, true) })))
}

async fn update(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:update_snapshot")?;
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    let m = body_object(&v, "snapshot")?;
    only_keys(
        m,
        &["name", "description", "display_name", "display_description"],
    )?;
    let name = text_or_legacy(m, "name", "display_name")?;
    let description = text_or_legacy(m, "description", "display_description")?;
    if name.is_none() && description.is_none() {
        return Err(CinderError::bad_request(
            "Invalid input for field/attribute snapshot. It must have at least one of name, description.",
        ));
    }
    let row = vols.snapshot(&caller, &id)?;
    let cmd = SnapshotCommand::Update {
        name: name.unwrap_or(row.state.name.clone()),
        description: description.unwrap_or(row.state.description.clone()),
    };
    vols.run(&vols.snapshots, &id, cmd, &caller.meta).await?;
    let row = vols.snapshot(&caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "snapshot": snapshot_json(mv, &row, true) })))
}

async fn delete(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:delete_snapshot")?;
    begin_delete(&vols, &caller, &param(&req, "id")).await
}

/// Start deleting snapshot `id`, which `caller` must be able to see (the volume service removes it from
/// the backend).
async fn begin_delete(
    vols: &Volumes,
    caller: &Caller,
    id: &str,
) -> Result<HttpResponse, CinderError> {
    vols.snapshot(caller, id)?;
    vols.run(
        &vols.snapshots,
        id,
        SnapshotCommand::BeginDelete,
        &caller.meta,
    )
    .await?;
    Ok(HttpResponse::Accepted().finish())
}

async fn action(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    let Some(name) = v.as_object().and_then(|m| m.keys().next()) else {
        return Err(CinderError::bad_request("Malformed request body"));
    };
    match name.as_str() {
        "os-force_delete" => {
            caller.enforce("volume_extension:snapshot_admin_actions:force_delete")?;
            begin_delete(&vols, &caller, &id).await
        }
        "os-reset_status" | "os-update_snapshot_status" | "os-unmanage" => {
            Err(CinderError::not_implemented(format!(
                "The {name} action is not supported by this deployment."
            )))
        }
        other => Err(CinderError::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}
