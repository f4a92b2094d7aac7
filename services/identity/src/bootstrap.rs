//! First-start and every-start set-up of identity, all by events: the `default` domain, the `admin`,
//! `member` and `reader` roles with their implication chain, the `auditor` role, the `admin` project and user,
//! the `service` project (the services' own account), the region, and the catalog entries of the services
//! this process actually serves at the addresses it is bound to.
//! Every step checks the view first, so a restart appends only what changed.

use strata_actors::identity::{
    assignment_id, password, AssignmentCommand, DomainCommand, EndpointCommand, ProjectCommand,
    RegionCommand, RoleCommand, ServiceCommand, Target, UserCommand,
};
use strata_events::Metadata;

use crate::{new_id, Identity, IdentityError};

/// One service this process serves, as it should appear in the catalog.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub service_type: String,
    pub name: String,
    pub description: String,
    pub url: String,
}

pub const DEFAULT_DOMAIN: &str = "default";
/// The project bootstrap makes for the services themselves (devstack's `service`).
pub const SERVICE_PROJECT: &str = "service";
const INTERFACES: [&str; 3] = ["public", "internal", "admin"];

/// What bootstrap did, for the start-up log.
#[derive(Debug, Default)]
pub struct BootstrapReport {
    pub created_admin: bool,
    pub reset_admin_password: bool,
}

/// The id of project `name` in the default domain, created when missing.
async fn ensure_project(
    identity: &Identity,
    name: &str,
    description: &str,
    meta: &Metadata,
) -> Result<String, IdentityError> {
    let existing = identity
        .view
        .snapshot()
        .project_by_name(DEFAULT_DOMAIN, name)
        .map(|p| p.id.clone());
    if let Some(id) = existing {
        return Ok(id);
    }
    let id = new_id();
    identity
        .claim_name("project", DEFAULT_DOMAIN, name, &id, meta)
        .await?;
    let cmd = ProjectCommand::Create {
        project_id: id.clone(),
        domain_id: DEFAULT_DOMAIN.into(),
        name: name.into(),
        description: description.into(),
        enabled: true,
        parent_id: String::new(),
        tags: Vec::new(),
        extra_json: String::new(),
    };
    identity.run(&identity.projects, &id, cmd, meta).await?;
    Ok(id)
}

pub async fn bootstrap(
    identity: &Identity,
    admin_password: &str,
    catalog: &[CatalogEntry],
) -> Result<BootstrapReport, IdentityError> {
    let meta = Metadata::system(format!("bootstrap-{}", uuid::Uuid::new_v4()));
    let mut report = BootstrapReport::default();

    if !identity
        .view
        .snapshot()
        .domains
        .contains_key(DEFAULT_DOMAIN)
    {
        identity
            .claim_name("domain", "", "Default", DEFAULT_DOMAIN, &meta)
            .await?;
        let cmd = DomainCommand::Create {
            domain_id: DEFAULT_DOMAIN.into(),
            name: "Default".into(),
            description: "The default domain".into(),
            enabled: true,
            extra_json: String::new(),
        };
        identity
            .run(&identity.domains, DEFAULT_DOMAIN, cmd, &meta)
            .await?;
    }

    // Roles and Keystone's default chain: admin implies member implies reader.
    let mut role_ids = Vec::new();
    // `auditor` (read-only access to every project's history through the audit API) implies nothing.
    for name in ["admin", "member", "reader", "auditor"] {
        let existing = identity
            .view
            .snapshot()
            .role_by_name(name)
            .map(|r| r.id.clone());
        let id = match existing {
            Some(id) => id,
            None => {
                let id = new_id();
                identity.claim_name("role", "", name, &id, &meta).await?;
                let cmd = RoleCommand::Create {
                    role_id: id.clone(),
                    name: name.into(),
                    domain_id: String::new(),
                    description: String::new(),
                };
                identity.run(&identity.roles, &id, cmd, &meta).await?;
                id
            }
        };
        role_ids.push(id);
    }
    role_ids.truncate(3);
    for pair in role_ids.windows(2) {
        let (prior, implied) = (&pair[0], &pair[1]);
        let present = identity
            .view
            .snapshot()
            .roles
            .get(prior)
            .is_some_and(|r| r.implies.contains(implied));
        if !present {
            let cmd = RoleCommand::AddImplication {
                implied_role_id: implied.clone(),
            };
            identity.run(&identity.roles, prior, cmd, &meta).await?;
        }
    }
    let admin_role = role_ids[0].clone();

    let project_id = ensure_project(
        identity,
        "admin",
        "Bootstrap project for initializing the cloud.",
        &meta,
    )
    .await?;
    // The services' own project: Glance's swift store keeps images in its object-storage account.
    ensure_project(
        identity,
        SERVICE_PROJECT,
        "Project for the services' own resources (the swift image store's account).",
        &meta,
    )
    .await?;

    let existing = identity
        .view
        .snapshot()
        .user_by_name(DEFAULT_DOMAIN, "admin")
        .map(|u| (u.id.clone(), u.password_hash.clone()));
    let user_id = match existing {
        Some((id, hash)) => {
            let pw = admin_password.to_string();
            let matches =
                tokio::task::spawn_blocking(move || password::verify_password(&pw, &hash))
                    .await
                    .unwrap_or(false);
            if !matches {
                let new_hash = password::hash_password(admin_password)?;
                identity
                    .run(
                        &identity.users,
                        &id,
                        UserCommand::ChangePassword { new_hash },
                        &meta,
                    )
                    .await?;
                report.reset_admin_password = true;
            }
            id
        }
        None => {
            let id = new_id();
            identity
                .claim_name("user", DEFAULT_DOMAIN, "admin", &id, &meta)
                .await?;
            let cmd = UserCommand::Create {
                user_id: id.clone(),
                domain_id: DEFAULT_DOMAIN.into(),
                name: "admin".into(),
                password_hash: Some(password::hash_password(admin_password)?),
                enabled: true,
                description: String::new(),
                email: String::new(),
                default_project_id: project_id.clone(),
                extra_json: String::new(),
            };
            identity.run(&identity.users, &id, cmd, &meta).await?;
            report.created_admin = true;
            id
        }
    };
    for target in [
        Target::Project(project_id.clone()),
        Target::Domain(DEFAULT_DOMAIN.into()),
    ] {
        let cmd = AssignmentCommand::Grant {
            user_id: user_id.clone(),
            target: target.clone(),
            role_id: admin_role.clone(),
        };
        identity
            .run(
                &identity.assignments,
                &assignment_id(&user_id, &target),
                cmd,
                &meta,
            )
            .await?;
    }

    let region = identity.region.clone();
    if !identity.view.snapshot().regions.contains_key(&region) {
        let cmd = RegionCommand::Create {
            region_id: region.clone(),
            description: String::new(),
            parent_region_id: String::new(),
        };
        identity.run(&identity.regions, &region, cmd, &meta).await?;
    }

    for entry in catalog {
        sync_catalog_entry(identity, entry, &region, &meta).await?;
    }
    Ok(report)
}

/// Make the catalog hold exactly one enabled endpoint per interface for `entry`, at its current URL.
async fn sync_catalog_entry(
    identity: &Identity,
    entry: &CatalogEntry,
    region: &str,
    meta: &Metadata,
) -> Result<(), IdentityError> {
    let existing = identity
        .view
        .snapshot()
        .service_by_type(&entry.service_type)
        .map(|s| s.id.clone());
    let service_id = match existing {
        Some(id) => id,
        None => {
            let id = new_id();
            let cmd = ServiceCommand::Create {
                service_id: id.clone(),
                service_type: entry.service_type.clone(),
                name: entry.name.clone(),
                description: entry.description.clone(),
                enabled: true,
            };
            identity.run(&identity.services, &id, cmd, meta).await?;
            id
        }
    };
    for interface in INTERFACES {
        let current: Vec<(String, String, bool)> = identity
            .view
            .snapshot()
            .endpoints
            .values()
            .filter(|e| {
                e.service_id == service_id && e.interface == interface && e.region_id == region
            })
            .map(|e| (e.id.clone(), e.url.clone(), e.enabled))
            .collect();
        match current.first() {
            None => {
                let id = new_id();
                let cmd = EndpointCommand::Create {
                    endpoint_id: id.clone(),
                    service_id: service_id.clone(),
                    interface: interface.into(),
                    url: entry.url.clone(),
                    region_id: region.into(),
                    enabled: true,
                };
                identity.run(&identity.endpoints, &id, cmd, meta).await?;
            }
            Some((id, url, enabled)) if *url != entry.url || !enabled => {
                let cmd = EndpointCommand::Update {
                    service_id: None,
                    interface: None,
                    url: Some(entry.url.clone()),
                    region_id: None,
                    enabled: Some(true),
                };
                identity.run(&identity.endpoints, id, cmd, meta).await?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}
