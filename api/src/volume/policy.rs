//! Cinder's default policy (`cinder/policies/`) with the new defaults enforced (`enforce_new_defaults`,
//! Cinder's default from 2026.2): readers of a project read its volumes, snapshots and backups, members
//! change them, admins manage types, quotas, services and the admin actions. Releases up to 2026.1 shipped
//! with the old defaults, under which any role in the project could write; Strata does not offer them.

use crate::policy::{Rule, Rule::*, Table};

pub static POLICY: Table = Table {
    service: "volume",
    rules: RULES,
};

/// The policy of each volume action (`POST /volumes/{id}/action`), by its body key.
const VOLUME_ACTIONS: &[(&str, &str)] = &[
    ("os-extend", "volume:extend"),
    ("os-set_bootable", "volume:update"),
    ("os-update_readonly_flag", "volume:update_readonly_flag"),
    (
        "os-reset_status",
        "volume_extension:volume_admin_actions:reset_status",
    ),
    ("os-retype", "volume:retype"),
    ("revert", "volume:revert_to_snapshot"),
    (
        "os-volume_upload_image",
        "volume_extension:volume_actions:upload_image",
    ),
    ("os-show_image_metadata", "volume:get_volume_metadata"),
    (
        "os-force_delete",
        "volume_extension:volume_admin_actions:force_delete",
    ),
    ("os-reserve", "volume_extension:volume_actions:reserve"),
    ("os-unreserve", "volume_extension:volume_actions:unreserve"),
    ("os-attach", "volume_extension:volume_actions:attach"),
    (
        "os-begin_detaching",
        "volume_extension:volume_actions:begin_detaching",
    ),
    (
        "os-roll_detaching",
        "volume_extension:volume_actions:roll_detaching",
    ),
    ("os-detach", "volume_extension:volume_actions:detach"),
    (
        "os-force_detach",
        "volume_extension:volume_admin_actions:force_detach",
    ),
    (
        "os-initialize_connection",
        "volume_extension:volume_actions:initialize_connection",
    ),
    (
        "os-terminate_connection",
        "volume_extension:volume_actions:terminate_connection",
    ),
    (
        "os-set_image_metadata",
        "volume_extension:volume_image_metadata:set",
    ),
    (
        "os-unset_image_metadata",
        "volume_extension:volume_image_metadata:remove",
    ),
    (
        "os-migrate_volume",
        "volume_extension:volume_admin_actions:migrate_volume",
    ),
    (
        "os-migrate_volume_completion",
        "volume_extension:volume_admin_actions:migrate_volume_completion",
    ),
    ("os-unmanage", "volume_extension:volume_unmanage"),
    ("os-reimage", "volume:reimage"),
    (
        "os-extend_volume_completion",
        "volume_extension:volume_admin_actions:extend_volume_completion",
    ),
];

/// The policy of a volume action's body key (`None`: Cinder knows no such action).
pub fn volume_action(key: &str) -> Option<&'static str> {
    VOLUME_ACTIONS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, p)| *p)
}

const RULES: &[(&str, Rule)] = &[
    // Volumes and their actions.
    ("volume:get", ProjectReader),
    ("volume:get_all", ProjectReader),
    ("volume:create", ProjectMember),
    ("volume:update", ProjectMember),
    ("volume:delete", ProjectMember),
    ("volume:force_delete", Admin),
    ("volume:extend", ProjectMember),
    ("volume:retype", ProjectMember),
    ("volume:revert_to_snapshot", ProjectMember),
    ("volume:update_readonly_flag", ProjectMember),
    ("volume:reimage", ProjectMember),
    ("volume:get_volume_metadata", ProjectReader),
    ("volume:create_volume_metadata", ProjectMember),
    ("volume:update_volume_metadata", ProjectMember),
    ("volume:delete_volume_metadata", ProjectMember),
    ("volume_extension:volume_actions:attach", ProjectMember),
    ("volume_extension:volume_actions:detach", ProjectMember),
    ("volume_extension:volume_actions:reserve", ProjectMember),
    ("volume_extension:volume_actions:unreserve", ProjectMember),
    (
        "volume_extension:volume_actions:begin_detaching",
        ProjectMember,
    ),
    (
        "volume_extension:volume_actions:roll_detaching",
        ProjectMember,
    ),
    (
        "volume_extension:volume_actions:initialize_connection",
        ProjectMember,
    ),
    (
        "volume_extension:volume_actions:terminate_connection",
        ProjectMember,
    ),
    (
        "volume_extension:volume_actions:upload_image",
        ProjectMember,
    ),
    ("volume_extension:volume_actions:upload_public", Admin),
    ("volume_extension:volume_image_metadata:set", ProjectMember),
    (
        "volume_extension:volume_image_metadata:remove",
        ProjectMember,
    ),
    ("volume_extension:volume_admin_actions:reset_status", Admin),
    ("volume_extension:volume_admin_actions:force_delete", Admin),
    ("volume_extension:volume_admin_actions:force_detach", Admin),
    (
        "volume_extension:volume_admin_actions:migrate_volume",
        Admin,
    ),
    (
        "volume_extension:volume_admin_actions:migrate_volume_completion",
        Admin,
    ),
    (
        "volume_extension:volume_admin_actions:extend_volume_completion",
        Admin,
    ),
    ("volume_extension:volume_unmanage", Admin),
    // The attachments API.
    ("volume:attachment_create", ProjectMember),
    ("volume:attachment_update", ProjectMember),
    ("volume:attachment_delete", ProjectMember),
    ("volume:attachment_complete", ProjectMember),
    // Snapshots.
    ("volume:get_snapshot", ProjectReader),
    ("volume:get_all_snapshots", ProjectReader),
    ("volume:create_snapshot", ProjectMember),
    ("volume:update_snapshot", ProjectMember),
    ("volume:delete_snapshot", ProjectMember),
    ("volume:get_snapshot_metadata", ProjectReader),
    ("volume:update_snapshot_metadata", ProjectMember),
    ("volume:delete_snapshot_metadata", ProjectMember),
    (
        "snapshot_extension:snapshot_actions:update_snapshot_status",
        ProjectMember,
    ),
    (
        "volume_extension:snapshot_admin_actions:reset_status",
        Admin,
    ),
    (
        "volume_extension:snapshot_admin_actions:force_delete",
        Admin,
    ),
    ("snapshot_extension:snapshot_unmanage", Admin),
    // Backups.
    ("backup:get", ProjectReader),
    ("backup:get_all", ProjectReader),
    ("backup:create", ProjectMember),
    ("backup:update", ProjectMember),
    ("backup:delete", ProjectMember),
    ("backup:restore", ProjectMember),
    ("volume_extension:backup_admin_actions:reset_status", Admin),
    ("volume_extension:backup_admin_actions:force_delete", Admin),
    // Types, quotas, services, pools.
    ("volume_extension:types_manage", Admin),
    ("volume_extension:volume_type_access", Admin),
    ("volume_extension:type_create", Admin),
    ("volume_extension:type_update", Admin),
    ("volume_extension:type_delete", Admin),
    ("volume_extension:types_extra_specs:create", Admin),
    ("volume_extension:types_extra_specs:update", Admin),
    ("volume_extension:types_extra_specs:delete", Admin),
    (
        "volume_extension:volume_type_access:addProjectAccess",
        Admin,
    ),
    (
        "volume_extension:volume_type_access:removeProjectAccess",
        Admin,
    ),
    (
        "volume_extension:volume_type_access:get_all_for_type",
        Admin,
    ),
    ("volume_extension:quotas:show", ProjectReader),
    ("volume_extension:quotas:update", Admin),
    ("volume_extension:quotas:delete", Admin),
    ("volume_extension:services:index", Admin),
    ("volume_extension:services:update", Admin),
    ("scheduler_extension:scheduler_stats:get_pools", Admin),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_volume_action_has_a_rule() {
        for (key, action) in VOLUME_ACTIONS {
            assert!(POLICY.rule(action).is_some(), "{key}: {action}");
        }
    }
}
