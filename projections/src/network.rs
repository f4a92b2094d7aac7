//! `NetworkView`: every Neutron network (with its subnets and address allocations), port, and the
//! networking quotas and usage, as the API reads them. Rows keep the aggregates' own state, folded with their
//! own `apply`; stream prefixes are matched most specific first (`network-usage-`, `network-quota-` before
//! `network-`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_actors::network::{
    FloatingIp, Network, NetworkQuota, NetworkUsage, Port, Router, SecurityGroup, Subnet,
};
use strata_actors::Aggregate;
use strata_events::RecordedEvent;
use strata_proto::NetworkEvent as E;

use crate::persistent::OrdMap;
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

/// A security group with its rules (the rules' own creation times beside them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupRow {
    pub id: String,
    pub state: SecurityGroup,
    pub created_at: String,
    pub updated_at: String,
    /// Rule id -> when it was added.
    pub rule_created_at: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouterRow {
    pub id: String,
    pub state: Router,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FloatingIpRow {
    pub id: String,
    pub state: FloatingIp,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkView {
    /// Live networks by id (deleted ones are dropped, with their subnets).
    pub networks: OrdMap<String, NetworkRow>,
    /// Live subnets by id.
    pub subnets: OrdMap<String, SubnetRef>,
    /// Live ports by id.
    pub ports: OrdMap<String, PortRow>,
    pub usage: OrdMap<String, NetworkUsage>,
    pub quotas: OrdMap<String, NetworkQuota>,
    /// Live security groups by id (deleted ones are dropped).
    #[serde(default)]
    pub security_groups: OrdMap<String, SecurityGroupRow>,
    /// Rule id -> its security group's id.
    #[serde(default)]
    pub rule_groups: OrdMap<String, String>,
    /// Live routers by id.
    #[serde(default)]
    pub routers: OrdMap<String, RouterRow>,
    /// Live floating IPs by id.
    #[serde(default)]
    pub floating_ips: OrdMap<String, FloatingIpRow>,
    /// The network `strata serve` made at first start (kept after it is deleted, so it is made once).
    #[serde(default)]
    pub bootstrap_network: Option<String>,
    pub undecodable: u64,
}

/// The correlation id of the events that make the external network at first start.
pub const BOOTSTRAP_CORRELATION: &str = "bootstrap-public-network";

fn timestamp(e: &RecordedEvent) -> String {
    e.recorded_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn fold<A: Aggregate<Event = E>>(state: &mut A, ev: &E) {
    *state = std::mem::take(state).apply(ev);
}

impl Projection for NetworkView {
    const NAME: &'static str = "network";
    const VERSION: u32 = 3;

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
            if matches!(ev, E::NetworkCreated(_)) && event.correlation_id == BOOTSTRAP_CORRELATION {
                self.bootstrap_network = Some(id.to_string());
            }
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
        } else if let Some(id) = s.strip_prefix("security-group-") {
            self.handle_security_group(id, &ev, now);
        } else if let Some(id) = s.strip_prefix("router-") {
            let row = self
                .routers
                .entry(id.to_string())
                .or_insert_with(|| RouterRow {
                    id: id.to_string(),
                    created_at: now.clone(),
                    ..Default::default()
                });
            fold(&mut row.state, &ev);
            row.updated_at = now;
            if !row.state.is_live() {
                self.routers.remove(id);
            }
        } else if let Some(id) = s.strip_prefix("floatingip-") {
            let row = self
                .floating_ips
                .entry(id.to_string())
                .or_insert_with(|| FloatingIpRow {
                    id: id.to_string(),
                    created_at: now.clone(),
                    ..Default::default()
                });
            fold(&mut row.state, &ev);
            row.updated_at = now;
            if !row.state.is_live() {
                self.floating_ips.remove(id);
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
    fn handle_security_group(&mut self, id: &str, ev: &E, now: String) {
        let row = self
            .security_groups
            .entry(id.to_string())
            .or_insert_with(|| SecurityGroupRow {
                id: id.to_string(),
                created_at: now.clone(),
                ..Default::default()
            });
        if let E::SecurityGroupCreated(_) = ev {
            // A project's default group may be made again after a delete (its id derives from the project).
            row.created_at = now.clone();
            row.rule_created_at.clear();
        }
        fold(&mut row.state, ev);
        row.updated_at = now.clone();
        match ev {
            E::SecurityGroupCreated(c) => {
                for r in &c.rules {
                    row.rule_created_at.insert(r.rule_id.clone(), now.clone());
                    self.rule_groups.insert(r.rule_id.clone(), id.to_string());
                }
            }
            E::SecurityGroupRuleAdded(a) => {
                if let Some(r) = &a.rule {
                    row.rule_created_at.insert(r.rule_id.clone(), now);
                    self.rule_groups.insert(r.rule_id.clone(), id.to_string());
                }
            }
            E::SecurityGroupRuleRemoved(r) => {
                row.rule_created_at.remove(&r.rule_id);
                self.rule_groups.remove(&r.rule_id);
            }
            _ => {}
        }
        if !row.state.is_live() {
            if let Some(gone) = self.security_groups.remove(id) {
                for rule in gone.rule_created_at.keys() {
                    self.rule_groups.remove(rule);
                }
            }
        }
    }

    pub fn security_group(&self, id: &str) -> Option<&SecurityGroupRow> {
        self.security_groups.get(id)
    }

    /// A rule with its group's row.
    pub fn security_group_rule(
        &self,
        rule_id: &str,
    ) -> Option<(&strata_actors::network::Rule, &SecurityGroupRow)> {
        let group = self.security_groups.get(self.rule_groups.get(rule_id)?)?;
        Some((group.state.rules.get(rule_id)?, group))
    }

    pub fn router(&self, id: &str) -> Option<&RouterRow> {
        self.routers.get(id)
    }

    pub fn floating_ip(&self, id: &str) -> Option<&FloatingIpRow> {
        self.floating_ips.get(id)
    }

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
    use crate::testing::put;
    use strata_events::{EventLog, MemoryLog};

    use strata_proto::network as pb;

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
                subnet_id: "00000000-0000-4000-8000-0000000000b1".into(),
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
                port_id: "00000000-0000-4000-8000-0000000000a1".into(),
                mac_address: "fa:16:3e:00:00:01".into(),
                fixed_ips: vec![pb::FixedIp {
                    subnet_id: "00000000-0000-4000-8000-0000000000b1".into(),
                    ip_address: "10.0.0.2".into(),
                }],
                device_owner: String::new(),
            }),
        )
        .await;
        put(
            &log,
            "port-00000000-0000-4000-8000-0000000000a1",
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
                holder: "port:00000000-0000-4000-8000-0000000000a1".into(),
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
        let (subnet, net, _) = view.subnet("00000000-0000-4000-8000-0000000000b1").unwrap();
        assert_eq!(net.id, "n1");
        assert_eq!(subnet.allocations.len(), 1);
        assert_eq!(
            view.port("00000000-0000-4000-8000-0000000000a1")
                .unwrap()
                .state
                .network_id,
            "n1"
        );
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
                port_id: "00000000-0000-4000-8000-0000000000a1".into(),
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

    #[tokio::test]
    async fn security_groups_routers_and_floating_ips_have_their_rows() {
        let log = MemoryLog::new();
        let rule = |id: &str| pb::SecurityGroupRule {
            rule_id: id.into(),
            direction: "egress".into(),
            ethertype: "IPv4".into(),
            ..Default::default()
        };
        put(
            &log,
            "security-group-g1",
            E::SecurityGroupCreated(pb::SecurityGroupCreated {
                project_id: "p".into(),
                name: "web".into(),
                rules: vec![rule("r1")],
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "security-group-g1",
            E::SecurityGroupRuleAdded(pb::SecurityGroupRuleAdded {
                rule: Some(rule("r2")),
            }),
        )
        .await;
        put(
            &log,
            "security-group-g1",
            E::SecurityGroupRuleRemoved(pb::SecurityGroupRuleRemoved {
                rule_id: "r1".into(),
            }),
        )
        .await;
        put(
            &log,
            "router-x",
            E::RouterCreated(pb::RouterCreated {
                project_id: "p".into(),
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "floatingip-f",
            E::FloatingIpCreated(pb::FloatingIpCreated {
                project_id: "p".into(),
                floating_ip_address: "172.24.4.9".into(),
                ..Default::default()
            }),
        )
        .await;
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(log);
        let (view, _) = crate::runner::catch_up::<NetworkView>(&log).await.unwrap();
        let g = view.security_group("g1").unwrap();
        assert_eq!(g.state.revision, 3);
        assert_eq!(g.rule_created_at.keys().collect::<Vec<_>>(), ["r2"]);
        assert_eq!(view.security_group_rule("r2").unwrap().1.id, "g1");
        assert!(view.security_group_rule("r1").is_none());
        assert!(view.router("x").is_some());
        assert_eq!(view.floating_ip("f").unwrap().state.status, "DOWN");
        let rebuilt: NetworkView = crate::runner::rebuild(&log, 5).await.unwrap();
        assert_eq!(rebuilt.digest().unwrap(), view.digest().unwrap());

        put(
            &*log,
            "security-group-g1",
            E::SecurityGroupDeleted(pb::SecurityGroupDeleted {}),
        )
        .await;
        put(&*log, "router-x", E::RouterDeleted(pb::RouterDeleted {})).await;
        put(
            &*log,
            "floatingip-f",
            E::FloatingIpDeleted(pb::FloatingIpDeleted {}),
        )
        .await;
        let (view, _) = crate::runner::catch_up::<NetworkView>(&log).await.unwrap();
        assert!(view.security_groups.is_empty() && view.rule_groups.is_empty());
        assert!(view.routers.is_empty() && view.floating_ips.is_empty());
    }
}
