//! Swift (object storage v1) on :8080: `/v1/AUTH_<project>[/<container>[/<object>]]`, `/info`.
//!
//! One handler takes every request: it decodes the path (Swift's rules: percent-decoded, valid UTF-8, no
//! NUL, name lengths), works out who is asking (`Access`: the account's owner, a reader, another user whose
//! rights come from container ACLs, an anonymous client, or a temp URL), then serves the account, container
//! or object operation. Writes go through `strata_object::ObjectService` (events + blobs); reads come from
//! `ObjectView`. Errors are Swift's status codes with its short HTML or text bodies (`error.rs`).

pub mod acl;
mod bulk;
mod error;
pub mod headers;
mod large;
mod listing;
mod objects;
pub mod range;
pub mod tempurl;

use std::sync::Arc;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures::future::LocalBoxFuture;
use serde_json::json;
use strata_events::{Metadata, Principal};
use strata_object::ObjectService;

pub use error::SwiftError;

use crate::auth::{AuthContext, TokenScope};
use crate::common::RequestId;
use headers::HeaderChange;

/// Longest container and object names, in bytes.
pub use strata_actors::object::{CONTAINER_NAME_MAX, OBJECT_NAME_MAX};

/// Swift's longest account name (`AUTH_<project>`).
pub const ACCOUNT_NAME_MAX: usize = 256;
/// Most entries one listing returns (Swift's `CONTAINER_LISTING_LIMIT` / `ACCOUNT_LISTING_LIMIT`).
pub const LISTING_LIMIT: usize = 10_000;
/// Roles that make a project member the owner of its account (keystoneauth's `operator_roles`).
const OPERATOR_ROLES: &[&str] = &["admin", "member", "swiftoperator"];
/// The role that may act on every account and set account quotas (keystoneauth's reseller admin).
const RESELLER_ROLES: &[&str] = &["admin", "ResellerAdmin"];

/// Container headers a PUT or POST may set besides `X-Container-Meta-*`.
const CONTAINER_SYSTEM_HEADERS: &[&str] = &[
    "x-container-read",
    "x-container-write",
    "x-versions-location",
    "x-history-location",
];

/// The Swift service's state.
pub struct ObjectStorage {
    pub service: Arc<ObjectService>,
}

impl ObjectStorage {
    pub fn new(service: Arc<ObjectService>) -> Self {
        ObjectStorage { service }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.default_service(web::to(dispatch));
}

/// Middleware: Swift's `X-Trans-Id` on every response, the same id as `X-Openstack-Request-Id`. Wrap it
/// inside `request_id_middleware`.
pub fn trans_id_middleware<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    let id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let fut = srv.call(req);
    Box::pin(async move {
        let mut res = fut.await?;
        if let Some(v) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
            res.headers_mut()
                .insert(HeaderName::from_static("x-trans-id"), v);
        }
        Ok(res)
    })
}

/// What a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The project id (the account is `AUTH_<project>`).
    pub account: String,
    pub container: Option<String>,
    pub object: Option<String>,
}

/// Percent-decode a path segment; Swift refuses invalid UTF-8 and NUL with 412.
fn decode_segment(raw: &str) -> Result<String, SwiftError> {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    match String::from_utf8(bytes) {
        Ok(s) if !s.contains('\0') => Ok(s),
        _ => Err(SwiftError::precondition_failed(
            "Invalid UTF8 or contains NULL",
        )),
    }
}

/// Split `/v1/AUTH_<project>[/<container>[/<object>]]`.
pub fn parse_target(path: &str) -> Result<Target, SwiftError> {
    let rest = path
        .strip_prefix("/v1/")
        .ok_or_else(SwiftError::not_found)?;
    let mut parts = rest.splitn(3, '/');
    let account = decode_segment(parts.next().unwrap_or(""))?;
    let account = account
        .strip_prefix("AUTH_")
        .filter(|a| !a.is_empty())
        .ok_or_else(SwiftError::not_found)?
        .to_string();
    let container = parts
        .next()
        .filter(|c| !c.is_empty())
        .map(decode_segment)
        .transpose()?;
    let object = parts
        .next()
        .filter(|o| !o.is_empty())
        .map(decode_segment)
        .transpose()?;
    let account_len = account.len() + "AUTH_".len();
    if account_len > ACCOUNT_NAME_MAX {
        return Err(SwiftError::bad_request(format!(
            "Account name length of {account_len} longer than {ACCOUNT_NAME_MAX}"
        )));
    }
    // Swift's name_check rule: no path segment is `.` or `..` (a container named `..`, an object `a/../b`).
    let dots = |name: &str| name.split('/').any(|seg| seg == "." || seg == "..");
    if container.as_deref().is_some_and(dots) || object.as_deref().is_some_and(dots) {
        return Err(SwiftError::bad_request(
            "Object/Container/Account name contains a forbidden substring from regular expression \
             /\\./|/\\.\\./|/\\.$|/\\.\\.$",
        ));
    }
    if let Some(c) = &container {
        if c.len() > CONTAINER_NAME_MAX {
            return Err(SwiftError::bad_request(format!(
                "Container name length of {} longer than {CONTAINER_NAME_MAX}",
                c.len()
            )));
        }
    }
    if let Some(o) = &object {
        if o.len() > OBJECT_NAME_MAX {
            return Err(SwiftError::bad_request(format!(
                "Object name length of {} longer than {OBJECT_NAME_MAX}",
                o.len()
            )));
        }
    }
    Ok(Target {
        account,
        container,
        object,
    })
}

/// Who is asking, relative to the account the request names.
#[derive(Debug, Clone)]
pub enum Access {
    /// A token of the account's project with an operator role, or a reseller admin.
    Owner {
        ctx: Box<AuthContext>,
        reseller: bool,
    },
    /// The `reader` role in the account's project: GET and HEAD only.
    Reader(Box<AuthContext>),
    /// Another authenticated user: container ACLs decide.
    Other(Box<AuthContext>),
    /// No token: only public-read containers.
    Anonymous,
    /// A valid temp URL signature for this object and method.
    TempUrl,
}

impl Access {
    pub fn is_owner(&self) -> bool {
        matches!(self, Access::Owner { .. })
    }

    pub fn is_reseller(&self) -> bool {
        matches!(self, Access::Owner { reseller: true, .. })
    }

    /// May read the account and every container (owner or reader).
    pub fn reads_all(&self) -> bool {
        matches!(self, Access::Owner { .. } | Access::Reader(_))
    }

    pub fn context(&self) -> Option<&AuthContext> {
        match self {
            Access::Owner { ctx, .. } | Access::Reader(ctx) | Access::Other(ctx) => Some(ctx),
            Access::Anonymous | Access::TempUrl => None,
        }
    }

    /// The refusal for this caller: 401 without credentials, 403 with them.
    pub fn denied(&self) -> SwiftError {
        match self {
            Access::Anonymous | Access::TempUrl => SwiftError::unauthorized(),
            _ => SwiftError::forbidden(),
        }
    }

    /// The principal events are recorded for.
    pub fn principal(&self, account: &str) -> Principal {
        match self.context() {
            Some(ctx) => ctx.principal(),
            None => Principal {
                user_id: match self {
                    Access::TempUrl => "tempurl".into(),
                    _ => "anonymous".into(),
                },
                project_id: account.into(),
                ..Default::default()
            },
        }
    }

    /// The caller as container ACLs see it.
    fn acl_caller(&self) -> Option<acl::Caller<'_>> {
        let ctx = self.context()?;
        let (project_id, project_name) = match &ctx.scope {
            TokenScope::Project { id, name, .. } => (id.as_str(), name.as_str()),
            _ => ("", ""),
        };
        Some(acl::Caller {
            project_id,
            project_name,
            user_id: &ctx.user_id,
            user_name: &ctx.user_name,
        })
    }
}

/// One request being served.
pub struct Ctx<'a> {
    pub store: &'a ObjectStorage,
    pub req: &'a HttpRequest,
    pub target: Target,
    pub access: Access,
    pub request_id: String,
    /// The query string as pairs.
    pub query: Vec<(String, String)>,
}

impl Ctx<'_> {
    pub fn service(&self) -> &ObjectService {
        &self.store.service
    }

    pub fn meta(&self) -> Metadata {
        RequestId(self.request_id.clone()).metadata(self.access.principal(&self.target.account))
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_param(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        headers::get(self.req.headers(), name)
    }

    fn referer(&self) -> Option<&str> {
        self.header("referer")
    }

    /// A container's ACL header, parsed (an unparsable stored ACL grants nothing).
    fn container_acl(&self, container: &str, which: &str) -> acl::ContainerAcl {
        let raw = {
            let view = self.service().view.snapshot();
            view.container(&self.target.account, container)
                .and_then(|c| c.state.headers.get(which).cloned())
        };
        raw.and_then(|r| acl::parse(&r).ok()).unwrap_or_default()
    }

    /// May this caller list `container`?
    pub fn may_list(&self, container: &str) -> bool {
        if self.access.reads_all() {
            return true;
        }
        let read = self.container_acl(container, "x-container-read");
        acl::may_list(&read, self.access.acl_caller().as_ref(), self.referer())
    }

    /// May this caller read objects of `container`?
    pub fn may_read(&self, container: &str) -> bool {
        if self.access.reads_all() || matches!(self.access, Access::TempUrl) {
            return true;
        }
        let read = self.container_acl(container, "x-container-read");
        acl::may_read_object(&read, self.access.acl_caller().as_ref(), self.referer())
    }

    /// May this caller write objects of `container`?
    pub fn may_write(&self, container: &str) -> bool {
        if self.access.is_owner() || matches!(self.access, Access::TempUrl) {
            return true;
        }
        let write = self.container_acl(container, "x-container-write");
        acl::may_write(&write, self.access.acl_caller().as_ref())
    }
}

fn has_any_role(ctx: &AuthContext, roles: &[&str]) -> bool {
    roles.iter().any(|r| ctx.has_role(r))
}

/// Work out the caller's access to `target`'s account. A bad token is 401 whatever the ACLs say.
fn access_for(
    req: &HttpRequest,
    store: &ObjectStorage,
    target: &Target,
    query: &[(String, String)],
) -> Result<Access, SwiftError> {
    if req.headers().contains_key("x-auth-token") {
        let ctx = crate::auth::authenticate(req).map_err(|_| SwiftError::unauthorized())?;
        let own_project = ctx.project_id() == Some(target.account.as_str());
        let reseller = has_any_role(&ctx, RESELLER_ROLES) && ctx.project_id().is_some();
        return Ok(if reseller {
            Access::Owner {
                ctx: Box::new(ctx),
                reseller: true,
            }
        } else if own_project && has_any_role(&ctx, OPERATOR_ROLES) {
            Access::Owner {
                ctx: Box::new(ctx),
                reseller: false,
            }
        } else if own_project && ctx.has_role("reader") {
            Access::Reader(Box::new(ctx))
        } else {
            Access::Other(Box::new(ctx))
        });
    }
    if let Some(q) = tempurl::TempUrlQuery::from_query(query) {
        let (Some(container), Some(_)) = (&target.container, &target.object) else {
            return Err(SwiftError::unauthorized());
        };
        let keys = tempurl_keys(store, &target.account, container);
        let path = req.uri().path();
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let now = chrono::Utc::now().timestamp();
        return tempurl::verify(
            &q,
            req.method().as_str(),
            &decoded,
            &keys,
            &[
                tempurl::Digest::Sha1,
                tempurl::Digest::Sha256,
                tempurl::Digest::Sha512,
            ],
            now,
        )
        .map(|_| Access::TempUrl)
        .map_err(|e| {
            tracing::info!(reason = %e, "temp URL refused");
            SwiftError::unauthorized()
        });
    }
    Ok(Access::Anonymous)
}

/// The temp URL keys of an account and a container.
fn tempurl_keys(store: &ObjectStorage, account: &str, container: &str) -> Vec<String> {
    let view = store.service.view.snapshot();
    let mut keys = Vec::new();
    if let Some(a) = view.account(account) {
        for k in [
            "x-account-meta-temp-url-key",
            "x-account-meta-temp-url-key-2",
        ] {
            keys.extend(a.state.headers.get(k).cloned());
        }
    }
    if let Some(c) = view.container(account, container) {
        for k in [
            "x-container-meta-temp-url-key",
            "x-container-meta-temp-url-key-2",
        ] {
            keys.extend(c.state.headers.get(k).cloned());
        }
    }
    keys
}

async fn dispatch(
    req: HttpRequest,
    body: web::Payload,
    store: web::Data<ObjectStorage>,
    request_id: RequestId,
) -> Result<HttpResponse, SwiftError> {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/info" => return info(&req),
        "/healthcheck" => return Ok(HttpResponse::Ok().content_type("text/plain").body("OK")),
        _ => {}
    }
    let target = parse_target(&path)?;
    let query = crate::common::query_pairs(&req);
    let access = access_for(&req, &store, &target, &query)?;
    let ctx = Ctx {
        store: &store,
        req: &req,
        target,
        access,
        request_id: request_id.0,
        query,
    };
    match (&ctx.target.container, &ctx.target.object) {
        (None, _) => account(&ctx, body).await,
        (Some(_), None) => container(&ctx).await,
        (Some(_), Some(_)) => objects::handle(&ctx, body).await,
    }
}

/// `GET /info`: the cluster's capabilities, as swiftclient and openstacksdk read them.
fn info(req: &HttpRequest) -> Result<HttpResponse, SwiftError> {
    if *req.method() != Method::GET && *req.method() != Method::HEAD {
        return Err(SwiftError::method_not_allowed());
    }
    Ok(HttpResponse::Ok().json(json!({
        "swift": {
            "version": env!("CARGO_PKG_VERSION"),
            "max_file_size": strata_object::service::MAX_FILE_SIZE,
            "max_meta_name_length": headers::MAX_META_NAME_LENGTH,
            "max_meta_value_length": headers::MAX_META_VALUE_LENGTH,
            "max_meta_count": headers::MAX_META_COUNT,
            "max_meta_overall_size": headers::MAX_META_OVERALL_SIZE,
            "max_object_name_length": OBJECT_NAME_MAX,
            "max_container_name_length": CONTAINER_NAME_MAX,
            "max_account_name_length": 256,
            "container_listing_limit": LISTING_LIMIT,
            "account_listing_limit": LISTING_LIMIT,
            "max_header_size": 8192,
            "extra_header_count": 0,
            "valid_api_versions": ["v1", "v1.0"],
            "policies": [{ "name": "Policy-0", "default": true, "aliases": "Policy-0" }],
            "strict_cors_mode": true,
            "allow_account_management": false,
            "account_autocreate": true,
        },
        "slo": {
            "max_manifest_segments": large::MAX_MANIFEST_SEGMENTS,
            "max_manifest_size": large::MAX_MANIFEST_SIZE,
            "min_segment_size": 1,
            "yield_frequency": 10,
        },
        "dlo": { "max_segments": large::MAX_DLO_SEGMENTS },
        "tempurl": {
            "methods": ["GET", "HEAD", "PUT", "POST", "DELETE"],
            "incoming_remove_headers": ["x-timestamp"],
            "incoming_allow_headers": [],
            "outgoing_remove_headers": ["x-object-meta-*"],
            "outgoing_allow_headers": ["x-object-meta-public-*"],
            "allowed_digests": ["sha1", "sha256", "sha512"],
        },
        "bulk_delete": {
            "max_deletes_per_request": bulk::MAX_DELETES_PER_REQUEST,
            "max_failed_deletes": bulk::MAX_DELETES_PER_REQUEST,
        },
        "versioned_writes": { "allowed_flags": ["x-versions-location", "x-history-location"] },
        "account_quotas": {},
        "container_quotas": {},
        "tempauth": { "account_acls": false },
        "keystoneauth": {},
    })))
}

/// Account and container stats and metadata as response headers.
fn account_headers(ctx: &Ctx<'_>, builder: &mut actix_web::HttpResponseBuilder) {
    let view = ctx.service().view.snapshot();
    let (containers, objects, bytes) = view
        .account(&ctx.target.account)
        .map(|a| a.totals())
        .unwrap_or_default();
    builder
        .insert_header(("x-account-container-count", containers.to_string()))
        .insert_header(("x-account-object-count", objects.to_string()))
        .insert_header(("x-account-bytes-used", bytes.to_string()))
        .insert_header((
            "x-account-storage-policy-policy-0-container-count",
            containers.to_string(),
        ))
        .insert_header((
            "x-account-storage-policy-policy-0-object-count",
            objects.to_string(),
        ))
        .insert_header((
            "x-account-storage-policy-policy-0-bytes-used",
            bytes.to_string(),
        ))
        .insert_header(("x-timestamp", "0000000000.00000"));
    if let Some(a) = view.account(&ctx.target.account) {
        let shown: std::collections::BTreeMap<String, String> = a
            .state
            .headers
            .iter()
            .filter(|(k, _)| ctx.access.is_owner() || !k.contains("temp-url-key"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers::emit(builder, &shown);
    }
}

async fn account(ctx: &Ctx<'_>, body: web::Payload) -> Result<HttpResponse, SwiftError> {
    let method = ctx.req.method().clone();
    if (method == Method::POST || method == Method::DELETE) && ctx.has_param("bulk-delete") {
        if !ctx.access.is_owner() {
            return Err(ctx.access.denied());
        }
        return bulk::bulk_delete(ctx, body).await;
    }
    match method {
        Method::HEAD | Method::GET => {
            if !ctx.access.reads_all() {
                return Err(ctx.access.denied());
            }
            let mut builder = HttpResponse::build(StatusCode::NO_CONTENT);
            account_headers(ctx, &mut builder);
            if method == Method::HEAD {
                return Ok(builder.finish());
            }
            listing::account_listing(ctx, builder)
        }
        Method::POST => {
            if !ctx.access.is_owner() {
                return Err(ctx.access.denied());
            }
            let change = headers::change_from("account", &[], ctx.req.headers())?;
            let quota_key = "x-account-meta-quota-bytes";
            let touches_quota =
                change.set.contains_key(quota_key) || change.removed.iter().any(|k| k == quota_key);
            if touches_quota && !ctx.access.is_reseller() {
                return Err(SwiftError::forbidden());
            }
            if let Some(q) = change.set.get(quota_key) {
                if q.parse::<u64>().is_err() {
                    return Err(SwiftError::bad_request("Invalid bytes quota."));
                }
            }
            if !change.is_empty() {
                ctx.service()
                    .change_account_headers(
                        &ctx.target.account,
                        change.set,
                        change.removed,
                        ctx.meta(),
                    )
                    .await?;
            }
            let mut builder = HttpResponse::build(StatusCode::NO_CONTENT);
            account_headers(ctx, &mut builder);
            Ok(builder.finish())
        }
        _ => Err(SwiftError::method_not_allowed()),
    }
}

/// The container header change a PUT or POST asks for, validated.
fn container_change(ctx: &Ctx<'_>) -> Result<HeaderChange, SwiftError> {
    let change = headers::change_from("container", CONTAINER_SYSTEM_HEADERS, ctx.req.headers())?;
    for which in ["x-container-read", "x-container-write"] {
        if let Some(v) = change.set.get(which) {
            acl::parse(v).map_err(|_| {
                SwiftError::bad_request(format!("Invalid {} header", title_case(which)))
            })?;
        }
    }
    for which in ["x-versions-location", "x-history-location"] {
        if let Some(v) = change.set.get(which) {
            let decoded = decode_segment(v)?;
            if decoded.contains('/') || decoded.len() > CONTAINER_NAME_MAX {
                return Err(SwiftError::bad_request(format!(
                    "{} must be a container name (no '/')",
                    title_case(which)
                )));
            }
        }
    }
    if change.set.contains_key("x-versions-location")
        && change.set.contains_key("x-history-location")
    {
        return Err(SwiftError::bad_request(
            "Only one of X-Versions-Location or X-History-Location may be provided",
        ));
    }
    for quota in [
        "x-container-meta-quota-bytes",
        "x-container-meta-quota-count",
    ] {
        if let Some(v) = change.set.get(quota) {
            if v.parse::<u64>().is_err() {
                return Err(SwiftError::bad_request(format!(
                    "Invalid {} value",
                    title_case(quota)
                )));
            }
        }
    }
    Ok(change)
}

fn title_case(header: &str) -> String {
    header
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Container stats and headers as response headers; ACLs and temp URL keys only for the owner.
fn container_headers(
    ctx: &Ctx<'_>,
    name: &str,
    builder: &mut actix_web::HttpResponseBuilder,
) -> Result<(), SwiftError> {
    let view = ctx.service().view.snapshot();
    let c = view
        .container(&ctx.target.account, name)
        .ok_or_else(SwiftError::not_found)?;
    builder
        .insert_header(("x-container-object-count", c.object_count().to_string()))
        .insert_header(("x-container-bytes-used", c.bytes_used.to_string()))
        .insert_header(("x-timestamp", c.state.created.clone()))
        .insert_header(("x-put-timestamp", c.state.created.clone()))
        .insert_header(("x-storage-policy", "Policy-0"))
        .insert_header((
            "last-modified",
            range::http_date(strata_object::service::timestamp_secs(&c.state.created) as i64),
        ));
    let shown: std::collections::BTreeMap<String, String> = c
        .state
        .headers
        .iter()
        .filter(|(k, _)| {
            ctx.access.is_owner()
                || !(k.contains("temp-url-key")
                    || k.as_str() == "x-container-read"
                    || k.as_str() == "x-container-write")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    headers::emit(builder, &shown);
    Ok(())
}

async fn container(ctx: &Ctx<'_>) -> Result<HttpResponse, SwiftError> {
    let name = ctx.target.container.clone().unwrap_or_default();
    let account = ctx.target.account.clone();
    match ctx.req.method().clone() {
        Method::PUT => {
            if !ctx.access.is_owner() {
                return Err(ctx.access.denied());
            }
            let change = container_change(ctx)?;
            let created = ctx
                .service()
                .put_container(&account, &name, change.set, change.removed, ctx.meta())
                .await?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::ACCEPTED
            };
            Ok(HttpResponse::build(status)
                .content_type("text/html; charset=UTF-8")
                .finish())
        }
        Method::POST => {
            if !ctx.access.is_owner() {
                return Err(ctx.access.denied());
            }
            let change = container_change(ctx)?;
            ctx.service()
                .post_container(&account, &name, change.set, change.removed, ctx.meta())
                .await?;
            Ok(HttpResponse::NoContent()
                .content_type("text/html; charset=UTF-8")
                .finish())
        }
        Method::DELETE => {
            if !ctx.access.is_owner() {
                return Err(ctx.access.denied());
            }
            ctx.service()
                .delete_container(&account, &name, ctx.meta())
                .await?;
            Ok(HttpResponse::NoContent()
                .content_type("text/html; charset=UTF-8")
                .finish())
        }
        Method::HEAD | Method::GET => {
            if ctx
                .service()
                .view
                .snapshot()
                .container(&account, &name)
                .is_none()
            {
                return Err(if ctx.access.reads_all() {
                    SwiftError::not_found()
                } else {
                    ctx.access.denied()
                });
            }
            if !ctx.may_list(&name) {
                return Err(ctx.access.denied());
            }
            let mut builder = HttpResponse::build(StatusCode::NO_CONTENT);
            container_headers(ctx, &name, &mut builder)?;
            if *ctx.req.method() == Method::HEAD {
                return Ok(builder.finish());
            }
            listing::container_listing(ctx, &name, builder)
        }
        _ => Err(SwiftError::method_not_allowed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_like_swift() {
        let t = parse_target("/v1/AUTH_p/c%20d/a/b%2Fc").unwrap();
        assert_eq!(t.account, "p");
        assert_eq!(t.container.as_deref(), Some("c d"));
        assert_eq!(t.object.as_deref(), Some("a/b/c"));
        let t = parse_target("/v1/AUTH_p/c/").unwrap();
        assert_eq!((t.container.as_deref(), t.object), (Some("c"), None));
        assert_eq!(
            parse_target("/v1/AUTH_p/c/%FF").unwrap_err().status,
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            parse_target("/v1/AUTH_p/c/a%00b").unwrap_err().status,
            StatusCode::PRECONDITION_FAILED
        );
        let long = "o".repeat(1025);
        assert_eq!(
            parse_target(&format!("/v1/AUTH_p/c/{long}"))
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            parse_target("/v1/p/c").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            parse_target("/v2/AUTH_p").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }
}
