//! `Revocation`: one token revoked before its expiry, in the stream of the token's audit id.

use serde::{Deserialize, Serialize};
use strata_proto::identity as pb;
use strata_proto::IdentityEvent as E;

use super::{check_id, NAME_MAX};
use crate::aggregate::{Aggregate, DomainError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub revoked: bool,
    pub audit_id: String,
    /// When the token would have expired (µs since the epoch): after that the record can be forgotten.
    pub expires_at_micros: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationCommand {
    /// Idempotent: revoking a revoked token records nothing.
    Revoke {
        audit_id: String,
        expires_at_micros: i64,
    },
}

impl Aggregate for Revocation {
    type Command = RevocationCommand;
    type Event = E;
    const KIND: &'static str = "revocation";

    fn decide(&self, cmd: &RevocationCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            RevocationCommand::Revoke {
                audit_id,
                expires_at_micros,
            } => {
                check_id("audit_id", audit_id, NAME_MAX)?;
                if self.revoked {
                    return Ok(vec![]);
                }
                Ok(vec![E::TokenRevoked(pb::TokenRevoked {
                    audit_id: audit_id.clone(),
                    expires_at_micros: *expires_at_micros,
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        if let E::TokenRevoked(t) = event {
            self.revoked = true;
            self.audit_id = t.audit_id.clone();
            self.expires_at_micros = t.expires_at_micros;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    fn revoke() -> RevocationCommand {
        RevocationCommand::Revoke {
            audit_id: "aid".into(),
            expires_at_micros: 1_700_000_000_000_000,
        }
    }

    fn revoked() -> E {
        E::TokenRevoked(pb::TokenRevoked {
            audit_id: "aid".into(),
            expires_at_micros: 1_700_000_000_000_000,
        })
    }

    #[test]
    fn revoke_records_the_token() {
        let state = given::<Revocation>([]).when(revoke()).then(vec![revoked()]);
        assert_eq!(
            state,
            Revocation {
                revoked: true,
                audit_id: "aid".into(),
                expires_at_micros: 1_700_000_000_000_000
            }
        );
    }

    #[test]
    fn revoking_twice_records_nothing() {
        let state = given::<Revocation>([revoked()])
            .when(revoke())
            .then_nothing();
        assert!(state.revoked);
    }

    #[test]
    fn revoke_needs_an_audit_id() {
        given::<Revocation>([])
            .when(RevocationCommand::Revoke {
                audit_id: String::new(),
                expires_at_micros: 0,
            })
            .then_invalid();
    }

    #[test]
    fn apply_ignores_other_aggregates_events() {
        assert_eq!(
            Revocation::default().apply(&E::UserDeleted(pb::UserDeleted {})),
            Revocation::default()
        );
    }
}
