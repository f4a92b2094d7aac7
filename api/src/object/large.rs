//! Large objects: static (SLO) and dynamic (DLO) manifests.

use actix_web::{web, HttpResponse};
use strata_actors::object::ObjectRecord;

use super::{Ctx, SwiftError};

/// Most segments one SLO manifest may list.
pub const MAX_MANIFEST_SEGMENTS: usize = 1000;
/// Largest SLO manifest body, in bytes.
pub const MAX_MANIFEST_SIZE: usize = 8 * 1024 * 1024;
/// Most segments a DLO is assembled from.
pub const MAX_DLO_SEGMENTS: usize = 10_000;

/// A piece of an object's bytes: `len` bytes of blob `blob` from `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub blob: String,
    pub offset: u64,
    pub len: u64,
}

/// What a GET of an object reads, in order, and the size and ETag (unquoted) it answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub pieces: Vec<Piece>,
    pub size: u64,
    pub etag: String,
}

/// The read plan of `record` (object `name` in `container` of the request's account): a plain object is its
/// blob; a DLO is the objects under its manifest's prefix, in name order; an SLO is its manifest's segments.
pub async fn plan(
    _ctx: &Ctx<'_>,
    _container: &str,
    _name: &str,
    record: &ObjectRecord,
) -> Result<Plan, SwiftError> {
    Ok(Plan {
        pieces: vec![Piece {
            blob: record.blob.clone(),
            offset: 0,
            len: record.blob_size,
        }],
        size: record.size,
        etag: record.etag.clone(),
    })
}

/// `PUT ?multipart-manifest=put`: validate and store an SLO manifest.
pub async fn put_manifest(_ctx: &Ctx<'_>, _body: web::Payload) -> Result<HttpResponse, SwiftError> {
    Err(SwiftError::method_not_allowed())
}

/// `GET ?multipart-manifest=get` on an SLO: its manifest as JSON.
pub async fn get_manifest(
    _ctx: &Ctx<'_>,
    _record: &ObjectRecord,
) -> Result<HttpResponse, SwiftError> {
    Err(SwiftError::method_not_allowed())
}

/// `DELETE ?multipart-manifest=delete` on an SLO: its segments, then the manifest.
pub async fn delete_manifest(_ctx: &Ctx<'_>) -> Result<HttpResponse, SwiftError> {
    Err(SwiftError::method_not_allowed())
}
