//! `/v2.0/security-groups` and `/v2.0/security-group-rules`: create, list, show, update (groups), delete;
//! every project's `default` group; the quotas `security_group` and `security_group_rule`.
//!
//! A project's `default` group has an id derived from the project ([`default_group_id`]) and rule ids
//! derived from it, so the first list, group create or port create of a project makes it exactly once even
//! when several requests race to do so ([`ensure_default_group`]; ports get it through the
//! [`PortSecurityGroups`] hook installed by [`install`]). Quota holders: `security_group:<id>` and
//! `security_group_rule:<rule id>`; a new group's own rules are counted but, as in Neutron, not checked.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use strata_actors::network::{
    check_rule, initial_rules, NetworkUsageCommand, Rule, RuleRequest, SecurityGroupCommand,
    DEFAULT_GROUP_NAME,
};
use strata_events::Metadata;
use strata_projections::network::SecurityGroupRow;

use super::list::{self, ListQuery};
use super::networks::owner_of;
use super::quotas::{release_quota, reserve_quota};
use super::{
    body_object, check_keys, if_match_revision, new_id, opt_bool, opt_string, tags_value, Caller,
    Networks, NeutronError, PortSecurityGroups,
};

/// Plug security groups into the core: ports get the project's default group, port requests naming groups
/// are checked, and `/v2.0/security-groups/{id}/tags` works.
pub fn install(networks: &Networks) {
    networks.set_security_groups(Arc::new(PortGroups));
    networks.register_tags(Arc::new(group_tags()));
}

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

fn derived_uuid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The id of a project's `default` security group (the same on every call).
pub fn default_group_id(project_id: &str) -> String {
    derived_uuid(&["strata-default-security-group", project_id])
}

/// The project's `default` group, made (with its quota, counted but not checked) if it does not exist yet.
/// Returns its id.
pub async fn ensure_default_group(
    networks: &Networks,
    meta: &Metadata,
    project_id: &str,
) -> Result<String, NeutronError> {
    let id = default_group_id(project_id);
    if networks.view.snapshot().security_group(&id).is_some() {
        return Ok(id);
    }
    let rule_ids: Vec<String> = (0..4)
        .map(|i| derived_uuid(&[&id, "rule", &i.to_string()]))
        .collect();
    let rules = initial_rules(&id, true, &rule_ids);
    let holders: Vec<(String, &str)> =
        std::iter::once((format!("security_group:{id}"), "security_group"))
            .chain(
                rule_ids
                    .iter()
                    .map(|r| (format!("security_group_rule:{r}"), "security_group_rule")),
            )
            .collect();
    // Derived holders make racing requests reserve the same slots (a repeated reservation is a no-op).
    for (holder, resource) in &holders {
        let cmd = NetworkUsageCommand::Reserve {
            holder: holder.clone(),
            resource: resource.to_string(),
            limit: -1,
        };
        networks.run(&networks.usage, project_id, cmd, meta).await?;
    }
    let cmd = SecurityGroupCommand::Create {
        project_id: project_id.to_string(),
        name: DEFAULT_GROUP_NAME.to_string(),
        description: "Default security group".to_string(),
        stateful: true,
        is_default: true,
        rules,
        tags: vec![],
    };
    networks.run(&networks.secgroups, &id, cmd, meta).await?;
    Ok(id)
}

struct PortGroups;

#[async_trait::async_trait(?Send)]
impl PortSecurityGroups for PortGroups {
    async fn default_groups(
        &self,
        networks: &Networks,
        caller: &Caller,
        project_id: &str,
    ) -> Result<Vec<String>, NeutronError> {
        Ok(vec![
            ensure_default_group(networks, &caller.meta, project_id).await?,
        ])
    }

    async fn validate(
        &self,
        networks: &Networks,
        caller: &Caller,
        project_id: &str,
        ids: &[String],
    ) -> Result<(), NeutronError> {
        let view = networks.view.snapshot();
        for id in ids {
            let ok = view
                .security_group(id)
                .is_some_and(|g| g.state.project_id == project_id || caller.is_admin);
            if !ok {
                return Err(group_not_found(id));
            }
        }
        Ok(())
    }
}

/// Tags of security-groups (their own streams).
pub(super) fn group_tags() -> super::tags::StreamTags<strata_actors::network::SecurityGroup> {
    super::tags::StreamTags {
        collection: "security-groups",
        find: |networks, caller, id| Ok(find_group(networks, caller, id)?.state.tags),
        repo: |networks| &networks.secgroups,
        command: SecurityGroupCommand::SetTags,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Rendering and lookups

pub fn group_not_found(id: &str) -> NeutronError {
    NeutronError::not_found(
        "SecurityGroupNotFound",
        format!("Security group {id} does not exist"),
    )
}

fn rule_not_found(id: &str) -> NeutronError {
    NeutronError::not_found(
        "SecurityGroupRuleNotFound",
        format!("Security group rule {id} does not exist"),
    )
}

/// Group `id` if `caller` may see it (its project's, or any for admins): 404 otherwise.
pub fn find_group(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<SecurityGroupRow, NeutronError> {
    networks
        .view
        .snapshot()
        .security_group(id)
        .filter(|g| caller.owns(&g.state.project_id))
        .cloned()
        .ok_or_else(|| group_not_found(id))
}

/// The group called `name_or_id` among those `caller` may see (an id first, then a unique name), the way
/// Nova resolves the names in `security_groups` of a server.
pub fn resolve_group(
    networks: &Networks,
    caller: &Caller,
    project_id: &str,
    name_or_id: &str,
) -> Result<String, NeutronError> {
    let view = networks.view.snapshot();
    if let Some(g) = view
        .security_group(name_or_id)
        .filter(|g| caller.owns(&g.state.project_id))
    {
        return Ok(g.id.clone());
    }
    let named: Vec<&SecurityGroupRow> = view
        .security_groups
        .values()
        .filter(|g| g.state.project_id == project_id && g.state.name == name_or_id)
        .collect();
    match named.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(group_not_found(name_or_id)),
        _ => Err(NeutronError::conflict(
            "NeutronClientNoUniqueMatch",
            format!("Multiple security_group matches found for name '{name_or_id}', use an ID to be more specific."),
        )),
    }
}

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

/// Whether any port uses group `id`.
fn in_use(networks: &Networks, id: &str) -> bool {
    networks
        .view
        .snapshot()
        .ports
        .values()
        .any(|p| p.state.security_groups.iter().any(|g| g == id))
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
    let v = list::select_fields(group_json(&row), &list::fields_of(&req));
    Ok(HttpResponse::Ok().json(json!({ "security_group": v })))
}

const GROUP_CREATE_KEYS: &[&str] = &[
    "name",
    "description",
    "stateful",
    "tags",
    "tenant_id",
    "project_id",
];

fn default_name_taken() -> NeutronError {
    NeutronError::conflict(
        "SecurityGroupDefaultAlreadyExists",
        "Default security group already exists.",
    )
}

async fn create_group(
    networks: web::Data<Networks>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("create_security_group")?;
    let m = body_object(&body, "security_group")?;
    check_keys(&m, GROUP_CREATE_KEYS)?;
    let project = owner_of(&caller, &m)?;
    let name = opt_string(&m, "name", 255)?.unwrap_or_default();
    if name.eq_ignore_ascii_case(DEFAULT_GROUP_NAME) {
        return Err(default_name_taken());
    }
    let description = opt_string(&m, "description", 255)?.unwrap_or_default();
    let stateful = opt_bool(&m, "stateful")?.unwrap_or(true);
    let tags = tags_value(&m)?;
    ensure_default_group(&networks, &caller.meta, &project).await?;

    let id = new_id();
    let holder = format!("security_group:{id}");
    reserve_quota(&networks, &caller.meta, &project, "security_group", &holder).await?;
    let rule_ids = vec![new_id(), new_id()];
    let rules = initial_rules(&id, false, &rule_ids);
    let rule_holders: Vec<String> = rule_ids
        .iter()
        .map(|r| format!("security_group_rule:{r}"))
        .collect();
    let mut taken = vec![holder];
    let mut result = Ok(());
    for h in &rule_holders {
        let cmd = NetworkUsageCommand::Reserve {
            holder: h.clone(),
            resource: "security_group_rule".into(),
            limit: -1,
        };
        match networks
            .run(&networks.usage, &project, cmd, &caller.meta)
            .await
        {
            Ok(_) => taken.push(h.clone()),
            Err(e) => {
                result = Err(NeutronError::from(e));
                break;
            }
        }
    }
    if result.is_ok() {
        let cmd = SecurityGroupCommand::Create {
            project_id: project.clone(),
            name,
            description,
            stateful,
            is_default: false,
            rules,
            tags,
        };
        result = networks
            .run(&networks.secgroups, &id, cmd, &caller.meta)
            .await
            .map(|_| ())
            .map_err(NeutronError::from);
    }
    if let Err(e) = result {
        for h in &taken {
            release_quota(&networks, &caller.meta, &project, h).await;
        }
        return Err(e);
    }
    let row = find_group(&networks, &caller, &id)?;
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
    caller.enforce("update_security_group")?;
    let if_revision = if_match_revision(&req)?;
    let m = body_object(&body, "security_group")?;
    let row = find_group(&networks, &caller, &id)?;
    for k in m.keys() {
        if !GROUP_UPDATE_KEYS.contains(&k.as_str()) {
            return Err(NeutronError::bad_request(format!(
                "Cannot update read-only attribute {k}"
            )));
        }
    }
    let name = opt_string(&m, "name", 255)?;
    if !row.state.is_default
        && name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(DEFAULT_GROUP_NAME))
    {
        return Err(default_name_taken());
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

/// Delete a group: refused for a tenant's default group and while ports use it; its quota and its rules'
/// quota are given back, and rules of other groups that name it as their remote group go with it (as
/// Neutron's foreign key cascade does).
pub async fn delete_security_group(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<(), NeutronError> {
    let row = find_group(networks, caller, id)?;
    if row.state.is_default && !caller.is_admin {
        return Err(NeutronError::conflict(
            "SecurityGroupCannotRemoveDefault",
            "Insufficient rights for removing default security group.",
        ));
    }
    if in_use(networks, id) {
        return Err(NeutronError::conflict(
            "SecurityGroupInUse",
            format!("Security Group {id} in use."),
        ));
    }
    networks
        .run(
            &networks.secgroups,
            id,
            SecurityGroupCommand::Delete,
            &caller.meta,
        )
        .await?;
    let project = row.state.project_id.clone();
    for rule in row.state.rules.keys() {
        release_quota(
            networks,
            &caller.meta,
            &project,
            &format!("security_group_rule:{rule}"),
        )
        .await;
    }
    release_quota(
        networks,
        &caller.meta,
        &project,
        &format!("security_group:{id}"),
    )
    .await;
    let referring: Vec<(String, String, String)> = {
        let view = networks.view.snapshot();
        view.security_groups
            .values()
            .flat_map(|g| {
                g.state
                    .rules
                    .values()
                    .filter(|r| r.remote_group_id.as_deref() == Some(id))
                    .map(|r| (g.id.clone(), r.id.clone(), g.state.project_id.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for (group, rule, project) in referring {
        let cmd = SecurityGroupCommand::RemoveRule {
            rule_id: rule.clone(),
        };
        match networks
            .run(&networks.secgroups, &group, cmd, &caller.meta)
            .await
        {
            Ok(_) => {
                release_quota(
                    networks,
                    &caller.meta,
                    &project,
                    &format!("security_group_rule:{rule}"),
                )
                .await
            }
            Err(e) => {
                tracing::warn!(group, rule, error = %e, "removing a rule naming a deleted group failed")
            }
        }
    }
    Ok(())
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
    let v = list::select_fields(v, &list::fields_of(&req));
    Ok(HttpResponse::Ok().json(json!({ "security_group_rule": v })))
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
    caller.enforce("create_security_group_rule")?;
    let m = body_object(&body, "security_group_rule")?;
    check_keys(&m, RULE_CREATE_KEYS)?;
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
    let group = find_group(&networks, &caller, &group_id)?;
    if let Some(remote) = &rule.remote_group_id {
        find_group(&networks, &caller, remote)?;
    }
    // Checked here first so a duplicate costs no quota round trip; the group's aggregate decides again.
    if let Some(existing) = group.state.duplicate_of(&rule) {
        return Err(NeutronError::conflict(
            "SecurityGroupRuleExists",
            format!(
                "Security group rule already exists. Rule id is {}.",
                existing.id
            ),
        ));
    }
    let project = group.state.project_id.clone();
    let holder = format!("security_group_rule:{rule_id}");
    reserve_quota(
        &networks,
        &caller.meta,
        &project,
        "security_group_rule",
        &holder,
    )
    .await?;
    if let Err(e) = networks
        .run(
            &networks.secgroups,
            &group_id,
            SecurityGroupCommand::AddRule(rule),
            &caller.meta,
        )
        .await
    {
        release_quota(&networks, &caller.meta, &project, &holder).await;
        return Err(e.into());
    }
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
    let (group_id, project) = {
        let view = networks.view.snapshot();
        let (_, group) = view
            .security_group_rule(&id)
            .filter(|(_, g)| caller.owns(&g.state.project_id))
            .ok_or_else(|| rule_not_found(&id))?;
        (group.id.clone(), group.state.project_id.clone())
    };
    networks
        .run(
            &networks.secgroups,
            &group_id,
            SecurityGroupCommand::RemoveRule {
                rule_id: id.to_string(),
            },
            &caller.meta,
        )
        .await
        .map_err(|e| match NeutronError::from(e) {
            e if e.status == actix_web::http::StatusCode::NOT_FOUND => rule_not_found(&id),
            e => e,
        })?;
    release_quota(
        &networks,
        &caller.meta,
        &project,
        &format!("security_group_rule:{id}"),
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_derive_from_the_project() {
        let a = default_group_id("p1");
        assert_eq!(a, default_group_id("p1"));
        assert_ne!(a, default_group_id("p2"));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
