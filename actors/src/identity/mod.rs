//! The identity (Keystone) aggregates: domains, projects, users, roles, role assignments, the service
//! catalog (services, endpoints, regions), token revocations and unique-name claims.
//!
//! Architecture invariant: everything here is pure. `decide` validates a command against one aggregate's
//! state and returns `IdentityEvent`s; `apply` folds them back. No I/O, no clock, no randomness: ids,
//! password hashes and expiry times arrive inside commands. Rules that span aggregates (a project's domain
//! exists, a name is unique within its domain) are enforced by the caller, the latter with [`NameClaim`].
//! The [`password`] helpers hash and verify outside of `decide`, in the API, before a command is built.
//!
//! Each aggregate ignores the `IdentityEvent` variants that are not about it. An entity that was deleted
//! stays deleted: its id is never reused (`Create` answers `AlreadyExists`), and everything else answers
//! `NotFound`. `NotFound::id` is the entity's id when the stream once held it, and empty when the stream
//! never did (only the caller knows which id it asked for).

mod assignment;
mod domain;
mod endpoint;
mod name_claim;
pub mod password;
mod project;
mod region;
mod revocation;
mod role;
mod service;
mod user;

pub use assignment::{assignment_id, Assignment, AssignmentCommand, Target};
pub use domain::{Domain, DomainCommand};
pub use endpoint::{Endpoint, EndpointCommand, INTERFACES};
pub use name_claim::{name_claim_id, NameClaim, NameClaimCommand};
pub use project::{Project, ProjectCommand};
pub use region::{Region, RegionCommand};
pub use revocation::{Revocation, RevocationCommand};
pub use role::{Role, RoleCommand};
pub use service::{Service, ServiceCommand};
pub use user::{User, UserCommand};

/// Identity's aggregate types, for generic readers (`crate::registry`).
pub const AGGREGATES: &[crate::registry::StateFolder] = &[
    crate::registry::folder::<Domain>(),
    crate::registry::folder::<Project>(),
    crate::registry::folder::<User>(),
    crate::registry::folder::<Role>(),
    crate::registry::folder::<Assignment>(),
    crate::registry::folder::<Service>(),
    crate::registry::folder::<Endpoint>(),
    crate::registry::folder::<Region>(),
    crate::registry::folder::<Revocation>(),
    crate::registry::folder::<NameClaim>(),
];

use crate::aggregate::DomainError;

/// Longest domain and project name (Keystone's schema limit for these).
pub const ENTITY_NAME_MAX: usize = 64;
/// Longest name of anything else (users, roles, services), and of most free-form short strings.
pub const NAME_MAX: usize = 255;
/// Longest description (Keystone stores them as TEXT).
pub const DESCRIPTION_MAX: usize = 65535;
/// Longest generated id (domains, projects, users, roles, services, endpoints).
pub const ID_MAX: usize = 64;

/// A required identifier: non-empty, at most `max` characters.
fn check_id(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    check_len(field, value, max)
}

/// A required name: not blank (Keystone's `[\S]+`), at most `max` characters.
fn check_name(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    check_len(field, value, max)
}

/// Free text of at most `max` characters (may be empty).
fn check_len(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.chars().count() > max {
        return Err(invalid(
            field,
            &format!("must be at most {max} characters long"),
        ));
    }
    Ok(())
}

fn check_description(value: &str) -> Result<(), DomainError> {
    check_len("description", value, DESCRIPTION_MAX)
}

/// Extra (unmodelled) attributes: empty, or a serialized JSON object.
fn check_extra(value: &str) -> Result<(), DomainError> {
    if value.is_empty() {
        return Ok(());
    }
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(invalid("extra", "must be a JSON object")),
    }
}

fn invalid(field: &str, why: &str) -> DomainError {
    DomainError::Invalid(format!("Invalid input for field '{field}': {why}."))
}

/// The refusal for a command on an entity that is absent or deleted.
fn not_found(kind: &'static str, id: &str) -> DomainError {
    DomainError::NotFound {
        kind,
        id: id.to_string(),
    }
}

/// The refusal for creating an entity whose id is, or was, taken (Keystone's wording).
fn duplicate_id(kind: &'static str, id: &str) -> DomainError {
    DomainError::AlreadyExists {
        kind,
        detail: format!("Duplicate ID, {id}."),
    }
}

/// `Some(new)` when an update sets a field to a value different from the current one; `None` otherwise, so
/// an update event carries only real changes and an update that changes nothing records nothing.
fn changed<T: PartialEq + Clone>(current: &T, new: &Option<T>) -> Option<T> {
    match new {
        Some(v) if v != current => Some(v.clone()),
        _ => None,
    }
}

/// Overwrite `field` when an update event carries a new value.
fn set<T>(field: &mut T, value: &Option<T>)
where
    T: Clone,
{
    if let Some(v) = value {
        *field = v.clone();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::aggregate::{Aggregate, DomainEvent};
    use crate::gwt::assert_round_trips;
    use strata_proto::IdentityEvent;

    /// Run `cmds` in order against a fresh aggregate, applying each decision; return every event.
    fn run<A: Aggregate<Event = IdentityEvent>>(cmds: Vec<A::Command>) -> Vec<IdentityEvent> {
        let mut state = A::default();
        let mut all = Vec::new();
        for cmd in cmds {
            let events = state
                .decide(&cmd)
                .unwrap_or_else(|e| panic!("{cmd:?} refused: {e}"));
            for e in &events {
                state = state.apply(e);
            }
            all.extend(events);
        }
        all
    }

    /// Every event type that `decide` can emit, produced by `decide` itself, survives the log codec.
    #[test]
    fn every_emitted_event_round_trips_through_the_codec() {
        let mut events = Vec::new();
        events.extend(run::<Domain>(vec![
            DomainCommand::Create {
                domain_id: "d1".into(),
                name: "acme".into(),
                description: "Acme".into(),
                enabled: true,
                extra_json: r#"{"k":"v"}"#.into(),
            },
            DomainCommand::Update {
                name: None,
                description: Some("x".into()),
                enabled: Some(false),
                extra_json: None,
            },
            DomainCommand::Delete,
        ]));
        events.extend(run::<Project>(vec![
            ProjectCommand::Create {
                project_id: "p1".into(),
                domain_id: "d1".into(),
                name: "demo".into(),
                description: String::new(),
                enabled: true,
                parent_id: "d1".into(),
                tags: vec!["a".into(), "b".into()],
                extra_json: String::new(),
            },
            ProjectCommand::Update {
                name: Some("demo2".into()),
                description: None,
                enabled: None,
                tags: Some(vec![]),
                extra_json: None,
            },
            ProjectCommand::Delete,
        ]));
        events.extend(run::<User>(vec![
            UserCommand::Create {
                user_id: "u1".into(),
                domain_id: "d1".into(),
                name: "alice".into(),
                password_hash: Some(user::tests::PHC.into()),
                enabled: true,
                description: String::new(),
                email: "a@example.com".into(),
                default_project_id: "p1".into(),
                extra_json: String::new(),
            },
            UserCommand::Update {
                name: None,
                enabled: Some(false),
                description: None,
                email: Some(String::new()),
                default_project_id: None,
                extra_json: None,
            },
            UserCommand::ChangePassword {
                new_hash: user::tests::PHC2.into(),
            },
            UserCommand::Delete,
        ]));
        events.extend(run::<Role>(vec![
            RoleCommand::Create {
                role_id: "r1".into(),
                name: "admin".into(),
                domain_id: String::new(),
                description: String::new(),
            },
            RoleCommand::Update {
                name: None,
                description: Some("all powerful".into()),
            },
            RoleCommand::AddImplication {
                implied_role_id: "r2".into(),
            },
            RoleCommand::RemoveImplication {
                implied_role_id: "r2".into(),
            },
            RoleCommand::Delete,
        ]));
        events.extend(run::<Assignment>(vec![
            AssignmentCommand::Grant {
                user_id: "u1".into(),
                target: Target::Project("p1".into()),
                role_id: "r1".into(),
            },
            AssignmentCommand::Revoke {
                user_id: "u1".into(),
                target: Target::Project("p1".into()),
                role_id: "r1".into(),
            },
        ]));
        events.extend(run::<Assignment>(vec![AssignmentCommand::Grant {
            user_id: "u1".into(),
            target: Target::Domain("d1".into()),
            role_id: "r1".into(),
        }]));
        events.extend(run::<Service>(vec![
            ServiceCommand::Create {
                service_id: "s1".into(),
                service_type: "compute".into(),
                name: "nova".into(),
                description: String::new(),
                enabled: true,
            },
            ServiceCommand::Update {
                service_type: None,
                name: None,
                description: None,
                enabled: Some(false),
            },
            ServiceCommand::Delete,
        ]));
        events.extend(run::<Endpoint>(vec![
            EndpointCommand::Create {
                endpoint_id: "e1".into(),
                service_id: "s1".into(),
                interface: "public".into(),
                url: "http://localhost:8774/v2.1".into(),
                region_id: "RegionOne".into(),
                enabled: true,
            },
            EndpointCommand::Update {
                service_id: None,
                interface: Some("admin".into()),
                url: None,
                region_id: None,
                enabled: None,
            },
            EndpointCommand::Delete,
        ]));
        events.extend(run::<Region>(vec![
            RegionCommand::Create {
                region_id: "RegionOne".into(),
                description: String::new(),
                parent_region_id: String::new(),
            },
            RegionCommand::Update {
                description: Some("first".into()),
                parent_region_id: None,
            },
            RegionCommand::Delete,
        ]));
        events.extend(run::<Revocation>(vec![RevocationCommand::Revoke {
            audit_id: "aid".into(),
            expires_at_micros: 1,
        }]));
        events.extend(run::<NameClaim>(vec![
            NameClaimCommand::Claim {
                kind: "project",
                scope: "d1".into(),
                name: "demo".into(),
                owner_id: "p1".into(),
            },
            NameClaimCommand::Release {
                owner_id: "p1".into(),
            },
        ]));

        events.iter().for_each(assert_round_trips);
        let types: BTreeSet<&str> = events.iter().map(|e| e.event_type()).collect();
        assert_eq!(
            types.len(),
            29,
            "every identity event type is emitted by some decision: {types:?}"
        );
    }

    #[test]
    fn updates_carry_only_changes() {
        assert_eq!(changed(&"a".to_string(), &Some("a".to_string())), None);
        assert_eq!(
            changed(&"a".to_string(), &Some("b".to_string())),
            Some("b".to_string())
        );
        assert_eq!(changed(&true, &None), None);
    }

    #[test]
    fn validation_counts_characters_not_bytes() {
        let name: String = "é".repeat(ENTITY_NAME_MAX);
        assert!(check_name("name", &name, ENTITY_NAME_MAX).is_ok());
        assert!(check_name("name", &format!("{name}é"), ENTITY_NAME_MAX).is_err());
        assert!(check_name("name", "   ", ENTITY_NAME_MAX).is_err());
        assert!(check_id("id", "", ID_MAX).is_err());
        assert!(check_extra("").is_ok());
        assert!(check_extra("{}").is_ok());
        assert!(check_extra("[]").is_err());
        assert!(check_extra("{").is_err());
    }
}
