//! Neutron's default policy (`neutron/conf/policies/`, secure RBAC): readers of a project see its
//! networking resources, members create, change and delete them, admins set the attributes only operators
//! may (shared, external, provider, binding host, SNAT) and manage quotas. Which resources a caller may
//! touch (its project's, shared and external networks) is decided before the policy: another project's
//! resource is 404, a visible one the caller may not change is 403.

use crate::policy::{Rule, Rule::*, Table};

pub static POLICY: Table = Table {
    service: "network",
    rules: RULES,
};

/// The singular resource name of a URL collection, as Neutron's policy names spell it.
pub fn resource_of(collection: &str) -> Option<&'static str> {
    Some(match collection {
        "networks" => "network",
        "subnets" => "subnet",
        "ports" => "port",
        "routers" => "router",
        "floatingips" => "floatingip",
        "security-groups" => "security_group",
        _ => return None,
    })
}

const RULES: &[(&str, Rule)] = &[
    ("get_network", ProjectReader),
    ("create_network", ProjectMember),
    ("create_network:shared", Admin),
    ("create_network:router:external", Admin),
    ("create_network:provider:network_type", Admin),
    ("update_network", ProjectMember),
    ("update_network:shared", Admin),
    ("update_network:router:external", Admin),
    ("delete_network", ProjectMember),
    ("create_subnet", ProjectMember),
    ("update_subnet", ProjectMember),
    ("delete_subnet", ProjectMember),
    ("create_port", ProjectMember),
    ("create_port:binding:host_id", Admin),
    ("update_port", ProjectMember),
    ("update_port:binding:host_id", Admin),
    ("delete_port", ProjectMember),
    ("create_router", ProjectMember),
    ("create_router:external_gateway_info:enable_snat", Admin),
    (
        "create_router:external_gateway_info:external_fixed_ips",
        Admin,
    ),
    ("update_router", ProjectMember),
    ("update_router:external_gateway_info:enable_snat", Admin),
    (
        "update_router:external_gateway_info:external_fixed_ips",
        Admin,
    ),
    ("delete_router", ProjectMember),
    ("add_router_interface", ProjectMember),
    ("remove_router_interface", ProjectMember),
    ("create_floatingip", ProjectMember),
    ("create_floatingip:floating_ip_address", Admin),
    ("update_floatingip", ProjectMember),
    ("delete_floatingip", ProjectMember),
    ("create_security_group", ProjectMember),
    ("update_security_group", ProjectMember),
    ("delete_security_group", ProjectMember),
    ("create_security_group_rule", ProjectMember),
    ("delete_security_group_rule", ProjectMember),
    ("get_quota", Admin),
    ("update_quota", Admin),
    ("delete_quota", Admin),
    ("update_network:tags", ProjectMember),
    ("delete_network:tags", ProjectMember),
    ("update_subnet:tags", ProjectMember),
    ("delete_subnet:tags", ProjectMember),
    ("update_port:tags", ProjectMember),
    ("delete_port:tags", ProjectMember),
    ("update_router:tags", ProjectMember),
    ("delete_router:tags", ProjectMember),
    ("update_floatingip:tags", ProjectMember),
    ("delete_floatingip:tags", ProjectMember),
    ("update_security_group:tags", ProjectMember),
    ("delete_security_group:tags", ProjectMember),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_taggable_collection_has_tag_rules() {
        for c in [
            "networks",
            "subnets",
            "ports",
            "routers",
            "floatingips",
            "security-groups",
        ] {
            let r = resource_of(c).expect("singular");
            for verb in ["update", "delete"] {
                let action = format!("{verb}_{r}:tags");
                assert!(POLICY.rule(&action).is_some(), "{action}");
            }
        }
    }
}
