//! Neutron's attribute rules for request bodies: the JSON shapes and values a network, subnet, port, router,
//! floating IP or security group request may hold. The HTTP layer parses with them, and so do the service's
//! own callers that start from Neutron-shaped bodies (the auto-allocated network, the bootstrap network).

use serde_json::{json, Map, Value};

use crate::NetworkError;

/// The JSON body, which must be an object holding `key` as an object.
pub fn body_object(body: &[u8], key: &str) -> Result<Map<String, Value>, NetworkError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| NetworkError::bad_request("The request body could not be parsed as JSON."))?;
    match v {
        Value::Object(mut m) => match m.remove(key) {
            Some(Value::Object(inner)) => Ok(inner),
            Some(_) => Err(NetworkError::bad_request(format!(
                "The '{key}' of the request body must be an object."
            ))),
            None => Err(NetworkError::bad_request(format!(
                "Resource body required: the request body needs a '{key}' object."
            ))),
        },
        _ => Err(NetworkError::bad_request(
            "The request body must be a JSON object.",
        )),
    }
}

/// Refuse attributes the resource does not have, or that the request may not set.
pub fn check_keys(m: &Map<String, Value>, allowed: &[&str]) -> Result<(), NetworkError> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(NetworkError::bad_request(format!(
                "Unrecognized attribute(s) '{k}'"
            )));
        }
    }
    Ok(())
}

pub fn invalid_value(key: &str, v: &Value, why: &str) -> NetworkError {
    NetworkError::invalid_input(format!("'{v}' is not {why} for {key}"))
}

/// An optional string attribute (name, description, ...) of at most `max` characters.
pub fn opt_string(
    m: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<String>, NetworkError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => {
            if s.chars().count() > max {
                return Err(NetworkError::invalid_input(format!(
                    "'{s}' exceeds maximum length of {max}"
                )));
            }
            Ok(Some(s.clone()))
        }
        Some(Value::Null) if key == "description" => Ok(Some(String::new())),
        Some(v) => Err(invalid_value(key, v, "a valid string")),
    }
}

/// A boolean attribute: JSON true/false, or Neutron's accepted strings.
pub fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>, NetworkError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(invalid_value(key, &json!(s), "a valid boolean")),
        },
        Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
            Ok(Some(n.as_u64() == Some(1)))
        }
        Some(v) => Err(invalid_value(key, v, "a valid boolean")),
    }
}

/// A list of strings attribute.
pub fn opt_strings(m: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, NetworkError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(vec![])),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(invalid_value(key, other, "a list of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(invalid_value(key, v, "a list")),
    }
}

/// Tags: at most 60 characters each, no commas or slashes (they cannot be filtered or addressed).
pub fn check_tag(tag: &str) -> Result<(), NetworkError> {
    if tag.is_empty() || tag.chars().count() > 60 || tag.contains(',') || tag.contains('/') {
        return Err(NetworkError::invalid_input(format!(
            "'{tag}' is not a valid tag"
        )));
    }
    Ok(())
}

pub fn tags_value(m: &Map<String, Value>) -> Result<Vec<String>, NetworkError> {
    let mut tags = opt_strings(m, "tags")?.unwrap_or_default();
    for t in &tags {
        check_tag(t)?;
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}
