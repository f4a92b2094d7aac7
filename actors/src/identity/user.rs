//! `User`: a Keystone user, owned by a domain, with an optional password (kept as an argon2id PHC string so
//! the API can verify it).

use serde::{Deserialize, Serialize};
use strata_proto::identity as pb;
use strata_proto::IdentityEvent as E;

use super::password::is_phc;
use super::{
    changed, check_description, check_extra, check_id, check_len, check_name, duplicate_id,
    not_found, set,
};
use super::{ID_MAX, NAME_MAX};
use crate::aggregate::{Aggregate, DomainError};

const KIND: &str = "user";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub exists: bool,
    pub deleted: bool,
    pub user_id: String,
    pub domain_id: String,
    pub name: String,
    /// Argon2id PHC string; `None` for a user without a password (who cannot authenticate with one).
    pub password_hash: Option<String>,
    pub enabled: bool,
    pub description: String,
    pub email: String,
    /// "" when the user has no default project.
    pub default_project_id: String,
    /// Unmodelled attributes as a JSON object ("" when none).
    pub extra_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    Create {
        user_id: String,
        domain_id: String,
        name: String,
        /// A PHC string from [`super::password::hash_password`], never the plain password.
        password_hash: Option<String>,
        enabled: bool,
        description: String,
        email: String,
        default_project_id: String,
        extra_json: String,
    },
    /// Change the given fields; `None` leaves a field as it is, `Some("")` clears a text field.
    Update {
        name: Option<String>,
        enabled: Option<bool>,
        description: Option<String>,
        email: Option<String>,
        default_project_id: Option<String>,
        extra_json: Option<String>,
    },
    /// Always recorded (even with an equal hash): it also ends the validity of earlier tokens.
    ChangePassword {
        new_hash: String,
    },
    Delete,
}

fn check_hash(hash: &str) -> Result<(), DomainError> {
    if is_phc(hash) {
        Ok(())
    } else {
        Err(DomainError::Invalid(
            "Invalid input for field 'password': the hash is not a PHC string.".into(),
        ))
    }
}

impl User {
    fn live(&self) -> Result<(), DomainError> {
        if self.exists && !self.deleted {
            Ok(())
        } else {
            Err(not_found(KIND, &self.user_id))
        }
    }
}

impl Aggregate for User {
    type Command = UserCommand;
    type Event = E;
    const KIND: &'static str = KIND;

    fn decide(&self, cmd: &UserCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            UserCommand::Create {
                user_id,
                domain_id,
                name,
                password_hash,
                enabled,
                description,
                email,
                default_project_id,
                extra_json,
            } => {
                check_id("id", user_id, ID_MAX)?;
                check_id("domain_id", domain_id, ID_MAX)?;
                check_name("name", name, NAME_MAX)?;
                if let Some(h) = password_hash {
                    check_hash(h)?;
                }
                check_description(description)?;
                check_len("email", email, NAME_MAX)?;
                check_len("default_project_id", default_project_id, ID_MAX)?;
                check_extra(extra_json)?;
                if self.exists {
                    return Err(duplicate_id(KIND, user_id));
                }
                Ok(vec![E::UserCreated(pb::UserCreated {
                    user_id: user_id.clone(),
                    domain_id: domain_id.clone(),
                    name: name.clone(),
                    password_hash: password_hash.clone().unwrap_or_default(),
                    enabled: *enabled,
                    description: description.clone(),
                    email: email.clone(),
                    default_project_id: default_project_id.clone(),
                    extra_json: extra_json.clone(),
                })])
            }
            UserCommand::Update {
                name,
                enabled,
                description,
                email,
                default_project_id,
                extra_json,
            } => {
                self.live()?;
                if let Some(n) = name {
                    check_name("name", n, NAME_MAX)?;
                }
                if let Some(d) = description {
                    check_description(d)?;
                }
                if let Some(e) = email {
                    check_len("email", e, NAME_MAX)?;
                }
                if let Some(p) = default_project_id {
                    check_len("default_project_id", p, ID_MAX)?;
                }
                if let Some(x) = extra_json {
                    check_extra(x)?;
                }
                let update = pb::UserUpdated {
                    name: changed(&self.name, name),
                    enabled: changed(&self.enabled, enabled),
                    description: changed(&self.description, description),
                    email: changed(&self.email, email),
                    default_project_id: changed(&self.default_project_id, default_project_id),
                    extra_json: changed(&self.extra_json, extra_json),
                };
                if update == pb::UserUpdated::default() {
                    return Ok(vec![]);
                }
                Ok(vec![E::UserUpdated(update)])
            }
            UserCommand::ChangePassword { new_hash } => {
                self.live()?;
                check_hash(new_hash)?;
                Ok(vec![E::UserPasswordChanged(pb::UserPasswordChanged {
                    password_hash: new_hash.clone(),
                })])
            }
            UserCommand::Delete => {
                self.live()?;
                Ok(vec![E::UserDeleted(pb::UserDeleted {})])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        let hash = |h: &String| if h.is_empty() { None } else { Some(h.clone()) };
        match event {
            E::UserCreated(c) => {
                self.exists = true;
                self.user_id = c.user_id.clone();
                self.domain_id = c.domain_id.clone();
                self.name = c.name.clone();
                self.password_hash = hash(&c.password_hash);
                self.enabled = c.enabled;
                self.description = c.description.clone();
                self.email = c.email.clone();
                self.default_project_id = c.default_project_id.clone();
                self.extra_json = c.extra_json.clone();
            }
            E::UserUpdated(u) => {
                set(&mut self.name, &u.name);
                set(&mut self.enabled, &u.enabled);
                set(&mut self.description, &u.description);
                set(&mut self.email, &u.email);
                set(&mut self.default_project_id, &u.default_project_id);
                set(&mut self.extra_json, &u.extra_json);
            }
            E::UserPasswordChanged(p) => self.password_hash = hash(&p.password_hash),
            E::UserDeleted(_) => self.deleted = true,
            _ => {}
        }
        self
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gwt::{edit, given};

    /// Well-formed PHC strings (not hashes of anything in particular): hashing is slow and random.
    pub(crate) const PHC: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    pub(crate) const PHC2: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA";

    fn created() -> E {
        E::UserCreated(pb::UserCreated {
            user_id: "u1".into(),
            domain_id: "default".into(),
            name: "alice".into(),
            password_hash: PHC.into(),
            enabled: true,
            description: String::new(),
            email: "alice@example.com".into(),
            default_project_id: "p1".into(),
            extra_json: String::new(),
        })
    }

    fn create() -> UserCommand {
        UserCommand::Create {
            user_id: "u1".into(),
            domain_id: "default".into(),
            name: "alice".into(),
            password_hash: Some(PHC.into()),
            enabled: true,
            description: String::new(),
            email: "alice@example.com".into(),
            default_project_id: "p1".into(),
            extra_json: String::new(),
        }
    }

    fn update() -> UserCommand {
        UserCommand::Update {
            name: None,
            enabled: None,
            description: None,
            email: None,
            default_project_id: None,
            extra_json: None,
        }
    }

    fn deleted() -> E {
        E::UserDeleted(pb::UserDeleted {})
    }

    #[test]
    fn create_records_the_user_and_keeps_the_hash() {
        let state = given::<User>([]).when(create()).then(vec![created()]);
        assert_eq!(
            state,
            User {
                exists: true,
                deleted: false,
                user_id: "u1".into(),
                domain_id: "default".into(),
                name: "alice".into(),
                password_hash: Some(PHC.into()),
                enabled: true,
                description: String::new(),
                email: "alice@example.com".into(),
                default_project_id: "p1".into(),
                extra_json: String::new(),
            }
        );
    }

    #[test]
    fn a_user_may_have_no_password() {
        let mut cmd = create();
        if let UserCommand::Create { password_hash, .. } = &mut cmd {
            *password_hash = None;
        }
        let mut expected = created();
        if let E::UserCreated(c) = &mut expected {
            c.password_hash.clear();
        }
        assert_eq!(
            given::<User>([])
                .when(cmd)
                .then(vec![expected])
                .password_hash,
            None
        );
    }

    #[test]
    fn a_real_hash_is_accepted_and_verifies() {
        let phc = super::super::password::hash_password("s3cret").unwrap();
        let state = given::<User>([created()])
            .when(UserCommand::ChangePassword { new_hash: phc })
            .then_ok();
        assert!(super::super::password::verify_password(
            "s3cret",
            state.password_hash.as_deref().unwrap()
        ));
    }

    #[test]
    fn create_twice_or_after_delete_is_a_duplicate() {
        let dup = DomainError::AlreadyExists {
            kind: "user",
            detail: "Duplicate ID, u1.".into(),
        };
        given::<User>([created()])
            .when(create())
            .then_err(dup.clone());
        given::<User>([created(), deleted()])
            .when(create())
            .then_err(dup);
    }

    #[test]
    fn a_name_may_have_255_characters() {
        let mut cmd = create();
        let longest: fn(&mut UserCommand) =
            edit!(UserCommand::Create { name } => *name = "n".repeat(255));
        longest(&mut cmd);
        given::<User>([]).when(cmd).then_ok();
    }

    #[test]
    fn create_validates_its_input() {
        type Edit = fn(&mut UserCommand);
        let edits: [Edit; 9] = [
            edit!(UserCommand::Create { user_id } => user_id.clear()),
            edit!(UserCommand::Create { domain_id } => domain_id.clear()),
            edit!(UserCommand::Create { name } => name.clear()),
            edit!(UserCommand::Create { name } => *name = "n".repeat(256)),
            edit!(UserCommand::Create { password_hash } => *password_hash = Some("s3cret".into())),
            edit!(UserCommand::Create { password_hash } => *password_hash = Some(String::new())),
            edit!(UserCommand::Create { description } => *description = "d".repeat(65536)),
            edit!(UserCommand::Create { email } => *email = "e".repeat(256)),
            edit!(UserCommand::Create { extra_json } => *extra_json = "null".into()),
        ];
        for edit in edits {
            let mut cmd = create();
            edit(&mut cmd);
            given::<User>([]).when(cmd).then_invalid();
        }
    }

    #[test]
    fn update_records_only_what_changed() {
        let cmd = UserCommand::Update {
            name: Some("alice".into()),
            enabled: Some(false),
            description: Some("Alice".into()),
            email: Some(String::new()),
            default_project_id: Some("p1".into()),
            extra_json: None,
        };
        let state = given::<User>([created()])
            .when(cmd)
            .then(vec![E::UserUpdated(pb::UserUpdated {
                enabled: Some(false),
                description: Some("Alice".into()),
                email: Some(String::new()),
                ..Default::default()
            })]);
        assert_eq!(
            (
                state.enabled,
                state.description.as_str(),
                state.email.as_str()
            ),
            (false, "Alice", "")
        );
        assert_eq!(
            state.password_hash.as_deref(),
            Some(PHC),
            "an update leaves the password alone"
        );
    }

    #[test]
    fn update_that_changes_nothing_records_nothing() {
        let same = UserCommand::Update {
            name: Some("alice".into()),
            enabled: Some(true),
            description: None,
            email: Some("alice@example.com".into()),
            default_project_id: None,
            extra_json: None,
        };
        given::<User>([created()]).when(same).then_nothing();
        given::<User>([created()]).when(update()).then_nothing();
    }

    #[test]
    fn update_validates_its_input() {
        let bad = UserCommand::Update {
            name: Some(" ".into()),
            enabled: None,
            description: None,
            email: None,
            default_project_id: None,
            extra_json: None,
        };
        given::<User>([created()]).when(bad).then_invalid();
        let bad = UserCommand::Update {
            name: None,
            enabled: None,
            description: None,
            email: None,
            default_project_id: Some("p".repeat(65)),
            extra_json: None,
        };
        given::<User>([created()]).when(bad).then_invalid();
    }

    #[test]
    fn change_password_replaces_the_hash() {
        let state = given::<User>([created()])
            .when(UserCommand::ChangePassword {
                new_hash: PHC2.into(),
            })
            .then(vec![E::UserPasswordChanged(pb::UserPasswordChanged {
                password_hash: PHC2.into(),
            })]);
        assert_eq!(state.password_hash.as_deref(), Some(PHC2));
    }

    #[test]
    fn change_password_to_the_same_hash_is_still_recorded() {
        given::<User>([created()])
            .when(UserCommand::ChangePassword {
                new_hash: PHC.into(),
            })
            .then(vec![E::UserPasswordChanged(pb::UserPasswordChanged {
                password_hash: PHC.into(),
            })]);
    }

    #[test]
    fn change_password_refuses_a_plain_password() {
        given::<User>([created()])
            .when(UserCommand::ChangePassword {
                new_hash: "hunter2".into(),
            })
            .then_invalid();
    }

    #[test]
    fn delete_marks_the_user_deleted() {
        assert!(
            given::<User>([created()])
                .when(UserCommand::Delete)
                .then(vec![deleted()])
                .deleted
        );
    }

    #[test]
    fn commands_on_a_missing_user_are_not_found() {
        let absent = DomainError::NotFound {
            kind: "user",
            id: String::new(),
        };
        let gone = DomainError::NotFound {
            kind: "user",
            id: "u1".into(),
        };
        for cmd in [
            update(),
            UserCommand::ChangePassword {
                new_hash: PHC2.into(),
            },
            UserCommand::Delete,
        ] {
            given::<User>([]).when(cmd.clone()).then_err(absent.clone());
            given::<User>([created(), deleted()])
                .when(cmd)
                .then_err(gone.clone());
        }
    }

    #[test]
    fn apply_ignores_other_aggregates_events() {
        let before = given::<User>([created()]).0;
        assert_eq!(
            before
                .clone()
                .apply(&E::ProjectDeleted(pb::ProjectDeleted {})),
            before
        );
    }
}
