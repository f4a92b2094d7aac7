//! Tokens: issue, decode and validate. Shared by every service: each maps [`AuthError`] to its own format.
//!
//! A token is `base64url(claims JSON) . base64url(HMAC-SHA256(key, claims JSON))`, like Keystone's Fernet
//! tokens in spirit: nothing is stored per token. Validation re-reads the identity projection each time, so
//! a disabled or deleted user, a changed password, a removed role or a revoked audit id takes effect at once.

use std::collections::BTreeSet;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use strata_events::Principal;
use strata_projections::identity::{IdentityView, Scope};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("The request you have made requires authentication.")]
    Missing,
    #[error("The request you have made requires authentication.")]
    Invalid(&'static str),
    #[error("The request you have made requires authentication.")]
    Expired,
    #[error("Could not find token: {0}.")]
    NotFound(String),
}

/// What a token says, signed. Short field names keep tokens small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// user id
    pub u: String,
    /// scope: "p:<project id>", "d:<domain id>" or "" (unscoped)
    pub s: String,
    /// issued at, µs since epoch
    pub i: i64,
    /// expires at, µs since epoch
    pub e: i64,
    /// audit id
    pub a: String,
    /// authentication methods
    pub m: Vec<String>,
}

pub struct TokenService {
    key: [u8; 32],
    pub ttl: chrono::Duration,
}

impl TokenService {
    /// Load the signing key from `path`, creating a random one (mode 0600) on first use.
    pub fn load_or_create(path: &Path, ttl: chrono::Duration) -> std::io::Result<Self> {
        let key = match std::fs::read(path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&bytes);
                k
            }
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is not a 32-byte key",
                    path.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let k: [u8; 32] = rand::random();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(path, &k)?;
                k
            }
            Err(e) => return Err(e),
        };
        Ok(TokenService { key, ttl })
    }

    pub fn with_key(key: [u8; 32], ttl: chrono::Duration) -> Self {
        TokenService { key, ttl }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; a 32-byte key cannot be refused.
        match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC-SHA256 takes any key length"),
        }
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let body = serde_json::to_vec(claims).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&body);
        let sig = mac.finalize().into_bytes();
        format!("{}.{}", B64.encode(&body), B64.encode(sig))
    }

    /// Check the signature and expiry; does not look at the identity state.
    pub fn decode(&self, token: &str) -> Result<Claims, AuthError> {
        let (body, sig) = token
            .split_once('.')
            .ok_or(AuthError::Invalid("malformed token"))?;
        let body = B64
            .decode(body)
            .map_err(|_| AuthError::Invalid("malformed token"))?;
        let sig = B64
            .decode(sig)
            .map_err(|_| AuthError::Invalid("malformed token"))?;
        let mut mac = self.mac();
        mac.update(&body);
        mac.verify_slice(&sig)
            .map_err(|_| AuthError::Invalid("bad signature"))?;
        let claims: Claims =
            serde_json::from_slice(&body).map_err(|_| AuthError::Invalid("malformed claims"))?;
        if claims.e <= Utc::now().timestamp_micros() {
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }
}

/// Write a secret file readable only by its owner.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    Project {
        id: String,
        name: String,
        domain_id: String,
        domain_name: String,
    },
    Domain {
        id: String,
        name: String,
    },
    Unscoped,
}

/// A validated token: who is calling, on what scope, with which (effective) roles.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub token: String,
    pub claims: Claims,
    pub user_id: String,
    pub user_name: String,
    pub user_domain_id: String,
    pub user_domain_name: String,
    pub scope: TokenScope,
    /// (role id, role name), including implied roles, sorted by name.
    pub roles: Vec<(String, String)>,
}

pub fn micros_to_time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

impl AuthContext {
    /// Strata acting on its own (a conductor step for a user's resource), not a request: no token, the
    /// admin role, scoped to `project_id`.
    pub fn service(project_id: &str) -> Self {
        AuthContext {
            token: String::new(),
            claims: Claims {
                u: "strata".into(),
                s: format!("p:{project_id}"),
                i: 0,
                e: 0,
                a: String::new(),
                m: vec![],
            },
            user_id: "strata".into(),
            user_name: "strata".into(),
            user_domain_id: "default".into(),
            user_domain_name: "Default".into(),
            scope: TokenScope::Project {
                id: project_id.to_string(),
                name: String::new(),
                domain_id: "default".into(),
                domain_name: "Default".into(),
            },
            roles: vec![("admin".into(), "admin".into())],
        }
    }

    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|(_, n)| n == name)
    }

    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }

    pub fn project_id(&self) -> Option<&str> {
        match &self.scope {
            TokenScope::Project { id, .. } => Some(id),
            _ => None,
        }
    }

    pub fn principal(&self) -> Principal {
        let (project_id, domain_id) = match &self.scope {
            TokenScope::Project { id, domain_id, .. } => (id.clone(), domain_id.clone()),
            TokenScope::Domain { id, .. } => (String::new(), id.clone()),
            TokenScope::Unscoped => (String::new(), String::new()),
        };
        Principal {
            user_id: self.user_id.clone(),
            user_name: self.user_name.clone(),
            project_id,
            domain_id,
            roles: self.roles.iter().map(|(_, n)| n.clone()).collect(),
        }
    }

    pub fn issued_at(&self) -> DateTime<Utc> {
        micros_to_time(self.claims.i)
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        micros_to_time(self.claims.e)
    }
}

/// Resolve `scope` ("p:<id>", "d:<id>", "") against the view: the target must exist and be enabled, and a
/// scoped token needs at least one role there. Returns the scope and its effective roles.
pub fn resolve_scope(
    view: &IdentityView,
    user_id: &str,
    scope: &str,
) -> Result<(TokenScope, Vec<(String, String)>), AuthError> {
    let (token_scope, role_ids): (TokenScope, BTreeSet<String>) =
        if let Some(pid) = scope.strip_prefix("p:") {
            let p = view
                .projects
                .get(pid)
                .ok_or(AuthError::Invalid("project gone"))?;
            let d = view
                .domains
                .get(&p.domain_id)
                .ok_or(AuthError::Invalid("domain gone"))?;
            if !p.enabled || !d.enabled {
                return Err(AuthError::Invalid("project disabled"));
            }
            let roles = view.effective_roles(user_id, &Scope::Project(pid.to_string()));
            (
                TokenScope::Project {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    domain_id: d.id.clone(),
                    domain_name: d.name.clone(),
                },
                roles,
            )
        } else if let Some(did) = scope.strip_prefix("d:") {
            let d = view
                .domains
                .get(did)
                .ok_or(AuthError::Invalid("domain gone"))?;
            if !d.enabled {
                return Err(AuthError::Invalid("domain disabled"));
            }
            let roles = view.effective_roles(user_id, &Scope::Domain(did.to_string()));
            (
                TokenScope::Domain {
                    id: d.id.clone(),
                    name: d.name.clone(),
                },
                roles,
            )
        } else {
            (TokenScope::Unscoped, BTreeSet::new())
        };
    if token_scope != TokenScope::Unscoped && role_ids.is_empty() {
        return Err(AuthError::Invalid("no role on scope"));
    }
    let mut roles: Vec<(String, String)> = role_ids
        .into_iter()
        .filter_map(|id| view.roles.get(&id).map(|r| (id, r.name.clone())))
        .collect();
    roles.sort_by(|a, b| a.1.cmp(&b.1));
    Ok((token_scope, roles))
}

/// Full validation of a presented token against the current identity state.
pub fn validate(
    tokens: &TokenService,
    view: &IdentityView,
    token: &str,
) -> Result<AuthContext, AuthError> {
    let claims = tokens.decode(token)?;
    if view.is_revoked(&claims.a) {
        return Err(AuthError::Invalid("revoked"));
    }
    let user = view
        .users
        .get(&claims.u)
        .ok_or(AuthError::Invalid("user gone"))?;
    if !user.enabled || claims.i < user.tokens_valid_after_micros {
        return Err(AuthError::Invalid("user disabled or password changed"));
    }
    let domain = view
        .domains
        .get(&user.domain_id)
        .ok_or(AuthError::Invalid("user domain gone"))?;
    if !domain.enabled {
        return Err(AuthError::Invalid("user domain disabled"));
    }
    let (scope, roles) = resolve_scope(view, &user.id, &claims.s)?;
    Ok(AuthContext {
        token: token.to_string(),
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        user_domain_id: domain.id.clone(),
        user_domain_name: domain.name.clone(),
        scope,
        roles,
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64) -> Claims {
        let now = Utc::now().timestamp_micros();
        Claims {
            u: "u".into(),
            s: "".into(),
            i: now,
            e: now + exp_in,
            a: "aid".into(),
            m: vec!["password".into()],
        }
    }

    #[test]
    fn issued_tokens_decode_and_forgeries_do_not() {
        let ts = TokenService::with_key([7; 32], chrono::Duration::hours(1));
        let c = claims(60_000_000);
        let t = ts.issue(&c);
        assert_eq!(ts.decode(&t).unwrap(), c);
        let other = TokenService::with_key([8; 32], chrono::Duration::hours(1));
        assert!(matches!(other.decode(&t), Err(AuthError::Invalid(_))));
        assert!(matches!(ts.decode("garbage"), Err(AuthError::Invalid(_))));
        let (body, sig) = t.split_once('.').unwrap();
        let mut forged = B64.decode(body).unwrap();
        forged[5] ^= 1;
        assert!(ts
            .decode(&format!("{}.{}", B64.encode(forged), sig))
            .is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let ts = TokenService::with_key([7; 32], chrono::Duration::hours(1));
        assert_eq!(ts.decode(&ts.issue(&claims(-1))), Err(AuthError::Expired));
    }
}

/// Remembers passwords that verified, so a client that logs in again with the same password skips argon2
/// (deliberately ~30 ms of CPU). It keeps an HMAC of (stored hash, password) under a per-process random key,
/// never the password; an entry only matches while the user's stored hash is unchanged, and a wrong
/// password always pays the full argon2 cost, so online guessing is not made cheaper.
pub struct PasswordCache {
    key: [u8; 32],
    entries: parking_lot::Mutex<std::collections::HashMap<String, [u8; 32]>>,
}

const PASSWORD_CACHE_MAX: usize = 100_000;

impl Default for PasswordCache {
    fn default() -> Self {
        PasswordCache {
            key: rand::random(),
            entries: Default::default(),
        }
    }
}

impl PasswordCache {
    fn tag(&self, phc: &str, password: &str) -> [u8; 32] {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC-SHA256 takes any key length"),
        };
        mac.update(phc.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Check `password` against the stored PHC hash of `user_id`.
    pub async fn verify(
        &self,
        user_id: &str,
        password: &str,
        phc: &str,
    ) -> Result<bool, std::io::Error> {
        let tag = self.tag(phc, password);
        if self.entries.lock().get(user_id).is_some_and(|t| *t == tag) {
            return Ok(true);
        }
        let (pw, hash) = (password.to_string(), phc.to_string());
        // Argon2 is deliberately slow: verify off the request thread.
        let ok = tokio::task::spawn_blocking(move || {
            strata_actors::identity::password::verify_password(&pw, &hash)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        if ok {
            let mut entries = self.entries.lock();
            if entries.len() >= PASSWORD_CACHE_MAX {
                entries.clear();
            }
            entries.insert(user_id.to_string(), tag);
        }
        Ok(ok)
    }
}

#[cfg(test)]
mod password_cache_tests {
    use super::*;

    #[tokio::test]
    async fn remembers_only_verified_passwords_for_the_current_hash() {
        let cache = PasswordCache::default();
        let h1 = strata_actors::identity::password::hash_password("right").unwrap();
        assert!(!cache.verify("u", "wrong", &h1).await.unwrap());
        assert!(cache.verify("u", "right", &h1).await.unwrap());
        assert!(cache.verify("u", "right", &h1).await.unwrap(), "cached");
        assert!(
            !cache.verify("u", "wrong", &h1).await.unwrap(),
            "a wrong password never matches the cache"
        );
        let h2 = strata_actors::identity::password::hash_password("new").unwrap();
        assert!(
            !cache.verify("u", "right", &h2).await.unwrap(),
            "a changed hash invalidates the entry"
        );
        assert!(cache.verify("u", "new", &h2).await.unwrap());
    }
}
