//! `Endpoint`: where a catalog service is reached, per interface (public, internal, admin) and region.

use serde::{Deserialize, Serialize};
use strata_proto::identity as pb;
use strata_proto::IdentityEvent as E;

use super::{changed, check_id, check_len, duplicate_id, invalid, not_found, set};
use super::{ID_MAX, NAME_MAX};
use crate::aggregate::{Aggregate, DomainError};

const KIND: &str = "endpoint";
/// The interfaces Keystone accepts.
pub const INTERFACES: [&str; 3] = ["public", "internal", "admin"];
/// Longest URL accepted.
const URL_MAX: usize = 2048;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub exists: bool,
    pub deleted: bool,
    pub endpoint_id: String,
    pub service_id: String,
    /// One of [`INTERFACES`].
    pub interface: String,
    pub url: String,
    /// "" when the endpoint is in no region.
    pub region_id: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointCommand {
    Create {
        endpoint_id: String,
        service_id: String,
        interface: String,
        url: String,
        region_id: String,
        enabled: bool,
    },
    /// Change the given fields; `None` leaves a field as it is.
    Update {
        service_id: Option<String>,
        interface: Option<String>,
        url: Option<String>,
        region_id: Option<String>,
        enabled: Option<bool>,
    },
    Delete,
}

fn check_interface(interface: &str) -> Result<(), DomainError> {
    if INTERFACES.contains(&interface) {
        Ok(())
    } else {
        Err(invalid(
            "interface",
            &format!("'{interface}' is not one of 'public', 'internal', 'admin'"),
        ))
    }
}

fn check_url(url: &str) -> Result<(), DomainError> {
    if url.trim().is_empty() {
        return Err(invalid("url", "must not be empty"));
    }
    check_len("url", url, URL_MAX)
}

impl Endpoint {
    fn live(&self) -> Result<(), DomainError> {
        if self.exists && !self.deleted {
            Ok(())
        } else {
            Err(not_found(KIND, &self.endpoint_id))
        }
    }
}

impl Aggregate for Endpoint {
    type Command = EndpointCommand;
    type Event = E;
    const KIND: &'static str = KIND;

    fn decide(&self, cmd: &EndpointCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            EndpointCommand::Create {
                endpoint_id,
                service_id,
                interface,
                url,
                region_id,
                enabled,
            } => {
                check_id("id", endpoint_id, ID_MAX)?;
                check_id("service_id", service_id, ID_MAX)?;
                check_interface(interface)?;
                check_url(url)?;
                check_len("region_id", region_id, NAME_MAX)?;
                if self.exists {
                    return Err(duplicate_id(KIND, endpoint_id));
                }
                Ok(vec![E::EndpointCreated(pb::EndpointCreated {
                    endpoint_id: endpoint_id.clone(),
                    service_id: service_id.clone(),
                    interface: interface.clone(),
                    url: url.clone(),
                    region_id: region_id.clone(),
                    enabled: *enabled,
                })])
            }
            EndpointCommand::Update {
                service_id,
                interface,
                url,
                region_id,
                enabled,
            } => {
                self.live()?;
                if let Some(s) = service_id {
                    check_id("service_id", s, ID_MAX)?;
                }
                if let Some(i) = interface {
                    check_interface(i)?;
                }
                if let Some(u) = url {
                    check_url(u)?;
                }
                if let Some(r) = region_id {
                    check_len("region_id", r, NAME_MAX)?;
                }
                let update = pb::EndpointUpdated {
                    service_id: changed(&self.service_id, service_id),
                    interface: changed(&self.interface, interface),
                    url: changed(&self.url, url),
                    region_id: changed(&self.region_id, region_id),
                    enabled: changed(&self.enabled, enabled),
                };
                if update == pb::EndpointUpdated::default() {
                    return Ok(vec![]);
                }
                Ok(vec![E::EndpointUpdated(update)])
            }
            EndpointCommand::Delete => {
                self.live()?;
                Ok(vec![E::EndpointDeleted(pb::EndpointDeleted {})])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::EndpointCreated(c) => {
                self.exists = true;
                self.endpoint_id = c.endpoint_id.clone();
                self.service_id = c.service_id.clone();
                self.interface = c.interface.clone();
                self.url = c.url.clone();
                self.region_id = c.region_id.clone();
                self.enabled = c.enabled;
            }
            E::EndpointUpdated(u) => {
                set(&mut self.service_id, &u.service_id);
                set(&mut self.interface, &u.interface);
                set(&mut self.url, &u.url);
                set(&mut self.region_id, &u.region_id);
                set(&mut self.enabled, &u.enabled);
            }
            E::EndpointDeleted(_) => self.deleted = true,
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    const URL: &str = "http://controller:8774/v2.1";

    fn created() -> E {
        E::EndpointCreated(pb::EndpointCreated {
            endpoint_id: "e1".into(),
            service_id: "s1".into(),
            interface: "public".into(),
            url: URL.into(),
            region_id: "RegionOne".into(),
            enabled: true,
        })
    }

    fn create_with(interface: &str, url: &str) -> EndpointCommand {
        EndpointCommand::Create {
            endpoint_id: "e1".into(),
            service_id: "s1".into(),
            interface: interface.into(),
            url: url.into(),
            region_id: "RegionOne".into(),
            enabled: true,
        }
    }

    fn create() -> EndpointCommand {
        create_with("public", URL)
    }

    fn update() -> EndpointCommand {
        EndpointCommand::Update {
            service_id: None,
            interface: None,
            url: None,
            region_id: None,
            enabled: None,
        }
    }

    fn deleted() -> E {
        E::EndpointDeleted(pb::EndpointDeleted {})
    }

    #[test]
    fn create_records_the_endpoint() {
        let state = given::<Endpoint>([]).when(create()).then(vec![created()]);
        assert_eq!(
            state,
            Endpoint {
                exists: true,
                deleted: false,
                endpoint_id: "e1".into(),
                service_id: "s1".into(),
                interface: "public".into(),
                url: URL.into(),
                region_id: "RegionOne".into(),
                enabled: true,
            }
        );
    }

    #[test]
    fn every_keystone_interface_is_accepted() {
        for interface in INTERFACES {
            assert_eq!(
                given::<Endpoint>([])
                    .when(create_with(interface, URL))
                    .then_ok()
                    .interface,
                interface
            );
        }
    }

    #[test]
    fn create_twice_or_after_delete_is_a_duplicate() {
        let dup = DomainError::AlreadyExists {
            kind: "endpoint",
            detail: "Duplicate ID, e1.".into(),
        };
        given::<Endpoint>([created()])
            .when(create())
            .then_err(dup.clone());
        given::<Endpoint>([created(), deleted()])
            .when(create())
            .then_err(dup);
    }

    #[test]
    fn create_validates_its_input() {
        for cmd in [
            create_with("private", URL),
            create_with("Public", URL),
            create_with("", URL),
            create_with("public", ""),
            create_with("public", "  "),
            EndpointCommand::Create {
                endpoint_id: String::new(),
                service_id: "s1".into(),
                interface: "public".into(),
                url: URL.into(),
                region_id: String::new(),
                enabled: true,
            },
            EndpointCommand::Create {
                endpoint_id: "e1".into(),
                service_id: String::new(),
                interface: "public".into(),
                url: URL.into(),
                region_id: String::new(),
                enabled: true,
            },
        ] {
            given::<Endpoint>([]).when(cmd).then_invalid();
        }
    }

    #[test]
    fn update_records_only_what_changed() {
        let cmd = EndpointCommand::Update {
            service_id: Some("s1".into()),
            interface: Some("internal".into()),
            url: Some("http://10.0.0.1:8774/v2.1".into()),
            region_id: Some(String::new()),
            enabled: Some(true),
        };
        let state = given::<Endpoint>([created()])
            .when(cmd)
            .then(vec![E::EndpointUpdated(pb::EndpointUpdated {
                interface: Some("internal".into()),
                url: Some("http://10.0.0.1:8774/v2.1".into()),
                region_id: Some(String::new()),
                ..Default::default()
            })]);
        assert_eq!(
            (
                state.interface.as_str(),
                state.url.as_str(),
                state.region_id.as_str()
            ),
            ("internal", "http://10.0.0.1:8774/v2.1", "")
        );
    }

    #[test]
    fn update_that_changes_nothing_records_nothing() {
        let same = EndpointCommand::Update {
            service_id: None,
            interface: Some("public".into()),
            url: Some(URL.into()),
            region_id: None,
            enabled: Some(true),
        };
        given::<Endpoint>([created()]).when(same).then_nothing();
        given::<Endpoint>([created()]).when(update()).then_nothing();
    }

    #[test]
    fn update_validates_its_input() {
        let bad = EndpointCommand::Update {
            service_id: None,
            interface: Some("external".into()),
            url: None,
            region_id: None,
            enabled: None,
        };
        given::<Endpoint>([created()]).when(bad).then_invalid();
        let bad = EndpointCommand::Update {
            service_id: None,
            interface: None,
            url: Some(String::new()),
            region_id: None,
            enabled: None,
        };
        given::<Endpoint>([created()]).when(bad).then_invalid();
    }

    #[test]
    fn delete_marks_the_endpoint_deleted() {
        assert!(
            given::<Endpoint>([created()])
                .when(EndpointCommand::Delete)
                .then(vec![deleted()])
                .deleted
        );
    }

    #[test]
    fn commands_on_a_missing_endpoint_are_not_found() {
        let absent = DomainError::NotFound {
            kind: "endpoint",
            id: String::new(),
        };
        let gone = DomainError::NotFound {
            kind: "endpoint",
            id: "e1".into(),
        };
        for cmd in [update(), EndpointCommand::Delete] {
            given::<Endpoint>([])
                .when(cmd.clone())
                .then_err(absent.clone());
            given::<Endpoint>([created(), deleted()])
                .when(cmd)
                .then_err(gone.clone());
        }
    }

    #[test]
    fn apply_ignores_other_aggregates_events() {
        let before = given::<Endpoint>([created()]).0;
        assert_eq!(
            before
                .clone()
                .apply(&E::ServiceDeleted(pb::ServiceDeleted {})),
            before
        );
    }
}
