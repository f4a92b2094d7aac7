//! Microversion negotiation, one implementation for every service that has microversions (Nova's compute
//! 2.X and Cinder's volume 3.X): read `OpenStack-API-Version: <service> X.Y` (or a service's legacy header),
//! refuse a malformed value (400) or one outside the service's range (406), remember the negotiated minor
//! version on the request, and echo it (with `Vary`) on the response.

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, ResponseError};
use futures::future::LocalBoxFuture;

/// One service's microversions.
pub struct Negotiator {
    /// The service type in `OpenStack-API-Version` ("compute", "volume").
    pub service: &'static str,
    pub major: u32,
    pub min_minor: u32,
    pub max_minor: u32,
    /// A service-specific header read when `OpenStack-API-Version` names no version for the service, and
    /// echoed too (Nova's `X-OpenStack-Nova-API-Version`).
    pub legacy_header: Option<&'static str>,
    /// The message of the 400 for a value that is not `X.Y`.
    pub malformed: fn(&str) -> String,
}

/// The service a microversion middleware wraps.
pub trait Inner<B>:
    Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error, Future: 'static>
{
}

impl<S, B> Inner<B> for S where
    S: Service<
        ServiceRequest,
        Response = ServiceResponse<B>,
        Error = actix_web::Error,
        Future: 'static,
    >
{
}

/// What a microversion middleware answers: the wrapped service's response, or the refusal.
pub type Answer<B> =
    LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>;

/// Why a requested version is refused: the status (400 or 406) and the message.
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

/// The negotiated minor version, kept in the request's extensions.
#[derive(Debug, Clone, Copy)]
struct Negotiated(u32);

impl Negotiator {
    /// The minor version a request asks for (the minimum when it asks for none, the maximum for "latest").
    pub fn negotiate(&self, headers: &HeaderMap) -> Result<u32, Refusal> {
        let value = crate::common::requested_api_version(headers, self.service).or_else(|| {
            self.legacy_header
                .and_then(|h| headers.get(h))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        let Some(value) = value else {
            return Ok(self.min_minor);
        };
        if value == "latest" {
            return Ok(self.max_minor);
        }
        let parsed = value
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
        let Some((major, minor)) = parsed else {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                message: (self.malformed)(&value),
            });
        };
        if major != self.major || !(self.min_minor..=self.max_minor).contains(&minor) {
            return Err(Refusal {
                status: StatusCode::NOT_ACCEPTABLE,
                message: format!(
                    "Version {major}.{minor} is not supported by the API. Minimum is {m}.{} and maximum is {m}.{}.",
                    self.min_minor,
                    self.max_minor,
                    m = self.major
                ),
            });
        }
        Ok(minor)
    }

    /// Echo the negotiated version on a response.
    fn echo(&self, minor: u32, h: &mut HeaderMap) {
        let version = format!("{}.{minor}", self.major);
        if let Ok(v) = HeaderValue::from_str(&format!("{} {version}", self.service)) {
            h.insert(HeaderName::from_static("openstack-api-version"), v);
        }
        let mut vary = "OpenStack-API-Version".to_string();
        if let Some(legacy) = self.legacy_header {
            if let (Ok(name), Ok(v)) = (
                HeaderName::from_lowercase(legacy.as_bytes()),
                HeaderValue::from_str(&version),
            ) {
                h.insert(name, v);
            }
            vary = format!("{vary}, {}", display_name(legacy));
        }
        if let Ok(v) = HeaderValue::from_str(&vary) {
            h.insert(HeaderName::from_static("vary"), v);
        }
    }

    /// The minor version negotiated for `req` (the minimum outside the middleware).
    pub fn of(&self, req: &HttpRequest) -> u32 {
        req.extensions()
            .get::<Negotiated>()
            .map_or(self.min_minor, |n| n.0)
    }

    /// The middleware body: negotiate, answer a refusal with the service's error body (`E`), or call the
    /// service and echo the version.
    pub fn middleware<S, B, E>(&'static self, req: ServiceRequest, srv: &S) -> Answer<B>
    where
        S: Inner<B>,
        B: 'static,
        E: ResponseError + From<Refusal>,
    {
        let minor = match self.negotiate(req.headers()) {
            Ok(m) => m,
            Err(refusal) => {
                let resp = req
                    .into_response(E::from(refusal).error_response())
                    .map_into_right_body();
                return Box::pin(async move { Ok(resp) });
            }
        };
        req.extensions_mut().insert(Negotiated(minor));
        let fut = srv.call(req);
        Box::pin(async move {
            let mut res = fut.await?.map_into_left_body();
            self.echo(minor, res.headers_mut());
            Ok(res)
        })
    }
}

/// `x-openstack-nova-api-version` -> `X-OpenStack-Nova-API-Version`.
fn display_name(header: &str) -> String {
    header
        .split('-')
        .map(|part| match part {
            "x" => "X".to_string(),
            "openstack" => "OpenStack".to_string(),
            "api" => "API".to_string(),
            other => {
                let mut c = other.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOVA: Negotiator = Negotiator {
        service: "compute",
        major: 2,
        min_minor: 1,
        max_minor: 90,
        legacy_header: Some("x-openstack-nova-api-version"),
        malformed: |v| format!("Invalid API version request: {v}"),
    };

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn negotiates_default_latest_legacy_and_refusals() {
        assert_eq!(NOVA.negotiate(&headers(&[])).ok(), Some(1));
        let latest = headers(&[("openstack-api-version", "compute latest")]);
        assert_eq!(NOVA.negotiate(&latest).ok(), Some(90));
        let legacy = headers(&[("x-openstack-nova-api-version", "2.37")]);
        assert_eq!(NOVA.negotiate(&legacy).ok(), Some(37));
        let other_service = headers(&[("openstack-api-version", "volume 3.5")]);
        assert_eq!(NOVA.negotiate(&other_service).ok(), Some(1));
        let bad = headers(&[("openstack-api-version", "compute 2.x")]);
        assert_eq!(
            NOVA.negotiate(&bad).err().map(|r| r.status),
            Some(StatusCode::BAD_REQUEST)
        );
        let high = headers(&[("openstack-api-version", "compute 2.91")]);
        assert_eq!(
            NOVA.negotiate(&high).err().map(|r| r.status),
            Some(StatusCode::NOT_ACCEPTABLE)
        );
        let major = headers(&[("openstack-api-version", "compute 3.1")]);
        assert_eq!(
            NOVA.negotiate(&major).err().map(|r| r.status),
            Some(StatusCode::NOT_ACCEPTABLE)
        );
    }

    #[test]
    fn echoes_the_version_and_vary() {
        let mut h = HeaderMap::new();
        NOVA.echo(42, &mut h);
        let get = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(get("openstack-api-version"), "compute 2.42");
        assert_eq!(get("x-openstack-nova-api-version"), "2.42");
        assert_eq!(
            get("vary"),
            "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
        );
    }
}
