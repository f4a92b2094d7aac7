//! OpenSSH public keys: validation and Nova's fingerprint (pure; no I/O).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::{Digest, Md5};

use crate::aggregate::DomainError;

/// The key types accepted, with how many length-prefixed strings follow the type name in the key blob.
pub const KEY_TYPES: &[(&str, usize)] = &[
    ("ssh-rsa", 2),             // e, n
    ("ssh-dss", 4),             // p, q, g, y
    ("ssh-ed25519", 1),         // the 32-byte key
    ("ecdsa-sha2-nistp256", 2), // curve name, point
    ("ecdsa-sha2-nistp384", 2),
    ("ecdsa-sha2-nistp521", 2),
];

fn bad(why: &str) -> DomainError {
    DomainError::Invalid(format!("Keypair data is invalid: {why}"))
}

/// Split one SSH wire-format string (u32 big-endian length, then bytes) off `data`.
fn take_string(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let rest = &data[4..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Nova's fingerprint of an OpenSSH public key line `<type> <base64 blob> [comment]`: the MD5 of the decoded
/// blob as colon-separated lowercase hex pairs (`9d:...:4f`). The blob must be well-formed for its type: its
/// first string is the type name, followed by exactly the type's fields (an ed25519 key is 32 bytes, an ECDSA
/// key names its curve), with nothing after them.
pub fn fingerprint(public_key: &str) -> Result<String, DomainError> {
    let mut parts = public_key.split_whitespace();
    let (Some(key_type), Some(encoded)) = (parts.next(), parts.next()) else {
        return Err(bad(
            "failed to generate fingerprint: expected '<type> <base64 key> [comment]'",
        ));
    };
    let Some(&(_, fields)) = KEY_TYPES.iter().find(|(t, _)| *t == key_type) else {
        return Err(bad(&format!("unsupported key type '{key_type}'")));
    };
    let blob = STANDARD
        .decode(encoded)
        .map_err(|_| bad("the key is not valid base64"))?;
    let (name, mut rest) = take_string(&blob).ok_or_else(|| bad("the key data is truncated"))?;
    if name != key_type.as_bytes() {
        return Err(bad("the key data does not match its type"));
    }
    let mut values = Vec::with_capacity(fields);
    for _ in 0..fields {
        let (value, tail) = take_string(rest).ok_or_else(|| bad("the key data is truncated"))?;
        values.push(value);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(bad("the key data has trailing bytes"));
    }
    if key_type == "ssh-ed25519" && values[0].len() != 32 {
        return Err(bad("an ed25519 key is 32 bytes"));
    }
    if let Some(curve) = key_type.strip_prefix("ecdsa-sha2-") {
        if values[0] != curve.as_bytes() || values[1].is_empty() {
            return Err(bad("the key's curve does not match its type"));
        }
    }
    if values.iter().any(|v| v.is_empty()) {
        return Err(bad("the key data has an empty field"));
    }
    let digest = Md5::digest(&blob);
    Ok(digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// A new ed25519 keypair for a user who asked Nova to generate one: (private key in OpenSSH PEM form, public
/// key line). Not used by any aggregate (it draws random numbers); the API calls it before building the
/// command, as with password hashing.
pub fn generate_ed25519(comment: &str) -> Result<(String, String), DomainError> {
    let fail = |e: ssh_key::Error| DomainError::Invalid(format!("key generation failed: {e}"));
    let mut key = ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
        .map_err(fail)?;
    key.set_comment(comment);
    let private = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(fail)?
        .to_string();
    let public = key.public_key().to_openssh().map_err(fail)?;
    Ok((private, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s);
    }

    fn blob(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            string(&mut out, p);
        }
        out
    }

    fn line(key_type: &str, blob: &[u8], comment: &str) -> String {
        format!("{key_type} {} {comment}", STANDARD.encode(blob))
    }

    fn ed25519_blob() -> Vec<u8> {
        blob(&[b"ssh-ed25519", &[7u8; 32]])
    }

    fn expected(blob: &[u8]) -> String {
        let d = Md5::digest(blob);
        d.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    #[test]
    fn ed25519_fingerprint_is_md5_of_the_blob() {
        let b = ed25519_blob();
        let fp = fingerprint(&line("ssh-ed25519", &b, "me@host")).unwrap();
        assert_eq!(fp, expected(&b));
        // 16 lowercase hex pairs.
        assert_eq!(fp.len(), 47);
        assert_eq!(fp.split(':').count(), 16);
        assert!(fp
            .chars()
            .all(|c| c == ':' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
        // The comment is optional and surrounding whitespace is ignored.
        let bare = format!("  ssh-ed25519 {}\n", STANDARD.encode(&b));
        assert_eq!(fingerprint(&bare).unwrap(), fp);
    }

    #[test]
    fn a_known_fingerprint() {
        // md5 of the blob for 32 zero bytes, computed independently (python hashlib).
        let b = blob(&[b"ssh-ed25519", &[0u8; 32]]);
        assert_eq!(
            fingerprint(&line("ssh-ed25519", &b, "")).unwrap(),
            "3d:52:38:ce:ff:94:f5:d7:81:a4:a4:f9:2b:4f:fe:a0"
        );
    }

    #[test]
    fn other_key_types_are_accepted() {
        let rsa = blob(&[b"ssh-rsa", &[1, 0, 1], &[0x00, 0xc3, 0x11]]);
        assert_eq!(
            fingerprint(&line("ssh-rsa", &rsa, "c")).unwrap(),
            expected(&rsa)
        );
        let dss = blob(&[b"ssh-dss", b"p", b"q", b"g", b"y"]);
        assert!(fingerprint(&line("ssh-dss", &dss, "")).is_ok());
        for curve in ["nistp256", "nistp384", "nistp521"] {
            let t = format!("ecdsa-sha2-{curve}");
            let ec = blob(&[t.as_bytes(), curve.as_bytes(), &[4, 1, 2]]);
            assert!(fingerprint(&line(&t, &ec, "")).is_ok(), "{t}");
        }
    }

    #[track_caller]
    fn assert_invalid(key: &str) {
        match fingerprint(key) {
            Err(DomainError::Invalid(m)) => {
                assert!(m.starts_with("Keypair data is invalid: "), "{m}")
            }
            other => panic!("expected Invalid for {key:?}, got {other:?}"),
        }
    }

    #[test]
    fn invalid_keys_are_refused() {
        let b = ed25519_blob();
        assert_invalid("");
        assert_invalid("ssh-ed25519");
        assert_invalid("not a key");
        assert_invalid(&line("ssh-foo", &b, ""));
        assert_invalid("ssh-ed25519 !!!notbase64!!!");
        // The blob names another type.
        assert_invalid(&line("ssh-rsa", &b, ""));
        // Truncated, trailing bytes, wrong key size.
        assert_invalid(&line("ssh-ed25519", &b[..b.len() - 1], ""));
        let mut long = b.clone();
        long.push(0);
        assert_invalid(&line("ssh-ed25519", &long, ""));
        assert_invalid(&line(
            "ssh-ed25519",
            &blob(&[b"ssh-ed25519", &[7u8; 31]]),
            "",
        ));
        assert_invalid(&line("ssh-ed25519", &[0, 0, 0], ""));
        // A length prefix far beyond the data.
        assert_invalid(&line("ssh-ed25519", &[0xff, 0xff, 0xff, 0xff, b's'], ""));
        // An ECDSA key whose curve does not match its type.
        let ec = blob(&[b"ecdsa-sha2-nistp256", b"nistp384", &[4, 1]]);
        assert_invalid(&line("ecdsa-sha2-nistp256", &ec, ""));
        // An RSA key with a missing field.
        assert_invalid(&line("ssh-rsa", &blob(&[b"ssh-rsa", &[1, 0, 1]]), ""));
    }

    #[test]
    fn generated_keys_have_a_valid_public_half() {
        let (private, public) = generate_ed25519("k1").unwrap();
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(
            public.starts_with("ssh-ed25519 ") && public.ends_with(" k1"),
            "{public}"
        );
        assert_eq!(fingerprint(&public).unwrap().len(), 47);
    }
}
