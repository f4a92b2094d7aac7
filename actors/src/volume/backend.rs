//! `Backend`: one cinder-volume backend (stream `volume-backend-<name>`): its driver, capacity with the
//! over-subscription ratio, capabilities, claims of the volumes placed on it, heartbeats and service state.
//! A claim that does not fit is refused; appends carry the expected version, so concurrent schedulers never
//! overcommit a backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::volume as pb;
use strata_proto::VolumeEvent as E;

use crate::aggregate::{Aggregate, DomainError};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    pub exists: bool,
    pub driver: String,
    pub service_id: String,
    pub total_gb: u64,
    /// What the driver reports free (thin backends report more than total - claimed).
    pub free_gb: u64,
    pub max_over_subscription_ratio: f64,
    pub capabilities: BTreeMap<String, String>,
    pub availability_zone: String,
    pub claims: BTreeMap<String, u64>,
    /// The sum of `claims` (GB).
    pub claimed_gb: u64,
    pub disabled: bool,
    pub disabled_reason: String,
}

impl Backend {
    /// GB that may still be claimed: total × over-subscription ratio − claimed.
    pub fn claimable_gb(&self) -> u64 {
        let cap = (self.total_gb as f64 * self.max_over_subscription_ratio.max(1.0)).floor() as u64;
        cap.saturating_sub(self.claimed_gb)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackendCommand {
    Register {
        driver: String,
        total_gb: u64,
        max_over_subscription_ratio: f64,
        capabilities: BTreeMap<String, String>,
        availability_zone: String,
        service_id: String,
    },
    ReportStats {
        total_gb: u64,
        free_gb: u64,
    },
    Heartbeat,
    Claim {
        claim_id: String,
        size_gb: u64,
    },
    /// Give a claim back (nothing happens when it is not held).
    Release {
        claim_id: String,
    },
    Disable {
        reason: String,
    },
    Enable,
}

impl Aggregate for Backend {
    type Command = BackendCommand;
    type Event = E;
    const KIND: &'static str = "volume-backend";

    fn decide(&self, cmd: &BackendCommand) -> Result<Vec<E>, DomainError> {
        use BackendCommand as C;
        if !self.exists && !matches!(cmd, C::Register { .. }) {
            return Err(DomainError::NotFound {
                kind: "volume backend",
                id: String::new(),
            });
        }
        Ok(match cmd {
            C::Register {
                driver,
                total_gb,
                max_over_subscription_ratio,
                capabilities,
                availability_zone,
                service_id,
            } => {
                let same = self.exists
                    && self.driver == *driver
                    && self.total_gb == *total_gb
                    && self.max_over_subscription_ratio == *max_over_subscription_ratio
                    && self.capabilities == *capabilities
                    && self.availability_zone == *availability_zone;
                if same {
                    return Ok(vec![]);
                }
                vec![E::BackendRegistered(pb::BackendRegistered {
                    driver: driver.clone(),
                    total_gb: *total_gb,
                    max_over_subscription_ratio: *max_over_subscription_ratio,
                    capabilities: capabilities.clone().into_iter().collect(),
                    availability_zone: availability_zone.clone(),
                    service_id: if self.exists {
                        self.service_id.clone()
                    } else {
                        service_id.clone()
                    },
                })]
            }
            C::ReportStats { total_gb, free_gb } => {
                if self.total_gb == *total_gb && self.free_gb == *free_gb {
                    return Ok(vec![]);
                }
                vec![E::BackendStatsReported(pb::BackendStatsReported {
                    total_gb: *total_gb,
                    free_gb: *free_gb,
                })]
            }
            C::Heartbeat => vec![E::BackendHeartbeat(pb::BackendHeartbeat {})],
            C::Claim { claim_id, size_gb } => {
                if self.claims.contains_key(claim_id) {
                    return Ok(vec![]);
                }
                if *size_gb > self.claimable_gb() {
                    return Err(DomainError::Conflict(format!(
                        "insufficient free capacity: {size_gb} GB requested, {} GB left",
                        self.claimable_gb()
                    )));
                }
                vec![E::BackendClaimed(pb::BackendClaimed {
                    claim_id: claim_id.clone(),
                    size_gb: *size_gb,
                })]
            }
            C::Release { claim_id } => {
                if !self.claims.contains_key(claim_id) {
                    return Ok(vec![]);
                }
                vec![E::BackendClaimReleased(pb::BackendClaimReleased {
                    claim_id: claim_id.clone(),
                })]
            }
            C::Disable { reason } => vec![E::BackendDisabled(pb::BackendDisabled {
                reason: reason.clone(),
            })],
            C::Enable => {
                if !self.disabled {
                    return Ok(vec![]);
                }
                vec![E::BackendEnabled(pb::BackendEnabled {})]
            }
        })
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::BackendRegistered(r) => {
                if !self.exists {
                    self.free_gb = r.total_gb;
                }
                self.exists = true;
                self.driver = r.driver.clone();
                self.total_gb = r.total_gb;
                self.max_over_subscription_ratio = r.max_over_subscription_ratio;
                self.capabilities = r.capabilities.clone().into_iter().collect();
                self.availability_zone = r.availability_zone.clone();
                self.service_id = r.service_id.clone();
            }
            E::BackendStatsReported(s) => {
                self.total_gb = s.total_gb;
                self.free_gb = s.free_gb;
            }
            E::BackendClaimed(c) => {
                if let Some(old) = self.claims.insert(c.claim_id.clone(), c.size_gb) {
                    self.claimed_gb -= old;
                }
                self.claimed_gb += c.size_gb;
            }
            E::BackendClaimReleased(r) => {
                if let Some(old) = self.claims.remove(&r.claim_id) {
                    self.claimed_gb -= old;
                }
            }
            E::BackendDisabled(d) => {
                self.disabled = true;
                self.disabled_reason = d.reason.clone();
            }
            E::BackendEnabled(_) => {
                self.disabled = false;
                self.disabled_reason.clear();
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    fn registered(total: u64, ratio: f64) -> E {
        E::BackendRegistered(pb::BackendRegistered {
            driver: "file".into(),
            total_gb: total,
            max_over_subscription_ratio: ratio,
            ..Default::default()
        })
    }

    #[test]
    fn claims_fit_the_over_subscribed_capacity() {
        let claim = |id: &str, gb| BackendCommand::Claim {
            claim_id: id.into(),
            size_gb: gb,
        };
        let s = given::<Backend>([registered(10, 2.0)])
            .when(claim("a", 15))
            .then_ok();
        assert_eq!(s.claimable_gb(), 5);
        given::<Backend>([
            registered(10, 2.0),
            E::BackendClaimed(pb::BackendClaimed {
                claim_id: "a".into(),
                size_gb: 15,
            }),
        ])
        .when(claim("b", 6))
        .then_conflict();
    }
}
