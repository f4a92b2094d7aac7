//! `Keypair`: one user's named public key (Nova `os-keypairs`).

use serde::{Deserialize, Serialize};
use strata_proto::compute as pb;
use strata_proto::ComputeEvent as E;

use super::{check_len, invalid, NAME_MAX};
use crate::aggregate::{Aggregate, DomainError};

const KIND: &str = "keypair";

/// Nova's keypair types.
pub const KEY_TYPES: &[&str] = &["ssh", "x509"];

/// Append `s` to `out`, `%XX`-escaping (uppercase hex, per UTF-8 byte) every byte outside
/// `[A-Za-z0-9_.@-]`, and also `.` when `escape_dot`.
pub(crate) fn escape_into(out: &mut String, s: &str, escape_dot: bool) {
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'_' | b'@' | b'-')
            || (b == b'.' && !escape_dot);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The aggregate id of a user's keypair (stream `keypair-<id>`): `<user_id>.<name>`, where every byte outside
/// `[A-Za-z0-9_.@-]` is replaced by its `%XX` escape (uppercase hex), so the stream id never holds spaces or
/// slashes: `keypair_id("u1", "my key")` is `u1.my%20key`.
///
/// In the user id `.` is escaped too (`%2E`), so the first `.` always separates the two parts and the id is
/// unambiguous (user `a.b` + name `c` and user `a` + name `b.c` differ). Keystone's hex user ids are unchanged.
///
/// A name whose escaped form would make the id longer than 400 bytes (a long name full of spaces) is
/// replaced by `~` and the SHA-256 of the name, so every name Nova accepts makes a valid stream id; `~` never
/// appears in an escaped name.
pub fn keypair_id(user_id: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut out = String::with_capacity(user_id.len() + name.len() + 1);
    escape_into(&mut out, user_id, true);
    out.push('.');
    let user_part = out.len();
    escape_into(&mut out, name, false);
    if out.len() > ID_MAX {
        out.truncate(user_part);
        out.push('~');
        out.push_str(&hex::encode(Sha256::digest(name.as_bytes())));
    }
    out
}

/// Longest keypair aggregate id spelled out from its name.
const ID_MAX: usize = 400;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keypair {
    pub exists: bool,
    pub deleted: bool,
    pub user_id: String,
    pub name: String,
    /// ssh | x509
    pub key_type: String,
    pub public_key: String,
    /// Nova's fingerprint (for ssh keys: [`super::ssh::fingerprint`]).
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeypairCommand {
    /// The key (generated or imported) and its fingerprint are computed by the caller.
    Create {
        user_id: String,
        name: String,
        key_type: String,
        public_key: String,
        fingerprint: String,
    },
    Delete,
}

/// Nova's keypair names: 1..255 characters, each a letter, digit, space, `-`, `_`, `.` or `@`.
fn check_name(name: &str) -> Result<(), DomainError> {
    check_len("name", name, NAME_MAX)?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '@'))
    {
        return Err(DomainError::Invalid(
            "Keypair data is invalid: Keypair name contains unsafe characters".into(),
        ));
    }
    Ok(())
}

impl Aggregate for Keypair {
    type Command = KeypairCommand;
    type Event = E;
    const KIND: &'static str = KIND;

    fn decide(&self, cmd: &KeypairCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            KeypairCommand::Create {
                user_id,
                name,
                key_type,
                public_key,
                fingerprint,
            } => {
                if self.exists && !self.deleted {
                    return Err(DomainError::AlreadyExists {
                        kind: KIND,
                        detail: format!("Key pair '{name}' already exists."),
                    });
                }
                check_len("user_id", user_id, NAME_MAX)?;
                check_name(name)?;
                if !KEY_TYPES.contains(&key_type.as_str()) {
                    return Err(invalid(
                        "type",
                        &format!("'{key_type}' is not one of {}", KEY_TYPES.join(", ")),
                    ));
                }
                if public_key.trim().is_empty() {
                    return Err(invalid("public_key", "must not be empty"));
                }
                if fingerprint.is_empty() {
                    return Err(invalid("fingerprint", "must not be empty"));
                }
                Ok(vec![E::KeypairCreated(pb::KeypairCreated {
                    user_id: user_id.clone(),
                    name: name.clone(),
                    r#type: key_type.clone(),
                    public_key: public_key.clone(),
                    fingerprint: fingerprint.clone(),
                })])
            }
            KeypairCommand::Delete => {
                if !self.exists || self.deleted {
                    return Err(DomainError::NotFound {
                        kind: KIND,
                        id: self.name.clone(),
                    });
                }
                Ok(vec![E::KeypairDeleted(pb::KeypairDeleted {})])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            // A fresh keypair, also after an earlier one of the same name was deleted.
            E::KeypairCreated(c) => {
                self = Keypair {
                    exists: true,
                    deleted: false,
                    user_id: c.user_id.clone(),
                    name: c.name.clone(),
                    key_type: c.r#type.clone(),
                    public_key: c.public_key.clone(),
                    fingerprint: c.fingerprint.clone(),
                };
            }
            E::KeypairDeleted(_) => self.deleted = true,
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    fn create(name: &str) -> KeypairCommand {
        KeypairCommand::Create {
            user_id: "u1".into(),
            name: name.into(),
            key_type: "ssh".into(),
            public_key: "ssh-ed25519 AAAA k".into(),
            fingerprint: "aa:bb".into(),
        }
    }

    fn created(name: &str) -> E {
        E::KeypairCreated(pb::KeypairCreated {
            user_id: "u1".into(),
            name: name.into(),
            r#type: "ssh".into(),
            public_key: "ssh-ed25519 AAAA k".into(),
            fingerprint: "aa:bb".into(),
        })
    }

    fn deleted() -> E {
        E::KeypairDeleted(pb::KeypairDeleted {})
    }

    #[test]
    fn create_records_the_key() {
        let s = given::<Keypair>([])
            .when(create("my key@host.example_1-2"))
            .then(vec![created("my key@host.example_1-2")]);
        assert!(s.exists && !s.deleted);
        assert_eq!(
            (
                s.user_id.as_str(),
                s.key_type.as_str(),
                s.fingerprint.as_str()
            ),
            ("u1", "ssh", "aa:bb")
        );
        let x509 = KeypairCommand::Create {
            user_id: "u1".into(),
            name: "cert".into(),
            key_type: "x509".into(),
            public_key: "-----BEGIN CERTIFICATE-----".into(),
            fingerprint: "cc".into(),
        };
        assert_eq!(given::<Keypair>([]).when(x509).then_ok().key_type, "x509");
    }

    #[test]
    fn create_on_a_live_keypair_is_a_duplicate() {
        given::<Keypair>([created("k")])
            .when(create("k"))
            .then_err(DomainError::AlreadyExists {
                kind: "keypair",
                detail: "Key pair 'k' already exists.".into(),
            });
    }

    #[test]
    fn a_deleted_keypair_name_can_be_reused_afresh() {
        let again = KeypairCommand::Create {
            user_id: "u1".into(),
            name: "k".into(),
            key_type: "x509".into(),
            public_key: "other".into(),
            fingerprint: "ff".into(),
        };
        let s = given::<Keypair>([created("k"), deleted()])
            .when(again)
            .then_ok();
        assert!(s.exists && !s.deleted);
        assert_eq!(
            (
                s.key_type.as_str(),
                s.public_key.as_str(),
                s.fingerprint.as_str()
            ),
            ("x509", "other", "ff")
        );
    }

    #[test]
    fn delete_removes_once() {
        let s = given::<Keypair>([created("k")])
            .when(KeypairCommand::Delete)
            .then(vec![deleted()]);
        assert!(s.deleted);
        given::<Keypair>([])
            .when(KeypairCommand::Delete)
            .then_err(DomainError::NotFound {
                kind: "keypair",
                id: String::new(),
            });
        given::<Keypair>([created("k"), deleted()])
            .when(KeypairCommand::Delete)
            .then_err(DomainError::NotFound {
                kind: "keypair",
                id: "k".into(),
            });
    }

    #[test]
    fn names_are_1_to_255_safe_characters() {
        for bad in ["", "a/b", "a:b", "ä", "a\nb", "a%b", &"k".repeat(256)] {
            given::<Keypair>([]).when(create(bad)).then_invalid();
        }
        given::<Keypair>([])
            .when(create(&"k".repeat(255)))
            .then_ok();
    }

    #[test]
    fn type_user_key_and_fingerprint_are_required() {
        let mut cmds = Vec::new();
        for field in 0..4 {
            let mut c = create("k");
            if let KeypairCommand::Create {
                user_id,
                key_type,
                public_key,
                fingerprint,
                ..
            } = &mut c
            {
                match field {
                    0 => user_id.clear(),
                    1 => *key_type = "pgp".into(),
                    2 => *public_key = "  ".into(),
                    _ => fingerprint.clear(),
                }
            }
            cmds.push(c);
        }
        for c in cmds {
            given::<Keypair>([]).when(c).then_invalid();
        }
    }

    #[test]
    fn long_names_make_short_ids() {
        let name = format!("a{}b", " ".repeat(253));
        let id = keypair_id("0123456789abcdef0123456789abcdef", &name);
        assert!(id.len() < 120, "{id}");
        assert!(id.starts_with("0123456789abcdef0123456789abcdef.~"), "{id}");
        assert_ne!(
            id,
            keypair_id("0123456789abcdef0123456789abcdef", &format!("{name}c"))
        );
        // Short names are spelled out.
        assert_eq!(keypair_id("u", "k 1"), "u.k%201");
    }

    #[test]
    fn keypair_ids_are_safe_and_unambiguous() {
        assert_eq!(keypair_id("u1", "my key"), "u1.my%20key");
        assert_eq!(keypair_id("u1", "a.b@c_d-e"), "u1.a.b@c_d-e");
        assert_eq!(keypair_id("a.b", "c"), "a%2Eb.c");
        assert_ne!(keypair_id("a.b", "c"), keypair_id("a", "b.c"));
        assert_eq!(keypair_id("u/1", "x%y"), "u%2F1.x%25y");
        assert_eq!(keypair_id("u", "é"), "u.%C3%A9");
        assert!(!keypair_id("user id", "a b").contains(' '));
    }
}
