//! Neutron's error format: `{"NeutronError": {"type": "NetworkNotFound", "message": "...", "detail": ""}}`,
//! the type naming the Neutron exception, with Neutron's status for it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use strata_actors::{CommandError, DomainError};

use crate::auth::AuthError;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct NeutronError {
    pub status: StatusCode,
    /// The Neutron exception's name (`NetworkNotFound`, `IpAddressAlreadyAllocated`, ...).
    pub kind: String,
    pub message: String,
}

impl NeutronError {
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        NeutronError {
            status,
            kind: kind.to_string(),
            message: message.into(),
        }
    }
    /// 400 `HTTPBadRequest`: a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "HTTPBadRequest", message)
    }
    /// 400 `InvalidInput`: a request whose values cannot be accepted.
    pub fn invalid_input(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!("Invalid input for operation: {message}."),
        )
    }
    pub fn not_found(kind: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, message)
    }
    pub fn network_not_found(id: &str) -> Self {
        Self::not_found(
            "NetworkNotFound",
            format!("Network {id} could not be found."),
        )
    }
    pub fn subnet_not_found(id: &str) -> Self {
        Self::not_found("SubnetNotFound", format!("Subnet {id} could not be found."))
    }
    pub fn port_not_found(id: &str) -> Self {
        Self::not_found("PortNotFound", format!("Port {id} could not be found."))
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "HTTPForbidden", message)
    }
    /// Policy refused `action` (Neutron answers 403 `PolicyNotAuthorized`, naming the rule it checked).
    pub fn policy(action: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            format!("rule:{action} is disallowed by policy"),
        )
    }
    pub fn conflict(kind: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, message)
    }
    pub fn over_quota(resource: &str) -> Self {
        Self::conflict(
            "OverQuota",
            format!("Quota exceeded for resources: ['{resource}']."),
        )
    }
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
        )
    }

    /// The status Neutron gives an exception type.
    fn status_of(kind: &str, fallback: StatusCode) -> StatusCode {
        match kind {
            "RevisionNumberConstraintFailed" => StatusCode::PRECONDITION_FAILED,
            "OverQuota" => StatusCode::CONFLICT,
            _ => fallback,
        }
    }
}

impl ResponseError for NeutronError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({
            "NeutronError": { "type": self.kind, "message": self.message, "detail": "" }
        }))
    }
}

impl From<AuthError> for NeutronError {
    fn from(_: AuthError) -> Self {
        NeutronError::new(
            StatusCode::UNAUTHORIZED,
            "HTTPUnauthorized",
            "The request you have made requires authentication.",
        )
    }
}

/// The network service's refusals, with the status Neutron gives each kind.
impl From<strata_network::NetworkError> for NeutronError {
    fn from(e: strata_network::NetworkError) -> Self {
        use strata_network::NetworkError as E;
        let status = match &e {
            E::Invalid { .. } => StatusCode::BAD_REQUEST,
            E::Forbidden { .. } => StatusCode::FORBIDDEN,
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::Conflict { .. } | E::OverQuota { .. } => StatusCode::CONFLICT,
            E::RevisionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
            E::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        NeutronError::new(status, e.kind(), e.message())
    }
}

impl From<DomainError> for NeutronError {
    fn from(e: DomainError) -> Self {
        CommandError::Domain(e).into()
    }
}

/// `"Type: message"` -> (Type, message) when the text starts with a CamelCase exception name.
fn split_type(text: &str) -> Option<(&str, &str)> {
    let (name, rest) = text.split_once(": ")?;
    let camel = name.len() > 1
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    camel.then_some((name, rest))
}

/// Neutron's messages are sentences.
fn sentence(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    if let Some(c) = chars.next() {
        out.extend(c.to_uppercase());
        out.push_str(chars.as_str());
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

impl From<CommandError> for NeutronError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(DomainError::NotFound { kind, id }) => {
                let ty = match kind {
                    "network" => "NetworkNotFound",
                    "subnet" => "SubnetNotFound",
                    "port" => "PortNotFound",
                    _ => "NotFound",
                };
                let mut name = kind.to_string();
                if let Some(f) = name.get_mut(0..1) {
                    f.make_ascii_uppercase();
                }
                NeutronError::not_found(ty, format!("{name} {id} could not be found."))
            }
            CommandError::Domain(d) => {
                let fallback = match &d {
                    DomainError::Invalid(_) => StatusCode::BAD_REQUEST,
                    DomainError::Forbidden(_) => StatusCode::FORBIDDEN,
                    DomainError::OverQuota(_) => StatusCode::CONFLICT,
                    _ => StatusCode::CONFLICT,
                };
                let default_kind = match &d {
                    DomainError::Invalid(_) => "InvalidInput",
                    DomainError::Forbidden(_) => "HTTPForbidden",
                    DomainError::OverQuota(_) => "OverQuota",
                    DomainError::AlreadyExists { .. } => "Conflict",
                    _ => "Conflict",
                };
                let text = d.to_string();
                match split_type(&text) {
                    Some((kind, message)) => NeutronError::new(
                        NeutronError::status_of(kind, fallback),
                        kind,
                        sentence(message),
                    ),
                    None => NeutronError::new(fallback, default_kind, sentence(&text)),
                }
            }
            CommandError::Contention(_) => NeutronError::conflict(
                "Conflict",
                "Too many concurrent changes to this resource; try again.",
            ),
            other => {
                tracing::error!(error = %other, "network command failed");
                NeutronError::unavailable()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_errors_carry_neutron_types_and_statuses() {
        let e: NeutronError = DomainError::Conflict(
            "IpAddressAlreadyAllocated: the address 10.0.0.5 is already allocated in subnet s"
                .into(),
        )
        .into();
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(e.kind, "IpAddressAlreadyAllocated");
        assert_eq!(
            e.message,
            "The address 10.0.0.5 is already allocated in subnet s."
        );
        let e: NeutronError =
            DomainError::Conflict("RevisionNumberConstraintFailed: x".into()).into();
        assert_eq!(e.status, StatusCode::PRECONDITION_FAILED);
        let e: NeutronError = DomainError::Invalid("InvalidIpForSubnet: x".into()).into();
        assert_eq!(
            (e.status, e.kind.as_str()),
            (StatusCode::BAD_REQUEST, "InvalidIpForSubnet")
        );
        let e: NeutronError = DomainError::NotFound {
            kind: "subnet",
            id: "s1".into(),
        }
        .into();
        assert_eq!(
            (e.status, e.kind.as_str()),
            (StatusCode::NOT_FOUND, "SubnetNotFound")
        );
        let e: NeutronError = DomainError::OverQuota("OverQuota: port".into()).into();
        assert_eq!(e.status, StatusCode::CONFLICT);
    }
}
