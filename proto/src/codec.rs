//! The typed face of event payloads: each service's events as one Rust enum whose variants are its protobuf
//! messages, with the versioned type names used in the log. Pure data mapping; no I/O.

use thiserror::Error;

/// A stored event that cannot be turned back into a domain event.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("unknown event type {0}")]
    UnknownType(String),
    #[error("cannot decode {event_type}: {reason}")]
    Decode { event_type: String, reason: String },
    #[error("cannot decode snapshot: {0}")]
    Snapshot(String),
}

/// A service's domain events: each variant is one protobuf message, named `<service>.<Message>.v<N>` in the log.
pub trait DomainEvent: Sized + Clone + Send + Sync + std::fmt::Debug + 'static {
    fn event_type(&self) -> &'static str;
    fn encode(&self) -> Vec<u8>;
    /// Decode a stored event of any version this type has ever had (upcasting old versions).
    fn decode(event_type: &str, payload: &[u8]) -> Result<Self, CodecError>;
}

/// Decode any known event of any service into JSON (for tools); `None` for types this build does not know.
pub fn event_json(
    event_type: &str,
    payload: &[u8],
) -> Option<Result<serde_json::Value, CodecError>> {
    let service = event_type.split('.').next().unwrap_or_default();
    fn to_json<E: DomainEvent + serde::Serialize>(
        event_type: &str,
        v: Result<E, CodecError>,
    ) -> Result<serde_json::Value, CodecError> {
        v.and_then(|e| {
            serde_json::to_value(e).map_err(|err| CodecError::Decode {
                event_type: event_type.to_string(),
                reason: err.to_string(),
            })
        })
    }
    match service {
        "identity" => Some(to_json(
            event_type,
            crate::IdentityEvent::decode(event_type, payload),
        )),
        "image" => Some(to_json(
            event_type,
            crate::ImageEvent::decode(event_type, payload),
        )),
        "compute" => Some(to_json(
            event_type,
            crate::ComputeEvent::decode(event_type, payload),
        )),
        "volume" => Some(to_json(
            event_type,
            crate::VolumeEvent::decode(event_type, payload),
        )),
        "network" => Some(to_json(
            event_type,
            crate::NetworkEvent::decode(event_type, payload),
        )),
        "object" => Some(to_json(
            event_type,
            crate::ObjectEvent::decode(event_type, payload),
        )),
        _ => None,
    }
}

/// Declare a service's event enum: one variant per protobuf message in `$module`, with the codec.
/// `$module` is a module name in scope: `use crate::identity; domain_events!(IdentityEvent, "identity", identity, {..})`.
#[macro_export]
macro_rules! domain_events {
    ($name:ident, $service:literal, $module:ident, { $($variant:ident),* $(,)? }) => {
        // Events are decoded one at a time and moved, not stored in bulk: their size difference is harmless.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        #[serde(untagged)]
        pub enum $name {
            $($variant($module::$variant)),*
        }

        impl $crate::codec::DomainEvent for $name {
            fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => concat!($service, ".", stringify!($variant), ".v1")),*
                }
            }

            fn encode(&self) -> Vec<u8> {
                use prost::Message;
                match self {
                    $(Self::$variant(m) => m.encode_to_vec()),*
                }
            }

            fn decode(event_type: &str, payload: &[u8]) -> Result<Self, $crate::codec::CodecError> {
                use prost::Message;
                let fail = |e: prost::DecodeError| $crate::codec::CodecError::Decode {
                    event_type: event_type.to_string(),
                    reason: e.to_string(),
                };
                match event_type {
                    $(concat!($service, ".", stringify!($variant), ".v1") => {
                        <$module::$variant>::decode(payload).map(Self::$variant).map_err(fail)
                    })*
                    other => Err($crate::codec::CodecError::UnknownType(other.to_string())),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_knows_image_events() {
        let e = crate::ImageEvent::ImageMemberAdded(crate::image::ImageMemberAdded {
            member_id: "p2".into(),
        });
        let json = event_json(e.event_type(), &e.encode())
            .expect("image is a known service")
            .expect("decodes");
        assert_eq!(json, serde_json::json!({"member_id": "p2"}));
        assert!(event_json("image.NoSuchEvent.v1", &[]).unwrap().is_err());
        assert!(event_json("nosuchservice.Thing.v1", &[]).is_none());
    }

    #[test]
    fn event_json_knows_compute_events() {
        let e = crate::ComputeEvent::KeypairCreated(crate::compute::KeypairCreated {
            user_id: "u1".into(),
            name: "k".into(),
            r#type: "ssh".into(),
            public_key: "ssh-ed25519 AAAA".into(),
            fingerprint: "aa:bb".into(),
        });
        let json = event_json(e.event_type(), &e.encode())
            .expect("compute is a known service")
            .expect("decodes");
        assert_eq!(json["type"], "ssh");
        assert_eq!(json["user_id"], "u1");
        assert!(event_json("compute.NoSuchEvent.v1", &[]).unwrap().is_err());
    }
}
