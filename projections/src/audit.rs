//! `AuditIndex`: which events belong to which resource, project, user and request, and when each position
//! was recorded — what the audit API and the event streams filter by. It covers every service without
//! knowing any: a resource is a stream (`<kind>-<id>`, kinds from `strata_actors::registry`), its project is
//! read from its first event (the payload's `project_id`/`owner`/`account`/`tenant_id`, else the caller's
//! project), and a resource ends with an event of its own stream whose name ends in `Deleted`.

use serde::{Deserialize, Serialize};
use strata_events::RecordedEvent;

use crate::persistent::{partition_point, OrdMap, Vector};
use crate::Projection;

/// One resource (stream) as the audit API finds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRow {
    pub kind: String,
    /// The project the resource belongs to ("" when none: domains, roles, services ...).
    pub project: String,
    pub first: u64,
    pub last: u64,
    pub events: u64,
    /// The position of each of its events (index = stream version - 1).
    pub positions: Vector<u64>,
    /// Its lives: (position of the first event, position of the deleting event). A stream written again
    /// after a delete starts a new life.
    pub lives: Vec<(u64, Option<u64>)>,
}

impl StreamRow {
    /// The stream's version just after `position` (how many of its events came at or before it).
    pub fn version_at(&self, position: u64) -> u64 {
        partition_point(&self.positions, |p| *p <= position) as u64
    }

    /// Whether the resource existed just after `position`.
    pub fn alive_at(&self, position: u64) -> bool {
        self.lives
            .iter()
            .any(|(from, to)| *from <= position && to.is_none_or(|t| position < t))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditIndex {
    pub streams: OrdMap<String, StreamRow>,
    /// Positions by the project they concern (the resource's project, else the caller's).
    pub by_project: OrdMap<String, Vector<u64>>,
    /// Positions by the user who caused them.
    pub by_user: OrdMap<String, Vector<u64>>,
    /// Positions by request id (the events' correlation id).
    pub by_request: OrdMap<String, Vector<u64>>,
    /// Positions by event type (`compute.ServerCreated.v1`).
    pub by_type: OrdMap<String, Vector<u64>>,
    /// When each position was recorded (µs since the epoch); index = position - 1.
    pub times: Vector<i64>,
    /// The project of each position ("" for none); index = position - 1.
    pub projects: Vector<String>,
}

/// The project named in an event's payload, if any.
fn payload_project(event: &RecordedEvent) -> Option<String> {
    let json = strata_proto::codec::event_json(&event.event_type, &event.payload)?.ok()?;
    ["project_id", "owner", "account", "tenant_id"]
        .iter()
        .find_map(|k| {
            json.get(*k)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        })
        .map(str::to_string)
}

/// The message name of an event type (`compute.ServerDeleted.v1` -> `ServerDeleted`).
pub fn message_name(event_type: &str) -> &str {
    event_type.split('.').nth(1).unwrap_or(event_type)
}

/// The category (proto package) of an event type (`compute.ServerDeleted.v1` -> `compute`).
pub fn category(event_type: &str) -> &str {
    event_type.split('.').next().unwrap_or(event_type)
}

impl AuditIndex {
    /// When `position` was recorded (µs), if the index has it.
    pub fn time_of(&self, position: u64) -> Option<i64> {
        position
            .checked_sub(1)
            .and_then(|i| self.times.get(i as usize))
            .copied()
    }

    /// The last position recorded at or before `micros` (0 when none).
    pub fn position_at(&self, micros: i64) -> u64 {
        partition_point(&self.times, |t| *t <= micros) as u64
    }

    /// The project a position concerns ("" for none).
    pub fn project_of(&self, position: u64) -> &str {
        position
            .checked_sub(1)
            .and_then(|i| self.projects.get(i as usize))
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn head(&self) -> u64 {
        self.times.len() as u64
    }
}

fn push(map: &mut OrdMap<String, Vector<u64>>, key: &str, position: u64) {
    if !key.is_empty() {
        map.entry(key.to_string()).or_default().push_back(position);
    }
}

impl Projection for AuditIndex {
    const NAME: &'static str = "audit";
    const VERSION: u32 = 1;

    fn handle(&mut self, event: &RecordedEvent) {
        let position = event.position;
        // Positions are dense from 1; a gap would be a bug in the log, so keep the vectors aligned anyway.
        while (self.times.len() as u64) + 1 < position {
            self.times
                .push_back(self.times.last().copied().unwrap_or(0));
            self.projects.push_back(String::new());
        }
        let kind = strata_actors::registry::kind_of(&event.stream_id).to_string();
        let row = self
            .streams
            .entry(event.stream_id.clone())
            .or_insert_with(|| StreamRow {
                kind,
                first: position,
                ..Default::default()
            });
        if row.events == 0 {
            row.project =
                payload_project(event).unwrap_or_else(|| event.principal.project_id.clone());
        }
        row.last = position;
        row.events += 1;
        row.positions.push_back(position);
        match row.lives.last_mut() {
            Some((_, None)) => {}
            _ => row.lives.push((position, None)),
        }
        if message_name(&event.event_type).ends_with("Deleted") {
            if let Some((_, end @ None)) = row.lives.last_mut() {
                *end = Some(position);
            }
        }
        let project = if row.project.is_empty() {
            event.principal.project_id.clone()
        } else {
            row.project.clone()
        };
        push(&mut self.by_project, &project, position);
        push(&mut self.by_user, &event.principal.user_id, position);
        push(&mut self.by_request, &event.correlation_id, position);
        push(&mut self.by_type, &event.event_type, position);
        self.times.push_back(event.recorded_at.timestamp_micros());
        self.projects.push_back(project);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_events::Principal;

    fn ev(
        position: u64,
        stream: &str,
        event_type: &str,
        user: &str,
        project: &str,
    ) -> RecordedEvent {
        RecordedEvent {
            id: Default::default(),
            stream_id: stream.into(),
            stream_version: 0,
            position,
            recorded_at: chrono::DateTime::from_timestamp(1_700_000_000 + position as i64, 0)
                .unwrap_or_default(),
            event_type: event_type.into(),
            payload: vec![],
            correlation_id: format!("req-{position}"),
            causation_id: String::new(),
            principal: Principal {
                user_id: user.into(),
                project_id: project.into(),
                ..Default::default()
            },
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    #[test]
    fn resources_projects_lives_and_times_are_indexed() {
        let mut ix = AuditIndex::default();
        ix.handle(&ev(1, "server-a", "compute.ServerCreated.v1", "u1", "p1"));
        ix.handle(&ev(2, "server-a", "compute.ServerSpawned.v1", "system", ""));
        ix.handle(&ev(
            3,
            "flavor-f",
            "compute.FlavorCreated.v1",
            "admin",
            "padmin",
        ));
        ix.handle(&ev(4, "server-a", "compute.ServerDeleted.v1", "u1", "p1"));
        let row = &ix.streams["server-a"];
        assert_eq!(row.kind, "server");
        assert_eq!(row.project, "p1");
        assert_eq!((row.first, row.last, row.events), (1, 4, 3));
        assert!(row.alive_at(2) && !row.alive_at(4));
        assert_eq!(
            (row.version_at(0), row.version_at(3), row.version_at(9)),
            (0, 2, 3)
        );
        assert_eq!(
            ix.by_project["p1"].iter().copied().collect::<Vec<_>>(),
            vec![1, 2, 4],
            "the system's step concerns the server's project"
        );
        assert_eq!(ix.by_user["u1"], Vector::from(vec![1, 4]));
        assert_eq!(ix.by_request["req-3"], Vector::from(vec![3]));
        assert_eq!(
            ix.by_type["compute.ServerDeleted.v1"],
            Vector::from(vec![4])
        );
        assert_eq!(ix.position_at(1_700_000_002 * 1_000_000), 2);
        assert_eq!(ix.position_at(0), 0);
        assert_eq!(ix.time_of(3), Some(1_700_000_003 * 1_000_000));
        assert_eq!(ix.project_of(2), "p1");
        assert_eq!(category("compute.ServerDeleted.v1"), "compute");
    }
}
