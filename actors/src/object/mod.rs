//! Object storage (Swift): accounts, containers and objects, each a pure aggregate. Object bytes live in blob
//! files (`strata-object`'s blob store); these aggregates record what is stored under each name.
//!
//! Streams: `swift-account-<project>`, `swift-container-<container_id>`, `swift-object-<object_id>` (names
//! escaped, or digested when long). Every event names its account, container and object, so readers never
//! parse stream ids. Headers are kept with Swift's lower-case names.
//!
//! Consistency: an object's stream decides `If-None-Match: *` (one append with the expected version, so two
//! racing creates cannot both win); a container's stream decides its own life. Whether a container is empty
//! and what it holds in bytes are read from the projection, as Swift reads them from its container databases.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::object as pb;
use strata_proto::ObjectEvent as E;

use crate::aggregate::{Aggregate, DomainError};

/// Longest container name and object name, in bytes (Swift's defaults).
pub const CONTAINER_NAME_MAX: usize = 256;
pub const OBJECT_NAME_MAX: usize = 1024;

/// Swift's aggregate types, for generic readers (`crate::registry`).
pub const AGGREGATES: &[crate::registry::StateFolder] = &[
    crate::registry::folder::<SwiftAccount>(),
    crate::registry::folder::<Container>(),
    crate::registry::folder::<StoredObject>(),
];

/// Longest aggregate id made of names; longer ones are replaced by a digest.
const ID_MAX: usize = 400;

fn digest_id(account: &str, container: &str, name: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(container.as_bytes());
    if let Some(n) = name {
        h.update([0u8]);
        h.update(n.as_bytes());
    }
    format!("{account}.~{}", hex::encode(h.finalize()))
}

/// The aggregate id of a container (stream `swift-container-<id>`): `<project>.<container>`, the name
/// `%XX`-escaped outside `[A-Za-z0-9_@-]` (so stream ids hold no spaces, dots or slashes from names), or a
/// digest when that would be too long.
pub fn container_id(account: &str, container: &str) -> String {
    let mut out = format!("{account}.");
    crate::compute::escape_into(&mut out, container, true);
    if out.len() > ID_MAX {
        return digest_id(account, container, None);
    }
    out
}

/// The aggregate id of an object name (stream `swift-object-<id>`): `<project>.<container>.<object>`,
/// escaped like [`container_id`] (dots kept in the object name), or a digest when too long.
pub fn object_id(account: &str, container: &str, name: &str) -> String {
    let mut out = format!("{account}.");
    crate::compute::escape_into(&mut out, container, true);
    out.push('.');
    crate::compute::escape_into(&mut out, name, false);
    if out.len() > ID_MAX {
        return digest_id(account, container, Some(name));
    }
    out
}

/// Merge a header change into a map: `set` wins, `removed` goes.
fn merge(
    headers: &mut BTreeMap<String, String>,
    set: &BTreeMap<String, String>,
    removed: &[String],
) {
    for k in removed {
        headers.remove(k);
    }
    for (k, v) in set {
        headers.insert(k.clone(), v.clone());
    }
}

/// The part of `set`/`removed` that would change `headers` (empty when the change is a no-op).
fn effective_change(
    headers: &BTreeMap<String, String>,
    set: &BTreeMap<String, String>,
    removed: &[String],
) -> (BTreeMap<String, String>, Vec<String>) {
    let set: BTreeMap<String, String> = set
        .iter()
        .filter(|(k, v)| headers.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let removed: Vec<String> = removed
        .iter()
        .filter(|k| headers.contains_key(*k) && !set.contains_key(*k))
        .cloned()
        .collect();
    (set, removed)
}

/// A Swift account: one per project; it exists implicitly, its headers are recorded when first set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SwiftAccount {
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// Set and remove headers (POST on the account).
    ChangeHeaders {
        account: String,
        set: BTreeMap<String, String>,
        removed: Vec<String>,
    },
}

impl Aggregate for SwiftAccount {
    type Command = AccountCommand;
    type Event = E;
    const KIND: &'static str = "swift-account";

    fn decide(&self, cmd: &AccountCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            AccountCommand::ChangeHeaders {
                account,
                set,
                removed,
            } => {
                let (set, removed) = effective_change(&self.headers, set, removed);
                if set.is_empty() && removed.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::AccountHeadersChanged(pb::AccountHeadersChanged {
                    account: account.clone(),
                    set,
                    removed,
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        if let E::AccountHeadersChanged(e) = event {
            merge(&mut self.headers, &e.set, &e.removed);
        }
        self
    }
}

/// A container: whether it exists, its headers, when it was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub exists: bool,
    pub account: String,
    pub name: String,
    pub headers: BTreeMap<String, String>,
    pub storage_policy: String,
    /// X-Timestamp of its creation.
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerCommand {
    /// PUT: create it, or (when it exists) change its headers. Answers are told apart by the events.
    Put {
        account: String,
        name: String,
        set: BTreeMap<String, String>,
        removed: Vec<String>,
        storage_policy: String,
        timestamp: String,
    },
    /// POST: change the headers of an existing container.
    ChangeHeaders {
        set: BTreeMap<String, String>,
        removed: Vec<String>,
    },
    /// DELETE. Emptiness is checked by the caller against the listing.
    Delete { timestamp: String },
}

impl Aggregate for Container {
    type Command = ContainerCommand;
    type Event = E;
    const KIND: &'static str = "swift-container";

    fn decide(&self, cmd: &ContainerCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            ContainerCommand::Put {
                account,
                name,
                set,
                removed,
                storage_policy,
                timestamp,
            } => {
                if !self.exists {
                    let mut headers = BTreeMap::new();
                    merge(&mut headers, set, &[]);
                    return Ok(vec![E::ContainerCreated(pb::ContainerCreated {
                        account: account.clone(),
                        name: name.clone(),
                        headers,
                        storage_policy: storage_policy.clone(),
                        timestamp: timestamp.clone(),
                    })]);
                }
                if !storage_policy.is_empty() && *storage_policy != self.storage_policy {
                    return Err(DomainError::Conflict(
                        "Container exists with a different storage policy".into(),
                    ));
                }
                self.change(set, removed)
            }
            ContainerCommand::ChangeHeaders { set, removed } => {
                if !self.exists {
                    return Err(self.not_found());
                }
                self.change(set, removed)
            }
            ContainerCommand::Delete { timestamp } => {
                if !self.exists {
                    return Err(self.not_found());
                }
                Ok(vec![E::ContainerDeleted(pb::ContainerDeleted {
                    timestamp: timestamp.clone(),
                    account: self.account.clone(),
                    name: self.name.clone(),
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::ContainerCreated(e) => {
                self = Container {
                    exists: true,
                    account: e.account.clone(),
                    name: e.name.clone(),
                    headers: e.headers.clone(),
                    storage_policy: e.storage_policy.clone(),
                    created: e.timestamp.clone(),
                };
            }
            E::ContainerHeadersChanged(e) => merge(&mut self.headers, &e.set, &e.removed),
            E::ContainerDeleted(_) => {
                self.exists = false;
                self.headers.clear();
            }
            _ => {}
        }
        self
    }
}

impl Container {
    fn not_found(&self) -> DomainError {
        DomainError::NotFound {
            kind: "container",
            id: self.name.clone(),
        }
    }

    fn change(
        &self,
        set: &BTreeMap<String, String>,
        removed: &[String],
    ) -> Result<Vec<E>, DomainError> {
        let (set, removed) = effective_change(&self.headers, set, removed);
        if set.is_empty() && removed.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![E::ContainerHeadersChanged(
            pb::ContainerHeadersChanged {
                set,
                removed,
                account: self.account.clone(),
                name: self.name.clone(),
            },
        )])
    }
}

/// What is stored under one object name now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    /// X-Timestamp of the version (its Last-Modified), or of its last POST.
    pub timestamp: String,
    pub blob: String,
    pub blob_size: u64,
    pub blob_md5: String,
    pub headers: BTreeMap<String, String>,
    pub static_large_object: bool,
}

impl ObjectRecord {
    /// When set: the Unix time (seconds) after which the object no longer exists.
    pub fn delete_at(&self) -> Option<u64> {
        self.headers.get("x-delete-at").and_then(|v| v.parse().ok())
    }

    /// The DLO manifest (`container/prefix`) when this object is one.
    pub fn dlo_manifest(&self) -> Option<&str> {
        self.headers.get("x-object-manifest").map(String::as_str)
    }
}

/// One object name in a container: its current version, if any.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredObject {
    pub account: String,
    pub container: String,
    pub name: String,
    pub current: Option<ObjectRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectCommand {
    /// Store a new version (its blob is already durable). `if_none_match`: refuse when one exists (412).
    Store {
        account: String,
        container: String,
        name: String,
        record: ObjectRecord,
        if_none_match: bool,
    },
    /// Replace the mutable headers (POST) of the current version.
    ReplaceHeaders {
        headers: BTreeMap<String, String>,
        content_type: String,
        timestamp: String,
    },
    /// Delete the current version. `expect_blob`: only if it is still that version (expiry, SLO cleanup).
    Delete {
        timestamp: String,
        reason: String,
        expect_blob: Option<String>,
    },
}

impl Aggregate for StoredObject {
    type Command = ObjectCommand;
    type Event = E;
    const KIND: &'static str = "swift-object";

    fn decide(&self, cmd: &ObjectCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            ObjectCommand::Store {
                account,
                container,
                name,
                record,
                if_none_match,
            } => {
                if *if_none_match && self.current.is_some() {
                    return Err(DomainError::Conflict("Precondition Failed".into()));
                }
                Ok(vec![E::ObjectStored(pb::ObjectStored {
                    account: account.clone(),
                    container: container.clone(),
                    name: name.clone(),
                    size: record.size,
                    etag: record.etag.clone(),
                    content_type: record.content_type.clone(),
                    timestamp: record.timestamp.clone(),
                    blob: record.blob.clone(),
                    blob_size: record.blob_size,
                    headers: record.headers.clone(),
                    static_large_object: record.static_large_object,
                    blob_md5: record.blob_md5.clone(),
                    replaced_blob: self
                        .current
                        .as_ref()
                        .map(|c| c.blob.clone())
                        .unwrap_or_default(),
                })])
            }
            ObjectCommand::ReplaceHeaders {
                headers,
                content_type,
                timestamp,
            } => {
                let Some(current) = &self.current else {
                    return Err(self.not_found());
                };
                let content_type = if *content_type == current.content_type {
                    String::new()
                } else {
                    content_type.clone()
                };
                if *headers == current.headers && content_type.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::ObjectHeadersReplaced(pb::ObjectHeadersReplaced {
                    headers: headers.clone(),
                    content_type,
                    timestamp: timestamp.clone(),
                    account: self.account.clone(),
                    container: self.container.clone(),
                    name: self.name.clone(),
                })])
            }
            ObjectCommand::Delete {
                timestamp,
                reason,
                expect_blob,
            } => {
                let Some(current) = &self.current else {
                    return Err(self.not_found());
                };
                if let Some(blob) = expect_blob {
                    if *blob != current.blob {
                        return Ok(vec![]);
                    }
                }
                Ok(vec![E::ObjectDeleted(pb::ObjectDeleted {
                    timestamp: timestamp.clone(),
                    reason: reason.clone(),
                    blob: current.blob.clone(),
                    account: self.account.clone(),
                    container: self.container.clone(),
                    name: self.name.clone(),
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::ObjectStored(e) => {
                self.account = e.account.clone();
                self.container = e.container.clone();
                self.name = e.name.clone();
                self.current = Some(ObjectRecord {
                    size: e.size,
                    etag: e.etag.clone(),
                    content_type: e.content_type.clone(),
                    timestamp: e.timestamp.clone(),
                    blob: e.blob.clone(),
                    blob_size: e.blob_size,
                    blob_md5: e.blob_md5.clone(),
                    headers: e.headers.clone(),
                    static_large_object: e.static_large_object,
                });
            }
            E::ObjectHeadersReplaced(e) => {
                if let Some(current) = self.current.as_mut() {
                    current.headers = e.headers.clone();
                    if !e.content_type.is_empty() {
                        current.content_type = e.content_type.clone();
                    }
                    current.timestamp = e.timestamp.clone();
                }
            }
            E::ObjectDeleted(_) => self.current = None,
            _ => {}
        }
        self
    }
}

impl StoredObject {
    fn not_found(&self) -> DomainError {
        DomainError::NotFound {
            kind: "object",
            id: self.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::codec::DomainEvent;

    fn run<A: Aggregate<Event = E>>(state: A, cmd: A::Command) -> Result<(A, Vec<E>), DomainError> {
        let events = state.decide(&cmd)?;
        for e in &events {
            assert_eq!(&E::decode(e.event_type(), &e.encode()).unwrap(), e);
        }
        let state = events.iter().fold(state, |s, e| s.apply(e));
        Ok((state, events))
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn record(blob: &str) -> ObjectRecord {
        ObjectRecord {
            size: 3,
            etag: "900150983cd24fb0d6963f7d28e17f72".into(),
            content_type: "text/plain".into(),
            timestamp: "1700000000.00000".into(),
            blob: blob.into(),
            blob_size: 3,
            blob_md5: "900150983cd24fb0d6963f7d28e17f72".into(),
            headers: map(&[("x-object-meta-color", "blue")]),
            static_large_object: false,
        }
    }

    fn store(blob: &str, if_none_match: bool) -> ObjectCommand {
        ObjectCommand::Store {
            account: "p".into(),
            container: "c".into(),
            name: "o".into(),
            record: record(blob),
            if_none_match,
        }
    }

    #[test]
    fn stream_ids_hold_no_unsafe_bytes_and_stay_short() {
        assert_eq!(container_id("p", "my photos.2024"), "p.my%20photos%2E2024");
        assert_eq!(object_id("p", "c.d", "a b/c.txt"), "p.c%2Ed.a%20b%2Fc.txt");
        let long = object_id("p", "c", &"n".repeat(1024));
        assert!(long.starts_with("p.~") && long.len() < 100, "{long}");
        assert_ne!(long, object_id("p", "c", &"n".repeat(1023)));
        for id in [container_id("p", "*> \0"), object_id("p", "x", "* >")] {
            assert!(
                !id.bytes().any(|b| b == b' ' || b == b'*' || b == b'>'),
                "{id}"
            );
        }
    }

    #[test]
    fn account_headers_record_only_what_changes() {
        let cmd = |set: &[(&str, &str)], removed: &[&str]| AccountCommand::ChangeHeaders {
            account: "p".into(),
            set: map(set),
            removed: removed.iter().map(|s| s.to_string()).collect(),
        };
        let (a, ev) = run(
            SwiftAccount::default(),
            cmd(&[("x-account-meta-a", "1")], &[]),
        )
        .unwrap();
        assert_eq!(ev.len(), 1);
        let (a, ev) = run(a, cmd(&[("x-account-meta-a", "1")], &["x-account-meta-b"])).unwrap();
        assert!(
            ev.is_empty(),
            "same value and removing an absent header change nothing"
        );
        let (a, _) = run(a, cmd(&[], &["x-account-meta-a"])).unwrap();
        assert!(a.headers.is_empty());
    }

    #[test]
    fn container_put_creates_then_updates_and_delete_needs_it() {
        let put = |set: &[(&str, &str)]| ContainerCommand::Put {
            account: "p".into(),
            name: "c".into(),
            set: map(set),
            removed: vec![],
            storage_policy: String::new(),
            timestamp: "1.00000".into(),
        };
        let (c, ev) = run(Container::default(), put(&[("x-container-read", ".r:*")])).unwrap();
        assert!(matches!(ev[0], E::ContainerCreated(_)));
        assert!(c.exists);
        let (c, ev) = run(c, put(&[("x-container-read", ".r:*")])).unwrap();
        assert!(ev.is_empty(), "a repeated PUT records nothing");
        let (c, ev) = run(c, put(&[("x-container-meta-x", "y")])).unwrap();
        assert!(matches!(ev[0], E::ContainerHeadersChanged(_)));
        assert_eq!(c.headers.len(), 2);
        let (c, _) = run(
            c,
            ContainerCommand::Delete {
                timestamp: "2.00000".into(),
            },
        )
        .unwrap();
        assert!(!c.exists && c.headers.is_empty());
        assert!(matches!(
            c.decide(&ContainerCommand::ChangeHeaders {
                set: map(&[("x-container-meta-x", "y")]),
                removed: vec![]
            }),
            Err(DomainError::NotFound { .. })
        ));
        let (c, ev) = run(c, put(&[])).unwrap();
        assert!(matches!(ev[0], E::ContainerCreated(_)) && c.headers.is_empty());
    }

    #[test]
    fn object_store_overwrites_and_if_none_match_refuses_an_existing_one() {
        let (o, _) = run(StoredObject::default(), store("b1", true)).unwrap();
        assert_eq!(o.current.as_ref().unwrap().blob, "b1");
        assert!(matches!(
            o.decide(&store("b2", true)),
            Err(DomainError::Conflict(_))
        ));
        let (o, _) = run(o, store("b2", false)).unwrap();
        assert_eq!(o.current.as_ref().unwrap().blob, "b2");
    }

    #[test]
    fn object_post_replaces_headers_and_delete_can_name_the_version() {
        let (o, _) = run(StoredObject::default(), store("b1", false)).unwrap();
        let (o, ev) = run(
            o,
            ObjectCommand::ReplaceHeaders {
                headers: map(&[("x-object-meta-size", "L")]),
                content_type: "text/plain".into(),
                timestamp: "2.00000".into(),
            },
        )
        .unwrap();
        assert_eq!(ev.len(), 1);
        let cur = o.current.clone().unwrap();
        assert_eq!(cur.headers, map(&[("x-object-meta-size", "L")]));
        assert_eq!(cur.content_type, "text/plain");
        let (o, ev) = run(
            o,
            ObjectCommand::Delete {
                timestamp: "3.00000".into(),
                reason: "expired".into(),
                expect_blob: Some("older".into()),
            },
        )
        .unwrap();
        assert!(
            ev.is_empty(),
            "an expiry of a replaced version deletes nothing"
        );
        let (o, _) = run(
            o,
            ObjectCommand::Delete {
                timestamp: "3.00000".into(),
                reason: "delete".into(),
                expect_blob: None,
            },
        )
        .unwrap();
        assert!(o.current.is_none());
        assert!(matches!(
            o.decide(&ObjectCommand::Delete {
                timestamp: "4.00000".into(),
                reason: "delete".into(),
                expect_blob: None
            }),
            Err(DomainError::NotFound { .. })
        ));
    }
}
