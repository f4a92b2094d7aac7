//! `VolumeType` (stream `volume-type-<uuid>`): a named set of extra specs that the scheduler matches against
//! backend capabilities; private types have an access list. Names are unique through `NameClaim`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use strata_proto::volume as pb;
use strata_proto::VolumeEvent as E;

use crate::aggregate::{Aggregate, DomainError};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeType {
    pub exists: bool,
    pub deleted: bool,
    pub name: String,
    pub description: String,
    pub is_public: bool,
    pub extra_specs: BTreeMap<String, String>,
    pub access: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VolumeTypeCommand {
    Create {
        name: String,
        description: String,
        is_public: bool,
        extra_specs: BTreeMap<String, String>,
    },
    Update {
        name: String,
        description: String,
        is_public: bool,
    },
    SetExtraSpecs(BTreeMap<String, String>),
    UnsetExtraSpec(String),
    AddAccess(String),
    RemoveAccess(String),
    Delete,
}

fn check(field: &str, v: &str, allow_empty: bool) -> Result<(), DomainError> {
    let n = v.chars().count();
    if (!allow_empty && v.trim().is_empty()) || n > super::NAME_MAX {
        return Err(DomainError::Invalid(format!(
            "Invalid input received: {field} must be 1 to 255 characters"
        )));
    }
    Ok(())
}

impl Aggregate for VolumeType {
    type Command = VolumeTypeCommand;
    type Event = E;
    const KIND: &'static str = "volume-type";

    fn decide(&self, cmd: &VolumeTypeCommand) -> Result<Vec<E>, DomainError> {
        use VolumeTypeCommand as C;
        if !matches!(cmd, C::Create { .. }) && (!self.exists || self.deleted) {
            return Err(DomainError::NotFound {
                kind: "volume type",
                id: self.name.clone(),
            });
        }
        Ok(match cmd {
            C::Create {
                name,
                description,
                is_public,
                extra_specs,
            } => {
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: "volume type",
                        detail: format!("Volume Type {name} already exists."),
                    });
                }
                check("name", name, false)?;
                check("description", description, true)?;
                for (k, v) in extra_specs {
                    check("extra spec key", k, false)?;
                    check("extra spec value", v, true)?;
                }
                vec![E::VolumeTypeCreated(pb::VolumeTypeCreated {
                    name: name.clone(),
                    description: description.clone(),
                    is_public: *is_public,
                    extra_specs: extra_specs.clone().into_iter().collect(),
                })]
            }
            C::Update {
                name,
                description,
                is_public,
            } => {
                check("name", name, false)?;
                check("description", description, true)?;
                vec![E::VolumeTypeUpdated(pb::VolumeTypeUpdated {
                    name: name.clone(),
                    description: description.clone(),
                    is_public: *is_public,
                })]
            }
            C::SetExtraSpecs(specs) => {
                for (k, v) in specs {
                    check("extra spec key", k, false)?;
                    check("extra spec value", v, true)?;
                }
                vec![E::VolumeTypeExtraSpecsSet(pb::VolumeTypeExtraSpecsSet {
                    specs: specs.clone().into_iter().collect(),
                })]
            }
            C::UnsetExtraSpec(k) => {
                if !self.extra_specs.contains_key(k) {
                    return Err(DomainError::NotFound {
                        kind: "volume type extra spec",
                        id: k.clone(),
                    });
                }
                vec![E::VolumeTypeExtraSpecUnset(pb::VolumeTypeExtraSpecUnset {
                    key: k.clone(),
                })]
            }
            C::AddAccess(p) => {
                if self.is_public {
                    return Err(DomainError::Invalid(
                        "Invalid volume type: Type access modification is not applicable to public volume type.".into(),
                    ));
                }
                if self.access.contains(p) {
                    return Err(DomainError::Conflict(format!(
                        "Volume type access for {} / {p} combination already exists.",
                        self.name
                    )));
                }
                vec![E::VolumeTypeAccessAdded(pb::VolumeTypeAccessAdded {
                    project_id: p.clone(),
                })]
            }
            C::RemoveAccess(p) => {
                if !self.access.contains(p) {
                    return Err(DomainError::NotFound {
                        kind: "volume type access",
                        id: p.clone(),
                    });
                }
                vec![E::VolumeTypeAccessRemoved(pb::VolumeTypeAccessRemoved {
                    project_id: p.clone(),
                })]
            }
            C::Delete => vec![E::VolumeTypeDeleted(pb::VolumeTypeDeleted {})],
        })
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::VolumeTypeCreated(c) => {
                self.exists = true;
                self.name = c.name.clone();
                self.description = c.description.clone();
                self.is_public = c.is_public;
                self.extra_specs = c.extra_specs.clone().into_iter().collect();
            }
            E::VolumeTypeUpdated(u) => {
                self.name = u.name.clone();
                self.description = u.description.clone();
                self.is_public = u.is_public;
            }
            E::VolumeTypeExtraSpecsSet(s) => self
                .extra_specs
                .extend(s.specs.iter().map(|(k, v)| (k.clone(), v.clone()))),
            E::VolumeTypeExtraSpecUnset(u) => {
                self.extra_specs.remove(&u.key);
            }
            E::VolumeTypeAccessAdded(a) => {
                self.access.insert(a.project_id.clone());
            }
            E::VolumeTypeAccessRemoved(a) => {
                self.access.remove(&a.project_id);
            }
            E::VolumeTypeDeleted(_) => self.deleted = true,
            _ => {}
        }
        self
    }
}
