//! `Domain`: a Keystone domain, the namespace for projects, users and (domain-specific) roles.

use serde::{Deserialize, Serialize};
use strata_proto::identity as pb;
use strata_proto::IdentityEvent as E;

use super::{
    changed, check_description, check_extra, check_id, check_name, duplicate_id, not_found, set,
};
use super::{ENTITY_NAME_MAX, ID_MAX};
use crate::aggregate::{Aggregate, DomainError};

const KIND: &str = "domain";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub exists: bool,
    pub deleted: bool,
    pub domain_id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    /// Unmodelled attributes as a JSON object ("" when none).
    pub extra_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainCommand {
    Create {
        domain_id: String,
        name: String,
        description: String,
        enabled: bool,
        extra_json: String,
    },
    /// Change the given fields; `None` leaves a field as it is.
    Update {
        name: Option<String>,
        description: Option<String>,
        enabled: Option<bool>,
        extra_json: Option<String>,
    },
    /// Keystone refuses to delete an enabled domain.
    Delete,
}

impl Domain {
    fn live(&self) -> Result<(), DomainError> {
        if self.exists && !self.deleted {
            Ok(())
        } else {
            Err(not_found(KIND, &self.domain_id))
        }
    }
}

impl Aggregate for Domain {
    type Command = DomainCommand;
    type Event = E;
    const KIND: &'static str = KIND;

    fn decide(&self, cmd: &DomainCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            DomainCommand::Create {
                domain_id,
                name,
                description,
                enabled,
                extra_json,
            } => {
                check_id("id", domain_id, ID_MAX)?;
                check_name("name", name, ENTITY_NAME_MAX)?;
                check_description(description)?;
                check_extra(extra_json)?;
                if self.exists {
                    return Err(duplicate_id(KIND, domain_id));
                }
                Ok(vec![E::DomainCreated(pb::DomainCreated {
                    domain_id: domain_id.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    enabled: *enabled,
                    extra_json: extra_json.clone(),
                })])
            }
            DomainCommand::Update {
                name,
                description,
                enabled,
                extra_json,
            } => {
                self.live()?;
                if let Some(n) = name {
                    check_name("name", n, ENTITY_NAME_MAX)?;
                }
                if let Some(d) = description {
                    check_description(d)?;
                }
                if let Some(x) = extra_json {
                    check_extra(x)?;
                }
                let update = pb::DomainUpdated {
                    name: changed(&self.name, name),
                    description: changed(&self.description, description),
                    enabled: changed(&self.enabled, enabled),
                    extra_json: changed(&self.extra_json, extra_json),
                };
                if update == pb::DomainUpdated::default() {
                    return Ok(vec![]);
                }
                Ok(vec![E::DomainUpdated(update)])
            }
            DomainCommand::Delete => {
                self.live()?;
                if self.enabled {
                    return Err(DomainError::Forbidden(
                        "Cannot delete a domain that is enabled, please disable it first.".into(),
                    ));
                }
                Ok(vec![E::DomainDeleted(pb::DomainDeleted {})])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::DomainCreated(c) => {
                self.exists = true;
                self.domain_id = c.domain_id.clone();
                self.name = c.name.clone();
                self.description = c.description.clone();
                self.enabled = c.enabled;
                self.extra_json = c.extra_json.clone();
            }
            E::DomainUpdated(u) => {
                set(&mut self.name, &u.name);
                set(&mut self.description, &u.description);
                set(&mut self.enabled, &u.enabled);
                set(&mut self.extra_json, &u.extra_json);
            }
            E::DomainDeleted(_) => self.deleted = true,
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::{edit, given};

    fn created() -> E {
        E::DomainCreated(pb::DomainCreated {
            domain_id: "d1".into(),
            name: "acme".into(),
            description: "Acme Corp".into(),
            enabled: true,
            extra_json: String::new(),
        })
    }

    fn disabled() -> E {
        E::DomainUpdated(pb::DomainUpdated {
            enabled: Some(false),
            ..Default::default()
        })
    }

    fn create() -> DomainCommand {
        DomainCommand::Create {
            domain_id: "d1".into(),
            name: "acme".into(),
            description: "Acme Corp".into(),
            enabled: true,
            extra_json: String::new(),
        }
    }

    fn update() -> DomainCommand {
        DomainCommand::Update {
            name: None,
            description: None,
            enabled: None,
            extra_json: None,
        }
    }

    #[test]
    fn create_records_the_domain() {
        let state = given::<Domain>([]).when(create()).then(vec![created()]);
        assert_eq!(
            state,
            Domain {
                exists: true,
                deleted: false,
                domain_id: "d1".into(),
                name: "acme".into(),
                description: "Acme Corp".into(),
                enabled: true,
                extra_json: String::new(),
            }
        );
    }

    #[test]
    fn create_twice_or_after_delete_is_a_duplicate() {
        let dup = DomainError::AlreadyExists {
            kind: "domain",
            detail: "Duplicate ID, d1.".into(),
        };
        given::<Domain>([created()])
            .when(create())
            .then_err(dup.clone());
        given::<Domain>([
            created(),
            disabled(),
            E::DomainDeleted(pb::DomainDeleted {}),
        ])
        .when(create())
        .then_err(dup);
    }

    #[test]
    fn create_validates_its_input() {
        let with = |f: fn(&mut DomainCommand)| {
            let mut c = create();
            f(&mut c);
            c
        };
        let cases = [
            with(edit!(DomainCommand::Create { domain_id } => domain_id.clear())),
            with(edit!(DomainCommand::Create { name } => name.clear())),
            with(edit!(DomainCommand::Create { name } => *name = " ".into())),
            with(edit!(DomainCommand::Create { name } => *name = "n".repeat(65))),
            with(edit!(DomainCommand::Create { description } => *description = "d".repeat(65536))),
            with(edit!(DomainCommand::Create { extra_json } => *extra_json = "not json".into())),
        ];
        for cmd in cases {
            given::<Domain>([]).when(cmd).then_invalid();
        }
        let longest = with(edit!(DomainCommand::Create { name } => *name = "n".repeat(64)));
        assert_eq!(given::<Domain>([]).when(longest).then_ok().name.len(), 64);
    }

    #[test]
    fn update_records_only_what_changed() {
        let cmd = DomainCommand::Update {
            name: Some("acme".into()),
            description: Some("New".into()),
            enabled: Some(true),
            extra_json: Some(r#"{"x":1}"#.into()),
        };
        let state = given::<Domain>([created()])
            .when(cmd)
            .then(vec![E::DomainUpdated(pb::DomainUpdated {
                description: Some("New".into()),
                extra_json: Some(r#"{"x":1}"#.into()),
                ..Default::default()
            })]);
        assert_eq!(
            (
                state.name.as_str(),
                state.description.as_str(),
                state.enabled
            ),
            ("acme", "New", true)
        );
        assert_eq!(state.extra_json, r#"{"x":1}"#);
    }

    #[test]
    fn update_that_changes_nothing_records_nothing() {
        let same = DomainCommand::Update {
            name: Some("acme".into()),
            description: None,
            enabled: Some(true),
            extra_json: None,
        };
        let before = given::<Domain>([created()]).0;
        assert_eq!(
            given::<Domain>([created()]).when(same).then_nothing(),
            before
        );
        given::<Domain>([created()]).when(update()).then_nothing();
    }

    #[test]
    fn update_validates_its_input() {
        let bad_name = DomainCommand::Update {
            name: Some(String::new()),
            description: None,
            enabled: None,
            extra_json: None,
        };
        given::<Domain>([created()]).when(bad_name).then_invalid();
        let bad_extra = DomainCommand::Update {
            name: None,
            description: None,
            enabled: None,
            extra_json: Some("[1]".into()),
        };
        given::<Domain>([created()]).when(bad_extra).then_invalid();
    }

    #[test]
    fn update_or_delete_of_a_missing_domain_is_not_found() {
        let absent = DomainError::NotFound {
            kind: "domain",
            id: String::new(),
        };
        given::<Domain>([]).when(update()).then_err(absent.clone());
        given::<Domain>([])
            .when(DomainCommand::Delete)
            .then_err(absent);
        let gone = [
            created(),
            disabled(),
            E::DomainDeleted(pb::DomainDeleted {}),
        ];
        let deleted = DomainError::NotFound {
            kind: "domain",
            id: "d1".into(),
        };
        given::<Domain>(gone.clone())
            .when(update())
            .then_err(deleted.clone());
        given::<Domain>(gone)
            .when(DomainCommand::Delete)
            .then_err(deleted);
    }

    #[test]
    fn an_enabled_domain_cannot_be_deleted() {
        given::<Domain>([created()])
            .when(DomainCommand::Delete)
            .then_err(DomainError::Forbidden(
                "Cannot delete a domain that is enabled, please disable it first.".into(),
            ));
    }

    #[test]
    fn a_disabled_domain_can_be_deleted() {
        let state = given::<Domain>([created(), disabled()])
            .when(DomainCommand::Delete)
            .then(vec![E::DomainDeleted(pb::DomainDeleted {})]);
        assert!(state.exists && state.deleted);
    }

    #[test]
    fn apply_ignores_other_aggregates_events() {
        let before = given::<Domain>([created()]).0;
        let after = before
            .clone()
            .apply(&E::ProjectDeleted(pb::ProjectDeleted {}));
        assert_eq!(after, before);
    }
}
