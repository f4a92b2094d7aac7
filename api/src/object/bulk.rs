//! Bulk delete (`POST /v1/AUTH_x?bulk-delete`, also `DELETE ?bulk-delete`): a plain-text body of
//! URL-encoded `/container/object` or `/container` paths, one per line, deleted in order; the answer counts
//! what went, what was not there and what failed (Swift's bulk middleware format).

use actix_web::{web, HttpResponse};

use super::large::{delete_one, read_body, DeleteReport};
use super::{decode_segment, Ctx, SwiftError};

/// Most paths one bulk delete request may name.
pub const MAX_DELETES_PER_REQUEST: usize = 10_000;
/// Largest bulk delete body: every path at its longest, percent-encoded.
const MAX_BODY: usize = MAX_DELETES_PER_REQUEST * 3 * 1300;

pub async fn bulk_delete(ctx: &Ctx<'_>, body: web::Payload) -> Result<HttpResponse, SwiftError> {
    let body = read_body(body, MAX_BODY, "Bulk delete body").await?;
    let text = String::from_utf8(body)
        .map_err(|_| SwiftError::bad_request("Invalid UTF8 or contains NULL"))?;
    let paths: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if paths.len() > MAX_DELETES_PER_REQUEST {
        return Err(SwiftError::too_large(format!(
            "Maximum Bulk Deletes: {MAX_DELETES_PER_REQUEST} per request"
        )));
    }
    let mut report = DeleteReport::default();
    for raw in paths {
        let result = delete_path(ctx, raw).await;
        report.record(raw, result);
    }
    Ok(report.respond(ctx))
}

async fn delete_path(ctx: &Ctx<'_>, raw: &str) -> Result<(), SwiftError> {
    let decoded = decode_segment(raw)?;
    let path = decoded.trim_start_matches('/');
    match path.split_once('/') {
        Some((container, object)) if !object.is_empty() => {
            delete_one(ctx, container, object, "bulk-delete").await
        }
        _ => {
            let container = path.trim_end_matches('/');
            if container.is_empty() {
                return Err(SwiftError::bad_request("Invalid container name"));
            }
            if !ctx.access.is_owner() {
                return Err(ctx.access.denied());
            }
            ctx.service()
                .delete_container(&ctx.target.account, container, ctx.meta())
                .await
                .map_err(SwiftError::from)
        }
    }
}
