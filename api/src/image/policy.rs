//! Glance's default policy (`glance/policies/image.py`, secure RBAC): readers of a project see its images,
//! members create, change, upload, download and share them, admins publicize images and manage stores.
//! Which image a caller may touch at all (its project's, or one shared with it) is decided before the policy.

use crate::policy::{Rule::*, Table};

pub static POLICY: Table = Table {
    service: "image",
    rules: &[
        ("get_images", ProjectReader),
        ("get_image", ProjectReader),
        ("add_image", ProjectMember),
        ("modify_image", ProjectMember),
        ("publicize_image", Admin),
        ("communitize_image", ProjectMember),
        ("delete_image", ProjectMember),
        ("upload_image", ProjectMember),
        ("download_image", ProjectMember),
        ("deactivate", ProjectMember),
        ("reactivate", ProjectMember),
        ("copy_image", Admin),
        ("delete_image_location", Admin),
        ("get_members", ProjectReader),
        ("get_member", ProjectReader),
        ("add_member", ProjectMember),
        ("delete_member", ProjectMember),
        ("modify_member", ProjectMember),
    ],
};
