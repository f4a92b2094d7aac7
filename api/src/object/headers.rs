//! Swift's user metadata and system headers: which request headers a PUT or POST records, Swift's limits on
//! them, and how stored headers go back out on HEAD and GET.

use std::collections::BTreeMap;

use actix_web::http::header::HeaderMap;
use actix_web::HttpResponseBuilder;

use super::error::SwiftError;

/// Swift's metadata constraints (`swift.common.constraints`).
pub const MAX_META_NAME_LENGTH: usize = 128;
pub const MAX_META_VALUE_LENGTH: usize = 256;
pub const MAX_META_COUNT: usize = 90;
pub const MAX_META_OVERALL_SIZE: usize = 4096;

/// What a request asks to set and remove among a resource's headers (lower-case names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderChange {
    pub set: BTreeMap<String, String>,
    pub removed: Vec<String>,
}

impl HeaderChange {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    fn put(&mut self, name: String, value: &str) {
        if value.is_empty() {
            self.set.remove(&name);
            self.removed.push(name);
        } else {
            self.removed.retain(|r| *r != name);
            self.set.insert(name, value.to_string());
        }
    }

    fn remove(&mut self, name: String) {
        self.set.remove(&name);
        self.removed.push(name);
    }
}

fn header_str<'a>(
    name: &str,
    value: &'a actix_web::http::header::HeaderValue,
) -> Result<&'a str, SwiftError> {
    value
        .to_str()
        .map_err(|_| SwiftError::bad_request(format!("Header {name} is not valid UTF-8 text")))
}

/// Check user metadata (`x-<kind>-meta-*`) against Swift's limits.
fn check_meta(kind: &str, headers: &HeaderMap) -> Result<(), SwiftError> {
    let prefix = format!("x-{kind}-meta-");
    let mut count = 0;
    let mut size = 0;
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix(&prefix) else {
            continue;
        };
        let value = header_str(name.as_str(), value)?;
        if key.is_empty() {
            return Err(SwiftError::bad_request("Metadata name cannot be empty"));
        }
        if key.len() > MAX_META_NAME_LENGTH {
            return Err(SwiftError::bad_request(format!(
                "Metadata name too long: {}{key}",
                prefix
            )));
        }
        if value.len() > MAX_META_VALUE_LENGTH {
            return Err(SwiftError::bad_request(format!(
                "Metadata value longer than {MAX_META_VALUE_LENGTH}: {prefix}{key}"
            )));
        }
        count += 1;
        size += key.len() + value.len();
    }
    if count > MAX_META_COUNT {
        return Err(SwiftError::bad_request(format!(
            "Too many metadata items; max {MAX_META_COUNT}"
        )));
    }
    if size > MAX_META_OVERALL_SIZE {
        return Err(SwiftError::bad_request(format!(
            "Total metadata too large; max {MAX_META_OVERALL_SIZE}"
        )));
    }
    Ok(())
}

/// The change a PUT or POST on an account or container asks for: user metadata (`X-<Kind>-Meta-*`, and
/// `X-Remove-<Kind>-Meta-*`), plus the system headers `system` names (and their `X-Remove-` forms).
pub fn change_from(
    kind: &str,
    system: &[&str],
    headers: &HeaderMap,
) -> Result<HeaderChange, SwiftError> {
    check_meta(kind, headers)?;
    let meta = format!("x-{kind}-meta-");
    let remove_meta = format!("x-remove-{kind}-meta-");
    let mut change = HeaderChange::default();
    for (name, value) in headers {
        let name = name.as_str();
        let value = header_str(name, value)?;
        if name.starts_with(&meta) || system.contains(&name) {
            change.put(name.to_string(), value.trim());
        } else if let Some(key) = name.strip_prefix(&remove_meta) {
            change.remove(format!("{meta}{key}"));
        } else if let Some(sys) = name.strip_prefix("x-remove-") {
            let sys = format!("x-{sys}");
            if system.contains(&sys.as_str()) {
                change.remove(sys);
            }
        }
    }
    Ok(change)
}

/// The headers an object PUT or POST records besides its content type: user metadata, Content-Disposition,
/// Content-Encoding, X-Delete-At (X-Delete-After made absolute with `now`), X-Object-Manifest.
pub fn object_headers(
    headers: &HeaderMap,
    now: i64,
) -> Result<BTreeMap<String, String>, SwiftError> {
    check_meta("object", headers)?;
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        let keep = name.starts_with("x-object-meta-")
            || matches!(
                name,
                "content-disposition" | "content-encoding" | "x-object-manifest"
            );
        if !keep {
            continue;
        }
        let value = header_str(name, value)?.trim();
        if !value.is_empty() {
            out.insert(name.to_string(), value.to_string());
        }
    }
    if let Some(m) = out.get("x-object-manifest") {
        let valid = m
            .split_once('/')
            .is_some_and(|(c, _)| !c.is_empty() && !c.contains('?'));
        if !valid {
            return Err(SwiftError::bad_request(
                "X-Object-Manifest must be in the format container/prefix",
            ));
        }
    }
    let at = match (headers.get("x-delete-at"), headers.get("x-delete-after")) {
        (Some(at), _) => Some(
            header_str("x-delete-at", at)?
                .trim()
                .split('.')
                .next()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| SwiftError::bad_request("Non-integer X-Delete-At"))?,
        ),
        (None, Some(after)) => {
            let secs = header_str("x-delete-after", after)?
                .trim()
                .parse::<i64>()
                .map_err(|_| SwiftError::bad_request("Non-integer X-Delete-After"))?;
            if secs < 0 {
                return Err(SwiftError::bad_request("X-Delete-After in past"));
            }
            Some(now + secs)
        }
        (None, None) => None,
    };
    if let Some(at) = at {
        if at <= now {
            return Err(SwiftError::bad_request("X-Delete-At in past"));
        }
        out.insert("x-delete-at".into(), at.to_string());
    }
    Ok(out)
}

/// Add stored headers to a response.
pub fn emit(builder: &mut HttpResponseBuilder, headers: &BTreeMap<String, String>) {
    for (k, v) in headers {
        builder.insert_header((k.as_str(), v.as_str()));
    }
}

/// The first value of a request header as text.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A content type for an object name, from its extension (Swift guesses with Python's mimetypes).
pub fn guess_content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "text" | "log" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "json" => "application/json",
        "xml" => "application/xml",
        "js" => "application/javascript",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "iso" => "application/x-iso9660-image",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn container_change_sets_removes_and_keeps_only_known_system_headers() {
        let h = map(&[
            ("x-container-meta-color", "blue"),
            ("x-container-meta-gone", ""),
            ("x-remove-container-meta-old", "x"),
            ("x-container-read", ".r:*"),
            ("x-remove-versions-location", "1"),
            ("x-unknown", "v"),
        ]);
        let c = change_from(
            "container",
            &["x-container-read", "x-versions-location"],
            &h,
        )
        .unwrap();
        assert_eq!(c.set.len(), 2);
        assert_eq!(c.set["x-container-read"], ".r:*");
        let mut removed = c.removed.clone();
        removed.sort();
        assert_eq!(
            removed,
            [
                "x-container-meta-gone",
                "x-container-meta-old",
                "x-versions-location"
            ]
        );
    }

    #[test]
    fn metadata_limits_are_swifts() {
        let long = "v".repeat(257);
        assert!(change_from("account", &[], &map(&[("x-account-meta-a", &long)])).is_err());
        let name = format!("x-object-meta-{}", "n".repeat(129));
        assert!(object_headers(&map(&[(&name, "v")]), 0).is_err());
    }

    #[test]
    fn object_headers_keep_what_swift_keeps_and_make_delete_after_absolute() {
        let h = map(&[
            ("x-object-meta-a", "1"),
            ("content-disposition", "attachment"),
            ("x-delete-after", "60"),
            ("x-trans-id-extra", "no"),
        ]);
        let o = object_headers(&h, 1000).unwrap();
        assert_eq!(o["x-delete-at"], "1060");
        assert_eq!(o.len(), 3);
        assert!(object_headers(&map(&[("x-delete-at", "999")]), 1000).is_err());
        assert!(object_headers(&map(&[("x-object-manifest", "noslash")]), 0).is_err());
        assert!(object_headers(&map(&[("x-object-manifest", "c/prefix")]), 0).is_ok());
    }
}
