//! Events and states as the audit API and the event streams show them: one JSON shape for an event
//! everywhere (position, time, principal, request id, type, category, resource, payload with its schema
//! names), field-level changes between two states, and the time and position parameters.

use serde_json::{json, Value};
use strata_events::RecordedEvent;
use strata_projections::audit::{category, AuditIndex};

use super::AuditError;

/// RFC 3339 with microseconds, UTC.
pub fn time_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// An event's payload rendered with its schema's field names, secrets redacted.
pub fn payload_json(e: &RecordedEvent) -> Value {
    match strata_proto::codec::event_json(&e.event_type, &e.payload) {
        Some(Ok(mut v)) => {
            redact(&mut v);
            v
        }
        Some(Err(err)) => json!({ "undecodable": err.to_string() }),
        None => json!({ "unknown_type": true, "bytes": e.payload.len() }),
    }
}

/// The resource an event belongs to: (kind, id), from its stream id.
pub fn resource_of(e: &RecordedEvent) -> (&str, &str) {
    let kind = strata_actors::registry::kind_of(&e.stream_id);
    let id = e
        .stream_id
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix('-'))
        .unwrap_or(&e.stream_id);
    (kind, id)
}

/// An event as JSON: the protobuf payload rendered with its schema's field names.
pub fn event_json(e: &RecordedEvent, index: Option<&AuditIndex>) -> Value {
    let payload = payload_json(e);
    let (kind, id) = resource_of(e);
    let mut v = json!({
        "position": e.position,
        "id": e.id.to_string(),
        "time": time_text(e.recorded_at),
        "type": e.event_type,
        "category": category(&e.event_type),
        "stream": e.stream_id,
        "stream_version": e.stream_version,
        "resource": { "type": kind, "id": id },
        "request_id": e.correlation_id,
        "causation_id": e.causation_id,
        "principal": {
            "user_id": e.principal.user_id,
            "user_name": e.principal.user_name,
            "project_id": e.principal.project_id,
            "domain_id": e.principal.domain_id,
            "roles": e.principal.roles,
        },
        "payload": payload,
        "hash": hex::encode(e.hash),
    });
    if let Some(ix) = index {
        v["project"] = json!(ix.project_of(e.position));
    }
    v
}

/// Fields that hold secrets: they never leave through the audit API or the streams, even hashed.
const SECRET_FIELDS: &[&str] = &["password_hash"];

/// Replace every secret field's value (at any depth) with `"<redacted>"` (null stays null).
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if SECRET_FIELDS.contains(&k.as_str()) {
                    if !x.is_null() {
                        *x = json!("<redacted>");
                    }
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The payload of `event_type` with its secret fields replaced by `"<redacted>"`, for the protobuf streams
/// (`None`: the type holds no secret, send the stored bytes). The envelope's `hash` still covers the stored
/// payload, so such an event no longer hashes to it; the integrity check reads the log itself.
pub fn redacted_payload(event_type: &str, payload: &[u8]) -> Option<Vec<u8>> {
    use strata_proto::identity::{UserCreated, UserPasswordChanged};
    use strata_proto::Message;
    fn hide(field: &mut String) {
        if !field.is_empty() {
            *field = "<redacted>".to_string();
        }
    }
    match event_type {
        "identity.UserCreated.v1" => {
            let mut m = UserCreated::decode(payload).ok()?;
            hide(&mut m.password_hash);
            Some(m.encode_to_vec())
        }
        "identity.UserPasswordChanged.v1" => {
            let mut m = UserPasswordChanged::decode(payload).ok()?;
            hide(&mut m.password_hash);
            Some(m.encode_to_vec())
        }
        _ => None,
    }
}

/// The fields that differ between two states, by dotted path (objects are walked; other values compared
/// whole): `[{"field", "before", "after"}]`. A secret that changed is listed with both values redacted.
pub fn changes(before: &Value, after: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    diff("", before, after, &mut out);
    for c in &mut out {
        let secret = c["field"]
            .as_str()
            .and_then(|f| f.rsplit('.').next())
            .is_some_and(|f| SECRET_FIELDS.contains(&f));
        for side in ["before", "after"] {
            if secret && !c[side].is_null() {
                c[side] = json!("<redacted>");
            } else {
                redact(&mut c[side]);
            }
        }
    }
    out
}

fn diff(path: &str, before: &Value, after: &Value, out: &mut Vec<Value>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let bv = b.get(k).unwrap_or(&Value::Null);
                let av = a.get(k).unwrap_or(&Value::Null);
                diff(&p, bv, av, out);
            }
        }
        (b, a) if b != a => out.push(json!({ "field": path, "before": b, "after": a })),
        _ => {}
    }
}

/// An RFC 3339 time as µs since the epoch (400 otherwise).
pub fn parse_time(name: &str, text: &str) -> Result<i64, AuditError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|_| {
            AuditError::bad_request(format!(
                "{name} must be an RFC 3339 time such as 2026-11-26T10:00:00Z, not {text:?}"
            ))
        })
}

/// A non-negative log position (400 otherwise).
pub fn parse_position(name: &str, text: &str) -> Result<u64, AuditError> {
    text.trim().parse::<u64>().map_err(|_| {
        AuditError::bad_request(format!(
            "{name} must be a log position (a whole number >= 0), not {text:?}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_walk_objects_and_compare_the_rest() {
        let before = json!({"a": 1, "b": {"c": "x", "d": [1]}, "gone": true});
        let after = json!({"a": 1, "b": {"c": "y", "d": [1, 2]}, "new": 5});
        let c = changes(&before, &after);
        let fields: Vec<&str> = c.iter().map(|v| v["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["b.c", "b.d", "gone", "new"]);
        assert_eq!(c[0]["before"], "x");
        assert_eq!(c[0]["after"], "y");
        assert!(changes(&before, &before).is_empty());
    }

    #[test]
    fn secrets_are_redacted_even_in_changes() {
        let mut v = json!({"name": "u", "password_hash": "$argon2id$x", "nested": [{"password_hash": null}]});
        redact(&mut v);
        assert_eq!(
            v,
            json!({"name": "u", "password_hash": "<redacted>", "nested": [{"password_hash": null}]})
        );
        let c = changes(
            &json!({"password_hash": "$argon2id$a", "u": {"password_hash": null}}),
            &json!({"password_hash": "$argon2id$b", "u": {"password_hash": "$argon2id$c"}}),
        );
        assert_eq!(
            c,
            [
                json!({"field": "password_hash", "before": "<redacted>", "after": "<redacted>"}),
                json!({"field": "u.password_hash", "before": null, "after": "<redacted>"}),
            ]
        );
        let c = changes(
            &json!({}),
            &json!({"user": {"password_hash": "$argon2id$d"}}),
        );
        assert_eq!(c[0]["after"], json!({"password_hash": "<redacted>"}));
    }

    #[test]
    fn protobuf_payloads_lose_their_secrets() {
        use strata_proto::identity::{UserCreated, UserPasswordChanged};
        use strata_proto::Message;
        let created = UserCreated {
            user_id: "u".into(),
            name: "alice".into(),
            password_hash: "$argon2id$v=19$secret".into(),
            ..Default::default()
        };
        let out = redacted_payload("identity.UserCreated.v1", &created.encode_to_vec()).unwrap();
        let back = UserCreated::decode(&out[..]).unwrap();
        assert_eq!(back.password_hash, "<redacted>");
        assert_eq!((back.user_id.as_str(), back.name.as_str()), ("u", "alice"));
        let changed = UserPasswordChanged {
            password_hash: "$argon2id$x".into(),
        };
        let out =
            redacted_payload("identity.UserPasswordChanged.v1", &changed.encode_to_vec()).unwrap();
        assert_eq!(
            UserPasswordChanged::decode(&out[..]).unwrap().password_hash,
            "<redacted>"
        );
        // No password: nothing to hide; other types are sent as stored.
        let none = UserCreated::default().encode_to_vec();
        let out = redacted_payload("identity.UserCreated.v1", &none).unwrap();
        assert_eq!(UserCreated::decode(&out[..]).unwrap().password_hash, "");
        assert!(redacted_payload("identity.ProjectCreated.v1", b"").is_none());
        // Every event type with a secret field in its JSON is handled here (a new one must be added).
        for t in ["identity.UserCreated.v1", "identity.UserPasswordChanged.v1"] {
            let v = strata_proto::codec::event_json(t, &[]).unwrap().unwrap();
            assert!(v.get("password_hash").is_some(), "{t}: {v}");
        }
    }

    #[test]
    fn times_and_positions_are_checked() {
        assert_eq!(parse_time("at", "1970-01-01T00:00:01Z").unwrap(), 1_000_000);
        assert!(parse_time("at", "yesterday").is_err());
        assert_eq!(parse_position("from", "7").unwrap(), 7);
        assert!(parse_position("from", "-1").is_err());
    }
}
