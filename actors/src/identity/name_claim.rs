//! `NameClaim`: a unique name held by at most one owner at a time, which is how "names are unique within a
//! domain" holds across aggregates. The API claims the name (id [`name_claim_id`]) before creating or
//! renaming the owner, and releases it after a delete or rename.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strata_proto::identity as pb;
use strata_proto::IdentityEvent as E;

use super::{check_id, check_len, check_name, ID_MAX, NAME_MAX};
use crate::aggregate::{Aggregate, DomainError};

/// The stream-safe aggregate id of `name` of `kind` within `scope` (e.g. "project", domain id, "demo"):
/// the first 32 lowercase hex digits of sha256(kind \0 scope \0 name). Names are compared exactly.
pub fn name_claim_id(kind: &str, scope: &str, name: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(scope.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    let mut id = hex::encode(h.finalize());
    id.truncate(32);
    id
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameClaim {
    /// What was claimed ("" until the first claim); kept after a release.
    pub kind: String,
    pub scope: String,
    pub name: String,
    /// The current holder; `None` when the name is free.
    pub owner_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameClaimCommand {
    /// Take the name for `owner_id`. `kind` names the owner's resource type in the 409 ("project", "user",
    /// ...); `scope` is the domain id the name is unique in ("" for names unique globally, like domains').
    /// Idempotent for the current holder.
    Claim {
        kind: &'static str,
        scope: String,
        name: String,
        owner_id: String,
    },
    /// Free the name if `owner_id` holds it; otherwise record nothing (a stale release must not free a
    /// name someone else took since).
    Release { owner_id: String },
}

impl NameClaim {
    /// Keystone's 409 for a duplicate name.
    fn duplicate(kind: &'static str, scope: &str, name: &str) -> DomainError {
        let detail = if scope.is_empty() {
            format!("Duplicate entry found with name {name}.")
        } else {
            format!("Duplicate entry found with name {name} at domain ID {scope}.")
        };
        DomainError::AlreadyExists { kind, detail }
    }
}

impl Aggregate for NameClaim {
    type Command = NameClaimCommand;
    type Event = E;
    const KIND: &'static str = "name";

    fn decide(&self, cmd: &NameClaimCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            NameClaimCommand::Claim {
                kind,
                scope,
                name,
                owner_id,
            } => {
                check_id("kind", kind, NAME_MAX)?;
                check_len("scope", scope, NAME_MAX)?;
                check_name("name", name, NAME_MAX)?;
                check_id("owner_id", owner_id, ID_MAX)?;
                // Guards against a command sent to the wrong stream (the id is a digest of these three).
                if !self.kind.is_empty()
                    && (self.kind != *kind || self.scope != *scope || self.name != *name)
                {
                    return Err(DomainError::Invalid(format!(
                        "Name claim for {kind} '{name}' in '{scope}' sent to the stream of {} '{}' in '{}'.",
                        self.kind, self.name, self.scope
                    )));
                }
                match &self.owner_id {
                    None => Ok(vec![E::NameClaimed(pb::NameClaimed {
                        kind: kind.to_string(),
                        scope: scope.clone(),
                        name: name.clone(),
                        owner_id: owner_id.clone(),
                    })]),
                    Some(holder) if holder == owner_id => Ok(vec![]),
                    Some(_) => Err(Self::duplicate(kind, scope, name)),
                }
            }
            NameClaimCommand::Release { owner_id } => {
                if self.owner_id.as_ref() == Some(owner_id) {
                    Ok(vec![E::NameReleased(pb::NameReleased {
                        owner_id: owner_id.clone(),
                    })])
                } else {
                    Ok(vec![])
                }
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::NameClaimed(c) => {
                self.kind = c.kind.clone();
                self.scope = c.scope.clone();
                self.name = c.name.clone();
                self.owner_id = Some(c.owner_id.clone());
            }
            E::NameReleased(r) if self.owner_id.as_ref() == Some(&r.owner_id) => {
                self.owner_id = None
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

    fn claim(owner: &str) -> NameClaimCommand {
        NameClaimCommand::Claim {
            kind: "project",
            scope: "d1".into(),
            name: "demo".into(),
            owner_id: owner.into(),
        }
    }

    fn claimed(owner: &str) -> E {
        E::NameClaimed(pb::NameClaimed {
            kind: "project".into(),
            scope: "d1".into(),
            name: "demo".into(),
            owner_id: owner.into(),
        })
    }

    fn release(owner: &str) -> NameClaimCommand {
        NameClaimCommand::Release {
            owner_id: owner.into(),
        }
    }

    fn released(owner: &str) -> E {
        E::NameReleased(pb::NameReleased {
            owner_id: owner.into(),
        })
    }

    #[test]
    fn ids_are_short_stable_hex_digests() {
        let id = name_claim_id("project", "d1", "demo");
        assert_eq!(id.len(), 32);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(id, name_claim_id("project", "d1", "demo"));
        // sha256("project\0d1\0demo"), truncated: pinned so a change of scheme cannot go unnoticed.
        let full = hex::encode(Sha256::digest(b"project\0d1\0demo"));
        assert_eq!(id, full[..32]);
    }

    #[test]
    fn ids_separate_kind_scope_and_name() {
        let ids = [
            name_claim_id("project", "d1", "demo"),
            name_claim_id("user", "d1", "demo"),
            name_claim_id("project", "d2", "demo"),
            name_claim_id("project", "d1", "Demo"),
            name_claim_id("project", "d1d", "emo"),
            name_claim_id("project", "d", "1demo"),
        ];
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn a_free_name_is_claimed() {
        let state = given::<NameClaim>([])
            .when(claim("p1"))
            .then(vec![claimed("p1")]);
        assert_eq!(
            state,
            NameClaim {
                kind: "project".into(),
                scope: "d1".into(),
                name: "demo".into(),
                owner_id: Some("p1".into())
            }
        );
    }

    #[test]
    fn claiming_again_for_the_holder_records_nothing() {
        given::<NameClaim>([claimed("p1")])
            .when(claim("p1"))
            .then_nothing();
    }

    #[test]
    fn a_held_name_is_a_duplicate_for_others() {
        given::<NameClaim>([claimed("p1")])
            .when(claim("p2"))
            .then_err(DomainError::AlreadyExists {
                kind: "project",
                detail: "Duplicate entry found with name demo at domain ID d1.".into(),
            });
        let domain = |owner: &str| NameClaimCommand::Claim {
            kind: "domain",
            scope: String::new(),
            name: "acme".into(),
            owner_id: owner.into(),
        };
        let held = given::<NameClaim>([]).when(domain("d1")).then_ok();
        let err = crate::gwt::Given(held).when(domain("d2"));
        err.then_err(DomainError::AlreadyExists {
            kind: "domain",
            detail: "Duplicate entry found with name acme.".into(),
        });
    }

    #[test]
    fn the_holder_releases_and_another_claims() {
        let state = given::<NameClaim>([claimed("p1")])
            .when(release("p1"))
            .then(vec![released("p1")]);
        assert_eq!(state.owner_id, None);
        assert_eq!(state.name, "demo", "the claim remembers what it is about");
        let state = given::<NameClaim>([claimed("p1"), released("p1")])
            .when(claim("p2"))
            .then(vec![claimed("p2")]);
        assert_eq!(state.owner_id.as_deref(), Some("p2"));
    }

    #[test]
    fn release_by_anyone_else_records_nothing() {
        given::<NameClaim>([]).when(release("p1")).then_nothing();
        let state = given::<NameClaim>([claimed("p2")])
            .when(release("p1"))
            .then_nothing();
        assert_eq!(state.owner_id.as_deref(), Some("p2"));
        given::<NameClaim>([claimed("p1"), released("p1")])
            .when(release("p1"))
            .then_nothing();
    }

    #[test]
    fn claim_validates_its_input() {
        for cmd in [
            NameClaimCommand::Claim {
                kind: "",
                scope: "d1".into(),
                name: "demo".into(),
                owner_id: "p1".into(),
            },
            NameClaimCommand::Claim {
                kind: "project",
                scope: "d1".into(),
                name: String::new(),
                owner_id: "p1".into(),
            },
            NameClaimCommand::Claim {
                kind: "project",
                scope: "d1".into(),
                name: "demo".into(),
                owner_id: String::new(),
            },
        ] {
            given::<NameClaim>([]).when(cmd).then_invalid();
        }
    }

    #[test]
    fn a_claim_for_another_name_is_refused() {
        let other = NameClaimCommand::Claim {
            kind: "project",
            scope: "d1".into(),
            name: "other".into(),
            owner_id: "p1".into(),
        };
        given::<NameClaim>([claimed("p1"), released("p1")])
            .when(other)
            .then_invalid();
    }

    #[test]
    fn apply_ignores_other_aggregates_events() {
        let before = given::<NameClaim>([claimed("p1")]).0;
        assert_eq!(
            before
                .clone()
                .apply(&E::ProjectDeleted(pb::ProjectDeleted {})),
            before
        );
    }
}
