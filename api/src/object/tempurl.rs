//! Swift temporary URLs (the `tempurl` middleware): parsing the query, checking the HMAC
//! signature and choosing the `Content-Disposition` of the answer.
//!
//! A temp URL carries `temp_url_sig` and `temp_url_expires` (and optionally
//! `temp_url_prefix`, `filename`, `inline`). The signature is an HMAC, keyed with one of the
//! account's or container's `Temp-URL-Key`s, over
//!
//! ```text
//! {METHOD}\n{expires}\n{path}
//! ```
//!
//! where `path` is `/v1/AUTH_acc/cont/obj`, or `prefix:/v1/AUTH_acc/cont/<prefix>` for a
//! prefix-based URL, which then opens every object whose name starts with `<prefix>`.
//!
//! Everything here is pure: the caller looks the keys up and maps every [`TempUrlError`] to
//! Swift's answer, a `401 Unauthorized` (see [`TempUrlError::swift_body`]).

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};

/// The hash function under a temp URL's HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    /// HMAC-SHA1 (40 hex digits). Off by default in current Swift; allow it explicitly.
    Sha1,
    /// HMAC-SHA256 (64 hex digits).
    Sha256,
    /// HMAC-SHA512 (128 hex digits).
    Sha512,
}

impl Digest {
    /// The name Swift uses for this digest (`sha1`, `sha256`, `sha512`), as in the
    /// `<algo>:<base64>` signature form and in `/info`'s `allowed_digests`.
    pub fn name(self) -> &'static str {
        match self {
            Digest::Sha1 => "sha1",
            Digest::Sha256 => "sha256",
            Digest::Sha512 => "sha512",
        }
    }

    /// The digest called `name` (ASCII case-insensitive), if it is one of the three.
    pub fn from_name(name: &str) -> Option<Digest> {
        [Digest::Sha1, Digest::Sha256, Digest::Sha512]
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name))
    }

    /// Length in bytes of this digest's output (and so of a valid signature).
    pub fn output_len(self) -> usize {
        match self {
            Digest::Sha1 => 20,
            Digest::Sha256 => 32,
            Digest::Sha512 => 64,
        }
    }
}

/// Why a temp URL was refused.
///
/// Swift answers **every** variant with `401 Unauthorized` and the body
/// `401 Unauthorized: Temp URL invalid\n` (no body for HEAD); the caller should do the same
/// and may log the more precise [`std::fmt::Display`] text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TempUrlError {
    /// `temp_url_sig` or `temp_url_expires` is absent or empty.
    #[error("Temp URL invalid: temp_url_sig and temp_url_expires are both required")]
    Missing,
    /// `temp_url_expires` is neither Unix seconds nor `YYYY-MM-DDThh:mm:ssZ`.
    #[error("Temp URL invalid: bad temp_url_expires {0:?}")]
    BadExpires(String),
    /// `temp_url_sig` is neither hex of a known length nor `<algo>:<base64>`.
    #[error("Temp URL invalid: bad temp_url_sig ({0})")]
    BadSignature(String),
    /// The URL was valid but its expiry time has passed.
    #[error("Temp URL expired")]
    Expired,
    /// Anything else: no key, no matching signature, digest not allowed, bad path or method,
    /// object outside the signed prefix, IP-restricted URL.
    #[error("Temp URL invalid")]
    Invalid,
}

impl TempUrlError {
    /// The body Swift sends with its 401 for any temp URL failure (send none for HEAD).
    pub fn swift_body(&self) -> &'static str {
        "401 Unauthorized: Temp URL invalid\n"
    }
}

/// The temp URL parameters of a request's query string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TempUrlQuery {
    /// `temp_url_sig`: hex, or `<algo>:<base64>`.
    pub sig: String,
    /// `temp_url_expires`: Unix seconds or ISO 8601 (`YYYY-MM-DDThh:mm:ssZ`).
    pub expires: String,
    /// `temp_url_prefix`: present for a prefix-based URL (may be empty: the whole container).
    pub prefix: Option<String>,
    /// `temp_url_ip_range`: parsed but not supported; a URL carrying it never verifies.
    pub ip_range: Option<String>,
    /// `filename`: the name to put in `Content-Disposition`.
    pub filename: Option<String>,
    /// `inline` was present: serve `Content-Disposition: inline`.
    pub inline: bool,
}

impl TempUrlQuery {
    /// Picks the temp URL parameters out of already-decoded query pairs; the first occurrence
    /// of a key wins, as with Swift's `parse_qs(...)[0]`.
    ///
    /// Returns `None` when `temp_url_sig` or `temp_url_expires` is absent: the request is then
    /// not a temp URL request at all. (Swift answers 401 when only one of the two is given;
    /// such a request falls through to ordinary authentication here, which refuses it too
    /// when it carries no token.)
    pub fn from_query(pairs: &[(String, String)]) -> Option<TempUrlQuery> {
        let first = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        Some(TempUrlQuery {
            sig: first("temp_url_sig")?,
            expires: first("temp_url_expires")?,
            prefix: first("temp_url_prefix"),
            ip_range: first("temp_url_ip_range"),
            filename: first("filename"),
            inline: pairs.iter().any(|(k, _)| k == "inline"),
        })
    }

    /// The expiry time in Unix seconds (see [`parse_expires`]); for the `Expires` header
    /// Swift adds to GET/HEAD answers.
    pub fn expires_at(&self) -> Result<i64, TempUrlError> {
        parse_expires(&self.expires)
    }
}

/// Parses `temp_url_expires`: an integer of Unix seconds, or an ISO 8601 UTC time in exactly
/// the form `YYYY-MM-DDThh:mm:ssZ`. Surrounding whitespace is ignored.
pub fn parse_expires(s: &str) -> Result<i64, TempUrlError> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs);
    }
    // Only the one form Swift accepts: four-digit year, a `T`, a literal `Z`.
    let b = s.as_bytes();
    let shape_ok = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if shape_ok {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ") {
            return Ok(t.and_utc().timestamp());
        }
    }
    Err(TempUrlError::BadExpires(s.to_string()))
}

/// Parses `temp_url_sig` into its digest and raw signature bytes.
///
/// * hex of 40, 64 or 128 digits: SHA1, SHA256, SHA512 (either case);
/// * `<algo>:<base64>` with `algo` one of `sha1`, `sha256`, `sha512`, the base64 standard or
///   URL-safe, padding optional; the decoded length must be the digest's.
pub fn parse_sig(sig: &str) -> Result<(Digest, Vec<u8>), TempUrlError> {
    if let Some((algo, b64)) = sig.split_once(':') {
        let digest = Digest::from_name(algo)
            .ok_or_else(|| TempUrlError::BadSignature(format!("unknown digest {algo:?}")))?;
        let b64 = b64.trim_end_matches('=');
        let engine = if b64.contains(['-', '_']) {
            &URL_SAFE_NO_PAD
        } else {
            &STANDARD_NO_PAD
        };
        let bytes = engine
            .decode(b64)
            .map_err(|e| TempUrlError::BadSignature(format!("bad base64: {e}")))?;
        if bytes.len() != digest.output_len() {
            return Err(TempUrlError::BadSignature(format!(
                "{} signature of {} bytes",
                digest.name(),
                bytes.len()
            )));
        }
        return Ok((digest, bytes));
    }
    let digest = match sig.len() {
        40 => Digest::Sha1,
        64 => Digest::Sha256,
        128 => Digest::Sha512,
        n => {
            return Err(TempUrlError::BadSignature(format!(
                "hex signature of {n} characters"
            )))
        }
    };
    let bytes =
        hex::decode(sig).map_err(|e| TempUrlError::BadSignature(format!("bad hex: {e}")))?;
    Ok((digest, bytes))
}

/// The text that is signed: `"{method}\n{expires}\n{path}"`, with `prefix:` before `path`
/// for a prefix-based URL.
fn hmac_body(method: &str, expires: i64, path: &str, prefix_based: bool) -> String {
    let scope = if prefix_based { "prefix:" } else { "" };
    format!("{method}\n{expires}\n{scope}{path}")
}

fn keyed<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Option<M> {
    // HMAC takes keys of any length, so this never fails in practice.
    let mut mac = <M as KeyInit>::new_from_slice(key).ok()?;
    mac.update(msg);
    Some(mac)
}

fn mac_bytes<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    keyed::<M>(key, msg)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

fn mac_matches<M: Mac + KeyInit>(key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    // `verify_slice` compares in constant time.
    keyed::<M>(key, msg).is_some_and(|m| m.verify_slice(sig).is_ok())
}

/// Computes a temp URL signature (raw bytes; hex-encode them for the URL).
///
/// `path` is `/v1/AUTH_acc/cont/obj`, or for a prefix-based URL (`prefix_based`)
/// `/v1/AUTH_acc/cont/<prefix>`, which is then signed as `prefix:/v1/AUTH_acc/cont/<prefix>`.
pub fn sign(
    digest: Digest,
    key: &[u8],
    method: &str,
    expires: i64,
    path: &str,
    prefix_based: bool,
) -> Vec<u8> {
    let msg = hmac_body(method, expires, path, prefix_based);
    match digest {
        Digest::Sha1 => mac_bytes::<Hmac<sha1::Sha1>>(key, msg.as_bytes()),
        Digest::Sha256 => mac_bytes::<Hmac<sha2::Sha256>>(key, msg.as_bytes()),
        Digest::Sha512 => mac_bytes::<Hmac<sha2::Sha512>>(key, msg.as_bytes()),
    }
}

fn signature_matches(digest: Digest, key: &[u8], msg: &str, sig: &[u8]) -> bool {
    match digest {
        Digest::Sha1 => mac_matches::<Hmac<sha1::Sha1>>(key, msg.as_bytes(), sig),
        Digest::Sha256 => mac_matches::<Hmac<sha2::Sha256>>(key, msg.as_bytes(), sig),
        Digest::Sha512 => mac_matches::<Hmac<sha2::Sha512>>(key, msg.as_bytes(), sig),
    }
}

/// The methods a temp URL may be used with (Swift's default `methods`).
const TEMPURL_METHODS: [&str; 5] = ["GET", "HEAD", "PUT", "POST", "DELETE"];

/// Splits `/v1/<account>/<container>/<object>` (object may contain `/`), the way Swift's
/// `split_path(path, 4, 4, True)` does; `None` unless all three are present.
fn split_object_path(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix("/v1/")?;
    let (account, rest) = rest.split_once('/')?;
    let (container, object) = rest.split_once('/')?;
    let bad_segment = |s: &str| s.is_empty() || s == "." || s == "..";
    if bad_segment(account) || bad_segment(container) || object.trim_matches('/').is_empty() {
        return None;
    }
    Some((account, container, object))
}

/// Checks a temp URL request.
///
/// * `method`: the request method (upper case); HEAD is also accepted with a signature made
///   for GET, POST or PUT, as Swift does;
/// * `path`: the percent-decoded request path `/v1/AUTH_acc/cont/obj`;
/// * `keys`: every temp URL key of the account and of the container (any may match);
/// * `allowed_digests`: the digests the deployment accepts;
/// * `now`: the current Unix time; the URL is expired when `expires < now`.
///
/// The signature is checked before the expiry, so [`TempUrlError::Expired`] is only reported
/// for a genuinely signed URL. URLs restricted with `temp_url_ip_range` are not supported
/// and always give [`TempUrlError::Invalid`] (refusing is the safe reading of a restriction
/// that cannot be enforced).
pub fn verify(
    q: &TempUrlQuery,
    method: &str,
    path: &str,
    keys: &[String],
    allowed_digests: &[Digest],
    now: i64,
) -> Result<(), TempUrlError> {
    if q.sig.is_empty() || q.expires.is_empty() {
        return Err(TempUrlError::Missing);
    }
    let expires = parse_expires(&q.expires)?;
    let (digest, sig) = parse_sig(&q.sig)?;
    if !allowed_digests.contains(&digest) || !TEMPURL_METHODS.contains(&method) {
        return Err(TempUrlError::Invalid);
    }
    let (account, container, object) = split_object_path(path).ok_or(TempUrlError::Invalid)?;
    if q.ip_range.is_some() || keys.is_empty() {
        return Err(TempUrlError::Invalid);
    }
    let (signed_path, prefix_based) = match &q.prefix {
        None => (format!("/v1/{account}/{container}/{object}"), false),
        Some(prefix) => {
            if !object.starts_with(prefix.as_str()) {
                return Err(TempUrlError::Invalid);
            }
            (format!("/v1/{account}/{container}/{prefix}"), true)
        }
    };
    let methods: &[&str] = if method == "HEAD" {
        &["HEAD", "GET", "POST", "PUT"]
    } else {
        std::slice::from_ref(&method)
    };
    let valid = methods.iter().any(|m| {
        let msg = hmac_body(m, expires, &signed_path, prefix_based);
        keys.iter()
            .any(|k| signature_matches(digest, k.as_bytes(), &msg, &sig))
    });
    if !valid {
        return Err(TempUrlError::Invalid);
    }
    if expires < now {
        return Err(TempUrlError::Expired);
    }
    Ok(())
}

/// Percent-encodes like Python's `urllib.parse.quote(s, safe)` over UTF-8: letters, digits,
/// `_.-~` and the `safe` characters stay, every other byte becomes `%XX`.
fn quote(s: &str, safe: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        let c = b as char;
        if b.is_ascii_alphanumeric() || "_.-~".contains(c) || (b.is_ascii() && safe.contains(c)) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Swift's `disposition_format`: `{kind}; filename="{name}"; filename*=UTF-8''{name}`, the
/// plain parameter quoted with spaces and `/` kept (so `"` becomes `%22` and non-ASCII is
/// percent-encoded), the RFC 5987 one fully percent-encoded.
fn disposition_format(kind: &str, filename: &str) -> String {
    format!(
        "{kind}; filename=\"{}\"; filename*=UTF-8''{}",
        quote(filename, " /"),
        quote(filename, "/")
    )
}

/// The `Content-Disposition` Swift sets on a successful GET or HEAD through a temp URL,
/// ignoring any disposition stored with the object (see [`disposition_with_stored`]):
///
/// * `inline` given: `inline`, or `inline; filename="…"; filename*=UTF-8''…` with `filename`;
/// * else `attachment; filename="…"; filename*=UTF-8''…` with `filename`, or with the last
///   segment of `object_name` (trailing `/` ignored).
///
/// Like Swift, `filename*` is always present (for pure ASCII names it repeats the name).
/// `None` only when there is no name at all (an object name of only slashes).
pub fn disposition(q: &TempUrlQuery, object_name: &str) -> Option<String> {
    disposition_with_stored(q, object_name, None)
}

/// As [`disposition`], with Swift's full precedence: the query's `inline`/`filename` first,
/// then the `Content-Disposition` stored with the object (`stored`), then the object's name.
/// Newlines are replaced by `%0A`, as Swift does.
pub fn disposition_with_stored(
    q: &TempUrlQuery,
    object_name: &str,
    stored: Option<&str>,
) -> Option<String> {
    let value = if q.inline {
        match &q.filename {
            Some(f) => disposition_format("inline", f),
            None => "inline".to_string(),
        }
    } else if let Some(f) = &q.filename {
        disposition_format("attachment", f)
    } else if let Some(existing) = stored.filter(|s| !s.is_empty()) {
        existing.to_string()
    } else {
        let trimmed = object_name.trim_end_matches('/');
        let name = trimmed.rsplit('/').next().unwrap_or(trimmed);
        if name.is_empty() {
            return None;
        }
        disposition_format("attachment", name)
    };
    Some(value.replace('\n', "%0A"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_600_000_000;
    const ALL: &[Digest] = &[Digest::Sha1, Digest::Sha256, Digest::Sha512];

    // Computed independently with python3's hmac/hashlib, e.g.
    // hmac.new(b'key', b'GET\n1700000000\n/v1/AUTH_a/c/o', hashlib.sha256).hexdigest()
    const PY_SHA256: &str = "3e8f7b4bf6e1167c7d9bbba60658531687b31ef742e000dab8c2d7355cf70d82";
    const PY_SHA1: &str = "ebc61d3f9f4faf1c11d8ee9471e80a8af9670f1c";
    const PY_SHA512: &str = "4f491531ca437438211362f764eecb25cd46779f753e7021b0196188571882081705f3825ccf3a27565f98b934a5512696451ee5d51fbcc0ce001723abb013c2";
    // base64.b64encode of the sha512 digest above.
    const PY_SHA512_B64: &str =
        "T0kVMcpDdDghE2L3ZO7LJc1Gd591PnAhsBlhiFcYgggXBfOCXM86J1ZfmLk0pVEmlkUe5dUfvMDOABcjq7ATwg==";
    // sha256, key b'key', b'GET\n1700000001\n/v1/AUTH_a/c/o': standard and URL-safe base64.
    const PY_1701_STD: &str = "uV/h2muw6hipZ+tRSpB6dg4TLzl4NxAn5/oEcMyXHlw=";
    const PY_1701_URL: &str = "uV_h2muw6hipZ-tRSpB6dg4TLzl4NxAn5_oEcMyXHlw";
    // sha256, key b'secret', b'PUT\n1700000000\nprefix:/v1/AUTH_a/c/pre'.
    const PY_PREFIX_PUT: &str = "34f43258a321ffb2e83087dafa242528ca0ea9a8710730352dcd3a1832a8ca0c";
    // sha256, key b'key', b'GET\n1700000000\nprefix:/v1/AUTH_a/c/photos/'.
    const PY_PREFIX_GET: &str = "ae9acadcfee2f2daef2c405b0fe7645ea7912fd94013b7e3cd7424f747d76e54";
    // sha1, key b'key2', b'POST\n1700000000\n/v1/AUTH_a/c/dir/o'.
    const PY_POST_SHA1: &str = "30287d3cf927d591d0ef16db65bcff18076d180e";

    fn query(sig: &str, expires: &str) -> TempUrlQuery {
        TempUrlQuery {
            sig: sig.to_string(),
            expires: expires.to_string(),
            ..TempUrlQuery::default()
        }
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sign_matches_python_vectors() {
        let path = "/v1/AUTH_a/c/o";
        let s = |d| hex::encode(sign(d, b"key", "GET", 1_700_000_000, path, false));
        assert_eq!(s(Digest::Sha256), PY_SHA256);
        assert_eq!(s(Digest::Sha1), PY_SHA1);
        assert_eq!(s(Digest::Sha512), PY_SHA512);
        let p = sign(
            Digest::Sha256,
            b"secret",
            "PUT",
            1_700_000_000,
            "/v1/AUTH_a/c/pre",
            true,
        );
        assert_eq!(hex::encode(p), PY_PREFIX_PUT);
    }

    #[test]
    fn verify_accepts_python_signatures() {
        let k = keys(&["key"]);
        for sig in [PY_SHA1, PY_SHA256, PY_SHA512] {
            let q = query(sig, "1700000000");
            assert_eq!(verify(&q, "GET", "/v1/AUTH_a/c/o", &k, ALL, NOW), Ok(()));
        }
        let q = query(PY_POST_SHA1, "1700000000");
        let k2 = keys(&["other", "key2"]);
        assert_eq!(
            verify(&q, "POST", "/v1/AUTH_a/c/dir/o", &k2, ALL, NOW),
            Ok(())
        );
        // Upper-case hex is accepted too.
        let q = query(&PY_SHA256.to_uppercase(), "1700000000");
        assert_eq!(verify(&q, "GET", "/v1/AUTH_a/c/o", &k, ALL, NOW), Ok(()));
    }

    #[test]
    fn wrong_key_method_path_or_expiry_is_invalid() {
        let q = query(PY_SHA256, "1700000000");
        let p = "/v1/AUTH_a/c/o";
        assert_eq!(
            verify(&q, "GET", p, &keys(&["nope"]), ALL, NOW),
            Err(TempUrlError::Invalid)
        );
        assert_eq!(
            verify(&q, "GET", p, &[], ALL, NOW),
            Err(TempUrlError::Invalid)
        );
        let k = keys(&["key"]);
        assert_eq!(
            verify(&q, "PUT", p, &k, ALL, NOW),
            Err(TempUrlError::Invalid)
        );
        assert_eq!(
            verify(&q, "GET", "/v1/AUTH_a/c/o2", &k, ALL, NOW),
            Err(TempUrlError::Invalid)
        );
        // The expiry is part of what is signed.
        let q2 = query(PY_SHA256, "1700000001");
        assert_eq!(
            verify(&q2, "GET", p, &k, ALL, NOW),
            Err(TempUrlError::Invalid)
        );
        // Methods outside Swift's list never work.
        assert_eq!(
            verify(&q, "COPY", p, &k, ALL, NOW),
            Err(TempUrlError::Invalid)
        );
    }

    #[test]
    fn digest_must_be_allowed() {
        let k = keys(&["key"]);
        let q = query(PY_SHA1, "1700000000");
        let modern = &[Digest::Sha256, Digest::Sha512];
        assert_eq!(
            verify(&q, "GET", "/v1/AUTH_a/c/o", &k, modern, NOW),
            Err(TempUrlError::Invalid)
        );
    }

    #[test]
    fn expiry() {
        let k = keys(&["key"]);
        let q = query(PY_SHA256, "1700000000");
        let p = "/v1/AUTH_a/c/o";
        assert_eq!(verify(&q, "GET", p, &k, ALL, 1_700_000_000), Ok(()));
        assert_eq!(
            verify(&q, "GET", p, &k, ALL, 1_700_000_001),
            Err(TempUrlError::Expired)
        );
        // A bad signature is reported as invalid even when expired.
        let q = query(PY_SHA1, "1700000000");
        assert_eq!(
            verify(&q, "GET", p, &keys(&["x"]), ALL, 1_800_000_000),
            Err(TempUrlError::Invalid)
        );
        assert_eq!(TempUrlError::Expired.to_string(), "Temp URL expired");
        assert_eq!(TempUrlError::Invalid.to_string(), "Temp URL invalid");
    }

    #[test]
    fn iso8601_expires_signs_the_unix_value() {
        // 2023-11-14T22:13:20Z == 1700000000 (calendar.timegm in python3).
        assert_eq!(parse_expires("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        let q = query(PY_SHA256, "2023-11-14T22:13:20Z");
        let k = keys(&["key"]);
        assert_eq!(verify(&q, "GET", "/v1/AUTH_a/c/o", &k, ALL, NOW), Ok(()));
    }

    #[test]
    fn parse_expires_forms() {
        assert_eq!(parse_expires("0"), Ok(0));
        assert_eq!(parse_expires(" 42 "), Ok(42));
        assert_eq!(parse_expires("-5"), Ok(-5));
        assert_eq!(parse_expires("1970-01-01T00:00:00Z"), Ok(0));
        for bad in [
            "",
            "soon",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20Z",
            "2023-11-14T22:13:20+00:00",
            "2023-13-14T22:13:20Z",
            "2023-11-14T22:13Z",
            "99999999999999999999",
        ] {
            assert!(
                matches!(parse_expires(bad), Err(TempUrlError::BadExpires(_))),
                "{bad}"
            );
        }
        let k = keys(&["key"]);
        assert!(matches!(
            verify(&query(PY_SHA256, "later"), "GET", "/v1/a/c/o", &k, ALL, NOW),
            Err(TempUrlError::BadExpires(_))
        ));
    }

    #[test]
    fn parse_sig_forms() {
        let (d, b) = parse_sig(PY_SHA1).expect("sha1 hex");
        assert_eq!((d, b.len()), (Digest::Sha1, 20));
        let (d, b) = parse_sig(PY_SHA256).expect("sha256 hex");
        assert_eq!((d, b.len()), (Digest::Sha256, 32));
        let (d, b) = parse_sig(PY_SHA512).expect("sha512 hex");
        assert_eq!((d, hex::encode(b)), (Digest::Sha512, PY_SHA512.to_string()));

        let (d, b) = parse_sig(&format!("sha512:{PY_SHA512_B64}")).expect("b64");
        assert_eq!((d, hex::encode(b)), (Digest::Sha512, PY_SHA512.to_string()));
        let unpadded = PY_SHA512_B64.trim_end_matches('=');
        let (_, b) = parse_sig(&format!("sha512:{unpadded}")).expect("b64 no pad");
        assert_eq!(hex::encode(b), PY_SHA512);
        let std = parse_sig(&format!("sha256:{PY_1701_STD}")).expect("std");
        let url = parse_sig(&format!("sha256:{PY_1701_URL}")).expect("url-safe");
        assert_eq!(std, url);
        assert_eq!(
            hex::encode(std.1),
            "b95fe1da6bb0ea18a967eb514a907a760e132f3978371027e7fa0470cc971e5c"
        );

        let z40 = "z".repeat(40);
        let sha1_of_256 = format!("sha1:{PY_1701_STD}");
        let bads: [&str; 8] = [
            "",
            "abc",
            &PY_SHA256[..63],
            &z40,
            "md5:AAAA",
            "sha256:!!!!",
            "sha256:uV/h2muw6hipZ-tRSpB6dg4TLzl4NxAn5/oEcMyXHlw",
            &sha1_of_256,
        ];
        for bad in bads {
            assert!(
                matches!(parse_sig(bad), Err(TempUrlError::BadSignature(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn base64_signatures_verify() {
        let k = keys(&["key"]);
        let p = "/v1/AUTH_a/c/o";
        for sig in [
            format!("sha256:{PY_1701_STD}"),
            format!("sha256:{PY_1701_URL}"),
        ] {
            assert_eq!(
                verify(&query(&sig, "1700000001"), "GET", p, &k, ALL, NOW),
                Ok(())
            );
        }
        let sig = format!("sha512:{PY_SHA512_B64}");
        assert_eq!(
            verify(&query(&sig, "1700000000"), "GET", p, &k, ALL, NOW),
            Ok(())
        );
    }

    #[test]
    fn head_accepts_get_put_post_signatures() {
        let k = keys(&["key"]);
        let p = "/v1/AUTH_a/c/o";
        for m in ["GET", "PUT", "POST", "HEAD"] {
            let sig = hex::encode(sign(Digest::Sha256, b"key", m, 1_700_000_000, p, false));
            let q = query(&sig, "1700000000");
            assert_eq!(verify(&q, "HEAD", p, &k, ALL, NOW), Ok(()), "{m}");
        }
        let del = hex::encode(sign(
            Digest::Sha256,
            b"key",
            "DELETE",
            1_700_000_000,
            p,
            false,
        ));
        let q = query(&del, "1700000000");
        assert_eq!(
            verify(&q, "HEAD", p, &k, ALL, NOW),
            Err(TempUrlError::Invalid)
        );
        assert_eq!(verify(&q, "DELETE", p, &k, ALL, NOW), Ok(()));
        // The reverse does not hold: a HEAD signature does not open GET.
        let head = hex::encode(sign(
            Digest::Sha256,
            b"key",
            "HEAD",
            1_700_000_000,
            p,
            false,
        ));
        let q = query(&head, "1700000000");
        assert_eq!(
            verify(&q, "GET", p, &k, ALL, NOW),
            Err(TempUrlError::Invalid)
        );
    }

    #[test]
    fn prefix_urls() {
        let k = keys(&["key"]);
        let mut q = query(PY_PREFIX_GET, "1700000000");
        q.prefix = Some("photos/".to_string());
        for obj in [
            "/v1/AUTH_a/c/photos/cat.jpg",
            "/v1/AUTH_a/c/photos/2024/dog.jpg",
        ] {
            assert_eq!(verify(&q, "GET", obj, &k, ALL, NOW), Ok(()), "{obj}");
            assert_eq!(verify(&q, "HEAD", obj, &k, ALL, NOW), Ok(()), "{obj}");
        }
        for obj in [
            "/v1/AUTH_a/c/music/song.mp3",
            "/v1/AUTH_a/c2/photos/cat.jpg",
        ] {
            assert_eq!(
                verify(&q, "GET", obj, &k, ALL, NOW),
                Err(TempUrlError::Invalid),
                "{obj}"
            );
        }
        // Without the prefix parameter the same signature opens nothing.
        q.prefix = None;
        assert_eq!(
            verify(&q, "GET", "/v1/AUTH_a/c/photos/cat.jpg", &k, ALL, NOW),
            Err(TempUrlError::Invalid)
        );
        // The PUT vector from python, prefix "pre".
        let mut q = query(PY_PREFIX_PUT, "1700000000");
        q.prefix = Some("pre".to_string());
        let k = keys(&["secret"]);
        assert_eq!(
            verify(&q, "PUT", "/v1/AUTH_a/c/prefab", &k, ALL, NOW),
            Ok(())
        );
        // An empty prefix covers the whole container.
        let sig = sign(
            Digest::Sha256,
            b"k",
            "GET",
            1_700_000_000,
            "/v1/AUTH_a/c/",
            true,
        );
        let mut q = query(&hex::encode(sig), "1700000000");
        q.prefix = Some(String::new());
        let k = keys(&["k"]);
        assert_eq!(
            verify(&q, "GET", "/v1/AUTH_a/c/any/thing", &k, ALL, NOW),
            Ok(())
        );
    }

    #[test]
    fn bad_paths_missing_params_and_ip_ranges() {
        let k = keys(&["key"]);
        let q = query(PY_SHA256, "1700000000");
        for p in [
            "/v1/AUTH_a/c",
            "/v1/AUTH_a/c/",
            "/v1/AUTH_a/c///",
            "/v1/AUTH_a//o",
            "/v2/AUTH_a/c/o",
            "v1/AUTH_a/c/o",
        ] {
            assert_eq!(
                verify(&q, "GET", p, &k, ALL, NOW),
                Err(TempUrlError::Invalid),
                "{p}"
            );
        }
        assert_eq!(
            verify(&query("", "1700000000"), "GET", "/v1/a/c/o", &k, ALL, NOW),
            Err(TempUrlError::Missing)
        );
        assert_eq!(
            verify(&query(PY_SHA256, ""), "GET", "/v1/a/c/o", &k, ALL, NOW),
            Err(TempUrlError::Missing)
        );
        let mut q = query(PY_SHA256, "1700000000");
        q.ip_range = Some("10.0.0.0/8".to_string());
        assert_eq!(
            verify(&q, "GET", "/v1/AUTH_a/c/o", &k, ALL, NOW),
            Err(TempUrlError::Invalid)
        );
        assert_eq!(
            TempUrlError::Missing.swift_body(),
            "401 Unauthorized: Temp URL invalid\n"
        );
    }

    #[test]
    fn from_query_picks_parameters() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let q = TempUrlQuery::from_query(&pairs(&[
            ("temp_url_sig", "abc"),
            ("temp_url_expires", "10"),
            ("temp_url_sig", "second"),
            ("temp_url_prefix", ""),
            ("temp_url_ip_range", "1.2.3.4"),
            ("filename", "x.txt"),
            ("inline", ""),
            ("other", "1"),
        ]))
        .expect("temp url");
        assert_eq!(
            q,
            TempUrlQuery {
                sig: "abc".into(),
                expires: "10".into(),
                prefix: Some(String::new()),
                ip_range: Some("1.2.3.4".into()),
                filename: Some("x.txt".into()),
                inline: true,
            }
        );
        assert_eq!(q.expires_at(), Ok(10));
        let plain = TempUrlQuery::from_query(&pairs(&[
            ("temp_url_sig", "abc"),
            ("temp_url_expires", "10"),
        ]))
        .expect("temp url");
        assert_eq!(
            (plain.prefix, plain.filename, plain.inline),
            (None, None, false)
        );
        assert!(TempUrlQuery::from_query(&pairs(&[("temp_url_sig", "abc")])).is_none());
        assert!(TempUrlQuery::from_query(&pairs(&[("temp_url_expires", "1")])).is_none());
        assert!(TempUrlQuery::from_query(&[]).is_none());
    }

    #[test]
    fn content_disposition() {
        let mut q = query("s", "1");
        assert_eq!(
            disposition(&q, "dir/report.pdf").as_deref(),
            Some("attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf")
        );
        assert_eq!(
            disposition(&q, "dir/sub/").as_deref(),
            Some("attachment; filename=\"sub\"; filename*=UTF-8''sub")
        );
        assert_eq!(disposition(&q, "///"), None);
        // Same quoting as Swift (checked with python3's urllib.parse.quote).
        q.filename = Some("bob \"killer\".txt".into());
        assert_eq!(
            disposition(&q, "o").as_deref(),
            Some("attachment; filename=\"bob %22killer%22.txt\"; filename*=UTF-8''bob%20%22killer%22.txt")
        );
        q.filename = Some("naïve file.txt".into());
        assert_eq!(
            disposition(&q, "o").as_deref(),
            Some("attachment; filename=\"na%C3%AFve file.txt\"; filename*=UTF-8''na%C3%AFve%20file.txt")
        );
        q.inline = true;
        assert_eq!(
            disposition(&q, "o").as_deref(),
            Some(
                "inline; filename=\"na%C3%AFve file.txt\"; filename*=UTF-8''na%C3%AFve%20file.txt"
            )
        );
        q.filename = None;
        assert_eq!(disposition(&q, "o").as_deref(), Some("inline"));
    }

    #[test]
    fn stored_disposition_precedence() {
        let mut q = query("s", "1");
        assert_eq!(
            disposition_with_stored(&q, "o", Some("attachment; x\ny")).as_deref(),
            Some("attachment; x%0Ay")
        );
        assert_eq!(
            disposition_with_stored(&q, "o", Some("")).as_deref(),
            Some("attachment; filename=\"o\"; filename*=UTF-8''o")
        );
        q.filename = Some("f".into());
        assert_eq!(
            disposition_with_stored(&q, "o", Some("stored")).as_deref(),
            Some("attachment; filename=\"f\"; filename*=UTF-8''f")
        );
        q.filename = None;
        q.inline = true;
        assert_eq!(
            disposition_with_stored(&q, "o", Some("stored")).as_deref(),
            Some("inline")
        );
    }

    #[test]
    fn digest_names() {
        assert_eq!(Digest::from_name("SHA256"), Some(Digest::Sha256));
        assert_eq!(Digest::from_name("md5"), None);
        for d in [Digest::Sha1, Digest::Sha256, Digest::Sha512] {
            assert_eq!(Digest::from_name(d.name()), Some(d));
            assert_eq!(
                sign(d, b"k", "GET", 1, "/v1/a/c/o", false).len(),
                d.output_len()
            );
        }
    }
}
