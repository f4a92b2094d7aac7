//! `ObjectView`: every Swift account, container and object as listings and HEADs read them. Container and
//! object rows keep the aggregates' own state, folded with their own `apply`; counts and bytes are kept per
//! container as events arrive, so an account HEAD or a container HEAD reads numbers, and a listing page is a
//! range over an ordered map (cost: the page, not the container).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use strata_actors::object::{Container, ObjectRecord, StoredObject, SwiftAccount};
use strata_actors::Aggregate;
use strata_events::RecordedEvent;
use strata_proto::ObjectEvent as E;

use crate::persistent::{OrdMap, OrdSet};
use crate::Projection;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerRow {
    pub state: Container,
    /// Live objects by name (ordered: listings are ranges).
    pub objects: OrdMap<String, ObjectRecord>,
    pub bytes_used: u64,
    /// The log position of the last event that changed the container or one of its objects.
    pub last_position: u64,
}

impl ContainerRow {
    pub fn object_count(&self) -> u64 {
        self.objects.len() as u64
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountRow {
    pub state: SwiftAccount,
    /// Containers by name. A deleted container's row goes, unless objects a race left behind keep it (then
    /// `state.exists` is false and listings do not show it).
    pub containers: OrdMap<String, ContainerRow>,
}

impl AccountRow {
    /// Live containers: (count, objects, bytes).
    pub fn totals(&self) -> (u64, u64, u64) {
        self.containers
            .values()
            .filter(|c| c.state.exists)
            .fold((0, 0, 0), |(n, o, b), c| {
                (n + 1, o + c.object_count(), b + c.bytes_used)
            })
    }

    pub fn container(&self, name: &str) -> Option<&ContainerRow> {
        self.containers.get(name).filter(|c| c.state.exists)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectView {
    pub accounts: OrdMap<String, AccountRow>,
    /// Objects with an expiry: (X-Delete-At, account, container, object).
    pub expiring: OrdSet<(u64, String, String, String)>,
    pub undecodable: u64,
}

impl ObjectView {
    pub fn account(&self, account: &str) -> Option<&AccountRow> {
        self.accounts.get(account)
    }

    pub fn container(&self, account: &str, container: &str) -> Option<&ContainerRow> {
        self.accounts.get(account)?.container(container)
    }

    pub fn object(&self, account: &str, container: &str, name: &str) -> Option<&ObjectRecord> {
        self.container(account, container)?.objects.get(name)
    }

    /// Every blob a live object refers to (what the blob store must keep).
    pub fn blobs(&self) -> BTreeSet<String> {
        self.accounts
            .values()
            .flat_map(|a| a.containers.values())
            .flat_map(|c| c.objects.values())
            .filter(|o| !o.blob.is_empty())
            .map(|o| o.blob.clone())
            .collect()
    }

    fn container_mut(&mut self, account: &str, container: &str) -> &mut ContainerRow {
        self.accounts
            .entry(account.to_string())
            .or_default()
            .containers
            .entry(container.to_string())
            .or_default()
    }

    fn unindex_expiry(
        &mut self,
        account: &str,
        container: &str,
        name: &str,
        old: Option<&ObjectRecord>,
    ) {
        if let Some(at) = old.and_then(ObjectRecord::delete_at) {
            self.expiring
                .remove(&(at, account.into(), container.into(), name.into()));
        }
    }

    fn handle_object(
        &mut self,
        (account, container, name): (&str, &str, &str),
        ev: &E,
        position: u64,
    ) {
        let row = self.container_mut(account, container);
        let old = row.objects.remove(name);
        let mut state = StoredObject {
            account: account.into(),
            container: container.into(),
            name: name.into(),
            current: old.clone(),
        };
        state = state.apply(ev);
        row.last_position = position;
        if let Some(o) = &old {
            row.bytes_used = row.bytes_used.saturating_sub(o.size);
        }
        let new = state.current;
        if let Some(o) = &new {
            row.bytes_used += o.size;
            row.objects.insert(name.to_string(), o.clone());
        }
        let leftover = !row.state.exists && row.objects.is_empty();
        self.unindex_expiry(account, container, name, old.as_ref());
        if let Some(at) = new.as_ref().and_then(ObjectRecord::delete_at) {
            self.expiring
                .insert((at, account.into(), container.into(), name.into()));
        }
        if leftover {
            self.drop_container(account, container);
        }
    }

    fn drop_container(&mut self, account: &str, container: &str) {
        if let Some(a) = self.accounts.get_mut(account) {
            a.containers.remove(container);
        }
    }
}

impl Projection for ObjectView {
    const NAME: &'static str = "object";
    const VERSION: u32 = 1;

    fn handle(&mut self, event: &RecordedEvent) {
        let Some(ev) =
            crate::runner::decode_service_event::<E>(event, "object", &mut self.undecodable)
        else {
            return;
        };
        match &ev {
            E::ObjectStored(e) => {
                self.handle_object((&e.account, &e.container, &e.name), &ev, event.position)
            }
            E::ObjectHeadersReplaced(e) => {
                self.handle_object((&e.account, &e.container, &e.name), &ev, event.position)
            }
            E::ObjectDeleted(e) => {
                self.handle_object((&e.account, &e.container, &e.name), &ev, event.position)
            }
            E::ContainerCreated(e) => {
                self.handle_container(&e.account, &e.name, &ev, event.position)
            }
            E::ContainerHeadersChanged(e) => {
                self.handle_container(&e.account, &e.name, &ev, event.position)
            }
            E::ContainerDeleted(e) => {
                self.handle_container(&e.account, &e.name, &ev, event.position)
            }
            E::AccountHeadersChanged(e) => {
                let row = self.accounts.entry(e.account.clone()).or_default();
                row.state = std::mem::take(&mut row.state).apply(&ev);
            }
        }
    }
}

impl ObjectView {
    fn handle_container(&mut self, account: &str, container: &str, ev: &E, position: u64) {
        let row = self.container_mut(account, container);
        row.state = std::mem::take(&mut row.state).apply(ev);
        row.last_position = position;
        if !row.state.exists && row.objects.is_empty() {
            self.drop_container(account, container);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use strata_actors::object::{ContainerCommand, ObjectCommand};
    use strata_proto::codec::DomainEvent;

    struct Log {
        view: ObjectView,
        position: u64,
    }

    impl Log {
        fn record(&mut self, stream: &str, events: Vec<E>) {
            for e in events {
                self.position += 1;
                let recorded = RecordedEvent {
                    id: Default::default(),
                    stream_id: stream.into(),
                    stream_version: 0,
                    position: self.position,
                    recorded_at: chrono::Utc::now(),
                    event_type: e.event_type().to_string(),
                    payload: e.encode(),
                    correlation_id: String::new(),
                    causation_id: String::new(),
                    principal: Default::default(),
                    prev_hash: [0; 32],
                    hash: [0; 32],
                };
                self.view.handle(&recorded);
            }
        }

        fn put_container(&mut self, name: &str) {
            let ev = Container::default()
                .decide(&ContainerCommand::Put {
                    account: "p".into(),
                    name: name.into(),
                    set: BTreeMap::new(),
                    removed: vec![],
                    storage_policy: String::new(),
                    timestamp: "1.00000".into(),
                })
                .unwrap();
            self.record(&format!("swift-container-p.{name}"), ev);
        }

        fn put_object(&mut self, container: &str, name: &str, size: u64, delete_at: Option<u64>) {
            let mut headers = BTreeMap::new();
            if let Some(at) = delete_at {
                headers.insert("x-delete-at".to_string(), at.to_string());
            }
            let ev = StoredObject::default()
                .decide(&ObjectCommand::Store {
                    account: "p".into(),
                    container: container.into(),
                    name: name.into(),
                    record: ObjectRecord {
                        size,
                        blob: format!("blob-{name}-{size}"),
                        headers,
                        ..Default::default()
                    },
                    if_none_match: false,
                })
                .unwrap();
            self.record(&format!("swift-object-p.{container}.{name}"), ev);
        }
    }

    #[test]
    fn counts_bytes_listing_and_expiry_follow_the_objects() {
        let mut log = Log {
            view: ObjectView::default(),
            position: 0,
        };
        log.put_container("c");
        log.put_object("c", "a/1", 10, None);
        log.put_object("c", "a/2", 5, Some(2_000_000_000));
        log.put_object("c", "a/1", 7, None);
        let c = log.view.container("p", "c").unwrap();
        assert_eq!((c.object_count(), c.bytes_used), (2, 12));
        assert_eq!(log.view.account("p").unwrap().totals(), (1, 2, 12));
        assert_eq!(log.view.expiring.len(), 1);
        assert_eq!(log.view.blobs().len(), 2);

        let del = StoredObject {
            account: "p".into(),
            container: "c".into(),
            name: "a/2".into(),
            current: Some(ObjectRecord::default()),
        }
        .decide(&ObjectCommand::Delete {
            timestamp: "2.00000".into(),
            reason: "delete".into(),
            expect_blob: None,
        })
        .unwrap();
        log.record("swift-object-p.c.a/2", del);
        let c = log.view.container("p", "c").unwrap();
        assert_eq!((c.object_count(), c.bytes_used), (1, 7));
        assert!(log.view.expiring.is_empty());
    }

    #[test]
    fn a_deleted_container_goes_unless_objects_remain() {
        let mut log = Log {
            view: ObjectView::default(),
            position: 0,
        };
        log.put_container("gone");
        let del = |name: &str| {
            vec![E::ContainerDeleted(
                strata_proto::object::ContainerDeleted {
                    timestamp: "2.00000".into(),
                    account: "p".into(),
                    name: name.into(),
                },
            )]
        };
        log.record("swift-container-p.gone", del("gone"));
        assert!(log.view.account("p").unwrap().containers.is_empty());

        log.put_container("raced");
        log.put_object("raced", "x", 1, None);
        log.record("swift-container-p.raced", del("raced"));
        assert!(log.view.container("p", "raced").is_none());
        assert_eq!(log.view.account("p").unwrap().totals(), (0, 0, 0));
        assert_eq!(
            log.view.blobs().len(),
            1,
            "the leftover's blob is still referenced"
        );
    }
}
