//! Account and container listings in Swift's three formats (plain text, JSON, XML), with `limit`, `marker`,
//! `end_marker`, `prefix`, `delimiter`, `reverse` and (containers) `path`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde_json::{json, Value};
use strata_object::listing::{list, Entry, ListParams};

use super::{Ctx, SwiftError, LISTING_LIMIT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Plain,
    Json,
    Xml,
}

fn format_of(ctx: &Ctx<'_>) -> Format {
    match ctx.param("format").map(str::to_ascii_lowercase).as_deref() {
        Some("json") => return Format::Json,
        Some("xml") => return Format::Xml,
        Some("plain") => return Format::Plain,
        _ => {}
    }
    let accept = ctx.header("accept").unwrap_or("");
    if accept.contains("application/json") {
        Format::Json
    } else if accept.contains("application/xml") || accept.contains("text/xml") {
        Format::Xml
    } else {
        Format::Plain
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on" | "t" | "y"
    )
}

fn params(ctx: &Ctx<'_>, allow_path: bool) -> Result<ListParams, SwiftError> {
    let limit = match ctx.param("limit") {
        None | Some("") => LISTING_LIMIT,
        Some(l) => {
            let n: usize = l.parse().map_err(|_| {
                SwiftError::precondition_failed("Value of limit must be a positive integer")
            })?;
            if n > LISTING_LIMIT {
                return Err(SwiftError::precondition_failed(&format!(
                    "Maximum limit is {LISTING_LIMIT}"
                )));
            }
            n
        }
    };
    let delimiter = match ctx.param("delimiter") {
        None | Some("") => None,
        Some(d) => {
            let mut chars = d.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => {
                    return Err(SwiftError::precondition_failed(
                        "Bad delimiter parameter: must be one character",
                    ))
                }
            }
        }
    };
    let p = ListParams {
        prefix: ctx.param("prefix").unwrap_or("").to_string(),
        delimiter,
        marker: ctx.param("marker").unwrap_or("").to_string(),
        end_marker: ctx.param("end_marker").unwrap_or("").to_string(),
        limit,
        reverse: ctx.param("reverse").is_some_and(truthy),
    };
    Ok(match ctx.param("path") {
        Some(path) if allow_path => p.with_path(path),
        _ => p,
    })
}

/// Swift's `last_modified` in listings: UTC, microseconds, no zone suffix.
pub fn listing_time(timestamp: &str) -> String {
    let secs = strata_object::service::timestamp_secs(timestamp);
    let micros = (secs * 1_000_000.0).round() as i64;
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        .unwrap_or_default()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One rendered entry: its name, its JSON, its XML element.
struct Rendered {
    name: String,
    json: Value,
    xml: String,
}

fn respond(
    mut builder: HttpResponseBuilder,
    format: Format,
    root: (&str, &str),
    entries: Vec<Rendered>,
) -> Result<HttpResponse, SwiftError> {
    match format {
        Format::Plain => {
            if entries.is_empty() {
                return Ok(builder
                    .status(StatusCode::NO_CONTENT)
                    .content_type("text/plain; charset=utf-8")
                    .finish());
            }
            let mut body = String::new();
            for e in entries {
                body.push_str(&e.name);
                body.push('\n');
            }
            Ok(builder
                .status(StatusCode::OK)
                .content_type("text/plain; charset=utf-8")
                .body(body))
        }
        Format::Json => {
            let list: Vec<Value> = entries.into_iter().map(|e| e.json).collect();
            Ok(builder
                .status(StatusCode::OK)
                .content_type("application/json; charset=utf-8")
                .body(Value::Array(list).to_string()))
        }
        Format::Xml => {
            let (tag, name) = root;
            let mut body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{tag} name=\"{}\">",
                xml_escape(name)
            );
            for e in entries {
                body.push_str(&e.xml);
            }
            body.push_str(&format!("</{tag}>"));
            Ok(builder
                .status(StatusCode::OK)
                .content_type("application/xml; charset=utf-8")
                .body(body))
        }
    }
}

fn subdir(name: String) -> Rendered {
    Rendered {
        json: json!({ "subdir": name }),
        xml: format!(
            "<subdir name=\"{0}\"><name>{0}</name></subdir>",
            xml_escape(&name)
        ),
        name,
    }
}

/// GET on an account: its containers.
pub fn account_listing(
    ctx: &Ctx<'_>,
    builder: HttpResponseBuilder,
) -> Result<HttpResponse, SwiftError> {
    let p = params(ctx, false)?;
    let format = format_of(ctx);
    let entries: Vec<Rendered> = {
        let view = ctx.service().view.snapshot();
        match view.account(&ctx.target.account) {
            None => vec![],
            Some(a) => list(&a.containers, &p, |c| c.state.exists)
                .into_iter()
                .map(|e| match e {
                    Entry::Subdir(s) => subdir(s),
                    Entry::Item(name, c) => {
                        let modified = listing_time(&c.state.created);
                        Rendered {
                            json: json!({
                                "name": name,
                                "count": c.object_count(),
                                "bytes": c.bytes_used,
                                "last_modified": modified,
                            }),
                            xml: format!(
                                "<container><name>{}</name><count>{}</count><bytes>{}</bytes><last_modified>{modified}</last_modified></container>",
                                xml_escape(name),
                                c.object_count(),
                                c.bytes_used
                            ),
                            name: name.to_string(),
                        }
                    }
                })
                .collect(),
        }
    };
    let account = format!("AUTH_{}", ctx.target.account);
    respond(builder, format, ("account", &account), entries)
}

/// GET on a container: its objects (expired ones hidden).
pub fn container_listing(
    ctx: &Ctx<'_>,
    container: &str,
    builder: HttpResponseBuilder,
) -> Result<HttpResponse, SwiftError> {
    let p = params(ctx, true)?;
    let format = format_of(ctx);
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let entries: Vec<Rendered> = {
        let view = ctx.service().view.snapshot();
        let c = view
            .container(&ctx.target.account, container)
            .ok_or_else(SwiftError::not_found)?;
        list(&c.objects, &p, |o| o.delete_at().is_none_or(|at| at > now))
            .into_iter()
            .map(|e| match e {
                Entry::Subdir(s) => subdir(s),
                Entry::Item(name, o) => {
                    let modified = listing_time(&o.timestamp);
                    Rendered {
                        json: json!({
                            "name": name,
                            "hash": o.etag,
                            "bytes": o.size,
                            "content_type": o.content_type,
                            "last_modified": modified,
                        }),
                        xml: format!(
                            "<object><name>{}</name><hash>{}</hash><bytes>{}</bytes><content_type>{}</content_type><last_modified>{modified}</last_modified></object>",
                            xml_escape(name),
                            o.etag,
                            o.size,
                            xml_escape(&o.content_type)
                        ),
                        name: name.to_string(),
                    }
                }
            })
            .collect()
    };
    respond(builder, format, ("container", container), entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_times_are_swifts_format() {
        assert_eq!(
            listing_time("1700000000.12345"),
            "2023-11-14T22:13:20.123450"
        );
        assert_eq!(xml_escape("a<&>\""), "a&lt;&amp;&gt;&quot;");
    }
}
