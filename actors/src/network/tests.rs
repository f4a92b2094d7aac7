//! Given/When/Then tests of the networking aggregates: IPAM, MACs, subnet plans, ports, quotas.

use super::*;
use crate::aggregate::DomainError;
use crate::image::gwt::given;
use strata_proto::network as pb;
use strata_proto::NetworkEvent as E;

fn created() -> E {
    E::NetworkCreated(pb::NetworkCreated {
        project_id: "p".into(),
        name: "n".into(),
        admin_state_up: true,
        mtu: 1500,
        ..Default::default()
    })
}

#[test]
fn a_network_is_created_once() {
    let s = given::<Network>([])
        .when(NetworkCommand::Create(NetworkSpec {
            project_id: "p".into(),
            ..Default::default()
        }))
        .then_ok();
    assert!(s.is_live());
    given::<Network>([created()])
        .when(NetworkCommand::Create(NetworkSpec::default()))
        .then_err_where(|e| matches!(e, DomainError::AlreadyExists { .. }));
}
