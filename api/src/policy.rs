//! Default policies: one table per service, naming every action with its upstream rule name
//! (`os_compute_api:servers:create`, `volume:extend`, `modify_image`, `create_port` ...) and who may do it,
//! as OpenStack's "secure RBAC" defaults ship it (`enforce_new_defaults`):
//!
//! - `reader` in the owning project reads;
//! - `member` in the owning project reads and writes (Keystone's bootstrap makes admin imply member and
//!   member imply reader, so a token carries the roles its roles imply);
//! - `admin` does everything, in any project;
//! - a few actions belong to a user rather than a project (Nova keypairs): the user themself, whatever the
//!   role, or an admin.
//!
//! A handler first finds the resource as the caller may see it (another project's resource is 404, as
//! upstream answers), then asks the table with the resource's project (or, for a create, the caller's own)
//! as the target. Each service turns a refusal into its own 403 body. Actions not in a table are refused:
//! a handler that names a misspelt action fails closed, and the unit tests of each table check that every
//! name a handler uses is in it.

use crate::auth::AuthContext;

/// Who may perform an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Any authenticated caller (`@`).
    Anyone,
    /// `reader` of the target project, or admin.
    ProjectReader,
    /// `member` of the target project, or admin.
    ProjectMember,
    /// `admin` only.
    Admin,
    /// The target user (`user_id:%(user_id)s`), or admin.
    OwnUser,
}

/// What an action is about: the project owning the resource (or the caller's, for a create) and, for
/// user-owned resources, the user.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub project: Option<&'a str>,
    pub user: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub fn project(project: &'a str) -> Self {
        Target {
            project: Some(project),
            user: None,
        }
    }

    pub fn user(user: &'a str) -> Self {
        Target {
            project: None,
            user: Some(user),
        }
    }
}

/// One service's default policy.
pub struct Table {
    pub service: &'static str,
    pub rules: &'static [(&'static str, Rule)],
}

impl Table {
    /// The rule of `action` (`None`: not in the table, which refuses it).
    pub fn rule(&self, action: &str) -> Option<Rule> {
        self.rules
            .iter()
            .find(|(name, _)| *name == action)
            .map(|(_, r)| *r)
    }

    /// Whether `ctx` may perform `action` on `target`.
    pub fn allows(&self, ctx: &AuthContext, action: &str, target: Target<'_>) -> bool {
        let Some(rule) = self.rule(action) else {
            tracing::error!(
                service = self.service,
                action,
                "an action missing from the policy table was refused"
            );
            return false;
        };
        if ctx.is_admin() {
            return true;
        }
        let in_project = || target.project.is_some() && target.project == ctx.project_id();
        match rule {
            Rule::Anyone => true,
            Rule::ProjectReader => ctx.has_role("reader") && in_project(),
            Rule::ProjectMember => ctx.has_role("member") && in_project(),
            Rule::Admin => false,
            Rule::OwnUser => target.user == Some(ctx.user_id.as_str()),
        }
    }

    /// `Ok` when `ctx` may perform `action` on a resource of `project`, else the service's refusal.
    pub fn enforce<E>(
        &self,
        ctx: &AuthContext,
        action: &str,
        project: &str,
        refusal: impl FnOnce(&str) -> E,
    ) -> Result<(), E> {
        if self.allows(ctx, action, Target::project(project)) {
            Ok(())
        } else {
            Err(refusal(action))
        }
    }
}

/// Every service's table, for documentation and the policy matrix test.
pub fn tables() -> [&'static Table; 5] {
    [
        &crate::identity::POLICY,
        &crate::compute::POLICY,
        &crate::volume::POLICY,
        &crate::image::POLICY,
        &crate::network::POLICY,
    ]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A token of `user` in `project` with `roles` (implied roles already expanded, as tokens carry them).
    pub fn ctx(user: &str, project: &str, roles: &[&str]) -> AuthContext {
        let mut c = AuthContext::service(project);
        c.user_id = user.to_string();
        c.roles = roles
            .iter()
            .map(|r| (r.to_string(), r.to_string()))
            .collect();
        c
    }

    const T: Table = Table {
        service: "test",
        rules: &[
            ("read", Rule::ProjectReader),
            ("write", Rule::ProjectMember),
            ("manage", Rule::Admin),
            ("own", Rule::OwnUser),
            ("any", Rule::Anyone),
        ],
    };

    #[test]
    fn readers_read_members_write_admins_manage_users_own() {
        let reader = ctx("u1", "p1", &["reader"]);
        let member = ctx("u2", "p1", &["member", "reader"]);
        let other = ctx("u3", "p2", &["member", "reader"]);
        let admin = ctx("u4", "p9", &["admin", "member", "reader"]);
        let p1 = Target::project("p1");
        assert!(T.allows(&reader, "read", p1));
        assert!(!T.allows(&reader, "write", p1));
        assert!(T.allows(&member, "write", p1));
        assert!(!T.allows(&other, "read", p1) && !T.allows(&other, "write", p1));
        assert!(T.allows(&admin, "write", p1) && T.allows(&admin, "manage", p1));
        assert!(!T.allows(&member, "manage", p1));
        assert!(T.allows(&reader, "own", Target::user("u1")));
        assert!(!T.allows(&reader, "own", Target::user("u2")));
        assert!(T.allows(&other, "any", p1));
        // No target project: nobody but an admin.
        assert!(!T.allows(&member, "write", Target::default()));
        // Unknown actions are refused, even to admins.
        assert!(!T.allows(&admin, "no-such-action", p1));
    }

    #[test]
    fn no_table_names_an_action_twice() {
        for table in tables() {
            let mut names: Vec<&str> = table.rules.iter().map(|(n, _)| *n).collect();
            names.sort();
            let before = names.len();
            names.dedup();
            assert_eq!(
                before,
                names.len(),
                "{}: an action is listed twice",
                table.service
            );
        }
    }

    /// The string literals that follow `marker` in `text`.
    fn literals_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
        text.match_indices(marker)
            .filter_map(|(i, _)| {
                let rest = &text[i + marker.len()..];
                rest.find('"').map(|end| &rest[..end])
            })
            .collect()
    }

    /// Every action a handler names (`enforce("...")`, Nova's and Cinder's `admin(&caller, "...")`,
    /// Keystone's `require_admin("...")`) is in its service's table: a misspelt name would refuse everyone.
    #[test]
    fn every_action_a_handler_names_is_in_its_table() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut checked = 0;
        for table in tables() {
            // Every `.rs` file under the service's folder, its subfolders included.
            let mut dirs = vec![root.join(table.service)];
            let mut files = Vec::new();
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir)
                    .expect("service source dir")
                    .flatten()
                {
                    let path = entry.path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else if path.extension().is_some_and(|e| e == "rs") {
                        files.push(path);
                    }
                }
            }
            for path in files {
                let text = std::fs::read_to_string(&path).expect("source");
                for marker in ["enforce(\"", "admin(&caller, \"", "require_admin(\""] {
                    for name in literals_after(&text, marker) {
                        assert!(
                            table.rule(name).is_some(),
                            "{}: {name} is not in the {} policy table",
                            path.display(),
                            table.service
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(
            checked > 100,
            "only {checked} names found: is the scan broken?"
        );
    }
}
