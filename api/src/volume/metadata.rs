//! The metadata API volumes and snapshots share: `/{id}/metadata` (list, merge with POST, replace with PUT)
//! and `/{id}/metadata/{key}` (show, put, delete). What differs between the two, the lookup, the write, the
//! policy actions and the resource's name in the 404s, is the [`MetadataOwner`]'s.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::volume::{SnapshotCommand, VolumeCommand};

use super::{metadata_map, param, parse_json, resource, Caller, CinderError, Volumes};

/// A resource with Cinder's metadata API.
pub(super) trait MetadataOwner: 'static {
    /// How the 404 for a missing key names the resource ("Volume", "Snapshot").
    const KIND: &'static str;
    /// The policy action of a merge (POST).
    const MERGE_POLICY: &'static str;
    /// The policy action of a replace (PUT) and of a one-key PUT.
    const UPDATE_POLICY: &'static str;
    /// The policy action of a key's deletion.
    const DELETE_POLICY: &'static str;

    /// The resource's metadata, if `caller` may see it (404 otherwise).
    fn metadata(
        vols: &Volumes,
        caller: &Caller,
        id: &str,
    ) -> Result<BTreeMap<String, String>, CinderError>;

    /// Merge `items` into the metadata, or (`replace`) make them the metadata.
    async fn set(
        vols: &Volumes,
        caller: &Caller,
        id: &str,
        items: BTreeMap<String, String>,
        replace: bool,
    ) -> Result<(), CinderError>;

    /// Delete `key`, which `current` (the metadata now) holds.
    async fn remove(
        vols: &Volumes,
        caller: &Caller,
        id: &str,
        key: String,
        current: BTreeMap<String, String>,
    ) -> Result<(), CinderError>;
}

/// Volumes: the volume aggregate deletes one key.
pub(super) struct VolumeMetadata;

impl MetadataOwner for VolumeMetadata {
    const KIND: &'static str = "Volume";
    const MERGE_POLICY: &'static str = "volume:create_volume_metadata";
    const UPDATE_POLICY: &'static str = "volume:update_volume_metadata";
    const DELETE_POLICY: &'static str = "volume:delete_volume_metadata";

    fn metadata(
        vols: &Volumes,
        caller: &Caller,
        id: &str,
    ) -> Result<BTreeMap<String, String>, CinderError> {
        Ok(vols.volume(caller, id)?.state.metadata)
    }

    async fn set(
        vols: &Volumes,
        caller: &Caller,
        id: &str,
        items: BTreeMap<String, String>,
        replace: bool,
    ) -> Result<(), CinderError> {
        let cmd = VolumeCommand::SetMetadata { items, replace };
        vols.run(&vols.volumes, id, cmd, &caller.meta).await?;
        Ok(())
    }

    async fn remove(
        vols: &Volumes,
        caller: &Caller,
        id: &str,
        key: String,
        _current: BTreeMap<String, String>,
    ) -> Result<(), CinderError> {
        let cmd = VolumeCommand::DeleteMetadataItem(key);
        vols.run(&vols.volumes, id, cmd, &caller.meta).await?;
        Ok(())
    }
}

/// Snapshots: the snapshot aggregate replaces or merges metadata; deleting a key replaces it with the rest.
pub(super) struct SnapshotMetadata;

impl MetadataOwner for SnapshotMetadata {
    const KIND: &'static str = "Snapshot";
    const MERGE_POLICY: &'static str = "volume:update_snapshot_metadata";
    const UPDATE_POLICY: &'static str = "volume:update_snapshot_metadata";
    const DELETE_POLICY: &'static str = "volume:delete_snapshot_metadata";

    fn metadata(
        vols: &Volumes,
        caller: &Caller,
        id: &str,
    ) -> Result<BTreeMap<String, String>, CinderError> {
        Ok(vols.snapshot(caller, id)?.state.metadata)
    }

    async fn set(
        vols: &Volumes,
        caller: &Caller,
        id: &str,
        items: BTreeMap<String, String>,
        replace: bool,
    ) -> Result<(), CinderError> {
        let cmd = SnapshotCommand::SetMetadata { items, replace };
        vols.run(&vols.snapshots, id, cmd, &caller.meta).await?;
        Ok(())
    }

    async fn remove(
        vols: &Volumes,
        caller: &Caller,
        id: &str,
        key: String,
        mut current: BTreeMap<String, String>,
    ) -> Result<(), CinderError> {
        current.remove(&key);
        Self::set(vols, caller, id, current, true).await
    }
}

/// Register the metadata routes of `R` under `/<collection>/{id}`.
pub(super) fn configure<R: MetadataOwner>(cfg: &mut web::ServiceConfig, collection: &str) {
    cfg.service(
        resource(&format!("/{collection}/{{id}}/metadata"))
            .route(web::get().to(list::<R>))
            .route(web::post().to(merge::<R>))
            .route(web::put().to(replace::<R>)),
    )
    .service(
        resource(&format!("/{collection}/{{id}}/metadata/{{key}}"))
            .route(web::get().to(show::<R>))
            .route(web::put().to(put::<R>))
            .route(web::delete().to(delete::<R>)),
    );
}

fn no_key<R: MetadataOwner>(id: &str, key: &str) -> CinderError {
    CinderError::not_found(format!("{} {id} has no metadata with key {key}.", R::KIND))
}

async fn list<R: MetadataOwner>(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    let metadata = R::metadata(&vols, &caller, &param(&req, "id"))?;
    Ok(HttpResponse::Ok().json(json!({ "metadata": metadata })))
}

/// A merge or replace: `{"metadata": {...}}` in, the whole metadata after the write out.
async fn write<R: MetadataOwner>(
    vols: &Volumes,
    caller: &Caller,
    req: &HttpRequest,
    body: &[u8],
    replace: bool,
) -> Result<HttpResponse, CinderError> {
    let id = param(req, "id");
    let v = parse_json(body)?;
    let items = metadata_map(
        v.get("metadata").ok_or_else(|| {
            CinderError::bad_request("Malformed request body: 'metadata' is a required property")
        })?,
        "metadata",
    )?;
    R::metadata(vols, caller, &id)?;
    R::set(vols, caller, &id, items, replace).await?;
    let metadata = R::metadata(vols, caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "metadata": metadata })))
}

async fn merge<R: MetadataOwner>(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce(R::MERGE_POLICY)?;
    write::<R>(&vols, &caller, &req, &body, false).await
}

async fn replace<R: MetadataOwner>(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce(R::UPDATE_POLICY)?;
    write::<R>(&vols, &caller, &req, &body, true).await
}

async fn show<R: MetadataOwner>(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    let (id, key) = (param(&req, "id"), param(&req, "key"));
    let metadata = R::metadata(&vols, &caller, &id)?;
    let value = metadata.get(&key).ok_or_else(|| no_key::<R>(&id, &key))?;
    Ok(HttpResponse::Ok().json(json!({ "meta": { key: value } })))
}

/// The `{"meta": {key: value}}` of a one-key metadata PUT, which must name the URL's key.
fn one_meta(v: &Value, key: &str) -> Result<BTreeMap<String, String>, CinderError> {
    let meta = v
        .get("meta")
        .ok_or_else(|| CinderError::bad_request("Malformed request body"))?;
    let items = metadata_map(meta, "meta")?;
    if items.len() > 1 {
        return Err(CinderError::bad_request(
            "Request body contains too many items",
        ));
    }
    if !items.contains_key(key) {
        return Err(CinderError::bad_request("Request body and URI mismatch"));
    }
    Ok(items)
}

async fn put<R: MetadataOwner>(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce(R::UPDATE_POLICY)?;
    let (id, key) = (param(&req, "id"), param(&req, "key"));
    let items = one_meta(&parse_json(&body)?, &key)?;
    R::metadata(&vols, &caller, &id)?;
    R::set(&vols, &caller, &id, items.clone(), false).await?;
    Ok(HttpResponse::Ok().json(json!({ "meta": items })))
}

async fn delete<R: MetadataOwner>(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    caller.enforce(R::DELETE_POLICY)?;
    let (id, key) = (param(&req, "id"), param(&req, "key"));
    let current = R::metadata(&vols, &caller, &id)?;
    if !current.contains_key(&key) {
        return Err(no_key::<R>(&id, &key));
    }
    R::remove(&vols, &caller, &id, key, current).await?;
    Ok(HttpResponse::Ok().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy scan reads the string literals handlers enforce; the owners' actions are constants,
    /// checked here.
    #[test]
    fn metadata_actions_are_in_the_policy_table() {
        fn actions<R: MetadataOwner>() -> [&'static str; 3] {
            [R::MERGE_POLICY, R::UPDATE_POLICY, R::DELETE_POLICY]
        }
        for action in actions::<VolumeMetadata>()
            .into_iter()
            .chain(actions::<SnapshotMetadata>())
        {
            assert!(super::super::POLICY.rule(action).is_some(), "{action}");
        }
    }
}
