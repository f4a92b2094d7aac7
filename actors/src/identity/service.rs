//! `Service`: an entry of the service catalog (its type, e.g. "compute", and name, e.g. "nova").

use serde::{Deserialize, Serialize};
use strata_proto::identity as pb;
use strata_proto::IdentityEvent as E;

use super::{
    changed, check_description, check_id, check_len, check_name, duplicate_id, not_found, set,
};
use super::{ID_MAX, NAME_MAX};
use crate::aggregate::{Aggregate, DomainError};

const KIND: &str = "service";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub exists: bool,
    pub deleted: bool,
    pub service_id: String,
    /// The catalog type ("compute", "identity", ...); `type` in the API and the events.
    pub service_type: String,
    /// May be empty (Keystone makes the name optional).
    pub name: String,
    pub description: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceCommand {
    Create {
        service_id: String,
        service_type: String,
        name: String,
        description: String,
        enabled: bool,
    },
    /// Change the given fields; `None` leaves a field as it is.
    Update {
        service_type: Option<String>,
        name: Option<String>,
        description: Option<String>,
        enabled: Option<bool>,
    },
    Delete,
}

impl Service {
    fn live(&self) -> Result<(), DomainError> {
        if self.exists && !self.deleted {
            Ok(())
        } else {
            Err(not_found(KIND, &self.service_id))
        }
    }
}

impl Aggregate for Service {
    type Command = ServiceCommand;
    type Event = E;
    const KIND: &'static str = KIND;

    fn decide(&self, cmd: &ServiceCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            ServiceCommand::Create {
                service_id,
                service_type,
                name,
                description,
                enabled,
            } => {
                check_id("id", service_id, ID_MAX)?;
                check_name("type", service_type, NAME_MAX)?;
                check_len("name", name, NAME_MAX)?;
                check_description(description)?;
                if self.exists {
                    return Err(duplicate_id(KIND, service_id));
                }
                Ok(vec![E::ServiceCreated(pb::ServiceCreated {
                    service_id: service_id.clone(),
                    r#type: service_type.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    enabled: *enabled,
                })])
            }
            ServiceCommand::Update {
                service_type,
                name,
                description,
                enabled,
            } => {
                self.live()?;
                if let Some(t) = service_type {
                    check_name("type", t, NAME_MAX)?;
                }
                if let Some(n) = name {
                    check_len("name", n, NAME_MAX)?;
                }
                if let Some(d) = description {
                    check_description(d)?;
                }
                let update = pb::ServiceUpdated {
                    r#type: changed(&self.service_type, service_type),
                    name: changed(&self.name, name),
                    description: changed(&self.description, description),
                    enabled: changed(&self.enabled, enabled),
                };
                if update == pb::ServiceUpdated::default() {
                    return Ok(vec![]);
                }
                Ok(vec![E::ServiceUpdated(update)])
            }
            ServiceCommand::Delete => {
                self.live()?;
                Ok(vec![E::ServiceDeleted(pb::ServiceDeleted {})])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::ServiceCreated(c) => {
                self.exists = true;
                self.service_id = c.service_id.clone();
                self.service_type = c.r#type.clone();
                self.name = c.name.clone();
                self.description = c.description.clone();
                self.enabled = c.enabled;
            }
            E::ServiceUpdated(u) => {
                set(&mut self.service_type, &u.r#type);
                set(&mut self.name, &u.name);
                set(&mut self.description, &u.description);
                set(&mut self.enabled, &u.enabled);
            }
            E::ServiceDeleted(_) => self.deleted = true,
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
        E::ServiceCreated(pb::ServiceCreated {
            service_id: "s1".into(),
            r#type: "compute".into(),
            name: "nova".into(),
            description: String::new(),
            enabled: true,
        })
    }

    fn create() -> ServiceCommand {
        ServiceCommand::Create {
            service_id: "s1".into(),
            service_type: "compute".into(),
            name: "nova".into(),
            description: String::new(),
            enabled: true,
        }
    }

    fn update() -> ServiceCommand {
        ServiceCommand::Update {
            service_type: None,
            name: None,
            description: None,
            enabled: None,
        }
    }

    fn deleted() -> E {
        E::ServiceDeleted(pb::ServiceDeleted {})
    }

    #[test]
    fn create_records_the_service() {
        let state = given::<Service>([]).when(create()).then(vec![created()]);
        assert_eq!(
            state,
            Service {
                exists: true,
                deleted: false,
                service_id: "s1".into(),
                service_type: "compute".into(),
                name: "nova".into(),
                description: String::new(),
                enabled: true,
            }
        );
    }

    #[test]
    fn a_service_may_have_no_name() {
        let cmd = ServiceCommand::Create {
            service_id: "s1".into(),
            service_type: "compute".into(),
            name: String::new(),
            description: String::new(),
            enabled: true,
        };
        assert_eq!(given::<Service>([]).when(cmd).then_ok().name, "");
    }

    #[test]
    fn create_twice_or_after_delete_is_a_duplicate() {
        let dup = DomainError::AlreadyExists {
            kind: "service",
            detail: "Duplicate ID, s1.".into(),
        };
        given::<Service>([created()])
            .when(create())
            .then_err(dup.clone());
        given::<Service>([created(), deleted()])
            .when(create())
            .then_err(dup);
    }

    #[test]
    fn create_validates_its_input() {
        let cases = [
            ServiceCommand::Create {
                service_id: String::new(),
                service_type: "compute".into(),
                name: String::new(),
                description: String::new(),
                enabled: true,
            },
            ServiceCommand::Create {
                service_id: "s1".into(),
                service_type: String::new(),
                name: String::new(),
                description: String::new(),
                enabled: true,
            },
            ServiceCommand::Create {
                service_id: "s1".into(),
                service_type: "t".repeat(256),
                name: String::new(),
                description: String::new(),
                enabled: true,
            },
            ServiceCommand::Create {
                service_id: "s1".into(),
                service_type: "compute".into(),
                name: "n".repeat(256),
                description: String::new(),
                enabled: true,
            },
            ServiceCommand::Create {
                service_id: "s1".into(),
                service_type: "compute".into(),
                name: String::new(),
                description: "d".repeat(65536),
                enabled: true,
            },
        ];
        for cmd in cases {
            given::<Service>([]).when(cmd).then_invalid();
        }
    }

    #[test]
    fn update_records_only_what_changed() {
        let cmd = ServiceCommand::Update {
            service_type: Some("compute".into()),
            name: Some("nova2".into()),
            description: None,
            enabled: Some(false),
        };
        let state = given::<Service>([created()])
            .when(cmd)
            .then(vec![E::ServiceUpdated(pb::ServiceUpdated {
                name: Some("nova2".into()),
                enabled: Some(false),
                ..Default::default()
            })]);
        assert_eq!(
            (
                state.service_type.as_str(),
                state.name.as_str(),
                state.enabled
            ),
            ("compute", "nova2", false)
        );
        let retype = ServiceCommand::Update {
            service_type: Some("volume".into()),
            name: None,
            description: None,
            enabled: None,
        };
        assert_eq!(
            given::<Service>([created()])
                .when(retype)
                .then_ok()
                .service_type,
            "volume"
        );
    }

    #[test]
    fn update_that_changes_nothing_records_nothing() {
        let same = ServiceCommand::Update {
            service_type: Some("compute".into()),
            name: Some("nova".into()),
            description: Some(String::new()),
            enabled: Some(true),
        };
        given::<Service>([created()]).when(same).then_nothing();
        given::<Service>([created()]).when(update()).then_nothing();
    }

    #[test]
    fn update_validates_its_input() {
        let bad = ServiceCommand::Update {
            service_type: Some(String::new()),
            name: None,
            description: None,
            enabled: None,
        };
        given::<Service>([created()]).when(bad).then_invalid();
    }

    #[test]
    fn delete_marks_the_service_deleted() {
        assert!(
            given::<Service>([created()])
                .when(ServiceCommand::Delete)
                .then(vec![deleted()])
                .deleted
        );
    }

    #[test]
    fn commands_on_a_missing_service_are_not_found() {
        let absent = DomainError::NotFound {
            kind: "service",
            id: String::new(),
        };
        let gone = DomainError::NotFound {
            kind: "service",
            id: "s1".into(),
        };
        for cmd in [update(), ServiceCommand::Delete] {
            given::<Service>([])
                .when(cmd.clone())
                .then_err(absent.clone());
            given::<Service>([created(), deleted()])
                .when(cmd)
                .then_err(gone.clone());
        }
    }

    #[test]
    fn apply_ignores_other_aggregates_events() {
        let before = given::<Service>([created()]).0;
        assert_eq!(
            before
                .clone()
                .apply(&E::EndpointDeleted(pb::EndpointDeleted {})),
            before
        );
    }
}
