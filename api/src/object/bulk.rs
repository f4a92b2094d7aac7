//! Bulk delete (`POST /v1/AUTH_x?bulk-delete`).

use actix_web::{web, HttpResponse};

use super::{Ctx, SwiftError};

/// Most paths one bulk delete request may name.
pub const MAX_DELETES_PER_REQUEST: usize = 10_000;

pub async fn bulk_delete(_ctx: &Ctx<'_>, _body: web::Payload) -> Result<HttpResponse, SwiftError> {
    Err(SwiftError::method_not_allowed())
}
