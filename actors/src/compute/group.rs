//! Server groups (stream `server-group-<uuid>`), host aggregates (stream `host-aggregate-<id>`) and the
//! counter that hands out Nova's integer aggregate ids (stream `sequence-<name>`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use strata_proto::compute as pb;
use strata_proto::ComputeEvent as E;

use crate::aggregate::{Aggregate, DomainError};

pub const GROUP_POLICIES: &[&str] = &[
    "affinity",
    "anti-affinity",
    "soft-affinity",
    "soft-anti-affinity",
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerGroup {
    pub exists: bool,
    pub deleted: bool,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub policy: String,
    pub max_server_per_host: i64,
    pub members: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerGroupCommand {
    Create {
        project_id: String,
        user_id: String,
        name: String,
        policy: String,
        max_server_per_host: i64,
    },
    /// Add members, refused when the group would pass `limit` members (-1 = unlimited).
    AddMembers {
        servers: Vec<String>,
        limit: i64,
    },
    RemoveMember {
        server_id: String,
    },
    Delete,
}

impl ServerGroup {
    fn check_live(&self) -> Result<(), DomainError> {
        if !self.exists || self.deleted {
            return Err(DomainError::NotFound {
                kind: "server group",
                id: self.name.clone(),
            });
        }
        Ok(())
    }
}

impl Aggregate for ServerGroup {
    type Command = ServerGroupCommand;
    type Event = E;
    const KIND: &'static str = "server-group";

    fn decide(&self, cmd: &ServerGroupCommand) -> Result<Vec<E>, DomainError> {
        use ServerGroupCommand as C;
        match cmd {
            C::Create {
                project_id,
                user_id,
                name,
                policy,
                max_server_per_host,
            } => {
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: "server group",
                        detail: "id already used".into(),
                    });
                }
                super::check_len("name", name, super::NAME_MAX)?;
                if !GROUP_POLICIES.contains(&policy.as_str()) {
                    return Err(super::invalid(
                        "policy",
                        &format!("'{policy}' is not one of {}", GROUP_POLICIES.join(", ")),
                    ));
                }
                if *max_server_per_host != 0 && policy != "anti-affinity" {
                    return Err(DomainError::Invalid(
                        "Invalid input for field/attribute rules. Only anti-affinity policy supports rules".into(),
                    ));
                }
                if *max_server_per_host < 0 {
                    return Err(super::invalid(
                        "max_server_per_host",
                        "must be a positive integer",
                    ));
                }
                Ok(vec![E::ServerGroupCreated(pb::ServerGroupCreated {
                    project_id: project_id.clone(),
                    user_id: user_id.clone(),
                    name: name.clone(),
                    policy: policy.clone(),
                    max_server_per_host: *max_server_per_host,
                })])
            }
            C::AddMembers { servers, limit } => {
                self.check_live()?;
                let new: Vec<&String> = servers
                    .iter()
                    .filter(|s| !self.members.contains(*s))
                    .collect();
                if *limit >= 0 && (self.members.len() + new.len()) as i64 > *limit {
                    return Err(DomainError::OverQuota(
                        "Quota exceeded, too many servers in group".into(),
                    ));
                }
                Ok(new
                    .into_iter()
                    .map(|s| {
                        E::ServerGroupMemberAdded(pb::ServerGroupMemberAdded {
                            server_id: s.clone(),
                        })
                    })
                    .collect())
            }
            C::RemoveMember { server_id } => {
                if !self.members.contains(server_id) {
                    return Ok(vec![]);
                }
                Ok(vec![E::ServerGroupMemberRemoved(
                    pb::ServerGroupMemberRemoved {
                        server_id: server_id.clone(),
                    },
                )])
            }
            C::Delete => {
                self.check_live()?;
                Ok(vec![E::ServerGroupDeleted(pb::ServerGroupDeleted {})])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::ServerGroupCreated(c) => {
                self.exists = true;
                self.project_id = c.project_id.clone();
                self.user_id = c.user_id.clone();
                self.name = c.name.clone();
                self.policy = c.policy.clone();
                self.max_server_per_host = c.max_server_per_host;
            }
            E::ServerGroupMemberAdded(m) => {
                self.members.insert(m.server_id.clone());
            }
            E::ServerGroupMemberRemoved(m) => {
                self.members.remove(&m.server_id);
            }
            E::ServerGroupDeleted(_) => self.deleted = true,
            _ => {}
        }
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostAggregate {
    pub exists: bool,
    pub deleted: bool,
    pub uuid: String,
    pub name: String,
    pub availability_zone: String,
    pub hosts: BTreeSet<String>,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HostAggregateCommand {
    Create {
        uuid: String,
        name: String,
        availability_zone: String,
    },
    Update {
        name: String,
        availability_zone: String,
    },
    AddHost(String),
    RemoveHost(String),
    /// Set these items; a `None` value removes the key.
    SetMetadata(BTreeMap<String, Option<String>>),
    Delete,
    CacheImages(Vec<String>),
}

impl HostAggregate {
    fn check_live(&self) -> Result<(), DomainError> {
        if !self.exists || self.deleted {
            return Err(DomainError::NotFound {
                kind: "aggregate",
                id: self.name.clone(),
            });
        }
        Ok(())
    }
}

impl Aggregate for HostAggregate {
    type Command = HostAggregateCommand;
    type Event = E;
    const KIND: &'static str = "host-aggregate";

    fn decide(&self, cmd: &HostAggregateCommand) -> Result<Vec<E>, DomainError> {
        use HostAggregateCommand as C;
        if !matches!(cmd, C::Create { .. }) {
            self.check_live()?;
        }
        Ok(match cmd {
            C::Create {
                uuid,
                name,
                availability_zone,
            } => {
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: "aggregate",
                        detail: "id already used".into(),
                    });
                }
                super::check_len("name", name, super::NAME_MAX)?;
                vec![E::AggregateCreated(pb::AggregateCreated {
                    uuid: uuid.clone(),
                    name: name.clone(),
                    availability_zone: availability_zone.clone(),
                })]
            }
            C::Update {
                name,
                availability_zone,
            } => {
                super::check_len("name", name, super::NAME_MAX)?;
                if *name == self.name && *availability_zone == self.availability_zone {
                    return Ok(vec![]);
                }
                vec![E::AggregateUpdated(pb::AggregateUpdated {
                    name: name.clone(),
                    availability_zone: availability_zone.clone(),
                })]
            }
            C::AddHost(host) => {
                if self.hosts.contains(host) {
                    return Err(DomainError::Conflict(format!(
                        "Aggregate {} already has host {host}.",
                        self.name
                    )));
                }
                vec![E::AggregateHostAdded(pb::AggregateHostAdded {
                    host: host.clone(),
                })]
            }
            C::RemoveHost(host) => {
                if !self.hosts.contains(host) {
                    return Err(DomainError::NotFound {
                        kind: "host in aggregate",
                        id: host.clone(),
                    });
                }
                vec![E::AggregateHostRemoved(pb::AggregateHostRemoved {
                    host: host.clone(),
                })]
            }
            C::SetMetadata(items) => {
                let mut set = std::collections::HashMap::new();
                let mut removed = Vec::new();
                for (k, v) in items {
                    super::check_len("metadata key", k, super::NAME_MAX)?;
                    match v {
                        Some(v) => {
                            set.insert(k.clone(), v.clone());
                        }
                        None if self.metadata.contains_key(k) => removed.push(k.clone()),
                        None => {}
                    }
                }
                if set.is_empty() && removed.is_empty() {
                    return Ok(vec![]);
                }
                vec![E::AggregateMetadataChanged(pb::AggregateMetadataChanged {
                    set,
                    removed,
                })]
            }
            C::Delete => {
                if !self.hosts.is_empty() {
                    return Err(DomainError::Invalid(format!(
                        "Cannot remove aggregate {}: it still has hosts.",
                        self.name
                    )));
                }
                vec![E::AggregateDeleted(pb::AggregateDeleted {})]
            }
            C::CacheImages(ids) => vec![E::AggregateImagesCacheRequested(
                pb::AggregateImagesCacheRequested {
                    image_ids: ids.clone(),
                },
            )],
        })
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::AggregateCreated(c) => {
                self.exists = true;
                self.uuid = c.uuid.clone();
                self.name = c.name.clone();
                self.availability_zone = c.availability_zone.clone();
            }
            E::AggregateUpdated(u) => {
                self.name = u.name.clone();
                self.availability_zone = u.availability_zone.clone();
            }
            E::AggregateHostAdded(h) => {
                self.hosts.insert(h.host.clone());
            }
            E::AggregateHostRemoved(h) => {
                self.hosts.remove(&h.host);
            }
            E::AggregateMetadataChanged(m) => {
                for k in &m.removed {
                    self.metadata.remove(k);
                }
                self.metadata
                    .extend(m.set.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            E::AggregateDeleted(_) => self.deleted = true,
            _ => {}
        }
        self
    }
}

/// A counter (Nova's integer ids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    pub value: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next;

impl Aggregate for Sequence {
    type Command = Next;
    type Event = E;
    const KIND: &'static str = "sequence";

    fn decide(&self, _: &Next) -> Result<Vec<E>, DomainError> {
        Ok(vec![E::SequenceAdvanced(pb::SequenceAdvanced {
            value: self.value + 1,
        })])
    }

    fn apply(mut self, event: &E) -> Self {
        if let E::SequenceAdvanced(s) = event {
            self.value = s.value;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    fn group(policy: &str) -> E {
        E::ServerGroupCreated(pb::ServerGroupCreated {
            project_id: "p".into(),
            user_id: "u".into(),
            name: "g".into(),
            policy: policy.into(),
            max_server_per_host: 0,
        })
    }

    #[test]
    fn group_members_are_limited() {
        let s = given::<ServerGroup>([group("anti-affinity")])
            .when(ServerGroupCommand::AddMembers {
                servers: vec!["a".into(), "b".into()],
                limit: 2,
            })
            .then_ok();
        assert_eq!(s.members.len(), 2);
        given::<ServerGroup>([
            group("affinity"),
            E::ServerGroupMemberAdded(pb::ServerGroupMemberAdded {
                server_id: "a".into(),
            }),
        ])
        .when(ServerGroupCommand::AddMembers {
            servers: vec!["b".into()],
            limit: 1,
        })
        .then_err_where(|e| matches!(e, DomainError::OverQuota(_)));
    }

    #[test]
    fn rules_only_for_anti_affinity() {
        given::<ServerGroup>([])
            .when(ServerGroupCommand::Create {
                project_id: "p".into(),
                user_id: "u".into(),
                name: "g".into(),
                policy: "affinity".into(),
                max_server_per_host: 2,
            })
            .then_invalid();
    }

    #[test]
    fn aggregate_hosts_and_metadata() {
        let created = E::AggregateCreated(pb::AggregateCreated {
            uuid: "u".into(),
            name: "a".into(),
            availability_zone: "z".into(),
        });
        let s = given::<HostAggregate>([created.clone()])
            .when(HostAggregateCommand::AddHost("h".into()))
            .then_ok();
        assert!(s.hosts.contains("h"));
        given::<HostAggregate>([
            created.clone(),
            E::AggregateHostAdded(pb::AggregateHostAdded { host: "h".into() }),
        ])
        .when(HostAggregateCommand::Delete)
        .then_invalid();
        let s = given::<HostAggregate>([created])
            .when(HostAggregateCommand::SetMetadata(
                [("ssd".to_string(), Some("true".to_string()))].into(),
            ))
            .then_ok();
        assert_eq!(s.metadata.get("ssd").map(String::as_str), Some("true"));
    }

    #[test]
    fn sequence_counts_from_one() {
        let s = given::<Sequence>([]).when(Next).then_ok();
        assert_eq!(s.value, 1);
    }
}
