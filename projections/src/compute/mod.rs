//! `ComputeView`: every live Nova flavor (with its extra specs and access list) and keypair, every server
//! (with its instance actions), migration, compute host, quota, server group and host aggregate, as the API,
//! the scheduler and the conductor read them.

mod servers;

pub use servers::{
    ActionEventRow, ActionRow, AggregateRow, GroupRow, HostRow, MigrationRow, ProjectQuotas,
    ProjectUsage, ServerRow,
};

use std::collections::{BTreeMap, BTreeSet};

use imbl::{OrdMap, Vector};

use serde::{Deserialize, Serialize};
use strata_events::RecordedEvent;
use strata_proto::ComputeEvent as E;

use crate::Projection;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlavorRow {
    pub id: String,
    pub name: String,
    pub ram_mb: u64,
    pub vcpus: u32,
    pub disk_gb: u64,
    pub ephemeral_gb: u64,
    pub swap_mb: u64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    /// "" = none (Nova shows null).
    pub description: String,
    pub extra_specs: BTreeMap<String, String>,
    /// Projects given access to a private flavor.
    pub access: BTreeSet<String>,
    /// RFC 3339, UTC, seconds, from the recording time of `FlavorCreated`.
    pub created_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeypairRow {
    pub user_id: String,
    pub name: String,
    /// ssh | x509
    pub key_type: String,
    pub public_key: String,
    pub fingerprint: String,
    /// RFC 3339, UTC, seconds, from the recording time of `KeypairCreated`.
    pub created_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ComputeView {
    /// Live (not deleted) flavors by id.
    pub flavors: OrdMap<String, FlavorRow>,
    /// Live keypairs by [`keypair_key`] (`"<user_id>/<name>"`).
    pub keypairs: OrdMap<String, KeypairRow>,
    /// The [`keypair_key`] of each keypair stream's aggregate id (long names are digests in stream ids).
    #[serde(default)]
    pub keypair_ids: OrdMap<String, String>,
    /// Servers by id, deleted ones included (usage reports and `deleted` listings need them).
    pub servers: OrdMap<String, std::sync::Arc<ServerRow>>,
    /// Every migration, in log order (index + 1 = Nova's migration id).
    pub migrations: Vector<MigrationRow>,
    /// Compute hosts by name.
    pub hosts: OrdMap<String, HostRow>,
    /// Quota usage by project.
    pub usage: ProjectUsage,
    /// Limits set per project (the defaults are configuration).
    pub quotas: ProjectQuotas,
    /// Live server groups by id.
    pub groups: OrdMap<String, GroupRow>,
    /// Live host aggregates by Nova's integer id.
    pub aggregates: OrdMap<i64, AggregateRow>,
    /// Events this projection could not decode (kept so a rebuild shows the same count).
    pub undecodable: u64,
}

/// The key of a keypair in [`ComputeView::keypairs`]: `"<user_id>/<name>"` (names never hold `/`).
pub fn keypair_key(user_id: &str, name: &str) -> String {
    format!("{user_id}/{name}")
}

/// Undo the `%XX` escaping of a keypair aggregate id (`strata_actors::compute::keypair_id`).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The [`keypair_key`] of a keypair stream's aggregate id `<escaped user>.<escaped name>` (the user part never
/// holds an unescaped `.`).
fn keypair_key_of(aggregate_id: &str) -> Option<String> {
    let (user, name) = aggregate_id.split_once('.')?;
    Some(keypair_key(&unescape(user), &unescape(name)))
}

/// The timestamp format shared with the other views: RFC 3339 in UTC with whole seconds.
fn timestamp(e: &RecordedEvent) -> String {
    e.recorded_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

enum Stream {
    Server,
    Host,
    Usage,
    Quota,
    Group,
    Aggregate,
    Other,
}

impl Projection for ComputeView {
    const NAME: &'static str = "compute";
    const VERSION: u32 = 4;

    fn handle(&mut self, event: &RecordedEvent) {
        let Some(ev) =
            crate::runner::decode_service_event::<E>(event, "compute", &mut self.undecodable)
        else {
            return;
        };
        // Stream kinds with a dash ("compute-host", "server-group" ...) are told apart by their prefix.
        for (kind, handler) in [
            ("server-group-", Stream::Group),
            ("server-", Stream::Server),
            ("compute-host-", Stream::Host),
            ("compute-usage-", Stream::Usage),
            ("compute-quota-", Stream::Quota),
            ("host-aggregate-", Stream::Aggregate),
            ("sequence-", Stream::Other),
        ] {
            if let Some(id) = event.stream_id.strip_prefix(kind) {
                match handler {
                    Stream::Server => self.handle_server(id, &ev, event),
                    Stream::Host => self.handle_host(id, &ev, event),
                    Stream::Usage => self.handle_usage(id, &ev),
                    Stream::Quota => self.handle_quota(id, &ev),
                    Stream::Group => self.handle_group(id, &ev, event),
                    Stream::Aggregate => self.handle_aggregate(id, &ev, event),
                    Stream::Other => {}
                }
                return;
            }
        }
        let id = crate::runner::aggregate_id(event);
        match ev {
            E::FlavorCreated(c) => {
                self.flavors.insert(
                    c.flavor_id.clone(),
                    FlavorRow {
                        id: c.flavor_id,
                        name: c.name,
                        ram_mb: c.ram_mb,
                        vcpus: c.vcpus,
                        disk_gb: c.disk_gb,
                        ephemeral_gb: c.ephemeral_gb,
                        swap_mb: c.swap_mb,
                        rxtx_factor: c.rxtx_factor,
                        is_public: c.is_public,
                        description: c.description,
                        extra_specs: BTreeMap::new(),
                        access: BTreeSet::new(),
                        created_at: timestamp(event),
                    },
                );
            }
            E::FlavorDeleted(_) => {
                self.flavors.remove(&id);
            }
            E::FlavorDescriptionChanged(d) => {
                if let Some(row) = self.flavors.get_mut(&id) {
                    row.description = d.description;
                }
            }
            E::FlavorExtraSpecsSet(s) => {
                if let Some(row) = self.flavors.get_mut(&id) {
                    row.extra_specs.extend(s.specs);
                }
            }
            E::FlavorExtraSpecUnset(u) => {
                if let Some(row) = self.flavors.get_mut(&id) {
                    row.extra_specs.remove(&u.key);
                }
            }
            E::FlavorAccessAdded(a) => {
                if let Some(row) = self.flavors.get_mut(&id) {
                    row.access.insert(a.project_id);
                }
            }
            E::FlavorAccessRemoved(r) => {
                if let Some(row) = self.flavors.get_mut(&id) {
                    row.access.remove(&r.project_id);
                }
            }
            E::KeypairCreated(c) => {
                self.keypair_ids
                    .insert(id.clone(), keypair_key(&c.user_id, &c.name));
                self.keypairs.insert(
                    keypair_key(&c.user_id, &c.name),
                    KeypairRow {
                        user_id: c.user_id,
                        name: c.name,
                        key_type: c.r#type,
                        public_key: c.public_key,
                        fingerprint: c.fingerprint,
                        created_at: timestamp(event),
                    },
                );
            }
            E::KeypairDeleted(_) => {
                if let Some(key) = self
                    .keypair_ids
                    .get(&id)
                    .cloned()
                    .or_else(|| keypair_key_of(&id))
                {
                    self.keypairs.remove(&key);
                }
            }
            _ => {}
        }
    }
}

impl ComputeView {
    pub fn flavor(&self, id: &str) -> Option<&FlavorRow> {
        self.flavors.get(id)
    }

    /// Whether `project_id` may see and use flavor `id`: it is public, the caller is an admin, or the
    /// project was given access. `false` for an unknown or deleted flavor.
    pub fn flavor_visible(&self, id: &str, project_id: &str, is_admin: bool) -> bool {
        self.flavors.get(id).is_some_and(|f| {
            f.is_public || is_admin || (!project_id.is_empty() && f.access.contains(project_id))
        })
    }

    pub fn keypair(&self, user_id: &str, name: &str) -> Option<&KeypairRow> {
        self.keypairs.get(&keypair_key(user_id, name))
    }

    /// A user's live keypairs, in name order.
    pub fn keypairs_of<'a>(
        &'a self,
        user_id: &'a str,
    ) -> impl Iterator<Item = &'a KeypairRow> + 'a {
        let prefix = format!("{user_id}/");
        self.keypairs
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(_, r)| r)
            .filter(move |r| r.user_id == user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{put, put_raw};
    use strata_events::{EventLog, MemoryLog};

    use strata_proto::compute as pb;

    fn flavor(id: &str, is_public: bool) -> E {
        E::FlavorCreated(pb::FlavorCreated {
            flavor_id: id.into(),
            name: format!("f-{id}"),
            ram_mb: 512,
            vcpus: 2,
            disk_gb: 10,
            ephemeral_gb: 1,
            swap_mb: 256,
            rxtx_factor: 1.5,
            is_public,
            description: "d".into(),
        })
    }

    fn keypair(user: &str, name: &str) -> E {
        E::KeypairCreated(pb::KeypairCreated {
            user_id: user.into(),
            name: name.into(),
            r#type: "ssh".into(),
            public_key: "ssh-ed25519 AAAA".into(),
            fingerprint: format!("fp-{name}"),
        })
    }

    /// Keypair stream ids as `strata_actors::compute::keypair_id` spells them.
    const KP_U1_MY_KEY: &str = "keypair-u1.my%20key";

    /// Flavors: 1 public with specs; p-2 (a uuid-like id) private with access for p1 and p2 (p2 removed);
    /// 3 deleted. Keypairs: u1 "my key" and "a.b", u2 "k", u1 "gone" deleted; user "u1/x" (odd id) "z".
    async fn fixture() -> MemoryLog {
        let log = MemoryLog::new();
        put(&log, "flavor-1", flavor("1", true)).await;
        put(
            &log,
            "flavor-1",
            E::FlavorExtraSpecsSet(pb::FlavorExtraSpecsSet {
                specs: [
                    ("hw:cpu_policy".to_string(), "dedicated".to_string()),
                    ("a".to_string(), "1".to_string()),
                ]
                .into_iter()
                .collect(),
            }),
        )
        .await;
        put(
            &log,
            "flavor-1",
            E::FlavorExtraSpecUnset(pb::FlavorExtraSpecUnset { key: "a".into() }),
        )
        .await;
        put(
            &log,
            "flavor-1",
            E::FlavorDescriptionChanged(pb::FlavorDescriptionChanged {
                description: "tiny".into(),
            }),
        )
        .await;
        put(&log, "flavor-p-2", flavor("p-2", false)).await;
        for p in ["p1", "p2"] {
            put(
                &log,
                "flavor-p-2",
                E::FlavorAccessAdded(pb::FlavorAccessAdded {
                    project_id: p.into(),
                }),
            )
            .await;
        }
        put(
            &log,
            "flavor-p-2",
            E::FlavorAccessRemoved(pb::FlavorAccessRemoved {
                project_id: "p2".into(),
            }),
        )
        .await;
        put(&log, "flavor-3", flavor("3", true)).await;
        put(&log, "flavor-3", E::FlavorDeleted(pb::FlavorDeleted {})).await;
        put(&log, KP_U1_MY_KEY, keypair("u1", "my key")).await;
        put(&log, "keypair-u1.a.b", keypair("u1", "a.b")).await;
        put(&log, "keypair-u2.k", keypair("u2", "k")).await;
        put(&log, "keypair-u1.gone", keypair("u1", "gone")).await;
        put(
            &log,
            "keypair-u1.gone",
            E::KeypairDeleted(pb::KeypairDeleted {}),
        )
        .await;
        put(&log, "keypair-u1%2Fx.z", keypair("u1/x", "z")).await;
        log
    }

    async fn view_of(log: MemoryLog) -> ComputeView {
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(log);
        crate::rebuild(&log, 1000).await.unwrap()
    }

    fn names<'a>(rows: impl Iterator<Item = &'a KeypairRow>) -> Vec<&'a str> {
        rows.map(|r| r.name.as_str()).collect()
    }

    #[tokio::test]
    async fn folds_flavor_events_into_rows() {
        let view = view_of(fixture().await).await;
        assert_eq!(
            view.flavors.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["1", "p-2"]
        );
        let f1 = view.flavor("1").unwrap();
        assert_eq!(f1.name, "f-1");
        assert_eq!((f1.ram_mb, f1.vcpus, f1.disk_gb), (512, 2, 10));
        assert_eq!((f1.ephemeral_gb, f1.swap_mb, f1.rxtx_factor), (1, 256, 1.5));
        assert_eq!(f1.description, "tiny");
        assert_eq!(
            f1.extra_specs,
            [("hw:cpu_policy".to_string(), "dedicated".to_string())]
                .into_iter()
                .collect()
        );
        assert_eq!(f1.created_at.len(), 20, "{}", f1.created_at);
        let f2 = view.flavor("p-2").unwrap();
        assert!(!f2.is_public);
        assert_eq!(f2.access.iter().collect::<Vec<_>>(), vec!["p1"]);
    }

    #[tokio::test]
    async fn flavor_visibility_public_admin_or_access() {
        let view = view_of(fixture().await).await;
        assert!(view.flavor_visible("1", "px", false));
        assert!(view.flavor_visible("p-2", "p1", false));
        assert!(!view.flavor_visible("p-2", "p2", false));
        assert!(!view.flavor_visible("p-2", "", false));
        assert!(view.flavor_visible("p-2", "px", true));
        // Deleted and unknown flavors are visible to nobody.
        assert!(!view.flavor_visible("3", "px", true));
        assert!(!view.flavor_visible("nope", "px", true));
    }

    #[tokio::test]
    async fn folds_keypairs_and_removes_deleted_ones() {
        let view = view_of(fixture().await).await;
        assert_eq!(names(view.keypairs_of("u1")), vec!["a.b", "my key"]);
        assert_eq!(names(view.keypairs_of("u2")), vec!["k"]);
        assert_eq!(names(view.keypairs_of("u1/x")), vec!["z"]);
        assert_eq!(names(view.keypairs_of("u")), Vec::<&str>::new());
        let k = view.keypair("u1", "my key").unwrap();
        assert_eq!(
            (
                k.key_type.as_str(),
                k.fingerprint.as_str(),
                k.public_key.as_str()
            ),
            ("ssh", "fp-my key", "ssh-ed25519 AAAA")
        );
        assert!(view.keypair("u1", "gone").is_none());
        // Deleting by escaped stream id finds the row; re-creating brings it back.
        let log = fixture().await;
        put(&log, KP_U1_MY_KEY, E::KeypairDeleted(pb::KeypairDeleted {})).await;
        put(
            &log,
            "keypair-u1%2Fx.z",
            E::KeypairDeleted(pb::KeypairDeleted {}),
        )
        .await;
        put(&log, "keypair-u1.gone", keypair("u1", "gone")).await;
        let view = view_of(log).await;
        assert_eq!(names(view.keypairs_of("u1")), vec!["a.b", "gone"]);
        assert!(view.keypairs_of("u1/x").next().is_none());
    }

    #[test]
    fn keypair_stream_ids_unescape() {
        assert_eq!(keypair_key_of("u1.my%20key").as_deref(), Some("u1/my key"));
        assert_eq!(keypair_key_of("a%2Eb.c.d").as_deref(), Some("a.b/c.d"));
        assert_eq!(keypair_key_of("u.%C3%A9").as_deref(), Some("u/é"));
        assert_eq!(keypair_key_of("u.100%").as_deref(), Some("u/100%"));
        assert_eq!(keypair_key_of("nodot"), None);
    }

    #[tokio::test]
    async fn skips_other_services_and_counts_undecodable_events() {
        let log = fixture().await;
        put_raw(
            &log,
            "flavor-9",
            "compute.FlavorCreated.v1",
            vec![0xff, 0xff],
        )
        .await;
        put_raw(&log, "image-i1", "image.ImageDeleted.v1", vec![]).await;
        let view = view_of(log).await;
        assert_eq!(view.undecodable, 1);
        assert_eq!(view.flavors.len(), 2);
    }

    #[tokio::test]
    async fn rebuild_equals_live_and_is_deterministic() {
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(fixture().await);
        let head = 17;
        let live = crate::Live::<ComputeView>::start(log.clone(), Default::default())
            .await
            .unwrap();
        assert_eq!(live.position(), head - 1);
        put(
            log.as_ref(),
            "flavor-p-2",
            E::FlavorAccessAdded(pb::FlavorAccessAdded {
                project_id: "p3".into(),
            }),
        )
        .await;
        assert!(live.wait_for(head, std::time::Duration::from_secs(5)).await);
        assert!(live.snapshot().flavor_visible("p-2", "p3", false));
        let rebuilt: ComputeView = crate::rebuild(&log, head).await.unwrap();
        assert_eq!(live.snapshot().digest().unwrap(), rebuilt.digest().unwrap());
        let again: ComputeView = crate::rebuild(&log, head).await.unwrap();
        assert_eq!(again.digest().unwrap(), rebuilt.digest().unwrap());
        let earlier: ComputeView = crate::rebuild(&log, 5).await.unwrap();
        assert_ne!(earlier.digest().unwrap(), rebuilt.digest().unwrap());
        let decoded = ComputeView::decode_state(&rebuilt.encode_state().unwrap()).unwrap();
        assert_eq!(decoded.digest().unwrap(), rebuilt.digest().unwrap());
    }
}
