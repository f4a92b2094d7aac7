//! Swift container ACLs (`X-Container-Read` / `X-Container-Write`), as Swift's
//! `keystoneauth` middleware reads them.
//!
//! An ACL is a comma-separated list of elements:
//!
//! * `.r:<referrer>` (also spelled `.ref:`, `.referer:`, `.referrer:`): anyone whose `Referer`
//!   host matches may read objects. `<referrer>` is `*` (anyone, even without a `Referer`), a
//!   host (`www.example.com`), or a domain with a leading dot (`.example.com`, also written
//!   `*.example.com`) matching every host below it; a leading `-` turns the rule into a deny.
//!   Rules apply in order and the last matching one wins.
//! * `.rlistings`: referrer rules also allow listing the container.
//! * `<project>:<user>`: a Keystone project and user, by id or by name, either of which may be
//!   `*` (`*:*` is any authenticated user, `p:*` anyone in project `p`). Each side is
//!   percent-decoded, so names holding `:` or `,` can be written as `%3A` / `%2C`.
//!
//! Access granted through the account (project owner, admin or reseller roles) is the
//! caller's business; this module only evaluates the container ACL itself.

/// A parsed container ACL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerAcl {
    /// Referrer rules in order, normalised: `*`, `host`, `.domain`, each possibly prefixed
    /// with `-` for deny; host names are lower-cased.
    pub referrers: Vec<String>,
    /// `.rlistings` was present.
    pub rlistings: bool,
    /// `(project, user)` grants, percent-decoded; either side may be `*`.
    pub grants: Vec<(String, String)>,
    /// The header exactly as received.
    pub raw: String,
    /// The ACL cleaned the way Swift stores and returns it (`bob , sue` → `bob,sue`,
    /// `.referrer : *.example.com` → `.r:.example.com`).
    pub cleaned: String,
}

/// Why an ACL header was refused; the caller answers `400 Bad Request` with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// The header does not follow the ACL syntax; the text says which element and why.
    #[error("{0}")]
    Invalid(String),
}

/// The authenticated identity asking for access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    /// Keystone project id of the token.
    pub project_id: &'a str,
    /// Keystone project name of the token.
    pub project_name: &'a str,
    /// Keystone user id of the token.
    pub user_id: &'a str,
    /// Keystone user name of the token.
    pub user_name: &'a str,
}

const REFERRER_DESIGNATORS: [&str; 4] = [".r", ".ref", ".referer", ".referrer"];

/// Decodes `%XX` escapes; text that does not decode to UTF-8 is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let (hi, lo) = (bytes[i + 1], bytes[i + 2]);
            if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() {
                let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push(digit(hi) * 16 + digit(lo));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// Parses an ACL header value. An empty (or all-blank) value is an empty ACL.
///
/// Refused: a referrer rule without a host (`.r:`, `.r:-`), an unknown designator
/// (`.foo:bar`), a bare element other than `.rlistings` (Keystone ACLs name a
/// `project:user`), and a grant with an empty side (`proj:`).
pub fn parse(header: &str) -> Result<ContainerAcl, AclError> {
    let mut acl = ContainerAcl {
        raw: header.to_string(),
        ..ContainerAcl::default()
    };
    let mut cleaned: Vec<String> = Vec::new();
    for element in header.split(',') {
        let element = element.trim();
        if element.is_empty() {
            continue;
        }
        let Some((first, second)) = element.split_once(':') else {
            if element == ".rlistings" {
                acl.rlistings = true;
                cleaned.push(element.to_string());
                continue;
            }
            return Err(AclError::Invalid(format!(
                "Invalid ACL element {element:?}: expected <project>:<user>, \
                 .r:<referrer> or .rlistings"
            )));
        };
        let (first, second) = (first.trim(), second.trim());
        if first.starts_with('.') {
            if !REFERRER_DESIGNATORS.contains(&first) {
                return Err(AclError::Invalid(format!(
                    "Unknown designator {first:?} in ACL: {element:?}"
                )));
            }
            let (deny, host) = match second.strip_prefix('-') {
                Some(rest) => (true, rest.trim()),
                None => (false, second),
            };
            // `*.example.com` is the same as `.example.com`.
            let host = match host.strip_prefix('*') {
                Some(rest) if !rest.is_empty() => rest.trim(),
                _ => host,
            };
            if host.is_empty() || host == "." {
                return Err(AclError::Invalid(format!(
                    "No host/domain value after referrer designation in ACL: {element:?}"
                )));
            }
            let rule = format!("{}{}", if deny { "-" } else { "" }, host.to_lowercase());
            cleaned.push(format!(".r:{rule}"));
            acl.referrers.push(rule);
        } else {
            if first.is_empty() || second.is_empty() {
                return Err(AclError::Invalid(format!(
                    "Invalid ACL element {element:?}: expected <project>:<user>"
                )));
            }
            cleaned.push(format!("{first}:{second}"));
            acl.grants
                .push((percent_decode(first), percent_decode(second)));
        }
    }
    acl.cleaned = cleaned.join(",");
    Ok(acl)
}

/// Parses the ACL header called `header_name`, also refusing referrer rules in a write ACL
/// (any header whose name contains `write`), as Swift does.
pub fn parse_header(header_name: &str, value: &str) -> Result<ContainerAcl, AclError> {
    let acl = parse(value)?;
    if header_name.to_ascii_lowercase().contains("write") {
        if let Some(r) = acl.referrers.first() {
            return Err(AclError::Invalid(format!(
                "Referrers not allowed in write ACL: \".r:{r}\""
            )));
        }
    }
    Ok(acl)
}

/// The host of a `Referer` URL (`scheme://[user@]host[:port]/…`), lower-cased; `None`
/// when there is no usable host (as with Python's `urlparse(referer).hostname`).
fn referer_host(referer: &str) -> Option<String> {
    let s = referer.trim();
    // An optional scheme, then the authority must start with `//`.
    let after_scheme = match s.split_once(':') {
        Some((scheme, rest))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            rest
        }
        _ => s,
    };
    let authority = after_scheme.strip_prefix("//")?;
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    let authority = &authority[..end];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    if host.is_empty() {
        None
    } else {
        Some(host.to_lowercase())
    }
}

/// Whether a host pattern (`*`, `host` or `.domain`) covers `host`.
fn host_matches(pattern: &str, host: Option<&str>) -> bool {
    if pattern == "*" {
        return true;
    }
    match host {
        Some(h) => pattern == h || (pattern.starts_with('.') && h.ends_with(pattern)),
        None => false,
    }
}

/// Swift's `referrer_allowed`: walks the referrer rules in order, an allow rule that matches
/// the `Referer`'s host sets "allowed", a matching deny rule clears it; the last match wins.
/// `*` matches anyone, also a request without (or with an unparsable) `Referer`, whose host
/// matches no other rule. `.example.com` matches hosts under `example.com` but not
/// `example.com` itself.
///
/// One deliberate difference from Swift: `-*` denies everyone (Swift accepts it but it never
/// matches anything).
pub fn referrer_allowed(acl: &ContainerAcl, referer: Option<&str>) -> bool {
    let host = referer.and_then(referer_host);
    let host = host.as_deref();
    let mut allowed = false;
    for rule in &acl.referrers {
        match rule.strip_prefix('-') {
            Some(denied) => {
                if host_matches(denied, host) {
                    allowed = false;
                }
            }
            None => {
                if host_matches(rule, host) {
                    allowed = true;
                }
            }
        }
    }
    allowed
}

/// Whether a `project:user` grant of the ACL names the caller (by id or by name, `*`
/// matching anything on its side).
pub fn grants(acl: &ContainerAcl, caller: &Caller) -> bool {
    let matches = |want: &str, id: &str, name: &str| want == "*" || want == id || want == name;
    acl.grants.iter().any(|(project, user)| {
        matches(project, caller.project_id, caller.project_name)
            && matches(user, caller.user_id, caller.user_name)
    })
}

/// Whether the read ACL lets this caller (`None`: anonymous) GET or HEAD an object: a grant,
/// or an allowed referrer.
pub fn may_read_object(
    read: &ContainerAcl,
    caller: Option<&Caller>,
    referer: Option<&str>,
) -> bool {
    caller.is_some_and(|c| grants(read, c)) || referrer_allowed(read, referer)
}

/// Whether the read ACL lets this caller list (GET/HEAD) the container: a grant, or an
/// allowed referrer together with `.rlistings`.
pub fn may_list(read: &ContainerAcl, caller: Option<&Caller>, referer: Option<&str>) -> bool {
    caller.is_some_and(|c| grants(read, c)) || (read.rlistings && referrer_allowed(read, referer))
}

/// Whether the write ACL lets this caller PUT, POST or DELETE objects: only a grant does;
/// referrer rules never give write access and anonymous callers never have it.
pub fn may_write(write: &ContainerAcl, caller: Option<&Caller>) -> bool {
    caller.is_some_and(|c| grants(write, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(s: &str) -> ContainerAcl {
        match parse(s) {
            Ok(a) => a,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    const ALICE: Caller<'static> = Caller {
        project_id: "p-id",
        project_name: "proj",
        user_id: "u-id",
        user_name: "alice",
    };
    const BOB: Caller<'static> = Caller {
        project_id: "q-id",
        project_name: "other",
        user_id: "b-id",
        user_name: "bob",
    };

    #[test]
    fn parse_elements() {
        let a =
            acl(" .r:* , .rlistings,,p-id:u-id, proj:* ,.referrer : *.Example.com,.ref:-bad.com");
        assert_eq!(a.referrers, vec!["*", ".example.com", "-bad.com"]);
        assert!(a.rlistings);
        assert_eq!(
            a.grants,
            vec![
                ("p-id".to_string(), "u-id".to_string()),
                ("proj".to_string(), "*".to_string())
            ]
        );
        assert_eq!(
            a.cleaned,
            ".r:*,.rlistings,p-id:u-id,proj:*,.r:.example.com,.r:-bad.com"
        );
        assert!(a.raw.starts_with(" .r:*"));
        let d = acl(".r:- .evil.org,.referer:host.example.com");
        assert_eq!(d.referrers, vec!["-.evil.org", "host.example.com"]);
        assert!(!d.rlistings);
    }

    #[test]
    fn parse_empty_and_percent_decoding() {
        let e = acl("");
        assert!(e.referrers.is_empty() && e.grants.is_empty() && !e.rlistings);
        assert_eq!(acl(" , ,").cleaned, "");
        let a = acl("my%3Aproj:us%2Cer,50%:x");
        assert_eq!(
            a.grants,
            vec![
                ("my:proj".to_string(), "us,er".to_string()),
                ("50%".to_string(), "x".to_string())
            ]
        );
        assert_eq!(a.cleaned, "my%3Aproj:us%2Cer,50%:x");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%FF"), "%FF");
        assert_eq!(percent_decode("%+1"), "%+1");
    }

    #[test]
    fn parse_rejects() {
        for bad in [
            "bob",
            ".r",
            ".rlisting",
            ".r:",
            ".r:-",
            ".r:.",
            ".r:*.",
            ".foo:bar",
            "proj:",
            ":user",
            "p:u,admin",
        ] {
            assert!(
                matches!(parse(bad), Err(AclError::Invalid(_))),
                "{bad:?} should be refused"
            );
        }
        let msg = parse("bob")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("\"bob\""), "{msg}");
    }

    #[test]
    fn write_headers_refuse_referrers() {
        assert!(parse_header("X-Container-Write", ".r:*").is_err());
        assert!(parse_header("x-container-write", "p:u").is_ok());
        assert!(parse_header("X-Container-Read", ".r:*").is_ok());
    }

    #[test]
    fn referrers() {
        let any = acl(".r:*");
        assert!(referrer_allowed(&any, None));
        assert!(referrer_allowed(&any, Some("http://anything.net/page")));
        assert!(referrer_allowed(&any, Some("garbage")));

        let none = acl("p:u");
        assert!(!referrer_allowed(&none, Some("http://a.com/")));
        assert!(!referrer_allowed(&none, None));

        let dom = acl(".r:.example.com,.r:-thief.example.com");
        assert!(referrer_allowed(&dom, Some("https://www.example.com/x")));
        assert!(referrer_allowed(
            &dom,
            Some("http://user:pw@A.Example.COM:8080/?q")
        ));
        assert!(!referrer_allowed(&dom, Some("https://thief.example.com/")));
        assert!(!referrer_allowed(&dom, Some("https://example.com/")));
        assert!(!referrer_allowed(&dom, Some("https://badexample.com/")));
        assert!(!referrer_allowed(&dom, None));
        assert!(!referrer_allowed(&dom, Some("www.example.com/no-scheme")));

        let host = acl(".r:host.org");
        assert!(referrer_allowed(&host, Some("http://host.org")));
        assert!(referrer_allowed(&host, Some("//host.org/path")));
        assert!(!referrer_allowed(&host, Some("http://sub.host.org")));

        // Last matching rule wins.
        let deny_then_allow = acl(".r:-.bad.com,.r:*");
        assert!(referrer_allowed(
            &deny_then_allow,
            Some("http://x.bad.com/")
        ));
        let allow_then_deny = acl(".r:*,.r:-.bad.com");
        assert!(!referrer_allowed(
            &allow_then_deny,
            Some("http://x.bad.com/")
        ));
        assert!(referrer_allowed(&allow_then_deny, Some("http://good.com/")));
        assert!(referrer_allowed(&allow_then_deny, None));

        let deny_all = acl(".r:*,.r:-*");
        assert!(!referrer_allowed(&deny_all, Some("http://good.com/")));
        assert!(!referrer_allowed(&deny_all, None));

        let v6 = acl(".r:::1");
        assert!(referrer_allowed(&v6, Some("http://[::1]:8080/")));
    }

    #[test]
    fn grant_matching() {
        assert!(grants(&acl("p-id:u-id"), &ALICE));
        assert!(grants(&acl("proj:alice"), &ALICE));
        assert!(grants(&acl("p-id:alice"), &ALICE));
        assert!(grants(&acl("proj:u-id"), &ALICE));
        assert!(grants(&acl("proj:*"), &ALICE));
        assert!(grants(&acl("*:alice"), &ALICE));
        assert!(grants(&acl("*:*"), &ALICE));
        assert!(grants(&acl("x:y, *:*"), &BOB));
        assert!(!grants(&acl("proj:*"), &BOB));
        assert!(!grants(&acl("proj:bob"), &BOB));
        assert!(!grants(&acl("other:alice"), &ALICE));
        assert!(!grants(&acl(".r:*,.rlistings"), &ALICE));
        assert!(!grants(&acl(""), &ALICE));
        assert!(!grants(&acl("PROJ:alice"), &ALICE));
    }

    #[test]
    fn reading_objects() {
        let public = acl(".r:*");
        assert!(may_read_object(&public, None, None));
        assert!(may_read_object(&public, Some(&BOB), None));
        let granted = acl("proj:*");
        assert!(may_read_object(&granted, Some(&ALICE), None));
        assert!(!may_read_object(&granted, Some(&BOB), None));
        assert!(!may_read_object(&granted, None, Some("http://x.com/")));
        let site = acl(".r:.example.com");
        assert!(may_read_object(
            &site,
            None,
            Some("http://www.example.com/")
        ));
        assert!(may_read_object(
            &site,
            Some(&BOB),
            Some("http://www.example.com/")
        ));
        assert!(!may_read_object(
            &site,
            Some(&BOB),
            Some("http://other.com/")
        ));
        assert!(!may_read_object(&acl(""), Some(&ALICE), None));
    }

    #[test]
    fn listing() {
        let public = acl(".r:*");
        assert!(!may_list(&public, None, None));
        assert!(!may_list(&public, Some(&BOB), None));
        let listable = acl(".r:*,.rlistings");
        assert!(may_list(&listable, None, None));
        // .rlistings alone opens nothing.
        assert!(!may_list(&acl(".rlistings"), None, None));
        let site = acl(".r:.example.com,.rlistings");
        assert!(may_list(&site, None, Some("https://a.example.com/")));
        assert!(!may_list(&site, None, Some("https://a.other.com/")));
        let granted = acl("*:bob");
        assert!(may_list(&granted, Some(&BOB), None));
        assert!(!may_list(&granted, Some(&ALICE), None));
        assert!(!may_list(&granted, None, None));
    }

    #[test]
    fn writing() {
        // Even if a referrer rule slipped into a write ACL, it grants nothing.
        let w = acl(".r:*,proj:alice");
        assert!(may_write(&w, Some(&ALICE)));
        assert!(!may_write(&w, Some(&BOB)));
        assert!(!may_write(&w, None));
        assert!(may_write(&acl("*:*"), Some(&BOB)));
        assert!(!may_write(&acl("*:*"), None));
        assert!(!may_write(&acl(""), Some(&ALICE)));
    }
}
