//! `Region`: a catalog region ("RegionOne"), optionally nested under a parent region. Its id is chosen by
//! the caller, not generated.

use serde::{Deserialize, Serialize};
use strata_proto::identity as pb;
use strata_proto::IdentityEvent as E;

use super::NAME_MAX;
use super::{
    changed, check_description, check_id, check_len, duplicate_id, invalid, not_found, set,
};
use crate::aggregate::{Aggregate, DomainError};

const KIND: &str = "region";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub exists: bool,
    pub deleted: bool,
    pub region_id: String,
    pub description: String,
    /// "" for a top-level region.
    pub parent_region_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionCommand {
    Create {
        region_id: String,
        description: String,
        parent_region_id: String,
    },
    /// Change the given fields; `None` leaves a field as it is, `Some("")` makes the region top-level.
    Update {
        description: Option<String>,
        parent_region_id: Option<String>,
    },
    Delete,
}

impl Region {
    fn live(&self) -> Result<(), DomainError> {
        if self.exists && !self.deleted {
            Ok(())
        } else {
            Err(not_found(KIND, &self.region_id))
        }
    }
}

/// A region cannot be its own parent (longer cycles span several regions: the caller checks those).
fn check_parent(region_id: &str, parent: &str) -> Result<(), DomainError> {
    check_len("parent_region_id", parent, NAME_MAX)?;
    if parent == region_id {
        return Err(invalid(
            "parent_region_id",
            "a region cannot be its own parent",
        ));
    }
    Ok(())
}

impl Aggregate for Region {
    type Command = RegionCommand;
    type Event = E;
    const KIND: &'static str = KIND;

    fn decide(&self, cmd: &RegionCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            RegionCommand::Create {
                region_id,
                description,
                parent_region_id,
            } => {
                check_id("id", region_id, NAME_MAX)?;
                check_description(description)?;
                check_parent(region_id, parent_region_id)?;
                if self.exists {
                    return Err(duplicate_id(KIND, region_id));
                }
                Ok(vec![E::RegionCreated(pb::RegionCreated {
                    region_id: region_id.clone(),
                    description: description.clone(),
                    parent_region_id: parent_region_id.clone(),
                })])
            }
            RegionCommand::Update {
                description,
                parent_region_id,
            } => {
                self.live()?;
                if let Some(d) = description {
                    check_description(d)?;
                }
                if let Some(p) = parent_region_id {
                    check_parent(&self.region_id, p)?;
                }
                let update = pb::RegionUpdated {
                    description: changed(&self.description, description),
                    parent_region_id: changed(&self.parent_region_id, parent_region_id),
                };
                if update == pb::RegionUpdated::default() {
                    return Ok(vec![]);
                }
                Ok(vec![E::RegionUpdated(update)])
            }
            RegionCommand::Delete => {
                self.live()?;
                Ok(vec![E::RegionDeleted(pb::RegionDeleted {})])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::RegionCreated(c) => {
                self.exists = true;
                self.region_id = c.region_id.clone();
                self.description = c.description.clone();
                self.parent_region_id = c.parent_region_id.clone();
            }
            E::RegionUpdated(u) => {
                set(&mut self.description, &u.description);
                set(&mut self.parent_region_id, &u.parent_region_id);
            }
            E::RegionDeleted(_) => self.deleted = true,
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
        E::RegionCreated(pb::RegionCreated {
            region_id: "RegionOne".into(),
            description: "first".into(),
            parent_region_id: String::new(),
        })
    }

    fn create() -> RegionCommand {
        RegionCommand::Create {
            region_id: "RegionOne".into(),
            description: "first".into(),
            parent_region_id: String::new(),
        }
    }

    fn deleted() -> E {
        E::RegionDeleted(pb::RegionDeleted {})
    }

    #[test]
    fn create_records_the_region() {
        let state = given::<Region>([]).when(create()).then(vec![created()]);
        assert_eq!(
            state,
            Region {
                exists: true,
                deleted: false,
                region_id: "RegionOne".into(),
                description: "first".into(),
                parent_region_id: String::new()
            }
        );
        let child = RegionCommand::Create {
            region_id: "RegionOne-a".into(),
            description: String::new(),
            parent_region_id: "RegionOne".into(),
        };
        assert_eq!(
            given::<Region>([]).when(child).then_ok().parent_region_id,
            "RegionOne"
        );
    }

    #[test]
    fn create_twice_or_after_delete_is_a_duplicate() {
        let dup = DomainError::AlreadyExists {
            kind: "region",
            detail: "Duplicate ID, RegionOne.".into(),
        };
        given::<Region>([created()])
            .when(create())
            .then_err(dup.clone());
        given::<Region>([created(), deleted()])
            .when(create())
            .then_err(dup);
    }

    #[test]
    fn create_validates_its_input() {
        for cmd in [
            RegionCommand::Create {
                region_id: String::new(),
                description: String::new(),
                parent_region_id: String::new(),
            },
            RegionCommand::Create {
                region_id: "r".repeat(256),
                description: String::new(),
                parent_region_id: String::new(),
            },
            RegionCommand::Create {
                region_id: "r1".into(),
                description: "d".repeat(65536),
                parent_region_id: String::new(),
            },
            RegionCommand::Create {
                region_id: "r1".into(),
                description: String::new(),
                parent_region_id: "r1".into(),
            },
        ] {
            given::<Region>([]).when(cmd).then_invalid();
        }
    }

    #[test]
    fn update_records_only_what_changed() {
        let cmd = RegionCommand::Update {
            description: Some("first".into()),
            parent_region_id: Some("Earth".into()),
        };
        let state = given::<Region>([created()])
            .when(cmd)
            .then(vec![E::RegionUpdated(pb::RegionUpdated {
                description: None,
                parent_region_id: Some("Earth".into()),
            })]);
        assert_eq!(state.parent_region_id, "Earth");
        given::<Region>([created()])
            .when(RegionCommand::Update {
                description: None,
                parent_region_id: Some(String::new()),
            })
            .then_nothing();
        given::<Region>([created()])
            .when(RegionCommand::Update {
                description: None,
                parent_region_id: None,
            })
            .then_nothing();
    }

    #[test]
    fn a_region_cannot_become_its_own_parent() {
        given::<Region>([created()])
            .when(RegionCommand::Update {
                description: None,
                parent_region_id: Some("RegionOne".into()),
            })
            .then_invalid();
    }

    #[test]
    fn delete_marks_the_region_deleted() {
        assert!(
            given::<Region>([created()])
                .when(RegionCommand::Delete)
                .then(vec![deleted()])
                .deleted
        );
    }

    #[test]
    fn commands_on_a_missing_region_are_not_found() {
        let absent = DomainError::NotFound {
            kind: "region",
            id: String::new(),
        };
        let gone = DomainError::NotFound {
            kind: "region",
            id: "RegionOne".into(),
        };
        for cmd in [
            RegionCommand::Update {
                description: Some("x".into()),
                parent_region_id: None,
            },
            RegionCommand::Delete,
        ] {
            given::<Region>([])
                .when(cmd.clone())
                .then_err(absent.clone());
            given::<Region>([created(), deleted()])
                .when(cmd)
                .then_err(gone.clone());
        }
    }

    #[test]
    fn apply_ignores_other_aggregates_events() {
        let before = given::<Region>([created()]).0;
        assert_eq!(
            before
                .clone()
                .apply(&E::EndpointDeleted(pb::EndpointDeleted {})),
            before
        );
    }
}
