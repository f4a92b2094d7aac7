//! Request-body parsing and response shaping shared by the identity handlers.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::KeystoneError;

/// Parse `{"<key>": {...}}` from a request body. Malformed JSON or a missing/non-object entity is a 400.
pub fn entity(body: &[u8], key: &str) -> Result<Map<String, Value>, KeystoneError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| KeystoneError::bad_request(format!("Malformed request body: {e}")))?;
    match v {
        Value::Object(mut top) => match top.remove(key) {
            Some(Value::Object(m)) => Ok(m),
            Some(_) => Err(KeystoneError::bad_request(format!(
                "Invalid input for field '{key}': not an object."
            ))),
            None => Err(KeystoneError::bad_request(format!(
                "'{key}' is a required property"
            ))),
        },
        _ => Err(KeystoneError::bad_request(
            "Malformed request body: expected a JSON object.",
        )),
    }
}

pub fn invalid(field: &str, why: &str) -> KeystoneError {
    KeystoneError::bad_request(format!("Invalid input for field '{field}': {why}"))
}

/// Take an optional string field (null counts as absent) of at most `max` characters.
pub fn opt_str(
    m: &mut Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, KeystoneError> {
    match m.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => Err(invalid(
            field,
            &format!("'{s}' is too long (at most {max} characters)"),
        )),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(field, &format!("{other} is not of type 'string'"))),
    }
}

/// A required, non-blank name of at most `max` characters.
pub fn req_name(
    m: &mut Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<String, KeystoneError> {
    match opt_str(m, field, max)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(invalid(field, "must not be blank")),
        None => Err(KeystoneError::bad_request(format!(
            "'{field}' is a required property"
        ))),
    }
}

/// An optional name: present means non-blank.
pub fn opt_name(
    m: &mut Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, KeystoneError> {
    match opt_str(m, field, max)? {
        Some(s) if s.trim().is_empty() => Err(invalid(field, "must not be blank")),
        other => Ok(other),
    }
}

pub fn opt_bool(m: &mut Map<String, Value>, field: &str) -> Result<Option<bool>, KeystoneError> {
    match m.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(other) => Err(invalid(field, &format!("{other} is not of type 'boolean'"))),
    }
}

pub fn opt_tags(m: &mut Map<String, Value>) -> Result<Option<Vec<String>>, KeystoneError> {
    match m.remove("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => {
            let mut tags = Vec::with_capacity(a.len());
            for t in a {
                match t {
                    Value::String(s)
                        if !s.is_empty()
                            && s.chars().count() <= 255
                            && !s.contains(',')
                            && !s.contains('/') =>
                    {
                        tags.push(s)
                    }
                    other => return Err(invalid("tags", &format!("{other} is not a valid tag"))),
                }
            }
            if tags.len() > 80 {
                return Err(invalid("tags", "at most 80 tags"));
            }
            Ok(Some(tags))
        }
        Some(other) => Err(invalid("tags", &format!("{other} is not of type 'array'"))),
    }
}

/// Drop fields a client may echo back but never sets, and encode the rest as the entity's extra properties.
pub fn extra_json(mut m: Map<String, Value>) -> String {
    for k in ["id", "links", "domain", "options"] {
        m.remove(k);
    }
    if m.is_empty() {
        String::new()
    } else {
        Value::Object(m).to_string()
    }
}

/// The extra properties after an update: none to change when the body has no fields left, else the old
/// ones with the body's laid over them.
pub fn updated_extra(old: &str, rest: Map<String, Value>) -> Option<String> {
    if rest.is_empty() {
        None
    } else {
        Some(merged_extra(old, rest))
    }
}

/// Extra properties after an update: the old ones with the new ones laid over them.
pub fn merged_extra(old: &str, new: Map<String, Value>) -> String {
    let mut base = match serde_json::from_str::<Value>(old) {
        Ok(Value::Object(o)) => o,
        _ => Map::new(),
    };
    let new = extra_json(new);
    if let Ok(Value::Object(n)) = serde_json::from_str::<Value>(&new) {
        base.extend(n);
    }
    if base.is_empty() {
        String::new()
    } else {
        Value::Object(base).to_string()
    }
}

/// An update may repeat a row's `domain_id` but not change it (400).
pub fn same_domain(m: &mut Map<String, Value>, domain_id: &str) -> Result<(), KeystoneError> {
    match opt_str(m, "domain_id", 64)? {
        Some(d) if d != domain_id => Err(KeystoneError::bad_request(
            "Update of `domain_id` is not allowed.",
        )),
        _ => Ok(()),
    }
}

/// Merge stored extra properties into a response object (without overriding its own fields).
pub fn merge_extra(obj: &mut Value, extra_json: &str) {
    if extra_json.is_empty() {
        return;
    }
    if let (Value::Object(o), Ok(Value::Object(extra))) =
        (obj, serde_json::from_str::<Value>(extra_json))
    {
        for (k, v) in extra {
            o.entry(k).or_insert(v);
        }
    }
}

pub fn self_link(req: &HttpRequest, path: &str) -> Value {
    serde_json::json!({ "self": format!("{}/v3/{}", crate::common::base_url(req), path) })
}

pub fn collection_links(req: &HttpRequest) -> Value {
    let base = crate::common::base_url(req);
    let query = req.query_string();
    let this = if query.is_empty() {
        format!("{base}{}", req.path())
    } else {
        format!("{base}{}?{query}", req.path())
    };
    serde_json::json!({ "self": this, "previous": null, "next": null })
}

/// Answer `{"<key>": [...], "links": {...}}`: a list of rows as Keystone shows every collection.
pub fn collection(req: &HttpRequest, key: &str, items: Vec<Value>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ key: items, "links": collection_links(req) }))
}

/// Query parameters as pairs (repeated keys kept), decoded; never fails.
pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    crate::common::query_pairs(req)
}

pub fn query(req: &HttpRequest, key: &str) -> Option<String> {
    query_pairs(req)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Keystone's boolean query values: "true"/"True"/"1"/"" (present without value) are true.
pub fn query_bool(req: &HttpRequest, key: &str) -> Option<bool> {
    query_pairs(req)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| {
            let v = v.to_ascii_lowercase();
            v.is_empty() || v == "true" || v == "1" || v == "yes"
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_parsing_rejects_bad_bodies() {
        assert_eq!(entity(b"{", "project").unwrap_err().status.as_u16(), 400);
        assert_eq!(entity(b"[]", "project").unwrap_err().status.as_u16(), 400);
        assert_eq!(
            entity(b"{\"user\":{}}", "project")
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        let mut m = entity(br#"{"project":{"name":"x","enabled":"yes"}}"#, "project").unwrap();
        assert!(opt_bool(&mut m, "enabled").is_err());
        let mut m = entity(br#"{"project":{"name":""}}"#, "project").unwrap();
        assert!(req_name(&mut m, "name", 64).is_err());
    }
}
