//! The Image service (Glance v2): the `Image` aggregate and the rules it shares with the API.
//!
//! An image is one stream, `image-<id>`. Its life cycle is Glance's:
//! `queued -> saving -> active` (upload), `queued -> uploading -> importing -> active` (glance-direct import),
//! `queued -> importing -> active` (web-download import), `active <-> deactivated`, and `deleted`. A failed or
//! cancelled upload goes back to `queued`. As with identity, a deleted image stays deleted: its id is never
//! reused (`Create` answers `AlreadyExists`) and everything else answers `NotFound`.

mod aggregate;
pub mod quota;
pub mod store;

pub use aggregate::{Image, ImageCommand, ImageStatus};
pub use quota::{usage_id, ImageUsage, ImageUsageCommand};

/// Glance's aggregate types, for generic readers (`crate::registry`).
pub const AGGREGATES: &[crate::registry::StateFolder] = &[
    crate::registry::folder::<Image>(),
    crate::registry::folder::<ImageUsage>(),
];

use std::collections::BTreeMap;

use crate::aggregate::DomainError;

/// Glance's accepted `disk_format` values (`""` = not set yet is accepted too).
pub const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
/// Glance's accepted `container_format` values (`""` = not set yet is accepted too).
pub const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];
pub const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];
/// Statuses of an image membership (a new member is `pending`).
pub const MEMBER_STATUSES: &[&str] = &["pending", "accepted", "rejected"];
/// Longest image name, tag, owner, member id and extra-property key (Glance's column sizes).
pub const NAME_MAX: usize = 255;
/// Longest image id (Glance ids are UUIDs, 36 characters).
pub const ID_MAX: usize = 64;
/// Most tags one image may carry (Glance's `image_tag_quota` default).
pub const MAX_TAGS: usize = 128;

fn invalid(field: &str, why: &str) -> DomainError {
    DomainError::Invalid(format!("Invalid input for field '{field}': {why}."))
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.chars().count() > max {
        return Err(invalid(
            field,
            &format!("must be at most {max} characters long"),
        ));
    }
    Ok(())
}

fn check_id(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    check_len(field, value, max)
}

fn check_one_of(
    field: &str,
    value: &str,
    allowed: &[&str],
    empty_ok: bool,
) -> Result<(), DomainError> {
    if (empty_ok && value.is_empty()) || allowed.contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            &format!("'{value}' is not one of {}", allowed.join(", ")),
        ))
    }
}

fn check_disk_format(value: &str) -> Result<(), DomainError> {
    check_one_of("disk_format", value, DISK_FORMATS, true)
}

fn check_container_format(value: &str) -> Result<(), DomainError> {
    check_one_of("container_format", value, CONTAINER_FORMATS, true)
}

fn check_visibility(value: &str) -> Result<(), DomainError> {
    check_one_of("visibility", value, VISIBILITIES, false)
}

fn check_member_status(value: &str) -> Result<(), DomainError> {
    check_one_of("status", value, MEMBER_STATUSES, false)
}

/// Glance's tag rules: each at most 255 characters, at most 128 per image. Repeats are dropped (Glance keeps
/// the first occurrence), so the result is the tag list as it will be stored.
fn normalize_tags(tags: &[String]) -> Result<Vec<String>, DomainError> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        check_len("tags", tag, NAME_MAX)?;
        if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    if out.len() > MAX_TAGS {
        return Err(invalid(
            "tags",
            &format!("at most {MAX_TAGS} tags are allowed"),
        ));
    }
    Ok(out)
}

/// Extra-property keys: non-empty, at most 255 characters.
fn check_properties(props: &BTreeMap<String, serde_json::Value>) -> Result<(), DomainError> {
    for key in props.keys() {
        if key.is_empty() {
            return Err(invalid("properties", "a property name must not be empty"));
        }
        check_len("properties", key, NAME_MAX)?;
    }
    Ok(())
}

/// The event encoding of extra properties: `""` for none, else the JSON object (keys sorted: canonical).
pub fn properties_json(props: &BTreeMap<String, serde_json::Value>) -> String {
    if props.is_empty() {
        String::new()
    } else {
        serde_json::to_string(props).unwrap_or_default()
    }
}

/// Decode `properties_json` of an event; `""` (and, defensively, anything that is not an object) is none.
pub fn parse_properties(json: &str) -> BTreeMap<String, serde_json::Value> {
    if json.is_empty() {
        return BTreeMap::new();
    }
    serde_json::from_str(json).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_are_deduplicated_in_order_and_limited() {
        let tags: Vec<String> = ["b", "a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(normalize_tags(&tags).unwrap(), vec!["b", "a"]);
        let many: Vec<String> = (0..MAX_TAGS).map(|i| i.to_string()).collect();
        assert_eq!(normalize_tags(&many).unwrap().len(), MAX_TAGS);
        let mut too_many = many.clone();
        too_many.push("x".into());
        assert!(normalize_tags(&too_many).is_err());
        // Repeats do not count against the limit.
        let mut repeated = many;
        repeated.push("0".into());
        assert!(normalize_tags(&repeated).is_ok());
        assert!(normalize_tags(&["t".repeat(NAME_MAX)]).is_ok());
        assert!(normalize_tags(&["t".repeat(NAME_MAX + 1)]).is_err());
    }

    #[test]
    fn properties_encode_canonically_and_decode_leniently() {
        assert_eq!(properties_json(&BTreeMap::new()), "");
        let props: BTreeMap<String, serde_json::Value> = [
            ("os_distro".to_string(), json!("ubuntu")),
            ("a".to_string(), json!(1)),
        ]
        .into_iter()
        .collect();
        let text = properties_json(&props);
        assert_eq!(text, r#"{"a":1,"os_distro":"ubuntu"}"#);
        assert_eq!(parse_properties(&text), props);
        assert!(parse_properties("").is_empty());
        assert!(parse_properties("[1]").is_empty());
        assert!(check_properties(&props).is_ok());
        let bad: BTreeMap<String, serde_json::Value> =
            [(String::new(), json!("x"))].into_iter().collect();
        assert!(check_properties(&bad).is_err());
        let long: BTreeMap<String, serde_json::Value> = [("k".repeat(NAME_MAX + 1), json!("x"))]
            .into_iter()
            .collect();
        assert!(check_properties(&long).is_err());
    }

    #[test]
    fn formats_and_visibility_follow_glance() {
        for f in DISK_FORMATS.iter().chain(&[""]) {
            assert!(check_disk_format(f).is_ok(), "{f}");
        }
        for f in CONTAINER_FORMATS.iter().chain(&[""]) {
            assert!(check_container_format(f).is_ok(), "{f}");
        }
        assert!(check_disk_format("bare").is_err());
        assert!(check_disk_format("QCOW2").is_err());
        assert!(check_container_format("qcow2").is_err());
        for v in VISIBILITIES {
            assert!(check_visibility(v).is_ok());
        }
        assert!(check_visibility("").is_err());
        assert!(check_visibility("all").is_err());
        for s in MEMBER_STATUSES {
            assert!(check_member_status(s).is_ok());
        }
        assert!(check_member_status("all").is_err());
    }
}
