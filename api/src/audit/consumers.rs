//! Durable named consumers (`/events/v1/consumers`): a name, a filter and a stored position, so a client
//! can stream "from where I acked" after any restart.
//!
//! Positions live beside the log, not in it: every consumer is kept in one checkpoint record
//! ([`RECORD`], JSON), rewritten whole by each change, so a create, an ack or a delete is one atomic write
//! and never an event (an ack must not itself become something to stream). Names are scoped: an admin's
//! or auditor's consumers are global (`g/<name>`), anyone else's belong to the project of their token
//! (`p/<project>/<name>`), so two projects may both have a consumer called `billing`.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use strata_events::{Checkpoint, EventLog};

use super::render::time_text;
use super::streams::{self, check_not_beyond_head, split_list, Feed, Filter, Reach};
use super::{caller, Audit, AuditError};

/// The checkpoint record holding every consumer.
pub const RECORD: &str = "events-v1-consumers";
/// Its encoding's version.
pub const RECORD_VERSION: u32 = 1;
/// Longest consumer name.
pub const NAME_MAX: usize = 128;

/// A consumer as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    pub filter: Filter,
    /// The last acknowledged position: its stream starts after it.
    pub position: u64,
    pub created_at: String,
    #[serde(default)]
    pub acked_at: Option<String>,
}

type Consumers = BTreeMap<String, Consumer>;

/// Every consumer, cached in memory after the first read; changes are serialized by the lock and written
/// before the cache takes them.
#[derive(Default)]
pub struct Store {
    cache: tokio::sync::Mutex<Option<Consumers>>,
}

impl Store {
    async fn locked<'a>(
        &'a self,
        log: &dyn EventLog,
    ) -> Result<tokio::sync::MutexGuard<'a, Option<Consumers>>, AuditError> {
        let mut guard = self.cache.lock().await;
        if guard.is_none() {
            let all = match log
                .load_checkpoint(RECORD)
                .await
                .map_err(AuditError::internal)?
            {
                None => Consumers::new(),
                Some(c) if c.version == RECORD_VERSION => serde_json::from_slice(&c.state)
                    .map_err(|e| AuditError::internal(format!("consumer record: {e}")))?,
                Some(c) => {
                    return Err(AuditError::internal(format!(
                        "consumer record has version {}, this build reads {RECORD_VERSION}",
                        c.version
                    )))
                }
            };
            *guard = Some(all);
        }
        Ok(guard)
    }

    /// The consumer stored under `key`.
    pub async fn get(&self, log: &dyn EventLog, key: &str) -> Result<Option<Consumer>, AuditError> {
        let guard = self.locked(log).await?;
        Ok(guard.as_ref().and_then(|all| all.get(key).cloned()))
    }

    /// The consumers whose keys start with `prefix`, by key.
    pub async fn list(
        &self,
        log: &dyn EventLog,
        prefix: &str,
    ) -> Result<Vec<(String, Consumer)>, AuditError> {
        let guard = self.locked(log).await?;
        Ok(guard
            .iter()
            .flat_map(|all| all.range(prefix.to_string()..))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect())
    }

    /// Change the consumers with `f`; the record is written (one atomic write) when anything changed, and
    /// the cache keeps the change only once it is stored.
    pub async fn update<R>(
        &self,
        log: &dyn EventLog,
        f: impl FnOnce(&mut Consumers) -> Result<R, AuditError>,
    ) -> Result<R, AuditError> {
        let mut guard = self.locked(log).await?;
        let current = guard.take().unwrap_or_default();
        let mut next = current.clone();
        let result = match f(&mut next) {
            Ok(r) => r,
            Err(e) => {
                *guard = Some(current);
                return Err(e);
            }
        };
        if next != current {
            let state = match serde_json::to_vec(&next) {
                Ok(s) => s,
                Err(e) => {
                    *guard = Some(current);
                    return Err(AuditError::internal(e));
                }
            };
            let position = next.values().map(|c| c.position).max().unwrap_or(0);
            let saved = log
                .save_checkpoint(
                    RECORD,
                    Checkpoint {
                        version: RECORD_VERSION,
                        position,
                        state,
                    },
                )
                .await;
            if let Err(e) = saved {
                *guard = Some(current);
                return Err(AuditError::internal(e));
            }
        }
        *guard = Some(next);
        Ok(result)
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events/v1/consumers", web::get().to(list))
        .route("/events/v1/consumers/{name}", web::put().to(create))
        .route("/events/v1/consumers/{name}", web::get().to(show))
        .route("/events/v1/consumers/{name}", web::delete().to(remove))
        .route("/events/v1/consumers/{name}/ack", web::post().to(ack))
        .route("/events/v1/consumers/{name}/stream", web::get().to(stream));
}

/// Where a caller's consumers live.
fn namespace(reach: &Reach) -> String {
    match reach {
        Reach::All => "g/".to_string(),
        Reach::Project(p) => format!("p/{p}/"),
    }
}

fn check_name(name: &str) -> Result<(), AuditError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AuditError::bad_request(format!(
            "a consumer name is 1 to {NAME_MAX} letters, digits, '.', '_' or '-', starting with a letter or digit; not {name:?}"
        )))
    }
}

/// The caller's reach and the key of their consumer `name`.
fn key_of(req: &HttpRequest, name: &str) -> Result<(Reach, String), AuditError> {
    let reach = Reach::of(&caller(req)?)?;
    check_name(name)?;
    let key = format!("{}{name}", namespace(&reach));
    Ok((reach, key))
}

fn not_found(name: &str) -> AuditError {
    AuditError::not_found(format!("no consumer named {name:?}"))
}

fn consumer_json(req: &HttpRequest, name: &str, reach: &Reach, c: &Consumer, head: u64) -> Value {
    let base = format!(
        "{}/events/v1/consumers/{name}",
        crate::common::base_url(req)
    );
    json!({
        "name": name,
        "scope": match reach { Reach::All => "global", Reach::Project(_) => "project" },
        "project": match reach { Reach::All => None, Reach::Project(p) => Some(p) },
        "filter": c.filter,
        "position": c.position,
        "head": head,
        "lag": head.saturating_sub(c.position),
        "created_at": c.created_at,
        "acked_at": c.acked_at,
        "links": { "self": base, "stream": format!("{base}/stream"), "ack": format!("{base}/ack") },
    })
}

async fn head_of(audit: &Audit) -> Result<u64, AuditError> {
    Ok(audit
        .log
        .head()
        .await
        .map_err(AuditError::internal)?
        .position)
}

/// A JSON object body (400 otherwise) with only the `known` keys.
fn object_body(body: &Bytes, known: &[&str]) -> Result<Map<String, Value>, AuditError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| AuditError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(m) = v else {
        return Err(AuditError::bad_request("the body must be a JSON object"));
    };
    if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(AuditError::bad_request(format!(
            "unknown field {k:?}; expected {}",
            known.join(", ")
        )));
    }
    Ok(m)
}

/// A filter list: a comma-separated string or an array of strings.
fn list_field(name: &str, v: &Value) -> Result<Vec<String>, AuditError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => split_list(name, s),
        Value::Array(items) => {
            let mut out = Vec::new();
            for i in items {
                match i.as_str() {
                    Some(s) => out.extend(split_list(name, s)?),
                    None => {
                        return Err(AuditError::bad_request(format!(
                            "filter.{name} must hold strings, not {i}"
                        )))
                    }
                }
            }
            Ok(out)
        }
        other => Err(AuditError::bad_request(format!(
            "filter.{name} must be a string or a list of strings, not {other}"
        ))),
    }
}

/// The `filter` of a consumer body.
pub fn parse_filter(v: Option<&Value>) -> Result<Filter, AuditError> {
    let mut f = Filter::default();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match k.as_str() {
                    "category" => f.category = list_field("category", v)?,
                    "type" => f.types = list_field("type", v)?,
                    "project" => {
                        f.project = match v {
                            Value::Null => None,
                            Value::String(s) => Some(s.trim().to_string()),
                            other => {
                                return Err(AuditError::bad_request(format!(
                                    "filter.project must be a project id, not {other}"
                                )))
                            }
                        }
                    }
                    other => {
                        return Err(AuditError::bad_request(format!(
                            "unknown filter field {other:?}; expected category, type, project"
                        )))
                    }
                }
            }
        }
        Some(other) => {
            return Err(AuditError::bad_request(format!(
                "filter must be an object, not {other}"
            )))
        }
    }
    f.normalize()?;
    Ok(f)
}

/// `from`: a position, `"now"` (the head) or absent (0: everything).
fn parse_from(v: Option<&Value>, head: u64) -> Result<u64, AuditError> {
    let bad = |v: &Value| {
        AuditError::bad_request(format!(
            "from must be a log position (a whole number >= 0) or \"now\", not {v}"
        ))
    };
    let from = match v {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.trim() == "now" => head,
        Some(v @ Value::String(s)) => s.trim().parse::<u64>().map_err(|_| bad(v))?,
        Some(v) => v.as_u64().ok_or_else(|| bad(v))?,
    };
    if from > head {
        return Err(AuditError::bad_request(format!(
            "from {from} is beyond the log's head ({head})"
        )));
    }
    Ok(from)
}

/// `PUT /events/v1/consumers/{name}` `{"filter": {...}, "from": N|"now"}`: 201 when new, 200 when it
/// exists with the same filter (its position unchanged), 409 when it exists with another filter.
async fn create(
    audit: web::Data<Audit>,
    req: HttpRequest,
    name: web::Path<String>,
    body: Bytes,
) -> Result<HttpResponse, AuditError> {
    let (reach, key) = key_of(&req, &name)?;
    let m = object_body(&body, &["filter", "from"])?;
    let filter = parse_filter(m.get("filter"))?;
    reach.project_for(&filter)?;
    let head = head_of(&audit).await?;
    let from = parse_from(m.get("from"), head)?;
    let (created, consumer) = audit
        .consumers
        .update(audit.log.as_ref(), |all| match all.get(&key) {
            Some(c) if c.filter == filter => Ok((false, c.clone())),
            Some(c) => Err(AuditError::new(
                StatusCode::CONFLICT,
                format!(
                    "consumer {name:?} exists with another filter ({}); delete it first or pick another name",
                    json!(c.filter)
                ),
            )),
            None => {
                let c = Consumer {
                    filter: filter.clone(),
                    position: from,
                    created_at: time_text(chrono::Utc::now()),
                    acked_at: None,
                };
                all.insert(key.clone(), c.clone());
                Ok((true, c))
            }
        })
        .await?;
    let v = json!({ "consumer": consumer_json(&req, &name, &reach, &consumer, head) });
    if created {
        tracing::info!(consumer = %key, position = from, "event consumer created");
        let location = v["consumer"]["links"]["self"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok(HttpResponse::Created()
            .insert_header(("Location", location))
            .json(v))
    } else {
        Ok(HttpResponse::Ok().json(v))
    }
}

/// `GET /events/v1/consumers`: the caller's consumers with their position and lag.
async fn list(
    audit: web::Data<Audit>,
    req: HttpRequest,
    q: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, AuditError> {
    let reach = Reach::of(&caller(&req)?)?;
    streams::check_params(&q, &[])?;
    let prefix = namespace(&reach);
    let head = head_of(&audit).await?;
    let all = audit.consumers.list(audit.log.as_ref(), &prefix).await?;
    let out: Vec<Value> = all
        .iter()
        .map(|(k, c)| consumer_json(&req, &k[prefix.len()..], &reach, c, head))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "consumers": out, "head": head })))
}

async fn show(
    audit: web::Data<Audit>,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, AuditError> {
    let (reach, key) = key_of(&req, &name)?;
    let c = audit
        .consumers
        .get(audit.log.as_ref(), &key)
        .await?
        .ok_or_else(|| not_found(&name))?;
    let head = head_of(&audit).await?;
    Ok(
        HttpResponse::Ok()
            .json(json!({ "consumer": consumer_json(&req, &name, &reach, &c, head) })),
    )
}

async fn remove(
    audit: web::Data<Audit>,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, AuditError> {
    let (_, key) = key_of(&req, &name)?;
    audit
        .consumers
        .update(audit.log.as_ref(), |all| {
            all.remove(&key).map(|_| ()).ok_or_else(|| not_found(&name))
        })
        .await?;
    tracing::info!(consumer = %key, "event consumer deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /events/v1/consumers/{name}/ack` `{"position": N}`: the consumer has everything up to N. Positions
/// only move forward (acking the stored position again is a no-op) and never beyond the head.
async fn ack(
    audit: web::Data<Audit>,
    req: HttpRequest,
    name: web::Path<String>,
    body: Bytes,
) -> Result<HttpResponse, AuditError> {
    let (reach, key) = key_of(&req, &name)?;
    let m = object_body(&body, &["position"])?;
    let position = match m.get("position") {
        Some(v) => v.as_u64().ok_or_else(|| {
            AuditError::bad_request(format!(
                "position must be a log position (a whole number >= 0), not {v}"
            ))
        })?,
        None => return Err(AuditError::bad_request("position is required")),
    };
    let head = check_not_beyond_head(&audit, "position", position).await?;
    let now = time_text(chrono::Utc::now());
    let c = audit
        .consumers
        .update(audit.log.as_ref(), |all| {
            let c = all.get_mut(&key).ok_or_else(|| not_found(&name))?;
            if position < c.position {
                return Err(AuditError::bad_request(format!(
                    "position {position} is before the consumer's position {}: positions only move forward",
                    c.position
                )));
            }
            if position > c.position {
                c.position = position;
                c.acked_at = Some(now);
            }
            Ok(c.clone())
        })
        .await?;
    Ok(
        HttpResponse::Ok()
            .json(json!({ "consumer": consumer_json(&req, &name, &reach, &c, head) })),
    )
}

/// `GET /events/v1/consumers/{name}/stream`: the consumer's events after its stored position (or after
/// `Last-Event-ID` when that is further), with its filter; same formats as `/events/v1/stream`.
async fn stream(
    audit: web::Data<Audit>,
    req: HttpRequest,
    name: web::Path<String>,
    q: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, AuditError> {
    let (reach, key) = key_of(&req, &name)?;
    streams::check_params(&q, &[])?;
    let c = audit
        .consumers
        .get(audit.log.as_ref(), &key)
        .await?
        .ok_or_else(|| not_found(&name))?;
    let mut after = c.position;
    if let Some(id) = streams::last_event_id(&req)? {
        check_not_beyond_head(&audit, "Last-Event-ID", id).await?;
        after = after.max(id);
    }
    let project = reach.project_for(&c.filter)?;
    let feed = Feed {
        after,
        filter: c.filter,
        project,
        format: streams::format_of(&req),
    };
    Ok(streams::respond(audit, &req, feed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use strata_events::MemoryLog;

    #[test]
    fn names_and_bodies_are_checked() {
        assert!(check_name("billing-1.a_b").is_ok());
        for bad in ["", "-x", "a/b", "a b", &"x".repeat(NAME_MAX + 1)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let f = parse_filter(Some(
            &json!({"category": ["volume", "compute"], "type": "ServerDeleted"}),
        ))
        .unwrap();
        assert_eq!(f.category, ["compute", "volume"]);
        assert_eq!(f.types, ["ServerDeleted"]);
        assert_eq!(
            f,
            parse_filter(Some(
                &json!({"category": "compute,volume", "type": ["ServerDeleted"]})
            ))
            .unwrap(),
            "the same filter, spelt differently"
        );
        for bad in [
            json!({"category": "nope"}),
            json!({"colour": "red"}),
            json!({"category": 3}),
            json!({"project": 1}),
            json!("compute"),
        ] {
            assert!(parse_filter(Some(&bad)).is_err(), "{bad}");
        }
        assert_eq!(parse_from(None, 9).unwrap(), 0);
        assert_eq!(parse_from(Some(&json!("now")), 9).unwrap(), 9);
        assert_eq!(parse_from(Some(&json!(4)), 9).unwrap(), 4);
        assert!(parse_from(Some(&json!(10)), 9).is_err());
        assert!(parse_from(Some(&json!(-1)), 9).is_err());
        assert!(parse_from(Some(&json!("later")), 9).is_err());
        assert!(object_body(&Bytes::from_static(b"{"), &["from"]).is_err());
        assert!(object_body(&Bytes::from_static(b"[]"), &["from"]).is_err());
        assert!(object_body(&Bytes::from_static(b"{\"to\": 1}"), &["from"]).is_err());
    }

    #[tokio::test]
    async fn the_store_writes_one_record_and_survives_a_restart() {
        let log = Arc::new(MemoryLog::new());
        let store = Store::default();
        let c = Consumer {
            filter: Filter::default(),
            position: 0,
            created_at: "t".into(),
            acked_at: None,
        };
        store
            .update(log.as_ref(), |all| {
                all.insert("g/a".into(), c.clone());
                all.insert("p/x/a".into(), c.clone());
                Ok(())
            })
            .await
            .unwrap();
        // A failed change leaves everything as it was.
        let failed = store
            .update(log.as_ref(), |all| {
                all.remove("g/a");
                Err::<(), _>(AuditError::bad_request("no"))
            })
            .await;
        assert!(failed.is_err());
        store
            .update(log.as_ref(), |all| {
                if let Some(c) = all.get_mut("g/a") {
                    c.position = 7;
                }
                Ok(())
            })
            .await
            .unwrap();
        let again = Store::default();
        let listed = again.list(log.as_ref(), "g/").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1.position, 7);
        assert_eq!(again.list(log.as_ref(), "p/x/").await.unwrap().len(), 1);
        assert!(again.list(log.as_ref(), "p/y/").await.unwrap().is_empty());
        assert_eq!(
            log.head().await.unwrap().position,
            0,
            "no event was appended"
        );
    }
}
