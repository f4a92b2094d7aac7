//! HTTP range requests (`Range`, `multipart/byteranges`) and conditional requests
//! (`If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`) as Swift's
//! object server and proxy apply them. Pure functions: the caller reads the headers and
//! streams the bytes.

use chrono::{DateTime, NaiveDateTime, Utc};
use md5::{Digest as _, Md5};

/// At most this many ranges are served in one response (Swift's `MAX_RANGES`).
pub const MAX_RANGES: usize = 50;
/// At most this many pairs of ranges may overlap (Swift's `MAX_RANGE_OVERLAPS`).
pub const MAX_RANGE_OVERLAPS: usize = 2;
/// Out-of-order ranges are refused once there are this many (Swift's
/// `MAX_NONASCENDING_RANGES`).
pub const MAX_NONASCENDING_RANGES: usize = 8;

/// What to do with a `Range` header for a body of known length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Ignore the header and answer `200` with the whole body (the header is not a
    /// syntactically valid `bytes=` range set).
    Full,
    /// Answer `206` with these inclusive `(start, end)` byte ranges, all within the body, in
    /// the order requested (one range: a plain body with `Content-Range`; several:
    /// `multipart/byteranges`).
    Ranges(Vec<(u64, u64)>),
    /// Answer `416 Range Not Satisfiable` with `Content-Range: bytes */<len>`.
    Unsatisfiable,
}

/// One `first-last`, `first-` or `-suffix` element of a range set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last`.
    From(u64, Option<u64>),
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

/// A run of ASCII digits as a number; a value past `u64::MAX` saturates (it lies beyond
/// any body anyway).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

/// Parses `bytes=<spec>[,<spec>…]` (spaces anywhere ignored, `bytes` in any case); `None`
/// when any element is malformed or when `last < first`.
fn parse_specs(header: &str) -> Option<Vec<Spec>> {
    let compact: String = header.chars().filter(|c| *c != ' ' && *c != '\t').collect();
    let (unit, set) = compact.split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    set.split(',')
        .map(|element| {
            let (first, last) = element.split_once('-')?;
            match (first.is_empty(), last.is_empty()) {
                (true, true) => None,
                (true, false) => Some(Spec::Suffix(digits(last)?)),
                (false, true) => Some(Spec::From(digits(first)?, None)),
                (false, false) => {
                    let (a, b) = (digits(first)?, digits(last)?);
                    (b >= a).then_some(Spec::From(a, Some(b)))
                }
            }
        })
        .collect()
}

/// Whether two inclusive ranges share at least one byte.
fn overlap(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// Resolves a `Range` header against a body of `len` bytes, the way Swift does:
///
/// * a header that is not a valid `bytes=` range set (unknown unit, an element without `-`,
///   non-digits, `last < first`, an empty element) is ignored: [`RangeOutcome::Full`];
/// * each satisfiable element becomes an inclusive `(start, end)`: `a-b` is clipped to the
///   last byte, `a-` runs to the end, `-n` is the last `n` bytes (the whole body when
///   `n >= len`); elements starting at or after `len`, and `-0`, are dropped;
/// * nothing left (in particular any range of an empty body): [`RangeOutcome::Unsatisfiable`].
///
/// Following Swift's defence against range abuse (RFC 7233 §6.1), a request is also answered
/// [`RangeOutcome::Unsatisfiable`] (416, as Swift does) when it resolves to more than
/// [`MAX_RANGES`] ranges, more than [`MAX_RANGE_OVERLAPS`] overlapping pairs, or at least
/// [`MAX_NONASCENDING_RANGES`] ranges not in ascending order. Unlike Swift, ranges that share
/// any byte count as overlapping (Swift misses identical ranges).
pub fn parse_range(header: &str, len: u64) -> RangeOutcome {
    let Some(specs) = parse_specs(header) else {
        return RangeOutcome::Full;
    };
    if len == 0 {
        return RangeOutcome::Unsatisfiable;
    }
    let last = len - 1;
    let ranges: Vec<(u64, u64)> = specs
        .iter()
        .filter_map(|spec| match *spec {
            Spec::Suffix(0) => None,
            Spec::Suffix(n) => Some((len.saturating_sub(n), last)),
            Spec::From(a, _) if a >= len => None,
            Spec::From(a, None) => Some((a, last)),
            Spec::From(a, Some(b)) => Some((a, b.min(last))),
        })
        .collect();
    if ranges.is_empty() || ranges.len() > MAX_RANGES {
        return RangeOutcome::Unsatisfiable;
    }
    let mut overlaps = 0;
    for (i, a) in ranges.iter().enumerate() {
        overlaps += ranges[i + 1..].iter().filter(|b| overlap(*a, **b)).count();
    }
    if overlaps > MAX_RANGE_OVERLAPS {
        return RangeOutcome::Unsatisfiable;
    }
    let ascending = ranges.windows(2).all(|w| w[0] <= w[1]);
    if !ascending && ranges.len() >= MAX_NONASCENDING_RANGES {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Ranges(ranges)
}

/// `Content-Range` of a single-range `206`: `bytes <start>-<end>/<total>`.
pub fn content_range(start: u64, end: u64, total: u64) -> String {
    format!("bytes {start}-{end}/{total}")
}

/// `Content-Range` of a `416`: `bytes */<total>`.
pub fn unsatisfiable_content_range(total: u64) -> String {
    format!("bytes */{total}")
}

/// A boundary for a `multipart/byteranges` answer: 32 random hex digits, like Swift's.
pub fn multipart_boundary() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A deterministic boundary: the hex MD5 of `seed` (32 hex digits). Seed it with something
/// the body cannot predict-and-contain, e.g. the object's ETag and the request id.
pub fn boundary_from(seed: &str) -> String {
    hex::encode(Md5::digest(seed.as_bytes()))
}

/// The `Content-Type` of a multi-range answer: `multipart/byteranges;boundary=<boundary>`.
pub fn multipart_content_type(boundary: &str) -> String {
    format!("multipart/byteranges;boundary={boundary}")
}

/// What comes between two parts of a `multipart/byteranges` body (after a part's data,
/// before the next [`multipart_head`]).
pub const PART_SEPARATOR: &str = "\r\n";

/// The head of one part:
/// `--<boundary>\r\nContent-Type: <type>\r\nContent-Range: bytes <s>-<e>/<total>\r\n\r\n`.
///
/// The body is `head₁ data₁ (PART_SEPARATOR headₙ dataₙ)… tail` — see [`multipart_body`],
/// [`PART_SEPARATOR`] and [`multipart_tail`].
pub fn multipart_head(
    boundary: &str,
    content_type: &str,
    start: u64,
    end: u64,
    total: u64,
) -> String {
    format!(
        "--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
        content_range(start, end, total)
    )
}

/// The end of a `multipart/byteranges` body, after the last part's data:
/// `\r\n--<boundary>--`.
pub fn multipart_tail(boundary: &str) -> String {
    format!("\r\n--{boundary}--")
}

/// The exact length of the `multipart/byteranges` body for these inclusive ranges, for
/// `Content-Length`.
pub fn multipart_length(
    boundary: &str,
    content_type: &str,
    ranges: &[(u64, u64)],
    total: u64,
) -> u64 {
    let parts: u64 = ranges
        .iter()
        .map(|&(s, e)| {
            multipart_head(boundary, content_type, s, e, total).len() as u64
                + e.saturating_sub(s).saturating_add(1)
        })
        .sum();
    let separators = ranges.len().saturating_sub(1) as u64 * PART_SEPARATOR.len() as u64;
    parts + separators + multipart_tail(boundary).len() as u64
}

/// Builds a whole `multipart/byteranges` body from the full object `data` (for small
/// bodies; larger ones are streamed by the caller with the same framing). Ranges must lie
/// within `data`, as those from [`parse_range`] do; bytes past its end are left out.
pub fn multipart_body(
    boundary: &str,
    content_type: &str,
    ranges: &[(u64, u64)],
    data: &[u8],
) -> Vec<u8> {
    let total = data.len() as u64;
    let mut out = Vec::new();
    for (i, &(s, e)) in ranges.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(PART_SEPARATOR.as_bytes());
        }
        out.extend_from_slice(multipart_head(boundary, content_type, s, e, total).as_bytes());
        let from = usize::try_from(s).unwrap_or(usize::MAX).min(data.len());
        let to = usize::try_from(e.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(data.len());
        if from < to {
            out.extend_from_slice(&data[from..to]);
        }
    }
    out.extend_from_slice(multipart_tail(boundary).as_bytes());
    out
}

/// The validators of the object being requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validators<'a> {
    /// The object's ETag, unquoted (Swift: the MD5 hex of the content).
    pub etag: &'a str,
    /// Last modification, Unix seconds (Swift rounds its timestamp up to the second).
    pub last_modified: i64,
}

/// The verdict on a request's preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Serve the request normally.
    Proceed,
    /// `304 Not Modified` (GET/HEAD only).
    NotModified,
    /// `412 Precondition Failed`.
    PreconditionFailed,
}

/// Whether an `If-Match` / `If-None-Match` list names `etag`. `*` matches any (existing)
/// object; tags may be quoted or not. `weak` selects RFC 7232's weak comparison (a `W/` tag
/// matches its strong twin, for If-None-Match); with strong comparison (If-Match) a `W/`
/// tag never matches.
fn etag_list_matches(list: &str, etag: &str, weak: bool) -> bool {
    let etag = etag.trim().trim_matches('"');
    list.split(',').map(str::trim).any(|tag| {
        if tag == "*" {
            return true;
        }
        let tag = match tag.strip_prefix("W/") {
            Some(_) if !weak => return false,
            Some(rest) => rest,
            None => tag,
        };
        let tag = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(tag);
        !tag.is_empty() && tag == etag
    })
}

/// Parses an HTTP date: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, or any RFC 2822
/// date), and the obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`) forms. `None` when it is none of these.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.timestamp());
    }
    let asctime = s.split_whitespace().collect::<Vec<_>>().join(" ");
    NaiveDateTime::parse_from_str(s, "%A, %d-%b-%y %H:%M:%S GMT")
        .or_else(|_| NaiveDateTime::parse_from_str(&asctime, "%a %b %e %H:%M:%S %Y"))
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// A header that is present and not blank.
fn present(h: Option<&str>) -> Option<&str> {
    h.filter(|s| !s.trim().is_empty())
}

/// Evaluates the preconditions of a request in RFC 7232 §6 order:
///
/// 1. `If-Match` present: `412` unless it names the ETag (or is `*`);
///    otherwise `If-Unmodified-Since`: `412` when modified after that date;
/// 2. `If-None-Match` present: when it names the ETag (or is `*`), `304` for GET/HEAD and
///    `412` for other methods; otherwise, for GET/HEAD only, `If-Modified-Since`: `304`
///    unless modified after that date.
///
/// Dates that do not parse are ignored, as is an empty header.
pub fn evaluate(
    method_is_get_or_head: bool,
    if_match: Option<&str>,
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    if_unmodified_since: Option<&str>,
    v: &Validators,
) -> Condition {
    if let Some(list) = present(if_match) {
        if !etag_list_matches(list, v.etag, false) {
            return Condition::PreconditionFailed;
        }
    } else if let Some(date) = present(if_unmodified_since).and_then(parse_http_date) {
        if v.last_modified > date {
            return Condition::PreconditionFailed;
        }
    }
    if let Some(list) = present(if_none_match) {
        if etag_list_matches(list, v.etag, true) {
            return if method_is_get_or_head {
                Condition::NotModified
            } else {
                Condition::PreconditionFailed
            };
        }
    } else if method_is_get_or_head {
        if let Some(date) = present(if_modified_since).and_then(parse_http_date) {
            if v.last_modified <= date {
                return Condition::NotModified;
            }
        }
    }
    Condition::Proceed
}

/// Formats Unix seconds as an HTTP IMF-fixdate, e.g. `Thu, 26 Nov 2026 10:00:00 GMT`
/// (times chrono cannot represent fall back to the epoch).
pub fn http_date(unix_secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix_secs, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(v: &[(u64, u64)]) -> RangeOutcome {
        RangeOutcome::Ranges(v.to_vec())
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), ranges(&[(0, 9)]));
        assert_eq!(parse_range("bytes=10-", 100), ranges(&[(10, 99)]));
        assert_eq!(parse_range("bytes=-10", 100), ranges(&[(90, 99)]));
        assert_eq!(parse_range("bytes=99-99", 100), ranges(&[(99, 99)]));
        assert_eq!(parse_range("BYTES = 1 - 2", 100), ranges(&[(1, 2)]));
        assert_eq!(parse_range("bytes=0-", 1), ranges(&[(0, 0)]));
    }

    #[test]
    fn clipping() {
        assert_eq!(parse_range("bytes=50-1000", 100), ranges(&[(50, 99)]));
        assert_eq!(parse_range("bytes=-1000", 100), ranges(&[(0, 99)]));
        assert_eq!(parse_range("bytes=-100", 100), ranges(&[(0, 99)]));
        assert_eq!(
            parse_range("bytes=0-99999999999999999999999", 10),
            ranges(&[(0, 9)])
        );
    }

    #[test]
    fn multiple_ranges_keep_request_order() {
        assert_eq!(parse_range("bytes=0-0,-1", 10), ranges(&[(0, 0), (9, 9)]));
        assert_eq!(
            parse_range("bytes=5-6, 0-1, 8-", 10),
            ranges(&[(5, 6), (0, 1), (8, 9)])
        );
        // Unsatisfiable members are dropped, the rest served.
        assert_eq!(parse_range("bytes=20-30,0-1,-0,10-", 10), ranges(&[(0, 1)]));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse_range("bytes=10-", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(parse_range("bytes=10-20", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=10-11,-0", 10),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=0-0", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=99999999999999999999999-", 10),
            RangeOutcome::Unsatisfiable
        );
    }

    #[test]
    fn invalid_headers_are_ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=5",
            "bytes=5-3",
            "bytes=a-b",
            "bytes=1-2,,3-4",
            "bytes=--0",
            "bytes=+1-2",
            "bytes=1-2-3",
            "items=0-1",
            "0-1",
        ] {
            assert_eq!(parse_range(h, 10), RangeOutcome::Full, "{h:?}");
            assert_eq!(parse_range(h, 0), RangeOutcome::Full, "{h:?} on empty body");
        }
    }

    #[test]
    fn abusive_range_sets() {
        let fifty: Vec<String> = (0..50).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        let h = format!("bytes={}", fifty.join(","));
        assert!(matches!(parse_range(&h, 1000), RangeOutcome::Ranges(r) if r.len() == 50));
        let h = format!("{h},200-201");
        assert_eq!(parse_range(&h, 1000), RangeOutcome::Unsatisfiable);

        // Two overlapping pairs are fine, three are not.
        assert!(matches!(
            parse_range("bytes=0-5,3-8,7-9", 10),
            RangeOutcome::Ranges(_)
        ));
        assert_eq!(
            parse_range("bytes=0-5,0-5,0-5", 10),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(
            parse_range("bytes=0-9,1-1,2-2,3-3", 10),
            RangeOutcome::Unsatisfiable
        );

        // Seven out-of-order ranges are served, eight are not.
        let seven = "bytes=70-70,60-60,50-50,40-40,30-30,20-20,10-10";
        assert!(matches!(parse_range(seven, 100), RangeOutcome::Ranges(r) if r.len() == 7));
        let eight = format!("{seven},0-0");
        assert_eq!(parse_range(&eight, 100), RangeOutcome::Unsatisfiable);
        let ascending: Vec<String> = (0..20).map(|i| format!("{i}-{i}")).collect();
        let h = format!("bytes={}", ascending.join(","));
        assert!(matches!(parse_range(&h, 100), RangeOutcome::Ranges(r) if r.len() == 20));
    }

    #[test]
    fn boundaries() {
        assert_eq!(boundary_from("strata"), "77194479b2a7c2698a54a10abfeeda85");
        let b = multipart_boundary();
        assert_eq!(b.len(), 32);
        assert!(b.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(b, multipart_boundary());
        assert_eq!(
            multipart_content_type("B"),
            "multipart/byteranges;boundary=B"
        );
    }

    #[test]
    fn multipart_framing() {
        assert_eq!(
            multipart_head("B", "text/plain", 0, 3, 10),
            "--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-3/10\r\n\r\n"
        );
        assert_eq!(multipart_tail("B"), "\r\n--B--");
        assert_eq!(content_range(2, 5, 9), "bytes 2-5/9");
        assert_eq!(unsatisfiable_content_range(9), "bytes */9");

        let data = b"0123456789";
        let body = multipart_body("B", "text/plain", &[(0, 1), (8, 9)], data);
        let expected = "--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
                        \r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89\
                        \r\n--B--";
        assert_eq!(String::from_utf8_lossy(&body), expected);
        assert_eq!(
            multipart_length("B", "text/plain", &[(0, 1), (8, 9)], 10),
            expected.len() as u64
        );
    }

    #[test]
    fn multipart_length_matches_body() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let b = boundary_from("etag-and-request");
        for header in ["bytes=0-0", "bytes=0-9,20-29,-5", "bytes=990-,0-0,500-600"] {
            let RangeOutcome::Ranges(r) = parse_range(header, 1000) else {
                panic!("{header} should be satisfiable");
            };
            let body = multipart_body(&b, "application/octet-stream", &r, &data);
            assert_eq!(
                multipart_length(&b, "application/octet-stream", &r, 1000),
                body.len() as u64,
                "{header}"
            );
        }
    }

    const V: Validators<'static> = Validators {
        etag: "d41d8cd98f00b204e9800998ecf8427e",
        last_modified: 1_700_000_000, // Tue, 14 Nov 2023 22:13:20 GMT
    };
    const BEFORE: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
    const AT: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const AFTER: &str = "Tue, 14 Nov 2023 22:13:21 GMT";
    const TAG: &str = "\"d41d8cd98f00b204e9800998ecf8427e\"";

    fn eval(
        get: bool,
        im: Option<&str>,
        inm: Option<&str>,
        ims: Option<&str>,
        ius: Option<&str>,
    ) -> Condition {
        evaluate(get, im, inm, ims, ius, &V)
    }

    #[test]
    fn no_conditions_proceed() {
        assert_eq!(eval(true, None, None, None, None), Condition::Proceed);
        assert_eq!(
            eval(false, Some(""), Some(" "), None, None),
            Condition::Proceed
        );
    }

    #[test]
    fn if_match() {
        assert_eq!(eval(true, Some(TAG), None, None, None), Condition::Proceed);
        assert_eq!(
            eval(true, Some(V.etag), None, None, None),
            Condition::Proceed
        );
        assert_eq!(eval(false, Some("*"), None, None, None), Condition::Proceed);
        assert_eq!(
            eval(
                true,
                Some("\"x\", \"d41d8cd98f00b204e9800998ecf8427e\""),
                None,
                None,
                None
            ),
            Condition::Proceed
        );
        assert_eq!(
            eval(true, Some("\"nope\""), None, None, None),
            Condition::PreconditionFailed
        );
        assert_eq!(
            eval(false, Some("\"nope\""), None, None, None),
            Condition::PreconditionFailed
        );
        // Strong comparison: a weak tag never matches.
        let weak = format!("W/{TAG}");
        assert_eq!(
            eval(true, Some(&weak), None, None, None),
            Condition::PreconditionFailed
        );
        // If-Match wins over If-Unmodified-Since.
        assert_eq!(
            eval(true, Some(TAG), None, None, Some(BEFORE)),
            Condition::Proceed
        );
    }

    #[test]
    fn if_unmodified_since() {
        assert_eq!(eval(true, None, None, None, Some(AT)), Condition::Proceed);
        assert_eq!(
            eval(false, None, None, None, Some(AFTER)),
            Condition::Proceed
        );
        assert_eq!(
            eval(true, None, None, None, Some(BEFORE)),
            Condition::PreconditionFailed
        );
        assert_eq!(
            eval(false, None, None, None, Some(BEFORE)),
            Condition::PreconditionFailed
        );
        assert_eq!(
            eval(true, None, None, None, Some("yesterday")),
            Condition::Proceed
        );
    }

    #[test]
    fn if_none_match_304_vs_412() {
        assert_eq!(
            eval(true, None, Some(TAG), None, None),
            Condition::NotModified
        );
        assert_eq!(
            eval(false, None, Some(TAG), None, None),
            Condition::PreconditionFailed
        );
        assert_eq!(
            eval(true, None, Some("*"), None, None),
            Condition::NotModified
        );
        assert_eq!(
            eval(false, None, Some("*"), None, None),
            Condition::PreconditionFailed
        );
        let weak = format!("\"a\", W/{TAG}");
        assert_eq!(
            eval(true, None, Some(&weak), None, None),
            Condition::NotModified
        );
        assert_eq!(
            eval(true, None, Some("\"other\""), None, None),
            Condition::Proceed
        );
        assert_eq!(
            eval(false, None, Some("\"other\""), None, None),
            Condition::Proceed
        );
        // If-None-Match overrides If-Modified-Since.
        assert_eq!(
            eval(true, None, Some("\"other\""), Some(AFTER), None),
            Condition::Proceed
        );
        // A failing If-Match is reported before If-None-Match.
        assert_eq!(
            eval(true, Some("\"x\""), Some(TAG), None, None),
            Condition::PreconditionFailed
        );
    }

    #[test]
    fn if_modified_since() {
        assert_eq!(
            eval(true, None, None, Some(AT), None),
            Condition::NotModified
        );
        assert_eq!(
            eval(true, None, None, Some(AFTER), None),
            Condition::NotModified
        );
        assert_eq!(
            eval(true, None, None, Some(BEFORE), None),
            Condition::Proceed
        );
        // Only for GET and HEAD.
        assert_eq!(
            eval(false, None, None, Some(AFTER), None),
            Condition::Proceed
        );
        assert_eq!(
            eval(true, None, None, Some("not a date"), None),
            Condition::Proceed
        );
        // Obsolete date forms are understood too.
        assert_eq!(
            eval(
                true,
                None,
                None,
                Some("Tuesday, 14-Nov-23 22:13:20 GMT"),
                None
            ),
            Condition::NotModified
        );
        assert_eq!(
            eval(true, None, None, Some("Tue Nov 14 22:13:20 2023"), None),
            Condition::NotModified
        );
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), AT);
        assert_eq!(http_date(1_795_687_200), "Thu, 26 Nov 2026 10:00:00 GMT");
        assert_eq!(http_date(i64::MAX), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(parse_http_date(AT), Some(1_700_000_000));
        assert_eq!(
            parse_http_date(&http_date(1_795_687_200)),
            Some(1_795_687_200)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("garbage"), None);
    }
}
