//! Neutron's list conventions, shared by every collection: attribute filters (repeated keys are alternatives),
//! `tags`/`tags-any`/`not-tags`/`not-tags-any`, `sort_key`/`sort_dir`, `limit`/`marker`/`page_reverse` with
//! `<collection>_links`, and `fields`. They work on the JSON representation of each row, so any resource
//! that renders its rows can use them. Also the conventions of one resource every collection shares: `fields`
//! on a show, the read-only attributes of an update.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{body_object, check_keys, if_match_revision, Caller, NeutronError};

/// Query keys that shape the list rather than filter it.
const CONTROL: &[&str] = &[
    "fields",
    "sort_key",
    "sort_dir",
    "limit",
    "marker",
    "page_reverse",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
];

/// The most rows one page returns.
pub const MAX_LIMIT: usize = 10_000;

/// A parsed list request.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub fields: Vec<String>,
    /// (attribute, descending)
    pub sort: Vec<(String, bool)>,
    pub limit: Option<usize>,
    pub marker: Option<String>,
    pub page_reverse: bool,
    /// attribute -> accepted values
    pub filters: Vec<(String, Vec<String>)>,
    pub tags: Vec<String>,
    pub tags_any: Vec<String>,
    pub not_tags: Vec<String>,
    pub not_tags_any: Vec<String>,
    /// The raw pairs, for links.
    pairs: Vec<(String, String)>,
}

fn split_tags(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

impl ListQuery {
    pub fn parse(req: &HttpRequest) -> Result<ListQuery, NeutronError> {
        Self::from_pairs(crate::common::query_pairs(req))
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<ListQuery, NeutronError> {
        let all = |k: &str| -> Vec<String> {
            pairs
                .iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let keys = all("sort_key");
        let dirs = all("sort_dir");
        if !dirs.is_empty() && dirs.len() != keys.len() {
            return Err(NeutronError::bad_request(
                "The number of sort_keys and sort_dirs must be the same",
            ));
        }
        let mut sort = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let desc = match dirs.get(i).map(|d| d.to_ascii_lowercase()) {
                None => false,
                Some(d) if d == "asc" => false,
                Some(d) if d == "desc" => true,
                Some(d) => {
                    return Err(NeutronError::bad_request(format!(
                        "{d} is an invalid value for sort_dir, valid values are 'asc' and 'desc'"
                    )))
                }
            };
            sort.push((k.clone(), desc));
        }
        let limit = match all("limit").last() {
            None => None,
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if n < 0 => {
                    return Err(NeutronError::bad_request(format!(
                        "Limit must be an integer 0 or greater and not '{v}'"
                    )))
                }
                Ok(0) => None,
                Ok(n) => Some(n as usize),
                Err(_) => {
                    return Err(NeutronError::bad_request(format!(
                        "Limit must be an integer 0 or greater and not '{v}'"
                    )))
                }
            },
        };
        let page_reverse = all("page_reverse")
            .last()
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let fields: Vec<String> = all("fields")
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        let mut filters: Vec<(String, Vec<String>)> = Vec::new();
        for (k, v) in &pairs {
            if CONTROL.contains(&k.as_str()) {
                continue;
            }
            match filters.iter_mut().find(|(fk, _)| fk == k) {
                Some((_, vals)) => vals.push(v.clone()),
                None => filters.push((k.clone(), vec![v.clone()])),
            }
        }
        Ok(ListQuery {
            fields,
            sort,
            limit,
            marker: all("marker").last().cloned(),
            page_reverse,
            filters,
            tags: split_tags(&pairs, "tags"),
            tags_any: split_tags(&pairs, "tags-any"),
            not_tags: split_tags(&pairs, "not-tags"),
            not_tags_any: split_tags(&pairs, "not-tags-any"),
            pairs,
        })
    }

    /// The value of a filter on `key`, when exactly one was given (handlers use it to narrow early).
    pub fn filter(&self, key: &str) -> Option<&str> {
        self.filters
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| (v.len() == 1).then(|| v[0].as_str()))
    }

    fn keeps(&self, row: &Map<String, Value>) -> bool {
        for (k, wanted) in &self.filters {
            let Some(have) = row.get(k) else {
                // Not an attribute of this resource (or not shown to this caller): ignored, as Neutron does.
                continue;
            };
            if !wanted.iter().any(|w| value_matches(k, have, w)) {
                return false;
            }
        }
        let tags: Vec<&str> = row
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let has = |t: &String| tags.contains(&t.as_str());
        if !self.tags.iter().all(has) {
            return false;
        }
        if !self.tags_any.is_empty() && !self.tags_any.iter().any(has) {
            return false;
        }
        if !self.not_tags.is_empty() && self.not_tags.iter().all(has) {
            return false;
        }
        if self.not_tags_any.iter().any(has) {
            return false;
        }
        true
    }
}

/// Whether attribute `key` with value `have` equals the query text `want`.
fn value_matches(key: &str, have: &Value, want: &str) -> bool {
    match have {
        Value::String(s) => s == want,
        Value::Bool(b) => match want.to_ascii_lowercase().as_str() {
            "true" | "1" => *b,
            "false" | "0" => !*b,
            _ => false,
        },
        Value::Number(n) => n.to_string() == want.trim(),
        Value::Null => want.is_empty() || want == "None",
        // fixed_ips=ip_address=10.0.0.3, fixed_ips=subnet_id=..., fixed_ips=ip_address_substr=...
        Value::Array(items) if key == "fixed_ips" => {
            let (k, v) = want.split_once('=').unwrap_or(("ip_address", want));
            items.iter().any(|item| match k {
                "ip_address_substr" => item["ip_address"].as_str().is_some_and(|ip| ip.contains(v)),
                _ => item[k].as_str() == Some(v),
            })
        }
        Value::Array(items) => items.iter().any(|i| value_matches(key, i, want)),
        Value::Object(_) => false,
    }
}

/// An ordering key of a JSON value (numbers before text; null first).
fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (x, y) => x.to_string().cmp(&y.to_string()),
    }
}

/// Only the asked fields of a resource (all when none are asked).
pub fn select_fields(row: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return row;
    }
    match row {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| fields.iter().any(|f| f == k))
                .collect(),
        ),
        other => other,
    }
}

/// `fields` of a show request.
pub fn fields_of(req: &HttpRequest) -> Vec<String> {
    crate::common::query_pairs(req)
        .into_iter()
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Answer a show: `{"<key>": <row trimmed to the request's fields>}`.
pub fn show(req: &HttpRequest, key: &str, row: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({ key: select_fields(row, &fields_of(req)) }))
}

/// The start of a create: the policy `action`, then the `{"<key>": {...}}` body, which may only name the
/// attributes in `keys`.
pub fn create_request(
    caller: &Caller,
    action: &str,
    body: &[u8],
    key: &str,
    keys: &[&str],
) -> Result<Map<String, Value>, NeutronError> {
    caller.enforce(action)?;
    let m = body_object(body, key)?;
    check_keys(&m, keys)?;
    Ok(m)
}

/// The start of every update: the policy `action`, the `If-Match: revision_number=N` constraint, and the
/// `{"<key>": {...}}` body, checked in that order.
pub fn update_request(
    caller: &Caller,
    action: &str,
    req: &HttpRequest,
    body: &[u8],
    key: &str,
) -> Result<(Option<u64>, Map<String, Value>), NeutronError> {
    caller.enforce(action)?;
    let if_revision = if_match_revision(req)?;
    let m = body_object(body, key)?;
    Ok((if_revision, m))
}

/// An update body may only name the attributes in `updatable` (400 "Cannot update read-only attribute").
pub fn check_updatable(m: &Map<String, Value>, updatable: &[&str]) -> Result<(), NeutronError> {
    match m.keys().find(|k| !updatable.contains(&k.as_str())) {
        Some(k) => Err(NeutronError::bad_request(format!(
            "Cannot update read-only attribute {k}"
        ))),
        None => Ok(()),
    }
}

/// A list attribute of an update body, which replaces the resource's: absent leaves it (`None`), null
/// empties it, anything else is `parse`d.
pub fn replacement<T, E>(
    m: &Map<String, Value>,
    key: &str,
    parse: impl FnOnce(&Value) -> Result<Vec<T>, E>,
) -> Result<Option<Vec<T>>, NeutronError>
where
    NeutronError: From<E>,
{
    match m.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(vec![])),
        Some(v) => Ok(Some(parse(v)?)),
    }
}

/// Filter, sort, page and trim `rows` (each a JSON object with an `id`) as `q` asks; the response body is
/// `{"<collection>": [...], "<collection>_links": [...]}`.
pub fn respond(
    req: &HttpRequest,
    q: &ListQuery,
    collection: &str,
    rows: Vec<Value>,
) -> Result<HttpResponse, NeutronError> {
    let body = page(q, collection, rows, &link_base(req))?;
    Ok(HttpResponse::Ok().json(body))
}

fn link_base(req: &HttpRequest) -> String {
    format!("{}{}", crate::common::base_url(req), req.path())
}

/// The page as a JSON body (separate from HTTP for tests).
pub fn page(
    q: &ListQuery,
    collection: &str,
    rows: Vec<Value>,
    base: &str,
) -> Result<Value, NeutronError> {
    let mut rows: Vec<Map<String, Value>> = rows
        .into_iter()
        .filter_map(|r| match r {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .filter(|m| q.keeps(m))
        .collect();
    for (k, _) in &q.sort {
        if !rows.is_empty() && !rows.iter().any(|r| r.contains_key(k)) {
            return Err(NeutronError::bad_request(format!(
                "{k} is an invalid attribute for sort_key"
            )));
        }
    }
    fn id_of(r: &Map<String, Value>) -> &str {
        r.get("id").and_then(Value::as_str).unwrap_or("")
    }
    rows.sort_by(|a, b| {
        for (k, desc) in &q.sort {
            let null = Value::Null;
            let o = cmp_values(a.get(k).unwrap_or(&null), b.get(k).unwrap_or(&null));
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        id_of(a).cmp(id_of(b))
    });
    let (page, more) = window(q, rows, id_of)?;
    let ids: Vec<String> = page.iter().map(|m| id_of(m).to_string()).collect();
    let items = page.into_iter().map(Value::Object).collect();
    Ok(body(q, collection, items, &ids, more, base))
}

/// The rows of the page `q` asks for out of `rows` (already in listing order), and whether more follow.
fn window<T>(
    q: &ListQuery,
    mut rows: Vec<T>,
    id_of: impl Fn(&T) -> &str,
) -> Result<(Vec<T>, bool), NeutronError> {
    if q.page_reverse {
        rows.reverse();
    }
    let mut start = 0;
    if let Some(m) = &q.marker {
        let pos = rows.iter().position(|r| id_of(r) == m).ok_or_else(|| {
            NeutronError::not_found("NotFound", format!("The marker {m} could not be found."))
        })?;
        start = pos + 1;
    }
    let limit = q.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    let end = (start + limit).min(rows.len());
    let more = end < rows.len();
    let mut page: Vec<T> = rows.drain(start.min(end)..end).collect();
    if q.page_reverse {
        page.reverse();
    }
    Ok((page, more))
}

/// The response body: the page's items (trimmed to `fields`) and the links around it.
fn body(
    q: &ListQuery,
    collection: &str,
    items: Vec<Value>,
    ids: &[String],
    more: bool,
    base: &str,
) -> Value {
    let mut links = Vec::new();
    if q.limit.is_some() {
        let query = |marker: &str, reverse: bool| {
            let mut parts: Vec<String> = q
                .pairs
                .iter()
                .filter(|(k, _)| k != "marker" && k != "page_reverse")
                .map(|(k, v)| format!("{}={}", crate::common::encode(k), crate::common::encode(v)))
                .collect();
            parts.push(format!("marker={}", crate::common::encode(marker)));
            if reverse {
                parts.push("page_reverse=True".into());
            }
            format!("{base}?{}", parts.join("&"))
        };
        // "next" continues in the direction of the listing, "previous" goes back from the page's first row.
        let forward_more = if q.page_reverse {
            q.marker.is_some()
        } else {
            more
        };
        let backward_more = if q.page_reverse {
            more
        } else {
            q.marker.is_some()
        };
        if let (true, Some(last)) = (forward_more, ids.last()) {
            links.push(json!({ "rel": "next", "href": query(last, false) }));
        }
        if let (true, Some(first)) = (backward_more, ids.first()) {
            links.push(json!({ "rel": "previous", "href": query(first, true) }));
        }
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|v| select_fields(v, &q.fields))
        .collect();
    let mut body = Map::new();
    body.insert(collection.to_string(), Value::Array(items));
    if !links.is_empty() {
        body.insert(format!("{collection}_links"), Value::Array(links));
    }
    Value::Object(body)
}

/// Like [`respond`], for typed rows: when the request neither filters nor sorts (a plain page in id
/// order, what clients paging a large collection send), only the page's rows are rendered.
pub fn respond_rows<T>(
    req: &HttpRequest,
    q: &ListQuery,
    collection: &str,
    mut rows: Vec<T>,
    id_of: impl Fn(&T) -> &str,
    render: impl Fn(&T) -> Value,
) -> Result<HttpResponse, NeutronError> {
    let plain = q.filters.is_empty()
        && q.sort.is_empty()
        && q.tags.is_empty()
        && q.tags_any.is_empty()
        && q.not_tags.is_empty()
        && q.not_tags_any.is_empty();
    if !plain {
        return respond(req, q, collection, rows.iter().map(render).collect());
    }
    rows.sort_by(|a, b| id_of(a).cmp(id_of(b)));
    let (page, more) = window(q, rows, &id_of)?;
    let ids: Vec<String> = page.iter().map(|r| id_of(r).to_string()).collect();
    let items = page.iter().map(render).collect();
    Ok(HttpResponse::Ok().json(body(q, collection, items, &ids, more, &link_base(req))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> ListQuery {
        let pairs = s
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        ListQuery::from_pairs(pairs).unwrap()
    }

    fn rows() -> Vec<Value> {
        (1..=5)
            .map(|i| {
                json!({
                    "id": format!("id{i}"),
                    "name": format!("n{}", 6 - i),
                    "shared": i % 2 == 0,
                    "mtu": 1500 - i,
                    "tags": if i <= 2 { json!(["a", "b"]) } else { json!(["b"]) },
                    "fixed_ips": [{"subnet_id": "s", "ip_address": format!("10.0.0.{i}")}],
                })
            })
            .collect()
    }

    fn ids(v: &Value, c: &str) -> Vec<String> {
        v[c].as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn filters_tags_sorting_and_fields() {
        let p = page(&q("shared=True"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id2", "id4"]);
        let p = page(&q("name=n1&name=n2"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id4", "id5"]);
        let p = page(&q("fixed_ips=ip_address=10.0.0.3"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id3"]);
        let p = page(&q("tags=a,b"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id1", "id2"]);
        let p = page(&q("not-tags-any=a"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id3", "id4", "id5"]);
        let p = page(&q("tags-any=a&tags=b"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id1", "id2"]);
        let p = page(&q("sort_key=name&sort_dir=asc"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id5", "id4", "id3", "id2", "id1"]);
        let p = page(&q("sort_key=mtu&sort_dir=desc&fields=id"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id1", "id2", "id3", "id4", "id5"]);
        assert_eq!(p["x"][0].as_object().unwrap().len(), 1);
        assert!(page(&q("sort_key=colour"), "x", rows(), "u").is_err());
        assert!(ListQuery::from_pairs(vec![
            ("sort_dir".into(), "up".into()),
            ("sort_key".into(), "id".into())
        ])
        .is_err());
        assert!(ListQuery::from_pairs(vec![("limit".into(), "x".into())]).is_err());
    }

    #[test]
    fn pages_link_forward_and_back() {
        let p = page(&q("limit=2"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id1", "id2"]);
        let links = p["x_links"].as_array().unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0]["rel"], "next");
        assert!(links[0]["href"].as_str().unwrap().contains("marker=id2"));
        let p = page(&q("limit=2&marker=id2"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id3", "id4"]);
        let rels: Vec<&str> = p["x_links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["rel"].as_str().unwrap())
            .collect();
        assert_eq!(rels, ["next", "previous"]);
        let p = page(&q("limit=2&marker=id4"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id5"]);
        // Going back from id3: the two before it, in order.
        let p = page(&q("limit=2&marker=id3&page_reverse=True"), "x", rows(), "u").unwrap();
        assert_eq!(ids(&p, "x"), ["id1", "id2"]);
        let rels: Vec<&str> = p["x_links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["rel"].as_str().unwrap())
            .collect();
        assert_eq!(rels, ["next"]);
        assert!(page(&q("marker=nope"), "x", rows(), "u").is_err());
    }
}
