//! `/v2.0/security-groups` and `/v2.0/security-group-rules`: create, list, show, update (groups), delete;
//! every project's `default` group; the quotas `security_group` and `security_group_rule`.
//!
//! A project's `default` group has an id derived from the project ([`default_group_id`]) and rule ids
//! derived from it, so the first list, group create or port create of a project makes it exactly once even
//! when several requests race to do so ([`ensure_default_group`]; ports get it through the
//! [`PortSecurityGroups`] hook installed by [`install`]). Quota holders: `security_group:<id>` and
//! `security_group_rule:<rule id>`; a new group's own rules are counted but, as in Neutron, not checked.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::network::{
    check_rule, Rule, RuleRequest, SecurityGroupCommand, DEFAULT_GROUP_NAME,
};
use strata_projections::network::SecurityGroupRow;

use super::list::{self, ListQuery};
use super::{new_id, opt_bool, opt_string, tags_value, Caller, Networks, NeutronError};
use strata_network::networks::owner_of;
#[allow(unused_imports)]
use strata_network::security_groups::*;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.0/security-groups")
            .route(web::get().to(list_groups))
            .route(web::post().to(create_group)),
    )
    .service(
        web::resource("/v2.0/security-groups/{id}")
            .route(web::get().to(show_group))
            .route(web::put().to(update_group))
            .route(web::delete().to(delete_group)),
    )
    .service(
        web::resource("/v2.0/security-group-rules")
            .route(web::get().to(list_rules))
            .route(web::post().to(create_rule)),
    )
    .service(
        web::resource("/v2.0/security-group-rules/{id}")
            .route(web::get().to(show_rule))
            .route(web::delete().to(delete_rule)),
    );
}

// ---------------------------------------------------------------------------------------------------------
// The default group

// ---------------------------------------------------------------------------------------------------------
// Rendering and lookups

fn opt_text(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| json!(s))
}

pub fn rule_json(group: &SecurityGroupRow, r: &Rule) -> Value {
    let created = group
        .rule_created_at
        .get(&r.id)
        .cloned()
        .unwrap_or_else(|| group.created_at.clone());
    json!({
        "id": r.id,
        "security_group_id": group.id,
        "tenant_id": group.state.project_id,
        "project_id": group.state.project_id,
        "direction": r.direction,
        "ethertype": r.ethertype,
        "protocol": opt_text(&r.protocol),
        "port_range_min": r.port_range_min,
        "port_range_max": r.port_range_max,
        "remote_ip_prefix": opt_text(&r.remote_ip_prefix),
        "normalized_cidr": opt_text(&r.remote_ip_prefix),
        "remote_group_id": opt_text(&r.remote_group_id),
        "remote_address_group_id": null,
        "description": r.description,
        "belongs_to_default_sg": group.state.is_default,
        "created_at": created,
        "updated_at": created,
        "revision_number": 0,
    })
}

pub fn group_json(row: &SecurityGroupRow) -> Value {
    let g = &row.state;
    let rules: Vec<Value> = g.rules.values().map(|r| rule_json(row, r)).collect();
    json!({
        "id": row.id,
        "name": g.name,
        "description": g.description,
        "tenant_id": g.project_id,
        "project_id": g.project_id,
        "stateful": g.stateful,
        "shared": false,
        "security_group_rules": rules,
        "tags": g.tags,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "revision_number": g.revision,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Groups

async fn list_groups(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
) -> Result<HttpResponse, NeutronError> {
    let q = ListQuery::parse(&req)?;
    ensure_default_group(&networks, &caller.meta, &caller.project_id).await?;
    let rows: Vec<Value> = {
        let view = networks.view.snapshot();
        view.security_groups
            .values()
            .filter(|g| caller.owns(&g.state.project_id))
            .map(group_json)
            .collect()
    };
    list::respond(&req, &q, "security_groups", rows)
}

async fn show_group(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    let row = find_group(&networks, &caller, &id)?;
    Ok(list::show(&req, "security_group", group_json(&row)))
}

const GROUP_CREATE_KEYS: &[&str] = &[
    "name",
    "description",
    "stateful",
    "tags",
    "tenant_id",
    "project_id",
];

async fn create_group(
    networks: web::Data<Networks>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    let m = list::create_request(
        &caller,
        "create_security_group",
        &body,
        "security_group",
        GROUP_CREATE_KEYS,
    )?;
    let project = owner_of(&caller, &m)?;
    let name = opt_string(&m, "name", 255)?.unwrap_or_default();
    if name.eq_ignore_ascii_case(DEFAULT_GROUP_NAME) {
        return Err(default_name_taken().into());
    }
    let description = opt_string(&m, "description", 255)?.unwrap_or_default();
    let stateful = opt_bool(&m, "stateful")?.unwrap_or(true);
    let tags = tags_value(&m)?;
    let row = create_security_group(
        &networks,
        &caller,
        NewSecurityGroup {
            project_id: project,
            name,
            description,
            stateful,
            tags,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(json!({ "security_group": group_json(&row) })))
}

const GROUP_UPDATE_KEYS: &[&str] = &["name", "description", "stateful"];

async fn update_group(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    let (if_revision, m) = list::update_request(
        &caller,
        "update_security_group",
        &req,
        &body,
        "security_group",
    )?;
    let row = find_group(&networks, &caller, &id)?;
    list::check_updatable(&m, GROUP_UPDATE_KEYS)?;
    let name = opt_string(&m, "name", 255)?;
    if !row.state.is_default
        && name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(DEFAULT_GROUP_NAME))
    {
        return Err(default_name_taken().into());
    }
    let cmd = SecurityGroupCommand::Update {
        name,
        description: opt_string(&m, "description", 255)?,
        stateful: opt_bool(&m, "stateful")?,
        in_use: in_use(&networks, &id),
        if_revision,
    };
    networks
        .run(&networks.secgroups, &id, cmd, &caller.meta)
        .await?;
    let row = find_group(&networks, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "security_group": group_json(&row) })))
}

async fn delete_group(
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("delete_security_group")?;
    delete_security_group(&networks, &caller, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------------------------
// Rules

async fn list_rules(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
) -> Result<HttpResponse, NeutronError> {
    let q = ListQuery::parse(&req)?;
    ensure_default_group(&networks, &caller.meta, &caller.project_id).await?;
    let rows: Vec<Value> = {
        let view = networks.view.snapshot();
        let groups: Vec<&SecurityGroupRow> = match q.filter("security_group_id") {
            Some(g) => view.security_group(g).into_iter().collect(),
            None => view.security_groups.values().collect(),
        };
        groups
            .into_iter()
            .filter(|g| caller.owns(&g.state.project_id))
            .flat_map(|g| g.state.rules.values().map(move |r| rule_json(g, r)))
            .collect()
    };
    list::respond(&req, &q, "security_group_rules", rows)
}

async fn show_rule(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    let v = {
        let view = networks.view.snapshot();
        let (rule, group) = view
            .security_group_rule(&id)
            .filter(|(_, g)| caller.owns(&g.state.project_id))
            .ok_or_else(|| rule_not_found(&id))?;
        rule_json(group, rule)
    };
    Ok(list::show(&req, "security_group_rule", v))
}

const RULE_CREATE_KEYS: &[&str] = &[
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "description",
    "tenant_id",
    "project_id",
];

/// An optional port number: a JSON integer or a numeric string.
fn opt_port(m: &Map<String, Value>, key: &str) -> Result<Option<i64>, NeutronError> {
    let bad = |v: &Value| {
        NeutronError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "SecurityGroupInvalidPortValue",
            format!(
                "Invalid value for port {}",
                v.as_str().map_or(v.to_string(), str::to_string)
            ),
        )
    };
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| bad(&m[key])),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| bad(&m[key])),
        Some(v) => Err(bad(v)),
    }
}

fn opt_nullable_string(m: &Map<String, Value>, key: &str) -> Result<Option<String>, NeutronError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if key == "protocol" => Ok(Some(n.to_string())),
        Some(v) => Err(NeutronError::invalid_input(format!(
            "'{v}' is not a valid string for {key}"
        ))),
    }
}

async fn create_rule(
    networks: web::Data<Networks>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    let m = list::create_request(
        &caller,
        "create_security_group_rule",
        &body,
        "security_group_rule",
        RULE_CREATE_KEYS,
    )?;
    owner_of(&caller, &m)?;
    let group_id = match m.get("security_group_id") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(NeutronError::bad_request(
                "Failed to parse request. Required attribute 'security_group_id' not specified",
            ))
        }
    };
    let direction = match m.get("direction") {
        Some(Value::String(s)) => s.clone(),
        None => {
            return Err(NeutronError::bad_request(
                "Failed to parse request. Required attribute 'direction' not specified",
            ))
        }
        Some(v) => v.to_string(),
    };
    if m.get("remote_address_group_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(NeutronError::bad_request(
            "Address groups are not supported: remote_address_group_id must be null",
        ));
    }
    let request = RuleRequest {
        direction,
        ethertype: opt_nullable_string(&m, "ethertype")?,
        protocol: opt_nullable_string(&m, "protocol")?,
        port_range_min: opt_port(&m, "port_range_min")?,
        port_range_max: opt_port(&m, "port_range_max")?,
        remote_ip_prefix: opt_nullable_string(&m, "remote_ip_prefix")?,
        remote_group_id: opt_nullable_string(&m, "remote_group_id")?,
        description: opt_string(&m, "description", 255)?.unwrap_or_default(),
    };
    let rule_id = new_id();
    let rule = check_rule(&rule_id, &request).map_err(|e| {
        NeutronError::new(actix_web::http::StatusCode::BAD_REQUEST, e.kind, e.message)
    })?;
    add_security_group_rule(&networks, &caller, &group_id, rule).await?;
    let v = {
        let view = networks.view.snapshot();
        let (rule, group) = view
            .security_group_rule(&rule_id)
            .ok_or_else(|| rule_not_found(&rule_id))?;
        rule_json(group, rule)
    };
    Ok(HttpResponse::Created().json(json!({ "security_group_rule": v })))
}

async fn delete_rule(
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("delete_security_group_rule")?;
    delete_security_group_rule(&networks, &caller, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
