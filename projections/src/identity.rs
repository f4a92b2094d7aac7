//! `IdentityView`: every Keystone resource as the API reads it, plus what token validation needs
//! (password hashes, when a user's tokens stop being valid, revoked audit ids).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use strata_events::RecordedEvent;
use strata_proto::IdentityEvent as E;

use crate::persistent::{retain_set, OrdMap, OrdSet};
use crate::Projection;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DomainRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub extra_json: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectRow {
    pub id: String,
    pub domain_id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub parent_id: String,
    pub tags: Vec<String>,
    pub extra_json: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserRow {
    pub id: String,
    pub domain_id: String,
    pub name: String,
    pub enabled: bool,
    pub description: String,
    pub email: String,
    pub default_project_id: String,
    pub extra_json: String,
    pub password_hash: String,
    /// Tokens issued before this instant (µs since epoch) are invalid: set by password changes.
    pub tokens_valid_after_micros: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleRow {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub description: String,
    pub implies: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceRow {
    pub id: String,
    pub service_type: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointRow {
    pub id: String,
    pub service_id: String,
    pub interface: String,
    pub url: String,
    pub region_id: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionRow {
    pub id: String,
    pub description: String,
    pub parent_region_id: String,
}

/// What a role assignment is on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    Project(String),
    Domain(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AssignmentRow {
    pub user_id: String,
    pub scope: Scope,
    pub role_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdentityView {
    pub domains: OrdMap<String, DomainRow>,
    pub projects: OrdMap<String, ProjectRow>,
    pub users: OrdMap<String, UserRow>,
    pub roles: OrdMap<String, RoleRow>,
    pub assignments: OrdSet<AssignmentRow>,
    pub services: OrdMap<String, ServiceRow>,
    pub endpoints: OrdMap<String, EndpointRow>,
    pub regions: OrdMap<String, RegionRow>,
    /// Revoked token audit ids and when the token would have expired (µs).
    pub revoked: OrdMap<String, i64>,
    /// Events this projection could not decode (kept so a rebuild shows the same count).
    pub undecodable: u64,
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

impl Projection for IdentityView {
    const NAME: &'static str = "identity";
    const VERSION: u32 = 1;

    fn handle(&mut self, event: &RecordedEvent) {
        let Some(ev) =
            crate::runner::decode_service_event::<E>(event, "identity", &mut self.undecodable)
        else {
            return;
        };
        let id = crate::runner::aggregate_id(event);
        match ev {
            E::DomainCreated(d) => {
                self.domains.insert(
                    d.domain_id.clone(),
                    DomainRow {
                        id: d.domain_id,
                        name: d.name,
                        description: d.description,
                        enabled: d.enabled,
                        extra_json: d.extra_json,
                    },
                );
            }
            E::DomainUpdated(u) => {
                if let Some(d) = self.domains.get_mut(&id) {
                    set(&mut d.name, u.name);
                    set(&mut d.description, u.description);
                    set(&mut d.enabled, u.enabled);
                    set(&mut d.extra_json, u.extra_json);
                }
            }
            E::DomainDeleted(_) => {
                self.domains.remove(&id);
            }
            E::ProjectCreated(p) => {
                self.projects.insert(
                    p.project_id.clone(),
                    ProjectRow {
                        id: p.project_id,
                        domain_id: p.domain_id,
                        name: p.name,
                        description: p.description,
                        enabled: p.enabled,
                        parent_id: p.parent_id,
                        tags: p.tags,
                        extra_json: p.extra_json,
                    },
                );
            }
            E::ProjectUpdated(u) => {
                if let Some(p) = self.projects.get_mut(&id) {
                    set(&mut p.name, u.name);
                    set(&mut p.description, u.description);
                    set(&mut p.enabled, u.enabled);
                    set(&mut p.extra_json, u.extra_json);
                    if u.tags_changed {
                        p.tags = u.tags;
                    }
                }
            }
            E::ProjectDeleted(_) => {
                self.projects.remove(&id);
                retain_set(&mut self.assignments, |a| {
                    a.scope != Scope::Project(id.clone())
                });
            }
            E::UserCreated(u) => {
                self.users.insert(
                    u.user_id.clone(),
                    UserRow {
                        id: u.user_id,
                        domain_id: u.domain_id,
                        name: u.name,
                        enabled: u.enabled,
                        description: u.description,
                        email: u.email,
                        default_project_id: u.default_project_id,
                        extra_json: u.extra_json,
                        password_hash: u.password_hash,
                        tokens_valid_after_micros: 0,
                    },
                );
            }
            E::UserUpdated(u) => {
                if let Some(row) = self.users.get_mut(&id) {
                    set(&mut row.name, u.name);
                    set(&mut row.enabled, u.enabled);
                    set(&mut row.description, u.description);
                    set(&mut row.email, u.email);
                    set(&mut row.default_project_id, u.default_project_id);
                    set(&mut row.extra_json, u.extra_json);
                }
            }
            E::UserPasswordChanged(p) => {
                if let Some(row) = self.users.get_mut(&id) {
                    row.password_hash = p.password_hash;
                    row.tokens_valid_after_micros = event.recorded_at.timestamp_micros();
                }
            }
            E::UserDeleted(_) => {
                self.users.remove(&id);
                retain_set(&mut self.assignments, |a| a.user_id != id);
            }
            E::RoleCreated(r) => {
                self.roles.insert(
                    r.role_id.clone(),
                    RoleRow {
                        id: r.role_id,
                        name: r.name,
                        domain_id: r.domain_id,
                        description: r.description,
                        implies: BTreeSet::new(),
                    },
                );
            }
            E::RoleUpdated(u) => {
                if let Some(r) = self.roles.get_mut(&id) {
                    set(&mut r.name, u.name);
                    set(&mut r.description, u.description);
                }
            }
            E::RoleDeleted(_) => {
                self.roles.remove(&id);
                let implying: Vec<String> = self
                    .roles
                    .values()
                    .filter(|r| r.implies.contains(&id))
                    .map(|r| r.id.clone())
                    .collect();
                for r in implying {
                    if let Some(r) = self.roles.get_mut(&r) {
                        r.implies.remove(&id);
                    }
                }
                retain_set(&mut self.assignments, |a| a.role_id != id);
            }
            E::RoleImplicationAdded(i) => {
                if let Some(r) = self.roles.get_mut(&id) {
                    r.implies.insert(i.implied_role_id);
                }
            }
            E::RoleImplicationRemoved(i) => {
                if let Some(r) = self.roles.get_mut(&id) {
                    r.implies.remove(&i.implied_role_id);
                }
            }
            E::RoleGranted(g) => {
                if let Some(scope) = scope_of(&g.project_id, &g.domain_id) {
                    self.assignments.insert(AssignmentRow {
                        user_id: g.user_id,
                        scope,
                        role_id: g.role_id,
                    });
                }
            }
            E::RoleRevoked(g) => {
                if let Some(scope) = scope_of(&g.project_id, &g.domain_id) {
                    self.assignments.remove(&AssignmentRow {
                        user_id: g.user_id,
                        scope,
                        role_id: g.role_id,
                    });
                }
            }
            E::ServiceCreated(s) => {
                self.services.insert(
                    s.service_id.clone(),
                    ServiceRow {
                        id: s.service_id,
                        service_type: s.r#type,
                        name: s.name,
                        description: s.description,
                        enabled: s.enabled,
                    },
                );
            }
            E::ServiceUpdated(u) => {
                if let Some(s) = self.services.get_mut(&id) {
                    set(&mut s.service_type, u.r#type);
                    set(&mut s.name, u.name);
                    set(&mut s.description, u.description);
                    set(&mut s.enabled, u.enabled);
                }
            }
            E::ServiceDeleted(_) => {
                self.services.remove(&id);
            }
            E::EndpointCreated(ep) => {
                self.endpoints.insert(
                    ep.endpoint_id.clone(),
                    EndpointRow {
                        id: ep.endpoint_id,
                        service_id: ep.service_id,
                        interface: ep.interface,
                        url: ep.url,
                        region_id: ep.region_id,
                        enabled: ep.enabled,
                    },
                );
            }
            E::EndpointUpdated(u) => {
                if let Some(ep) = self.endpoints.get_mut(&id) {
                    set(&mut ep.service_id, u.service_id);
                    set(&mut ep.interface, u.interface);
                    set(&mut ep.url, u.url);
                    set(&mut ep.region_id, u.region_id);
                    set(&mut ep.enabled, u.enabled);
                }
            }
            E::EndpointDeleted(_) => {
                self.endpoints.remove(&id);
            }
            E::RegionCreated(r) => {
                self.regions.insert(
                    r.region_id.clone(),
                    RegionRow {
                        id: r.region_id,
                        description: r.description,
                        parent_region_id: r.parent_region_id,
                    },
                );
            }
            E::RegionUpdated(u) => {
                if let Some(r) = self.regions.get_mut(&id) {
                    set(&mut r.description, u.description);
                    set(&mut r.parent_region_id, u.parent_region_id);
                }
            }
            E::RegionDeleted(_) => {
                self.regions.remove(&id);
            }
            E::TokenRevoked(t) => {
                self.revoked.insert(t.audit_id, t.expires_at_micros);
            }
            E::NameClaimed(_) | E::NameReleased(_) => {}
        }
    }
}

fn scope_of(project_id: &str, domain_id: &str) -> Option<Scope> {
    if !project_id.is_empty() {
        Some(Scope::Project(project_id.to_string()))
    } else if !domain_id.is_empty() {
        Some(Scope::Domain(domain_id.to_string()))
    } else {
        None
    }
}

impl IdentityView {
    pub fn domain_by_name(&self, name: &str) -> Option<&DomainRow> {
        self.domains.values().find(|d| d.name == name)
    }

    pub fn project_by_name(&self, domain_id: &str, name: &str) -> Option<&ProjectRow> {
        self.projects
            .values()
            .find(|p| p.domain_id == domain_id && p.name == name)
    }

    pub fn user_by_name(&self, domain_id: &str, name: &str) -> Option<&UserRow> {
        self.users
            .values()
            .find(|u| u.domain_id == domain_id && u.name == name)
    }

    pub fn role_by_name(&self, name: &str) -> Option<&RoleRow> {
        self.roles
            .values()
            .find(|r| r.name == name && r.domain_id.is_empty())
    }

    pub fn service_by_type(&self, service_type: &str) -> Option<&ServiceRow> {
        self.services
            .values()
            .find(|s| s.service_type == service_type)
    }

    /// Role ids granted directly to `user_id` on `scope`.
    pub fn direct_roles(&self, user_id: &str, scope: &Scope) -> BTreeSet<String> {
        self.assignments
            .iter()
            .filter(|a| a.user_id == user_id && &a.scope == scope)
            .map(|a| a.role_id.clone())
            .collect()
    }

    /// The given roles plus every role they imply, transitively (admin -> member -> reader).
    pub fn expand_implied(&self, roles: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = roles.clone();
        let mut todo: Vec<String> = roles.iter().cloned().collect();
        while let Some(r) = todo.pop() {
            if let Some(row) = self.roles.get(&r) {
                for i in &row.implies {
                    if out.insert(i.clone()) {
                        todo.push(i.clone());
                    }
                }
            }
        }
        out
    }

    /// Effective roles (with implied ones) of a user on a scope.
    pub fn effective_roles(&self, user_id: &str, scope: &Scope) -> BTreeSet<String> {
        self.expand_implied(&self.direct_roles(user_id, scope))
    }

    pub fn is_revoked(&self, audit_id: &str) -> bool {
        self.revoked.contains_key(audit_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::put;
    use strata_events::{EventLog, MemoryLog};

    use strata_proto::identity as pb;

    async fn fixture() -> MemoryLog {
        let log = MemoryLog::new();
        put(
            &log,
            "project-p1",
            E::ProjectCreated(pb::ProjectCreated {
                project_id: "p1".into(),
                domain_id: "default".into(),
                name: "demo".into(),
                enabled: true,
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "user-u1",
            E::UserCreated(pb::UserCreated {
                user_id: "u1".into(),
                domain_id: "default".into(),
                name: "alice".into(),
                enabled: true,
                ..Default::default()
            }),
        )
        .await;
        for (id, name) in [("r1", "admin"), ("r2", "member"), ("r3", "reader")] {
            put(
                &log,
                &format!("role-{id}"),
                E::RoleCreated(pb::RoleCreated {
                    role_id: id.into(),
                    name: name.into(),
                    ..Default::default()
                }),
            )
            .await;
        }
        put(
            &log,
            "role-r1",
            E::RoleImplicationAdded(pb::RoleImplicationAdded {
                implied_role_id: "r2".into(),
            }),
        )
        .await;
        put(
            &log,
            "role-r2",
            E::RoleImplicationAdded(pb::RoleImplicationAdded {
                implied_role_id: "r3".into(),
            }),
        )
        .await;
        put(
            &log,
            "assignment-u1@project.p1",
            E::RoleGranted(pb::RoleGranted {
                user_id: "u1".into(),
                project_id: "p1".into(),
                role_id: "r1".into(),
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "project-p1",
            E::ProjectUpdated(pb::ProjectUpdated {
                description: Some("d2".into()),
                tags_changed: true,
                tags: vec!["t".into()],
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "user-u1",
            E::UserPasswordChanged(pb::UserPasswordChanged {
                password_hash: "h2".into(),
            }),
        )
        .await;
        log
    }

    #[tokio::test]
    async fn folds_identity_events_into_rows() {
        let log = fixture().await;
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(log);
        let view: IdentityView = crate::rebuild(&log, 100).await.unwrap();
        let p = &view.projects["p1"];
        assert_eq!(
            (p.name.as_str(), p.description.as_str(), p.tags.clone()),
            ("demo", "d2", vec!["t".to_string()])
        );
        assert_eq!(view.users["u1"].password_hash, "h2");
        assert!(view.users["u1"].tokens_valid_after_micros > 0);
        let scope = Scope::Project("p1".into());
        assert_eq!(
            view.effective_roles("u1", &scope)
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["r1", "r2", "r3"]
        );
        assert_eq!(
            view.project_by_name("default", "demo")
                .map(|p| p.id.as_str()),
            Some("p1")
        );
    }

    #[tokio::test]
    async fn deletes_cascade_to_assignments() {
        let log = fixture().await;
        put(&log, "project-p1", E::ProjectDeleted(pb::ProjectDeleted {})).await;
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(log);
        let view: IdentityView = crate::rebuild(&log, 100).await.unwrap();
        assert!(view.projects.is_empty());
        assert!(view.assignments.is_empty());
    }

    #[tokio::test]
    async fn rebuild_equals_live_and_checkpoint_resumes() {
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(fixture().await);
        let live = crate::Live::<IdentityView>::start(log.clone(), Default::default())
            .await
            .unwrap();
        put(
            log.as_ref(),
            "user-u1",
            E::UserUpdated(pb::UserUpdated {
                email: Some("a@x".into()),
                ..Default::default()
            }),
        )
        .await;
        assert!(live.wait_for(11, std::time::Duration::from_secs(5)).await);
        let rebuilt: IdentityView = crate::rebuild(&log, 11).await.unwrap();
        assert_eq!(live.snapshot().digest().unwrap(), rebuilt.digest().unwrap());
        // A restart resumes from the stored checkpoint and reaches the same state.
        let again = crate::Live::<IdentityView>::start(log.clone(), Default::default())
            .await
            .unwrap();
        assert_eq!(again.position(), 11);
        assert_eq!(
            again.snapshot().digest().unwrap(),
            rebuilt.digest().unwrap()
        );
    }

    #[tokio::test]
    async fn rebuilding_twice_gives_the_same_digest() {
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(fixture().await);
        let a: IdentityView = crate::rebuild(&log, 100).await.unwrap();
        let b: IdentityView = crate::rebuild(&log, 100).await.unwrap();
        assert_eq!(a.digest().unwrap(), b.digest().unwrap());
        // A prefix is a different state, with a different digest.
        let c: IdentityView = crate::rebuild(&log, 5).await.unwrap();
        assert_ne!(a.digest().unwrap(), c.digest().unwrap());
        // The saved state decodes to the same digest (checkpoints round-trip).
        let d = IdentityView::decode_state(&a.encode_state().unwrap()).unwrap();
        assert_eq!(a.digest().unwrap(), d.digest().unwrap());
    }
}
