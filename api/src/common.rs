//! Pieces every service shares: the request id (which is also the events' correlation id), the
//! authenticated caller of a project-scoped API, JSON body parsing that never panics, and link building.

use std::marker::PhantomData;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};
use futures::future::{ready, LocalBoxFuture, Ready};
use strata_events::{Metadata, Principal};
use tracing::Instrument;

use crate::auth::{AuthContext, AuthError};

pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

/// The id of the API request being served: `req-<uuid>`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id the request-id middleware gave `req` (a fresh one outside it).
    pub fn of(req: &HttpRequest) -> RequestId {
        let id = req.extensions().get::<RequestId>().cloned();
        id.unwrap_or_else(|| RequestId(format!("req-{}", uuid::Uuid::new_v4())))
    }

    /// Event metadata for commands issued by this request on behalf of `principal`.
    pub fn metadata(&self, principal: Principal) -> Metadata {
        Metadata {
            correlation_id: self.0.clone(),
            causation_id: self.0.clone(),
            principal,
        }
    }
}

impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(RequestId::of(req)))
    }
}

/// What a project-scoped API (Nova, Cinder, Neutron) says about its callers: the error body it answers with
/// and the 403 for a token that is not scoped to a project.
pub trait CallerScope {
    type Error: ResponseError + From<AuthError> + 'static;
    /// The 403 for a token without a project.
    fn unscoped() -> Self::Error;
    /// A further check of the request against the token's project (Cinder's project id in the URL).
    fn check(_req: &HttpRequest, _project_id: &str) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The authenticated caller of a request to the project-scoped API `S`: its token, for policy, and the
/// caller context the services take (`Deref`s to it). Each API names it `Caller` and adds its `enforce`.
pub struct ProjectCaller<S> {
    pub auth: AuthContext,
    pub svc: strata_service::Caller,
    api: PhantomData<S>,
}

impl<S> Clone for ProjectCaller<S> {
    fn clone(&self) -> Self {
        ProjectCaller {
            auth: self.auth.clone(),
            svc: self.svc.clone(),
            api: PhantomData,
        }
    }
}

impl<S> std::ops::Deref for ProjectCaller<S> {
    type Target = strata_service::Caller;
    fn deref(&self) -> &strata_service::Caller {
        &self.svc
    }
}

impl<S: CallerScope> ProjectCaller<S> {
    /// Authenticate `req`: 401 without a valid token, `S`'s 403 without a project, then `S`'s own check.
    fn authenticate(req: &HttpRequest) -> Result<Self, S::Error> {
        let auth = crate::auth::authenticate(req)?;
        let project_id = auth
            .project_id()
            .map(str::to_string)
            .ok_or_else(S::unscoped)?;
        S::check(req, &project_id)?;
        let meta = RequestId::of(req).metadata(auth.principal());
        Ok(ProjectCaller {
            svc: strata_service::Caller {
                is_admin: auth.is_admin(),
                user_id: auth.user_id.clone(),
                project_id,
                meta,
            },
            auth,
            api: PhantomData,
        })
    }
}

impl<S: CallerScope> FromRequest for ProjectCaller<S> {
    type Error = S::Error;
    type Future = Ready<Result<Self, S::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Self::authenticate(req))
    }
}

/// Middleware: give every request an id, log it in a span, and return it as `X-OpenStack-Request-Id`.
pub fn request_id_middleware<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    let id = format!("req-{}", uuid::Uuid::new_v4());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let fut = srv.call(req);
    Box::pin(
        async move {
            let mut res = fut.await?;
            tracing::debug!(status = res.status().as_u16(), "answered");
            if let Ok(v) = HeaderValue::from_str(&id) {
                res.headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
            }
            Ok(res)
        }
        .instrument(span),
    )
}

/// `scheme://host` of the request, for `links` (honours the Host header the client used).
pub fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// The HTTP status and message every service answers for a refused or failed command; each service wraps
/// them in its own error body.
pub fn command_failure(e: strata_actors::CommandError) -> (actix_web::http::StatusCode, String) {
    let (failure, message) = strata_service::classify(e);
    (status_of(failure), message)
}

/// The HTTP status of a kind of refusal.
pub fn status_of(failure: strata_service::Failure) -> actix_web::http::StatusCode {
    use actix_web::http::StatusCode;
    use strata_service::Failure;
    match failure {
        Failure::Invalid => StatusCode::BAD_REQUEST,
        Failure::Forbidden => StatusCode::FORBIDDEN,
        Failure::NotFound => StatusCode::NOT_FOUND,
        Failure::Conflict => StatusCode::CONFLICT,
        Failure::OverQuota => StatusCode::PAYLOAD_TOO_LARGE,
        Failure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Query parameters as pairs (repeated keys kept), decoded; never fails.
pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url_pairs(req.query_string())
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encode a query component (RFC 3986 unreserved characters pass through).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The version a request asks of `service` in `OpenStack-API-Version: <service> X.Y[, <other> ...]`, as
/// written ("2.60", "latest"); `None` when the header does not name the service.
pub fn requested_api_version(
    headers: &actix_web::http::header::HeaderMap,
    service: &str,
) -> Option<String> {
    headers
        .get("openstack-api-version")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|part| {
                let mut it = part.split_whitespace();
                (it.next() == Some(service)).then(|| it.next().unwrap_or_default().to_string())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_encodes_query_strings() {
        assert_eq!(
            url_pairs("name=a%20b&x=1+2&flag"),
            vec![
                ("name".into(), "a b".into()),
                ("x".into(), "1 2".into()),
                ("flag".into(), "".into())
            ]
        );
        assert_eq!(url_pairs("bad=%zz%"), vec![("bad".into(), "%zz%".into())]);
        assert_eq!(
            url_pairs(&format!("k={}", encode("in:\"a b\",c/d"))),
            vec![("k".into(), "in:\"a b\",c/d".into())]
        );
    }
}
