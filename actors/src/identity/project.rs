//! `Project`: a Keystone project (tenant), owned by a domain and optionally nested under a parent project.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use strata_proto::identity as pb;
use strata_proto::IdentityEvent as E;

use super::{
    changed, check_description, check_extra, check_id, check_name, duplicate_id, invalid,
    not_found, set,
};
use super::{ENTITY_NAME_MAX, ID_MAX, NAME_MAX};
use crate::aggregate::{Aggregate, DomainError};

const KIND: &str = "project";
/// Keystone's limits on project tags.
pub const MAX_TAGS: usize = 80;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub exists: bool,
    pub deleted: bool,
    pub project_id: String,
    pub domain_id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    /// The parent project, or the domain id for a top-level project ("" when unknown).
    pub parent_id: String,
    pub tags: Vec<String>,
    /// Unmodelled attributes as a JSON object ("" when none).
    pub extra_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectCommand {
    Create {
        project_id: String,
        domain_id: String,
        name: String,
        description: String,
        enabled: bool,
        parent_id: String,
        tags: Vec<String>,
        extra_json: String,
    },
    /// Change the given fields; `None` leaves a field as it is, `tags: Some(..)` replaces the whole list.
    Update {
        name: Option<String>,
        description: Option<String>,
        enabled: Option<bool>,
        tags: Option<Vec<String>>,
        extra_json: Option<String>,
    },
    Delete,
}

/// Keystone's tag rules: 1-255 characters without '/' or ',', at most 80 per project, no repeats.
fn check_tags(tags: &[String]) -> Result<(), DomainError> {
    if tags.len() > MAX_TAGS {
        return Err(invalid(
            "tags",
            &format!("at most {MAX_TAGS} tags are allowed"),
        ));
    }
    let mut seen = BTreeSet::new();
    for tag in tags {
        check_id("tags", tag, NAME_MAX)?;
        if tag.contains('/') || tag.contains(',') {
            return Err(invalid(
                "tags",
                &format!("'{tag}' must not contain '/' or ','"),
            ));
        }
        if !seen.insert(tag) {
            return Err(invalid("tags", &format!("'{tag}' is repeated")));
        }
    }
    Ok(())
}

impl Project {
    fn live(&self) -> Result<(), DomainError> {
        if self.exists && !self.deleted {
            Ok(())
        } else {
            Err(not_found(KIND, &self.project_id))
        }
    }
}

impl Aggregate for Project {
    type Command = ProjectCommand;
    type Event = E;
    const KIND: &'static str = KIND;

    fn decide(&self, cmd: &ProjectCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            ProjectCommand::Create {
                project_id,
                domain_id,
                name,
                description,
                enabled,
                parent_id,
                tags,
                extra_json,
            } => {
                check_id("id", project_id, ID_MAX)?;
                check_id("domain_id", domain_id, ID_MAX)?;
                check_name("name", name, ENTITY_NAME_MAX)?;
                check_description(description)?;
                super::check_len("parent_id", parent_id, ID_MAX)?;
                if parent_id == project_id {
                    return Err(invalid("parent_id", "a project cannot be its own parent"));
                }
                check_tags(tags)?;
                check_extra(extra_json)?;
                if self.exists {
                    return Err(duplicate_id(KIND, project_id));
                }
                Ok(vec![E::ProjectCreated(pb::ProjectCreated {
                    project_id: project_id.clone(),
                    domain_id: domain_id.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    enabled: *enabled,
                    parent_id: parent_id.clone(),
                    tags: tags.clone(),
                    extra_json: extra_json.clone(),
                })])
            }
            ProjectCommand::Update {
                name,
                description,
                enabled,
                tags,
                extra_json,
            } => {
                self.live()?;
                if let Some(n) = name {
                    check_name("name", n, ENTITY_NAME_MAX)?;
                }
                if let Some(d) = description {
                    check_description(d)?;
                }
                if let Some(t) = tags {
                    check_tags(t)?;
                }
                if let Some(x) = extra_json {
                    check_extra(x)?;
                }
                let new_tags = changed(&self.tags, tags);
                let update = pb::ProjectUpdated {
                    name: changed(&self.name, name),
                    description: changed(&self.description, description),
                    enabled: changed(&self.enabled, enabled),
                    tags_changed: new_tags.is_some(),
                    tags: new_tags.unwrap_or_default(),
                    extra_json: changed(&self.extra_json, extra_json),
                };
                if update == pb::ProjectUpdated::default() {
                    return Ok(vec![]);
                }
                Ok(vec![E::ProjectUpdated(update)])
            }
            ProjectCommand::Delete => {
                self.live()?;
                Ok(vec![E::ProjectDeleted(pb::ProjectDeleted {})])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::ProjectCreated(c) => {
                self.exists = true;
                self.project_id = c.project_id.clone();
                self.domain_id = c.domain_id.clone();
                self.name = c.name.clone();
                self.description = c.description.clone();
                self.enabled = c.enabled;
                self.parent_id = c.parent_id.clone();
                self.tags = c.tags.clone();
                self.extra_json = c.extra_json.clone();
            }
            E::ProjectUpdated(u) => {
                set(&mut self.name, &u.name);
                set(&mut self.description, &u.description);
                set(&mut self.enabled, &u.enabled);
                set(&mut self.extra_json, &u.extra_json);
                if u.tags_changed {
                    self.tags = u.tags.clone();
                }
            }
            E::ProjectDeleted(_) => self.deleted = true,
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
        E::ProjectCreated(pb::ProjectCreated {
            project_id: "p1".into(),
            domain_id: "default".into(),
            name: "demo".into(),
            description: "Demo".into(),
            enabled: true,
            parent_id: "default".into(),
            tags: vec!["a".into()],
            extra_json: String::new(),
        })
    }

    fn create() -> ProjectCommand {
        ProjectCommand::Create {
            project_id: "p1".into(),
            domain_id: "default".into(),
            name: "demo".into(),
            description: "Demo".into(),
            enabled: true,
            parent_id: "default".into(),
            tags: vec!["a".into()],
            extra_json: String::new(),
        }
    }

    fn update() -> ProjectCommand {
        ProjectCommand::Update {
            name: None,
            description: None,
            enabled: None,
            tags: None,
            extra_json: None,
        }
    }

    fn deleted() -> E {
        E::ProjectDeleted(pb::ProjectDeleted {})
    }

    #[test]
    fn create_records_the_project() {
        let state = given::<Project>([]).when(create()).then(vec![created()]);
        assert_eq!(
            state,
            Project {
                exists: true,
                deleted: false,
                project_id: "p1".into(),
                domain_id: "default".into(),
                name: "demo".into(),
                description: "Demo".into(),
                enabled: true,
                parent_id: "default".into(),
                tags: vec!["a".into()],
                extra_json: String::new(),
            }
        );
    }

    #[test]
    fn create_twice_or_after_delete_is_a_duplicate() {
        let dup = DomainError::AlreadyExists {
            kind: "project",
            detail: "Duplicate ID, p1.".into(),
        };
        given::<Project>([created()])
            .when(create())
            .then_err(dup.clone());
        given::<Project>([created(), deleted()])
            .when(create())
            .then_err(dup);
    }

    #[test]
    fn create_validates_its_input() {
        type Edit = fn(&mut ProjectCommand);
        let edits: [Edit; 11] = [
            edit!(ProjectCommand::Create { project_id } => project_id.clear()),
            edit!(ProjectCommand::Create { domain_id } => domain_id.clear()),
            edit!(ProjectCommand::Create { name } => name.clear()),
            edit!(ProjectCommand::Create { name } => *name = "n".repeat(65)),
            edit!(ProjectCommand::Create { description } => *description = "d".repeat(65536)),
            edit!(ProjectCommand::Create { parent_id } => *parent_id = "p1".into()),
            edit!(ProjectCommand::Create { tags } => *tags = vec!["a/b".into()]),
            edit!(ProjectCommand::Create { tags } => *tags = vec!["a,b".into()]),
            edit!(ProjectCommand::Create { tags } => *tags = vec!["a".into(), "a".into()]),
            edit!(ProjectCommand::Create { tags } => *tags = (0..81).map(|i| i.to_string()).collect()),
            edit!(ProjectCommand::Create { extra_json } => *extra_json = "1".into()),
        ];
        for edit in edits {
            let mut cmd = create();
            edit(&mut cmd);
            given::<Project>([]).when(cmd).then_invalid();
        }
    }

    #[test]
    fn update_records_only_what_changed() {
        let cmd = ProjectCommand::Update {
            name: Some("demo2".into()),
            description: Some("Demo".into()),
            enabled: Some(false),
            tags: Some(vec!["a".into(), "b".into()]),
            extra_json: None,
        };
        let state = given::<Project>([created()])
            .when(cmd)
            .then(vec![E::ProjectUpdated(pb::ProjectUpdated {
                name: Some("demo2".into()),
                enabled: Some(false),
                tags_changed: true,
                tags: vec!["a".into(), "b".into()],
                ..Default::default()
            })]);
        assert_eq!((state.name.as_str(), state.enabled), ("demo2", false));
        assert_eq!(state.tags, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn clearing_tags_is_a_change() {
        let cmd = ProjectCommand::Update {
            name: None,
            description: None,
            enabled: None,
            tags: Some(vec![]),
            extra_json: None,
        };
        let state = given::<Project>([created()])
            .when(cmd)
            .then(vec![E::ProjectUpdated(pb::ProjectUpdated {
                tags_changed: true,
                tags: vec![],
                ..Default::default()
            })]);
        assert!(state.tags.is_empty());
    }

    #[test]
    fn update_that_changes_nothing_records_nothing() {
        let same = ProjectCommand::Update {
            name: Some("demo".into()),
            description: None,
            enabled: Some(true),
            tags: Some(vec!["a".into()]),
            extra_json: Some(String::new()),
        };
        given::<Project>([created()]).when(same).then_nothing();
        given::<Project>([created()]).when(update()).then_nothing();
    }

    #[test]
    fn update_validates_its_input() {
        let bad = ProjectCommand::Update {
            name: None,
            description: None,
            enabled: None,
            tags: Some(vec![String::new()]),
            extra_json: None,
        };
        given::<Project>([created()]).when(bad).then_invalid();
        let bad = ProjectCommand::Update {
            name: Some("n".repeat(65)),
            description: None,
            enabled: None,
            tags: None,
            extra_json: None,
        };
        given::<Project>([created()]).when(bad).then_invalid();
    }

    #[test]
    fn delete_marks_the_project_deleted() {
        let state = given::<Project>([created()])
            .when(ProjectCommand::Delete)
            .then(vec![deleted()]);
        assert!(state.deleted);
    }

    #[test]
    fn update_or_delete_of_a_missing_project_is_not_found() {
        let absent = DomainError::NotFound {
            kind: "project",
            id: String::new(),
        };
        given::<Project>([]).when(update()).then_err(absent.clone());
        given::<Project>([])
            .when(ProjectCommand::Delete)
            .then_err(absent);
        let gone = DomainError::NotFound {
            kind: "project",
            id: "p1".into(),
        };
        given::<Project>([created(), deleted()])
            .when(update())
            .then_err(gone.clone());
        given::<Project>([created(), deleted()])
            .when(ProjectCommand::Delete)
            .then_err(gone);
    }

    #[test]
    fn apply_ignores_other_aggregates_events() {
        let before = given::<Project>([created()]).0;
        assert_eq!(
            before
                .clone()
                .apply(&E::DomainDeleted(pb::DomainDeleted {})),
            before
        );
    }
}
