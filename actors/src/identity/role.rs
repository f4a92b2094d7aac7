//! `Role`: a Keystone role (global when `domain_id` is empty), and the roles it implies (admin -> member).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use strata_proto::identity as pb;
use strata_proto::IdentityEvent as E;

use super::{
    changed, check_description, check_id, check_len, check_name, duplicate_id, not_found, set,
};
use super::{ID_MAX, NAME_MAX};
use crate::aggregate::{Aggregate, DomainError};

const KIND: &str = "role";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub exists: bool,
    pub deleted: bool,
    pub role_id: String,
    pub name: String,
    /// "" for a global role.
    pub domain_id: String,
    pub description: String,
    /// Roles this one implies directly (the API expands them transitively).
    pub implies: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleCommand {
    Create {
        role_id: String,
        name: String,
        domain_id: String,
        description: String,
    },
    /// Change the given fields; `None` leaves a field as it is.
    Update {
        name: Option<String>,
        description: Option<String>,
    },
    Delete,
    /// Idempotent: an implication that already exists records nothing.
    AddImplication {
        implied_role_id: String,
    },
    RemoveImplication {
        implied_role_id: String,
    },
}

impl Role {
    fn live(&self) -> Result<(), DomainError> {
        if self.exists && !self.deleted {
            Ok(())
        } else {
            Err(not_found(KIND, &self.role_id))
        }
    }
}

impl Aggregate for Role {
    type Command = RoleCommand;
    type Event = E;
    const KIND: &'static str = KIND;

    fn decide(&self, cmd: &RoleCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            RoleCommand::Create {
                role_id,
                name,
                domain_id,
                description,
            } => {
                check_id("id", role_id, ID_MAX)?;
                check_name("name", name, NAME_MAX)?;
                check_len("domain_id", domain_id, ID_MAX)?;
                check_description(description)?;
                if self.exists {
                    return Err(duplicate_id(KIND, role_id));
                }
                Ok(vec![E::RoleCreated(pb::RoleCreated {
                    role_id: role_id.clone(),
                    name: name.clone(),
                    domain_id: domain_id.clone(),
                    description: description.clone(),
                })])
            }
            RoleCommand::Update { name, description } => {
                self.live()?;
                if let Some(n) = name {
                    check_name("name", n, NAME_MAX)?;
                }
                if let Some(d) = description {
                    check_description(d)?;
                }
                let update = pb::RoleUpdated {
                    name: changed(&self.name, name),
                    description: changed(&self.description, description),
                };
                if update == pb::RoleUpdated::default() {
                    return Ok(vec![]);
                }
                Ok(vec![E::RoleUpdated(update)])
            }
            RoleCommand::Delete => {
                self.live()?;
                Ok(vec![E::RoleDeleted(pb::RoleDeleted {})])
            }
            RoleCommand::AddImplication { implied_role_id } => {
                self.live()?;
                check_id("implied_role_id", implied_role_id, ID_MAX)?;
                if *implied_role_id == self.role_id {
                    // Keystone's InvalidImpliedRole wording.
                    return Err(DomainError::Invalid(format!(
                        "{implied_role_id} cannot be an implied roles."
                    )));
                }
                if self.implies.contains(implied_role_id) {
                    return Ok(vec![]);
                }
                Ok(vec![E::RoleImplicationAdded(pb::RoleImplicationAdded {
                    implied_role_id: implied_role_id.clone(),
                })])
            }
            RoleCommand::RemoveImplication { implied_role_id } => {
                self.live()?;
                if !self.implies.contains(implied_role_id) {
                    return Err(not_found("implied role", implied_role_id));
                }
                Ok(vec![E::RoleImplicationRemoved(
                    pb::RoleImplicationRemoved {
                        implied_role_id: implied_role_id.clone(),
                    },
                )])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::RoleCreated(c) => {
                self.exists = true;
                self.role_id = c.role_id.clone();
                self.name = c.name.clone();
                self.domain_id = c.domain_id.clone();
                self.description = c.description.clone();
            }
            E::RoleUpdated(u) => {
                set(&mut self.name, &u.name);
                set(&mut self.description, &u.description);
            }
            E::RoleDeleted(_) => self.deleted = true,
            E::RoleImplicationAdded(i) => {
                self.implies.insert(i.implied_role_id.clone());
            }
            E::RoleImplicationRemoved(i) => {
                self.implies.remove(&i.implied_role_id);
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

    fn created() -> E {
        E::RoleCreated(pb::RoleCreated {
            role_id: "r1".into(),
            name: "admin".into(),
            domain_id: String::new(),
            description: String::new(),
        })
    }

    fn create() -> RoleCommand {
        RoleCommand::Create {
            role_id: "r1".into(),
            name: "admin".into(),
            domain_id: String::new(),
            description: String::new(),
        }
    }

    fn implies(id: &str) -> E {
        E::RoleImplicationAdded(pb::RoleImplicationAdded {
            implied_role_id: id.into(),
        })
    }

    fn deleted() -> E {
        E::RoleDeleted(pb::RoleDeleted {})
    }

    fn add(id: &str) -> RoleCommand {
        RoleCommand::AddImplication {
            implied_role_id: id.into(),
        }
    }

    fn remove(id: &str) -> RoleCommand {
        RoleCommand::RemoveImplication {
            implied_role_id: id.into(),
        }
    }

    #[test]
    fn create_records_the_role() {
        let state = given::<Role>([]).when(create()).then(vec![created()]);
        assert_eq!(
            state,
            Role {
                exists: true,
                deleted: false,
                role_id: "r1".into(),
                name: "admin".into(),
                domain_id: String::new(),
                description: String::new(),
                implies: BTreeSet::new(),
            }
        );
    }

    #[test]
    fn a_domain_specific_role_keeps_its_domain() {
        let cmd = RoleCommand::Create {
            role_id: "r9".into(),
            name: "auditor".into(),
            domain_id: "d1".into(),
            description: "reads".into(),
        };
        assert_eq!(given::<Role>([]).when(cmd).then_ok().domain_id, "d1");
    }

    #[test]
    fn create_twice_or_after_delete_is_a_duplicate() {
        let dup = DomainError::AlreadyExists {
            kind: "role",
            detail: "Duplicate ID, r1.".into(),
        };
        given::<Role>([created()])
            .when(create())
            .then_err(dup.clone());
        given::<Role>([created(), deleted()])
            .when(create())
            .then_err(dup);
    }

    #[test]
    fn create_validates_its_input() {
        let cases = [
            RoleCommand::Create {
                role_id: String::new(),
                name: "admin".into(),
                domain_id: String::new(),
                description: String::new(),
            },
            RoleCommand::Create {
                role_id: "r1".into(),
                name: String::new(),
                domain_id: String::new(),
                description: String::new(),
            },
            RoleCommand::Create {
                role_id: "r1".into(),
                name: "n".repeat(256),
                domain_id: String::new(),
                description: String::new(),
            },
            RoleCommand::Create {
                role_id: "r1".into(),
                name: "admin".into(),
                domain_id: String::new(),
                description: "d".repeat(65536),
            },
        ];
        for cmd in cases {
            given::<Role>([]).when(cmd).then_invalid();
        }
        let longest = RoleCommand::Create {
            role_id: "r1".into(),
            name: "n".repeat(255),
            domain_id: String::new(),
            description: String::new(),
        };
        given::<Role>([]).when(longest).then_ok();
    }

    #[test]
    fn update_records_only_what_changed() {
        let cmd = RoleCommand::Update {
            name: Some("admin".into()),
            description: Some("Administrator".into()),
        };
        let state = given::<Role>([created()])
            .when(cmd)
            .then(vec![E::RoleUpdated(pb::RoleUpdated {
                name: None,
                description: Some("Administrator".into()),
            })]);
        assert_eq!(state.description, "Administrator");
        given::<Role>([created()])
            .when(RoleCommand::Update {
                name: Some("admin".into()),
                description: None,
            })
            .then_nothing();
        given::<Role>([created()])
            .when(RoleCommand::Update {
                name: Some(String::new()),
                description: None,
            })
            .then_invalid();
    }

    #[test]
    fn delete_marks_the_role_deleted() {
        assert!(
            given::<Role>([created()])
                .when(RoleCommand::Delete)
                .then(vec![deleted()])
                .deleted
        );
    }

    #[test]
    fn commands_on_a_missing_role_are_not_found() {
        let absent = DomainError::NotFound {
            kind: "role",
            id: String::new(),
        };
        let gone = DomainError::NotFound {
            kind: "role",
            id: "r1".into(),
        };
        for cmd in [
            RoleCommand::Update {
                name: None,
                description: None,
            },
            RoleCommand::Delete,
            add("r2"),
            remove("r2"),
        ] {
            given::<Role>([]).when(cmd.clone()).then_err(absent.clone());
            given::<Role>([created(), implies("r2"), deleted()])
                .when(cmd)
                .then_err(gone.clone());
        }
    }

    #[test]
    fn add_implication_records_it_once() {
        let state = given::<Role>([created()])
            .when(add("r2"))
            .then(vec![implies("r2")]);
        assert_eq!(state.implies, BTreeSet::from(["r2".to_string()]));
        let again = given::<Role>([created(), implies("r2")])
            .when(add("r2"))
            .then_nothing();
        assert_eq!(again.implies, state.implies);
    }

    #[test]
    fn a_role_cannot_imply_itself() {
        given::<Role>([created()])
            .when(add("r1"))
            .then_err(DomainError::Invalid(
                "r1 cannot be an implied roles.".into(),
            ));
        given::<Role>([created()]).when(add("")).then_invalid();
    }

    #[test]
    fn remove_implication_forgets_it() {
        let state = given::<Role>([created(), implies("r2"), implies("r3")])
            .when(remove("r2"))
            .then(vec![E::RoleImplicationRemoved(
                pb::RoleImplicationRemoved {
                    implied_role_id: "r2".into(),
                },
            )]);
        assert_eq!(state.implies, BTreeSet::from(["r3".to_string()]));
    }

    #[test]
    fn removing_a_missing_implication_is_not_found() {
        given::<Role>([created()])
            .when(remove("r2"))
            .then_err(DomainError::NotFound {
                kind: "implied role",
                id: "r2".into(),
            });
    }

    #[test]
    fn apply_ignores_other_aggregates_events() {
        let before = given::<Role>([created()]).0;
        assert_eq!(
            before.clone().apply(&E::UserDeleted(pb::UserDeleted {})),
            before
        );
    }
}
