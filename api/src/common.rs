//! Pieces every service shares: the request id (which is also the events' correlation id), JSON body
//! parsing that never panics, and link building.

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures::future::{ready, LocalBoxFuture, Ready};
use strata_events::{Metadata, Principal};
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

/// The id of the API request being served: `req-<uuid>`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
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
        let id = req.extensions().get::<RequestId>().cloned();
        ready(Ok(id.unwrap_or_else(|| {
            RequestId(format!("req-{}", uuid::Uuid::new_v4()))
        })))
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
