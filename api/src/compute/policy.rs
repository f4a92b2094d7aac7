//! Nova's default policy (`nova/policies/`, secure RBAC defaults): readers of a project read its servers,
//! members change them, admins manage the cloud (flavors, aggregates, services, quotas, moves to a host);
//! keypairs belong to their user. Nova 2025.2 also gives a `manager` role cold and live migration without a
//! host; Strata has no manager role, so those stay admin-only.

use crate::policy::{Rule, Rule::*, Table};

pub static POLICY: Table = Table {
    service: "compute",
    rules: RULES,
};

/// The policy of each server action (`POST /servers/{id}/action`), by its body key.
pub const SERVER_ACTIONS: &[(&str, &str)] = &[
    ("os-stop", "os_compute_api:servers:stop"),
    ("os-start", "os_compute_api:servers:start"),
    ("reboot", "os_compute_api:servers:reboot"),
    ("pause", "os_compute_api:os-pause-server:pause"),
    ("unpause", "os_compute_api:os-pause-server:unpause"),
    ("suspend", "os_compute_api:os-suspend-server:suspend"),
    ("resume", "os_compute_api:os-suspend-server:resume"),
    ("addSecurityGroup", "os_compute_api:os-security-groups:add"),
    (
        "removeSecurityGroup",
        "os_compute_api:os-security-groups:remove",
    ),
    ("lock", "os_compute_api:os-lock-server:lock"),
    ("unlock", "os_compute_api:os-lock-server:unlock"),
    ("resize", "os_compute_api:servers:resize"),
    ("confirmResize", "os_compute_api:servers:confirm_resize"),
    ("revertResize", "os_compute_api:servers:revert_resize"),
    ("migrate", "os_compute_api:os-migrate-server:migrate"),
    (
        "os-migrateLive",
        "os_compute_api:os-migrate-server:migrate_live",
    ),
    ("evacuate", "os_compute_api:os-evacuate"),
    ("rebuild", "os_compute_api:servers:rebuild"),
    ("createImage", "os_compute_api:servers:create_image"),
    ("shelve", "os_compute_api:os-shelve:shelve"),
    ("shelveOffload", "os_compute_api:os-shelve:shelve_offload"),
    ("unshelve", "os_compute_api:os-shelve:unshelve"),
    ("os-getConsoleOutput", "os_compute_api:os-console-output"),
];

/// The policy of a server action's body key (`None`: Nova knows no such action).
pub fn server_action(key: &str) -> Option<&'static str> {
    SERVER_ACTIONS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, p)| *p)
}

const RULES: &[(&str, Rule)] = &[
    // Servers.
    ("os_compute_api:servers:index", ProjectReader),
    ("os_compute_api:servers:detail", ProjectReader),
    ("os_compute_api:servers:show", ProjectReader),
    ("os_compute_api:servers:create", ProjectMember),
    ("os_compute_api:servers:create:forced_host", Admin),
    ("compute:servers:create:requested_destination", Admin),
    ("os_compute_api:servers:update", ProjectMember),
    ("os_compute_api:servers:delete", ProjectMember),
    ("os_compute_api:servers:start", ProjectMember),
    ("os_compute_api:servers:stop", ProjectMember),
    ("os_compute_api:servers:reboot", ProjectMember),
    ("os_compute_api:servers:resize", ProjectMember),
    ("os_compute_api:servers:confirm_resize", ProjectMember),
    ("os_compute_api:servers:revert_resize", ProjectMember),
    ("os_compute_api:servers:rebuild", ProjectMember),
    ("os_compute_api:servers:create_image", ProjectMember),
    ("os_compute_api:os-lock-server:lock", ProjectMember),
    ("os_compute_api:os-lock-server:unlock", ProjectMember),
    (
        "os_compute_api:os-lock-server:unlock:unlock_override",
        Admin,
    ),
    ("os_compute_api:os-pause-server:pause", ProjectMember),
    ("os_compute_api:os-pause-server:unpause", ProjectMember),
    ("os_compute_api:os-suspend-server:suspend", ProjectMember),
    ("os_compute_api:os-suspend-server:resume", ProjectMember),
    ("os_compute_api:os-shelve:shelve", ProjectMember),
    ("os_compute_api:os-shelve:unshelve", ProjectMember),
    ("os_compute_api:os-shelve:shelve_offload", Admin),
    ("os_compute_api:os-migrate-server:migrate", Admin),
    ("os_compute_api:os-migrate-server:migrate_live", Admin),
    ("os_compute_api:os-evacuate", Admin),
    ("os_compute_api:os-security-groups:add", ProjectMember),
    ("os_compute_api:os-security-groups:remove", ProjectMember),
    ("os_compute_api:os-console-output", ProjectMember),
    ("os_compute_api:server-metadata:index", ProjectReader),
    ("os_compute_api:server-metadata:show", ProjectReader),
    ("os_compute_api:server-metadata:create", ProjectMember),
    ("os_compute_api:server-metadata:update_all", ProjectMember),
    ("os_compute_api:server-metadata:update", ProjectMember),
    ("os_compute_api:server-metadata:delete", ProjectMember),
    ("os_compute_api:os-attach-interfaces:list", ProjectReader),
    ("os_compute_api:os-attach-interfaces:create", ProjectMember),
    ("os_compute_api:os-attach-interfaces:delete", ProjectMember),
    ("os_compute_api:os-volumes-attachments:index", ProjectReader),
    (
        "os_compute_api:os-volumes-attachments:create",
        ProjectMember,
    ),
    (
        "os_compute_api:os-volumes-attachments:delete",
        ProjectMember,
    ),
    ("os_compute_api:servers:migrations:force_complete", Admin),
    ("os_compute_api:servers:migrations:delete", Admin),
    // Keypairs: the user's own, whatever the role.
    ("os_compute_api:os-keypairs:index", OwnUser),
    ("os_compute_api:os-keypairs:show", OwnUser),
    ("os_compute_api:os-keypairs:create", OwnUser),
    ("os_compute_api:os-keypairs:delete", OwnUser),
    // Server groups and quotas.
    ("os_compute_api:os-server-groups:index", ProjectReader),
    ("os_compute_api:os-server-groups:show", ProjectReader),
    ("os_compute_api:os-server-groups:create", ProjectMember),
    ("os_compute_api:os-server-groups:delete", ProjectMember),
    ("os_compute_api:os-quota-sets:show", ProjectReader),
    ("os_compute_api:os-quota-sets:update", Admin),
    ("os_compute_api:os-quota-sets:delete", Admin),
    ("os_compute_api:os-quota-class-sets:show", Admin),
    ("os_compute_api:limits:other_project", Admin),
    // Flavors.
    ("os_compute_api:os-flavor-manage:create", Admin),
    ("os_compute_api:os-flavor-manage:update", Admin),
    ("os_compute_api:os-flavor-manage:delete", Admin),
    ("os_compute_api:os-flavor-access", Admin),
    ("os_compute_api:os-flavor-access:add_tenant_access", Admin),
    (
        "os_compute_api:os-flavor-access:remove_tenant_access",
        Admin,
    ),
    ("os_compute_api:os-flavor-extra-specs:create", Admin),
    ("os_compute_api:os-flavor-extra-specs:update", Admin),
    ("os_compute_api:os-flavor-extra-specs:delete", Admin),
    // The cloud's own resources.
    ("os_compute_api:os-hypervisors:list", Admin),
    ("os_compute_api:os-hypervisors:list-detail", Admin),
    ("os_compute_api:os-hypervisors:show", Admin),
    ("os_compute_api:os-hypervisors:uptime", Admin),
    ("os_compute_api:os-hypervisors:statistics", Admin),
    ("os_compute_api:os-hypervisors:search", Admin),
    ("os_compute_api:os-hypervisors:servers", Admin),
    ("os_compute_api:os-services:list", Admin),
    ("os_compute_api:os-services:update", Admin),
    ("os_compute_api:os-services:delete", Admin),
    ("os_compute_api:os-availability-zone:detail", Admin),
    ("os_compute_api:os-aggregates:index", Admin),
    ("os_compute_api:os-aggregates:create", Admin),
    ("os_compute_api:os-aggregates:show", Admin),
    ("os_compute_api:os-aggregates:update", Admin),
    ("os_compute_api:os-aggregates:delete", Admin),
    ("os_compute_api:os-aggregates:add_host", Admin),
    ("os_compute_api:os-aggregates:remove_host", Admin),
    ("os_compute_api:os-aggregates:set_metadata", Admin),
    ("compute:aggregates:images", Admin),
    ("os_compute_api:os-migrations:index", Admin),
    ("os_compute_api:servers:migrations:index", Admin),
    ("os_compute_api:servers:migrations:show", Admin),
    ("os_compute_api:os-simple-tenant-usage:list", Admin),
    ("os_compute_api:os-simple-tenant-usage:show", ProjectReader),
    ("os_compute_api:os-instance-actions:list", ProjectReader),
    ("os_compute_api:os-instance-actions:show", ProjectReader),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_action_has_a_rule() {
        for (key, action) in SERVER_ACTIONS {
            assert!(POLICY.rule(action).is_some(), "{key}: {action}");
        }
    }
}
