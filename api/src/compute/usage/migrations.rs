//! os-migrations and /servers/{id}/migrations: the migrations list and a server's live migrations
//! (show, abort, force complete).

use super::*;

/// The statuses of a live migration still under way (Nova's list).
pub(super) const LIVE_IN_PROGRESS: &[&str] = &["queued", "preparing", "running", "post-migrating"];

pub(super) fn is_live_in_progress(m: &MigrationRow) -> bool {
    m.kind == "live-migration" && LIVE_IN_PROGRESS.contains(&m.status.as_str())
}

/// Nova shows its integer flavor ids; Strata's flavor ids are strings, shown as integers when they are.
pub(super) fn flavor_int(id: &str) -> Value {
    id.parse::<i64>().map_or(Value::Null, |n| json!(n))
}

pub(super) fn migration_links(req: &HttpRequest, m: &MigrationRow) -> Value {
    links(
        &crate::common::base_url(req),
        &format!("servers/{}/migrations", m.server_id),
        &m.id.to_string(),
    )
}

/// Strata's hosts are their own nodes and have no separate address, so host, node and compute are one name.
pub(super) fn migration_hosts(v: &mut Value, m: &MigrationRow) {
    v["source_compute"] = null_if_empty(&m.source_host);
    v["source_node"] = null_if_empty(&m.source_host);
    v["dest_compute"] = null_if_empty(&m.dest_host);
    v["dest_node"] = null_if_empty(&m.dest_host);
    v["dest_host"] = null_if_empty(&m.dest_host);
}

/// The fields both migration shapes gain with the microversion: `uuid` (2.59), user and project (2.80).
pub(super) fn migration_owner_fields(v: &mut Value, m: &MigrationRow, mv: Microversion) {
    if mv.0 >= 59 {
        v["uuid"] = json!(m.uuid);
    }
    if mv.0 >= 80 {
        v["user_id"] = json!(m.user_id);
        v["project_id"] = json!(m.project_id);
    }
}

pub(super) fn migration_json(req: &HttpRequest, m: &MigrationRow, mv: Microversion) -> Value {
    let mut v = json!({
        "id": m.id,
        "instance_uuid": m.server_id,
        "status": m.status,
        "created_at": m.created_at,
        "updated_at": null_if_empty(&m.updated_at),
        "old_instance_type_id": flavor_int(&m.old_flavor_id),
        "new_instance_type_id": flavor_int(&m.new_flavor_id),
    });
    migration_hosts(&mut v, m);
    if mv.0 >= 23 {
        v["migration_type"] = json!(m.kind);
        if is_live_in_progress(m) {
            v["links"] = migration_links(req, m);
        }
    }
    migration_owner_fields(&mut v, m, mv);
    v
}

pub(super) fn updated_between(
    updated_at: &str,
    since: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
) -> bool {
    if since.is_none() && before.is_none() {
        return true;
    }
    let Some(t) = parse_time(updated_at) else {
        return false;
    };
    since.is_none_or(|s| t >= s) && before.is_none_or(|b| t <= b)
}

pub(super) async fn migration_list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:os-migrations:index", &caller.project_id)?;
    let q = Query::of(&req);
    let mut allowed = vec![
        "hidden",
        "host",
        "instance_uuid",
        "source_compute",
        "status",
        "migration_type",
    ];
    if mv.0 >= 59 {
        allowed.extend(["limit", "marker", "changes-since"]);
        if mv.0 >= 66 {
            allowed.push("changes-before");
        }
        if mv.0 >= 80 {
            allowed.extend(["user_id", "project_id"]);
        }
        q.only(&allowed)?;
    }
    let (since, before) = q.changes(mv, 59, 66)?;
    let eq = |key: &str, value: &str| q.get(key).is_none_or(|v| v == value);
    let view = compute.view.snapshot();
    let mut rows: Vec<&MigrationRow> = view
        .migrations
        .iter()
        // Nova never shows hidden migrations (Strata has none), so `hidden=1` finds nothing.
        .filter(|_| {
            q.get("hidden")
                .is_none_or(|h| h == "0" || h.eq_ignore_ascii_case("false"))
        })
        .filter(|m| {
            q.get("host")
                .is_none_or(|h| m.source_host == h || m.dest_host == h)
        })
        .filter(|m| eq("status", &m.status))
        .filter(|m| eq("migration_type", &m.kind))
        .filter(|m| eq("instance_uuid", &m.server_id))
        .filter(|m| eq("source_compute", &m.source_host))
        .filter(|m| mv.0 < 80 || (eq("user_id", &m.user_id) && eq("project_id", &m.project_id)))
        .filter(|m| updated_between(&m.updated_at, since, before))
        .collect();
    let mut links = None;
    if mv.0 >= 59 {
        // Newest first, paged by uuid.
        rows.reverse();
        if let Some(marker) = q.get("marker") {
            skip_past_marker(&mut rows, marker, |m| m.uuid == marker, marker_unknown)?;
        }
        let limit = q.page_size()?;
        rows.truncate(limit);
        if let (true, Some(last)) = (rows.len() == limit, rows.last()) {
            links = Some(next_link(&req, "/v2.1/os-migrations", &q, &last.uuid));
        }
    }
    let list: Vec<Value> = rows.iter().map(|m| migration_json(&req, m, mv)).collect();
    let mut body = json!({ "migrations": list });
    if let Some(l) = links {
        body["migrations_links"] = l;
    }
    Ok(HttpResponse::Ok().json(body))
}

/// The shape of `/servers/{id}/migrations[/{id}]`.
pub(super) fn server_migration_json(m: &MigrationRow, mv: Microversion) -> Value {
    // Fake hosts copy no memory or disk, so there are no progress counters to show.
    let mut v = json!({
        "id": m.id,
        "server_uuid": m.server_id,
        "status": m.status,
        "created_at": m.created_at,
        "updated_at": null_if_empty(&m.updated_at),
        "memory_total_bytes": null,
        "memory_processed_bytes": null,
        "memory_remaining_bytes": null,
        "disk_total_bytes": null,
        "disk_processed_bytes": null,
        "disk_remaining_bytes": null,
    });
    migration_hosts(&mut v, m);
    migration_owner_fields(&mut v, m, mv);
    v
}

/// The checks every server-migrations call shares: the route's minimum microversion (404 below it, as Nova
/// answers for an unknown route), admin policy, and the server.
pub(super) fn migration_server(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    min: u32,
    action: &str,
    server_id: &str,
) -> Result<ServerRow, NovaError> {
    if mv.0 < min {
        return Err(not_in_version(req));
    }
    if !caller.is_admin {
        return Err(NovaError::policy(&format!(
            "os_compute_api:servers:migrations:{action}"
        )));
    }
    server_row(compute, caller, server_id)
}

/// A migration of this server by Nova's integer id.
pub(super) fn server_migration(
    view: &ComputeView,
    server_id: &str,
    id: &str,
) -> Result<MigrationRow, NovaError> {
    id.parse::<u64>()
        .ok()
        .and_then(|n| view.migrations.iter().find(|m| m.id == n))
        .filter(|m| m.server_id == server_id)
        .cloned()
        .ok_or_else(|| {
            NovaError::not_found(format!("Migration {id} not found for instance {server_id}"))
        })
}

pub(super) async fn server_migration_list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let server_id = path.into_inner();
    migration_server(&compute, &caller, &req, mv, 23, "index", &server_id)?;
    let view = compute.view.snapshot();
    let list: Vec<Value> = view
        .migrations
        .iter()
        .filter(|m| m.server_id == server_id && is_live_in_progress(m))
        .map(|m| server_migration_json(m, mv))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "migrations": list })))
}

pub(super) async fn server_migration_show(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (server_id, id) = path.into_inner();
    migration_server(&compute, &caller, &req, mv, 23, "show", &server_id)?;
    let m = server_migration(&compute.view.snapshot(), &server_id, &id).map_err(|_| {
        NovaError::not_found(format!(
            "In-progress live migration {id} is not found for server {server_id}."
        ))
    })?;
    if m.kind != "live-migration" {
        return Err(NovaError::not_found(format!(
            "Migration {id} for server {server_id} is not live-migration."
        )));
    }
    if !is_live_in_progress(&m) {
        return Err(NovaError::not_found(format!(
            "Live migration {id} for server {server_id} is not in progress."
        )));
    }
    Ok(HttpResponse::Ok().json(json!({ "migration": server_migration_json(&m, mv) })))
}

pub(super) fn not_migrating(s: &ServerRow, what: &str) -> NovaError {
    let state = if s.state.task_state.is_empty() {
        "None"
    } else {
        s.state.task_state.as_str()
    };
    NovaError::conflict(format!(
        "Cannot '{what}' instance {} while it is in task_state {state}",
        s.id
    ))
}

/// `DELETE /servers/{id}/migrations/{id}`: abort a live migration (2.24+).
pub(super) async fn server_migration_abort(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (server_id, id) = path.into_inner();
    let s = migration_server(&compute, &caller, &req, mv, 24, "delete", &server_id)?;
    if s.state.task_state != task::MIGRATING {
        return Err(not_migrating(&s, "abort live migration"));
    }
    let m = server_migration(&compute.view.snapshot(), &server_id, &id)?;
    let abortable: &[&str] = if mv.0 >= 65 {
        &["queued", "preparing", "running"]
    } else {
        &["running"]
    };
    if m.kind != "live-migration" || !abortable.contains(&m.status.as_str()) {
        return Err(NovaError::bad_request(format!(
            "Migration {id} state of instance {server_id} is {}. Cannot abort live migration while the migration is in this state.",
            m.status
        )));
    }
    // The engine has no way to stop a live migration half way; say so rather than pretend.
    Err(NovaError::conflict(
        "Aborting a live migration is not supported by this cloud's compute hosts; it will complete shortly.",
    ))
}

/// `POST /servers/{id}/migrations/{id}/action` with `force_complete` (2.22+).
pub(super) async fn server_migration_action(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    let (server_id, id) = path.into_inner();
    let s = migration_server(
        &compute,
        &caller,
        &req,
        mv,
        22,
        "force_complete",
        &server_id,
    )?;
    let v = parse_json(&body)?;
    match v.as_object() {
        Some(o) if o.len() == 1 && o.contains_key("force_complete") => {}
        _ => {
            return Err(NovaError::bad_request(
                "Invalid input for field/attribute force_complete. 'force_complete' is a required property",
            ))
        }
    }
    if s.state.task_state != task::MIGRATING {
        return Err(not_migrating(&s, "force_complete"));
    }
    let m = server_migration(&compute.view.snapshot(), &server_id, &id)
        .map_err(|e| NovaError::bad_request(e.message))?;
    if m.kind != "live-migration" || m.status != "running" {
        return Err(NovaError::bad_request(format!(
            "Migration {id} state of instance {server_id} is {}. Cannot force complete while the migration is in this state.",
            m.status
        )));
    }
    // Fake hosts copy no memory, so a running live migration is already going as fast as it can: there is
    // nothing to force, and it completes on its own (Nova's own fake driver does the same).
    Ok(HttpResponse::Accepted().finish())
}
