//! Nova's bookkeeping APIs: quota sets (and the default quota class), absolute limits, server groups, simple
//! tenant usage, migrations (`os-migrations` and a server's in-progress live migrations) and instance actions.
//!
//! Everything here reads `ComputeView`; only quota updates and server groups send commands. Field sets follow
//! the negotiated microversion up to 2.81 (network quotas until 2.36, file quotas until 2.57, `policy`/`rules`
//! from 2.64, paging from 2.40 / 2.58 / 2.59, user and project ids on migrations from 2.80).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha224};
use strata_actors::compute::quota::{QuotaCommand, QUOTA_NAMES};
use strata_actors::compute::server::task;
use strata_actors::compute::ServerGroupCommand;
use strata_projections::compute::{ActionRow, ComputeView, GroupRow, MigrationRow, ServerRow};

use strata_actors::compute::quota::UsageCommand;

use super::{Caller, Compute, Microversion, NovaError};
use crate::identity::Identity;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.1/os-quota-sets/{project_id}")
            .route(web::get().to(quota_show))
            .route(web::put().to(quota_update))
            .route(web::delete().to(quota_delete)),
    )
    .route(
        "/v2.1/os-quota-sets/{project_id}/detail",
        web::get().to(quota_detail),
    )
    .route(
        "/v2.1/os-quota-sets/{project_id}/defaults",
        web::get().to(quota_defaults),
    )
    .route(
        "/v2.1/os-quota-class-sets/{class}",
        web::get().to(quota_class_show),
    )
    .route("/v2.1/limits", web::get().to(limits))
    .service(
        web::resource("/v2.1/os-server-groups")
            .route(web::get().to(group_list))
            .route(web::post().to(group_create)),
    )
    .service(
        web::resource("/v2.1/os-server-groups/{id}")
            .route(web::get().to(group_show))
            .route(web::delete().to(group_delete)),
    )
    .route("/v2.1/os-simple-tenant-usage", web::get().to(usage_list))
    .route(
        "/v2.1/os-simple-tenant-usage/{tenant_id}",
        web::get().to(usage_show),
    )
    .route("/v2.1/os-migrations", web::get().to(migration_list))
    .route(
        "/v2.1/servers/{server_id}/migrations",
        web::get().to(server_migration_list),
    )
    .service(
        web::resource("/v2.1/servers/{server_id}/migrations/{id}")
            .route(web::get().to(server_migration_show))
            .route(web::delete().to(server_migration_abort)),
    )
    .route(
        "/v2.1/servers/{server_id}/migrations/{id}/action",
        web::post().to(server_migration_action),
    )
    .route(
        "/v2.1/servers/{server_id}/os-instance-actions",
        web::get().to(action_list),
    )
    .route(
        "/v2.1/servers/{server_id}/os-instance-actions/{request_id}",
        web::get().to(action_show),
    );
}

// ---------------------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------------------

/// Nova's `max_limit`: the largest page any list returns.
const MAX_LIMIT: usize = 1000;
/// Nova's `db.MAX_INT`, the largest quota limit.
const MAX_QUOTA: i64 = 0x7FFF_FFFF;

/// `changes-since` and `changes-before`, when given.
type Changes = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A request's query parameters (decoded, repeated keys kept).
struct Query(Vec<(String, String)>);

impl Query {
    fn of(req: &HttpRequest) -> Self {
        Query(crate::common::query_pairs(req))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// 400 for a parameter outside `allowed` (Nova's query schemas with `additionalProperties: False`).
    fn only(&self, allowed: &[&str]) -> Result<(), NovaError> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(NovaError::bad_request(format!(
                "Invalid input for query parameters {k}. Additional properties are not allowed ('{k}' was unexpected)"
            ))),
            None => Ok(()),
        }
    }

    /// A non-negative integer parameter.
    fn count(&self, key: &str) -> Result<Option<usize>, NovaError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n as usize)),
            Ok(_) => Err(NovaError::bad_request(format!(
                "{key} param must be positive"
            ))),
            Err(_) => Err(NovaError::bad_request(format!(
                "{key} param must be an integer"
            ))),
        }
    }

    /// Nova's page size: `limit` capped at `max_limit` (0 or absent = `max_limit`).
    fn page_size(&self) -> Result<usize, NovaError> {
        Ok(match self.count("limit")? {
            Some(0) | None => MAX_LIMIT,
            Some(n) => n.min(MAX_LIMIT),
        })
    }

    fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, NovaError> {
        self.get(key)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    NovaError::bad_request(format!(
                        "Invalid input for query parameters {key}. Value: {v}. '{v}' is not a 'date-time'"
                    ))
                })
            })
            .transpose()
    }

    /// `changes-since` and (from `before_from`) `changes-before`, checked against each other.
    fn changes(
        &self,
        mv: Microversion,
        since_from: u32,
        before_from: u32,
    ) -> Result<Changes, NovaError> {
        let since = if mv.0 >= since_from {
            self.time("changes-since")?
        } else {
            None
        };
        let before = if mv.0 >= before_from {
            self.time("changes-before")?
        } else {
            None
        };
        if let (Some(s), Some(b)) = (since, before) {
            if b < s {
                return Err(NovaError::bad_request(
                    "The value of changes-since must be less than or equal to changes-before.",
                ));
            }
        }
        Ok((since, before))
    }
}

/// ISO 8601 / RFC 3339 with or without an offset (UTC when none), with `T` or a space, optional fraction;
/// also a bare date. A `+` decoded as a space in a query string is read as `+` again.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let fixed;
    let s = match s.split_once('T') {
        Some((d, t)) if t.contains(' ') => {
            fixed = format!("{d}T{}", t.replace(' ', "+"));
            fixed.as_str()
        }
        _ => s,
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = s.trim_end_matches('Z');
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(naive, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Nova's own timestamp format in usage reports (naive UTC with microseconds).
fn usage_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

fn null_if_empty(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        json!(s)
    }
}

/// Nova's `hostId`: SHA-224 of project id + host, hex ("" without a host).
fn host_id(project_id: &str, host: &str) -> String {
    if host.is_empty() {
        return String::new();
    }
    let mut h = Sha224::new();
    h.update(project_id.as_bytes());
    h.update(host.as_bytes());
    hex::encode(h.finalize())
}

/// `[{"rel": "next", "href": ...}]`: this request's parameters with `marker` set (sorted, as Nova does).
fn next_link(req: &HttpRequest, path: &str, q: &Query, marker: &str) -> Value {
    let mut params: Vec<(String, String)> =
        q.0.iter().filter(|(k, _)| k != "marker").cloned().collect();
    params.push(("marker".into(), marker.into()));
    params.sort();
    let qs: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", crate::common::encode(k), crate::common::encode(v)))
        .collect();
    json!([{
        "rel": "next",
        "href": format!("{}{path}?{}", crate::common::base_url(req), qs.join("&")),
    }])
}

fn parse_json(body: &[u8]) -> Result<Value, NovaError> {
    serde_json::from_slice(body)
        .map_err(|e| NovaError::bad_request(format!("Malformed request body: {e}")))
}

/// The one top-level object `key` of a request body (no other top-level keys, as Nova's schemas say).
fn body_object(v: &Value, key: &str) -> Result<Map<String, Value>, NovaError> {
    let Some(top) = v.as_object() else {
        return Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute {key}. '{key}' is a required property"
        )));
    };
    if let Some(other) = top.keys().find(|k| *k != key) {
        return Err(NovaError::bad_request(format!(
            "Additional properties are not allowed ('{other}' was unexpected)"
        )));
    }
    match top.get(key) {
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {other}. {other} is not of type 'object'"
        ))),
        None => Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute {key}. '{key}' is a required property"
        ))),
    }
}

/// An integer given as a JSON integer or a string of digits (Nova's `['integer', 'string']` with a pattern).
fn int_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Nova's `parameter_types.boolean`.
fn bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_lowercase().as_str() {
            "true" | "1" | "on" | "yes" | "y" | "t" => Some(true),
            "false" | "0" | "off" | "no" | "n" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A server as the caller may see it: admins see every project's, others only their own (404 otherwise, so
/// other projects' server ids are not revealed). Deleted servers only with `allow_deleted`.
fn visible_server(
    view: &ComputeView,
    caller: &Caller,
    id: &str,
    allow_deleted: bool,
) -> Result<ServerRow, NovaError> {
    view.servers
        .get(id)
        .filter(|s| allow_deleted || !s.is_deleted())
        .filter(|s| caller.is_admin || s.state.project_id == caller.project_id)
        .map(|s| ServerRow::clone(s))
        .ok_or_else(|| NovaError::not_found(format!("Instance {id} could not be found.")))
}

// ---------------------------------------------------------------------------------------------------------
// Quotas and limits
// ---------------------------------------------------------------------------------------------------------

/// The nova-network quotas (shown as unlimited until 2.36; Strata has no nova-network).
const NETWORK_QUOTAS: &[&str] = &[
    "fixed_ips",
    "floating_ips",
    "security_group_rules",
    "security_groups",
];
/// The personality (injected file) quotas, gone from 2.57.
const FILE_QUOTAS: &[&str] = &[
    "injected_files",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
];

/// The quota names os-quota-sets shows and accepts at this microversion.
fn quota_names(mv: Microversion) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = QUOTA_NAMES
        .iter()
        .copied()
        .filter(|n| mv.0 < 57 || !FILE_QUOTAS.contains(n))
        .collect();
    if mv.0 < 36 {
        names.extend(NETWORK_QUOTAS);
    }
    names.sort_unstable();
    names
}

/// What a project uses of each quota. `user` is whose keypairs count (keypairs belong to users).
fn quota_usage(
    view: &ComputeView,
    project_id: &str,
    user: Option<&str>,
) -> BTreeMap<&'static str, i64> {
    let used = view.usage_of(project_id);
    let groups = view
        .groups
        .values()
        .filter(|g| g.state.project_id == project_id)
        .count() as i64;
    let key_pairs = user.map_or(0, |u| view.keypairs_of(u).count() as i64);
    BTreeMap::from([
        ("instances", used.instances),
        ("cores", used.cores),
        ("ram", used.ram),
        ("server_groups", groups),
        ("key_pairs", key_pairs),
    ])
}

fn limit_of(limits: &BTreeMap<String, i64>, name: &str) -> i64 {
    limits.get(name).copied().unwrap_or(-1)
}

fn quota_set_json(mv: Microversion, id: Option<&str>, limits: &BTreeMap<String, i64>) -> Value {
    let mut set = Map::new();
    if let Some(id) = id {
        set.insert("id".into(), json!(id));
    }
    for name in quota_names(mv) {
        set.insert(name.into(), json!(limit_of(limits, name)));
    }
    json!({ "quota_set": set })
}

/// Nova checks the project exists (in Keystone) before showing or setting its quotas.
fn check_project(identity: &Identity, id: &str) -> Result<(), NovaError> {
    if identity.view.snapshot().projects.contains_key(id) {
        Ok(())
    } else {
        Err(NovaError::bad_request(format!(
            "Project ID {id} is not a valid project."
        )))
    }
}

/// Who may read a project's quotas: its members and admins; `user_id` names another user only for admins.
fn quota_reader(
    caller: &Caller,
    project_id: &str,
    q: &Query,
    mv: Microversion,
    action: &str,
) -> Result<Option<String>, NovaError> {
    if !caller.is_admin && caller.project_id != project_id {
        return Err(NovaError::policy(&format!(
            "os_compute_api:os-quota-sets:{action}"
        )));
    }
    if mv.0 >= 75 {
        q.only(&["user_id"])?;
    }
    match q.get("user_id") {
        Some(u) if !caller.is_admin && u != caller.auth.user_id => Err(NovaError::policy(
            &format!("os_compute_api:os-quota-sets:{action}"),
        )),
        Some(u) => Ok(Some(u.to_string())),
        None => Ok(None),
    }
}

async fn quota_show(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let project_id = path.into_inner();
    let q = Query::of(&req);
    // Strata keeps quotas per project only; a user's quotas are the project's.
    quota_reader(&caller, &project_id, &q, mv, "show")?;
    check_project(&identity, &project_id)?;
    let limits = compute.limits(&project_id);
    Ok(HttpResponse::Ok().json(quota_set_json(mv, Some(&project_id), &limits)))
}

async fn quota_detail(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let project_id = path.into_inner();
    let q = Query::of(&req);
    let user = quota_reader(&caller, &project_id, &q, mv, "detail")?;
    check_project(&identity, &project_id)?;
    // Keypairs are counted for the named user, else for the caller when it asks about its own project.
    let user =
        user.or_else(|| (caller.project_id == project_id).then(|| caller.auth.user_id.clone()));
    let limits = compute.limits(&project_id);
    let used = quota_usage(&compute.view.snapshot(), &project_id, user.as_deref());
    let mut set = Map::new();
    set.insert("id".into(), json!(project_id));
    for name in quota_names(mv) {
        set.insert(
            name.into(),
            json!({
                "limit": limit_of(&limits, name),
                "in_use": used.get(name).copied().unwrap_or(0),
                "reserved": 0,
            }),
        );
    }
    Ok(HttpResponse::Ok().json(json!({ "quota_set": set })))
}

async fn quota_defaults(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    _caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let project_id = path.into_inner();
    check_project(&identity, &project_id)?;
    Ok(HttpResponse::Ok().json(quota_set_json(
        mv,
        Some(&project_id),
        &compute.default_limits,
    )))
}

async fn quota_update(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:os-quota-sets:update", &caller.project_id)?;
    let project_id = path.into_inner();
    let q = Query::of(&req);
    if mv.0 >= 75 {
        q.only(&["user_id"])?;
    }
    check_project(&identity, &project_id)?;
    if q.has("user_id") {
        return Err(NovaError::bad_request(
            "Per-user quotas are not supported: set the project's quotas instead.",
        ));
    }
    let set = body_object(&parse_json(&body)?, "quota_set")?;
    let names = quota_names(mv);
    let mut force = false;
    let mut values = BTreeMap::new();
    for (key, value) in &set {
        if key == "force" {
            force = bool_value(value).ok_or_else(|| {
                NovaError::bad_request(format!(
                    "Invalid input for field/attribute force. Value: {value}. {value} is not one of the boolean values"
                ))
            })?;
            continue;
        }
        if !names.contains(&key.as_str()) {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute quota_set. Value: {}. Additional properties are not allowed ('{key}' was unexpected)",
                Value::Object(set.clone())
            )));
        }
        let n = int_value(value).ok_or_else(|| {
            NovaError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {value}. {value} is not of type 'integer', 'string'"
            ))
        })?;
        if n < -1 {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {n}. {n} is less than the minimum of -1"
            )));
        }
        if n > MAX_QUOTA {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {n}. {n} is greater than the maximum of {MAX_QUOTA}"
            )));
        }
        // The nova-network quotas (before 2.36) are accepted and have no effect: there is no nova-network.
        if !NETWORK_QUOTAS.contains(&key.as_str()) {
            values.insert(key.clone(), n);
        }
    }
    if !force {
        // Like Nova, a limit below what the project already uses is refused unless forced. Keypairs are
        // counted per user and server group members per group, so neither limits a project-wide setting.
        let used = quota_usage(&compute.view.snapshot(), &project_id, None);
        for (key, &limit) in &values {
            let in_use = used.get(key.as_str()).copied().unwrap_or(0);
            if key != "key_pairs" && limit != -1 && limit < in_use {
                return Err(NovaError::bad_request(format!(
                    "Quota limit {limit} for {key} must be greater than or equal to already used and reserved {in_use}."
                )));
            }
        }
    }
    if !values.is_empty() {
        compute
            .run(
                &compute.quotas,
                &project_id,
                QuotaCommand::Set(values),
                &caller.meta,
            )
            .await?;
    }
    let limits = compute.limits(&project_id);
    Ok(HttpResponse::Ok().json(quota_set_json(mv, None, &limits)))
}

async fn quota_delete(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:os-quota-sets:delete", &caller.project_id)?;
    let q = Query::of(&req);
    if mv.0 >= 75 {
        q.only(&["user_id"])?;
    }
    if q.has("user_id") {
        return Err(NovaError::bad_request(
            "Per-user quotas are not supported: reset the project's quotas instead.",
        ));
    }
    let project_id = path.into_inner();
    compute
        .run(
            &compute.quotas,
            &project_id,
            QuotaCommand::Reset,
            &caller.meta,
        )
        .await?;
    Ok(HttpResponse::Accepted().finish())
}

/// `GET /os-quota-class-sets/{class}`: every class shows the defaults (Strata has no other classes).
async fn quota_class_show(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    caller.enforce(
        "os_compute_api:os-quota-class-sets:show",
        &caller.project_id,
    )?;
    let class = path.into_inner();
    let mut set = Map::new();
    set.insert("id".into(), json!(class));
    // Before 2.50 the class set shows the network quotas but not the server group ones.
    let mut names: Vec<&str> = QUOTA_NAMES
        .iter()
        .copied()
        .filter(|n| mv.0 < 57 || !FILE_QUOTAS.contains(n))
        .filter(|n| mv.0 >= 50 || !n.starts_with("server_group"))
        .collect();
    if mv.0 < 50 {
        names.extend(NETWORK_QUOTAS);
    }
    for name in names {
        set.insert(name.into(), json!(limit_of(&compute.default_limits, name)));
    }
    Ok(HttpResponse::Ok().json(json!({ "quota_class_set": set })))
}

async fn limits(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    let q = Query::of(&req);
    if mv.0 >= 75 {
        q.only(&["tenant_id", "reserved"])?;
    }
    let project_id = match q.get("tenant_id") {
        Some(t) if t != caller.project_id && !caller.is_admin => {
            return Err(NovaError::policy("os_compute_api:limits:other_project"))
        }
        Some(t) if !t.is_empty() => t.to_string(),
        _ => caller.project_id.clone(),
    };
    let limits = compute.limits(&project_id);
    let used = quota_usage(&compute.view.snapshot(), &project_id, None);
    let l = |n: &str| json!(limit_of(&limits, n));
    let u = |n: &str| json!(used.get(n).copied().unwrap_or(0));
    let mut abs = Map::new();
    for (k, v) in [
        ("maxServerMeta", l("metadata_items")),
        ("maxTotalInstances", l("instances")),
        ("maxTotalCores", l("cores")),
        ("maxTotalRAMSize", l("ram")),
        ("maxTotalKeypairs", l("key_pairs")),
        ("maxServerGroups", l("server_groups")),
        ("maxServerGroupMembers", l("server_group_members")),
        ("totalInstancesUsed", u("instances")),
        ("totalCoresUsed", u("cores")),
        ("totalRAMUsed", u("ram")),
        ("totalServerGroupsUsed", u("server_groups")),
    ] {
        abs.insert(k.into(), v);
    }
    if mv.0 < 57 {
        abs.insert("maxPersonality".into(), l("injected_files"));
        abs.insert(
            "maxPersonalitySize".into(),
            l("injected_file_content_bytes"),
        );
    }
    if mv.0 < 39 {
        abs.insert("maxImageMeta".into(), l("metadata_items"));
    }
    if mv.0 < 36 {
        for k in [
            "maxSecurityGroupRules",
            "maxSecurityGroups",
            "maxTotalFloatingIps",
        ] {
            abs.insert(k.into(), json!(-1));
        }
        for k in ["totalSecurityGroupsUsed", "totalFloatingIpsUsed"] {
            abs.insert(k.into(), json!(0));
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "limits": { "rate": [], "absolute": abs } })))
}

// ---------------------------------------------------------------------------------------------------------
// Server groups
// ---------------------------------------------------------------------------------------------------------

fn group_json(view: &ComputeView, g: &GroupRow, mv: Microversion) -> Value {
    let s = &g.state;
    // Members deleted since they joined are not shown.
    let members: Vec<&String> = s
        .members
        .iter()
        .filter(|m| view.servers.get(*m).is_none_or(|r| !r.is_deleted()))
        .collect();
    let mut v = json!({ "id": g.id, "name": s.name, "members": members });
    if mv.0 >= 64 {
        v["policy"] = json!(s.policy);
        v["rules"] = if s.max_server_per_host > 0 {
            json!({ "max_server_per_host": s.max_server_per_host })
        } else {
            json!({})
        };
    } else {
        v["policies"] = json!([s.policy]);
        v["metadata"] = json!({});
    }
    if mv.0 >= 13 {
        v["project_id"] = json!(s.project_id);
        v["user_id"] = json!(s.user_id);
    }
    v
}

fn visible_group(view: &ComputeView, caller: &Caller, id: &str) -> Result<GroupRow, NovaError> {
    view.group(id)
        .filter(|g| caller.is_admin || g.state.project_id == caller.project_id)
        .cloned()
        .ok_or_else(|| NovaError::not_found(format!("Instance group {id} could not be found.")))
}

async fn group_list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    let q = Query::of(&req);
    // Nova lists every project's groups when an admin passes `all_projects`; others get their own.
    let all = caller.is_admin
        && q.has("all_projects")
        && q.get("all_projects")
            .is_none_or(|v| bool_value(&json!(v)) != Some(false));
    let offset = q.count("offset")?.unwrap_or(0);
    let limit = q.page_size()?;
    let view = compute.view.snapshot();
    let mut rows: Vec<&GroupRow> = view
        .groups
        .values()
        .filter(|g| all || g.state.project_id == caller.project_id)
        .collect();
    rows.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
    let groups: Vec<Value> = rows
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|g| group_json(&view, g, mv))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "server_groups": groups })))
}

fn bad_group(field: &str, why: impl std::fmt::Display) -> NovaError {
    NovaError::bad_request(format!("Invalid input for field/attribute {field}. {why}"))
}

/// The policy, name and max_server_per_host of a create request, in the shape of its microversion.
fn parse_group(body: &[u8], mv: Microversion) -> Result<(String, String, i64), NovaError> {
    let g = body_object(&parse_json(body)?, "server_group")?;
    let allowed: &[&str] = if mv.0 >= 64 {
        &["name", "policy", "rules"]
    } else {
        &["name", "policies"]
    };
    if let Some(k) = g.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad_group(
            "server_group",
            format!("Additional properties are not allowed ('{k}' was unexpected)"),
        ));
    }
    let name = match g.get("name") {
        Some(Value::String(n)) => n.clone(),
        Some(other) => {
            return Err(bad_group(
                "name",
                format!("Value: {other}. {other} is not of type 'string'"),
            ))
        }
        None => return Err(bad_group("server_group", "'name' is a required property")),
    };
    if name.is_empty() || name.chars().count() > 255 {
        return Err(bad_group(
            "name",
            format!("Value: {name}. The name must be 1 to 255 characters long"),
        ));
    }
    if name.trim() != name {
        return Err(bad_group(
            "name",
            format!("Value: {name}. Leading and trailing whitespace is not allowed"),
        ));
    }
    let mut allowed_policies = vec!["anti-affinity", "affinity"];
    if mv.0 >= 15 {
        allowed_policies.extend(["soft-anti-affinity", "soft-affinity"]);
    }
    let check = |p: &Value, field: &str| -> Result<String, NovaError> {
        match p.as_str() {
            Some(s) if allowed_policies.contains(&s) => Ok(s.to_string()),
            _ => Err(bad_group(
                field,
                format!("Value: {p}. {p} is not one of {allowed_policies:?}"),
            )),
        }
    };
    if mv.0 >= 64 {
        let policy = check(
            g.get("policy")
                .ok_or_else(|| bad_group("server_group", "'policy' is a required property"))?,
            "policy",
        )?;
        let mut max = 0;
        match g.get("rules") {
            None => {}
            Some(Value::Object(rules)) => {
                if let Some(k) = rules.keys().find(|k| *k != "max_server_per_host") {
                    return Err(bad_group(
                        "rules",
                        format!("Additional properties are not allowed ('{k}' was unexpected)"),
                    ));
                }
                if let Some(v) = rules.get("max_server_per_host") {
                    max = int_value(v).filter(|n| *n >= 1).ok_or_else(|| {
                        bad_group(
                            "max_server_per_host",
                            format!("Value: {v}. {v} is not a positive integer"),
                        )
                    })?;
                }
                if !rules.is_empty() && policy != "anti-affinity" {
                    return Err(NovaError::bad_request(
                        "Only anti-affinity policy supports rules.",
                    ));
                }
            }
            Some(other) => {
                return Err(bad_group(
                    "rules",
                    format!("Value: {other}. {other} is not of type 'object'"),
                ))
            }
        }
        Ok((name, policy, max))
    } else {
        let policies = match g.get("policies") {
            Some(Value::Array(p)) => p,
            Some(other) => {
                return Err(bad_group(
                    "policies",
                    format!("Value: {other}. {other} is not of type 'array'"),
                ))
            }
            None => {
                return Err(bad_group(
                    "server_group",
                    "'policies' is a required property",
                ))
            }
        };
        if policies.len() != 1 {
            return Err(bad_group(
                "policies",
                format!(
                    "Value: {}. Exactly one policy must be given",
                    Value::Array(policies.clone())
                ),
            ));
        }
        Ok((name, check(&policies[0], "policies")?, 0))
    }
}

async fn group_create(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:os-server-groups:create", &caller.project_id)?;
    let (name, policy, max_server_per_host) = parse_group(&body, mv)?;
    // The group quota is a counted holder on the project's usage stream: one append with the expected
    // version, so concurrent creates cannot both take the last slot.
    let limit = limit_of(&compute.limits(&caller.project_id), "server_groups");
    let id = uuid::Uuid::new_v4().to_string();
    compute
        .usage
        .execute(
            &caller.project_id,
            UsageCommand::Count {
                holder: format!("group:{id}"),
                resource: "server_groups".into(),
                scope: String::new(),
                limit,
            },
            caller.meta.clone(),
        )
        .await?;
    let created = compute
        .run(
            &compute.groups,
            &id,
            ServerGroupCommand::Create {
                project_id: caller.project_id.clone(),
                user_id: caller.auth.user_id.clone(),
                name,
                policy,
                max_server_per_host,
            },
            &caller.meta,
        )
        .await;
    if let Err(e) = created {
        release_counted(
            &compute,
            &caller.project_id,
            &format!("group:{id}"),
            &caller,
        )
        .await;
        return Err(e);
    }
    let view = compute.view.snapshot();
    let g = view.group(&id).ok_or_else(|| {
        NovaError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server group was created but is not visible yet; retry the request.",
        )
    })?;
    Ok(HttpResponse::Ok().json(json!({ "server_group": group_json(&view, g, mv) })))
}

async fn group_show(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let view = compute.view.snapshot();
    let g = visible_group(&view, &caller, &path.into_inner())?;
    Ok(HttpResponse::Ok().json(json!({ "server_group": group_json(&view, &g, mv) })))
}

async fn group_delete(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let id = path.into_inner();
    let project = visible_group(&compute.view.snapshot(), &caller, &id)?
        .state
        .project_id
        .clone();
    caller.enforce("os_compute_api:os-server-groups:delete", &project)?;
    compute
        .run(
            &compute.groups,
            &id,
            ServerGroupCommand::Delete,
            &caller.meta,
        )
        .await
        .map_err(|e| {
            if e.status == StatusCode::NOT_FOUND {
                NovaError::not_found(format!("Instance group {id} could not be found."))
            } else {
                e
            }
        })?;
    release_counted(&compute, &project, &format!("group:{id}"), &caller).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Give back a counted quota holder (a server group or keypair).
pub(super) async fn release_counted(
    compute: &Compute,
    stream: &str,
    holder: &str,
    caller: &Caller,
) {
    if let Err(e) = compute
        .usage
        .execute(
            stream,
            UsageCommand::Release {
                holder: holder.to_string(),
            },
            caller.meta.clone(),
        )
        .await
    {
        tracing::warn!(%holder, error = %e, "could not release a counted quota holder");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Simple tenant usage
// ---------------------------------------------------------------------------------------------------------

/// The reporting window: `start` and `end` (each "now" when absent); start must come before end.
fn usage_window(q: &Query) -> Result<(DateTime<Utc>, DateTime<Utc>), NovaError> {
    let parse = |key: &str| -> Result<Option<DateTime<Utc>>, NovaError> {
        q.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                parse_time(v).ok_or_else(|| NovaError::bad_request("Datetime is in invalid format"))
            })
            .transpose()
    };
    let start = parse("start")?;
    let end = parse("end")?;
    let now = Utc::now();
    let (s, e) = (start.unwrap_or(now), end.unwrap_or(now));
    if (start.is_some() || end.is_some()) && s >= e {
        return Err(NovaError::bad_request(
            "Invalid start time. The start time cannot occur after the end time.",
        ));
    }
    Ok((s, e))
}

/// One server's part of a usage report.
struct ServerUsage {
    id: String,
    project_id: String,
    hours: f64,
    vcpus: u32,
    memory_mb: u64,
    local_gb: u64,
    json: Value,
}

/// The servers (of `project`, or all) that ran during the window, oldest first, with Nova's accounting: the
/// hours from launch (or the window's start) to termination (or the window's end), whatever the power state.
fn server_usages(
    view: &ComputeView,
    project: Option<&str>,
    start: DateTime<Utc>,
    stop: DateTime<Utc>,
) -> Vec<ServerUsage> {
    let now = Utc::now();
    let mut rows: Vec<(&ServerRow, DateTime<Utc>)> = view
        .servers
        .values()
        .map(|s| &**s)
        .filter(|s| project.is_none_or(|p| s.state.project_id == p))
        .filter_map(|s| parse_time(&s.launched_at).map(|l| (s, l)))
        .filter(|(s, launched)| *launched < stop && s.terminated.is_none_or(|t| t > start))
        .collect();
    rows.sort_by(|(a, _), (b, _)| (a.created, &a.id).cmp(&(b.created, &b.id)));
    rows.into_iter()
        .map(|(s, launched)| {
            let from = launched.max(start);
            let to = s.terminated.map_or(stop, |t| t.min(stop));
            let hours = ((to - from).num_milliseconds().max(0) as f64) / 3_600_000.0;
            let f = &s.state.flavor;
            let local_gb = f.disk_gb + f.ephemeral_gb;
            let uptime = (s.terminated.unwrap_or(now) - launched).num_seconds().max(0);
            let json = json!({
                "instance_id": s.id,
                "name": s.state.name,
                "hours": hours,
                "memory_mb": f.ram_mb,
                "local_gb": local_gb,
                "vcpus": f.vcpus,
                "tenant_id": s.state.project_id,
                "flavor": f.name,
                "started_at": usage_time(launched),
                "ended_at": s.terminated.map(usage_time),
                "state": if s.terminated.is_some() { "terminated" } else { s.state.vm_state.as_str() },
                "uptime": uptime,
            });
            ServerUsage {
                id: s.id.clone(),
                project_id: s.state.project_id.clone(),
                hours,
                vcpus: f.vcpus,
                memory_mb: f.ram_mb,
                local_gb,
                json,
            }
        })
        .collect()
}

/// One page of server usages (2.40 `limit`/`marker`; older versions are silently limited to `max_limit`),
/// and whether a next page may follow.
fn usage_page(
    mut rows: Vec<ServerUsage>,
    q: &Query,
    mv: Microversion,
) -> Result<(Vec<ServerUsage>, bool), NovaError> {
    let limit = if mv.0 >= 40 {
        q.page_size()?
    } else {
        MAX_LIMIT
    };
    if mv.0 >= 40 {
        if let Some(m) = q.get("marker") {
            let pos = rows
                .iter()
                .position(|r| r.id == m)
                .ok_or_else(|| NovaError::bad_request(format!("Marker {m} could not be found.")))?;
            rows.drain(..=pos);
        }
    }
    rows.truncate(limit);
    let full = mv.0 >= 40 && !rows.is_empty() && rows.len() == limit;
    Ok((rows, full))
}

/// Per-project totals, in the order each project first appears.
fn tenant_usages(
    rows: &[ServerUsage],
    start: DateTime<Utc>,
    stop: DateTime<Utc>,
    detailed: bool,
) -> Vec<Value> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_project: BTreeMap<&str, Vec<&ServerUsage>> = BTreeMap::new();
    for r in rows {
        if !by_project.contains_key(r.project_id.as_str()) {
            order.push(&r.project_id);
        }
        by_project.entry(&r.project_id).or_default().push(r);
    }
    order
        .into_iter()
        .map(|p| {
            let servers = &by_project[p];
            let sum = |f: &dyn Fn(&ServerUsage) -> f64| servers.iter().map(|s| f(s)).sum::<f64>();
            let mut v = json!({
                "tenant_id": p,
                "total_hours": sum(&|s| s.hours),
                "total_vcpus_usage": sum(&|s| s.vcpus as f64 * s.hours),
                "total_memory_mb_usage": sum(&|s| s.memory_mb as f64 * s.hours),
                "total_local_gb_usage": sum(&|s| s.local_gb as f64 * s.hours),
                "start": usage_time(start),
                "stop": usage_time(stop),
            });
            if detailed {
                v["server_usages"] = json!(servers.iter().map(|s| &s.json).collect::<Vec<_>>());
            }
            v
        })
        .collect()
}

async fn usage_list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    caller.enforce(
        "os_compute_api:os-simple-tenant-usage:list",
        &caller.project_id,
    )?;
    let q = Query::of(&req);
    let (start, stop) = usage_window(&q)?;
    let detailed = q.get("detailed") == Some("1");
    let rows = server_usages(&compute.view.snapshot(), None, start, stop);
    let (rows, full) = usage_page(rows, &q, mv)?;
    let mut body = json!({ "tenant_usages": tenant_usages(&rows, start, stop, detailed) });
    if let (true, Some(last)) = (full, rows.last()) {
        body["tenant_usages_links"] = next_link(&req, "/v2.1/os-simple-tenant-usage", &q, &last.id);
    }
    Ok(HttpResponse::Ok().json(body))
}

async fn usage_show(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let tenant = path.into_inner();
    if !caller.is_admin && tenant != caller.project_id {
        return Err(NovaError::policy(
            "os_compute_api:os-simple-tenant-usage:show",
        ));
    }
    let q = Query::of(&req);
    let (start, stop) = usage_window(&q)?;
    let rows = server_usages(&compute.view.snapshot(), Some(&tenant), start, stop);
    let (rows, full) = usage_page(rows, &q, mv)?;
    // A project without usage in the window answers an empty object, as Nova does.
    let usage = tenant_usages(&rows, start, stop, true)
        .into_iter()
        .next()
        .unwrap_or_else(|| json!({}));
    let mut body = json!({ "tenant_usage": usage });
    if let (true, Some(last)) = (full, rows.last()) {
        body["tenant_usage_links"] = next_link(
            &req,
            &format!(
                "/v2.1/os-simple-tenant-usage/{}",
                crate::common::encode(&tenant)
            ),
            &q,
            &last.id,
        );
    }
    Ok(HttpResponse::Ok().json(body))
}

// ---------------------------------------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------------------------------------

/// The statuses of a live migration still under way (Nova's list).
const LIVE_IN_PROGRESS: &[&str] = &["queued", "preparing", "running", "post-migrating"];

fn is_live_in_progress(m: &MigrationRow) -> bool {
    m.kind == "live-migration" && LIVE_IN_PROGRESS.contains(&m.status.as_str())
}

/// Nova shows its integer flavor ids; Strata's flavor ids are strings, shown as integers when they are.
fn flavor_int(id: &str) -> Value {
    id.parse::<i64>().map_or(Value::Null, |n| json!(n))
}

fn migration_links(req: &HttpRequest, m: &MigrationRow) -> Value {
    let base = crate::common::base_url(req);
    json!([
        { "rel": "self", "href": format!("{base}/v2.1/servers/{}/migrations/{}", m.server_id, m.id) },
        { "rel": "bookmark", "href": format!("{base}/servers/{}/migrations/{}", m.server_id, m.id) },
    ])
}

/// Strata's hosts are their own nodes and have no separate address, so host, node and compute are one name.
fn migration_hosts(v: &mut Value, m: &MigrationRow) {
    v["source_compute"] = null_if_empty(&m.source_host);
    v["source_node"] = null_if_empty(&m.source_host);
    v["dest_compute"] = null_if_empty(&m.dest_host);
    v["dest_node"] = null_if_empty(&m.dest_host);
    v["dest_host"] = null_if_empty(&m.dest_host);
}

fn migration_json(req: &HttpRequest, m: &MigrationRow, mv: Microversion) -> Value {
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
    if mv.0 >= 59 {
        v["uuid"] = json!(m.uuid);
    }
    if mv.0 >= 80 {
        v["user_id"] = json!(m.user_id);
        v["project_id"] = json!(m.project_id);
    }
    v
}

fn updated_between(
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

async fn migration_list(
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
            let pos = rows.iter().position(|m| m.uuid == marker).ok_or_else(|| {
                NovaError::bad_request(format!("Marker {marker} could not be found."))
            })?;
            rows.drain(..=pos);
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
fn server_migration_json(m: &MigrationRow, mv: Microversion) -> Value {
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
    if mv.0 >= 59 {
        v["uuid"] = json!(m.uuid);
    }
    if mv.0 >= 80 {
        v["user_id"] = json!(m.user_id);
        v["project_id"] = json!(m.project_id);
    }
    v
}

/// The checks every server-migrations call shares: the route's minimum microversion (404 below it, as Nova
/// answers for an unknown route), admin policy, and the server.
fn migration_server(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    min: u32,
    action: &str,
    server_id: &str,
) -> Result<ServerRow, NovaError> {
    if mv.0 < min {
        return Err(NovaError::not_found(format!(
            "The resource could not be found: {}",
            req.path()
        )));
    }
    if !caller.is_admin {
        return Err(NovaError::policy(&format!(
            "os_compute_api:servers:migrations:{action}"
        )));
    }
    visible_server(&compute.view.snapshot(), caller, server_id, false)
}

/// A migration of this server by Nova's integer id.
fn server_migration(
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

async fn server_migration_list(
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

async fn server_migration_show(
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

fn not_migrating(s: &ServerRow, what: &str) -> NovaError {
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
async fn server_migration_abort(
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
async fn server_migration_action(
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

// ---------------------------------------------------------------------------------------------------------
// Instance actions
// ---------------------------------------------------------------------------------------------------------

fn action_json(server_id: &str, a: &ActionRow, mv: Microversion) -> Value {
    let mut v = json!({
        "action": a.action,
        "instance_uuid": server_id,
        "request_id": a.request_id,
        "user_id": a.user_id,
        "project_id": a.project_id,
        "start_time": a.start_time,
        "message": null_if_empty(&a.message),
    });
    if mv.0 >= 58 {
        v["updated_at"] = null_if_empty(&a.updated_at);
    }
    v
}

async fn action_list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let server_id = path.into_inner();
    // From 2.21 the actions of a deleted server can still be read.
    let s = visible_server(&compute.view.snapshot(), &caller, &server_id, mv.0 >= 21)?;
    let q = Query::of(&req);
    let mut rows: Vec<&ActionRow> = s.actions.iter().rev().collect();
    let mut links = None;
    if mv.0 >= 58 {
        let (since, before) = q.changes(mv, 58, 66)?;
        let limit = q.page_size()?;
        rows.retain(|a| updated_between(&a.updated_at, since, before));
        if let Some(marker) = q.get("marker") {
            let pos = rows
                .iter()
                .position(|a| a.request_id == marker)
                .ok_or_else(|| {
                    NovaError::bad_request(format!("Marker {marker} could not be found."))
                })?;
            rows.drain(..=pos);
        }
        rows.truncate(limit);
        if let (true, Some(last)) = (rows.len() == limit, rows.last()) {
            links = Some(next_link(
                &req,
                &format!("/v2.1/servers/{server_id}/os-instance-actions"),
                &q,
                &last.request_id,
            ));
        }
    }
    let actions: Vec<Value> = rows
        .iter()
        .map(|a| action_json(&server_id, a, mv))
        .collect();
    let mut body = json!({ "instanceActions": actions });
    if let Some(l) = links {
        body["links"] = l;
    }
    Ok(HttpResponse::Ok().json(body))
}

async fn action_show(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (server_id, request_id) = path.into_inner();
    let s = visible_server(&compute.view.snapshot(), &caller, &server_id, mv.0 >= 21)?;
    let a = s
        .actions
        .iter()
        .rev()
        .find(|a| a.request_id == request_id)
        .ok_or_else(|| NovaError::not_found(format!("Action {request_id} not found")))?;
    let mut v = action_json(&server_id, a, mv);
    // Admins always see the events (with tracebacks and, from 2.62, hosts); others from 2.51, without them.
    if caller.is_admin || mv.0 >= 51 {
        let project = if a.project_id.is_empty() {
            &s.state.project_id
        } else {
            &a.project_id
        };
        let events: Vec<Value> = a
            .events
            .iter()
            .map(|e| {
                let mut ev = json!({
                    "event": e.event,
                    "start_time": null_if_empty(&e.start_time),
                    "finish_time": null_if_empty(&e.finish_time),
                    "result": null_if_empty(&e.result),
                });
                if caller.is_admin {
                    ev["traceback"] = null_if_empty(&e.traceback);
                    if mv.0 >= 62 {
                        ev["host"] = json!(e.host);
                    }
                }
                if mv.0 >= 62 {
                    ev["hostId"] = json!(host_id(project, &e.host));
                }
                ev
            })
            .collect();
        v["events"] = json!(events);
    }
    Ok(HttpResponse::Ok().json(json!({ "instanceAction": v })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_novas_formats() {
        let t = |s: &str| parse_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2015-08-27T09:49:58").as_deref(),
            Some("2015-08-27T09:49:58+00:00")
        );
        assert_eq!(
            t("2015-08-27T09:49:58.123456").as_deref(),
            Some("2015-08-27T09:49:58.123456+00:00")
        );
        assert_eq!(
            t("2015-08-27 09:49:58.5").as_deref(),
            Some("2015-08-27T09:49:58.500+00:00")
        );
        assert_eq!(
            t("2015-08-27T09:49:58Z").as_deref(),
            Some("2015-08-27T09:49:58+00:00")
        );
        assert_eq!(
            t("2015-08-27T09:49:58-05:00").as_deref(),
            Some("2015-08-27T14:49:58+00:00")
        );
        // A `+` that a query string decoded as a space.
        assert_eq!(
            t("2015-08-27T09:49:58 01:00").as_deref(),
            Some("2015-08-27T08:49:58+00:00")
        );
        assert_eq!(
            t("2015-08-27").as_deref(),
            Some("2015-08-27T00:00:00+00:00")
        );
        assert_eq!(t("yesterday"), None);
        assert_eq!(t(""), None);
    }

    #[test]
    fn quota_names_follow_the_microversion() {
        let v21 = quota_names(Microversion(1));
        assert!(v21.contains(&"floating_ips") && v21.contains(&"injected_files"));
        let v236 = quota_names(Microversion(36));
        assert!(!v236.contains(&"floating_ips") && v236.contains(&"injected_files"));
        let v257 = quota_names(Microversion(57));
        assert_eq!(
            v257,
            vec![
                "cores",
                "instances",
                "key_pairs",
                "metadata_items",
                "ram",
                "server_group_members",
                "server_groups"
            ]
        );
    }

    #[test]
    fn integers_and_booleans_as_nova_reads_them() {
        assert_eq!(int_value(&json!(5)), Some(5));
        assert_eq!(int_value(&json!("-1")), Some(-1));
        assert_eq!(int_value(&json!("1.5")), None);
        assert_eq!(int_value(&json!(1.5)), None);
        assert_eq!(int_value(&json!("")), None);
        assert_eq!(bool_value(&json!("True")), Some(true));
        assert_eq!(bool_value(&json!(false)), Some(false));
        assert_eq!(bool_value(&json!("maybe")), None);
    }

    #[test]
    fn host_ids_hash_project_and_host() {
        assert_eq!(host_id("p", ""), "");
        let a = host_id("p", "h1");
        assert_eq!(a.len(), 56);
        assert_ne!(a, host_id("q", "h1"));
    }
}
