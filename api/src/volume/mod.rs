//! Cinder (block storage v3): version discovery, microversions, volumes (with their actions and the legacy
//! attach flow), attachments, volume types, snapshots, quotas, limits, services, availability zones and
//! pools, with Cinder's policy and fault bodies. The API records what was asked; the volume service
//! (strata-volume) does the work on the backends, and clients poll for the outcome.
//!
//! Every route is served both as `/v3/{project_id}/...` and as `/v3/...` (the catalog's URL has no project
//! id; Cinder accepts both since 3.67). A project id in the URL must be the token's (Cinder's "Malformed
//! request url" otherwise).

mod actions;
mod admin;
mod attachments;
mod backups;
mod error;
mod metadata;
mod policy;
mod snapshots;
mod types;
mod volumes;

use std::collections::BTreeMap;

use actix_web::dev::ServiceRequest;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures::future::{ready, Ready};
use serde_json::{json, Map, Value};

pub use error::{Cinder, CinderError};
pub use policy::POLICY;
pub use strata_volume::service::{
    begin_delete, default_type_row, release, undeletable, DEFAULT_TYPE_ID, DEFAULT_TYPE_NAME,
};
pub use strata_volume::{create_volume, discard_volume, NewVolume, VolumeError, Volumes};

/// The microversions this server implements: 3.0 up to 3.[`MAX_MINOR`]. 3.68 (os-reimage) needs a re-image
/// flow in the volume service, so it is not offered.
pub const MIN_MINOR: u32 = 0;
pub const MAX_MINOR: u32 = 67;

/// The longest list one request returns (Cinder's `osapi_max_limit`).
const MAX_LIMIT: usize = 1000;

/// What a project id in a URL may look like (Cinder's `project_id_regex`): hex and dashes, which keeps
/// `/v3/{project_id}/volumes` apart from `/v3/volumes/{id}`.
const PROJECT_ID_RE: &str = "[0-9a-fA-F-]+";

/// Both spellings of a route: with the project id and without it.
fn paths(suffix: &str) -> Vec<String> {
    vec![
        format!("/v3/{{project_id:{PROJECT_ID_RE}}}{suffix}"),
        format!("/v3{suffix}"),
    ]
}

/// A resource under both spellings; methods it does not serve are a 404, as Cinder's router answers them.
fn resource(suffix: &str) -> actix_web::Resource {
    web::resource(paths(suffix)).default_service(web::to(not_found))
}

// ---------------------------------------------------------------------------------------------------------
// Microversions

/// The negotiated microversion's minor number (3.X).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Microversion(pub u32);

impl Microversion {
    pub fn at_least(self, minor: u32) -> bool {
        self.0 >= minor
    }
}

/// Cinder's microversions (`OpenStack-API-Version: volume 3.X`).
pub static MICROVERSIONS: crate::microversion::Negotiator = crate::microversion::Negotiator {
    service: "volume",
    major: 3,
    min_minor: MIN_MINOR,
    max_minor: MAX_MINOR,
    legacy_header: None,
    malformed: |value| {
        format!(
            "API Version String {value} is of invalid format. Must be of format MajorNum.MinorNum."
        )
    },
};

/// Middleware: negotiate the microversion, refuse unsupported ones, and echo the version in the response.
pub fn microversion_middleware<S: crate::microversion::Inner<B>, B: 'static>(
    req: ServiceRequest,
    srv: &S,
) -> crate::microversion::Answer<B> {
    MICROVERSIONS.middleware::<S, B, CinderError>(req, srv)
}

impl FromRequest for Microversion {
    type Error = CinderError;
    type Future = Ready<Result<Self, CinderError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(Microversion(MICROVERSIONS.of(req))))
    }
}

/// 404 for APIs newer than the negotiated microversion, as Cinder answers them.
fn require(mv: Microversion, minor: u32) -> Result<(), CinderError> {
    if mv.at_least(minor) {
        Ok(())
    } else {
        Err(CinderError::not_found("The resource could not be found."))
    }
}

// ---------------------------------------------------------------------------------------------------------
// The caller

/// The authenticated caller of a Cinder request (project-scoped token): its token, for policy, and the caller
/// context the services take (`Deref`s to it).
pub type Caller = crate::common::ProjectCaller<Cinder>;

impl crate::common::CallerScope for Cinder {
    type Error = CinderError;
    fn unscoped() -> CinderError {
        CinderError::forbidden("The block storage API needs a project-scoped token.")
    }
    /// A project id in the URL must be the token's.
    fn check(req: &HttpRequest, project_id: &str) -> Result<(), CinderError> {
        match req.match_info().get("project_id") {
            Some(url_project) if url_project != project_id => {
                Err(CinderError::bad_request("Malformed request url"))
            }
            _ => Ok(()),
        }
    }
}

impl Caller {
    /// Cinder's default policy for `action` in the caller's project (403 "Policy doesn't allow ..."). A
    /// resource the caller may act on is one it may see: its own project's, or any for an admin.
    pub fn enforce(&self, action: &str) -> Result<(), CinderError> {
        POLICY.enforce(&self.auth, action, &self.project_id, CinderError::policy)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Request parsing shared by the handlers

/// A path parameter by name (routes have two spellings, so positions differ).
fn param(req: &HttpRequest, name: &str) -> String {
    req.match_info().get(name).unwrap_or_default().to_string()
}

/// The first value of the query parameter `key`.
fn query_value<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A boolean query parameter (`all_tenants`, `cascade`, ...): false when absent, Cinder's boolean strings
/// otherwise.
fn query_flag(q: &[(String, String)], key: &str) -> Result<bool, CinderError> {
    query_value(q, key)
        .map(|v| parse_bool(&json!(v), key))
        .transpose()
        .map(|b| b.unwrap_or(false))
}

/// Refuse keys the request schema does not have.
fn only_keys(m: &Map<String, Value>, allowed: &[&str]) -> Result<(), CinderError> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(CinderError::bad_request(format!(
            "Additional properties are not allowed ('{k}' was unexpected)"
        ))),
        None => Ok(()),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, CinderError> {
    serde_json::from_slice(body).map_err(|_| CinderError::bad_request("Malformed request body"))
}

fn invalid_field(field: &str, value: &Value, why: &str) -> CinderError {
    CinderError::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {value}. {why}"
    ))
}

/// `body[key]`, which must be an object.
fn body_object<'a>(v: &'a Value, key: &str) -> Result<&'a Map<String, Value>, CinderError> {
    match v.get(key) {
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(invalid_field(key, other, "is not of type 'object'")),
        None => Err(CinderError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {v}. '{key}' is a required property"
        ))),
    }
}

/// An optional name or description: a string (whitespace trimmed, at most 255 characters) or null.
fn opt_text(m: &Map<String, Value>, key: &str) -> Result<Option<String>, CinderError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(String::new())),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.chars().count() > strata_actors::volume::NAME_MAX {
                return Err(CinderError::invalid_input(format!(
                    "{key} has {} characters, more than 255.",
                    t.chars().count()
                )));
            }
            Ok(Some(t.to_string()))
        }
        Some(other) => Err(invalid_field(key, other, "is not of type 'string', 'null'")),
    }
}

/// A name or description under its key or, when that is absent, under its v1 spelling (`display_name`,
/// `display_description`).
fn text_or_legacy(
    m: &Map<String, Value>,
    key: &str,
    legacy: &str,
) -> Result<Option<String>, CinderError> {
    match opt_text(m, key)? {
        Some(t) => Ok(Some(t)),
        None => opt_text(m, legacy),
    }
}

/// An optional UUID: absent or null is `None`.
fn opt_uuid(m: &Map<String, Value>, key: &str) -> Result<Option<String>, CinderError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => Ok(Some(s.clone())),
        Some(other) => Err(invalid_field(
            key,
            other,
            &format!("{other} is not a 'uuid'"),
        )),
    }
}

/// A metadata object: string keys (1-255 characters) to string values (at most 255).
fn metadata_map(v: &Value, field: &str) -> Result<BTreeMap<String, String>, CinderError> {
    let m = match v {
        Value::Object(m) => m,
        Value::Null => return Ok(BTreeMap::new()),
        other => return Err(invalid_field(field, other, "is not of type 'object'")),
    };
    let mut out = BTreeMap::new();
    for (k, val) in m {
        let s = match val {
            Value::String(s) => s.clone(),
            other => {
                return Err(invalid_field(
                    field,
                    other,
                    &format!("The value of metadata key {k} is not a string"),
                ))
            }
        };
        if k.is_empty() || k.chars().count() > 255 {
            return Err(CinderError::invalid_input(
                "Metadata property key blank or longer than 255 characters.",
            ));
        }
        if s.chars().count() > 255 {
            return Err(CinderError::invalid_input(format!(
                "Metadata property key {k} value is longer than 255 characters."
            )));
        }
        out.insert(k.clone(), s);
    }
    Ok(out)
}

/// A boolean given as JSON or as one of Cinder's strings (true/false, t/f, 1/0, yes/no, y/n, on/off).
fn parse_bool(v: &Value, field: &str) -> Result<bool, CinderError> {
    let s = match v {
        Value::Bool(b) => return Ok(*b),
        Value::String(s) => s.to_ascii_lowercase(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(CinderError::invalid_input(format!(
                "{field}={other} is not a valid boolean value."
            )))
        }
    };
    match s.as_str() {
        "true" | "t" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "f" | "0" | "no" | "n" | "off" => Ok(false),
        _ => Err(CinderError::invalid_input(format!(
            "{field}={s} is not a valid boolean value."
        ))),
    }
}

/// A size in GB: a positive integer, as a number or a numeric string.
fn parse_size(v: &Value, field: &str) -> Result<u64, CinderError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n > 0 && n <= i32::MAX as u64 => Ok(n),
        _ => Err(CinderError::invalid_input(format!(
            "{field} must be an integer and greater than 0: {v}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Listing: pagination and sorting shared by volumes and snapshots

/// A value rows are sorted by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortValue {
    Int(i64),
    Text(String),
}

/// `limit`, `marker`, `offset`, the sort keys and `with_count` of a list request.
struct Page {
    limit: Option<usize>,
    marker: Option<String>,
    offset: usize,
    /// (key, descending)
    sort: Vec<(String, bool)>,
    with_count: bool,
}

/// Query parameters that paginate or sort rather than filter.
const PAGE_KEYS: &[&str] = &[
    "limit",
    "marker",
    "offset",
    "sort",
    "sort_key",
    "sort_dir",
    "with_count",
];

impl Page {
    fn parse(q: &[(String, String)], mv: Microversion) -> Result<Page, CinderError> {
        let get = |k: &str| query_value(q, k);
        let limit = match get("limit") {
            None => None,
            Some(v) => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| CinderError::bad_request("limit param must be an integer"))?;
                if n < 0 {
                    return Err(CinderError::bad_request("limit param must be positive"));
                }
                Some(n as usize)
            }
        };
        let offset = match get("offset") {
            None => 0,
            Some(v) => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| CinderError::bad_request("offset param must be an integer"))?;
                if n < 0 {
                    return Err(CinderError::bad_request("offset param must be positive"));
                }
                n as usize
            }
        };
        let dir = |d: &str| match d {
            "asc" => Ok(false),
            "desc" => Ok(true),
            _ => Err(CinderError::invalid_input(
                "Unknown sort direction, must be 'desc' or 'asc'",
            )),
        };
        let mut sort = Vec::new();
        if let Some(s) = get("sort") {
            if get("sort_key").is_some() || get("sort_dir").is_some() {
                return Err(CinderError::invalid_input(
                    "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.",
                ));
            }
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, d) = part.split_once(':').unwrap_or((part, "desc"));
                sort.push((k.trim().to_string(), dir(d.trim())?));
            }
        } else {
            let keys: Vec<&str> = get("sort_key")
                .map(|k| k.split(',').collect())
                .unwrap_or_default();
            let dirs: Vec<&str> = get("sort_dir")
                .map(|d| d.split(',').collect())
                .unwrap_or_default();
            for (i, k) in keys.iter().enumerate() {
                let d = dirs.get(i).or(dirs.last()).copied().unwrap_or("desc");
                sort.push((k.trim().to_string(), dir(d.trim())?));
            }
            if keys.is_empty() && !dirs.is_empty() {
                sort.push(("created_at".into(), dir(dirs[0].trim())?));
            }
        }
        if sort.is_empty() {
            sort.push(("created_at".into(), true));
        }
        let with_count = match get("with_count") {
            Some(v) if mv.at_least(45) => parse_bool(&json!(v), "with_count")?,
            _ => false,
        };
        Ok(Page {
            limit,
            marker: get("marker").map(str::to_string),
            offset,
            sort,
            with_count,
        })
    }

    /// Sort `rows` by the page's keys (id, descending, breaks ties), then cut the page out. Returns the page
    /// and the total before cutting.
    fn apply<T: Listed>(&self, mut rows: Vec<T>) -> Result<(Vec<T>, usize), CinderError> {
        if let Some((k, _)) = self
            .sort
            .iter()
            .find(|(k, _)| !T::SORT_KEYS.contains(&k.as_str()))
        {
            return Err(CinderError::invalid_input(format!("Invalid sort key {k}")));
        }
        rows.sort_by(|a, b| {
            for (k, desc) in &self.sort {
                let (x, y) = (a.sort_value(k), b.sort_value(k));
                let o = if *desc { y.cmp(&x) } else { x.cmp(&y) };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            b.id().cmp(a.id())
        });
        let total = rows.len();
        if let Some(m) = &self.marker {
            let pos = rows
                .iter()
                .position(|r| r.id() == m)
                .ok_or_else(|| CinderError::not_found(format!("Marker {m} could not be found.")))?;
            rows.drain(..=pos);
        }
        let rows: Vec<T> = rows
            .into_iter()
            .skip(self.offset)
            .take(self.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT))
            .collect();
        Ok((rows, total))
    }

    /// The `<collection>_links` of a page that may have more after it.
    fn links(
        &self,
        req: &HttpRequest,
        q: &[(String, String)],
        returned: usize,
        last_id: Option<&str>,
    ) -> Option<Value> {
        let max = self.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
        let last = last_id?;
        if returned == 0 || returned < max {
            return None;
        }
        let mut query: Vec<String> = q
            .iter()
            .filter(|(k, _)| k != "marker" && k != "limit")
            .map(|(k, v)| format!("{}={}", crate::common::encode(k), crate::common::encode(v)))
            .collect();
        query.push(format!("limit={max}"));
        query.push(format!("marker={}", crate::common::encode(last)));
        let base = crate::common::base_url(req);
        Some(json!([{
            "rel": "next",
            "href": format!("{base}{}?{}", req.path(), query.join("&")),
        }]))
    }

    /// A list's answer: the page of `rows` (sorted and cut by [`Page::apply`]), each rendered by `render`,
    /// as `{"<collection>": items}`, with `<collection>_links` when there is a next page and `count` when
    /// asked (3.45).
    fn answer<T: Listed>(
        &self,
        req: &HttpRequest,
        q: &[(String, String)],
        collection: &str,
        rows: Vec<T>,
        render: impl Fn(&T) -> Value,
    ) -> Result<HttpResponse, CinderError> {
        let (rows, total) = self.apply(rows)?;
        let items: Vec<Value> = rows.iter().map(render).collect();
        let mut body = json!({ collection: items });
        if let Some(l) = self.links(req, q, rows.len(), rows.last().map(T::id)) {
            body[format!("{collection}_links")] = l;
        }
        if self.with_count {
            body["count"] = json!(total);
        }
        Ok(HttpResponse::Ok().json(body))
    }
}

/// A row of a paged Cinder list (volumes, snapshots, backups): its id, which breaks ties and is the marker,
/// and its value for each sort key the list offers.
trait Listed {
    /// The keys `sort` and `sort_key` may name.
    const SORT_KEYS: &'static [&'static str];
    fn id(&self) -> &str;
    /// The row's value for `key` (one of [`Listed::SORT_KEYS`]).
    fn sort_value(&self, key: &str) -> Option<SortValue>;
}

/// What serves a Cinder list: the rows `caller` may see, in the summary or (`detail`) the detail view.
type Listing =
    fn(&Volumes, &Caller, &HttpRequest, Microversion, bool) -> Result<HttpResponse, CinderError>;

/// `GET` of a collection (`detail` false) or of its `/detail` view, both served by `listing`.
fn list_route(listing: Listing, detail: bool) -> actix_web::Route {
    web::get().to(
        move |vols: web::Data<Volumes>, caller: Caller, req: HttpRequest, mv: Microversion| async move {
            listing(&vols, &caller, &req, mv, detail)
        },
    )
}

/// `op:value` time filters (3.60): true when `value` (Cinder's timestamp text) passes every comparison.
fn time_filter(filter: &str, value: &str) -> Result<bool, CinderError> {
    let bad = || CinderError::invalid_input(format!("Invalid filter value {filter}"));
    let have = parse_time(value);
    for part in filter.split(',') {
        let (op, t) = part.split_once(':').ok_or_else(bad)?;
        let want = parse_time(t).ok_or_else(bad)?;
        let Some(have) = have else { return Ok(false) };
        let ok = match op {
            "gt" => have > want,
            "gte" => have >= want,
            "lt" => have < want,
            "lte" => have <= want,
            "eq" => have == want,
            "neq" => have != want,
            _ => return Err(bad()),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn parse_time(s: &str) -> Option<chrono::NaiveDateTime> {
    let s = s.trim();
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.naive_utc())
        .ok()
        .or_else(|| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .or_else(|| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok())
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// The `metadata` filter: Cinder takes a Python dict literal (`{'k': 'v'}`); JSON is accepted too.
fn metadata_filter(s: &str) -> Result<BTreeMap<String, String>, CinderError> {
    let bad = || CinderError::invalid_input(format!("Invalid metadata filter {s}"));
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(s) {
        return Ok(m
            .into_iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                (k, v)
            })
            .collect());
    }
    let inner = s
        .trim()
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(bad)?;
    let mut out = BTreeMap::new();
    let mut chars = inner.chars().peekable();
    let read_string = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Option<String> {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let quote = chars.next()?;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let mut s = String::new();
        loop {
            match chars.next()? {
                '\\' => s.push(chars.next()?),
                c if c == quote => return Some(s),
                c => s.push(c),
            }
        }
    };
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let k = read_string(&mut chars).ok_or_else(bad)?;
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some(':') {
            return Err(bad());
        }
        let v = read_string(&mut chars).ok_or_else(bad)?;
        out.insert(k, v);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(_) => return Err(bad()),
        }
    }
    Ok(out)
}

/// Non-admins may only filter by the keys Cinder's resource filters allow (3.31); `like` filters (`name~`)
/// need 3.34.
fn check_filters(
    caller: &Caller,
    mv: Microversion,
    q: &[(String, String)],
    allowed: &[&str],
) -> Result<(), CinderError> {
    let mut invalid: Vec<&str> = Vec::new();
    for (k, _) in q {
        if PAGE_KEYS.contains(&k.as_str()) || k == "all_tenants" || caller.is_admin {
            continue;
        }
        let base = k.strip_suffix('~').filter(|_| mv.at_least(34)).unwrap_or(k);
        if !allowed.contains(&base) {
            invalid.push(k);
        }
    }
    if !invalid.is_empty() && mv.at_least(31) {
        return Err(CinderError::invalid_input(format!(
            "Invalid filters {} are found in query options.",
            invalid.join(",")
        )));
    }
    Ok(())
}

/// Whether `value` passes the filter `key` (exact, or a substring for `key~`) given in `q`.
fn text_matches(q: &[(String, String)], key: &str, value: &str) -> bool {
    q.iter().all(|(k, v)| {
        if k == key {
            value == v
        } else if k.strip_suffix('~') == Some(key) {
            value.contains(v.as_str())
        } else {
            true
        }
    })
}

fn nullable(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        json!(s)
    }
}

/// Cinder's `links`: self under /v3/<project>, bookmark without the version.
fn links(req: &HttpRequest, project: &str, kind: &str, id: &str) -> Value {
    let base = crate::common::base_url(req);
    json!([
        { "rel": "self", "href": format!("{base}/v3/{project}/{kind}/{id}") },
        { "rel": "bookmark", "href": format!("{base}/{project}/{kind}/{id}") },
    ])
}

// ---------------------------------------------------------------------------------------------------------
// Version discovery and routes

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v3.0",
        "status": "CURRENT",
        "version": format!("3.{MAX_MINOR}"),
        "min_version": format!("3.{MIN_MINOR}"),
        "updated": "2021-09-16T00:00:00Z",
        "links": [
            { "rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/" },
            { "rel": "self", "href": format!("{base}/v3/") },
        ],
        "media-types": [{ "base": "application/json", "type": "application/vnd.openstack.volume+json;version=3" }],
    })
}

/// `GET /`: every version, with 300 Multiple Choices as Cinder answers.
async fn versions(req: HttpRequest) -> HttpResponse {
    let base = crate::common::base_url(&req);
    HttpResponse::MultipleChoices().json(json!({ "versions": [version_doc(&base)] }))
}

/// `GET /v3/`: the v3 version.
async fn version_v3(req: HttpRequest) -> HttpResponse {
    let base = crate::common::base_url(&req);
    HttpResponse::Ok().json(json!({ "versions": [version_doc(&base)] }))
}

async fn not_found() -> Result<HttpResponse, CinderError> {
    Err(CinderError::not_found("The resource could not be found."))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(versions))
        .route("/v3", web::get().to(version_v3))
        .route("/v3/", web::get().to(version_v3));
    volumes::configure(cfg);
    attachments::configure(cfg);
    snapshots::configure(cfg);
    backups::configure(cfg);
    types::configure(cfg);
    admin::configure(cfg);
}

/// Register every Cinder route, behind [`microversion_middleware`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap_fn(microversion_middleware)
            .configure(routes)
            .default_service(web::to(not_found)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_filters_in_python_or_json() {
        let want: BTreeMap<String, String> = [
            ("k".to_string(), "v 1".to_string()),
            ("a".into(), "b".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(metadata_filter("{'k': 'v 1', 'a': \"b\"}").unwrap(), want);
        assert_eq!(metadata_filter(r#"{"k": "v 1", "a": "b"}"#).unwrap(), want);
        assert!(metadata_filter("k=v").is_err());
        assert!(metadata_filter("{}").unwrap().is_empty());
    }

    #[test]
    fn time_filters() {
        let t = "2024-05-01T10:00:00.000000";
        assert!(time_filter("gt:2024-04-30T00:00:00", t).unwrap());
        assert!(!time_filter("lt:2024-04-30", t).unwrap());
        assert!(time_filter("gte:2024-05-01T10:00:00Z,lte:2024-05-02", t).unwrap());
        assert!(time_filter("xx:2024", t).is_err());
    }
}
