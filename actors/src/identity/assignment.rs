//! `Assignment`: the roles one user holds directly on one project or domain. Its id is
//! [`assignment_id`]`(user, target)`, so every grant for the same pair lands in the same stream.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use strata_proto::identity as pb;
use strata_proto::IdentityEvent as E;

use super::{check_id, not_found, ID_MAX};
use crate::aggregate::{Aggregate, DomainError};

/// What a role is granted on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Target {
    Project(String),
    Domain(String),
}

impl Target {
    /// The project's or domain's id.
    pub fn id(&self) -> &str {
        match self {
            Target::Project(id) | Target::Domain(id) => id,
        }
    }

    /// (project_id, domain_id) as the events carry them: exactly one is non-empty.
    fn event_ids(&self) -> (String, String) {
        match self {
            Target::Project(id) => (id.clone(), String::new()),
            Target::Domain(id) => (String::new(), id.clone()),
        }
    }

    fn from_event_ids(project_id: &str, domain_id: &str) -> Target {
        if project_id.is_empty() {
            Target::Domain(domain_id.to_string())
        } else {
            Target::Project(project_id.to_string())
        }
    }
}

/// The aggregate id of `user_id`'s roles on `target`: `<user>@project.<id>` or `<user>@domain.<id>`.
pub fn assignment_id(user_id: &str, target: &Target) -> String {
    match target {
        Target::Project(id) => format!("{user_id}@project.{id}"),
        Target::Domain(id) => format!("{user_id}@domain.{id}"),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// "" until the first grant.
    pub user_id: String,
    /// `None` until the first grant.
    pub target: Option<Target>,
    /// Roles currently granted.
    pub roles: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignmentCommand {
    /// Idempotent: granting a role the user already holds records nothing.
    Grant {
        user_id: String,
        target: Target,
        role_id: String,
    },
    Revoke {
        user_id: String,
        target: Target,
        role_id: String,
    },
}

impl Assignment {
    /// Refuse a command addressed to another (user, target) pair than the one this stream holds.
    fn check_pair(&self, user_id: &str, target: &Target, role_id: &str) -> Result<(), DomainError> {
        check_id("user_id", user_id, ID_MAX)?;
        check_id("target", target.id(), ID_MAX)?;
        check_id("role_id", role_id, ID_MAX)?;
        match &self.target {
            Some(held) if held != target || self.user_id != user_id => {
                Err(DomainError::Invalid(format!(
                    "Role assignment {} sent to the stream of {}.",
                    assignment_id(user_id, target),
                    assignment_id(&self.user_id, held)
                )))
            }
            _ => Ok(()),
        }
    }
}

impl Aggregate for Assignment {
    type Command = AssignmentCommand;
    type Event = E;
    const KIND: &'static str = "assignment";

    fn decide(&self, cmd: &AssignmentCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            AssignmentCommand::Grant {
                user_id,
                target,
                role_id,
            } => {
                self.check_pair(user_id, target, role_id)?;
                if self.roles.contains(role_id) {
                    return Ok(vec![]);
                }
                let (project_id, domain_id) = target.event_ids();
                Ok(vec![E::RoleGranted(pb::RoleGranted {
                    user_id: user_id.clone(),
                    project_id,
                    domain_id,
                    role_id: role_id.clone(),
                })])
            }
            AssignmentCommand::Revoke {
                user_id,
                target,
                role_id,
            } => {
                self.check_pair(user_id, target, role_id)?;
                if !self.roles.contains(role_id) {
                    return Err(not_found(
                        "role assignment",
                        &format!("{role_id} on {}", assignment_id(user_id, target)),
                    ));
                }
                let (project_id, domain_id) = target.event_ids();
                Ok(vec![E::RoleRevoked(pb::RoleRevoked {
                    user_id: user_id.clone(),
                    project_id,
                    domain_id,
                    role_id: role_id.clone(),
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::RoleGranted(g) => {
                self.user_id = g.user_id.clone();
                self.target = Some(Target::from_event_ids(&g.project_id, &g.domain_id));
                self.roles.insert(g.role_id.clone());
            }
            E::RoleRevoked(r) => {
                self.roles.remove(&r.role_id);
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    fn on_project() -> Target {
        Target::Project("p1".into())
    }

    fn grant(role: &str) -> AssignmentCommand {
        AssignmentCommand::Grant {
            user_id: "u1".into(),
            target: on_project(),
            role_id: role.into(),
        }
    }

    fn revoke(role: &str) -> AssignmentCommand {
        AssignmentCommand::Revoke {
            user_id: "u1".into(),
            target: on_project(),
            role_id: role.into(),
        }
    }

    fn granted(role: &str) -> E {
        E::RoleGranted(pb::RoleGranted {
            user_id: "u1".into(),
            project_id: "p1".into(),
            domain_id: String::new(),
            role_id: role.into(),
        })
    }

    fn revoked(role: &str) -> E {
        E::RoleRevoked(pb::RoleRevoked {
            user_id: "u1".into(),
            project_id: "p1".into(),
            domain_id: String::new(),
            role_id: role.into(),
        })
    }

    fn roles(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ids_name_the_user_and_the_target() {
        assert_eq!(
            assignment_id("u1", &Target::Project("p1".into())),
            "u1@project.p1"
        );
        assert_eq!(
            assignment_id("u1", &Target::Domain("d1".into())),
            "u1@domain.d1"
        );
        assert_eq!(Target::Domain("d1".into()).id(), "d1");
    }

    #[test]
    fn grant_on_a_project_records_the_role() {
        let state = given::<Assignment>([])
            .when(grant("r1"))
            .then(vec![granted("r1")]);
        assert_eq!(
            state,
            Assignment {
                user_id: "u1".into(),
                target: Some(on_project()),
                roles: roles(&["r1"])
            }
        );
        let state = given::<Assignment>([granted("r1")])
            .when(grant("r2"))
            .then(vec![granted("r2")]);
        assert_eq!(state.roles, roles(&["r1", "r2"]));
    }

    #[test]
    fn grant_on_a_domain_records_the_role() {
        let cmd = AssignmentCommand::Grant {
            user_id: "u1".into(),
            target: Target::Domain("d1".into()),
            role_id: "r1".into(),
        };
        let state = given::<Assignment>([])
            .when(cmd)
            .then(vec![E::RoleGranted(pb::RoleGranted {
                user_id: "u1".into(),
                project_id: String::new(),
                domain_id: "d1".into(),
                role_id: "r1".into(),
            })]);
        assert_eq!(state.target, Some(Target::Domain("d1".into())));
    }

    #[test]
    fn granting_a_held_role_records_nothing() {
        let state = given::<Assignment>([granted("r1")])
            .when(grant("r1"))
            .then_nothing();
        assert_eq!(state.roles, roles(&["r1"]));
    }

    #[test]
    fn revoke_removes_the_role() {
        let state = given::<Assignment>([granted("r1"), granted("r2")])
            .when(revoke("r1"))
            .then(vec![revoked("r1")]);
        assert_eq!(state.roles, roles(&["r2"]));
    }

    #[test]
    fn a_role_can_be_granted_again_after_revoke() {
        let state = given::<Assignment>([granted("r1"), revoked("r1")])
            .when(grant("r1"))
            .then(vec![granted("r1")]);
        assert_eq!(state.roles, roles(&["r1"]));
    }

    #[test]
    fn revoking_a_role_not_granted_is_not_found() {
        let err = DomainError::NotFound {
            kind: "role assignment",
            id: "r1 on u1@project.p1".into(),
        };
        given::<Assignment>([])
            .when(revoke("r1"))
            .then_err(err.clone());
        given::<Assignment>([granted("r1"), revoked("r1")])
            .when(revoke("r1"))
            .then_err(err.clone());
        given::<Assignment>([granted("r2")])
            .when(revoke("r1"))
            .then_err(err);
    }

    #[test]
    fn commands_validate_their_ids() {
        given::<Assignment>([])
            .when(AssignmentCommand::Grant {
                user_id: String::new(),
                target: on_project(),
                role_id: "r1".into(),
            })
            .then_invalid();
        given::<Assignment>([])
            .when(AssignmentCommand::Grant {
                user_id: "u1".into(),
                target: Target::Project(String::new()),
                role_id: "r1".into(),
            })
            .then_invalid();
        given::<Assignment>([]).when(grant("")).then_invalid();
    }

    #[test]
    fn a_command_for_another_pair_is_refused() {
        let other_user = AssignmentCommand::Grant {
            user_id: "u2".into(),
            target: on_project(),
            role_id: "r1".into(),
        };
        given::<Assignment>([granted("r1")])
            .when(other_user)
            .then_invalid();
        let other_target = AssignmentCommand::Revoke {
            user_id: "u1".into(),
            target: Target::Domain("p1".into()),
            role_id: "r1".into(),
        };
        given::<Assignment>([granted("r1")])
            .when(other_target)
            .then_invalid();
    }

    #[test]
    fn apply_ignores_other_aggregates_events() {
        let before = given::<Assignment>([granted("r1")]).0;
        assert_eq!(
            before.clone().apply(&E::RoleDeleted(pb::RoleDeleted {})),
            before
        );
    }
}
