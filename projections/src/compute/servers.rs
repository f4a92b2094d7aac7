//! The server side of [`ComputeView`]: servers (their state folded by the aggregate's own `apply`), their
//! instance actions with events, and migrations; compute hosts, quotas, usage, server groups and host
//! aggregates.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use strata_actors::compute::quota::{ComputeQuota, ComputeUsage};
use strata_actors::compute::server::vm;
use strata_actors::compute::{ComputeHost, HostAggregate, Server, ServerGroup};
use strata_actors::Aggregate;
use strata_events::RecordedEvent;
use strata_proto::ComputeEvent as E;

use super::{timestamp, ComputeView};

/// One step of an instance action, as `os-instance-actions/{request_id}` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionEventRow {
    pub event: String,
    pub start_time: String,
    pub finish_time: String,
    /// Success | Error
    pub result: String,
    pub host: String,
    pub traceback: String,
}

/// One instance action (create, stop, resize ...) with the request that started it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionRow {
    pub action: String,
    pub request_id: String,
    pub user_id: String,
    pub project_id: String,
    pub start_time: String,
    pub updated_at: String,
    /// "" = none; "Error" when a step failed.
    pub message: String,
    pub events: Vec<ActionEventRow>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerRow {
    pub id: String,
    pub state: Server,
    pub created_at: String,
    pub updated_at: String,
    /// "" until the server first ran.
    pub launched_at: String,
    /// "" until deleted.
    pub terminated_at: String,
    pub created: DateTime<Utc>,
    pub terminated: Option<DateTime<Utc>>,
    /// When the current fault was recorded.
    pub fault_at: String,
    pub actions: Vec<ActionRow>,
    /// Index into `ComputeView::migrations` of the migration in progress.
    pub migration: Option<usize>,
}

impl ServerRow {
    pub fn is_deleted(&self) -> bool {
        self.state.vm_state == vm::DELETED
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationRow {
    /// Nova's integer id: the migration's place in the log (1, 2, ...).
    pub id: u64,
    pub uuid: String,
    pub server_id: String,
    pub project_id: String,
    pub user_id: String,
    /// resize | migration | live-migration | evacuation
    pub kind: String,
    pub source_host: String,
    pub dest_host: String,
    pub old_flavor_id: String,
    pub new_flavor_id: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostRow {
    pub name: String,
    pub state: ComputeHost,
    pub created_at: String,
    /// The last heartbeat (or registration).
    pub updated_at: String,
    pub last_seen: Option<DateTime<Utc>>,
    pub cache_hits: u64,
    pub cache_fills: u64,
    pub cache_evictions: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupRow {
    pub id: String,
    pub state: ServerGroup,
    pub created_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AggregateRow {
    pub id: i64,
    pub state: HostAggregate,
    pub created_at: String,
    pub updated_at: String,
    /// Images requested into the cache of this aggregate's hosts.
    pub cache_requests: Vec<String>,
}

/// The Nova event name of a step, by the event that records its end.
fn step_name(ev: &E, action: &str) -> Option<&'static str> {
    Some(match ev {
        E::ServerScheduled(_) => "conductor_schedule_and_build_instances",
        E::ServerSpawned(_) => "compute__do_build_and_run_instance",
        E::ServerMigrationScheduled(_) => match action {
            "live-migration" => "conductor_live_migrate_instance",
            "evacuate" => "conductor_rebuild_server",
            _ => "conductor_migrate_server",
        },
        E::ServerMigrationFinished(_) => match action {
            "live-migration" => "compute_live_migration",
            "evacuate" => "compute_rebuild_instance",
            _ => "compute_finish_resize",
        },
        E::ServerMigrationFailed(_) => "conductor_migrate_server",
        E::ServerResizeConfirmed(_) => "compute_confirm_resize",
        E::ServerResizeReverted(_) => "compute_finish_revert_resize",
        E::ServerRebuilt(_) => "compute_rebuild_instance",
        E::ServerShelved(_) => "compute_shelve_offload_instance",
        E::ServerDeleted(_) => "compute_terminate_instance",
        E::ServerTaskFinished(_) | E::ServerTaskFailed(_) | E::ServerFaulted(_) => match action {
            "stop" => "compute_stop_instance",
            "start" => "compute_start_instance",
            "reboot" => "compute_reboot_instance",
            "pause" => "compute_pause_instance",
            "unpause" => "compute_unpause_instance",
            "suspend" => "compute_suspend_instance",
            "resume" => "compute_resume_instance",
            "createImage" => "compute_snapshot_instance",
            "shelve" => "compute_shelve_instance",
            "unshelve" => "compute_unshelve_instance",
            "revertResize" => "compute_revert_resize",
            "create" => "compute__do_build_and_run_instance",
            "delete" => "compute_terminate_instance",
            "rebuild" => "compute_rebuild_instance",
            _ => "compute_task",
        },
        _ => return None,
    })
}

impl ComputeView {
    pub(super) fn handle_server(&mut self, id: &str, ev: &E, event: &RecordedEvent) {
        let now = timestamp(event);
        if let E::ServerCreated(_) = ev {
            self.servers.insert(
                id.to_string(),
                std::sync::Arc::new(ServerRow {
                    id: id.to_string(),
                    created_at: now.clone(),
                    created: event.recorded_at,
                    ..Default::default()
                }),
            );
        }
        // Rows are shared with published snapshots: the first change after a publish copies this one row.
        let Some(row) = self.servers.get_mut(id).map(std::sync::Arc::make_mut) else {
            return;
        };
        let before_host = row.state.host.clone();
        row.state = std::mem::take(&mut row.state).apply(ev);
        row.updated_at = now.clone();
        let state = &row.state;

        // Instance actions: an event that starts an action opens one; the steps after it are its events.
        let started = match ev {
            E::ServerCreated(c) => Some(("create".to_string(), c.request_id.clone())),
            E::ServerTaskStarted(t) => Some((t.action.clone(), t.request_id.clone())),
            E::ServerMigrationStarted(m) => Some((m.action.clone(), m.request_id.clone())),
            E::ServerLocked(l) => Some(("lock".to_string(), l.request_id.clone())),
            E::ServerUnlocked(u) => Some(("unlock".to_string(), u.request_id.clone())),
            E::ServerResizeConfirmed(c) => {
                Some(("confirmResize".to_string(), c.request_id.clone()))
            }
            _ => None,
        };
        if let Some((action, request_id)) = started {
            row.actions.push(ActionRow {
                action,
                request_id,
                user_id: event.principal.user_id.clone(),
                project_id: if event.principal.project_id.is_empty() {
                    state.project_id.clone()
                } else {
                    event.principal.project_id.clone()
                },
                start_time: now.clone(),
                updated_at: now.clone(),
                message: String::new(),
                events: Vec::new(),
            });
        }
        if let Some(action) = row.actions.last_mut() {
            if let Some(name) = step_name(ev, &action.action) {
                let failed = matches!(
                    ev,
                    E::ServerTaskFailed(_) | E::ServerFaulted(_) | E::ServerMigrationFailed(_)
                );
                let start = action
                    .events
                    .last()
                    .map(|e| e.finish_time.clone())
                    .unwrap_or_else(|| action.start_time.clone());
                let traceback = match ev {
                    E::ServerTaskFailed(f) => f.message.clone(),
                    E::ServerFaulted(f) => f.details.clone(),
                    E::ServerMigrationFailed(f) => f.message.clone(),
                    _ => String::new(),
                };
                let host = if state.host.is_empty() {
                    before_host.clone()
                } else {
                    state.host.clone()
                };
                action.events.push(ActionEventRow {
                    event: name.into(),
                    start_time: start,
                    finish_time: now.clone(),
                    result: if failed { "Error" } else { "Success" }.into(),
                    host,
                    traceback,
                });
                if failed {
                    action.message = "Error".into();
                }
                action.updated_at = now.clone();
            }
        }

        match ev {
            E::ServerSpawned(_) if row.launched_at.is_empty() => row.launched_at = now.clone(),
            E::ServerFaulted(_) => row.fault_at = now.clone(),
            E::ServerDeleted(_) => {
                row.terminated_at = now.clone();
                row.terminated = Some(event.recorded_at);
            }
            _ => {}
        }

        // Migrations.
        let migration_status = match ev {
            E::ServerMigrationStarted(m) => {
                let mig = MigrationRow {
                    id: self.migrations.len() as u64 + 1,
                    uuid: m.migration_id.clone(),
                    server_id: id.to_string(),
                    project_id: state.project_id.clone(),
                    user_id: event.principal.user_id.clone(),
                    kind: m.migration_type.clone(),
                    source_host: m.source_host.clone(),
                    dest_host: m.dest_host.clone(),
                    old_flavor_id: state
                        .migration
                        .as_ref()
                        .map(|x| x.old_flavor.id.clone())
                        .unwrap_or_default(),
                    new_flavor_id: state
                        .migration
                        .as_ref()
                        .map(|x| x.new_flavor.id.clone())
                        .unwrap_or_default(),
                    status: match m.migration_type.as_str() {
                        "resize" | "migration" => "pre-migrating",
                        _ => "accepted",
                    }
                    .into(),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                };
                row.migration = Some(self.migrations.len());
                self.migrations.push_back(mig);
                None
            }
            E::ServerMigrationScheduled(s) => {
                if let Some(m) = row.migration.and_then(|i| self.migrations.get_mut(i)) {
                    m.dest_host = s.dest_host.clone();
                }
                Some(match state.migration.as_ref().map(|m| m.kind.as_str()) {
                    Some("live-migration") => "running",
                    Some("evacuation") => "pre-migrating",
                    _ => "migrating",
                })
            }
            E::ServerMigrationFinished(f) => Some(if f.needs_confirm {
                "finished"
            } else if row
                .migration
                .and_then(|i| self.migrations.get(i))
                .is_some_and(|m| m.kind == "evacuation")
            {
                "done"
            } else {
                "completed"
            }),
            E::ServerResizeConfirmed(_) => Some("confirmed"),
            E::ServerResizeReverted(_) => Some("reverted"),
            E::ServerMigrationFailed(_) => Some("error"),
            E::ServerFaulted(_) if row.migration.is_some() => Some("error"),
            _ => None,
        };
        if let Some(status) = migration_status {
            if let Some(m) = row.migration.and_then(|i| self.migrations.get_mut(i)) {
                m.status = status.into();
                m.updated_at = now;
            }
            if matches!(
                status,
                "completed" | "done" | "confirmed" | "reverted" | "error"
            ) {
                row.migration = None;
            }
        }
    }

    pub(super) fn handle_host(&mut self, name: &str, ev: &E, event: &RecordedEvent) {
        let now = timestamp(event);
        let row = self
            .hosts
            .entry(name.to_string())
            .or_insert_with(|| HostRow {
                name: name.to_string(),
                created_at: now.clone(),
                ..Default::default()
            });
        row.state = std::mem::take(&mut row.state).apply(ev);
        match ev {
            E::HostRegistered(_) | E::HostHeartbeat(_) => {
                row.updated_at = now;
                row.last_seen = Some(event.recorded_at);
            }
            E::HostImageCacheHit(_) => row.cache_hits += 1,
            E::HostImageCached(_) => row.cache_fills += 1,
            E::HostImageEvicted(_) => row.cache_evictions += 1,
            E::HostServiceDisabled(_) | E::HostServiceEnabled(_) | E::HostForcedDownChanged(_) => {
                row.updated_at = now
            }
            _ => {}
        }
    }

    pub(super) fn handle_usage(&mut self, project: &str, ev: &E) {
        let u = self.usage.entry(project.to_string()).or_default();
        *u = std::mem::take(u).apply(ev);
    }

    pub(super) fn handle_quota(&mut self, project: &str, ev: &E) {
        let q = self.quotas.entry(project.to_string()).or_default();
        *q = std::mem::take(q).apply(ev);
    }

    pub(super) fn handle_group(&mut self, id: &str, ev: &E, event: &RecordedEvent) {
        let row = self
            .groups
            .entry(id.to_string())
            .or_insert_with(|| GroupRow {
                id: id.to_string(),
                created_at: timestamp(event),
                ..Default::default()
            });
        row.state = std::mem::take(&mut row.state).apply(ev);
        if row.state.deleted {
            self.groups.remove(id);
        }
    }

    pub(super) fn handle_aggregate(&mut self, id: &str, ev: &E, event: &RecordedEvent) {
        let Ok(num) = id.parse::<i64>() else {
            return;
        };
        let now = timestamp(event);
        let row = self.aggregates.entry(num).or_insert_with(|| AggregateRow {
            id: num,
            created_at: now.clone(),
            ..Default::default()
        });
        row.state = std::mem::take(&mut row.state).apply(ev);
        row.updated_at = now;
        if let E::AggregateImagesCacheRequested(r) = ev {
            row.cache_requests.extend(r.image_ids.iter().cloned());
        }
        if row.state.deleted {
            self.aggregates.remove(&num);
        }
    }

    // ---- reads ----

    pub fn server(&self, id: &str) -> Option<&ServerRow> {
        self.servers
            .get(id)
            .map(|s| &**s)
            .filter(|s| !s.is_deleted())
    }

    /// The project's limits: the defaults overlaid with what was set for it.
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

    pub fn usage_of(&self, project_id: &str) -> strata_actors::compute::quota::Amounts {
        self.usage
            .get(project_id)
            .map(ComputeUsage::total)
            .unwrap_or_default()
    }

    /// The availability zone of a host: the zone of an aggregate it is in, else `default_az`.
    pub fn host_az(&self, host: &str, default_az: &str) -> String {
        self.aggregates
            .values()
            .find(|a| a.state.hosts.contains(host) && !a.state.availability_zone.is_empty())
            .map(|a| a.state.availability_zone.clone())
            .unwrap_or_else(|| default_az.to_string())
    }

    /// The metadata of every aggregate a host is in, merged (a key in several aggregates keeps every value).
    pub fn host_aggregate_metadata(&self, host: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for a in self.aggregates.values() {
            if a.state.hosts.contains(host) {
                for (k, v) in &a.state.metadata {
                    out.entry(k.clone()).or_default().insert(v.clone());
                }
            }
        }
        out
    }

    /// Live servers on a host (also those being moved away from or to it).
    pub fn servers_on<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a ServerRow> + 'a {
        self.servers
            .values()
            .map(|s| &**s)
            .filter(move |s| !s.is_deleted() && s.state.host == host)
    }

    pub fn group(&self, id: &str) -> Option<&GroupRow> {
        self.groups.get(id)
    }
}

/// Quota usage by project.
pub type ProjectUsage = imbl::OrdMap<String, ComputeUsage>;
/// Per-project limits.
pub type ProjectQuotas = imbl::OrdMap<String, ComputeQuota>;
