//! `FloatingIp`: an address of an external network a project holds (stream `floatingip-<uuid>`), and the
//! internal port (and fixed address) it is associated with through a router. The address itself is held by
//! a port on the external network (device_owner `network:floatingip`), allocated by the network's
//! aggregate before the floating IP is recorded, so two floating IPs never get the same address.
//!
//! Status: `DOWN` until the datapath has the association in place, then `ACTIVE`; the datapath agent
//! records the change, naming the association it plumbed so a stale report cannot mark a newer one.

use serde::{Deserialize, Serialize};
use strata_proto::network as pb;
use strata_proto::NetworkEvent as E;

use super::net::revision_mismatch;
use crate::aggregate::{Aggregate, DomainError};

pub const STATUS_DOWN: &str = "DOWN";
pub const STATUS_ACTIVE: &str = "ACTIVE";
pub const STATUS_ERROR: &str = "ERROR";

/// Where a floating IP forwards to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    pub port_id: String,
    pub fixed_ip_address: String,
    /// The router that connects the port's subnet to the floating IP's network.
    pub router_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FloatingIp {
    pub exists: bool,
    pub deleted: bool,
    pub project_id: String,
    pub floating_network_id: String,
    pub subnet_id: String,
    pub floating_ip_address: String,
    /// The external port holding the address.
    pub floating_port_id: String,
    pub description: String,
    pub tags: Vec<String>,
    pub association: Option<Association>,
    pub status: String,
    /// The stream's version: Neutron's revision_number.
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FloatingIpCommand {
    Create {
        project_id: String,
        floating_network_id: String,
        subnet_id: String,
        floating_ip_address: String,
        floating_port_id: String,
        description: String,
        tags: Vec<String>,
        association: Option<Association>,
    },
    /// Change the association (`Some(None)` disassociates, `Some(Some(a))` associates, replacing any
    /// earlier association) and the description, in one append.
    Update {
        association: Option<Option<Association>>,
        description: Option<String>,
        if_revision: Option<u64>,
    },
    /// The datapath's report: `status` holds for the association `for_association` (None = none).
    ReportStatus {
        status: String,
        for_association: Option<Association>,
    },
    SetTags(Vec<String>),
    Delete,
}

impl FloatingIp {
    pub fn is_live(&self) -> bool {
        self.exists && !self.deleted
    }

    pub fn port_id(&self) -> Option<&str> {
        self.association.as_ref().map(|a| a.port_id.as_str())
    }
}

fn associated(a: &Association) -> E {
    E::FloatingIpAssociated(pb::FloatingIpAssociated {
        port_id: a.port_id.clone(),
        fixed_ip_address: a.fixed_ip_address.clone(),
        router_id: a.router_id.clone(),
    })
}

impl Aggregate for FloatingIp {
    type Command = FloatingIpCommand;
    type Event = E;
    const KIND: &'static str = "floatingip";

    fn decide(&self, cmd: &FloatingIpCommand) -> Result<Vec<E>, DomainError> {
        use FloatingIpCommand as C;
        if let C::Create {
            project_id,
            floating_network_id,
            subnet_id,
            floating_ip_address,
            floating_port_id,
            description,
            tags,
            association,
        } = cmd
        {
            if self.exists {
                return Err(DomainError::AlreadyExists {
                    kind: "floating IP",
                    detail: "id already used".into(),
                });
            }
            let mut events = vec![E::FloatingIpCreated(pb::FloatingIpCreated {
                project_id: project_id.clone(),
                floating_network_id: floating_network_id.clone(),
                subnet_id: subnet_id.clone(),
                floating_ip_address: floating_ip_address.clone(),
                floating_port_id: floating_port_id.clone(),
                description: description.clone(),
                tags: tags.clone(),
            })];
            if let Some(a) = association {
                events.push(associated(a));
            }
            return Ok(events);
        }
        if !self.is_live() {
            return Err(DomainError::NotFound {
                kind: "floating IP",
                id: String::new(),
            });
        }
        Ok(match cmd {
            C::Create { .. } => unreachable!("handled above"),
            C::Update {
                association,
                description,
                if_revision,
            } => {
                if let Some(w) = if_revision.filter(|w| *w != self.revision) {
                    return Err(revision_mismatch(self.revision, w));
                }
                let mut events = vec![];
                match association {
                    Some(Some(a)) if self.association.as_ref() != Some(a) => {
                        events.push(associated(a))
                    }
                    Some(None) if self.association.is_some() => {
                        events.push(E::FloatingIpDisassociated(pb::FloatingIpDisassociated {}))
                    }
                    _ => {}
                }
                if let Some(d) = description.as_ref().filter(|d| **d != self.description) {
                    events.push(E::FloatingIpUpdated(pb::FloatingIpUpdated {
                        description: Some(d.clone()),
                    }));
                }
                events
            }
            C::ReportStatus {
                status,
                for_association,
            } => {
                if ![STATUS_DOWN, STATUS_ACTIVE, STATUS_ERROR].contains(&status.as_str()) {
                    return Err(DomainError::Invalid(format!("unknown status {status}")));
                }
                // A report about an association that is no longer current changes nothing.
                if *for_association != self.association || *status == self.status {
                    vec![]
                } else {
                    vec![E::FloatingIpStatusChanged(pb::FloatingIpStatusChanged {
                        status: status.clone(),
                    })]
                }
            }
            C::SetTags(tags) => {
                if *tags == self.tags {
                    vec![]
                } else {
                    vec![E::TagsSet(pb::TagsSet { tags: tags.clone() })]
                }
            }
            C::Delete => vec![E::FloatingIpDeleted(pb::FloatingIpDeleted {})],
        })
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::FloatingIpCreated(c) => {
                self = FloatingIp {
                    revision: self.revision,
                    exists: true,
                    deleted: false,
                    project_id: c.project_id.clone(),
                    floating_network_id: c.floating_network_id.clone(),
                    subnet_id: c.subnet_id.clone(),
                    floating_ip_address: c.floating_ip_address.clone(),
                    floating_port_id: c.floating_port_id.clone(),
                    description: c.description.clone(),
                    tags: c.tags.clone(),
                    association: None,
                    status: STATUS_DOWN.into(),
                };
            }
            E::FloatingIpAssociated(a) => {
                self.association = Some(Association {
                    port_id: a.port_id.clone(),
                    fixed_ip_address: a.fixed_ip_address.clone(),
                    router_id: a.router_id.clone(),
                });
            }
            E::FloatingIpDisassociated(_) => self.association = None,
            E::FloatingIpUpdated(u) => {
                if let Some(d) = &u.description {
                    self.description = d.clone();
                }
            }
            E::FloatingIpStatusChanged(s) => self.status = s.status.clone(),
            E::TagsSet(t) => self.tags = t.tags.clone(),
            E::FloatingIpDeleted(_) => {
                self.deleted = true;
                self.association = None;
            }
            _ => return self,
        }
        self.revision += 1;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    fn created() -> E {
        E::FloatingIpCreated(pb::FloatingIpCreated {
            project_id: "p1".into(),
            floating_network_id: "public".into(),
            subnet_id: "ext".into(),
            floating_ip_address: "172.24.4.20".into(),
            floating_port_id: "fport".into(),
            ..Default::default()
        })
    }

    fn update(association: Option<Option<Association>>) -> FloatingIpCommand {
        FloatingIpCommand::Update {
            association,
            description: None,
            if_revision: None,
        }
    }

    fn assoc(port: &str) -> Association {
        Association {
            port_id: port.into(),
            fixed_ip_address: "10.0.0.5".into(),
            router_id: "r1".into(),
        }
    }

    #[test]
    fn a_new_floating_ip_is_down_and_may_come_associated() {
        let s = given::<FloatingIp>([created()]).state();
        assert_eq!(s.status, STATUS_DOWN);
        let s = given::<FloatingIp>([])
            .when(FloatingIpCommand::Create {
                project_id: "p1".into(),
                floating_network_id: "public".into(),
                subnet_id: "ext".into(),
                floating_ip_address: "172.24.4.20".into(),
                floating_port_id: "fport".into(),
                description: String::new(),
                tags: vec![],
                association: Some(assoc("vm-port")),
            })
            .then_ok();
        assert_eq!(s.port_id(), Some("vm-port"));
        given::<FloatingIp>([created()])
            .when(FloatingIpCommand::Create {
                project_id: "p1".into(),
                floating_network_id: "public".into(),
                subnet_id: "ext".into(),
                floating_ip_address: "172.24.4.21".into(),
                floating_port_id: "f2".into(),
                description: String::new(),
                tags: vec![],
                association: None,
            })
            .then_err_where(|e| matches!(e, DomainError::AlreadyExists { .. }));
    }

    #[test]
    fn status_reports_only_count_for_the_current_association() {
        let s = given::<FloatingIp>([created()])
            .when(update(Some(Some(assoc("a")))))
            .then_ok();
        let active = |a: Option<Association>| FloatingIpCommand::ReportStatus {
            status: STATUS_ACTIVE.into(),
            for_association: a,
        };
        // A report about another association is stale.
        assert_eq!(s.decide(&active(Some(assoc("b")))).unwrap(), vec![]);
        let history = vec![created(), associated(&assoc("a"))];
        let s = given::<FloatingIp>(history.clone())
            .when(active(Some(assoc("a"))))
            .then(vec![E::FloatingIpStatusChanged(
                pb::FloatingIpStatusChanged {
                    status: STATUS_ACTIVE.into(),
                },
            )]);
        assert_eq!(s.status, STATUS_ACTIVE);
        given::<FloatingIp>(history)
            .when(FloatingIpCommand::ReportStatus {
                status: "BOGUS".into(),
                for_association: Some(assoc("a")),
            })
            .then_invalid();
    }

    #[test]
    fn disassociate_and_delete() {
        let history = vec![created(), associated(&assoc("a"))];
        let s = given::<FloatingIp>(history.clone())
            .when(update(Some(None)))
            .then_ok();
        assert_eq!(s.association, None);
        given::<FloatingIp>([created()])
            .when(update(Some(None)))
            .then_nothing();
        given::<FloatingIp>(history.clone())
            .when(update(Some(Some(assoc("a")))))
            .then_nothing();
        let s = given::<FloatingIp>(history)
            .when(FloatingIpCommand::Delete)
            .then_ok();
        assert!(!s.is_live());
        given::<FloatingIp>([created(), E::FloatingIpDeleted(pb::FloatingIpDeleted {})])
            .when(FloatingIpCommand::Update {
                association: None,
                description: Some("x".into()),
                if_revision: None,
            })
            .then_err_where(|e| matches!(e, DomainError::NotFound { .. }));
    }

    #[test]
    fn description_and_tags() {
        let s = given::<FloatingIp>([created()])
            .when(FloatingIpCommand::Update {
                association: Some(Some(assoc("a"))),
                description: Some("web".into()),
                if_revision: Some(1),
            })
            .then_ok();
        assert_eq!(s.description, "web");
        assert_eq!(
            (s.port_id(), s.revision),
            (Some("a"), 3),
            "one update, two events"
        );
        given::<FloatingIp>([created()])
            .when(FloatingIpCommand::Update {
                association: None,
                description: Some("web".into()),
                if_revision: Some(7),
            })
            .then_err_where(|e| matches!(e, DomainError::Conflict(m) if m.starts_with("RevisionNumberConstraintFailed")));
        let s = given::<FloatingIp>([created()])
            .when(FloatingIpCommand::SetTags(vec!["t".into()]))
            .then_ok();
        assert_eq!(s.tags, ["t"]);
    }
}
