//! What a network service call can refuse, by kind: Neutron's exception name travels with it (the HTTP
//! layer renders `{"NeutronError": {"type": <kind>, "message": ...}}` with the status of the variant).

use strata_actors::{CommandError, DomainError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// A malformed or unacceptable request (400): `HTTPBadRequest`, `InvalidInput`, ...
    #[error("{kind}: {message}")]
    Invalid { kind: String, message: String },
    /// A resource the caller may see but not change, or a rule refused (403).
    #[error("{kind}: {message}")]
    Forbidden { kind: String, message: String },
    /// A resource that does not exist or that the caller may not see (404): `NetworkNotFound`, ...
    #[error("{kind}: {message}")]
    NotFound { kind: String, message: String },
    /// The request contradicts the current state (409): `IpAddressAlreadyAllocated`, `InUse`, ...
    #[error("{kind}: {message}")]
    Conflict { kind: String, message: String },
    /// A quota limit was reached (409 `OverQuota`).
    #[error("Quota exceeded for resources: ['{resource}'].")]
    OverQuota { resource: String },
    /// `If-Match: revision_number` did not hold (412 `RevisionNumberConstraintFailed`).
    #[error("RevisionNumberConstraintFailed: {message}")]
    RevisionMismatch { message: String },
    /// The log or an actor failed (503).
    #[error("the network service is temporarily unavailable")]
    Unavailable,
}

impl NetworkError {
    /// Neutron's exception name.
    pub fn kind(&self) -> &str {
        match self {
            NetworkError::Invalid { kind, .. }
            | NetworkError::Forbidden { kind, .. }
            | NetworkError::NotFound { kind, .. }
            | NetworkError::Conflict { kind, .. } => kind,
            NetworkError::OverQuota { .. } => "OverQuota",
            NetworkError::RevisionMismatch { .. } => "RevisionNumberConstraintFailed",
            NetworkError::Unavailable => "ServiceUnavailable",
        }
    }

    /// The message Neutron shows.
    pub fn message(&self) -> String {
        match self {
            NetworkError::Invalid { message, .. }
            | NetworkError::Forbidden { message, .. }
            | NetworkError::NotFound { message, .. }
            | NetworkError::Conflict { message, .. }
            | NetworkError::RevisionMismatch { message } => message.clone(),
            NetworkError::OverQuota { .. } => self.to_string(),
            NetworkError::Unavailable => "The service is temporarily unavailable.".into(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, NetworkError::NotFound { .. })
    }

    /// 400 `HTTPBadRequest`: a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        NetworkError::Invalid {
            kind: "HTTPBadRequest".into(),
            message: message.into(),
        }
    }

    /// 400 `InvalidInput`: a request whose values cannot be accepted.
    pub fn invalid_input(message: impl std::fmt::Display) -> Self {
        NetworkError::Invalid {
            kind: "InvalidInput".into(),
            message: format!("Invalid input for operation: {message}."),
        }
    }

    /// A 400 of another Neutron exception.
    pub fn invalid(kind: &str, message: impl Into<String>) -> Self {
        NetworkError::Invalid {
            kind: kind.into(),
            message: message.into(),
        }
    }

    pub fn not_found(kind: &str, message: impl Into<String>) -> Self {
        NetworkError::NotFound {
            kind: kind.into(),
            message: message.into(),
        }
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
        NetworkError::Forbidden {
            kind: "HTTPForbidden".into(),
            message: message.into(),
        }
    }

    /// Neutron's own ownership checks refused `action` (403 `PolicyNotAuthorized`).
    pub fn policy(action: &str) -> Self {
        NetworkError::Forbidden {
            kind: "PolicyNotAuthorized".into(),
            message: format!("rule:{action} is disallowed by policy"),
        }
    }

    pub fn conflict(kind: &str, message: impl Into<String>) -> Self {
        NetworkError::Conflict {
            kind: kind.into(),
            message: message.into(),
        }
    }

    pub fn over_quota(resource: &str) -> Self {
        NetworkError::OverQuota {
            resource: resource.into(),
        }
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

impl From<DomainError> for NetworkError {
    fn from(e: DomainError) -> Self {
        CommandError::Domain(e).into()
    }
}

impl From<CommandError> for NetworkError {
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
                NetworkError::not_found(ty, format!("{name} {id} could not be found."))
            }
            CommandError::Domain(d) => {
                let text = d.to_string();
                let (kind, message) = match split_type(&text) {
                    Some((kind, message)) => (kind.to_string(), sentence(message)),
                    None => (
                        match &d {
                            DomainError::Invalid(_) => "InvalidInput",
                            DomainError::Forbidden(_) => "HTTPForbidden",
                            _ => "Conflict",
                        }
                        .to_string(),
                        sentence(&text),
                    ),
                };
                match (&d, kind.as_str()) {
                    (_, "RevisionNumberConstraintFailed") => {
                        NetworkError::RevisionMismatch { message }
                    }
                    (_, "OverQuota") => NetworkError::Conflict { kind, message },
                    (DomainError::Invalid(_), _) => NetworkError::Invalid { kind, message },
                    (DomainError::Forbidden(_), _) => NetworkError::Forbidden { kind, message },
                    _ => NetworkError::Conflict { kind, message },
                }
            }
            CommandError::Contention(_) => NetworkError::conflict(
                "Conflict",
                "Too many concurrent changes to this resource; try again.",
            ),
            other => {
                tracing::error!(error = %other, "network command failed");
                NetworkError::Unavailable
            }
        }
    }
}
