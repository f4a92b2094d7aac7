//! `Flavor`: a Nova flavor (instance type), its extra specs and, when private, the projects that may use it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use strata_proto::compute as pb;
use strata_proto::ComputeEvent as E;

use super::{check_len, invalid, DESCRIPTION_MAX, MAX_INT, NAME_MAX, RXTX_FACTOR_MAX};
use crate::aggregate::{Aggregate, DomainError};

const KIND: &str = "flavor";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Flavor {
    pub exists: bool,
    pub deleted: bool,
    pub flavor_id: String,
    pub name: String,
    pub ram_mb: u64,
    pub vcpus: u32,
    pub disk_gb: u64,
    pub ephemeral_gb: u64,
    pub swap_mb: u64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    /// "" = none.
    pub description: String,
    pub extra_specs: BTreeMap<String, String>,
    /// Projects given access to a private flavor.
    pub access: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FlavorCommand {
    Create {
        flavor_id: String,
        name: String,
        ram_mb: u64,
        vcpus: u32,
        disk_gb: u64,
        ephemeral_gb: u64,
        swap_mb: u64,
        rxtx_factor: f64,
        is_public: bool,
        /// "" = none.
        description: String,
    },
    /// "" clears the description.
    SetDescription {
        description: String,
    },
    Delete,
    /// Add or change these extra specs (others are kept).
    SetExtraSpecs {
        specs: BTreeMap<String, String>,
    },
    UnsetExtraSpec {
        key: String,
    },
    AddAccess {
        project_id: String,
    },
    RemoveAccess {
        project_id: String,
    },
}

fn check_name(name: &str) -> Result<(), DomainError> {
    check_len("name", name, NAME_MAX)?;
    if name.trim() != name {
        return Err(invalid(
            "name",
            "must not have leading or trailing whitespace",
        ));
    }
    Ok(())
}

fn check_range(field: &str, value: u64, min: u64) -> Result<(), DomainError> {
    if value < min || value > MAX_INT {
        return Err(invalid(
            field,
            &format!("must be an integer between {min} and {MAX_INT}"),
        ));
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), DomainError> {
    if description.chars().count() > DESCRIPTION_MAX {
        return Err(invalid(
            "description",
            &format!("must be at most {DESCRIPTION_MAX} characters long"),
        ));
    }
    Ok(())
}

impl Flavor {
    fn live(&self) -> Result<(), DomainError> {
        if self.exists && !self.deleted {
            Ok(())
        } else {
            Err(DomainError::NotFound {
                kind: KIND,
                id: self.flavor_id.clone(),
            })
        }
    }
}

impl Aggregate for Flavor {
    type Command = FlavorCommand;
    type Event = E;
    const KIND: &'static str = KIND;

    fn decide(&self, cmd: &FlavorCommand) -> Result<Vec<E>, DomainError> {
        use FlavorCommand as C;
        match cmd {
            C::Create {
                flavor_id,
                name,
                ram_mb,
                vcpus,
                disk_gb,
                ephemeral_gb,
                swap_mb,
                rxtx_factor,
                is_public,
                description,
            } => {
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: KIND,
                        detail: format!("Flavor with ID {flavor_id} already exists."),
                    });
                }
                check_len("id", flavor_id, NAME_MAX)?;
                check_name(name)?;
                check_range("ram", *ram_mb, 1)?;
                check_range("vcpus", u64::from(*vcpus), 1)?;
                check_range("disk", *disk_gb, 0)?;
                check_range("OS-FLV-EXT-DATA:ephemeral", *ephemeral_gb, 0)?;
                check_range("swap", *swap_mb, 0)?;
                // `!(x > 0)` also refuses NaN.
                if !(*rxtx_factor > 0.0 && *rxtx_factor <= RXTX_FACTOR_MAX) {
                    return Err(invalid(
                        "rxtx_factor",
                        &format!("must be a number greater than 0 and at most {RXTX_FACTOR_MAX}"),
                    ));
                }
                check_description(description)?;
                Ok(vec![E::FlavorCreated(pb::FlavorCreated {
                    flavor_id: flavor_id.clone(),
                    name: name.clone(),
                    ram_mb: *ram_mb,
                    vcpus: *vcpus,
                    disk_gb: *disk_gb,
                    ephemeral_gb: *ephemeral_gb,
                    swap_mb: *swap_mb,
                    rxtx_factor: *rxtx_factor,
                    is_public: *is_public,
                    description: description.clone(),
                })])
            }
            C::SetDescription { description } => {
                self.live()?;
                check_description(description)?;
                if *description == self.description {
                    return Ok(vec![]);
                }
                Ok(vec![E::FlavorDescriptionChanged(
                    pb::FlavorDescriptionChanged {
                        description: description.clone(),
                    },
                )])
            }
            C::Delete => {
                self.live()?;
                Ok(vec![E::FlavorDeleted(pb::FlavorDeleted {})])
            }
            C::SetExtraSpecs { specs } => {
                self.live()?;
                for (key, value) in specs {
                    check_len("extra_specs", key, NAME_MAX)?;
                    check_len("extra_specs", value, NAME_MAX)?;
                }
                let changed: std::collections::HashMap<String, String> = specs
                    .iter()
                    .filter(|(k, v)| self.extra_specs.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if changed.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::FlavorExtraSpecsSet(pb::FlavorExtraSpecsSet {
                    specs: changed,
                })])
            }
            C::UnsetExtraSpec { key } => {
                self.live()?;
                if !self.extra_specs.contains_key(key) {
                    return Err(DomainError::NotFound {
                        kind: "flavor extra spec",
                        id: key.clone(),
                    });
                }
                Ok(vec![E::FlavorExtraSpecUnset(pb::FlavorExtraSpecUnset {
                    key: key.clone(),
                })])
            }
            C::AddAccess { project_id } => {
                self.live()?;
                check_len("tenant", project_id, NAME_MAX)?;
                if self.is_public {
                    return Err(DomainError::Conflict(
                        "Can not add access to a public flavor.".into(),
                    ));
                }
                if self.access.contains(project_id) {
                    return Err(DomainError::Conflict(format!(
                        "Flavor access already exists for flavor {} and project {project_id} combination.",
                        self.flavor_id
                    )));
                }
                Ok(vec![E::FlavorAccessAdded(pb::FlavorAccessAdded {
                    project_id: project_id.clone(),
                })])
            }
            C::RemoveAccess { project_id } => {
                self.live()?;
                if !self.access.contains(project_id) {
                    return Err(DomainError::NotFound {
                        kind: "flavor access",
                        id: format!("{}/{project_id}", self.flavor_id),
                    });
                }
                Ok(vec![E::FlavorAccessRemoved(pb::FlavorAccessRemoved {
                    project_id: project_id.clone(),
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::FlavorCreated(c) => {
                self = Flavor {
                    exists: true,
                    deleted: false,
                    flavor_id: c.flavor_id.clone(),
                    name: c.name.clone(),
                    ram_mb: c.ram_mb,
                    vcpus: c.vcpus,
                    disk_gb: c.disk_gb,
                    ephemeral_gb: c.ephemeral_gb,
                    swap_mb: c.swap_mb,
                    rxtx_factor: c.rxtx_factor,
                    is_public: c.is_public,
                    description: c.description.clone(),
                    extra_specs: BTreeMap::new(),
                    access: BTreeSet::new(),
                };
            }
            E::FlavorDescriptionChanged(d) => self.description = d.description.clone(),
            E::FlavorDeleted(_) => self.deleted = true,
            E::FlavorExtraSpecsSet(s) => {
                self.extra_specs
                    .extend(s.specs.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            E::FlavorExtraSpecUnset(u) => {
                self.extra_specs.remove(&u.key);
            }
            E::FlavorAccessAdded(a) => {
                self.access.insert(a.project_id.clone());
            }
            E::FlavorAccessRemoved(r) => {
                self.access.remove(&r.project_id);
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::{edit, given};

    fn create_cmd() -> FlavorCommand {
        FlavorCommand::Create {
            flavor_id: "1".into(),
            name: "m1.tiny".into(),
            ram_mb: 512,
            vcpus: 1,
            disk_gb: 1,
            ephemeral_gb: 0,
            swap_mb: 0,
            rxtx_factor: 1.0,
            is_public: true,
            description: String::new(),
        }
    }

    fn created(is_public: bool) -> E {
        E::FlavorCreated(pb::FlavorCreated {
            flavor_id: "1".into(),
            name: "m1.tiny".into(),
            ram_mb: 512,
            vcpus: 1,
            disk_gb: 1,
            ephemeral_gb: 0,
            swap_mb: 0,
            rxtx_factor: 1.0,
            is_public,
            description: String::new(),
        })
    }

    fn deleted() -> E {
        E::FlavorDeleted(pb::FlavorDeleted {})
    }

    fn with(f: impl FnOnce(&mut FlavorCommand)) -> FlavorCommand {
        let mut cmd = create_cmd();
        f(&mut cmd);
        cmd
    }

    fn specs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn specs_set(pairs: &[(&str, &str)]) -> E {
        E::FlavorExtraSpecsSet(pb::FlavorExtraSpecsSet {
            specs: specs(pairs).into_iter().collect(),
        })
    }

    fn access_added(p: &str) -> E {
        E::FlavorAccessAdded(pb::FlavorAccessAdded {
            project_id: p.into(),
        })
    }

    fn not_found() -> DomainError {
        DomainError::NotFound {
            kind: "flavor",
            id: String::new(),
        }
    }

    #[test]
    fn create_records_every_field() {
        let cmd = FlavorCommand::Create {
            flavor_id: "6f7a-uuid".into(),
            name: "big".into(),
            ram_mb: 4096,
            vcpus: 4,
            disk_gb: 40,
            ephemeral_gb: 10,
            swap_mb: 512,
            rxtx_factor: 2.5,
            is_public: false,
            description: "a big one".into(),
        };
        let s = given::<Flavor>([])
            .when(cmd)
            .then(vec![E::FlavorCreated(pb::FlavorCreated {
                flavor_id: "6f7a-uuid".into(),
                name: "big".into(),
                ram_mb: 4096,
                vcpus: 4,
                disk_gb: 40,
                ephemeral_gb: 10,
                swap_mb: 512,
                rxtx_factor: 2.5,
                is_public: false,
                description: "a big one".into(),
            })]);
        assert!(s.exists && !s.deleted);
        assert_eq!((s.ram_mb, s.vcpus, s.disk_gb), (4096, 4, 40));
        assert_eq!((s.ephemeral_gb, s.swap_mb, s.rxtx_factor), (10, 512, 2.5));
        assert_eq!(s.description, "a big one");
        assert!(!s.is_public && s.extra_specs.is_empty() && s.access.is_empty());
    }

    #[test]
    fn name_must_be_1_to_255_chars_without_outer_whitespace() {
        for bad in ["", " x", "x ", "\tx", &"n".repeat(256)] {
            given::<Flavor>([])
                .when(with(
                    edit!(FlavorCommand::Create { name } => *name = bad.to_string()),
                ))
                .then_invalid();
        }
        for good in ["a b", &"n".repeat(255)] {
            given::<Flavor>([])
                .when(with(
                    edit!(FlavorCommand::Create { name } => *name = good.to_string()),
                ))
                .then_ok();
        }
    }

    #[test]
    fn flavor_id_must_be_1_to_255_chars() {
        for bad in [String::new(), "i".repeat(256)] {
            given::<Flavor>([])
                .when(with(
                    edit!(FlavorCommand::Create { flavor_id } => *flavor_id = bad.clone()),
                ))
                .then_invalid();
        }
    }

    #[test]
    fn sizes_follow_nova_ranges() {
        type Edit = fn(&mut FlavorCommand);
        let bad: [Edit; 10] = [
            edit!(FlavorCommand::Create { ram_mb } => *ram_mb = 0),
            edit!(FlavorCommand::Create { ram_mb } => *ram_mb = MAX_INT + 1),
            edit!(FlavorCommand::Create { vcpus } => *vcpus = 0),
            edit!(FlavorCommand::Create { vcpus } => *vcpus = u32::MAX),
            edit!(FlavorCommand::Create { disk_gb } => *disk_gb = MAX_INT + 1),
            edit!(FlavorCommand::Create { ephemeral_gb } => *ephemeral_gb = MAX_INT + 1),
            edit!(FlavorCommand::Create { swap_mb } => *swap_mb = MAX_INT + 1),
            edit!(FlavorCommand::Create { rxtx_factor } => *rxtx_factor = 0.0),
            edit!(FlavorCommand::Create { rxtx_factor } => *rxtx_factor = -1.0),
            edit!(FlavorCommand::Create { rxtx_factor } => *rxtx_factor = f64::NAN),
        ];
        for edit in bad {
            given::<Flavor>([]).when(with(edit)).then_invalid();
        }
        // Zero disk, ephemeral and swap are fine, and so is a small positive rxtx_factor.
        let zero = with(|c| {
            if let FlavorCommand::Create {
                disk_gb,
                rxtx_factor,
                ram_mb,
                ..
            } = c
            {
                *disk_gb = 0;
                *rxtx_factor = 0.1;
                *ram_mb = MAX_INT;
            }
        });
        given::<Flavor>([]).when(zero).then_ok();
        given::<Flavor>([])
            .when(with(
                edit!(FlavorCommand::Create { rxtx_factor } => *rxtx_factor = f64::INFINITY),
            ))
            .then_invalid();
        given::<Flavor>([])
            .when(with(edit!(FlavorCommand::Create { description } => *description = "d".repeat(DESCRIPTION_MAX + 1))))
            .then_invalid();
    }

    #[test]
    fn create_twice_or_after_delete_is_a_duplicate() {
        let dup = DomainError::AlreadyExists {
            kind: "flavor",
            detail: "Flavor with ID 1 already exists.".into(),
        };
        given::<Flavor>([created(true)])
            .when(create_cmd())
            .then_err(dup.clone());
        given::<Flavor>([created(true), deleted()])
            .when(create_cmd())
            .then_err(dup);
    }

    #[test]
    fn everything_else_on_an_absent_or_deleted_flavor_is_not_found() {
        let cmds = [
            FlavorCommand::SetDescription {
                description: "x".into(),
            },
            FlavorCommand::Delete,
            FlavorCommand::SetExtraSpecs {
                specs: specs(&[("k", "v")]),
            },
            FlavorCommand::UnsetExtraSpec { key: "k".into() },
            FlavorCommand::AddAccess {
                project_id: "p1".into(),
            },
            FlavorCommand::RemoveAccess {
                project_id: "p1".into(),
            },
        ];
        for cmd in cmds {
            given::<Flavor>([]).when(cmd.clone()).then_err(not_found());
            given::<Flavor>([created(false), access_added("p1"), deleted()])
                .when(cmd)
                .then_err(DomainError::NotFound {
                    kind: "flavor",
                    id: "1".into(),
                });
        }
    }

    #[test]
    fn description_changes_and_unchanged_is_a_no_op() {
        let s = given::<Flavor>([created(true)])
            .when(FlavorCommand::SetDescription {
                description: "new".into(),
            })
            .then(vec![E::FlavorDescriptionChanged(
                pb::FlavorDescriptionChanged {
                    description: "new".into(),
                },
            )]);
        assert_eq!(s.description, "new");
        given::<Flavor>([created(true)])
            .when(FlavorCommand::SetDescription {
                description: String::new(),
            })
            .then_nothing();
        given::<Flavor>([created(true)])
            .when(FlavorCommand::SetDescription {
                description: "d".repeat(DESCRIPTION_MAX + 1),
            })
            .then_invalid();
    }

    #[test]
    fn delete_marks_deleted() {
        let s = given::<Flavor>([created(true)])
            .when(FlavorCommand::Delete)
            .then(vec![deleted()]);
        assert!(s.exists && s.deleted);
    }

    #[test]
    fn extra_specs_are_merged_and_only_changes_recorded() {
        let s = given::<Flavor>([created(true), specs_set(&[("a", "1"), ("b", "2")])])
            .when(FlavorCommand::SetExtraSpecs {
                specs: specs(&[("a", "1"), ("b", "3"), ("c", "4")]),
            })
            .then(vec![specs_set(&[("b", "3"), ("c", "4")])]);
        assert_eq!(s.extra_specs, specs(&[("a", "1"), ("b", "3"), ("c", "4")]));
        given::<Flavor>([created(true), specs_set(&[("a", "1")])])
            .when(FlavorCommand::SetExtraSpecs {
                specs: specs(&[("a", "1")]),
            })
            .then_nothing();
    }

    #[test]
    fn extra_spec_keys_and_values_are_1_to_255_chars() {
        let long = "x".repeat(256);
        for (k, v) in [
            ("", "v"),
            ("k", ""),
            (long.as_str(), "v"),
            ("k", long.as_str()),
        ] {
            given::<Flavor>([created(true)])
                .when(FlavorCommand::SetExtraSpecs {
                    specs: specs(&[(k, v)]),
                })
                .then_invalid();
        }
        let max = "x".repeat(255);
        given::<Flavor>([created(true)])
            .when(FlavorCommand::SetExtraSpecs {
                specs: specs(&[(max.as_str(), max.as_str())]),
            })
            .then_ok();
    }

    #[test]
    fn unset_extra_spec_removes_it_or_is_not_found() {
        let s = given::<Flavor>([created(true), specs_set(&[("a", "1"), ("b", "2")])])
            .when(FlavorCommand::UnsetExtraSpec { key: "a".into() })
            .then(vec![E::FlavorExtraSpecUnset(pb::FlavorExtraSpecUnset {
                key: "a".into(),
            })]);
        assert_eq!(s.extra_specs, specs(&[("b", "2")]));
        given::<Flavor>([created(true)])
            .when(FlavorCommand::UnsetExtraSpec { key: "a".into() })
            .then_err(DomainError::NotFound {
                kind: "flavor extra spec",
                id: "a".into(),
            });
    }

    #[test]
    fn access_is_added_to_private_flavors_only_once() {
        let add = |p: &str| FlavorCommand::AddAccess {
            project_id: p.into(),
        };
        let s = given::<Flavor>([created(false)])
            .when(add("p1"))
            .then(vec![access_added("p1")]);
        assert!(s.access.contains("p1"));
        given::<Flavor>([created(true)])
            .when(add("p1"))
            .then_err(DomainError::Conflict(
                "Can not add access to a public flavor.".into(),
            ));
        given::<Flavor>([created(false), access_added("p1")])
            .when(add("p1"))
            .then_conflict();
        given::<Flavor>([created(false)])
            .when(add(""))
            .then_invalid();
    }

    #[test]
    fn access_is_removed_or_not_found() {
        let remove = |p: &str| FlavorCommand::RemoveAccess {
            project_id: p.into(),
        };
        let s = given::<Flavor>([created(false), access_added("p1"), access_added("p2")])
            .when(remove("p1"))
            .then(vec![E::FlavorAccessRemoved(pb::FlavorAccessRemoved {
                project_id: "p1".into(),
            })]);
        assert_eq!(s.access.iter().collect::<Vec<_>>(), vec!["p2"]);
        given::<Flavor>([created(false)])
            .when(remove("p1"))
            .then_err(DomainError::NotFound {
                kind: "flavor access",
                id: "1/p1".into(),
            });
    }
}
