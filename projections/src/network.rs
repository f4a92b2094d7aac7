//! `NetworkView`: every Neutron network (with its subnets and address allocations), port, and the
//! networking quotas and usage, as the API reads them. Rows keep the aggregates' own state, folded with their
//! own `apply`; stream prefixes are matched most specific first (`network-usage-`, `network-quota-` before
//! `network-`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_actors::network::{Network, NetworkQuota, NetworkUsage, Port, Subnet};
use strata_actors::Aggregate;
use strata_events::RecordedEvent;
use strata_proto::NetworkEvent as E;

use crate::Projection;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkRow {
    pub id: String,
    pub state: Network,
    pub created_at: String,
    pub updated_at: String,
}

/// Where a subnet lives, and its own timestamps (its state is inside its network's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubnetRef {
    pub network_id: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortRow {
    pub id: String,
    pub state: Port,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct NetworkView {
    /// Live networks by id (deleted ones are dropped, with their subnets).
    pub networks: BTreeMap<String, NetworkRow>,
    /// Live subnets by id.
    pub subnets: BTreeMap<String, SubnetRef>,
    /// Live ports by id.
    pub ports: BTreeMap<String, PortRow>,
    pub usage: BTreeMap<String, NetworkUsage>,
    pub quotas: BTreeMap<String, NetworkQuota>,
    pub undecodable: u64,
}

fn timestamp(e: &RecordedEvent) -> String {
    e.recorded_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn fold<A: Aggregate<Event = E>>(state: &mut A, ev: &E) {
    *state = std::mem::take(state).apply(ev);
}

impl Projection for NetworkView {
    const NAME: &'static str = "network";
    const VERSION: u32 = 1;

    fn handle(&mut self, event: &RecordedEvent) {
        let Some(ev) =
            crate::runner::decode_service_event::<E>(event, "network", &mut self.undecodable)
        else {
            return;
        };
        let now = timestamp(event);
        let s = event.stream_id.as_str();
        if let Some(p) = s.strip_prefix("network-usage-") {
            fold(self.usage.entry(p.to_string()).or_default(), &ev);
        } else if let Some(p) = s.strip_prefix("network-quota-") {
            fold(self.quotas.entry(p.to_string()).or_default(), &ev);
        } else if let Some(id) = s.strip_prefix("network-") {
            let row = self
                .networks
                .entry(id.to_string())
                .or_insert_with(|| NetworkRow {
                    id: id.to_string(),
                    created_at: now.clone(),
                    ..Default::default()
                });
            fold(&mut row.state, &ev);
            match &ev {
                E::NetworkCreated(_)
                | E::NetworkUpdated(_)
                | E::TagsSet(_)
                | E::SubnetAdded(_)
                | E::SubnetRemoved(_) => row.updated_at = now.clone(),
                _ => {}
            }
            match &ev {
                E::SubnetAdded(a) => {
                    self.subnets.insert(
                        a.subnet_id.clone(),
                        SubnetRef {
                            network_id: id.to_string(),
                            created_at: now.clone(),
                            updated_at: now,
                        },
                    );
                }
                E::SubnetUpdated(u) => {
                    if let Some(r) = self.subnets.get_mut(&u.subnet_id) {
                        r.updated_at = now;
                    }
                }
                E::SubnetTagsSet(t) => {
                    if let Some(r) = self.subnets.get_mut(&t.subnet_id) {
                        r.updated_at = now;
                    }
                }
                E::SubnetRemoved(r) => {
                    self.subnets.remove(&r.subnet_id);
                }
                _ => {}
            }
            if row.state.deleted {
                let gone = self.networks.remove(id);
                for sid in gone.iter().flat_map(|r| r.state.subnets.keys()) {
                    self.subnets.remove(sid);
                }
            }
        } else if let Some(id) = s.strip_prefix("port-") {
            let row = self.ports.entry(id.to_string()).or_insert_with(|| PortRow {
                id: id.to_string(),
                created_at: now.clone(),
                ..Default::default()
            });
            fold(&mut row.state, &ev);
            row.updated_at = now;
            if row.state.deleted {
                self.ports.remove(id);
            }
        }
    }
}

impl NetworkView {
    pub fn network(&self, id: &str) -> Option<&NetworkRow> {
        self.networks.get(id)
    }

    /// Subnet `id` with its network's row.
    pub fn subnet(&self, id: &str) -> Option<(&Subnet, &NetworkRow, &SubnetRef)> {
        let r = self.subnets.get(id)?;
        let net = self.networks.get(&r.network_id)?;
        Some((net.state.subnets.get(id)?, net, r))
    }

    pub fn port(&self, id: &str) -> Option<&PortRow> {
        self.ports.get(id)
    }

    /// A project's limits: the defaults overlaid with what was set for it.
    pub fn limits_of(
        &self,
        project_id: &str,
        defaults: &BTreeMap<String, i64>,
    ) -> BTreeMap<String, i64> {
        let mut limits = defaults.clone();
        if let Some(q) = self.quotas.get(project_id) {
            limits.extend(q.limits.iter().map(|(k, v)| (k.clone(), *v)));
        }
        limits
    }

    /// What a project uses of `resource`.
    pub fn used(&self, project_id: &str, resource: &str) -> i64 {
        self.usage
            .get(project_id)
            .map(|u| u.used(resource))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_events::{EventLog, ExpectedVersion, MemoryLog, Metadata, NewEvent};
    use strata_proto::codec::DomainEvent;
    use strata_proto::network as pb;

    async fn put(log: &dyn EventLog, stream: &str, e: E) {
        log.append(
            stream,
            ExpectedVersion::Any,
            vec![NewEvent::new(e.event_type(), e.encode())],
            Metadata::system("t"),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn networks_subnets_ports_and_usage_are_told_apart_by_stream() {
        let log = MemoryLog::new();
        put(
            &log,
            "network-n1",
            E::NetworkCreated(pb::NetworkCreated {
                project_id: "p".into(),
                name: "net".into(),
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "network-n1",
            E::SubnetAdded(pb::SubnetAdded {
                subnet_id: "s1".into(),
                ip_version: 4,
                cidr: "10.0.0.0/24".into(),
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "network-n1",
            E::NetworkPortAllocated(pb::NetworkPortAllocated {
                port_id: "p1".into(),
                mac_address: "fa:16:3e:00:00:01".into(),
                fixed_ips: vec![pb::FixedIp {
                    subnet_id: "s1".into(),
                    ip_address: "10.0.0.2".into(),
                }],
                device_owner: String::new(),
            }),
        )
        .await;
        put(
            &log,
            "port-p1",
            E::PortCreated(pb::PortCreated {
                project_id: "p".into(),
                network_id: "n1".into(),
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "network-usage-p",
            E::NetworkUsageReserved(pb::NetworkUsageReserved {
                holder: "port:p1".into(),
                resource: "port".into(),
            }),
        )
        .await;
        put(
            &log,
            "network-quota-p",
            E::NetworkQuotaLimitsSet(pb::NetworkQuotaLimitsSet {
                limits: [("port".to_string(), 7)].into_iter().collect(),
            }),
        )
        .await;
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(log);
        let (view, _) = crate::runner::catch_up::<NetworkView>(&log).await.unwrap();
        assert_eq!(view.networks.len(), 1);
        let (subnet, net, _) = view.subnet("s1").unwrap();
        assert_eq!(net.id, "n1");
        assert_eq!(subnet.allocations.len(), 1);
        assert_eq!(view.port("p1").unwrap().state.network_id, "n1");
        assert_eq!(view.used("p", "port"), 1);
        let limits = view.limits_of("p", &strata_actors::network::default_network_limits());
        assert_eq!((limits["port"], limits["network"]), (7, 100));
        // The view is a pure fold: a rebuild gives the same digest.
        let rebuilt: NetworkView = crate::runner::rebuild(&log, 6).await.unwrap();
        assert_eq!(rebuilt.digest().unwrap(), view.digest().unwrap());

        // Deleting the network drops it and its subnets.
        put(
            &*log,
            "network-n1",
            E::NetworkPortReleased(pb::NetworkPortReleased {
                port_id: "p1".into(),
            }),
        )
        .await;
        put(
            &*log,
            "network-n1",
            E::NetworkDeleted(pb::NetworkDeleted {}),
        )
        .await;
        let (view, _) = crate::runner::catch_up::<NetworkView>(&log).await.unwrap();
        assert!(view.networks.is_empty() && view.subnets.is_empty());
    }
}
