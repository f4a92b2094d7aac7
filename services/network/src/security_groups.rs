//! `/v2.0/security-groups` and `/v2.0/security-group-rules`: create, list, show, update (groups), delete;
//! every project's `default` group; the quotas `security_group` and `security_group_rule`.
//!
//! A project's `default` group has an id derived from the project ([`default_group_id`]) and rule ids
//! derived from it, so the first list, group create or port create of a project makes it exactly once even
//! when several requests race to do so ([`ensure_default_group`]; ports get it through the
//! [`PortSecurityGroups`] hook installed by [`install`]). Quota holders: `security_group:<id>` and
//! `security_group_rule:<rule id>`; a new group's own rules are counted but, as in Neutron, not checked.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use strata_actors::network::{
    initial_rules, NetworkUsageCommand, Rule, SecurityGroupCommand, DEFAULT_GROUP_NAME,
};
use strata_events::Metadata;
use strata_projections::network::SecurityGroupRow;

use super::quotas::{release_quota, reserve_quota};
use super::{new_id, Caller, NetworkError, Networks, PortSecurityGroups};

/// Plug security groups into the core: ports get the project's default group, port requests naming groups
/// are checked, and `/v2.0/security-groups/{id}/tags` works.
pub fn install(networks: &Networks) {
    networks.set_security_groups(Arc::new(PortGroups));
    networks.register_tags(Arc::new(group_tags()));
}

pub fn derived_uuid(parts: &[&str]) -> String {
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
) -> Result<String, NetworkError> {
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

pub struct PortGroups;

#[async_trait::async_trait]
impl PortSecurityGroups for PortGroups {
    async fn default_groups(
        &self,
        networks: &Networks,
        caller: &Caller,
        project_id: &str,
    ) -> Result<Vec<String>, NetworkError> {
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
    ) -> Result<(), NetworkError> {
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
pub fn group_tags() -> super::tags::StreamTags<strata_actors::network::SecurityGroup> {
    super::tags::StreamTags {
        collection: "security-groups",
        find: |networks, caller, id| Ok(find_group(networks, caller, id)?.state.tags),
        repo: |networks| &networks.secgroups,
        command: SecurityGroupCommand::SetTags,
    }
}

pub fn group_not_found(id: &str) -> NetworkError {
    NetworkError::not_found(
        "SecurityGroupNotFound",
        format!("Security group {id} does not exist"),
    )
}

pub fn rule_not_found(id: &str) -> NetworkError {
    NetworkError::not_found(
        "SecurityGroupRuleNotFound",
        format!("Security group rule {id} does not exist"),
    )
}

/// Group `id` if `caller` may see it (its project's, or any for admins): 404 otherwise.
pub fn find_group(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<SecurityGroupRow, NetworkError> {
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
) -> Result<String, NetworkError> {
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
        _ => Err(NetworkError::conflict(
            "NeutronClientNoUniqueMatch",
            format!("Multiple security_group matches found for name '{name_or_id}', use an ID to be more specific."),
        )),
    }
}

/// Whether any port uses group `id`.
pub fn in_use(networks: &Networks, id: &str) -> bool {
    networks
        .view
        .snapshot()
        .ports
        .values()
        .any(|p| p.state.security_groups.iter().any(|g| g == id))
}

pub fn default_name_taken() -> NetworkError {
    NetworkError::conflict(
        "SecurityGroupDefaultAlreadyExists",
        "Default security group already exists.",
    )
}

/// Delete a group: refused for a tenant's default group and while ports use it; its quota and its rules'
/// quota are given back, and rules of other groups that name it as their remote group go with it (as
/// Neutron's foreign key cascade does).
pub async fn delete_security_group(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<(), NetworkError> {
    let row = find_group(networks, caller, id)?;
    if row.state.is_default && !caller.is_admin {
        return Err(NetworkError::conflict(
            "SecurityGroupCannotRemoveDefault",
            "Insufficient rights for removing default security group.",
        ));
    }
    if in_use(networks, id) {
        return Err(NetworkError::conflict(
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

/// A security group to create (the parsed `POST /v2.0/security-groups`).
#[derive(Debug, Clone, Default)]
pub struct NewSecurityGroup {
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub stateful: bool,
    pub tags: Vec<String>,
}

/// Create a security group with its two default egress rules: the project's `default` group first (made on
/// first use), the quota of the group and of its rules, the record; the quota given back when refused.
pub async fn create_security_group(
    networks: &Networks,
    caller: &Caller,
    req: NewSecurityGroup,
) -> Result<SecurityGroupRow, NetworkError> {
    let NewSecurityGroup {
        project_id: project,
        name,
        description,
        stateful,
        tags,
    } = req;
    ensure_default_group(networks, &caller.meta, &project).await?;

    let id = new_id();
    let holder = format!("security_group:{id}");
    reserve_quota(networks, &caller.meta, &project, "security_group", &holder).await?;
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
                result = Err(NetworkError::from(e));
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
            .map_err(NetworkError::from);
    }
    if let Err(e) = result {
        for h in &taken {
            release_quota(networks, &caller.meta, &project, h).await;
        }
        return Err(e);
    }
    find_group(networks, caller, &id)
}

/// Add a checked rule to group `group_id`: the remote group must be visible, a duplicate is refused
/// (naming the existing rule) before the quota is taken, and the quota is given back when the group's
/// aggregate refuses.
pub async fn add_security_group_rule(
    networks: &Networks,
    caller: &Caller,
    group_id: &str,
    rule: Rule,
) -> Result<(), NetworkError> {
    let rule_id = rule.id.clone();
    let group = find_group(networks, caller, group_id)?;
    if let Some(remote) = &rule.remote_group_id {
        find_group(networks, caller, remote)?;
    }
    // Checked here first so a duplicate costs no quota round trip; the group's aggregate decides again.
    if let Some(existing) = group.state.duplicate_of(&rule) {
        return Err(NetworkError::conflict(
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
        networks,
        &caller.meta,
        &project,
        "security_group_rule",
        &holder,
    )
    .await?;
    if let Err(e) = networks
        .run(
            &networks.secgroups,
            group_id,
            SecurityGroupCommand::AddRule(rule),
            &caller.meta,
        )
        .await
    {
        release_quota(networks, &caller.meta, &project, &holder).await;
        return Err(e.into());
    }
    Ok(())
}

/// Remove rule `id` from its group (one the caller may see), then give back its quota.
pub async fn delete_security_group_rule(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<(), NetworkError> {
    let (group_id, project) = {
        let view = networks.view.snapshot();
        let (_, group) = view
            .security_group_rule(id)
            .filter(|(_, g)| caller.owns(&g.state.project_id))
            .ok_or_else(|| rule_not_found(id))?;
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
        .map_err(|e| match NetworkError::from(e) {
            e if e.is_not_found() => rule_not_found(id),
            e => e,
        })?;
    release_quota(
        networks,
        &caller.meta,
        &project,
        &format!("security_group_rule:{id}"),
    )
    .await;
    Ok(())
}
